"""Gene-set collections: offline libraries, GMT files, dicts and tables.

Offline collections are described in ``data/manifest.json`` (source URL, version,
licence, SHA-256): ``KEGG_2021_Human`` and ``GO_Biological_Process_2023`` are the Enrichr
text libraries shipped as package data of ``blitzgsea`` (Apache-2.0), read from the
installed package with :mod:`importlib.resources`. Reactome and MSigDB Hallmark are added
by the build step :func:`olinkpipe.genesets.bundle_collection` (``data/bundled/`` or
``$OLINKPIPE_GENESETS_PATH``). Nothing is downloaded unless the caller asks for it with
``download=True``.
"""

from __future__ import annotations

import functools
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import metadata, resources
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from .._names import close_matches
from ..errors import MissingColumnError, OlinkpipeError, ValidationError, format_message
from . import _manifest
from ._offline import (
    OFFLINE,
    on_refresh,
    parse_gmt_text,
    read_offline,
    refresh,
    source_of,
    unique_genes,
)

__all__ = ["GeneSetCollection", "load", "available", "read_gmt", "refresh"]

logger = logging.getLogger("olinkpipe")


def _entry(name: str) -> dict[str, Any]:
    """Manifest (or bundle sidecar) entry of an offline collection."""
    static = _manifest.static_manifest()["collections"]
    if name in static:
        return dict(static[name])
    return dict(_manifest.bundled_entries().get(name, {}))


def _version_of(name: str) -> str | None:
    package, _ = OFFLINE[name]
    return _package_version(package) if package else _entry(name).get("version")


_ENRICHR_URL = "https://maayanlab.cloud/Enrichr/geneSetLibrary?mode=text&libraryName="
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


class GeneSetCollection(dict):
    """A mapping term → list of gene symbols that remembers where it came from.

    It is a plain ``dict`` (``term -> list[str]``) with four extra attributes:
    ``name`` (collection name), ``source`` (where it was read from), ``version``
    (version of the package that shipped it, or the upstream release of a bundled
    collection, or ``None``) and ``licence`` (``None`` when unknown).

    Examples
    --------
    >>> gs = GeneSetCollection({"A": ["IL6", "TNF"]}, name="custom")
    >>> gs.name, len(gs)
    ('custom', 1)
    """

    def __init__(
        self,
        sets: Mapping[str, Iterable[str]] | None = None,
        *,
        name: str = "custom",
        source: str = "user",
        version: str | None = None,
        licence: str | None = None,
    ) -> None:
        super().__init__()
        for term, genes in (sets or {}).items():
            self[str(term)] = unique_genes(genes)
        self.name = name
        self.source = source
        self.version = version
        self.licence = licence

    @classmethod
    def _from_clean(
        cls,
        sets: dict[str, list[str]],
        *,
        name: str,
        source: str,
        version: str | None,
        licence: str | None = None,
    ) -> GeneSetCollection:
        """Build from already de-duplicated, stripped lists (no re-validation)."""
        out = cls(name=name, source=source, version=version, licence=licence)
        dict.update(out, sets)
        return out

    @property
    def genes(self) -> set[str]:
        """Every gene symbol in the collection."""
        return {g for genes in self.values() for g in genes}

    def describe(self) -> dict[str, object]:
        """JSON-safe provenance (name, source, version, licence, number of sets)."""
        return {
            "collection": self.name,
            "collection_source": self.source,
            "collection_version": self.version,
            "collection_licence": getattr(self, "licence", None),
            "n_sets_in_collection": len(self),
        }

    def __repr__(self) -> str:
        ver = f", version={self.version!r}" if self.version else ""
        return f"GeneSetCollection(name={self.name!r}, n_sets={len(self)}{ver})"


@functools.cache
def _package_version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:  # pragma: no cover - blitzgsea is a dependency
        return None


def default_cache_dir() -> Path:
    """Where ``load(..., download=True)`` stores libraries (``$OLINKPIPE_CACHE`` or ~/.cache)."""
    env = os.environ.get("OLINKPIPE_CACHE")
    base = Path(env) if env else Path.home() / ".cache" / "olinkpipe"
    return base / "genesets"


def provenance_text(name: str) -> str:
    """One phrase saying where collection ``name`` came from, for methods text.

    Examples
    --------
    >>> provenance_text("KEGG_2021_Human").startswith("the KEGG_2021_Human collection (2021")
    True
    """
    if name not in OFFLINE:
        return f"the gene sets {name}"
    e = _entry(name)
    package, _ = OFFLINE[name]
    how = (
        f"shipped with {package} {_package_version(package) or '?'}"
        if package
        else f"bundled from {e.get('source_url', 'a local file')}"
    )
    return f"the {name} collection ({e.get('version', '?')}, {e.get('licence', '?')}; {how})"


def _offline_present(name: str) -> bool:
    package, rel = OFFLINE[name]
    try:
        return (resources.files(package).joinpath(rel) if package else Path(rel)).is_file()
    except ModuleNotFoundError:  # pragma: no cover - blitzgsea is a dependency
        return False


_DETAIL_COLUMNS = [
    "name",
    "organism",
    "version",
    "licence",
    "commercial_use",
    "n_sets",
    "source_url",
    "shipped_as",
    "sha256",
    "attribution",
]


def _details(names: list[str]) -> pd.DataFrame:
    rows = []
    for n in names:
        if n not in OFFLINE:
            rows.append({"name": n, "shipped_as": "Enrichr download (cache)"})
            continue
        e = _entry(n)
        rows.append(
            {
                **{k: e.get(k) for k in _DETAIL_COLUMNS},
                "name": n,
                "shipped_as": e.get("shipped_by") or f"bundled file {e.get('path')}",
            }
        )
    return pd.DataFrame(rows, columns=_DETAIL_COLUMNS)


def available(
    *, details: bool = False, cache_dir: str | PathLike[str] | None = None
) -> list[str] | pd.DataFrame:
    """Gene-set collections that can be loaded without network access.

    Parameters
    ----------
    details
        Return a table with each collection's organism, version, licence, whether the
        licence allows commercial use, number of sets, source URL, how it is shipped,
        SHA-256 and attribution (from ``data/manifest.json`` or the bundle's sidecar),
        instead of the names.
    cache_dir
        Also list libraries previously downloaded to this folder (default: the
        ``download=True`` cache, ``$OLINKPIPE_CACHE/genesets`` or
        ``~/.cache/olinkpipe/genesets``).

    Returns
    -------
    list of str or pandas.DataFrame
        Offline collection names (shipped with ``blitzgsea``, then bundled ones), then
        cached downloads; with ``details=True`` one row per name.

    Examples
    --------
    >>> import olinkpipe as op
    >>> "KEGG_2021_Human" in op.genesets.available()
    True
    >>> t = op.genesets.available(details=True).set_index("name")
    >>> t.loc["GO_Biological_Process_2023", "licence"]
    'CC-BY-4.0'
    >>> bool(t.loc["KEGG_2021_Human", "commercial_use"])
    False
    """
    names = [n for n in OFFLINE if _offline_present(n)]
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    if folder.is_dir():
        names += sorted(p.stem for p in folder.glob("*.gmt") if p.stem not in names)
    return _details(names) if details else names


def not_offline_hint(name: str, folder: Path) -> str:
    """What to do about a name that is not offline: close names, bundling, download."""
    known = list(OFFLINE)
    close = close_matches(name, known, n=3)
    parts = [f"Did you mean {close!r}?"] if close else []
    low = str(name).lower()
    for key, meta in _manifest.SOURCES.items():
        if low.startswith(meta["prefix"].lower()) or key in low:
            parts.append(
                f"{meta['title']} ({meta['licence']}) is not bundled in this installation: "
                f"download it from {meta['source_url']} and run `python -m "
                f"olinkpipe.genesets.bundle {key} FILE --version V` (see docs/genesets.md)."
            )
    parts.append(
        "Or read your own file with genesets.read_gmt(path) (MSigDB GMT, Enrichr text "
        "library), pass a dict or a two-column DataFrame, or call "
        f"genesets.load({name!r}, download=True) to fetch it from Enrichr into {folder}."
    )
    return " ".join(parts)


def _fetch_enrichr(name: str) -> str:  # pragma: no cover - network; tests monkeypatch this
    """Download one Enrichr library as GMT text (only called with ``download=True``)."""
    import urllib.request

    with urllib.request.urlopen(_ENRICHR_URL + name, timeout=60) as fh:
        return fh.read().decode("utf-8")


def load(
    name: str,
    *,
    download: bool = False,
    cache_dir: str | PathLike[str] | None = None,
) -> GeneSetCollection:
    """Load a gene-set collection by name: offline first, download only on request.

    Parameters
    ----------
    name
        An offline collection (:func:`available`: ``"KEGG_2021_Human"`` and
        ``"GO_Biological_Process_2023"`` from the installed ``blitzgsea`` package,
        bundled ones such as ``"Reactome_94"`` or ``"MSigDB_Hallmark_2024.1.Hs"``), the
        name of a library cached by an earlier ``download=True`` call, or the path of a
        GMT file.
    download
        If the name is not available offline, download the Enrichr library of that name
        into ``cache_dir`` (the location is logged) and load it. Never done implicitly.
    cache_dir
        Folder for downloaded libraries (default ``$OLINKPIPE_CACHE/genesets`` or
        ``~/.cache/olinkpipe/genesets``).

    Returns
    -------
    GeneSetCollection
        ``dict`` term → list of gene symbols, with ``name``, ``source``, ``version``
        (version of the package the offline file came from, or the bundled release) and
        ``licence``.

    Raises
    ------
    ValidationError
        Unknown name without ``download=True``; the message lists what is offline,
        close names, and how to bundle Reactome / MSigDB Hallmark.

    Examples
    --------
    >>> import olinkpipe as op
    >>> kegg = op.genesets.load("KEGG_2021_Human")
    >>> len(kegg), len(kegg["JAK-STAT signaling pathway"])
    (320, 162)
    """
    if name in OFFLINE:
        sets = {t: list(g) for t, g in read_offline(name)}
        return GeneSetCollection._from_clean(
            sets,
            name=name,
            source=source_of(name),
            version=_version_of(name),
            licence=_entry(name).get("licence"),
        )
    path = Path(str(name))
    if path.suffix.lower() in {".gmt", ".txt"} and path.is_file():
        return read_gmt(path)
    folder = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    cached = folder / f"{name}.gmt"
    if _SAFE_NAME.match(str(name)) and cached.is_file():
        out = read_gmt(cached)
        out.name = str(name)
        out.source = f"Enrichr download cached at {cached}"
        return out
    if not download:
        msg = format_message(
            f"gene-set collection {name!r} is not available offline; offline collections: "
            f"{available(cache_dir=folder)!r}",
            hint=not_offline_hint(str(name), folder),
        )
        raise ValidationError(msg)
    if not _SAFE_NAME.match(str(name)):
        msg = format_message(
            f"{name!r} is not a valid Enrichr library name",
            hint="Enrichr names use letters, digits and '_', e.g. 'Reactome_2022'.",
        )
        raise ValidationError(msg)
    logger.warning("olinkpipe: downloading Enrichr library %r to %s", name, cached)
    try:
        text = _fetch_enrichr(str(name))
    except OSError as exc:
        msg = format_message(
            f"could not download Enrichr library {name!r}: {exc}",
            hint="Check the name and your connection, or use genesets.read_gmt on a local file.",
        )
        raise OlinkpipeError(msg) from exc
    sets = parse_gmt_text(text, file=f"Enrichr:{name}")
    folder.mkdir(parents=True, exist_ok=True)
    cached.write_text(text, encoding="utf-8")
    logger.warning("olinkpipe: saved %d gene sets of %r in %s", len(sets), name, cached)
    return GeneSetCollection(sets, name=str(name), source=f"Enrichr download cached at {cached}")


def read_gmt(path: str | PathLike[str]) -> GeneSetCollection:
    """Read a GMT file (MSigDB) or an Enrichr text library.

    Each line is ``term<TAB>description<TAB>gene<TAB>gene...``; Enrichr libraries leave
    the description empty and may weight genes as ``GENE,1.0`` (the weight is dropped).
    Duplicate genes within a set are kept once.

    Parameters
    ----------
    path
        The file (MSigDB KEGG_MEDICUS / KEGG_LEGACY / Reactome / Hallmark ``.gmt``,
        Enrichr ``*.txt``).

    Returns
    -------
    GeneSetCollection
        ``dict`` term → genes; ``name`` is the file name without extension.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "mine.gmt"
    >>> _ = p.write_text("SET_A\\tdesc\\tIL6\\tTNF\\n")
    >>> read_gmt(p)["SET_A"]
    ['IL6', 'TNF']
    """
    p = Path(path)
    if not p.is_file():
        msg = format_message("gene-set file not found", file=str(p), hint="Check the path.")
        raise ValidationError(msg)
    sets = parse_gmt_text(p.read_text(encoding="utf-8", errors="replace"), file=str(p))
    name = p.name
    for suffix in (".gmt", ".txt"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
    return GeneSetCollection(sets, name=name, source=str(p))


def as_collection(gene_sets: object) -> GeneSetCollection:
    """Coerce a name, path, dict or two-column DataFrame into a :class:`GeneSetCollection`."""
    if isinstance(gene_sets, GeneSetCollection):
        return gene_sets
    if isinstance(gene_sets, (str, PathLike)):
        return load(str(gene_sets))
    if isinstance(gene_sets, pd.DataFrame):
        frame = gene_sets
        cols = list(frame.columns)
        lower = {str(c).lower(): c for c in cols}
        term_col = next(
            (lower[c] for c in ("term", "set", "pathway", "source") if c in lower), None
        )
        gene_col = next(
            (lower[c] for c in ("gene", "genes", "symbol", "target") if c in lower), None
        )
        if term_col is None or gene_col is None:
            if len(cols) != 2:
                msg = format_message(
                    f"a gene-set table needs two columns (term, gene); it has {cols!r}",
                    hint="Name them 'term' and 'gene' or pass exactly two columns.",
                )
                raise MissingColumnError(msg)
            term_col, gene_col = cols
        sets: dict[str, list[str]] = {}
        for term, genes in frame[[term_col, gene_col]].dropna().groupby(term_col, sort=False):
            sets[str(term)] = unique_genes(genes[gene_col].astype(str))
        return GeneSetCollection(sets, name="custom", source="DataFrame")
    if isinstance(gene_sets, Mapping):
        return GeneSetCollection(gene_sets, name="custom", source="dict")
    msg = format_message(
        f"gene_sets must be a collection name, a GMT path, a dict or a DataFrame, "
        f"not {type(gene_sets).__name__}",
        hint=f"Offline collections: {available()!r}.",
    )
    raise ValidationError(msg)


# ---------------------------------------------------------------------------------------
# Membership index: sets x genes as a sparse 0/1 matrix (cached for offline collections)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SetIndex:
    """A collection as a sparse sets × genes 0/1 matrix (CSC, for fast column slicing).

    ``genes`` is a :class:`pandas.Index` of every member gene (its hash table maps
    symbols to columns in one vectorised call); ``terms`` the set names in row order.
    """

    terms: np.ndarray
    genes: pd.Index
    matrix: sparse.csc_matrix

    @classmethod
    def from_sets(cls, sets: Mapping[str, Iterable[str]]) -> SetIndex:
        """Build from ``term -> genes`` (duplicates within a set count once)."""
        terms = list(sets)
        members = [list(dict.fromkeys(sets[t])) for t in terms]
        lengths = np.fromiter((len(m) for m in members), dtype=np.int64, count=len(members))
        flat = pd.Index([g for m in members for g in m], dtype=object)
        codes, uniques = pd.factorize(flat, sort=True)
        rows = np.repeat(np.arange(len(terms), dtype=np.int64), lengths)
        mat = sparse.csc_matrix(
            (np.ones(len(codes), dtype=np.int8), (rows, codes.astype(np.int64))),
            shape=(len(terms), len(uniques)),
        )
        mat.sum_duplicates()
        return cls(np.asarray(terms, dtype=object), pd.Index(uniques, dtype=object), mat)

    def restrict(
        self, universe: Iterable[str], *, min_size: int, max_size: int
    ) -> tuple[np.ndarray, sparse.csr_matrix]:
        """Sets restricted to ``universe`` (columns in that order), size-filtered.

        Returns the kept terms and their sets × universe CSR 0/1 matrix; genes of the
        universe outside the collection get an empty column.
        """
        universe = pd.Index(list(universe), dtype=object)
        cols = self.genes.get_indexer(universe)
        inside = cols >= 0
        sub = self.matrix[:, cols[inside]].tocsr()
        sub.sort_indices()
        if not inside.all():  # renumber columns: empty ones for genes outside the collection
            perm = np.flatnonzero(inside)
            sub = sparse.csr_matrix(
                (sub.data, perm[sub.indices], sub.indptr), shape=(sub.shape[0], len(universe))
            )
        sizes = np.diff(sub.indptr)
        keep = (sizes >= min_size) & (sizes <= max_size)
        return self.terms[keep], sub[keep]


@dataclass(frozen=True)
class _OfflineIndex:
    index: SetIndex
    reference: dict[str, list[str]]  # the parsed sets, to recognise an unmodified load()


@functools.lru_cache(maxsize=8)
def _offline_index(name: str) -> _OfflineIndex:
    sets = {t: list(g) for t, g in read_offline(name)}
    return _OfflineIndex(SetIndex.from_sets(sets), sets)


on_refresh(_offline_index.cache_clear)  # refresh() drops it with the sets it was built from


def collection_index(gene_sets: object) -> tuple[SetIndex, dict[str, object]]:
    """The membership index of ``gene_sets`` and its JSON-safe provenance.

    An offline collection given by name, or an unmodified :func:`load` of it, reuses an
    index built once per session; anything else is indexed on the fly.
    """
    name = None
    edited = False
    if isinstance(gene_sets, str) and gene_sets in OFFLINE:
        name = gene_sets
    elif isinstance(gene_sets, GeneSetCollection) and gene_sets.name in OFFLINE:
        ref = _offline_index(gene_sets.name).reference
        if len(gene_sets) == len(ref) and all(
            gene_sets.get(t) == genes for t, genes in ref.items()
        ):
            name = gene_sets.name
        else:
            edited = True
    if name is not None:
        cached = _offline_index(name)
        info = {
            "collection": name,
            "collection_source": source_of(name),
            "collection_version": _version_of(name),
            "collection_licence": _entry(name).get("licence"),
            "n_sets_in_collection": len(cached.reference),
        }
        return cached.index, info
    coll = as_collection(gene_sets)
    info = coll.describe()
    if edited:
        info["collection_source"] = f"{info['collection_source']} (edited after loading)"
    return SetIndex.from_sets(coll), info
