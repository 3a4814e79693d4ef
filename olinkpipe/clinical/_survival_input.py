"""Input checks shared by the survival and competing-risks functions: the patient table
validated and cleaned (rows with a missing time, event or group dropped with a warning),
group levels, ``at=`` times and the normal quantile."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .._validate import check_fraction, require_columns
from .._warnings import warn
from ..errors import DesignError, ValidationError, format_message, preview

__all__ = ["ALL", "check_at", "first_at_or_below", "jsonable", "need_groups", "prepare", "z_value"]

ALL = "all"  # group label when no group column is given


# --------------------------------------------------------------------------- input checks
def prepare(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    group: str | None,
    kind: str,
    step: str,
    extra: Sequence[str] = (),
) -> tuple[pd.DataFrame, list, dict]:
    """Validate and clean the patient table; return (frame, group levels, attrs)."""
    if not isinstance(df, pd.DataFrame):
        msg = f"{step}: expected a pandas DataFrame of patients, got {type(df).__name__}."
        raise ValidationError(msg)
    cols = [time, event] + ([group] if group is not None else []) + list(extra)
    require_columns(df, cols, what="patient table")
    d = df[cols].copy()
    missing = d.isna().any(axis=1)
    excluded: list[str] = []
    if missing.any():
        excluded = [str(i) for i in d.index[missing]]
        warn(
            f"{step}: excluded {len(excluded)} patient row(s) with a missing "
            f"{'/'.join(cols)}: {preview(excluded)}",
            stacklevel=4,
        )
        d = d.loc[~missing]
    if d.empty:
        msg = format_message(
            f"{step}: no patients left with a non-missing {time!r} and {event!r}",
            hint="Check the column names and that the table is not empty.",
        )
        raise ValidationError(msg)
    t = pd.to_numeric(d[time], errors="coerce")
    if t.isna().any():
        bad = d.index[t.isna()].tolist()
        msg = format_message(
            "time values are not numeric",
            column=time,
            rows=bad,
            hint="Give follow-up times as numbers (e.g. months since infusion).",
        )
        raise ValidationError(msg)
    if (t < 0).any() or not np.isfinite(t).all():
        bad = d.index[(t < 0) | ~np.isfinite(t)].tolist()
        msg = format_message(
            "times must be finite and >= 0",
            column=time,
            rows=bad,
            hint="Times are measured from the origin (infusion, transplant); fix dates.",
        )
        raise ValidationError(msg)
    e = d[event]
    if e.dtype == bool:
        e = e.astype(int)
    e = pd.to_numeric(e, errors="coerce")
    allowed = {0, 1} if kind == "survival" else None
    bad_mask = e.isna() | (e != np.round(e)) | (e < 0)
    if allowed is not None:
        bad_mask |= ~e.isin(list(allowed))
    if bad_mask.any():
        coding = (
            "0 = censored, 1 = event"
            if kind == "survival"
            else "0 = censored, 1 = event of interest, 2+ = competing events"
        )
        msg = format_message(
            f"event codes must be {coding}; found {sorted(set(d[event][bad_mask]), key=str)!r}",
            column=event,
            rows=d.index[bad_mask].tolist(),
            hint=f"Recode the event column as {coding}.",
        )
        raise ValidationError(msg)
    d[time] = t.astype(float)
    d[event] = e.astype(int)
    if group is None:
        d["_group"] = ALL
        levels: list = [ALL]
    else:
        g = d[group]
        if isinstance(g.dtype, pd.CategoricalDtype):
            levels = [lv for lv in g.cat.categories if (g == lv).any()]
        else:
            levels = sorted(g.unique(), key=lambda x: (str(type(x)), x))
        d["_group"] = g
    attrs = {
        "time": time,
        "event": event,
        "group": group,
        "groups": [jsonable(lv) for lv in levels],
        "n": {str(lv): int((d["_group"] == lv).sum()) for lv in levels},
        "excluded": excluded,
    }
    return d, levels, attrs


def jsonable(x: object) -> object:
    if isinstance(x, np.generic):
        return x.item()
    return x if isinstance(x, (str, int, float, bool)) or x is None else str(x)


def need_groups(levels: list, group: str, step: str) -> None:
    if len(levels) < 2:
        msg = format_message(
            f"{step} compares groups but {group!r} has only {len(levels)} level(s) "
            f"{levels!r} among patients with complete data",
            column=group,
            hint="Pass a group column with at least two levels.",
        )
        raise DesignError(msg)


def check_at(at: float | Sequence[float] | None) -> np.ndarray | None:
    if at is None:
        return None
    arr = np.atleast_1d(np.asarray(at, dtype=float))
    if arr.ndim != 1 or not np.isfinite(arr).all() or (arr < 0).any():
        msg = f"Argument at={at!r}: times must be finite numbers >= 0."
        raise ValidationError(msg)
    return arr


def z_value(alpha: float) -> float:
    check_fraction("alpha", alpha)
    return float(stats.norm.ppf(1 - alpha / 2))


def first_at_or_below(times: np.ndarray, curve: np.ndarray, level: float) -> float:
    hit = np.flatnonzero(curve <= level)
    return float(times[hit[0]]) if hit.size else float("inf")
