"""A simulator of a prophylactic CAR-T study with paired Olink proteomics.

The study has the shape of a published single-centre study of prophylactic donor-derived
CD19 CAR-T cells after allogeneic stem-cell transplantation (23 treated patients, 44
controls): baseline characteristics close to the published counts, doses, CAR-T expansion,
IL-6 and CRP courses, CRS, relapse / non-relapse mortality / survival, and Olink NPX before
and after infusion on a few hundred real Olink assays in which SIT1, CD28, IL2RB and members
of the KEGG JAK-STAT and PI3K-Akt pathways rise after infusion.

Everything is generated with numpy over whole arrays, so the same function makes the
bundled example and benchmark-sized data (5,400 assays × thousands of samples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from importlib import resources
from os import PathLike
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .._validate import check_literal
from ..errors import ValidationError

__all__ = ["simulate_cart_study", "CartStudy", "assay_table", "SIGNAL_ASSAYS"]

#: Assays that rise after infusion in the simulated study, with their mean post − pre
#: change in NPX (log2) at an average response. SIT1, CD28 and IL2RB are the published
#: findings; the rest are members of the KEGG "JAK-STAT signaling pathway" and/or
#: "PI3K-Akt signaling pathway" (KEGG_2021_Human) and T-cell activation markers.
SIGNAL_ASSAYS: dict[str, float] = {
    "SIT1": 1.2,
    "CD28": 1.0,
    "IL2RB": 1.1,
    "IL2RA": 1.0,
    "IL6": 1.4,
    "IL10": 0.8,
    "IFNG": 1.0,
    "IL15": 0.8,
    "IL7": 0.8,
    "IL2": 0.6,
    "CSF2": 0.8,
    "OSM": 0.8,
    "LIF": 0.8,
    "CSF3": 0.7,
    "IL15RA": 0.6,
    "IL4R": 0.6,
    "FLT3LG": 0.8,
    "KITLG": 0.7,
    "CSF1": 0.7,
    "HGF": 0.6,
    "SPP1": 0.7,
    "VEGFA": 0.7,
    "ANGPT2": 0.6,
    "PGF": 0.6,
    "TNC": 0.6,
    "THBS2": 0.5,
    "FASLG": 0.6,
    "GZMB": 0.8,
    "CXCL10": 0.9,
    "CXCL9": 0.7,
    "TNFRSF9": 0.7,
    "LAG3": 0.6,
    "CD19": -0.8,
}

_EXTRA_PANELS = [
    "Cardiometabolic_II",
    "Inflammation_II",
    "Neurology_II",
    "Oncology_II",
    "Cardiometabolic",
    "Inflammation",
    "Neurology",
    "Oncology",
]

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


def assay_table() -> pd.DataFrame:
    """The real Olink assays the simulator draws from (package data).

    Returns
    -------
    DataFrame
        ``OlinkID, Assay, UniProt, Panel, Panel_Lot_Nr``: gene symbols as Olink Explore
        names its assays and their UniProt accessions, on four Explore 384 panels. The
        ``OID9xxxx`` identifiers are placeholders in Olink's format, not Olink's own IDs.

    Examples
    --------
    >>> from olinkpipe.datasets import assay_table
    >>> table = assay_table()
    >>> table.loc[table["Assay"] == "IL2RB", "UniProt"].item()
    'P14784'
    """
    path = resources.files("olinkpipe.datasets") / "data" / "olink_assays.csv"
    with resources.as_file(path) as p:
        return pd.read_csv(p, dtype=str, keep_default_na=False)


@dataclass(frozen=True)
class CartStudy:
    """A simulated study: the Olink export and the clinical tables.

    Attributes
    ----------
    npx
        Long Olink NPX export (Olink's column names, one row per sample × assay).
    samples
        Sample sheet: ``SampleID, patient, timepoint, day`` for the study samples.
    patients
        One row per patient (treated and controls): baseline, dose, CRS, outcomes.
    measurements
        Long clinical measurements: ``patient, day, analyte, value, unit,
        below_detection`` (CAR-T expansion, IL-6, CRP).
    truth
        Per assay: ``OlinkID, Assay, effect`` — the simulated mean post − pre change.
    seed
        The seed that made it.
    """

    npx: pd.DataFrame
    samples: pd.DataFrame
    patients: pd.DataFrame
    measurements: pd.DataFrame
    truth: pd.DataFrame
    seed: int
    files: dict = field(default_factory=dict)

    def to_anndata(self) -> ad.AnnData:
        """Build the samples × assays AnnData (docs/data_model.md) directly, without a reader.

        Meant for benchmarks and tests that need the matrix quickly; users read the
        written export with :func:`olinkpipe.read_npx` instead.

        Examples
        --------
        >>> from olinkpipe.datasets import simulate_cart_study
        >>> adata = simulate_cart_study(seed=1, n_treated=4, n_control=4, n_assays=20).to_anndata()
        >>> adata.shape[1]
        20
        """
        return _long_to_anndata(self.npx, self.samples)


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


def _patients(n_treated: int, n_control: int, rng) -> pd.DataFrame:
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


def _outcomes(df: pd.DataFrame, rng) -> pd.DataFrame:
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


def _measurements(patients: pd.DataFrame, rng) -> tuple[pd.DataFrame, pd.Series]:
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


def _choose_assays(n_assays: int | None, rng) -> pd.DataFrame:
    table = assay_table()
    if n_assays is None or n_assays == len(table):
        return table
    if n_assays < 1:
        msg = f"n_assays={n_assays} must be at least 1."
        raise ValidationError(msg)
    if n_assays < len(table):
        signal = table["Assay"].isin(SIGNAL_ASSAYS).to_numpy()
        order = np.concatenate([np.flatnonzero(signal), rng.permutation(np.flatnonzero(~signal))])
        keep = np.sort(order[:n_assays])
        return table.iloc[keep].reset_index(drop=True)
    # More than the real table: add assays named by real gene symbols (from the offline
    # GO collection) on further panels, with placeholder IDs and no UniProt accession.
    extra = n_assays - len(table)
    symbols = _extra_symbols(set(table["Assay"]), extra)
    panels = np.resize(np.array(_EXTRA_PANELS, dtype=object), extra)
    more = pd.DataFrame(
        {
            "OlinkID": [f"OID{92001 + i}" for i in range(extra)],
            "Assay": symbols,
            "UniProt": "",
            "Panel": panels,
            "Panel_Lot_Nr": "B99999",
        }
    )
    return pd.concat([table, more], ignore_index=True)


def _extra_symbols(used: set[str], n: int) -> list[str]:
    from importlib.util import find_spec

    names: list[str] = []
    spec = find_spec("blitzgsea")
    if spec is not None and spec.origin is not None:
        path = Path(spec.origin).parent / "data" / "GO_Biological_Process_2023"
        if path.exists():
            seen = set(used)
            for line in path.read_text().splitlines():
                for g in line.split("\t")[2:]:
                    if g and g not in seen and g.isascii():
                        seen.add(g)
                        names.append(g)
                if len(names) >= n:
                    break
    names = names[:n]
    names += [f"PROT{i + 1}" for i in range(n - len(names))]
    return names


def _npx(
    assays: pd.DataFrame,
    samples: pd.DataFrame,
    response: pd.Series,
    rng,
    *,
    n_factors: int,
    n_qc_warnings: int,
    effect_scale: float,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The long NPX export: a low-rank factor model plus subject, plate and post effects."""
    n_a = len(assays)
    n_s = len(samples)
    subj_codes, subj_levels = pd.factorize(samples["patient"])
    is_control = samples["patient"].isna().to_numpy()
    n_subj = len(subj_levels)
    plate_codes, plate_levels = pd.factorize(samples["PlateID"])

    mu = rng.normal(4.0, 2.0, n_a)
    sd_subj = rng.uniform(0.3, 0.8, n_a)
    sd_noise = rng.uniform(0.2, 0.45, n_a)
    loadings = rng.normal(0.0, 0.3, (n_a, n_factors))
    subj_scores = rng.normal(size=(n_subj, n_factors))
    scores = rng.normal(size=(n_s, n_factors)) * math.sqrt(0.4)
    scores[~is_control] += subj_scores[subj_codes[~is_control]] * math.sqrt(0.6)
    x = mu[None, :] + scores @ loadings.T
    subj_eff = rng.normal(size=(n_subj, n_a)) * sd_subj[None, :]
    x[~is_control] += subj_eff[subj_codes[~is_control]]
    plate_eff = rng.normal(0.0, 0.08, (len(plate_levels), n_a))
    x += plate_eff[plate_codes]
    x += rng.normal(size=(n_s, n_a)) * sd_noise[None, :]

    effect = assays["Assay"].map(SIGNAL_ASSAYS).fillna(0.0).to_numpy() * effect_scale
    post = (samples["timepoint"] == "post").to_numpy()
    # response is indexed by patient; subj_codes follow the samples' order (plate layout)
    by_subject = response.reindex(subj_levels).fillna(1.0).to_numpy()
    x[post] += by_subject[subj_codes[post]][:, None] * effect[None, :]

    # LOD per assay and plate: most assays well above LOD, some near it.
    gap = np.where(
        rng.uniform(size=n_a) < 0.15, rng.uniform(-0.5, 1.0, n_a), rng.uniform(2, 5, n_a)
    )
    lod = (mu - gap)[None, :] + rng.normal(0.0, 0.1, (len(plate_levels), n_a))
    lod_cell = lod[plate_codes]

    # QC warnings on a few (sample, panel) pairs, whose values drift.
    panels = assays["Panel"].to_numpy()
    panel_codes, panel_levels = pd.factorize(panels)
    qc = np.zeros((n_s, len(panel_levels)), dtype=bool)
    study = np.flatnonzero(~is_control)
    if n_qc_warnings and study.size:
        who = rng.choice(study, size=min(n_qc_warnings, study.size), replace=False)
        qc[who, rng.integers(0, len(panel_levels), size=who.size)] = True
    qc_cell = qc[:, panel_codes]
    x = np.where(qc_cell, x + rng.normal(0.8, 0.6, (n_s, n_a)), x)
    assay_warn = np.zeros((len(plate_levels), n_a), dtype=bool)
    if n_a > 10:
        assay_warn[rng.integers(len(plate_levels)), rng.integers(n_a)] = True

    below = x < lod_cell
    missing_freq = below.mean(axis=0)

    # Long frame, sorted by panel, assay and sample as Olink exports are.
    order_a = np.lexsort((assays["OlinkID"].to_numpy(), panel_codes))
    ai = np.repeat(order_a, n_s)
    si = np.tile(np.arange(n_s), n_a)
    cat = pd.Categorical.from_codes
    a_ids = assays["OlinkID"].to_numpy()

    def coded(values: np.ndarray, index: np.ndarray) -> pd.Categorical:
        codes, uniques = pd.factorize(values)
        return cat(codes[index], np.asarray(uniques))

    def const(value: str) -> pd.Categorical:
        return cat(np.zeros(ai.size, dtype=np.int8), [value])

    pass_warn = ["PASS", "WARN"]
    long = pd.DataFrame(
        {
            "SampleID": cat(si, samples["SampleID"].to_numpy()),
            "Index": samples["Index"].to_numpy()[si],
            "OlinkID": cat(ai, a_ids),
            "UniProt": coded(assays["UniProt"].to_numpy(), ai),
            "Assay": cat(ai, assays["Assay"].to_numpy()),
            "MissingFreq": np.round(missing_freq, 4)[ai],
            "Panel": cat(panel_codes[ai], np.asarray(panel_levels)),
            "Panel_Lot_Nr": coded(assays["Panel_Lot_Nr"].to_numpy(), ai),
            "PlateID": cat(plate_codes[si], np.asarray(plate_levels)),
            "QC_Warning": cat(qc_cell[si, ai].astype(np.int8), pass_warn),
            "LOD": np.round(lod_cell[si, ai], 4),
            "NPX": np.round(x[si, ai], 4),
            "Normalization": const("Intensity"),
            "Assay_Warning": cat(assay_warn[plate_codes[si], ai].astype(np.int8), pass_warn),
            "Sample_Type": cat(is_control[si].astype(np.int8), ["SAMPLE", "CONTROL"]),
            "ExploreVersion": const("6.1.0"),
        }
    )
    truth = pd.DataFrame(
        {"OlinkID": a_ids, "Assay": assays["Assay"].to_numpy(), "Panel": panels, "effect": effect}
    )
    return long, truth


def _samples(
    patients: pd.DataFrame, n_controls_per_plate: int, post_day: int, rng
) -> pd.DataFrame:
    treated = patients.loc[patients["group"] == "CAR-T", "patient"].to_numpy()
    n = treated.size
    n_plates = max(2, math.ceil(2 * n / 88)) if n else 1
    # pairs stay on one plate, patients spread over plates in random order
    plate_of = np.empty(n, dtype=int)
    plate_of[rng.permutation(n)] = np.arange(n) % n_plates
    rows = pd.DataFrame(
        {
            "patient": np.repeat(treated, 2),
            "timepoint": np.tile(["pre", "post"], n),
            "day": np.tile([0, post_day], n),
            "PlateID": [f"Plate{p + 1}" for p in np.repeat(plate_of, 2)],
        }
    )
    ctrl = pd.DataFrame(
        {
            "patient": None,
            "timepoint": None,
            "day": np.nan,
            "PlateID": [
                f"Plate{p + 1}" for p in np.repeat(np.arange(n_plates), n_controls_per_plate)
            ],
        }
    )
    width = max(4, len(str(2 * n)))
    codes = rng.permutation(2 * n) + 1
    rows.insert(0, "SampleID", [f"OL{c:0{width}d}" for c in codes])
    ctrl.insert(
        0,
        "SampleID",
        [
            f"CONTROL_SAMPLE_{p}_{k + 1}"
            for p, k in zip(
                ctrl["PlateID"], np.tile(np.arange(n_controls_per_plate), n_plates), strict=True
            )
        ],
    )
    out = pd.concat([rows, ctrl], ignore_index=True)
    out = out.sort_values(["PlateID", "SampleID"], kind="stable").reset_index(drop=True)
    out["Index"] = out.groupby("PlateID").cumcount() + 1
    return out


def simulate_cart_study(
    seed: int = 0,
    *,
    n_treated: int = 23,
    n_control: int = 44,
    n_assays: int | None = None,
    n_factors: int = 5,
    effect_scale: float = 1.0,
    post_day: int = 7,
    n_qc_warnings: int = 2,
    n_controls_per_plate: int = 2,
    out: str | PathLike[str] | None = None,
    npx_format: str = "csv",
) -> CartStudy:
    """Simulate a prophylactic CAR-T study with paired Olink proteomics.

    Parameters
    ----------
    seed
        Seed of ``numpy.random.default_rng``; the same seed gives identical output.
    n_treated, n_control
        Numbers of CAR-T treated patients (each with a pre and a post Olink sample) and of
        control patients (clinical data only). Defaults as in the published study.
    n_assays
        Number of Olink assays. ``None`` uses every real assay of the bundled table
        (:func:`assay_table`, 359 assays on 4 panels); fewer keeps the signal assays and
        a random subset; more (up to Explore HT size, 5,400 and beyond) adds assays named
        by real gene symbols with placeholder IDs, for benchmarks.
    n_factors
        Rank of the latent factor model giving assay-to-assay correlation.
    effect_scale
        Multiplies every simulated post − pre effect (0 gives a null study).
    post_day
        Day after infusion of the post sample.
    n_qc_warnings
        Number of (sample, panel) pairs flagged ``WARN``.
    n_controls_per_plate
        Olink sample controls per plate (``Sample_Type`` ``CONTROL``).
    out
        Directory to write the files to (created): ``npx_data.csv`` (long export,
        ``;``-separated), ``npx_data.parquet`` (when ``npx_format="both"``),
        ``samples.csv``, ``patients.csv``, ``measurements.csv``.
    npx_format
        ``"csv"``, ``"parquet"`` or ``"both"``: which NPX files ``out`` receives.

    Returns
    -------
    CartStudy
        ``npx`` (long export), ``samples``, ``patients``, ``measurements``, ``truth``
        (per-assay simulated effect), ``seed`` and ``files`` (paths written).

    Notes
    -----
    NPX of assay *a* in sample *s* of patient *i* is
    ``mu_a + b_ia + z_s · w_a + plate + e_sa (+ r_i · delta_a after infusion)``: a subject
    effect ``b`` (what pairing removes), ``k`` latent factors shared by assays (realistic
    correlation), a small plate effect, technical noise, and for the signal assays
    (:data:`SIGNAL_ASSAYS`) a rise ``delta_a`` scaled by the patient's response ``r_i``,
    which follows the patient's peak CAR-T expansion. LOD is per assay and plate; values
    below LOD are kept, as Explore exports keep them. Baseline categories follow the
    published counts (scaled by largest remainder when sizes differ); outcomes are drawn so
    that 2-year relapse, non-relapse mortality and survival are near the published ones.
    OlinkIDs ``OID9xxxx`` are placeholders in Olink's format, not Olink's own IDs.

    Examples
    --------
    >>> from olinkpipe.datasets import simulate_cart_study
    >>> study = simulate_cart_study(seed=0)
    >>> study.samples["patient"].nunique(), int((study.patients["dose"] > 2e6).sum())
    (23, 10)
    """
    check_literal("npx_format", npx_format, ["csv", "parquet", "both"])
    for name, value in (("n_treated", n_treated), ("n_control", n_control)):
        if int(value) != value or value < 0:
            msg = f"{name}={value!r} must be a non-negative integer."
            raise ValidationError(msg)
    rng = np.random.default_rng(seed)
    patients = _outcomes(_patients(n_treated, n_control, rng), rng)
    measurements, log_peak = _measurements(patients, rng)
    samples = _samples(patients, n_controls_per_plate, post_day, rng)
    assays = _choose_assays(n_assays, rng)
    # response multiplier follows the patient's peak expansion (mean 1), by patient ID
    lp = log_peak.to_numpy()
    z = (lp - lp.mean()) / (lp.std() or 1.0) if lp.size else lp
    noise = rng.normal(0, 0.2, lp.size)
    response = pd.Series(np.clip(1.0 + 0.35 * z + noise, 0.2, None), index=log_peak.index)
    npx, truth = _npx(
        assays,
        samples,
        response,
        rng,
        n_factors=n_factors,
        n_qc_warnings=n_qc_warnings,
        effect_scale=effect_scale,
    )
    sample_sheet = samples.loc[
        samples["patient"].notna(), ["SampleID", "patient", "timepoint", "day"]
    ]
    sample_sheet = sample_sheet.sort_values(["patient", "day"]).reset_index(drop=True)
    sample_sheet["day"] = sample_sheet["day"].astype(int)
    study = CartStudy(
        npx=npx,
        samples=sample_sheet,
        patients=patients,
        measurements=measurements,
        truth=truth,
        seed=seed,
    )
    if out is not None:
        files = write_study(study, out, npx_format=npx_format)
        study.files.update(files)
    return study


def write_study(
    study: CartStudy, out: str | PathLike[str], *, npx_format: str = "both"
) -> dict[str, Path]:
    """Write a :class:`CartStudy` as the files a user gets (see :func:`simulate_cart_study`).

    Returns
    -------
    dict
        Name → path of every file written.

    Examples
    --------
    >>> import tempfile
    >>> from olinkpipe.datasets import simulate_cart_study
    >>> from olinkpipe.datasets.simulate import write_study
    >>> study = simulate_cart_study(seed=1, n_treated=3, n_control=3, n_assays=10)
    >>> sorted(write_study(study, tempfile.mkdtemp(), npx_format="csv"))
    ['measurements', 'npx', 'patients', 'samples']
    """
    check_literal("npx_format", npx_format, ["csv", "parquet", "both"])
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    if npx_format in ("csv", "both"):
        files["npx"] = out / "npx_data.csv"
        study.npx.to_csv(files["npx"], sep=";", index=False, na_rep="NA", lineterminator="\n")
    if npx_format in ("parquet", "both"):
        files["npx_parquet"] = out / "npx_data.parquet"
        _write_parquet(study.npx, files["npx_parquet"])
    for name in ("samples", "patients", "measurements"):
        files[name] = out / f"{name}.csv"
        getattr(study, name).to_csv(files[name], index=False, lineterminator="\n")
    return files


def _write_parquet(npx: pd.DataFrame, path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(
        npx.astype({c: str for c in npx.select_dtypes("category")}), preserve_index=False
    )
    meta = dict(table.schema.metadata or {})
    meta.update(
        {
            b"Product": b"Explore 3072",
            b"DataFileType": b"NPX File",
            b"Simulated": b"olinkpipe.datasets.simulate_cart_study",
        }
    )
    pq.write_table(table.replace_schema_metadata(meta), path, compression="zstd")


def _long_to_anndata(npx: pd.DataFrame, samples: pd.DataFrame) -> ad.AnnData:
    """Pivot the simulator's long frame into the AnnData of docs/data_model.md."""
    s_codes = npx["SampleID"].cat.codes.to_numpy()
    a_codes = npx["OlinkID"].cat.codes.to_numpy()
    s_names = npx["SampleID"].cat.categories
    a_names = npx["OlinkID"].cat.categories
    shape = (len(s_names), len(a_names))

    def mat(col: str, dtype=float, fill=np.nan):
        m = np.full(shape, fill, dtype=dtype)
        m[s_codes, a_codes] = npx[col].to_numpy()
        return m

    x = mat("NPX")
    lod = mat("LOD")
    qc = mat("QC_Warning", dtype=object, fill="") != "PASS"
    first = np.unique(a_codes, return_index=True)[1]
    var = pd.DataFrame(
        {
            "Assay": npx["Assay"].to_numpy()[first].astype(str),
            "UniProt": npx["UniProt"].to_numpy()[first].astype(str),
            "Panel": npx["Panel"].to_numpy()[first].astype(str),
            "Panel_Lot_Nr": npx["Panel_Lot_Nr"].to_numpy()[first].astype(str),
            "MissingFreq": npx["MissingFreq"].to_numpy()[first],
            "Normalization": "Intensity",
            "Assay_Warning": "PASS",
            "AssayType": "assay",
            "is_control": False,
        },
        index=pd.Index(a_names.astype(str), name="OlinkID"),
    )
    sfirst = np.unique(s_codes, return_index=True)[1]
    obs = pd.DataFrame(index=pd.Index(s_names.astype(str), name=None))
    obs["SampleID"] = obs.index
    stype = npx["Sample_Type"].to_numpy()[sfirst].astype(str)
    obs["SampleType"] = np.where(stype == "CONTROL", "SAMPLE_CONTROL", "SAMPLE")
    obs["is_control"] = stype == "CONTROL"
    obs["PlateID"] = npx["PlateID"].to_numpy()[sfirst].astype(str)
    panels = var["Panel"].to_numpy()
    qc_panel = pd.DataFrame(
        {p: np.where(qc[:, panels == p].any(axis=1), "WARN", "PASS") for p in pd.unique(panels)},
        index=obs.index,
    )
    obs["QC_Warning"] = np.where((qc_panel != "PASS").any(axis=1), "WARN", "PASS")
    obs["qc_pass"] = obs["QC_Warning"] == "PASS"
    sheet = samples.set_index("SampleID")
    for col in ("patient", "timepoint", "day"):
        if col in sheet:
            obs[col] = sheet[col].reindex(obs.index).to_numpy()
    adata = ad.AnnData(X=x, obs=obs, var=var)
    adata.obsm["PlateID"] = pd.DataFrame({p: obs["PlateID"] for p in qc_panel.columns})
    adata.obsm["QC_Warning"] = qc_panel
    adata.layers["lod"] = lod
    adata.layers["qc_warning"] = qc
    adata.layers["below_lod"] = np.nan_to_num(x, nan=np.inf) < np.nan_to_num(lod, nan=-np.inf)
    adata.uns["olinkpipe"] = {
        "source": ["olinkpipe.datasets.simulate_cart_study"],
        "format": "long",
        "product": "Explore 3072",
        "data_type": "NPX",
    }
    return adata
