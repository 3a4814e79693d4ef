"""The streaming long reader equals the in-memory reader bit for bit (io/stream.py)."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from builders import assert_same_anndata
from io_builders import read_both as _read_both

import olinkpipe as op
from olinkpipe.datasets import write_large_explore

EXAMPLE = op.datasets.example.__file__.rsplit("/", 1)[0] + "/example"


@pytest.mark.parametrize("name", ["npx_data.parquet", "npx_data.csv"])
def test_bundled_example(name, monkeypatch):
    new, old = _read_both(f"{EXAMPLE}/{name}", monkeypatch)
    assert_same_anndata(new, old)


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    d = tmp_path_factory.mktemp("sim")
    # 12 plates: some (plate, assay) pairs carry an assay warning, so Assay_Warning is a
    # per-cell text layer; QC warnings on a few (sample, panel) pairs
    return {
        "parquet": write_large_explore(d / "a.parquet", 1100, 60, seed=4, assays_per_block=5),
        "csv": write_large_explore(d / "a.csv", 1100, 60, seed=4, file_format="csv", sep=";"),
        "dir": write_large_explore(d / "panels", 300, 40, seed=2, per_panel=True),
        "dirpath": d,
    }


@pytest.mark.parametrize("kind", ["parquet", "csv", "dir"])
def test_simulated_formats(sim, kind, monkeypatch):
    new, old = _read_both(sim[kind], monkeypatch)
    assert_same_anndata(new, old)
    if kind != "dir":
        assert "Assay_Warning" in new.layers  # the text-layer path is exercised


def test_directory_equals_single_file(sim, tmp_path):
    files = sorted(sim["dir"].glob("*.parquet"))
    one = tmp_path / "one.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(f) for f in files]), one)
    a, b = op.read_npx(sim["dir"]), op.read_npx(one)
    np.testing.assert_array_equal(a.X, b.X)
    assert a.uns["olinkpipe"]["metadata"]["Product"] == "Explore 3072"


def _rewrite(src, dst, frame_fn, **kw):
    df = frame_fn(pq.read_table(src).to_pandas())
    table = pa.Table.from_pandas(df, preserve_index=False)
    pq.write_table(table, dst, **kw)
    return dst


def test_sample_major_small_row_groups(sim, tmp_path, monkeypatch):
    """Rows sample by sample (as Explore HT files), many row groups, own dictionaries."""

    def by_sample(df):
        return df.sort_values(["SampleID", "OlinkID"], kind="stable")

    path = _rewrite(sim["parquet"], tmp_path / "s.parquet", by_sample, row_group_size=7000)
    new, old = _read_both(path, monkeypatch)
    assert_same_anndata(new, old)
    assert new.uns["olinkpipe"]["row_order"] == "sample"


def test_categoricals_with_unused_entries_and_nulls(sim, tmp_path, monkeypatch):
    """pandas categoricals listing values no row uses; nulls in text and number columns."""

    def edit(df):
        df = df[df["SampleID"] != df["SampleID"].iloc[0]].copy()  # unused dictionary entry
        df["SampleID"] = df["SampleID"].astype("category")
        df["Normalization"] = df["Normalization"].astype(object).where(df["Index"] != 3, None)
        df["MissingFreq"] = df["MissingFreq"].where(df["OlinkID"] != "OID30002", np.nan)
        df["WellID"] = "W" + (df.index % 7).astype(str)  # varies everywhere: a text layer
        df["Count"] = (df.index % 11).astype("int32")  # a per-cell number column
        return df

    path = _rewrite(sim["parquet"], tmp_path / "c.parquet", edit, row_group_size=20000)
    new, old = _read_both(path, monkeypatch)
    assert_same_anndata(new, old)
    assert "WellID" in new.uns["olinkpipe"]["coded_layers"]


def test_qc_varying_within_panel(sim, tmp_path, monkeypatch):
    def edit(df):
        df = df.copy()
        qc = df["QC_Warning"].astype(str)
        df["QC_Warning"] = qc.where(~((df["Index"] == 5) & (df["OlinkID"] == "OID30003")), "WARN")
        return df

    path = _rewrite(sim["parquet"], tmp_path / "q.parquet", edit)
    new, old = _read_both(path, monkeypatch)
    assert_same_anndata(new, old)
    assert "QC_Warning" in new.layers


@pytest.mark.parametrize(
    "case",
    ["two_plates", "duplicate_row", "text_npx", "two_panels"],
)
def test_fallback_cases_equal(sim, tmp_path, monkeypatch, case):
    """Files the streaming path leaves to the in-memory reader: same result or error."""

    def edit(df):
        df = df.copy()
        if case == "two_plates":  # a SampleID on two plates within a panel
            first = df["SampleID"].astype(str) == "S000001"
            df.loc[first & (df["OlinkID"] == "OID30001"), "PlateID"] = "Plate0002"
        elif case == "duplicate_row":
            df = pd.concat([df, df.iloc[:3]])
        elif case == "text_npx":
            df["NPX"] = df["NPX"].astype(str).where(df.index != 10, "> ULOQ")
        elif case == "two_panels":
            df.loc[df.index[:2], "Panel"] = "Oncology"
        return df

    path = _rewrite(sim["parquet"], tmp_path / f"{case}.parquet", edit)
    if case == "two_panels":
        with pytest.raises(op.errors.NPXFormatError):
            op.read_npx(path)
        return
    new, old = _read_both(path, monkeypatch, streamed=False)
    assert_same_anndata(new, old)
