"""Parquet (Explore / Explore HT) and zip deliveries."""

from __future__ import annotations

import contextlib
import zipfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from io_builders import (
    make_explore,
    make_long,
    sort_long,
    wide_grid,
    write_long,
    write_wide_xlsx,
)

import olinkpipe as op
from olinkpipe.errors import OlinkpipeWarning


def _explore_ht() -> pa.Table:
    rows = {
        "SampleID": ["Sample_1", "Sample_1", "CTRL_1", "CTRL_1"],
        "SampleType": ["SAMPLE", "SAMPLE", "SAMPLE_CONTROL", "SAMPLE_CONTROL"],
        "WellID": ["A1", "A1", "A2", "A2"],
        "PlateID": ["Plate_1"] * 4,
        "OlinkID": ["OID42741", "OID40001", "OID42741", "OID40001"],
        "UniProt": ["P10636", "P00001", "P10636", "P00001"],
        "Assay": ["MAPT", "Ext Ctrl", "MAPT", "Ext Ctrl"],
        "AssayType": ["assay", "ext_ctrl", "assay", "ext_ctrl"],
        "Panel": ["Explore_HT"] * 4,
        "Block": ["1"] * 4,
        "Count": pa.array([1668, 20000, 1500, 21000], type=pa.int64()),
        "ExtNPX": [0.5, 0.0, 0.4, 0.0],
        "NPX": [0.25, None, 0.125, None],
        "Normalization": ["Plate control"] * 4,
        "PCNormalizedNPX": [0.3, None, 0.2, None],
        "AssayQC": ["PASS"] * 4,
        "SampleQC": ["PASS", "PASS", "WARN", "WARN"],
        "ExploreVersion": ["4.27.0"] * 4,
    }
    t = pa.table(rows)
    return t.replace_schema_metadata(
        {"Product": "ExploreHT", "DataFileType": "NPX File", "FileVersion": "1"}
    )


def test_explore_ht_parquet(tmp_path):
    path = tmp_path / "ht.parquet"
    pq.write_table(_explore_ht(), path)
    adata = op.read_npx(path)
    prov = adata.uns["olinkpipe"]
    assert prov["format"] == "parquet" and prov["product"] == "Explore HT"
    assert prov["metadata"] == {
        "Product": "ExploreHT",
        "DataFileType": "NPX File",
        "FileVersion": "1",
    }
    assert (
        adata.obs.loc["CTRL_1", "SampleType"] == "SAMPLE_CONTROL"
        and adata.obs.loc["CTRL_1", "is_control"]
    )
    assert (
        adata.var.loc["OID40001", "AssayType"] == "ext_ctrl"
        and adata.var.loc["OID40001", "is_control"]
    )
    assert (
        adata.obs.loc["CTRL_1", "QC_Warning"] == "WARN" and not adata.obs.loc["CTRL_1", "qc_pass"]
    )
    np.testing.assert_array_equal(adata.layers["Count"], [[1668, 20000], [1500, 21000]])
    np.testing.assert_array_equal(adata.layers["PCNormalizedNPX"][:, 0], [0.3, 0.2])
    assert adata.X[0, 0] == 0.25 and np.isnan(adata.X[0, 1])
    got = op.to_long(adata)
    exp = _explore_ht().to_pandas()
    got, exp = sort_long(got), sort_long(exp)
    assert list(got.columns) == list(exp.columns)
    np.testing.assert_array_equal(got["Count"], exp["Count"])
    assert got["Count"].dtype == np.int64
    np.testing.assert_array_equal(got["SampleQC"], exp["SampleQC"])


def test_zip_delivery_with_checksum_and_readme(tmp_path):
    df = make_explore()
    csv = write_long(df, tmp_path / "Explore_NPX.csv", sep=";", lineterminator="\r\n")
    path = tmp_path / "delivery.zip"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.write(csv, "Explore_NPX.csv")
        z.writestr("MD5_checksum.txt", "abc  Explore_NPX.csv\n")
        z.writestr("README.txt", "")
    adata = op.read_npx(path)
    assert adata.shape == (3, 8)
    assert adata.uns["olinkpipe"]["source"] == [f"{path}!Explore_NPX.csv"]


@pytest.mark.parametrize("inner", ["parquet", "xlsx"])
def test_zip_holding_parquet_or_xlsx(tmp_path, inner):
    long = make_long(controls=False)
    if inner == "parquet":
        src = tmp_path / "x.parquet"
        pq.write_table(pa.Table.from_pandas(long, preserve_index=False), src)
    else:
        src = write_wide_xlsx(tmp_path / "x.xlsx", wide_grid(long))
    path = tmp_path / "x.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.write(src, src.name)
        z.writestr("checksum_sha256.txt", "")
    with pytest.warns(OlinkpipeWarning) if inner == "xlsx" else contextlib.nullcontext():
        adata = op.read_npx(path)
    assert adata.shape == (6, 6)


def test_parquet_sniffed_despite_extension(tmp_path):
    path = tmp_path / "export.csv"
    pq.write_table(pa.Table.from_pandas(make_long(controls=False), preserve_index=False), path)
    adata = op.read_npx(path)
    assert adata.shape == (6, 6) and adata.uns["olinkpipe"]["format"] == "parquet"


def test_gzip_long_csv(tmp_path):
    df = make_long(controls=False)
    path = tmp_path / "run_NPX.csv.gz"
    df.to_csv(path, sep=";", index=False, compression="gzip")
    adata = op.read_npx(path)
    assert adata.shape == (6, 6)
    np.testing.assert_array_equal(sort_long(op.to_long(adata))["NPX"], sort_long(df)["NPX"])
