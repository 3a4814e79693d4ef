"""Optional data-preparation steps before QC (OlinkAnalyze parity, issue 17):

``lod`` (``pp.compute_lod`` / ``pp.read_fixed_lod``), ``clean`` (``pp.clean``),
``bridging`` (``pp.bridge_normalize`` of a second export, same or another product) and
``normalize_projects`` (``pp.normalize_projects`` of several exports by a plan).

Every further export these steps read is prepared like ``inputs.npx``: the ``lod`` and
``clean`` settings are applied to it and the sample sheet is joined, before it is
normalized. What the steps did is read back from ``uns["olinkpipe"]`` for the report.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import anndata as ad
import pandas as pd
from pydantic import Field, model_validator

from .._context import Context, WorkflowError
from .._registry import Step, register
from .._schema import Section

# ----------------------------------------------------------------------------- schema


class LOD(Section):
    """How the limit of detection is computed (``pp.compute_lod``)."""

    method: Literal["nclod", "fixed", "both"] = "nclod"
    fixed_lod: str | None = Field(None, description="Olink's fixed-LOD file (fixed, both).")
    groupby: str | None = None
    min_nc: int = Field(10, ge=1)

    @model_validator(mode="after")
    def _file_for_fixed(self):
        if self.method == "fixed" and self.fixed_lod is None:
            msg = "method 'fixed' needs fixed_lod: the path of Olink's fixed-LOD file"
            raise ValueError(msg)
        return self


class Clean(Section):
    """What ``pp.clean`` (OlinkAnalyze's ``clean_npx``) removes; its keywords."""

    remove_invalid_oid: bool = True
    remove_assay_na: bool = True
    remove_dup_sample_id: bool = True
    remove_control_sample: bool | list[str] = True
    control_sample_ids: list[str] | None = None
    remove_qc_warning: bool = True
    remove_control_assay: bool | list[str] = True
    remove_assay_warning: bool = True
    convert_nonunique_uniprot: bool = True


Samples = list[str] | dict[str, str] | dict[str, list[str]]


class Bridging(Section):
    """Bridge normalization of ``inputs.npx`` and a second export (``pp.bridge_normalize``)."""

    npx: str = Field(description="The second export (path, relative to the config).")
    samples: Samples = Field(description="Bridge samples: shared IDs or {reference: other}.")
    reference: Literal["inputs", "bridging"] = "inputs"
    method: Literal["median", "paired"] | None = None
    projects: tuple[str, str] = ("P1", "P2")

    @model_validator(mode="after")
    def _some_samples(self):
        if not self.samples:
            msg = "samples must name at least one bridge sample"
            raise ValueError(msg)
        return self


class PlanRow(Section):
    project: str
    normalize_to: str | list[str] | None = None
    method: Literal["bridge", "subset"] | None = None
    samples: Samples | None = None


class NormalizeProjects(Section):
    """Several exports normalized to one reference by a plan (``pp.normalize_projects``)."""

    name: str = Field("P1", description="The plan's name for inputs.npx.")
    projects: dict[str, str] = Field(min_length=1, description="Name → path of the others.")
    plan: list[PlanRow] = Field(min_length=2)
    keep_bridge: bool = False

    @model_validator(mode="after")
    def _known_projects(self):
        known = {self.name, *self.projects}
        if self.name in self.projects:
            msg = f"projects: {self.name!r} is the name of inputs.npx (name); rename one"
            raise ValueError(msg)
        unknown = [r.project for r in self.plan if r.project not in known]
        if unknown:
            msg = f"plan names project(s) {unknown!r}, not {sorted(known)!r}"
            raise ValueError(msg)
        return self


# ----------------------------------------------------------------------------- steps


def run_lod(ctx: Context) -> None:
    """Recompute ``layers["lod"]`` with ``lod.method``; note what ``uns`` recorded."""
    ctx.result.adata = apply_lod(ctx, ctx.result.adata)
    rec = ctx.result.adata.uns.get("olinkpipe", {}).get("lod", {})
    settings = {k: v for k, v in rec.items() if isinstance(v, str | int | float | bool)}
    ctx.note(
        "preparation",
        "LOD: " + ", ".join(f"{k} {v}" for k, v in settings.items() if v != "") + ".",
    )


def apply_lod(ctx: Context, adata: ad.AnnData) -> ad.AnnData:
    """``adata`` with the LOD of the ``lod`` section (unchanged when there is none)."""
    import olinkpipe as op

    cfg = ctx.cfg.lod
    if cfg is None:
        return adata
    path = _path(ctx, cfg.fixed_lod) if cfg.fixed_lod else None
    if cfg.method == "fixed":
        return op.pp.read_fixed_lod(adata, path)
    kwargs = {"method": cfg.method, "groupby": cfg.groupby, "min_nc": cfg.min_nc}
    if path is not None:
        kwargs["fixed_lod"] = pd.read_csv(path, sep=None, engine="python", dtype={"OlinkID": str})
    return op.pp.compute_lod(adata, **kwargs)


def run_clean(ctx: Context) -> None:
    """``pp.clean`` with the section's keywords; note what it removed (from ``uns``)."""
    adata = ctx.result.adata
    ctx.result.adata = out = apply_clean(ctx, adata)
    tab = out.uns.get("olinkpipe", {}).get("excluded")
    counts = {}
    if isinstance(tab, pd.DataFrame) and len(tab):
        counts = tab.loc[tab["step"] == "clean", "kind"].value_counts().to_dict()
    what = ", ".join(f"{n} {kind}(s)" for kind, n in counts.items()) or "nothing"
    ctx.note(
        "preparation",
        f"clean (OlinkAnalyze's clean_npx) removed {what}: {adata.n_obs} → {out.n_obs} "
        f"samples, {adata.n_vars} → {out.n_vars} assays (measurements removed are set to NaN).",
    )


def apply_clean(ctx: Context, adata: ad.AnnData) -> ad.AnnData:
    """``adata`` cleaned as the ``clean`` section says (unchanged when there is none)."""
    import olinkpipe as op

    if ctx.cfg.clean is None:
        return adata
    return op.pp.clean(adata, **ctx.cfg.clean.model_dump())


def run_bridging(ctx: Context) -> None:
    """Read and prepare ``bridging.npx``, then ``pp.bridge_normalize`` it with the input."""
    import olinkpipe as op

    b = ctx.cfg.bridging
    other = read_project(ctx, "bridging.npx", b.npx)
    main = ctx.result.adata
    ref, oth = (main, other) if b.reference == "inputs" else (other, main)
    kwargs = {} if b.method is None else {"method": b.method}
    out = op.pp.bridge_normalize(ref, oth, b.samples, projects=tuple(b.projects), **kwargs)
    ctx.result.adata = out
    rec = out.uns["olinkpipe"]["normalization"]["bridge_normalize"]
    ctx.note(
        "preparation",
        f"Bridging: {oth.n_obs} samples of {b.projects[1]} normalized to {b.projects[0]} "
        f"over {rec.get('n_bridge', len(rec.get('bridge_reference_ids', [])))} bridge "
        f"sample(s): {out.n_obs} samples × {out.n_vars} assays.",
    )
    _factor_table(ctx, "bridging_factors", rec, "Per-assay adjustment of the other project.")
    ctx.figure(
        "bridging",
        op.pl.bridge(None, out),
        section="preparation",
        caption="Bridge-sample differences (reference − other) per assay, before and after.",
    )


def run_normalize_projects(ctx: Context) -> None:
    """Read and prepare every project of the plan, then ``pp.normalize_projects``."""
    import olinkpipe as op

    n = ctx.cfg.normalize_projects
    projects = {n.name: ctx.result.adata}
    for name, value in n.projects.items():
        projects[name] = read_project(ctx, f"normalize_projects.projects.{name}", value)
    plan = pd.DataFrame(
        [r.model_dump() for r in n.plan], columns=["project", "normalize_to", "method", "samples"]
    )
    out = op.pp.normalize_projects(projects, plan, keep_bridge=n.keep_bridge)
    ctx.result.adata = out
    counts = out.obs["Project"].value_counts(sort=False)
    ctx.note(
        "preparation",
        "Projects normalized in the plan's order: "
        + ", ".join(f"{p} ({k} samples)" for p, k in counts.items())
        + f"; {out.n_vars} assays shared.",
    )
    rec = out.uns["olinkpipe"]["normalization"]["normalize_projects"]
    _factor_table(ctx, "normalize_projects_factors", rec, "Per-project, per-assay adjustment.")


def _factor_table(ctx: Context, name: str, record: dict, caption: str) -> None:
    factors = record.get("factors")
    if isinstance(factors, pd.DataFrame) and len(factors):
        ctx.table(name, factors.reset_index(drop=True), section="preparation", caption=caption)


def _path(ctx: Context, value: str) -> Path:
    from ..config import resolve_input

    return resolve_input(value, ctx.base)


def read_project(ctx: Context, key: str, value: str) -> ad.AnnData:
    """Read a further export and prepare it like ``inputs.npx`` (LOD, clean, sheet)."""
    import olinkpipe as op

    from .read import describe

    path = _path(ctx, value)
    if not path.exists():  # checked before the run; a file may go away meanwhile
        msg = f"{path}: input {key!r} not found."
        raise WorkflowError(msg)
    adata = op.read_npx(path, sep=ctx.cfg.inputs.sep, chunks=ctx.cfg.compute.chunks)
    ctx.inputs[key] = path
    ctx.note("preparation", f"Read {path.name} ({key}): {describe(adata)}.")
    adata = apply_clean(ctx, apply_lod(ctx, adata))
    on = ctx.cfg.inputs.sample_id_column
    sheet = ctx.sheet
    if sheet is not None and on in adata.obs:
        ids = set(sheet.index.astype(str).str.strip())
        if adata.obs[on].astype(str).str.strip().isin(ids).any():
            adata = op.annotate(adata, sheet, on=on)
    return adata


# ----------------------------------------------------------------------------- methods


def _lod_methods(cfg, versions: dict[str, str]) -> str:
    how = {
        "nclod": "from the negative controls (median + max(0.2, 3 SD), as OlinkAnalyze's "
        "olink_lod with NCLOD)",
        "fixed": "from Olink's fixed-LOD file",
        "both": "both from the negative controls and from Olink's fixed-LOD file",
    }[cfg.lod.method]
    return f"The limit of detection was computed {how}."


def _clean_methods(cfg, versions: dict[str, str]) -> str:
    off = [k for k, v in cfg.clean.model_dump().items() if v is False]
    return (
        "The data were cleaned as OlinkAnalyze's clean_npx does (invalid OlinkIDs, assays "
        "without values, duplicate SampleIDs, control samples and assays, QC failures and "
        "assay warnings removed" + (f"; turned off: {', '.join(off)}" if off else "") + ")."
    )


def _bridging_methods(cfg, versions: dict[str, str]) -> str:
    b = cfg.bridging
    return (
        f"Project {b.projects[1]} was bridge-normalized to {b.projects[0]} over "
        f"{len(b.samples)} bridge sample(s) (olinkpipe.pp.bridge_normalize, as OlinkAnalyze's "
        "olink_normalization)."
    )


def _projects_methods(cfg, versions: dict[str, str]) -> str:
    n = cfg.normalize_projects
    return (
        f"{len(n.plan)} projects were normalized to {n.plan[0].project} step by step in the "
        "order of the plan (olinkpipe.pp.normalize_projects, as OlinkAnalyze's "
        "olink_normalization_n)."
    )


def _lod_files(cfg) -> list[tuple[str, str]]:
    return [("lod.fixed_lod", cfg.lod.fixed_lod)] if cfg.lod.fixed_lod else []


def _bridging_files(cfg) -> list[tuple[str, str]]:
    return [("bridging.npx", cfg.bridging.npx)]


def _projects_files(cfg) -> list[tuple[str, str]]:
    return [
        (f"normalize_projects.projects.{k}", v) for k, v in cfg.normalize_projects.projects.items()
    ]


_PREP = {"section": "preparation", "paragraph": "data", "needs": ("read",)}

register(
    Step(
        "lod",
        run_lod,
        model=LOD,
        title="Data preparation",
        methods=_lod_methods,
        input_files=_lod_files,
        doc="pp.compute_lod (method nclod / fixed / both) or pp.read_fixed_lod",
        **_PREP,
    )
)
register(
    Step(
        "clean",
        run_clean,
        model=Clean,
        uses=("lod",),
        title="Data preparation",
        methods=_clean_methods,
        doc="pp.clean (OlinkAnalyze's clean_npx) with its keywords",
        **_PREP,
    )
)
register(
    Step(
        "bridging",
        run_bridging,
        model=Bridging,
        uses=("lod", "clean"),
        title="Data preparation",
        methods=_bridging_methods,
        input_files=_bridging_files,
        doc="pp.bridge_normalize of inputs.npx and a second export",
        **_PREP,
    )
)
register(
    Step(
        "normalize_projects",
        run_normalize_projects,
        model=NormalizeProjects,
        uses=("lod", "clean", "bridging"),
        title="Data preparation",
        methods=_projects_methods,
        input_files=_projects_files,
        doc="pp.normalize_projects of inputs.npx and further exports by a plan",
        **_PREP,
    )
)
