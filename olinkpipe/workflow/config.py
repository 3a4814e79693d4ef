"""The workflow configuration: a pydantic schema, YAML loading and clear errors.

Every section is optional except ``inputs``; a step whose section is absent (or ``null``)
is skipped. Unknown keys are errors (typos must not be ignored silently), and every error
names the key and the allowed values.
"""

from __future__ import annotations

import difflib
import reprlib
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, Field, ValidationError, create_model

from ..errors import ConfigError
from ._schema import Compute, Inputs, Output
from ._schema import Section as _Section

__all__ = [
    "WorkflowConfig",
    "load_config",
    "check_inputs",
    "bundled_config",
    "available_configs",
    "EXAMPLE_PREFIX",
]

#: Input paths starting with this prefix point into the bundled example folder.
EXAMPLE_PREFIX = "example:"


class _Base(_Section):
    name: str = "olinkpipe analysis"
    description: str = ""
    seed: int = 0
    on_error: Literal["stop", "continue"] = "stop"
    inputs: Inputs


def _step_fields() -> dict[str, Any]:
    """One optional (or always present) section per registered step with a model."""
    from ._registry import steps

    fields: dict[str, Any] = {}
    for step in steps():
        if step.model is None:
            continue
        if step.always:
            fields[step.name] = (step.model, Field(default_factory=step.model))
        else:
            fields[step.name] = (step.model | None, None)
    return fields


#: A whole analysis: inputs, one section per workflow step (from the step registry,
#: :mod:`olinkpipe.workflow._registry`), the outputs and the compute settings.
WorkflowConfig = create_model(
    "WorkflowConfig",
    __base__=_Base,
    __module__=__name__,
    __doc__="""A whole analysis: inputs, the steps' settings and the outputs.

    The step sections (``qc``, ``differential``, ...) come from the workflow's step
    registry (:mod:`olinkpipe.workflow._registry`); docs/workflow_config.md lists them.

    Examples
    --------
    >>> cfg = WorkflowConfig.model_validate({"inputs": {"npx": "run.csv"}})
    >>> cfg.qc.qc_warning, cfg.differential is None
    ('drop', True)
    """,
    **_step_fields(),
    output=(Output, Field(default_factory=Output)),
    compute=(Compute, Field(default_factory=Compute)),
)


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


#: Longest quotation of a value in an error message.
QUOTE_LIMIT = 200

_repr = reprlib.Repr()
_repr.maxstring = _repr.maxother = _repr.maxlong = QUOTE_LIMIT
_repr.maxlist = _repr.maxtuple = _repr.maxdict = _repr.maxset = 8
_repr.maxlevel = 3


def _short(value: Any) -> str:
    """``repr(value)`` cut to about :data:`QUOTE_LIMIT` characters."""
    text = _repr.repr(value)
    if len(text) > QUOTE_LIMIT:
        text = text[: QUOTE_LIMIT - 1] + "…"
    return text


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = _short(".".join(str(p) for p in loc) or "(top level)")
        kind = e["type"]
        if kind == "extra_forbidden":
            model = _model_at(loc)
            allowed = sorted(model.model_fields) if model is not None else []
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1) if loc else []
            also = f" (did you mean {close[0]!r}?)" if close else ""
            lines.append(f"key {key} is not a known setting{also}; allowed keys here: {allowed}")
        elif kind == "missing":
            lines.append(f"key {key} is required but missing")
        elif kind in ("literal_error", "enum"):
            expected = e.get("ctx", {}).get("expected", "")
            lines.append(
                f"key {key}: {_short(e['input'])} is not allowed; allowed values: {expected}"
            )
        else:
            lines.append(f"key {key}: {e['msg']} (got {_short(e.get('input'))})")
    shown = "; ".join(lines[:5])
    if len(lines) > 5:
        shown += f"; and {len(lines) - 5} more"
    return (
        f"{source}: invalid workflow config: {shown}. Hint: see docs/workflow_config.md "
        "or the bundled workflows (olinkpipe run --help lists them) for every key."
    )


#: A config file larger than this is refused (a workflow config is a short text file).
MAX_CONFIG_BYTES = 1 << 20
#: YAML aliases may add at most this many nodes (an "alias bomb" adds billions).
MAX_ALIAS_NODES = 10_000
_MAX_DEPTH = 100


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys (naming key and lines)."""

    source = "config"

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict[tuple[str, str], int] = {}
            for key_node, _ in node.value:
                if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                    continue
                ident = (key_node.tag, key_node.value)
                line = key_node.start_mark.line + 1
                if ident in seen:
                    msg = (
                        f"{self.source}: line {line}: key {_short(key_node.value)} appears twice "
                        f"in the same section (first on line {seen[ident]}). Hint: keep one "
                        "of them."
                    )
                    raise ConfigError(msg)
                seen[ident] = line
        return super().construct_mapping(node, deep=deep)


def _alias_growth(root: yaml.Node, source: str) -> int:
    """How many nodes aliases add when the document is expanded; refuses cycles and depth."""
    sizes: dict[int, int] = {}
    distinct = 0

    def size(node: yaml.Node, depth: int) -> int:
        nonlocal distinct
        key = id(node)
        if key in sizes:
            if sizes[key] < 0:
                msg = f"{source}: a YAML alias refers to itself. Hint: remove the alias."
                raise ConfigError(msg)
            return sizes[key]
        if depth > _MAX_DEPTH:
            msg = f"{source}: nested more than {_MAX_DEPTH} levels deep; not a workflow config."
            raise ConfigError(msg)
        distinct += 1
        sizes[key] = -1
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(c, depth + 1) for c in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        sizes[key] = min(total, 1 << 62)
        return sizes[key]

    return size(root, 0) - distinct


def _load_yaml(path: Path) -> Any:
    """Parse a YAML config strictly: UTF-8, no duplicate keys, bounded aliases."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        msg = f"{path}: cannot read the workflow config: {exc.strerror}."
        raise ConfigError(msg) from None
    if len(raw) > MAX_CONFIG_BYTES:
        msg = (
            f"{path}: {len(raw):,} bytes is too large for a workflow config (at most "
            f"{MAX_CONFIG_BYTES:,}). Hint: give the YAML file, not a data file."
        )
        raise ConfigError(msg)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        msg = (
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} on line {line}). Hint: save "
            "the config as UTF-8 (a workflow config is a YAML text file)."
        )
        raise ConfigError(msg) from None
    loader = _Loader(text)
    loader.source = str(path)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        extra = _alias_growth(node, str(path))
        if extra > MAX_ALIAS_NODES:
            msg = (
                f"{path}: YAML aliases expand to more than {MAX_ALIAS_NODES:,} extra entries "
                "(an 'alias bomb'). Hint: write the settings out instead of nesting aliases."
            )
            raise ConfigError(msg)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        text = str(exc)
        text = text if len(text) <= 3 * QUOTE_LIMIT else text[: 3 * QUOTE_LIMIT] + "…"
        msg = f"{path}: not valid YAML: {text}. Hint: check indentation and quoting."
        raise ConfigError(msg) from None
    except RecursionError:
        msg = f"{path}: nested too deeply; not a workflow config."
        raise ConfigError(msg) from None
    finally:
        loader.dispose()


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
        data = _load_yaml(path)
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


_XLSX = (".xlsx", ".xlsm")


def _where(base: Path, value: str) -> str:
    if value.startswith(EXAMPLE_PREFIX):
        return "'example:' paths name files of the bundled example"
    return f"relative paths are relative to the config file's folder ({base})"


def check_inputs(cfg: WorkflowConfig, base: Path) -> tuple[list[Path], dict[str, Path]]:
    """Resolve the input paths and check, cheaply, that they exist and that
    ``inputs.sheet`` names a sheet of the workbook (before any output is written).

    Returns
    -------
    tuple
        The NPX paths and the other inputs (``samples``, ``patients``, ``measurements``).

    Raises
    ------
    ConfigError
        An input path that does not exist, or a sheet the workbook does not have.
    """
    inp = cfg.inputs
    values = inp.npx if isinstance(inp.npx, list) else [inp.npx]
    npx = [resolve_input(v, base) for v in values]
    others = {
        key: resolve_input(getattr(inp, key), base)
        for key in ("samples", "patients", "measurements")
        if getattr(inp, key) is not None
    }
    named = [("npx", v, p) for v, p in zip(values, npx, strict=True)]
    named += [(k, getattr(inp, k), p) for k, p in others.items()]
    for key, value, path in named:
        if not path.exists():
            msg = (
                f"{path}: input {key!r} not found (inputs.{key}: {_short(value)}). "
                f"Hint: {_where(base, value)}."
            )
            raise ConfigError(msg)
    _check_step_files(cfg, base)
    if inp.sheet is not None:
        _check_sheet(npx, inp.sheet)
    if "samples" in others:
        _check_sample_id_column(inp.sample_id_column, others["samples"])
    if "patients" in others:
        _check_patient_columns(cfg, others["patients"])
    return npx, others


def _check_step_files(cfg: WorkflowConfig, base: Path) -> None:
    """The further files the enabled steps read (``bridging.npx``, ...) exist."""
    from ._registry import steps

    for step in steps():
        if not step.is_enabled(cfg):
            continue
        for key, value in step.input_files(cfg):
            path = resolve_input(value, base)
            if not path.exists():
                msg = (
                    f"{path}: input {key!r} not found ({key}: {_short(value)}). "
                    f"Hint: {_where(base, value)}."
                )
                raise ConfigError(msg)


def _check_sample_id_column(column: str, path: Path) -> None:
    cols = _header(path)
    if cols is None or column in cols:
        return
    close = difflib.get_close_matches(column, cols, n=1)
    msg = (
        f"{path}: inputs.sample_id_column: the sample sheet has no column {_short(column)}"
        + (f" (did you mean {close[0]!r}?)" if close else "")
        + f". Its columns: {', '.join(repr(c) for c in cols[:30])}."
    )
    raise ConfigError(msg)


def _header(path: Path) -> list[str] | None:
    """Column names of a small table file, or ``None`` when it can't be read cheaply."""
    import pandas as pd

    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if suffix.endswith((".xlsx", ".xls")):
            cols = pd.read_excel(path, nrows=0).columns
        elif suffix.endswith(".parquet"):
            import pyarrow.parquet as pq

            cols = pq.read_schema(path).names
        elif suffix.endswith((".tsv", ".txt", ".tsv.gz", ".txt.gz")):
            cols = pd.read_csv(path, sep="\t", nrows=0).columns
        else:
            cols = pd.read_csv(path, sep=None, engine="python", nrows=20).columns
    except Exception:  # noqa: BLE001 - an unreadable table is the step's to explain
        return None
    return [str(c).strip() for c in cols]


def _patient_keys(cfg: WorkflowConfig) -> list[tuple[str, str]]:
    """(config key, column) for every setting that names a column of the patient table."""
    from ._registry import steps

    keys = [("inputs.patient_id_column", cfg.inputs.patient_id_column)]
    for step in steps():
        if step.is_enabled(cfg):
            keys += step.patient_columns(cfg)
    return keys


def _check_patient_columns(cfg: WorkflowConfig, path: Path) -> None:
    cols = _header(path)
    if cols is None:
        return
    wrong = []
    for key, col in _patient_keys(cfg):
        if col not in cols:
            close = difflib.get_close_matches(col, cols, n=1)
            wrong.append(
                f"{key}: {_short(col)}" + (f" (did you mean {close[0]!r}?)" if close else "")
            )
    if wrong:
        shown = "; ".join(wrong[:5]) + (f"; and {len(wrong) - 5} more" if len(wrong) > 5 else "")
        msg = (
            f"{path}: the config names column(s) the patient table does not have: {shown}. "
            f"Its columns: {', '.join(repr(c) for c in cols[:30])}."
        )
        raise ConfigError(msg)


def _check_sheet(npx: list[Path], sheet: str | int) -> None:
    if len(npx) != 1 or npx[0].is_dir() or npx[0].suffix.lower() not in _XLSX:
        msg = (
            f"inputs.sheet: {_short(sheet)} is set, but inputs.npx is not one xlsx workbook "
            f"({', '.join(p.name for p in npx)}). Hint: remove inputs.sheet."
        )
        raise ConfigError(msg)
    import openpyxl

    try:
        wb = openpyxl.load_workbook(npx[0], read_only=True)
        names = list(wb.sheetnames)
        wb.close()
    except Exception:  # noqa: BLE001 - an unreadable workbook is the reader's to explain
        return
    if isinstance(sheet, int):
        if 0 <= sheet < len(names):
            return
        what = f"has {len(names)} sheet(s), so there is no position {sheet} (counted from 0)"
    elif sheet in names:
        return
    else:
        close = difflib.get_close_matches(sheet, names, n=1)
        what = f"has no sheet {_short(sheet)}" + (
            f" (did you mean {close[0]!r}?)" if close else ""
        )
    msg = (
        f"{npx[0]}: inputs.sheet: the workbook {what}. Its sheets: "
        f"{', '.join(repr(n) for n in names[:10])}."
    )
    raise ConfigError(msg)
