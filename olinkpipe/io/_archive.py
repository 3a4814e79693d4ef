"""Zip members and gzip streams read with a size limit; Explore checksum files verified.

A compressed export is inflated in memory, so a damaged or hostile archive (a "zip bomb")
could fill it. Every member and gzip stream is read in blocks and refused, with an
:class:`~olinkpipe.errors.SizeLimitError`, as soon as it passes

``min(cap, max(ratio * compressed size, floor))``

with ``ratio`` 50 (real Olink CSV compresses about 5x, parquet and xlsx less), ``floor``
64 MiB and ``cap`` 4 GiB. Both are set by environment variables:
``OLINKPIPE_MAX_UNCOMPRESSED`` (the cap, bytes or ``"8G"``, ``"500M"``) and
``OLINKPIPE_MAX_RATIO`` (``0`` turns the ratio test off, leaving the cap).

Olink Explore deliveries hold a checksum file (``MD5_checksum.txt`` or
``checksum_sha256.txt``, one hex digest); OlinkAnalyze's ``read_NPX`` compares it with the
digest of the data file and refuses a mismatch, and so does :func:`checksums`.
"""

from __future__ import annotations

import hashlib
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from ..errors import ChecksumError, SizeLimitError, format_message

ENV_CAP = "OLINKPIPE_MAX_UNCOMPRESSED"
ENV_RATIO = "OLINKPIPE_MAX_RATIO"
DEFAULT_CAP = 4 << 30
DEFAULT_RATIO = 50.0
FLOOR = 64 << 20
BLOCK = 1 << 20
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_SIZE = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]?)(?:I?B)?\s*$", re.I)
_DIGEST_LEN = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
_DIGEST_LINE = re.compile(r"^([0-9a-fA-F]{32,128})(?:\s+\*?(.+?))?\s*$")
_CHECKSUM_NAME = re.compile(r"(md5|sha-?1|sha-?256|sha-?512|checksum)", re.I)


def parse_size(text: str) -> int:
    """Bytes from ``"4G"``, ``"500 MB"``, ``"1048576"``.

    Examples
    --------
    >>> parse_size("8G"), parse_size("500MB"), parse_size("1024")
    (8589934592, 524288000, 1024)
    """
    m = _SIZE.match(str(text))
    if m is None:
        msg = format_message(
            f"environment variable {ENV_CAP}={text!r} is not a size",
            hint="Give bytes or a number with K, M, G or T, e.g. 8G.",
        )
        raise SizeLimitError(msg)
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def limit_for(compressed: int) -> int:
    """The most bytes a stream of ``compressed`` bytes may inflate to."""
    cap = parse_size(os.environ[ENV_CAP]) if os.environ.get(ENV_CAP) else DEFAULT_CAP
    raw = os.environ.get(ENV_RATIO)
    try:
        ratio = float(raw) if raw else DEFAULT_RATIO
    except ValueError:
        msg = format_message(f"environment variable {ENV_RATIO}={raw!r} is not a number")
        raise SizeLimitError(msg) from None
    if ratio <= 0:
        return cap
    return int(min(cap, max(ratio * compressed, FLOOR)))


def _too_big(name: str, what: str, compressed: int, limit: int) -> SizeLimitError:
    msg = format_message(
        f"{what} inflates past the size limit of {limit:,} bytes (from {compressed:,} "
        "compressed bytes): a damaged archive or a zip bomb",
        file=name,
        hint=f"If the export is genuine, raise the limit with the environment variable "
        f"{ENV_CAP} (e.g. 16G) or {ENV_RATIO} (0 = no ratio test), or decompress it "
        "yourself and read the file.",
    )
    return SizeLimitError(msg)


def read_bounded(
    stream: IO[bytes],
    *,
    compressed: int,
    name: str,
    what: str,
    digests: list[Callable[[bytes], None]] | None = None,
) -> bytes:
    """Read ``stream`` to its end in blocks, refusing it past :func:`limit_for`."""
    limit = limit_for(compressed)
    parts: list[bytes] = []
    total = 0
    while True:
        block = stream.read(min(BLOCK, limit + 1 - total))
        if not block:
            break
        total += len(block)
        if total > limit:
            raise _too_big(name, what, compressed, limit)
        for update in digests or ():
            update(block)
        parts.append(block)
    return b"".join(parts)


def check_declared(zf: zipfile.ZipFile, members: list[str], name: str, what: str) -> None:
    """Refuse an archive whose directory already declares more than the limit."""
    infos = [zf.getinfo(m) for m in members]
    declared = sum(i.file_size for i in infos)
    compressed = sum(i.compress_size for i in infos)
    if declared > limit_for(compressed):
        raise _too_big(name, what, compressed, limit_for(compressed))


@dataclass
class Checksum:
    """One digest from a checksum member: algorithm, hex digest, the file it names."""

    member: str
    algorithm: str
    digest: str
    target: str | None


def parse_checksum(member: str, text: bytes) -> list[Checksum] | None:
    """Digests in a checksum file (``None`` when it is not one).

    A file named like a checksum (``MD5``, ``SHA256``, ``checksum``) whose lines are hex
    digests, each optionally followed by a file name (``md5sum`` / ``sha256sum`` output).
    """
    base = member.rsplit("/", 1)[-1]
    if not _CHECKSUM_NAME.search(base) or len(text) > 1 << 16:
        return None
    try:
        lines = [ln.strip() for ln in text.decode("utf-8-sig").splitlines() if ln.strip()]
    except UnicodeDecodeError:
        return None
    found = []
    for ln in lines:
        m = _DIGEST_LINE.match(ln)
        if m is None or len(m.group(1)) not in _DIGEST_LEN:
            return None
        target = m.group(2).rsplit("/", 1)[-1] if m.group(2) else None
        found.append(Checksum(member, _DIGEST_LEN[len(m.group(1))], m.group(1).lower(), target))
    return found or None


def is_checksum_name(member: str) -> bool:
    """Named like a checksum file (its content decides whether it is one)."""
    return bool(_CHECKSUM_NAME.search(member.rsplit("/", 1)[-1]))


def verify(name: str, member: str, sums: list[Checksum], hashes: dict[str, str]) -> None:
    """Compare the digests that apply to ``member`` with the computed ``hashes``."""
    base = member.rsplit("/", 1)[-1]
    for c in sums:
        if c.target is not None and c.target != base:
            continue
        got = hashes[c.algorithm]
        if got != c.digest:
            msg = format_message(
                f"the {c.algorithm.upper()} checksum of {member!r} is {got}, but "
                f"{c.member!r} says {c.digest}: the data file was truncated or changed "
                "after Olink's software wrote it",
                file=name,
                hint="Download the delivery again; if you edited the data file on purpose, "
                "read it directly instead of the zip.",
            )
            raise ChecksumError(msg)


def hashers(sums: list[Checksum]) -> dict[str, Any]:
    """One hashlib object per algorithm the checksum files use."""
    return {a: hashlib.new(a) for a in sorted({c.algorithm for c in sums})}
