"""The workflow configuration: a pydantic schema, YAML loading and clear errors.

Every section is optional except ``inputs``; a step whose section is absent (or ``null``)
is skipped. Unknown keys are errors (typos must not be ignored silently), and every error
names the key and the allowed values.
"""

from __future__ import annotations

from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import ConfigError

__all__ = [
    "WorkflowConfig",
    "load_config",
    "bundled_config",
    "available_configs",
    "EXAMPLE_PREFIX",
]

#: Input paths starting with this prefix point into the bundled example folder.
EXAMPLE_PREFIX = "example:"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Inputs(_Section):
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


class QC(_Section):
    """Sample / assay QC before any statistics (``olinkpipe.pp``)."""

    qc_warning: Literal["drop", "mask", "keep"] = "drop"
    controls: Literal["drop", "keep"] = "drop"
    outliers: Literal["drop", "keep"] = "keep"
    outlier_sd: float = Field(3.0, gt=0)
    min_detected: float = Field(0.0, ge=0, le=1)
    normalize_plates: bool = False
    pca_color: str | None = "timepoint"


class Differential(_Section):
    """The comparison (``olinkpipe.tl.differential``)."""

    groupby: str
    reference: str
    target: str | None = None
    pair: str | None = None
    method: Literal["ttest", "wilcoxon", "moderated"] = "moderated"
    covariates: list[str] | None = None
    alpha: float = Field(0.05, gt=0, lt=1)
    label: list[str] = Field(default_factory=list)
    top: int = Field(10, ge=0)
    paired_plot: list[str] = Field(default_factory=list)


class ORA(_Section):
    direction: Literal["up", "down", "both"] = "up"
    alpha: float = Field(0.05, gt=0, lt=1)
    min_size: int = Field(5, ge=1)
    max_size: int = Field(500, ge=1)


class GSEA(_Section):
    rank_by: Literal["statistic", "signed_p"] = "statistic"
    permutations: int = Field(1000, ge=10)
    min_size: int = Field(5, ge=1)
    max_size: int = Field(500, ge=1)


class Enrichment(_Section):
    """Gene-set enrichment of the differential result (``tl.ora`` / ``tl.gsea``)."""

    gene_sets: str = "KEGG_2021_Human"
    ora: ORA | None = Field(default_factory=ORA)
    gsea: GSEA | None = Field(default_factory=GSEA)
    pathways: list[str] = Field(default_factory=list)
    top: int = Field(15, ge=1)


class Kinetics(_Section):
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


class Endpoint(_Section):
    time: str
    event: str


class Swimmer(_Section):
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


class Outcomes(_Section):
    """Relapse with competing risks, PFS/OS and the swimmer plot."""

    group: str = "group"
    at: list[float] = Field(default_factory=lambda: [24.0])
    time_unit: str = "months"
    time_origin: str = "transplant"  # axis labels: "Months since transplant"
    cumulative_incidence: Endpoint | None = None
    survival: dict[str, Endpoint] = Field(default_factory=dict)
    swimmer: Swimmer | None = None


class TableOne(_Section):
    """The baseline characteristics table (``clinical.table_one``)."""

    group: str = "group"
    categorical: list[str] = Field(default_factory=list)
    continuous: list[str] = Field(default_factory=list)
    nonnormal: list[str] = Field(default_factory=list)
    test: Literal["auto", "chi2", "fisher"] = "auto"
    rxc_test: Literal["chi2", "fisher"] = "chi2"


class Output(_Section):
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


class WorkflowConfig(_Section):
    """A whole analysis: inputs, the steps' settings and the outputs.

    Examples
    --------
    >>> cfg = WorkflowConfig.model_validate({"inputs": {"npx": "run.csv"}})
    >>> cfg.qc.qc_warning, cfg.differential is None
    ('drop', True)
    """

    name: str = "olinkpipe analysis"
    description: str = ""
    seed: int = 0
    on_error: Literal["stop", "continue"] = "stop"
    inputs: Inputs
    qc: QC = Field(default_factory=QC)
    differential: Differential | None = None
    enrichment: Enrichment | None = None
    kinetics: Kinetics | None = None
    outcomes: Outcomes | None = None
    table_one: TableOne | None = None
    output: Output = Field(default_factory=Output)


# ----------------------------------------------------------------------------- loading


def _configs_dir() -> Path:
    return Path(str(resources.files("olinkpipe.workflow") / "configs"))


def available_configs() -> list[str]:
    """Names of the bundled workflow configs.

    Examples
    --------
    >>> "cart_prophylaxis" in available_configs()
    True
    """
    return sorted(p.stem for p in _configs_dir().glob("*.yaml"))


def bundled_config(name: str = "cart_prophylaxis") -> Path:
    """Path of a bundled workflow config (``cart_prophylaxis`` or ``paired_de``).

    Examples
    --------
    >>> bundled_config().name
    'cart_prophylaxis.yaml'
    """
    path = _configs_dir() / f"{name}.yaml"
    if not path.exists():
        msg = f"No bundled workflow {name!r}; choose one of {available_configs()!r}."
        raise ConfigError(msg)
    return path


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class that holds the key at ``loc`` (for listing allowed keys)."""
    model: Any = WorkflowConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) else None
        if field is None:
            return None
        ann = field.annotation
        nxt = None
        for cand in getattr(ann, "__args__", (ann,)):
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                nxt = cand
            for sub in getattr(cand, "__args__", ()):
                if isinstance(sub, type) and issubclass(sub, BaseModel):
                    nxt = sub
        if nxt is None:
            return None
        model = nxt
    return model if isinstance(model, type) else None


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        kind = e["type"]
        if kind == "extra_forbidden":
            model = _model_at(loc)
            allowed = sorted(model.model_fields) if model is not None else []
            lines.append(f"key {key!r} is not a known setting; allowed keys here: {allowed}")
        elif kind == "missing":
            lines.append(f"key {key!r} is required but missing")
        elif kind in ("literal_error", "enum"):
            expected = e.get("ctx", {}).get("expected", "")
            lines.append(f"key {key!r}: {e['input']!r} is not allowed; allowed values: {expected}")
        else:
            lines.append(f"key {key!r}: {e['msg']} (got {e.get('input')!r})")
    shown = "; ".join(lines[:5])
    if len(lines) > 5:
        shown += f"; and {len(lines) - 5} more"
    return (
        f"{source}: invalid workflow config: {shown}. Hint: see docs/workflow_config.md "
        "or the bundled workflows/cart_prophylaxis.yaml for every key."
    )


def load_config(
    config: str | PathLike[str] | dict | WorkflowConfig | None = None,
) -> tuple[WorkflowConfig, Path]:
    """Read and validate a workflow config.

    Parameters
    ----------
    config
        A YAML path, a name of a bundled workflow (``"paired_de"``), a dict, a
        :class:`WorkflowConfig`, or ``None`` for the bundled ``cart_prophylaxis``.

    Returns
    -------
    tuple
        The validated config and the folder relative input paths are resolved against
        (the config file's folder; the working directory for dicts).

    Raises
    ------
    ConfigError
        Naming the file, the offending key(s) and the allowed values.

    Examples
    --------
    >>> cfg, base = load_config()
    >>> cfg.differential.reference
    'pre'
    """
    if config is None:
        config = bundled_config()
    if isinstance(config, WorkflowConfig):
        return config, Path.cwd()
    if isinstance(config, dict):
        source, data, base = "config", config, Path.cwd()
    else:
        path = Path(config)
        if not path.exists() and path.suffix == "" and str(config) in available_configs():
            path = bundled_config(str(config))
        if not path.exists():
            msg = (
                f"{path}: workflow config not found. Hint: give a YAML file, or one of the "
                f"bundled workflows {available_configs()!r}."
            )
            raise ConfigError(msg)
        source, base = str(path), path.resolve().parent
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            msg = f"{path}: not valid YAML: {exc}. Hint: check indentation and quoting."
            raise ConfigError(msg) from None
        if not isinstance(data, dict):
            msg = (
                f"{path}: a workflow config must be a mapping of keys (inputs:, qc:, ...), "
                f"got {type(data).__name__}."
            )
            raise ConfigError(msg)
    try:
        return WorkflowConfig.model_validate(data), base
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None


def resolve_input(value: str, base: Path) -> Path:
    """Resolve an input path: ``example:FILE`` → bundled example, relative → ``base``."""
    if value.startswith(EXAMPLE_PREFIX):
        from ..datasets.example import example_dir

        return example_dir() / value[len(EXAMPLE_PREFIX) :]
    path = Path(value).expanduser()
    return path if path.is_absolute() else base / path
