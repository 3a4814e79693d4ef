"""Gene-set enrichment of a differential result: over-representation (ORA) and GSEA.

Both take the tidy table of :func:`olinkpipe.tl.differential` or any table with
``Assay`` (or ``gene``), ``estimate``, ``statistic``, ``p_value``, ``p_adj``, and a
collection name (offline, see :func:`olinkpipe.genesets.available`), a GMT path, a dict
or a two-column DataFrame of gene sets.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Mapping
from importlib import metadata
from typing import Literal

import numpy as np
import pandas as pd

from .._stats import bh_adjust
from .._validate import check_literal
from .._warnings import warn
from ..errors import ValidationError, format_message
from ..genesets.collections import GeneSetCollection, as_collection, collection_index
from ._enrich import METHODS, SharedData, membership, prepare_genes, ranking_metric

__all__ = ["ora", "gsea"]

logger = logging.getLogger("olinkpipe")

ORA_COLUMNS = [
    "term",
    "direction",
    "set_size",
    "overlap",
    "expected",
    "odds_ratio",
    "p_value",
    "p_adj",
    "genes",
    "assays",
]
GSEA_COLUMNS = ["term", "set_size", "es", "nes", "p_value", "p_adj", "leading_edge"]

GeneSets = str | dict | pd.DataFrame | GeneSetCollection


def _check_sizes(min_size: int, max_size: int) -> None:
    if not (isinstance(min_size, (int, np.integer)) and isinstance(max_size, (int, np.integer))):
        msg = f"min_size and max_size must be integers, got {min_size!r} and {max_size!r}."
        raise ValidationError(msg)
    if min_size < 1 or max_size < min_size:
        msg = f"Need 1 <= min_size <= max_size; got min_size={min_size}, max_size={max_size}."
        raise ValidationError(msg)


_INPUT_KEYS = ("method", "groupby", "reference", "target", "levels", "sign", "pair")


def _input_attrs(result: pd.DataFrame) -> dict[str, object]:
    """The differential result's design, JSON-safe (method, levels, sign text, pair)."""
    out: dict[str, object] = {}
    for key in _INPUT_KEYS:
        if key in result.attrs:
            val = result.attrs[key]
            if isinstance(val, (list, tuple)):
                out[key] = [str(v) for v in val]
            elif val is None or isinstance(val, (str, int, float, bool)):
                out[key] = val
            else:
                out[key] = str(val)
    return out


def _organism(result: pd.DataFrame, organism: str | None) -> str:
    """``organism`` as given, or ``"mouse"`` when a ``Panel`` names a mouse panel."""
    if organism is not None:
        check_literal("organism", organism, ["human", "mouse"])
        return organism
    if isinstance(result, pd.DataFrame) and "Panel" in result.columns:
        panels = pd.Series(result["Panel"].dropna().unique()).astype(str)
        if panels.str.contains("mouse", case=False).any():
            return "mouse"
    return "human"


def _organism_attrs(genes: object, organism: str) -> dict[str, object]:
    report = getattr(genes, "orthologs", None)
    return dict(report) if report else {"organism": organism}


@functools.lru_cache(maxsize=1)
def _version() -> str:
    try:
        return metadata.version("olinkpipe")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "unknown"


def ora(
    result: pd.DataFrame,
    gene_sets: GeneSets = "KEGG_2021_Human",
    *,
    direction: Literal["up", "down", "both"] = "up",
    alpha: float = 0.05,
    universe: list[str] | None = None,
    min_size: int = 5,
    max_size: int = 500,
    mapping: Mapping[str, str | list[str]] | pd.DataFrame | None = None,
    organism: Literal["human", "mouse"] | None = None,
) -> pd.DataFrame:
    """Over-representation analysis of significant assays in gene sets.

    Parameters
    ----------
    result
        ``tl.differential`` output or any table with ``Assay`` (or ``gene``),
        ``estimate``, ``p_value`` and ``p_adj`` (``UniProt``/``OlinkID`` help mapping).
    gene_sets
        Collection name (default ``"KEGG_2021_Human"``, offline), GMT path, dict
        term → genes, or a two-column DataFrame (term, gene).
    direction
        ``"up"``: significant = ``p_adj < alpha`` and ``estimate > 0``; ``"down"``:
        ``estimate < 0``; ``"both"``: either sign.
    alpha
        Significance level applied to the assays' ``p_adj``.
    universe
        Background genes. Default: every tested gene (non-NaN ``p_value``) that belongs
        to at least one set of the collection, which is the right background for a
        targeted panel (not the genome). A given universe is also intersected with the
        collection's genes.
    min_size, max_size
        Keep sets whose size *restricted to the universe* lies in ``[min_size, max_size]``.
    mapping
        Assay → gene overrides for tables without a ``gene`` column, keyed by
        ``OlinkID``, ``Assay`` or ``UniProt`` (see :func:`olinkpipe.genesets.map_assays`);
        they win over the built-in UniProt / alias mapping.
    organism
        ``"mouse"``: assay names (or the ``gene`` column) are mouse symbols (Olink Target
        96 Mouse Exploratory), mapped to human orthologs
        (:func:`olinkpipe.genesets.to_human`: one human gene each, chosen
        deterministically; unmapped ones are warned about and listed in ``attrs``).
        ``None`` (default): ``"mouse"`` when a ``Panel`` value names a mouse panel, else
        ``"human"``.

    Returns
    -------
    pandas.DataFrame
        One row per set tested, sorted by ``p_value``: ``term, direction, set_size``
        (restricted), ``overlap`` (significant genes in the set), ``expected``
        (``n·K/N``), ``odds_ratio`` (sample odds ratio of the 2×2 table), ``p_value``,
        ``p_adj`` (Benjamini–Hochberg over the sets tested), ``genes`` and ``assays``
        (the overlap, ``;``-joined, most significant first). ``attrs``: method, collection
        name/source/version, direction, alpha, universe size, number selected, sets
        tested, ``duplicate_genes`` (gene → the assay used and those ignored),
        ``unmapped``/``untested`` assays, ``organism`` (with mouse: the ortholog source,
        rule, ``orthologs_unmapped`` and ``orthologs_one_to_many``) and ``input`` (the
        differential result's groupby, levels and sign text, when it had them).

    Notes
    -----
    With ``N`` universe genes, ``n`` of them significant, ``K`` set members and ``k``
    significant members, ``p = P(X >= k)`` for ``X ~ Hypergeom(N, K, n)``
    (``scipy.stats.hypergeom.sf(k - 1, N, K, n)``), identical to a one-sided Fisher
    exact test; computed for every set at once from a sparse membership matrix.
    Several assays of one gene (the same protein on two panels) count once, using the
    assay with the smallest ``p_value``.

    Compared with OlinkAnalyze ``olink_pathway_enrichment(method = "ORA")``
    (clusterProfiler ``enricher``): the test (``phyper`` upper tail), the universe
    (tested assays intersected with the annotated genes) and BH are the same. It differs
    in (1) selection: OlinkAnalyze takes both signs (``abs(estimate) > 0``); use
    ``direction="both"`` for that; (2) size limits: clusterProfiler's default is
    10–500; use ``min_size=10``; (3) gene symbols: OlinkAnalyze uses ``Assay`` names as
    they are, so Target 96 names such as ``IL-2RB`` or ``MCP-1`` match no set; here they
    are mapped to HGNC symbols first; (4) duplicate assays: OlinkAnalyze keeps the most
    often detected one, this keeps the smallest p-value (the table alone has no detection
    rates); (5) gene sets: MSigDB via msigdbr there, the offline Enrichr libraries here
    (pass an MSigDB GMT with :func:`olinkpipe.genesets.read_gmt` to use the same sets).

    Examples
    --------
    >>> import pandas as pd, olinkpipe as op
    >>> res = pd.DataFrame({"Assay": ["IL-2RB", "IL6", "MCP-1", "IL10", "CD274", "ACTB"],
    ...                     "estimate": [1.2, 0.9, 0.8, 0.7, 0.6, 0.1],
    ...                     "statistic": [6.0, 5.0, 4.0, 3.5, 3.0, 0.5],
    ...                     "p_value": [1e-6, 1e-5, 1e-4, 1e-3, 2e-3, 0.6],
    ...                     "p_adj": [6e-6, 3e-5, 2e-4, 1.5e-3, 2.4e-3, 0.6]})
    >>> out = op.tl.ora(res, {"JAK-STAT": ["IL2RB", "IL6", "IL10", "CD274", "STAT3"],
    ...                       "other": ["CCL2", "ACTB"]}, min_size=2)
    >>> out[["term", "overlap", "set_size"]].values.tolist()
    [['JAK-STAT', 4, 4], ['other', 1, 2]]
    """
    check_literal("direction", direction, ["up", "down", "both"])
    _check_sizes(min_size, max_size)
    if not 0 < alpha < 1:
        msg = f"alpha must lie in (0, 1), got {alpha!r}."
        raise ValidationError(msg)
    index, coll_info = collection_index(gene_sets)
    organism = _organism(result, organism)
    genes = prepare_genes(
        result,
        ["estimate", "p_value", "p_adj"],
        func="tl.ora",
        mapping=mapping,
        organism=organism,
    )
    table = genes.table
    tested = table["gene"].to_numpy(dtype=object)
    in_coll = index.genes.get_indexer(tested) >= 0
    if universe is None:
        uni = tested[in_coll]
        universe_rule = "tested genes in >= 1 set of the collection"
    else:
        wanted = pd.Index(pd.unique(np.asarray([str(g) for g in universe], dtype=object)))
        wanted = wanted[index.genes.get_indexer(wanted) >= 0]
        keep = in_coll & (wanted.get_indexer(tested) >= 0)
        extra = wanted.difference(pd.Index(tested), sort=True)
        uni = np.concatenate([tested[keep], extra.to_numpy(dtype=object)])
        universe_rule = "user universe intersected with the collection's genes"
    if not len(uni):
        msg = format_message(
            f"tl.ora: none of the {len(tested)} tested genes is in collection "
            f"{coll_info['collection']!r}",
            rows=list(tested),
            hint="Check the gene symbols (genesets.map_assays) or the collection's organism.",
        )
        raise ValidationError(msg)
    in_uni = table.set_index("gene").reindex(uni)
    sig = (in_uni["p_adj"] < alpha).to_numpy()
    est = in_uni["estimate"].to_numpy(dtype=float)
    if direction == "up":
        sig &= est > 0
    elif direction == "down":
        sig &= est < 0
    else:
        sig &= est != 0
    terms, mat, _ = membership(index, list(uni), min_size=min_size, max_size=max_size)
    if not sig.any():
        warn(f"tl.ora: no gene is significant ({direction}, p_adj < {alpha}); all p = 1.")
    if not terms:
        warn(
            f"tl.ora: no set of {coll_info['collection']!r} has between {min_size} and "
            f"{max_size} genes in the universe of {len(uni)} genes; returning an empty table."
        )
    kern = METHODS["ora"].kernel(mat, sig)
    p_adj = bh_adjust(kern["p_value"])
    # overlap genes/assays, most significant first: columns of the selected genes in
    # p-value order, then one short join per set with a non-empty overlap
    pvals = in_uni["p_value"].to_numpy(dtype=float)
    sel_cols = np.flatnonzero(sig)
    sel_cols = sel_cols[np.argsort(pvals[sel_cols], kind="mergesort")]
    hits = mat[:, sel_cols].tocsr()
    hits.sort_indices()
    sel_genes = np.asarray(uni, dtype=object)[sel_cols]
    sel_labels = in_uni["label"].to_numpy(dtype=object)[sel_cols]
    genes_col = [""] * len(terms)
    assays_col = [""] * len(terms)
    for i in np.flatnonzero(np.diff(hits.indptr)):
        idx = hits.indices[hits.indptr[i] : hits.indptr[i + 1]]
        genes_col[i] = ";".join(sel_genes[idx])
        assays_col[i] = ";".join(sel_labels[idx])
    out = pd.DataFrame(
        {
            "term": terms,
            "direction": direction,
            "set_size": kern["set_size"],
            "overlap": kern["overlap"],
            "expected": kern["expected"],
            "odds_ratio": kern["odds_ratio"],
            "p_value": kern["p_value"],
            "p_adj": p_adj,
            "genes": genes_col,
            "assays": assays_col,
        },
        columns=ORA_COLUMNS,
    )
    out = out.sort_values(["p_value", "term"], kind="mergesort").reset_index(drop=True)
    out.attrs = {
        "method": "ora",
        "test": "one-sided hypergeometric, P(X >= overlap) (= Fisher exact, greater)",
        "p_adj_method": "Benjamini-Hochberg over the sets tested",
        **coll_info,
        "direction": direction,
        "alpha": float(alpha),
        "universe": universe_rule,
        "universe_size": len(uni),
        "n_selected": int(sig.sum()),
        "n_sets_tested": len(terms),
        "min_size": int(min_size),
        "max_size": int(max_size),
        "gene_mapping": genes.mapped_by,
        "duplicate_genes": genes.duplicates,
        "duplicate_rule": "several assays of one gene count once: the smallest p_value",
        "unmapped": genes.unmapped,
        "untested": genes.untested,
        **_organism_attrs(genes, organism),
        "input": _input_attrs(result),
        "olinkpipe_version": _version(),
    }
    return out


def gsea(
    result: pd.DataFrame,
    gene_sets: GeneSets = "KEGG_2021_Human",
    *,
    rank_by: Literal["statistic", "signed_p", "estimate"] = "statistic",
    permutations: int = 1000,
    min_size: int = 5,
    max_size: int = 500,
    seed: int = 0,
    mapping: Mapping[str, str | list[str]] | pd.DataFrame | None = None,
    organism: Literal["human", "mouse"] | None = None,
) -> pd.DataFrame:
    """Pre-ranked gene-set enrichment analysis (GSEA) with ``gseapy.prerank``.

    Parameters
    ----------
    result
        ``tl.differential`` output or any table with ``Assay`` (or ``gene``),
        ``estimate``, ``statistic``, ``p_value`` (``p_adj`` is not used).
    gene_sets
        Collection name (default ``"KEGG_2021_Human"``, offline), GMT path, dict, or
        two-column DataFrame.
    rank_by
        ``"statistic"`` (the test statistic), ``"signed_p"`` =
        ``sign(estimate) · −log10(p_value)``, or ``"estimate"`` (as OlinkAnalyze).
    permutations
        Gene-set permutations for the null distribution.
    min_size, max_size
        Sets are kept when their overlap with the ranked genes lies in this range.
    seed
        Random seed; the same seed gives the same result (one thread, fixed).
    mapping
        Assay → gene overrides for tables without a ``gene`` column, keyed by
        ``OlinkID``, ``Assay`` or ``UniProt`` (see :func:`olinkpipe.genesets.map_assays`);
        they win over the built-in UniProt / alias mapping.
    organism
        ``"mouse"``: assay names (or the ``gene`` column) are mouse symbols (Olink Target
        96 Mouse Exploratory), mapped to human orthologs
        (:func:`olinkpipe.genesets.to_human`: one human gene each, chosen
        deterministically; unmapped ones are warned about and listed in ``attrs``).
        ``None`` (default): ``"mouse"`` when a ``Panel`` value names a mouse panel, else
        ``"human"``.

    Returns
    -------
    pandas.DataFrame
        One row per set, sorted by ``p_value``: ``term, set_size`` (ranked genes in
        the set), ``es``, ``nes``, ``p_value`` (nominal permutation p; 0 means below
        ``1/permutations``), ``p_adj`` (GSEA's FDR q-value from gseapy),
        ``leading_edge`` (genes joined by ``;``). ``attrs`` holds the data the plots
        need: ``ranking`` (``{"gene": (...), "metric": (...)}`` in decreasing order),
        ``hits`` (term → positions of its genes in the ranking) and ``gene_assay``
        (gene → the OlinkID/Assay used), each a read-only, JSON-safe ``dict`` of
        tuples that pandas' attrs deep copies share instead of copying (so filtering
        or copying the table stays cheap); plus method, collection, rank_by,
        permutations, seed, ``duplicate_genes``, ``organism`` (as in :func:`ora`) and
        ``input`` (the differential result's groupby, levels and sign text).

    Notes
    -----
    The running score is the weighted (``p = 1``) Kolmogorov–Smirnov-like statistic of
    Subramanian et al. (2005); ``nes`` divides ES by the mean of same-signed permutation
    ES. Every ranked gene is passed to gseapy (genes outside the collection only shift
    positions, as in GSEA). Several assays of one gene count once, with the smallest
    ``p_value``.

    OlinkAnalyze ``olink_pathway_enrichment(method = "GSEA")`` calls clusterProfiler
    ``GSEA`` (fgsea, adaptive multilevel p-values, BH ``p.adjust``, sizes 10–500) on
    the genes ranked by ``estimate`` with Assay names as symbols. Use
    ``rank_by="estimate", min_size=10`` for the same ranking and sets; p-values still
    differ because the permutation schemes differ (fgsea vs gseapy), and ``p_adj`` here
    is GSEA's FDR q-value. ``statistic`` is the default ranking because it accounts for
    each assay's precision.

    Examples
    --------
    >>> import numpy as np, pandas as pd, olinkpipe as op
    >>> rng = np.random.default_rng(0)
    >>> genes = [f"G{i}" for i in range(60)]
    >>> res = pd.DataFrame({"gene": genes, "estimate": rng.normal(size=60),
    ...                     "statistic": np.linspace(3, -3, 60), "p_value": 0.5, "p_adj": 0.5})
    >>> out = op.tl.gsea(res, {"top": genes[:8], "bottom": genes[-8:]}, permutations=100)
    >>> bool(out.set_index("term").loc["top", "es"] > 0)
    True
    """
    check_literal("rank_by", rank_by, ["statistic", "signed_p", "estimate"])
    _check_sizes(min_size, max_size)
    if int(permutations) < 1:
        msg = f"permutations must be a positive integer, got {permutations!r}."
        raise ValidationError(msg)
    import gseapy

    coll = as_collection(gene_sets)
    needed = ["estimate"] + {"statistic": ["statistic", "p_value"], "signed_p": ["p_value"]}.get(
        rank_by, []
    )
    organism = _organism(result, organism)
    genes = prepare_genes(result, needed, func="tl.gsea", mapping=mapping, organism=organism)
    rnk = ranking_metric(genes.table, rank_by)
    dropped = sorted(set(genes.table["gene"]) - set(rnk.index))
    if dropped:
        warn(f"tl.gsea: {len(dropped)} gene(s) have no finite {rank_by} and are not ranked.")
    ranked = set(rnk.index)
    sets = {t: [g for g in gs if g in ranked] for t, gs in coll.items()}
    sets = {t: gs for t, gs in sets.items() if min_size <= len(gs) <= max_size}
    if not sets:
        msg = format_message(
            f"tl.gsea: no set of {coll.name!r} has between {min_size} and {max_size} of the "
            f"{len(rnk)} ranked genes",
            hint="Lower min_size, or check the gene symbols (genesets.map_assays).",
        )
        raise ValidationError(msg)
    pre = METHODS["gsea"].kernel(
        rnk, sets, permutations=permutations, min_size=min_size, max_size=max_size, seed=seed
    )
    rows = []
    hits: dict[str, tuple[int, ...]] = {}
    for term, r in pre.results.items():
        hits[term] = tuple(int(i) for i in r["hits"])
        rows.append(
            (
                term,
                len(r["hits"]),
                float(r["es"]),
                float(r["nes"]),
                float(r["pval"]),
                float(r["fdr"]),
                str(r["lead_genes"]),
            )
        )
    out = pd.DataFrame(rows, columns=GSEA_COLUMNS)
    out = out.assign(_abs=-out["nes"].abs())
    out = out.sort_values(["p_value", "_abs", "term"], kind="mergesort").drop(columns="_abs")
    out = out.reset_index(drop=True)
    ranking = pre.ranking
    gene_assay = dict(zip(genes.table["gene"], genes.table["OlinkID"], strict=True))
    out.attrs = {
        "method": "gsea",
        "engine": f"gseapy.prerank {gseapy.__version__} (permutation_type gene_set, threads 1)",
        "p_adj_method": "GSEA FDR q-value (gseapy), not Benjamini-Hochberg",
        "p_value_note": "permutation p-values; 0 means p < 1/permutations",
        **coll.describe(),
        "rank_by": rank_by,
        "permutations": int(permutations),
        "seed": int(seed),
        "weight": 1.0,
        "min_size": int(min_size),
        "max_size": int(max_size),
        "n_ranked": len(rnk),
        "n_sets_tested": len(out),
        "ranking": SharedData(
            gene=tuple(str(g) for g in ranking.index),
            metric=tuple(float(v) for v in ranking.to_numpy()),
        ),
        "hits": SharedData(hits),
        "gene_assay": SharedData(gene_assay),
        "gene_mapping": genes.mapped_by,
        "duplicate_genes": genes.duplicates,
        "duplicate_rule": "several assays of one gene count once: the smallest p_value",
        "unmapped": genes.unmapped,
        "untested": genes.untested,
        **_organism_attrs(genes, organism),
        "input": _input_attrs(result),
        "olinkpipe_version": _version(),
    }
    return out


def running_score(metric: np.ndarray, hits: Iterable[int], *, weight: float = 1.0) -> np.ndarray:
    """Running enrichment score of Subramanian et al. (2005) along a decreasing ranking.

    A hit at position ``i`` adds ``|r_i|^w / sum_hits |r|^w``; a miss subtracts
    ``1 / (N - N_hits)``. The ES is the value of largest magnitude. Public-internal
    (not in ``tl.__all__``): :func:`olinkpipe.pl.gsea` draws it from the ranking and hits
    :func:`gsea` records in ``attrs``.
    """
    r = np.abs(np.asarray(metric, dtype=float)) ** weight
    tag = np.zeros(len(r), dtype=bool)
    tag[np.asarray(list(hits), dtype=int)] = True
    n_hit = tag.sum()
    norm_hit = r[tag].sum()
    step = np.where(tag, r / norm_hit if norm_hit > 0 else 0.0, -1.0 / max(len(r) - n_hit, 1))
    return np.cumsum(step)
