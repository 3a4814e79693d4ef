"""Step ``qc``: QC tables and plots, filtering, plate normalization, PCA."""

from __future__ import annotations

import logging
import warnings
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from pydantic import Field

from ...errors import OlinkpipeWarning, ValidationError
from .._context import Context, tidy
from .._registry import Step, register
from .._schema import Section

logger = logging.getLogger("olinkpipe")


class QC(Section):
    """Sample / assay QC before any statistics (``olinkpipe.pp``)."""

    qc_warning: Literal["drop", "mask", "keep"] = "drop"
    controls: Literal["drop", "keep"] = "drop"
    outliers: Literal["drop", "keep"] = "keep"
    outlier_sd: float = Field(3.0, gt=0)
    min_detected: float = Field(0.0, ge=0, le=1)
    normalize_plates: bool = False
    pca_color: str | None = "timepoint"


def check_qc_left(before: ad.AnnData, after: ad.AnnData, qc_warning: str) -> None:
    """A clear error when QC filtering leaves fewer than 2 samples of an export that had
    them, and a warning when ``qc_warning: drop`` alone removed more than half of them.

    What was removed is read from ``uns["olinkpipe"]["excluded"]`` (``step == "filter"``).
    """
    from ...errors import format_message

    tab = after.uns.get("olinkpipe", {}).get("excluded")
    removed = {}
    if isinstance(tab, pd.DataFrame) and len(tab):
        rows = tab[(tab["step"] == "filter") & (tab["kind"] == "sample")]
        removed = rows["reason"].value_counts().to_dict()
    by_qc = removed.get("QC warning", 0)
    hint = (
        "QC warnings are flagged per sample and panel (Target 96) or per sample and block "
        "(Explore): set qc: {qc_warning: mask} to set only the flagged values to NaN, or "
        "qc_warning: keep."
    )
    if after.n_obs < 2 <= before.n_obs:
        what = ", ".join(f"{n} {reason}" for reason, n in removed.items()) or "none"
        msg = format_message(
            f"QC left {after.n_obs} of {before.n_obs} samples (removed: {what}); "
            "nothing can be analysed",
            hint=hint
            if by_qc
            else "Control samples are dropped by default; set qc: {controls: keep} to keep them.",
        )
        raise ValidationError(msg)
    if qc_warning == "drop" and by_qc > before.n_obs / 2:
        warnings.warn(
            f"qc.qc_warning: drop removed {by_qc} of {before.n_obs} samples. {hint}",
            OlinkpipeWarning,
            stacklevel=2,
        )


def run_qc(ctx: Context) -> None:
    """QC tables and plot, ``pp.filter``, optional plate normalization, the PCA plot."""
    import olinkpipe as op

    q = ctx.cfg.qc
    adata = ctx.result.adata
    by_sample = op.pp.qc_summary(adata, by="sample")
    ctx.table(
        "qc_samples",
        tidy(by_sample),
        section="qc",
        caption="Per-sample QC: warnings, fraction below LOD, median and IQR of NPX per panel.",
    )
    ctx.table(
        "qc_assays",
        tidy(op.pp.qc_summary(adata, by="assay")),
        section="qc",
        caption="Per-assay QC: missing frequency and fraction below LOD.",
    )
    adata = op.pp.flag_outliers(adata, sd=q.outlier_sd)
    ctx.figure(
        "qc_iqr_median",
        op.pl.qc(by_sample, sd=q.outlier_sd),  # the table above, not recomputed
        section="qc",
        caption=f"IQR vs median NPX per sample and panel; lines at ±{q.outlier_sd:g} SD.",
    )
    before = adata
    adata = op.pp.filter(
        adata,
        qc_warning=q.qc_warning,
        controls=q.controls,
        min_detected=q.min_detected,
        outliers=q.outliers,
    )
    check_qc_left(before, adata, q.qc_warning)
    _note_masked(ctx, adata)
    if q.normalize_plates:
        adata = op.pp.normalize_plates(adata, method="intensity")
    _pca_figure(ctx, adata)
    from ..._dask import is_dask

    if is_dask(adata.X):
        ctx.note(
            "qc",
            "X stays dask-backed through QC and the tests (compute.chunks: "
            f"{ctx.cfg.compute.chunks!r}); the QC and PCA plots use dask-computed summaries and "
            "scores, and plots of single assays compute only those assays' columns.",
        )
    logger.info("  after QC: %d samples x %d assays", *adata.shape)
    ctx.note("qc", f"After QC: {adata.n_obs} samples × {adata.n_vars} assays.")
    ctx.result.adata = adata


def _note_masked(ctx: Context, adata: ad.AnnData) -> None:
    """Say how many values ``qc_warning: mask`` set to NaN (``uns["olinkpipe"]["filter"]``)."""
    record = adata.uns.get("olinkpipe", {}).get("filter", {})
    if record.get("qc_warning") != "mask":
        return
    n = int(record.get("n_values_masked", 0))
    ctx.note(
        "qc",
        f"qc_warning: mask set {n} value(s) flagged by an Olink QC warning to missing (NaN); "
        "their samples were kept.",
    )


def _pca_figure(ctx: Context, adata: ad.AnnData) -> None:
    import olinkpipe as op

    color = ctx.cfg.qc.pca_color if ctx.cfg.qc.pca_color in adata.obs else None
    with warnings.catch_warnings():  # all-NaN assays: no spread, quietly
        warnings.simplefilter("ignore", RuntimeWarning)
        varying = int((np.nanstd(adata.X, axis=0) > 0).sum()) if adata.n_obs else 0
    drawn = None
    why = (
        f"it needs at least 3 samples and 2 varying assays; after QC there are "
        f"{adata.n_obs} sample(s) and {varying} varying assay(s)"
    )
    if adata.n_obs >= 3 and varying >= 2:
        try:
            drawn = op.pl.pca(adata, color=color)
        except ValidationError as exc:  # e.g. every assay too often missing (qc_warning: mask)
            why = str(exc)
    if drawn is not None:
        ctx.figure(
            "pca",
            drawn,
            section="qc",
            caption="Principal components of NPX after QC"
            + (f", coloured by {color}." if color else "."),
        )
    else:
        ctx.note("qc", f"No PCA plot: {why}")


_WARNED = {
    "drop": "Samples with an Olink QC warning were excluded",
    "mask": "Values flagged by an Olink QC warning were set to missing (masked; the samples "
    "were kept)",
    "keep": "Samples with an Olink QC warning were kept",
}


def _methods(cfg, versions: dict[str, str]) -> str:
    q = cfg.qc
    return (
        f"{_WARNED[q.qc_warning]}; Olink control samples and "
        f"control assays were {'excluded' if q.controls == 'drop' else 'kept'}. Outlying "
        f"samples (IQR or median NPX of a panel, or distance in the first two principal "
        f"components, more than {q.outlier_sd:g} SD from the mean) were "
        f"{'excluded' if q.outliers == 'drop' else 'flagged but kept'}"
        + (
            f"; assays detected above LOD in fewer than {q.min_detected:.0%} of samples were "
            "excluded."
            if q.min_detected > 0
            else "."
        )
        + (" Plates were intensity-normalised within the project." if q.normalize_plates else "")
    )


register(
    Step(
        "qc",
        run_qc,
        model=QC,
        always=True,
        needs=("read",),
        uses=("lod", "clean", "bridging", "normalize_projects"),
        title="Quality control",
        methods=_methods,
        paragraph="data",
        doc="QC tables and plots, pp.filter, plate normalization, PCA",
    )
)
