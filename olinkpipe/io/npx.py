"""``read_npx``: every Olink export into AnnData, the format sniffed from the content.

Long CSV/TSV/TXT (``;`` ``,`` tab ``|``; decimal point or comma; quotes, BOM, CRLF, R
``write.csv`` row names) are read with ``pyarrow.csv``; Explore parquet with
``pyarrow.parquet``; Target 96/48 wide xlsx and csv by :mod:`olinkpipe.io.wide`; a ``.zip``
holding any of them is opened in memory.
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import io
import logging
import zipfile
import zlib
from os import PathLike
from pathlib import Path
from typing import IO

import anndata as ad
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from .._validate import check_literal
from ..errors import DesignError, NPXFormatError, UnknownFormatError, format_message, preview
from . import _sniff
from ._util import warn_user
from .convert import from_long

__all__ = ["read_npx"]

logger = logging.getLogger("olinkpipe")

HEAD_BYTES = 1 << 16
# Columns read as dictionary-encoded text: IDs stay text (numeric SampleIDs, leading zeros)
# and the integer codes feed the long -> matrix pivot directly.
STRING_COLUMNS = {
    "SampleID",
    "Sample_ID",
    "OlinkID",
    "UniProt",
    "Assay",
    "Panel",
    "Panel_Version",
    "Panel_Lot_Nr",
    "PlateID",
    "QC_Warning",
    "SampleQC",
    "Normalization",
    "Assay_Warning",
    "AssayQC",
    "SampleType",
    "Sample_Type",
    "AssayType",
    "WellID",
    "Block",
    "Subject",
    "Treatment",
    "Site",
    "Time",
    "Project",
    "ExploreVersion",
    "DataAnalysisRefID",
    "Unit",
}
_IGNORED_IN_ZIP = ("checksum", "md5", "sha256", "sha1", "readme", "__macosx", ".ds_store")


def read_npx(
    path: str | PathLike[str],
    *,
    sep: str | None = None,
    product: str | None = None,
    duplicates: str = "rename",
    sheet: str | int | None = None,
    chunks: str | int | None = None,
) -> ad.AnnData:
    """Read an Olink export into an AnnData (samples × assays).

    The format is recognised from the file's content, not only its extension:

    * long NPX files (NPX Manager / Signature / Explore): ``.csv``, ``.txt``, ``.tsv``
      delimited by ``;``, ``,``, tab or ``|``, with a decimal point or comma, quoted
      fields, a UTF-8 BOM, Windows line ends or an R ``write.csv`` row-name column;
    * Olink Explore / Explore HT parquet (key-value metadata to ``uns``);
    * Target 96 / Target 48 wide exports from NPX Manager, ``.xlsx`` or ``.csv``, the
      multi-panel layout and the single-panel layout with a summary block; the NPX sheet
      is found by content in multi-sheet workbooks;
    * Olink Flex long xlsx (numbers stored as text);
    * a ``.zip`` holding one of these (checksum and README files are ignored), or a
      gzip-compressed file.

    Text markers ``> ULOQ``, ``< LLOQ``, ``No Data``, ``#`` and Excel error values such as
    ``#N/A`` read as NaN (with a warning). Thousands separators are accepted where they are
    unambiguous (``1.234,5``); a text file that is not UTF-8 is decoded as Windows-1252 (with
    a warning); exact duplicate rows are dropped, warned about and recorded in
    ``uns["olinkpipe"]["excluded"]``.
    Control samples and control assays are kept and flagged (``obs["is_control"]``,
    ``var["AssayType"]``), never dropped.

    Long parquet and UTF-8 long CSV are streamed (:mod:`olinkpipe.io.stream`): row group
    by row group or block by block into preallocated matrices, never the whole long table,
    with the same result as reading the table whole; unusual files (text values, repeated
    measurements, a SampleID on two plates within a panel, ...) are read whole.

    Parameters
    ----------
    path
        The export file, or a directory of parquet files that form one dataset (e.g. one
        file per panel).
    sep
        Field delimiter of a text file; sniffed when ``None``.
    product
        Olink product for ``uns["olinkpipe"]["product"]`` (e.g. ``"Target 96"``); guessed
        from the file when ``None``.
    duplicates
        ``"rename"`` (default) keeps a SampleID that occurs on two plates within one panel
        as one row per plate, index ``SampleID@PlateID``, and warns; ``"error"`` raises.
    sheet
        Sheet name or 0-based position of the NPX sheet in a workbook; found by content
        when ``None``.
    chunks
        ``"auto"``, ``"panel"`` or a number of assays: return a dask-backed AnnData whose X
        and layers are ``dask.array.Array`` s, each block all samples × a block of assays
        within one panel (``"panel"``: one block per panel; a number: at most that many
        assays per block; ``"auto"``: about 128 MiB per block). For parquet nothing of the
        matrix is read until computed (each block reads only its assays' row groups);
        other formats are read in memory and then wrapped. ``obs``, ``var``, ``obsm`` and
        ``uns`` are in memory and equal to the in-memory read. Needs the ``olinkpipe[dask]``
        extra.

    Returns
    -------
    AnnData
        ``X`` NPX (float64, NaN = not measured), ``obs`` one row per sample, ``var``
        indexed by OlinkID, ``layers`` ``lod``, ``qc_warning``, ``below_lod`` (and the
        file's other per-measurement columns), ``obsm`` ``PlateID``/``QC_Warning`` per
        panel, provenance in ``uns["olinkpipe"]`` (see ``docs/data_model.md``).

    Raises
    ------
    NPXFormatError
        Empty, truncated or unrecognised file; rows with the wrong number of fields;
        non-numeric, infinite or ambiguous (``1.234`` in a decimal-comma file) values; an
        OlinkID with two Assay names; a workbook without an NPX sheet or without its
        ``Assay``/``OlinkID`` header row.
    DesignError
        ``sep`` is not one character, or ``duplicates`` or ``chunks`` is not an allowed
        value.
    OlinkpipeError
        ``chunks`` is given and dask is not installed.
    MissingColumnError
        A long file lacks ``SampleID``, ``OlinkID`` or ``NPX``.
    DuplicateSampleError
        The same SampleID twice on one plate for one assay with different values, or
        any repeated SampleID with ``duplicates="error"``.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> path = os.path.join(tempfile.mkdtemp(), "run1_NPX.csv")
    >>> pd.DataFrame({"SampleID": ["S1", "S2"], "OlinkID": ["OID01216"] * 2,
    ...               "Assay": ["CHL1"] * 2, "Panel": ["Olink CARDIOMETABOLIC"] * 2,
    ...               "PlateID": ["Plate1"] * 2, "QC_Warning": ["Pass", "Warning"],
    ...               "LOD": [2.37, 2.37], "NPX": ["12,96", "1,5"]}
    ...              ).to_csv(path, sep=";", index=False)
    >>> adata = op.read_npx(path)
    >>> adata.X[:, 0].tolist(), adata.obs["qc_pass"].tolist()
    ([12.96, 1.5], [True, False])
    """
    check_literal("duplicates", duplicates, ["rename", "error"])
    if sep is not None and (not isinstance(sep, str) or len(sep) != 1):
        msg = f"Argument sep={sep!r} must be one character, e.g. ';', ',', '\\t' or '|'."
        raise DesignError(msg)
    if chunks is not None:
        from .._dask import require_dask
        from .lazy import check_chunks

        check_chunks(chunks)
        require_dask("read_npx(chunks=...)")
    p = Path(path)
    if not p.exists():
        msg = format_message("file not found", file=str(p), hint="Check the path.")
        raise NPXFormatError(msg)
    opts = {"sep": sep, "product": product, "duplicates": duplicates, "sheet": sheet}
    opts["chunks"] = chunks
    if p.is_dir():
        from .stream import parquet_files

        files = parquet_files(p)
        if not files:
            msg = format_message(
                "is a directory without parquet files, not an Olink export", file=str(p)
            )
            raise NPXFormatError(msg)
        adata = _read_parquet(p, str(p), opts, files=files)
    else:
        with open(p, "rb") as fh:
            head = fh.read(HEAD_BYTES)
        adata = _read_any(p, str(p), head, opts)
    if chunks is not None and "dask" not in type(adata.X).__module__:
        from .lazy import wrap

        adata = wrap(adata, chunks)
    from .stream import release_arrow

    release_arrow()  # Arrow's pool keeps freed memory (parquet read whole, too) otherwise
    logger.info("read %s: %d samples x %d assays", p, adata.n_obs, adata.n_vars)
    return adata


def _read_any(src: Path | IO[bytes], name: str, head: bytes, opts: dict) -> ad.AnnData:
    kind = _sniff.container(head)
    if kind == "empty":
        msg = format_message(
            "the file is empty", file=name, hint="Export the data again from Olink's software."
        )
        raise NPXFormatError(msg)
    if kind == "parquet":
        return _read_parquet(src, name, opts)
    if kind == "xls":
        msg = format_message(
            "legacy .xls workbooks (and password-protected .xlsx) are not supported",
            file=name,
            hint="Open it in Excel, remove any password and save as .xlsx, or export long "
            "CSV from NPX Manager.",
        )
        raise NPXFormatError(msg)
    if kind == "zip":
        return _read_zip(src, name, opts)
    if kind == "gzip":
        import gzip

        try:
            with gzip.open(src if isinstance(src, Path) else src, "rb") as fh:
                data = fh.read()
        except (OSError, EOFError) as err:
            msg = format_message(f"corrupt gzip file ({err})", file=name)
            raise NPXFormatError(msg) from err
        return _read_any(io.BytesIO(data), name, data[:HEAD_BYTES], opts)
    info = _sniff.inspect_text(head, sep=opts["sep"])
    if info.layout == "long":
        return _read_long_text(src, name, info, opts)
    if info.layout == "wide":
        from .wide import read_wide_text

        return read_wide_text(src, name, info, opts)
    msg = format_message(
        "unknown format: neither an Olink long export (header with SampleID, OlinkID, NPX) "
        "nor a wide NPX Manager export (rows 'NPX data' ... 'OlinkID'), nor parquet/xlsx/zip",
        file=name,
        hint="Pass a file exported by Olink NPX Manager / Signature / Explore, or sep= if "
        "the delimiter is unusual.",
    )
    raise UnknownFormatError(msg)


def _read_zip(src: Path | IO[bytes], name: str, opts: dict) -> ad.AnnData:
    try:
        zf = zipfile.ZipFile(src)
    except zipfile.BadZipFile as err:
        msg = format_message(
            f"corrupt or truncated zip/xlsx archive ({err})",
            file=name,
            hint="Download or export the file again.",
        )
        raise NPXFormatError(msg) from err
    with zf:
        names = zf.namelist()
        if "xl/workbook.xml" in names or "[Content_Types].xml" in names:
            from .wide import read_excel

            if isinstance(src, Path):
                return read_excel(src, name, opts)
            src.seek(0)
            return read_excel(io.BytesIO(src.read()), name, opts)
        members = [
            m
            for m in names
            if not m.endswith("/") and not any(k in m.lower() for k in _IGNORED_IN_ZIP)
        ]
        if not members:
            found = f"only {preview(names)}" if names else "it is empty"
            msg = format_message(
                f"the zip archive holds no data file ({found})",
                file=name,
                hint="Zip the Olink export itself (.csv, .txt, .parquet or .xlsx), or read "
                "the export directly.",
            )
            raise NPXFormatError(msg)
        if len(members) > 1:
            msg = format_message(
                f"the zip archive holds several data files: {preview(members)}",
                file=name,
                hint="Extract the archive and read one file at a time.",
            )
            raise NPXFormatError(msg)
        try:
            data = zf.read(members[0])
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, zlib.error) as err:
            msg = format_message(
                f"cannot extract {members[0]!r} from the zip archive ({err})",
                file=name,
                hint="The archive is damaged, encrypted or uses an unsupported compression; "
                "extract it with your system's tools and read the file itself.",
            )
            raise NPXFormatError(msg) from err
    inner = f"{name}!{members[0]}"
    adata = _read_any(io.BytesIO(data), inner, data[:HEAD_BYTES], opts)
    return adata


def _read_long_text(
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
    drop = [c for c in table.column_names if c in ("", "Unnamed: 0", "...1", _TRAILING)]
    if drop:
        table = table.drop_columns(drop)
    return from_long(
        table,
        file=name,
        product=opts["product"],
        duplicates=opts["duplicates"],
        data_format="long",
        row_offset=2 + info.skip_rows,
        decimal=info.decimal,
    )


_TRAILING = "__olinkpipe_trailing_delimiter__"


class _NotUTF8(Exception):
    def __init__(self, line: int):
        super().__init__(line)
        self.line = line


def _csv_tolerant(
    src: Path | IO[bytes], name: str, info: _sniff.TextInfo, types: dict[str, pa.DataType]
) -> tuple[pa.Table, _sniff.TextInfo, bool]:
    """Read with pyarrow; on failure, diagnose (encoding, trailing delimiter, ragged rows)."""
    try:
        return _csv(src, name, info, types), info, False
    except (pa.ArrowException, UnicodeDecodeError) as err:
        first_err = err
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


def _read_parquet(
    src: Path | IO[bytes], name: str, opts: dict, files: list[Path] | None = None
) -> ad.AnnData:
    if isinstance(src, Path):  # streamed, or None: read it whole below
        from . import stream

        got = stream.try_parquet(files or [src], name, opts, STRING_COLUMNS)
        if isinstance(got, stream.StreamPlan):
            from .lazy import lazy

            return lazy(got, opts["chunks"], file=name, product=opts["product"])
        if got is not None:
            return got
    source = str(src) if isinstance(src, Path) else src
    try:
        if files:  # a directory: its files as one table
            tables = [_parquet_table(str(f)) for f in files]
            table = pa.concat_tables(tables, promote_options="default")
            agreed = stream._metadata([t.schema.metadata or {} for t in tables])
            table = table.replace_schema_metadata(
                {k.encode(): v.encode() for k, v in agreed.items()}
            )
        else:
            table = _parquet_table(source)
    except (pa.ArrowInvalid, OSError, pa.ArrowException) as err:
        msg = format_message(
            f"truncated or corrupt parquet file ({err})",
            file=name,
            hint="Download or export the file again; its footer is missing or damaged.",
        )
        raise NPXFormatError(msg) from err
    raw = table.schema.metadata or {}
    meta = {}
    for k, v in raw.items():
        key = k.decode("utf-8", "replace")
        if key in ("pandas", "ARROW:schema") or key.startswith("ARROW:"):
            continue
        meta[key] = v.decode("utf-8", "replace")
    table = table.replace_schema_metadata(None)
    return from_long(
        table,
        file=name,
        product=opts["product"],
        duplicates=opts["duplicates"],
        data_format="parquet",
        metadata=meta,
        row_offset=1,
    )


def _parquet_table(source: str | IO[bytes]) -> pa.Table:
    names = pq.ParquetFile(source).schema_arrow.names
    if not isinstance(source, str):
        source.seek(0)
    # text ID columns straight to dictionaries: the codes feed the pivot
    pf = pq.ParquetFile(source, read_dictionary=[c for c in names if c in STRING_COLUMNS])
    return pf.read()
