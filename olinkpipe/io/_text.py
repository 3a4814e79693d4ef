"""The long text reader: delimited NPX tables through ``pyarrow.csv`` (streamed by
:mod:`~olinkpipe.io.stream` where it can), tolerant of a trailing delimiter, unnamed
columns and Windows-1252 text."""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
from pathlib import Path
from typing import IO

import anndata as ad
import pyarrow as pa
import pyarrow.csv as pcsv

from .._warnings import warn_user
from ..errors import NPXFormatError, format_message, preview
from . import _sniff
from ._columns import STRING_COLUMNS
from .convert import from_long

__all__ = ["read_long_text"]


def read_long_text(
    src: Path | IO[bytes], name: str, info: _sniff.TextInfo, opts: dict
) -> ad.AnnData:
    header = info.header
    types = {h: pa.dictionary(pa.int32(), pa.string()) for h in header if h in STRING_COLUMNS}
    if isinstance(src, Path):  # streamed, or None: read whole below
        from .stream import try_csv

        got = try_csv(src, name, info, types, opts)
        if got is not None:
            return got
    try:
        table, info, trailing = _csv_tolerant(src, name, info, types)
    except _NotUTF8 as bad:
        # Windows-1252 (Excel "CSV" on Western European Windows) is the usual culprit
        info = dataclasses.replace(info, encoding="cp1252")
        table, info, trailing = _csv_tolerant(src, name, info, types)
        info.note = f"not valid UTF-8 (first at line {bad.line})"
    if info.encoding == "cp1252":
        if not info.note:
            info.note = f"not valid UTF-8 (first at line {_first_bad_utf8_line(src)})"
        warn_user(
            f"{name}: {info.note or 'not valid UTF-8'}; decoded as Windows-1252 (Western "
            "European); check names with accents, or save the file as UTF-8"
        )
    temporal = [
        f.name
        for f in table.schema
        if pa.types.is_temporal(f.type) or pa.types.is_date(f.type) or pa.types.is_time(f.type)
    ]
    if temporal:  # keep dates as written in the file, not parsed
        types.update({c: pa.string() for c in temporal})
        table = _csv(src, name, info, types, trailing=trailing)
    release = getattr(pa.default_memory_pool(), "release_unused", None)
    if release is not None:
        release()  # hand the parser's scratch memory back before building the matrices
    table = _drop_unnamed(table, name)
    return from_long(
        table,
        file=name,
        product=opts["product"],
        duplicates=opts["duplicates"],
        data_format="long",
        row_offset=2 + info.skip_rows,
        decimal=info.decimal,
        layers=opts.get("layers"),
    )


_TRAILING = "__olinkpipe_trailing_delimiter__"


def _drop_unnamed(table: pa.Table, name: str) -> pa.Table:
    """Drop R's row-name column and the empty column of a trailing delimiter (by position:
    several columns may be named ``""``); an unnamed column holding values is kept under a
    made-up name and warned about, never dropped silently."""
    names = table.column_names
    keep, renamed = [], {}
    for k, c in enumerate(names):
        if c not in ("", "Unnamed: 0", "...1", _TRAILING):
            keep.append(k)
        elif k > 0 and c != _TRAILING and table.column(k).null_count < table.num_rows:
            keep.append(k)
            renamed[k] = f"unnamed_{k + 1}"
    if len(keep) == len(names) and not renamed:
        return table
    if renamed:
        warn_user(
            f"{name}: column(s) {', '.join(str(k + 1) for k in renamed)} have no header but "
            f"hold values; kept as {preview(list(renamed.values()))}"
        )
    table = table.select(keep)
    return table.rename_columns([renamed.get(k, names[k]) for k in keep])


class _NotUTF8(Exception):
    def __init__(self, line: int):
        super().__init__(line)
        self.line = line


def _csv_tolerant(
    src: Path | IO[bytes], name: str, info: _sniff.TextInfo, types: dict[str, pa.DataType]
) -> tuple[pa.Table, _sniff.TextInfo, bool]:
    """Read with pyarrow; on failure, diagnose (encoding, trailing delimiter, ragged rows)."""
    try:
        table = _csv(src, name, info, types)
    except (pa.ArrowException, UnicodeDecodeError) as err:
        first_err = err
    else:
        # pyarrow types a column with bytes that are not UTF-8 as binary (past the head)
        if info.encoding == "utf-8" and any(pa.types.is_binary(t) for t in table.schema.types):
            raise _NotUTF8(_first_bad_utf8_line(src))
        return table, info, False
    if "UTF8" in str(first_err) and info.encoding == "utf-8":
        raise _NotUTF8(_first_bad_utf8_line(src))
    if isinstance(first_err, UnicodeDecodeError):
        msg = format_message(
            f"cannot decode the text as {info.encoding} ({first_err})",
            file=name,
            hint="Save the file as UTF-8 (in Excel: 'CSV UTF-8') and read it again.",
        )
        raise NPXFormatError(msg) from first_err
    layout = _field_counts(src, info)
    if layout["trailing"]:  # every data line ends with one extra, empty field
        try:
            table = _csv(src, name, info, types, trailing=True)
        except (pa.ArrowException, UnicodeDecodeError):
            pass
        else:
            if table.column(_TRAILING).null_count == table.num_rows:
                return table, info, True
    detail = ""
    if layout["bad_lines"]:
        detail = (
            f"; the header has {layout['n_header']} fields but these lines do not: "
            + ", ".join(f"line {k} ({n} fields)" for k, n in layout["bad_lines"][:5])
        )
    msg = format_message(
        f"cannot parse as a {info.sep!r}-delimited long export{detail} ({first_err})",
        file=name,
        column=None,
        rows=[k for k, _ in layout["bad_lines"]] or None,
        hint="Check that every row has the same number of fields and one delimiter "
        "throughout (pass sep=... if it was guessed wrong); quotes must be closed.",
    )
    raise NPXFormatError(msg) from first_err


def _first_bad_utf8_line(src: Path | IO[bytes]) -> int:
    """Line number of the first byte that is not UTF-8 (streamed; 0 when all is UTF-8)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    fh = open(src, "rb") if isinstance(src, Path) else src  # noqa: SIM115
    try:
        if not isinstance(src, Path):
            src.seek(0)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError as err:
                return line + chunk.count(b"\n", 0, max(err.start, 0))
            line += chunk.count(b"\n")
    finally:
        if isinstance(src, Path):
            fh.close()
    return 0


def _text_stream(src: Path | IO[bytes], info: _sniff.TextInfo) -> IO[str]:
    enc = "utf-8-sig" if info.encoding == "utf-8" else info.encoding
    if isinstance(src, Path):
        return open(src, encoding=enc, errors="replace", newline="")  # noqa: SIM115
    src.seek(0)
    return io.TextIOWrapper(io.BytesIO(src.read()), encoding=enc, errors="replace", newline="")


def _field_counts(src: Path | IO[bytes], info: _sniff.TextInfo) -> dict:
    """Lines whose field count differs from the header's (error path only, streamed).

    Stops after five such lines, or after 1,000 data lines that all end with one extra,
    empty field (a trailing delimiter; the read that follows verifies the rest).
    """
    n_header, bad, trailing, n_data = None, [], True, 0
    with _text_stream(src, info) as fh:
        reader = csv.reader(fh, delimiter=info.sep, quotechar='"')
        for rec in reader:
            if not any(f.strip() for f in rec):
                continue
            if n_header is None:
                n_header = len(rec)
                continue
            n_data += 1
            if len(rec) != n_header:
                bad.append((reader.line_num, len(rec)))
            if not (len(rec) == n_header + 1 and rec[-1].strip() == ""):
                trailing = False
            if (len(bad) >= 5 and not trailing) or (trailing and n_data >= 1000):
                break
    return {
        "n_header": n_header or 0,
        "bad_lines": bad,
        "trailing": trailing and n_data > 0 and len(bad) == n_data,
    }


def _csv(
    src: Path | IO[bytes],
    name: str,
    info: _sniff.TextInfo,
    types: dict[str, pa.DataType],
    *,
    trailing: bool = False,
) -> pa.Table:
    """``pyarrow.csv.read_csv`` with the sniffed dialect (raises pyarrow's errors)."""
    if not isinstance(src, Path):
        src.seek(0)
    names = None
    if trailing:  # name the header's columns ourselves, plus one for the empty last field
        names = [*(_sniff.split_line(_header_line(src, info), info.sep)), _TRAILING]
        if not isinstance(src, Path):
            src.seek(0)
    read_opts = pcsv.ReadOptions(
        encoding="utf8" if info.encoding == "utf-8" else info.encoding,
        skip_rows=info.skip_rows + (1 if trailing else 0),
        column_names=names,
        block_size=1 << 24,
    )
    parse_opts = pcsv.ParseOptions(delimiter=info.sep, quote_char='"', newlines_in_values=False)
    conv = pcsv.ConvertOptions(
        column_types=types,
        strings_can_be_null=True,
        decimal_point=info.decimal,
        quoted_strings_can_be_null=True,
    )
    return pcsv.read_csv(
        str(src) if isinstance(src, Path) else src,
        read_options=read_opts,
        parse_options=parse_opts,
        convert_options=conv,
    )


def _header_line(src: Path | IO[bytes], info: _sniff.TextInfo) -> str:
    with _text_stream(src, info) as fh:
        for line in fh:
            if line.strip():
                return line.rstrip("\r\n")
    return ""
