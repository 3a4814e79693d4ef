"""Readers and writers: every Olink export into AnnData and back."""

from .check import check
from .clinical import annotate, read_clinical
from .convert import from_long, to_long
from .many import read_exports
from .npx import read_npx
from .summary import summarize, summarize_panels
from .write import write

__all__ = [
    "read_npx",
    "read_exports",
    "to_long",
    "from_long",
    "read_clinical",
    "annotate",
    "summarize",
    "summarize_panels",
    "write",
    "check",
]
