"""Which member of a delivery zip holds the data, and its bytes read with the size limit
and checked against the zip's checksum file."""

from __future__ import annotations

import csv
import re
import zipfile
import zlib

from .._warnings import warn_user
from ..errors import NPXFormatError, OlinkpipeError, format_message, preview
from . import _archive, _sniff

__all__ = ["data_member"]

HEAD_BYTES = 1 << 16


def data_member(zf: zipfile.ZipFile, name: str) -> tuple[str, bytes]:
    """The data member of a (non-workbook) zip and its bytes, verified against the zip's
    checksum file when it has one."""
    files = [m for m in zf.namelist() if not m.endswith("/") and not _junk(m)]
    member, sums = _zip_member(zf, files, name)
    hashes = _archive.hashers(sums)
    data = _extract(zf, member, name, [h.update for h in hashes.values()])
    _archive.verify(name, member, sums, {a: h.hexdigest() for a, h in hashes.items()})
    return member, data


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
