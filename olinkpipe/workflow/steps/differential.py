"""Step ``differential``: ``tl.differential``, the volcano and paired plots."""

from __future__ import annotations

import difflib
from typing import Any, Literal

import anndata as ad
import pandas as pd
from pydantic import Field

from ...errors import DesignError, preview
from ...tl.methods import methods_of
from .._context import Context, only
from .._registry import Step, register
from .._schema import Section

#: ``method`` takes the names ``tl.differential`` accepts: its entries in the method registry
DE_METHODS = Literal[tuple(methods_of("differential"))]  # type: ignore[valid-type]


class Differential(Section):
    """The comparison (``olinkpipe.tl.differential``)."""

    groupby: str
    reference: str
    target: str | None = None
    pair: str | None = None
    method: DE_METHODS = "moderated"  # type: ignore[valid-type]
    covariates: list[str] | None = None
    alpha: float = Field(0.05, gt=0, lt=1)
    label: list[str] = Field(default_factory=list)
    top: int = Field(10, ge=0)
    paired_plot: list[str] = Field(default_factory=list)


def run_differential(ctx: Context) -> None:
    """``tl.differential`` with the config's design; table, volcano, paired plots."""
    import olinkpipe as op

    d = ctx.cfg.differential
    adata = ctx.result.adata
    check_design(adata, d)
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
    check_tested(res, adata, d)
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
        caption=f"{res.attrs.get('method', d.method)} test, "
        f"{res.attrs.get('sign', 'target - reference')}; one row per assay.",
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
                only(adata, assays),
                assays,
                d.groupby,
                d.pair,
                reference=d.reference,
                target=d.target,
            ),
            section="differential",
            caption="Before/after NPX per patient for " + ", ".join(assays) + ".",
        )


def _closest(value: str, options: list[str]) -> str:
    close = difflib.get_close_matches(str(value), options, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def check_design(adata: ad.AnnData, d: Any) -> None:
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


def check_tested(res: pd.DataFrame, adata: ad.AnnData, d: Any) -> None:
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


def _methods(cfg, versions: dict[str, str]) -> str:
    from ..report import de_test_text

    d = cfg.differential
    target = d.target or "the other level"
    return (
        f"Differential expression compared {d.groupby} = {target} with {d.groupby} = "
        f"{d.reference} (estimate = {target} − {d.reference}, NPX, i.e. log2 fold change)"
        + (f", pairing samples by {d.pair}" if d.pair else "")
        + (f", adjusting for {', '.join(d.covariates)}" if d.covariates else "")
        + f", with the {de_test_text(d)}. P-values were adjusted over all tested assays with "
        f"the Benjamini–Hochberg procedure; assays with adjusted p < {d.alpha:g} are called "
        "significant."
    )


register(
    Step(
        "differential",
        run_differential,
        model=Differential,
        needs=("qc",),
        title="Differential expression",
        methods=_methods,
        doc="tl.differential, volcano and paired plots",
    )
)
