"""Sample embeddings as OlinkAnalyze draws them: PCA (with loadings, per panel), UMAP.

The matrices come from :mod:`olinkpipe.pp.qc` (:func:`~olinkpipe.pp.qc.pca_fit`,
:func:`~olinkpipe.pp.qc.dimred_matrix`: OlinkAnalyze's preprocessing in one place), or,
for :func:`pca`, from scores the caller already computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from .._docs import doc_ax, doc_params
from .._validate import check_literal
from .._warnings import warn
from ..errors import MissingColumnError, ValidationError, format_message
from ..pp.qc import dimred_matrix, pca_fit
from ._style import NS, get_ax, group_color, place_legend

__all__ = ["draw_loadings", "pca", "pca_by_panel", "umap"]


def _loading_scale(scores: np.ndarray, lds: np.ndarray) -> float:
    """OlinkAnalyze's arrow scale: 0.8 / the largest ratio of loading to score extents."""
    ext = lambda v: np.array([abs(np.nanmin(v)), abs(np.nanmax(v))])  # noqa: E731
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = [ext(lds[:, j]) / ext(scores[:, j]) for j in range(2)]
    return float(0.8 / np.nanmax(np.concatenate(ratios)))


def draw_loadings(
    ax: Axes, adata: ad.AnnData, fit: dict, components: tuple[int, int], loadings
) -> list[str]:
    """Draw loading arrows from the origin on a PCA plot (OlinkAnalyze ``olink_pca_plot``).

    ``loadings`` is the number of assays with the longest loading vectors
    ``√(l_x² + l_y²)`` (``n_loadings``) or a list of OlinkIDs / assay names
    (``loadings_list``); names left out of the PCA (control, constant or too often
    missing assays) are dropped with a warning, as OlinkAnalyze does. Arrows are the
    loadings times OlinkAnalyze's scale ``0.8 / max(extent(loading) / extent(score))``,
    so the longest fits within 80 % of the scores. Labels are assay names (OlinkAnalyze
    writes the OlinkID). Used by :func:`olinkpipe.pl.pca`; returns the OlinkIDs drawn.
    """
    cols = [f"PC{c}" for c in components]
    lds = fit["loadings"][cols]
    scale = _loading_scale(fit["scores"][cols].to_numpy(), lds.to_numpy())
    names = (
        adata.var["Assay"] if "Assay" in adata.var else pd.Series(adata.var_names, adata.var_names)
    )
    if isinstance(loadings, (int, np.integer)):
        length = np.hypot(lds.iloc[:, 0], lds.iloc[:, 1])
        chosen = list(lds.index[np.argsort(-length.to_numpy(), kind="stable")[: int(loadings)]])
    else:
        by_name = {str(n): oid for oid, n in names.items()}
        wanted = [str(w) for w in loadings]
        oids = [w if w in adata.var_names else by_name.get(w, w) for w in wanted]
        chosen = [o for o in oids if o in lds.index]
        dropped = [w for w, o in zip(wanted, oids, strict=True) if o not in lds.index]
        if dropped:
            warn(f"loadings {dropped!r} are not in the PCA (control, constant or too missing).")
    for oid in chosen:
        x, y = (float(v) * scale for v in lds.loc[oid])
        ax.annotate(
            "", xy=(x, y), xytext=(0.0, 0.0), arrowprops={"arrowstyle": "->", "color": "k"}
        )
        ax.text(x, y, str(names.get(oid, oid)), fontsize=7, ha="center", va="bottom")
    return chosen


def _scatter(ax: Axes, coords: np.ndarray, obs: pd.DataFrame, color: str | None) -> None:
    if color is None:
        ax.scatter(coords[:, 0], coords[:, 1], s=18, color=NS)
        return
    groups = obs[color].astype(object).where(obs[color].notna(), "NA").astype(str).to_numpy()
    for i, g in enumerate(pd.unique(groups)):
        m = groups == g
        ax.scatter(coords[m, 0], coords[m, 1], s=18, color=group_color(i), label=g)
    ax.legend(title=color, fontsize=7, frameon=False)


def _check_color(adata: ad.AnnData, color: str | None) -> None:
    if color is not None and color not in adata.obs:
        msg = f"color={color!r} is not an obs column; choose one of {list(adata.obs.columns)!r}."
        raise ValidationError(msg)


@doc_params(ax=doc_ax)
def pca(
    adata: ad.AnnData,
    *,
    color: str | None = None,
    components: Sequence[int] = (1, 2),
    controls: Literal["include", "exclude"] = "include",
    loadings: int | Sequence[str] = 0,
    scores: tuple | None = None,
    ax: Axes | None = None,
) -> Axes:
    """PCA of the NPX matrix (:func:`olinkpipe.pp.qc.pca_scores`), samples coloured by an
    ``obs`` column.

    Preprocessing as OlinkAnalyze ``olink_pca_plot``: control and constant assays are
    left out, so are assays missing in more than 10 % of the samples (5 % with 88 samples
    or fewer); the remaining NaN are imputed by the assay median (the title says how many
    values and assays); assays are centred and scaled to unit variance.

    Parameters
    ----------
    adata
        Samples × assays AnnData.
    color
        ``obs`` column to colour by (categorical); none when None.
    components
        The two principal components to draw (1-based).
    controls
        ``"include"`` or ``"exclude"`` control samples.
    loadings
        Draw loading arrows (OlinkAnalyze ``n_loadings``/``loadings_list``): the number
        of assays with the longest loadings in the two components, or a list of OlinkIDs
        / assay names; see :func:`draw_loadings`.
    scores
        The result of :func:`olinkpipe.pp.qc.pca_scores` on ``adata`` (scores, variance
        ratio, number imputed, number of assays left out), already computed: drawn as is,
        not recomputed (``controls`` is then the caller's). ``None`` (default) computes
        it. Loading arrows need the full fit, so not with ``scores``.
    {ax}

    Returns
    -------
    matplotlib.axes.Axes
        The Axes drawn on.

    See Also
    --------
    olinkpipe.pl.pca_by_panel : one PCA per Olink panel (OlinkAnalyze ``byPanel``).

    Examples
    --------
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> ax = op.pl.pca(adata, color="PlateID")
    >>> ax.get_legend().get_title().get_text()
    'PlateID'
    """
    check_literal("controls", controls, ["include", "exclude"])
    c1, c2 = (int(c) for c in components)
    if color is not None and color not in adata.obs:
        msg = f"color={color!r} is not an obs column; choose one of {list(adata.obs.columns)!r}."
        raise ValidationError(msg)
    fit = _given_scores(adata, scores, loadings) if scores is not None else None
    if fit is None:
        fit = pca_fit(adata, n_comps=max(c1, c2), controls=controls)
    scores, ratio, n_imp, n_miss = (fit[k] for k in ("scores", "ratio", "n_imputed", "n_missing"))
    if max(c1, c2) > scores.shape[1]:
        msg = f"only {scores.shape[1]} components can be computed; got components={components!r}."
        raise ValidationError(msg)
    ax = get_ax(ax)
    x, y = scores[f"PC{c1}"].to_numpy(), scores[f"PC{c2}"].to_numpy()
    if color is None:
        ax.scatter(x, y, s=18, color=NS)
    else:
        groups = adata.obs.loc[scores.index, color].astype(str).to_numpy()
        for i, g in enumerate(pd.unique(groups)):
            m = groups == g
            ax.scatter(x[m], y[m], s=18, color=group_color(i), label=g)
    if not isinstance(loadings, (int, np.integer)) or loadings > 0:
        draw_loadings(ax, adata, fit, (c1, c2), loadings)
    ax.set_xlabel(f"PC{c1} ({100 * ratio[c1 - 1]:.1f}%)")
    ax.set_ylabel(f"PC{c2} ({100 * ratio[c2 - 1]:.1f}%)")
    notes = [
        "no missing values" if n_imp == 0 else f"{n_imp} missing values imputed by assay median"
    ]
    if n_miss:
        cutoff = 5 if len(scores) <= 88 else 10  # OlinkAnalyze's rule, as pp.qc.pca_scores
        notes.append(f"{n_miss} assays > {cutoff}% missing left out")
    ax.set_title("PCA of NPX\n" + "; ".join(notes), fontsize=9)
    if color is not None:
        place_legend(ax, title=color, fontsize=7, frameon=False)
    return ax


def _given_scores(adata: ad.AnnData, scores: tuple, loadings) -> dict:
    """``pp.qc.pca_scores``' 4-tuple as the fit :func:`pca` draws, checked against adata."""
    if not isinstance(scores, tuple | list) or len(scores) != 4:
        msg = "scores: expected the 4-tuple returned by olinkpipe.pp.qc.pca_scores(adata)."
        raise ValidationError(msg)
    if not isinstance(loadings, (int, np.integer)) or loadings > 0:
        msg = "loadings need the PCA fit; pass scores=None to draw loading arrows."
        raise ValidationError(msg)
    frame, ratio, n_imp, n_miss = scores
    unknown = pd.Index(frame.index).difference(adata.obs_names)
    if len(unknown):
        msg = f"scores: {len(unknown)} sample(s) are not in adata, e.g. {list(unknown[:3])!r}."
        raise ValidationError(msg)
    return {"scores": frame, "ratio": np.asarray(ratio), "n_imputed": n_imp, "n_missing": n_miss}


def pca_by_panel(
    adata: ad.AnnData,
    *,
    color: str | None = None,
    components: Sequence[int] = (1, 2),
    controls: Literal["include", "exclude"] = "include",
    loadings: int | Sequence[str] = 0,
    panel_col: str = "Panel",
    ncols: int = 2,
) -> list[Axes]:
    """One PCA per Olink panel (OlinkAnalyze ``olink_pca_plot(byPanel = TRUE)``).

    :func:`olinkpipe.pl.pca` on each panel's assays alone (same preprocessing, same
    options), titled with the panel name without its ``"Olink "`` prefix.

    Parameters
    ----------
    adata
        Samples × assays AnnData with a panel column in ``var``.
    color, components, controls, loadings
        As :func:`olinkpipe.pl.pca`.
    panel_col
        ``var`` column naming each assay's panel.
    ncols
        Panels per row of the figure.

    Returns
    -------
    list of matplotlib.axes.Axes
        One Axes per panel, in the order the panels first occur in ``var``.

    Examples
    --------
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> axes = op.pl.pca_by_panel(adata, color="PlateID")
    >>> [ax.get_title().split(chr(10))[0] for ax in axes]  # doctest: +ELLIPSIS
    [...]
    """
    if panel_col not in adata.var:
        msg = format_message(f"var has no column {panel_col!r}", column=panel_col)
        raise MissingColumnError(msg)
    panel = adata.var[panel_col]
    panels = [p for p in pd.unique(panel.dropna())]
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(5.0 * ncols, 4.2 * nrows), squeeze=False)
    flat = list(axes.ravel())
    for ax, p in zip(flat, panels, strict=False):
        sub = adata[:, (panel == p).to_numpy()]
        pca(sub, color=color, components=components, controls=controls, loadings=loadings, ax=ax)
        notes = ax.get_title().split("\n", 1)[-1]
        ax.set_title(f"{str(p).removeprefix('Olink ')}\n{notes}", fontsize=9)
    for ax in flat[len(panels) :]:
        ax.set_visible(False)
    return flat[: len(panels)]


def umap_coords(
    adata: ad.AnnData,
    *,
    n_components: int = 2,
    controls: Literal["include", "exclude"] = "include",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict]:
    """UMAP coordinates of the samples via scanpy on OlinkAnalyze's preprocessed matrix."""
    import scanpy as sc

    pre = dimred_matrix(adata, controls)
    X = pre["X"]
    if X.shape[1] < 1 or X.shape[0] <= n_neighbors:
        msg = (
            f"UMAP needs more samples than n_neighbors={n_neighbors} and an assay with "
            f"varying NPX; got {X.shape[0]} samples × {X.shape[1]} assays."
        )
        raise ValidationError(msg)
    tmp = ad.AnnData(X=X)
    sc.pp.neighbors(tmp, n_neighbors=n_neighbors, use_rep="X", random_state=seed)
    sc.tl.umap(tmp, min_dist=min_dist, n_components=n_components, random_state=seed)
    names = [f"UMAP{i + 1}" for i in range(n_components)]
    coords = pd.DataFrame(tmp.obsm["X_umap"], index=adata.obs_names[pre["rows"]], columns=names)
    return coords, pre


@doc_params(ax=doc_ax)
def umap(
    adata: ad.AnnData,
    *,
    color: str | None = None,
    components: Sequence[int] = (1, 2),
    controls: Literal["include", "exclude"] = "include",
    n_neighbors: int = 15,
    min_dist: float = 0.1,
    seed: int = 0,
    ax: Axes | None = None,
) -> Axes:
    """UMAP of the samples (OlinkAnalyze ``olink_umap_plot``), through scanpy.

    Preprocessing as OlinkAnalyze (``npxProcessing_forDimRed``, as :func:`pca`):
    control and constant assays are left out, so are assays missing in more than 10 %
    of the samples (5 % with 88 samples or fewer); the remaining NaN are imputed by the
    assay median; no scaling. Then ``sc.pp.neighbors(n_neighbors, use_rep="X")`` and
    ``sc.tl.umap(min_dist)`` on a copy, both seeded: OlinkAnalyze's defaults
    (``umap.defaults``: 15 neighbours, ``min_dist`` 0.1, Euclidean) but umap-learn's
    algorithm, not R's ``umap`` package, so the layout differs from OlinkAnalyze's.
    ``adata`` is not changed.

    Parameters
    ----------
    adata
        Samples × assays AnnData.
    color
        ``obs`` column to colour by (categorical); none when None.
    components
        The two UMAP components to draw (1-based).
    controls
        ``"include"`` or ``"exclude"`` control samples.
    n_neighbors, min_dist
        UMAP settings.
    seed
        ``random_state`` of the neighbours graph and the layout.
    {ax}

    Returns
    -------
    matplotlib.axes.Axes
        The Axes; the points are the scanpy coordinates of the samples.

    Examples
    --------
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> ax = op.pl.umap(adata, color="PlateID", seed=1)  # doctest: +SKIP
    >>> ax.get_xlabel()  # doctest: +SKIP
    'UMAP1'
    """
    _check_color(adata, color)
    c1, c2 = (int(c) for c in components)
    coords, pre = umap_coords(
        adata,
        n_components=max(c1, c2, 2),
        controls=controls,
        n_neighbors=n_neighbors,
        min_dist=min_dist,
        seed=seed,
    )
    ax = get_ax(ax)
    xy = coords[[f"UMAP{c1}", f"UMAP{c2}"]].to_numpy()
    _scatter(ax, xy, adata.obs.loc[coords.index], color)
    ax.set_xlabel(f"UMAP{c1}")
    ax.set_ylabel(f"UMAP{c2}")
    n_imp = pre["n_imputed"]
    notes = ["no missing values" if n_imp == 0 else f"{n_imp} missing values imputed by median"]
    ax.set_title("UMAP of NPX\n" + "; ".join(notes), fontsize=9)
    return ax
