"""The workflow config schema below the steps, the run's context and the config.

- :class:`Section`, the base of every config section (unknown keys are errors);
- the fixed sections, present in every config: :class:`Inputs`, :class:`Output`,
  :class:`Compute`;
- :class:`RunConfig`, what code below :mod:`olinkpipe.workflow.config` (the run's
  :class:`~olinkpipe.workflow._context.Context`) may read of a
  :class:`~olinkpipe.workflow.config.WorkflowConfig`.

``WorkflowConfig`` itself is built in ``workflow/config.py`` from the step registry
(``workflow/_registry.py``), which registers the steps, which use the context: so the
context and the registry import this module, never the config.
"""

from __future__ import annotations

from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["Section", "Inputs", "Output", "Compute", "LOCAL_SCHEDULERS", "RunConfig"]


class Section(BaseModel):
    """A config section: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Inputs(Section):
    """Where the data are. Relative paths are relative to the config file."""

    npx: str | list[str] = Field(
        min_length=1,
        description="Olink export (long CSV/TXT, parquet, wide xlsx, or zip), a folder of "
        "exports, or a list of files; several files are read as one study "
        "(`olinkpipe.io.read_exports`).",
    )
    samples: str | None = Field(
        None, description="Sample sheet joined to the samples (SampleID -> patient, timepoint)."
    )
    sample_id_column: str = Field("SampleID", description="Column of `samples` with the SampleID.")
    patients: str | None = Field(None, description="Patient table (one row per patient).")
    patient_id_column: str = Field("patient", description="Patient ID column in every table.")
    measurements: str | None = Field(
        None, description="Long clinical measurements: patient, day, analyte, value, ..."
    )
    sep: str | None = Field(None, description="Delimiter of the NPX file (sniffed when null).")
    sheet: str | int | None = Field(
        None,
        description="Sheet of an xlsx NPX export: name or 0-based position (found by content "
        "when null).",
    )
    layers: list[str] | None = Field(
        None,
        description="Extra per-cell columns of the export kept as layers (null: all; []: "
        "none; e.g. [Count]); X, the LOD and QC are always kept.",
    )


class Output(Section):
    """What is written besides the report."""

    figure_formats: list[Literal["png", "pdf", "svg"]] = Field(
        default_factory=lambda: ["png", "pdf"]
    )
    dpi: int = Field(110, ge=50, le=600)
    parquet: bool = True
    h5ad: bool = True
    report_rows: int = Field(25, ge=1)

    @field_validator("figure_formats")
    @classmethod
    def _png_first(cls, v: list[str]) -> list[str]:
        if "png" not in v:
            msg = "figure_formats must include 'png' (the report embeds the PNGs)"
            raise ValueError(msg)
        return v


#: Local dask schedulers ``compute.scheduler`` may name (anything else is an address).
LOCAL_SCHEDULERS = ("threads", "processes", "synchronous")


class Compute(Section):
    """Where the matrix lives and which dask scheduler computes it (docs/scaling.md).

    ``chunks`` null reads the data in memory; ``"auto"``, ``"panel"`` or a positive int
    reads it dask-backed (``read_npx(chunks=...)``). ``scheduler`` null uses dask's
    default; ``threads``, ``processes``, ``synchronous`` pick a local scheduler; anything
    else is the address of a running dask.distributed scheduler (``tcp://host:8786``).
    """

    chunks: str | int | None = None
    scheduler: str | None = None

    @field_validator("chunks", mode="before")
    @classmethod
    def _chunks(cls, v: Any) -> Any:
        ok = v is None or v in ("auto", "panel")
        ok = ok or (isinstance(v, int) and not isinstance(v, bool) and v > 0)
        if not ok:
            msg = (
                "chunks must be null (in memory), 'auto', 'panel' or a positive number of "
                "assays per block"
            )
            raise ValueError(msg)
        return v

    @field_validator("scheduler", mode="before")
    @classmethod
    def _scheduler(cls, v: Any) -> Any:
        if v is None or v in LOCAL_SCHEDULERS:
            return v
        if isinstance(v, str) and "://" in v and v.split("://", 1)[1].strip():
            return v.strip()
        msg = (
            f"scheduler must be null (dask's default), one of {list(LOCAL_SCHEDULERS)} or the "
            f"address of a dask.distributed scheduler such as 'tcp://host:8786'"
        )
        raise ValueError(msg)


class RunConfig(Protocol):
    """A :class:`~olinkpipe.workflow.config.WorkflowConfig` as the run's context sees it:
    the fixed sections, and one section per registered step (``cfg.qc``,
    ``cfg.differential``, ...; ``None`` when the step is not configured)."""

    @property
    def inputs(self) -> Inputs: ...

    @property
    def output(self) -> Output: ...

    @property
    def compute(self) -> Compute: ...

    def model_dump(self, **kwargs: Any) -> dict[str, Any]: ...

    def __getattr__(self, name: str) -> Any: ...  # a step's section
