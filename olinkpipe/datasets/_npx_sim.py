"""The proteomics side of the simulated CAR-T study: NPX of the chosen assays before and
after infusion (whole-array numpy) and the sample table (the AnnData pivot: ``_pivot``)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ._assays import SIGNAL_ASSAYS

__all__ = ["npx_values", "sample_table"]


def npx_values(
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


def sample_table(
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
