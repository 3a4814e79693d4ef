"""Array kernels and input preparation behind :func:`olinkpipe.tl.ora` / :func:`~olinkpipe.tl.gsea`.

Nothing here knows about AnnData: the kernels take gene lists, index arrays and numbers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse, stats

from .._warnings import warn
from ..errors import MissingColumnError, ValidationError, format_message, preview
from ..genesets.collections import SetIndex


@dataclass(frozen=True)
class MethodMeta:
    """Name, kernel, description and reference of one enrichment method."""

    name: str
    kernel: Callable
    description: str
    reference: str


class SharedData(dict):
    """A read-only ``dict`` of JSON values that :func:`copy.deepcopy` shares, not copies.

    pandas deep-copies ``DataFrame.attrs`` on nearly every operation (a column, a filter,
    ``copy()``); the GSEA plot data (ranking of thousands of genes, hit positions of
    hundreds of sets) would cost about 10 ms per copy as plain lists. This mapping is
    immutable (tuples inside, mutators raise), so sharing it between copies is safe, and
    being a ``dict`` it stays JSON-safe (``json.dumps``, parquet attrs metadata).

    Examples
    --------
    >>> import copy
    >>> d = SharedData({"gene": ("IL6", "TNF"), "metric": (2.0, -1.0)})
    >>> copy.deepcopy(d) is d
    True
    """

    __slots__ = ()

    def _read_only(self, *args: object, **kwargs: object) -> None:
        msg = f"{type(self).__name__} is read-only (it is shared between DataFrame copies)"
        raise TypeError(msg)

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only
    __ior__ = _read_only

    def __deepcopy__(self, memo: dict) -> SharedData:
        return self

    def __copy__(self) -> SharedData:
        return self

    def __reduce__(self) -> tuple:
        return (type(self), (dict(self),))

    def __repr__(self) -> str:
        items = list(self.items())
        shown = ", ".join(f"{k!r}: {_short(v)}" for k, v in items[:3])
        more = f", … ({len(items)} items)" if len(items) > 3 else ""
        return "{" + shown + more + "}"


def _short(value: object, limit: int = 5) -> str:
    if isinstance(value, tuple) and len(value) > limit:
        return "(" + ", ".join(repr(v) for v in value[:limit]) + f", … {len(value)} values)"
    return repr(value)


# ---------------------------------------------------------------------------------------
# Input: a differential-expression table -> one row per gene
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneTable:
    """One row per gene (the assay with the smallest p-value), plus what was set aside."""

    table: pd.DataFrame  # gene, label, OlinkID, estimate, statistic, p_value, p_adj
    duplicates: dict[str, dict[str, object]]
    unmapped: list[str]
    untested: list[str]
    mapped_by: str
    orthologs: dict[str, object] | None = None  # mouse -> human report (genesets.mapping)


def _check_result(result: pd.DataFrame, needed: list[str], func: str) -> pd.DataFrame:
    """``result`` with a fresh index, once it is a DataFrame with the columns ``func`` needs."""
    if not isinstance(result, pd.DataFrame):
        msg = format_message(
            f"{func} takes a DataFrame (tl.differential output), not {type(result).__name__}",
            hint="Pass a table with Assay (or gene), estimate, statistic, p_value, p_adj.",
        )
        raise ValidationError(msg)
    missing = [c for c in needed if c not in result.columns]
    if "gene" not in result.columns and "Assay" not in result.columns:
        missing = ["Assay (or gene)", *missing]
    if missing:
        msg = format_message(
            f"{func}: the result table lacks required column(s) {missing!r}; it has "
            f"{list(result.columns)[:20]!r}",
            hint=(
                "Pass tl.differential output or any table with columns Assay (or gene), "
                "estimate, statistic, p_value, p_adj; rename yours to match."
            ),
        )
        raise MissingColumnError(msg)
    return result.reset_index(drop=True)


def _genes_per_row(
    frame: pd.DataFrame,
    labels: np.ndarray,
    olink_ids: np.ndarray,
    *,
    mapping: Mapping[str, str | list[str]] | pd.DataFrame | None,
    organism: str,
) -> tuple[list[tuple[str, ...]], str, pd.DataFrame | None]:
    """Each row's human gene symbols (from ``gene`` or mapped from the assay), how they were
    found, and the ortholog report for a non-human ``organism``."""
    orthologs = None
    if "gene" in frame.columns:
        genes_per_row = [
            () if pd.isna(g) else tuple(x for x in re.split(r"[;,\s]+", str(g)) if x)
            for g in frame["gene"].tolist()
        ]
        mapped_by = "gene column"
        if organism != "human":
            from ..genesets.mapping import ortholog_report
            from ..genesets.orthologs import to_human

            flat = [g for gs in genes_per_row for g in gs]
            orth_map = to_human(flat, organism=organism).mapping
            genes_per_row = [
                tuple(dict.fromkeys(orth_map[g] for g in gs if g in orth_map))
                for gs in genes_per_row
            ]
            orthologs = ortholog_report(flat, organism)
            mapped_by = f"gene column ({organism} symbols -> human orthologs)"
        return genes_per_row, mapped_by, orthologs
    from ..genesets.mapping import map_rows, ortholog_report

    uniprot = frame["UniProt"].tolist() if "UniProt" in frame.columns else [None] * len(frame)
    genes_per_row, _ = map_rows(
        list(olink_ids), list(labels), uniprot, mapping=mapping, organism=organism
    )
    if organism != "human":
        orthologs = ortholog_report(list(labels), organism)
    mapped_by = (
        "genesets.map_assays (user mapping, UniProt, alias table, symbol)"
        if organism == "human"
        else f"genesets.map_assays (user mapping, {organism} -> human orthologs, HCOP)"
    )
    return genes_per_row, mapped_by, orthologs


def _best_row_per_gene(
    genes_per_row: list[tuple[str, ...]], key: np.ndarray, olink_ids: np.ndarray
) -> tuple[np.ndarray, np.ndarray, dict[str, dict[str, object]]]:
    """For each gene, the tested row with the smallest ``key`` (first in input order on
    ties): ``(rows, genes, duplicates)``, duplicates naming the used and ignored OlinkIDs.

    Examples
    --------
    >>> import numpy as np
    >>> rows, genes, dup = _best_row_per_gene(
    ...     [("A",), ("A", "B"), ()], np.array([0.5, 0.1, 0.2]), np.array(["o1", "o2", "o3"]))
    >>> rows.tolist(), genes.tolist(), dup
    ([1, 1], ['A', 'B'], {'A': {'used': 'o2', 'ignored': ['o1']}})
    """
    lengths = np.fromiter((len(g) for g in genes_per_row), dtype=np.int64, count=len(key))
    # one entry per (row, gene), rows in input order; untested rows (NaN key) left out
    row = np.repeat(np.arange(len(key)), lengths)
    gene = np.asarray([g for gs in genes_per_row for g in gs], dtype=object)
    ok = ~np.isnan(key)[row]
    row, gene = row[ok], gene[ok]
    # smallest key first, then input order; keep the first entry of each gene
    order = np.lexsort((row, key[row]))
    row, gene = row[order], gene[order]
    codes, _ = pd.factorize(gene)
    first = np.zeros(len(gene), dtype=bool)
    if len(gene):
        first[np.unique(codes, return_index=True)[1]] = True
    duplicates: dict[str, dict[str, object]] = {}
    dup_codes = np.unique(codes[~first])
    if len(dup_codes):
        is_dup = np.isin(codes, dup_codes)
        for g in sorted(set(gene[is_dup])):
            ids = olink_ids[row[is_dup & (gene == g)]].tolist()
            duplicates[str(g)] = {"used": ids[0], "ignored": ids[1:]}
    return row[first], gene[first], duplicates


def prepare_genes(
    result: pd.DataFrame,
    needed: Iterable[str],
    *,
    func: str,
    mapping: Mapping[str, str | list[str]] | pd.DataFrame | None = None,
    organism: str = "human",
) -> GeneTable:
    """Validate ``result`` and collapse it to one row per gene symbol.

    Genes come from a ``gene`` column (``;``-separated allowed) or, failing that, from
    :func:`olinkpipe.genesets.map_assays` on ``Assay`` (+ ``UniProt``/``OlinkID``), with
    ``mapping`` (keyed by OlinkID, Assay or UniProt) overriding.
    Rows with a NaN ``p_value`` are untested and set aside. Several assays of one gene
    count once: the one with the smallest ``p_value`` (first on ties; without a
    ``p_value`` column, the largest ``|estimate|``) is used. With ``organism="mouse"``
    assay names (or the ``gene`` column) are mouse symbols mapped to human orthologs.
    """
    frame = _check_result(result, list(needed), func)
    n_rows = len(frame)
    label = (frame["Assay"] if "Assay" in frame.columns else frame["gene"]).astype(str)
    labels = label.to_numpy(dtype=object)
    olink_ids = (
        frame["OlinkID"].astype(str).to_numpy(dtype=object)
        if "OlinkID" in frame.columns
        else labels
    )
    values = {
        col: (
            pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
            if col in frame.columns
            else np.full(n_rows, np.nan)
        )
        for col in ("estimate", "statistic", "p_value", "p_adj")
    }
    genes_per_row, mapped_by, orthologs = _genes_per_row(
        frame, labels, olink_ids, mapping=mapping, organism=organism
    )
    if organism != "human" or "gene" not in frame.columns:
        bad = [lab for lab, g in zip(labels, genes_per_row, strict=True) if not g]
        if bad:
            why = f" (no human ortholog of these {organism} symbols)" if orthologs else ""
            warn(
                f"{func}: {len(bad)} assay(s) could not be mapped to a gene symbol{why} and "
                f"are left out (listed in attrs['unmapped']): {preview(bad)}. Pass "
                "mapping={assay: gene} to fix.",
                stacklevel=4,
            )
    mapped = np.array([len(g) > 0 for g in genes_per_row], dtype=bool)
    unmapped = sorted(set(labels[~mapped]))
    # untested = no p-value (or, for a table without p-values, no estimate)
    key = values["p_value"] if "p_value" in frame.columns else -np.abs(values["estimate"])
    untested = sorted(set(labels[np.isnan(key) & mapped]))
    keep, gene, duplicates = _best_row_per_gene(genes_per_row, key, olink_ids)
    table = pd.DataFrame(
        {
            "row": keep,
            "label": labels[keep],
            "OlinkID": olink_ids[keep],
            **{col: v[keep] for col, v in values.items()},
            "gene": gene.astype(str),
        }
    )
    return GeneTable(table, duplicates, unmapped, untested, mapped_by, orthologs)


# ---------------------------------------------------------------------------------------
# ORA kernel
# ---------------------------------------------------------------------------------------


def membership(
    sets: Mapping[str, Iterable[str]] | SetIndex,
    universe: list[str],
    *,
    min_size: int,
    max_size: int,
) -> tuple[list[str], sparse.csr_matrix, np.ndarray]:
    """Sets restricted to ``universe`` as a sparse sets × genes 0/1 matrix.

    ``sets`` is a mapping or a prebuilt :class:`~olinkpipe.genesets.collections.SetIndex`
    (the restriction is then one sparse column selection). Returns the kept terms
    (restricted size in ``[min_size, max_size]``), the CSR matrix (columns in
    ``universe`` order) and the restricted sizes.
    """
    index = sets if isinstance(sets, SetIndex) else SetIndex.from_sets(sets)
    terms, mat = index.restrict(universe, min_size=min_size, max_size=max_size)
    return [str(t) for t in terms], mat, np.diff(mat.indptr)


def ora_kernel(mat: sparse.csr_matrix, selected: np.ndarray) -> dict[str, np.ndarray]:
    """One-sided hypergeometric test of every set (row of ``mat``) at once.

    ``selected`` is a boolean vector over the universe (columns). For each set with
    ``K`` members in a universe of ``N`` genes, ``n`` of them selected and ``k`` selected
    members, ``p = P(X >= k)`` with ``X ~ Hypergeom(N, K, n)``, i.e. ``hypergeom.sf(k-1)``,
    which equals Fisher's exact test with ``alternative="greater"``.
    """
    sel = np.asarray(selected, dtype=np.int64)
    big_n = mat.shape[1]
    n = int(sel.sum())
    k = np.asarray(mat @ sel, dtype=np.int64).ravel()
    big_k = np.diff(mat.indptr).astype(np.int64)
    p = stats.hypergeom.sf(k - 1, big_n, big_k, n) if len(k) else np.array([], dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 0.0, 1.0)
    # Sample odds ratio of the 2x2 table [[k, K-k], [n-k, N-K-n+k]] (as fisher_exact).
    a, b, c, d = k, big_k - k, n - k, big_n - big_k - n + k
    num = (a * d).astype(float)
    den = (b * c).astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        odds = np.where(
            den > 0, num / np.where(den > 0, den, 1.0), np.where(num > 0, np.inf, np.nan)
        )
    expected = n * big_k / big_n if big_n else np.full(len(k), np.nan)
    return {
        "overlap": k,
        "set_size": big_k,
        "expected": expected,
        "odds_ratio": odds,
        "p_value": p,
    }


# ---------------------------------------------------------------------------------------
# GSEA helpers
# ---------------------------------------------------------------------------------------


def ranking_metric(table: pd.DataFrame, rank_by: str) -> pd.Series:
    """Gene → ranking metric, sorted decreasing (ties broken by gene name)."""
    if rank_by in ("statistic", "estimate"):
        metric = table[rank_by].to_numpy(dtype=float)
    else:  # signed_p = sign(estimate) * -log10(p)
        p = np.clip(table["p_value"].to_numpy(dtype=float), np.finfo(float).tiny, 1.0)
        metric = np.sign(table["estimate"].to_numpy(dtype=float)) * -np.log10(p)
    s = pd.Series(metric, index=table["gene"].to_numpy(), name=rank_by)
    s = s[np.isfinite(s.to_numpy())]
    order = np.lexsort((s.index.to_numpy().astype(str), -s.to_numpy()))
    return s.iloc[order]


def gsea_kernel(
    rnk: pd.Series,
    sets: Mapping[str, list[str]],
    *,
    permutations: int,
    min_size: int,
    max_size: int,
    seed: int,
):
    """Pre-ranked GSEA of ``rnk`` (decreasing) with gseapy, one thread, fixed seed."""
    import gseapy

    return gseapy.prerank(
        rnk=rnk,
        gene_sets=dict(sets),
        outdir=None,
        min_size=min_size,
        max_size=max_size,
        permutation_num=int(permutations),
        weight=1.0,
        threads=1,
        seed=int(seed),
        no_plot=True,
        verbose=False,
    )


METHODS: dict[str, MethodMeta] = {
    "ora": MethodMeta(
        "ora",
        ora_kernel,
        "over-representation: one-sided hypergeometric test, BH over the sets tested",
        "Boyle et al. (2004) Bioinformatics 20:3710; Benjamini & Hochberg (1995)",
    ),
    "gsea": MethodMeta(
        "gsea",
        gsea_kernel,
        "pre-ranked gene-set enrichment analysis (gseapy.prerank, gene-set permutation)",
        "Subramanian et al. (2005) PNAS 102:15545; Fang et al. (2023) Bioinformatics 39:btac757",
    ),
}
