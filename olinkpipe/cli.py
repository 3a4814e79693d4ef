"""The ``olinkpipe`` command line: ``info``, ``convert`` and ``run``.

It orchestrates through the public API and computes nothing itself.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
import traceback
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from . import __version__
from .errors import OlinkpipeError, OlinkpipeWarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one plain line on stderr (no source line of the olinkpipe script)."""
    name = "warning" if issubclass(category, OlinkpipeWarning) else category.__name__
    print(f"olinkpipe: {name}: {message}", file=sys.stderr)


def _read(args: argparse.Namespace):
    from .io import read_exports, read_npx

    sheet = args.sheet
    if sheet is not None and sheet.isdigit():
        sheet = int(sheet)
    sep = {"\\t": "\t", "tab": "\t"}.get(args.sep, args.sep) if args.sep else None
    if Path(args.file).is_dir():  # a folder of exports: one study
        return read_exports(args.file, sep=sep, duplicates=args.duplicates)
    return read_npx(args.file, sep=sep, sheet=sheet, duplicates=args.duplicates)


def _info(args: argparse.Namespace) -> int:
    import pandas as pd

    from .io import summarize, summarize_panels

    adata = _read(args)
    for key, value in summarize(adata).items():
        if isinstance(value, float):
            value = f"{value:.2f}"
        print(f"{key:<22} {value}")
    per_panel = summarize_panels(adata)
    if len(per_panel):
        print("\nper panel:")
        with pd.option_context("display.width", 200, "display.max_rows", 100):
            print(per_panel.to_string(float_format=lambda v: f"{v:.2f}"))
    return 0


def _convert(args: argparse.Namespace) -> int:
    from .io import write

    adata = _read(args)
    path = write(adata, args.out)
    print(f"wrote {path} ({adata.n_obs} samples x {adata.n_vars} assays)")
    return 0


def _add_read_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sep", default=None, help="field delimiter of FILE (sniffed by default)")
    p.add_argument("--sheet", default=None, help="xlsx sheet name or 0-based position")
    p.add_argument(
        "--duplicates",
        default="rename",
        choices=["rename", "error"],
        help="a SampleID on two plates within a panel: one row per plate, or an error",
    )


def _run(args: argparse.Namespace) -> int:
    from .workflow import run
    from .workflow.runner import OutputExistsError, exists_message

    try:
        result = run(
            args.config,
            out=args.out,
            force=args.force,
            progress=args.verbose,
            scheduler=args.scheduler,
            chunks=args.chunks,
        )
    except OutputExistsError as err:
        raise OutputExistsError(
            exists_message(err.out, "rerun with --force"), out=err.out
        ) from None
    except KeyboardInterrupt as stop:
        record = Path(args.out) / "run.json"
        msg = f"{record} records the run as interrupted" if _interrupted(record) else ""
        raise _Interrupted(msg, terminated=isinstance(stop, _Terminated)) from None
    print(f"report: {result.report}")
    return 0


def _chunks(text: str) -> str | int:
    """``--chunks``: a whole number becomes an int (validated with the config)."""
    return int(text) if text.strip().lstrip("+-").isdigit() else text


def _interrupted(record: Path) -> bool:
    try:
        return json.loads(record.read_text(encoding="utf-8")).get("status") == "interrupted"
    except (OSError, ValueError, AttributeError):
        return False


class _Interrupted(Exception):
    """Ctrl-C (or SIGTERM), with what was left behind."""

    def __init__(self, message: str, *, terminated: bool = False) -> None:
        super().__init__(message)
        self.terminated = terminated


class _Terminated(KeyboardInterrupt):
    """SIGTERM (a job scheduler or ``kill``): stops like Ctrl-C, exit status 143."""


def _on_sigterm(signum, frame) -> NoReturn:
    msg = "terminated (SIGTERM)"
    raise _Terminated(msg)


def _stopped(stop: BaseException) -> int:
    if isinstance(stop, _Interrupted):
        terminated, detail = stop.terminated, str(stop)
    else:
        terminated, detail = isinstance(stop, _Terminated), ""
    what = "terminated" if terminated else "interrupted"
    return _error(f"{what}; {detail}" if detail else what, 143 if terminated else 130)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors and exit status 1, like every other error."""

    def error(self, message: str) -> NoReturn:
        sys.exit(_error(f"{message} (see '{self.prog} --help')"))


def _error(message: object, status: int = 1) -> int:
    """Print ``message`` as one line ``error: ...`` on stderr; return the exit status."""
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return status


_RUN_EPILOG = """\
bundled workflows (give the name instead of a YAML file): {names}
default: {default}, on the bundled simulated example data

examples:
  olinkpipe run --out results                  the CAR-T example
  olinkpipe run paired_de.yaml --out results   your own workflow (copy a bundled one)
  olinkpipe run my.yaml --out results --force  replace an earlier run's outputs
  olinkpipe run my.yaml --out results --chunks panel --scheduler tcp://host:8786
                                               on a dask.distributed cluster
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    from .workflow.config import available_configs

    parser = _Parser(
        prog="olinkpipe", description="Olink proteomics and clinical biomarker analysis."
    )
    parser.add_argument("--version", action="version", version=f"olinkpipe {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("info", help="summarise an Olink export (or a folder of exports)")
    p.add_argument("file", help="an export, or a folder of exports of one study")
    _add_read_options(p)
    p.set_defaults(func=_info)

    p = sub.add_parser("convert", help="convert an export to .h5ad, .parquet or .csv (long)")
    p.add_argument("file", help="an export, or a folder of exports of one study")
    p.add_argument("out", help="output path: .h5ad, .parquet, .csv or .tsv")
    _add_read_options(p)
    p.set_defaults(func=_convert)

    names = available_configs()
    p = sub.add_parser(
        "run",
        help="run a workflow (the bundled CAR-T example by default)",
        epilog=_RUN_EPILOG.format(names=", ".join(names), default="cart_prophylaxis"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "config",
        nargs="?",
        default=None,
        help=f"workflow YAML file, or a bundled workflow: {', '.join(names)} "
        "(default: cart_prophylaxis)",
    )
    p.add_argument(
        "--out", default="olinkpipe_results", help="output directory (default: %(default)s)"
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace olinkpipe's outputs in an existing output directory (other files are kept)",
    )
    p.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        default=None,
        help="dask scheduler for the run, overriding compute.scheduler: threads, processes, "
        "synchronous, or the address of a dask.distributed scheduler (tcp://host:8786)",
    )
    p.add_argument(
        "--chunks",
        type=_chunks,
        default=None,
        help="read the NPX matrix dask-backed, overriding compute.chunks: auto, panel, or "
        "a number of assays per block",
    )
    p.set_defaults(func=_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``olinkpipe`` command.

    Every error is one line ``error: ...`` on stderr and exit status 1; Ctrl-C is one line
    and exit status 130. ``-v`` adds the traceback of an unexpected error.
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version or a usage error (already printed)
        return done.code if isinstance(done.code, int) else 1
    except KeyboardInterrupt:
        return _error("interrupted", 130)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "run" else logging.WARNING,
        format="%(message)s",
    )
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main_thread else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always", OlinkpipeWarning)
            warnings.showwarning = _show_warning
            return _call(args)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


def _call(args: argparse.Namespace) -> int:
    """Run the command; every failure becomes one line on stderr and an exit status."""
    try:
        return args.func(args)
    except OlinkpipeError as err:
        return _error(err)
    except (_Interrupted, KeyboardInterrupt) as stop:
        return _stopped(stop)
    except BrokenPipeError:  # e.g. `olinkpipe info x.csv | head`
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - nothing more to print
        return 1
    except OSError as err:  # a file the command could not open or write
        where = f"{err.filename}: " if err.filename else ""
        return _error(f"{where}{err.strerror or err}")
    except Exception as err:  # noqa: BLE001 - a bug: still one line, traceback with -v
        if args.verbose:
            traceback.print_exc()
        hint = "" if args.verbose else " (rerun with -v for the traceback)"
        return _error(
            f"unexpected {type(err).__name__}: {err}{hint}. Please report it at "
            "the olinkpipe issue tracker."
        )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
