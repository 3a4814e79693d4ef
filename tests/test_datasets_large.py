"""The streaming biobank-size writer (op.datasets.write_large_explore)."""

import numpy as np
import pyarrow.parquet as pq
import pytest

import olinkpipe as op
from olinkpipe._layout import below_lod_matrix, lod_matrix
from olinkpipe.datasets import write_large_explore
from olinkpipe.errors import DesignError


def test_parquet_layout_and_content(tmp_path):
    path = write_large_explore(tmp_path / "big.parquet", 250, 50, seed=3, assays_per_block=8)
    pf = pq.ParquetFile(path)
    assert pf.metadata.num_rows == 250 * 50
    assert pf.schema_arrow.metadata[b"Product"] == b"Explore 3072"
    # row groups hold whole assays of one panel, text columns dictionary-encoded
    assert pf.metadata.num_row_groups >= 8
    col = pf.read_row_group(0, columns=["OlinkID"]).column(0)
    assert pf.metadata.row_group(0).column(0).encodings.count("RLE_DICTIONARY") == 1
    assert col.num_chunks >= 1
    adata = op.read_npx(path)
    assert adata.shape == (250, 50)
    assert set(adata.obs["SampleType"]) == {
        "SAMPLE",
        "SAMPLE_CONTROL",
        "NEGATIVE_CONTROL",
        "PLATE_CONTROL",
    }
    # 250 samples: two full plates (8 controls in wells 89-96 each) and a partial third
    assert adata.obs["is_control"].sum() == 2 * 8
    assert len(adata.var["Panel"].unique()) == 8
    # LOD is constant per assay and plate (so the reader stores it as a plate table)
    assert "lod" in adata.varm and "lod" not in adata.layers
    lod = lod_matrix(adata)
    plates = adata.obs["PlateID"].to_numpy()
    for plate in np.unique(plates):
        block = lod[plates == plate]
        assert np.all(block == block[0])
    assert np.isnan(adata.X).sum() < 0.01 * adata.X.size
    # negative controls sit below LOD, study samples mostly above
    neg = (adata.obs["SampleType"] == "NEGATIVE_CONTROL").to_numpy()
    below = below_lod_matrix(adata)
    assert below[neg].mean() > 0.9
    assert below[~adata.obs["is_control"].to_numpy()].mean() < 0.3


def test_seeded_and_csv_equal_parquet(tmp_path):
    a = write_large_explore(tmp_path / "a.parquet", 120, 30, seed=5)
    b = write_large_explore(tmp_path / "b.parquet", 120, 30, seed=5)
    c = write_large_explore(tmp_path / "c.csv", 120, 30, seed=5, file_format="csv", sep=";")
    assert pq.read_table(a).equals(pq.read_table(b))
    xa, xc = op.read_npx(a).X, op.read_npx(c).X
    np.testing.assert_array_equal(xa, xc)


def test_per_panel_directory(tmp_path):
    out = write_large_explore(tmp_path / "d", 100, 40, seed=1, per_panel=True)
    files = sorted(out.glob("*.parquet"))
    assert len(files) == 8
    assert sum(pq.ParquetFile(f).metadata.num_rows for f in files) == 100 * 40


def test_bad_arguments(tmp_path):
    with pytest.raises(DesignError):
        write_large_explore(tmp_path / "x.parquet", 0, 10)
    with pytest.raises(DesignError):
        write_large_explore(tmp_path / "x", 10, 10, per_panel=True, file_format="csv")
