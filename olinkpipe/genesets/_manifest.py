"""Where each offline gene-set collection and ortholog table comes from, and its licence.

``data/manifest.json`` describes what ships inside olinkpipe or its dependencies (source
URL, version, licence, whether commercial use is allowed, SHA-256 of the file). Collections
added with :func:`olinkpipe.genesets.bundle_collection` (Reactome, MSigDB Hallmark: see
docs/genesets.md) each get a sidecar ``<name>.json`` next to their ``<name>.gmt.gz`` in
``data/bundled/`` or in a folder named by ``$OLINKPIPE_GENESETS_PATH``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

__all__ = [
    "static_manifest",
    "bundled_entries",
    "bundle_dirs",
    "sha256_bytes",
    "ENV_PATH",
    "SOURCES",
]

#: Environment variable naming extra folders (``os.pathsep``-separated) of bundled collections.
ENV_PATH = "OLINKPIPE_GENESETS_PATH"

#: Upstream collections the build step knows: where to download, licence, attribution.
SOURCES: dict[str, dict[str, Any]] = {
    "reactome": {
        "prefix": "Reactome",
        "title": "Reactome pathways (human)",
        "organism": "human",
        "source_url": "https://reactome.org/download/current/ReactomePathways.gmt.zip",
        "version_hint": "the Reactome release number, e.g. 94",
        "licence": "CC0-1.0",
        "licence_url": "https://reactome.org/license",
        "commercial_use": True,
        "attribution": (
            "Reactome (https://reactome.org), annotation files released under CC0; "
            "cite Milacic M. et al. (2024) The Reactome Pathway Knowledgebase 2024. "
            "Nucleic Acids Res 52:D672-D678."
        ),
        "term_check": (r"^R-HSA-\d+", 1, "a human Reactome GMT (identifiers R-HSA-...)"),
    },
    "hallmark": {
        "prefix": "MSigDB_Hallmark",
        "title": "MSigDB Hallmark gene sets (human symbols)",
        "organism": "human",
        "source_url": (
            "https://data.broadinstitute.org/gsea-msigdb/msigdb/release/{version}/"
            "h.all.v{version}.symbols.gmt"
        ),
        "version_hint": "the MSigDB release, e.g. 2024.1.Hs",
        "licence": "CC-BY-4.0",
        "licence_url": "https://www.gsea-msigdb.org/gsea/msigdb_license_terms.jsp",
        "commercial_use": True,
        "attribution": (
            "MSigDB Hallmark gene sets, (c) Broad Institute, Inc., Massachusetts Institute "
            "of Technology, and Regents of the University of California, CC BY 4.0; cite "
            "Liberzon A. et al. (2015) The Molecular Signatures Database Hallmark Gene Set "
            "Collection. Cell Systems 1:417-425."
        ),
        "term_check": (r"^HALLMARK_", 0, "an MSigDB Hallmark GMT (sets named HALLMARK_...)"),
    },
}


@functools.lru_cache(maxsize=1)
def static_manifest() -> dict[str, Any]:
    """The package's ``data/manifest.json`` (collections and ortholog tables)."""
    text = resources.files("olinkpipe.genesets").joinpath("data", "manifest.json").read_text()
    return json.loads(text)


def package_bundle_dir() -> Path:
    """``data/bundled`` inside the installed (or checked-out) package."""
    return Path(str(resources.files("olinkpipe.genesets").joinpath("data", "bundled")))


def bundle_dirs() -> list[Path]:
    """Folders searched for bundled collections: the package's, then ``$OLINKPIPE_GENESETS_PATH``."""
    dirs = [package_bundle_dir()]
    extra = os.environ.get(ENV_PATH, "")
    dirs += [Path(p) for p in extra.split(os.pathsep) if p.strip()]
    return dirs


def bundled_entries() -> dict[str, dict[str, Any]]:
    """Sidecar entries of every bundled collection whose GMT file is present (first wins)."""
    out: dict[str, dict[str, Any]] = {}
    for folder in bundle_dirs():
        if not folder.is_dir():
            continue
        for side in sorted(folder.glob("*.json")):
            try:
                entry = json.loads(side.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            name = entry.get("name")
            gmt = folder / str(entry.get("file", ""))
            if not name or name in out or not gmt.is_file():
                continue
            out[name] = {**entry, "path": str(gmt)}
    return out


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()
