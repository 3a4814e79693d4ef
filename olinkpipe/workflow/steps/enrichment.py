"""Step ``enrichment``: ORA and GSEA of the differential result, pathway plots."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from ...errors import OlinkpipeWarning
from .._context import Context, WorkflowError, slug
from .._registry import Step, register
from .._schema import Section


class ORA(Section):
    direction: Literal["up", "down", "both"] = "up"
    alpha: float = Field(0.05, gt=0, lt=1)
    min_size: int = Field(5, ge=1)
    max_size: int = Field(500, ge=1)


class GSEA(Section):
    rank_by: Literal["statistic", "signed_p"] = "statistic"
    permutations: int = Field(1000, ge=10)
    min_size: int = Field(5, ge=1)
    max_size: int = Field(500, ge=1)


class Enrichment(Section):
    """Gene-set enrichment of the differential result (``tl.ora`` / ``tl.gsea``)."""

    gene_sets: str = "KEGG_2021_Human"
    organism: Literal["human", "mouse"] | None = None
    ora: ORA | None = Field(default_factory=ORA)
    gsea: GSEA | None = Field(default_factory=GSEA)
    pathways: list[str] = Field(default_factory=list)
    top: int = Field(15, ge=1)

    @field_validator("gene_sets")
    @classmethod
    def _known_collection(cls, v: str) -> str:
        """A collection name must be offline (a file path is checked when the step runs)."""
        from ...genesets.collections import available, default_cache_dir, not_offline_hint

        if "/" in v or "\\" in v or Path(v).suffix.lower() in {".gmt", ".txt", ".gz"}:
            return v
        names = available()
        if v not in names:
            msg = (
                f"gene-set collection {v!r} is not available offline (offline: {names}). "
                + not_offline_hint(v, default_cache_dir())
            )
            raise ValueError(msg)
        return v


def run_enrichment(ctx: Context) -> None:
    """ORA and/or GSEA with their tables and plots; pathway plots of named terms."""
    import olinkpipe as op

    e = ctx.cfg.enrichment
    if ctx.de is None:
        msg = "needs the differential result; add a 'differential' section to the config."
        raise WorkflowError(msg, step="enrichment")
    sets = op.genesets.load(e.gene_sets) if isinstance(e.gene_sets, str) else e.gene_sets
    ctx.gene_sets = sets
    pathways = known_pathways(ctx, sets, e.pathways)
    if e.ora is not None:
        _ora(ctx, sets)
    if e.gsea is not None:
        _gsea(ctx, sets, pathways)
    for term in pathways:
        ctx.figure(
            f"pathway_{slug(term)}",
            op.pl.pathway(ctx.de, sets, term, alpha=ctx.cfg.differential.alpha),
            section="enrichment",
            caption=f"Measured members of {term}: estimate and 95 % CI, significant highlighted.",
        )


def _ora(ctx: Context, sets: object) -> None:
    import olinkpipe as op

    e = ctx.cfg.enrichment
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


def _gsea(ctx: Context, sets: object, pathways: list[str]) -> None:
    import olinkpipe as op

    e = ctx.cfg.enrichment
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
                f"gsea_{slug(term)}",
                op.pl.gsea(gs, term),
                section="enrichment",
                caption=f"GSEA running enrichment score: {term}.",
            )


def known_pathways(ctx: Context, sets: object, pathways: list[str]) -> list[str]:
    """The ``enrichment.pathways`` in the collection; a warning and a note for the others."""
    from ...genesets.collections import as_collection, close_matches

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


def _methods(cfg, versions: dict[str, str]) -> str:
    from ...genesets.collections import provenance_text

    v = versions.get
    e = cfg.enrichment
    mouse = "; mouse symbols mapped to human orthologs by HGNC HCOP" * (e.organism == "mouse")
    parts = [
        f"Pathway enrichment used {provenance_text(e.gene_sets)} (offline; Olink assays "
        f"mapped to gene symbols by UniProt{mouse})."
    ]
    if e.ora is not None:
        parts.append(
            f"Over-representation of {e.ora.direction}-regulated significant assays was "
            "tested with the one-sided hypergeometric test against the universe of tested "
            "assays' genes present in the collection (not the genome), for sets of "
            f"{e.ora.min_size}–{e.ora.max_size} measured genes, BH-adjusted."
        )
    if e.gsea is not None:
        rank = (
            "the test statistic" if e.gsea.rank_by == "statistic" else "sign(estimate) × −log10 p"
        )
        parts.append(
            f"Pre-ranked GSEA (gseapy {v('gseapy', '?')}) ranked assays by {rank}, "
            f"with {e.gsea.permutations} gene-set permutations (seed {cfg.seed})."
        )
    return " ".join(parts)


register(
    Step(
        "enrichment",
        run_enrichment,
        model=Enrichment,
        needs=("differential",),
        title="Pathway enrichment",
        methods=_methods,
        doc="tl.ora / tl.gsea of the differential result, enrichment and pathway plots",
    )
)
