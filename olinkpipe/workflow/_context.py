"""What a run's steps share: the run's context, its result and its errors.

This module sits below the runner, the steps and the report (which all import it), so
none of them imports another for these names.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd

from .. import _atomic
from ..errors import DesignError, OlinkpipeError
from ._schema import RunConfig

__all__ = [
    "Context",
    "WorkflowResult",
    "WorkflowError",
    "OutputExistsError",
    "RunLockedError",
]

logger = logging.getLogger("olinkpipe")


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
    """What :func:`~olinkpipe.workflow.run` produced.

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
    config: RunConfig | None = None  # the run's WorkflowConfig (workflow/config.py)
    timings: dict[str, float] = field(default_factory=dict)
    status: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def __repr__(self) -> str:
        return (
            f"WorkflowResult(out={str(self.out)!r}, tables={len(self.tables)}, "
            f"figures={len(self.figures)}, status={self.status})"
        )


@dataclass
class Context:
    """The state the steps pass on: inputs, intermediate results, report items."""

    cfg: RunConfig  #: the run's WorkflowConfig
    base: Path
    out: Path
    result: WorkflowResult
    inputs: dict[str, Path] = field(default_factory=dict)
    npx_paths: list[Path] = field(default_factory=list)
    patients: pd.DataFrame | None = None
    measurements: pd.DataFrame | None = None
    sheet: pd.DataFrame | None = None
    de: pd.DataFrame | None = None
    gene_sets: Any = None
    captions: dict[str, str] = field(default_factory=dict)
    sections: dict[str, list[str]] = field(default_factory=dict)
    notes: dict[str, list[str]] = field(default_factory=dict)
    caught: list | None = None
    compute: dict = field(default_factory=dict)

    # -- outputs -------------------------------------------------------------------
    def table(self, name: str, frame: pd.DataFrame, *, section: str, caption: str = "") -> None:
        """Write ``frame`` to ``tables/<name>.csv`` (+ parquet) and list it in ``section``."""
        _check_some_tested(name, frame)
        frame = frame.copy()
        tables = self.out / "tables"
        csv = _flat_lists(frame)
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
        """Save what a ``pl`` function drew as ``figures/<name>.<fmt>`` and list it."""
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
        """A sentence shown at the top of ``section`` in the report."""
        self.notes.setdefault(section, []).append(text)


def _flat_lists(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose list/tuple/set cells are ``;``-joined text (for CSV)."""
    csv = frame.copy()
    for col in csv.columns:
        if csv[col].map(lambda v: isinstance(v, list | tuple | set)).any():
            csv[col] = csv[col].map(
                lambda v: ";".join(map(str, v)) if isinstance(v, list | tuple | set) else v
            )
    return csv


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


def tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Move a meaningful index into a column (a RangeIndex is dropped)."""
    if isinstance(frame.index, pd.RangeIndex):
        return frame
    name = frame.index.name or "id"
    return frame.rename_axis(name).reset_index()


def slug(text: str) -> str:
    """``"JAK-STAT signaling"`` → ``"jak_stat_signaling"`` (file names)."""
    keep = "".join(c.lower() if c.isalnum() else "_" for c in text)
    return "_".join(p for p in keep.split("_") if p)[:40]


def only(adata: ad.AnnData, assays: list[str]) -> ad.AnnData:
    """A dask-backed AnnData cut to ``assays`` (by ``var['Assay']``), so a function that
    takes ``np.asarray(adata.X)`` computes only those columns; an in-memory one as is."""
    from .._dask import is_dask

    if not is_dask(adata.X) or "Assay" not in adata.var:
        return adata
    return adata[:, adata.var["Assay"].astype(str).isin([str(a) for a in assays]).to_numpy()]
