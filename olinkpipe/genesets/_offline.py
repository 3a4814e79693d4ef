"""The offline collections: which exist, reading and parsing their files, and a refresh.

The floor of :mod:`~olinkpipe.genesets`: :mod:`.collections` (loading, listing,
indexing), :mod:`.mapping` (the symbols the offline collections know) and :mod:`.bundle`
(the build step, which refreshes the list after writing) import from here, so none of
them imports another for these. A module that caches something read from these files
registers its cache with :func:`on_refresh`; :func:`refresh` clears them all.
"""

from __future__ import annotations

import functools
import gzip
import re
from collections.abc import Callable, Iterable
from importlib import resources
from pathlib import Path

from ..errors import ValidationError, format_message
from . import _manifest

__all__ = [
    "OFFLINE",
    "offline_bytes",
    "on_refresh",
    "parse_gmt_text",
    "read_offline",
    "refresh",
    "source_of",
    "unique_genes",
]


def _offline_table() -> dict[str, tuple[str, str]]:
    """name -> (package, resource) for shipped files, ("", path) for bundled ones."""
    out: dict[str, tuple[str, str]] = {}
    for name, entry in _manifest.static_manifest()["collections"].items():
        out[name] = (entry["package"], entry["resource"])
    for name, entry in _manifest.bundled_entries().items():
        out.setdefault(name, ("", entry["path"]))
    return out


#: Offline collections: name -> (package, resource path inside it), or ("", file path).
OFFLINE: dict[str, tuple[str, str]] = _offline_table()

_ON_REFRESH: list[Callable[[], None]] = []


def on_refresh(clear: Callable[[], None]) -> Callable[[], None]:
    """Have :func:`refresh` call ``clear`` (e.g. a cache's ``cache_clear``); returns it."""
    _ON_REFRESH.append(clear)
    return clear


def refresh() -> None:
    """Re-read the bundled collections and drop cached sets and indexes.

    Needed after setting ``$OLINKPIPE_GENESETS_PATH`` in a running session;
    :func:`~olinkpipe.genesets.bundle_collection` calls it itself.

    Examples
    --------
    >>> import olinkpipe as op
    >>> op.genesets.refresh()
    >>> "KEGG_2021_Human" in op.genesets.available()
    True
    """
    OFFLINE.clear()
    OFFLINE.update(_offline_table())
    read_offline.cache_clear()
    for clear in _ON_REFRESH:
        clear()


def source_of(name: str) -> str:
    """Where offline collection ``name`` is read from (``package:resource`` or a path)."""
    package, rel = OFFLINE[name]
    return f"{package}:{rel}" if package else rel


def unique_genes(genes: Iterable[str] | str) -> list[str]:
    """Stripped, non-empty gene symbols in first-seen order (text split on ``;``, ``,``,
    white space)."""
    if isinstance(genes, str):
        genes = re.split(r"[;,\s]+", genes)
    seen: dict[str, None] = {}
    for g in genes:
        if g is None or (isinstance(g, float) and g != g):
            continue
        g = str(g).strip()
        if g:
            seen.setdefault(g, None)
    return list(seen)


def parse_gmt_text(text: str, *, file: str) -> dict[str, list[str]]:
    """Term → genes of a GMT / Enrichr text library (``file`` names it in messages)."""
    sets: dict[str, list[str]] = {}
    bad: list[int] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) < 3:
            bad.append(lineno)
            continue
        # Enrichr libraries may weight genes as "GENE,1.0"; keep the symbol.
        genes = list(dict.fromkeys(g for f in fields[2:] if (g := f.split(",", 1)[0].strip())))
        term = fields[0].strip()
        if not term or not genes:
            bad.append(lineno)
            continue
        if term in sets:
            sets[term] = unique_genes(sets[term] + genes)
        else:
            sets[term] = genes
    if bad and not sets:
        msg = format_message(
            "not a GMT / Enrichr library: lines need 'term<TAB>description<TAB>gene...'",
            file=file,
            rows=[f"line {i}" for i in bad],
            hint="Pass a tab-separated GMT file (MSigDB .gmt or an Enrichr text library).",
        )
        raise ValidationError(msg)
    if bad:
        from .._warnings import warn

        shown = ", ".join(str(i) for i in bad[:5])
        warn(f"{file}: skipped {len(bad)} malformed GMT line(s) (lines {shown})", stacklevel=4)
    return sets


def offline_bytes(name: str) -> bytes:
    """The raw bytes of offline collection ``name`` (gzip or not)."""
    package, rel = OFFLINE[name]
    if package:
        return resources.files(package).joinpath(rel).read_bytes()
    return Path(rel).read_bytes()


@functools.lru_cache(maxsize=8)
def read_offline(name: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """The sets of offline collection ``name`` as ``((term, genes), ...)`` (cached)."""
    data = offline_bytes(name)
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    sets = parse_gmt_text(data.decode("utf-8"), file=source_of(name))
    return tuple((t, tuple(g)) for t, g in sets.items())
