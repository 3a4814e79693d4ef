"""Competing-risks outcomes: cumulative incidence (Aalen–Johansen), Gray's test and the
Fine–Gray model, on a patient table (one row per patient); the numpy kernels are in
:mod:`olinkpipe.clinical._competing`, the input checks in
:mod:`olinkpipe.clinical._survival_input`. Importable from
:mod:`olinkpipe.clinical.survival` too."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .._validate import check_literal
from .._warnings import warn
from ..errors import DesignError, ValidationError, format_message
from . import _competing
from ._survival_input import check_at, need_groups, prepare, z_value

__all__ = ["cumulative_incidence", "gray_test", "fine_gray"]


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
    z = z_value(alpha)
    at_arr = check_at(at)
    d, levels, attrs = prepare(
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
    d, levels, attrs = prepare(
        df,
        time=time,
        event=event,
        group=group,
        kind="competing",
        step="gray_test",
        extra=extra,
    )
    need_groups(levels, group, "gray_test")
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
    z_crit = z_value(alpha)
    d, _, attrs = prepare(
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
