"""The layout of NPX Manager wide exports: row and footer labels, the panel name rule and
how a cell reads as text (shared by :mod:`~olinkpipe.io.wide` and
:mod:`~olinkpipe.io._wide_grid`)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

WIDE_TYPES = {"npx data": "NPX", "quantified data": "Quantified", "ct data": "Ct"}
VALUE_COLUMN = {"NPX": "NPX", "Quantified": "Quantified_value", "Ct": "Ct"}
FOOTER = {
    "lod": "LOD",
    "plate lod": "PlateLOD",
    "max lod": "MaxLOD",
    "assay warning": "Assay_Warning",
    "lowest quantifiable level": "Plate_LQL",
    "lloq": "LLOQ",
    "uloq": "ULOQ",
    "missing data freq.": "MissingFreq",
    "missing data freq": "MissingFreq",
    "normalization": "Normalization",
    "plate lloq": "Plate_LLOQ",
}
EXTRA_HEADER = {"unit", "units"}
HEADER_LABELS = {
    "assay": "Assay",
    "uniprot id": "UniProt",
    "uniprot": "UniProt",
    "olinkid": "OlinkID",
}
PANEL_VERSION = re.compile(r"^(.*?)\s*\((v\.[^)]*)\)\s*$")
# names as OlinkAnalyze::read_NPX gives them
QCDEV_NAMES = {
    "inc ctrl 1": "QC Deviation Inc Ctrl",
    "inc ctrl 2": "QC Deviation Inc Ctrl",
    "inc ctrl": "QC Deviation Inc Ctrl",
    "det ctrl": "QC Deviation Det Ctrl",
}


def olink_panel_name(raw: str) -> str:
    """Panel name as OlinkAnalyze's ``read_NPX`` writes it for wide exports.

    The ``(v.xxxx)`` suffix is dropped, "Olink", "Target 96" and "Target 48" are removed,
    the rest is title-cased with Roman numerals upper-cased, and "Olink " put in front:
    ``"Olink CARDIOVASCULAR III(v.6112)"`` and ``"Olink Target 96 Cardiovascular III"``
    both become ``"Olink Cardiovascular III"``.
    """
    name = re.sub(r"\(.*\)", "", raw)
    name = re.sub(r"(?i)\btarget\s*(96|48)\b", "", name)
    name = re.sub(r"(?i)\bolink\b", "", name)
    words = []
    for w in name.split():
        t = w.title()
        words.append(t.upper() if re.fullmatch(r"(?i)[ivx]+", w) else t)
    return " ".join(["Olink", *words]) if words else raw.strip()


Grid = list[list[Any]]


def cell_str(v: Any) -> str:
    """A cell as text: empty for None/NaN, whole floats without ``.0``."""
    if v is None:
        return ""
    if isinstance(v, float) and np.isnan(v):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def row_label(row: list[Any]) -> str:
    """Column A of a row, stripped and lower-cased: the row's label."""
    return cell_str(row[0]).strip().lower() if row else ""


def is_blank(row: list[Any]) -> bool:
    """No cell of the row holds text."""
    return not any(cell_str(v).strip() for v in row)
