"""tl on a dask-backed AnnData equals the in-memory result, and stays lazy.

Reference: the in-memory path itself (tested against scipy/statsmodels/R in test_de*.py,
test_models.py, test_lmer.py). Every frame must match within 1e-10 (rtol and atol), attrs
and warnings exactly. The dask copies split the assays into blocks of all samples, uneven,
single and one-assay blocks included.
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from builders import make_repeated as make_long
from builders import make_study, split_plot

import olinkpipe as op
from olinkpipe.errors import DesignError, OlinkpipeError

da = pytest.importorskip("dask.array")
TOL = 1e-10
DE = {"groupby": "Time", "reference": "Baseline"}


def lazy(adata: ad.AnnData, chunks, *, rows=-1, layer: str | None = None) -> ad.AnnData:
    """A copy whose X (or layer) is a dask array of all samples × blocks of assays."""
    out = adata.copy()
    src = adata.X if layer is None else adata.layers[layer]
    x = da.from_array(np.asarray(src), chunks=(rows, chunks))
    if layer is None:
        out.X = x
    else:
        out.layers[layer] = x
    return out


def _run(func, adata, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = func(adata, **kw)
    return res, [(str(w.message), w.category) for w in caught]


def assert_same(func, adata, chunks, **kw):
    """The dask-backed run equals the in-memory one: frame, attrs and warnings."""
    exp, w_exp = _run(func, adata, **kw)
    got, w_got = _run(func, lazy(adata, chunks), **kw)
    pd.testing.assert_frame_equal(got, exp, check_exact=False, rtol=TOL, atol=TOL)
    assert got.attrs == exp.attrs
    assert w_got == w_exp
    return exp


CHUNKS = [(7, 9, 14), 30, (29, 1), 4]  # uneven, one block, control assay alone, many


@pytest.fixture(scope="module")
def study():
    return make_study()


@pytest.mark.parametrize("chunks", CHUNKS)
@pytest.mark.parametrize("pair", [None, "Subject"])
@pytest.mark.parametrize("method", ["ttest", "wilcoxon", "moderated"])
def test_differential_every_method_equals_in_memory(study, method, pair, chunks):
    exp = assert_same(op.tl.differential, study, chunks, method=method, pair=pair, **DE)
    assert exp["reason"].ne("").any()  # edge assays (too few, zero variance) included
    assert exp.attrs["excluded_assays"] == ["OID00029"]


@pytest.mark.parametrize("pair", [None, "Subject"])
@pytest.mark.parametrize("ci", ["order", "uniroot"])
def test_wilcoxon_ci_modes_and_exact(study, ci, pair):
    tied = make_study(ties=True, seed=3)
    for adata in (study, tied):
        assert_same(
            op.tl.differential,
            adata,
            (7, 9, 14),
            method="wilcoxon",
            wilcoxon_ci=ci,
            pair=pair,
            **DE,
        )
    assert_same(op.tl.differential, study, 8, method="wilcoxon", exact=True, pair=pair, **DE)


@pytest.mark.parametrize("pair", [None, "Subject"])
def test_moderated_with_covariates_pools_the_prior_over_blocks(study, pair):
    adata = study.copy()
    adata.obs["site"] = np.resize(["a", "b", "c"], adata.n_obs)
    exp = assert_same(
        op.tl.differential,
        adata,
        (5, 11, 14),
        method="moderated",
        pair=pair,
        covariates=["age", "site"],
        **DE,
    )
    # one block's prior is not the global one: the combiner really pooled the blocks
    part, _ = _run(
        op.tl.differential,
        adata[:, :7].copy(),
        method="moderated",
        pair=pair,
        covariates=["age", "site"],
        **DE,
    )
    assert part.attrs["s2_prior"] != pytest.approx(exp.attrs["s2_prior"], rel=1e-6)


def test_assay_warnings_are_merged_over_blocks(study):
    adata = study.copy()
    adata.var["is_control"] = adata.var_names.isin(["OID00000", "OID00029"])
    for j in (5, 20):  # 4 pairs: R's CI cannot reach 95 % (reason 'CI at ...')
        adata.X[8:, j] = np.nan
    exp = assert_same(
        op.tl.differential,
        adata,
        (7, 9, 14),
        method="wilcoxon",
        pair="Subject",
        exact=False,
        **DE,
    )
    assert exp.attrs["excluded_assays"] == ["OID00000", "OID00029"]
    assert exp["reason"].str.startswith("CI at").sum() == 2


def test_merged_warnings_point_at_the_callers_line(study, long_data):
    for func, adata, kw in [
        (op.tl.differential, study, DE),
        (op.tl.anova, long_data, {"formula_terms": "Site"}),
        (op.tl.anova_posthoc, long_data, {"formula_terms": "Site", "effect": "Site"}),
        (
            op.tl.longitudinal,
            long_data,
            {"time": "Time", "subject": "Subject", "method": "friedman"},
        ),
    ]:
        _, caught = _run_at(func, lazy(adata, 3), **kw)
        assert caught and {f for f, _ in caught} == {__file__}


def _run_at(func, adata, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = func(adata, **kw)
    return res, [(w.filename, w.lineno) for w in caught]


def test_student_t_and_a_layer(study):
    assert_same(op.tl.differential, study, (7, 9, 14), method="ttest", equal_var=True, **DE)
    adata = study.copy()
    adata.layers["npx"] = adata.X.copy()
    adata.X = np.zeros_like(adata.X)
    exp, _ = _run(op.tl.differential, study, **DE)
    got, _ = _run(op.tl.differential, lazy(adata, 7, layer="npx"), layer="npx", **DE)
    pd.testing.assert_frame_equal(got, exp, check_exact=False, rtol=TOL, atol=TOL)


def test_row_chunks_are_merged_into_blocks_of_all_samples(study):
    exp, _ = _run(op.tl.differential, study, method="moderated", pair="Subject", **DE)
    got, _ = _run(
        op.tl.differential, lazy(study, 10, rows=20), method="moderated", pair="Subject", **DE
    )
    pd.testing.assert_frame_equal(got, exp, check_exact=False, rtol=TOL, atol=TOL)


@pytest.fixture(scope="module")
def long_data():
    adata = make_long(m=7)
    adata.var.loc["OID00003", "is_control"] = True
    return adata


@pytest.mark.parametrize("chunks", [(2, 5), 7])
def test_anova_equals_in_memory(long_data, chunks):
    exp = assert_same(
        op.tl.anova, long_data, chunks, formula_terms=["Site", "Time"], covariates=["age"]
    )
    assert exp.attrs["excluded_assays"] == ["OID00003"]


def test_anova_posthoc_equals_in_memory(long_data):
    # (Tukey's studentized range is slow: few assays)
    assert_same(
        op.tl.anova_posthoc,
        long_data,
        (2, 5),
        formula_terms=["Site", "Time"],
        effect="Time",
        assays=["OID00000", "OID00002", "OID00006"],
    )
    # a chosen subset of assays, in the user's order (not var order), across blocks
    got = assert_same(
        op.tl.anova_posthoc,
        long_data,
        3,
        formula_terms="Site",
        effect="Site",
        assays=["OID00005", "OID00001", "OID00004"],
    )
    assert list(dict.fromkeys(got["OlinkID"])) == ["OID00005", "OID00001", "OID00004"]


def test_posthoc_unknown_assay_is_the_in_memory_error(long_data):
    with pytest.raises(DesignError, match="assays not found"):
        op.tl.anova_posthoc(lazy(long_data, 3), formula_terms="Site", effect="Site", assays=["X"])


@pytest.mark.parametrize("chunks", [(2, 5), 7])
def test_longitudinal_equals_in_memory(long_data, chunks):
    assert_same(
        op.tl.longitudinal, long_data, chunks, time="Time", subject="Subject", method="friedman"
    )
    assert_same(
        op.tl.longitudinal, long_data, chunks, time="Time", subject="Subject", progress=False
    )


@pytest.mark.parametrize("chunks", [(2, 3)])
def test_lmer_and_posthoc_equal_in_memory(chunks):
    adata = split_plot(m=5, nan_frac=0.05)
    adata.X[:, 3] = np.nan  # an assay that cannot be fitted: reason, warning, attrs
    kw = {"variable": ["Group", "Time"], "random": "Subject", "progress": False}
    exp = assert_same(op.tl.lmer, adata, chunks, covariates=["age"], **kw)
    assert exp.attrs["untested_assays"] == ["OID00003"]
    assert_same(
        op.tl.lmer_posthoc,
        adata,
        chunks,
        effect="Group",
        assays=["OID00004", "OID00003", "OID00000"],
        **kw,
    )


def test_errors_from_the_blocks_are_the_in_memory_errors(study):
    with pytest.raises(DesignError, match="reference level"):
        op.tl.differential(lazy(study, 7), groupby="Time", reference="Nope")
    dup = lazy(study, 7)
    dup.var_names = ["A"] * 2 + list(dup.var_names[2:])
    with pytest.raises(OlinkpipeError, match="unique var names"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata: var names are not unique (the point)
        op.tl.differential(dup, **DE)


# --------------------------------------------------------------------------------------
# laziness: one compute, no piece bigger than a block reaches the client


def _arrays(obj):
    """Every numpy array inside a task result (dicts, lists, tuples, frames)."""
    if isinstance(obj, np.ndarray):
        yield obj
    elif isinstance(obj, pd.DataFrame):
        for c in obj.columns:
            yield np.asarray(obj[c])
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _arrays(v)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from _arrays(v)


@pytest.mark.parametrize("method", ["ttest", "moderated"])
def test_the_matrix_is_never_computed_whole(method):
    from dask.callbacks import Callback

    adata = make_study(n_pairs=60, m=40)
    width = 8
    n = adata.n_obs
    block = n * width
    seen = {"computes": 0, "results": []}

    class Count(Callback):
        def _start(self, dsk):
            seen["computes"] += 1

        def _posttask(self, key, result, dsk, state, worker_id):
            seen["results"].append(result)

    x = lazy(adata, width)
    with Count():
        got, _ = _run(op.tl.differential, x, method=method, pair="Subject", **DE)
    assert seen["computes"] == 1  # one dask.compute over all blocks
    sizes = [a.size for r in seen["results"] for a in _arrays(r)]
    assert max(sizes) <= block  # the largest piece ever held is one block
    outs = [r for r in seen["results"] if isinstance(r, dict) and "stash" in r]
    assert len(outs) == adata.n_vars // width
    for out in outs:  # what a block hands back: per-assay rows, not the block
        back = sum(a.size for a in _arrays(out))
        assert back < block / 3
    assert x.X.__class__.__name__ == "Array"  # the input stays lazy
    exp, _ = _run(op.tl.differential, adata, method=method, pair="Subject", **DE)
    pd.testing.assert_frame_equal(got, exp, check_exact=False, rtol=TOL, atol=TOL)


# --------------------------------------------------------------------------------------
# a distributed cluster


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=False,
        dashboard_address=":0",  # any free port: a busy 8787 must not fail the test
    )
    cl = distributed.Client(cluster)
    yield cl
    cl.close()
    cluster.close()


def test_under_a_distributed_client_the_blocks_run_on_the_workers(client, study, long_data):
    from distributed import get_task_stream

    x = lazy(study, (7, 9, 14))
    with get_task_stream(client) as ts:
        got, _ = _run(op.tl.differential, x, method="moderated", pair="Subject", **DE)
    exp, _ = _run(op.tl.differential, study, method="moderated", pair="Subject", **DE)
    pd.testing.assert_frame_equal(got, exp, check_exact=False, rtol=TOL, atol=TOL)
    assert got.attrs == exp.attrs
    tasks = [t for t in ts.data if str(t["key"]).startswith("('_task") or "_task" in str(t["key"])]
    assert len(tasks) == 3  # one task per block, run by the cluster's workers
    assert {t["worker"] for t in tasks} <= set(client.scheduler_info()["workers"])
    assert_same(op.tl.anova, long_data, (2, 5), formula_terms=["Site", "Time"])
    assert_same(op.tl.longitudinal, long_data, 3, time="Time", subject="Subject", progress=False)


# --------------------------------------------------------------------------------------
# AnnData read lazily or backed


def test_backed_anndata_equals_in_memory(study, tmp_path):
    path = tmp_path / "s.h5ad"
    study.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    exp, _ = _run(op.tl.differential, study, method="moderated", **DE)
    got, _ = _run(op.tl.differential, backed, method="moderated", **DE)
    pd.testing.assert_frame_equal(got, exp, check_exact=False, rtol=TOL, atol=TOL)
    backed.file.close()


def test_read_lazy_anndata_equals_in_memory(study, tmp_path):
    pytest.importorskip("xarray")  # anndata.experimental.read_lazy needs it
    from anndata.experimental import read_lazy

    path = tmp_path / "s.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata: zarr v2 is no longer the default
        study.write_zarr(path)
    lz = read_lazy(path)
    assert not isinstance(lz.obs, pd.DataFrame)  # xarray-backed frames
    for method in ["ttest", "moderated"]:
        exp, w_exp = _run(op.tl.differential, study, method=method, pair="Subject", **DE)
        got, w_got = _run(op.tl.differential, lz, method=method, pair="Subject", **DE)
        pd.testing.assert_frame_equal(got, exp, check_exact=False, rtol=TOL, atol=TOL)
        assert got.attrs == exp.attrs and w_got == w_exp
    lz.X = lz.X.compute()  # X in memory, obs/var still xarray-backed
    got, _ = _run(op.tl.anova, lz, formula_terms="Time")
    exp, _ = _run(op.tl.anova, study, formula_terms="Time")
    pd.testing.assert_frame_equal(got, exp, check_exact=False, rtol=TOL, atol=TOL)
