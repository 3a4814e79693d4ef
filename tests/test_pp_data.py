"""Seeded AnnData builders (to docs/data_model.md) shared by the pp / pl.qc tests."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

PANELS = ("Olink Inflammation", "Olink Oncology")


def make_adata(
    n_samples: int = 40,
    n_assays: int = 24,
    *,
    seed: int = 0,
    prefix: str = "S",
    assay_start: int = 1,
    n_controls: int = 2,
    n_nc: int = 0,
    plates: int = 2,
    nan_frac: float = 0.05,
    shift: float = 0.0,
    project: str = "P",
) -> ad.AnnData:
    """A two-panel NPX AnnData with NaNs, LOD, QC warnings, controls and two plates."""
    rng = np.random.default_rng(seed)
    n_total = n_samples + n_controls + n_nc
    ids = [f"{prefix}{i}" for i in range(1, n_samples + 1)]
    ids += [f"CONTROL_SAMPLE_AS {i}" for i in range(1, n_controls + 1)]
    ids += [f"NC{i}" for i in range(1, n_nc + 1)]
    stype = ["SAMPLE"] * n_samples + ["SAMPLE_CONTROL"] * n_controls
    stype += ["NEGATIVE_CONTROL"] * n_nc
    oids = [f"OID{assay_start + j:05d}" for j in range(n_assays)]
    panel = np.array([PANELS[j % 2] for j in range(n_assays)], dtype=object)
    base = rng.normal(6, 2, n_assays)
    X = base + rng.normal(0, 1, (n_total, n_assays)) + shift
    nc_rows = np.arange(n_samples + n_controls, n_total)
    X[nc_rows] = base - 3 + rng.normal(0, 0.3, (n_nc, n_assays)) + shift
    X[rng.random(X.shape) < nan_frac] = np.nan
    plate = np.array([f"{project}_plate{(i % plates) + 1}" for i in range(n_total)], dtype=object)
    qc = np.array(["PASS"] * n_total, dtype=object)
    qc[rng.choice(n_samples, size=2, replace=False)] = "WARN"
    obs = pd.DataFrame(
        {
            "SampleID": ids,
            "SampleType": stype,
            "is_control": [s != "SAMPLE" for s in stype],
            "PlateID": plate,
            "QC_Warning": qc,
            "qc_pass": qc == "PASS",
            "Subject": [f"subj{i // 2}" for i in range(n_total)],
        },
        index=ids,
    )
    var = pd.DataFrame(
        {
            "Assay": [f"GENE{assay_start + j}" for j in range(n_assays)],
            "UniProt": [f"P{assay_start + j:05d}" for j in range(n_assays)],
            "Panel": panel,
            "Normalization": "Intensity",
            "AssayType": "assay",
            "is_control": False,
        },
        index=pd.Index(oids, name="OlinkID"),
    )
    lod = np.repeat((base - 1.5 + shift)[None, :], n_total, axis=0)
    lod = lod + rng.normal(0, 0.05, (n_total, 1))
    plate_tab = pd.DataFrame({p: plate for p in PANELS}, index=ids)
    qc_tab = pd.DataFrame({p: qc for p in PANELS}, index=ids)
    qc_layer = np.repeat((qc != "PASS")[:, None], n_assays, axis=1)
    return ad.AnnData(
        X=X,
        obs=obs,
        var=var,
        layers={"lod": lod, "below_lod": X < lod, "qc_warning": qc_layer},
        obsm={"PlateID": plate_tab, "QC_Warning": qc_tab},
        uns={"olinkpipe": {"product": "Target 96", "data_type": "NPX", "source": [project]}},
    )


def test_builder_follows_the_data_model():
    a = make_adata()
    assert a.obs_names.is_unique and a.var_names.is_unique
    assert a.X.dtype == np.float64 and np.isnan(a.X).any()
    assert set(a.obsm["PlateID"].columns) == set(a.var["Panel"])
    assert a.layers["below_lod"].dtype == bool
