"""What a run writes besides tables and figures: the output folder's checks and clean-up,
``adata.h5ad`` and ``run.json`` (with the package versions and input checksums)."""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import shutil
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import anndata as ad

from .. import _atomic
from . import _lock
from ._context import Context, OutputExistsError, RunLockedError, WorkflowError

__all__ = [
    "exists_message",
    "package_versions",
    "locked_message",
    "check_out",
    "clear_outputs",
    "write_h5ad",
    "write_run_json",
]

logger = logging.getLogger("olinkpipe")

_VERSIONED = [
    "olinkpipe",
    "numpy",
    "pandas",
    "scipy",
    "statsmodels",
    "anndata",
    "scanpy",
    "gseapy",
    "blitzgsea",
    "lifelines",
    "matplotlib",
    "pydantic",
]

_OUTPUT_FILES = ["report.html", "run.json", "adata.h5ad"]
_OUTPUT_DIRS = ["tables", "figures"]


def package_versions() -> dict[str, str]:
    """Python and the versions of the packages a run depends on (for run.json, Methods)."""
    out = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _previous_state(out: Path) -> str:
    """What an earlier run left in ``out`` (for the 'not empty' message)."""
    try:
        status = json.loads((out / "run.json").read_text(encoding="utf-8")).get("status")
    except (OSError, ValueError, AttributeError):
        status = None
    if status == "complete":
        return "it holds a finished olinkpipe run"
    if isinstance(status, str):
        return f"it holds an olinkpipe run that did not finish (run.json status {status!r})"
    if (out / _lock.LOCK_NAME).exists():
        return "it holds an olinkpipe run that was killed before it finished"
    return "it holds other files"


def exists_message(out: Path, how: str) -> str:
    """The 'output folder not empty' message, with ``how`` to overwrite (API or CLI)."""
    return (
        f"{out}: the output folder is not empty ({_previous_state(out)}). Hint: {how} to "
        "replace olinkpipe's outputs there (other files are kept), or choose another "
        "output folder."
    )


def locked_message(out: Path, live: dict) -> str:
    return (
        f"{out}: another olinkpipe run (pid {live.get('pid')} on {live.get('host')}, started "
        f"{live.get('started')}) is writing to this folder. Hint: wait for it to finish or "
        f"choose another output folder; if no such run is active, delete "
        f"{out / _lock.LOCK_NAME}."
    )


def check_out(out: Path, *, force: bool) -> None:
    """Refuse an output folder that is in use or (without ``force``) not empty."""
    if out.exists() and not out.is_dir():
        msg = f"{out}: exists and is not a folder. Hint: choose another output folder."
        raise WorkflowError(msg)
    if not out.is_dir():
        return
    live = _lock.holder(out)
    if live is not None:
        raise RunLockedError(locked_message(out, live))
    try:
        used = any(out.iterdir())
    except OSError as exc:
        raise _atomic.output_error(out, exc, "cannot read the output folder") from None
    if used and not force:
        raise OutputExistsError(exists_message(out, "pass force=True"), out=out)


def clear_outputs(out: Path) -> None:
    """Remove olinkpipe's outputs (and stale temporary files) from ``out``; keep the rest."""
    try:
        for name in _OUTPUT_DIRS:
            if (out / name).is_dir():
                shutil.rmtree(out / name)
        for name in _OUTPUT_FILES:
            (out / name).unlink(missing_ok=True)
        for stale in out.glob(f"{_atomic.TMP_PREFIX}*"):
            stale.unlink(missing_ok=True)
        for name in _OUTPUT_DIRS:
            (out / name).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _atomic.output_error(exc.filename or out, exc, "cannot prepare") from None


def write_h5ad(adata: ad.AnnData, path: Path) -> None:
    """Write the AnnData made h5ad-safe by :func:`olinkpipe.io.write.h5ad_safe`."""
    from ..io.write import h5ad_safe

    _atomic.write_h5ad(h5ad_safe(adata), path)


def write_run_json(
    ctx: Context, started: float, *, status: str, error: str | None = None, versions=None
) -> None:
    """Write run.json (atomically): ``status`` is running, complete, failed or interrupted."""
    result = ctx.result
    if ctx.caught is not None:
        result.warnings = [f"{w.category.__name__}: {w.message}" for w in ctx.caught]
    final = status != "running"
    record = {
        "status": status,
        "error": error,
        "name": ctx.cfg.name,
        "config": ctx.cfg.model_dump(mode="json"),
        "config_base": str(ctx.base),
        "seed": ctx.cfg.seed,
        "versions": versions or package_versions(),
        "inputs": {
            k: {"path": str(p), "sha256": _sha256(p), "bytes": p.stat().st_size}
            if final
            else {"path": str(p)}
            for k, p in ctx.inputs.items()
            if p.is_file()
        },
        "steps": result.status,
        "timings_seconds": result.timings,
        "total_seconds": round(time.perf_counter() - started, 3),
        "tables": sorted(result.tables),
        "figures": sorted(result.figures),
        "warnings": result.warnings,
        "compute": ctx.compute,
    }
    text = json.dumps(record, indent=2, default=str)
    _atomic.write_text(ctx.out / "run.json", text)
