"""Sample and assay QC: summaries, outlier flags (Olink QC-plot and PCA rules), filtering."""

from __future__ import annotations

import gc
import warnings
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd

from .._dask import require_dask
from .._provenance import provenance
from .._validate import check_literal
from ..errors import ValidationError
from . import _lazy, _median, _utils
from ._utils import nanmedian0

__all__ = ["qc_summary", "flag_outliers", "filter"]


#: rows from which a column block of a few hundred assays (``_lazy.per_assay``'s slices)
#: takes its medians in tiles: measured crossover 700-1,000 rows (tiles 1.6x faster at
#: 2,000); a whole matrix crosses over at ``_median.SMALL_ROWS``
SLICE_ROWS = 2 * _median.SMALL_ROWS


def _column_medians(
    block: np.ndarray, threads: int | None = None, *, min_rows: int = SLICE_ROWS
) -> np.ndarray:
    """Column medians, NaN skipped (the values of ``np.nanmedian``): one sort of the rows
    (:func:`~olinkpipe.pp._utils.nanmedian0`) below ``min_rows`` rows, else selection in
    tiles (:func:`~olinkpipe.pp._median.column_medians`, on ``threads``)."""
    if block.shape[0] < min_rows:
        return nanmedian0(block)
    return _median.column_medians(block, threads=threads)[0]


def _panel_stats(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample median and IQR (R ``IQR`` type 7 = numpy's linear default), NaN skipped.

    One sort of the block for both (:func:`_lazy.nanquantile_sorted` equals
    ``np.nanpercentile``, without its per-row Python loop).
    """
    srt = np.sort(np.asarray(block, dtype=float).T, axis=0)
    n = block.shape[1] - np.isnan(srt).sum(axis=0)
    med = _utils.median_sorted(srt, n)
    iqr = _lazy.nanquantile_sorted(srt, n, 0.75) - _lazy.nanquantile_sorted(srt, n, 0.25)
    return med, iqr


def _sample_kernel(block: np.ndarray, lod: np.ndarray | None = None) -> np.ndarray:
    """Per sample of one panel: median, IQR, measured assays, assays below LOD (n × 4)."""
    med, iqr = _panel_stats(block)
    n = (~np.isnan(block)).sum(axis=1)
    below = (block < lod).sum(axis=1) if lod is not None else np.zeros(len(n))
    return np.column_stack([med, iqr, n, below])


def _limits(values: np.ndarray, sd: float) -> tuple[float, float]:
    """mean ± sd · SD (ddof = 1, as R ``sd``), NaN skipped; unbounded with < 2 values."""
    v = values[~np.isnan(values)]
    if len(v) < 2:
        return -np.inf, np.inf
    m, s = v.mean(), v.std(ddof=1)
    return m - sd * s, m + sd * s


def outside_limits(
    med: np.ndarray, iqr: np.ndarray, lo_m: float, hi_m: float, lo_i: float, hi_i: float
) -> np.ndarray:
    """OlinkAnalyze ``olink_qc_plot`` rule: not inside the open intervals ``(lo_m, hi_m)`` on
    the median and ``(lo_i, hi_i)`` on the IQR (a row of :func:`qc_limits`); NaN medians
    are not outliers. Public-internal: :func:`olinkpipe.pl.qc` labels what its box leaves
    out with it."""
    inside = (med < hi_m) & (med > lo_m) & (iqr > lo_i) & (iqr < hi_i)
    return ~inside & ~np.isnan(med)


def _outside(med: np.ndarray, iqr: np.ndarray, *, sd: float) -> np.ndarray:
    """:func:`outside_limits` with the limits of these medians and IQRs (mean ± sd · SD)."""
    return outside_limits(med, iqr, *_limits(med, sd), *_limits(iqr, sd))


def _ran_on_panel(adata: ad.AnnData, panel: str, n_measured: np.ndarray) -> np.ndarray:
    tab = adata.obsm.get("PlateID") if "PlateID" in adata.obsm else None
    if isinstance(tab, pd.DataFrame) and panel in tab:
        ran = tab[panel].astype(object).fillna("").astype(str).to_numpy() != ""
        return ran & (n_measured > 0)
    return n_measured > 0


_SAMPLE_COLUMNS = [
    "sample",
    "SampleID",
    "Panel",
    "PlateID",
    "QC_Warning",
    "is_control",
    "n_assays",
    "pct_below_lod",
    "median",
    "iqr",
]


def _sample_panel_table(adata: ad.AnnData) -> pd.DataFrame:
    """One row per sample × panel the sample ran on (non-control assays only).

    Per panel, the sample statistics come from one (all samples × panel assays) block: a
    slice in memory, the panel's assay blocks gathered on the dask path.
    """
    assay_keep = ~_utils.control_assays(adata)
    X = _utils.npx(adata)
    arrays = [X, _utils.lod_layer(adata, what="qc_summary")] if _utils.has_lod(adata) else [X]
    pans = _utils.panels(adata)
    plate_tab = _utils.per_panel_obs(adata, "PlateID")
    qc_tab = _utils.per_panel_obs(adata, "QC_Warning")
    sids = np.asarray(_utils.sample_ids(adata))
    is_ctrl = _utils.control_samples(adata)
    frames = []
    panel_list = pd.unique(pans[assay_keep])
    every = _lazy.per_sample_many(
        _sample_kernel, arrays, [np.flatnonzero((pans == p) & assay_keep) for p in panel_list], k=4
    )
    for panel, stats in zip(panel_list, every, strict=True):
        ran = _ran_on_panel(adata, panel, stats[:, 2])
        med, iqr, n, below = stats[ran].T
        n = n.astype(np.int64)
        if len(arrays) > 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                pct = 100.0 * below / n
        else:
            pct = np.full(int(ran.sum()), np.nan)
        frames.append(
            pd.DataFrame(
                {
                    "sample": adata.obs_names[ran].astype(str),
                    "SampleID": sids[ran],
                    "Panel": panel,
                    "PlateID": plate_tab[panel].to_numpy()[ran],
                    "QC_Warning": qc_tab[panel].to_numpy()[ran],
                    "is_control": is_ctrl[ran],
                    "n_assays": n,
                    "pct_below_lod": pct,
                    "median": med,
                    "iqr": iqr,
                }
            )
        )
    if not frames:
        return pd.DataFrame(columns=_SAMPLE_COLUMNS)
    return pd.concat(frames, ignore_index=True)


def qc_summary(adata: ad.AnnData, *, by: Literal["sample", "assay"] = "sample") -> pd.DataFrame:
    """QC overview per sample (one row per sample and panel) or per assay.

    Parameters
    ----------
    adata
        Samples × assays AnnData (``docs/data_model.md``).
    by
        ``"sample"``: one row per sample **and panel** it ran on (QC warning, plate, median
        and IQR are per panel in Olink data, so a single row per sample would have to mix
        panels), with ``sample`` (obs name), ``SampleID``, ``Panel``, ``PlateID``,
        ``QC_Warning`` (that panel's), ``is_control``, ``n_assays`` (measured),
        ``pct_below_lod`` (% of measured assays with NPX < LOD), ``median`` and ``iqr``
        (R ``IQR`` type 7) of the sample's NPX on the panel — the coordinates of Olink's
        QC plot. Control assays are left out. For one row per sample use
        ``frame.pivot(index="sample", columns="Panel", values=["median", "iqr"])``.
        ``"assay"``: one row per assay with ``OlinkID``, ``Assay``, ``Panel``, ``n_samples``
        (measured study samples), ``missing_freq`` (fraction of study samples with no value),
        ``below_lod_freq`` (fraction of measured study samples with NPX < LOD, Olink's
        ``MissingFreq``), ``median`` and ``is_control``; control samples are left out.

    Returns
    -------
    pandas.DataFrame
        As described under ``by``; ``attrs["by"]`` names the layout.

    Examples
    --------
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> per_sample = op.pp.qc_summary(adata)
    >>> len(per_sample)  # 50 samples x 4 panels
    200
    >>> per_sample.loc[0, ["SampleID", "Panel", "QC_Warning"]].tolist()
    ['CONTROL_SAMPLE_Plate1_1', 'Cardiometabolic', 'PASS']
    >>> per_assay = op.pp.qc_summary(adata, by="assay")
    >>> list(per_assay.columns[3:6])
    ['n_samples', 'missing_freq', 'below_lod_freq']
    """
    check_literal("by", by, ["sample", "assay"])
    if by == "sample":
        out = _sample_panel_table(adata)
    else:
        study = np.flatnonzero(~_utils.control_samples(adata))
        has_lod = _utils.has_lod(adata)
        arrays = [_utils.npx(adata)]
        threads = 1 if _lazy.is_dask(arrays[0]) else None  # dask runs blocks in parallel
        if has_lod:
            arrays.append(_utils.lod_layer(adata, what="qc_summary"))

        def kernel(block, lod=None):
            block = block[study]
            below = (block < lod[study]).sum(axis=0) if lod is not None else 0
            med = _column_medians(block, threads)
            return np.vstack([(~np.isnan(block)).sum(axis=0), below + 0.0, med])

        n, below, median = _lazy.per_assay(kernel, arrays, k=3)
        n = n.astype(np.int64)
        with np.errstate(invalid="ignore", divide="ignore"):
            missing = 1.0 - n / len(study) if len(study) else np.full(adata.n_vars, np.nan)
            below = below / n if has_lod else np.full(adata.n_vars, np.nan)
        var = adata.var
        out = pd.DataFrame(
            {
                "OlinkID": adata.var_names.astype(str),
                "Assay": var["Assay"].astype(str).to_numpy() if "Assay" in var else "",
                "Panel": _utils.panels(adata),
                "n_samples": n,
                "missing_freq": missing,
                "below_lod_freq": below,
                "median": median,
                "is_control": _utils.control_assays(adata),
            }
        )
    out.attrs = {"by": by}
    return out


def qc_limits(summary: pd.DataFrame, *, sd: float = 3.0) -> pd.DataFrame:
    """Per-panel outlier limits of Olink's QC plot from a ``qc_summary(by="sample")`` frame."""
    rows = []
    for panel, grp in summary.groupby("Panel", sort=False):
        lo_m, hi_m = _limits(grp["median"].to_numpy(float), sd)
        lo_i, hi_i = _limits(grp["iqr"].to_numpy(float), sd)
        rows.append(
            {"Panel": panel, "median_low": lo_m, "median_high": hi_m, "iqr_low": lo_i,
             "iqr_high": hi_i}
        )  # fmt: skip
    return pd.DataFrame(
        rows, columns=["Panel", "median_low", "median_high", "iqr_low", "iqr_high"]
    )


def pca_scores(
    adata: ad.AnnData, *, n_comps: int = 2, controls: Literal["include", "exclude"] = "include"
) -> tuple[pd.DataFrame, np.ndarray, int, int]:
    """PCA of NPX with OlinkAnalyze's preprocessing (``npxProcessing_forDimRed``).

    Control assays and assays with no variance are left out; assays missing in more than
    10 % of the samples (5 % with 88 samples or fewer) are left out; the remaining NaN are
    imputed by the assay median; assays are centred and scaled (``prcomp(scale. = TRUE)``).
    The components are the leading eigenvectors of the smaller cross-product of the
    standardized matrix Z (``ZᵀZ``, assays × assays, reduced over assay blocks on the dask
    path; or ``ZZᵀ`` when there are fewer samples than assays), the same PCA as an SVD
    of Z. Each component's sign makes its largest loading positive.
    Returns the scores frame (index = obs names, columns PC1..), the variance ratio, the
    number of imputed values and the number of assays left out for missingness.
    """
    fit = pca_fit(adata, n_comps=n_comps, controls=controls)
    return fit["scores"], fit["ratio"], fit["n_imputed"], fit["n_missing"]


def pca_fit(adata: ad.AnnData, *, n_comps: int, controls: str) -> dict:
    """:func:`pca_scores` with the loadings: a dict of ``scores`` (obs × PCs), ``ratio``,
    ``loadings`` (assays used × PCs, unit eigenvectors as scanpy's ``varm["PCs"]``),
    ``n_imputed`` and ``n_missing``. Public-internal: :func:`olinkpipe.pl.pca` draws it
    (with loading arrows) when it is not given the scores."""
    rows = np.arange(adata.n_obs)
    if controls == "exclude":
        rows = np.flatnonzero(~_utils.control_samples(adata))
    cols = np.flatnonzero(~_utils.control_assays(adata))
    X = _utils.npx(adata)
    n = len(rows)
    threads = 1 if _lazy.is_dask(X) else None  # dask runs blocks in parallel

    def stats(block):
        block = block[rows]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            var = np.nanvar(block, axis=0, ddof=1) if n > 1 else np.zeros(block.shape[1])
        return np.vstack([var, np.isnan(block).sum(axis=0), _column_medians(block, threads)])

    var, n_nan, med = _lazy.per_assay(stats, [X], k=3)
    var, n_nan = var[cols], n_nan[cols]
    varying = ~np.isnan(var) & (var > 0)
    cutoff = 0.05 if n <= 88 else 0.1
    with np.errstate(invalid="ignore", divide="ignore"):
        too_missing = varying & (n_nan / n > cutoff)
    good = varying & ~too_missing
    sel = cols[good]
    n_imputed = int(n_nan[good].sum())

    def moments(block, m):
        block = block[rows]
        block = np.where(np.isnan(block), m, block)
        sd = block.std(axis=0, ddof=1) if n > 1 else np.zeros(block.shape[1])
        return np.vstack([block.mean(axis=0), sd])

    mean, sd = _lazy.per_assay(moments, [X], k=2, vectors=[med])  # every assay: no gather
    sel = sel[sd[sel] > 0]
    k = int(min(n_comps, n - 1, len(sel)))
    if k < 1:
        msg = "PCA needs at least 2 samples and 1 assay with varying NPX."
        raise ValidationError(msg)
    Z = _standardized(X, rows, sel, med[sel], mean[sel], sd[sel])
    scores, ratio, loadings = _gram_pca(Z, k)
    names = [f"PC{i + 1}" for i in range(k)]
    frame = pd.DataFrame(scores, index=adata.obs_names[rows], columns=names)
    lds = pd.DataFrame(loadings, index=adata.var_names[sel], columns=names)
    return {
        "scores": frame,
        "ratio": ratio,
        "loadings": lds,
        "n_imputed": n_imputed,
        "n_missing": int(too_missing.sum()),
    }


def _standardized(X, rows, cols, med, mean, sd):
    """``(impute(X[rows][:, cols]) − mean) / sd``: one copy in memory, lazy on dask."""
    if _lazy.is_dask(X):
        da = require_dask("a dask-backed AnnData")
        Z = X[rows][:, cols]
        return (da.where(da.isnan(Z), med, Z) - mean) / sd
    Z = X[np.ix_(rows, cols)]  # the one copy
    np.copyto(Z, np.broadcast_to(med, Z.shape), where=np.isnan(Z))
    Z -= mean
    Z /= sd
    return Z


def _gram_pca(Z, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scores (n × k), variance ratios and loadings (p × k) of the centred, scaled ``Z``
    from the smaller cross-product's leading eigenpairs (dask: the product reduced over
    blocks)."""
    from scipy.linalg import eigh

    lazy = _lazy.is_dask(Z)
    n, p = Z.shape
    by_assay = p <= n
    m = min(n, p)
    # the smaller cross-product (one BLAS call in memory; on dask reduced over blocks,
    # an m x m result) and its leading eigenpairs (Lanczos for m > 64)
    with warnings.catch_warnings():  # dask: "increasing number of chunks" is intended
        warnings.filterwarnings("ignore", message="Increasing number of chunks")
        C = Z.T @ Z if by_assay else Z @ Z.T
    C = np.asarray(C.compute()) if lazy else C
    trace = float(np.trace(C))
    if m > 64 and k < m - 1:
        from scipy.sparse.linalg import eigsh

        vals, vecs = eigsh(C, k=k, which="LA", v0=np.ones(m))
    else:
        vals, vecs = eigh(C, subset_by_index=[m - k, m - 1])
    order = np.argsort(vals)[::-1]
    vals, vecs = np.clip(vals[order], 0, None), vecs[:, order]
    if by_assay:
        loadings = vecs
        scores = Z @ vecs
        scores = np.asarray(scores.compute()) if lazy else scores
    else:
        scores = vecs * np.sqrt(vals)
        with np.errstate(invalid="ignore", divide="ignore"):
            loadings = (Z.T @ vecs) / np.where(vals > 0, np.sqrt(vals), np.nan)
        loadings = np.asarray(loadings.compute()) if lazy else loadings
    # a deterministic sign: the largest loading positive
    big = np.nanargmax(np.abs(np.nan_to_num(loadings)), axis=0)
    sign = np.sign(loadings[big, np.arange(k)])
    sign[(sign == 0) | np.isnan(sign)] = 1
    ratio = vals / trace if trace > 0 else np.zeros(k)
    return scores * sign, ratio, loadings * sign


def dimred_matrix(adata: ad.AnnData, controls: str) -> dict:
    """OlinkAnalyze's ``npxProcessing_forDimRed``: the imputed matrix before scaling
    (in memory). Public-internal: :func:`olinkpipe.pl.umap` embeds it; a dict of ``X``
    (samples kept × assays kept), ``rows`` (bool over obs), ``assays``, ``n_imputed``,
    ``n_missing``."""
    rows = np.ones(adata.n_obs, dtype=bool)
    if controls == "exclude":
        rows = ~_utils.control_samples(adata)
    cols = ~_utils.control_assays(adata)
    X = np.asarray(_utils.npx(adata), dtype=float)[np.ix_(rows, cols)]
    nan = np.isnan(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        var = np.nanvar(X, axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(X.shape[1])
    varying = ~np.isnan(var) & (var > 0)
    cutoff = 0.05 if X.shape[0] <= 88 else 0.1
    too_missing = varying & (nan.mean(axis=0) > cutoff)
    good = varying & ~too_missing
    X, nan = X[:, good], nan[:, good]
    med = _column_medians(X, min_rows=_median.SMALL_ROWS)
    n_imputed = int(nan.sum())
    X = np.where(nan, med[None, :], X)
    assays = adata.var_names[cols][good]
    out = {"X": X, "rows": rows, "assays": assays, "n_imputed": n_imputed}
    return out | {"n_missing": int(too_missing.sum())}


def flag_outliers(
    adata: ad.AnnData,
    *,
    sd: float = 3.0,
    pca: bool = True,
    controls: Literal["include", "exclude"] = "include",
    copy: bool = True,
) -> ad.AnnData:
    """Flag outlier samples by Olink's QC-plot rule per panel and by PCA.

    QC rule (OlinkAnalyze ``olink_qc_plot``): for every panel, a sample whose NPX median or
    IQR (R type 7) over the panel's assays lies outside ``mean ± sd · SD`` (R ``sd``, n − 1)
    of all samples' medians / IQRs is an outlier on that panel. PCA rule (OlinkAnalyze
    ``olink_pca_plot(outlierDefX = sd, outlierDefY = sd)``): PC1 or PC2 score outside
    ``mean ± sd · SD``; PCA (:func:`pca_scores`, as ``prcomp(scale. = TRUE)``) on the
    centred and scaled NPX matrix, with
    OlinkAnalyze's preprocessing: assays missing in more than 10 % of the samples (5 % with
    88 samples or fewer) left out, the remaining NaN imputed by the assay median.

    Parameters
    ----------
    adata
        Samples × assays AnnData.
    sd
        Number of standard deviations defining an outlier (Olink's default 3).
    pca
        Also flag PCA outliers.
    controls
        ``"include"`` (default, as ``olink_qc_plot``) computes the limits over all samples;
        ``"exclude"`` leaves control samples out of limits and flags.
    copy
        Return a new AnnData (default; one copy of X and the layers) or change ``adata``
        in place and return it (``copy=False``; no copy of the arrays). A dask-backed
        ``adata`` gives a dask-backed result (X still lazy).

    Returns
    -------
    anndata.AnnData
        With ``obs`` columns ``qc_outlier`` (any panel), ``pca_outlier``, ``outlier`` (either)
        and ``obsm["qc_outlier"]`` (sample × panel, bool); the per-panel limits and the
        PCA's ``n_imputed`` / ``n_assays_too_missing`` in ``uns["olinkpipe"]["outliers"]``.

    Examples
    --------
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> flagged = op.pp.flag_outliers(adata, sd=3)
    >>> flagged.obs.loc[flagged.obs["outlier"], ["qc_outlier", "pca_outlier"]]
            qc_outlier  pca_outlier
    OL0041        True        False
    OL0017       False         True
    """
    check_literal("controls", controls, ["include", "exclude"])
    if not sd > 0:
        msg = f"sd must be positive; got {sd!r}."
        raise ValidationError(msg)
    out = _utils.shallow(adata) if copy else adata  # computed first, copied last
    provenance(out)
    summary = _sample_panel_table(out)
    if controls == "exclude":
        summary = summary[~summary["is_control"].to_numpy(bool)]
    limits = qc_limits(summary, sd=sd)
    pans = pd.unique(_utils.panels(out)[~_utils.control_assays(out)])
    flags = pd.DataFrame(data=False, index=out.obs_names.astype(str), columns=list(pans))
    for panel, grp in summary.groupby("Panel", sort=False):
        bad = _outside(grp["median"].to_numpy(float), grp["iqr"].to_numpy(float), sd=sd)
        flags.loc[grp["sample"].to_numpy()[bad], panel] = True
    flags.index = out.obs_names
    out.obsm["qc_outlier"] = flags
    out.obs["qc_outlier"] = flags.any(axis=1).to_numpy()
    pca_flag = np.zeros(out.n_obs, dtype=bool)
    pca_info: dict = {}
    if pca:
        try:
            scores, ratio, n_imp, n_miss = pca_scores(out, n_comps=2, controls=controls)
        except ValidationError as exc:  # too few samples / varying assays: no PCA rule
            _utils.warn_user(f"flag_outliers: no PCA outliers flagged: {exc}")
            pca_info = {"pca_skipped": str(exc)}
            pca = False
    if pca:
        bad = np.zeros(len(scores), dtype=bool)
        for c in scores.columns[:2]:
            lo, hi = _limits(scores[c].to_numpy(), sd)
            v = scores[c].to_numpy()
            bad |= ~((v > lo) & (v < hi))
        pca_flag[out.obs_names.get_indexer(scores.index)] = bad
        pca_info = {
            "variance_ratio": ratio.tolist(),
            "n_imputed": n_imp,
            "n_assays_too_missing": n_miss,
        }
    out.obs["pca_outlier"] = pca_flag
    out.obs["outlier"] = out.obs["qc_outlier"].to_numpy() | pca_flag
    provenance(out)["outliers"] = {
        "sd": float(sd),
        "controls": controls,
        "limits": limits,
        "pca": bool(pca),
        **pca_info,
    }
    if copy:  # one copy of the arrays, after the temporaries of the statistics are gone
        return _utils.with_arrays_of(out, adata)
    return out


def filter(
    adata: ad.AnnData,
    *,
    qc_warning: Literal["drop", "mask", "keep"] = "drop",
    controls: Literal["drop", "keep"] = "drop",
    min_detected: float = 0.0,
    outliers: Literal["keep", "drop"] = "keep",
    copy: bool = True,
) -> ad.AnnData:
    """Remove what the user asks for, recording every removal with its reason.

    Parameters
    ----------
    adata
        Samples × assays AnnData.
    qc_warning
        ``"drop"``: remove samples with any non-passing QC warning (``obs["qc_pass"]``);
        ``"mask"``: keep them but set NPX to NaN on the panels that did not pass
        (per cell: ``olinkpipe._layout.qc_warning_matrix``); ``"keep"``: do nothing.
    controls
        ``"drop"``: remove control samples (``obs["is_control"]``) and control assays
        (``var["is_control"]``).
    min_detected
        Remove assays detected (NPX ≥ LOD) in fewer than this fraction of the remaining
        samples; 0 keeps all. Assays with no LOD information count as detected where
        measured.
    outliers
        ``"drop"``: remove samples flagged in ``obs["outlier"]``; :func:`flag_outliers` is
        run with its defaults when that column is absent.
    copy
        Return a new AnnData holding one copy of the kept samples × assays of X and the
        layers (default; the input is left alone), or, with ``copy=False``, replace
        ``adata``'s contents with that one copy and return ``adata``. A dask-backed
        ``adata`` gives a dask-backed result (X still lazy; only the detected fraction
        per assay is computed).

    Returns
    -------
    anndata.AnnData
        The filtered object; every removed sample and assay is in
        ``uns["olinkpipe"]["excluded"]`` (``step="filter"``, with the reason) and warned
        about; the counts in ``uns["olinkpipe"]["filter"]``.

    Examples
    --------
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> import warnings
    >>> with warnings.catch_warnings():  # each removal is also warned about
    ...     warnings.simplefilter("ignore")
    ...     clean = op.pp.filter(adata, qc_warning="drop", min_detected=0.25)
    >>> clean.shape
    (44, 359)
    >>> clean.uns["olinkpipe"]["excluded"]["reason"].value_counts().to_dict()
    {'control sample': 4, 'QC warning': 2}
    """
    check_literal("qc_warning", qc_warning, ["drop", "mask", "keep"])
    check_literal("controls", controls, ["drop", "keep"])
    check_literal("outliers", outliers, ["keep", "drop"])
    if not 0.0 <= float(min_detected) <= 1.0:
        msg = f"min_detected is a fraction between 0 and 1; got {min_detected!r}."
        raise ValidationError(msg)
    step = "filter"
    if outliers == "drop" and "outlier" not in adata.obs:
        work = adata if not copy else _utils.shallow(adata)  # no array copied
        flag_outliers(work, copy=False)
    else:
        work = adata
    provenance(work)
    names = work.obs_names
    drop_s = np.zeros(work.n_obs, dtype=bool)
    drop_a = np.zeros(work.n_vars, dtype=bool)
    removed: list[tuple[str, list[str], str]] = []

    def mark_samples(mask: np.ndarray, reason: str) -> None:
        new = mask & ~drop_s
        if new.any():
            removed.append(("sample", list(names[new]), reason))
            drop_s[new] = True

    if controls == "drop":
        mark_samples(_utils.control_samples(work), "control sample")
    if qc_warning == "drop":
        mark_samples(_utils.sample_qc_fail(work), "QC warning")
    if outliers == "drop":
        mark_samples(
            work.obs["outlier"].fillna(value=False).to_numpy(bool), "outlier (flag_outliers)"
        )
    if controls == "drop":
        ctrl_a = _utils.control_assays(work)
        if ctrl_a.any():
            removed.append(("assay", list(work.var_names[ctrl_a]), "control assay"))
            drop_a |= ctrl_a
    mask = qc_warning == "mask"
    masked, frac = _detected(work, mask=mask, keep_rows=np.flatnonzero(~drop_s))
    if min_detected > 0:
        low = (frac < min_detected) & ~drop_a
        if low.any():
            removed.append(
                ("assay", list(work.var_names[low]), f"detected in < {min_detected:g} of samples")
            )
            drop_a |= low
    out = _subset(work, ~drop_s, ~drop_a, copy=copy)
    if mask:
        _mask_qc(out)
    provenance(out)
    for kind, ids, reason in removed:
        _utils.exclude(out, step=step, kind=kind, ids=ids, reason=reason)
    provenance(out)["filter"] = {
        "qc_warning": qc_warning,
        "controls": controls,
        "min_detected": float(min_detected),
        "outliers": outliers,
        "n_samples_removed": int(drop_s.sum()),
        "n_assays_removed": int(drop_a.sum()),
        "n_values_masked": masked,
    }
    return out


def _fail_arrays(adata: ad.AnnData) -> tuple[list, list]:
    """QC-failed cells as block-wise inputs: the ``qc_warning`` layer, or (when absent)
    per-sample × panel failures indexed by a per-assay panel position vector."""
    if _utils.has_cell_qc(adata):
        return [_utils.qc_fail_cells(adata)], []
    fail, pidx = _utils.qc_fail_by_panel(adata)
    return [], [pidx.astype(float)]


def _detected(adata: ad.AnnData, *, mask: bool, keep_rows: np.ndarray) -> tuple[int, np.ndarray]:
    """Values a QC mask would set to NaN, and each assay's detected fraction (NPX present,
    not QC-masked, not below LOD) over ``keep_rows``, block by block."""
    X = _utils.npx(adata)
    has_lod = _utils.has_lod(adata)
    arrays = [X] + ([_utils.lod_layer(adata, what="filter")] if has_lod else [])
    fail_layer, vectors = _fail_arrays(adata) if mask else ([], [])
    by_panel = _utils.qc_fail_by_panel(adata)[0] if mask and not fail_layer else None
    n_keep = len(keep_rows)
    has_layer = bool(fail_layer)  # the kernel must not hold a dask array (tokenized)

    def kernel(*blocks):
        Xb = blocks[0]
        lod = blocks[1] if has_lod else None
        rest = blocks[1 + has_lod :]
        if not mask:
            fail = np.zeros(Xb.shape, dtype=bool)
        elif has_layer:
            fail = np.asarray(rest[0], dtype=bool)
        else:
            fail = by_panel[:, rest[0].astype(np.intp)]
        present = ~np.isnan(Xb)
        n_masked = (fail & present).sum(axis=0)
        det = (present & ~fail)[keep_rows]
        if lod is not None:
            det &= ~(Xb[keep_rows] < lod[keep_rows])
        return np.vstack([n_masked, det.sum(axis=0)])

    n_masked, n_det = _lazy.per_assay(kernel, arrays + fail_layer, k=2, vectors=vectors)
    frac = n_det / n_keep if n_keep else np.zeros(adata.n_vars)
    return int(n_masked.sum()), frac


def _subset(adata: ad.AnnData, rows: np.ndarray, cols: np.ndarray, *, copy: bool) -> ad.AnnData:
    """``adata[rows, cols]`` as one copy (``copy=False``: that copy replaces ``adata``'s
    contents, which is then returned); nothing is copied when nothing is removed."""
    if rows.all() and cols.all():
        return adata.copy() if copy else adata
    sub = _utils.subset_copy(adata, rows, cols)
    # anndata's view of adata (inside subset_copy) is a reference cycle that keeps adata,
    # the whole input, alive until a full garbage collection, long after the caller has
    # replaced it by the result: collect it now
    gc.collect()
    if copy:
        return sub
    adata._init_as_actual(sub)
    return adata


def _mask_qc(adata: ad.AnnData) -> None:
    """Set NPX to NaN where the sample's QC on the panel failed, in place (lazy on dask)."""
    fail_layer, vectors = _fail_arrays(adata)
    X = _utils.npx(adata)
    if _lazy.is_dask(X):
        da = require_dask("a dask-backed AnnData")
        if fail_layer:
            fail = fail_layer[0]
        else:
            by_panel, pidx = _utils.qc_fail_by_panel(adata)
            fail = _lazy.from_columns(X, lambda sl: by_panel[:, pidx[sl]], dtype=bool)
        adata.X = da.where(fail, np.nan, X)
        return
    if X is not adata.X:
        adata.X = X
    by_panel, pidx = _utils.qc_fail_by_panel(adata) if not fail_layer else (None, None)
    for sl in _lazy.column_slices(adata.n_vars, adata.n_obs):
        fail = fail_layer[0][:, sl] if fail_layer else by_panel[:, pidx[sl]]
        X[:, sl][fail] = np.nan
