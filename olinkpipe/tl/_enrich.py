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

from ..errors import MissingColumnError, ValidationError, format_message


@dataclass(frozen=True)
class MethodMeta:
    """Name, kernel, description and reference of one enrichment method."""

    name: str
    kernel: Callable
    description: str
    reference: str


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


def prepare_genes(result: pd.DataFrame, needed: Iterable[str], *, func: str) -> GeneTable:
    """Validate ``result`` and collapse it to one row per gene symbol.

    Genes come from a ``gene`` column (``;``-separated allowed) or, failing that, from
    :func:`olinkpipe.genesets.map_assays` on ``Assay`` (+ ``UniProt``/``OlinkID``).
    Rows with a NaN ``p_value`` are untested and set aside. Several assays of one gene
    count once: the one with the smallest ``p_value`` (first on ties; without a
    ``p_value`` column, the largest ``|estimate|``) is used.
    """
    if not isinstance(result, pd.DataFrame):
        msg = format_message(
            f"{func} takes a DataFrame (tl.differential output), not {type(result).__name__}",
            hint="Pass a table with Assay (or gene), estimate, statistic, p_value, p_adj.",
        )
        raise ValidationError(msg)
    needed = list(needed)
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
    frame = result.reset_index(drop=True)
    label = frame["Assay"] if "Assay" in frame.columns else frame["gene"]
    base = pd.DataFrame(
        {
            "row": np.arange(len(frame)),
            "label": label.astype(str).to_numpy(),
            "OlinkID": (
                frame["OlinkID"].astype(str).to_numpy()
                if "OlinkID" in frame.columns
                else label.astype(str).to_numpy()
            ),
        }
    )
    for col in ("estimate", "statistic", "p_value", "p_adj"):
        base[col] = (
            pd.to_numeric(frame[col], errors="coerce").to_numpy(dtype=float)
            if col in frame.columns
            else np.nan
        )
    if "gene" in frame.columns:
        genes = frame["gene"].map(
            lambda g: [] if pd.isna(g) else [x for x in re.split(r"[;,\s]+", str(g)) if x]
        )
        long = base.assign(gene=genes.to_numpy()).explode("gene")
        mapped_by = "gene column"
    else:
        from ..genesets import map_assays

        var = pd.DataFrame({"Assay": base["label"].to_numpy()}, index=base["row"].astype(str))
        if "UniProt" in frame.columns:
            var["UniProt"] = frame["UniProt"].to_numpy()
        mapped = map_assays(var)
        mapped["row"] = mapped["OlinkID"].astype(int)
        long = base.merge(mapped[["row", "gene"]], on="row", how="left")
        mapped_by = "genesets.map_assays (UniProt, alias table, symbol)"
    unmapped_mask = long["gene"].isna()
    unmapped = sorted(set(long.loc[unmapped_mask, "label"]))
    long = long[~unmapped_mask]
    # untested = no p-value (or, for a table without p-values, no estimate)
    has_p = "p_value" in frame.columns
    untested_mask = long["p_value"].isna() if has_p else long["estimate"].isna()
    untested = sorted(set(long.loc[untested_mask, "label"]))
    long = long[~untested_mask]
    long = long.assign(_key=long["p_value"] if has_p else -long["estimate"].abs())
    long = long.sort_values(["_key", "row"], kind="mergesort").drop(columns="_key")
    first = ~long.duplicated("gene", keep="first")
    duplicates: dict[str, dict[str, object]] = {}
    dup_genes = set(long.loc[~first, "gene"])
    if dup_genes:
        for gene, grp in long[long["gene"].isin(dup_genes)].groupby("gene", sort=True):
            ids = grp["OlinkID"].tolist()
            duplicates[str(gene)] = {"used": ids[0], "ignored": ids[1:]}
    table = long[first].reset_index(drop=True)
    table["gene"] = table["gene"].astype(str)
    return GeneTable(table, duplicates, unmapped, untested, mapped_by)


# ---------------------------------------------------------------------------------------
# ORA kernel
# ---------------------------------------------------------------------------------------


def membership(
    sets: Mapping[str, Iterable[str]], universe: list[str], *, min_size: int, max_size: int
) -> tuple[list[str], sparse.csr_matrix, np.ndarray]:
    """Sets restricted to ``universe`` as a sparse sets × genes 0/1 matrix.

    Returns the kept terms (restricted size in ``[min_size, max_size]``), the matrix and
    the restricted sizes.
    """
    index = {g: i for i, g in enumerate(universe)}
    terms: list[str] = []
    indptr = [0]
    indices: list[int] = []
    for term, genes in sets.items():
        idx = sorted({index[g] for g in genes if g in index})
        if min_size <= len(idx) <= max_size:
            terms.append(term)
            indices.extend(idx)
            indptr.append(len(indices))
    data = np.ones(len(indices), dtype=np.int64)
    mat = sparse.csr_matrix(
        (data, np.asarray(indices, dtype=np.int64), np.asarray(indptr, dtype=np.int64)),
        shape=(len(terms), len(universe)),
    )
    sizes = np.diff(mat.indptr)
    return terms, mat, sizes


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


def running_score(metric: np.ndarray, hits: Iterable[int], *, weight: float = 1.0) -> np.ndarray:
    """Running enrichment score of Subramanian et al. (2005) along a decreasing ranking.

    A hit at position ``i`` adds ``|r_i|^w / sum_hits |r|^w``; a miss subtracts
    ``1 / (N - N_hits)``. The ES is the value of largest magnitude.
    """
    r = np.abs(np.asarray(metric, dtype=float)) ** weight
    tag = np.zeros(len(r), dtype=bool)
    tag[np.asarray(list(hits), dtype=int)] = True
    n_hit = tag.sum()
    norm_hit = r[tag].sum()
    step = np.where(tag, r / norm_hit if norm_hit > 0 else 0.0, -1.0 / max(len(r) - n_hit, 1))
    return np.cumsum(step)


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
