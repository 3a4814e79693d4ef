"""Olink assay → HGNC gene symbol mapping.

Olink Explore names assays by gene symbol, but Target 96 / Target 48 names often are
not symbols (``IL-2RB``, ``MCP-1``, ``PD-L1``, ``LAP TGF-beta-1``, ``IL8``). The built-in
table ``data/olink_target_aliases.csv`` lists every Target 96 / 48 assay whose name is not
its current HGNC symbol, keyed by UniProt accession (columns ``UniProt, gene,
olink_names, panels``; ``olink_names`` separated by ``|``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from importlib import resources

import anndata as ad
import numpy as np
import pandas as pd

from .._warnings import warn
from ..errors import MissingColumnError, ValidationError, format_message, preview
from ._offline import OFFLINE, on_refresh, read_offline

__all__ = ["map_assays", "alias_table"]

_TABLE = "olink_target_aliases.csv"
_UNIPROT_SPLIT = re.compile(r"[,;_/\s]+")
_NAME_SPLIT = re.compile(r"\s*[_/]\s*")
# An HGNC-like symbol: capitals and digits (C1orf-style 'orf' allowed), no spaces.
_SYMBOL_LIKE = re.compile(r"^[A-Z][A-Z0-9]*(orf[0-9]+)?[A-Z0-9]*$")

METHODS = ("user", "uniprot", "alias", "symbol", "normalised", "assumed_symbol", "ortholog")


def _norm(name: object) -> str:
    """Case-, hyphen-, space- and dot-insensitive key of an assay name."""
    return re.sub(r"[\s\-.'’]+", "", str(name)).upper()


@functools.lru_cache(maxsize=1)
def _table() -> pd.DataFrame:
    text = resources.files("olinkpipe.genesets").joinpath("data", _TABLE).read_text("utf-8")
    from io import StringIO

    return pd.read_csv(StringIO(text), dtype=str, keep_default_na=False)


def alias_table() -> pd.DataFrame:
    """The built-in Olink Target 96 / Target 48 alias table (a copy).

    Returns
    -------
    pandas.DataFrame
        ``UniProt, gene, olink_names, panels``: one row per UniProt accession whose
        Olink Target name is not its HGNC symbol (``olink_names`` joined by ``|``).

    Examples
    --------
    >>> t = alias_table()
    >>> t.set_index("UniProt").loc["P14784", "gene"]
    'IL2RB'
    """
    return _table().copy()


@functools.lru_cache(maxsize=1)
def _lookups() -> tuple[dict[str, str], dict[str, list[str]]]:
    t = _table()
    by_uniprot = dict(zip(t["UniProt"], t["gene"], strict=True))
    by_name: dict[str, list[str]] = {}
    for names, gene in zip(t["olink_names"], t["gene"], strict=True):
        for n in names.split("|"):
            genes = by_name.setdefault(_norm(n), [])
            if gene not in genes:
                genes.append(gene)
    return by_uniprot, by_name


@functools.lru_cache(maxsize=1)
def _known_symbols() -> frozenset[str]:
    """Symbols of the offline collections plus the alias table's genes."""
    genes: set[str] = set(_table()["gene"])
    for name in OFFLINE:
        try:
            for _, members in read_offline(name):
                genes.update(members)
        except (FileNotFoundError, ModuleNotFoundError):  # pragma: no cover
            continue
    return frozenset(genes)


on_refresh(_known_symbols.cache_clear)  # genesets.refresh() re-reads the collections


def _uniprot_text(value: object) -> str:
    """The UniProt cell as text; ``""`` for None/NaN/empty (a float is never an accession)."""
    if value is None or isinstance(value, float):
        return ""
    text = str(value).strip()
    return "" if text.upper() in ("NA", "NAN", "NONE") else text


def _split_uniprot(text: str) -> list[str]:
    if not text:
        return []
    parts = [p for p in _UNIPROT_SPLIT.split(text) if p and p.upper() != "NA"]
    return [p.split("-")[0] for p in parts]  # drop isoform suffixes (P49763-3)


def _by_symbol(name: str, known: frozenset[str]) -> tuple[str | None, str]:
    if name in known:
        return name, "symbol"
    key = _norm(name)
    if key in known:
        return key, "normalised"
    if _SYMBOL_LIKE.match(name):
        return name, "assumed_symbol"
    return None, "unmapped"


@functools.lru_cache(maxsize=65536)
def _map_one(assay: str, uniprot: str) -> tuple[tuple[str, ...], str]:
    """Genes and method of one (assay name, UniProt text); cached across calls."""
    by_uniprot, by_name = _lookups()
    known = _known_symbols()
    ups = _split_uniprot(uniprot)
    if ups and all(u in by_uniprot for u in ups):
        return tuple(dict.fromkeys(by_uniprot[u] for u in ups)), "uniprot"
    if _norm(assay) in by_name:
        return tuple(by_name[_norm(assay)]), "alias"
    gene, how = _by_symbol(assay, known)
    if gene is not None and how != "assumed_symbol":
        return (gene,), how
    # Combined assays (IL12A_IL12B, CGA_LHB, MIC-A/B style)
    parts = [p for p in _NAME_SPLIT.split(assay) if p]
    if len(parts) > 1:
        genes: list[str] = []
        for p in parts:
            if _norm(p) in by_name:
                genes += by_name[_norm(p)]
                continue
            g, h = _by_symbol(p, known)
            if g is None:
                break
            genes.append(g)
        else:
            return tuple(dict.fromkeys(genes)), "symbol"
    if gene is not None:
        return (gene,), how
    return (), "unmapped"


def _user_lookup(mapping: Mapping | pd.DataFrame | None) -> dict[str, list[str]]:
    if mapping is None:
        return {}
    if isinstance(mapping, pd.DataFrame):
        cols = list(mapping.columns)
        gene_col = next((c for c in cols if str(c).lower() in {"gene", "symbol"}), None)
        key_col = next(
            (c for c in cols if str(c).lower() in {"assay", "olinkid", "uniprot", "key"}), None
        )
        if gene_col is None or key_col is None:
            if len(cols) != 2:
                msg = format_message(
                    f"a mapping table needs a key column (Assay, OlinkID or UniProt) and a "
                    f"'gene' column; it has {cols!r}",
                    hint="Pass a dict {assay: gene} or a two-column DataFrame.",
                )
                raise MissingColumnError(msg)
            key_col, gene_col = cols
        mapping = dict(zip(mapping[key_col].astype(str), mapping[gene_col], strict=True))
    out: dict[str, list[str]] = {}
    for key, genes in mapping.items():
        if isinstance(genes, str):
            genes = [g for g in re.split(r"[;,\s]+", genes) if g]
        elif genes is None or (isinstance(genes, float) and np.isnan(genes)):
            genes = []
        out[str(key)] = [str(g) for g in genes]
    return out


def _assay_frame(adata_or_var: ad.AnnData | pd.DataFrame) -> pd.DataFrame:
    var = adata_or_var.var if isinstance(adata_or_var, ad.AnnData) else adata_or_var
    if not isinstance(var, pd.DataFrame):
        msg = format_message(
            f"map_assays takes an AnnData or a DataFrame, not {type(var).__name__}",
            hint="Pass adata, adata.var or a result table with an 'Assay' column.",
        )
        raise ValidationError(msg)
    if "Assay" not in var.columns:
        msg = format_message(
            f"the assay table lacks column 'Assay'; it has {list(var.columns)[:20]!r}",
            column="Assay",
            hint="Pass adata.var (index OlinkID) or a table with an 'Assay' column.",
        )
        raise MissingColumnError(msg)
    out = pd.DataFrame(
        {
            "OlinkID": (
                var["OlinkID"].astype(str).to_numpy()
                if "OlinkID" in var.columns
                else var.index.astype(str).to_numpy()
            ),
            "Assay": var["Assay"].astype(str).to_numpy(),
            "UniProt": var["UniProt"].to_numpy() if "UniProt" in var.columns else np.nan,
        }
    )
    control = np.zeros(len(var), dtype=bool)
    if "is_control" in var.columns:
        control |= var["is_control"].fillna(value=False).astype(bool).to_numpy()
    if "AssayType" in var.columns:
        at = var["AssayType"].astype(str).str.lower().to_numpy()
        control |= (at != "assay") & (at != "nan") & (at != "")
    out["_control"] = control
    return out


def _name_parts(assay: str) -> list[str]:
    """The assay name, then its parts if combined (``Il12a_Il12b``)."""
    parts = [p for p in _NAME_SPLIT.split(assay) if p]
    return [assay, *parts] if len(parts) > 1 else [assay]


def ortholog_report(assays: Sequence[str], organism: str) -> dict[str, object]:
    """``attrs`` summary of mapping these assay names from ``organism`` to human."""
    from .orthologs import to_human

    if organism == "human":
        return {"organism": "human"}
    names = [p for a in assays for p in _name_parts(str(a))]
    orth = to_human(names, organism=organism)
    report = orth.describe()
    # a combined assay whose parts all map is not unmapped, whatever its whole name does
    report["orthologs_unmapped"] = [
        a for a in dict.fromkeys(str(x) for x in assays) if not _mouse_genes(a, orth.mapping)
    ]
    return report


def _mouse_genes(assay: str, table: Mapping[str, str]) -> tuple[str, ...]:
    if assay in table:
        return (table[assay],)
    parts = _name_parts(assay)[1:]
    if parts and all(p in table for p in parts):
        return tuple(dict.fromkeys(table[p] for p in parts))
    return ()


def map_rows(
    ids: Sequence[str],
    assays: Sequence[str],
    uniprots: Sequence[object],
    *,
    controls: Sequence[bool] | None = None,
    mapping: Mapping[str, str | list[str]] | pd.DataFrame | None = None,
    organism: str = "human",
) -> tuple[list[tuple[str, ...]], list[str]]:
    """Genes and method for each assay (row), in input order; the engine of map_assays.

    ``method`` is one of :data:`METHODS`, ``"control"`` or ``"unmapped"`` (no genes).
    With ``organism="mouse"`` the assay names are mouse symbols, mapped to human
    orthologs (:func:`olinkpipe.genesets.to_human`; method ``"ortholog"``) instead of
    through the human UniProt / alias table.
    """
    from .orthologs import _check_organism, to_human

    _check_organism(organism)
    orth: dict[str, str] = {}
    if organism != "human":
        names = [p for a in assays for p in _name_parts(str(a))]
        orth = to_human(names, organism=organism).mapping
    user = _user_lookup(mapping)
    genes_out: list[tuple[str, ...]] = []
    methods: list[str] = []
    ctrl = controls if controls is not None else [False] * len(ids)
    for oid, assay, up, is_ctrl in zip(ids, assays, uniprots, ctrl, strict=True):
        up_text = _uniprot_text(up)
        if user:
            hit = next((user[k] for k in (str(oid), str(assay), up_text) if k in user), None)
            if hit is not None:
                genes_out.append(tuple(hit))
                methods.append("user" if hit else "unmapped")
                continue
        if is_ctrl:
            genes_out.append(())
            methods.append("control")
            continue
        if organism != "human":
            genes = _mouse_genes(str(assay), orth)
            genes_out.append(genes)
            methods.append("ortholog" if genes else "unmapped")
            continue
        genes, how = _map_one(str(assay), up_text)
        genes_out.append(genes)
        methods.append(how)
    return genes_out, methods


def map_assays(
    adata_or_var: ad.AnnData | pd.DataFrame,
    *,
    mapping: Mapping[str, str | list[str]] | pd.DataFrame | None = None,
    organism: str = "human",
) -> pd.DataFrame:
    """Map Olink assays to HGNC gene symbols, one row per (assay, gene).

    Order of evidence, first match wins:

    1. ``mapping`` supplied by the user, keyed by OlinkID, Assay or UniProt;
    2. UniProt accession in the built-in Target 96 / 48 table (every part of a
       combined accession such as ``P29459_P29460`` must be known);
    3. the assay name in that table's Olink names (``MCP-1`` → CCL2);
    4. the name itself when it is a known symbol, or after safe normalisation
       (case, hyphens, spaces, dots: ``MMP-1`` → MMP1) when that is a known symbol
       (known = genes of the offline collections and of the table);
    5. combined assays (``IL12A_IL12B``, ``CGA_LHB``, ``FUT3/FUT5``) split into each gene;
    6. an unknown name that is written like an HGNC symbol (capitals and digits only)
       is taken as the symbol (``method="assumed_symbol"``).

    With ``organism="mouse"`` (Olink Target 96 Mouse Exploratory), steps 2-6 are replaced
    by the mouse → human ortholog table (:func:`olinkpipe.genesets.to_human`, method
    ``"ortholog"``; combined assays split into their genes).

    Control assays (``is_control`` / ``AssayType``) and anything else left are kept
    with ``gene`` NaN; unmapped real assays are warned about and listed in ``attrs``.

    Parameters
    ----------
    adata_or_var
        An AnnData (its ``var``), ``adata.var`` or any table with ``Assay`` and
        optionally ``UniProt`` and ``OlinkID`` (else the index is the ID).
    mapping
        User overrides: dict ``{OlinkID|Assay|UniProt: gene or [genes]}`` or a
        two-column DataFrame (key, gene); a gene string may hold ``;``-separated genes.
    organism
        ``"human"`` (default) or ``"mouse"`` (assay names are mouse symbols).

    Returns
    -------
    pandas.DataFrame
        ``OlinkID, Assay, UniProt, gene, method``; ``attrs``: ``unmapped`` (OlinkIDs),
        ``controls`` (OlinkIDs), ``n_assays``, ``n_mapped``, ``table`` (source).

    Examples
    --------
    >>> import pandas as pd
    >>> var = pd.DataFrame({"Assay": ["IL-2RB", "MCP-1", "IL12A_IL12B"],
    ...                     "UniProt": ["P14784", "P13500", "P29459_P29460"]},
    ...                    index=["OID00492", "OID00484", "OID20001"])
    >>> map_assays(var)["gene"].tolist()
    ['IL2RB', 'CCL2', 'IL12A', 'IL12B']
    """
    frame = _assay_frame(adata_or_var)
    genes_per_row, methods = map_rows(
        frame["OlinkID"].tolist(),
        frame["Assay"].tolist(),
        frame["UniProt"].tolist(),
        controls=frame["_control"].tolist(),
        mapping=mapping,
        organism=organism,
    )
    rows: list[tuple[str, str, object, object, str]] = []
    unmapped: list[str] = []
    unmapped_names: list[str] = []
    controls: list[str] = []
    for oid, assay, up, genes, how in zip(
        frame["OlinkID"], frame["Assay"], frame["UniProt"], genes_per_row, methods, strict=True
    ):
        if how == "control":
            controls.append(oid)
            rows.append((oid, assay, up, np.nan, "control"))
        elif not genes:
            unmapped.append(oid)
            unmapped_names.append(assay)
            rows.append((oid, assay, up, np.nan, "unmapped"))
        else:
            rows.extend((oid, assay, up, g, how) for g in genes)
    out = pd.DataFrame(rows, columns=["OlinkID", "Assay", "UniProt", "gene", "method"])
    if unmapped:
        names = unmapped_names
        why = " (no human ortholog)" if organism != "human" else ""
        warn(
            f"map_assays: {len(unmapped)} assay(s) could not be mapped to a gene symbol{why} "
            f"and are kept with gene=NaN: {preview(names)}. Pass mapping={{assay: gene}} to "
            "fix.",
            stacklevel=3,
        )
    out.attrs = {
        "n_assays": int(len(frame)),
        "n_mapped": int(len(frame) - len(unmapped) - len(controls)),
        "unmapped": unmapped,
        "controls": controls,
        "table": f"olinkpipe/genesets/data/{_TABLE}",
    }
    if organism != "human":
        out.attrs["table"] = "olinkpipe/genesets/data/orthologs_mouse_human.tsv.gz"
        out.attrs.update(ortholog_report(frame["Assay"].tolist(), organism))
    return out
