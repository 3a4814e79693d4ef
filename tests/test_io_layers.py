"""``read_npx(..., layers=[...])``: the extra per-cell columns kept, on every reader path."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from io_builders import make_long, wide_grid, write_wide_csv

import olinkpipe as op
from olinkpipe._layout import lod_matrix
from olinkpipe.errors import DesignError
from olinkpipe.io import stream

EXTRA = ["Count", "ExtNPX", "PCNormalizedNPX", "AssayQC"]


def _explore_ht(seed: int = 3) -> pd.DataFrame:
    """An Explore-HT-like long table: Count, ExtNPX, PCNormalizedNPX per cell, AssayQC as
    per-cell text; LOD constant per assay and plate; QC constant per sample and panel."""
    rng = np.random.default_rng(seed)
    rows = []
    samples = [f"S{i:02d}" for i in range(8)]
    for panel in ("Explore_HT_A", "Explore_HT_B"):
        for j in range(5):
            oid = f"OID{40000 + 10 * (panel[-1] == 'B') + j}"
            for k, s in enumerate(samples):
                plate = "P1" if k < 4 else "P2"
                npx = round(float(rng.normal(1, 2)), 4)
                rows.append(
                    {
                        "SampleID": s,
                        "OlinkID": oid,
                        "UniProt": f"Q{oid}",
                        "Assay": f"G{oid}",
                        "Panel": panel,
                        "PlateID": plate,
                        "SampleQC": "WARN" if (k == 2 and panel.endswith("A")) else "PASS",
                        "LOD": -1.0 + j / 10 + (plate == "P2") / 4,
                        "NPX": npx,
                        "Count": int(rng.integers(10, 5000)),
                        "ExtNPX": round(npx + 0.5, 4),
                        "PCNormalizedNPX": round(npx - 0.25, 4),
                        "AssayQC": "WARN" if rng.random() < 0.3 else "PASS",
                    }
                )
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("ht")
    df = _explore_ht()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), d / "ht.parquet")
    df.to_csv(d / "ht.csv", sep=";", index=False)
    parts = d / "parts"
    parts.mkdir()
    for panel, rows in df.groupby("Panel"):
        pq.write_table(
            pa.Table.from_pandas(rows, preserve_index=False), parts / f"{panel}.parquet"
        )
    return {"parquet": d / "ht.parquet", "csv": d / "ht.csv", "dir": parts}


def _read(path, how, monkeypatch, **kw):
    """Read ``path`` on one reader path, checking that path was taken."""
    calls = []
    real = stream.read_all

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)

    with monkeypatch.context() as m:
        if how == "memory":
            m.setattr(stream, "try_parquet", lambda *a, **k: None)
            m.setattr(stream, "try_csv", lambda *a, **k: None)
        m.setattr(stream, "read_all", spy)
        adata = op.read_npx(path, chunks=3 if how == "dask" else None, **kw)
    csv_dask = how == "dask" and str(path).endswith(".csv")  # streamed, then wrapped
    assert bool(calls) == (how == "stream" or csv_dask)
    if how == "dask":
        assert "dask" in type(adata.X).__module__
        adata.X = np.asarray(adata.X.compute())
        for k in list(adata.layers.keys()):
            adata.layers[k] = np.asarray(adata.layers[k].compute())
    return adata


CASES = [("parquet", "memory"), ("parquet", "stream"), ("csv", "memory"), ("csv", "stream")]
CASES += [("parquet", "dask"), ("csv", "dask"), ("dir", "stream"), ("dir", "dask")]


@pytest.mark.parametrize(("fmt", "how"), CASES)
@pytest.mark.parametrize("keep", [None, ["Count"], [], ["AssayQC", "ExtNPX"]])
def test_layers_kept_and_the_rest_equal(files, fmt, how, keep, monkeypatch):
    full = _read(files[fmt], how, monkeypatch)
    assert set(EXTRA) <= set(full.layers.keys())
    got = _read(files[fmt], how, monkeypatch, layers=keep)
    np.testing.assert_array_equal(got.X, full.X)
    pd.testing.assert_frame_equal(got.obs, full.obs)
    pd.testing.assert_frame_equal(got.var, full.var)
    np.testing.assert_array_equal(lod_matrix(got), lod_matrix(full))
    for k in full.obsm:
        pd.testing.assert_frame_equal(got.obsm[k], full.obsm[k])
    want = EXTRA if keep is None else keep
    assert sorted(k for k in got.layers.keys() if k in EXTRA) == sorted(want)
    for k in want:
        np.testing.assert_array_equal(np.asarray(got.layers[k]), np.asarray(full.layers[k]))
    prov = got.uns["olinkpipe"]
    if keep is None:
        assert "layers" not in prov
    else:
        assert prov["layers"]["kept"] == keep
        assert sorted(prov["layers"]["left_out"]) == sorted(set(EXTRA) - set(keep))
        assert set(prov["coded_layers"]) == {"AssayQC"} & set(keep)
        long = op.to_long(got)  # writes back what was read
        assert not (set(EXTRA) - set(keep)) & set(long.columns)


def test_same_answer_on_every_path(files, monkeypatch):
    ref = _read(files["parquet"], "memory", monkeypatch, layers=["Count"])
    for fmt, how in CASES[1:]:
        got = _read(files[fmt], how, monkeypatch, layers=["Count"])
        np.testing.assert_array_equal(got.X, ref.X)
        np.testing.assert_array_equal(got.layers["Count"], ref.layers["Count"])


@pytest.mark.parametrize(("fmt", "how"), CASES)
def test_unknown_name(files, fmt, how, monkeypatch):
    with pytest.raises(DesignError) as err:
        _read(files[fmt], how, monkeypatch, layers=["Count", "ExtNPx", "NPX"])
    msg = str(err.value)
    assert "'ExtNPx'" in msg and "'NPX'" in msg and "'ExtNPX'" in msg  # a close match
    assert "PCNormalizedNPX" in msg and str(files[fmt].name) in msg


def test_bad_argument(files):
    with pytest.raises(DesignError, match="layers="):
        op.read_npx(files["csv"], layers="Count")


def test_memory_per_kept_layer(files, monkeypatch):
    """Structural form of issue 14's target: each kept per-cell column costs at most one X,
    and leaving them all out leaves X + the data model's arrays <= 1.5 X."""
    for keep in ([], ["Count"], ["Count", "ExtNPX"], None):
        a = _read(files["parquet"], "stream", monkeypatch, layers=keep)
        n = len(EXTRA) if keep is None else len(keep)
        extra = sum(np.asarray(a.layers[k]).nbytes for k in a.layers.keys() if k in EXTRA)
        assert extra <= n * a.X.nbytes
        rest = sum(np.asarray(a.layers[k]).nbytes for k in a.layers.keys() if k not in EXTRA)
        rest += sum(np.asarray(v).nbytes for v in a.varm.values())
        assert a.X.nbytes + rest <= 1.5 * a.X.nbytes


def test_wide_accepts_none_and_empty(tmp_path):
    path = write_wide_csv(
        tmp_path / "wide.csv", wide_grid(make_long(controls=False), trailing_space=None)
    )
    full = op.read_npx(path)
    none = op.read_npx(path, layers=[])
    np.testing.assert_array_equal(none.X, full.X)
    assert none.uns["olinkpipe"]["layers"] == {"kept": [], "left_out": []}
    with pytest.raises(DesignError, match="Count"):
        op.read_npx(path, layers=["Count"])


@pytest.mark.parametrize(("fmt", "how"), CASES)
def test_left_out_columns_not_decoded(files, fmt, how, monkeypatch):
    """Count/ExtNPX/PCNormalizedNPX left out are never asked of the parquet or CSV reader."""
    from olinkpipe.io._stream_source import Source

    asked: list[str] = []
    real_batches, real_read = Source.batches, pq.ParquetFile.read

    def batches(self, columns, *a, **k):
        asked.extend(columns)
        return real_batches(self, columns, *a, **k)

    def read(self, columns=None, *a, **k):
        asked.extend(columns if columns is not None else self.schema_arrow.names)
        return real_read(self, columns, *a, **k)

    monkeypatch.setattr(Source, "batches", batches)
    monkeypatch.setattr(pq.ParquetFile, "read", read)
    got = _read(files[fmt], how, monkeypatch, layers=["Count"])
    assert list(k for k in got.layers.keys() if k in EXTRA) == ["Count"]
    if not (fmt == "csv" and how == "memory"):  # the in-memory CSV parses every column
        assert "Count" in asked
        assert not {"ExtNPX", "PCNormalizedNPX"} & set(asked)


def test_read_exports_forwards_layers(files):
    adata = op.io.read_exports(files["dir"], layers=["ExtNPX"])
    full = op.io.read_exports(files["dir"])
    assert [k for k in adata.layers.keys() if k in EXTRA] == ["ExtNPX"]
    np.testing.assert_array_equal(adata.layers["ExtNPX"], full.layers["ExtNPX"])
    np.testing.assert_array_equal(adata.X, full.X)
    left = adata.uns["olinkpipe"]["layers"]["left_out"]
    assert sorted(left) == sorted(set(EXTRA) - {"ExtNPX"})


def test_workflow_inputs_layers():
    from olinkpipe.workflow._schema import Inputs

    assert Inputs(npx="x.parquet", layers=["Count"]).layers == ["Count"]
    assert Inputs(npx="x.parquet").layers is None


def test_dict_cache_entry_read_once():
    """``_Dict._local`` returns the entry of the dictionary it checked even when another
    thread (pass B's metadata checks) replaces the cached entry in between (a directory of
    per-panel files: each file has its own Panel dictionary)."""
    from olinkpipe.io._stream_track import _Dict

    d = _Dict()
    a = pa.array(["A", "A"]).dictionary_encode()
    b = pa.array(["B", "A"]).dictionary_encode()
    _, entry_a = d._local(a)
    _, entry_b = d._local(b)

    class Swapping:  # compares equal, and meanwhile "another thread" caches b's entry
        def equals(self, other):
            d._last = entry_b
            return True

    d._last = [Swapping(), *entry_a[1:]]
    local, entry = d._local(a)
    assert entry[1][local].tolist() == [0, 0]  # "A", "A": a's lookup, not b's


def test_per_cell_qc_always_kept(tmp_path):
    """A QC column that varies within a sample's panel stays a layer with layers=[] (the
    data model's qc_warning needs it) and cannot be named."""
    from io_builders import make_explore, write_long

    path = write_long(make_explore(), tmp_path / "explore.csv")
    full, none = op.read_npx(path), op.read_npx(path, layers=[])
    assert "QC_Warning" in full.layers and "QC_Warning" in none.layers
    np.testing.assert_array_equal(none.layers["QC_Warning"], full.layers["QC_Warning"])
    pd.testing.assert_frame_equal(none.obs, full.obs)
    assert "Count" in full.layers and "Count" not in none.layers
    with pytest.raises(DesignError, match="not a per-cell column"):
        op.read_npx(path, layers=["QC_Warning"])
