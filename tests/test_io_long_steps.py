"""The named steps of io/convert.from_long (columns → coerce → pivot → annotate), each on a
hand-written table."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from olinkpipe.errors import MissingColumnError, NPXFormatError
from olinkpipe.io import _pivot as pv
from olinkpipe.io import convert as cv
from olinkpipe.io._longtable import _Column, _Groups


def _table(**cols) -> pa.Table:
    return pa.table({k.replace("__", " "): v for k, v in cols.items()})


def test_columns_reads_roles_from_an_odd_header():
    t = _table(
        Sample__ID=["S1"], Olink_ID=["OID1"], Quantified__value=[1.0], Plate__LOD=[0.1],
        Plate_ID=["P1"], Sample_QC=["Pass"], Uniprot=["P1234"], Extra=["x"],
    )  # fmt: skip
    columns, roles = cv._columns(t, file="f.csv")
    assert columns == list(t.column_names)
    assert roles["sample"] == "Sample ID" and roles["olinkid"] == "Olink_ID"
    assert roles["value"] == "Quantified value" and roles["lod"] == "Plate LOD"
    assert roles["plate"] == "Plate_ID" and roles["qc"] == "Sample_QC"
    assert roles["uniprot"] == "Uniprot" and roles["panel"] is None and roles["assay"] is None


def test_columns_refuses_repeated_missing_and_empty():
    rep = pa.Table.from_arrays(
        [pa.array(["S1"]), pa.array(["O1"]), pa.array([1.0]), pa.array([2.0])],
        names=["SampleID", "OlinkID", "NPX", "NPX"],
    )
    with pytest.raises(NPXFormatError, match=r"f\.csv.*'NPX' occur more than once"):
        cv._columns(rep, file="f.csv")
    with pytest.raises(MissingColumnError, match=r"\['NPX'\] not found.*Value"):
        cv._columns(_table(SampleID=["S1"], OlinkID=["O1"], Value=[1.0]), file=None)
    empty = _table(SampleID=pa.array([], pa.string()), OlinkID=pa.array([], pa.string()),
                   NPX=pa.array([], pa.float64()))  # fmt: skip
    with pytest.raises(NPXFormatError, match="no data rows"):
        cv._columns(empty, file=None)


def test_row_labeller_uses_labels_else_offset():
    assert cv._row_labeller(None, 2)(np.array([0, 3])) == [2, 5]
    assert cv._row_labeller(["B2", "B3"], 2)(np.array([1])) == ["B3"]


def test_pivot_scatters_kept_rows_and_row_order():
    # rows: (obs, assay) = (0,0), (0,1), (1,0), (1,1), (1,1) again (dropped)
    cell = np.array([0, 1, 2, 3, 3])
    p = pv.Pivot(2, 2, cell, keep_rows=np.array([0, 1, 2, 3]))
    np.testing.assert_array_equal(p.kept(np.arange(5)), [0, 1, 2, 3])
    x = p.scatter(np.array([1.0, 2.0, 3.0, 4.0, 9.0]), np.nan, np.float64)
    np.testing.assert_array_equal(x, [[1.0, 2.0], [3.0, 4.0]])
    codes = p.scatter(np.array([5, 6, 7, 8], dtype=np.int8), -1, np.int8, kept=True)
    assert codes.dtype == np.int8 and codes.tolist() == [[5, 6], [7, 8]]
    assert pv.row_order(np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])) == "sample"
    assert pv.row_order(np.array([0, 1, 0, 1]), np.array([0, 0, 1, 1])) == "assay"
    assert pv.row_order(np.array([0]), np.array([0])) == "assay"


def _ids(**codes) -> pv.Ids:
    """The key codes of a hand-written table (fields not given: empty)."""
    empty = np.zeros(0, dtype=np.int64)
    return pv.Ids(**{f: codes.get(f, empty) for f in pv.Ids._fields})


def test_panel_grids_plates_and_qc():
    # 2 obs, 2 panels; obs 1 not measured on panel 1
    o_codes = np.array([0, 0, 1])
    ids = _ids(p_codes=np.array([0, 1, 0]), p_uni=np.array(["A", "B"]),
               q_codes=np.array([0, 1, 1]), q_uni=np.array(["P1", "P2"]))  # fmt: skip
    pivot = pv.Pivot(2, 3, cell=np.array([0, 1, 3]), keep_rows=None)
    qc = _Column("QC_Warning", pa.chunked_array([pa.array(["Pass", "Warning", "Pass"])]))
    grids = pv.panel_grids(pivot, o_codes, ids, qc)
    assert grids.on_panel.tolist() == [[True, True], [True, False]]
    assert grids.plate.tolist() == [["P1", "P2"], ["P2", ""]]
    assert grids.qc.tolist() == [["Pass", "Warning"], ["Pass", ""]]
    assert grids.qc_layer_col is None
    # QC varying within (obs 0, panel 0): it becomes a layer, the grid stays empty
    qc2 = _Column("QC_Warning", pa.chunked_array([pa.array(["Pass", "Warning", "Pass"])]))
    one_panel = ids._replace(p_codes=np.zeros(3, dtype=np.int64), p_uni=np.array(["A"]))
    grids = pv.panel_grids(pivot, o_codes, one_panel, qc2)
    assert grids.qc_layer_col == "QC_Warning" and grids.qc.tolist() == [[""], [""]]


def test_place_columns_obs_var_or_layer():
    # 2 samples × 2 assays, one row each
    o_codes, a_codes = np.array([0, 0, 1, 1]), np.array([0, 1, 0, 1])
    data = {
        "SampleID": ["S1", "S1", "S2", "S2"],
        "OlinkID": ["O1", "O2", "O1", "O2"],
        "NPX": [1.0, 2.0, 3.0, 4.0],
        "Age": [30.0, 30.0, 40.0, 40.0],  # constant per sample → obs
        "Assay": ["IL6", "TNF", "IL6", "TNF"],  # constant per assay → var
        "Unit": ["u", "u", "u", "u"],  # assay-level name, constant → var first
        "Well": ["A1", "A2", "B1", "B2"],  # varies → coded layer
        "Count": [5.0, 5.0, 5.0, 5.0],  # measurement level → always a layer
    }
    cols = {c: _Column(c, pa.chunked_array([pa.array(v)])) for c, v in data.items()}
    roles = {"sample": "SampleID", "olinkid": "OlinkID", "value": "NPX", "lod": None,
             "plate": None, "qc": None, "panel": None, "assay": "Assay", "uniprot": None}  # fmt: skip
    pivot = pv.Pivot(2, 2, cell=o_codes * 2 + a_codes, keep_rows=None)
    layers: dict = {}
    ids = _ids(a_codes=a_codes, a_groups=_Groups(a_codes, 2))
    obs_cols, var_cols, coded = pv.place_columns(
        list(data), cols, roles, pivot, o_codes, ids, layers, None
    )
    assert list(obs_cols) == ["Age"] and obs_cols["Age"].tolist() == [30.0, 40.0]
    assert set(var_cols) == {"Assay", "Unit"} and var_cols["Assay"].tolist() == ["IL6", "TNF"]
    assert set(layers) == {"Well", "Count"} and set(coded) == {"Well"}
    well = coded["Well"][layers["Well"]]
    assert well.tolist() == [["A1", "A2"], ["B1", "B2"]]
    assert layers["Count"].tolist() == [[5.0, 5.0], [5.0, 5.0]]


def test_qc_from_cells_per_panel():
    # 2 obs × 3 assays on 2 panels (assays 0, 1 → panel 0; assay 2 → panel 1)
    codes = np.array([[0, 1, 0], [0, 0, -1]], dtype=np.int8)
    cats = np.array(["Pass", "Warning"], dtype=object)
    on_panel = np.array([[True, True], [True, False]])
    qc = pv.qc_from_cells(codes, cats, np.array([0, 0, 1]), on_panel)
    assert qc.tolist() == [["Warning", "Pass"], ["Pass", ""]]
