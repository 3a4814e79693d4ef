"""The dask path of ``pp``: every step on a dask-backed copy equals the in-memory result.

The dask copy has X and every layer as ``dask.array`` in the layout ``read_npx(chunks=)``
produces (all samples × panel-aligned blocks of assays; here at most 5 assays a block, so
a panel spans several blocks). Equality is exact (``assert_array_equal`` with NaN equal;
frames with ``check_exact``): both paths run the same numpy kernels on the same values of
each column, so medians, shifts and flags agree bit for bit. PCA (flag_outliers) is the
one place where the dask path reduces differently (a dask cross-product), so its *flags*
are compared, and its variance ratios to 1e-10.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from builders import dask_study, lazy, make_adata, panel_sorted

import olinkpipe as op
from olinkpipe.errors import OlinkpipeWarning
from olinkpipe.pp import _lazy

da = pytest.importorskip("dask.array")
from dask.callbacks import Callback  # noqa: E402


def quiet(fn, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return fn(*args, **kwargs)


@pytest.fixture
def study():
    return dask_study()


def computed(x):
    return np.asarray(x.compute() if _lazy.is_dask(x) else x)


def assert_same(got, exp):
    """``got`` (dask path) equals ``exp`` (in memory) in every slot, X and layers lazy."""
    assert _lazy.is_dask(got.X), "X was computed"
    pd.testing.assert_frame_equal(got.obs, exp.obs, check_exact=True)
    pd.testing.assert_frame_equal(got.var, exp.var, check_exact=True)
    np.testing.assert_array_equal(computed(got.X), exp.X)
    assert set(got.layers) == set(exp.layers)
    for key in exp.layers:
        assert _lazy.is_dask(got.layers[key]), key
        np.testing.assert_array_equal(computed(got.layers[key]), np.asarray(exp.layers[key]))
    assert set(got.obsm) == set(exp.obsm)
    for key in exp.obsm:
        pd.testing.assert_frame_equal(got.obsm[key], exp.obsm[key])
    pg, pe = got.uns["olinkpipe"], exp.uns["olinkpipe"]
    pd.testing.assert_frame_equal(pg["excluded"], pe["excluded"])
    assert set(pg) == set(pe)


def test_panel_chunks_never_span_two_panels(study):
    chunks = _lazy.panel_chunks(study, 5)
    assert sum(chunks) == study.n_vars
    pans = study.var["Panel"].to_numpy()
    edges = np.cumsum((0, *chunks))
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        assert len(set(pans[lo:hi])) == 1
    assert _lazy.panel_chunks(study) == (12, 12)


@pytest.mark.parametrize("by", ["sample", "assay"])
def test_qc_summary(study, by):
    got = op.pp.qc_summary(lazy(study), by=by)
    exp = op.pp.qc_summary(study, by=by)
    pd.testing.assert_frame_equal(got, exp, check_exact=True)


@pytest.mark.parametrize("controls", ["include", "exclude"])
def test_flag_outliers(study, controls):
    got = op.pp.flag_outliers(lazy(study), controls=controls)
    exp = op.pp.flag_outliers(study, controls=controls)
    assert exp.obs["qc_outlier"].any()
    rec_g, rec_e = got.uns["olinkpipe"]["outliers"], exp.uns["olinkpipe"]["outliers"]
    pd.testing.assert_frame_equal(rec_g.pop("limits"), rec_e.pop("limits"), check_exact=True)
    np.testing.assert_allclose(rec_g.pop("variance_ratio"), rec_e.pop("variance_ratio"), 1e-10)
    assert rec_g == rec_e
    assert_same(got, exp)


def test_pca_scores_equal_in_memory_up_to_rounding(study):
    from olinkpipe.pp.qc import pca_scores

    got, _, n_g, m_g = pca_scores(lazy(study), n_comps=3)
    exp, _, n_e, m_e = pca_scores(study, n_comps=3)
    assert (n_g, m_g) == (n_e, m_e)
    np.testing.assert_allclose(got.to_numpy(), exp.to_numpy(), atol=1e-10)
    # fewer samples than assays: the samples x samples cross-product
    small = study[:10].copy()
    got, *_ = pca_scores(lazy(small), n_comps=2)
    exp, *_ = pca_scores(small, n_comps=2)
    np.testing.assert_allclose(got.to_numpy(), exp.to_numpy(), atol=1e-10)


@pytest.mark.parametrize(
    "kwargs",
    [
        {},
        {"qc_warning": "mask", "min_detected": 0.9},
        {"qc_warning": "keep", "controls": "keep", "min_detected": 0.95},
        {"outliers": "drop"},
    ],
)
def test_filter(study, kwargs):
    got = quiet(op.pp.filter, lazy(study), **kwargs)
    exp = quiet(op.pp.filter, study, **kwargs)
    assert got.shape == exp.shape
    assert got.uns["olinkpipe"]["filter"] == exp.uns["olinkpipe"]["filter"]
    assert_same(got, exp)


def test_filter_mask_without_qc_layer(study):
    a = study.copy()
    del a.layers["qc_warning"]
    got = quiet(op.pp.filter, lazy(a), qc_warning="mask", controls="keep")
    exp = quiet(op.pp.filter, a, qc_warning="mask", controls="keep")
    assert exp.uns["olinkpipe"]["filter"]["n_values_masked"] > 0
    assert_same(got, exp)


@pytest.mark.parametrize("groupby", [None, "PlateID"])
def test_compute_lod_nclod(study, groupby):
    got = op.pp.compute_lod(lazy(study), groupby=groupby, min_nc=5)
    exp = op.pp.compute_lod(study, groupby=groupby, min_nc=5)
    assert_same(got, exp)


def test_compute_lod_with_pc_normalized_layer(study):
    a = study.copy()
    a.layers["PCNormalizedNPX"] = a.X + 0.25
    got = op.pp.compute_lod(lazy(a), min_nc=5)
    exp = op.pp.compute_lod(a, min_nc=5)
    assert_same(got, exp)


def test_compute_lod_fixed(study):
    table = pd.DataFrame({"OlinkID": study.var_names, "LodNPX": np.linspace(2, 4, study.n_vars)})
    a = study.copy()
    a.layers["PCNormalizedNPX"] = a.X - 0.5
    got = op.pp.compute_lod(lazy(a), method="fixed", fixed_lod=table)
    exp = op.pp.compute_lod(a, method="fixed", fixed_lod=table)
    assert_same(got, exp)


@pytest.mark.parametrize("how", ["keep", "nan", "lod", "lod_half"])
def test_below_and_censor_lod(study, how):
    assert_same(op.pp.below_lod(lazy(study)), op.pp.below_lod(study))
    got = op.pp.censor_lod(lazy(study), how=how)
    exp = op.pp.censor_lod(study, how=how)
    assert got.uns["olinkpipe"]["censor_lod"] == exp.uns["olinkpipe"]["censor_lod"]
    assert_same(got, exp)


@pytest.mark.parametrize("controls", ["drop", "keep"])
def test_normalize_plates_bit_identical(study, controls):
    got = op.pp.normalize_plates(lazy(study), controls=controls)
    exp = op.pp.normalize_plates(study, controls=controls)
    rec_g = got.uns["olinkpipe"]["normalization"]["normalize_plates"]["factors"]
    rec_e = exp.uns["olinkpipe"]["normalization"]["normalize_plates"]["factors"]
    pd.testing.assert_frame_equal(rec_g, rec_e, check_exact=True)
    assert_same(got, exp)


def test_normalize_plates_and_plate_lod_with_plates_differing_by_panel(study):
    a = study.copy()
    tab = a.obsm["PlateID"].copy()
    tab["Olink Oncology"] = np.roll(tab["Olink Oncology"].to_numpy(), 1)
    a.obsm["PlateID"] = tab
    assert_same(op.pp.normalize_plates(lazy(a)), op.pp.normalize_plates(a))
    got = op.pp.compute_lod(lazy(a), groupby="PlateID", min_nc=3)
    assert_same(got, op.pp.compute_lod(a, groupby="PlateID", min_nc=3))


@pytest.fixture
def two_projects():
    ref = panel_sorted(make_adata(30, 16, seed=11, prefix="A", project="P1"))
    other = panel_sorted(make_adata(28, 18, seed=12, prefix="B", shift=0.7, project="P2"))
    other = other[:, ::-1].copy()  # another assay order: the column-gather path
    return ref, other


def _factors(res, step):
    return res.uns["olinkpipe"]["normalization"][step]["factors"]


@pytest.mark.parametrize("which", ["bridge", "subset", "intensity", "mixed"])
def test_two_project_normalizations(two_projects, which):
    ref, other = two_projects
    lr, lo = lazy(ref), lazy(other)
    if which == "mixed":  # one project in memory, one lazy
        lr = ref
    if which in ("bridge", "mixed"):
        pairs = {f"A{i}": f"B{i}" for i in range(1, 9)}
        step, fn, args = "bridge_normalize", op.pp.bridge_normalize, (pairs,)
    elif which == "subset":
        step, fn = "subset_normalize", op.pp.subset_normalize
        args = (["A1", "A2", "A3", "A4"], ["B5", "B6", "B7"])
    else:
        step, fn, args = "intensity_normalize", op.pp.intensity_normalize, ()
    got = quiet(fn, lr, lo, *args)
    exp = quiet(fn, ref, other, *args)
    pd.testing.assert_frame_equal(_factors(got, step), _factors(exp, step), check_exact=True)
    assert len(got.X.chunks[0]) == 1  # all samples in one row block
    assert_same(got, exp)


def test_reference_median_normalize(study):
    ref = pd.DataFrame({"OlinkID": study.var_names[2:], "Reference_NPX": 5.0})
    got = quiet(op.pp.reference_median_normalize, lazy(study), ref, samples=["S1", "S2", "S5"])
    exp = quiet(op.pp.reference_median_normalize, study, ref, samples=["S1", "S2", "S5"])
    step = "reference_median_normalize"
    pd.testing.assert_frame_equal(_factors(got, step), _factors(exp, step), check_exact=True)
    assert_same(got, exp)


class Counter(Callback):
    """Counts dask computations (``compute`` calls) and the tasks they ran."""

    def __init__(self):
        super().__init__()
        self.computes = 0

    def _start(self, dsk):
        self.computes += 1


def test_steps_stay_lazy_and_compute_only_small_results(study):
    a = lazy(study)
    with Counter() as c:
        a = op.pp.below_lod(a)
        a = op.pp.censor_lod(a, how="keep")
    assert c.computes == 0  # nothing needed a value
    with Counter() as c:
        b = op.pp.normalize_plates(a)
    assert c.computes == 1  # the plate medians (a plates x assays table)
    with Counter() as c:
        b = op.pp.compute_lod(b, min_nc=5)
    assert c.computes == 1  # the negative-control rows
    with Counter() as c:
        b = op.pp.flag_outliers(b)
    # sample stats of every panel (1), assay stats (2), the cross-product and the scores (2)
    assert c.computes == 5
    with Counter() as c:
        b = quiet(op.pp.filter, b, qc_warning="mask", min_detected=0.5)
    assert c.computes == 1  # the masked count and detected fraction per assay
    assert _lazy.is_dask(b.X) and all(_lazy.is_dask(v) for v in b.layers.values())
    with Counter() as c:
        value = b.X.compute()
    assert c.computes == 1 and value.shape == b.shape


@pytest.fixture
def cluster_client():
    distributed = pytest.importorskip("distributed")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # distributed's port / memory notices
        cluster = distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=False,
            protocol="tcp://",
            host="127.0.0.1",  # loopback: no lookup of this host's address (tests run offline)
            dashboard_address=":0",  # any free port: a busy 8787 must not fail the test
        )
        client = distributed.Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def test_pipeline_under_a_distributed_cluster(study, cluster_client):
    def pipeline(a):
        a = op.pp.flag_outliers(a)
        a = quiet(op.pp.filter, a, outliers="drop", min_detected=0.5)
        a = op.pp.normalize_plates(a)
        return op.pp.censor_lod(a, how="lod")

    exp = pipeline(study)
    got = pipeline(lazy(study))
    assert cluster_client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.workers))
    assert_same(got, exp)


def test_pca_lanczos_paths_agree():
    """> 64 assays: Lanczos on Z in memory, on the dask cross-product; same PCs."""
    from olinkpipe.pp.qc import pca_scores

    a = panel_sorted(make_adata(120, 80, seed=5, n_controls=0))
    got, r_g, *_ = pca_scores(lazy(a), n_comps=2)
    exp, r_e, *_ = pca_scores(a, n_comps=2)
    np.testing.assert_allclose(got.to_numpy(), exp.to_numpy(), atol=1e-8)
    np.testing.assert_allclose(r_g, r_e, rtol=1e-10)
    flagged_g = quiet(op.pp.flag_outliers, lazy(a)).obs["pca_outlier"]
    flagged_e = quiet(op.pp.flag_outliers, a).obs["pca_outlier"]
    pd.testing.assert_series_equal(flagged_g, flagged_e)
