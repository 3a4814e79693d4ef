"""Survival and competing-risks outcomes: Kaplan–Meier, log-rank, cumulative incidence, Gray.

Kaplan–Meier and log-rank are here; cumulative incidence, Gray's test and Fine–Gray are
in :mod:`olinkpipe.clinical.competing_risks` and importable from here.

All four functions take a patient table (one row per patient) and column names. They
return tidy :class:`pandas.DataFrame` objects whose ``attrs`` say which method, confidence
interval and groups were used, and which rows were excluded (rows with a missing time,
event or group are dropped with an :class:`~olinkpipe.errors.OlinkpipeWarning`, never
silently).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._validate import check_literal
from ._survival_input import check_at, first_at_or_below, jsonable, need_groups, prepare, z_value
from .competing_risks import cumulative_incidence, fine_gray, gray_test

__all__ = ["kaplan_meier", "logrank", "cumulative_incidence", "gray_test", "fine_gray"]


# --------------------------------------------------------------------------- Kaplan–Meier
def kaplan_meier(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    group: str | None = None,
    at: float | Sequence[float] | None = None,
    ci: str = "log-log",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Kaplan–Meier survival with confidence intervals, numbers at risk and medians.

    Fitted with :class:`lifelines.KaplanMeierFitter`, one fit per group.

    Parameters
    ----------
    df
        Patient table, one row per patient.
    time
        Column with follow-up time (>= 0).
    event
        Column with the event indicator: 1 = event (death, progression), 0 = censored.
        Booleans are accepted.
    group
        Optional column defining the groups (e.g. ``"arm"``); one curve per level.
    at
        Time(s) at which to report the estimate (e.g. ``24`` months). ``None`` returns the
        whole step curve, one row per distinct observed time (starting at 0).
    ci
        ``"log-log"`` (default; lifelines' exponential Greenwood interval, also SAS's
        default) or ``"log"`` (R ``survfit``'s default ``conf.type="log"``:
        ``S·exp(±z·σ)``, ``σ² = Σ d/(n(n−d))`` the Greenwood variance of ``log S``, upper
        limit capped at 1). Where the estimate is 0 both limits are ``NaN``, as in R;
        where it is 1 the log-log limits are 1, as lifelines gives (R: ``NA``).
    alpha
        1 − confidence level.

    Returns
    -------
    pandas.DataFrame
        Columns ``group, time, estimate, ci_low, ci_high, n_at_risk`` (plus
        ``n_event, n_censored`` at each time of the full curve). ``n_at_risk`` at ``t``
        counts patients with follow-up ``>= t`` (R's ``n.risk``). At a time after a
        group's last follow-up the estimate is ``NaN`` (R ``summary.survfit`` leaves such
        times out). ``attrs``: ``method``, ``ci`` (e.g. ``"log-log"``), ``alpha``,
        ``groups``, ``n``, ``excluded`` (row labels dropped for missing values) and
        ``median``: a list of ``{group, median, ci_low, ci_high}`` records (``inf`` when
        not reached; the median is the first time the curve is ≤ 0.5, and its CI the first
        times the CI limits are ≤ 0.5, as lifelines'
        :func:`~lifelines.utils.median_survival_times`; R takes the midpoint when the
        curve sits exactly at 0.5). ``pd.DataFrame(km.attrs["median"])`` makes a table.

    Raises
    ------
    MissingColumnError
        A named column is absent.
    ValidationError
        Negative or non-numeric times, event codes other than 0/1.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> pts = pd.DataFrame({"months": [3, 6, 6, 9, 12, 15, 20, 24],
    ...                     "died": [1, 0, 1, 0, 1, 0, 0, 0],
    ...                     "arm": ["CAR-T"] * 4 + ["control"] * 4})
    >>> km = op.clinical.kaplan_meier(pts, time="months", event="died", group="arm", at=[6])
    >>> print(km[["group", "time", "estimate", "n_at_risk"]].to_string(index=False))
      group  time  estimate  n_at_risk
      CAR-T   6.0       0.5          3
    control   6.0       1.0          4
    """
    from lifelines import KaplanMeierFitter

    check_literal("ci", ci, ["log-log", "log"])
    z = z_value(alpha)
    at_arr = check_at(at)
    d, levels, attrs = prepare(
        df, time=time, event=event, group=group, kind="survival", step="kaplan_meier"
    )
    frames, medians = [], []
    for lv in levels:
        sub = d.loc[d["_group"] == lv]
        kmf = KaplanMeierFitter(alpha=alpha).fit(
            sub[time].to_numpy(), sub[event].to_numpy(), label="S"
        )
        et = kmf.event_table
        times = et.index.to_numpy(dtype=float)
        surv = kmf.survival_function_["S"].to_numpy()
        n_risk = et["at_risk"].to_numpy(dtype=float)
        n_ev = et["observed"].to_numpy(dtype=float)
        if ci == "log-log":
            band = kmf.confidence_interval_.to_numpy()
            lo, hi = band[:, 0].copy(), band[:, 1].copy()
            lo[surv <= 0], hi[surv <= 0] = np.nan, np.nan
        else:
            with np.errstate(divide="ignore", invalid="ignore"):
                gw = np.cumsum(np.where(n_ev > 0, n_ev / (n_risk * (n_risk - n_ev)), 0.0))
                se = np.sqrt(gw)
                lo = surv * np.exp(-z * se)
                hi = np.minimum(1.0, surv * np.exp(z * se))
            lo[surv <= 0], hi[surv <= 0] = np.nan, np.nan
        medians.append(
            {
                "group": jsonable(lv),
                "median": first_at_or_below(times, surv, 0.5),
                "ci_low": first_at_or_below(times, lo, 0.5),
                "ci_high": first_at_or_below(times, hi, 0.5),
            }
        )
        if at_arr is None:
            frames.append(
                pd.DataFrame(
                    {
                        "group": lv,
                        "time": times,
                        "estimate": surv,
                        "ci_low": lo,
                        "ci_high": hi,
                        "n_at_risk": n_risk.astype(int),
                        "n_event": n_ev.astype(int),
                        "n_censored": et["censored"].to_numpy(dtype=int),
                    }
                )
            )
        else:
            idx = np.maximum(np.searchsorted(times, at_arr, side="right") - 1, 0)
            beyond = at_arr > times[-1]
            t_all = sub[time].to_numpy()
            frames.append(
                pd.DataFrame(
                    {
                        "group": lv,
                        "time": at_arr,
                        "estimate": np.where(beyond, np.nan, surv[idx]),
                        "ci_low": np.where(beyond, np.nan, lo[idx]),
                        "ci_high": np.where(beyond, np.nan, hi[idx]),
                        "n_at_risk": (t_all[None, :] >= at_arr[:, None]).sum(axis=1),
                    }
                )
            )
    out = pd.concat(frames, ignore_index=True)
    out.attrs = {
        "method": "Kaplan-Meier (lifelines KaplanMeierFitter)",
        "ci": ci,
        "ci_note": (
            "exponential Greenwood / log(-log) transform (lifelines default)"
            if ci == "log-log"
            else "Greenwood variance on the log scale (R survfit conf.type='log')"
        ),
        "alpha": alpha,
        **attrs,
        "median": medians,
    }
    return out


# --------------------------------------------------------------------------- log-rank
def logrank(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    group: str,
) -> pd.DataFrame:
    """Log-rank test of equal survival across two or more groups (lifelines).

    Parameters
    ----------
    df
        Patient table, one row per patient.
    time
        Column with follow-up time (>= 0).
    event
        Column with the event indicator: 1 = event, 0 = censored.
    group
        Column with the groups to compare (at least two levels).

    Returns
    -------
    pandas.DataFrame
        One row: ``statistic`` (chi-square), ``df`` (groups − 1), ``p_value``. ``attrs``:
        ``method``, ``groups``, ``n``, ``observed`` and ``expected`` events per group,
        ``excluded``. Same numbers as :func:`lifelines.statistics.multivariate_logrank_test`
        and R's ``survdiff``.

    Raises
    ------
    DesignError
        Fewer than two groups.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> pts = pd.DataFrame({"months": [3, 6, 6, 9, 12, 15, 20, 24],
    ...                     "died": [1, 1, 1, 0, 1, 0, 0, 0],
    ...                     "arm": ["CAR-T"] * 4 + ["control"] * 4})
    >>> res = op.clinical.logrank(pts, time="months", event="died", group="arm")
    >>> print(res.round(3).to_string(index=False))
     statistic  df  p_value
         4.101   1    0.043
    """
    from lifelines.statistics import multivariate_logrank_test

    d, levels, attrs = prepare(
        df, time=time, event=event, group=group, kind="survival", step="logrank"
    )
    need_groups(levels, group, "logrank")
    codes = pd.Categorical(d["_group"], categories=levels).codes
    res = multivariate_logrank_test(d[time].to_numpy(), codes, d[event].to_numpy())
    # observed / expected events per group (for the attrs)
    t = d[time].to_numpy()
    e = d[event].to_numpy()
    ut = np.unique(t[e == 1])
    at_risk = (t[None, :] >= ut[:, None]).astype(float)
    dead = ((t[None, :] == ut[:, None]) & (e[None, :] == 1)).astype(float)
    onehot = (codes[:, None] == np.arange(len(levels))[None, :]).astype(float)
    n_g = at_risk @ onehot
    d_tot = dead.sum(axis=1, keepdims=True)
    expected = (n_g / at_risk.sum(axis=1, keepdims=True) * d_tot).sum(axis=0)
    observed = (dead @ onehot).sum(axis=0)
    out = pd.DataFrame(
        {
            "statistic": [float(res.test_statistic)],
            "df": [len(levels) - 1],
            "p_value": [float(res.p_value)],
        }
    )
    out.attrs = {
        "method": "log-rank (lifelines multivariate_logrank_test)",
        **attrs,
        "observed": dict(zip(map(str, levels), observed.tolist(), strict=True)),
        "expected": dict(zip(map(str, levels), expected.tolist(), strict=True)),
    }
    return out
