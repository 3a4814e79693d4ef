"""The io export builders (tests/io_builders.py) lay files out as Olink software does."""

from __future__ import annotations

from io_builders import wide_grid


def test_make_long_is_a_full_grid(long_export):
    df = long_export
    # 6 samples + 1 control on 2 plates, x 6 assays
    assert len(df) == (6 + 2) * 6
    assert df.groupby(["SampleID", "PlateID", "OlinkID"]).size().max() == 1


def test_wide_grid_layout_a_rows(long_export):
    grid = wide_grid(long_export)
    labels = [r[0] if r else None for r in grid]
    assert labels[:6] == [
        "Biomarkörer study",
        "NPX data",
        "Panel",
        "Assay",
        "Uniprot ID",
        "OlinkID",
    ]
    assert labels[-3:] == ["LOD", "Missing Data freq.", "Normalization"]
