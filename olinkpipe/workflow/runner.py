"""The step runner behind ``olinkpipe run``: read → QC → DE → enrichment → kinetics →
outcomes → table one → report.

Every number comes from olinkpipe's public API; this module only calls the steps in
order, saves what they return and records how long each took. It computes nothing itself.
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import logging
import platform
import shutil
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from os import PathLike
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .. import _atomic
from .._dask import require_dask
from ..errors import (
    ConfigError,
    DesignError,
    OlinkpipeError,
    OlinkpipeWarning,
    ValidationError,
    preview,
)
from . import _lock
from .config import LOCAL_SCHEDULERS, WorkflowConfig, check_inputs, load_config

__all__ = [
    "run",
    "WorkflowResult",
    "WorkflowError",
    "OutputExistsError",
    "RunLockedError",
    "STEPS",
]

logger = logging.getLogger("olinkpipe")

#: Steps in the order they run.
STEPS = [
    "read",
    "clinical",
    "qc",
    "differential",
    "enrichment",
    "kinetics",
    "outcomes",
    "table_one",
    "report",
]

_VERSIONED = [
    "olinkpipe",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "anndata",
    "scanpy",
    "gseapy",
    "blitzgsea",
    "lifelines",
    "matplotlib",
    "pydantic",
]

_OUTPUT_FILES = ["report.html", "run.json", "adata.h5ad"]
_OUTPUT_DIRS = ["tables", "figures"]


class WorkflowError(OlinkpipeError, RuntimeError):
    """A workflow step failed; ``step`` names it and the message says why."""

    def __init__(self, message: str, *, step: str | None = None) -> None:
        super().__init__(message)
        self.step = step


class OutputExistsError(WorkflowError):
    """The output folder holds files and ``force`` was not given."""

    def __init__(self, message: str, *, out: Path) -> None:
        super().__init__(message)
        self.out = out


class RunLockedError(WorkflowError):
    """Another run is writing to the same output folder."""


@dataclass
class WorkflowResult:
    """What :func:`run` produced.

    Attributes
    ----------
    out
        The output folder.
    report
        Path of ``report.html``.
    tables
        Name → DataFrame of every table written to ``out/tables``.
    figures
        Name → path of every PNG written to ``out/figures`` (PDF/SVG beside it).
    adata
        The AnnData after QC (also written to ``out/adata.h5ad``).
    config
        The validated :class:`~olinkpipe.workflow.config.WorkflowConfig`.
    timings
        Step → seconds.
    status
        Step → ``"done"``, ``"skipped"``, ``"failed: <reason>"`` (or, in ``run.json``
        of a run that did not finish, ``"running"`` / ``"interrupted"``).
    warnings
        Every warning raised during the run (text).
    """

    out: Path
    report: Path
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    figures: dict[str, Path] = field(default_factory=dict)
    adata: ad.AnnData | None = None
    config: WorkflowConfig | None = None
    timings: dict[str, float] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return (
            f"WorkflowResult(out={str(self.out)!r}, tables={len(self.tables)}, "
            f"figures={len(self.figures)}, status={self.status})"
        )


@dataclass
class _Context:
    cfg: WorkflowConfig
    base: Path
    out: Path
    result: WorkflowResult
    inputs: dict[str, Path] = field(default_factory=dict)
    npx_paths: list[Path] = field(default_factory=list)
    patients: pd.DataFrame | None = None
    measurements: pd.DataFrame | None = None
    de: pd.DataFrame | None = None
    gene_sets: Any = None
    captions: dict[str, str] = field(default_factory=dict)
    sections: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    caught: list | None = None
    compute: dict = field(default_factory=dict)

    # -- outputs -------------------------------------------------------------------
    def table(self, name: str, frame: pd.DataFrame, *, section: str, caption: str = "") -> None:
        _check_some_tested(name, frame)
        frame = frame.copy()
        tables = self.out / "tables"
        csv = frame.copy()
        for col in csv.columns:
            if csv[col].map(lambda v: isinstance(v, list | tuple | set)).any():
                csv[col] = csv[col].map(
                    lambda v: ";".join(map(str, v)) if isinstance(v, list | tuple | set) else v
                )
        with _atomic.atomic_path(tables / f"{name}.csv") as tmp:
            csv.to_csv(tmp, index=False)
        if self.cfg.output.parquet:
            try:
                pq = csv.copy()
                for col in pq.columns:
                    if pq[col].dtype == object:
                        pq[col] = pq[col].map(
                            lambda v: v if v is None or isinstance(v, str) else str(v)
                        )
                pq.attrs = {}
                with _atomic.atomic_path(tables / f"{name}.parquet") as tmp:
                    pq.to_parquet(tmp, index=False)
            except (ValueError, TypeError, ImportError) as exc:  # pragma: no cover
                logger.warning("  could not write %s.parquet: %s", name, exc)
        self.result.tables[name] = frame
        self.sections.setdefault(section, []).append(f"table:{name}")
        if caption:
            self.captions[f"table:{name}"] = caption

    def figure(self, name: str, drawn: Any, *, section: str, caption: str = "") -> None:
        import matplotlib.pyplot as plt

        fig = _figure_of(drawn)
        figs = self.out / "figures"
        try:
            for fmt in self.cfg.output.figure_formats:
                with _atomic.atomic_path(figs / f"{name}.{fmt}") as tmp:
                    fig.savefig(tmp, format=fmt, dpi=self.cfg.output.dpi, bbox_inches="tight")
        finally:
            plt.close(fig)
        self.result.figures[name] = figs / f"{name}.png"
        self.sections.setdefault(section, []).append(f"figure:{name}")
        if caption:
            self.captions[f"figure:{name}"] = caption

    def note(self, section: str, text: str) -> None:
        self.notes.setdefault(section, []).append(text)


#: Tables of tests whose every p-value NaN means too little data (not 'done').
_TESTS = ("differential", "kinetics_by_dose", "kinetics_correlations", "gray_test", "logrank_")


def _check_some_tested(name: str, frame: pd.DataFrame) -> None:
    if not name.startswith(_TESTS) or "p_value" not in frame or not len(frame):
        return
    if frame["p_value"].notna().any():
        return
    ns = [c for c in frame.columns if str(c) == "n" or str(c).startswith("n_")]
    counts = "; ".join(
        f"{c}: {', '.join(str(v) for v in pd.unique(frame[c].dropna())[:3].tolist())}"
        for c in ns[:4]
    )
    msg = (
        f"{name}: no test could be computed (every p-value is missing): too few samples, "
        f"pairs or events" + (f" ({counts})" if counts else "") + ". Hint: check the groups "
        "in the config against the data; the table is not written."
    )
    raise DesignError(msg)


def _figure_of(drawn: Any):
    """The Figure behind whatever a ``pl`` function returned (Axes, Figure, array, dict)."""
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    if isinstance(drawn, Figure):
        return drawn
    if isinstance(drawn, Axes):
        return drawn.figure
    if isinstance(drawn, dict):
        drawn = list(drawn.values())
    if isinstance(drawn, list | tuple):
        return _figure_of(drawn[0])
    if hasattr(drawn, "flat"):
        return _figure_of(next(iter(drawn.flat)))
    if hasattr(drawn, "get_figure"):
        return drawn.get_figure()
    msg = f"a plot returned {type(drawn).__name__}, not a matplotlib Axes or Figure"
    raise TypeError(msg)


def _versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _previous_state(out: Path) -> str:
    """What an earlier run left in ``out`` (for the 'not empty' message)."""
    try:
        status = json.loads((out / "run.json").read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    if status == "complete":
        return "it holds a finished olinkpipe run"
    if isinstance(status, str):
        return f"it holds an olinkpipe run that did not finish (run.json status {status!r})"
    if (out / _lock.LOCK_NAME).exists():
        return "it holds an olinkpipe run that was killed before it finished"
    return "it holds other files"


def exists_message(out: Path, how: str) -> str:
    """The 'output folder not empty' message, with ``how`` to overwrite (API or CLI)."""
    return (
        f"{out}: the output folder is not empty ({_previous_state(out)}). Hint: {how} to "
        "replace olinkpipe's outputs there (other files are kept), or choose another "
        "output folder."
    )


def _locked_message(out: Path, live: dict) -> str:
    return (
        f"{out}: another olinkpipe run (pid {live.get('pid')} on {live.get('host')}, started "
        f"{live.get('started')}) is writing to this folder. Hint: wait for it to finish or "
        f"choose another output folder; if no such run is active, delete "
        f"{out / _lock.LOCK_NAME}."
    )


def _check_out(out: Path, *, force: bool) -> None:
    """Refuse an output folder that is in use or (without ``force``) not empty."""
    if out.exists() and not out.is_dir():
        msg = f"{out}: exists and is not a folder. Hint: choose another output folder."
        raise WorkflowError(msg)
    if not out.is_dir():
        return
    live = _lock.holder(out)
    if live is not None:
        raise RunLockedError(_locked_message(out, live))
    try:
        used = any(out.iterdir())
    except OSError as exc:
        raise _atomic.output_error(out, exc, "cannot read the output folder") from None
    if used and not force:
        raise OutputExistsError(exists_message(out, "pass force=True"), out=out)


def _clear_outputs(out: Path) -> None:
    """Remove olinkpipe's outputs (and stale temporary files) from ``out``; keep the rest."""
    try:
        for name in _OUTPUT_DIRS:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
        for name in _OUTPUT_FILES:
            (out / name).unlink(missing_ok=True)
        for stale in out.glob(f"{_atomic.TMP_PREFIX}*"):
            stale.unlink(missing_ok=True)
        for name in _OUTPUT_DIRS:
            (out / name).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _atomic.output_error(exc.filename or out, exc, "cannot prepare") from None


# ----------------------------------------------------------------------------- steps


def _step_read(ctx: _Context) -> None:
    import olinkpipe as op

    cfg = ctx.cfg.inputs
    paths = ctx.npx_paths
    chunks = ctx.cfg.compute.chunks
    if len(paths) == 1 and not paths[0].is_dir():
        adata = op.read_npx(paths[0], sep=cfg.sep, sheet=cfg.sheet, chunks=chunks)
        what = paths[0].name
        ctx.inputs["npx"] = paths[0]
    else:  # a folder of exports, or several files: one AnnData (olinkpipe.io.read_exports)
        adata = op.io.read_exports(paths, sep=cfg.sep, exclude=list(ctx.inputs.values()))
        if chunks is not None:  # read_exports reads in memory; the steps then run on dask
            from ..io.lazy import wrap

            adata = wrap(adata, chunks)
            ctx.note(
                "qc",
                "Several exports are read in memory (olinkpipe.io.read_exports has no "
                f"chunks=), then split into dask blocks (compute.chunks: {chunks!r}).",
            )
        sources = [Path(s) for s in adata.uns["olinkpipe"]["files"]]
        for i, src in enumerate(sources):
            ctx.inputs[f"npx[{i}]"] = src
        what = f"{len(sources)} export(s) ({', '.join(s.name for s in sources)})"
    prov = adata.uns.get("olinkpipe", {})
    panels = sorted(map(str, adata.var["Panel"].unique())) if "Panel" in adata.var else []
    ctx.note(
        "qc",
        f"Read {what}: {adata.n_obs} samples × {adata.n_vars} assays, "
        f"product {prov.get('product', 'unknown')}, data type {prov.get('data_type', 'NPX')}, "
        f"panels {', '.join(panels) or 'unknown'}.",
    )
    if "samples" in ctx.inputs:
        sheet = op.read_clinical(ctx.inputs["samples"], id_column=cfg.sample_id_column)
        _check_sheet_matches(adata, sheet, ctx.inputs["samples"], cfg.sample_id_column)
        adata = op.annotate(adata, sheet, on=cfg.sample_id_column)
    ctx.result.adata = adata


def _check_sheet_matches(adata: ad.AnnData, sheet: pd.DataFrame, path: Path, on: str) -> None:
    """A sample sheet none of whose IDs is a sample of the export is an error right away."""
    if on not in adata.obs:
        return  # annotate names the missing column
    obs = adata.obs
    if "is_control" in obs:  # study samples first in the message
        obs = obs.iloc[np.argsort(obs["is_control"].astype(bool).to_numpy(), kind="stable")]
    samples = pd.Index(obs[on].dropna().astype(str).str.strip().unique())
    ids = pd.Index(sheet.index.astype(str).str.strip())
    if len(ids) and not ids.isin(samples).any():
        msg = (
            f"{path}: none of the sample sheet's {len(ids)} {on}s is a sample of the export: "
            f"the sheet has {preview(list(ids), 3)}, the export has "
            f"{preview(list(samples), 3)}. Hint: check that the sheet "
            f"belongs to this export and that inputs.sample_id_column names its {on} column."
        )
        raise DesignError(msg)


def _step_clinical(ctx: _Context) -> None:
    import olinkpipe as op

    if "patients" in ctx.inputs:
        ctx.patients = op.clinical.read_patients(ctx.inputs["patients"])
        logger.info("  %s: %d patients", ctx.inputs["patients"].name, len(ctx.patients))
    if "measurements" in ctx.inputs:
        ctx.measurements = op.clinical.read_measurements(
            ctx.inputs["measurements"], patients=ctx.patients
        )
        logger.info("  %s: %d rows", ctx.inputs["measurements"].name, len(ctx.measurements))


def _check_qc_left(before: ad.AnnData, after: ad.AnnData, qc_warning: str) -> None:
    """A clear error when QC filtering leaves fewer than 2 samples of an export that had
    them, and a warning when ``qc_warning: drop`` alone removed more than half of them."""
    from ..errors import format_message

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


def _step_qc(ctx: _Context) -> None:
    import olinkpipe as op

    from .._dask import is_dask

    q = ctx.cfg.qc
    adata = ctx.result.adata
    ctx.table(
        "qc_samples",
        _tidy(op.pp.qc_summary(adata, by="sample")),
        section="qc",
        caption="Per-sample QC: warnings, fraction below LOD, median and IQR of NPX per panel.",
    )
    ctx.table(
        "qc_assays",
        _tidy(op.pp.qc_summary(adata, by="assay")),
        section="qc",
        caption="Per-assay QC: missing frequency and fraction below LOD.",
    )
    adata = op.pp.flag_outliers(adata, sd=q.outlier_sd)
    ctx.figure(
        "qc_iqr_median",
        op.pl.qc(adata, sd=q.outlier_sd),
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
    _check_qc_left(before, adata, q.qc_warning)
    if q.normalize_plates:
        adata = op.pp.normalize_plates(adata, method="intensity")
    color = q.pca_color if q.pca_color in adata.obs else None
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


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Move a meaningful index into a column (a RangeIndex is dropped)."""
    if isinstance(frame.index, pd.RangeIndex):
        return frame
    name = frame.index.name or "id"
    return frame.rename_axis(name).reset_index()


def _step_differential(ctx: _Context) -> None:
    import olinkpipe as op

    d = ctx.cfg.differential
    adata = ctx.result.adata
    _check_design(adata, d)
    res = op.tl.differential(
        adata,
        groupby=d.groupby,
        reference=d.reference,
        target=d.target,
        pair=d.pair,
        method=d.method,
        covariates=d.covariates,
        alpha=d.alpha,
    )
    _check_tested(res, adata, d)
    ctx.de = res
    sig = res[res["significant"].astype(bool)]
    n_pairs = res.attrs.get("n_pairs")
    if n_pairs is not None:
        ctx.note("differential", f"{n_pairs} complete pairs of {d.pair} were compared.")
    ctx.note(
        "differential",
        f"{len(sig)} of {len(res)} assays significant at BH-adjusted p < {d.alpha:g} "
        f"({int((sig['estimate'] > 0).sum())} up, {int((sig['estimate'] < 0).sum())} down).",
    )
    ctx.table(
        "differential",
        res,
        section="differential",
        caption=f"{d.method} test, {res.attrs.get('sign', 'target - reference')}; one row per assay.",
    )
    ctx.figure(
        "volcano",
        op.pl.volcano(res, label=d.label or None, top=d.top, alpha=d.alpha),
        section="differential",
        caption="Volcano plot: NPX difference vs −log10 p; coloured by BH significance.",
    )
    assays = [a for a in d.paired_plot if a in set(adata.var["Assay"])]
    if assays and d.pair:
        ctx.figure(
            "paired",
            op.pl.paired(
                _only(adata, assays),
                assays,
                d.groupby,
                d.pair,
                reference=d.reference,
                target=d.target,
            ),
            section="differential",
            caption="Before/after NPX per patient for " + ", ".join(assays) + ".",
        )


def _only(adata: ad.AnnData, assays: list[str]) -> ad.AnnData:
    """A dask-backed AnnData cut to ``assays`` (by ``var['Assay']``), so a function that
    takes ``np.asarray(adata.X)`` computes only those columns; an in-memory one as is."""
    from .._dask import is_dask

    if not is_dask(adata.X) or "Assay" not in adata.var:
        return adata
    return adata[:, adata.var["Assay"].astype(str).isin([str(a) for a in assays]).to_numpy()]


def _closest(value: str, options: list[str]) -> str:
    close = difflib.get_close_matches(str(value), options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_design(adata: ad.AnnData, d: Any) -> None:
    """The differential section's columns and levels, in the config's own words."""
    cols = [str(c) for c in adata.obs.columns]
    for key in ("groupby", "pair"):
        value = getattr(d, key)
        if value is not None and value not in adata.obs:
            msg = (
                f"differential.{key}: {value!r} is not a sample column{_closest(value, cols)}; "
                f"the samples have {preview(cols, 12)}. Hint: sample-sheet columns come from "
                "inputs.samples."
            )
            raise DesignError(msg)
    for value in d.covariates or []:
        if value not in adata.obs:
            msg = (
                f"differential.covariates: {value!r} is not a sample column"
                f"{_closest(value, cols)}; the samples have {preview(cols, 12)}."
            )
            raise DesignError(msg)
    levels = sorted(adata.obs[d.groupby].dropna().astype(str).unique())
    for key in ("reference", "target"):
        value = getattr(d, key)
        if value is not None and str(value) not in levels:
            msg = (
                f"differential.{key}: {value!r} is not a value of {d.groupby!r} after QC"
                f"{_closest(value, levels)}; its values are {preview(levels, 12)}."
            )
            raise DesignError(msg)
    if d.target is None and len(levels) > 2:
        msg = (
            f"differential.target is needed: {d.groupby!r} has {len(levels)} values "
            f"({preview(levels, 12)}); name the one to compare with {d.reference!r}."
        )
        raise DesignError(msg)


def _check_tested(res: pd.DataFrame, adata: ad.AnnData, d: Any) -> None:
    """No assay tested (too few pairs or samples) is an error, not a 'done' step of NaNs."""
    if res.attrs.get("n_tested", 1) and res["p_value"].notna().any():
        return
    ref, tgt = res.attrs.get("reference", d.reference), res.attrs.get("target", d.target)
    if d.pair:
        have = f"{res.attrs.get('n_pairs', 0)} complete {tgt}/{ref} pair(s) of {d.pair!r}"
        need = "at least 3 pairs"
    else:
        counts = adata.obs[d.groupby].astype(str).value_counts()
        have = ", ".join(f"{counts.get(str(lv), 0)} {lv!r} sample(s)" for lv in (tgt, ref))
        need = "at least 2 samples per group, and more for useful results"
    msg = (
        f"differential: no assay could be tested: after QC there are {have}; the "
        f"{d.method} test needs {need}. Hint: check differential.groupby, reference and "
        "pair against the sample sheet; the samples QC removed are listed in the warnings."
    )
    raise DesignError(msg)


def _step_enrichment(ctx: _Context) -> None:
    import olinkpipe as op

    e = ctx.cfg.enrichment
    if ctx.de is None:
        msg = "needs the differential result; add a 'differential' section to the config."
        raise WorkflowError(msg, step="enrichment")
    sets = op.genesets.load(e.gene_sets) if isinstance(e.gene_sets, str) else e.gene_sets
    ctx.gene_sets = sets
    pathways = _known_pathways(ctx, sets, e.pathways)
    if e.ora is not None:
        ora = op.tl.ora(
            ctx.de,
            sets,
            direction=e.ora.direction,
            alpha=e.ora.alpha,
            min_size=e.ora.min_size,
            max_size=e.ora.max_size,
            organism=e.organism,
        )
        ctx.table(
            "ora",
            ora,
            section="enrichment",
            caption=(
                f"Over-representation ({e.gene_sets}, direction {e.ora.direction}); universe = "
                "tested assays' genes in the collection."
            ),
        )
        n_sig = int((ora["p_adj"] < e.ora.alpha).sum())
        ctx.note("enrichment", f"ORA: {n_sig} terms with BH-adjusted p < {e.ora.alpha:g}.")
        ctx.figure(
            "ora",
            op.pl.enrichment(ora, top=e.top),
            section="enrichment",
            caption="Top over-represented terms.",
        )
    if e.gsea is not None:
        gs = op.tl.gsea(
            ctx.de,
            sets,
            rank_by=e.gsea.rank_by,
            permutations=e.gsea.permutations,
            min_size=e.gsea.min_size,
            max_size=e.gsea.max_size,
            seed=ctx.cfg.seed,
            organism=e.organism,
        )
        ctx.table(
            "gsea",
            gs,
            section="enrichment",
            caption=f"Pre-ranked GSEA ({e.gsea.permutations} permutations, seed {ctx.cfg.seed}).",
        )
        ctx.figure(
            "gsea",
            op.pl.enrichment(gs, top=e.top),
            section="enrichment",
            caption="Top GSEA terms.",
        )
        for term in pathways:
            if term in set(gs["term"]):
                ctx.figure(
                    f"gsea_{_slug(term)}",
                    op.pl.gsea(gs, term),
                    section="enrichment",
                    caption=f"GSEA running enrichment score: {term}.",
                )
    for term in pathways:
        ctx.figure(
            f"pathway_{_slug(term)}",
            op.pl.pathway(ctx.de, sets, term, alpha=ctx.cfg.differential.alpha),
            section="enrichment",
            caption=f"Measured members of {term}: estimate and 95 % CI, significant highlighted.",
        )


def _known_pathways(ctx: _Context, sets: object, pathways: list[str]) -> list[str]:
    """The ``enrichment.pathways`` in the collection; a warning and a note for the others."""
    from ..genesets.collections import as_collection, close_matches

    coll = as_collection(sets)
    for term in [t for t in pathways if t not in coll]:
        close = close_matches(term, coll)
        text = (
            f"enrichment: pathway {term!r} is not in {coll.name}; its figures are left out. "
            + (f"Did you mean {' or '.join(map(repr, close))}?" if close else "No term is close.")
        )
        warnings.warn(text, OlinkpipeWarning, stacklevel=2)
        ctx.note("enrichment", text)
    return [t for t in pathways if t in coll]


def _slug(text: str) -> str:
    keep = "".join(c.lower() if c.isalnum() else "_" for c in text)
    return "_".join(p for p in keep.split("_") if p)[:40]


def _step_kinetics(ctx: _Context) -> None:
    import olinkpipe as op
    from olinkpipe.pl.kinetics import _metric_label

    k = ctx.cfg.kinetics
    if ctx.measurements is None or ctx.patients is None:
        msg = "needs inputs 'measurements' and 'patients'."
        raise WorkflowError(msg, step="kinetics")
    pid = ctx.cfg.inputs.patient_id_column
    treated = ctx.patients[ctx.patients[k.dose_column].notna()]
    groups = op.clinical.dose_groups(treated, threshold=k.dose_threshold, column=k.dose_column)
    summaries = [
        op.clinical.kinetics(
            ctx.measurements, analyte=a, window=tuple(k.window), baseline_day=k.baseline_day
        )
        for a in k.analytes
    ]
    summary = pd.concat(summaries, ignore_index=True)
    ctx.table(
        "kinetics",
        summary,
        section="kinetics",
        caption=f"Per patient and analyte: peak, day of peak, AUC over days {k.window[0]:g}–{k.window[1]:g}.",
    )
    cmp = op.clinical.compare_groups(
        summary, by="dose_group", metrics=k.metrics, test=k.test, patients=groups
    )
    ctx.table(
        "kinetics_by_dose",
        cmp,
        section="kinetics",
        caption=f"High vs low dose (> {k.dose_threshold:.3g} cells/kg), {k.test} test, BH over rows.",
    )
    peaks = summary.pivot_table(index="patient", columns="analyte", values="cmax").reset_index()
    peaks = peaks.merge(groups[[pid, k.dose_column]], left_on="patient", right_on=pid, how="left")
    # three families of tests, each BH-adjusted on its own and named in ``family``
    corr = op.clinical.correlate(peaks, k.dose_column, list(k.analytes), k.correlation)
    corr.insert(0, "family", "dose vs peaks")
    if len(k.analytes) > 1:
        more = op.clinical.correlate(peaks, k.analytes[0], list(k.analytes[1:]), k.correlation)
        more.insert(0, "family", f"peak {k.analytes[0]} vs other peaks")
        corr = pd.concat([corr, more], ignore_index=True)
    d = ctx.cfg.differential
    if d is not None and d.pair and d.target and d.label and ctx.result.adata is not None:
        # proteomic change (target - reference NPX per patient) vs peak of the first analyte
        changes = op.clinical.protein_changes(
            _only(ctx.result.adata, d.label),
            groupby=d.groupby,
            reference=d.reference,
            target=d.target,
            pair=d.pair,
            assays=d.label,
        )
        both = peaks.merge(changes, left_on="patient", right_on=d.pair, how="inner")
        assays = [c for c in changes.columns if c != d.pair]
        more = op.clinical.correlate(both, k.analytes[0], assays, k.correlation)
        more.insert(0, "family", f"peak {k.analytes[0]} vs protein change")
        corr = pd.concat([corr, more], ignore_index=True)
        ctx.note(
            "kinetics",
            f"Correlations include the per-patient change ({changes.attrs['sign']}) of "
            f"{', '.join(assays)} against peak {k.analytes[0]}.",
        )
    ctx.table(
        "kinetics_correlations",
        corr,
        section="kinetics",
        caption=(
            f"{k.correlation.capitalize()} correlations of dose, peak values and proteomic "
            "changes; p_adj is BH within each family (first column)."
        ),
    )
    ctx.figure(
        "dose_vs_peak",
        op.pl.correlation(
            peaks,
            k.dose_column,
            k.analytes[0],
            method=k.correlation,
            logy=k.log_y,
            xlabel="Dose (cells/kg)",
            ylabel=_metric_label(summaries[0], "cmax"),  # "Peak IL-6 (pg/mL)"
        ),
        section="kinetics",
        caption=f"Dose vs peak {k.analytes[0]} per patient ({k.correlation}).",
    )
    for i, a in enumerate(k.analytes):
        ctx.figure(
            f"kinetics_{_slug(a)}",
            op.pl.kinetics(
                ctx.measurements, a, by="dose_group", patients=groups, log=k.log_y and i == 0
            ),
            section="kinetics",
            caption=f"{a} over days after infusion, mean ± SEM by dose group.",
        )
        sub = summaries[i]  # keeps attrs["unit"] for the axis label
        row = cmp[(cmp["analyte"] == a) & (cmp["metric"] == "cmax")] if "analyte" in cmp else None
        ctx.figure(
            f"peak_{_slug(a)}",
            op.pl.peaks(sub, "cmax", "dose_group", patients=groups, result=row, log=i == 0),
            section="kinetics",
            caption=f"Peak {a} by dose group.",
        )


def _step_outcomes(ctx: _Context) -> None:
    import olinkpipe as op

    o = ctx.cfg.outcomes
    if ctx.patients is None:
        msg = "needs input 'patients'."
        raise WorkflowError(msg, step="outcomes")
    pts = ctx.patients
    unit = f"{o.time_unit.capitalize()} since {o.time_origin}"
    if o.cumulative_incidence is not None:
        c = o.cumulative_incidence
        curve = op.clinical.cumulative_incidence(pts, time=c.time, event=c.event, group=o.group)
        at = op.clinical.cumulative_incidence(
            pts, time=c.time, event=c.event, group=o.group, at=o.at
        )
        gray = op.clinical.gray_test(pts, time=c.time, event=c.event, group=o.group, cause=None)
        ctx.table(
            "cumulative_incidence",
            at,
            section="outcomes",
            caption="Cumulative incidence (Aalen–Johansen) of relapse (cause 1) and non-relapse "
            f"mortality (cause 2) at {', '.join(f'{t:g}' for t in o.at)} {o.time_unit}.",
        )
        ctx.table("gray_test", gray, section="outcomes", caption="Gray's test per cause.")
        ctx.figure(
            "cumulative_incidence",
            op.pl.cumulative_incidence(
                curve,
                gray=gray,
                cause=[1, 2],
                cause_labels={1: "Relapse", 2: "NRM"},
                xlabel=unit,
            ),
            section="outcomes",
            caption="Cumulative incidence of relapse (solid) and non-relapse mortality (dashed).",
        )
    for name, ep in o.survival.items():
        curve = op.clinical.kaplan_meier(pts, time=ep.time, event=ep.event, group=o.group)
        at = op.clinical.kaplan_meier(pts, time=ep.time, event=ep.event, group=o.group, at=o.at)
        lr = op.clinical.logrank(pts, time=ep.time, event=ep.event, group=o.group)
        slug = _slug(name)
        ctx.table(f"km_{slug}", at, section="outcomes", caption=f"{name}: Kaplan–Meier estimates.")
        ctx.table(f"logrank_{slug}", lr, section="outcomes", caption=f"{name}: log-rank test.")
        ctx.figure(
            f"km_{slug}",
            op.pl.survival(curve, logrank=lr, xlabel=unit, ylabel=f"{name} probability"),
            section="outcomes",
            caption=f"{name}: Kaplan–Meier curves with 95 % CI and numbers at risk.",
        )
    s = o.swimmer
    if s is not None:
        sub = pts[pts[s.only_group_column] == s.only_group] if s.only_group else pts
        ctx.figure(
            "swimmer",
            op.pl.swimmer(
                sub,
                id=ctx.cfg.inputs.patient_id_column,
                follow_up=s.follow_up,
                start=s.start,
                group=s.group,
                relapse=s.relapse,
                relapse_site=s.relapse_site,
                death=s.death,
                gvhd=s.gvhd,
                ongoing=s.ongoing,
                xlabel=s.xlabel,
            ),
            section="outcomes",
            caption="One bar per treated patient, infusion to last follow-up, with events.",
        )


def _step_table_one(ctx: _Context) -> None:
    import olinkpipe as op

    t = ctx.cfg.table_one
    if ctx.patients is None:
        msg = "needs input 'patients'."
        raise WorkflowError(msg, step="table_one")
    tab = op.clinical.table_one(
        ctx.patients,
        group=t.group,
        categorical=t.categorical,
        continuous=t.continuous,
        nonnormal=t.nonnormal or None,
        test=t.test,
        rxc_test=t.rxc_test,
    )
    ctx.table("table_one", tab, section="table_one", caption="Baseline characteristics.")


_STEP_FUNCS: dict[str, Callable[[_Context], None]] = {
    "read": _step_read,
    "clinical": _step_clinical,
    "qc": _step_qc,
    "differential": _step_differential,
    "enrichment": _step_enrichment,
    "kinetics": _step_kinetics,
    "outcomes": _step_outcomes,
    "table_one": _step_table_one,
}

# Which earlier steps each step needs (a failed prerequisite skips the step).
_NEEDS = {
    "qc": ["read"],
    "differential": ["qc"],
    "enrichment": ["differential"],
    "kinetics": ["clinical"],
    "outcomes": ["clinical"],
    "table_one": ["clinical"],
}


def _enabled(cfg: WorkflowConfig, step: str) -> bool:
    if step in ("read", "qc", "report"):
        return True
    if step == "clinical":
        return cfg.inputs.patients is not None or cfg.inputs.measurements is not None
    return getattr(cfg, step) is not None


def run(
    config: str | PathLike[str] | dict | WorkflowConfig | None = None,
    out: str | PathLike[str] = "olinkpipe_results",
    *,
    force: bool = False,
    progress: bool = False,
    scheduler: str | None = None,
    chunks: str | int | None = None,
) -> WorkflowResult:
    """Run a workflow: read, QC, differential expression, enrichment, kinetics, outcomes,
    baseline table, figures and the HTML report.

    Parameters
    ----------
    config
        Workflow YAML path, bundled workflow name (``"cart_prophylaxis"``,
        ``"paired_de"``), a dict or a :class:`WorkflowConfig`. ``None`` runs the bundled
        ``cart_prophylaxis`` workflow on the bundled example data.
    out
        Output folder. Receives ``tables/*.csv`` (+ parquet), ``figures/*.png`` (+ PDF/SVG),
        ``report.html``, ``adata.h5ad`` and ``run.json``.
    force
        Overwrite olinkpipe's outputs in an existing, non-empty ``out``.
    scheduler, chunks
        Override ``compute.scheduler`` / ``compute.chunks`` of the config (the CLI's
        ``--scheduler`` and ``--chunks``); validated like the config.
    progress
        Show dask's progress bar (on stderr) for computations longer than a second, when
        ``compute.chunks`` is set and the scheduler is local (the CLI's ``-v``).

    Returns
    -------
    WorkflowResult
        Paths, tables (DataFrames), figure paths, the AnnData after QC, timings, status.

    Raises
    ------
    ConfigError
        The config is invalid (naming the key and the allowed values), an input file does
        not exist, ``inputs.sheet`` is not a sheet of the workbook, or a column named in
        the config is not in the patient table; all found before ``out`` is created.
    OutputExistsError
        ``out`` is not empty and ``force`` is not given (a :class:`WorkflowError`).
    RunLockedError
        Another run is writing to ``out`` (a :class:`WorkflowError`).
    WorkflowError
        A step failed (``err.step`` names it; the message says which step and why).
    OutputError
        An output could not be written (read-only or full disk), naming the file.

    Notes
    -----
    Progress is logged per step on the ``"olinkpipe"`` logger (the CLI shows it). With
    ``on_error: continue`` a failing step is recorded in the report and ``run.json`` and
    the steps that do not depend on it still run.

    Every output is written under a temporary name in ``out`` and renamed when complete,
    so no file under its final name is ever half-written. ``run.json`` is written first
    with ``"status": "running"`` and last with ``"complete"``; a failed or interrupted
    (Ctrl-C) run leaves ``"failed"`` or ``"interrupted"`` and the ``error``. A lock file
    (``.olinkpipe.lock``, holding the pid) keeps a second run out of ``out`` while one is
    writing; a lock whose process is gone is taken over.

    Examples
    --------
    >>> import tempfile
    >>> from olinkpipe.workflow import run
    >>> result = run(out=tempfile.mkdtemp() + "/res")  # doctest: +SKIP
    >>> result.report.name  # doctest: +SKIP
    'report.html'
    """
    cfg, base = load_config(config)
    if scheduler is not None or chunks is not None:
        cfg = _override_compute(cfg, scheduler=scheduler, chunks=chunks)
    out = Path(out)
    npx_paths, inputs = check_inputs(cfg, base)  # every cheap check before anything is written
    with _compute(cfg, progress=progress) as compute:  # a bad scheduler address fails here
        return _run_checked(cfg, base, out, npx_paths, inputs, compute, force=force)


def _override_compute(cfg: WorkflowConfig, **given: Any) -> WorkflowConfig:
    """The config with ``compute`` keys replaced by the given (non-None) values, validated."""
    from pydantic import ValidationError as PydanticError

    from .config import _format_errors

    data = cfg.model_dump()
    data["compute"].update({k: v for k, v in given.items() if v is not None})
    try:
        return WorkflowConfig.model_validate(data)
    except PydanticError as exc:
        raise ConfigError(_format_errors(exc, "--scheduler/--chunks")) from None


@contextlib.contextmanager
def _compute(cfg: WorkflowConfig, *, progress: bool = False) -> Iterator[dict]:
    """Run the body under ``compute.scheduler``; yields what ran where (for run.json)."""
    c = cfg.compute
    record: dict[str, Any] = {"chunks": c.chunks, "scheduler": c.scheduler}
    if c.chunks is None and c.scheduler is None:
        record["where"] = "in memory (no dask)"
        yield record
        return
    require_dask("compute: in the workflow config")
    import dask

    with contextlib.ExitStack() as stack:
        if c.scheduler is None or c.scheduler in LOCAL_SCHEDULERS:
            name = repr(c.scheduler) if c.scheduler else "(its default, threads)"
            if c.scheduler is not None:
                stack.enter_context(dask.config.set(scheduler=c.scheduler))
            record["where"] = f"with dask's local scheduler {name}"
            if progress and c.chunks is not None:
                from dask.diagnostics import ProgressBar

                stack.enter_context(ProgressBar(minimum=1.0, out=sys.stderr))
        else:
            client = _connect(c.scheduler)
            stack.callback(client.close)
            stack.enter_context(dask.config.set(scheduler=client))
            workers = client.scheduler_info().get("workers", {})
            record["address"] = c.scheduler
            record["n_workers"] = len(workers)
            record["n_threads"] = sum(int(w.get("nthreads", 0)) for w in workers.values())
            record["where"] = (
                f"with dask.distributed, scheduler at {c.scheduler} "
                f"({record['n_workers']} worker(s), {record['n_threads']} thread(s))"
            )
        logger.info("compute: %s, chunks %r", record["where"], c.chunks)
        yield record


#: Seconds to wait for a dask.distributed scheduler before giving up.
CONNECT_TIMEOUT = 10


def _connect(address: str):
    """A ``dask.distributed.Client`` on ``address``, or a ConfigError naming it."""
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - distributed comes with olinkpipe[dask]
        msg = (
            f"compute.scheduler: {address!r} needs dask.distributed, which is not installed; "
            "install it with: python -m pip install 'olinkpipe[dask]'"
        )
        raise ConfigError(msg) from exc
    try:
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        msg = (
            f"compute.scheduler: cannot connect to the dask.distributed scheduler at "
            f"{address!r} within {CONNECT_TIMEOUT} s ({type(exc).__name__}: {exc}). Hint: "
            "start it (dask scheduler / LocalCluster) or fix the address; nothing was written."
        )
        raise ConfigError(msg) from None


def _run_checked(
    cfg: WorkflowConfig,
    base: Path,
    out: Path,
    npx_paths: list[Path],
    inputs: dict[str, Path],
    compute: dict,
    *,
    force: bool,
) -> WorkflowResult:
    """:func:`run` after the config, the inputs and the scheduler are checked."""
    _check_out(out, force=force)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _atomic.output_error(out, exc, "cannot create the output folder") from None
    live = _lock.acquire(out)
    if live is not None:
        raise RunLockedError(_locked_message(out, live))
    result = WorkflowResult(out=out, report=out / "report.html", config=cfg)
    ctx = _Context(cfg=cfg, base=base, out=out, result=result)
    ctx.npx_paths, ctx.inputs, ctx.compute = npx_paths, inputs, compute
    started = time.perf_counter()
    try:
        _clear_outputs(out)
        _write_run_json(ctx, started, status="running")
        logger.info("olinkpipe run: %s -> %s", cfg.name, out)
        _run_steps(ctx, started)
    except KeyboardInterrupt as stop:
        _finish(ctx, started, "interrupted", str(stop) or "interrupted (Ctrl-C or SIGINT)")
        raise
    except BaseException as exc:
        err = exc
        if isinstance(exc, OSError) and not isinstance(exc, OlinkpipeError):
            err = _atomic.output_error(exc.filename or out, exc)
        _finish(ctx, started, "failed", str(err) or type(err).__name__)
        if err is exc:
            raise
        raise err from exc
    finally:
        _lock.release(out)
    logger.info("done in %.1f s: %s", result.timings["total"], result.report)
    return result


def _section_of(step: str) -> str:
    return {"read": "inputs", "clinical": "inputs", "report": "output"}.get(step, step)


def _run_steps(ctx: _Context, started: float) -> None:
    """Run every enabled step, then write the h5ad, the report and the final run.json."""
    from .report import write_report

    cfg, result = ctx.cfg, ctx.result
    steps = [s for s in STEPS if s != "report"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ctx.caught = caught
        for i, step in enumerate(steps, start=1):
            prefix = f"[{i}/{len(STEPS)}] {step}"
            if not _enabled(cfg, step):
                result.status[step] = "skipped"
                logger.info("%s: skipped (not in the config)", prefix)
                continue
            failed = [
                n for n in _NEEDS.get(step, []) if not result.status.get(n, "").startswith("done")
            ]
            if failed:
                result.status[step] = f"skipped: needs {', '.join(failed)}"
                logger.info("%s: skipped (needs %s)", prefix, ", ".join(failed))
                continue
            logger.info("%s ...", prefix)
            t0 = time.perf_counter()
            seen = len(caught)
            result.status[step] = "running"
            try:
                _STEP_FUNCS[step](ctx)
            except KeyboardInterrupt:
                result.status[step] = "interrupted"
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is reported with its step
                result.timings[step] = round(time.perf_counter() - t0, 3)
                reason = f"{type(exc).__name__}: {exc}".rstrip(". ")
                result.status[step] = f"failed: {reason}"
                logger.error("%s failed: %s", prefix, reason)
                if isinstance(exc, _atomic.OutputError):  # no later step could write either
                    msg = f"workflow step '{step}' could not write its output: {exc}"
                    raise WorkflowError(msg, step=step) from exc
                if cfg.on_error == "stop":
                    what = "the input files" if step in ("read", "clinical") else "the input"
                    msg = (
                        f"workflow step '{step}' failed: {reason}. To go on: fix {what} or "
                        f"the '{_section_of(step)}' section of the config, or set "
                        "on_error: continue to run the remaining steps."
                    )
                    raise WorkflowError(msg, step=step) from exc
                continue
            result.timings[step] = round(time.perf_counter() - t0, 3)
            result.status[step] = "done"
            for w in caught[seen:]:
                if issubclass(w.category, OlinkpipeWarning):
                    logger.warning("  warning: %s", w.message)
            logger.info("%s: done in %.1f s", prefix, result.timings[step])
        result.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
    ctx.caught = None
    t0 = time.perf_counter()
    logger.info("[%d/%d] report ...", len(STEPS), len(STEPS))
    result.status["report"] = "running"
    if cfg.output.h5ad and result.adata is not None:
        _write_h5ad(result.adata, ctx.out / "adata.h5ad")
    result.timings["report"] = round(time.perf_counter() - t0, 3)
    result.status["report"] = "done"
    result.timings["total"] = round(time.perf_counter() - started, 3)
    versions = _versions()
    write_report(ctx, versions)
    result.timings["total"] = round(time.perf_counter() - started, 3)
    _write_run_json(ctx, started, versions=versions, status="complete")


def _finish(ctx: _Context, started: float, status: str, error: str) -> None:
    """Record a failed or interrupted run in run.json (best effort; Ctrl-C ignored meanwhile)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        _write_run_json(ctx, started, status=status, error=error)
    except (OSError, OlinkpipeError) as exc:
        logger.error("could not record the %s run in run.json: %s", status, exc)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _write_h5ad(adata: ad.AnnData, path: Path) -> None:
    """Write the AnnData made h5ad-safe by :func:`olinkpipe.io.write.h5ad_safe`."""
    from ..io.write import h5ad_safe

    _atomic.write_h5ad(h5ad_safe(adata), path)


def _write_run_json(
    ctx: _Context, started: float, *, status: str, error: str | None = None, versions=None
) -> None:
    """Write run.json (atomically): ``status`` is running, complete, failed or interrupted."""
    result = ctx.result
    if ctx.caught is not None:
        result.warnings = [f"{w.category.__name__}: {w.message}" for w in ctx.caught]
    final = status != "running"
    record = {
        "status": status,
        "error": error,
        "name": ctx.cfg.name,
        "config": ctx.cfg.model_dump(mode="json"),
        "config_base": str(ctx.base),
        "seed": ctx.cfg.seed,
        "versions": versions or _versions(),
        "inputs": {
            k: {"path": str(p), "sha256": _sha256(p), "bytes": p.stat().st_size}
            if final
            else {"path": str(p)}
            for k, p in ctx.inputs.items()
            if p.is_file()
        },
        "steps": result.status,
        "timings_seconds": result.timings,
        "total_seconds": round(time.perf_counter() - started, 3),
        "tables": sorted(result.tables),
        "figures": sorted(result.figures),
        "warnings": result.warnings,
        "compute": ctx.compute,
    }
    text = json.dumps(record, indent=2, default=str)
    _atomic.write_text(ctx.out / "run.json", text)
