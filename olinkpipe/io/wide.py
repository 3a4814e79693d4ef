"""Target 96 / Target 48 wide exports (Olink NPX Manager, olinkr): ``.xlsx`` and ``.csv``.

Two layouts are recognised (rows 1-based, column A first):

* **A, multi-panel**: A1 project, B1 software; ``NPX data`` (or ``Quantified data`` /
  ``Ct data``); a ``Panel`` row (a panel per column); ``Assay``, ``Uniprot ID``,
  ``OlinkID`` rows; one row per sample (SampleID in A, NPX per assay, then ``Plate ID`` and
  ``QC Warning`` columns, one per panel); footer rows ``LOD``, ``Missing Data freq.`` and
  ``Normalization``.
* **B, single panel with a summary block**: ``Panel`` in one cell, then ``# Plates``,
  ``# Samples`` ... ``Normalization Method`` rows, then the same Assay/Uniprot ID/OlinkID
  header with ``Plate ID``, ``QC Warning`` and ``QC Deviation from median`` columns.

Workbooks are opened with openpyxl in read-only mode (dimensions reset, so files whose
sheet dimension or drawing relationships are broken still read), falling back to
``pandas.read_excel``; the NPX sheet is found by content, not position. Olink Flex long
xlsx files (numbers stored as text) are read as long tables.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import IO

import anndata as ad
import pandas as pd
from openpyxl.utils import get_column_letter

from .._warnings import warn_user
from ..errors import NPXFormatError, UnknownFormatError, format_message, preview
from . import _sniff
from ._columns import STRING_COLUMNS
from ._wide_grid import parse_wide
from ._wide_layout import (
    WIDE_TYPES,
    Grid,
    cell_str,
    is_blank,
    row_label,
)
from ._wide_layout import olink_panel_name as olink_panel_name  # importable from here
from .convert import from_long, resolve_roles

__all__: list[str] = []


# ------------------------------------------------------------------------------------------
# loading grids
# ------------------------------------------------------------------------------------------


def _trim(grid: Grid) -> Grid:
    rows = [list(r) for r in grid]
    while rows and all(v is None or (isinstance(v, str) and v == "") for v in rows[-1]):
        rows.pop()
    return rows


def _openpyxl_grids(src: Path | IO[bytes]) -> dict[str, Grid]:
    """Sheets via openpyxl read-only mode, dimensions reset (olinkr writes ``A1:A1``)."""
    import openpyxl

    wb = openpyxl.load_workbook(src, read_only=True, data_only=True)
    try:
        sheets = {}
        for ws in wb.worksheets:
            ws.reset_dimensions()
            sheets[ws.title] = _trim(list(ws.iter_rows(values_only=True)))
    finally:
        wb.close()
    return sheets


def _load_workbook(src: Path | IO[bytes], name: str) -> dict[str, Grid]:
    """Every sheet of a workbook as a list of rows (values only)."""
    try:
        return _openpyxl_grids(src)
    except Exception as first_err:  # noqa: BLE001 - broken packages: try pandas
        if not isinstance(src, Path):
            src.seek(0)
        try:
            frames = pd.read_excel(src, sheet_name=None, header=None, dtype=object)
        except Exception as err:  # noqa: BLE001
            msg = format_message(
                f"cannot open the workbook ({first_err}; {err})",
                file=name,
                hint="Open and re-save the file in Excel, or export long CSV from NPX Manager.",
            )
            raise NPXFormatError(msg) from err
        return {
            str(k): _trim(f.astype(object).where(f.notna(), None).values.tolist())
            for k, f in frames.items()
        }


# ------------------------------------------------------------------------------------------
# recognising a sheet
# ------------------------------------------------------------------------------------------


def _sheet_kind(grid: Grid) -> tuple[str, int]:
    """``("wide"|"long"|"none", score)`` for one sheet."""
    if not grid:
        return "none", 0
    head = [cell_str(v).strip() for v in grid[0]]
    roles = resolve_roles(head)
    if roles["sample"] and roles["olinkid"] and roles["value"]:
        return "long", 1
    labels = [row_label(r) for r in grid[:60]]
    if "olinkid" in labels and "assay" in labels[: labels.index("olinkid") + 1]:
        score = 1
        b1 = cell_str(grid[0][1]).lower() if len(grid[0]) > 1 else ""
        if "npx manager" in b1 or "olinkr" in b1 or "olink" in b1:
            score += 2
        if any(lb in WIDE_TYPES for lb in labels[:5]):
            score += 1
        if any(lb.startswith("# plates") for lb in labels):
            score += 1
        return "wide", score
    return "none", 0


def _missing_rows(grid: Grid) -> str:
    """For a sheet that looks like a wide export but lacks a header row: which one."""
    labels = [row_label(r) for r in grid[:60]]
    looks_wide = any(lb in WIDE_TYPES for lb in labels[:6]) or (
        "assay" in labels and ("uniprot id" in labels or "panel" in labels)
    )
    if not looks_wide:
        return ""
    if "assay" not in labels:
        return "'Assay'"
    if "olinkid" not in labels[labels.index("assay") :]:
        return "'OlinkID'"
    return ""


def read_excel(src: Path | IO[bytes], name: str, opts: dict) -> ad.AnnData:
    """Read an Olink xlsx: the NPX sheet (wide) or a long sheet (Flex)."""
    sheets = _load_workbook(src, name)
    names = list(sheets)
    sheet = opts.get("sheet")
    if sheet is not None:
        key = names[sheet] if isinstance(sheet, int) and 0 <= sheet < len(names) else sheet
        if key not in sheets:
            msg = format_message(
                f"no sheet {sheet!r}; the workbook has {preview(names)}",
                file=name,
                hint="Pass sheet= as one of these names or a 0-based position.",
            )
            raise NPXFormatError(msg)
        chosen = str(key)
        kind, _ = _sheet_kind(sheets[chosen])
        if kind == "none":
            msg = format_message(
                f"sheet {chosen!r} is neither a wide NPX sheet (rows Panel/Assay/OlinkID) nor "
                "a long table (columns SampleID, OlinkID, NPX)",
                file=name,
            )
            raise NPXFormatError(msg)
    else:
        scored = [(k, *_sheet_kind(g)) for k, g in sheets.items()]
        found = [(s, -i, k, kind) for i, (k, kind, s) in enumerate(scored) if kind != "none"]
        if not names:
            msg = format_message(
                "the workbook has no worksheet with cells (only chart sheets or nothing)",
                file=name,
                hint="Export the NPX data again from NPX Manager (wide or long).",
            )
            raise NPXFormatError(msg)
        partial = [(k, _missing_rows(g)) for k, g in sheets.items()]
        partial = [(k, m) for k, m in partial if m]
        if not found and partial:
            k, missing = partial[0]
            msg = format_message(
                f"sheet {k!r} looks like a wide NPX Manager export but column A has no "
                f"{missing} row",
                file=name,
                column="A",
                hint="The header rows Panel, Assay, Uniprot ID and OlinkID (in that order, "
                "above the samples) are needed; restore them from the original export.",
            )
            raise NPXFormatError(msg)
        if not found:
            msg = format_message(
                f"no NPX sheet found among {preview(names)}",
                file=name,
                hint="An Olink workbook needs a sheet with rows 'Assay' and 'OlinkID' (NPX "
                "Manager wide export) or columns SampleID, OlinkID, NPX (long); pass sheet= "
                "if the sheet is there but laid out differently.",
            )
            raise UnknownFormatError(msg)  # a workbook, but not an Olink export
        _, _, chosen, kind = max(found)
        if len(found) > 1:
            warn_user(
                f"{name}: {len(found)} sheets look like Olink data; reading {chosen!r} "
                "(pass sheet= to choose another)"
            )
    where = f"{name} [sheet {chosen}]"
    grid = sheets[chosen]
    if kind == "long":
        adata = _long_sheet(grid, where, opts)
    else:
        adata = _wide_grid(grid, where, opts)
    prov = adata.uns["olinkpipe"]
    prov["source"] = [name]
    prov["metadata"]["Sheet"] = chosen
    return adata


def read_wide_text(
    src: Path | IO[bytes], name: str, info: _sniff.TextInfo, opts: dict
) -> ad.AnnData:
    """Read a wide NPX Manager export saved as delimited text."""
    if isinstance(src, Path):
        data = src.read_bytes()
    else:
        src.seek(0)
        data = src.read()
    try:
        text = data.decode("utf-8-sig" if info.encoding in ("utf-8", "cp1252") else info.encoding)
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError as err2:
            msg = format_message(
                f"cannot decode the text (not UTF-8 from line {line}, nor Windows-1252)",
                file=name,
                hint="Save the file as UTF-8 (in Excel: 'CSV UTF-8') and read it again.",
            )
            raise NPXFormatError(msg) from err2
        warn_user(
            f"{name}: not valid UTF-8 (first at line {line}); decoded as Windows-1252 "
            "(Western European); check names with accents, or save the file as UTF-8"
        )
    rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=info.sep, quotechar='"'))
    grid = _trim([[None if c.strip() == "" else c for c in r] for r in rows])
    return _wide_grid(grid, name, opts)


# ------------------------------------------------------------------------------------------
# long sheet (Olink Flex)
# ------------------------------------------------------------------------------------------


def _long_sheet(grid: Grid, where: str, opts: dict) -> ad.AnnData:
    header = [cell_str(v).strip() for v in grid[0]]
    keep = [k for k, r in enumerate(grid[1:], start=2) if not is_blank(r)]
    body = [grid[k - 1] for k in keep]
    width = len(header)
    beyond = [
        f"{get_column_letter(j + 1)}{k}"
        for k, r in zip(keep, body, strict=True)
        for j in range(width, len(r))
        if cell_str(r[j]).strip()
    ]
    if beyond:
        msg = format_message(
            f"cell(s) {preview(beyond)} hold values right of the last header cell",
            file=where,
            hint="Give these columns a header, or delete the cells.",
        )
        raise NPXFormatError(msg)
    body = [list(r[:width]) + [None] * (width - len(r)) for r in body]
    frame = pd.DataFrame(body, columns=header, dtype=object)
    unnamed = [j for j, c in enumerate(header) if c == ""]
    filled = [j for j in unnamed if frame.iloc[:, j].notna().any()]
    if filled:
        header = [f"unnamed_{j + 1}" if j in filled else c for j, c in enumerate(header)]
        frame.columns = header
        warn_user(
            f"{where}: column(s) {preview([get_column_letter(j + 1) for j in filled])} have no "
            f"header but hold values; kept as {preview([header[j] for j in filled])}"
        )
    frame = frame.loc[:, [c for c in frame.columns if c != ""]]
    roles = resolve_roles(list(frame.columns))
    text_cols = {v for k, v in roles.items() if v and k not in ("value", "lod")}
    for c in frame.columns:
        col = frame[c]
        if c in text_cols or c in STRING_COLUMNS:
            frame[c] = col.map(lambda v: None if v is None else cell_str(v))
            continue
        num = pd.to_numeric(
            col.map(lambda v: None if v is None else cell_str(v).strip()), errors="coerce"
        )
        if (num.notna() | col.isna()).all():
            frame[c] = num
    return from_long(
        frame,
        file=where,
        product=opts.get("product"),
        duplicates=opts.get("duplicates", "rename"),
        data_format="long",
        layers=opts.get("layers"),
    )


def _wide_grid(grid: Grid, where: str, opts: dict) -> ad.AnnData:
    long, meta, data_type, raw_panels, cells = parse_wide(grid, where)
    per_panel = pd.Series(raw_panels).value_counts()
    t48 = "target 48" in " ".join(raw_panels).lower() or bool((per_panel == 45).all())
    adata = from_long(
        long,
        file=where,
        product=opts.get("product") or ("Target 48" if t48 else "Target 96"),
        duplicates=opts.get("duplicates", "rename"),
        data_format="wide",
        metadata=meta,
        row_labels=cells,
        layers=opts.get("layers"),
    )
    adata.uns["olinkpipe"]["data_type"] = data_type
    return adata
