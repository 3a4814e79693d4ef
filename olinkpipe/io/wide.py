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
import re
from pathlib import Path
from typing import IO, Any

import anndata as ad
import numpy as np
import pandas as pd
from openpyxl.utils import get_column_letter

from ..errors import NPXFormatError, UnknownFormatError, format_message, preview
from . import _sniff
from ._util import warn_user
from .convert import from_long, parse_number, resolve_roles

__all__: list[str] = []

WIDE_TYPES = {"npx data": "NPX", "quantified data": "Quantified", "ct data": "Ct"}
VALUE_COLUMN = {"NPX": "NPX", "Quantified": "Quantified_value", "Ct": "Ct"}
FOOTER = {
    "lod": "LOD",
    "plate lod": "PlateLOD",
    "max lod": "MaxLOD",
    "assay warning": "Assay_Warning",
    "lowest quantifiable level": "Plate_LQL",
    "lloq": "LLOQ",
    "uloq": "ULOQ",
    "missing data freq.": "MissingFreq",
    "missing data freq": "MissingFreq",
    "normalization": "Normalization",
    "plate lloq": "Plate_LLOQ",
}
EXTRA_HEADER = {"unit", "units"}
HEADER_LABELS = {
    "assay": "Assay",
    "uniprot id": "UniProt",
    "uniprot": "UniProt",
    "olinkid": "OlinkID",
}
_PANEL_VERSION = re.compile(r"^(.*?)\s*\((v\.[^)]*)\)\s*$")
# names as OlinkAnalyze::read_NPX gives them
_QCDEV_NAMES = {
    "inc ctrl 1": "QC Deviation Inc Ctrl",
    "inc ctrl 2": "QC Deviation Inc Ctrl",
    "inc ctrl": "QC Deviation Inc Ctrl",
    "det ctrl": "QC Deviation Det Ctrl",
}


def olink_panel_name(raw: str) -> str:
    """Panel name as OlinkAnalyze's ``read_NPX`` writes it for wide exports.

    The ``(v.xxxx)`` suffix is dropped, "Olink", "Target 96" and "Target 48" are removed,
    the rest is title-cased with Roman numerals upper-cased, and "Olink " put in front:
    ``"Olink CARDIOVASCULAR III(v.6112)"`` and ``"Olink Target 96 Cardiovascular III"``
    both become ``"Olink Cardiovascular III"``.
    """
    name = re.sub(r"\(.*\)", "", raw)
    name = re.sub(r"(?i)\btarget\s*(96|48)\b", "", name)
    name = re.sub(r"(?i)\bolink\b", "", name)
    words = []
    for w in name.split():
        t = w.title()
        words.append(t.upper() if re.fullmatch(r"(?i)[ivx]+", w) else t)
    return " ".join(["Olink", *words]) if words else raw.strip()


Grid = list[list[Any]]


def _cell_str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float) and np.isnan(v):
        return ""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _label(row: list[Any]) -> str:
    return _cell_str(row[0]).strip().lower() if row else ""


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
    head = [_cell_str(v).strip() for v in grid[0]]
    roles = resolve_roles(head)
    if roles["sample"] and roles["olinkid"] and roles["value"]:
        return "long", 1
    labels = [_label(r) for r in grid[:60]]
    if "olinkid" in labels and "assay" in labels[: labels.index("olinkid") + 1]:
        score = 1
        b1 = _cell_str(grid[0][1]).lower() if len(grid[0]) > 1 else ""
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
    labels = [_label(r) for r in grid[:60]]
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
    header = [_cell_str(v).strip() for v in grid[0]]
    keep = [k for k, r in enumerate(grid[1:], start=2) if not _blank(r)]
    body = [grid[k - 1] for k in keep]
    width = len(header)
    beyond = [
        f"{get_column_letter(j + 1)}{k}"
        for k, r in zip(keep, body, strict=True)
        for j in range(width, len(r))
        if _cell_str(r[j]).strip()
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
    from .npx import STRING_COLUMNS

    for c in frame.columns:
        col = frame[c]
        if c in text_cols or c in STRING_COLUMNS:
            frame[c] = col.map(lambda v: None if v is None else _cell_str(v))
            continue
        num = pd.to_numeric(
            col.map(lambda v: None if v is None else _cell_str(v).strip()), errors="coerce"
        )
        if (num.notna() | col.isna()).all():
            frame[c] = num
    return from_long(
        frame,
        file=where,
        product=opts.get("product"),
        duplicates=opts.get("duplicates", "rename"),
        data_format="long",
    )


# ------------------------------------------------------------------------------------------
# wide grid
# ------------------------------------------------------------------------------------------


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
    )
    adata.uns["olinkpipe"]["data_type"] = data_type
    return adata


def _number_at(grid: Grid, r: int, j: int, where: str) -> float:
    """The number in one cell (NaN for empty and markers); an error naming the cell."""
    v, ok, _ = parse_number(grid[r][j])
    if not ok:
        label = _cell_str(grid[r][0]).strip()
        msg = format_message(
            f"cell {get_column_letter(j + 1)}{r + 1} (row {label!r}) holds "
            f"{_cell_str(grid[r][j])!r}, not a number",
            file=where,
            hint="Fix the cell: a number, empty, or an Olink marker.",
        )
        raise NPXFormatError(msg)
    return v


def _blank(row: list[Any]) -> bool:
    return not any(_cell_str(v).strip() for v in row)


def _block(
    grid: Grid, labels: list[str], start: int, where: str, side: list[int]
) -> tuple[list[int], dict[str, list[int]]]:
    """Sample rows and footer rows below the header, found from the sheet's structure.

    The footer is the run of rows at the bottom that are blank or hold per-assay values
    without a Plate ID / QC Warning cell (footer rows never have one), beginning with a blank
    row or a footer label (``LOD``, ``Missing Data freq.`` ... as whole cells). Everything
    between the header and the footer is a sample row, whatever its SampleID looks like
    (``LOD_S3``) and however many blank rows lie among the samples.
    """
    n = len(grid)

    def footer_like(k: int) -> bool:
        if _blank(grid[k]):
            return True
        no_side = not any(_cell_str(grid[k][j]).strip() for j in side)
        return no_side and (bool(side) or labels[k] in FOOTER)

    top = n
    while top > start and footer_like(top - 1):
        top -= 1
    while top < n and not (_blank(grid[top]) or labels[top] in FOOTER):
        top += 1  # a sample row without plate cells just above the footer stays a sample
    rows = [r for r in range(start, top) if not _blank(grid[r])]
    unnamed = [r for r in rows if not labels[r]]
    if unnamed:
        msg = format_message(
            f"sample row(s) {preview([r + 1 for r in unnamed])} hold values but no SampleID "
            f"(cells {preview([f'A{r + 1}' for r in unnamed])} are empty)",
            file=where,
            column="A",
            hint="Fill in the SampleID of these rows, or delete them.",
        )
        raise NPXFormatError(msg)
    if rows:
        gaps = [r + 1 for r in range(rows[0], rows[-1]) if _blank(grid[r])]
        if gaps:
            warn_user(
                f"{where}: blank row(s) {preview(gaps)} lie among the sample rows; the samples "
                "on both sides are read"
            )
    like_footer = [f"{_cell_str(grid[r][0]).strip()!r} (row {r + 1})" for r in rows]
    like_footer = [x for x, r in zip(like_footer, rows, strict=True) if labels[r] in FOOTER]
    if like_footer:
        warn_user(
            f"{where}: sample row(s) named like footer rows, read as samples (they have Plate "
            f"ID / QC Warning cells or lie above the samples' end): {preview(like_footer)}"
        )
    footer: dict[str, list[int]] = {}
    odd = []
    for r in range(top, n):
        if _blank(grid[r]):
            continue
        if not labels[r]:
            msg = format_message(
                f"row {r + 1} below the samples holds values but no label in column A (cell "
                f"A{r + 1} is empty); footer rows are named LOD, Missing Data freq., "
                "Normalization ...",
                file=where,
                column="A",
                hint="Restore the row's label from the original export, or delete the row.",
            )
            raise NPXFormatError(msg)
        name = FOOTER.get(labels[r], _cell_str(grid[r][0]).strip())
        if labels[r] not in FOOTER:
            odd.append(f"{name!r} (row {r + 1})")
        footer.setdefault(name, []).append(r)  # one row per plate in quant exports
    if odd:
        warn_user(
            f"{where}: row(s) below the samples with labels olinkpipe does not know, read as "
            f"per-assay footer rows (var columns): {preview(odd)}"
        )
    if not rows:
        msg = format_message(
            "no sample rows below the OlinkID row",
            file=where,
            hint="The export holds no samples; export the data again from NPX Manager.",
        )
        raise NPXFormatError(msg)
    return rows, footer


def _check_unnamed_columns(
    grid: Grid,
    where: str,
    assay_cols: list[int],
    side: list[int],
    sample_rows: list[int],
    footer: dict[str, list[int]],
    header_rows: dict[str, list[str]],
    i_oid: int,
) -> None:
    """A column without an OlinkID that holds an assay name or values is an error."""
    skip = {0, *assay_cols, *side}
    rows = sample_rows + [r for rs in footer.values() for r in rs]
    heads = [h for name, h in header_rows.items() if name != "OlinkID"]
    width = len(grid[0]) if grid else 0
    bad = []
    for j in range(width):
        if j in skip:
            continue
        if any(h[j] for h in heads) or any(_cell_str(grid[r][j]).strip() for r in rows):
            bad.append(get_column_letter(j + 1))
    if bad:
        msg = format_message(
            f"column(s) {preview(bad)} hold an assay name or values but no OlinkID (cell(s) "
            f"{preview([f'{c}{i_oid + 1}' for c in bad])} of the OlinkID row are empty)",
            file=where,
            hint="Restore the OlinkID of these columns from the original export, or delete "
            "the columns.",
        )
        raise NPXFormatError(msg)


def parse_wide(
    grid: Grid, where: str
) -> tuple[pd.DataFrame, dict[str, str], str, list[str], np.ndarray]:
    """Parse a wide NPX Manager grid.

    Returns the long table, metadata, data type, raw panel per assay and, per long row, the
    sheet cell it came from (``"cell C9"``) for messages.
    """
    width = max((len(r) for r in grid), default=0)
    grid = [list(r) + [None] * (width - len(r)) for r in grid]
    labels = [_label(r) for r in grid]
    try:
        i_oid = labels.index("olinkid")
    except ValueError:
        i_oid = -1
    i_assay = max((k for k in range(max(i_oid, 0)) if labels[k] == "assay"), default=-1)
    if i_oid < 0 or i_assay < 0:
        msg = format_message(
            "not a wide NPX export: rows 'Assay' and 'OlinkID' not found in column A",
            file=where,
            hint="Export the data from NPX Manager (wide or long) without editing the header.",
        )
        raise NPXFormatError(msg)
    i_panel = max((k for k in range(i_assay) if labels[k] == "panel"), default=-1)
    data_type = "NPX"
    for lb in labels[: max(i_panel, 0) + 3]:
        if lb in WIDE_TYPES:
            data_type = WIDE_TYPES[lb]
            break
    meta: dict[str, str] = {}
    if _cell_str(grid[0][0]).strip():
        meta["Project"] = _cell_str(grid[0][0]).strip()
    if width > 1 and _cell_str(grid[0][1]).strip():
        meta["Software"] = _cell_str(grid[0][1]).strip()
    for k in range(max(i_panel, 0) + 1, i_assay):  # layout B summary block
        if labels[k]:
            vals = [_cell_str(v).strip() for v in grid[k][1:] if _cell_str(v).strip()]
            meta[_cell_str(grid[k][0]).strip()] = vals[0] if vals else ""

    panel_row = [_cell_str(v).strip() for v in grid[i_panel]] if i_panel >= 0 else [""] * width
    panel_cells = [v for v in panel_row[1:] if v]
    single_panel = panel_cells[0] if len(panel_cells) == 1 else None
    header_rows: dict[str, list[str]] = {}
    for k in range(i_assay, i_oid + 1):
        if labels[k]:
            name = HEADER_LABELS.get(labels[k], _cell_str(grid[k][0]).strip())
            header_rows[name] = [_cell_str(v).strip() for v in grid[k]]
        elif not _blank(grid[k]):
            warn_user(
                f"{where}: header row {k + 1} (between Assay and OlinkID) holds cells but no "
                f"label in cell A{k + 1}; its cells are not read (label it, e.g. 'Uniprot ID')"
            )
    assay_row, oid_row = header_rows["Assay"], header_rows["OlinkID"]
    uni_row = header_rows.get("UniProt", [""] * width)

    def panel_of(j: int) -> str:
        if panel_row[j]:
            return panel_row[j]
        if single_panel:
            return single_panel
        prev = [panel_row[k] for k in range(1, j) if panel_row[k]]
        return prev[-1] if prev else "unknown"

    assay_cols, plate_cols, qc_cols, dev_cols = [], {}, {}, {}
    for j in range(1, width):
        low = assay_row[j].lower()
        if oid_row[j]:
            assay_cols.append(j)
        elif low == "plate id":
            plate_cols[panel_of(j)] = j
        elif low == "qc warning":
            qc_cols[panel_of(j)] = j
        elif low.startswith("qc deviation"):
            key = uni_row[j].lower()
            dev_cols[_QCDEV_NAMES.get(key, f"QC_Deviation_{uni_row[j] or j}")] = j
    if not assay_cols:
        msg = format_message("the OlinkID row is empty", file=where, hint="Check the export.")
        raise NPXFormatError(msg)
    seen: dict[str, list[int]] = {}
    for j in assay_cols:
        seen.setdefault(oid_row[j], []).append(j)
    repeated = {o: js for o, js in seen.items() if len(js) > 1}
    if repeated:
        shown = [
            f"{o} in columns {', '.join(get_column_letter(j + 1) for j in js)}"
            for o, js in repeated.items()
        ]
        msg = format_message(
            f"OlinkID(s) occur in more than one column: {'; '.join(shown[:5])}",
            file=where,
            column="OlinkID",
            hint="Each assay column needs its own OlinkID; delete the copied columns or correct "
            "the OlinkID row.",
        )
        raise NPXFormatError(msg)

    # header rows such as "Unit" may follow the OlinkID row (Target 48 quant exports)
    k = i_oid + 1
    while k < len(grid) and labels[k] in EXTRA_HEADER:
        header_rows[_cell_str(grid[k][0]).strip()] = [_cell_str(v).strip() for v in grid[k]]
        k += 1

    # sample rows and footer, from the sheet's structure
    side = sorted({*plate_cols.values(), *qc_cols.values(), *dev_cols.values()})
    sample_rows, footer = _block(grid, labels, k, where, side)
    _check_unnamed_columns(grid, where, assay_cols, side, sample_rows, footer, header_rows, i_oid)

    raw_ids = [_cell_str(grid[r][0]) for r in sample_rows]
    stripped = [s.strip() for s in raw_ids]
    changed = sum(a != b for a, b in zip(raw_ids, stripped, strict=True))
    if changed and len(set(stripped)) == len(set(raw_ids)):
        warn_user(
            f"{where}: removed leading/trailing spaces from {changed} SampleID(s), e.g. "
            f"{preview([s for s in raw_ids if s != s.strip()][:3])}"
        )
        sample_ids = stripped
    else:
        sample_ids = raw_ids

    n_s, n_a = len(sample_rows), len(assay_cols)
    cache: dict[Any, tuple[float, bool, bool]] = {}
    values = np.empty((n_a, n_s))
    bad: list[str] = []
    n_bad = 0
    markers = 0
    marker_values: dict[str, str] = {}
    for ai, j in enumerate(assay_cols):
        for si, r in enumerate(sample_rows):
            v = grid[r][j]
            if isinstance(v, float | int) and not isinstance(v, bool):
                values[ai, si] = v
                continue
            hit = cache.get(v)
            if hit is None:
                hit = cache[v] = parse_number(v)
            values[ai, si] = hit[0]
            if hit[2]:
                markers += 1
                marker_values.setdefault(str(v).strip(), f"{get_column_letter(j + 1)}{r + 1}")
            if not hit[1]:
                n_bad += 1
                if len(bad) < 5:
                    bad.append(f"cell {get_column_letter(j + 1)}{r + 1} ({oid_row[j]}): {v!r}")
    if bad:
        more = f" (and {n_bad - len(bad)} more)" if n_bad > len(bad) else ""
        msg = format_message(
            f"non-numeric {data_type} value(s): {'; '.join(bad)}{more}",
            file=where,
            hint="Values must be numbers, empty, or Olink markers ('> ULOQ', '< LLOQ', "
            "'No Data'); fix these cells.",
        )
        raise NPXFormatError(msg)
    if markers:
        shown = ", ".join(f"{k!r} (e.g. cell {c})" for k, c in list(marker_values.items())[:5])
        warn_user(
            f"{where}: {markers} cell(s) held text markers and are read as NaN: {shown} "
            "(Olink's '> ULOQ', '< LLOQ', 'No Data', '#'; Excel errors such as '#N/A')"
        )

    panels = [panel_of(j) for j in assay_cols]
    split = [_PANEL_VERSION.match(p) for p in panels]
    has_version = any(m is not None for m in split)
    panel_names = [olink_panel_name(p) for p in panels]
    versions = [m.group(2) if m else None for m in split]

    def per_sample(col_by_panel: dict[str, int], panel: str) -> list[str | None]:
        j = col_by_panel.get(panel)
        if j is None:
            return [None] * n_s
        return [(_cell_str(grid[r][j]).strip() or None) for r in sample_rows]

    plate_by_panel = {p: per_sample(plate_cols, p) for p in set(panels)}
    qc_by_panel = {p: per_sample(qc_cols, p) for p in set(panels)}

    def footer_row(name: str, *, numeric: bool) -> np.ndarray | None:
        """A footer row as one value per cell (assay-major); a label repeated once per
        plate (Target 48 quant: LOD, Assay warning per plate) maps each sample's plate."""
        rows = footer.get(name)
        if not rows:
            return None

        def cell(r: int, j: int) -> Any:
            c = grid[r][j]
            if numeric:
                return _number_at(grid, r, j, where)
            return _cell_str(c).strip() or None

        out = np.empty((n_a, n_s), dtype=float if numeric else object)
        for ai, j in enumerate(assay_cols):
            plates = plate_by_panel[panels[ai]]
            order = (
                list(dict.fromkeys(p for p in plates if p is not None)) if len(rows) > 1 else []
            )
            if len(rows) > 1 and len(rows) == len(order):
                by_plate = {p: cell(r, j) for p, r in zip(order, rows, strict=True)}
                out[ai] = [by_plate.get(p, np.nan if numeric else None) for p in plates]
            else:
                out[ai] = cell(rows[0], j)
        return out.ravel()

    rep = np.repeat
    cols: dict[str, Any] = {
        "SampleID": np.tile(np.asarray(sample_ids, dtype=object), n_a),
        "Index": np.tile(np.arange(1, n_s + 1), n_a),
        "OlinkID": rep(np.asarray([oid_row[j] for j in assay_cols], dtype=object), n_s),
        "UniProt": rep(np.asarray([uni_row[j] or None for j in assay_cols], dtype=object), n_s),
        "Assay": rep(np.asarray([assay_row[j] for j in assay_cols], dtype=object), n_s),
    }
    mf = footer_row("MissingFreq", numeric=True)
    if mf is not None:
        cols["MissingFreq"] = mf
    cols["Panel"] = rep(np.asarray(panel_names, dtype=object), n_s)
    if has_version:
        cols["Panel_Version"] = rep(np.asarray(versions, dtype=object), n_s)
    for extra, row in header_rows.items():
        if extra not in ("Assay", "OlinkID", "UniProt"):
            cols[extra] = rep(np.asarray([row[j] or None for j in assay_cols], dtype=object), n_s)
    cols["PlateID"] = np.concatenate([np.asarray(plate_by_panel[p], dtype=object) for p in panels])
    cols["QC_Warning"] = np.concatenate([np.asarray(qc_by_panel[p], dtype=object) for p in panels])
    lod = footer_row("LOD", numeric=True)
    if lod is not None:  # quantified exports call the plate LOD Plate_LOD (as OlinkAnalyze)
        cols["LOD" if data_type != "Quantified" else "Plate_LOD"] = lod
    cols[VALUE_COLUMN[data_type]] = values.ravel()
    norm = footer_row("Normalization", numeric=False)
    if norm is not None:
        cols["Normalization"] = norm
    for name in footer:
        if name in ("LOD", "MissingFreq", "Normalization"):
            continue
        if name in ("PlateLOD", "MaxLOD", "LLOQ", "ULOQ", "Plate_LQL"):
            cols[name] = footer_row(name, numeric=True)
            continue
        vals = footer_row(name, numeric=False)
        nums = [parse_number(v) for v in vals]
        if all(ok for _, ok, _ in nums):
            cols[name] = np.asarray([x for x, _, _ in nums], dtype=float)
        else:
            cols[name] = vals
    if dev_cols:
        panel0 = panels[0]
        for name, j in dev_cols.items():
            per = [_number_at(grid, r, j, where) for r in sample_rows]
            arr = np.asarray(per, dtype=float)
            cols[name] = np.concatenate(
                [arr if p == panel0 else np.full(n_s, np.nan) for p in panels]
            )
    long = pd.DataFrame(cols)
    letters = [get_column_letter(j + 1) for j in assay_cols]
    cells = np.asarray([f"cell {c}{r + 1}" for c in letters for r in sample_rows], dtype=object)
    on = (long["PlateID"].notna() | ~np.isnan(long[VALUE_COLUMN[data_type]].to_numpy())).to_numpy()
    row_of = np.tile(np.arange(n_s), n_a)
    has_any = np.bincount(row_of[on], minlength=n_s) > 0
    if not has_any.all():  # a sample row with an ID but no value and no plate: keep, say so
        empty = [sample_ids[i] for i in np.flatnonzero(~has_any)]
        warn_user(
            f"{where}: {len(empty)} sample row(s) have no {data_type} value and no plate; kept "
            f"as all-NaN rows: {preview(empty)}"
        )
        on |= ~has_any[row_of]
    # samples absent from a panel (no plate, no values) are not measurements
    if len(set(panels)) > 1 and not on.all():
        long = long.loc[on].reset_index(drop=True)
        cells = cells[on]
    return long, meta, data_type, panels, cells
