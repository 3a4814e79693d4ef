"""Checks on user arguments shared across modules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from .errors import DesignError, MissingColumnError, ValidationError, format_message


def check_fraction(name: str, value: float) -> float:
    """``value`` as a float strictly between 0 and 1 (a level, alpha, a quantile), else
    :class:`ValidationError`.

    Examples
    --------
    >>> check_fraction("conf_level", 0.95)
    0.95
    """
    if not 0 < float(value) < 1:
        msg = f"{name}={value!r} must lie strictly between 0 and 1."
        raise ValidationError(msg)
    return float(value)


def check_literal(name: str, value: object, allowed: Sequence[object]) -> None:
    """Raise :class:`DesignError` unless ``value`` is one of ``allowed``.

    Examples
    --------
    >>> check_literal("method", "ttest", ["ttest", "wilcoxon"])
    """
    if value not in allowed:
        msg = f"Argument {name}={value!r} is not allowed; choose one of {list(allowed)!r}."
        raise DesignError(msg)


def require_columns(
    frame: pd.DataFrame,
    columns: Iterable[str],
    *,
    what: str = "table",
    file: str | None = None,
    hint: str | None = None,
) -> None:
    """Raise :class:`MissingColumnError` naming every required column ``frame`` lacks."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        msg = format_message(
            f"the {what} lacks required column(s) {missing!r}; it has {list(frame.columns)[:20]!r}",
            file=file,
            hint=hint or "Rename the columns or pass the right column names as arguments.",
        )
        raise MissingColumnError(msg)
