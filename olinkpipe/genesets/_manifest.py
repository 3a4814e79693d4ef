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

__all__ = ["static_manifest", "bundled_entries", "bundle_dirs", "sha256_bytes", "ENV_PATH"]

#: Environment variable naming extra folders (``os.pathsep``-separated) of bundled collections.
ENV_PATH = "OLINKPIPE_GENESETS_PATH"


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
