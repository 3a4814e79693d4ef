"""QC summaries, outlier flags, filtering and LOD handling against pandas/numpy references.

Tolerance 1e-12 throughout (same order statistics / sums computed two ways).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from builders import make_adata

import olinkpipe as op
from olinkpipe._layout import below_lod_matrix
from olinkpipe.errors import (
    DesignError,
    MissingColumnError,
    NPXFormatError,
    OlinkpipeWarning,
    ValidationError,
)

TOL = 1e-12


def tidy(adata):
    df = pd.DataFrame(adata.X, index=adata.obs_names, columns=adata.var_names)
    out = df.stack(future_stack=True).rename("NPX").reset_index()
    out.columns = ["sample", "OlinkID", "NPX"]
    out["LOD"] = adata.layers["lod"].ravel()
    out["Panel"] = out["OlinkID"].map(adata.var["Panel"])
    out["below"] = (out["NPX"] < out["LOD"]).astype(float)
    return out


def test_qc_summary_by_sample_matches_pandas():
    a = make_adata(30, 12, seed=1)
    got = op.pp.qc_summary(a).set_index(["sample", "Panel"]).sort_index()
    t = tidy(a)
    g = t.groupby(["sample", "Panel"])
    exp = pd.DataFrame(
        {
            "median": g["NPX"].median(),
            "iqr": g["NPX"].quantile(0.75) - g["NPX"].quantile(0.25),  # linear = R type 7
            "n_assays": g["NPX"].count(),
            "pct_below_lod": 100 * g["below"].sum() / g["NPX"].count(),
        }
    ).sort_index()
    for c in exp.columns:
        np.testing.assert_allclose(got[c].to_numpy(float), exp[c].to_numpy(float), atol=TOL)
    assert op.pp.qc_summary(a).attrs["by"] == "sample"


def test_qc_summary_by_assay_matches_pandas():
    a = make_adata(30, 12, seed=2)
    got = op.pp.qc_summary(a, by="assay").set_index("OlinkID")
    t = tidy(a)
    t = t[~t["sample"].str.startswith("CONTROL")]
    g = t.groupby("OlinkID")
    np.testing.assert_allclose(got["missing_freq"], g["NPX"].apply(lambda s: s.isna().mean()))
    below = g["below"].sum() / g["NPX"].count()
    np.testing.assert_allclose(got["below_lod_freq"], below.reindex(got.index), atol=TOL)
    np.testing.assert_allclose(got["median"], g["NPX"].median().reindex(got.index), atol=TOL)
    with pytest.raises(DesignError, match="by"):
        op.pp.qc_summary(a, by="panel")


def _limits_outliers(summary, sd):
    flags = set()
    for _, grp in summary.groupby("Panel"):
        med, iqr = grp["median"], grp["iqr"]
        ok = (
            (med < med.mean() + sd * med.std())
            & (med > med.mean() - sd * med.std())
            & (iqr > iqr.mean() - sd * iqr.std())
            & (iqr < iqr.mean() + sd * iqr.std())
        )
        flags |= set(grp.loc[~ok, "sample"])
    return flags


def test_flag_outliers_qc_rule_and_pca():
    a = make_adata(60, 30, seed=3, nan_frac=0.02)
    X = a.X.copy()
    onc = a.var["Panel"].to_numpy() == "Olink Oncology"
    X[4, onc] += 6.0  # median outlier on one panel
    X[9] = X[9] + np.random.default_rng(0).normal(0, 6, a.n_vars)  # scrambled profile
    X[20:26, :3] = np.nan  # 3 assays missing in 6 / 62 samples (> 5 %)
    a.X = X
    res = op.pp.flag_outliers(a, sd=3.0)
    expected = _limits_outliers(op.pp.qc_summary(a), 3.0)
    assert set(res.obs_names[res.obs["qc_outlier"]]) == expected
    assert "S5" in expected
    assert bool(res.obsm["qc_outlier"].loc["S5", "Olink Oncology"])
    assert not bool(res.obsm["qc_outlier"].loc["S5", "Olink Inflammation"])
    # PCA rule against an independent SVD (scores are sign-ambiguous; the rule is not), with
    # OlinkAnalyze's preprocessing: <= 88 samples, so assays > 5 % missing are left out
    keep = np.isnan(a.X).mean(axis=0) <= 0.05
    assert res.uns["olinkpipe"]["outliers"]["n_assays_too_missing"] == int((~keep).sum()) > 0
    Xk = a.X[:, keep]
    Xi = np.where(np.isnan(Xk), np.nanmedian(Xk, axis=0), Xk)
    Z = (Xi - Xi.mean(0)) / Xi.std(0, ddof=1)
    U, S, _ = np.linalg.svd(Z - Z.mean(0), full_matrices=False)
    scores = U[:, :2] * S[:2]
    lo = scores.mean(0) - 3 * scores.std(0, ddof=1)
    hi = scores.mean(0) + 3 * scores.std(0, ddof=1)
    exp_pca = ~((scores > lo) & (scores < hi)).all(axis=1)
    np.testing.assert_array_equal(res.obs["pca_outlier"].to_numpy(), exp_pca)
    assert (res.obs["outlier"] == (res.obs["qc_outlier"] | res.obs["pca_outlier"])).all()
    lim = res.uns["olinkpipe"]["outliers"]["limits"]
    assert set(lim["Panel"]) == set(a.var["Panel"])
    assert "outlier" not in a.obs  # input untouched


def test_filter_records_every_removal():
    a = make_adata(30, 12, seed=4)
    a.var.loc["OID00003", ["is_control", "AssayType"]] = [True, "ext_ctrl"]
    X = a.X.copy()
    X[:, a.var_names.get_loc("OID00007")] = a.layers["lod"][:, 6] - 1  # never detected
    a.X = X
    with pytest.warns(OlinkpipeWarning, match="excluded"):
        res = op.pp.filter(a, qc_warning="drop", controls="drop", min_detected=0.5)
    ex = res.uns["olinkpipe"]["excluded"]
    qc_fail = set(a.obs_names[~a.obs["qc_pass"]])
    assert set(ex.loc[ex["reason"] == "QC warning", "id"]) == qc_fail
    assert set(ex.loc[ex["reason"] == "control sample", "id"]) == {
        "CONTROL_SAMPLE_AS 1",
        "CONTROL_SAMPLE_AS 2",
    }
    assert set(ex.loc[ex["reason"] == "control assay", "id"]) == {"OID00003"}
    assert "OID00007" in set(ex.loc[ex["kind"] == "assay", "id"])
    removed = set(ex["id"])
    assert set(res.obs_names) == set(a.obs_names) - removed
    assert set(res.var_names) == set(a.var_names) - removed
    assert res.uns["olinkpipe"]["filter"]["n_samples_removed"] == 4


def test_filter_mask_keeps_samples_and_sets_nan():
    a = make_adata(20, 6, seed=5, nan_frac=0.0)
    res = op.pp.filter(a, qc_warning="mask", controls="keep")
    fail = ~a.obs["qc_pass"].to_numpy()
    assert res.n_obs == a.n_obs
    assert np.isnan(res.X[fail]).all() and not np.isnan(res.X[~fail]).any()
    assert res.uns["olinkpipe"]["filter"]["n_values_masked"] == fail.sum() * a.n_vars


def test_filter_drops_outliers():
    a = make_adata(40, 10, seed=6)
    X = a.X.copy()
    X[3] += 10
    a.X = X
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        res = op.pp.filter(a, qc_warning="keep", controls="keep", outliers="drop")
    assert "S4" not in res.obs_names
    ex = res.uns["olinkpipe"]["excluded"]
    assert "S4" in set(ex.loc[ex["reason"].str.startswith("outlier"), "id"])


def test_below_and_censor_lod():
    a = make_adata(20, 6, seed=7)
    a.layers.pop("below_lod")
    b = op.pp.below_lod(a)
    np.testing.assert_array_equal(b.layers["below_lod"], a.X < a.layers["lod"])
    assert "below_lod" not in a.layers
    below = a.X < a.layers["lod"]
    for how, fill in (
        ("nan", np.full(a.shape, np.nan)),
        ("lod", a.layers["lod"]),
        ("lod_half", a.layers["lod"] - 1.0),  # log2 scale: half the linear LOD
    ):
        c = op.pp.censor_lod(a, how=how)
        np.testing.assert_array_equal(c.X[below], fill[below])
        np.testing.assert_array_equal(c.X[~below], a.X[~below])
        assert c.uns["olinkpipe"]["censor_lod"]["n_replaced"] == below.sum()
    a.uns["olinkpipe"]["data_type"] = "Quantified"
    c = op.pp.censor_lod(a, how="lod_half")
    np.testing.assert_array_equal(c.X[below], a.layers["lod"][below] / 2)
    assert np.array_equal(op.pp.censor_lod(a, how="keep").X, a.X, equal_nan=True)
    a.layers.pop("lod")
    with pytest.raises(MissingColumnError, match="compute_lod"):
        op.pp.below_lod(a)


def test_compute_lod_nclod_matches_pandas():
    a = make_adata(30, 8, seed=8, n_nc=12, nan_frac=0.0)
    a.layers.pop("lod")
    res = op.pp.compute_lod(a)
    nc = a.obs["SampleType"] == "NEGATIVE_CONTROL"
    v = pd.DataFrame(a.X[nc.to_numpy()], columns=a.var_names)
    expected = v.median() + np.maximum(0.2, 3 * v.std())  # pandas std: ddof = 1
    np.testing.assert_allclose(res.layers["lod"][0], expected.to_numpy(), atol=TOL)
    np.testing.assert_array_equal(below_lod_matrix(res), res.X < res.layers["lod"])
    assert "below_lod" not in res.layers  # computed on demand
    assert res.uns["olinkpipe"]["lod"]["method"] == "nclod"


def test_compute_lod_per_plate_and_too_few_controls():
    a = make_adata(30, 6, seed=9, n_nc=24, nan_frac=0.0, plates=2)
    res = op.pp.compute_lod(a, groupby="PlateID")
    for plate in ("P_plate1", "P_plate2"):
        rows = (a.obs["PlateID"] == plate).to_numpy()
        v = pd.DataFrame(a.X[rows & (a.obs["SampleType"] == "NEGATIVE_CONTROL").to_numpy()])
        exp = v.median() + np.maximum(0.2, 3 * v.std())
        np.testing.assert_allclose(res.layers["lod"][rows][0], exp.to_numpy(), atol=TOL)
    few = make_adata(30, 6, seed=9, n_nc=8, nan_frac=0.0)
    with pytest.raises(ValidationError, match="at least 10 passing negative controls"):
        op.pp.compute_lod(few)
    with pytest.raises(ValidationError, match="at least 13 .* per assay and PlateID"):
        op.pp.compute_lod(a, groupby="PlateID", min_nc=13)


def test_compute_lod_intensity_shift_from_pc_normalized():
    a = make_adata(30, 6, seed=10, n_nc=12, nan_frac=0.0)
    pc = a.X + 2.0
    a.layers["PCNormalizedNPX"] = pc
    res = op.pp.compute_lod(a)
    nc = (a.obs["SampleType"] == "NEGATIVE_CONTROL").to_numpy()
    samples = (a.obs["SampleType"] == "SAMPLE").to_numpy()
    v = pd.DataFrame(pc[nc])
    lod_pc = v.median() + np.maximum(0.2, 3 * v.std())
    for plate in a.obs["PlateID"].unique():  # OlinkAnalyze: the median of each plate's samples
        rows = (a.obs["PlateID"] == plate).to_numpy()
        exp = lod_pc - np.median(pc[samples & rows], axis=0)
        np.testing.assert_allclose(res.layers["lod"][rows][0], exp.to_numpy(), atol=TOL)
    old = op.pp.compute_lod(a, intensity_median="all")  # olinkpipe's earlier rule
    exp = lod_pc - np.median(pc[samples], axis=0)
    np.testing.assert_allclose(old.layers["lod"][0], exp.to_numpy(), atol=TOL)


def test_read_fixed_lod(tmp_path):
    a = make_adata(10, 4, seed=11)
    a.var["DataAnalysisRefID"] = "D10"
    table = pd.DataFrame(
        {
            "OlinkID": list(a.var_names) * 2,
            "DataAnalysisRefID": ["D10"] * 4 + ["D99"] * 4,
            "LodNPX": [0.5, 1.5, 2.5, 3.5, 9, 9, 9, 9],
            "LodCount": 150,
            "LodMethod": "lod_npx",
        }
    )
    path = tmp_path / "fixed_lod.csv"
    table.to_csv(path, sep=";", index=False)
    with pytest.warns(OlinkpipeWarning, match="PCNormalizedNPX"):
        res = op.pp.read_fixed_lod(a, path)  # Intensity data without PC-normalized NPX
    expected = np.where(np.isnan(a.X), np.nan, np.array([0.5, 1.5, 2.5, 3.5])[None, :])
    np.testing.assert_array_equal(res.layers["lod"], expected)
    assert res.uns["olinkpipe"]["lod"]["file"] == str(path)
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"OlinkID": ["OID00001"], "LOD": [1.0]}).to_csv(bad, sep=";", index=False)
    with pytest.raises(NPXFormatError, match="LodNPX"):
        op.pp.read_fixed_lod(a, bad)
    with pytest.raises(NPXFormatError, match="not found"):
        op.pp.read_fixed_lod(a, tmp_path / "missing.csv")


def test_pass_labels_follow_the_data_model():
    # Pass / PASS / OK / missing count as a pass (docs/data_model.md); anything else fails
    a = make_adata(6, 4, seed=12, n_controls=0)
    del a.obs["qc_pass"]
    del a.layers["qc_warning"]
    labels = ["Pass", "OK", "", "PASS", "WARN", "Warning"]
    a.obsm["QC_Warning"] = pd.DataFrame(
        {p: labels for p in a.obsm["QC_Warning"]}, index=a.obs_names
    )
    with pytest.warns(OlinkpipeWarning, match="QC warning"):
        res = op.pp.filter(a, qc_warning="drop", controls="keep")
    assert list(res.obs_names) == ["S1", "S2", "S3", "S4"]
    masked = op.pp.filter(a, qc_warning="mask", controls="keep")
    assert np.isnan(masked.X[4:]).all() and not np.isnan(masked.X[:4]).all(axis=1).any()


def test_flag_outliers_without_enough_samples_for_pca():
    adata = make_adata(10, 6, seed=3, n_controls=0)[:1].copy()
    with pytest.warns(OlinkpipeWarning, match="no PCA outliers flagged"):
        out = op.pp.flag_outliers(adata)
    assert not out.obs["pca_outlier"].any()
    assert "PCA needs" in out.uns["olinkpipe"]["outliers"]["pca_skipped"]


def test_pca_outliers_with_as_many_components_as_the_data_allow():
    """3 samples × 2 assays (or one assay): PC count = min(shape) works (full SVD)."""
    adata = make_adata(10, 6, seed=4, n_controls=0)
    for sub in (adata[:3, :2].copy(), adata[:5, :1].copy()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OlinkpipeWarning)
            out = op.pp.flag_outliers(sub)
        assert "variance_ratio" in out.uns["olinkpipe"]["outliers"]


def test_pca_scores_lanczos_match_svd():
    """> 64 assays (Lanczos on Z): scores equal an SVD of the standardized matrix to 1e-8
    (up to each component's sign), variance ratios to 1e-10."""
    from olinkpipe.pp.qc import pca_scores

    a = make_adata(150, 90, seed=6, n_controls=0, nan_frac=0.0)
    got, ratio, n_imp, n_miss = pca_scores(a, n_comps=3)
    assert n_imp == 0 and n_miss == 0
    Z = (a.X - a.X.mean(0)) / a.X.std(0, ddof=1)
    U, S, _ = np.linalg.svd(Z, full_matrices=False)
    exp = U[:, :3] * S[:3]
    sign = np.sign((got.to_numpy() * exp).sum(axis=0))
    np.testing.assert_allclose(got.to_numpy(), exp * sign, atol=1e-8)
    np.testing.assert_allclose(ratio, S[:3] ** 2 / (S**2).sum(), rtol=1e-10)
