"""QC figures: Olink's IQR-vs-median plot, PCA, per-sample NPX distributions, bridge shifts."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from .._controls import control_assays
from .._docs import doc_ax, doc_params
from .._layout import panels, per_panel_obs
from ..errors import ValidationError
from ._style import HIGHLIGHT, NS, get_ax, group_color, place_legend

__all__ = ["qc", "distribution", "bridge"]


@doc_params(ax=doc_ax)
def qc(
    data: ad.AnnData | pd.DataFrame,
    *,
    sd: float = 3.0,
    panel: str | None = None,
    label_outliers: bool = True,
    ax: Axes | None = None,
) -> Axes:
    """Olink's QC plot: per-sample NPX IQR against median, per panel, with outlier limits.

    One point per sample and panel. A dashed box per panel spans mean ± ``sd`` SD of the
    sample medians (x) and IQRs (y): samples outside it are outliers, the rule of
    :func:`olinkpipe.pp.flag_outliers` and OlinkAnalyze ``olink_qc_plot`` (which draws the
    same limits as lines, one facet per panel). Panels share the Axes, one colour each
    (pass ``panel`` for one panel alone); samples with a QC warning are drawn as crosses;
    outliers are labelled with their SampleID.

    Parameters
    ----------
    data
        An AnnData, or the frame of ``olinkpipe.pp.qc_summary(adata)``.
    sd
        Standard deviations defining an outlier.
    panel
        Draw only this panel.
    label_outliers
        Write the SampleID next to outliers.
    {ax}

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on.

    Examples
    --------
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> ax = op.pl.qc(adata)
    >>> len(ax.patches)  # one dashed outlier box per panel
    4
    >>> [t.get_text() for t in ax.texts]  # the outlier, labelled
    ['OL0041']
    """
    from .._qc import is_pass
    from ..pp.qc import outside_limits, qc_limits, qc_summary

    summary = qc_summary(data) if isinstance(data, ad.AnnData) else data
    if panel is not None:
        names = sorted(set(summary["Panel"].astype(str)))
        summary = summary[summary["Panel"] == panel]
        if summary.empty:
            from .._names import close_matches

            close = close_matches(panel, names)
            msg = f"panel {panel!r} not found in the QC summary; panels: {names!r}." + (
                f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
            )
            raise ValidationError(msg)
    ax = get_ax(ax)
    limits = qc_limits(summary, sd=sd).set_index("Panel")
    handles = []
    for i, (name, grp) in enumerate(summary.groupby("Panel", sort=False)):
        color = group_color(i)
        warn_mask = ~is_pass(grp["QC_Warning"])
        med, iqr = grp["median"].to_numpy(float), grp["iqr"].to_numpy(float)
        ax.scatter(med[~warn_mask], iqr[~warn_mask], s=18, color=color, alpha=0.8, label=name)
        if warn_mask.any():
            ax.scatter(med[warn_mask], iqr[warn_mask], s=30, color=color, marker="x")
        lim = limits.loc[name]
        lo_m, hi_m, lo_i, hi_i = (
            float(lim[k]) for k in ("median_low", "median_high", "iqr_low", "iqr_high")
        )
        if np.isfinite([lo_m, hi_m, lo_i, hi_i]).all():  # the panel's "inside" region
            ax.add_patch(
                Rectangle(
                    (lo_m, lo_i),
                    hi_m - lo_m,
                    hi_i - lo_i,
                    fill=False,
                    edgecolor=color,
                    linestyle="--",
                    linewidth=0.9,
                    label=f"_{name} limits",
                )
            )
        if label_outliers:  # the samples the dashed box leaves out
            out = outside_limits(med, iqr, lo_m, hi_m, lo_i, hi_i)
            for x, y, s in zip(med[out], iqr[out], grp["SampleID"].to_numpy()[out], strict=True):
                ax.annotate(str(s), (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        handles.append(Line2D([], [], marker="o", linestyle="", color=color, label=str(name)))
    if len(summary):
        handles.append(Line2D([], [], marker="x", linestyle="", color=NS, label="QC warning"))
        handles.append(
            Line2D([], [], linestyle="--", color=NS, label=f"mean ± {sd:g} SD (per panel)")
        )
    ax.autoscale_view()
    ax.set_xlabel("Sample median NPX (per panel)")
    ax.set_ylabel("Sample IQR of NPX (per panel)")
    ax.set_title(f"QC: samples outside the dashed box (mean ± {sd:g} SD) are outliers", fontsize=9)
    place_legend(ax, handles=handles, fontsize=7, frameon=False)
    return ax


@doc_params(ax=doc_ax)
def distribution(
    adata: ad.AnnData,
    *,
    color: str = "PlateID",
    panel: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Per-sample NPX boxplots, ordered and coloured by plate (or another ``obs`` column).

    Each box summarises one sample's NPX over the assays (control assays left out):
    median line, quartile box, whiskers to 1.5 IQR, no fliers. A plate with shifted or
    compressed boxes needs plate normalization (:func:`olinkpipe.pp.normalize_plates`).

    Parameters
    ----------
    adata
        Samples × assays AnnData.
    color
        ``obs`` column for colour and order (default ``PlateID``; with ``panel`` given,
        that panel's plate from ``obsm["PlateID"]``).
    panel
        Only the assays of this ``var["Panel"]`` (OlinkAnalyze ``olink_dist_plot`` draws
        one facet per panel); all assays when None.
    {ax}

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on; one box per sample (samples with no value on the assays drawn,
        e.g. not run on ``panel``, get none; the x label gives the count).

    Examples
    --------
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> ax = op.pl.distribution(adata, panel="Oncology")
    >>> len(ax.patches) == adata.n_obs
    True
    """
    cols = ~control_assays(adata)
    if panel is not None:
        on_panel = panels(adata) == panel
        if not on_panel.any():
            msg = (
                f"panel={panel!r} is not in var['Panel']; choose one of "
                f"{list(pd.unique(panels(adata)))!r}."
            )
            raise ValidationError(msg)
        cols &= on_panel
    if color not in adata.obs:
        msg = f"color={color!r} is not an obs column; choose one of {list(adata.obs.columns)!r}."
        raise ValidationError(msg)
    groups = adata.obs[color].astype(str).to_numpy()
    if panel is not None and color == "PlateID":
        groups = per_panel_obs(adata, "PlateID")[panel].to_numpy().astype(str)
    X = np.asarray(adata.X, dtype=float)[:, cols]
    keep = ~np.isnan(X).all(axis=1)  # samples not measured on these assays get no box
    order = np.flatnonzero(keep)[np.argsort(groups[keep], kind="mergesort")]
    data = [row[~np.isnan(row)] for row in X[order]]
    new_fig = ax is None
    ax = get_ax(ax, figsize=(min(14.0, max(6.0, 0.12 * len(order))), 4.5))
    if new_fig:
        ax.figure.set_layout_engine("constrained")
    bp = ax.boxplot(
        data,
        patch_artist=True,
        showfliers=False,
        widths=0.7,
        medianprops={"color": "black", "linewidth": 1.2, "gid": "median"},
    )
    levels = list(pd.unique(groups[order]))
    for box, g in zip(bp["boxes"], groups[order], strict=True):
        box.set_facecolor(group_color(levels.index(g)))
        box.set_alpha(0.7)
    ax.set_xticks(np.arange(1, len(order) + 1))
    labels = adata.obs_names.to_numpy()[order] if len(order) <= 60 else [""] * len(order)
    ax.set_xticklabels(labels, rotation=90, fontsize=6)
    ax.set_ylabel("NPX" if panel is None else f"NPX ({panel})")
    ax.set_xlabel(f"Sample (n = {len(order)})")
    handles = [
        Line2D([], [], marker="s", linestyle="", color=group_color(i), label=g)
        for i, g in enumerate(levels)
    ]
    ax.legend(
        handles=handles,
        title=color,
        fontsize=7,
        title_fontsize=8,
        frameon=False,
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        ncol=min(len(levels), 4),
    )
    return ax


def _pair_differences(adata: ad.AnnData) -> tuple[pd.Index, np.ndarray]:
    """Bridge pairs × assays matrix of NPX(reference) − NPX(other)."""
    for col in ("Project", "bridge", "bridge_pair"):
        if col not in adata.obs:
            msg = (
                f"pl.bridge needs obs[{col!r}] as written by pp.bridge_normalize; "
                f"obs has {list(adata.obs.columns)!r}."
            )
            raise ValidationError(msg)
    ref, _ = _project_names(adata)
    is_bridge = adata.obs["bridge"].astype(bool).to_numpy()
    proj = adata.obs["Project"].astype(str).to_numpy()
    pair = adata.obs["bridge_pair"].astype(str).to_numpy()
    X = np.asarray(adata.X, dtype=float)
    r = pd.Series(np.flatnonzero(is_bridge & (proj == ref)), index=pair[is_bridge & (proj == ref)])
    o = pd.Series(np.flatnonzero(is_bridge & (proj != ref)), index=pair[is_bridge & (proj != ref)])
    common = r.index.intersection(o.index)
    return common, X[r[common].to_numpy()] - X[o[common].to_numpy()]


def _project_names(adata: ad.AnnData) -> tuple[str, str]:
    """(reference, other) project names of a two-project normalization result."""
    rec = adata.uns.get("olinkpipe", {}).get("normalization", {}).get("bridge_normalize", {})
    projects = [str(p) for p in pd.unique(adata.obs["Project"].astype(str))]
    ref = str(rec.get("reference_project", projects[0]))
    others = [p for p in projects if p != ref]
    return ref, (others[0] if others else "other")


@doc_params(ax=doc_ax)
def bridge(
    before: ad.AnnData | None,
    after: ad.AnnData,
    *,
    ax: Axes | None = None,
) -> Axes:
    """Per-assay bridge-sample differences (reference − other) before and after normalization.

    For every assay, the median (dot) and interquartile range (bar) over bridge pairs of
    NPX_reference − NPX_other, before (grey) and after (orange) normalization, assays
    sorted by the difference before. After median bridge normalization the medians sit at 0.

    Parameters
    ----------
    before
        The two projects stacked without normalization (same layout as ``after``), or None
        to reconstruct it from ``after`` by removing ``var["Adj_factor"]`` from the other
        project (normalization is a pure per-assay shift).
    after
        Result of :func:`olinkpipe.pp.bridge_normalize`.
    {ax}

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on.

    Examples
    --------
    >>> import numpy as np
    >>> import olinkpipe as op
    >>> run1 = op.datasets.load_example().adata
    >>> run2 = run1.copy()  # a second run reading 0.5 NPX higher on every assay
    >>> run2.X = run2.X + 0.5
    >>> run2.varm["lod"] = run2.varm["lod"] + 0.5
    >>> both = op.pp.bridge_normalize(run1, run2, ["OL0002", "OL0006", "OL0008"])
    >>> ax = op.pl.bridge(None, both)
    >>> ax.get_ylabel()
    'NPX P1 − P2'
    """
    pairs, d_after = _pair_differences(after)
    if len(pairs) == 0:
        msg = "pl.bridge: no bridge pairs found in obs['bridge_pair']."
        raise ValidationError(msg)
    if before is None:
        if "Adj_factor" not in after.var:
            msg = "pl.bridge: after lacks var['Adj_factor']; pass before explicitly."
            raise ValidationError(msg)
        d_before = d_after + after.var["Adj_factor"].to_numpy(float)[None, :]
    else:
        p_b, d_b = _pair_differences(before[:, after.var_names])
        d_before = pd.DataFrame(d_b, index=p_b).reindex(pairs).to_numpy()
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        stats = {
            k: np.nanpercentile(d, [25, 50, 75], axis=0)
            for k, d in (("before", d_before), ("after", d_after))
        }
    order = np.argsort(stats["before"][1], kind="mergesort")
    x = np.arange(after.n_vars)
    ref, other = _project_names(after)
    new_fig = ax is None
    ax = get_ax(ax, figsize=(min(14.0, max(6.0, 0.05 * after.n_vars)), 4.5))
    if new_fig:
        ax.figure.set_layout_engine("constrained")
    for key, color, dx in (("before", NS, -0.15), ("after", HIGHLIGHT, 0.15)):
        q25, q50, q75 = (s[order] for s in stats[key])
        ax.vlines(x + dx, q25, q75, color=color, linewidth=1, alpha=0.7)
        ax.scatter(x + dx, q50, s=10, color=color, label=f"{key} normalization", zorder=3)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.set_xlabel(f"Assay (n = {after.n_vars}), sorted by difference before normalization")
    ax.set_ylabel(f"NPX {ref} − {other}")
    ax.set_title(
        f"Bridge samples: {len(pairs)} pairs; dot = median, bar = IQR over pairs", fontsize=9
    )
    if after.n_vars <= 40:
        names = after.var["Assay"] if "Assay" in after.var else after.var_names
        ax.set_xticks(x)
        ax.set_xticklabels(np.asarray(names, dtype=str)[order], rotation=90, fontsize=6)
    place_legend(ax, fontsize=7, frameon=False)
    return ax
