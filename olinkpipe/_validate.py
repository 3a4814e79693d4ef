"""Checks on user arguments shared across modules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd

from .errors import DesignError, MissingColumnError, format_message


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
