"""The workflow's step registry: every step is described once, here.

A :class:`Step` says what the runner, the config schema and the report need to know of a
step: its name and order, its config section (a pydantic model, or none), which steps it
needs, how it runs, which input files and patient-table columns its settings name (checked
before anything is written), its report section and title, and its Methods text. The
runner (:mod:`olinkpipe.workflow.runner`), the config (:class:`~olinkpipe.workflow.config.
WorkflowConfig` is built from :func:`steps`) and the report read it, so a new step is one
module in ``workflow/steps/`` calling :func:`register` (and its name in
``steps/__init__.py``'s import list, which fixes the order). See docs/architecture.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from pydantic import BaseModel

    from ._context import Context

__all__ = ["Step", "register", "steps", "get", "names"]


def _never(cfg: Any) -> list:
    return []


@dataclass(frozen=True)
class Step:
    """One workflow step.

    Attributes
    ----------
    name
        The step's name (``run.json``'s ``steps``, the log, ``WorkflowResult.status``).
    run
        ``run(ctx)`` does the step: calls the public API and writes tables, figures and
        notes through the :class:`~olinkpipe.workflow._context.Context`.
    model
        The pydantic model of the step's config section (``None``: the step has none).
    always
        The section is always present (filled with its defaults when absent, as ``qc``);
        otherwise a missing or ``null`` section skips the step.
    enabled
        ``enabled(cfg)`` overrides when the step runs (default: its section is set, or
        always for steps without a section).
    needs
        Earlier steps that must be done; a failed or skipped one skips this step.
    uses
        Earlier optional steps: when they run they must be done (one that failed, or was
        skipped for want of its own needs, skips this step); not configured is fine.
    section, title
        Report section the step's tables and figures go to, and its heading (``title``
        ``None``: the step has no section of its own, e.g. ``read`` writes to ``inputs``).
    config_section
        The config section named in the on-error hint (default: the step's own section
        when it has a model, else ``section``).
    methods
        ``methods(cfg, versions)`` → a Methods sentence or paragraph (or ``None``).
    paragraph
        Steps with the same ``paragraph`` key write their Methods text into one paragraph
        (in step order); default the step's own name.
    input_files
        ``input_files(cfg)`` → ``[(config key, path text)]`` the step reads, checked to
        exist before the run starts.
    patient_columns
        ``patient_columns(cfg)`` → ``[(config key, column)]`` of the patient table the
        step's settings name, checked before the run starts.
    doc
        One line for the registry listing (docs/architecture.md, ``olinkpipe.workflow``).
    """

    name: str
    run: Callable[[Context], None] | None
    model: type[BaseModel] | None = None
    always: bool = False
    enabled: Callable[[Any], bool] | None = None
    needs: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    section: str | None = None
    title: str | None = None
    config_section: str | None = None
    methods: Callable[[Any, dict[str, str]], str | None] | None = None
    paragraph: str | None = None
    input_files: Callable[[Any], list[tuple[str, str]]] = field(default=_never)
    patient_columns: Callable[[Any], list[tuple[str, str]]] = field(default=_never)
    doc: str = ""

    def is_enabled(self, cfg: Any) -> bool:
        """Whether the step runs under ``cfg``."""
        if self.enabled is not None:
            return bool(self.enabled(cfg))
        if self.model is None or self.always:
            return True
        return getattr(cfg, self.name) is not None

    def unmet(self, status: dict[str, str]) -> list[str]:
        """The prerequisites in ``status`` (step → status) that keep this step from running."""
        hard = [n for n in self.needs if not status.get(n, "").startswith("done")]
        soft = [
            n
            for n in self.uses
            if status.get(n, "skipped") != "skipped" and not status[n].startswith("done")
        ]
        return hard + soft

    @property
    def report_section(self) -> str:
        return self.section or self.name

    @property
    def hint_section(self) -> str:
        if self.config_section:
            return self.config_section
        return self.name if self.model is not None else self.report_section


_STEPS: dict[str, Step] = {}


def register(step: Step) -> Step:
    """Add ``step`` after the steps registered before it (import order is run order)."""
    if step.name in _STEPS:
        msg = f"workflow step {step.name!r} is registered twice"
        raise ValueError(msg)
    _STEPS[step.name] = step
    return step


def steps() -> list[Step]:
    """Every registered step, in run order (``report`` last)."""
    from . import steps as _load  # noqa: F401 - importing the package registers the steps

    return list(_STEPS.values())


def get(name: str) -> Step:
    """The step called ``name``."""
    steps()
    return _STEPS[name]


def names() -> list[str]:
    """Step names in run order."""
    return [s.name for s in steps()]
