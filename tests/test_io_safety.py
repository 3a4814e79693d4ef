"""Nothing lost silently, no raw exception: one test per malformed input of issue 15.

Each test asserts either the full sample/assay set (and the warning naming the place) or
the error type and a message naming the file and the row, column or cell.
"""

from __future__ import annotations

import gzip
import hashlib
import re
import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from io_builders import make_long, wide_grid, write_long, write_wide_csv, write_wide_xlsx

import olinkpipe as op
from olinkpipe.errors import (
    ChecksumError,
    NPXFormatError,
    OlinkpipeError,
    OlinkpipeWarning,
    SizeLimitError,
)


def _long() -> pd.DataFrame:
    return make_long(controls=False)


def _grid(long: pd.DataFrame | None = None) -> list[list[object]]:
    return wide_grid(_long() if long is None else long, trailing_space=None)


def _row_of(grid: list[list[object]], sid: str) -> int:
    return next(k for k, r in enumerate(grid) if r and str(r[0]) == sid)


def _ids(long: pd.DataFrame) -> tuple[set[str], set[str]]:
    return set(long.SampleID.astype(str)), set(long.OlinkID)


def _read_all(path, match: str | None = None):
    with pytest.warns(OlinkpipeWarning, match=match) if match else _no_check():
        return op.read_npx(path)


class _no_check:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def _assert_full(adata, long: pd.DataFrame, renamed: dict[str, str] | None = None) -> None:
    samples, assays = _ids(long)
    if renamed:
        samples = {renamed.get(s, s) for s in samples}
    assert set(adata.obs["SampleID"].astype(str)) == samples
    assert set(adata.var_names) == assays


# --- wide: the sample block comes from the sheet's structure ------------------------------


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_wide_blank_row_inside_sample_block(tmp_path, fmt):
    long = _long()
    grid = _grid(long)
    k = _row_of(grid, "S3")
    grid.insert(k, [])  # blank row between S2... and S3...
    path = (
        write_wide_csv(tmp_path / "w.csv", grid)
        if fmt == "csv"
        else write_wide_xlsx(tmp_path / "w.xlsx", grid)
    )
    adata = _read_all(path, match=rf"blank row\(s\) {k + 1} lie among the sample rows")
    _assert_full(adata, long)
    assert not np.isnan(adata["S5"].X).all()  # a sample below the blank row keeps its values


@pytest.mark.parametrize("name", ["LOD_S3", "Missing Data freq. 2", "LLOQ-7", "Normalization x"])
def test_wide_sample_ids_that_start_like_footer_labels(tmp_path, name):
    long = _long()
    long["SampleID"] = long["SampleID"].replace({"S3": name})
    grid = _grid(long)
    adata = op.read_npx(write_wide_csv(tmp_path / "w.csv", grid))
    _assert_full(adata, long)
    np.testing.assert_allclose(
        adata[adata.obs.SampleID == name].X.ravel(),
        long[long.SampleID == name].set_index("OlinkID").NPX.loc[adata.var_names],
    )


def test_wide_sample_named_exactly_like_a_footer_row_is_kept(tmp_path):
    long = _long()
    last = list(dict.fromkeys(long.SampleID))[-1]
    long["SampleID"] = long["SampleID"].replace({last: "LOD"})
    grid = _grid(long)
    with pytest.warns(OlinkpipeWarning, match=r"named like footer rows.*'LOD' \(row \d+\)"):
        adata = op.read_npx(write_wide_csv(tmp_path / "w.csv", grid))
    _assert_full(adata, long)


def test_wide_empty_sample_id_is_an_error_naming_the_cell(tmp_path):
    grid = _grid()
    k = _row_of(grid, "S2")
    grid[k][0] = None
    path = write_wide_csv(tmp_path / "w.csv", grid)
    with pytest.raises(NPXFormatError, match=rf"w\.csv: column 'A'.*no SampleID.*'A{k + 1}'"):
        op.read_npx(path)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_wide_empty_olinkid_header_cell_is_an_error_naming_the_cell(tmp_path, fmt):
    grid = _grid()
    i_oid = _row_of(grid, "OlinkID")
    grid[i_oid][2] = None  # column C
    path = (
        write_wide_csv(tmp_path / "w.csv", grid)
        if fmt == "csv"
        else write_wide_xlsx(tmp_path / "w.xlsx", grid)
    )
    with pytest.raises(NPXFormatError, match=rf"w\.{fmt}.*'C'.*no OlinkID.*'C{i_oid + 1}'"):
        op.read_npx(path)


def test_wide_footer_row_without_label_is_an_error_naming_the_row(tmp_path):
    grid = _grid()
    k = _row_of(grid, "LOD")
    grid[k][0] = None  # the LOD row's label cell emptied
    path = write_wide_csv(tmp_path / "w.csv", grid)
    with pytest.raises(NPXFormatError, match=rf"w\.csv: column 'A': row {k + 1} below the samp"):
        op.read_npx(path)


def test_wide_non_numeric_lod_cell_is_an_error_naming_the_cell(tmp_path):
    grid = _grid()
    k = _row_of(grid, "LOD")
    grid[k][3] = "abc"
    with pytest.raises(NPXFormatError, match=rf"cell D{k + 1} \(row 'LOD'\) holds 'abc'"):
        op.read_npx(write_wide_csv(tmp_path / "w.csv", grid))


def test_wide_unknown_footer_label_is_warned(tmp_path):
    long = _long()
    grid = _grid(long) + [["My note", 1.0, 2.0, 3.0, 4.0, 5.0, 6.0]]
    with pytest.warns(OlinkpipeWarning, match=r"labels olinkpipe does not know.*'My note'"):
        adata = op.read_npx(write_wide_csv(tmp_path / "w.csv", grid))
    _assert_full(adata, long)
    np.testing.assert_array_equal(adata.var["My note"], [1.0, 2.0, 3.0, 4.0, 5.0, 6.0])


def test_wide_true_cell_is_an_error_naming_the_cell(tmp_path):
    grid = _grid()
    k = _row_of(grid, "S2")
    grid[k][1] = True
    with pytest.raises(NPXFormatError, match=rf"cell B{k + 1} \(OID\d+\): True"):
        op.read_npx(write_wide_xlsx(tmp_path / "w.xlsx", grid))


# --- strict numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1_000", "\u0661\u0662", "True", "1.5.2", "½", "0x10"])
def test_lenient_numbers_are_errors_naming_the_row(tmp_path, value):
    df = _long()
    df["NPX"] = df["NPX"].astype(object)
    df.loc[4, "NPX"] = value
    path = write_long(df, tmp_path / "n.csv", sep=";")
    with pytest.raises(NPXFormatError, match=r"n\.csv: column 'NPX'.*Rows: 6\b"):
        op.read_npx(path)


def test_all_true_false_value_column_is_an_error(tmp_path):
    df = _long()
    df["NPX"] = np.where(np.arange(len(df)) % 2 == 0, "TRUE", "FALSE")
    with pytest.raises(NPXFormatError, match=r"b\.csv: column 'NPX': true/false values"):
        op.read_npx(write_long(df, tmp_path / "b.csv"))


@pytest.mark.parametrize(
    ("text", "number"),
    [("1.5", 1.5), ("-0.25", -0.25), ("1e-3", 1e-3), ("2,5", 2.5), (".5", 0.5), ("NaN", None)],
)
def test_numbers_as_olink_and_r_write_them(text, number):
    from olinkpipe.io.convert import parse_number

    value, ok, _ = parse_number(text)
    assert ok and (np.isnan(value) if number is None else value == number)


def test_wide_underscore_number_is_an_error_naming_the_cell(tmp_path):
    grid = _grid()
    k = _row_of(grid, "S2")
    grid[k][2] = "1_000"
    with pytest.raises(NPXFormatError, match=rf"w\.csv.*cell C{k + 1} \(OID\d+\): '1_000'"):
        op.read_npx(write_wide_csv(tmp_path / "w.csv", grid))


def test_pcnormalized_only_file_warns_which_column_became_x(tmp_path):
    df = _long().rename(columns={"NPX": "PCNormalizedNPX"})
    path = write_long(df, tmp_path / "pc.csv")
    with pytest.warns(
        OlinkpipeWarning, match=r"pc\.csv: no NPX column; X holds .*PCNormalizedNPX"
    ):
        adata = op.read_npx(path)
    _assert_full(adata, df)
    assert adata.uns["olinkpipe"]["columns"]["value"] == "PCNormalizedNPX"


# --- Explore zips: checksums and members ---------------------------------------------------


def _zip(path, members: dict[str, bytes]):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for k, v in members.items():
            z.writestr(k, v)
    return path


def _csv_bytes(df: pd.DataFrame) -> bytes:
    return df.to_csv(sep=";", index=False).encode()


@pytest.mark.parametrize(
    ("checksum_name", "algo"), [("MD5_checksum.txt", "md5"), ("checksum_sha256.txt", "sha256")]
)
def test_zip_checksum_verified(tmp_path, checksum_name, algo):
    df = _long()
    data = _csv_bytes(df)
    digest = hashlib.new(algo, data).hexdigest()
    good = _zip(
        tmp_path / "ok.zip",
        {"npx.csv": data, checksum_name: digest + "\n", "README.txt": b"Olink delivery"},
    )
    _assert_full(op.read_npx(good), df)
    edited = data.replace(b";", b";", 1)[:-40] + b"\n"  # truncated data file
    bad = _zip(tmp_path / "bad.zip", {"npx.csv": edited, checksum_name: digest + "\n"})
    with pytest.raises(
        ChecksumError, match=rf"bad\.zip: the {algo.upper()} checksum of 'npx\.csv' is [0-9a-f]+"
    ):
        op.read_npx(bad)


def test_zip_checksum_file_in_md5sum_format(tmp_path):
    df = _long()
    data = _csv_bytes(df)
    line = f"{hashlib.md5(data).hexdigest()}  npx.csv\n"  # noqa: S324 - file checksum
    _assert_full(op.read_npx(_zip(tmp_path / "a.zip", {"npx.csv": data, "x.md5": line})), df)
    wrong = f"{'0' * 32}  npx.csv\n"
    with pytest.raises(ChecksumError, match="'x.md5' says 0000"):
        op.read_npx(_zip(tmp_path / "b.zip", {"npx.csv": data, "x.md5": wrong}))


@pytest.mark.parametrize("member", ["README.txt", "md5_results.csv", "checksum_export.txt"])
def test_zip_member_named_like_readme_or_checksum_is_read_when_it_holds_data(tmp_path, member):
    df = _long()
    path = _zip(tmp_path / "d.zip", {member: _csv_bytes(df), "notes.txt": b"just notes"})
    adata = op.read_npx(path)
    _assert_full(adata, df)
    assert adata.uns["olinkpipe"]["source"] == [f"{path}!{member}"]


def test_zip_member_past_size_limit(tmp_path, monkeypatch):
    df = _long()
    data = _csv_bytes(df) + b"\n" * 3_000_000  # 3 MB of newlines: ~3 kB compressed
    path = _zip(tmp_path / "bomb.zip", {"npx.csv": data})
    monkeypatch.setenv("OLINKPIPE_MAX_UNCOMPRESSED", "1M")
    with pytest.raises(SizeLimitError, match=r"bomb\.zip: member 'npx\.csv' inflates past"):
        op.read_npx(path)
    monkeypatch.setenv("OLINKPIPE_MAX_UNCOMPRESSED", "8M")
    _assert_full(op.read_npx(path), df)  # the limit is configurable


def test_gzip_past_size_limit(tmp_path, monkeypatch):
    df = _long()
    path = tmp_path / "npx.csv.gz"
    path.write_bytes(gzip.compress(_csv_bytes(df) + b"\n" * 3_000_000))
    monkeypatch.setenv("OLINKPIPE_MAX_UNCOMPRESSED", "1M")
    with pytest.raises(SizeLimitError, match=r"npx\.csv\.gz: the gzip stream inflates past"):
        op.read_npx(path)
    monkeypatch.delenv("OLINKPIPE_MAX_UNCOMPRESSED")
    monkeypatch.setenv("OLINKPIPE_MAX_RATIO", "0")  # ratio test off: the 4 GiB cap remains
    _assert_full(op.read_npx(path), df)


def test_default_limit_is_ratio_with_floor_and_cap():
    from olinkpipe.io import _archive

    assert _archive.limit_for(1_000) == 64 << 20  # floor
    assert _archive.limit_for(10 << 20) == 500 << 20  # 50x
    assert _archive.limit_for(1 << 30) == 4 << 30  # cap


# --- raw exceptions that are now OlinkpipeErrors or clean reads ----------------------------


def test_exact_duplicate_rows_with_per_cell_column(tmp_path):
    df = _long()
    df["Count"] = np.arange(len(df)) + 100
    df["WellID"] = [f"W{i}" for i in range(len(df))]
    doubled = pd.concat([df, df.iloc[[2, 7]]], ignore_index=True)
    with pytest.warns(OlinkpipeWarning, match=r"dropped 2 exact duplicate"):
        adata = op.read_npx(write_long(doubled, tmp_path / "d.csv"))
    _assert_full(adata, df)
    back = op.to_long(adata).set_index(["SampleID", "OlinkID"])
    exp = df.astype({"SampleID": str}).set_index(["SampleID", "OlinkID"])
    assert (back.loc[exp.index, "Count"] == exp["Count"]).all()
    assert (back.loc[exp.index, "WellID"] == exp["WellID"]).all()


def test_windows_1252_byte_after_64_kib(tmp_path):
    df = pd.concat([_long()] * 250, ignore_index=True)
    df["SampleID"] = [f"S{i // 6}" for i in range(len(df))]
    df["OlinkID"] = [f"OID{i % 6:05d}" for i in range(len(df))]
    df["Assay"] = [f"A{i % 6}" for i in range(len(df))]
    df["Panel"] = "Olink Inflammation"
    df["PlateID"] = "Plate1"
    df["Comment"] = "ok"
    df.loc[len(df) - 1, "Comment"] = "Bj\xf6rk"
    path = tmp_path / "cp.csv"
    df.to_csv(path, sep=";", index=False, encoding="cp1252")
    assert path.stat().st_size > 1 << 16
    with pytest.warns(OlinkpipeWarning, match=rf"first at line {len(df) + 1}\); decoded as Win"):
        adata = op.read_npx(path)
    _assert_full(adata, df)


def test_r_write_csv_row_names_and_trailing_delimiter(tmp_path):
    df = _long()
    body = df.to_csv(index=True, index_label="").replace("\n", ",\n")
    path = tmp_path / "r.csv"
    path.write_text(body)
    assert path.read_text().splitlines()[0].startswith(",") and body.count(",\n") > 2
    _assert_full(op.read_npx(path), df)


def test_unnamed_column_with_values_is_kept(tmp_path):
    df = _long()
    df.insert(3, "", "note")
    with pytest.warns(OlinkpipeWarning, match=r"column\(s\) 4 have no header but hold values"):
        adata = op.read_npx(write_long(df, tmp_path / "u.csv"))
    assert (op.to_long(adata)["unnamed_4"] == "note").all()


def _parquet(path, table: pa.Table):
    pq.write_table(table, path)
    return path


def test_parquet_corrupted_column_name_byte(tmp_path):
    table = pa.Table.from_pandas(_long(), preserve_index=False)
    raw = bytearray(_parquet(tmp_path / "p.parquet", table).read_bytes())
    raw[re.search(rb"OlinkID", bytes(raw)).start() + 1] = 0xFF  # first copy: column chunk
    path = tmp_path / "bad.parquet"
    path.write_bytes(bytes(raw))
    with pytest.raises(NPXFormatError, match=r"bad\.parquet: truncated or corrupt parquet"):
        op.read_npx(path)


@pytest.mark.parametrize(
    ("column", "values", "match"),
    [
        ("Extra", [[1]], r"column\(s\) 'Extra' hold nested values \(list\)"),
        ("Extra", [{"a": 1}], r"column\(s\) 'Extra' hold nested values \(struct"),
        ("SampleID", [b"\xff\xfe"], r"column 'SampleID': bytes that are not UTF-8"),
        ("NPX", [True], r"column 'NPX': true/false values"),
    ],
)
def test_parquet_nested_binary_bool_columns(tmp_path, column, values, match):
    table = pa.Table.from_pandas(_long(), preserve_index=False)
    values = pa.array(values * table.num_rows)
    if column in table.column_names:
        table = table.set_column(table.column_names.index(column), column, values)
    else:
        table = table.append_column(column, values)
    with pytest.raises(NPXFormatError, match=r"x\.parquet: " + match):
        op.read_npx(_parquet(tmp_path / "x.parquet", table))


def test_parquet_binary_utf8_column_reads(tmp_path):
    df = _long()
    table = pa.Table.from_pandas(df, preserve_index=False)
    ids = pa.array([str(s).encode() for s in df.SampleID], type=pa.binary())
    table = table.set_column(table.column_names.index("SampleID"), "SampleID", ids)
    _assert_full(op.read_npx(_parquet(tmp_path / "b.parquet", table)), df)


def test_assay_major_error_names_only_the_offending_olinkid(tmp_path):
    df = _long().sort_values(["OlinkID", "SampleID"]).reset_index(drop=True)
    target = df.OlinkID.unique()[2]
    k = int(np.flatnonzero(df.OlinkID == target)[3])
    df.loc[k, "Panel"] = "Olink Other"
    with pytest.raises(
        NPXFormatError, match=rf"OlinkID\(s\) '{target}' occur on more.*Rows: {k + 2}\."
    ):
        op.read_npx(write_long(df, tmp_path / "a.csv"))


def test_read_clinical_damaged_workbook(tmp_path):
    path = tmp_path / "clin.xlsx"
    path.write_bytes(b"PK\x03\x04 not really a workbook")
    with pytest.raises(NPXFormatError, match=r"clin\.xlsx: cannot read the clinical table"):
        op.read_clinical(path, id_column="id")


def test_read_exports_raw_errors_become_olinkpipe_errors(tmp_path):
    (tmp_path / "a.csv").write_bytes(b"\x00\x01garbage")
    with pytest.raises(OlinkpipeError, match=r"a\.csv"):
        op.io.read_exports([tmp_path / "a.csv"])


def test_to_long_with_no_assays():
    adata = op.io.from_long(_long())
    assert len(op.to_long(adata[:, :0].copy())) == 0


def test_assay_major_assay_name_conflict_names_only_that_olinkid(tmp_path):
    df = _long().sort_values(["OlinkID", "SampleID"]).reset_index(drop=True)
    target = df.OlinkID.unique()[4]
    k = int(np.flatnonzero(df.OlinkID == target)[5])
    df.loc[k, "Assay"] = "WRONG"
    with pytest.raises(
        NPXFormatError,
        match=rf"a\.csv: column 'Assay': 1 OlinkID\(s\) .*\({target}: .*Rows: {k + 2}\.",
    ):
        op.read_npx(write_long(df, tmp_path / "a.csv"))


def test_workbook_past_size_limit(tmp_path, monkeypatch):
    path = write_wide_xlsx(tmp_path / "w.xlsx", _grid())
    monkeypatch.setenv("OLINKPIPE_MAX_UNCOMPRESSED", "2K")
    with pytest.raises(SizeLimitError, match=r"w\.xlsx: the workbook inflates past the size"):
        op.read_npx(path)


def test_wide_unlabelled_header_row_is_warned(tmp_path):
    long = _long()
    grid = _grid(long)
    k = _row_of(grid, "Uniprot ID")
    grid[k][0] = None
    with pytest.warns(OlinkpipeWarning, match=rf"header row {k + 1} .* no label in cell A{k + 1}"):
        adata = op.read_npx(write_wide_csv(tmp_path / "w.csv", grid))
    _assert_full(adata, long)


def test_unreadable_file_is_an_error_naming_it(tmp_path, monkeypatch):
    path = write_long(_long(), tmp_path / "locked.csv")

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("builtins.open", denied)
    with pytest.raises(NPXFormatError, match=r"locked\.csv: cannot read the file \(Permission"):
        op.read_npx(path)


def test_stream_is_refused_while_reading_not_after(monkeypatch):
    """A member whose directory entry lies about its size is stopped by the streamed count."""
    import io

    from olinkpipe.io import _archive

    class Endless(io.RawIOBase):
        served = 0

        def read(self, n=-1):
            self.served += n
            return b"x" * n

    monkeypatch.setenv("OLINKPIPE_MAX_UNCOMPRESSED", "3M")
    stream = Endless()
    with pytest.raises(SizeLimitError, match=r"f\.zip: member 'm' inflates past .*3,145,728"):
        _archive.read_bounded(stream, compressed=10, name="f.zip", what="member 'm'")
    assert stream.served <= (3 << 20) + 1  # never read more than the limit + 1 byte


def _long_xlsx(path, rows):
    import openpyxl

    wb = openpyxl.Workbook()
    for r in rows:
        wb.active.append(r)
    wb.save(path)
    return path


_FLEX = ["SampleID", "OlinkID", "Assay", "NPX", ""]


def test_long_sheet_cells_beyond_the_header_are_an_error(tmp_path):
    rows = [_FLEX[:4], ["S1", "O1", "A", "1.5"], ["S2", "O1", "A", "2.5", None, "x"]]
    with pytest.raises(NPXFormatError, match=r"l\.xlsx.*cell\(s\) 'F3' hold values right"):
        op.read_npx(_long_xlsx(tmp_path / "l.xlsx", rows))


def test_long_sheet_unnamed_column_with_values_is_kept(tmp_path):
    rows = [_FLEX, ["S1", "O1", "A", "1.5", "n1"], ["S2", "O1", "A", "2.5", "n2"]]
    with pytest.warns(OlinkpipeWarning, match=r"column\(s\) 'E' have no header.*'unnamed_5'"):
        adata = op.read_npx(_long_xlsx(tmp_path / "l.xlsx", rows))
    assert adata.obs["unnamed_5"].tolist() == ["n1", "n2"]
