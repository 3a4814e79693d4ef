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
import re
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
from ..errors import (
    DesignError,
    NPXFormatError,
    OlinkpipeError,
    UnknownFormatError,
    format_message,
    preview,
)
from . import _archive, _sniff
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
    * a ``.zip`` holding one of these (the data file is found by content, so a README or
      checksum-named member that holds the data is read), or a gzip-compressed file.

    A delivery zip's checksum file (``MD5_checksum.txt``, ``checksum_sha256.txt`` or any
    member named like a checksum that holds hex digests) is verified against the data
    file, as OlinkAnalyze's ``read_NPX`` does. Zip members and gzip streams are inflated
    with a size limit, ``min(4 GiB, max(50 x compressed size, 64 MiB))``; set the
    environment variables ``OLINKPIPE_MAX_UNCOMPRESSED`` (e.g. ``16G``) and
    ``OLINKPIPE_MAX_RATIO`` (``0``: no ratio test) to change it.

    Text markers ``> ULOQ``, ``< LLOQ``, ``No Data``, ``#`` and Excel error values such as
    ``#N/A`` read as NaN (with a warning). Thousands separators are accepted where they are
    unambiguous (``1.234,5``); a text file that is not UTF-8 is decoded as Windows-1252 (with
    a warning); exact duplicate rows are dropped, warned about and recorded in
    ``uns["olinkpipe"]["excluded"]``. Numbers are read as Olink's software and R write them
    (ASCII digits, ``.`` or ``,`` decimal mark, exponent, ``NA``/``NaN``/``Inf``); ``1_000``,
    other scripts' digits or ``TRUE`` are errors naming the cell. A file whose only value
    column is ``PCNormalizedNPX`` is read with a warning that it became ``X``.
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
        indexed by OlinkID, the LOD per assay and plate in ``varm["lod"]`` (compact
        layout; read it with ``olinkpipe._layout.lod_matrix``), ``layers`` the file's
        other per-measurement columns, ``obsm`` ``PlateID``/``QC_Warning`` per
        panel, provenance in ``uns["olinkpipe"]`` (see ``docs/data_model.md``).

    Raises
    ------
    NPXFormatError
        Empty, truncated or unrecognised file; rows with the wrong number of fields;
        non-numeric, infinite or ambiguous (``1.234`` in a decimal-comma file) values; an
        OlinkID with two Assay names; a workbook without an NPX sheet or without its
        ``Assay``/``OlinkID`` header row.
    ChecksumError
        A zip's checksum file does not match its data file.
    SizeLimitError
        A zip member or gzip stream inflates past the size limit.
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
    try:
        adata = _read_path(p, opts)
    except OlinkpipeError:
        raise
    except OSError as err:  # permission, I/O error, a file that vanished
        msg = format_message(
            f"cannot read the file ({type(err).__name__}: {err.strerror or err})",
            file=str(p),
            hint="Check that the file is readable and complete.",
        )
        raise NPXFormatError(msg) from err
    except Exception as err:  # noqa: BLE001 - any parser's failure on damage no check foresaw
        raise _unexpected(err, str(p), "the file could not be parsed") from err
    finally:
        from .stream import release_arrow

        release_arrow()  # Arrow's pool keeps freed memory (parquet read whole, too) otherwise
    if chunks is not None and "dask" not in type(adata.X).__module__:
        from .lazy import wrap

        adata = wrap(adata, chunks)
    logger.info("read %s: %d samples x %d assays", p, adata.n_obs, adata.n_vars)
    return adata


def _read_path(p: Path, opts: dict) -> ad.AnnData:
    """One file by its content, or a directory of parquet files as one dataset."""
    if p.is_dir():
        from .stream import parquet_files

        files = parquet_files(p)
        if not files:
            msg = format_message(
                "is a directory without parquet files, not an Olink export", file=str(p)
            )
            raise NPXFormatError(msg)
        return _read_parquet(p, str(p), opts, files=files)
    with open(p, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    return _read_any(p, str(p), head, opts)


def _unexpected(err: BaseException, name: str, what: str) -> NPXFormatError:
    """A last resort for damage no check foresaw: an OlinkpipeError naming the file, with
    the original exception chained (``unexpected`` is set, so tests can tell it apart)."""
    msg = format_message(
        f"{what} ({type(err).__name__}: {str(err)[:200]})",
        file=name,
        hint="The file is damaged or not an Olink export; export it again. If it reads in "
        "Olink's software, please report this message.",
    )
    out = NPXFormatError(msg)
    out.unexpected = True  # type: ignore[attr-defined]
    return out


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

        size = src.stat().st_size if isinstance(src, Path) else len(src.getbuffer())
        try:
            if not isinstance(src, Path):
                src.seek(0)
            with gzip.open(src, "rb") as fh:
                data = _archive.read_bounded(
                    fh, compressed=size, name=name, what="the gzip stream"
                )
        except (OSError, EOFError, zlib.error) as err:
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
    except (
        zipfile.BadZipFile,
        zipfile.LargeZipFile,
        NotImplementedError,
        RuntimeError,
        OSError,
        ValueError,
        EOFError,
    ) as err:
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

            _archive.check_declared(zf, names, name, "the workbook")
            if isinstance(src, Path):
                return read_excel(src, name, opts)
            src.seek(0)
            return read_excel(io.BytesIO(src.read()), name, opts)
        files = [m for m in names if not m.endswith("/") and not _junk(m)]
        member, sums = _zip_member(zf, files, name)
        hashes = _archive.hashers(sums)
        data = _extract(zf, member, name, [h.update for h in hashes.values()])
    _archive.verify(name, member, sums, {a: h.hexdigest() for a, h in hashes.items()})
    inner = f"{name}!{member}"
    return _read_any(io.BytesIO(data), inner, data[:HEAD_BYTES], opts)


def _junk(member: str) -> bool:
    low = member.lower()
    return low.startswith("__macosx/") or low.rsplit("/", 1)[-1] in (".ds_store", "thumbs.db")


def _extract(
    zf: zipfile.ZipFile, member: str, name: str, digests: list | None = None, *, head: bool = False
) -> bytes:
    """A member's bytes (or its first ``HEAD_BYTES``), read with the size limit."""
    info = zf.getinfo(member)
    if not head:  # refuse at once what the directory already declares too big
        _archive.check_declared(zf, [member], name, f"member {member!r}")
    try:
        with zf.open(info) as fh:
            if head:
                return fh.read(HEAD_BYTES)
            return _archive.read_bounded(
                fh,
                compressed=info.compress_size,
                name=name,
                what=f"member {member!r}",
                digests=digests,
            )
    except OlinkpipeError:
        raise
    except (
        zipfile.BadZipFile,
        NotImplementedError,
        RuntimeError,
        OSError,
        EOFError,
        ValueError,
        zlib.error,
    ) as err:
        msg = format_message(
            f"cannot extract {member!r} from the zip archive ({err})",
            file=name,
            hint="The archive is damaged, encrypted or uses an unsupported compression; "
            "extract it with your system's tools and read the file itself.",
        )
        raise NPXFormatError(msg) from err


def _zip_member(
    zf: zipfile.ZipFile, files: list[str], name: str
) -> tuple[str, list[_archive.Checksum]]:
    """The one data member of a delivery zip and the checksums that come with it.

    Members are told apart by content, not name: a checksum file is a file named like one
    that holds hex digests; a data member is one whose first bytes are an Olink export
    (a README or a checksum-named file that holds the data is still read).
    """
    sums: list[_archive.Checksum] = []
    data: list[str] = []
    other: list[str] = []
    for m in files:
        info = zf.getinfo(m)
        if info.file_size == 0:
            continue
        head = _extract(zf, m, name, head=True)
        parsed = (
            _archive.parse_checksum(m, head)
            if _archive.is_checksum_name(m) and info.file_size <= 1 << 16
            else None
        )
        if parsed is not None:
            sums.extend(parsed)
        elif _looks_like_data(head):
            data.append(m)
        else:
            other.append(m)
    if not data:  # nothing recognisable: files not named like a README are data candidates
        data = [m for m in other if not _NOT_DATA.search(m.rsplit("/", 1)[-1])]
    if not data:
        found = f"only {preview(files)}" if files else "it is empty"
        msg = format_message(
            f"the zip archive holds no Olink data file ({found})",
            file=name,
            hint="Zip the Olink export itself (.csv, .txt, .parquet or .xlsx), or read "
            "the export directly.",
        )
        raise NPXFormatError(msg)
    if len(data) > 1:
        msg = format_message(
            f"the zip archive holds several data files: {preview(data)}",
            file=name,
            hint="Extract the archive and read one file at a time (read_exports reads "
            "several into one AnnData).",
        )
        raise NPXFormatError(msg)
    base = data[0].rsplit("/", 1)[-1]
    named = {c.target for c in sums if c.target is not None}
    if named and base not in named and all(c.target is not None for c in sums):
        warn_user(
            f"{name}: the checksum file names {preview(sorted(named))}, not {base!r}; the "
            "data file was not verified"
        )
    return data[0], sums


_NOT_DATA = re.compile(r"(readme|license|licence|checksum|md5|sha-?\d+)", re.I)


def _looks_like_data(head: bytes) -> bool:
    kind = _sniff.container(head)
    if kind in ("parquet", "zip", "gzip", "xls"):
        return True
    if kind != "text":
        return False
    try:
        return _sniff.inspect_text(head).layout != "unknown"
    except (ValueError, UnicodeError, csv.Error):
        return False


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
    table = _drop_unnamed(table, name)
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
    except (pa.ArrowInvalid, OSError, pa.ArrowException, UnicodeDecodeError, KeyError) as err:
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
    schema = pq.ParquetFile(source).schema_arrow
    if not isinstance(source, str):
        source.seek(0)
    # text ID columns straight to dictionaries: the codes feed the pivot (string columns
    # only: a binary or nested column is named as an error later, not decoded here)
    text = [f.name for f in schema if f.name in STRING_COLUMNS and pa.types.is_string(f.type)]
    pf = pq.ParquetFile(source, read_dictionary=text)
    return pf.read()
