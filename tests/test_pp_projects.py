"""pp.normalize_projects (OlinkAnalyze's olink_normalization_n) against independent numpy.

Expected values are computed here with numpy on the raw matrices, chaining by hand the
way OlinkAnalyze's ``olink_normalization_n`` does (R/olink_normalization_n.R, OA 5.0.2):
row 1 is the reference (``Adj_factor = 0``); every later project is normalized to the
*already normalized* rows of its ``normalize_to`` project; a bridge step uses
``median(ref − other)`` over the bridge pairs, a subset step ``median(ref subset) −
median(other subset)``; a bridge-normalized project's own bridge samples are removed from
the result. Tolerance 1e-12 (numpy's and the package's medians take the same order
statistics; only the additions round).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from builders import make_adata

import olinkpipe as op
from olinkpipe.errors import MissingColumnError, OlinkpipeWarning, ValidationError

TOL = 1e-12


def med(M):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(M, axis=0)


def rows_of(adata, ids):
    return [list(adata.obs["SampleID"]).index(i) for i in ids]


@pytest.fixture
def three():
    """P1 (reference), P2 reading 0.7 higher, P3 reading 1.3 lower and lacking one assay."""
    p1 = make_adata(30, 12, seed=1, project="P1")
    p2 = make_adata(30, 12, seed=2, project="P2", shift=0.7)
    p3 = make_adata(25, 13, seed=3, project="P3", shift=-1.3, prefix="T")
    p3 = p3[:, p3.var_names != "OID00005"].copy()  # OID00005 absent from P3, OID00013 extra
    return {"P1": p1, "P2": p2, "P3": p3}


BRIDGE = ["S1", "S2", "S3", "S4", "S5", "S6"]


def plan3(samples3=None):
    return pd.DataFrame(
        {
            "project": ["P1", "P2", "P3"],
            "normalize_to": [None, "P1", "P2"],
            "method": [None, "bridge", "subset"],
            "samples": [None, BRIDGE, samples3],
        }
    )


def run(projects, plan, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return op.pp.normalize_projects(projects, plan, **kw)


def test_chain_matches_numpy(three):
    p1, p2, p3 = three["P1"], three["P2"], three["P3"]
    sub_ref, sub_other = ["S7", "S8", "S9", "S10", "S11"], ["T1", "T2", "T3", "T4"]
    out = run(three, plan3({"DF1": sub_ref, "DF2": sub_other}))
    shared = [v for v in p1.var_names if v in set(p3.var_names)]
    assert list(out.var_names) == shared
    c1 = [list(p1.var_names).index(v) for v in shared]
    c3 = [list(p3.var_names).index(v) for v in shared]
    X1, X2, X3 = (np.asarray(a.X, float) for a in (p1, p2, p3))
    # step 1: bridge P2 -> P1 over the pairs
    f2 = med(X1[rows_of(p1, BRIDGE)] - X2[rows_of(p2, BRIDGE)])
    X2n = X2 + f2
    # step 2: subset P3 -> the normalized P2 (bridge rows of P2 removed, as OA)
    f3 = med(X2n[rows_of(p2, sub_ref)][:, c1]) - med(X3[rows_of(p3, sub_other)][:, c3])
    adj = out.varm["Adj_factor"]
    assert list(adj.columns) == ["P1", "P2", "P3"]
    np.testing.assert_array_equal(adj["P1"], 0.0)
    np.testing.assert_allclose(adj["P2"], f2[c1], rtol=0, atol=TOL)
    np.testing.assert_allclose(adj["P3"], f3, rtol=0, atol=TOL)
    proj = out.obs["Project"].to_numpy()
    kept2 = [i for i in range(p2.n_obs) if p2.obs["SampleID"].iloc[i] not in BRIDGE]
    np.testing.assert_array_equal(np.asarray(out.X)[proj == "P1"], X1[:, c1])
    np.testing.assert_allclose(np.asarray(out.X)[proj == "P2"], X2n[kept2][:, c1], atol=TOL)
    np.testing.assert_allclose(np.asarray(out.X)[proj == "P3"], X3[:, c3] + f3, atol=TOL)
    lod3 = np.asarray(p3.layers["lod"], float)[:, c3] + f3
    np.testing.assert_allclose(np.asarray(out.layers["lod"])[proj == "P3"], lod3, atol=TOL)
    # OA removes the non-reference copies of the bridge samples, and says so
    assert (proj == "P2").sum() == p2.n_obs - len(BRIDGE)
    exc = out.uns["olinkpipe"]["excluded"]
    gone = exc[exc["step"] == "normalize_projects"]
    assert sorted(gone["id"]) == sorted(BRIDGE)
    assert set(exc.loc[exc["kind"] == "assay", "id"]) >= {"OID00005", "OID00013"}
    # the long factor table agrees with varm
    tab = out.uns["olinkpipe"]["normalization"]["normalize_projects"]["factors"]
    t3 = tab[tab["Project"] == "P3"].set_index("OlinkID")["Adj_factor"]
    np.testing.assert_allclose(t3.reindex(out.var_names), f3, atol=TOL)
    assert set(tab["normalize_to"]) == {"P1", "P2"}
    # one-step records of the two-project functions do not leak into the result
    assert set(out.uns["olinkpipe"]["normalization"]) == {"normalize_projects"}
    assert not {"bridge", "bridge_pair", "norm_sample"} & set(out.obs.columns)


def test_chain_equals_two_project_functions_by_hand(three):
    """Same numbers as calling bridge_normalize then subset_normalize (all samples)."""
    p1, p2, p3 = three["P1"], three["P2"], three["P3"]
    out = run(three, plan3(None))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        b = op.pp.bridge_normalize(p1, p2, BRIDGE)
        p2n = b[(b.obs["Project"] == "P2").to_numpy() & ~b.obs["bridge"].to_numpy()].copy()
        s = op.pp.subset_normalize(p2n, p3, list(p2n.obs_names), list(p3.obs_names))
    np.testing.assert_allclose(
        out.varm["Adj_factor"]["P3"], s.var["Adj_factor"].reindex(out.var_names), atol=TOL
    )
    np.testing.assert_allclose(
        out.varm["Adj_factor"]["P2"], b.var["Adj_factor"].reindex(out.var_names), atol=TOL
    )


def test_names_keep_bridge_and_oa_sample_lists(three):
    out = run(three, plan3(None), keep_bridge=True)
    assert out.n_obs == sum(a.n_obs for a in three.values())
    # S1 is in P1 and P2: suffixed; T1 only in P3: unchanged
    assert "S1@P1" in out.obs_names and "S1@P2" in out.obs_names and "T1" in out.obs_names
    assert out.obs_names.is_unique
    assert list(out.obs["Project"].cat.categories) == ["P1", "P2", "P3"]
    # OA's list(DF1 = , DF2 = ) form for bridge pairs gives the same factors
    plan = plan3(None)
    plan.at[1, "samples"] = {"DF1": BRIDGE, "DF2": BRIDGE}
    out2 = run(three, plan, keep_bridge=True)
    pd.testing.assert_frame_equal(out.varm["Adj_factor"], out2.varm["Adj_factor"])


def test_pooled_normalize_to(three):
    """normalize_to 'P1,P2' pools both normalized projects (OA's comma-separated list)."""
    p1, p2, p3 = three["P1"], three["P2"], three["P3"]
    plan = plan3(None)
    plan.at[2, "normalize_to"] = "P1,P2"
    out = run(three, plan)
    shared = list(out.var_names)
    c1 = [list(p1.var_names).index(v) for v in shared]
    c3 = [list(p3.var_names).index(v) for v in shared]
    X1, X2, X3 = (np.asarray(a.X, float) for a in (p1, p2, p3))
    f2 = med(X1[rows_of(p1, BRIDGE)] - X2[rows_of(p2, BRIDGE)])
    keep2 = [i for i in range(p2.n_obs) if p2.obs["SampleID"].iloc[i] not in BRIDGE]
    pooled = np.vstack([X1, (X2 + f2)[keep2]])[:, c1]
    np.testing.assert_allclose(out.varm["Adj_factor"]["P3"], med(pooled) - med(X3[:, c3]))


def test_reference_only(three):
    plan = pd.DataFrame(
        {"project": ["P1"], "normalize_to": [""], "method": [""], "samples": [None]}
    )
    out = run({"P1": three["P1"]}, plan)
    np.testing.assert_array_equal(np.asarray(out.X), np.asarray(three["P1"].X))
    assert (out.obs["Project"] == "P1").all()


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda p: p.drop(columns="method"), "method"),
        (lambda p: p.assign(project=["P1", "P2", "PX"]), "not among the given projects"),
        (lambda p: p.assign(project=["P1", "P2", "P2"]), "more than once"),
        (lambda p: p.assign(normalize_to=[None, None, "P1"]), "exactly one reference"),
        (lambda p: p.assign(normalize_to=[None, "P3", "P2"]), "cycle"),
        (lambda p: p.assign(normalize_to=[None, "P1", "P3"]), "itself"),
        (lambda p: p.assign(normalize_to=[None, "P1", "PZ"]), "unknown project"),
        (lambda p: p.assign(method=[None, "bridge", "median"]), "method must be one of"),
        (lambda p: p.assign(samples=[None, None, None]), "no bridge samples"),
        (lambda p: p.iloc[[1, 0, 2]], "first row"),
    ],
)
def test_plan_errors(three, edit, pattern):
    with pytest.raises((ValidationError, MissingColumnError), match=pattern) as info:
        run(three, edit(plan3(None)))
    assert "Rows:" in str(info.value) or "method" in str(info.value)


def test_missing_bridge_sample_names_row(three):
    plan = plan3(None)
    plan.at[1, "samples"] = ["S1", "NOPE"]
    with pytest.raises(ValidationError, match=r"plan row 1 \(project 'P2'\).*NOPE"):
        run(three, plan)
    plan = plan3({"DF1": ["S7"], "DF2": ["MISSING3"]})
    with pytest.raises(ValidationError, match=r"plan row 2 .*MISSING3"):
        run(three, plan)
    # a dropped bridge sample of P2 cannot serve again as P3's reference sample
    plan = plan3({"DF1": ["S1"], "DF2": ["T1"]})
    with pytest.raises(ValidationError, match="dropped as bridge samples"):
        run(three, plan)


def test_project_not_in_plan(three):
    plan = plan3(None).iloc[:2]
    with pytest.raises(ValidationError, match="absent from the plan"):
        run(three, plan)


def test_result_survives_h5ad(three, tmp_path):
    import anndata as ad

    out = run(three, plan3(None))
    out.write_h5ad(tmp_path / "n.h5ad")
    back = ad.read_h5ad(tmp_path / "n.h5ad")
    np.testing.assert_array_equal(back.varm["Adj_factor"].to_numpy(), out.varm["Adj_factor"])
    rec = back.uns["olinkpipe"]["normalization"]["normalize_projects"]
    assert list(rec["plan"]["project"]) == ["P1", "P2", "P3"]
    assert list(back.obs["Project"].cat.categories) == ["P1", "P2", "P3"]
