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


def kinetics(
    measurements: pd.DataFrame,
    *,
    analyte: str,
    window: tuple[float, float] = (0, 28),
    baseline_day: float = 0,
    below_detection: str = "zero",
    auc: str = "linear",
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
        Days ``(first, last)``, inclusive, over which Cmax, Tmax, AUC, the last detectable
        day and ``n_samples`` are computed.
    baseline_day
        The baseline is the sample on this day or, if there is none, the last sample before
        it (pre-infusion samples have negative days).
    below_detection
        How values flagged ``below_detection`` enter the calculation: ``"zero"`` (0),
        ``"lod_half"`` (half the detection limit: the ``lod`` column, else ``value``, which
        then holds the limit) or ``"missing"`` (left out, as if not sampled).
    auc
        ``"linear"`` trapezoid (``numpy.trapezoid`` over the samples in the window), or
        ``"linear-up/log-down"``: the log trapezoid ``(c0 - c1) dt / ln(c0 / c1)`` on
        intervals where the value falls and both ends are > 0, linear otherwise (PKNCA,
        Phoenix WinNonlin "linear up log down").
    min_points
        Patients with fewer samples in the window get NaN Cmax/Tmax/AUC/fold change/last
        detectable day, with the reason.

    Returns
    -------
    pandas.DataFrame
        One row per patient in ``measurements`` (also patients without this analyte):
        ``patient, analyte, baseline, cmax, tmax, auc, fold_change, last_detectable_day,
        n_samples, reason``. ``tmax`` is the first day the peak is reached; ``auc`` spans
        the first to the last sample in the window (no extrapolation to the window's
        ends); ``fold_change`` is ``cmax / baseline`` (NaN when the baseline is missing or
        0); ``last_detectable_day`` is the last day in the window with a value > 0 not
        flagged below detection (NaN if never detectable: persistence). ``reason`` says
        why values are NaN (empty otherwise). ``attrs`` record the options, the unit and
        the patients with too few samples.

    Notes
    -----
    Samples are not interpolated to the window's edges; a patient whose last sample is on
    day 21 has the AUC over days 0–21. Compare AUCs only between patients with the same
    schedule, or report ``n_samples`` with them.

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

    # baseline: sample on baseline_day or the last one before it
    pre = sub.loc[(sub["day"] <= baseline_day) & sub["conc"].notna()]
    baseline = pre.groupby("patient", sort=False)["conc"].last()

    win = sub.loc[sub["day"].between(lo, hi) & sub["conc"].notna()].sort_values(
        ["patient", "day"], kind="mergesort"
    )
    g = win.groupby("patient", sort=False)
    n = g.size()
    peak_idx = g["conc"].idxmax()  # first occurrence of the maximum = earliest day
    cmax = win.loc[peak_idx.to_numpy(), "conc"].set_axis(peak_idx.index)
    tmax = win.loc[peak_idx.to_numpy(), "day"].set_axis(peak_idx.index)
    last_det = win.loc[win["detectable"]].groupby("patient", sort=False)["day"].max()

    # AUC: all consecutive intervals at once, masked where the patient changes
    pid = win["patient"].to_numpy()
    t = win["day"].to_numpy()
    c = win["conc"].to_numpy()
    same = pid[1:] == pid[:-1]
    area = _interval_auc(t[:-1], t[1:], c[:-1], c[1:], auc)
    auc_by = pd.Series(area[same], index=pid[1:][same]).groupby(level=0).sum()

    out = pd.DataFrame(index=patients)
    out["analyte"] = analyte
    out["baseline"] = baseline.reindex(patients)
    out["cmax"] = cmax.reindex(patients)
    out["tmax"] = tmax.reindex(patients)
    out["auc"] = auc_by.reindex(patients).fillna(0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["fold_change"] = out["cmax"] / out["baseline"].where(out["baseline"] > 0)
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
    out.loc[few, ["cmax", "tmax", "auc", "fold_change", "last_detectable_day"]] = np.nan
    no_base = ~few & out["baseline"].isna()
    reasons[no_base] = f"no baseline sample on or before day {baseline_day:g}"
    zero_base = ~few & (out["baseline"] == 0)
    reasons[zero_base] = "baseline is 0: fold change undefined"
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
        "min_points": int(min_points),
        "too_few_samples": [str(p) for p in patients[few.to_numpy()]],
        "excluded": m.attrs.get("excluded", []),
    }
    return out
