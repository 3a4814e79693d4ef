"""Bad input raises olinkpipe errors naming file, column, rows and a fix."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from io_builders import make_long, wide_grid, write_long, write_wide_xlsx

import olinkpipe as op
from olinkpipe.errors import (
    DuplicateSampleError,
    MissingColumnError,
    NPXFormatError,
    OlinkpipeError,
)


@pytest.mark.parametrize("content", [b"", b"\r\n\r\n  \n", b"\xef\xbb\xbf"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.csv"
    path.write_bytes(content)
    with pytest.raises(NPXFormatError, match=r"empty\.csv: the file is empty"):
        op.read_npx(path)


def test_header_only(tmp_path):
    path = tmp_path / "h.csv"
    path.write_text("SampleID,OlinkID,Assay,NPX\n")
    with pytest.raises(NPXFormatError, match="no data rows"):
        op.read_npx(path)


def test_unknown_format(tmp_path):
    path = tmp_path / "notes.csv"
    path.write_text("name,age\nalice,3\nbob,4\n")
    with pytest.raises(NPXFormatError, match="unknown format") as err:
        op.read_npx(path)
    assert "notes.csv" in str(err.value) and "Hint:" in str(err.value)


def test_binary_garbage_and_xls(tmp_path):
    path = tmp_path / "x.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100)
    with pytest.raises(NPXFormatError, match="legacy .xls"):
        op.read_npx(path)


def test_missing_file(tmp_path):
    with pytest.raises(NPXFormatError, match="file not found"):
        op.read_npx(tmp_path / "nope.csv")


def test_missing_required_column(tmp_path):
    df = make_long(controls=False).drop(columns=["OlinkID"])
    path = write_long(df, tmp_path / "m.csv")
    with pytest.raises(MissingColumnError, match=r"m\.csv: required column\(s\) \['OlinkID'\]"):
        op.read_npx(path)


def test_missing_npx_column(tmp_path):
    df = make_long(controls=False).drop(columns=["NPX"])
    with pytest.raises(MissingColumnError, match=r"\['NPX'\]"):
        op.read_npx(write_long(df, tmp_path / "m.csv"))


def test_non_numeric_npx_names_rows(tmp_path):
    df = make_long(controls=False).astype({"NPX": object})
    df.loc[[3, 10], "NPX"] = ["abc", "1.2.3"]
    with pytest.raises(NPXFormatError) as err:
        op.read_npx(write_long(df, tmp_path / "bad.csv"))
    msg = str(err.value)
    assert "bad.csv: column 'NPX'" in msg and "'abc'" in msg and "Rows: 5, 12." in msg
    assert "Hint:" in msg


def test_decimal_comma_parses_not_errors(tmp_path):
    df = make_long(controls=False)
    path = write_long(df, tmp_path / "dc.csv", sep=";", decimal=",")
    assert "," in path.read_text().splitlines()[1]
    adata = op.read_npx(path)
    assert adata.X[0, 0] == df.loc[0, "NPX"]


def test_olinkid_with_two_assay_names(tmp_path):
    df = make_long(controls=False)
    df.loc[df.index[(df.OlinkID == "OID01002")][:2], "Assay"] = "TNFA"
    with pytest.raises(NPXFormatError, match=r"OID01002: TNF, TNFA") as err:
        op.read_npx(write_long(df, tmp_path / "two.csv"))
    assert "column 'Assay'" in str(err.value) and "Rows: " in str(err.value)


def test_olinkid_on_two_panels():
    df = make_long(controls=False)
    df.loc[df.index[df.OlinkID == "OID01002"][:1], "Panel"] = "Other"
    with pytest.raises(NPXFormatError, match="more than one panel"):
        op.io.from_long(df)


def test_empty_sample_id(tmp_path):
    df = make_long(controls=False)
    df.loc[4, "SampleID"] = None
    with pytest.raises(NPXFormatError, match=r"empty identifier.*Rows: 6\."):
        op.read_npx(write_long(df, tmp_path / "e.csv"))


def test_ragged_rows(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("SampleID,OlinkID,Assay,NPX\nS1,OID1,IL6,1.0\nS2,OID1,IL6\n")
    with pytest.raises(NPXFormatError, match="cannot parse"):
        op.read_npx(path)


def test_truncated_parquet(tmp_path):
    df = make_long(controls=False)
    full = tmp_path / "full.parquet"
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), full)
    cut = tmp_path / "cut.parquet"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(NPXFormatError, match=r"cut\.parquet: truncated or corrupt parquet"):
        op.read_npx(cut)


def test_xlsx_without_npx_sheet(tmp_path):
    import openpyxl

    wb = openpyxl.Workbook()
    wb.active.title = "Notes"
    wb.active.append(["patient", "age"])
    wb.create_sheet("Other").append(["x"])
    path = tmp_path / "nothing.xlsx"
    wb.save(path)
    with pytest.raises(NPXFormatError, match=r"no NPX sheet found among 'Notes', 'Other'"):
        op.read_npx(path)


def test_wide_non_numeric_cell_named(tmp_path):
    long = make_long(controls=False)
    grid = wide_grid(long, markers={("S2", "OID01004"): "oops"}, trailing_space=None)
    with pytest.raises(NPXFormatError, match=r"cell [A-Z]+\d+ \(OID01004\): 'oops'"):
        op.read_npx(write_wide_xlsx(tmp_path / "w.xlsx", grid))


def test_duplicates(tmp_path):
    path = write_long(make_long(), tmp_path / "d.csv")
    with pytest.raises(DuplicateSampleError, match=r"d\.csv: column 'SampleID': 1 SampleID"):
        op.read_npx(path, duplicates="error")


def test_zip_with_two_data_files(tmp_path):
    import zipfile

    path = tmp_path / "two.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("a.csv", "x")
        z.writestr("b.csv", "y")
    with pytest.raises(NPXFormatError, match="several data files"):
        op.read_npx(path)


def test_every_error_is_an_olinkpipe_error():
    for cls in (NPXFormatError, MissingColumnError, DuplicateSampleError):
        assert issubclass(cls, OlinkpipeError)
    assert isinstance(pd.DataFrame(), pd.DataFrame)


def test_repeated_column_names(tmp_path):
    path = tmp_path / "dupcol.csv"
    path.write_text("SampleID,OlinkID,Assay,NPX,NPX\nS1,O1,IL6,1,2\n")
    with pytest.raises(NPXFormatError, match="'NPX' occur more than once"):
        op.read_npx(path)
