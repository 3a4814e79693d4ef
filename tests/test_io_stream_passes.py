"""The streaming reader's one-pass constancy checks (io/stream.py, pass B) equal the
in-memory reader bit for bit on the orders and columns that exercise each branch: long and
short runs, columns that become layers only after some row groups (their first rows are
read again), NaN keys, and the lazy (``chunks=``) read of such a layer."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from builders import assert_same_anndata
from io_builders import read_both as _read_both

import olinkpipe as op
from olinkpipe.datasets import write_large_explore
from olinkpipe.io import stream


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("passes")
    return write_large_explore(d / "a.parquet", 400, 24, seed=3, assays_per_block=3)


def _rewrite(src, dst, edit, **kw):
    df = edit(pq.read_table(src).to_pandas())
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), dst, **kw)
    return dst


def _late_columns(df):
    """Columns constant per sample (or assay) in the first rows only, and NaN keys."""
    df = df.copy()
    late = df["OlinkID"].isin(["OID30020", "OID30021"])  # in the last row groups only
    # per sample, then varying: obs fails late, var fails at once -> a layer, re-read
    df["Site"] = np.where(late & (df["Index"] == 7), "B", "A")
    # per assay, then varying: var fails late, obs fails at once -> a layer
    df["Batch"] = np.where(late & (df["Index"] == 9), 2.5, df["MissingFreq"])
    # NaN equal to NaN: per assay with NaN for some assays (a var column)
    df["Score"] = np.where(df["OlinkID"].isin(["OID30002", "OID30011"]), np.nan, 1.5)
    # per sample text with nulls (an obs column)
    df["Visit"] = np.where(df["Index"] % 5 == 0, None, "V" + (df["Index"] % 3).astype(str))
    return df


@pytest.mark.parametrize("order", ["assay", "sample"])
def test_late_layers_and_nan_keys(base, tmp_path, monkeypatch, order):
    def edit(df):
        df = _late_columns(df)
        if order == "sample":  # short runs of assays, long runs of samples
            df = df.sort_values(["SampleID", "OlinkID"], kind="stable")
            # varies within late samples only: obs and var slots both fail late
            df["Site"] = np.where(
                (df["SampleID"].astype(str) > "S000300") & (df["OlinkID"] == "OID30005"),
                "B",
                "A",
            )
        return df

    path = _rewrite(base, tmp_path / f"{order}.parquet", edit, row_group_size=2400)
    new, old = _read_both(path, monkeypatch)
    assert_same_anndata(new, old)
    assert "Site" in new.layers and "Batch" in new.layers
    assert "Score" in new.var and "Visit" in new.obs
    assert new.uns["olinkpipe"]["row_order"] == order


def test_late_text_layer_lazy(base, tmp_path):
    pytest.importorskip("dask.array")
    path = _rewrite(base, tmp_path / "l.parquet", _late_columns, row_group_size=2400)
    lazy = op.read_npx(path, chunks=5)
    whole = op.read_npx(path)
    for k in ("Site", "Batch"):
        np.testing.assert_array_equal(np.asarray(lazy.layers[k].compute()), whole.layers[k])
    assert list(lazy.uns["olinkpipe"]["coded_layers"]["Site"]) == ["A", "B"]


def test_prefetch_passes_errors_and_order():
    def gen():
        yield 1
        yield 2
        msg = "boom"
        raise ValueError(msg)

    got = []
    with pytest.raises(ValueError, match="boom"):
        for x in stream._prefetch(gen()):
            got.append(x)
    assert got == [1, 2]
    assert list(stream._prefetch(iter(range(5)))) == list(range(5))


@pytest.mark.parametrize("parallel", [True, False])
def test_row_groups_decoded_ahead_in_order(base, tmp_path, monkeypatch, parallel):
    """Row groups decoded by two threads (forced here: small files stay within one thread's
    budget otherwise) give the same AnnData, in file order."""
    from olinkpipe.io import _stream_source

    path = _rewrite(base, tmp_path / "rg.parquet", _late_columns, row_group_size=700)
    used = []
    real = _stream_source.Source._decoded_ahead

    def spy(self, *args, **kwargs):
        used.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(_stream_source.Source, "_decoded_ahead", spy)
    if parallel:
        monkeypatch.setattr(_stream_source, "_VALUE_BYTES", 0)
    new, old = _read_both(path, monkeypatch)
    assert_same_anndata(new, old)
    assert len(used) == (2 if parallel else 1)  # pass A always; pass B within budget


def test_text_codes_stay_unique_when_two_threads_meet_new_dictionaries():
    """Pass B's metadata thread and the main thread share a column's ``_Dict``: entries new
    to both are numbered under its lock, so no two values get one code. A ``len`` that
    yields the GIL makes the interleaving that a lock-free ``setdefault(v, len(index))``
    loses on (it gave duplicate codes before the lock)."""
    import pickle
    import threading
    import time

    from olinkpipe.io._stream_track import _Dict

    class _Yielding(dict):
        def __len__(self):
            n = super().__len__()
            time.sleep(0.0002)  # let the other thread run between len() and setdefault
            return n

    d = _Dict()
    d.index = _Yielding()
    batches = [
        [pa.array([f"{who}{i}-{j}" for j in range(20)]).dictionary_encode() for i in range(10)]
        for who in ("a", "b")
    ]

    def work(arrs):
        for arr in arrs:
            d.codes(arr)

    threads = [threading.Thread(target=work, args=(b,)) for b in batches]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(d.index) == 400
    assert sorted(d.index.values()) == list(range(400))
    d.index = dict(d.index)
    assert pickle.loads(pickle.dumps(d)).index == d.index  # into dask tasks, lock left out
