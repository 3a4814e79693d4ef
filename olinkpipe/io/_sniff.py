"""Recognise an Olink export from its first bytes: container, encoding, delimiter, layout."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass

SEPARATORS = (";", ",", "\t", "|")
_COMMA_DEC = re.compile(r"^-?\d+,\d+([eE][-+]?\d+)?$")
_POINT_DEC = re.compile(r"^-?\d*\.\d+([eE][-+]?\d+)?$")
WIDE_MARKERS = ("npx data", "quantified data", "ct data")


@dataclass
class TextInfo:
    """What the first lines of a text export say about it."""

    layout: str  # "long", "wide" or "unknown"
    sep: str
    decimal: str
    encoding: str
    header: list[str]
    skip_rows: int
    note: str = ""  # how the encoding was chosen, for the user's warning


def container(head: bytes) -> str:
    """``"empty"``, ``"parquet"``, ``"zip"``, ``"gzip"``, ``"xls"`` or ``"text"``."""
    if not head.strip(b" \t\r\n\x00\xef\xbb\xbf"):
        return "empty"
    if head[:4] == b"PAR1":
        return "parquet"
    if head[:4] == b"PK\x03\x04" or head[:4] == b"PK\x05\x06":
        return "zip"
    if head[:8] == b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1":
        return "xls"
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    return "text"


def decode(head: bytes) -> tuple[str, str]:
    """Decode the head of a text file; returns ``(text, encoding)``."""
    if head.startswith(b"\xef\xbb\xbf"):
        head = head[3:]
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", errors="replace"), "utf-16"
    try:
        return head.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as err:
        if err.start > len(head) - 4:  # a multi-byte character cut by the head's end
            return head[: err.start].decode("utf-8"), "utf-8"
        return head.decode("cp1252", errors="replace"), "cp1252"


def split_line(line: str, sep: str) -> list[str]:
    """Split one delimited line, honouring quotes."""
    return next(csv.reader([line], delimiter=sep, quotechar='"'), [])


def sniff_sep(lines: list[str]) -> str:
    """The delimiter giving the most (and consistent) fields over the first lines."""
    best, best_n = ",", 1
    for sep in SEPARATORS:
        counts = [len(split_line(ln, sep)) for ln in lines[:5] if ln.strip()]
        if not counts:
            continue
        n = counts[0]
        if n > best_n and all(c == n for c in counts[1:3]) or (n > best_n and len(counts) == 1):
            best, best_n = sep, n
    if best_n == 1:
        # consistency failed for all; fall back to the separator most frequent in the header
        first = lines[0] if lines else ""
        best = max(SEPARATORS, key=first.count)
    return best


def sniff_decimal(lines: list[str], sep: str) -> str:
    """``","`` when most numbers in the data lines use a decimal comma (only if sep is not
    ``,``, where an unquoted decimal comma cannot occur)."""
    if sep == ",":
        return "."
    comma = point = 0
    for ln in lines[1:50]:
        for f in split_line(ln, sep):
            f = f.strip()
            if _COMMA_DEC.match(f):
                comma += 1
            elif _POINT_DEC.match(f):
                point += 1
    # the majority convention; values of the other one are parsed one by one later, and
    # those that are ambiguous in the file's convention (1.234 with decimal comma) are errors
    return "," if comma > point else "."


def inspect_text(head: bytes, *, sep: str | None = None) -> TextInfo:
    """Classify a text export (long or wide) and find its delimiter and decimal mark."""
    text, encoding = decode(head)
    lines = text.splitlines()
    if lines and not text.endswith(("\n", "\r")) and len(lines) > 1:
        lines = lines[:-1]  # the head may end mid-line
    first = next((k for k, ln in enumerate(lines) if ln.strip()), 0)
    body = lines[first:]
    use_sep = sep or sniff_sep(body)
    header = [h.strip() for h in split_line(body[0], use_sep)] if body else []
    low = {re.sub(r"[\s_]", "", h).lower() for h in header}
    if "sampleid" in low and ("olinkid" in low or "npx" in low or "assay" in low):
        return TextInfo("long", use_sep, sniff_decimal(body, use_sep), encoding, header, first)
    # wide: NPX Manager header block ("NPX data" in the first rows, an "OlinkID" row)
    for k, ln in enumerate(body[:40]):
        cells_sep = sep or sniff_sep([ln] + body[k + 1 : k + 3])
        cells = [c.strip().lower() for c in split_line(ln, cells_sep)]
        if cells and (cells[0] in ("olinkid", "olink id") or cells[0] in WIDE_MARKERS):
            wsep = sep or _wide_sep(body)
            return TextInfo("wide", wsep, ".", encoding, [], first)
    return TextInfo("unknown", use_sep, ".", encoding, header, first)


def _wide_sep(lines: list[str]) -> str:
    for ln in lines[:60]:
        for s in SEPARATORS:
            cells = split_line(ln, s)
            if cells and cells[0].strip().lower() in ("olinkid", "olink id") and len(cells) > 1:
                return s
    return sniff_sep(lines)
