"""read_npx(chunks=...): a lazy, dask-backed AnnData equal to the in-memory read."""

import sys

import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.datasets import write_large_explore
from olinkpipe.errors import DesignError, OlinkpipeError
from olinkpipe.io import stream

da = pytest.importorskip("dask.array")
from builders import assert_same_anndata  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("chunks")
    return {
        "parquet": write_large_explore(d / "a.parquet", 1100, 60, seed=7, assays_per_block=4),
        "csv": write_large_explore(d / "a.csv", 300, 30, seed=7, file_format="csv"),
        "dir": write_large_explore(d / "panels", 200, 40, seed=1, per_panel=True),
    }


def _computed(adata):
    """The lazy read computed (a lazy full LOD layer, where there is one, stored compactly
    when it can be, as the in-memory read)."""
    from olinkpipe import _layout

    out = adata.copy()
    out.X = adata.X.compute()
    for k in list(adata.layers.keys()):
        out.layers[k] = adata.layers[k].compute()
    _layout.compact_lod(out)
    return out


def _check_layout(adata, chunks):
    panels = adata.var["Panel"].to_numpy()
    arrays = [adata.X, *adata.layers.values()]
    for arr in arrays:
        assert isinstance(arr, da.Array)
        assert arr.chunks[0] == (adata.n_obs,)  # every block holds all samples
        assert arr.chunks == adata.X.chunks
    edges = np.cumsum((0, *adata.X.chunks[1]))
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        assert len(set(panels[lo:hi])) == 1  # a block never spans two panels
        if isinstance(chunks, int):
            assert hi - lo <= chunks
    if chunks == "panel":
        assert len(adata.X.chunks[1]) == len(set(panels))


@pytest.mark.parametrize("chunks", ["panel", 3, "auto"])
@pytest.mark.parametrize("kind", ["parquet", "dir", "csv"])
def test_equal_to_in_memory(files, kind, chunks):
    lazy = op.read_npx(files[kind], chunks=chunks)
    _check_layout(lazy, chunks)
    assert_same_anndata(_computed(lazy), op.read_npx(files[kind]))


def test_nothing_read_until_computed(files, monkeypatch):
    calls = []
    real = stream.read_values

    def spy(*args, **kwargs):
        calls.append(args[1:3])
        return real(*args, **kwargs)

    monkeypatch.setattr(stream, "read_values", spy)
    from dask.callbacks import Callback

    ran = []
    with Callback(pretask=lambda key, dask, state: ran.append(key)):
        lazy = op.read_npx(files["parquet"], chunks="panel")
    assert calls == [] and ran == []
    n_blocks = len(lazy.X.chunks[1])
    lazy.X[:, :1].compute()  # one block: one read of that block's assays only
    assert calls == [(0, lazy.X.chunks[1][0])]
    lazy.X.compute()
    assert len(calls) == 1 + n_blocks


def test_block_reads_only_its_row_groups(files, monkeypatch):
    """Each block opens only the row groups that hold its assays."""
    read = []
    real = stream.Source.batches

    def spy(self, columns, units=None):
        read.append(units)
        return real(self, columns, units)

    lazy = op.read_npx(files["parquet"], chunks="panel")
    monkeypatch.setattr(stream.Source, "batches", spy)
    lazy.X.blocks[0, 1].compute()
    n_units = len(stream.parquet_source([files["parquet"]], set()).units)
    assert len(read) == 1 and 0 < len(read[0]) < n_units


@pytest.mark.filterwarnings("ignore::olinkpipe.errors.OlinkpipeWarning")
def test_lod_plate_table_from_the_scan_and_the_pipeline(files):
    """The dask read stores the in-memory read's LOD table (nothing of the matrix read);
    pp steps on it keep X lazy and equal the in-memory steps, differential frames too."""
    from olinkpipe import _layout

    whole = op.read_npx(files["parquet"])
    lazy = op.read_npx(files["parquet"], chunks=8)
    assert "lod" not in lazy.layers and "lod" in whole.varm
    np.testing.assert_array_equal(lazy.varm["lod"], whole.varm["lod"])
    assert lazy.uns["olinkpipe"]["lod_plates"] == whole.uns["olinkpipe"]["lod_plates"]
    for fn in (_layout.lod_matrix, _layout.below_lod_matrix, _layout.qc_warning_matrix):
        np.testing.assert_array_equal(fn(lazy).compute(), fn(whole))
    pd.testing.assert_frame_equal(
        op.pp.qc_summary(lazy, by="assay"), op.pp.qc_summary(whole, by="assay"), check_exact=True
    )
    steps = [
        lambda a: op.pp.filter(a, min_detected=0.5),
        lambda a: op.pp.normalize_plates(a),
        lambda a: op.pp.censor_lod(a, how="lod"),
    ]
    for step in steps:
        lazy, whole = step(lazy), step(whole)
        assert isinstance(lazy.X, da.Array)
        np.testing.assert_array_equal(lazy.X.compute(), whole.X)
        np.testing.assert_array_equal(
            _layout.lod_matrix(lazy).compute(), _layout.lod_matrix(whole)
        )
    for a in (lazy, whole):
        a.obs["group"] = np.where(np.arange(a.n_obs) % 2, "case", "control")
    kw = {"groupby": "group", "reference": "control", "target": "case"}
    pd.testing.assert_frame_equal(
        op.tl.differential(lazy, **kw),
        op.tl.differential(whole, **kw),
        check_exact=False,
        rtol=0,
        atol=1e-10,
    )


def test_distributed_local_cluster(files):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=1,
            threads_per_worker=2,
            processes=False,
            protocol="tcp",
            host="127.0.0.1",  # loopback only (the tests block other addresses)
            dashboard_address=":0",  # any free port: a busy 8787 must not fail the test
        ) as cluster,
        distributed.Client(cluster),
    ):
        lazy = op.read_npx(files["parquet"], chunks=8)
        got = _computed(lazy)
    assert_same_anndata(got, op.read_npx(files["parquet"]))


@pytest.mark.parametrize("bad", [0, -2, "big", 2.5, True])
def test_bad_chunks(files, bad):
    with pytest.raises(DesignError, match="chunks"):
        op.read_npx(files["parquet"], chunks=bad)


def test_without_dask_says_what_to_install(files, monkeypatch):
    for name in [m for m in sys.modules if m == "dask" or m.startswith("dask.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "dask", None)
    monkeypatch.setitem(sys.modules, "dask.array", None)
    with pytest.raises(OlinkpipeError, match=r"olinkpipe\[dask\]"):
        op.read_npx(files["parquet"], chunks="panel")
