"""Per-protein panels as OlinkAnalyze draws them: marginal means after lmer, boxplots with stars."""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from .._validate import require_columns
from ..errors import DesignError, MissingColumnError, format_message
from ._style import group_color

__all__ = ["lmer", "boxplot", "stars"]


def _grid(n: int, ncols: int, size=(3.6, 3.2)) -> list[Axes]:
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    _, axes = plt.subplots(nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.set_visible(False)
    return flat[:n]


def _levels_in(values: pd.Series, order: Sequence[str] | None) -> list[str]:
    if order is not None:
        return [str(o) for o in order]
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [str(c) for c in values.cat.categories if (values == c).any()]
    return [str(v) for v in pd.unique(values.dropna())]


def _assay_title(frame: pd.DataFrame, oid: str) -> str:
    if "Assay" in frame:
        return f"{frame['Assay'].iloc[0]} ({oid})"
    return str(oid)


def lmer(
    means: pd.DataFrame,
    x: str,
    *,
    color: str | None = None,
    assays: Sequence[str] | None = None,
    order: Sequence[str] | None = None,
    ncols: int = 3,
) -> list[Axes]:
    """Estimated marginal means with CIs per level, one panel per assay (``olink_lmer_plot``).

    Draws the frame of ``tl.lmer_posthoc(..., effect="Time" or "Time:Treatment",
    mean_return=True)``, recomputing nothing: per assay, ``emmean`` with the interval
    ``ci_low``–``ci_high`` over the levels of ``x``, dodged by the levels of ``color``
    (OlinkAnalyze's ``x_axis_variable`` and ``col_variable``). OlinkAnalyze fits the model
    inside the plot function and pages 6 assays per figure; here the caller passes the
    frame and the assays, all in one figure.

    Parameters
    ----------
    means
        ``tl.lmer_posthoc(..., mean_return=True)`` (columns ``OlinkID``, the effect
        columns, ``emmean``, ``ci_low``, ``ci_high``; ``Assay`` if present).
    x
        Effect column on the x axis (e.g. ``"Time"``).
    color
        Second effect column, one colour per level (e.g. ``"Treatment"``).
    assays
        OlinkIDs to draw, in this order; default all, in the frame's order.
    order
        Order of the ``x`` levels; default the frame's (emmeans') order.
    ncols
        Panels per row.

    Returns
    -------
    list of matplotlib.axes.Axes
        One Axes per assay; each colour level is one ``errorbar`` container.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> means = pd.DataFrame({"OlinkID": "OID1", "Assay": "IL6", "Time": ["D0", "D7"],
    ...                       "emmean": [1.0, 2.0], "ci_low": [0.5, 1.4], "ci_high": [1.5, 2.6]})
    >>> axes = op.pl.lmer(means, "Time")
    >>> axes[0].get_title()
    'IL6 (OID1)'
    """
    cols = ["OlinkID", x, "emmean", "ci_low", "ci_high"] + ([color] if color else [])
    require_columns(means, cols, what="lmer_posthoc(mean_return=True) frame")
    oids = list(pd.unique(means["OlinkID"])) if assays is None else list(assays)
    unknown = [a for a in oids if a not in set(means["OlinkID"])]
    if unknown:
        msg = format_message(f"assays not in the frame: {unknown[:5]!r}", column="OlinkID")
        raise DesignError(msg)
    xlv = _levels_in(means[x].astype(str), order)
    clv = [None] if color is None else _levels_in(means[color].astype(str), None)
    width = 0.4  # OlinkAnalyze's dodge
    offs = np.linspace(-width / 2, width / 2, len(clv)) if len(clv) > 1 else np.zeros(1)
    axes = _grid(len(oids), ncols)
    for ax, oid in zip(axes, oids, strict=True):
        sub = means[means["OlinkID"] == oid]
        for i, lv in enumerate(clv):
            part = sub if lv is None else sub[sub[color].astype(str) == lv]
            part = part.set_index(part[x].astype(str)).reindex(xlv).dropna(subset=["emmean"])
            pos = np.array([xlv.index(v) for v in part.index]) + offs[i]
            em = part["emmean"].to_numpy(float)
            err = np.vstack([em - part["ci_low"].to_numpy(float), part["ci_high"] - em])
            ax.errorbar(
                pos, em, yerr=err, fmt="o", ms=5, capsize=0, color=group_color(i),
                label=x if lv is None else lv,
            )  # fmt: skip
        ax.set_xticks(range(len(xlv)))
        ax.set_xticklabels(xlv, fontsize=8)
        ax.set_xlim(-0.6, len(xlv) - 0.4)
        ax.set_ylabel("NPX")
        ax.set_title(_assay_title(sub, oid), fontsize=9)
        if color is not None:
            ax.legend(title=color, fontsize=7, frameon=False)
    return axes


def stars(p_adj: np.ndarray | pd.Series) -> np.ndarray:
    """OlinkAnalyze's boxplot stars: ``*`` p < 0.05, ``**`` p ≤ 0.01, ``***`` p ≤ 0.005.

    Examples
    --------
    >>> stars([0.03, 0.01, 0.004, 0.2]).tolist()
    ['*', '**', '***', '']
    """
    p = np.asarray(p_adj, dtype=float)
    return np.select([p <= 0.005, p <= 0.01, p < 0.05], ["***", "**", "*"], default="")


def _brackets(ph: pd.DataFrame, levels: list[str], top: float, span: float) -> list[tuple]:
    """(x1, x2, y, star) of the significant contrasts between two drawn levels (as OA)."""
    pairs = {f"{a} - {b}": (a, b) for a in levels for b in levels if a != b}
    rows = [(pairs[c], p, s) for c, p, s in zip(ph["contrast"], ph["p_adj"], ph["significant"], strict=True) if c in pairs]  # fmt: skip
    rows.sort(key=lambda r: min(r[0]))  # OlinkAnalyze orders by the smaller level name
    n = len(rows)
    out = []
    for k, ((a, b), p, sig) in enumerate(rows, start=1):
        if bool(sig):
            y = top + k * span * 0.2 / n
            out.append((levels.index(a), levels.index(b), y, str(stars([p])[0])))
    return out


def boxplot(
    adata: ad.AnnData,
    assays: str | Sequence[str],
    groupby: str,
    *,
    posthoc: pd.DataFrame | None = None,
    order: Sequence[str] | None = None,
    layer: str | None = None,
    ncols: int = 3,
) -> list[Axes]:
    """NPX per group, one panel per assay, with post-hoc stars (OlinkAnalyze ``olink_boxplot``).

    Boxes of the assay's NPX (NaN left out) per level of ``groupby``. With ``posthoc``
    (``tl.anova_posthoc`` or any frame with ``OlinkID``, ``contrast`` ``"A - B"``,
    ``p_adj`` and ``significant``), each significant contrast between two drawn levels
    gets a bracket and stars, placed as OlinkAnalyze does: contrasts ordered by their
    alphabetically smaller level, the k-th of ``m`` at ``max + k · 0.2 · range / m``
    (max and range of the assay's NPX), stars ``*`` p < 0.05, ``**`` p ≤ 0.01, ``***``
    p ≤ 0.005 (OlinkAnalyze's cut-offs, not the usual 0.001). Nothing is recomputed.
    OlinkAnalyze's ``fill_var`` (boxes split by a second variable) is not offered.

    Parameters
    ----------
    adata
        Samples × assays AnnData.
    assays
        OlinkIDs (``var_names``) to draw, in order.
    groupby
        ``obs`` column of the groups (x axis).
    posthoc
        Post-hoc frame whose significant contrasts get brackets and stars.
    order
        Order of the levels; default the categories or the sorted values.
    layer
        Use this layer instead of ``X``.
    ncols
        Panels per row.

    Returns
    -------
    list of matplotlib.axes.Axes
        One Axes per assay; brackets are ``Line2D`` with label ``"posthoc"``, stars are
        the Axes' texts.

    Examples
    --------
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> obs = pd.DataFrame({"Site": ["A", "B"] * 4}, index=list("abcdefgh"))
    >>> var = pd.DataFrame(index=pd.Index(["OID1"], name="OlinkID"))
    >>> adata = ad.AnnData(np.arange(8.0).reshape(8, 1), obs=obs, var=var)
    >>> ph = pd.DataFrame({"OlinkID": ["OID1"], "contrast": ["A - B"], "p_adj": [0.008],
    ...                    "significant": [True]})
    >>> axes = op.pl.boxplot(adata, "OID1", "Site", posthoc=ph)
    >>> [t.get_text() for t in axes[0].texts]
    ['**']
    """
    oids = [assays] if isinstance(assays, str) else list(assays)
    unknown = [a for a in oids if a not in adata.var_names]
    if unknown:
        msg = format_message(f"assays not in var_names: {unknown[:5]!r}", column="OlinkID")
        raise DesignError(msg)
    if groupby not in adata.obs:
        msg = format_message(f"obs has no column {groupby!r}", column=groupby)
        raise MissingColumnError(msg)
    if posthoc is not None:
        require_columns(posthoc, ["OlinkID", "contrast", "p_adj", "significant"], what="posthoc")
    col = adata.obs[groupby]
    if order is not None:
        levels = [str(o) for o in order]
    elif isinstance(col.dtype, pd.CategoricalDtype):
        levels = [str(c) for c in col.cat.categories]
    else:
        levels = sorted(col.dropna().astype(str).unique())
    groups = col.astype(object).where(col.notna(), None).to_numpy()
    groups = np.array([None if g is None else str(g) for g in groups], dtype=object)
    X = adata.X if layer is None else adata.layers[layer]
    axes = _grid(len(oids), ncols)
    for ax, oid in zip(axes, oids, strict=True):
        j = adata.var_names.get_loc(oid)
        y = np.asarray(X[:, j].toarray() if hasattr(X, "toarray") else X[:, j], float).ravel()
        data = [y[(groups == lv) & ~np.isnan(y)] for lv in levels]
        bp = ax.boxplot(data, positions=np.arange(len(levels)), patch_artist=True, widths=0.6)
        for i, box in enumerate(bp["boxes"]):
            box.set_facecolor(group_color(i))
            box.set_alpha(0.8)
        ax.set_xticks(range(len(levels)))
        ax.set_xticklabels(levels, fontsize=8)
        ax.set_xlabel(groupby)
        ax.set_ylabel("NPX")
        title = f"{adata.var['Assay'].iloc[j]} ({oid})" if "Assay" in adata.var else str(oid)
        ax.set_title(title, fontsize=9)
        if posthoc is not None:
            ok = y[~np.isnan(y)]
            if ok.size == 0:
                continue
            ph = posthoc[posthoc["OlinkID"] == oid]
            for x1, x2, yb, star in _brackets(ph, levels, ok.max(), np.ptp(ok)):
                ax.plot([x1, x2], [yb, yb], color="k", lw=0.9, label="posthoc")
                ax.text((x1 + x2) / 2, yb + 0.1, star, ha="center", va="bottom")
    return axes
