"""Target 96 wide exports (NPX Manager layouts A and B), xlsx and csv, against the long data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from io_builders import (
    break_xlsx,
    make_long,
    wide_grid,
    write_long,
    write_wide_csv,
    write_wide_xlsx,
)

import olinkpipe as op
from olinkpipe._layout import lod_matrix, qc_warning_matrix
from olinkpipe.errors import NPXFormatError, OlinkpipeWarning
from olinkpipe.io.wide import olink_panel_name


def _read(path, **kw):
    with pytest.warns(OlinkpipeWarning):
        return op.read_npx(path, **kw)


def _check_against_long(adata, long: pd.DataFrame) -> None:
    got = op.to_long(adata).rename(columns={"Quantified_value": "NPX", "Plate_LOD": "LOD"})
    m = long.merge(
        got,
        on=["SampleID", "OlinkID", "PlateID"],
        suffixes=("", "_w"),
        how="outer",
        indicator=True,
    )
    assert (m["_merge"] == "both").all(), m[m["_merge"] != "both"]
    np.testing.assert_allclose(m["NPX_w"], m["NPX"], rtol=0, atol=1e-12)
    np.testing.assert_array_equal(m["QC_Warning_w"], m["QC_Warning"])
    np.testing.assert_allclose(m["LOD_w"], m["LOD"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(m["MissingFreq_w"], m["MissingFreq"], rtol=0, atol=1e-12)
    assert (m["Assay_w"] == m["Assay"]).all() and (m["UniProt_w"] == m["UniProt"]).all()
    assert (m["Panel_w"] == m["Panel"].map(olink_panel_name)).all() and (
        m["Panel_Version_w"] == m["Panel_Version"]
    ).all()


def test_layout_a_xlsx_matches_long(tmp_path):
    long = make_long()
    path = write_wide_xlsx(tmp_path / "t96.xlsx", wide_grid(long))
    adata = _read(path)
    assert adata.shape == (8, 6)
    _check_against_long(adata, long)
    # numeric SampleID cell -> text; trailing spaces stripped (with a warning)
    assert "1001" in adata.obs_names and "S4" in adata.obs_names
    assert adata.var["Normalization"].eq("Intensity Normalized (v.2)").all()
    prov = adata.uns["olinkpipe"]
    assert prov["format"] == "wide" and prov["product"] == "Target 96"
    assert prov["metadata"]["Software"] == "Olink NPX Manager 2.1.0.224"
    assert prov["metadata"]["Project"] == "Biomarkörer study"
    assert adata.obsm["PlateID"].loc["S1"].tolist() == ["Run_INF_plate1", "Run_CAM_plate1"]


def test_layout_b_summary_block_single_panel(tmp_path):
    long = make_long()
    long = long[long.Panel == "Olink Cardiometabolic"].reset_index(drop=True)
    grid = wide_grid(long, layout="B", normalization=False, trailing_space=None)
    path = write_wide_xlsx(tmp_path / "cvd2.xlsx", grid, sheet="CVD II", user_sheet_first=True)
    with pytest.warns(OlinkpipeWarning) as rec:
        adata = op.read_npx(path)
    messages = " ".join(str(w.message) for w in rec)
    assert "reading 'CVD II'" in messages and "more than one plate" in messages
    assert adata.shape == (8, 3)
    _check_against_long(adata, long)
    meta = adata.uns["olinkpipe"]["metadata"]
    assert adata.uns["olinkpipe"]["source"] == [str(path)] and meta["Sheet"] == "CVD II"
    assert meta["# Plates"] == "2" and meta["Normalization Method"] == "Intensity Normalized (v.2)"
    assert meta["# Proteins detected > 75%"] == "3 / 3"
    assert "Normalization" not in adata.var
    np.testing.assert_allclose(adata.obs["QC Deviation Inc Ctrl"], 0.1)
    np.testing.assert_allclose(adata.obs["QC Deviation Det Ctrl"], -0.05)


def test_sheet_argument(tmp_path):
    long = make_long(controls=False)
    path = write_wide_xlsx(tmp_path / "w.xlsx", wide_grid(long), user_sheet_first=True)
    a = _read(path, sheet="NPX Data")
    b = _read(path, sheet=1)
    np.testing.assert_array_equal(a.X, b.X)
    with pytest.raises(NPXFormatError, match="no sheet 'nope'"):
        op.read_npx(path, sheet="nope")


def test_wide_csv_decimal_comma_semicolon(tmp_path):
    long = make_long()
    path = write_wide_csv(tmp_path / "wide.csv", wide_grid(long), sep=";", decimal=",")
    adata = _read(path)
    _check_against_long(adata, long)


def test_wide_csv_comma(tmp_path):
    long = make_long()
    path = write_wide_csv(tmp_path / "wide.txt", wide_grid(long), sep=",", decimal=".")
    _check_against_long(_read(path), long)


def test_empty_cells_and_markers(tmp_path):
    long = make_long(controls=False)
    markers = {
        ("S1", "OID01001"): "> ULOQ",
        ("S2", "OID01002"): "< LLOQ",
        ("S5", "OID01003"): "No Data",
    }
    grid = wide_grid(long, markers=markers, trailing_space=None)
    path = write_wide_xlsx(tmp_path / "m.xlsx", grid)
    with pytest.warns(OlinkpipeWarning, match="3 cell"):
        adata = op.read_npx(path)
    for s, o in markers:
        assert np.isnan(adata[s, o].X[0, 0])
    assert np.isnan(adata.X).sum() == 4  # three markers + one empty cell (S3, NRP1)


def test_quantified_wide(tmp_path):
    long = make_long(controls=False)
    path = write_wide_xlsx(tmp_path / "q.xlsx", wide_grid(long, data_type="Quantified data"))
    adata = _read(path)
    assert adata.uns["olinkpipe"]["data_type"] == "Quantified"
    assert "Quantified_value" in op.to_long(adata).columns


def test_broken_package_reads(tmp_path):
    import openpyxl

    long = make_long()
    path = break_xlsx(write_wide_xlsx(tmp_path / "bad.xlsx", wide_grid(long)))
    with pytest.raises(KeyError):
        openpyxl.load_workbook(path)
    _check_against_long(_read(path), long)


def test_wide_equals_long_file(tmp_path):
    """The same study as long CSV and as wide xlsx gives the same AnnData values."""
    long = make_long()
    a = _read(write_long(long, tmp_path / "l.csv"))
    b = _read(write_wide_xlsx(tmp_path / "w.xlsx", wide_grid(long, trailing_space=None)))
    assert list(a.obs_names) == list(b.obs_names)
    b = b[:, a.var_names]
    np.testing.assert_allclose(a.X, b.X, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(qc_warning_matrix(a), qc_warning_matrix(b))


def test_flex_long_xlsx_numbers_as_text(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    ws = wb.active
    header = [
        "SampleID",
        "Index",
        "OlinkID",
        "UniProt",
        "Assay",
        "Panel",
        "PlateID",
        "QC_Warning",
        "Plate_LOD",
        "LLOQ",
        "ULOQ",
        "Quantified_value",
        "Unit",
    ]
    ws.append(header)
    ws.append(
        [
            "1a",
            "1",
            "OID15123",
            "P01579",
            "IFNG",
            "FENK",
            "Plate1",
            "Pass",
            "0.00695",
            "0.02851",
            "1699.41249",
            "0.19169",
            "pg/ml",
        ]
    )
    ws.append(
        [
            "1a",
            "1",
            "OID15124",
            "Q9UHD0",
            "IL19",
            "FENK",
            "Plate1",
            "Pass",
            "0.2874",
            "4.94692",
            "47177.46445",
            "336.12903",
            "pg/ml",
        ]
    )
    for _ in range(20):
        ws.append([None] * len(header))
    path = tmp_path / "flex.xlsx"
    wb.save(path)
    adata = op.read_npx(path)
    assert adata.shape == (1, 2)
    np.testing.assert_array_equal(adata.X, [[0.19169, 336.12903]])
    np.testing.assert_array_equal(lod_matrix(adata), [[0.00695, 0.2874]])
    assert adata.uns["olinkpipe"]["data_type"] == "Quantified"
    assert (
        adata.var.loc["OID15124", "ULOQ"] == 47177.46445
        and adata.var.loc["OID15124", "Unit"] == "pg/ml"
    )


def test_target48_quant_with_unit_row_and_quant_footers(tmp_path):
    long = make_long(controls=False)
    long = long[long.Panel == "Olink Inflammation"].copy()
    long["Panel"] = "Olink Target 48 Cytokine"  # the panel cell; read as "Olink Cytokine"
    grid = wide_grid(long, data_type="Quantified data", normalization=False, trailing_space=None)
    i_oid = next(k for k, r in enumerate(grid) if r and r[0] == "OlinkID")
    grid.insert(i_oid + 1, ["Unit"] + ["pg/mL"] * 3)
    grid += [["LLOQ", 0.5, 0.6, 0.7], ["ULOQ", 900.0, 800.0, 700.0]]
    adata = op.read_npx(write_wide_xlsx(tmp_path / "t48.xlsx", grid))
    assert adata.shape == (6, 3)
    prov = adata.uns["olinkpipe"]
    assert prov["product"] == "Target 48" and prov["data_type"] == "Quantified"
    assert adata.var["Unit"].eq("pg/mL").all()
    np.testing.assert_array_equal(adata.var["LLOQ"], [0.5, 0.6, 0.7])
    np.testing.assert_array_equal(adata.var["ULOQ"], [900.0, 800.0, 700.0])
    assert adata.var["Panel"].eq("Olink Cytokine").all()
    assert "Plate_LOD" in op.to_long(adata).columns
    _check_against_long(adata, long)


def test_olinkanalyze_panel_names():
    assert olink_panel_name("Olink CARDIOVASCULAR III(v.6112)") == "Olink Cardiovascular III"
    assert olink_panel_name("Olink Target 96 Cardiometabolic") == "Olink Cardiometabolic"
    assert olink_panel_name("Olink Target 96 Immuno-Oncology") == "Olink Immuno-Oncology"


def test_product_argument_overrides():
    long = make_long(controls=False)
    adata = op.io.from_long(long, product="Target 96 (custom)")
    assert adata.uns["olinkpipe"]["product"] == "Target 96 (custom)"


def test_layout_b_as_csv(tmp_path):
    long = make_long(controls=False)
    long = long[long.Panel == "Olink Inflammation"].reset_index(drop=True)
    grid = wide_grid(long, layout="B", normalization=False, trailing_space=None)
    adata = op.read_npx(write_wide_csv(tmp_path / "b.csv", grid, sep=";", decimal=","))
    assert adata.shape == (6, 3) and adata.uns["olinkpipe"]["metadata"]["# Plates"] == "2"
    _check_against_long(adata, long)


def test_pandas_fallback_when_openpyxl_fails(tmp_path, monkeypatch):
    from olinkpipe.io import wide

    long = make_long(controls=False)
    path = write_wide_xlsx(tmp_path / "w.xlsx", wide_grid(long, trailing_space=None))

    def broken(*args, **kwargs):
        raise KeyError("There is no item named 'xl/drawings/drawing1.xml' in the archive")

    monkeypatch.setattr(wide, "_openpyxl_grids", broken)
    _check_against_long(op.read_npx(path), long)


def test_hash_marker(tmp_path):
    long = make_long(controls=False)
    grid = wide_grid(long, markers={("S1", "OID01001"): "#"}, trailing_space=None)
    with pytest.warns(OlinkpipeWarning, match="1 cell"):
        adata = op.read_npx(write_wide_xlsx(tmp_path / "h.xlsx", grid))
    assert np.isnan(adata["S1", "OID01001"].X[0, 0])


def test_quant_footer_rows_per_plate(tmp_path):
    """Target 48 quant exports repeat LOD / Assay warning once per plate."""
    long = make_long(controls=False, lod_per_plate=True)
    long = long[long.Panel == "Olink Inflammation"].reset_index(drop=True)
    grid = wide_grid(long, data_type="Quantified data", normalization=False, trailing_space=None)
    i_lod = next(k for k, r in enumerate(grid) if r and r[0] == "LOD")
    assays = list(dict.fromkeys(long.OlinkID))
    lods = {
        plate: ["LOD"]
        + [float(long[(long.OlinkID == o) & (long.PlateID == plate)].LOD.iloc[0]) for o in assays]
        for plate in ["Run_INF_plate1", "Run_INF_plate2"]
    }
    grid[i_lod : i_lod + 1] = [lods["Run_INF_plate1"], lods["Run_INF_plate2"]]
    grid += [
        ["Assay warning", "Pass", "Pass", "Pass"],
        ["Assay warning", "Warning", "Pass", "Pass"],
    ]
    adata = op.read_npx(write_wide_xlsx(tmp_path / "q2.xlsx", grid))
    _check_against_long(adata, long)  # LOD per plate
    got = op.to_long(adata)
    warn = got[(got.OlinkID == assays[0])].set_index("PlateID")["Assay_Warning"]
    assert set(warn["Run_INF_plate1"]) == {"Pass"} and set(warn["Run_INF_plate2"]) == {"Warning"}
