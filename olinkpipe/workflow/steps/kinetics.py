"""Step ``kinetics``: CAR-T expansion and cytokine kinetics against dose."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator

from .._context import Context, WorkflowError, only, slug
from .._registry import Step, register
from .._schema import Section


class Kinetics(Section):
    """CAR-T expansion and cytokine kinetics against dose (``olinkpipe.clinical``)."""

    analytes: list[str]
    window: tuple[float, float] = (0.0, 28.0)
    baseline_day: float = 0.0
    dose_column: str = "dose"
    dose_threshold: float = Field(2e6, gt=0)
    metrics: list[str] = Field(default_factory=lambda: ["cmax", "tmax", "auc"])
    test: Literal["mannwhitney", "ttest"] = "mannwhitney"
    correlation: Literal["spearman", "pearson", "kendall"] = "spearman"
    log_y: bool = True

    @field_validator("window")
    @classmethod
    def _ordered(cls, v: tuple[float, float]) -> tuple[float, float]:
        if v[0] >= v[1]:
            msg = f"window must be (start, end) with start < end, got {list(v)}"
            raise ValueError(msg)
        return v


def run_kinetics(ctx: Context) -> None:
    """Per-patient summaries, dose-group comparisons, correlations and their plots."""
    import olinkpipe as op

    k = ctx.cfg.kinetics
    if ctx.measurements is None or ctx.patients is None:
        msg = "needs inputs 'measurements' and 'patients'."
        raise WorkflowError(msg, step="kinetics")
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
    pid = ctx.cfg.inputs.patient_id_column
    peaks = peaks.merge(groups[[pid, k.dose_column]], left_on="patient", right_on=pid, how="left")
    corr = _correlations(ctx, peaks)
    ctx.table(
        "kinetics_correlations",
        corr,
        section="kinetics",
        caption=(
            f"{k.correlation.capitalize()} correlations of dose, peak values and proteomic "
            "changes; p_adj is BH within each family (first column)."
        ),
    )
    _figures(ctx, summaries, cmp, peaks, corr, groups)


def _correlations(ctx: Context, peaks: pd.DataFrame) -> pd.DataFrame:
    """Three families of tests, each BH-adjusted on its own and named in ``family``."""
    import olinkpipe as op

    k = ctx.cfg.kinetics
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
            only(ctx.result.adata, d.label),
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
    return corr


def _figures(ctx, summaries, cmp, peaks, corr, groups) -> None:
    import olinkpipe as op
    from olinkpipe.pl.kinetics import metric_label

    k = ctx.cfg.kinetics
    first = corr[(corr["family"] == "dose vs peaks") & (corr["y"] == k.analytes[0])]
    ctx.figure(
        "dose_vs_peak",
        op.pl.correlation(
            peaks,
            k.dose_column,
            k.analytes[0],
            method=k.correlation,
            logy=k.log_y,
            xlabel="Dose (cells/kg)",
            ylabel=metric_label(summaries[0], "cmax"),  # "Peak IL-6 (pg/mL)"
            result=first if len(first) == 1 else None,  # the table's row, not recomputed
        ),
        section="kinetics",
        caption=f"Dose vs peak {k.analytes[0]} per patient ({k.correlation}).",
    )
    for i, a in enumerate(k.analytes):
        ctx.figure(
            f"kinetics_{slug(a)}",
            op.pl.kinetics(
                ctx.measurements, a, by="dose_group", patients=groups, log=k.log_y and i == 0
            ),
            section="kinetics",
            caption=f"{a} over days after infusion, mean ± SEM by dose group.",
        )
        sub = summaries[i]  # keeps attrs["unit"] for the axis label
        row = cmp[(cmp["analyte"] == a) & (cmp["metric"] == "cmax")] if "analyte" in cmp else None
        ctx.figure(
            f"peak_{slug(a)}",
            op.pl.peaks(sub, "cmax", "dose_group", patients=groups, result=row, log=i == 0),
            section="kinetics",
            caption=f"Peak {a} by dose group.",
        )


def _sci(x: float) -> str:
    """2000000.0 -> '2.0 × 10^6' (plain text for the methods)."""
    if x == 0 or 1e-3 <= abs(x) < 1e4:
        return f"{x:g}"
    exp = int(np.floor(np.log10(abs(x))))
    return f"{x / 10**exp:.1f} × 10^{exp}"


def _methods(cfg, versions: dict[str, str]) -> str:
    k = cfg.kinetics
    test = (
        "Mann–Whitney U test (Hodges–Lehmann shift)" if k.test == "mannwhitney" else "Welch t-test"
    )
    return (
        f"For {', '.join(k.analytes)}, the peak (Cmax), day of peak (Tmax) and the area "
        f"under the curve (linear trapezoid) over days {k.window[0]:g}–{k.window[1]:g} "
        f"after infusion were computed per patient. Patients were grouped by dose "
        f"(high: > {_sci(k.dose_threshold)} cells/kg) and compared with the {test}"
        f"; associations used {k.correlation.capitalize()} correlation. P-values were "
        "BH-adjusted across comparisons."
    )


def _patient_columns(cfg) -> list[tuple[str, str]]:
    return [("kinetics.dose_column", cfg.kinetics.dose_column)]


register(
    Step(
        "kinetics",
        run_kinetics,
        model=Kinetics,
        needs=("clinical",),
        title="CAR-T expansion and cytokine kinetics",
        methods=_methods,
        patient_columns=_patient_columns,
        doc="clinical.kinetics / compare_groups / correlate against dose, with plots",
    )
)
