"""Malformed and unusual exports from many labs: each reads correctly or raises an
olinkpipe error naming the file, the column, the rows and a fix; nothing is lost silently."""

from __future__ import annotations

import io
import warnings
import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from io_builders import make_long, sort_long, wide_grid, write_long, write_wide_xlsx

import olinkpipe as op
from olinkpipe.errors import (
    DuplicateSampleError,
    MissingColumnError,
    NPXFormatError,
    OlinkpipeError,
    OlinkpipeWarning,
)

HEADER = "SampleID;OlinkID;Assay;Panel;PlateID;LOD;NPX"


def _text(lines: list[str], sep: str = ";") -> str:
    return "\n".join(ln.replace(";", sep) for ln in lines) + "\n"


# --- every error the issue lists: olinkpipe error, file, column, rows, hint ---------------


def _empty(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_bytes(b"")
    return p, NPXFormatError, None, None


def _unknown(tmp_path):
    p = tmp_path / "notes.csv"
    p.write_text("name,age\nalice,3\n")
    return p, NPXFormatError, None, None


def _missing_column(tmp_path):
    p = write_long(make_long(controls=False).drop(columns=["OlinkID"]), tmp_path / "m.csv")
    return p, MissingColumnError, "OlinkID", None


def _non_numeric(tmp_path):
    df = make_long(controls=False).astype({"NPX": object})
    df.loc[[0, 7], "NPX"] = ["n.d.", "abc"]
    return write_long(df, tmp_path / "nn.csv"), NPXFormatError, "'NPX'", "Rows: 2, 9."


def _two_assay_names(tmp_path):
    df = make_long(controls=False)
    df.loc[df.index[df.OlinkID == "OID01001"][:1], "Assay"] = "IL-6"
    return write_long(df, tmp_path / "two.csv"), NPXFormatError, "'Assay'", "Rows: 2."


def _truncated_parquet(tmp_path):
    full = tmp_path / "full.parquet"
    pq.write_table(pa.Table.from_pandas(make_long(), preserve_index=False), full)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(full.read_bytes()[:-300])
    return cut, NPXFormatError, None, None


def _no_npx_sheet(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.append(["patient", "age"])
    p = tmp_path / "clin.xlsx"
    wb.save(p)
    return p, NPXFormatError, None, None


@pytest.mark.parametrize(
    "case",
    [
        _empty,
        _unknown,
        _missing_column,
        _non_numeric,
        _two_assay_names,
        _truncated_parquet,
        _no_npx_sheet,
    ],
)
def test_issue_error_cases_name_file_column_rows_and_hint(tmp_path, case):
    path, cls, column, rows = case(tmp_path)
    with pytest.raises(cls) as err:
        op.read_npx(path)
    msg = str(err.value)
    assert isinstance(err.value, OlinkpipeError)
    assert str(path) in msg and "Hint:" in msg
    if column:
        assert column in msg
    if rows:
        assert rows in msg


# --- decimal marks and thousands separators ----------------------------------------------


@pytest.mark.parametrize(
    ("sep", "values", "expected"),
    [
        (";", ["1.234,5", "2,25", "12.345.678,5"], [1234.5, 2.25, 12345678.5]),
        ("\t", ['"1.234,5"', "2,5", "3,75"], [1234.5, 2.5, 3.75]),
        (",", ['"1,234.5"', "2.5", "3.75"], [1234.5, 2.5, 3.75]),
    ],
)
def test_thousands_separators_read_as_numbers(tmp_path, sep, values, expected):
    lines = [HEADER] + [f"S{k};OID1;IL6;Olink INF;P1;0,5;{v}" for k, v in enumerate(values)]
    if sep == ",":
        lines = [ln.replace("0,5", "0.5") for ln in lines]
    path = tmp_path / "q.csv"
    path.write_text(_text(lines, sep))
    adata = op.read_npx(path)
    np.testing.assert_array_equal(adata.X[:, 0], expected)


def test_single_group_in_decimal_comma_file_is_ambiguous(tmp_path):
    lines = [HEADER] + [
        "S1;OID1;IL6;Olink INF;P1;0,5;1,5",
        "S2;OID1;IL6;Olink INF;P1;0,5;1.234",
        "S3;OID1;IL6;Olink INF;P1;0,5;2,5",
    ]
    path = tmp_path / "mixed.csv"
    path.write_text(_text(lines))
    with pytest.raises(NPXFormatError, match=r"column 'NPX': value\(s\) that are ambiguous") as e:
        op.read_npx(path)
    assert "'1.234'. Rows: 3." in str(e.value) and "Hint:" in str(e.value)


def test_decimal_comma_round_trip_values_equal_source_floats(tmp_path):
    df = make_long()
    path = write_long(df, tmp_path / "dc.csv", sep=";", decimal=",")
    with pytest.warns(OlinkpipeWarning, match="more than one plate"):
        back = op.to_long(op.read_npx(path))
    got, exp = sort_long(back), sort_long(df)
    for c in ("NPX", "LOD", "MissingFreq"):
        np.testing.assert_array_equal(got[c].to_numpy(float), exp[c].to_numpy(float))
    assert got["NPX"].isna().sum() == 1  # S3 x NRP1 (and nothing else)


@pytest.mark.parametrize("value", ["Inf", "-Inf"])
def test_infinite_npx_is_an_error(tmp_path, value):
    path = tmp_path / "inf.csv"
    path.write_text(f"SampleID,OlinkID,NPX\nS1,O1,1.5\nS2,O1,{value}\n")
    with pytest.raises(NPXFormatError, match=r"column 'NPX': infinite value.*Rows: 3\."):
        op.read_npx(path)


# --- encodings, delimiters, line shapes ----------------------------------------------------


def test_windows_1252_byte_after_the_sniffed_head(tmp_path):
    body = [f"S{k};OID1;IL6;Olink INF;P1;0.5;{k}.5" for k in range(4000)]
    body.append("Ö31;OID1;IL6;Olink INF;P1;0.5;9.5")
    path = tmp_path / "late.csv"
    path.write_bytes(_text([HEADER, *body]).encode("cp1252"))
    assert path.stat().st_size > 1 << 16
    with pytest.warns(OlinkpipeWarning, match=r"not valid UTF-8 \(first at line 4002\)"):
        adata = op.read_npx(path)
    assert adata.n_obs == 4001 and adata.obs_names[-1] == "Ö31"
    assert adata.X[-1, 0] == 9.5


def test_trailing_delimiter_on_data_lines_only(tmp_path):
    lines = [HEADER] + [f"S{k};OID1;IL6;Olink INF;P1;0.5;{k}.5;" for k in range(3)]
    path = tmp_path / "trail.csv"
    path.write_text(_text(lines))
    adata = op.read_npx(path)
    assert adata.shape == (3, 1) and adata.X[:, 0].tolist() == [0.5, 1.5, 2.5]
    assert list(op.to_long(adata).columns) == HEADER.split(";")


def test_ragged_rows_name_the_lines(tmp_path):
    lines = [HEADER, "S1;OID1;IL6;Olink INF;P1;0.5;1.5", "S2,OID1,IL6;Olink INF;P1;0.5;2.5"]
    lines += ["S3;OID1;IL6;Olink INF;P1;0.5;3.5"]
    path = tmp_path / "ragged.csv"
    path.write_text(_text(lines))
    with pytest.raises(NPXFormatError, match=r"line 3 \(5 fields\).*Rows: 3\. Hint:"):
        op.read_npx(path)


def test_lowercase_headers_single_row(tmp_path):
    path = tmp_path / "lower.csv"
    path.write_text("sampleid;olinkid;assay;npx\nS1;O1;IL6;1,5\n")
    adata = op.read_npx(path)
    assert adata.var["Assay"].tolist() == ["IL6"] and adata.X[0, 0] == 1.5


def test_many_extra_columns_no_fragmentation_warning(tmp_path):
    df = make_long(controls=False, extra=False)
    extra = pd.DataFrame({f"extra{k}": df["SampleID"] + str(k) for k in range(150)})
    path = write_long(pd.concat([df, extra], axis=1), tmp_path / "wide_header.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adata = op.read_npx(path)
    assert adata.obs.shape[1] >= 150


def test_leading_zero_sample_ids_stay_text_everywhere(tmp_path):
    df = make_long(controls=False)
    df["SampleID"] = (
        df["SampleID"].map({"S1": "007", "S2": "0012", "1001": "1001"}).fillna(df["SampleID"])
    )
    csv = write_long(df, tmp_path / "z.csv", sep=";")
    pqt = tmp_path / "z.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), pqt)
    for path in (csv, pqt):
        adata = op.read_npx(path)
        assert {"007", "0012", "1001"} <= set(adata.obs_names)
        assert adata.obs["SampleID"].map(type).eq(str).all()
        assert set(op.to_long(adata)["SampleID"]) == set(df["SampleID"])


# --- nothing silently lost -----------------------------------------------------------------


def test_exact_duplicate_rows_warned_and_recorded(tmp_path):
    df = make_long(controls=False)
    doubled = pd.concat([df, df.iloc[[3, 10]]], ignore_index=True)
    path = write_long(doubled, tmp_path / "dup.csv")
    with pytest.warns(OlinkpipeWarning, match=r"dropped 2 exact duplicate row\(s\)"):
        adata = op.read_npx(path)
    assert adata.shape == (df.SampleID.nunique(), df.OlinkID.nunique())
    ex = adata.uns["olinkpipe"]["excluded"]
    assert len(ex) == 2 and set(ex["kind"]) == {"measurement"}
    first = f"{df.SampleID[3]} / {df.OlinkID[3]} (row {len(df) + 2})"
    assert ex["id"].iloc[0] == first
    assert len(op.to_long(adata)) == len(df)


@pytest.mark.parametrize(
    "rename",
    [
        {},
        {"QC_Warning": "SampleQC", "LOD": "PlateLOD", "Panel_Version": "Panel_Lot_Nr"},
        {"NPX": "Quantified_value", "LOD": "Plate_LOD"},
        {"NPX": "PCNormalizedNPX", "LOD": "MaxLOD"},
    ],
    ids=["olink", "explore-names", "quantified", "pcnormalized"],
)
def test_round_trip_column_variants_and_counts(tmp_path, rename):
    df = make_long().rename(columns=rename)
    path = write_long(df, tmp_path / "v.csv", sep="\t")
    with pytest.warns(OlinkpipeWarning) as record:
        adata = op.read_npx(path)
    assert any("more than one plate" in str(w.message) for w in record)
    became_x = [w for w in record if "X holds column" in str(w.message)]
    assert len(became_x) == (1 if "PCNormalizedNPX" in rename.values() else 0)
    # obs: one row per sample, plus one extra for the control on a second plate
    assert adata.n_obs == df.SampleID.nunique() + 1 and adata.n_vars == df.OlinkID.nunique()
    back = op.to_long(adata)
    assert list(back.columns) == list(df.columns)
    exp = df.copy()
    for c in exp.columns[(exp.dtypes == "object").to_numpy()]:
        exp[c] = exp[c].where(exp[c].notna(), np.nan)
    pd.testing.assert_frame_equal(sort_long(back), sort_long(exp), rtol=0, atol=0)


# --- containers and workbooks --------------------------------------------------------------


@pytest.mark.parametrize(
    ("members", "match"),
    [({}, "it is empty"), ({"README.txt": "x", "MD5_checksum.txt": "y"}, "only 'README.txt'")],
)
def test_zip_without_data(tmp_path, members, match):
    path = tmp_path / "delivery.zip"
    with zipfile.ZipFile(path, "w") as z:
        for k, v in members.items():
            z.writestr(k, v)
    with pytest.raises(NPXFormatError, match=match) as err:
        op.read_npx(path)
    assert "delivery.zip" in str(err.value) and "Hint:" in str(err.value)


def test_zip_holding_an_xlsx(tmp_path):
    grid = wide_grid(make_long(controls=False), trailing_space=None)
    buf = io.BytesIO()
    write_wide_xlsx(buf, grid)
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("export.xlsx", buf.getvalue())
        z.writestr("README.txt", "")
    assert op.read_npx(path).shape == (6, 6)


def test_chart_only_workbook(tmp_path):
    import openpyxl
    from openpyxl.chart import BarChart, Reference

    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append([1])
    chart = BarChart()
    chart.add_data(Reference(ws, min_col=1, min_row=1, max_row=1))
    wb.create_chartsheet("Chart").add_chart(chart)
    wb.remove(ws)
    path = tmp_path / "chart.xlsx"
    wb.save(path)
    with pytest.raises(NPXFormatError, match="no worksheet with cells") as err:
        op.read_npx(path)
    assert "chart.xlsx" in str(err.value) and "Hint:" in str(err.value)


@pytest.mark.parametrize("label", ["OlinkID", "Assay"])
def test_wide_xlsx_without_a_header_row(tmp_path, label):
    grid = [r for r in wide_grid(make_long(controls=False)) if not (r and r[0] == label)]
    path = write_wide_xlsx(tmp_path / "w.xlsx", grid)
    with pytest.raises(NPXFormatError, match=f"column A has no '{label}' row") as err:
        op.read_npx(path)
    assert "sheet 'NPX Data'" in str(err.value) and "Hint:" in str(err.value)


def test_wide_repeated_olinkid_columns(tmp_path):
    grid = wide_grid(make_long(controls=False), trailing_space=None)
    oid_row = next(r for r in grid if r and r[0] == "OlinkID")
    oid_row[2] = oid_row[1]
    with pytest.raises(NPXFormatError, match=r"OID01001 in columns B, C"):
        op.read_npx(write_wide_xlsx(tmp_path / "w.xlsx", grid))


def test_wide_same_sample_twice_on_one_plate_names_cells(tmp_path):
    grid = wide_grid(make_long(controls=False), trailing_space=None)
    k = next(i for i, r in enumerate(grid) if r and r[0] == "S2")
    grid[k + 1] = ["S2", *grid[k + 1][1:]]  # the next sample row renamed S2
    grid[k + 1][-4:] = grid[k][-4:]  # ... on the same plates
    with pytest.raises(DuplicateSampleError, match=rf"Rows: cell B{k + 1}, cell B{k + 2}"):
        op.read_npx(write_wide_xlsx(tmp_path / "w.xlsx", grid))


def test_summaries_match_the_long_table():
    df = make_long(lod_per_plate=True)
    with pytest.warns(OlinkpipeWarning, match="more than one plate"):
        adata = op.io.from_long(df)
    per = op.io.summarize_panels(adata)
    for panel, sub in df.groupby("Panel"):
        has = sub.NPX.notna()
        row = per.loc[panel]
        assert row["pct_below_lod"] == round(100 * (sub.NPX < sub.LOD)[has].mean(), 2)
        assert row["pct_missing"] == round(100 * (~has).mean(), 2)
        assert row["plates"] == sub.PlateID.nunique() and row["assays"] == sub.OlinkID.nunique()
        bad = sub.loc[sub.QC_Warning != "Pass", "SampleID"].nunique()
        assert row["qc_warning_samples"] == bad
    head = op.io.summarize(adata)
    has = df.NPX.notna()
    assert head["pct_below_lod"] == round(100 * (df.NPX < df.LOD)[has].mean(), 2)
    assert head["sample_ids"] == df.SampleID.nunique() == head["samples"] - 1


@pytest.mark.parametrize("sep", [";;", "", 1])
def test_bad_sep_argument(tmp_path, sep):
    path = write_long(make_long(controls=False), tmp_path / "a.csv")
    with pytest.raises(op.errors.DesignError, match="must be one character"):
        op.read_npx(path, sep=sep)


def test_wide_csv_in_windows_1252(tmp_path):
    from io_builders import write_wide_csv

    grid = wide_grid(make_long(controls=False), trailing_space=None)
    k = next(i for i, r in enumerate(grid) if r and r[0] == "S2")
    grid[k][0] = "Ö31"
    path = write_wide_csv(tmp_path / "w.csv", grid)
    path.write_bytes(path.read_text(encoding="utf-8").encode("cp1252"))
    with pytest.warns(OlinkpipeWarning, match=r"not valid UTF-8 \(first at line 1\)"):
        adata = op.read_npx(path)
    assert "Ö31" in adata.obs_names and adata.uns["olinkpipe"]["metadata"]["Project"] == (
        "Biomarkörer study"
    )


def test_ids_differing_only_by_spaces_are_kept_apart_with_a_warning(tmp_path):
    df = make_long(controls=False)
    df.loc[df.index[(df.SampleID == "S1")][:3], "SampleID"] = "S1 "
    with pytest.warns(OlinkpipeWarning, match=r"'SampleID': 2 IDs differ only by .*'S1 '"):
        adata = op.read_npx(write_long(df, tmp_path / "sp.csv"))
    assert {"S1", "S1 "} <= set(adata.obs_names)


def test_excel_error_values_are_nan_with_a_warning_naming_cells(tmp_path):
    long = make_long(controls=False)
    grid = wide_grid(long, markers={("S2", "OID01004"): "#N/A"}, trailing_space=None)
    with pytest.warns(
        OlinkpipeWarning, match=r"1 cell\(s\) held text markers.*'#N/A' \(e.g. cell"
    ):
        adata = op.read_npx(write_wide_xlsx(tmp_path / "w.xlsx", grid))
    assert np.isnan(adata[adata.obs_names == "S2", "OID01004"].X).all()
    assert np.isnan(adata.X).sum() == long.NPX.isna().sum() + 1


def test_wide_sample_row_without_values_or_plate_is_kept(tmp_path):
    grid = wide_grid(make_long(controls=False), trailing_space=None)
    k = next(i for i, r in enumerate(grid) if r and r[0] == "S2")
    grid[k] = ["S2"] + [None] * (len(grid[k]) - 1)
    with pytest.warns(OlinkpipeWarning, match=r"1 sample row\(s\) have no NPX value.*'S2'"):
        adata = op.read_npx(write_wide_xlsx(tmp_path / "w.xlsx", grid))
    assert adata.n_obs == 6 and np.isnan(adata[["S2"]].X).all()
    assert op.io.summarize(adata)["samples"] == 6
