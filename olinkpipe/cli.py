"""The ``olinkpipe`` command line: ``info``, ``convert`` and ``run``.

It orchestrates through the public API and computes nothing itself.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from collections.abc import Sequence

from . import __version__
from .errors import OlinkpipeError, OlinkpipeWarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one plain line on stderr (no source line of the olinkpipe script)."""
    name = "warning" if issubclass(category, OlinkpipeWarning) else category.__name__
    print(f"olinkpipe: {name}: {message}", file=sys.stderr)


def _read(args: argparse.Namespace):
    from pathlib import Path

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

    result = run(args.config, out=args.out, force=args.force)
    print(f"report: {result.report}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the docs and tests)."""
    parser = argparse.ArgumentParser(
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

    p = sub.add_parser("run", help="run a workflow (the bundled CAR-T example by default)")
    p.add_argument("config", nargs="?", default=None, help="workflow YAML (default: bundled)")
    p.add_argument("--out", default="olinkpipe_results", help="output directory")
    p.add_argument("--force", action="store_true", help="overwrite an existing output directory")
    p.set_defaults(func=_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``olinkpipe`` command."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose or args.command == "run" else logging.WARNING,
        format="%(message)s",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("always", OlinkpipeWarning)
        warnings.showwarning = _show_warning
        try:
            return args.func(args)
        except OlinkpipeError as err:
            print(f"olinkpipe {args.command}: error: {err}", file=sys.stderr)
            return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
