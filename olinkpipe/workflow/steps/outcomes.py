"""Steps ``outcomes`` (cumulative incidence, Kaplan–Meier, swimmer) and ``table_one``."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from .._context import Context, WorkflowError, slug
from .._registry import Step, register
from .._schema import Section


class Endpoint(Section):
    time: str
    event: str


class Swimmer(Section):
    """Columns of the patient table for the swimmer plot (``pl.swimmer``)."""

    only_group_column: str = "group"
    only_group: str | None = "CAR-T"
    follow_up: str = "followup_months"
    start: str | None = "infusion_months"
    group: str | None = None
    relapse: str | None = "relapse_months"
    relapse_site: str | None = "relapse_site"
    death: str | None = "death_months"
    gvhd: str | None = "agvhd_months"
    ongoing: str | None = "ongoing_response"
    xlabel: str = "Months since transplant"


class Outcomes(Section):
    """Relapse with competing risks, PFS/OS and the swimmer plot."""

    group: str = "group"
    at: list[float] = Field(default_factory=lambda: [24.0])
    time_unit: str = "months"
    time_origin: str = "transplant"  # axis labels: "Months since transplant"
    cumulative_incidence: Endpoint | None = None
    survival: dict[str, Endpoint] = Field(default_factory=dict)
    swimmer: Swimmer | None = None


class TableOne(Section):
    """The baseline characteristics table (``clinical.table_one``)."""

    group: str = "group"
    categorical: list[str] = Field(default_factory=list)
    continuous: list[str] = Field(default_factory=list)
    nonnormal: list[str] = Field(default_factory=list)
    test: Literal["auto", "chi2", "fisher"] = "auto"
    rxc_test: Literal["chi2", "fisher"] = "chi2"


def run_outcomes(ctx: Context) -> None:
    """Cumulative incidence with Gray's test, KM with log-rank, the swimmer plot."""
    o = ctx.cfg.outcomes
    if ctx.patients is None:
        msg = "needs input 'patients'."
        raise WorkflowError(msg, step="outcomes")
    if o.cumulative_incidence is not None:
        _cumulative_incidence(ctx)
    _survival(ctx)
    if o.swimmer is not None:
        _swimmer(ctx)


def _unit(o) -> str:
    return f"{o.time_unit.capitalize()} since {o.time_origin}"


def _cumulative_incidence(ctx: Context) -> None:
    import olinkpipe as op

    o, pts = ctx.cfg.outcomes, ctx.patients
    c = o.cumulative_incidence
    curve = op.clinical.cumulative_incidence(pts, time=c.time, event=c.event, group=o.group)
    at = op.clinical.cumulative_incidence(pts, time=c.time, event=c.event, group=o.group, at=o.at)
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
            xlabel=_unit(o),
        ),
        section="outcomes",
        caption="Cumulative incidence of relapse (solid) and non-relapse mortality (dashed).",
    )


def _survival(ctx: Context) -> None:
    import olinkpipe as op

    o, pts = ctx.cfg.outcomes, ctx.patients
    for name, ep in o.survival.items():
        curve = op.clinical.kaplan_meier(pts, time=ep.time, event=ep.event, group=o.group)
        at = op.clinical.kaplan_meier(pts, time=ep.time, event=ep.event, group=o.group, at=o.at)
        lr = op.clinical.logrank(pts, time=ep.time, event=ep.event, group=o.group)
        s = slug(name)
        ctx.table(f"km_{s}", at, section="outcomes", caption=f"{name}: Kaplan–Meier estimates.")
        ctx.table(f"logrank_{s}", lr, section="outcomes", caption=f"{name}: log-rank test.")
        ctx.figure(
            f"km_{s}",
            op.pl.survival(curve, logrank=lr, xlabel=_unit(o), ylabel=f"{name} probability"),
            section="outcomes",
            caption=f"{name}: Kaplan–Meier curves with 95 % CI and numbers at risk.",
        )


def _swimmer(ctx: Context) -> None:
    import olinkpipe as op

    s, pts = ctx.cfg.outcomes.swimmer, ctx.patients
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


def run_table_one(ctx: Context) -> None:
    """``clinical.table_one`` of the patient table."""
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


def _outcomes_methods(cfg, versions: dict[str, str]) -> str:
    o = cfg.outcomes
    txt = []
    if o.cumulative_incidence is not None:
        txt.append(
            "Cumulative incidence of relapse, with non-relapse mortality as the competing "
            "risk, was estimated with the Aalen–Johansen estimator (delta-method variance, "
            "log(−log) confidence intervals as in cmprsk) and compared with Gray's test "
            "(Gray 1988)."
        )
    if o.survival:
        txt.append(
            f"{' and '.join(o.survival)} were estimated with the Kaplan–Meier method "
            f"(lifelines {versions.get('lifelines', '?')}, log(−log) 95 % CI) and compared "
            "with the log-rank test."
        )
    txt.append(f"Estimates are reported at {', '.join(f'{t:g}' for t in o.at)} {o.time_unit}.")
    return " ".join(txt)


def _table_one_methods(cfg, versions: dict[str, str]) -> str:
    larger = (
        ", larger tables with the Fisher–Freeman–Halton exact test"
        if cfg.table_one.rxc_test == "fisher"
        else ", larger tables with Pearson's chi-square"
    )
    return (
        "Baseline characteristics are n (%) or median (range); categorical variables were "
        "compared with Pearson's chi-square, Yates-corrected chi-square or Fisher's exact "
        f"test by the usual expected-count rule{larger}; continuous variables with the "
        "Mann–Whitney U test (non-normal) or Welch's t-test."
    )


def _outcomes_columns(cfg) -> list[tuple[str, str]]:
    o = cfg.outcomes
    keys = [("outcomes.group", o.group)]
    ends = {"cumulative_incidence": o.cumulative_incidence}
    ends.update({f"survival.{name}": ep for name, ep in o.survival.items()})
    for where, ep in ends.items():
        if ep is not None:
            keys += [(f"outcomes.{where}.time", ep.time), (f"outcomes.{where}.event", ep.event)]
    if o.swimmer is not None:
        for name, value in o.swimmer.model_dump().items():
            if value is not None and name not in ("only_group", "xlabel"):
                keys.append((f"outcomes.swimmer.{name}", value))
    return keys


def _table_one_columns(cfg) -> list[tuple[str, str]]:
    t = cfg.table_one
    keys = [("table_one.group", t.group)]
    for name in ("categorical", "continuous", "nonnormal"):
        keys += [(f"table_one.{name}", c) for c in getattr(t, name)]
    return keys


register(
    Step(
        "outcomes",
        run_outcomes,
        model=Outcomes,
        needs=("clinical",),
        title="Clinical outcomes",
        methods=_outcomes_methods,
        patient_columns=_outcomes_columns,
        doc="cumulative incidence + Gray, Kaplan–Meier + log-rank, swimmer plot",
    )
)
register(
    Step(
        "table_one",
        run_table_one,
        model=TableOne,
        needs=("clinical",),
        title="Baseline characteristics",
        methods=_table_one_methods,
        patient_columns=_table_one_columns,
        doc="clinical.table_one of the patient table",
    )
)
