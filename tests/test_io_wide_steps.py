"""The named steps of io/_wide_grid.parse_wide, each on a hand-written grid."""

from __future__ import annotations

import numpy as np
import pytest

from olinkpipe.errors import NPXFormatError, OlinkpipeWarning
from olinkpipe.io import _wide_grid as wg

GRID = [
    ["My study", "Olink NPX Manager"],
    ["NPX data"],
    ["Panel", "Olink X(v.1)", "Olink X(v.1)", None, None],
    ["Assay", "IL6", "TNF", "Plate ID", "QC Warning"],
    ["Uniprot ID", "P05231", "P01375", None, None],
    ["OlinkID", "OID00001", "OID00002", None, None],
    ["S1", 1.5, "> ULOQ", "P1", "Pass"],
    ["S2 ", 2.5, 3.0, "P1", "Warning"],
    [None],
    ["LOD", 0.5, 0.7, None, None],
]


def _grid(rows=GRID):
    width = max(len(r) for r in rows)
    return [list(r) + [None] * (width - len(r)) for r in rows]


def test_header_columns_and_block():
    grid = _grid()
    head = wg._read_header(grid, "g.xlsx")
    assert head.data_type == "NPX" and head.i_oid == 5
    assert head.meta == {"Project": "My study", "Software": "Olink NPX Manager"}
    assert head.panel_of(3) == "Olink X(v.1)"  # a blank Panel cell: the one panel
    cols = wg._assay_columns(head)
    assert cols.assay == [1, 2] and cols.plate == {"Olink X(v.1)": 3} and cols.side == [3, 4]
    start = wg._extra_header_rows(head)
    rows, footer = wg._block(grid, head.labels, start, "g.xlsx", cols.side)
    assert rows == [6, 7] and footer == {"LOD": [9]}
    with pytest.warns(OlinkpipeWarning, match="spaces"):
        assert wg._sample_ids(grid, rows, "g.xlsx") == ["S1", "S2"]


def test_coerce_and_pivot():
    grid = _grid()
    head = wg._read_header(grid, "g.xlsx")
    cols = wg._assay_columns(head)
    with pytest.warns(OlinkpipeWarning, match="1 cell"):
        values = wg._coerce_values(head, cols.assay, [6, 7])
    np.testing.assert_array_equal(values, [[1.5, 2.5], [np.nan, 3.0]])
    long, panels = wg._pivot(head, cols, [6, 7], ["S1", "S2"], {"LOD": [9]}, values)
    assert panels == ["Olink X(v.1)"] * 2
    assert long["OlinkID"].tolist() == ["OID00001"] * 2 + ["OID00002"] * 2  # assay-major
    assert long["Panel"].unique().tolist() == ["Olink X"]
    assert long["Panel_Version"].unique().tolist() == ["v.1"]
    assert long["LOD"].tolist() == [0.5, 0.5, 0.7, 0.7]
    assert long["QC_Warning"].tolist() == ["Pass", "Warning"] * 2


def test_steps_name_the_problem():
    bad = _grid([r if r and r[0] != "OlinkID" else ["OlinkID", "OID1", "OID1"] for r in GRID])
    with pytest.raises(NPXFormatError, match="more than one column"):
        wg._assay_columns(wg._read_header(bad, "g.xlsx"))
    grid = _grid()
    grid[6][1] = "abc"
    head = wg._read_header(grid, "g.xlsx")
    with pytest.raises(NPXFormatError, match=r"cell B7 \(OID00001\): 'abc'"):
        wg._coerce_values(head, [1, 2], [6, 7])
    with pytest.raises(NPXFormatError, match="rows 'Assay' and 'OlinkID' not found"):
        wg._read_header(_grid(GRID[:4]), "g.xlsx")
