"""The step runner behind ``olinkpipe run``: read → (LOD, clean, bridging, project
normalization) → QC → DE → enrichment → kinetics → outcomes → table one → report.

Every number comes from olinkpipe's public API; this module only runs the registered steps
(:mod:`olinkpipe.workflow._registry`, defined in :mod:`olinkpipe.workflow.steps`) in
order, under the configured dask scheduler, saves what they return and records how long
each took. It computes nothing itself.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator
from os import PathLike
from pathlib import Path
from typing import Any

from .. import _atomic
from .._dask import require_dask
from ..errors import ConfigError, OlinkpipeError, OlinkpipeWarning
from . import _lock, _outputs
from ._context import (
    Context,
    OutputExistsError,
    RunLockedError,
    WorkflowError,
    WorkflowResult,
    _check_some_tested,  # noqa: F401 - re-exported for callers of the old location
)
from ._outputs import exists_message  # noqa: F401 - re-exported (the CLI's message)
from ._registry import Step, names, steps
from ._schema import LOCAL_SCHEDULERS
from .config import WorkflowConfig, check_inputs, load_config

__all__ = [
    "run",
    "WorkflowResult",
    "WorkflowError",
    "OutputExistsError",
    "RunLockedError",
    "STEPS",
]

logger = logging.getLogger("olinkpipe")

#: Steps in the order they run (from the step registry).
STEPS = names()


def run(
    config: str | PathLike[str] | dict | WorkflowConfig | None = None,
    out: str | PathLike[str] = "olinkpipe_results",
    *,
    force: bool = False,
    progress: bool = False,
    scheduler: str | None = None,
    chunks: str | int | None = None,
) -> WorkflowResult:
    """Run a workflow: read, QC, differential expression, enrichment, kinetics, outcomes,
    baseline table, figures and the HTML report.

    Parameters
    ----------
    config
        Workflow YAML path, bundled workflow name (``"cart_prophylaxis"``,
        ``"paired_de"``), a dict or a :class:`WorkflowConfig`. ``None`` runs the bundled
        ``cart_prophylaxis`` workflow on the bundled example data.
    out
        Output folder. Receives ``tables/*.csv`` (+ parquet), ``figures/*.png`` (+ PDF/SVG),
        ``report.html``, ``adata.h5ad`` and ``run.json``.
    force
        Overwrite olinkpipe's outputs in an existing, non-empty ``out``.
    scheduler, chunks
        Override ``compute.scheduler`` / ``compute.chunks`` of the config (the CLI's
        ``--scheduler`` and ``--chunks``); validated like the config.
    progress
        Show dask's progress bar (on stderr) for computations longer than a second, when
        ``compute.chunks`` is set and the scheduler is local (the CLI's ``-v``).

    Returns
    -------
    WorkflowResult
        Paths, tables (DataFrames), figure paths, the AnnData after QC, timings, status.

    Raises
    ------
    ConfigError
        The config is invalid (naming the key and the allowed values), an input file does
        not exist, ``inputs.sheet`` is not a sheet of the workbook, or a column named in
        the config is not in the patient table; all found before ``out`` is created.
    OutputExistsError
        ``out`` is not empty and ``force`` is not given (a :class:`WorkflowError`).
    RunLockedError
        Another run is writing to ``out`` (a :class:`WorkflowError`).
    WorkflowError
        A step failed (``err.step`` names it; the message says which step and why).
    OutputError
        An output could not be written (read-only or full disk), naming the file.

    Notes
    -----
    Progress is logged per step on the ``"olinkpipe"`` logger (the CLI shows it). With
    ``on_error: continue`` a failing step is recorded in the report and ``run.json`` and
    the steps that do not depend on it still run.

    Every output is written under a temporary name in ``out`` and renamed when complete,
    so no file under its final name is ever half-written. ``run.json`` is written first
    with ``"status": "running"`` and last with ``"complete"``; a failed or interrupted
    (Ctrl-C) run leaves ``"failed"`` or ``"interrupted"`` and the ``error``. A lock file
    (``.olinkpipe.lock``, holding the pid) keeps a second run out of ``out`` while one is
    writing; a lock whose process is gone is taken over.

    Examples
    --------
    >>> import tempfile
    >>> from olinkpipe.workflow import run
    >>> result = run(out=tempfile.mkdtemp() + "/res")  # doctest: +SKIP
    >>> result.report.name  # doctest: +SKIP
    'report.html'
    """
    cfg, base = load_config(config)
    if scheduler is not None or chunks is not None:
        cfg = _override_compute(cfg, scheduler=scheduler, chunks=chunks)
    out = Path(out)
    npx_paths, inputs = check_inputs(cfg, base)  # every cheap check before anything is written
    with _compute(cfg, progress=progress) as compute:  # a bad scheduler address fails here
        return _run_checked(cfg, base, out, npx_paths, inputs, compute, force=force)


def _override_compute(cfg: WorkflowConfig, **given: Any) -> WorkflowConfig:
    """The config with ``compute`` keys replaced by the given (non-None) values, validated."""
    from pydantic import ValidationError as PydanticError

    from .config import _format_errors

    data = cfg.model_dump()
    data["compute"].update({k: v for k, v in given.items() if v is not None})
    try:
        return WorkflowConfig.model_validate(data)
    except PydanticError as exc:
        raise ConfigError(_format_errors(exc, "--scheduler/--chunks")) from None


@contextlib.contextmanager
def _compute(cfg: WorkflowConfig, *, progress: bool = False) -> Iterator[dict]:
    """Run the body under ``compute.scheduler``; yields what ran where (for run.json)."""
    c = cfg.compute
    record: dict[str, Any] = {"chunks": c.chunks, "scheduler": c.scheduler}
    if c.chunks is None and c.scheduler is None:
        record["where"] = "in memory (no dask)"
        yield record
        return
    require_dask("compute: in the workflow config")
    import dask

    with contextlib.ExitStack() as stack:
        if c.scheduler is None or c.scheduler in LOCAL_SCHEDULERS:
            name = repr(c.scheduler) if c.scheduler else "(its default, threads)"
            if c.scheduler is not None:
                stack.enter_context(dask.config.set(scheduler=c.scheduler))
            record["where"] = f"with dask's local scheduler {name}"
            if progress and c.chunks is not None:
                from dask.diagnostics import ProgressBar

                stack.enter_context(ProgressBar(minimum=1.0, out=sys.stderr))
        else:
            client = _connect(c.scheduler)
            stack.callback(client.close)
            stack.enter_context(dask.config.set(scheduler=client))
            workers = client.scheduler_info().get("workers", {})
            record["address"] = c.scheduler
            record["n_workers"] = len(workers)
            record["n_threads"] = sum(int(w.get("nthreads", 0)) for w in workers.values())
            record["where"] = (
                f"with dask.distributed, scheduler at {c.scheduler} "
                f"({record['n_workers']} worker(s), {record['n_threads']} thread(s))"
            )
        logger.info("compute: %s, chunks %r", record["where"], c.chunks)
        yield record


#: Seconds to wait for a dask.distributed scheduler before giving up.
CONNECT_TIMEOUT = 10


def _connect(address: str):
    """A ``dask.distributed.Client`` on ``address``, or a ConfigError naming it."""
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - distributed comes with olinkpipe[dask]
        msg = (
            f"compute.scheduler: {address!r} needs dask.distributed, which is not installed; "
            "install it with: python -m pip install 'olinkpipe[dask]'"
        )
        raise ConfigError(msg) from exc
    try:
        return Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        msg = (
            f"compute.scheduler: cannot connect to the dask.distributed scheduler at "
            f"{address!r} within {CONNECT_TIMEOUT} s ({type(exc).__name__}: {exc}). Hint: "
            "start it (dask scheduler / LocalCluster) or fix the address; nothing was written."
        )
        raise ConfigError(msg) from None


def _run_checked(
    cfg: WorkflowConfig,
    base: Path,
    out: Path,
    npx_paths: list[Path],
    inputs: dict[str, Path],
    compute: dict,
    *,
    force: bool,
) -> WorkflowResult:
    """:func:`run` after the config, the inputs and the scheduler are checked."""
    _outputs.check_out(out, force=force)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _atomic.output_error(out, exc, "cannot create the output folder") from None
    live = _lock.acquire(out)
    if live is not None:
        raise RunLockedError(_outputs.locked_message(out, live))
    result = WorkflowResult(out=out, report=out / "report.html", config=cfg)
    ctx = Context(cfg=cfg, base=base, out=out, result=result)
    ctx.npx_paths, ctx.inputs, ctx.compute = npx_paths, inputs, compute
    started = time.perf_counter()
    try:
        _outputs.clear_outputs(out)
        _outputs.write_run_json(ctx, started, status="running")
        logger.info("olinkpipe run: %s -> %s", cfg.name, out)
        _run_steps(ctx, started)
    except KeyboardInterrupt as stop:
        _finish(ctx, started, "interrupted", str(stop) or "interrupted (Ctrl-C or SIGINT)")
        raise
    except BaseException as exc:
        err = exc
        if isinstance(exc, OSError) and not isinstance(exc, OlinkpipeError):
            err = _atomic.output_error(exc.filename or out, exc)
        _finish(ctx, started, "failed", str(err) or type(err).__name__)
        if err is exc:
            raise
        raise err from exc
    finally:
        _lock.release(out)
    logger.info("done in %.1f s: %s", result.timings["total"], result.report)
    return result


def _run_steps(ctx: Context, started: float) -> None:
    """Run every enabled step, then write the h5ad, the report and the final run.json."""
    from .report import write_report

    result = ctx.result
    todo = [s for s in steps() if s.run is not None]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ctx.caught = caught
        for i, step in enumerate(todo, start=1):
            _run_one(ctx, step, f"[{i}/{len(STEPS)}] {step.name}", caught)
        result.warnings = [f"{w.category.__name__}: {w.message}" for w in caught]
    ctx.caught = None
    t0 = time.perf_counter()
    logger.info("[%d/%d] report ...", len(STEPS), len(STEPS))
    result.status["report"] = "running"
    if ctx.cfg.output.h5ad and result.adata is not None:
        _outputs.write_h5ad(result.adata, ctx.out / "adata.h5ad")
    result.timings["report"] = round(time.perf_counter() - t0, 3)
    result.status["report"] = "done"
    result.timings["total"] = round(time.perf_counter() - started, 3)
    versions = _outputs.package_versions()
    write_report(ctx, versions)
    result.timings["total"] = round(time.perf_counter() - started, 3)
    _outputs.write_run_json(ctx, started, versions=versions, status="complete")


def _run_one(ctx: Context, step: Step, prefix: str, caught: list) -> None:
    """Run ``step`` (or record why not); a failure stops the run unless on_error: continue."""
    result, name = ctx.result, step.name
    if not step.is_enabled(ctx.cfg):
        result.status[name] = "skipped"
        logger.info("%s: skipped (not in the config)", prefix)
        return
    failed = step.unmet(result.status)
    if failed:
        result.status[name] = f"skipped: needs {', '.join(failed)}"
        logger.info("%s: skipped (needs %s)", prefix, ", ".join(failed))
        return
    logger.info("%s ...", prefix)
    t0 = time.perf_counter()
    seen = len(caught)
    result.status[name] = "running"
    try:
        step.run(ctx)
    except KeyboardInterrupt:
        result.status[name] = "interrupted"
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is reported with its step
        stop = _interrupt_behind(exc)
        if stop is not None:  # a library's cleanup failed while Ctrl-C / SIGTERM unwound
            result.status[name] = "interrupted"
            raise stop from None
        result.timings[name] = round(time.perf_counter() - t0, 3)
        reason = f"{type(exc).__name__}: {exc}".rstrip(". ")
        result.status[name] = f"failed: {reason}"
        logger.error("%s failed: %s", prefix, reason)
        if isinstance(exc, _atomic.OutputError):  # no later step could write either
            msg = f"workflow step '{name}' could not write its output: {exc}"
            raise WorkflowError(msg, step=name) from exc
        if ctx.cfg.on_error == "stop":
            what = "the input files" if step.model is None else "the input"
            msg = (
                f"workflow step '{name}' failed: {reason}. To go on: fix {what} or "
                f"the '{step.hint_section}' section of the config, or set "
                "on_error: continue to run the remaining steps."
            )
            raise WorkflowError(msg, step=name) from exc
        return
    result.timings[name] = round(time.perf_counter() - t0, 3)
    result.status[name] = "done"
    for w in caught[seen:]:
        if issubclass(w.category, OlinkpipeWarning):
            logger.warning("  warning: %s", w.message)
    logger.info("%s: done in %.1f s", prefix, result.timings[name])


def _finish(ctx: Context, started: float, status: str, error: str) -> None:
    """Record a failed or interrupted run in run.json (best effort; Ctrl-C ignored meanwhile)."""
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        _outputs.write_run_json(ctx, started, status=status, error=error)
    except (OSError, OlinkpipeError) as exc:
        logger.error("could not record the %s run in run.json: %s", status, exc)
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)


def _interrupt_behind(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C / SIGTERM that ``exc`` was raised while handling, if any.

    An interrupt can land inside a library's clean-up code (matplotlib restores a figure's
    attributes in a ``finally``); when that clean-up then fails, Python raises the new error
    with the interrupt as its ``__context__`` and the interrupt is lost. The run must still
    stop as interrupted, not report the step as failed.
    """
    seen: set[int] = set()
    cause = exc.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, KeyboardInterrupt):
            return cause
        seen.add(id(cause))
        cause = cause.__context__
    return None
