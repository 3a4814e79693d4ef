"""The clinical side of the simulated CAR-T study: baseline characteristics (close to the
published counts), doses, outcomes (relapse, non-relapse mortality, survival) and the
CAR-T expansion, IL-6 and CRP courses."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

__all__ = ["measurements", "outcomes", "patients"]

_EXPANSION = "CAR-T copies/ug DNA"
_EXPANSION_LOD = 10.0
_EXPANSION_DAYS = np.array([0, 1, 3, 5, 7, 10, 14, 21, 28, 60, 90])
_CYTOKINE_DAYS = np.array([0, 1, 2, 3, 5, 7, 10, 14, 21, 28])

# Published baseline counts (CAR-T, control) used as target proportions.
_CATEGORICAL = {
    "sex": (["M", "F"], [14, 9], [18, 26]),
    "ph_positive": (["yes", "no"], [7, 16], [15, 29]),
    "high_risk": (["yes", "no"], [16, 7], [24, 20]),
    "complex_karyotype": (["yes", "no"], [5, 18], [4, 40]),
    "mll_rearranged": (["yes", "no"], [1, 22], [2, 42]),
    "tp53": (["yes", "no"], [3, 20], [1, 43]),
    "ph_like": (["yes", "no"], [2, 21], [2, 42]),
    "ikzf1": (["yes", "no"], [1, 22], [4, 40]),
    "extramedullary_disease": (["yes", "no"], [12, 11], [15, 29]),
    "prior_cart": (["yes", "no"], [17, 6], [32, 12]),
    "disease_status": (["CR1", "CR2", "CR3", "relapse"], [12, 8, 2, 1], [23, 20, 1, 0]),
    "mrd_status": (
        ["FCM+", "FCM+ and PCR+", "PCR+", "negative"],
        [2, 4, 1, 16],
        [4, 6, 1, 33],
    ),
    "donor_type": (
        ["haploidentical", "matched related", "matched unrelated"],
        [17, 3, 3],
        [35, 6, 3],
    ),
    "karnofsky_lt80": (["yes", "no"], [3, 20], [6, 38]),
    "conditioning": (["Bu/Cy", "TBI/Cy", "other"], [7, 14, 2], [13, 27, 4]),
}

# Continuous baseline variables: (median, min, max) for CAR-T and control.
_CONTINUOUS = {
    "age": ((32, 9, 63), (36, 14, 56), 0),
    "cd34_e6_per_kg": ((4.6, 1.4, 8.5), (4.6, 2.3, 9.6), 1),
    "mnc_e8_per_kg": ((6.1, 3.2, 10.0), (5.8, 2.9, 11.3), 1),
    "neutrophil_engraftment_day": ((12, 10, 29), (12, 10, 30), 0),
    "platelet_engraftment_day": ((16, 10, 31), (15, 8, 62), 0),
}

# Two-year outcome fractions (CAR-T, control): relapse, non-relapse death, death after
# relapse (as a fraction of relapses).
_OUTCOMES = {"relapse": (0.056, 0.29), "nrm": (0.10, 0.14), "death_after_relapse": (0.4, 0.4)}


def _allocate(counts: list[int], n: int) -> np.ndarray:
    """Integer counts summing to ``n`` in the proportions of ``counts`` (largest remainder)."""
    c = np.asarray(counts, dtype=float)
    if n == int(c.sum()):
        return c.astype(int)
    raw = c / c.sum() * n
    out = np.floor(raw).astype(int)
    rest = n - out.sum()
    out[np.argsort(-(raw - out), kind="stable")[:rest]] += 1
    return out


def _categorical(levels: list[str], counts: list[int], n: int, rng) -> np.ndarray:
    values = np.repeat(np.array(levels, dtype=object), _allocate(counts, n))
    return rng.permutation(values)


def _skewed(median: float, lo: float, hi: float, n: int, rng, decimals: int) -> np.ndarray:
    """Values with the given median and range: min and max once, the rest log-normal."""
    if n == 0:
        return np.empty(0)
    spread = (math.log(hi) - math.log(lo)) / 5.0
    x = np.exp(rng.normal(math.log(median), spread, size=n))
    x = np.clip(x, lo, hi)
    if n >= 3:
        x[0], x[1] = lo, hi
        # re-centre the median without touching the extremes
        x[2:] = np.clip(x[2:] * median / np.median(x), lo, hi)
    return rng.permutation(np.round(x, decimals))


def _doses(n: int, rng) -> np.ndarray:
    """Doses in cells/kg: median 2.0e6, range 1.0–4.9e6, 10/23 above 2e6."""
    n_high = int(round(n * 10 / 23))
    n_low = n - n_high
    low = np.round(rng.uniform(1.0, 2.0, size=n_low), 1)
    if n_low >= 3:
        low[0] = 1.0
        low[1:3] = 2.0
    high = np.round(rng.uniform(2.1, 4.5, size=n_high), 1)
    if n_high >= 1:
        high[0] = 4.9
    return rng.permutation(np.concatenate([low, high])) * 1e6


def patients(n_treated: int, n_control: int, rng) -> pd.DataFrame:
    n = n_treated + n_control
    width = max(2, len(str(max(n_treated, n_control))))
    ids = [f"P{i + 1:0{width}d}" for i in range(n_treated)]
    ids += [f"C{i + 1:0{width}d}" for i in range(n_control)]
    df = pd.DataFrame({"patient": ids, "group": ["CAR-T"] * n_treated + ["Control"] * n_control})
    for name, (levels, treated, control) in _CATEGORICAL.items():
        df[name] = np.concatenate(
            [
                _categorical(levels, treated, n_treated, rng),
                _categorical(levels, control, n_control, rng),
            ]
        )
    for name, (treated, control, decimals) in _CONTINUOUS.items():
        vals = np.concatenate(
            [
                _skewed(*treated, n_treated, rng, decimals),
                _skewed(*control, n_control, rng, decimals),
            ]
        )
        df[name] = vals.astype(int) if decimals == 0 else vals
    df = df[
        [
            "patient",
            "group",
            "age",
            *[c for c in df.columns if c not in ("patient", "group", "age")],
        ]
    ]
    df = df.copy()
    treated = np.arange(n) < n_treated

    # CAR-T infusion: days after transplant, dose.
    infusion = np.full(n, np.nan)
    infusion[treated] = _skewed(122, 65, 315, n_treated, rng, 0)
    df["infusion_day"] = infusion
    dose = np.full(n, np.nan)
    dose[treated] = _doses(n_treated, rng)
    df["dose"] = dose

    # CRS: 11/23 grade 1-2 (7 grade 1, 4 grade 2), none 3-4; no ICANS.
    crs = np.full(n, np.nan)
    crs[treated] = _categorical(["0", "1", "2"], [12, 7, 4], n_treated, rng).astype(float)
    df["crs_grade"] = crs
    has_crs = crs > 0
    onset = np.full(n, np.nan)
    onset[has_crs] = np.clip(np.round(rng.gamma(1.5, 1.0, size=has_crs.sum())), 0, 6)
    duration = np.full(n, np.nan)
    duration[has_crs] = np.clip(np.round(rng.lognormal(math.log(2), 0.6, has_crs.sum())), 1, 10)
    df["crs_onset_day"] = onset
    df["crs_duration_days"] = duration
    df["icans_grade"] = np.where(treated, 0.0, np.nan)
    toci = np.zeros(n, dtype=bool)
    steroids = np.zeros(n, dtype=bool)
    crs_idx = np.flatnonzero(has_crs)
    if crs_idx.size:
        by_grade = crs_idx[np.argsort(-crs[crs_idx], kind="stable")]
        toci[by_grade[: max(0, int(round(crs_idx.size * 2 / 11)))]] = True
        steroids[by_grade[: max(0, int(round(crs_idx.size * 3 / 11)))]] = True
    df["tocilizumab"] = np.where(treated, np.where(toci, "yes", "no"), None)
    df["steroids"] = np.where(treated, np.where(steroids, "yes", "no"), None)

    # Acute GVHD after infusion: 3/23 (grades 2, 2, 3), onset day 20 (7-25).
    gvhd = np.full(n, np.nan)
    gvhd[treated] = 0
    n_gvhd = int(round(n_treated * 3 / 23))
    t_idx = np.flatnonzero(treated)
    g_idx = rng.choice(t_idx, size=n_gvhd, replace=False) if n_gvhd else np.empty(0, int)
    gvhd[g_idx] = np.resize([2, 2, 3], n_gvhd)
    gvhd_onset = np.full(n, np.nan)
    gvhd_onset[g_idx] = np.resize([20, 7, 25], n_gvhd)
    df["agvhd_grade"] = gvhd
    df["agvhd_onset_day"] = gvhd_onset
    aplasia = np.full(n, np.nan)
    aplasia[treated] = _skewed(233, 39, 995, n_treated, rng, 0)
    df["bcell_aplasia_days"] = aplasia
    return df


def outcomes(df: pd.DataFrame, rng) -> pd.DataFrame:
    """Relapse, non-relapse death and follow-up in months from transplant."""
    df = df.copy()
    n = len(df)
    treated = (df["group"] == "CAR-T").to_numpy()
    relapse = np.zeros(n, dtype=bool)
    nrm = np.zeros(n, dtype=bool)
    post_relapse_death = np.zeros(n, dtype=bool)
    for arm, mask in ((0, treated), (1, ~treated)):
        idx = rng.permutation(np.flatnonzero(mask))
        m = idx.size
        n_rel = int(round(m * _OUTCOMES["relapse"][arm]))
        if arm == 0 and m >= 10:
            n_rel = max(n_rel, 1)
        n_nrm = int(round(m * _OUTCOMES["nrm"][arm]))
        relapse[idx[:n_rel]] = True
        nrm[idx[n_rel : n_rel + n_nrm]] = True
        n_dead = int(round(n_rel * _OUTCOMES["death_after_relapse"][arm]))
        post_relapse_death[idx[:n_dead]] = True
    # follow-up of survivors: median ~24 months, range ~5-68 months
    # follow-up of event-free patients: most beyond 2 years (median ~25, range ~5-68 months)
    lo = np.where(treated, 6.7, 4.4)
    hi = np.where(treated, 67.7, 61.8)
    followup = np.where(
        rng.uniform(size=n) < 0.8,
        24.1 + rng.exponential(3.0, n),
        rng.uniform(lo, 24.0),
    )
    followup = np.clip(followup, lo, hi)
    infusion_months = df["infusion_day"].to_numpy() / 30.44
    earliest = np.where(treated, np.nan_to_num(infusion_months, nan=4.0) + 0.5, 2.0)
    rel_time = np.maximum(earliest, rng.uniform(3.0, 20.0, size=n))
    nrm_time = np.maximum(earliest, rng.uniform(2.0, 20.0, size=n))
    death_after = rel_time + rng.uniform(2.0, 10.0, size=n)

    df["relapse"] = relapse.astype(int)
    df["relapse_months"] = np.where(relapse, np.round(rel_time, 1), np.nan)
    site = np.where(
        treated, "extramedullary", np.where(rng.uniform(size=n) < 0.8, "marrow", "extramedullary")
    )
    df["relapse_site"] = np.where(relapse, site, None)
    death = nrm | post_relapse_death
    death_time = np.where(nrm, nrm_time, np.where(post_relapse_death, death_after, np.nan))
    df["death"] = death.astype(int)
    df["death_months"] = np.round(death_time, 1)
    causes = np.array(["infection (fungal)", "sepsis", "COVID-19"])
    cause = np.where(nrm, causes[np.arange(n) % causes.size], None)
    cause = np.where(post_relapse_death, "relapse", cause)
    df["death_cause"] = cause
    last = np.where(death, death_time, np.maximum(followup, np.nan_to_num(rel_time * relapse)))
    df["followup_months"] = np.round(np.maximum(last, np.where(relapse, rel_time, 0)), 1)
    df["cir_status"] = np.where(relapse, 1, np.where(nrm, 2, 0))
    df["cir_months"] = np.round(np.where(relapse, rel_time, np.where(nrm, nrm_time, last)), 1)
    df["pfs_event"] = (relapse | nrm).astype(int)
    df["pfs_months"] = df["cir_months"]
    df["os_event"] = death.astype(int)
    df["os_months"] = df["followup_months"]
    # follow-up / survival measured from transplant; keep event times ordered
    df["os_months"] = np.maximum(df["os_months"], df["pfs_months"])
    df["followup_months"] = df["os_months"]
    # for the swimmer plot: infusion and GVHD onset on the same clock (months from HSCT)
    df["infusion_months"] = np.round(infusion_months, 1)
    df["agvhd_months"] = np.round(infusion_months + df["agvhd_onset_day"].to_numpy() / 30.44, 1)
    ongoing = ~relapse & ~death
    df["ongoing_response"] = np.where(treated, ongoing, None)
    return df


def measurements(patients: pd.DataFrame, rng) -> tuple[pd.DataFrame, pd.Series]:
    """CAR-T expansion, IL-6 and CRP over days after infusion (treated patients only), and
    each treated patient's log10 peak expansion (indexed by patient)."""
    t = patients[patients["group"] == "CAR-T"].reset_index(drop=True)
    n = len(t)
    # Expansion: peak day ~7 (3-14), peak ~1e4 copies/ug DNA, no dose effect.
    tpeak = np.clip(np.exp(rng.normal(math.log(7.0), 0.3, n)), 3, 14)
    peak = rng.normal(4.2, 0.45, n)
    decline = np.exp(rng.normal(math.log(0.22), 0.3, n))
    d = _EXPANSION_DAYS.astype(float)
    up = peak[:, None] * np.clip(d[None, :] / tpeak[:, None], 0, 1)
    down = peak[:, None] - decline[:, None] * np.maximum(d[None, :] - tpeak[:, None], 0)
    logc = np.where(d[None, :] <= tpeak[:, None], up, down) + rng.normal(0, 0.12, (n, d.size))
    logc[:, 0] = -np.inf  # pre-infusion
    copies = np.power(10.0, logc)
    below = copies < _EXPANSION_LOD
    copies = np.where(below, _EXPANSION_LOD, np.round(copies, 0))
    frames = [_long(t["patient"], _EXPANSION_DAYS, _EXPANSION, copies, "copies/ug DNA", below)]

    # IL-6 (pg/mL) and CRP (mg/L): rise in the first days, higher with CRS; no dose effect.
    crs = t["crs_grade"].fillna(0).to_numpy()
    onset = t["crs_onset_day"].fillna(2).to_numpy()
    dc = _CYTOKINE_DAYS.astype(float)
    for analyte, unit, base_med, fold, tshift, width, lod in (
        ("IL-6", "pg/mL", 5.0, 2.5, 1.0, 2.5, 1.5),
        ("CRP", "mg/L", 4.0, 8.0, 2.0, 3.5, 0.5),
    ):
        base = np.exp(rng.normal(math.log(base_med), 0.5, n))
        amp = np.exp(rng.normal(math.log(fold), 0.5, n)) * (1 + 2.0 * crs)
        tp = onset + tshift + rng.normal(0, 0.5, n)
        shape = np.exp(-0.5 * ((dc[None, :] - tp[:, None]) / width) ** 2)
        shape[:, 0] = 0.0
        val = (
            base[:, None] * (1 + amp[:, None] * shape) * np.exp(rng.normal(0, 0.15, (n, dc.size)))
        )
        below = val < lod
        val = np.where(below, lod, np.round(val, 1))
        frames.append(_long(t["patient"], _CYTOKINE_DAYS, analyte, val, unit, below))
    meas = pd.concat(frames, ignore_index=True)
    log_peak = np.log10(np.nanmax(np.where(np.isfinite(logc), copies, np.nan), axis=1))
    return meas, pd.Series(log_peak, index=t["patient"].to_numpy())


def _long(patients, days, analyte, values, unit, below) -> pd.DataFrame:
    n, k = values.shape
    return pd.DataFrame(
        {
            "patient": np.repeat(np.asarray(patients), k),
            "day": np.tile(days, n),
            "analyte": analyte,
            "value": values.ravel(),
            "unit": unit,
            "below_detection": below.ravel(),
        }
    )
