"""Numbers in Olink exports: :func:`parse_number` for one cell, :func:`_numeric` for a
value column (text markers read as NaN, bad or ambiguous values refused)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pyarrow as pa

from ..errors import NPXFormatError, format_message, preview
from ._longtable import _Column, _line_numbers
from ._util import warn_user as warn


def _numeric(
    col: _Column,
    *,
    file: str | None,
    lines: Any = None,
    decimal: str | None = None,
) -> np.ndarray:
    """A value column as float64; text markers (``> ULOQ``, ``No Data``, ...) become NaN.

    ``lines`` turns 0-based row positions into the row names used in messages.
    """
    if lines is None:

        def lines(rows: np.ndarray) -> list[int]:
            return _line_numbers(rows, 2 if file else 0)

    if pa.types.is_boolean(col.type):
        msg = format_message(
            "true/false values where numbers are expected",
            file=file,
            column=col.name,
            rows=lines(np.arange(min(len(col._arr), 5))),
            hint="This column holds TRUE/FALSE, not measurements; check the column names.",
        )
        raise NPXFormatError(msg)
    if col.is_numeric:
        out = col.values()
        markers = 0
        marker_u: list[int] = []
        codes = None
    else:
        codes, uniques = col.codes()
        parsed = np.full(len(uniques), np.nan)
        bad_u, ambiguous_u, marker_u = [], [], []
        for k, u in enumerate(uniques):
            value, ok, is_marker = parse_number(u, decimal=decimal)
            parsed[k] = value
            if is_marker:
                marker_u.append(k)
            if not ok:
                (ambiguous_u if _ambiguous(u, decimal) else bad_u).append(k)
        for bad, problem, hint in (
            (
                bad_u,
                "non-numeric value(s)",
                "Values must be numbers (decimal point or comma), empty, NA or an Olink "
                "marker such as '> ULOQ' / '< LLOQ' / 'No Data'; fix or remove these rows.",
            ),
            (
                ambiguous_u,
                f"value(s) that are ambiguous in a file with decimal mark {decimal!r} (a "
                "thousands separator or a decimal mark of the other convention?)",
                "Export the file again with one decimal mark and no thousands separators, "
                "or fix these values.",
            ),
        ):
            if bad:
                bad_rows = np.flatnonzero(np.isin(codes, bad))
                examples = [str(uniques[k]) for k in bad[:5]]
                msg = format_message(
                    f"{problem} {preview(examples)}",
                    file=file,
                    column=col.name,
                    rows=lines(bad_rows),
                    hint=hint,
                )
                raise NPXFormatError(msg)
        out = (
            np.where(codes >= 0, parsed[np.maximum(codes, 0)], np.nan)
            if len(uniques)
            else np.full(len(codes), np.nan)
        )
        markers = len(marker_u)
    infinite = np.flatnonzero(np.isinf(out))
    if infinite.size:
        msg = format_message(
            "infinite value(s) (Inf / -Inf) are not valid measurements",
            file=file,
            column=col.name,
            rows=lines(infinite),
            hint="Replace them with NA (not measured) or the measured value.",
        )
        raise NPXFormatError(msg)
    if markers:
        n_marked = int(np.isin(codes, marker_u).sum())
        warn(
            f"{file or 'long table'}: column {col.name!r}: {n_marked} value(s) were text "
            f"markers ({preview([str(uniques[k]).strip() for k in marker_u])}: Olink's "
            "'> ULOQ', '< LLOQ', 'No Data', '#' or Excel errors such as '#N/A') and are read "
            "as NaN"
        )
    return out


# numbers as NPX Manager, Explore and R write them: ASCII digits, a decimal point, an
# exponent, Inf/NaN (Python's float() would also take 1_000, Arabic-Indic digits, "infinity")
_NUMBER = re.compile(r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$|^[-+]?(inf|nan)$", re.I)
_MARKER = re.compile(
    r"^\s*(>\s*ULOQ|<\s*LLOQ|<\s*LOD|>\s*LOD|No\s*Data|NA|N/A|NaN|-|#+|"
    r"#N/A|#DIV/0!|#VALUE!|#REF!|#NUM!|#NAME\?|#NULL!|)\s*$",  # Excel's error values
    re.I,
)
# thousands separators: both marks present (the last one is the decimal mark), or a mark
# repeated between groups of three digits
_GROUPED = {
    ",": re.compile(r"^[-+]?[1-9][0-9]{0,2}(\.[0-9]{3})+(,[0-9]*)?$"),  # 1.234,5  12.345.678
    ".": re.compile(r"^[-+]?[1-9][0-9]{0,2}(,[0-9]{3})+(\.[0-9]*)?$"),  # 1,234.5  12,345,678
}
_ONE_GROUP = {
    ",": re.compile(r"^[-+]?[1-9][0-9]{0,2}\.[0-9]{3}$"),  # 1.234: 1234 or 1.234?
    ".": re.compile(r"^[-+]?[1-9][0-9]{0,2},[0-9]{3}$"),  # 1,234: 1234 or 1.234?
}


def _ambiguous(value: object, decimal: str | None) -> bool:
    """A single thousands-like group (``1.234`` with decimal comma) where it is ambiguous."""
    return decimal in _ONE_GROUP and bool(_ONE_GROUP[decimal].match(str(value).strip()))


def parse_number(value: object, *, decimal: str | None = None) -> tuple[float, bool, bool]:
    """``(number, ok, is_marker)`` for one cell of an Olink export.

    Accepts numbers, numeric text with a decimal point or comma, thousands separators
    where they are unambiguous (``1.234,5``, ``12,345,678``), and Olink's text markers
    (``> ULOQ``, ``< LLOQ``, ``No Data``, ``#``), which are NaN. With ``decimal`` (the
    file's decimal mark) a single group such as ``1.234`` in a decimal-comma file is
    ambiguous (``ok`` False) rather than guessed.

    Examples
    --------
    >>> parse_number("1,5"), parse_number("1.234,5"), parse_number("> ULOQ")[1:]
    ((1.5, True, False), (1234.5, True, False), (True, True))
    >>> parse_number("1.234", decimal=",")[1]
    False
    """
    if value is None:
        return np.nan, True, False
    if isinstance(value, bool | np.bool_):  # TRUE/FALSE is not a measurement
        return np.nan, False, False
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value), True, False
    s = str(value).strip()
    if s == "" or s.upper() in {"NA", "NAN", "N/A", "NULL"}:
        return np.nan, True, False
    if _ambiguous(s, decimal):
        return np.nan, False, False
    for dec, pattern in _GROUPED.items():
        if ("," in s and "." in s or s.count("." if dec == "," else ",") > 1) and pattern.match(s):
            thousands = "." if dec == "," else ","
            return float(s.replace(thousands, "").replace(",", ".")), True, False
    if _NUMBER.match(s):
        return float(s), True, False
    t = s.replace(",", ".") if s.count(",") == 1 and "." not in s else s
    t = t.rstrip("#").strip() if t.endswith("#") and len(t) > 1 else t
    if _NUMBER.match(t):
        return float(t), True, False
    if _MARKER.match(s):
        return np.nan, True, True
    return np.nan, False, False
