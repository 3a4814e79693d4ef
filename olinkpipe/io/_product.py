"""Olink product, assay and sample classes guessed from names, columns and metadata."""

from __future__ import annotations

import re
from collections.abc import Sequence

import pandas as pd


def assay_type_from_name(name: object) -> str:
    """Olink control-assay class from an assay name (``"assay"`` for real assays).

    Control assays are named like ``Inc Ctrl 1``, ``Incubation control``, ``Ext Ctrl``,
    ``Amp Ctrl``, ``Det Ctrl``: a control word after a qualifier. A lone gene symbol such
    as ``CTRL`` (chymotrypsin-like protease) is an assay.
    """
    tokens = [t for t in re.split(r"[\s_\-]+", str(name).strip().lower()) if t]
    is_ctrl = len(tokens) >= 2 and any(t.startswith(("ctrl", "control")) for t in tokens[1:])
    if not is_ctrl:
        return "assay"
    first = tokens[0]
    for prefix, kind in (
        ("inc", "inc_ctrl"),
        ("ext", "ext_ctrl"),
        ("amp", "amp_ctrl"),
        ("det", "det_ctrl"),
    ):
        if first.startswith(prefix):
            return kind
    return "control"


def sample_type_from_name(name: object) -> str:
    """``"CONTROL"`` for control-looking sample names, else ``"SAMPLE"``."""
    s = str(name).upper()
    if "CONTROL" in s or "CTRL" in s or s.startswith(("IPC", "NEG_", "NEGATIVE", "NC_", "PC_")):
        return "CONTROL"
    return "SAMPLE"


def guess_product(
    columns: Sequence[str], var: pd.DataFrame | None, metadata: dict[str, str] | None
) -> str:
    """Best guess at the Olink product from metadata, columns and panel names.

    As OlinkAnalyze: the parquet metadata ``Product`` (``ExploreHT``, ``Explore3072``,
    ``Reveal``) when present, else the panels (every assay on panel ``Reveal`` → Reveal,
    ``Explore_HT`` → Explore HT), else the columns.
    """
    meta = {str(k).lower(): str(v) for k, v in (metadata or {}).items()}
    prod = meta.get("product", "")
    if prod:
        p = prod.replace(" ", "").replace("_", "").lower().removeprefix("olink")
        if p == "explorehtht" or p == "exploreht":
            return "Explore HT"
        if p == "reveal":
            return "Reveal"
        if p.startswith("explore"):
            return "Explore 3072"
        return prod
    cols = set(columns)
    panels = [] if var is None or "Panel" not in var else list(pd.unique(var["Panel"]))
    by_panel = {str(x).replace(" ", "_").lower() for x in panels}
    if by_panel == {"reveal"}:
        return "Reveal"
    if by_panel == {"explore_ht"}:
        return "Explore HT"
    text = " ".join(str(p) for p in panels).lower()
    if "target 48" in text or "48" in text.split():
        return "Target 48"
    if "Quantified_value" in cols or "Unit" in cols:
        return "Flex" if "Plate_LQL" in cols or "LLOQ" in cols else "Target 96"
    if cols & {"ExtNPX", "PCNormalizedNPX", "Count", "Block"}:
        return (
            "Explore HT" if "AssayType" in cols or "DataAnalysisRefID" in cols else "Explore 3072"
        )
    if text.startswith("olink") or "target 96" in text:
        return "Target 96"
    if "ExploreVersion" in cols or "Panel_Lot_Nr" in cols or "explore" in text:
        return "Explore 3072"
    return "unknown"
