"""Differential-expression figures: volcano, paired before/after lines, heatmap."""

from __future__ import annotations

import difflib
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from .._docs import doc_ax, doc_params
from .._warnings import warn
from ..errors import DesignError, MissingColumnError, format_message, preview
from ..tl.methods import METHODS, Method, methods_of
from ._style import DOWN, HIGHLIGHT, NS, UP, get_ax, place_legend

__all__ = ["volcano", "paired", "heatmap"]


def _need(frame: pd.DataFrame, cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in frame.columns]
    if missing:
        msg = format_message(
            f"the result lacks column(s) {missing!r}; it has {list(frame.columns)[:20]!r}",
            hint="Pass the table returned by olinkpipe.tl.differential.",
        )
        raise MissingColumnError(msg)


def _resolve_assays(adata: ad.AnnData, assays: str | Sequence[str]) -> list[int]:
    """Column positions of ``assays`` given as OlinkIDs or ``var["Assay"]`` names."""
    names = [assays] if isinstance(assays, str) else list(assays)
    by_name = adata.var["Assay"].astype(str) if "Assay" in adata.var else None
    pos, unknown = [], []
    for nm in names:
        if nm in adata.var_names:
            pos.append(adata.var_names.get_loc(nm))
        elif by_name is not None and (by_name == nm).any():
            pos.append(int(np.flatnonzero((by_name == nm).to_numpy())[0]))
        else:
            unknown.append(nm)
    if unknown:
        from .._names import close_matches

        known = list(adata.var_names.astype(str)) + (
            list(by_name.unique()) if by_name is not None else []
        )
        close = {nm: close_matches(nm, known, n=3) for nm in unknown[:5]}
        close_text = "; ".join(
            f"{nm!r}: {', '.join(map(repr, c))}" for nm, c in close.items() if c
        )
        msg = format_message(
            "assay(s) not found in var (index or 'Assay' column)",
            rows=unknown,
            hint="Pass OlinkIDs or assay names present in adata.var."
            + (f" Close matches: {close_text}." if close_text else ""),
        )
        raise DesignError(msg)
    return pos


@doc_params(ax=doc_ax)
def volcano(
    result: pd.DataFrame,
    *,
    label: Sequence[str] | None = None,
    top: int = 10,
    alpha: float = 0.05,
    fc_threshold: float = 0.0,
    label_column: str = "Assay",
    ax: Axes | None = None,
) -> Axes:
    """Volcano plot of a :func:`olinkpipe.tl.differential` result.

    Parameters
    ----------
    result
        The tidy frame of ``tl.differential`` (needs ``estimate``, ``p_value``,
        ``p_adj``).
    label
        Assays to label whatever their p-value (values of ``label_column`` or OlinkIDs),
        e.g. ``["SIT1", "CD28", "IL2RB"]``; highlighted in orange.
    top
        Also label the ``top`` assays with the smallest p-values among the significant.
    alpha
        Colour points with ``p_adj < alpha`` and ``|estimate| > fc_threshold``: up red,
        down blue, others grey.
    fc_threshold
        Minimum |estimate| (NPX difference, i.e. log2 fold change) to colour a point;
        drawn as dashed vertical lines when positive.
    label_column
        Column holding the text of labels (falls back to ``OlinkID``).
    {ax}

    Returns
    -------
    matplotlib.axes.Axes
        The Axes with the plot. The title names the levels, test and pairs from
        ``result.attrs`` (e.g. ``"post vs pre (reference): moderated t, 23 pairs"``;
        just ``attrs["sign"]`` when those are missing), the x label the sign; the
        legend gives the colour criterion and counts, the BH cut-off line and the
        assays named in ``label``.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> res = pd.DataFrame({"OlinkID": ["O1", "O2", "O3"], "Assay": ["SIT1", "CD28", "IL6"],
    ...                     "estimate": [1.2, -0.8, 0.1], "p_value": [1e-4, 1e-3, 0.6],
    ...                     "p_adj": [3e-4, 1.5e-3, 0.6]})
    >>> res.attrs["sign"] = "Week.6 - Baseline"
    >>> ax = op.pl.volcano(res, label=["IL6"])
    >>> ax.get_title()
    'Week.6 - Baseline'
    """
    _need_volcano_columns(result)
    ax = get_ax(ax, figsize=(6.0, 5.0))
    x = result["estimate"].to_numpy(dtype=float)
    p = result["p_value"].to_numpy(dtype=float)
    y = -np.log10(np.clip(p, np.finfo(float).tiny, 1.0))
    sig = (result["p_adj"].to_numpy(dtype=float) < alpha) & (np.abs(x) > fc_threshold)
    colors = np.where(sig & (x > 0), UP, np.where(sig & (x < 0), DOWN, NS))
    ok = np.isfinite(x) & np.isfinite(y)
    crit = f"p_adj < {alpha:g}" + (f", |estimate| > {fc_threshold:g}" if fc_threshold > 0 else "")
    for col, name in [(NS, "not significant"), (UP, "up"), (DOWN, "down")]:
        sel = ok & (colors == col)
        text = f"{name} ({int(sel.sum())})" if col == NS else f"{name}, {crit} ({int(sel.sum())})"
        ax.scatter(x[sel], y[sel], s=14, c=col, alpha=0.8, linewidths=0, label=text)
    if sig.any():
        # the BH cut-off on the p-value scale: the largest p-value still significant
        ax.axhline(
            -np.log10(np.nanmax(p[sig])),
            color="0.4",
            lw=0.8,
            ls="--",
            label=f"BH cut-off (FDR {alpha:g})",
        )
    if fc_threshold > 0:
        for v in (-fc_threshold, fc_threshold):
            ax.axvline(v, color="0.4", lw=0.8, ls="--")
    ax.axvline(0.0, color="0.8", lw=0.6, zorder=0)
    text_col = label_column if label_column in result else "OlinkID"
    names = result[text_col].astype(str).to_numpy() if text_col in result else None
    to_label: list[int] = []
    if names is not None:
        order = np.argsort(np.where(sig & ok, p, np.inf), kind="stable")
        to_label = [int(i) for i in order[: max(int(top), 0)] if sig[i] and ok[i]]
        wanted = [str(w) for w in ([label] if isinstance(label, str) else (label or []))]
        ids = result["OlinkID"].astype(str).to_numpy() if "OlinkID" in result else names
        _warn_unplaced(wanted, names, ids, ok, text_col)
        wanted = set(wanted)
        chosen = [
            i for i in range(len(result)) if ok[i] and (names[i] in wanted or ids[i] in wanted)
        ]
        if chosen:
            ax.scatter(
                x[chosen],
                y[chosen],
                s=34,
                facecolors="none",
                edgecolors=HIGHLIGHT,
                lw=1.4,
                label=f"highlighted ({len(chosen)} asked for)",
                zorder=3,
            )
        to_label = list(dict.fromkeys(to_label + chosen))
        texts = [
            ax.text(
                x[i],
                y[i],
                names[i],
                fontsize=8,
                fontweight="bold" if i in chosen else "normal",
                zorder=4,
            )
            for i in to_label
        ]
        if texts:
            from adjustText import adjust_text

            near = ok & (sig | np.isin(np.arange(len(x)), chosen))  # points labels avoid
            pts_x, pts_y = x[near], y[near]
            adjust_text(
                texts,
                x=pts_x,
                y=pts_y,
                ax=ax,
                expand=(1.3, 1.6),
                arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5},
            )
    sign = result.attrs.get("sign", "target - reference")
    ax.set_xlabel(f"estimate ({sign}, NPX)")
    ax.set_ylabel(r"$-\log_{10}$ p-value")
    ax.set_title(_title(result.attrs, sign))
    ax.margins(y=0.08)
    place_legend(ax, frameon=True, framealpha=0.9, edgecolor="none", fontsize=7)
    return ax


def _warn_unplaced(
    wanted: Sequence[str], names: np.ndarray, ids: np.ndarray, ok: np.ndarray, column: str
) -> None:
    """Warn about ``label`` names not in the result, or there without a drawable point."""
    known = set(names) | set(ids)
    missing = [w for w in wanted if w not in known]
    drawn = set(names[ok]) | set(ids[ok])
    undrawn = [w for w in wanted if w in known and w not in drawn]
    if missing:
        hints = []
        for w in missing[:5]:
            close = difflib.get_close_matches(w, sorted(known), n=3, cutoff=0.6)
            if close:
                hints.append(f"{w!r}: did you mean {', '.join(map(repr, close))}?")
        msg = (
            f"volcano: {len(missing)} name(s) in label are not in the result (column "
            f"{column!r} or OlinkID) and are not drawn: {preview(missing)}"
            + (f" ({'; '.join(hints)})" if hints else "")
        )
        warn(msg, stacklevel=4)
    if undrawn:
        warn(
            f"volcano: {len(undrawn)} name(s) in label have no finite estimate / p-value and "
            f"are not drawn: {preview(undrawn)}",
            stacklevel=4,
        )


#: what a volcano plots: x, y (as -log10) and the colour criterion
_VOLCANO_COLUMNS = ("estimate", "p_value", "p_adj")


def _method(attrs: dict) -> Method | None:
    """The tl method registry's entry for a result's ``attrs["method"]`` (a
    :func:`~olinkpipe.tl.differential` method first); ``None`` when unknown."""
    name = attrs.get("method")
    found = [m for m in METHODS.values() if m.name == name]
    found.sort(key=lambda m: m.function != "differential")
    return found[0] if found else None


def _need_volcano_columns(result: pd.DataFrame) -> None:
    """Raise unless ``result`` has the volcano's columns; name its method if it has none."""
    meta = _method(result.attrs)
    absent = [c for c in _VOLCANO_COLUMNS if c not in result.columns]
    if absent and meta is not None and not set(_VOLCANO_COLUMNS) <= set(meta.result_columns):
        two_group = list(methods_of("differential"))
        msg = format_message(
            f"the result lacks column(s) {absent!r}: a {meta.function} result (method "
            f"{meta.name!r}) has no estimate with a p-value to plot",
            hint="Pass the table returned by olinkpipe.tl.differential (method="
            + " / ".join(repr(m) for m in two_group)
            + ").",
        )
        raise MissingColumnError(msg)
    _need(result, list(_VOLCANO_COLUMNS))


def _title(attrs: dict, sign: str) -> str:
    """``"post vs pre (reference) · moderated t, 23 pairs"`` from a result's attrs (the
    method's short label from the tl method registry)."""
    target, reference = attrs.get("target"), attrs.get("reference")
    head = f"{target} vs {reference} (reference)" if target and reference else sign
    method = attrs.get("method")
    meta = _method(attrs)
    parts = [meta.label if meta is not None and meta.label else str(method)] if method else []
    if attrs.get("n_pairs"):
        parts.append(f"{attrs['n_pairs']} pairs")
    return f"{head}: {', '.join(parts)}" if parts else head


@doc_params(ax=doc_ax)
def paired(
    adata: ad.AnnData,
    assays: str | Sequence[str],
    groupby: str,
    pair: str,
    *,
    reference: str | None = None,
    target: str | None = None,
    layer: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Before/after lines per pair (e.g. patient) for a few assays, side by side.

    Parameters
    ----------
    adata
        Samples × assays AnnData.
    assays
        OlinkIDs or assay names (``var["Assay"]``).
    groupby
        Column of ``obs`` with the two levels (e.g. ``"Time"``).
    pair
        Column of ``obs`` identifying the pair (e.g. ``"Subject"``).
    reference, target
        The two levels, left and right; default the two sorted levels.
    layer
        Plot this layer instead of ``X``.
    {ax}

    Returns
    -------
    matplotlib.axes.Axes
        One panel section per assay: a grey line per complete pair, the mean in colour.
        Pairs with a missing member or value are not drawn.

    Examples
    --------
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> obs = pd.DataFrame({"Subject": ["P1", "P1", "P2", "P2"], "Time": ["Pre", "Post"] * 2},
    ...                    index=["S1", "S2", "S3", "S4"])
    >>> var = pd.DataFrame({"Assay": ["CD28"]}, index=pd.Index(["OID1"], name="OlinkID"))
    >>> adata = ad.AnnData(np.array([[1.0], [2.0], [1.5], [2.5]]), obs=obs, var=var)
    >>> ax = op.pl.paired(adata, ["CD28"], "Time", "Subject", reference="Pre")
    """
    pos = _resolve_assays(adata, assays)
    obs = adata.obs
    lab = obs[groupby].astype(str).where(obs[groupby].notna(), None)
    levels = sorted(pd.unique(lab.dropna()))
    ref = str(reference) if reference is not None else levels[0]
    others = [lv for lv in levels if lv != ref]
    tgt = str(target) if target is not None else (others[0] if others else ref)
    if ref not in levels or tgt not in levels or ref == tgt:
        msg = format_message(
            f"need two distinct levels of obs[{groupby!r}]; got reference={ref!r}, target={tgt!r}",
            column=groupby,
            rows=levels,
        )
        raise DesignError(msg)
    x_all = adata.X if layer is None else adata.layers[layer]
    x_all = np.asarray(x_all.toarray() if hasattr(x_all, "toarray") else x_all, dtype=float)
    frame = pd.DataFrame({"pair": obs[pair].astype(str).to_numpy(), "lv": lab.to_numpy()})
    frame["row"] = np.arange(len(frame))
    frame = frame[frame["lv"].isin([ref, tgt]) & obs[pair].notna().to_numpy()]
    counts = frame.groupby(["pair", "lv"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=[ref, tgt], fill_value=0)
    good = counts.index[(counts[ref] == 1) & (counts[tgt] == 1)]
    piv = frame[frame["pair"].isin(good)].pivot(index="pair", columns="lv", values="row")
    ax = get_ax(ax, figsize=(max(3.0, 2.2 * len(pos)), 4.5))
    names = []
    for k, j in enumerate(pos):
        a = x_all[piv[ref].to_numpy(dtype=int), j]
        b = x_all[piv[tgt].to_numpy(dtype=int), j]
        ok = np.isfinite(a) & np.isfinite(b)
        x0, x1 = 3 * k, 3 * k + 1
        for u, v in zip(a[ok], b[ok], strict=True):
            ax.plot([x0, x1], [u, v], color=NS, lw=0.8, alpha=0.7)
        ax.scatter(np.full(ok.sum(), x0), a[ok], s=10, color=NS, zorder=3)
        ax.scatter(np.full(ok.sum(), x1), b[ok], s=10, color=NS, zorder=3)
        if ok.any():
            ax.plot([x0, x1], [a[ok].mean(), b[ok].mean()], color="0.15", lw=2.8, zorder=4)
            ax.scatter([x0, x1], [a[ok].mean(), b[ok].mean()], s=30, color="0.15", zorder=5)
        nm = adata.var["Assay"].iloc[j] if "Assay" in adata.var else adata.var_names[j]
        names.append(f"{nm}\n(n={int(ok.sum())})")
    ticks = [3 * k + d for k in range(len(pos)) for d in (0, 1)]
    ax.set_xticks(ticks)
    ax.set_xticklabels([lv for _ in pos for lv in (ref, tgt)], fontsize=8)
    for k, nm in enumerate(names):
        ax.text(
            3 * k + 0.5,
            1.01,
            nm,
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="bottom",
            fontsize=9,
        )
    ax.set_xlim(-0.5, 3 * len(pos) - 1.5)
    ax.set_ylabel("NPX")
    ax.set_title(f"{ref} → {tgt}, paired by {pair}", pad=28, fontsize=10)
    handles = [
        Line2D([], [], color=NS, lw=0.8, marker="o", ms=3, label=f"one {pair} (both values)"),
        Line2D([], [], color="0.15", lw=2.8, marker="o", ms=5, label="mean of those shown"),
    ]
    place_legend(ax, handles=handles, frameon=False, fontsize=7)
    return ax


@doc_params(ax=doc_ax)
def heatmap(
    adata: ad.AnnData,
    assays: str | Sequence[str],
    *,
    groupby: str | None = None,
    order: Sequence[str] | None = None,
    zscore: bool = True,
    cmap: str = "RdBu_r",
    layer: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Heatmap of selected assays (rows) across samples (columns).

    Parameters
    ----------
    adata
        Samples × assays AnnData.
    assays
        OlinkIDs or assay names, e.g. the top hits of ``tl.differential``.
    groupby
        Column of ``obs`` to order the samples by; group boundaries and names are drawn.
        Samples with no value are shown last, as ``"NA"``.
    order
        Order of the ``groupby`` levels (e.g. ``["pre", "post"]``, reference first);
        default the categories of a categorical column, otherwise sorted. Levels not
        listed are left out.
    zscore
        Standardise each assay over the samples shown (NaN ignored).
    cmap
        Matplotlib colour map (diverging by default, centred at 0 with ``zscore``).
    layer
        Plot this layer instead of ``X``.
    {ax}

    Returns
    -------
    matplotlib.axes.Axes
        The Axes with the image and a colour bar; NaN cells are blank.

    Examples
    --------
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> obs = pd.DataFrame({"Time": ["Pre", "Post", "Pre", "Post"]}, index=list("abcd"))
    >>> var = pd.DataFrame({"Assay": ["CD28", "SIT1"]}, index=pd.Index(["O1", "O2"], name="OlinkID"))
    >>> adata = ad.AnnData(np.arange(8.0).reshape(4, 2), obs=obs, var=var)
    >>> ax = op.pl.heatmap(adata, ["CD28", "SIT1"], groupby="Time")
    """
    pos = _resolve_assays(adata, assays)
    x_all = adata.X if layer is None else adata.layers[layer]
    x_all = np.asarray(x_all.toarray() if hasattr(x_all, "toarray") else x_all, dtype=float)
    groups = None
    if groupby is not None:
        if groupby not in adata.obs:
            msg = format_message(f"obs has no column {groupby!r}", column=groupby)
            raise MissingColumnError(msg)
        col = adata.obs[groupby]
        groups = np.where(col.isna().to_numpy(), "NA", col.astype(str).to_numpy())
        if order is not None:
            levels = [str(lv) for lv in order]
        elif isinstance(col.dtype, pd.CategoricalDtype):
            levels = [str(c) for c in col.cat.categories]
        else:
            levels = sorted(set(groups) - {"NA"})
        if order is None and "NA" in groups:
            levels.append("NA")
        rank = {lv: i for i, lv in enumerate(levels)}
        key = np.array([rank.get(g, -1) for g in groups])
        rows = np.flatnonzero(key >= 0)
        rows = rows[np.argsort(key[rows], kind="stable")]
        groups = groups[rows]
    else:
        rows = np.arange(adata.n_obs)
    mat = x_all[np.ix_(rows, pos)].T
    if zscore:
        with np.errstate(invalid="ignore", divide="ignore"):
            mu = np.nanmean(mat, axis=1, keepdims=True)
            sd = np.nanstd(mat, axis=1, ddof=1, keepdims=True)
            mat = (mat - mu) / np.where(sd > 0, sd, 1.0)
    ax = get_ax(ax, figsize=(max(4.0, 0.08 * mat.shape[1] + 2), max(2.5, 0.3 * mat.shape[0] + 1)))
    lim = np.nanmax(np.abs(mat)) if np.isfinite(mat).any() else 1.0
    vmin, vmax = (-lim, lim) if zscore else (np.nanmin(mat), np.nanmax(mat))
    im = ax.imshow(
        np.ma.masked_invalid(mat),
        aspect="auto",
        cmap=cmap,
        vmin=vmin,
        vmax=vmax,
        interpolation="nearest",
    )
    ax.figure.colorbar(im, ax=ax, label="z-score" if zscore else "NPX", fraction=0.04)
    names = adata.var["Assay"].to_numpy()[pos] if "Assay" in adata.var else adata.var_names[pos]
    ax.set_yticks(np.arange(len(pos)))
    ax.set_yticklabels([str(n) for n in names], fontsize=8)
    if groups is not None:
        bounds = np.flatnonzero(groups[1:] != groups[:-1]) + 0.5
        for b in bounds:
            ax.axvline(b, color="k", lw=1.0)
        starts = np.r_[0, np.ceil(bounds)].astype(int)
        ends = np.r_[np.ceil(bounds), len(groups)].astype(int)
        ax.set_xticks((starts + ends - 1) / 2.0)
        ax.set_xticklabels(
            [f"{groups[a]} (n={b - a})" for a, b in zip(starts, ends, strict=True)], fontsize=8
        )
    else:
        ax.set_xticks([])
    ax.set_xlabel("samples")
    return ax
