"""Writers (h5ad, parquet, csv long) and summarize."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from io_builders import make_explore, make_long, sort_long, write_long

import olinkpipe as op
from olinkpipe._layout import lod_matrix
from olinkpipe.errors import NPXFormatError, OlinkpipeWarning


@pytest.fixture
def adata(tmp_path):
    with pytest.warns(OlinkpipeWarning):
        return op.read_npx(write_long(make_long(lod_per_plate=True), tmp_path / "in.csv"))


@pytest.mark.parametrize("ext", ["h5ad", "parquet", "csv", "tsv"])
def test_write_and_read_back(tmp_path, adata, ext):
    path = op.io.write(adata, tmp_path / f"out.{ext}")
    assert path.exists()
    if ext == "h5ad":
        back = ad.read_h5ad(path)
        assert back.uns["olinkpipe"]["product"] == "Target 96"
        assert list(back.obsm["PlateID"].columns) == list(adata.obsm["PlateID"].columns)
    else:
        with pytest.warns(OlinkpipeWarning):
            back = op.read_npx(path)
    np.testing.assert_array_equal(back.X, adata.X)
    np.testing.assert_array_equal(lod_matrix(back), lod_matrix(adata))
    pd.testing.assert_frame_equal(
        sort_long(op.to_long(back)), sort_long(op.to_long(adata)), check_dtype=False
    )


def test_parquet_metadata(tmp_path, adata):
    import pyarrow.parquet as pq

    path = op.io.write(adata, tmp_path / "o.parquet")
    meta = pq.read_schema(path).metadata
    assert meta[b"Product"] == b"Target 96" and meta[b"DataFileType"] == b"NPX File"


def test_h5ad_with_coded_layers_and_clinical(tmp_path):
    a = op.io.from_long(make_explore())
    clin = pd.DataFrame({"SampleID": ["S01", "S02"], "dose": [1.5, None], "arm": ["A", None]})
    a = op.annotate(a, clin, id_column="SampleID")
    path = op.io.write(a, tmp_path / "e.h5ad")
    back = ad.read_h5ad(path)
    pd.testing.assert_frame_equal(
        sort_long(op.to_long(back)), sort_long(op.to_long(a)), check_dtype=False
    )


def test_unknown_extension(tmp_path, adata):
    with pytest.raises(NPXFormatError, match="cannot write '.xyz'"):
        op.io.write(adata, tmp_path / "o.xyz")


def test_summarize_hand_counts():
    df = pd.DataFrame(
        {
            "SampleID": ["S1", "S2", "S1", "S2", "C1", "C1"],
            "OlinkID": ["O1", "O1", "O2", "O2", "O1", "O2"],
            "Assay": ["IL6", "IL6", "Inc Ctrl 1", "Inc Ctrl 1", "IL6", "Inc Ctrl 1"],
            "Panel": ["P"] * 6,
            "PlateID": ["pl1", "pl1", "pl1", "pl1", "pl2", "pl2"],
            "QC_Warning": ["Pass", "Warning", "Pass", "Warning", "Pass", "Pass"],
            "LOD": [1.0, 1.0, 2.0, 2.0, 1.0, 2.0],
            "NPX": [0.5, 3.0, np.nan, 5.0, 1.5, 1.0],
        }
    )
    s = op.io.summarize(op.io.from_long(df))
    assert s["samples"] == 3 and s["assays"] == 2 and s["panels"] == 1 and s["plates"] == 2
    assert s["control_assays"] == 1 and s["qc_warnings"] == 1 and s["qc_warning_cells"] == 2
    # measured with NPX and LOD: 5 cells; below LOD: S1/O1 (0.5<1), C1/O2 (1<2) -> 40 %
    assert s["pct_below_lod"] == 40.0
    assert s["pct_missing"] == round(100 / 6, 2)
