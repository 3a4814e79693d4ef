"""Enrichment figures: term overview, GSEA running score, pathway members, leading edge."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Literal

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import TwoSlopeNorm
from matplotlib.lines import Line2D
from mpl_toolkits.axes_grid1 import make_axes_locatable

from .._validate import check_literal
from ..errors import DesignError, MissingColumnError, ValidationError, format_message
from ._style import DOWN, HIGHLIGHT, NS, UP, get_ax, place_legend

__all__ = ["enrichment", "gsea", "pathway", "leading_edge"]

_DIR_COLORS = {"up": UP, "down": DOWN, "both": HIGHLIGHT}


def _neglog10(p: pd.Series, floor: float = np.finfo(float).tiny) -> np.ndarray:
    v = p.to_numpy(dtype=float)
    return -np.log10(np.clip(v, floor, 1.0))


def _perm_floor(result: pd.DataFrame) -> float:
    """Smallest resolvable permutation p (a GSEA p of 0 means < 1/permutations)."""
    n = result.attrs.get("permutations")
    return 1.0 / float(n) if n else np.finfo(float).tiny


def _fmt_p(p: float, floor: float) -> str:
    return f"<{floor:.2g}" if p < floor else f"={p:.3g}"


def _need(frame: pd.DataFrame, cols: Sequence[str], what: str) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        msg = format_message(
            f"the {what} lacks column(s) {missing!r}; it has {list(frame.columns)[:20]!r}",
            hint="Pass the table returned by tl.ora / tl.gsea / tl.differential.",
        )
        raise MissingColumnError(msg)


def _term_row(result: pd.DataFrame, term: str) -> pd.Series:
    from .._names import close_matches

    hit = result[result["term"] == term]
    if hit.empty:
        close = close_matches(term, result["term"].astype(str))
        msg = format_message(
            f"term {term!r} is not in the result ({len(result)} terms)",
            hint=(
                f"Did you mean {' or '.join(map(repr, close))}?"
                if close
                else "Use the exact 'term' text of the result; none is close to this one."
            ),
        )
        raise ValidationError(msg)
    return hit.iloc[0]


def enrichment(
    result: pd.DataFrame,
    top: int = 15,
    kind: Literal["dot", "bar"] = "dot",
    *,
    ax: Axes | None = None,
) -> Axes:
    """Top terms of a :func:`~olinkpipe.tl.ora` or :func:`~olinkpipe.tl.gsea` result.

    Terms are placed by −log10 ``p_adj`` (most significant on top). ORA: dot size =
    ``overlap``, colour = ``direction`` (up red, down blue). GSEA: dot size =
    ``set_size``, colour = ``nes`` (diverging, red positive).

    Parameters
    ----------
    result
        Output of ``tl.ora`` (``term, direction, overlap, p_adj``) or ``tl.gsea``
        (``term, nes, set_size, p_adj``).
    top
        Number of terms shown (smallest ``p_adj``, then ``p_value``).
    kind
        ``"dot"`` (size and colour) or ``"bar"`` (colour only).
    ax
        Matplotlib Axes to draw on; a new figure is made when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on.

    Examples
    --------
    >>> import pandas as pd, olinkpipe as op
    >>> res = pd.DataFrame({"term": ["A", "B"], "direction": "up", "overlap": [4, 2],
    ...                     "p_value": [1e-4, 0.02], "p_adj": [2e-4, 0.02]})
    >>> ax = op.pl.enrichment(res)
    """
    check_literal("kind", kind, ["dot", "bar"])
    _need(result, ["term", "p_adj"], "enrichment result")
    if result.empty:
        msg = format_message(
            "the enrichment result has no terms to plot",
            hint="Check the warnings of tl.ora / tl.gsea (no set within min_size..max_size?).",
        )
        raise ValidationError(msg)
    is_gsea = "nes" in result.columns
    sort_cols = ["p_adj"] + (["p_value"] if "p_value" in result.columns else [])
    shown = result.sort_values(sort_cols, kind="mergesort").head(int(top)).iloc[::-1]
    ax = get_ax(ax, figsize=(7.0, max(2.5, 0.35 * len(shown) + 1.2)))
    y = np.arange(len(shown))
    floor = _perm_floor(result) if is_gsea else np.finfo(float).tiny
    x = _neglog10(shown["p_adj"], floor)
    if is_gsea:
        nes = shown["nes"].to_numpy(dtype=float)
        lim = max(float(np.nanmax(np.abs(nes))) if len(nes) else 1.0, 1e-9)
        norm = TwoSlopeNorm(vmin=-lim, vcenter=0.0, vmax=lim)
        cmap = plt.get_cmap("RdBu_r")
        colors = cmap(norm(nes))
        size_col = "set_size"
    else:
        dirs = shown["direction"] if "direction" in shown.columns else pd.Series("up", shown.index)
        colors = [_DIR_COLORS.get(str(d), NS) for d in dirs]
        size_col = "overlap" if "overlap" in shown.columns else "set_size"
    if kind == "bar":
        ax.barh(y, x, color=colors)
    else:
        sizes = shown[size_col].to_numpy(dtype=float) if size_col in shown.columns else 5.0
        smax = float(np.nanmax(sizes)) if np.size(sizes) and np.nanmax(sizes) > 0 else 1.0
        area = 30 + 270 * np.asarray(sizes, dtype=float) / smax
        ax.scatter(x, y, s=area, c=colors, edgecolors="black", linewidths=0.5, zorder=3)
        uniq = np.unique(np.atleast_1d(sizes).astype(int))
        for s in dict.fromkeys([uniq[0], uniq[len(uniq) // 2], uniq[-1]]):
            ax.scatter([], [], s=30 + 270 * s / smax, c="white", edgecolors="black", label=str(s))
    if is_gsea:
        sm = plt.cm.ScalarMappable(norm=norm, cmap=cmap)
        ax.figure.colorbar(sm, ax=ax, label="NES", shrink=0.6)
    ax.set_yticks(y)
    ax.set_yticklabels([str(t) for t in shown["term"]])
    ax.axvline(-np.log10(0.05), color=NS, linestyle="--", linewidth=0.8)
    ax.set_xlim(left=0, right=max(float(np.nanmax(x)) if len(x) else 0.0, 1.5) * 1.08)
    ax.set_xlabel(
        "−log10 adjusted p (dashed line: 0.05)"
        + (f" (GSEA FDR; 0 drawn at 1/{result.attrs['permutations']})" if is_gsea else "")
    )
    title = result.attrs.get("collection", "")
    if title:
        ax.set_title(f"{result.attrs.get('method', '').upper()} · {title}".strip(" ·"))
    if kind != "bar" and len(shown):
        place_legend(ax, title=size_col, fontsize="small", frameon=False)
    return ax


def _gsea_data(result: pd.DataFrame, term: str) -> tuple[np.ndarray, np.ndarray, list[int]]:
    attrs = result.attrs
    if "ranking" not in attrs or "hits" not in attrs:
        msg = format_message(
            "the GSEA result has no running-score data in attrs ('ranking', 'hits')",
            hint="Pass the table returned by tl.gsea unchanged (attrs are lost by some "
            "pandas operations, e.g. concat of differing tables).",
        )
        raise ValidationError(msg)
    _term_row(result, term)
    metric = np.asarray(attrs["ranking"]["metric"], dtype=float)
    genes = np.asarray(attrs["ranking"]["gene"], dtype=object)
    return metric, genes, list(attrs["hits"][term])


def gsea(result: pd.DataFrame, term: str, *, ax: Axes | None = None) -> Axes:
    """Classic GSEA plot of one term: running score, gene ticks and ranked metric.

    Parameters
    ----------
    result
        Output of :func:`olinkpipe.tl.gsea` (uses ``attrs["ranking"]`` and
        ``attrs["hits"]``).
    term
        The term (exact text of the ``term`` column).
    ax
        Matplotlib Axes to draw on; a new figure is made when ``None``.
        Its area is split into the three panels.

    Returns
    -------
    matplotlib.axes.Axes
        The running-score (top) Axes; the tick and metric panels share its x axis.

    Examples
    --------
    >>> import numpy as np, pandas as pd, olinkpipe as op
    >>> genes = [f"G{i}" for i in range(40)]
    >>> res = pd.DataFrame({"gene": genes, "estimate": 1.0, "statistic": np.linspace(3, -3, 40),
    ...                     "p_value": 0.5, "p_adj": 0.5})
    >>> g = op.tl.gsea(res, {"top": genes[:6]}, permutations=50)
    >>> ax = op.pl.gsea(g, "top")
    """
    from ..tl.enrich import running_score

    metric, _, hits = _gsea_data(result, term)
    row = _term_row(result, term)
    weight = float(result.attrs.get("weight", 1.0))
    res = running_score(metric, hits, weight=weight)
    ax = get_ax(ax, figsize=(6.0, 5.0))
    divider = make_axes_locatable(ax)
    ax_hits = divider.append_axes("bottom", size="15%", pad=0.0, sharex=ax)
    ax_rank = divider.append_axes("bottom", size="35%", pad=0.05, sharex=ax)
    x = np.arange(len(metric))
    color = UP if row["es"] >= 0 else DOWN
    ax.plot(x, res, color=color, linewidth=1.8)
    ax.axhline(0, color="black", linewidth=0.6)
    peak = int(np.argmax(np.abs(res)))
    ax.axvline(peak, color=NS, linestyle="--", linewidth=0.8)
    ax.set_ylabel("Running enrichment score")
    positive = row["es"] >= 0
    hit_pos = np.asarray(hits, dtype=int)
    lead = hit_pos <= peak if positive else hit_pos >= peak  # GSEA's leading edge
    ax.text(
        0.99,
        0.97 if positive else 0.03,
        f"leading edge: {int(lead.sum())} of {len(hit_pos)} genes",
        transform=ax.transAxes,
        ha="right",
        va="top" if positive else "bottom",
        fontsize="small",
        color=color,
    )
    floor = _perm_floor(result)
    ax.set_title(
        f"{term}\nES={row['es']:.2f}  NES={row['nes']:.2f}  "
        f"p{_fmt_p(row['p_value'], floor)}  FDR{_fmt_p(row['p_adj'], floor)}",
        fontsize="medium",
    )
    ax.tick_params(labelbottom=False)
    ax_hits.vlines(hit_pos[~lead], 0, 1, color="black", linewidth=0.6)
    ax_hits.vlines(hit_pos[lead], 0, 1, color=color, linewidth=0.9)
    ax_hits.set_yticks([])
    ax_hits.set_ylim(0, 1)
    ax_hits.tick_params(labelbottom=False)
    ax_rank.fill_between(x, metric, 0, where=metric >= 0, color=UP, alpha=0.6, linewidth=0)
    ax_rank.fill_between(x, metric, 0, where=metric < 0, color=DOWN, alpha=0.6, linewidth=0)
    ax_rank.set_ylabel(str(result.attrs.get("rank_by", "metric")))
    ax_rank.set_xlabel("Rank in ordered gene list")
    ax_rank.set_xlim(0, max(len(metric) - 1, 1))
    return ax


def _pathway_rows(
    de_result: pd.DataFrame,
    members: set[str],
    mapping: Mapping[str, str | list[str]] | pd.DataFrame | None,
) -> tuple[pd.DataFrame, list[str]]:
    """Rows of ``de_result`` whose gene(s) are in ``members`` and those genes, per row."""
    frame = de_result.reset_index(drop=True)
    if "gene" in frame.columns:
        genes_per_row = [
            () if pd.isna(g) else tuple(x for x in re.split(r"[;,\s]+", str(g)) if x)
            for g in frame["gene"].tolist()
        ]
    else:
        _need(frame, ["Assay"], "differential result")
        from ..genesets.mapping import map_rows

        ids = (
            frame["OlinkID"].astype(str).tolist()
            if "OlinkID" in frame.columns
            else frame["Assay"].astype(str).tolist()
        )
        uniprot = frame["UniProt"].tolist() if "UniProt" in frame.columns else [None] * len(ids)
        genes_per_row, _ = map_rows(
            ids, frame["Assay"].astype(str).tolist(), uniprot, mapping=mapping
        )
    hits = [[g for g in gs if g in members] for gs in genes_per_row]
    keep = [i for i, h in enumerate(hits) if h]
    return frame.iloc[keep].reset_index(drop=True), [", ".join(hits[i]) for i in keep]


def pathway(
    de_result: pd.DataFrame,
    gene_sets: object,
    term: str,
    *,
    alpha: float = 0.05,
    mapping: Mapping[str, str | list[str]] | pd.DataFrame | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Every measured member of one pathway with its estimate and CI.

    Shows which proteins drive an enrichment: one row per assay whose gene is in the
    set, sorted by estimate (largest on top); significant ones coloured (up red, down
    blue) from the ``significant`` column (or ``p_adj < alpha``), the rest grey, with
    their ``p_adj`` written at the right. Labels give the assay name and, when it
    differs, the gene symbol (``IL-2RB (IL2RB)``); an assay name measured on several
    panels gets the panel in brackets.

    Parameters
    ----------
    de_result
        ``tl.differential`` output (``Assay`` or ``gene``, ``estimate``; ``ci_low``,
        ``ci_high``, ``significant``/``p_adj``, ``Panel`` used when present).
    gene_sets
        Collection name, GMT path, dict or two-column DataFrame holding ``term``.
    term
        The pathway, e.g. ``"JAK-STAT signaling pathway"``.
    alpha
        Threshold on ``p_adj`` when there is no ``significant`` column.
    mapping
        Assay → gene overrides, as in :func:`olinkpipe.genesets.map_assays`.
    ax
        Matplotlib Axes to draw on; a new figure is made when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on.

    Examples
    --------
    >>> import pandas as pd, olinkpipe as op
    >>> res = pd.DataFrame({"Assay": ["IL-2RB", "IL6", "PD-L1"], "estimate": [1.1, 0.4, -0.2],
    ...                     "ci_low": [0.6, -0.1, -0.6], "ci_high": [1.6, 0.9, 0.2],
    ...                     "p_adj": [0.001, 0.2, 0.5]})
    >>> ax = op.pl.pathway(res, "KEGG_2021_Human", "JAK-STAT signaling pathway")
    """
    from ..genesets.collections import as_collection, close_matches

    _need(de_result, ["estimate"], "differential result")
    coll = as_collection(gene_sets)
    if term not in coll:
        close = close_matches(term, coll)
        msg = format_message(
            f"term {term!r} is not in gene-set collection {coll.name!r} ({len(coll)} terms)",
            hint=(
                f"Did you mean {' or '.join(map(repr, close))}?"
                if close
                else "Use the exact term name; none in the collection is close to this one."
            ),
        )
        raise ValidationError(msg)
    members = set(coll[term])
    sub, genes = _pathway_rows(de_result, members, mapping)
    if sub.empty:
        msg = format_message(
            f"no measured assay belongs to {term!r} ({len(members)} genes)",
            hint="Check the assay-to-gene mapping with genesets.map_assays.",
        )
        raise ValidationError(msg)
    sub = sub.assign(_genes=genes).sort_values("estimate", kind="mergesort")
    sub = sub.reset_index(drop=True)
    if "significant" in sub.columns:
        sig = sub["significant"].fillna(value=False).astype(bool).to_numpy()
        rule = "significant"
    elif "p_adj" in sub.columns:
        sig = (sub["p_adj"] < alpha).to_numpy()
        rule = f"p_adj < {alpha:g}"
    else:
        sig = np.zeros(len(sub), dtype=bool)
        rule = "no p_adj"
    est = sub["estimate"].to_numpy(dtype=float)
    up, down = sig & (est > 0), sig & (est < 0)
    colors = np.where(up, UP, np.where(down, DOWN, NS))
    ax = get_ax(ax, figsize=(6.5, max(2.5, 0.28 * len(sub) + 1.4)))
    y = np.arange(len(sub))
    if {"ci_low", "ci_high"} <= set(sub.columns):
        lo = est - sub["ci_low"].to_numpy(dtype=float)
        hi = sub["ci_high"].to_numpy(dtype=float) - est
        for yi, e, lw, hw, c in zip(y, est, lo, hi, colors, strict=True):
            ax.errorbar(e, yi, xerr=[[lw], [hw]], fmt="none", ecolor=c, elinewidth=1.2, capsize=2)
    ax.scatter(est, y, c=list(colors), s=36, zorder=3, edgecolors="black", linewidths=0.4)
    names = sub["Assay"].astype(str) if "Assay" in sub.columns else sub["_genes"]
    repeated = names.duplicated(keep=False).to_numpy()
    labels = []
    for i, (name, g) in enumerate(zip(names, sub["_genes"], strict=True)):
        text = name if name == g else f"{name} ({g})"
        if repeated[i] and "Panel" in sub.columns:
            text += f" [{sub['Panel'].iloc[i]}]"
        labels.append(text)
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize="small")
    for tick, is_sig in zip(ax.get_yticklabels(), sig, strict=True):
        tick.set_fontweight("bold" if is_sig else "normal")
    ax.set_ylim(-0.7, len(sub) - 0.3)
    if "p_adj" in sub.columns:
        trans = ax.get_yaxis_transform()
        for yi, p, is_sig in zip(y, sub["p_adj"].to_numpy(dtype=float), sig, strict=True):
            if np.isfinite(p):
                ax.text(
                    1.01, yi, f"{p:.1e}" if p < 1e-3 else f"{p:.3f}", transform=trans,
                    va="center", ha="left", fontsize="x-small",
                    color="black" if is_sig else NS,
                )  # fmt: skip
        ax.text(1.01, 1.0, "p_adj", transform=ax.transAxes, va="bottom", fontsize="x-small")
    ax.axvline(0, color="black", linewidth=0.6)
    sign = de_result.attrs.get("sign") or de_result.attrs.get("contrast")
    ax.set_xlabel(f"estimate ({sign})" if sign else "estimate")
    ci = de_result.attrs.get("conf_level")
    if ci and {"ci_low", "ci_high"} <= set(sub.columns):
        ax.set_xlabel(ax.get_xlabel() + f", {float(ci):.0%} CI")
    ax.set_title(
        f"{term} ({len(members)} genes)\n{int(sig.sum())} of {len(sub)} measured members "
        f"{rule}: {int(up.sum())} up, {int(down.sum())} down",
        fontsize="medium",
    )
    handles = [
        Line2D([], [], marker="o", linestyle="", color=c, label=f"{lab} ({n})")
        for c, lab, n in [
            (UP, "up", int(up.sum())),
            (DOWN, "down", int(down.sum())),
            (NS, "not significant", int((~sig).sum())),
        ]
        if n
    ]
    place_legend(ax, handles=handles, fontsize="small", frameon=True, framealpha=0.9)
    return ax


def leading_edge(
    adata: ad.AnnData,
    gsea_result: pd.DataFrame,
    term: str,
    groupby: str,
    *,
    pair: str | None = None,
    order: Sequence[str] | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Heatmap of a term's leading-edge assays, samples ordered by group (and pair).

    Values are NPX centred and scaled per assay (z-scores over the samples shown; NaN
    stays blank).

    Parameters
    ----------
    adata
        The samples × assays AnnData the result came from.
    gsea_result
        Output of :func:`olinkpipe.tl.gsea` (``leading_edge`` column; ``attrs["gene_assay"]``
        says which assay stood for each gene).
    term
        The term whose leading edge is drawn.
    groupby
        ``obs`` column ordering the samples.
    pair
        Optional ``obs`` column (subject) ordering samples within each group.
    order
        Order of the ``groupby`` levels. Default: the levels of the differential result
        the GSEA came from (reference first, from ``attrs["input"]``) when it used the
        same ``groupby``, else the categorical order, else sorted.
    ax
        Matplotlib Axes to draw on; a new figure is made when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        The heatmap Axes.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd, olinkpipe as op
    >>> genes = [f"G{i}" for i in range(30)]
    >>> adata = ad.AnnData(np.random.default_rng(0).normal(size=(6, 30)),
    ...     obs=pd.DataFrame({"time": ["pre", "post"] * 3}, index=[f"s{i}" for i in range(6)]),
    ...     var=pd.DataFrame({"Assay": genes}, index=[f"OID{i}" for i in range(30)]))
    >>> res = pd.DataFrame({"Assay": genes, "estimate": 1.0, "statistic": np.linspace(3, -3, 30),
    ...                     "p_value": 0.5, "p_adj": 0.5})
    >>> g = op.tl.gsea(res, {"top": genes[:6]}, permutations=50)
    >>> ax = op.pl.leading_edge(adata, g, "top", groupby="time")
    """
    row = _term_row(gsea_result, term)
    for col in [groupby] + ([pair] if pair else []):
        if col not in adata.obs.columns:
            msg = format_message(
                f"adata.obs has no column {col!r}",
                column=col,
                hint=f"obs columns: {list(adata.obs.columns)[:15]!r}",
            )
            raise MissingColumnError(msg)
    genes = [g for g in str(row["leading_edge"]).split(";") if g]
    gene_assay = gsea_result.attrs.get("gene_assay", {})
    var = adata.var
    cols: list[int] = []
    names: list[str] = []
    mapped = None
    for g in genes:
        key = gene_assay.get(g)
        pos = None
        if key is not None and key in var.index:
            pos = var.index.get_loc(key)
        elif key is not None and "Assay" in var.columns and (var["Assay"] == key).any():
            pos = int(np.flatnonzero((var["Assay"] == key).to_numpy())[0])
        else:
            if mapped is None:
                from ..genesets import map_assays

                mapped = map_assays(adata)
            hit = mapped.loc[mapped["gene"] == g, "OlinkID"]
            if len(hit):
                pos = var.index.get_loc(hit.iloc[0])
        if pos is not None:
            cols.append(int(pos))
            label = str(var["Assay"].iloc[pos]) if "Assay" in var.columns else g
            names.append(label if label == g else f"{label} ({g})")
    if not cols:
        msg = format_message(
            f"none of the leading-edge genes of {term!r} is an assay of adata",
            rows=genes,
            hint="Pass the AnnData the differential result was computed from.",
        )
        raise DesignError(msg)
    obs = adata.obs
    grp = obs[groupby]
    source = gsea_result.attrs.get("input", {})
    if order is not None:
        levels = [str(v) for v in order]
    elif source.get("groupby") == groupby and source.get("levels"):
        levels = [str(v) for v in source["levels"]]
    elif isinstance(grp.dtype, pd.CategoricalDtype):
        levels = [str(v) for v in grp.cat.categories]
    else:
        levels = sorted(grp.dropna().astype(str).unique())
    present_values = set(grp.dropna().astype(str))
    levels += sorted(present_values - set(levels))
    rank = {lv: i for i, lv in enumerate(levels)}
    order_df = pd.DataFrame(
        {
            "g": grp.astype(object).map(lambda v: rank.get(str(v), len(rank))),
            "p": obs[pair].astype(str) if pair else "",
            "i": np.arange(adata.n_obs),
        }
    )
    order = order_df.sort_values(["g", "p", "i"], kind="mergesort")["i"].to_numpy()
    x = np.asarray(
        adata.X[:, cols] if not hasattr(adata.X, "toarray") else adata.X[:, cols].toarray()
    )
    x = np.asarray(x, dtype=float)[order].T  # assays × samples
    with np.errstate(invalid="ignore"):
        mu = np.nanmean(x, axis=1, keepdims=True)
        sd = np.nanstd(x, axis=1, ddof=1, keepdims=True)
        z = (x - mu) / np.where(sd > 0, sd, 1.0)
    ax = get_ax(ax, figsize=(max(5.0, 0.12 * len(order) + 3), max(2.5, 0.3 * len(cols) + 1.5)))
    lim = float(np.nanmax(np.abs(z))) if np.isfinite(z).any() else 1.0
    im = ax.imshow(z, aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim, interpolation="nearest")
    ax.figure.colorbar(im, ax=ax, label="NPX z-score", shrink=0.7)
    ax.set_yticks(np.arange(len(cols)))
    ax.set_yticklabels(names, fontsize="small")
    g_sorted = order_df["g"].to_numpy()[order]
    bounds = np.flatnonzero(np.diff(g_sorted)) + 0.5
    for b in bounds:
        ax.axvline(b, color="black", linewidth=1.0)
    edges = np.concatenate([[-0.5], bounds, [len(order) - 0.5]])
    centers = (edges[:-1] + edges[1:]) / 2
    present = [levels[int(v)] if int(v) < len(levels) else "NA" for v in pd.unique(g_sorted)]
    ax.set_xticks(centers)
    ax.set_xticklabels([str(p) for p in present])
    ax.set_xlabel(groupby + (f" (ordered by {pair})" if pair else ""))
    ax.set_title(f"Leading edge: {term}", fontsize="medium")
    return ax
