"""The streaming reader's LOD plate table, built while reading (io/_stream_scan.py), equals
what :func:`olinkpipe._layout.compact_lod` makes of the in-memory reader's full LOD, bit for
bit, in every case where the two layouts part: a LOD that varies within a (plate, assay)
pair (first in a late row group, so the full LOD is made from the table mid-read), a pair
whose first sample has no row, NaN and signed zeros within a pair, no PlateID, no LOD, a
plate named ``""``. The dask read (``chunks=``) stores the same table, or a lazy full layer
where the in-memory reader keeps the full layer."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from builders import assert_same_anndata
from io_builders import read_both as _read_both

import olinkpipe as op
from olinkpipe import _layout
from olinkpipe.datasets import write_large_explore


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("lod")
    return write_large_explore(d / "a.parquet", 200, 24, seed=3, assays_per_block=3)


def _pair(df, sample="S000150", oid="OID30020"):
    """Rows of one late (plate, assay) pair: the plate of ``sample`` on ``oid``."""
    plate = df.loc[(df["SampleID"] == sample) & (df["OlinkID"] == oid), "PlateID"].iloc[0]
    return (df["PlateID"] == plate) & (df["OlinkID"] == oid)


def _first_of_plate(df, oid="OID30020"):
    """The row of the first sample (in file order) of a plate on ``oid``, and its pair."""
    rows = df[df["OlinkID"] == oid]
    plate = rows["PlateID"].iloc[-1]
    first = rows[rows["PlateID"] == plate].index[0]
    return first, (df["PlateID"] == plate) & (df["OlinkID"] == oid)


def _edit(case):
    def edit(df):
        df = df.copy()
        df["PlateID"] = df["PlateID"].astype(str)
        if case == "varies_late":  # one late cell of a pair differs
            at = df.index[_pair(df)][-1]
            df.loc[at, "LOD"] = df.loc[at, "LOD"] + 0.5
        elif case == "nan_in_pair":
            df.loc[df.index[_pair(df)][3], "LOD"] = np.nan
        elif case == "signed_zero":  # 0.0 == -0.0, but not bit for bit
            pair = _pair(df)
            df.loc[pair, "LOD"] = 0.0
            df.loc[df.index[pair][5], "LOD"] = -0.0
        elif case == "first_missing":  # the plate's first sample has no row for the assay
            first, _ = _first_of_plate(df)
            df = df.drop(index=first)
        elif case == "first_missing_nan":  # ... and the pair's LOD is NaN: still a table
            first, pair = _first_of_plate(df)
            df.loc[pair, "LOD"] = np.nan
            df = df.drop(index=first)
        elif case == "no_plate_varies":  # LOD per (assay, plate) without PlateID: full
            df = df.drop(columns="PlateID")
        elif case == "no_plate_constant":
            df = df.drop(columns="PlateID")
            df["LOD"] = df.groupby("OlinkID", observed=True)["LOD"].transform("first")
        elif case == "no_lod":
            df = df.drop(columns="LOD")
        elif case == "empty_plate_name":
            df.loc[df["PlateID"] == df["PlateID"].iloc[-1], "PlateID"] = ""
        elif case == "constant":
            pass
        return df

    return edit


CASES = {  # case -> the in-memory reader keeps a full LOD layer
    "constant": False,
    "varies_late": True,
    "nan_in_pair": True,
    "signed_zero": True,
    "first_missing": True,
    "first_missing_nan": False,
    "no_plate_varies": True,
    "no_plate_constant": False,
    "no_lod": False,
    "empty_plate_name": True,  # its cells count as on no plate
}


def _write(base, path, case, order):
    df = _edit(case)(pq.read_table(base).to_pandas())
    if order == "sample":
        df = df.sort_values(["SampleID", "OlinkID"], kind="stable")
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=700)
    return path


@pytest.mark.parametrize("order", ["assay", "sample"])
@pytest.mark.parametrize("case", list(CASES))
def test_lod_layout_equals_in_memory(base, tmp_path, monkeypatch, case, order):
    path = _write(base, tmp_path / f"{case}.parquet", case, order)
    new, old = _read_both(path, monkeypatch)
    assert_same_anndata(new, old)
    assert ("lod" in new.layers) == CASES[case]
    assert ("lod" in new.varm) == (not CASES[case])
    if case == "first_missing_nan":
        assert "measured" in new.layers and np.isnan(new.varm["lod"]).any()


@pytest.mark.parametrize("case", ["constant", "varies_late", "first_missing", "no_lod"])
def test_dask_read_stores_the_same_lod_layout(base, tmp_path, case):
    pytest.importorskip("dask.array")
    path = _write(base, tmp_path / f"{case}.parquet", case, "assay")
    whole = op.read_npx(path)
    lazy = op.read_npx(path, chunks=5)
    assert ("lod" in lazy.layers) == ("lod" in whole.layers)
    if "lod" in whole.varm:
        np.testing.assert_array_equal(lazy.varm["lod"], whole.varm["lod"])
        assert list(lazy.uns["olinkpipe"]["lod_plates"]) == list(
            whole.uns["olinkpipe"]["lod_plates"]
        )
    else:
        assert "lod" not in lazy.varm and "lod_plates" not in lazy.uns["olinkpipe"]
    np.testing.assert_array_equal(_layout.lod_matrix(lazy).compute(), _layout.lod_matrix(whole))
    np.testing.assert_array_equal(
        _layout.below_lod_matrix(lazy).compute(), _layout.below_lod_matrix(whole)
    )


def test_infinite_lod_is_left_to_the_in_memory_reader(base, tmp_path):
    """It names the rows, also with ``chunks=`` (the scan reads the LOD column)."""
    df = pq.read_table(base).to_pandas()
    df.loc[df.index[7], "LOD"] = np.inf
    path = tmp_path / "inf.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    with pytest.raises(op.errors.NPXFormatError, match="infinite"):
        op.read_npx(path)
    pytest.importorskip("dask.array")
    with pytest.raises(op.errors.NPXFormatError, match="infinite"):
        op.read_npx(path, chunks=5)
