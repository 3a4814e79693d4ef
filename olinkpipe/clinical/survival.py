"""Survival and competing-risks outcomes: Kaplan–Meier, log-rank, cumulative incidence, Gray.

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
from scipy import stats

from .._validate import check_fraction, check_literal, require_columns
from .._warnings import warn
from ..errors import DesignError, ValidationError, format_message, preview
from . import _competing

__all__ = ["kaplan_meier", "logrank", "cumulative_incidence", "gray_test", "fine_gray"]

_ALL = "all"  # group label when no group column is given


# --------------------------------------------------------------------------- input checks
def _prepare(
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
        d["_group"] = _ALL
        levels: list = [_ALL]
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
        "groups": [_jsonable(lv) for lv in levels],
        "n": {str(lv): int((d["_group"] == lv).sum()) for lv in levels},
        "excluded": excluded,
    }
    return d, levels, attrs


def _jsonable(x: object) -> object:
    if isinstance(x, np.generic):
        return x.item()
    return x if isinstance(x, (str, int, float, bool)) or x is None else str(x)


def _need_groups(levels: list, group: str, step: str) -> None:
    if len(levels) < 2:
        msg = format_message(
            f"{step} compares groups but {group!r} has only {len(levels)} level(s) "
            f"{levels!r} among patients with complete data",
            column=group,
            hint="Pass a group column with at least two levels.",
        )
        raise DesignError(msg)


def _check_at(at: float | Sequence[float] | None) -> np.ndarray | None:
    if at is None:
        return None
    arr = np.atleast_1d(np.asarray(at, dtype=float))
    if arr.ndim != 1 or not np.isfinite(arr).all() or (arr < 0).any():
        msg = f"Argument at={at!r}: times must be finite numbers >= 0."
        raise ValidationError(msg)
    return arr


def _z(alpha: float) -> float:
    check_fraction("alpha", alpha)
    return float(stats.norm.ppf(1 - alpha / 2))


def _first_at_or_below(times: np.ndarray, curve: np.ndarray, level: float) -> float:
    hit = np.flatnonzero(curve <= level)
    return float(times[hit[0]]) if hit.size else float("inf")


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
    z = _z(alpha)
    at_arr = _check_at(at)
    d, levels, attrs = _prepare(
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
                "group": _jsonable(lv),
                "median": _first_at_or_below(times, surv, 0.5),
                "ci_low": _first_at_or_below(times, lo, 0.5),
                "ci_high": _first_at_or_below(times, hi, 0.5),
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

    d, levels, attrs = _prepare(
        df, time=time, event=event, group=group, kind="survival", step="logrank"
    )
    _need_groups(levels, group, "logrank")
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


# --------------------------------------------------------------------------- competing risks
def cumulative_incidence(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    group: str | None = None,
    at: float | Sequence[float] | None = None,
    ci: str = "log-log",
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Cumulative incidence of each cause under competing risks (Aalen–Johansen).

    Reproduces R's ``cmprsk::cuminc`` estimates and variances (``timepoints``).

    Parameters
    ----------
    df
        Patient table, one row per patient.
    time
        Column with time to the first event or censoring (>= 0).
    event
        Column coded 0 = censored, 1 = event of interest (e.g. relapse), 2, 3, … =
        competing events (e.g. death without relapse = non-relapse mortality). Cause 1 is
        always reported (0 throughout if it never occurs), every other code present too.
    group
        Optional column defining the groups.
    at
        Time(s) at which to report the estimates; ``None`` returns the whole step curve,
        one row per distinct observed time in the group (starting at 0).
    ci
        ``"log-log"`` (default): ``F^exp(±z·se/(F·log F))`` (Pintilie 2006, as
        ``tidycmprsk::cuminc``; undefined, ``NaN``, when ``F`` is 0 or 1); ``"linear"``:
        ``F ± z·se`` clipped to [0, 1] (what many papers print).
    alpha
        1 − confidence level.

    Returns
    -------
    pandas.DataFrame
        Columns ``group, cause, time, estimate, variance, ci_low, ci_high, n_at_risk``,
        one row per group × cause × time. ``estimate`` is the Aalen–Johansen estimate
        ``F_c(t) = Σ_{s≤t} S(s−)·d_c(s)/n(s)`` (``S`` the all-cause Kaplan–Meier).
        ``variance`` is cmprsk's delta-method (Gray 1988) estimate; as in cmprsk it is
        updated at the event times of that cause and carried forward in between. Beyond
        a group's last follow-up the values are ``NaN`` (cmprsk's ``timepoints`` gives
        ``NA``). ``attrs``: ``method``, ``ci``, ``alpha``, ``causes``, ``groups``, ``n``,
        ``excluded``.

    Raises
    ------
    ValidationError
        Negative times, negative or non-integer event codes.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> pts = pd.DataFrame({"months": [2, 4, 5, 7, 9, 12, 18, 24],
    ...                     "status": [1, 2, 0, 1, 0, 2, 0, 0]})
    >>> cif = op.clinical.cumulative_incidence(pts, time="months", event="status", at=[12])
    >>> print(cif[["cause", "time", "estimate"]].round(3).to_string(index=False))
     cause  time  estimate
         1  12.0     0.275
         2  12.0     0.325
    """
    check_literal("ci", ci, ["log-log", "linear"])
    z = _z(alpha)
    at_arr = _check_at(at)
    d, levels, attrs = _prepare(
        df, time=time, event=event, group=group, kind="competing", step="cumulative_incidence"
    )
    present = {int(c) for c in d[event].unique() if c != 0}
    if not present:
        warn("cumulative_incidence: no events of any cause; every estimate is 0.", stacklevel=3)
    # cause 1 (the event of interest) is always reported, at 0 when it never occurs
    causes = np.array(sorted(present | {1}), dtype=int)
    frames = []
    for lv in levels:
        sub = d.loc[d["_group"] == lv]
        t = sub[time].to_numpy()
        st = _competing.steps(t, sub[event].to_numpy(), causes)
        times = np.concatenate([[0.0], st.time]) if st.time[0] > 0 else st.time
        pad = times.size - st.time.size
        n_risk = np.concatenate([[t.size] * pad, st.n_at_risk])
        for j, c in enumerate(causes):
            f, var = _competing.cuminc_curve(st, j)
            f = np.concatenate([[0.0] * pad, f])
            var = np.concatenate([[0.0] * pad, var])
            if at_arr is None:
                tt, ff, vv, nr = times, f, var, n_risk
            else:
                idx = np.searchsorted(times, at_arr, side="right") - 1
                beyond = at_arr > times[-1]
                tt = at_arr
                ff = np.where(beyond, np.nan, f[idx])
                vv = np.where(beyond, np.nan, var[idx])
                nr = (t[None, :] >= at_arr[:, None]).sum(axis=1)
            lo, hi = _cif_ci(ff, vv, z, ci)
            frames.append(
                pd.DataFrame(
                    {
                        "group": lv,
                        "cause": int(c),
                        "time": tt,
                        "estimate": ff,
                        "variance": vv,
                        "ci_low": lo,
                        "ci_high": hi,
                        "n_at_risk": np.asarray(nr, dtype=int),
                    }
                )
            )
    out = pd.concat(frames, ignore_index=True)
    out.attrs = {
        "method": "Aalen-Johansen cumulative incidence, cmprsk::cuminc variance",
        "ci": ci,
        "alpha": alpha,
        "causes": causes.tolist(),
        **attrs,
    }
    return out


def _cif_ci(f: np.ndarray, var: np.ndarray, z: float, ci: str) -> tuple[np.ndarray, np.ndarray]:
    se = np.sqrt(np.maximum(var, 0.0))
    if ci == "linear":
        return np.clip(f - z * se, 0.0, 1.0), np.clip(f + z * se, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (f > 0) & (f < 1)
        k = np.where(ok, np.exp(z * se / (f * np.abs(np.log(np.where(ok, f, 0.5))))), np.nan)
        lo = np.where(ok, f**k, np.nan)
        hi = np.where(ok, f ** (1.0 / k), np.nan)
    return lo, hi


def gray_test(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    group: str,
    cause: int | Sequence[int] | None = 1,
    rho: float = 0.0,
    strata: str | None = None,
) -> pd.DataFrame:
    """Gray's K-sample test for equal cumulative incidence of a cause across groups.

    Implements Gray (1988) as R's ``cmprsk::cuminc`` computes it (``crstm``): a weighted
    difference between each group's subdistribution hazard and the pooled one, with the
    weight ``(1 − F(t−))**rho`` (``F`` the pooled cumulative incidence), and its martingale
    variance; statistic ``s' V⁻¹ s`` on the first K − 1 groups, chi-square with K − 1 df.

    Parameters
    ----------
    df
        Patient table, one row per patient.
    time
        Column with time to the first event or censoring (>= 0).
    event
        Column coded 0 = censored, 1 = event of interest, 2, 3, … = competing events.
    group
        Column with the groups to compare (at least two levels).
    cause
        Cause(s) to test; ``None`` tests every cause present (cmprsk's ``Tests`` table).
    rho
        Power of the weight function (cmprsk's ``rho``; 0 = log-rank-like weights).
    strata
        Optional column of strata: scores and variances are summed over strata.

    Returns
    -------
    pandas.DataFrame
        One row per cause: ``cause, statistic, df, p_value``. ``attrs``: ``method``,
        ``rho``, ``groups``, ``n``, ``excluded``.

    Raises
    ------
    DesignError
        Fewer than two groups.
    ValidationError
        Bad event codes or times.

    References
    ----------
    Gray RJ (1988). A class of K-sample tests for comparing the cumulative incidence of a
    competing risk. Annals of Statistics 16:1141–1154.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import olinkpipe as op
    >>> rng = np.random.default_rng(0)
    >>> pts = pd.DataFrame({"months": rng.exponential(20, 60).round(1),
    ...                     "status": rng.choice([0, 1, 2], 60),
    ...                     "arm": np.repeat(["CAR-T", "control"], 30)})
    >>> res = op.clinical.gray_test(pts, time="months", event="status", group="arm")
    >>> list(res.columns)
    ['cause', 'statistic', 'df', 'p_value']
    """
    if not np.isfinite(rho):
        msg = f"Argument rho={rho!r} must be a finite number."
        raise ValidationError(msg)
    extra = [strata] if strata is not None else []
    d, levels, attrs = _prepare(
        df,
        time=time,
        event=event,
        group=group,
        kind="competing",
        step="gray_test",
        extra=extra,
    )
    _need_groups(levels, group, "gray_test")
    present = sorted(int(c) for c in d[event].unique() if c != 0)
    if cause is None:
        causes = present
    else:
        causes = [cause] if np.isscalar(cause) else list(cause)
        for c in causes:
            if not isinstance(c, (int, np.integer)) or c < 1:
                msg = f"Argument cause={cause!r}: causes are event codes >= 1."
                raise ValidationError(msg)
    d = d.sort_values(time, kind="mergesort")
    codes = pd.Categorical(d["_group"], categories=levels).codes.astype(int)
    t = d[time].to_numpy()
    ev = d[event].to_numpy()
    st_codes = (
        pd.factorize(d[strata], sort=True)[0] if strata is not None else np.zeros(t.size, int)
    )
    ng = len(levels)
    rows = []
    for c in causes:
        status = np.where(ev == 0, 0, np.where(ev == c, 1, 2))
        s = np.zeros(ng - 1)
        v = np.zeros((ng - 1, ng - 1))
        for k in np.unique(st_codes):
            m = st_codes == k
            sk, vk = _competing.gray_score(t[m], status[m], codes[m], ng, float(rho))
            s += sk
            v += vk
        stat = float("nan")
        if c not in present:
            warn(
                f"gray_test: no events of cause {c} (causes present: {present}); "
                "statistic set to NaN.",
                stacklevel=3,
            )
        elif np.isfinite(v).all() and np.linalg.matrix_rank(v) == ng - 1:
            stat = float(s @ np.linalg.solve(v, s))
        else:
            warn(
                f"gray_test: the variance matrix for cause {c} is singular (no events of "
                "this cause, or a group without any); statistic set to NaN.",
                stacklevel=3,
            )
        rows.append(
            {
                "cause": int(c),
                "statistic": stat,
                "df": ng - 1,
                "p_value": float(stats.chi2.sf(stat, ng - 1)) if np.isfinite(stat) else np.nan,
            }
        )
    out = pd.DataFrame(rows, columns=["cause", "statistic", "df", "p_value"])
    out.attrs = {
        "method": "Gray (1988) K-sample test (cmprsk::cuminc algorithm)",
        "rho": float(rho),
        "strata": strata,
        **attrs,
    }
    return out


# --------------------------------------------------------------------------- Fine–Gray
def _design(d: pd.DataFrame, covariates: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    cols, names = [], []
    for c in covariates:
        x = d[c]
        if pd.api.types.is_bool_dtype(x) or not pd.api.types.is_numeric_dtype(x):
            levels = (
                [lv for lv in x.cat.categories if (x == lv).any()]
                if isinstance(x.dtype, pd.CategoricalDtype)
                else sorted(x.unique(), key=lambda v: (str(type(v)), v))
            )
            for lv in levels[1:]:
                cols.append((x == lv).to_numpy(dtype=float))
                names.append(f"{c}[{lv}]")
        else:
            cols.append(x.to_numpy(dtype=float))
            names.append(c)
    return np.column_stack(cols) if cols else np.zeros((len(d), 0)), names


def fine_gray(
    df: pd.DataFrame,
    *,
    time: str,
    event: str,
    covariates: Sequence[str],
    cause: int = 1,
    alpha: float = 0.05,
) -> pd.DataFrame:
    """Fine–Gray proportional subdistribution hazards regression (as R's ``cmprsk::crr``).

    Parameters
    ----------
    df
        Patient table, one row per patient.
    time
        Column with time to the first event or censoring (>= 0).
    event
        Column coded 0 = censored, 1 = event of interest, 2, 3, … = competing events.
    covariates
        Columns entering the model. Numeric columns enter as they are; text, boolean or
        categorical columns are dummy-coded against their first level (category order,
        else sorted), named ``"column[level]"``.
    cause
        Event code modelled; every other non-zero code is competing.
    alpha
        1 − confidence level of the hazard-ratio intervals.

    Returns
    -------
    pandas.DataFrame
        One row per term: ``term, coef`` (log subdistribution hazard ratio), ``se``,
        ``hr``, ``ci_low``, ``ci_high`` (for ``hr``), ``statistic`` (Wald z), ``p_value``.
        The variance is Fine & Gray's (1999) robust sandwich including the term for the
        estimated censoring distribution, as ``crr`` computes it. ``attrs``: ``method``,
        ``cause``, ``n``, ``n_events``, ``loglik``, ``converged``, ``vcov``, ``excluded``.

    Raises
    ------
    ValidationError
        Bad event codes or times, or no events of ``cause``.

    References
    ----------
    Fine JP, Gray RJ (1999). A proportional hazards model for the subdistribution of a
    competing risk. JASA 94:496–509.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import olinkpipe as op
    >>> rng = np.random.default_rng(0)
    >>> pts = pd.DataFrame({"months": rng.exponential(20, 80).round(1),
    ...                     "status": rng.choice([0, 1, 2], 80),
    ...                     "arm": np.repeat(["CAR-T", "control"], 40)})
    >>> fg = op.clinical.fine_gray(pts, time="months", event="status", covariates=["arm"])
    >>> fg["term"].tolist()
    ['arm[control]']
    """
    covariates = list(covariates)
    if not covariates:
        msg = "fine_gray needs at least one covariate."
        raise ValidationError(msg)
    z_crit = _z(alpha)
    d, _, attrs = _prepare(
        df,
        time=time,
        event=event,
        group=None,
        kind="competing",
        step="fine_gray",
        extra=covariates,
    )
    d = d.sort_values(time, kind="mergesort")
    ev = d[event].to_numpy()
    status = np.where(ev == 0, 0, np.where(ev == cause, 1, 2))
    if not (status == 1).any():
        msg = format_message(
            f"no events of cause {cause} to model",
            column=event,
            hint="Check the event coding (0 censored, 1 event of interest, 2+ competing).",
        )
        raise ValidationError(msg)
    z, names = _design(d, covariates)
    constant = [n for n, col in zip(names, z.T, strict=True) if np.ptp(col) == 0]
    if constant:
        msg = format_message(
            f"covariate term(s) {constant!r} do not vary among the patients analysed",
            hint="Drop them from covariates.",
        )
        raise DesignError(msg)
    data = _competing.fg_data(d[time].to_numpy(dtype=float), status, z)
    beta, converged = _competing.fg_fit(data)
    if not converged:
        warn("fine_gray: Newton-Raphson did not converge; check for separation.", stacklevel=3)
    vcov = _competing.fg_sandwich(data, beta)
    se = np.sqrt(np.diag(vcov))
    zstat = beta / se
    out = pd.DataFrame(
        {
            "term": names,
            "coef": beta,
            "se": se,
            "hr": np.exp(beta),
            "ci_low": np.exp(beta - z_crit * se),
            "ci_high": np.exp(beta + z_crit * se),
            "statistic": zstat,
            "p_value": 2 * stats.norm.sf(np.abs(zstat)),
        }
    )
    out.attrs = {
        "method": "Fine-Gray subdistribution hazards (cmprsk::crr algorithm)",
        "cause": int(cause),
        "alpha": alpha,
        "n_events": int((status == 1).sum()),
        "loglik": _competing.fg_loglik(data, beta)[0],
        "converged": converged,
        "vcov": vcov.tolist(),
        **{k: v for k, v in attrs.items() if k not in ("group", "groups")},
        "n": int(len(d)),
    }
    return out
