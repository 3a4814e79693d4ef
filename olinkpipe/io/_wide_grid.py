"""Parse a wide NPX Manager grid (rows of cells) into a long table, in named steps:
header rows -> column roles -> sample and footer rows -> values -> long rows -> absent
samples dropped (see :func:`parse_wide`)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
from openpyxl.utils import get_column_letter

from .._warnings import warn_user
from ..errors import NPXFormatError, format_message, preview
from ._wide_layout import (
    EXTRA_HEADER,
    FOOTER,
    HEADER_LABELS,
    PANEL_VERSION,
    QCDEV_NAMES,
    VALUE_COLUMN,
    WIDE_TYPES,
    Grid,
    cell_str,
    is_blank,
    olink_panel_name,
    row_label,
)
from .convert import parse_number

__all__ = ["parse_wide"]


def _number_at(grid: Grid, r: int, j: int, where: str) -> float:
    """The number in one cell (NaN for empty and markers); an error naming the cell."""
    v, ok, _ = parse_number(grid[r][j])
    if not ok:
        label = cell_str(grid[r][0]).strip()
        msg = format_message(
            f"cell {get_column_letter(j + 1)}{r + 1} (row {label!r}) holds "
            f"{cell_str(grid[r][j])!r}, not a number",
            file=where,
            hint="Fix the cell: a number, empty, or an Olink marker.",
        )
        raise NPXFormatError(msg)
    return v


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
        if is_blank(grid[k]):
            return True
        no_side = not any(cell_str(grid[k][j]).strip() for j in side)
        return no_side and (bool(side) or labels[k] in FOOTER)

    top = n
    while top > start and footer_like(top - 1):
        top -= 1
    while top < n and not (is_blank(grid[top]) or labels[top] in FOOTER):
        top += 1  # a sample row without plate cells just above the footer stays a sample
    rows = [r for r in range(start, top) if not is_blank(grid[r])]
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
        gaps = [r + 1 for r in range(rows[0], rows[-1]) if is_blank(grid[r])]
        if gaps:
            warn_user(
                f"{where}: blank row(s) {preview(gaps)} lie among the sample rows; the samples "
                "on both sides are read"
            )
    like_footer = [f"{cell_str(grid[r][0]).strip()!r} (row {r + 1})" for r in rows]
    like_footer = [x for x, r in zip(like_footer, rows, strict=True) if labels[r] in FOOTER]
    if like_footer:
        warn_user(
            f"{where}: sample row(s) named like footer rows, read as samples (they have Plate "
            f"ID / QC Warning cells or lie above the samples' end): {preview(like_footer)}"
        )
    footer: dict[str, list[int]] = {}
    odd = []
    for r in range(top, n):
        if is_blank(grid[r]):
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
        name = FOOTER.get(labels[r], cell_str(grid[r][0]).strip())
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
        if any(h[j] for h in heads) or any(cell_str(grid[r][j]).strip() for r in rows):
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


@dataclasses.dataclass
class _Header:
    """What the rows above the samples say: the header's rows, data type and metadata."""

    grid: Grid
    where: str
    labels: list[str]
    i_oid: int
    data_type: str
    meta: dict[str, str]
    panel_row: list[str]
    header_rows: dict[str, list[str]]

    def panel_of(self, j: int) -> str:
        """The panel of column ``j``: its Panel cell, the one panel, or the last one left."""
        if self.panel_row[j]:
            return self.panel_row[j]
        cells = [v for v in self.panel_row[1:] if v]
        if len(cells) == 1:
            return cells[0]
        prev = [self.panel_row[k] for k in range(1, j) if self.panel_row[k]]
        return prev[-1] if prev else "unknown"


@dataclasses.dataclass
class _Columns:
    """The sheet's columns by role: assays, and per panel Plate ID / QC Warning columns."""

    assay: list[int]
    plate: dict[str, int]
    qc: dict[str, int]
    deviation: dict[str, int]

    @property
    def side(self) -> list[int]:
        return sorted({*self.plate.values(), *self.qc.values(), *self.deviation.values()})


def parse_wide(
    grid: Grid, where: str
) -> tuple[pd.DataFrame, dict[str, str], str, list[str], np.ndarray]:
    """Parse a wide NPX Manager grid.

    Returns the long table, metadata, data type, raw panel per assay and, per long row, the
    sheet cell it came from (``"cell C9"``) for messages. The steps: :func:`_read_header`
    (the rows above the samples), :func:`_assay_columns` (what each column holds),
    :func:`_block` (sample and footer rows), :func:`_coerce_values` (the value cells as
    numbers), :func:`_pivot` (one long row per sample and assay, annotated from the header,
    side columns and footer) and :func:`_drop_absent` (samples not run on a panel).
    """
    width = max((len(r) for r in grid), default=0)
    grid = [list(r) + [None] * (width - len(r)) for r in grid]
    head = _read_header(grid, where)
    cols = _assay_columns(head)
    start = _extra_header_rows(head)
    sample_rows, footer = _block(grid, head.labels, start, where, cols.side)
    _check_unnamed_columns(
        grid, where, cols.assay, cols.side, sample_rows, footer, head.header_rows, head.i_oid
    )
    sample_ids = _sample_ids(grid, sample_rows, where)
    values = _coerce_values(head, cols.assay, sample_rows)
    long, panels = _pivot(head, cols, sample_rows, sample_ids, footer, values)
    long, cells = _drop_absent(long, head, cols.assay, sample_rows, sample_ids, panels)
    return long, head.meta, head.data_type, panels, cells


def _read_header(grid: Grid, where: str) -> _Header:
    """Find the Assay/OlinkID rows (an error without them), the data type, the Panel row,
    the header rows between Assay and OlinkID, and the project/summary metadata."""
    width = len(grid[0]) if grid else 0
    labels = [row_label(r) for r in grid]
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
    if cell_str(grid[0][0]).strip():
        meta["Project"] = cell_str(grid[0][0]).strip()
    if width > 1 and cell_str(grid[0][1]).strip():
        meta["Software"] = cell_str(grid[0][1]).strip()
    for k in range(max(i_panel, 0) + 1, i_assay):  # layout B summary block
        if labels[k]:
            vals = [cell_str(v).strip() for v in grid[k][1:] if cell_str(v).strip()]
            meta[cell_str(grid[k][0]).strip()] = vals[0] if vals else ""
    panel_row = [cell_str(v).strip() for v in grid[i_panel]] if i_panel >= 0 else [""] * width
    header_rows: dict[str, list[str]] = {}
    for k in range(i_assay, i_oid + 1):
        if labels[k]:
            name = HEADER_LABELS.get(labels[k], cell_str(grid[k][0]).strip())
            header_rows[name] = [cell_str(v).strip() for v in grid[k]]
        elif not is_blank(grid[k]):
            warn_user(
                f"{where}: header row {k + 1} (between Assay and OlinkID) holds cells but no "
                f"label in cell A{k + 1}; its cells are not read (label it, e.g. 'Uniprot ID')"
            )
    header_rows.setdefault("UniProt", [""] * width)
    return _Header(grid, where, labels, i_oid, data_type, meta, panel_row, header_rows)


def _assay_columns(head: _Header) -> _Columns:
    """Assay columns (those with an OlinkID; each OlinkID once) and the per-panel Plate ID,
    QC Warning and QC Deviation columns."""
    assay_row, oid_row = head.header_rows["Assay"], head.header_rows["OlinkID"]
    uni_row = head.header_rows["UniProt"]
    cols = _Columns([], {}, {}, {})
    for j in range(1, len(assay_row)):
        low = assay_row[j].lower()
        if oid_row[j]:
            cols.assay.append(j)
        elif low == "plate id":
            cols.plate[head.panel_of(j)] = j
        elif low == "qc warning":
            cols.qc[head.panel_of(j)] = j
        elif low.startswith("qc deviation"):
            key = uni_row[j].lower()
            cols.deviation[QCDEV_NAMES.get(key, f"QC_Deviation_{uni_row[j] or j}")] = j
    if not cols.assay:
        msg = format_message("the OlinkID row is empty", file=head.where, hint="Check the export.")
        raise NPXFormatError(msg)
    seen: dict[str, list[int]] = {}
    for j in cols.assay:
        seen.setdefault(oid_row[j], []).append(j)
    repeated = {o: js for o, js in seen.items() if len(js) > 1}
    if repeated:
        shown = [
            f"{o} in columns {', '.join(get_column_letter(j + 1) for j in js)}"
            for o, js in repeated.items()
        ]
        msg = format_message(
            f"OlinkID(s) occur in more than one column: {'; '.join(shown[:5])}",
            file=head.where,
            column="OlinkID",
            hint="Each assay column needs its own OlinkID; delete the copied columns or correct "
            "the OlinkID row.",
        )
        raise NPXFormatError(msg)
    return cols


def _extra_header_rows(head: _Header) -> int:
    """Header rows such as "Unit" after the OlinkID row (Target 48 quant exports) join the
    header rows; returns the first row below them."""
    k = head.i_oid + 1
    while k < len(head.grid) and head.labels[k] in EXTRA_HEADER:
        row = head.grid[k]
        head.header_rows[cell_str(row[0]).strip()] = [cell_str(v).strip() for v in row]
        k += 1
    return k


def _sample_ids(grid: Grid, sample_rows: list[int], where: str) -> list[str]:
    """The SampleIDs in column A, stripped of spaces (with a warning) unless that would
    merge two of them."""
    raw_ids = [cell_str(grid[r][0]) for r in sample_rows]
    stripped = [s.strip() for s in raw_ids]
    changed = sum(a != b for a, b in zip(raw_ids, stripped, strict=True))
    if changed and len(set(stripped)) == len(set(raw_ids)):
        warn_user(
            f"{where}: removed leading/trailing spaces from {changed} SampleID(s), e.g. "
            f"{preview([s for s in raw_ids if s != s.strip()][:3])}"
        )
        return stripped
    return raw_ids


def _coerce_values(head: _Header, assay_cols: list[int], sample_rows: list[int]) -> np.ndarray:
    """The value cells as an assays x samples float matrix: markers are NaN (warned
    about), anything else that is not a number is an error naming up to 5 cells."""
    grid, oid_row = head.grid, head.header_rows["OlinkID"]
    cache: dict[Any, tuple[float, bool, bool]] = {}
    values = np.empty((len(assay_cols), len(sample_rows)))
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
            f"non-numeric {head.data_type} value(s): {'; '.join(bad)}{more}",
            file=head.where,
            hint="Values must be numbers, empty, or Olink markers ('> ULOQ', '< LLOQ', "
            "'No Data'); fix these cells.",
        )
        raise NPXFormatError(msg)
    if markers:
        shown = ", ".join(f"{k!r} (e.g. cell {c})" for k, c in list(marker_values.items())[:5])
        warn_user(
            f"{head.where}: {markers} cell(s) held text markers and are read as NaN: {shown} "
            "(Olink's '> ULOQ', '< LLOQ', 'No Data', '#'; Excel errors such as '#N/A')"
        )
    return values


@dataclasses.dataclass
class _Footer:
    """Footer rows read per long row (assay-major), each sample's plate picking its row
    where a label repeats once per plate (Target 48 quant: LOD, Assay warning per plate)."""

    head: _Header
    rows: dict[str, list[int]]
    assay_cols: list[int]
    panels: list[str]
    plate_by_panel: dict[str, list[str | None]]
    n_s: int

    def get(self, name: str, *, numeric: bool) -> np.ndarray | None:
        rows = self.rows.get(name)
        if not rows:
            return None
        grid, where = self.head.grid, self.head.where

        def cell(r: int, j: int) -> Any:
            if numeric:
                return _number_at(grid, r, j, where)
            return cell_str(grid[r][j]).strip() or None

        out = np.empty((len(self.assay_cols), self.n_s), dtype=float if numeric else object)
        for ai, j in enumerate(self.assay_cols):
            plates = self.plate_by_panel[self.panels[ai]]
            order = (
                list(dict.fromkeys(p for p in plates if p is not None)) if len(rows) > 1 else []
            )
            if len(rows) > 1 and len(rows) == len(order):
                by_plate = {p: cell(r, j) for p, r in zip(order, rows, strict=True)}
                out[ai] = [by_plate.get(p, np.nan if numeric else None) for p in plates]
            else:
                out[ai] = cell(rows[0], j)
        return out.ravel()


def _pivot(
    head: _Header,
    cols: _Columns,
    sample_rows: list[int],
    sample_ids: list[str],
    footer: dict[str, list[int]],
    values: np.ndarray,
) -> tuple[pd.DataFrame, list[str]]:
    """One long row per assay and sample (assay-major), annotated with the header rows,
    the panel's plate and QC cells, the footer rows and the QC deviation columns; also
    returns the raw panel of each assay."""
    grid, where, hrows = head.grid, head.where, head.header_rows
    assay_cols, n_s = cols.assay, len(sample_rows)
    n_a = len(assay_cols)
    panels = [head.panel_of(j) for j in assay_cols]
    split = [PANEL_VERSION.match(p) for p in panels]

    def per_sample(col_by_panel: dict[str, int], panel: str) -> list[str | None]:
        j = col_by_panel.get(panel)
        if j is None:
            return [None] * n_s
        return [(cell_str(grid[r][j]).strip() or None) for r in sample_rows]

    plate_by_panel = {p: per_sample(cols.plate, p) for p in set(panels)}
    qc_by_panel = {p: per_sample(cols.qc, p) for p in set(panels)}
    foot = _Footer(head, footer, assay_cols, panels, plate_by_panel, n_s)

    def per_assay(row: list[str], *, none: bool = False) -> np.ndarray:
        return np.repeat(
            np.asarray([(row[j] or None) if none else row[j] for j in assay_cols], dtype=object),
            n_s,
        )

    out: dict[str, Any] = {
        "SampleID": np.tile(np.asarray(sample_ids, dtype=object), n_a),
        "Index": np.tile(np.arange(1, n_s + 1), n_a),
        "OlinkID": per_assay(hrows["OlinkID"]),
        "UniProt": per_assay(hrows["UniProt"], none=True),
        "Assay": per_assay(hrows["Assay"]),
    }
    mf = foot.get("MissingFreq", numeric=True)
    if mf is not None:
        out["MissingFreq"] = mf
    out["Panel"] = np.repeat(np.asarray([olink_panel_name(p) for p in panels], dtype=object), n_s)
    if any(m is not None for m in split):
        versions = [m.group(2) if m else None for m in split]
        out["Panel_Version"] = np.repeat(np.asarray(versions, dtype=object), n_s)
    for extra, row in hrows.items():
        if extra not in ("Assay", "OlinkID", "UniProt"):
            out[extra] = per_assay(row, none=True)
    out["PlateID"] = np.concatenate([np.asarray(plate_by_panel[p], dtype=object) for p in panels])
    out["QC_Warning"] = np.concatenate([np.asarray(qc_by_panel[p], dtype=object) for p in panels])
    lod = foot.get("LOD", numeric=True)
    if lod is not None:  # quantified exports call the plate LOD Plate_LOD (as OlinkAnalyze)
        out["LOD" if head.data_type != "Quantified" else "Plate_LOD"] = lod
    out[VALUE_COLUMN[head.data_type]] = values.ravel()
    norm = foot.get("Normalization", numeric=False)
    if norm is not None:
        out["Normalization"] = norm
    _footer_columns(out, foot)
    for name, j in cols.deviation.items():
        arr = np.asarray([_number_at(grid, r, j, where) for r in sample_rows], dtype=float)
        out[name] = np.concatenate(
            [arr if p == panels[0] else np.full(n_s, np.nan) for p in panels]
        )
    return pd.DataFrame(out), panels


def _footer_columns(out: dict[str, Any], foot: _Footer) -> None:
    """The footer rows other than LOD, MissingFreq and Normalization: numeric where every
    cell is a number (always for the LOD/LOQ family), text otherwise."""
    for name in foot.rows:
        if name in ("LOD", "MissingFreq", "Normalization"):
            continue
        if name in ("PlateLOD", "MaxLOD", "LLOQ", "ULOQ", "Plate_LQL"):
            out[name] = foot.get(name, numeric=True)
            continue
        vals = foot.get(name, numeric=False)
        nums = [parse_number(v) for v in vals]
        if all(ok for _, ok, _ in nums):
            out[name] = np.asarray([x for x, _, _ in nums], dtype=float)
        else:
            out[name] = vals


def _drop_absent(
    long: pd.DataFrame,
    head: _Header,
    assay_cols: list[int],
    sample_rows: list[int],
    sample_ids: list[str],
    panels: list[str],
) -> tuple[pd.DataFrame, np.ndarray]:
    """The sheet cell of each long row; rows of a sample not run on a panel (no plate, no
    value) are dropped in a multi-panel sheet, and a sample row with neither anywhere is kept
    as all-NaN with a warning."""
    n_s, n_a = len(sample_rows), len(assay_cols)
    letters = [get_column_letter(j + 1) for j in assay_cols]
    cells = np.asarray([f"cell {c}{r + 1}" for c in letters for r in sample_rows], dtype=object)
    value = long[VALUE_COLUMN[head.data_type]].to_numpy()
    on = (long["PlateID"].notna() | ~np.isnan(value)).to_numpy()
    row_of = np.tile(np.arange(n_s), n_a)
    has_any = np.bincount(row_of[on], minlength=n_s) > 0
    if not has_any.all():  # a sample row with an ID but no value and no plate: keep, say so
        empty = [sample_ids[i] for i in np.flatnonzero(~has_any)]
        warn_user(
            f"{head.where}: {len(empty)} sample row(s) have no {head.data_type} value and no "
            f"plate; kept as all-NaN rows: {preview(empty)}"
        )
        on |= ~has_any[row_of]
    # samples absent from a panel (no plate, no values) are not measurements
    if len(set(panels)) > 1 and not on.all():
        long = long.loc[on].reset_index(drop=True)
        cells = cells[on]
    return long, cells
