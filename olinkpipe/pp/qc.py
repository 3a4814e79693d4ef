"""Sample and assay QC: summaries, outlier flags (Olink QC-plot and PCA rules), filtering."""

from __future__ import annotations

import warnings
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd

from .._provenance import provenance
from .._validate import check_literal
from ..errors import ValidationError
from . import _utils

__all__ = ["qc_summary", "flag_outliers", "filter"]


def _panel_stats(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-sample median and IQR (R ``IQR`` type 7 = numpy's linear default), NaN skipped."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = _utils.nanmedian0(block.T)
        q75, q25 = np.nanpercentile(block, [75, 25], axis=1)
    return med, q75 - q25


def _limits(values: np.ndarray, sd: float) -> tuple[float, float]:
    """mean ± sd · SD (ddof = 1, as R ``sd``), NaN skipped; unbounded with < 2 values."""
    v = values[~np.isnan(values)]
    if len(v) < 2:
        return -np.inf, np.inf
    m, s = v.mean(), v.std(ddof=1)
    return m - sd * s, m + sd * s


def _outside(med: np.ndarray, iqr: np.ndarray, *, sd: float) -> np.ndarray:
    """OlinkAnalyze ``olink_qc_plot`` rule: not inside the open interval on median and IQR."""
    lo_m, hi_m = _limits(med, sd)
    lo_i, hi_i = _limits(iqr, sd)
    inside = (med < hi_m) & (med > lo_m) & (iqr > lo_i) & (iqr < hi_i)
    return ~inside & ~np.isnan(med)


def _ran_on_panel(adata: ad.AnnData, panel: str, block: np.ndarray) -> np.ndarray:
    tab = adata.obsm.get("PlateID") if "PlateID" in adata.obsm else None
    if isinstance(tab, pd.DataFrame) and panel in tab:
        ran = tab[panel].astype(object).fillna("").astype(str).to_numpy() != ""
        return ran & ~np.isnan(block).all(axis=1)
    return ~np.isnan(block).all(axis=1)


def _sample_panel_table(adata: ad.AnnData) -> pd.DataFrame:
    """One row per sample × panel the sample ran on (non-control assays only)."""
    assay_keep = ~_utils.control_assays(adata)
    X = np.asarray(adata.X, dtype=float)
    lod = np.asarray(adata.layers["lod"], dtype=float) if "lod" in adata.layers else None
    pans = _utils.panels(adata)
    plate_tab = _utils.per_panel_obs(adata, "PlateID")
    qc_tab = _utils.per_panel_obs(adata, "QC_Warning")
    sids = np.asarray(_utils.sample_ids(adata))
    is_ctrl = _utils.control_samples(adata)
    frames = []
    for panel in pd.unique(pans[assay_keep]):
        cols = np.flatnonzero((pans == panel) & assay_keep)
        block = X[:, cols]
        ran = _ran_on_panel(adata, panel, block)
        med, iqr = _panel_stats(block[ran])
        measured = ~np.isnan(block[ran])
        n = measured.sum(axis=1)
        if lod is not None:
            below = (block[ran] < lod[np.ix_(ran, cols)]).sum(axis=1)
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
        return pd.DataFrame(
            columns=[
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
        )
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
        study = ~_utils.control_samples(adata)
        X = np.asarray(adata.X, dtype=float)[study]
        measured = ~np.isnan(X)
        n = measured.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            missing = 1.0 - n / X.shape[0] if X.shape[0] else np.full(adata.n_vars, np.nan)
            if "lod" in adata.layers:
                lod = np.asarray(adata.layers["lod"], dtype=float)[study]
                below = (X < lod).sum(axis=0) / n
            else:
                below = np.full(adata.n_vars, np.nan)
        var = adata.var
        out = pd.DataFrame(
            {
                "OlinkID": adata.var_names.astype(str),
                "Assay": var["Assay"].astype(str).to_numpy() if "Assay" in var else "",
                "Panel": _utils.panels(adata),
                "n_samples": n,
                "missing_freq": missing,
                "below_lod_freq": below,
                "median": _utils.nanmedian0(X),
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
    """PCA of NPX via scanpy, with OlinkAnalyze's preprocessing (``npxProcessing_forDimRed``).

    Control assays and assays with no variance are left out; assays missing in more than
    10 % of the samples (5 % with 88 samples or fewer) are left out; the remaining NaN are
    imputed by the assay median; assays are centred and scaled (``prcomp(scale. = TRUE)``).
    Returns the scores frame (index = obs names, columns PC1..), the variance ratio, the
    number of imputed values and the number of assays left out for missingness.
    """
    fit = _pca_fit(adata, n_comps=n_comps, controls=controls)
    return fit["scores"], fit["ratio"], fit["n_imputed"], fit["n_missing"]


def _dimred_matrix(adata: ad.AnnData, controls: str) -> dict:
    """OlinkAnalyze's ``npxProcessing_forDimRed``: the imputed matrix before scaling."""
    rows = np.ones(adata.n_obs, dtype=bool)
    if controls == "exclude":
        rows = ~_utils.control_samples(adata)
    cols = ~_utils.control_assays(adata)
    X = np.asarray(adata.X, dtype=float)[np.ix_(rows, cols)]
    nan = np.isnan(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        var = np.nanvar(X, axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(X.shape[1])
    varying = ~np.isnan(var) & (var > 0)
    cutoff = 0.05 if X.shape[0] <= 88 else 0.1
    too_missing = varying & (nan.mean(axis=0) > cutoff)
    good = varying & ~too_missing
    X, nan = X[:, good], nan[:, good]
    med = _utils.nanmedian0(X)
    n_imputed = int(nan.sum())
    X = np.where(nan, med[None, :], X)
    assays = adata.var_names[cols][good]
    out = {"X": X, "rows": rows, "assays": assays, "n_imputed": n_imputed}
    return out | {"n_missing": int(too_missing.sum())}


def _pca_fit(adata: ad.AnnData, *, n_comps: int, controls: str) -> dict:
    """:func:`pca_scores` with the loadings (``scores``, ``ratio``, ``loadings``, counts)."""
    import scanpy as sc

    pre = _dimred_matrix(adata, controls)
    X, rows = pre["X"], pre["rows"]
    sd = X.std(axis=0, ddof=1) if X.shape[0] > 1 else np.zeros(X.shape[1])
    keep = sd > 0
    X = (X[:, keep] - X[:, keep].mean(axis=0)) / sd[keep]
    k = int(min(n_comps, X.shape[0] - 1, X.shape[1]))
    if k < 1:
        msg = "PCA needs at least 2 samples and 1 assay with varying NPX."
        raise ValidationError(msg)
    tmp = ad.AnnData(X=X)
    # arpack needs k < min(shape); with as many components as the data allow, use full SVD
    sc.pp.pca(
        tmp, n_comps=k, zero_center=True, svd_solver="arpack" if k < min(X.shape) else "full"
    )
    scores = pd.DataFrame(
        tmp.obsm["X_pca"][:, :k],
        index=adata.obs_names[rows],
        columns=[f"PC{i + 1}" for i in range(k)],
    )
    ratio = np.asarray(tmp.uns["pca"]["variance_ratio"])[:k]
    loadings = pd.DataFrame(
        tmp.varm["PCs"][:, :k], index=pre["assays"][keep], columns=scores.columns
    )
    return pre | {"scores": scores, "ratio": ratio, "loadings": loadings}


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
    ``mean ± sd · SD``; PCA is scanpy's on the centred and scaled NPX matrix, with
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
        Return a new AnnData (default) or change ``adata`` in place and return it.

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
    out = _utils.new_result(adata, copy=copy)
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
        (``layers["qc_warning"]``); ``"keep"``: do nothing.
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
        Return a new AnnData (default) or change ``adata`` in place and return it.

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
        adata = flag_outliers(adata)
        copy = False
    work = _utils.new_result(adata, copy=copy)
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
    masked = 0
    if qc_warning == "mask":
        fail = _utils.qc_fail_cells(work)
        X = np.asarray(work.X, dtype=float).copy()
        masked = int((fail & ~np.isnan(X)).sum())
        X[fail] = np.nan
        work.X = X
    if controls == "drop":
        ctrl_a = _utils.control_assays(work)
        if ctrl_a.any():
            removed.append(("assay", list(work.var_names[ctrl_a]), "control assay"))
            drop_a |= ctrl_a
    if min_detected > 0:
        keep_rows = ~drop_s
        X = np.asarray(work.X, dtype=float)[keep_rows]
        detected = ~np.isnan(X)
        if "lod" in work.layers:
            lod = np.asarray(work.layers["lod"], dtype=float)[keep_rows]
            detected &= ~(X < lod)
        frac = detected.mean(axis=0) if X.shape[0] else np.zeros(work.n_vars)
        low = (frac < min_detected) & ~drop_a
        if low.any():
            removed.append(
                ("assay", list(work.var_names[low]), f"detected in < {min_detected:g} of samples")
            )
            drop_a |= low
    out = work[~drop_s][:, ~drop_a].copy()
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
