"""Per-patient kinetics of one analyte: baseline, peak, time to peak, AUC, persistence."""

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
    Values are never extrapolated: a patient whose last sample is on day 21 has the AUC
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
    check_literal("below_detection", below_detection, ["zero", "lod_half", "missing"])
    check_literal("auc", auc, ["linear", "linear-up/log-down"])
    check_literal("edges", edges, ["interpolate", "observed"])
    lo, hi = float(window[0]), float(window[1])
    if not lo < hi:
        msg = f"window={window!r} must be (first_day, last_day) with first_day < last_day."
        raise ValidationError(msg)
    if min_points < 1:
        msg = f"min_points={min_points!r} must be at least 1."
        raise ValidationError(msg)
    m = read_measurements(measurements)
    patients = pd.Index(m["patient"].unique(), name="patient")
    sub = m.loc[m["analyte"] == analyte].copy()
    if sub.empty:
        msg = format_message(
            f"no measurements of analyte {analyte!r}",
            column="analyte",
            hint=f"Choose one of {preview(sorted(m['analyte'].unique()))}.",
        )
        raise ValidationError(msg)

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

    # baseline: the last sample on or before baseline_day, whatever its value
    last_pre = (
        sub.loc[sub["day"] <= baseline_day].groupby("patient", sort=False).tail(1)
    ).set_index("patient")
    baseline = last_pre["conc"]
    baseline_blq = last_pre["below_detection"].astype(bool)

    observed = sub.loc[sub["conc"].notna()]
    win = observed.loc[observed["day"].between(lo, hi)]
    g = win.groupby("patient", sort=False)
    n = g.size()
    peak_idx = g["conc"].idxmax()  # first occurrence of the maximum = earliest day
    cmax = win.loc[peak_idx.to_numpy(), "conc"].set_axis(peak_idx.index)
    tmax = win.loc[peak_idx.to_numpy(), "day"].set_axis(peak_idx.index)
    # persistence: from the window's start on, not capped at its end
    last_det = (
        sub.loc[sub["detectable"] & (sub["day"] >= lo)].groupby("patient", sort=False)["day"].max()
    )

    # AUC: observed points in the window plus interpolated edge points, all intervals at once
    pts = win[["patient", "day", "conc"]]
    if edges == "interpolate":
        extra = [_edge_point(observed, e, auc) for e in (lo, hi)]
        pts = pd.concat([pts, *extra], ignore_index=True)
    pts = pts.sort_values(["patient", "day"], kind="mergesort")
    pid = pts["patient"].to_numpy()
    t = pts["day"].to_numpy(dtype=float)
    c = pts["conc"].to_numpy(dtype=float)
    same = pid[1:] == pid[:-1]
    area = _interval_auc(t[:-1], t[1:], c[:-1], c[1:], auc)
    auc_by = pd.Series(area[same], index=pid[1:][same]).groupby(level=0).sum()

    out = pd.DataFrame(index=patients)
    out["analyte"] = analyte
    out["baseline"] = baseline.reindex(patients)
    out["cmax"] = cmax.reindex(patients)
    out["tmax"] = tmax.reindex(patients)
    out["auc"] = auc_by.reindex(patients)  # NaN with fewer than two points
    blq = baseline_blq.reindex(patients, fill_value=False).astype(bool)
    usable = (out["baseline"] > 0) & ~(blq & (below_detection == "zero"))
    with np.errstate(divide="ignore", invalid="ignore"):
        out["fold_change"] = out["cmax"] / out["baseline"].where(usable)
    out["last_detectable_day"] = last_det.reindex(patients)
    out["n_samples"] = n.reindex(patients).fillna(0).astype(int)

    reasons = pd.Series("", index=patients, dtype=object)
    has_any = sub.groupby("patient").size().reindex(patients).fillna(0) > 0
    few = out["n_samples"] < min_points
    reasons[few] = [
        f"only {k} sample(s) in days {lo:g}-{hi:g} (min_points={min_points})"
        for k in out.loc[few, "n_samples"]
    ]
    reasons[~has_any] = f"no {analyte} measurements"
    out.loc[few, ["cmax", "tmax", "auc", "fold_change"]] = np.nan
    has_pre = pd.Series(patients.isin(last_pre.index), index=patients)
    reasons[~few & ~has_pre] = f"no baseline sample on or before day {baseline_day:g}"
    zero_base = ~few & has_pre & (out["baseline"] == 0) & ~blq
    reasons[zero_base] = "baseline is 0: fold change undefined"
    if below_detection != "lod_half":  # with LOD/2 the fold change is cmax / (LOD/2)
        blq_base = ~few & has_pre & blq
        reasons[blq_base] = (
            f"baseline below detection (below_detection={below_detection!r}): fold change "
            "undefined; below_detection='lod_half' uses LOD/2"
        )
    flat = ~few & (out["cmax"] <= 0)  # nothing above 0 in the window: no peak day
    out.loc[flat, "tmax"] = np.nan
    reasons[flat] = [
        (r + "; " if r else "") + "no value above 0 in the window: tmax undefined"
        for r in reasons[flat]
    ]
    out["reason"] = reasons
    out = out.reset_index()[KINETICS_COLUMNS]
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
        "too_few_samples": [str(p) for p in patients[few.to_numpy()]],
        "excluded": m.attrs.get("excluded", []),
    }
    return out
