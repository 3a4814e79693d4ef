"""Clustered heatmap with annotation bars (OlinkAnalyze ``olink_heatmap_plot``, pheatmap)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_rgba
from matplotlib.patches import Patch

from ..errors import MissingColumnError, ValidationError, format_message
from ._style import group_color

__all__ = ["clustered_heatmap", "nan_euclidean"]


def nan_euclidean(Z: np.ndarray) -> np.ndarray:
    """Euclidean distances between rows as R's ``dist``: NaN pairs skipped, sum scaled up.

    ``d(i, j)² = p / n_ij · Σ_k (z_ik − z_jk)²`` over the ``n_ij`` columns where both rows
    are observed (``p`` columns in all); NaN when they share none.

    Examples
    --------
    >>> nan_euclidean(np.array([[0.0, 0.0], [3.0, np.nan]])).round(4).tolist()
    [[0.0, 4.2426], [4.2426, 0.0]]
    """
    m = ~np.isnan(Z)
    z = np.where(m, Z, 0.0)
    mf = m.astype(float)
    sq = z**2 @ mf.T
    s = sq + sq.T - 2.0 * z @ z.T
    n = mf @ mf.T
    with np.errstate(divide="ignore", invalid="ignore"):
        d2 = np.where(n > 0, np.clip(s, 0.0, None) * Z.shape[1] / n, np.nan)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(d2)


def _order(Z: np.ndarray, method: str, cluster: bool):
    from scipy.cluster.hierarchy import leaves_list, linkage
    from scipy.spatial.distance import squareform

    if not cluster or Z.shape[0] < 2:
        return np.arange(Z.shape[0]), None
    d = nan_euclidean(Z)
    if np.isnan(d).any():
        msg = "two rows share no observed value; their distance is undefined (filter them)."
        raise ValidationError(msg)
    link = linkage(squareform(d, checks=False), method=method)
    return leaves_list(link), link


def _annotation_rgba(frame: pd.DataFrame, cols: list[str]):
    """RGBA image (items × columns) and legend handles per annotation column."""
    img = np.zeros((len(frame), len(cols), 4))
    handles = {}
    for j, c in enumerate(cols):
        v = frame[c]
        if pd.api.types.is_numeric_dtype(v) and not pd.api.types.is_bool_dtype(v):
            x = v.to_numpy(float)
            lo, hi = np.nanmin(x), np.nanmax(x)
            t = (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)
            img[:, j] = plt.get_cmap("viridis")(np.nan_to_num(t))
            img[np.isnan(x), j] = to_rgba("white")
            handles[c] = [Patch(color=plt.get_cmap("viridis")(q), label=f"{lo + q * (hi - lo):.3g}") for q in (0, 1)]  # fmt: skip
        else:
            s = v.astype(object).where(v.notna(), "NA").astype(str)
            levels = sorted(s.unique())
            cmap = {lv: group_color(i) for i, lv in enumerate(levels)}
            img[:, j] = [to_rgba(cmap[x]) for x in s]
            handles[c] = [Patch(color=cmap[lv], label=lv) for lv in levels]
    return img, handles


def clustered_heatmap(
    adata: ad.AnnData,
    *,
    assays: Sequence[str] | None = None,
    obs_annotation: str | Sequence[str] | None = None,
    var_annotation: str | Sequence[str] | None = None,
    center_scale: bool = True,
    cluster_samples: bool = True,
    cluster_assays: bool = True,
    method: str = "complete",
    cmap: str = "RdBu_r",
    layer: str | None = None,
) -> Axes:
    """Samples × assays heatmap, clustered, with annotation bars (``olink_heatmap_plot``).

    As OlinkAnalyze (pheatmap's defaults): samples are rows, assays columns; assays with
    no variance are left out; with ``center_scale`` each assay is centred and divided by
    its SD (NaN ignored); rows and columns are clustered hierarchically (scipy
    ``linkage``, complete linkage) on Euclidean distances computed as R's ``dist``
    (NaN pairs skipped, the sum scaled up, :func:`nan_euclidean`), after scaling.
    Leaves are in scipy's order (``leaves_list``): the trees are R's ``hclust`` trees, but
    a merge's two branches may be drawn the other way round than pheatmap draws them.
    ``obs`` columns become bars beside the rows, ``var`` columns bars above the columns
    (categorical: one colour per level; numeric: viridis); NaN cells are grey.

    Parameters
    ----------
    adata
        Samples × assays AnnData (subset it to the samples and assays to show).
    assays
        OlinkIDs to show; default all.
    obs_annotation
        ``obs`` column(s) annotating the samples (OlinkAnalyze ``variable_row_list``).
    var_annotation
        ``var`` column(s) annotating the assays (``variable_col_list``, e.g. ``"Panel"``).
    center_scale
        Centre and scale each assay (pheatmap ``scale = "column"``).
    cluster_samples, cluster_assays
        Cluster (and draw the dendrogram of) the rows / columns.
    method
        scipy ``linkage`` method (``"complete"`` as ``hclust``'s default).
    cmap
        Colour map of the heatmap.
    layer
        Use this layer instead of ``X``.

    Returns
    -------
    matplotlib.axes.Axes
        The heatmap Axes (rows and columns labelled in the clustered order when there are
        at most 100); the dendrograms, annotation bars and legends are the figure's other
        Axes, labelled ``"sample_dendrogram"``, ``"assay_dendrogram"``,
        ``"obs_annotation"``, ``"var_annotation"``, ``"legend"``.

    Examples
    --------
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> sub = adata[:30, :20]
    >>> ax = op.pl.clustered_heatmap(sub, obs_annotation="PlateID", var_annotation="Panel")
    >>> len(ax.get_yticklabels())
    30
    """
    from scipy.cluster.hierarchy import dendrogram

    obs_cols = [obs_annotation] if isinstance(obs_annotation, str) else list(obs_annotation or [])
    var_cols = [var_annotation] if isinstance(var_annotation, str) else list(var_annotation or [])
    for cols, frame, where in ((obs_cols, adata.obs, "obs"), (var_cols, adata.var, "var")):
        miss = [c for c in cols if c not in frame]
        if miss:
            msg = format_message(f"{where} has no column(s) {miss!r}", column=miss[0])
            raise MissingColumnError(msg)
    sub = adata if assays is None else adata[:, list(assays)]
    X = sub.X if layer is None else sub.layers[layer]
    X = np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = np.nanstd(X, axis=0, ddof=1)
        mu = np.nanmean(X, axis=0)
    keep = np.isfinite(sd) & (sd > 0)
    if keep.sum() < 1 or X.shape[0] < 2:
        msg = "the heatmap needs at least 2 samples and 1 assay with varying NPX."
        raise ValidationError(msg)
    X, mu, sd = X[:, keep], mu[keep], sd[keep]
    Z = (X - mu) / sd if center_scale else X
    var = sub.var.loc[keep]
    r_ord, r_link = _order(Z, method, cluster_samples)
    c_ord, c_link = _order(Z.T, method, cluster_assays)
    Z = Z[np.ix_(r_ord, c_ord)]
    n, p = Z.shape

    fig = plt.figure(figsize=(min(16.0, 3.5 + 0.12 * p), min(14.0, 2.5 + 0.12 * n)))
    widths = [1.2, 0.25 * max(len(obs_cols), 0.001), 6.0, 1.3, 1.6]  # gap for row labels
    heights = [1.2, 0.25 * max(len(var_cols), 0.001), 6.0]
    gs = fig.add_gridspec(3, 5, width_ratios=widths, height_ratios=heights, wspace=0.03, hspace=0.03)  # fmt: skip
    ax = fig.add_subplot(gs[2, 2])
    lim = np.nanmax(np.abs(Z)) if center_scale else None
    im = ax.imshow(
        np.ma.masked_invalid(Z), aspect="auto", interpolation="nearest",
        cmap=plt.get_cmap(cmap).with_extremes(bad="0.85"),
        vmin=-lim if lim else None, vmax=lim,
    )  # fmt: skip
    names = var["Assay"].astype(str).to_numpy() if "Assay" in var else var.index.to_numpy()
    ax.set_yticks(np.arange(n) if n <= 100 else [])
    ax.set_yticklabels([str(s) for s in sub.obs_names[r_ord]] if n <= 100 else [], fontsize=6)
    ax.yaxis.tick_right()
    ax.set_xticks(np.arange(p) if p <= 100 else [])
    ax.set_xticklabels([str(s) for s in names[c_ord]] if p <= 100 else [], fontsize=6, rotation=90)
    ax.set_label("heatmap")
    legend_handles = {}
    if r_link is not None:
        dax = fig.add_subplot(gs[2, 0])
        dendrogram(r_link, ax=dax, orientation="left", no_labels=True, color_threshold=0, above_threshold_color="k")  # fmt: skip
        dax.set_ylim(10 * n, 0)
        dax.set_axis_off()
        dax.set_label("sample_dendrogram")
    if c_link is not None:
        dax = fig.add_subplot(gs[0, 2])
        dendrogram(c_link, ax=dax, no_labels=True, color_threshold=0, above_threshold_color="k")  # fmt: skip
        dax.set_xlim(0, 10 * p)
        dax.set_axis_off()
        dax.set_label("assay_dendrogram")
    if obs_cols:
        img, h = _annotation_rgba(sub.obs.iloc[r_ord], obs_cols)
        aax = fig.add_subplot(gs[2, 1], sharey=ax)
        aax.imshow(img, aspect="auto", interpolation="nearest")
        aax.set_xticks(range(len(obs_cols)))
        aax.set_xticklabels(obs_cols, rotation=90, fontsize=7)
        aax.tick_params(left=False, labelleft=False)
        aax.set_label("obs_annotation")
        legend_handles |= h
    if var_cols:
        img, h = _annotation_rgba(var.iloc[c_ord], var_cols)
        aax = fig.add_subplot(gs[1, 2], sharex=ax)
        aax.imshow(np.transpose(img, (1, 0, 2)), aspect="auto", interpolation="nearest")
        aax.set_yticks(range(len(var_cols)))
        aax.set_yticklabels(var_cols, fontsize=7)
        aax.tick_params(bottom=False, labelbottom=False)
        aax.set_label("var_annotation")
        legend_handles |= h
    lax = fig.add_subplot(gs[:, 4])
    lax.set_axis_off()
    lax.set_label("legend")
    cax = lax.inset_axes((0.0, 0.78, 0.12, 0.22))
    fig.colorbar(im, cax=cax, label="scaled NPX" if center_scale else "NPX")
    y = 0.74
    for title, handles in legend_handles.items():
        leg = lax.legend(handles=handles, title=title, fontsize=6, title_fontsize=7, loc="upper left", bbox_to_anchor=(0.0, y), frameon=False)  # fmt: skip
        lax.add_artist(leg)
        y -= 0.06 * (len(handles) + 1.5)
    return ax
