"""Normalization: every factor against an independent pandas groupby computation.

Data have NaNs, unequal assay sets (and the second project lists its samples and assays in
another order) and renamed bridge samples. Tolerances: factors 1e-12 (pandas and numpy take
the same middle order statistics, so they agree to rounding). Shifts are checked two ways
for every NPX and LOD value: ``normalized == original + factor`` bit for bit (one IEEE
addition, as OlinkAnalyze's ``NPX + Adj_factor``), and ``normalized − original == factor``
to 1e-12 (the subtraction rounds).
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from builders import make_adata

import olinkpipe as op
from olinkpipe import _parallel
from olinkpipe.errors import (
    DesignError,
    DuplicateSampleError,
    OlinkpipeWarning,
    ValidationError,
)

TOL = 1e-12


@pytest.fixture(autouse=True, params=["one thread", "threads"])
def write_mode(request, monkeypatch):
    """Every test runs twice: stacked arrays written inline, and written in row blocks by
    three threads (the threshold lowered so that these small objects take that path)."""
    if request.param == "threads":
        monkeypatch.setattr(_parallel, "MIN_BYTES", 0)
        monkeypatch.setenv(_parallel.ENV_THREADS, "3")
    else:
        monkeypatch.setenv(_parallel.ENV_THREADS, "1")
    return request.param


def long(adata, value="X"):
    """Tidy (SampleID, OlinkID, value) of an AnnData, NaN rows kept."""
    M = adata.X if value == "X" else adata.layers[value]
    df = pd.DataFrame(
        np.asarray(M), index=adata.obs["SampleID"].to_numpy(), columns=adata.var_names
    )
    out = df.stack(future_stack=True).rename("NPX").reset_index()
    out.columns = ["SampleID", "OlinkID", "NPX"]
    return out


def assert_shifted(res, project, original, factor):
    """Rows of ``project`` in ``res`` are ``original`` (matched by name, not position) plus
    ``factor`` (per assay of ``res``, or a samples × assays matrix) in NPX and LOD."""
    part = res[(res.obs["Project"] == project).to_numpy()]
    assert list(part.obs["SampleID"]) == list(original.obs["SampleID"])
    orig = original[:, list(res.var_names)]  # by OlinkID, independent of the code's alignment
    f = np.broadcast_to(np.asarray(factor, dtype=float), orig.shape)
    for new, old in ((part.X, orig.X), (part.layers["lod"], orig.layers["lod"])):
        np.testing.assert_array_equal(np.isnan(new), np.isnan(old))
        np.testing.assert_array_equal(new, old + f)  # bit for bit, NaN where NaN
        ok = ~np.isnan(old)
        np.testing.assert_allclose((new - old)[ok], f[ok], rtol=0, atol=TOL)


@pytest.fixture
def projects():
    ref = make_adata(40, 24, seed=1, project="P1", assay_start=1)
    other = make_adata(36, 24, seed=2, project="P2", assay_start=3, shift=0.8, prefix="T")
    # the second run lists its samples and assays in another order
    rng = np.random.default_rng(99)
    other = other[rng.permutation(other.n_obs)][:, rng.permutation(other.n_vars)].copy()
    # bridge samples renamed in the second run: S1..S6 in ref are T1..T6 in other
    mapping = {f"S{i}": f"T{i}" for i in range(1, 7)}
    # an assay with no bridge value in other -> factor 0 with a warning
    rows = other.obs_names.get_indexer(list(mapping.values()))
    X = other.X.copy()
    X[rows, other.var_names.get_loc("OID00010")] = np.nan
    other.X = X
    return ref, other, mapping


def _common(ref, other):
    return [v for v in ref.var_names if v in set(other.var_names)]


def _quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return fn(*args, **kwargs)


def test_bridge_factor_matches_pandas_groupby_median(projects):
    ref, other, mapping = projects
    res = _quiet(op.pp.bridge_normalize, ref, other, mapping, projects=("R", "O"))
    lr = long(ref)
    lr = lr[lr["SampleID"].isin(mapping)].assign(pair=lambda d: d["SampleID"])
    lo = long(other)
    inv = {v: k for k, v in mapping.items()}
    lo = lo[lo["SampleID"].isin(inv)].assign(pair=lambda d: d["SampleID"].map(inv))
    m = lr.merge(lo, on=["pair", "OlinkID"], suffixes=("_r", "_o"))
    m["d"] = m["NPX_r"] - m["NPX_o"]
    expected = m.dropna(subset=["d"]).groupby("OlinkID")["d"].median()
    expected = expected.reindex(_common(ref, other)).fillna(0.0)
    assert list(res.var_names) == _common(ref, other)
    np.testing.assert_allclose(res.var["Adj_factor"].to_numpy(), expected.to_numpy(), atol=TOL)
    assert res.var.loc["OID00010", "Adj_factor"] == 0.0
    tab = res.uns["olinkpipe"]["normalization"]["bridge_normalize"]["factors"]
    np.testing.assert_allclose(tab["Adj_factor"].to_numpy(), expected.to_numpy(), atol=TOL)
    n_pairs = m.dropna(subset=["d"]).groupby("OlinkID").size().reindex(expected.index).fillna(0)
    np.testing.assert_array_equal(tab["n_pairs"].to_numpy(), n_pairs.to_numpy())


@pytest.mark.parametrize("method", ["median", "paired"])
def test_bridge_shift_is_exact_for_every_value_and_lod(projects, method):
    ref, other, mapping = projects
    res = _quiet(op.pp.bridge_normalize, ref, other, mapping, method=method)
    f = res.var["Adj_factor"].to_numpy()
    assert_shifted(res, "P2", other, f)
    assert_shifted(res, "P1", ref, 0.0)  # reference untouched
    # boolean layers are carried over, and still say X < LOD after the shift
    np.testing.assert_array_equal(res.layers["below_lod"], res.X < res.layers["lod"])
    np.testing.assert_array_equal(
        res.layers["qc_warning"][res.obs["Project"].to_numpy() == "P2"],
        other[:, list(res.var_names)].layers["qc_warning"],
    )


def test_bridge_mapping_forms_agree(projects):
    ref, other, mapping = projects
    want = _quiet(op.pp.bridge_normalize, ref, other, mapping).var["Adj_factor"]
    pairs = list(mapping.items())
    frame = pd.DataFrame(pairs, columns=["ref", "other"])
    for form in (pairs, frame):
        got = _quiet(op.pp.bridge_normalize, ref, other, form).var["Adj_factor"]
        np.testing.assert_array_equal(got, want)


def test_bridge_result_layout(projects):
    ref, other, mapping = projects
    with pytest.warns(OlinkpipeWarning) as rec:
        res = op.pp.bridge_normalize(ref, other, mapping)
    messages = " ".join(str(w.message) for w in rec)
    assert "assay only in project P1" in messages and "assay only in project P2" in messages
    assert "OID00010" in messages and "set to 0" in messages
    assert res.n_obs == ref.n_obs + other.n_obs and res.obs_names.is_unique
    assert res.obs["Project"].value_counts().to_dict() == {"P1": ref.n_obs, "P2": other.n_obs}
    bridged = res.obs[res.obs["bridge"]]
    assert len(bridged) == 2 * len(mapping)  # both copies kept
    assert sorted(bridged["bridge_pair"]) == sorted(list(mapping) * 2)
    ex = res.uns["olinkpipe"]["excluded"]
    assert set(ex.loc[ex["step"] == "bridge_normalize", "id"]) == {
        "OID00001",
        "OID00002",
        "OID00025",
        "OID00026",
    }
    assert set(res.obsm["PlateID"].columns) == set(res.var["Panel"])


def test_bridge_paired_mean(projects):
    ref, other, mapping = projects
    pairs = list(mapping.items())
    res = _quiet(op.pp.bridge_normalize, ref, other, pairs, method="paired")
    common = _common(ref, other)
    d = ref[list(mapping), common].X - other[list(mapping.values()), common].X
    expected = pd.DataFrame(d, columns=common).mean(axis=0, skipna=True).fillna(0.0)
    np.testing.assert_allclose(res.var["Adj_factor"].to_numpy(), expected.to_numpy(), atol=TOL)


def test_bridge_shared_ids_get_unique_obs_names():
    a = make_adata(10, 6, seed=3, project="A", n_controls=0)
    b = make_adata(10, 6, seed=4, project="B", n_controls=0, shift=1)
    res = op.pp.bridge_normalize(a, b, ["S1", "S2", "S3"])
    assert res.obs_names.is_unique
    assert "S1@P1" in res.obs_names and "S1@P2" in res.obs_names
    assert (res.obs["SampleID"] == "S1").sum() == 2


def test_bridge_input_errors(projects):
    ref, other, mapping = projects
    with pytest.raises(ValidationError, match="not found in project 'P2'.*T99"):
        op.pp.bridge_normalize(ref, other, {"S1": "T99"})
    with pytest.raises(DuplicateSampleError, match="more than once"):
        op.pp.bridge_normalize(ref, other, [("S1", "T1"), ("S1", "T1")])
    ref.uns["olinkpipe"]["product"] = "Explore 3072"
    other.uns["olinkpipe"]["product"] = "Explore HT"
    with pytest.raises(DesignError, match="cross-product"):
        op.pp.bridge_normalize(ref, other, mapping)
    with pytest.raises(DesignError, match="method"):
        op.pp.bridge_normalize(ref, ref, ["S1"], method="mean")


def test_differing_normalization_types_warn(projects):
    ref, other, mapping = projects
    other.var["Normalization"] = "Plate control"
    with pytest.warns(OlinkpipeWarning) as rec:
        op.pp.bridge_normalize(ref, other, mapping)
    assert any("normalized differently" in str(w.message) for w in rec)


def test_excluded_normalization_assays_are_dropped_and_recorded(projects):
    ref, other, mapping = projects
    ref.var.loc["OID00005", "Normalization"] = "EXCLUDED"
    res = _quiet(op.pp.bridge_normalize, ref, other, mapping)
    assert "OID00005" not in res.var_names
    ex = res.uns["olinkpipe"]["excluded"]
    assert "Normalization is EXCLUDED in project P1" in set(ex["reason"])


def test_subset_factor_matches_pandas(projects):
    ref, other, _ = projects
    rs, os_ = ["S3", "S8", "S9", "S20"], ["T2", "T5", "T30", "T31", "T33"]
    res = _quiet(op.pp.subset_normalize, ref, other, rs, os_)
    lr, lo = long(ref), long(other)
    med_r = lr[lr["SampleID"].isin(rs)].groupby("OlinkID")["NPX"].median()
    med_o = lo[lo["SampleID"].isin(os_)].groupby("OlinkID")["NPX"].median()
    common = _common(ref, other)
    expected = (med_r.reindex(common) - med_o.reindex(common)).fillna(0.0)
    np.testing.assert_allclose(res.var["Adj_factor"].to_numpy(), expected.to_numpy(), atol=TOL)
    assert_shifted(res, "P2", other, res.var["Adj_factor"].to_numpy())
    assert_shifted(res, "P1", ref, 0.0)
    assert res.obs["norm_sample"].sum() == len(rs) + len(os_)
    tab = res.uns["olinkpipe"]["normalization"]["subset_normalize"]["factors"]
    np.testing.assert_allclose(tab["median_reference"], med_r.reindex(common), atol=TOL)
    np.testing.assert_array_equal(
        tab["n_other"], lo[lo["SampleID"].isin(os_)].groupby("OlinkID")["NPX"].count()[common]
    )


@pytest.mark.parametrize("controls", ["keep", "drop"])
def test_intensity_factor_matches_pandas(projects, controls):
    ref, other, _ = projects
    res = _quiet(op.pp.intensity_normalize, ref, other, controls=controls)
    lr, lo = long(ref), long(other)
    if controls == "drop":
        lr = lr[~lr["SampleID"].str.startswith("CONTROL")]
        lo = lo[~lo["SampleID"].str.startswith("CONTROL")]
    common = _common(ref, other)
    expected = lr.groupby("OlinkID")["NPX"].median().reindex(common) - lo.groupby("OlinkID")[
        "NPX"
    ].median().reindex(common)
    np.testing.assert_allclose(res.var["Adj_factor"].to_numpy(), expected.to_numpy(), atol=TOL)
    assert_shifted(res, "P2", other, expected.to_numpy())
    n_ctrl = int(ref.obs["is_control"].sum() + other.obs["is_control"].sum())
    n_used = ref.n_obs + other.n_obs - (n_ctrl if controls == "drop" else 0)
    assert res.obs["norm_sample"].sum() == n_used


def test_reference_median_normalize_matches_pandas():
    a = make_adata(30, 10, seed=5)
    refmed = pd.DataFrame(
        {"OlinkID": [f"OID{j:05d}" for j in range(1, 9)], "Reference_NPX": np.linspace(3, 7, 8)}
    )
    samples = [f"S{i}" for i in range(1, 16)]
    with pytest.warns(OlinkpipeWarning, match="no reference median"):
        res = op.pp.reference_median_normalize(a, refmed, samples=samples, project="Study")
    la = long(a)
    med = la[la["SampleID"].isin(samples)].groupby("OlinkID")["NPX"].median()
    expected = refmed.set_index("OlinkID")["Reference_NPX"] - med.reindex(refmed["OlinkID"])
    assert list(res.var_names) == list(refmed["OlinkID"])
    np.testing.assert_allclose(res.var["Adj_factor"].to_numpy(), expected.to_numpy(), atol=TOL)
    np.testing.assert_allclose(
        np.nanmedian(res.X[: len(samples)], axis=0), refmed["Reference_NPX"], atol=1e-12
    )
    assert_shifted(res, "Study", a, expected.to_numpy())
    assert "Project" not in a.obs and "Adj_factor" not in a.var  # input untouched
    ex = res.uns["olinkpipe"]["excluded"]
    assert set(ex["id"]) == {"OID00009", "OID00010"}
    assert (res.obs["Project"] == "Study").all()


def test_normalize_plates_matches_pandas():
    a = make_adata(40, 8, seed=6, plates=3)
    X = a.X.copy()
    X[a.obs["PlateID"].to_numpy() == "P_plate2"] += 1.5  # a plate effect
    a.X = X
    res = op.pp.normalize_plates(a)
    la = long(a)
    la["PlateID"] = np.repeat(a.obs["PlateID"].to_numpy(), a.n_vars)
    la = la[~la["SampleID"].str.startswith("CONTROL")]
    overall = la.groupby("OlinkID")["NPX"].median()
    plate_med = la.groupby(["PlateID", "OlinkID"])["NPX"].median()
    expected = (overall.reindex(plate_med.index, level="OlinkID") - plate_med).rename("exp")
    tab = res.uns["olinkpipe"]["normalization"]["normalize_plates"]["factors"]
    got = tab.groupby(["PlateID", "OlinkID"])["Adj_factor"].first()  # same for both panels
    np.testing.assert_allclose(
        got.reindex(expected.index).to_numpy(), expected.to_numpy(), atol=TOL
    )
    # every NPX and LOD moves by its plate's factor (bit for bit), controls included
    cell = expected.unstack("OlinkID").reindex(columns=a.var_names)
    F = cell.loc[a.obs["PlateID"]].to_numpy()
    res.obs["Project"] = "P"
    a.obs["Project"] = "P"
    assert_shifted(res, "P", a, F)
    # after normalization every plate's median equals the overall median
    study = ~res.obs["is_control"].to_numpy()
    for plate in ("P_plate1", "P_plate2", "P_plate3"):
        rows = study & (res.obs["PlateID"] == plate).to_numpy()
        np.testing.assert_allclose(
            np.nanmedian(res.X[rows], axis=0), overall.reindex(a.var_names), atol=1e-12
        )


def _bridge_selector_reference(adata, n, max_missing):
    """Independent long-format pandas port of the OlinkAnalyze 4.5.0 rules (README)."""
    df = long(adata).merge(
        long(adata, "lod").rename(columns={"NPX": "LOD"}), on=["SampleID", "OlinkID"]
    )
    df["Panel"] = df["OlinkID"].map(adata.var["Panel"])
    qc = adata.obs.set_index("SampleID")["QC_Warning"]
    df["QC_Warning"] = df["SampleID"].map(qc)
    df = df[~df["SampleID"].str.contains("CONTROL_SAMPL")]
    g = df.groupby(["Panel", "SampleID"])["NPX"]
    st = pd.DataFrame(
        {"med": g.median(), "iqr": g.quantile(0.75) - g.quantile(0.25)}
    ).reset_index()
    grp = st.groupby("Panel")
    for c in ("med", "iqr"):
        mean, sd = grp[c].transform("mean"), grp[c].transform("std")  # std: ddof = 1
        st[c + "_lo"], st[c + "_hi"] = mean - 3 * sd, mean + 3 * sd
    inside = (
        (st["med"] < st["med_hi"])
        & (st["med"] > st["med_lo"])
        & (st["iqr"] > st["iqr_lo"])
        & (st["iqr"] < st["iqr_hi"])
    )
    outl = set(st.loc[~inside, "SampleID"])
    df = df[~df["SampleID"].isin(outl) & df["QC_Warning"].str.upper().eq("PASS")].copy()
    df.loc[~(df["NPX"] > df["LOD"]), "NPX"] = np.nan
    per = df.groupby("SampleID").agg(
        Perc=("NPX", lambda s: s.isna().mean()), MeanNPX=("NPX", "mean")
    )
    per = per[per["Perc"] < max_missing].sort_values("MeanNPX", ascending=False)
    idx = np.floor(np.linspace(1, len(per), n + 2))[1:-1].astype(int) - 1
    return per.iloc[idx]


def test_select_bridge_samples_matches_independent_port():
    a = make_adata(60, 16, seed=7, nan_frac=0.0)
    X = a.X.copy()
    X[5, a.var["Panel"].to_numpy() == "Olink Oncology"] += 12  # a QC outlier on one panel
    a.X = X
    res = op.pp.select_bridge_samples(a, 6, max_missing=0.3)
    exp = _bridge_selector_reference(a, 6, 0.3)
    assert list(res.columns) == ["SampleID", "PercAssaysBelowLOD", "MeanNPX"]
    assert list(res["SampleID"]) == list(exp.index)
    np.testing.assert_allclose(res["MeanNPX"], exp["MeanNPX"], atol=1e-12)
    np.testing.assert_allclose(res["PercAssaysBelowLOD"], exp["Perc"], atol=1e-12)
    assert "S6" not in set(res["SampleID"]) and res.attrs["n_outlier_samples"] >= 1
    assert res["MeanNPX"].is_monotonic_decreasing


def test_select_bridge_samples_too_few():
    a = make_adata(12, 6, seed=8)
    with pytest.raises(ValidationError, match="increase max_missing|Increase max_missing"):
        op.pp.select_bridge_samples(a, 11, max_missing=0.05)


def test_sample_on_two_rows_pairs_error_but_subset_uses_both():
    a = make_adata(12, 6, seed=9, n_controls=0)
    b = make_adata(12, 6, seed=10, n_controls=0, shift=1.0)
    # S1 re-run on a second plate in b: two rows, one SampleID (data_model.md)
    b.obs_names = [f"S1@P_plate{i}" if n == "S1" else n for i, n in enumerate(b.obs_names)]
    b.obs.loc["S2", "SampleID"] = "S1"
    b.obs_names = [n if n != "S2" else "S1@P_plate2" for n in b.obs_names]
    with pytest.raises(DuplicateSampleError, match="several rows"):
        op.pp.bridge_normalize(a, b, ["S1"])
    res = op.pp.subset_normalize(a, b, ["S3"], ["S1", "S1"])  # a set: repeats are harmless
    rows = (b.obs["SampleID"] == "S1").to_numpy()
    expected = a["S3"].X[0] - np.nanmedian(b.X[rows], axis=0)
    np.testing.assert_allclose(res.var["Adj_factor"], np.nan_to_num(expected), atol=TOL)


def test_intensity_qc_warning_drop():
    a = make_adata(20, 6, seed=11, n_controls=0)
    b = make_adata(20, 6, seed=12, n_controls=0, shift=0.5)
    res = op.pp.intensity_normalize(a, b, qc_warning="drop")
    la, lb = long(a), long(b)
    pa = la["SampleID"].map(a.obs.set_index("SampleID")["QC_Warning"]).eq("PASS")
    pb = lb["SampleID"].map(b.obs.set_index("SampleID")["QC_Warning"]).eq("PASS")
    expected = (
        la[pa].groupby("OlinkID")["NPX"].median() - lb[pb].groupby("OlinkID")["NPX"].median()
    )
    np.testing.assert_allclose(res.var["Adj_factor"], expected[res.var_names], atol=TOL)
    assert_shifted(res, "P2", b, expected[res.var_names].to_numpy())
    assert res.obs["norm_sample"].sum() == a.obs["qc_pass"].sum() + b.obs["qc_pass"].sum()


def test_bridge_result_writes_to_h5ad(projects, tmp_path):
    ref, other, mapping = projects
    ref.obs["note"] = "x"  # columns present in one project only
    ref.obs["flag"] = True
    other.obs["age"] = 3.0
    res = _quiet(op.pp.bridge_normalize, ref, other, mapping)
    assert str(res.obs["flag"].dtype) == "boolean" and res.obs["flag"].isna().sum() == other.n_obs
    res.write_h5ad(tmp_path / "both.h5ad")
    back = ad.read_h5ad(tmp_path / "both.h5ad")
    np.testing.assert_array_equal(back.var["Adj_factor"], res.var["Adj_factor"])
    factors = back.uns["olinkpipe"]["normalization"]["bridge_normalize"]["factors"]
    assert len(factors) == res.n_vars


def test_normalize_plates_plate_without_study_samples_warns():
    a = make_adata(20, 4, seed=13, n_controls=2)
    ctrl = a.obs["is_control"].to_numpy()
    for key in ("PlateID",):
        tab = a.obsm[key].copy()
        tab.loc[ctrl, :] = "ctrl_plate"
        a.obsm[key] = tab
    with pytest.warns(OlinkpipeWarning, match="ctrl_plate/OID00001.*set to 0"):
        res = op.pp.normalize_plates(a)
    np.testing.assert_array_equal(res.X[ctrl], a.X[ctrl])  # factor 0 on that plate
    tab = res.uns["olinkpipe"]["normalization"]["normalize_plates"]["factors"]
    assert (tab.loc[tab["PlateID"] == "ctrl_plate", "n"] == 0).all()


def test_bridge_coded_and_measured_layers_are_merged():
    a = make_adata(10, 6, seed=14, n_controls=0)
    b = make_adata(10, 6, seed=15, n_controls=0, shift=0.5)
    rng = np.random.default_rng(0)
    cats_a, cats_b = ["PASS", "WARN"], ["ASSAY_WARN", "PASS"]  # different category lists
    code_a = rng.integers(-1, 2, a.shape).astype(np.int32)
    code_b = rng.integers(-1, 2, b.shape).astype(np.int32)
    a.layers["QC_Flag"], b.layers["QC_Flag"] = code_a, code_b
    a.uns["olinkpipe"]["coded_layers"] = {"QC_Flag": cats_a}
    b.uns["olinkpipe"]["coded_layers"] = {"QC_Flag": cats_b}
    measured = np.ones(b.shape, dtype=bool)
    measured[0, :3] = False  # b is not a full grid
    b.layers["measured"] = measured
    res = op.pp.bridge_normalize(a, b, ["S1", "S2", "S3"])
    cats = list(res.uns["olinkpipe"]["coded_layers"]["QC_Flag"])

    def labels(codes, categories):
        return np.where(codes < 0, "", np.asarray(categories, dtype=object)[codes])

    got = labels(res.layers["QC_Flag"], cats)
    want = np.vstack([labels(code_a, cats_a), labels(code_b, cats_b)])
    np.testing.assert_array_equal(got, want)
    expected_measured = np.vstack([np.ones(a.shape, dtype=bool), measured])
    np.testing.assert_array_equal(res.layers["measured"], expected_measured)


def test_normalize_plates_skips_cells_not_measured():
    a = make_adata(20, 6, seed=16, n_controls=0, nan_frac=0.0)
    onc = (a.var["Panel"] == "Olink Oncology").to_numpy()
    tab = a.obsm["PlateID"].copy()
    tab.loc["S1", "Olink Oncology"] = ""  # S1 did not run on the Oncology panel
    a.obsm["PlateID"] = tab
    X, lod = a.X.copy(), a.layers["lod"].copy()
    X[0, onc], lod[0, onc] = np.nan, np.nan
    a.X, a.layers["lod"] = X, lod
    with warnings.catch_warnings():
        warnings.simplefilter("error", OlinkpipeWarning)  # no "set to 0" warning for S1
        res = op.pp.normalize_plates(a)
    tab = res.uns["olinkpipe"]["normalization"]["normalize_plates"]["factors"]
    assert "" not in set(tab["PlateID"])
    assert np.isnan(res.X[0, onc]).all() and not np.isnan(res.X[0, ~onc]).any()


@pytest.mark.parametrize("n_rows", [0, 1, 2, 5, 50, 88, 599, 600, 701])
def test_nanmedian_kernel_equals_numpy(n_rows):
    """Same values as np.nanmedian (numpy uses masked arrays below 600 rows and
    apply_along_axis from 600): NaN, all-NaN, inf, -inf with inf, ties, even and odd."""
    from olinkpipe.pp._utils import nanmedian0

    rng = np.random.default_rng(n_rows)
    block = np.round(rng.normal(size=(n_rows, 400)), 2)  # rounded: ties, as in NPX
    block[rng.random(block.shape) < 0.3] = np.nan
    if n_rows:
        block[:, 0] = np.nan  # all missing -> NaN
        block[0, 1] = np.inf
        block[:, 2] = 1.0
    if n_rows >= 2:
        block[:, 3] = np.nan
        block[:2, 3] = [-np.inf, np.inf]  # mean of -inf and inf: NaN in both
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(block, axis=0)
    got = nanmedian0(block)
    assert got.dtype == np.float64 and got.shape == (400,)
    np.testing.assert_array_equal(got, expected)  # values, NaN where NaN
    finite = np.isfinite(expected) & (expected != 0)  # the sign of a zero may differ
    assert (got[finite].view(np.int64) == expected[finite].view(np.int64)).all()  # bits


def test_two_projects_without_shared_assays_is_an_error():
    a = make_adata(10, 6, seed=21, n_controls=0)
    b = make_adata(10, 6, seed=22, n_controls=0)
    for x in (a, b):
        x.var["Normalization"] = "EXCLUDED"
    with pytest.raises(ValidationError, match="share no assays"):
        _quiet(op.pp.bridge_normalize, a, b, ["S1", "S2"])


def test_obs_columns_keep_their_order():
    """Reference columns first (a Project or bridge column already there keeps its place,
    the new ones follow), then the columns of the other project only."""
    a = make_adata(10, 6, seed=23, n_controls=0)
    b = make_adata(10, 6, seed=24, n_controls=0, shift=0.3)
    a.obs.insert(0, "bridge", False)
    b.obs["batch_note"] = "rerun"
    res = op.pp.bridge_normalize(a, b, ["S1", "S2", "S3"])
    ref_cols = list(a.obs.columns)
    assert list(res.obs.columns) == [*ref_cols, "Project", "bridge_pair", "batch_note"]
    assert res.obs["bridge"].sum() == 6
    assert list(res.obs["batch_note"]) == [""] * 10 + ["rerun"] * 10


def test_nothing_reads_the_arrays_before_the_writes_finish(monkeypatch):
    """Outputs pre-filled with a sentinel and every write deferred to the final wait: the
    result still equals the inline one, so no value is read before the writes finish."""
    from olinkpipe.pp import _pair

    a = make_adata(30, 12, seed=25, n_controls=0)
    b = make_adata(30, 12, seed=26, n_controls=0, shift=0.4)
    b = b[:, ::-1].copy()  # other assay order: the column-gather path
    monkeypatch.setenv(_parallel.ENV_THREADS, "1")
    inline = _quiet(op.pp.bridge_normalize, a, b, ["S1", "S2", "S3"])

    class Deferred(_parallel.Jobs):
        def __init__(self, *, nbytes):
            super().__init__(nbytes=0)  # inline mode...
            self._inline = False  # ...but queue everything, run it only in wait()

    def sentinel(shape, dtype):
        return np.full(shape, True if np.dtype(dtype) == bool else 12345, dtype=dtype)

    monkeypatch.setattr(_parallel, "Jobs", Deferred)
    monkeypatch.setattr(_pair, "_allocate", sentinel)
    deferred = _quiet(op.pp.bridge_normalize, a, b, ["S1", "S2", "S3"])
    np.testing.assert_array_equal(deferred.X, inline.X)
    for key in inline.layers:
        np.testing.assert_array_equal(deferred.layers[key], inline.layers[key])
    pd.testing.assert_frame_equal(deferred.obs, inline.obs)
    pd.testing.assert_frame_equal(deferred.var, inline.var)


@pytest.mark.parametrize("layout", ["interleaved", "panel runs"])
def test_normalize_plates_with_plates_differing_by_panel(layout):
    """A sample on another plate for each panel: every cell shifted by its own panel's plate
    factor, against a per-(panel, plate, assay) loop with np.nanmedian (1e-12; the shift
    itself bit for bit)."""
    a = make_adata(30, 10, seed=8, plates=3)
    if layout == "panel runs":
        a = a[:, np.argsort(a.var["Panel"].to_numpy(), kind="stable")].copy()
    onc = "Olink Oncology"
    tab = a.obsm["PlateID"].copy()
    tab[onc] = np.roll(tab[onc].to_numpy(), 1)  # the oncology plates differ
    a.obsm["PlateID"] = tab
    res = op.pp.normalize_plates(a)
    study = ~a.obs["is_control"].to_numpy()
    pans = a.var["Panel"].to_numpy()
    expected = np.zeros(a.shape)
    for j in range(a.n_vars):
        plate_of = tab[pans[j]].to_numpy()
        overall = np.nanmedian(a.X[study, j])
        for plate in np.unique(plate_of):
            rows = plate_of == plate
            expected[rows, j] = overall - np.nanmedian(a.X[rows & study, j])
    expected[np.isnan(a.X)] = np.nan
    np.testing.assert_allclose(res.X - a.X, expected, atol=1e-12)
    got = res.uns["olinkpipe"]["normalization"]["normalize_plates"]["factors"]
    for _, row in got.iterrows():  # the table holds the factor applied to each cell
        j = a.var_names.get_loc(row["OlinkID"])
        rows = tab[pans[j]].to_numpy() == row["PlateID"]
        shifted = a.X[rows, j] + row["Adj_factor"]
        np.testing.assert_array_equal(res.X[rows, j], shifted)
