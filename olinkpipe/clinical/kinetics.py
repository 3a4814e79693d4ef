"""Per-patient kinetics of one analyte: baseline, peak, time to peak, AUC, persistence,
and (opt-in) terminal half-life and AUC to infinity as PKNCA computes them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .._validate import check_literal
from .._warnings import warn
from ..errors import ValidationError, format_message, preview
from .validate import read_measurements

__all__ = ["kinetics"]

KINETICS_COLUMNS = [
    "patient",
    "analyte",
    "baseline",
    "cmax",
    "tmax",
    "auc",
    "fold_change",
    "last_detectable_day",
    "n_samples",
    "reason",
]
#: columns added by ``kinetics(..., terminal=True)``
TERMINAL_COLUMNS = [
    "lambda_z",
    "half_life",
    "r_squared",
    "adj_r_squared",
    "lambda_z_n_points",
    "lambda_z_first_day",
    "tlast",
    "clast",
    "auc_last",
    "auc_inf",
]
#: PKNCA's ``adj.r.squared.factor``: fits within this of the best adjusted R² are ties
ADJ_R2_FACTOR = 1e-4


def _interval_auc(
    t0: np.ndarray, t1: np.ndarray, c0: np.ndarray, c1: np.ndarray, method: str
) -> np.ndarray:
    """AUC of each interval: linear trapezoid, or log trapezoid where the value falls."""
    dt = t1 - t0
    area = 0.5 * (c0 + c1) * dt
    if method == "linear-up/log-down":
        down = (c1 < c0) & (c1 > 0) & (c0 > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            log_area = (c0 - c1) * dt / np.log(c0 / c1)
        area = np.where(down, log_area, area)
    return area


def _edge_point(observed: pd.DataFrame, edge: float, auc: str) -> pd.DataFrame:
    """Value at ``edge`` for patients with samples on both sides of it but none on it."""
    before = observed.loc[observed["day"] < edge].groupby("patient", sort=False).tail(1)
    after = observed.loc[observed["day"] > edge].groupby("patient", sort=False).head(1)
    on = set(observed.loc[observed["day"] == edge, "patient"])
    b = before.set_index("patient")[["day", "conc"]]
    a = after.set_index("patient")[["day", "conc"]]
    both = [p for p in b.index if p in a.index and p not in on]
    t0, c0 = b.loc[both, "day"].to_numpy(float), b.loc[both, "conc"].to_numpy(float)
    t1, c1 = a.loc[both, "day"].to_numpy(float), a.loc[both, "conc"].to_numpy(float)
    frac = (edge - t0) / (t1 - t0)
    value = c0 + frac * (c1 - c0)
    if auc == "linear-up/log-down":
        down = (c1 < c0) & (c1 > 0) & (c0 > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            logv = np.exp(np.log(c0) + frac * (np.log(c1) - np.log(c0)))
        value = np.where(down, logv, value)
    return pd.DataFrame({"patient": both, "day": float(edge), "conc": value})


def _lambda_z(t: np.ndarray, c: np.ndarray, tmax: float, min_points: int) -> dict:
    """PKNCA's ``pk.calc.half.life`` point selection (defaults of PKNCA 0.12).

    Candidates: the samples after ``tmax`` (Tmax itself excluded) with a value > 0. The last
    ``i`` of them, for every ``i >= min_points``, are fitted by least squares of
    ``log(value)`` on day; among fits with ``λz > 0`` whose adjusted R² is within
    :data:`ADJ_R2_FACTOR` of the best adjusted R² of all fits, the one with the most points
    wins.
    """
    nan = {"lambda_z": np.nan, "r_squared": np.nan, "adj_r_squared": np.nan}
    nan.update(lambda_z_n_points=0, lambda_z_first_day=np.nan)
    keep = (t > tmax) & (c > 0)
    tt, lc = t[keep], np.log(c[keep])
    n = tt.size
    if n < min_points:
        return {
            **nan,
            "reason": f"{n} sample(s) with a value > 0 after tmax, fewer than "
            f"{min_points}: no terminal half-life",
        }
    fits = []
    for i in range(min_points, n + 1):
        x, y = tt[n - i :], lc[n - i :]
        xc, yc = x - x.mean(), y - y.mean()
        sxx = float(xc @ xc)
        slope = float(xc @ yc) / sxx if sxx > 0 else np.nan
        resid = yc - slope * xc
        with np.errstate(divide="ignore", invalid="ignore"):
            r2 = 1.0 - float(resid @ resid) / float(yc @ yc)
        adj = 1.0 - (1.0 - r2) * (i - 1) / (i - 2) if i > 2 else np.nan
        fits.append((-slope, r2, adj, i, float(x[0])))
    lam = np.array([f[0] for f in fits])
    adj = np.array([f[2] for f in fits])
    if min_points == 2 and n == 2:
        best = lam > 0  # PKNCA: two points, no adjusted R² to compare
    else:
        top = np.nanmax(adj) if np.isfinite(adj).any() else np.nan
        with np.errstate(invalid="ignore"):
            best = (lam > 0) & (adj > top - ADJ_R2_FACTOR)
    if not best.any():
        return {**nan, "reason": "no terminal fit with λz > 0"}
    f = fits[int(np.flatnonzero(best)[-1])]  # the most points among the best
    return {
        "lambda_z": f[0],
        "r_squared": f[1],
        "adj_r_squared": f[2],
        "lambda_z_n_points": f[3],
        "lambda_z_first_day": f[4],
        "reason": "",
    }


def _terminal(win: pd.DataFrame, pts: pd.DataFrame, tmax: pd.Series, patients, method, k):
    """λz, half-life, AUC to the last value > 0 and to infinity per patient (PKNCA)."""
    rows = {}
    for pid, g in win.groupby("patient", sort=False):
        g = g.sort_values("day", kind="mergesort")
        t, c = g["day"].to_numpy(float), g["conc"].to_numpy(float)
        pos = c > 0
        res = _lambda_z(t, c, float(tmax.get(pid, np.nan)), k)
        tlast = float(t[pos][-1]) if pos.any() else np.nan
        clast = float(c[pos][-1]) if pos.any() else np.nan
        p = pts.loc[(pts["patient"] == pid) & (pts["day"] <= tlast)]
        tp, cp = p["day"].to_numpy(float), p["conc"].to_numpy(float)
        auc_last = float(_interval_auc(tp[:-1], tp[1:], cp[:-1], cp[1:], method).sum())
        if tp.size < 2:
            auc_last = np.nan
        res.update(
            half_life=np.log(2.0) / res["lambda_z"],
            tlast=tlast,
            clast=clast,
            auc_last=auc_last,
            auc_inf=auc_last + clast / res["lambda_z"],
        )
        rows[pid] = res
    out = pd.DataFrame.from_dict(rows, orient="index").reindex(patients)
    out["lambda_z_n_points"] = out["lambda_z_n_points"].fillna(0).astype(int)
    return out


def _check_options(
    window: tuple[float, float],
    below_detection: str,
    auc: str,
    edges: str,
    min_points: int,
    lambda_z_min_points: int,
) -> tuple[float, float]:
    """Validate the options of :func:`kinetics`; the window as ``(first, last)`` floats."""
    check_literal("below_detection", below_detection, ["zero", "lod_half", "missing"])
    check_literal("auc", auc, ["linear", "linear-up/log-down"])
    check_literal("edges", edges, ["interpolate", "observed"])
    lo, hi = float(window[0]), float(window[1])
    if not lo < hi:
        msg = f"window={window!r} must be (first_day, last_day) with first_day < last_day."
        raise ValidationError(msg)
    if lambda_z_min_points < 2:
        msg = f"lambda_z_min_points={lambda_z_min_points!r} must be at least 2."
        raise ValidationError(msg)
    if min_points < 1:
        msg = f"min_points={min_points!r} must be at least 1."
        raise ValidationError(msg)
    return lo, hi


def _analyte_rows(m: pd.DataFrame, analyte: str) -> pd.DataFrame:
    """A copy of the rows of ``analyte``; an error listing the analytes there are if none."""
    sub = m.loc[m["analyte"] == analyte].copy()
    if sub.empty:
        msg = format_message(
            f"no measurements of analyte {analyte!r}",
            column="analyte",
            hint=f"Choose one of {preview(sorted(m['analyte'].unique()))}.",
        )
        raise ValidationError(msg)
    return sub


def _concentrations(sub: pd.DataFrame, below_detection: str) -> None:
    """Add ``conc`` (flagged values as 0, LOD/2 or NaN) and ``detectable`` to ``sub``."""
    flagged = sub["below_detection"].to_numpy()
    value = sub["value"].to_numpy(dtype=float).copy()
    if below_detection == "zero":
        value[flagged] = 0.0
    elif below_detection == "missing":
        value[flagged] = np.nan
    else:
        lod = sub["lod"].to_numpy(dtype=float) if "lod" in sub.columns else value.copy()
        lod = np.where(np.isnan(lod), value, lod)
        if np.isnan(lod[flagged]).any():
            rows = sub.index[flagged & np.isnan(lod)]
            msg = format_message(
                "below_detection='lod_half' needs the detection limit of flagged rows",
                column="lod",
                rows=rows,
                hint="Give the limit in 'lod' (or in 'value'), or use below_detection='zero'.",
            )
            raise ValidationError(msg)
        value[flagged] = lod[flagged] / 2.0
    sub["conc"] = value
    sub["detectable"] = ~flagged & (sub["value"].to_numpy() > 0)


def _auc_points(
    win: pd.DataFrame, observed: pd.DataFrame, lo: float, hi: float, edges: str, auc: str
) -> tuple[pd.DataFrame, pd.Series]:
    """The AUC's points (the window's samples plus interpolated edges) and AUC per patient."""
    pts = win[["patient", "day", "conc"]]
    if edges == "interpolate":
        extra = [_edge_point(observed, e, auc) for e in (lo, hi)]
        pts = pd.concat([pts, *extra], ignore_index=True)
    pts = pts.sort_values(["patient", "day"], kind="mergesort")
    pid = pts["patient"].to_numpy()
    t = pts["day"].to_numpy(dtype=float)
    c = pts["conc"].to_numpy(dtype=float)
    same = pid[1:] == pid[:-1]  # all intervals at once, none across patients
    area = _interval_auc(t[:-1], t[1:], c[:-1], c[1:], auc)
    return pts, pd.Series(area[same], index=pid[1:][same]).groupby(level=0).sum()


def _per_patient(
    sub: pd.DataFrame,
    win: pd.DataFrame,
    last_pre: pd.DataFrame,
    auc_by: pd.Series,
    patients: pd.Index,
    *,
    analyte: str,
    lo: float,
    below_detection: str,
) -> tuple[pd.DataFrame, pd.Series]:
    """Baseline, Cmax, Tmax, AUC, fold change, persistence and sample count per patient.

    Also returns whether each patient's baseline sample is flagged below detection.
    """
    g = win.groupby("patient", sort=False)
    peak_idx = g["conc"].idxmax()  # first occurrence of the maximum = earliest day
    # persistence: from the window's start on, not capped at its end
    last_det = (
        sub.loc[sub["detectable"] & (sub["day"] >= lo)].groupby("patient", sort=False)["day"].max()
    )
    out = pd.DataFrame(index=patients)
    out["analyte"] = analyte
    out["baseline"] = last_pre["conc"].reindex(patients)
    out["cmax"] = win.loc[peak_idx.to_numpy(), "conc"].set_axis(peak_idx.index).reindex(patients)
    out["tmax"] = win.loc[peak_idx.to_numpy(), "day"].set_axis(peak_idx.index).reindex(patients)
    out["auc"] = auc_by.reindex(patients)  # NaN with fewer than two points
    blq = last_pre["below_detection"].astype(bool).reindex(patients, fill_value=False)
    blq = blq.astype(bool)
    usable = (out["baseline"] > 0) & ~(blq & (below_detection == "zero"))
    with np.errstate(divide="ignore", invalid="ignore"):
        out["fold_change"] = out["cmax"] / out["baseline"].where(usable)
    out["last_detectable_day"] = last_det.reindex(patients)
    out["n_samples"] = g.size().reindex(patients).fillna(0).astype(int)
    return out, blq


def _reasons(
    out: pd.DataFrame,
    sub: pd.DataFrame,
    has_pre: pd.Series,
    blq: pd.Series,
    few: pd.Series,
    *,
    analyte: str,
    lo: float,
    hi: float,
    min_points: int,
    baseline_day: float,
    below_detection: str,
) -> pd.Series:
    """Why each patient's values are NaN: too few samples, no analyte, no usable baseline."""
    patients = out.index
    reasons = pd.Series("", index=patients, dtype=object)
    has_any = sub.groupby("patient").size().reindex(patients).fillna(0) > 0
    reasons[few] = [
        f"only {k} sample(s) in days {lo:g}-{hi:g} (min_points={min_points})"
        for k in out.loc[few, "n_samples"]
    ]
    reasons[~has_any] = f"no {analyte} measurements"
    reasons[~few & ~has_pre] = f"no baseline sample on or before day {baseline_day:g}"
    zero_base = ~few & has_pre & (out["baseline"] == 0) & ~blq
    reasons[zero_base] = "baseline is 0: fold change undefined"
    if below_detection != "lod_half":  # with LOD/2 the fold change is cmax / (LOD/2)
        blq_base = ~few & has_pre & blq
        reasons[blq_base] = (
            f"baseline below detection (below_detection={below_detection!r}): fold change "
            "undefined; below_detection='lod_half' uses LOD/2"
        )
    return reasons


def _add_terminal(
    out: pd.DataFrame,
    reasons: pd.Series,
    win: pd.DataFrame,
    pts: pd.DataFrame,
    few: pd.Series,
    auc: str,
    lambda_z_min_points: int,
) -> pd.Series:
    """Add the terminal-phase columns to ``out``; the reasons with the terminal fit's appended."""
    patients = out.index
    term = _terminal(win, pts, out["tmax"], patients, auc, lambda_z_min_points)
    term.loc[few.to_numpy()] = np.nan
    term["lambda_z_n_points"] = term["lambda_z_n_points"].fillna(0).astype(int)
    why = term["reason"].fillna("").astype(str)
    why[few.to_numpy()] = ""
    for col in TERMINAL_COLUMNS:
        out[col] = term[col]
    return pd.Series(
        [r + ("; " if r and w else "") + w for r, w in zip(reasons, why, strict=True)],
        index=patients,
        dtype=object,
    )


def _no_peak(out: pd.DataFrame, reasons: pd.Series, few: pd.Series) -> None:
    """Blank ``tmax`` where nothing in the window is above 0, and say so in ``reasons``."""
    flat = ~few & (out["cmax"] <= 0)
    out.loc[flat, "tmax"] = np.nan
    reasons[flat] = [
        (r + "; " if r else "") + "no value above 0 in the window: tmax undefined"
        for r in reasons[flat]
    ]


def kinetics(
    measurements: pd.DataFrame,
    *,
    analyte: str,
    window: tuple[float, float] = (0, 28),
    baseline_day: float = 0,
    below_detection: str = "zero",
    auc: str = "linear",
    edges: str = "interpolate",
    min_points: int = 3,
    terminal: bool = False,
    lambda_z_min_points: int = 3,
) -> pd.DataFrame:
    """Peak (Cmax), time to peak (Tmax), AUC, fold change and persistence per patient.

    Parameters
    ----------
    measurements
        Long table as returned by :func:`read_measurements` (it is validated again here,
        which is cheap): ``patient, day, analyte, value``, optional ``below_detection``
        and ``lod``.
    analyte
        The analyte to summarise, e.g. ``"CAR-T copies/ug DNA"``, ``"IL-6"``, ``"CRP"``.
    window
        Days ``(first, last)``, inclusive, over which Cmax, Tmax, AUC and ``n_samples`` are
        computed (the last detectable day looks beyond it, see Returns).
    baseline_day
        The baseline is the last sample on or before this day (pre-infusion samples have
        negative days). If that sample is below detection, the baseline follows
        ``below_detection`` (0, LOD/2, or missing); an earlier sample is never used instead.
    below_detection
        How values flagged ``below_detection`` enter the calculation: ``"zero"`` (0),
        ``"lod_half"`` (half the detection limit: the ``lod`` column, else ``value``, which
        then holds the limit) or ``"missing"`` (left out, as if not sampled).
    auc
        ``"linear"`` trapezoid (``numpy.trapezoid`` over the samples in the window), or
        ``"linear-up/log-down"``: the log trapezoid ``(c0 - c1) dt / ln(c0 / c1)`` on
        intervals where the value falls and both ends are > 0, linear otherwise (PKNCA,
        Phoenix WinNonlin "linear up log down").
    edges
        ``"interpolate"`` (default): when a patient has no sample on a window edge but
        samples on both sides of it, the value at the edge is interpolated (linearly, or
        log-linearly on a falling interval with ``auc="linear-up/log-down"``) and the AUC
        starts or ends there, as a partial AUC in PKNCA / Phoenix; never extrapolated.
        ``"observed"``: the AUC spans only the first to the last sample in the window.
    min_points
        Patients with fewer samples in the window get NaN Cmax/Tmax/AUC/fold change, with
        the reason; their baseline and last detectable day are still reported (the
        latter looks at every sample from the window's start on, see Returns).
    terminal
        Also report the terminal elimination rate and AUC to infinity (PKNCA's
        ``half.life`` and ``aucinf.obs``), see Notes: columns ``lambda_z``, ``half_life``,
        ``r_squared``, ``adj_r_squared``, ``lambda_z_n_points``, ``lambda_z_first_day``,
        ``tlast``, ``clast`` (last day / value > 0 in the window), ``auc_last`` (AUC from
        the window's start to ``tlast``, by ``auc``) and ``auc_inf``
        (``auc_last + clast / lambda_z``).
    lambda_z_min_points
        Fewest samples in the terminal fit (PKNCA's ``min.hl.points``, default 3).

    Returns
    -------
    pandas.DataFrame
        One row per patient in ``measurements`` (also patients without this analyte):
        ``patient, analyte, baseline, cmax, tmax, auc, fold_change, last_detectable_day,
        n_samples, reason``. ``cmax``/``tmax`` come from the samples in the window
        (``tmax`` the first day the peak is reached, NaN when no value in the window is above
        0); ``auc`` is the area over the window
        (see ``edges``; NaN with fewer than two points); ``fold_change`` is
        ``cmax / baseline``: NaN when there is no baseline sample or the baseline is 0;
        a baseline below detection gives NaN with ``below_detection="zero"`` or
        ``"missing"``, and with ``"lod_half"`` it is LOD/2, so the fold change is
        ``cmax / (LOD/2)``;
        ``last_detectable_day`` (persistence) is the last day on or after the window's
        start, *not* capped at its end, with a value > 0 not flagged below detection (NaN
        if never detectable). ``n_samples`` counts observed samples in the window.
        ``reason`` says why values are NaN (empty otherwise). ``attrs`` record the
        options, the unit and the patients with too few samples.

    Notes
    -----
    The terminal phase (``terminal=True``) is chosen as PKNCA 0.12 does by default: the
    candidates are the samples in the window after Tmax (Tmax itself excluded,
    ``allow.tmax.in.half.life = FALSE``) with a value > 0; the last 3, 4, … of them are
    each fitted by least squares of ``log(value)`` on day, ``λz = −slope``; of the fits
    with ``λz > 0`` and an adjusted R² ``1 − (1 − R²)(n − 1)/(n − 2)`` within 1e-4 of the
    best adjusted R² (``adj.r.squared.factor``), the one with the most points is kept.
    ``half_life = ln 2 / λz``. With fewer candidates than ``lambda_z_min_points``, or no
    fit with ``λz > 0``, the terminal columns are NaN and ``reason`` says why. Unlike
    PKNCA, whose default ``auc.method`` is ``"lin up/log down"``, ``auc_last`` follows
    ``auc`` (linear by default); pass ``auc="linear-up/log-down"`` for PKNCA's default.

    Values are never extrapolated (apart from ``auc_inf``): a patient whose last sample is on day 21 has the AUC
    over days 0–21 even with ``window=(0, 28)``. Compare AUCs between patients with the
    same schedule, or report ``n_samples`` with them.

    Examples
    --------
    >>> import pandas as pd
    >>> from olinkpipe.clinical import kinetics
    >>> m = pd.DataFrame({"patient": "P1", "day": [0, 7, 14, 28], "analyte": "IL-6",
    ...                   "value": [2.0, 40.0, 10.0, 4.0]})
    >>> kinetics(m, analyte="IL-6")[["cmax", "tmax", "auc"]].to_numpy().tolist()
    [[40.0, 7.0, 420.0]]
    """
    lo, hi = _check_options(window, below_detection, auc, edges, min_points, lambda_z_min_points)
    m = read_measurements(measurements)
    patients = pd.Index(m["patient"].unique(), name="patient")
    sub = _analyte_rows(m, analyte)
    _concentrations(sub, below_detection)
    # baseline: the last sample on or before baseline_day, whatever its value
    last_pre = (
        sub.loc[sub["day"] <= baseline_day].groupby("patient", sort=False).tail(1)
    ).set_index("patient")
    observed = sub.loc[sub["conc"].notna()]
    win = observed.loc[observed["day"].between(lo, hi)]
    pts, auc_by = _auc_points(win, observed, lo, hi, edges, auc)
    out, blq = _per_patient(
        sub,
        win,
        last_pre,
        auc_by,
        patients,
        analyte=analyte,
        lo=lo,
        below_detection=below_detection,
    )

    few = out["n_samples"] < min_points
    has_pre = pd.Series(patients.isin(last_pre.index), index=patients)
    reasons = _reasons(
        out,
        sub,
        has_pre,
        blq,
        few,
        analyte=analyte,
        lo=lo,
        hi=hi,
        min_points=min_points,
        baseline_day=baseline_day,
        below_detection=below_detection,
    )
    out.loc[few, ["cmax", "tmax", "auc", "fold_change"]] = np.nan
    if terminal:
        reasons = _add_terminal(out, reasons, win, pts, few, auc, lambda_z_min_points)
    _no_peak(out, reasons, few)
    out["reason"] = reasons
    out = out.reset_index()[KINETICS_COLUMNS + (TERMINAL_COLUMNS if terminal else [])]
    if few.any():
        warn(
            f"kinetics: {int(few.sum())} patient(s) have fewer than {min_points} {analyte} "
            f"samples in days {lo:g}-{hi:g}; their kinetics are NaN (see 'reason'): "
            f"{preview(patients[few.to_numpy()])}",
            stacklevel=2,
        )
    out.attrs = {
        "analyte": analyte,
        "unit": m.attrs.get("units", {}).get(analyte),
        "window": [lo, hi],
        "baseline_day": float(baseline_day),
        "below_detection": below_detection,
        "auc": auc,
        "edges": edges,
        "min_points": int(min_points),
        "terminal": bool(terminal),
        "lambda_z_min_points": int(lambda_z_min_points),
        "too_few_samples": [str(p) for p in patients[few.to_numpy()]],
        "excluded": m.attrs.get("excluded", []),
    }
    return out
