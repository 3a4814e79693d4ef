"""Seeded data builders shared by the test modules (import them: ``from builders import
make_adata``; a test module never imports another test module). Fixtures built on them live
in tests/conftest.py; the io export builders are in tests/io_builders.py."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd

TIMES = ["T0", "T1", "T2"]


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


def make_study(*, n_pairs=24, m=30, nan_frac=0.06, seed=0, ties=False):
    """Paired Baseline/Week.6 study with NaNs, unpaired subjects, a control, edge assays."""
    rng = np.random.default_rng(seed)
    subj = [f"P{i:02d}" for i in range(n_pairs)]
    obs = pd.DataFrame(
        {
            "Subject": np.repeat(subj, 2),
            "Time": ["Baseline", "Week.6"] * n_pairs,
            "age": rng.normal(60, 8, 2 * n_pairs),
        }
    )
    extra = pd.DataFrame(
        {
            "Subject": ["P90", "P91", "P91", "P91", "CTRL"],
            "Time": ["Baseline", "Baseline", "Week.6", "Week.6", "Baseline"],
            "age": [50.0, 55.0, 55.0, 55.0, np.nan],
        }
    )
    obs = pd.concat([obs, extra], ignore_index=True)
    obs.index = [f"S{i:03d}" for i in range(len(obs))]
    obs["SampleID"] = obs.index
    obs["is_control"] = obs["Subject"].eq("CTRL")
    n = len(obs)
    base = rng.normal(5, 1, (1, m)) + rng.normal(0, 0.8, (n, m))
    effect = np.where(obs["Time"].eq("Week.6").to_numpy()[:, None], rng.normal(0, 0.6, m), 0.0)
    x = base + effect + rng.normal(0, 0.7, (n, m))
    if ties:
        x = np.round(x, 1)
    x[rng.random(x.shape) < nan_frac] = np.nan
    x[:, 1] = np.nan  # almost empty assay: < 3 pairs
    x[:4, 1] = rng.normal(size=4)
    wk = obs["Time"].eq("Week.6").to_numpy()
    x[:, 2] = 3.0 + np.where(wk, 0.5, 0.0)  # constant difference: zero variance
    var = pd.DataFrame(
        {
            "Assay": [f"A{j}" for j in range(m)],
            "UniProt": [f"U{j}" for j in range(m)],
            "Panel": "Inflammation",
            "is_control": [False] * (m - 1) + [True],
        },
        index=pd.Index([f"OID{j:05d}" for j in range(m)], name="OlinkID"),
    )
    return ad.AnnData(x, obs=obs, var=var)


def split_plot(*, n_subj=10, m=3, seed=0, nan_frac=0.0, subj_sd=1.5):
    """Subjects nested in two groups, measured at three time points; random intercept."""
    rng = np.random.default_rng(seed)
    t = len(TIMES)
    obs = pd.DataFrame(
        {
            "Subject": np.repeat([f"P{i:02d}" for i in range(n_subj)], t),
            "Group": np.repeat(np.resize(["ctrl", "trt"], n_subj), t),
            "Time": TIMES * n_subj,
            "age": np.repeat(rng.normal(60, 10, n_subj), t),
            "score": rng.normal(0, 1, n_subj * t),  # varies within subject
            "is_control": False,
        },
        index=[f"S{i:03d}" for i in range(n_subj * t)],
    )
    tix = np.tile(np.arange(t), n_subj)
    grp = (obs["Group"] == "trt").to_numpy()
    x = (
        5.0
        + np.repeat(rng.normal(0, subj_sd, (n_subj, m)), t, axis=0)
        + np.array([0.0, 0.5, 0.2])[tix][:, None] * rng.uniform(0, 1.5, m)
        + (grp * (tix == 2))[:, None] * rng.uniform(0, 1.0, m)
        + rng.normal(0, 0.6, (n_subj * t, m))
    )
    x[rng.random(x.shape) < nan_frac] = np.nan
    var = pd.DataFrame(
        {"Assay": [f"A{j}" for j in range(m)], "UniProt": "P00000", "Panel": "Test"},
        index=pd.Index([f"OID{j:05d}" for j in range(m)], name="OlinkID"),
    )
    return ad.AnnData(x, obs=obs, var=var)


def make_repeated(*, n_subj=12, m=6, seed=0, nan_frac=0.05, ties=False):
    """Repeated measures: 12 subjects at D0/D14/D28 on three sites, NaNs, no controls."""
    rng = np.random.default_rng(seed)
    times = ["D0", "D14", "D28"]
    obs = pd.DataFrame(
        {
            "Subject": np.repeat([f"P{i:02d}" for i in range(n_subj)], 3),
            "Time": times * n_subj,
            "Site": np.repeat(np.resize(["A", "B", "C"], n_subj), 3),
            "age": np.repeat(rng.normal(60, 10, n_subj), 3),
        }
    )
    obs.index = [f"S{i:03d}" for i in range(len(obs))]
    obs["is_control"] = False
    n = len(obs)
    subj_eff = np.repeat(rng.normal(0, 1, (n_subj, m)), 3, axis=0)
    t_eff = np.array([0.0, 0.6, 0.2])[np.tile(np.arange(3), n_subj)][:, None]
    x = 5 + subj_eff + t_eff * rng.uniform(0, 1.5, m) + rng.normal(0, 0.7, (n, m))
    if ties:
        x = np.round(x, 0)
    x[rng.random(x.shape) < nan_frac] = np.nan
    var = pd.DataFrame(
        {"Assay": [f"A{j}" for j in range(m)], "is_control": False},
        index=pd.Index([f"OID{j:05d}" for j in range(m)], name="OlinkID"),
    )
    return ad.AnnData(x, obs=obs, var=var)


def _same(a, b, path="uns"):
    if isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b), path
        for k in a:
            _same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=path)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, path
        assert np.array_equal(a, b, equal_nan=a.dtype.kind == "f"), path
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{path}[{i}]")
    else:
        assert a == b or (a != a and b != b), (path, a, b)


def assert_same_anndata(a, b):
    """X, every layer, varm, obs, var, obsm and uns identical (NaN equal to NaN)."""
    _same(np.asarray(a.X), np.asarray(b.X), "X")
    assert list(a.layers.keys()) == list(b.layers.keys())
    for k in a.layers:
        _same(np.asarray(a.layers[k]), np.asarray(b.layers[k]), f"layers.{k}")
    assert list(a.varm.keys()) == list(b.varm.keys())  # the LOD plate table (compact layout)
    for k in a.varm:
        _same(np.asarray(a.varm[k]), np.asarray(b.varm[k]), f"varm.{k}")
    pd.testing.assert_frame_equal(a.obs, b.obs, check_exact=True)
    pd.testing.assert_frame_equal(a.var, b.var, check_exact=True)
    assert list(a.obsm.keys()) == list(b.obsm.keys())
    for k in a.obsm:
        pd.testing.assert_frame_equal(a.obsm[k], b.obsm[k], check_exact=True)
    _same(dict(a.uns["olinkpipe"]), dict(b.uns["olinkpipe"]))


# --------------------------------------------------------------------------- dask-backed copies
#: assays per dask block in the pp dask tests (a panel spans several blocks)
LAZY_BLOCK = 5


def panel_sorted(adata):
    """Assays grouped by panel, as read_npx writes them (make_adata alternates panels)."""
    order = np.argsort(adata.var["Panel"].to_numpy(), kind="stable")
    return adata[:, order].copy()


def dask_study():
    """40 samples × 24 assays sorted by panel, one QC-plot outlier, a ``below_lod`` layer."""
    a = panel_sorted(make_adata(40, 24, seed=7, n_nc=12))
    X = a.X.copy()
    X[3, a.var["Panel"].to_numpy() == "Olink Oncology"] += 5.0  # a QC-plot outlier
    a.X = X
    a.layers["below_lod"] = a.X < a.layers["lod"]
    return a


def lazy(a):
    """A dask-backed copy laid out as ``read_npx(chunks=)``: all samples × assay blocks."""
    from olinkpipe.pp import _lazy

    out = _lazy.to_dask(a, max_assays=LAZY_BLOCK)
    assert all(c <= LAZY_BLOCK for c in out.X.chunks[1]) and len(out.X.chunks[0]) == 1
    return out
