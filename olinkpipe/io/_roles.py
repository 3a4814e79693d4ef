"""Column roles of a long Olink table and the names Olink exports use for them
(:func:`resolve_roles`), shared by the in-memory and streaming readers."""

from __future__ import annotations

import re
from collections.abc import Sequence

# Column roles and the names Olink exports use for them, in order of preference.
SAMPLE_ALIASES = ("SampleID", "Sample_ID", "Sample ID")
OLINKID_ALIASES = ("OlinkID", "Olink_ID", "Olink ID")
VALUE_ALIASES = {
    "NPX": "NPX",
    "Quantified_value": "Quantified",
    "Quantified value": "Quantified",
    "PCNormalizedNPX": "NPX",
    "Ct": "Ct",
}
LOD_ALIASES = ("LOD", "PlateLOD", "Plate_LOD", "MaxLOD", "LODNPX", "Max LOD", "Plate LOD")
PLATE_ALIASES = ("PlateID", "Plate_ID", "Plate ID")
QC_ALIASES = ("QC_Warning", "SampleQC", "QC Warning", "Sample_QC")
PANEL_ALIASES = ("Panel",)

# Columns that belong to the assay whenever they are constant per OlinkID.
ASSAY_LEVEL = {
    "Assay",
    "UniProt",
    "Panel",
    "Panel_Version",
    "Panel_Lot_Nr",
    "MissingFreq",
    "Normalization",
    "Assay_Warning",
    "AssayQC",
    "AssayType",
    "Block",
    "Unit",
}
# Per-measurement columns: always layers, even when a tiny file makes them look constant.
MEASUREMENT_LEVEL = {
    "NPX",
    "Quantified_value",
    "PCNormalizedNPX",
    "ExtNPX",
    "Count",
    "Ct",
    "LOD",
    "PlateLOD",
    "Plate_LOD",
    "MaxLOD",
    "LODNPX",
}
SAMPLE_TYPES = {"SAMPLE", "SAMPLE_CONTROL", "PLATE_CONTROL", "NEGATIVE_CONTROL", "CONTROL"}


def _find(columns: Sequence[str], aliases: Sequence[str]) -> str | None:
    """First alias present in ``columns``; case/space/underscore-insensitive fallback."""
    for a in aliases:
        if a in columns:
            return a
    norm = {re.sub(r"[\s_]", "", c).lower(): c for c in columns}
    for a in aliases:
        hit = norm.get(re.sub(r"[\s_]", "", a).lower())
        if hit is not None:
            return hit
    return None


def resolve_roles(columns: Sequence[str]) -> dict[str, str | None]:
    """Map the roles ``sample, olinkid, value, lod, plate, qc, panel`` to column names."""
    value = None
    for a in VALUE_ALIASES:
        if a in columns:
            value = a
            break
    if value is None:
        value = _find(columns, tuple(VALUE_ALIASES))
    return {
        "sample": _find(columns, SAMPLE_ALIASES),
        "olinkid": _find(columns, OLINKID_ALIASES),
        "value": value,
        "lod": _find(columns, LOD_ALIASES),
        "plate": _find(columns, PLATE_ALIASES),
        "qc": _find(columns, QC_ALIASES),
        "panel": _find(columns, PANEL_ALIASES),
        "assay": _find(columns, ("Assay",)),
        "uniprot": _find(columns, ("UniProt", "Uniprot", "Uniprot ID", "UniProt_ID")),
    }
