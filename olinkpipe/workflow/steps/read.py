"""Steps ``read`` (the Olink export(s) and the sample sheet) and ``clinical``."""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from ...errors import DesignError, preview
from .._context import Context
from .._registry import Step, register

logger = logging.getLogger("olinkpipe")


def read_npx_inputs(ctx: Context) -> None:
    """Read ``inputs.npx`` (one export, a folder or a list) and join the sample sheet."""
    import olinkpipe as op

    cfg = ctx.cfg.inputs
    paths = ctx.npx_paths
    chunks = ctx.cfg.compute.chunks
    if len(paths) == 1 and not paths[0].is_dir():
        adata = op.read_npx(
            paths[0], sep=cfg.sep, sheet=cfg.sheet, chunks=chunks, layers=cfg.layers
        )
        what = paths[0].name
        ctx.inputs["npx"] = paths[0]
    else:  # a folder of exports, or several files: one AnnData (olinkpipe.io.read_exports)
        adata = op.io.read_exports(
            paths, sep=cfg.sep, exclude=list(ctx.inputs.values()), layers=cfg.layers
        )
        if chunks is not None:  # read_exports reads in memory; the steps then run on dask
            from ...io.lazy import wrap

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
    ctx.note("qc", f"Read {what}: {describe(adata)}.")
    if "samples" in ctx.inputs:
        sheet = op.read_clinical(ctx.inputs["samples"], id_column=cfg.sample_id_column)
        check_sheet_matches(adata, sheet, ctx.inputs["samples"], cfg.sample_id_column)
        ctx.sheet = sheet
        adata = op.annotate(adata, sheet, on=cfg.sample_id_column)
    ctx.result.adata = adata


def describe(adata: ad.AnnData) -> str:
    """``"96 samples × 92 assays, product ..., data type NPX, panels ..."`` (from uns)."""
    prov = adata.uns.get("olinkpipe", {})
    panels = sorted(map(str, adata.var["Panel"].unique())) if "Panel" in adata.var else []
    return (
        f"{adata.n_obs} samples × {adata.n_vars} assays, "
        f"product {prov.get('product', 'unknown')}, data type {prov.get('data_type', 'NPX')}, "
        f"panels {', '.join(panels) or 'unknown'}"
    )


def check_sheet_matches(adata: ad.AnnData, sheet: pd.DataFrame, path: Path, on: str) -> None:
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


def read_clinical_inputs(ctx: Context) -> None:
    """Read ``inputs.patients`` and ``inputs.measurements``."""
    import olinkpipe as op

    if "patients" in ctx.inputs:
        ctx.patients = op.clinical.read_patients(ctx.inputs["patients"])
        logger.info("  %s: %d patients", ctx.inputs["patients"].name, len(ctx.patients))
    if "measurements" in ctx.inputs:
        ctx.measurements = op.clinical.read_measurements(
            ctx.inputs["measurements"], patients=ctx.patients
        )
        logger.info("  %s: %d rows", ctx.inputs["measurements"].name, len(ctx.measurements))


def _methods(cfg, versions: dict[str, str]) -> str:
    v = versions.get
    return (
        f"Olink NPX data were read and analysed with olinkpipe {v('olinkpipe', '?')} "
        f"(Python {v('python', '?')}, numpy {v('numpy', '?')}, pandas {v('pandas', '?')}, "
        f"scipy {v('scipy', '?')}, statsmodels {v('statsmodels', '?')}, anndata "
        f"{v('anndata', '?')}, scanpy {v('scanpy', '?')})."
    )


def _clinical_enabled(cfg) -> bool:
    return cfg.inputs.patients is not None or cfg.inputs.measurements is not None


register(
    Step(
        "read",
        read_npx_inputs,
        section="inputs",
        methods=_methods,
        paragraph="data",
        doc="read inputs.npx (one export, a folder or a list) and join inputs.samples",
    )
)
register(
    Step(
        "clinical",
        read_clinical_inputs,
        enabled=_clinical_enabled,
        section="inputs",
        doc="read inputs.patients and inputs.measurements",
    )
)
