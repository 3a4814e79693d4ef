"""Errors and warnings raised by olinkpipe.

Every problem a user can cause with their input raises a subclass of
:class:`OlinkpipeError`. Messages name the file, the column and up to five
offending rows or IDs, and say how to fix the problem. Build them with
:func:`format_message` so they all read the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from os import PathLike

__all__ = [
    "OlinkpipeError",
    "NPXFormatError",
    "UnknownFormatError",
    "ChecksumError",
    "SizeLimitError",
    "MissingColumnError",
    "DuplicateSampleError",
    "DesignError",
    "ValidationError",
    "ConfigError",
    "OlinkpipeWarning",
    "format_message",
    "preview",
]


class OlinkpipeError(Exception):
    """Base class of every error olinkpipe raises on bad input."""


class NPXFormatError(OlinkpipeError, ValueError):
    """A file is not a readable Olink export (empty, unknown layout, bad values)."""


class UnknownFormatError(NPXFormatError):
    """A file is not an Olink export at all (neither long, wide, parquet nor a zip of one)."""


class ChecksumError(NPXFormatError):
    """A delivery's checksum file does not match its data file (truncated or changed)."""


class SizeLimitError(NPXFormatError):
    """A zip member or gzip stream inflates past the size limit (damaged archive or bomb)."""


class MissingColumnError(OlinkpipeError, KeyError):
    """A required column (or row label in a wide export) is absent."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class DuplicateSampleError(OlinkpipeError, ValueError):
    """The same sample occurs where it must be unique."""


class DesignError(OlinkpipeError, ValueError):
    """The study design cannot support the requested analysis (levels, pairs, groups)."""


class ValidationError(OlinkpipeError, ValueError):
    """Input values are implausible or inconsistent (clinical tables, arguments)."""


class ConfigError(OlinkpipeError, ValueError):
    """A workflow configuration is invalid."""


class OlinkpipeWarning(UserWarning):
    """Category of every warning olinkpipe emits (exclusions, fallbacks)."""


def preview(items: Iterable[object], limit: int = 5) -> str:
    """Render up to ``limit`` items, saying how many more there are.

    Examples
    --------
    >>> preview(["A1", "A2", "A3", "A4", "A5", "A6", "A7"])
    "'A1', 'A2', 'A3', 'A4', 'A5' (and 2 more)"
    """
    items = list(items)
    shown = ", ".join(repr(i) for i in items[:limit])
    if len(items) > limit:
        shown += f" (and {len(items) - limit} more)"
    return shown


def format_message(
    problem: str,
    *,
    file: str | PathLike[str] | None = None,
    column: str | None = None,
    rows: Iterable[object] | None = None,
    hint: str | None = None,
) -> str:
    """Compose an error message naming file, column, offending rows and a fix.

    Examples
    --------
    >>> format_message("NPX is not numeric", file="a.csv", column="NPX", rows=[3, 7],
    ...                hint="Check the decimal separator.")
    "a.csv: column 'NPX': NPX is not numeric. Rows: 3, 7. Hint: Check the decimal separator."
    """
    parts = []
    if file is not None:
        parts.append(f"{file}:")
    if column is not None:
        parts.append(f"column {column!r}:")
    msg = " ".join(parts + [problem.rstrip(".") + "."])
    if rows is not None:
        rows = list(rows)
        if rows:
            shown = ", ".join(str(r) for r in rows[:5])
            if len(rows) > 5:
                shown += f" (and {len(rows) - 5} more)"
            msg += f" Rows: {shown}."
    if hint:
        msg += f" Hint: {hint}"
    return msg
