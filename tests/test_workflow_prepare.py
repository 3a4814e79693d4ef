"""The workflow's optional data-preparation steps (issue 17): lod, clean, bridging and
normalize_projects, end to end on small simulated exports, checked against independent
computations (the NCLOD formula in numpy, known shifts between projects)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from olinkpipe.errors import ConfigError
from olinkpipe.workflow import load_config, run

OUT = {"figure_formats": ["png"], "h5ad": False, "parquet": False}
BRIDGE = ["OL0013", "OL0004", "OL0015", "OL0001"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A small simulated study (16 samples, 4 controls, 40 assays) with 12 negative
    controls added, and two more exports of it shifted by +0.5 and −1.0 NPX."""
    from olinkpipe.datasets import simulate_cart_study

    tmp = tmp_path_factory.mktemp("prepare")
    simulate_cart_study(
        seed=5, n_treated=8, n_control=0, n_assays=40, out=tmp / "data", n_qc_warnings=0
    )
    long = pd.read_csv(tmp / "data" / "npx_data.csv", sep=None, engine="python")
    rng = np.random.default_rng(7)
    assays = long.drop_duplicates("OlinkID")
    ncs = []
    for i in range(12):
        nc = assays.copy()
        nc["SampleID"] = f"NC{i + 1:02d}"
        nc["Sample_Type"] = "NEGATIVE_CONTROL"
        nc["QC_Warning"] = "PASS"
        nc["NPX"] = np.round(rng.normal(1.0, 0.3, len(nc)), 4)
        ncs.append(nc)
    long = pd.concat([long, *ncs], ignore_index=True)
    long["Index"] = np.arange(1, len(long) + 1)
    long.to_csv(tmp / "npx.csv", index=False)
    for name, shift in (("plus", 0.5), ("minus", -1.0)):
        other = long.copy()
        other["NPX"] = other["NPX"] + shift
        other["LOD"] = other["LOD"] + shift
        other.to_csv(tmp / f"npx_{name}.csv", index=False)
    return tmp, long


def _cfg(tmp, **steps):
    return {
        "inputs": {"npx": str(tmp / "npx.csv"), "samples": str(tmp / "data" / "samples.csv")},
        "qc": {"pca_color": None},
        "output": OUT,
        **steps,
    }


def test_lod_and_clean_steps(study, tmp_path):
    tmp, long = study
    res = run(_cfg(tmp, lod={"method": "nclod"}, clean={}), tmp_path / "out")
    assert res.status["lod"] == "done" and res.status["clean"] == "done", res.status
    assert res.status["bridging"] == "skipped" and res.status["qc"] == "done"
    adata = res.adata
    # NCLOD by hand: median(NC) + max(0.2, 3 SD(NC)) per assay over the 12 negative controls
    nc = long[long["Sample_Type"] == "NEGATIVE_CONTROL"].groupby("OlinkID")["NPX"]
    expected = nc.median() + np.maximum(0.2, 3 * nc.std(ddof=1))
    lod = np.asarray(adata.layers["lod"], float)
    X = np.asarray(adata.X, float)
    want = np.broadcast_to(expected.reindex(adata.var_names).to_numpy(), X.shape)
    measured = ~np.isnan(X)
    assert measured.any()
    np.testing.assert_allclose(lod[measured], want[measured], rtol=0, atol=1e-12)
    assert adata.uns["olinkpipe"]["lod"]["method"] == "nclod"
    # clean removed the controls (recorded as clean's), before QC saw them
    excluded = adata.uns["olinkpipe"]["excluded"]
    cleaned = set(excluded.loc[excluded["step"] == "clean", "id"])
    assert {f"NC{i:02d}" for i in range(1, 13)} <= cleaned
    assert not adata.obs["SampleID"].astype(str).str.startswith(("NC", "CONTROL")).any()
    html = res.report.read_text(encoding="utf-8")
    assert "Data preparation" in html and "negative controls" in html
    assert "clean (OlinkAnalyze&#x27;s clean_npx) removed" in html


def test_clean_keywords_are_passed_on(study, tmp_path):
    tmp, _ = study
    cfg = _cfg(tmp, clean={"remove_control_sample": False})
    cfg["qc"]["controls"] = "keep"
    res = run(cfg, tmp_path / "out")
    assert res.status["clean"] == "done"
    assert res.adata.obs["SampleID"].astype(str).str.startswith("NC").sum() == 12


@pytest.mark.parametrize(("reference", "factor"), [("inputs", -0.5), ("bridging", 0.5)])
def test_bridging_step(study, tmp_path, reference, factor):
    import olinkpipe as op

    tmp, _ = study
    bridging = {"npx": str(tmp / "npx_plus.csv"), "samples": BRIDGE, "reference": reference}
    res = run(_cfg(tmp, bridging=bridging), tmp_path / "out")
    assert res.status["bridging"] == "done", res.status
    adata = res.adata
    # the second export reads 0.5 NPX higher: the other project's factor is ∓0.5
    np.testing.assert_allclose(adata.var["Adj_factor"], factor, rtol=0, atol=1e-9)
    assert adata.obs["Project"].value_counts().to_dict() == {"P1": 16, "P2": 16}
    assert np.allclose(res.tables["bridging_factors"]["Adj_factor"], factor, atol=1e-9)
    assert "bridging" in res.figures
    # the same as pp.bridge_normalize on the two exports (QC then drops the controls)
    a = op.read_npx(tmp / "npx.csv")
    b = op.read_npx(tmp / "npx_plus.csv")
    ref, other = (a, b) if reference == "inputs" else (b, a)
    direct = op.pp.bridge_normalize(ref, other, BRIDGE)
    direct = direct[adata.obs_names, adata.var_names]
    np.testing.assert_allclose(np.asarray(adata.X), np.asarray(direct.X), rtol=0, atol=1e-12)
    assert "patient" in adata.obs  # the sample sheet is joined to both projects
    assert adata.obs["patient"].notna().sum() == 32


def test_normalize_projects_step(study, tmp_path):
    tmp, long = study
    ids = long.loc[long["Sample_Type"] == "SAMPLE", "SampleID"].unique()
    subset = [str(i) for i in ids if i not in BRIDGE][:6]  # in P2 after its step, and in P3
    plan = [
        {"project": "P1"},
        {"project": "P2", "normalize_to": "P1", "method": "bridge", "samples": BRIDGE},
        {"project": "P3", "normalize_to": "P2", "method": "subset", "samples": subset},
    ]
    section = {
        "projects": {"P2": str(tmp / "npx_plus.csv"), "P3": str(tmp / "npx_minus.csv")},
        "plan": plan,
    }
    res = run(_cfg(tmp, normalize_projects=section), tmp_path / "out")
    assert res.status["normalize_projects"] == "done", res.status
    adata = res.adata
    # P2 = P1 + 0.5 (factor −0.5); P3 = P1 − 1.0, normalized to the normalized P2 (+1.0)
    factors = adata.varm["Adj_factor"]
    np.testing.assert_allclose(factors["P1"], 0.0, atol=1e-9)
    np.testing.assert_allclose(factors["P2"], -0.5, atol=1e-9)
    np.testing.assert_allclose(factors["P3"], 1.0, atol=1e-9)
    counts = adata.obs["Project"].value_counts().to_dict()
    assert counts == {"P1": 16, "P2": 16 - len(BRIDGE), "P3": 16}  # P2's bridge copies go
    assert "normalize_projects_factors" in res.tables


@pytest.mark.parametrize(
    ("section", "pattern"),
    [
        ({"lod": {"method": "ncl"}}, r"'lod\.method'.*'nclod', 'fixed' or 'both'"),
        ({"lod": {"method": "fixed"}}, r"'lod'.*fixed_lod"),
        ({"clean": {"remove_qc_warnings": False}}, r"did you mean 'remove_qc_warning'"),
        ({"bridging": {"npx": "b.csv"}}, r"'bridging\.samples' is required"),
        (
            {"normalize_projects": {"projects": {"P2": "b.csv"}, "plan": [{"project": "P1"}]}},
            r"'normalize_projects\.plan'",
        ),
        (
            {
                "normalize_projects": {
                    "projects": {"P2": "b.csv"},
                    "plan": [{"project": "P1"}, {"project": "P9", "normalize_to": "P1"}],
                }
            },
            r"plan names project\(s\) \['P9'\]",
        ),
    ],
)
def test_prepare_config_errors(section, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config({"inputs": {"npx": "a.csv"}, **section})


def test_missing_further_export_is_found_before_writing(study, tmp_path):
    tmp, _ = study
    cfg = _cfg(tmp, bridging={"npx": str(tmp / "nope.csv"), "samples": BRIDGE})
    with pytest.raises(ConfigError, match=r"nope\.csv: input 'bridging\.npx' not found"):
        run(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_bridging_dask_backed_equals_in_memory(study, tmp_path):
    pytest.importorskip("dask")
    tmp, _ = study
    bridging = {"npx": str(tmp / "npx_plus.csv"), "samples": BRIDGE}
    diff = {"groupby": "timepoint", "reference": "pre", "target": "post"}
    memory = run(_cfg(tmp, bridging=bridging, differential=diff), tmp_path / "memory")
    cfg = _cfg(tmp, bridging=bridging, differential=diff)
    cfg["compute"] = {"chunks": "panel", "scheduler": "synchronous"}
    lazy = run(cfg, tmp_path / "lazy")
    assert lazy.status == memory.status and lazy.status["bridging"] == "done"
    assert type(lazy.adata.X).__module__.startswith("dask")
    for name in ("bridging_factors", "differential"):
        pd.testing.assert_frame_equal(
            lazy.tables[name], memory.tables[name], check_exact=False, rtol=0, atol=1e-10
        )
