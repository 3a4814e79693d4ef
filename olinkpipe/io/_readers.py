"""The reader registry: every input format ``read_npx`` knows, as (sniff, read) pairs.

:func:`read_any` looks at a file's first bytes (:class:`Head`) and hands the file to the
first registered :class:`Reader` whose ``sniff`` says yes. Adding a format is one edit:
write its ``read(src, name, head, opts)`` (in its own module) and add a ``Reader`` to
:data:`READERS`, before any entry that would also claim the file. Empty files and legacy
``.xls`` workbooks are refused (:data:`REFUSED`) before the registry is asked; a zip or
gzip container is opened and its content goes through :func:`read_any` again.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import IO

import anndata as ad

from ..errors import NPXFormatError, UnknownFormatError, format_message
from . import _archive, _sniff
from ._parquet import read_parquet
from ._text import read_long_text
from ._zip import HEAD_BYTES, data_member
from .wide import read_excel, read_wide_text

__all__ = ["HEAD_BYTES", "READERS", "Head", "Reader", "read_any"]

Source = Path | IO[bytes]


@dataclasses.dataclass(frozen=True)
class Head:
    """A file's first bytes (up to ``HEAD_BYTES``) and what they say, worked out once."""

    data: bytes
    sep: str | None = None

    @functools.cached_property
    def container(self) -> str:
        """``"empty"``, ``"parquet"``, ``"zip"``, ``"gzip"``, ``"xls"`` or ``"text"``."""
        return _sniff.container(self.data)

    @functools.cached_property
    def text(self) -> _sniff.TextInfo:
        """Delimiter, decimal mark, encoding, header and layout of a text file."""
        return _sniff.inspect_text(self.data, sep=self.sep)


@dataclasses.dataclass(frozen=True)
class Reader:
    """One input format: ``sniff(head)`` recognises it, ``read(src, name, head, opts)``
    returns the AnnData (``opts``: read_npx's options as a dict)."""

    format: str
    sniff: Callable[[Head], bool]
    read: Callable[[Source, str, Head, dict], ad.AnnData]
    description: str


def _read_parquet(src: Source, name: str, head: Head, opts: dict) -> ad.AnnData:
    return read_parquet(src, name, opts)


def _read_long(src: Source, name: str, head: Head, opts: dict) -> ad.AnnData:
    return read_long_text(src, name, head.text, opts)


def _read_wide(src: Source, name: str, head: Head, opts: dict) -> ad.AnnData:
    return read_wide_text(src, name, head.text, opts)


def _read_zip(src: Source, name: str, head: Head, opts: dict) -> ad.AnnData:
    """An xlsx workbook (wide or Flex long), or a delivery zip holding one export."""
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
            _archive.check_declared(zf, names, name, "the workbook")
            if isinstance(src, Path):
                return read_excel(src, name, opts)
            src.seek(0)
            return read_excel(io.BytesIO(src.read()), name, opts)
        member, data = data_member(zf, name)
    inner = f"{name}!{member}"
    return read_any(io.BytesIO(data), inner, Head(data[:HEAD_BYTES], head.sep), opts)


def _read_gzip(src: Source, name: str, head: Head, opts: dict) -> ad.AnnData:
    """A gzip-compressed export, inflated with the size limit."""
    import gzip

    size = src.stat().st_size if isinstance(src, Path) else len(src.getbuffer())
    try:
        if not isinstance(src, Path):
            src.seek(0)
        with gzip.open(src, "rb") as fh:
            data = _archive.read_bounded(fh, compressed=size, name=name, what="the gzip stream")
    except (OSError, EOFError, zlib.error) as err:
        msg = format_message(f"corrupt gzip file ({err})", file=name)
        raise NPXFormatError(msg) from err
    return read_any(io.BytesIO(data), name, Head(data[:HEAD_BYTES], head.sep), opts)


def _is_text(layout: str) -> Callable[[Head], bool]:
    def sniff(head: Head) -> bool:
        return head.container == "text" and head.text.layout == layout

    return sniff


def _is_container(kind: str) -> Callable[[Head], bool]:
    def sniff(head: Head) -> bool:
        return head.container == kind

    return sniff


READERS: tuple[Reader, ...] = (
    Reader(
        "parquet",
        _is_container("parquet"),
        _read_parquet,
        "Olink Explore / Explore HT parquet (a file or a directory of them)",
    ),
    Reader(
        "zip",
        _is_container("zip"),
        _read_zip,
        "Target 96/48 wide or Flex long xlsx, or a zip holding any export",
    ),
    Reader("gzip", _is_container("gzip"), _read_gzip, "a gzip-compressed export"),
    Reader(
        "long",
        _is_text("long"),
        _read_long,
        "long NPX text (NPX Manager / Signature / Explore CSV, TSV, TXT)",
    ),
    Reader("wide", _is_text("wide"), _read_wide, "Target 96/48 wide NPX Manager CSV"),
)

REFUSED = {
    "empty": ("the file is empty", "Export the data again from Olink's software."),
    "xls": (
        "legacy .xls workbooks (and password-protected .xlsx) are not supported",
        "Open it in Excel, remove any password and save as .xlsx, or export long CSV from "
        "NPX Manager.",
    ),
}


def read_any(src: Source, name: str, head: Head, opts: dict) -> ad.AnnData:
    """Read ``src`` with the first registered reader that recognises ``head``."""
    if head.container in REFUSED:
        what, hint = REFUSED[head.container]
        raise NPXFormatError(format_message(what, file=name, hint=hint))
    for reader in READERS:
        if reader.sniff(head):
            return reader.read(src, name, head, opts)
    msg = format_message(
        "unknown format: neither an Olink long export (header with SampleID, OlinkID, NPX) "
        "nor a wide NPX Manager export (rows 'NPX data' ... 'OlinkID'), nor parquet/xlsx/zip",
        file=name,
        hint="Pass a file exported by Olink NPX Manager / Signature / Explore, or sep= if "
        "the delimiter is unusual.",
    )
    raise UnknownFormatError(msg)
