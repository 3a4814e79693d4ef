"""Long (tidy) Olink data <-> AnnData.

:func:`from_long` is the one builder every reader feeds: it turns a long table (one row per
sample × assay measurement, Olink's column names) into the AnnData of ``docs/data_model.md``
with integer codes and numpy scatter (no ``pivot_table``). :func:`to_long` goes back, so
that ``to_long(read_npx(f))`` returns the rows and values of ``f``.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import pyarrow as pa

from .._layout import compact_lod
from .._provenance import provenance, record_exclusion
from .._qc import is_pass as _is_pass  # the one QC vocabulary (summary, lazy, stream)
from .._validate import check_literal
from ..errors import (
    DuplicateSampleError,
    MissingColumnError,
    NPXFormatError,
    format_message,
    preview,
)
from . import _layers

# moved out of this module (issue 20); re-exported so that ``from .convert import x`` works
from ._longtable import _Column as _Column
from ._longtable import _combine as _combine
from ._longtable import _constant_within as _constant_within
from ._longtable import _factorize as _factorize
from ._longtable import _first_rows as _first_rows
from ._longtable import _flat_text as _flat_text
from ._longtable import _Groups as _Groups
from ._longtable import _is_utf8 as _is_utf8
from ._longtable import _line_numbers as _line_numbers
from ._longtable import _to_table as _to_table
from ._numbers import _ambiguous as _ambiguous
from ._numbers import _numeric as _numeric
from ._numbers import parse_number as parse_number
from ._pivot import Ids, Pivot, panel_grids, place_columns, qc_from_cells, row_order
from ._product import assay_type_from_name as assay_type_from_name
from ._product import guess_product as guess_product
from ._product import sample_type_from_name as sample_type_from_name
from ._roles import ASSAY_LEVEL as ASSAY_LEVEL
from ._roles import LOD_ALIASES as LOD_ALIASES
from ._roles import MEASUREMENT_LEVEL as MEASUREMENT_LEVEL
from ._roles import OLINKID_ALIASES as OLINKID_ALIASES
from ._roles import PANEL_ALIASES as PANEL_ALIASES
from ._roles import PLATE_ALIASES as PLATE_ALIASES
from ._roles import QC_ALIASES as QC_ALIASES
from ._roles import SAMPLE_ALIASES as SAMPLE_ALIASES
from ._roles import SAMPLE_TYPES as SAMPLE_TYPES
from ._roles import VALUE_ALIASES as VALUE_ALIASES
from ._roles import _find as _find
from ._roles import resolve_roles as resolve_roles
from ._tolong import DEFAULT_LONG as DEFAULT_LONG
from ._tolong import _available as _available
from ._tolong import _column_values as _column_values
from ._tolong import _present_from_plates as _present_from_plates
from ._tolong import _restore_dtype as _restore_dtype
from ._tolong import measured_mask as measured_mask
from ._tolong import to_long as to_long
from ._util import warn_user as warn

__all__ = ["to_long", "from_long"]


def _reader_version() -> str:
    try:
        return version("olinkpipe")
    except PackageNotFoundError:  # pragma: no cover
        return "0.0.0+unknown"


def _columns(table: pa.Table, *, file: str | None) -> tuple[list[str], dict[str, str | None]]:
    """Step 1 of :func:`from_long` (columns): the header's names and their roles; errors
    for repeated names, missing SampleID / OlinkID / value columns and an empty table."""
    columns = list(table.column_names)
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        msg = format_message(
            f"column name(s) {preview(repeated)} occur more than once in the header",
            file=file,
            hint="Rename or delete the repeated columns.",
        )
        raise NPXFormatError(msg)
    roles = resolve_roles(columns)
    missing = [r for r in ("sample", "olinkid", "value") if roles[r] is None]
    if missing:
        names = {"sample": "SampleID", "olinkid": "OlinkID", "value": "NPX"}
        msg = format_message(
            f"required column(s) {[names[m] for m in missing]} not found; the columns are "
            f"{columns[:20]!r}",
            file=file,
            hint="An Olink long export needs SampleID, OlinkID and NPX (or Quantified_value / "
            "Ct); rename your columns to Olink's names.",
        )
        raise MissingColumnError(msg)
    n = table.num_rows
    if n == 0:
        msg = format_message(
            "the table has a header but no data rows",
            file=file,
            hint="The export is incomplete; export the data again from Olink's software.",
        )
        raise NPXFormatError(msg)

    return columns, roles


def _identifiers(
    cols: dict[str, _Column], roles: dict[str, str | None], n: int, *, file, lines, where: str
) -> Ids:
    """Step 2 of :func:`from_long` (coerce the keys): sample, assay, panel and plate codes
    per row; errors for empty IDs, an OlinkID on two panels or with two Assay names."""
    scol, acol = roles["sample"], roles["olinkid"]
    s_codes, s_uni = cols[scol].codes()
    a_codes, a_uni = cols[acol].codes()
    for col, codes in ((scol, s_codes), (acol, a_codes)):
        bad = np.flatnonzero(codes < 0)
        if bad.size:
            msg = format_message(
                "empty identifier(s)",
                file=file,
                column=col,
                rows=lines(bad),
                hint="Every row needs a SampleID and an OlinkID; fill them or delete the rows.",
            )
            raise NPXFormatError(msg)
    for col, uni in ((scol, s_uni), (acol, a_uni)):
        _warn_space_variants(uni, col, where)
    p_codes, p_uni = _codes_or_fill(cols, roles["panel"], n, "unknown")
    a_groups = _Groups(a_codes, len(a_uni))
    ok, assay_panel = a_groups.constant(p_codes)
    if not ok:
        bad = np.flatnonzero(assay_panel[a_codes] != p_codes)
        ids = sorted({a_uni[a_codes[r]] for r in bad})
        msg = format_message(
            f"OlinkID(s) {preview(ids)} occur on more than one panel",
            file=file,
            column=roles["panel"],
            rows=lines(bad),
            hint="An OlinkID belongs to one panel; check the Panel column or split the file.",
        )
        raise NPXFormatError(msg)
    if roles["assay"] is not None:
        _check_one_assay_name(cols[roles["assay"]], a_codes, a_uni, a_groups, file, lines)
    q_codes, q_uni = _codes_or_fill(cols, roles["plate"], n, "")
    return Ids(
        s_codes, s_uni, a_codes, a_uni, p_codes, p_uni, q_codes, q_uni, assay_panel, a_groups
    )


def _warn_space_variants(uni: np.ndarray, col: str, where: str) -> None:
    """IDs are kept as written, so "S1" and "S1 " are two samples: say so."""
    stripped = pd.Series([str(u).strip() for u in uni], dtype=object)
    clash = stripped.duplicated(keep=False).to_numpy()
    if clash.any():
        shown = sorted({repr(str(u)) for u in uni[clash]})
        warn(
            f"{where}: column {col!r}: {clash.sum()} IDs differ only by leading/trailing "
            f"spaces and are kept apart: {', '.join(shown[:6])}; strip them in the file "
            "if they are the same"
        )


def _codes_or_fill(
    cols: dict[str, _Column], column: str | None, n: int, fill: str
) -> tuple[np.ndarray, np.ndarray]:
    """Codes and uniques of ``column``, its missing values (or all rows, without the column)
    coded as ``fill``."""
    if column is None:
        return np.zeros(n, dtype=np.int64), np.array([fill], dtype=object)
    codes, uni = cols[column].codes()
    if (codes < 0).any():
        uni = np.append(uni, fill).astype(object)
        codes = np.where(codes < 0, len(uni) - 1, codes)
    return codes, uni


def _check_one_assay_name(
    assay: _Column, a_codes: np.ndarray, a_uni: np.ndarray, a_groups: _Groups, file, lines
) -> None:
    """Raise when an OlinkID has two Assay names, naming the rows that differ from the
    OlinkID's most common name."""
    as_codes, as_uni = assay.codes()
    ok, assay_name = a_groups.constant(as_codes)
    if ok:
        return
    bad_ids = np.unique(a_codes[assay_name[a_codes] != as_codes])
    in_bad = np.isin(a_codes, bad_ids)
    pairs = pd.DataFrame({"a": a_codes[in_bad], "n": as_codes[in_bad]})
    common = pairs.groupby("a")["n"].agg(lambda v: v.value_counts().index[0])
    bad_mask = in_bad.copy()
    bad_mask[in_bad] = pairs["n"].to_numpy() != common.loc[pairs["a"]].to_numpy()
    bad = np.flatnonzero(bad_mask)
    detail = "; ".join(
        f"{a_uni[k]}: "
        + ", ".join(sorted({str(as_uni[c]) for c in as_codes[a_codes == k] if c >= 0}))
        for k in bad_ids[:5]
    )
    msg = format_message(
        f"{len(bad_ids)} OlinkID(s) mapped to more than one Assay name ({detail}); the "
        "rows listed differ from the most common name",
        file=file,
        column=assay.name,
        rows=lines(bad),
        hint="Each OlinkID must name one assay; correct the Assay column or the OlinkIDs.",
    )
    raise NPXFormatError(msg)


def _obs_rows(ids: Ids, *, ordered: bool, duplicates: str, file, scol: str) -> tuple:
    """Step 3 of :func:`from_long` (pivot: rows): one obs row per (SampleID, occurrence
    within panel): ``(o_codes, o_uni, o_sample, dup_sample_codes)`` (row → obs, obs codes,
    each obs row's sample code, samples on two plates within a panel)."""
    s_codes, s_uni, p_codes, q_codes = ids.s_codes, ids.s_uni, ids.p_codes, ids.q_codes
    n_panel, n_plate = len(ids.p_uni), len(ids.q_uni)
    sp_dense = _combine(s_codes, n_panel, p_codes)
    one_plate, _ = _Groups(sp_dense, len(s_uni) * n_panel).constant(q_codes)
    del sp_dense
    if one_plate:  # common case: no SampleID on two plates within a panel
        dup_sample_codes = np.zeros(0, dtype=np.int64)
    else:
        sp_codes, sp_uni = _factorize(s_codes.astype(np.int64) * n_panel + p_codes)
        spq_codes, spq_uni = _factorize(sp_codes * n_plate + q_codes)
        spq_sp = spq_uni // n_plate
        occ_uni = pd.Series(spq_sp).groupby(spq_sp).cumcount().to_numpy().astype(np.int64)
        dup_sample_codes = np.unique(sp_uni[spq_sp[occ_uni > 0]] // n_panel)
    if dup_sample_codes.size:
        dup_names = [str(s_uni[c]) for c in dup_sample_codes]
        if duplicates == "error":
            msg = format_message(
                f"{len(dup_names)} SampleID(s) occur on more than one plate within a panel: "
                f"{preview(dup_names)}",
                file=file,
                column=scol,
                hint='Rename the repeated samples, or use duplicates="rename" to keep each '
                "occurrence as its own row (index SampleID@PlateID).",
            )
            raise DuplicateSampleError(msg)
        occ = occ_uni[spq_codes]
        o_codes, o_uni = _factorize(s_codes.astype(np.int64) * (int(occ_uni.max()) + 1) + occ)
        o_sample = o_uni // (int(occ_uni.max()) + 1)
    elif ordered:  # pyarrow dictionary order = order of appearance
        o_codes, o_uni = s_codes, np.arange(len(s_uni))
        o_sample = o_uni
    else:
        o_codes, o_uni = _factorize(s_codes)
        o_sample = o_uni
    return o_codes, o_uni, o_sample, dup_sample_codes


def _cells(
    table: pa.Table, ids: Ids, o_codes: np.ndarray, n_obs: int, *, file, lines, where: str, scol
) -> tuple:
    """Step 4 of :func:`from_long` (pivot: cells): one measurement per (obs, assay):
    ``(cell, measured, keep_rows, dropped_ids)`` (each row's flat cell, the cells with a
    row, the rows kept when exact duplicates are dropped (None: all), their labels);
    an error for one cell measured twice with different values."""
    s_codes, s_uni, a_codes, a_uni = ids.s_codes, ids.s_uni, ids.a_codes, ids.a_uni
    q_codes, q_uni = ids.q_codes, ids.q_uni
    n, n_assay = table.num_rows, len(a_uni)
    cell = _combine(o_codes, n_assay, a_codes)
    measured = np.zeros(n_obs * n_assay, dtype=bool)
    measured[cell] = True
    keep_rows: np.ndarray | None = None
    dropped_ids: list[str] = []
    if int(np.count_nonzero(measured)) < n:  # some (sample, assay) cell occurs twice
        counts = np.bincount(cell, minlength=n_obs * n_assay)
        dup_rows = np.flatnonzero(counts[cell] > 1)
        sub = table.take(pa.array(dup_rows)).to_pandas()
        sub["_cell"] = cell[dup_rows]
        varying = sub.groupby("_cell", sort=False).nunique(dropna=False).max(axis=1) > 1
        if varying.any():
            bad_cells = set(varying.index[varying])
            bad_rows = dup_rows[sub["_cell"].isin(bad_cells).to_numpy()]
            pairs = {
                (str(s_uni[s_codes[r]]), str(a_uni[a_codes[r]]), str(q_uni[q_codes[r]]))
                for r in bad_rows
            }
            msg = format_message(
                f"the same SampleID is measured twice for one assay on one plate with different "
                f"values (SampleID, OlinkID, PlateID): {preview(sorted(pairs))}",
                file=file,
                column=scol,
                rows=lines(bad_rows),
                hint="Give the repeated wells distinct SampleIDs, or remove the extra rows.",
            )
            raise DuplicateSampleError(msg)
        first = _first_rows(cell, n_obs * n_assay)
        keep_mask = first[cell] == np.arange(n)
        dropped = np.flatnonzero(~keep_mask)
        dropped_ids = [
            f"{s_uni[s_codes[r]]} / {a_uni[a_codes[r]]} (row {lab})"
            for r, lab in zip(dropped, lines(dropped), strict=True)
        ]
        warn(
            f"{where}: dropped {dropped.size} exact duplicate row(s) (SampleID / OlinkID, "
            f"recorded in uns['olinkpipe']['excluded']): {preview(dropped_ids)}"
        )
        keep_rows = np.flatnonzero(keep_mask)
    return cell, measured, keep_rows, dropped_ids


def _build_obs(
    s_uni: np.ndarray,
    o_sample: np.ndarray,
    dup_sample_codes: np.ndarray,
    plate_mat: np.ndarray,
    qc_mat: np.ndarray,
    obs_cols: dict[str, np.ndarray],
    dtypes: dict[str, str],
    *,
    where: str,
) -> pd.DataFrame:
    """Step 5 of :func:`from_long` (annotate): ``obs`` from the obs rows' samples, their
    per-panel plates and QC (``SampleID@PlateID`` names for samples on two plates within a
    panel), the sample-level columns, SampleType / is_control / PlateID / QC_Warning /
    qc_pass."""
    sample_names = s_uni[o_sample].astype(object)
    is_pass_op = _is_pass(qc_mat.ravel()).reshape(qc_mat.shape)
    plates_joined = _join_rows(plate_mat, plate_mat != "", "")
    qc_joined = _join_rows(qc_mat, ~is_pass_op, "PASS")
    index = np.asarray([str(x) for x in sample_names], dtype=object)
    if dup_sample_codes.size:
        dup_mask = np.isin(o_sample, dup_sample_codes)
        index[dup_mask] = [
            f"{s}@{p}" for s, p in zip(index[dup_mask], plates_joined[dup_mask], strict=True)
        ]
        index = _make_unique(index)
        dup_names = [str(s_uni[c]) for c in dup_sample_codes]
        warn(
            f"{where}: {len(dup_names)} SampleID(s) occur on more than one plate within a panel "
            f"and are kept as one row per plate (index SampleID@PlateID): {preview(dup_names)}"
        )
    elif len(set(index)) != len(index):  # pragma: no cover - guarded by factorize
        index = _make_unique(index)
    obs_index = pd.Index(index, dtype=object, name=None)
    return obs_frame(
        sample_names, obs_index, obs_cols, dtypes, plates_joined, qc_joined, is_pass_op
    )


def obs_frame(
    sample_names: np.ndarray,
    obs_index: pd.Index,
    obs_cols: dict[str, np.ndarray],
    dtypes: dict[str, str],
    plates_joined: np.ndarray,
    qc_joined: np.ndarray,
    is_pass_op: np.ndarray,
) -> pd.DataFrame:
    """``obs`` from the obs rows' names and sample-level columns: SampleType (the file's,
    ``Sample_Type`` upper-cased, or recognised from the name), is_control, PlateID and
    QC_Warning joined over panels, qc_pass. Shared by the in-memory and streaming readers."""
    ocols: dict[str, Any] = {"SampleID": sample_names}
    for c, v in obs_cols.items():
        if c != "SampleID":
            ocols[c] = _as_series(v, dtypes[c], obs_index)
    if "SampleType" in obs_cols:
        st = pd.Series(ocols["SampleType"], dtype=object)
        ocols["SampleType"] = st.where(st.notna(), "SAMPLE").astype(str).to_numpy()
    elif "Sample_Type" in obs_cols:
        st = pd.Series(obs_cols["Sample_Type"], dtype=object).fillna("SAMPLE").astype(str)
        ocols["SampleType"] = st.str.strip().str.upper().to_numpy()
    else:
        ocols["SampleType"] = np.asarray(
            [sample_type_from_name(s) for s in sample_names], dtype=object
        )
    ocols["is_control"] = pd.Series(ocols["SampleType"]).astype(str).str.upper().to_numpy() != (
        "SAMPLE"
    )
    ocols["PlateID"] = plates_joined.astype(str)
    ocols["QC_Warning"] = np.asarray(qc_joined, dtype=object).astype(str)
    ocols["qc_pass"] = is_pass_op.all(axis=1)
    # one constructor call: a file with thousands of extra columns builds no fragmented frame
    obs = pd.DataFrame(ocols, index=obs_index)
    return obs


def from_long(
    data: pd.DataFrame | pa.Table,
    *,
    file: str | None = None,
    product: str | None = None,
    duplicates: str = "rename",
    data_format: str = "long",
    metadata: dict[str, str] | None = None,
    row_offset: int | None = None,
    decimal: str | None = None,
    row_labels: Sequence[str] | None = None,
    layers: Sequence[str] | None = None,
) -> ad.AnnData:
    """Build the olinkpipe AnnData from a long (one row per measurement) table.

    The shared builder behind every reader: Olink column names (``SampleID``, ``OlinkID``,
    ``NPX`` or ``Quantified_value``/``PCNormalizedNPX``/``Ct``, ``LOD``, ``PlateID``,
    ``QC_Warning``/``SampleQC``, ``Panel``, ...) are recognised; every other column is kept
    where it belongs: constant per sample → ``obs``, constant per assay → ``var``, otherwise
    a layer (numbers as float, text as integer codes with categories in
    ``uns["olinkpipe"]["coded_layers"]``).

    Parameters
    ----------
    data
        Long table as a pandas DataFrame or pyarrow Table.
    file
        Source path, used in messages and provenance.
    product
        Product name for ``uns["olinkpipe"]["product"]``; guessed when ``None``.
    duplicates
        ``"rename"`` (default): a SampleID measured on two plates within one panel gets one
        ``obs`` row per plate (index ``SampleID@PlateID``) and a warning; ``"error"`` raises
        :class:`~olinkpipe.errors.DuplicateSampleError`.
    data_format
        ``"long"``, ``"parquet"`` or ``"wide"`` (provenance only).
    metadata
        Key-value metadata of the file (parquet), stored in ``uns``.
    row_offset
        Added to 0-based row numbers in messages: 2 (header line + 1-based lines) when
        ``file`` is given, else 0 (positions in ``data``).
    decimal
        The file's decimal mark (``"."`` or ``","``) when known: text values are then
        parsed in that convention, thousands separators included (``"1.234,5"``), and a
        value that is ambiguous in it (``"1.234"`` in a decimal-comma file) is an error.
        ``None``: a single comma or point is a decimal mark.
    row_labels
        How to name each row of ``data`` in messages (e.g. the sheet cell a value came
        from); overrides ``row_offset``.
    layers
        The per-cell columns kept as layers (``None``: all; ``[]``: none), as in
        :func:`olinkpipe.read_npx`; the others are not converted and are recorded in
        ``uns["olinkpipe"]["layers"]``.

    Returns
    -------
    AnnData
        Samples × assays, laid out as in ``docs/data_model.md``.

    Raises
    ------
    MissingColumnError
        ``SampleID``, ``OlinkID`` or a value column (``NPX``...) is absent.
    NPXFormatError
        Empty table, an OlinkID with two Assay names or two panels, missing IDs.
    DuplicateSampleError
        One SampleID measured twice for one assay on one plate with different values, or
        any repeated SampleID with ``duplicates="error"``.

    Examples
    --------
    >>> import pandas as pd
    >>> from olinkpipe.io import from_long
    >>> df = pd.DataFrame({"SampleID": ["S1", "S2"], "OlinkID": ["OID1", "OID1"],
    ...                    "Assay": ["IL6", "IL6"], "NPX": [1.5, 2.0]})
    >>> from_long(df).shape
    (2, 1)
    """
    check_literal("duplicates", duplicates, ["rename", "error"])
    if decimal is not None:
        check_literal("decimal", decimal, [".", ","])
    lines = _row_labeller(row_labels, (2 if file else 0) if row_offset is None else row_offset)
    where = file or "long table"
    # columns: the header's roles, nested / binary text refused, every column wrapped
    table = _to_table(data)
    columns, roles = _columns(table, file=file)
    table = _flat_text(table, file=file, lines=lines)
    cols = {c: _Column(c, table.column(c), file) for c in columns}
    dtypes = {c: cols[c].pandas_dtype for c in columns}
    if roles["value"] == "PCNormalizedNPX":
        warn(
            f"{where}: no NPX column; X holds column 'PCNormalizedNPX' (Explore's plate-control "
            "normalized NPX), recorded as provenance columns['value']"
        )
    # coerce the keys, pivot rows to (obs, assay) cells
    ids = _identifiers(cols, roles, table.num_rows, file=file, lines=lines, where=where)
    scol = roles["sample"]
    o_codes, o_uni, o_sample, dup_sample_codes = _obs_rows(
        ids, ordered=isinstance(data, pa.Table), duplicates=duplicates, file=file, scol=scol
    )
    cell, measured, keep_rows, dropped_ids = _cells(
        table, ids, o_codes, len(o_uni), file=file, lines=lines, where=where, scol=scol
    )
    pivot = Pivot(len(o_uni), len(ids.a_uni), cell, keep_rows)
    order = row_order(pivot.kept(o_codes), pivot.kept(ids.a_codes))
    X, value_layers = _value_layers(cols, roles, pivot, file=file, lines=lines, decimal=decimal)
    grids = panel_grids(pivot, o_codes, ids, cols[roles["qc"]] if roles["qc"] else None)
    keep, left_out = _layers.check_layers(layers), []
    obs_cols, var_cols, coded = place_columns(
        columns, cols, roles, pivot, o_codes, ids, value_layers, grids.qc_layer_col, keep, left_out
    )
    per_cell = [c for c in value_layers if c not in ("lod", grids.qc_layer_col)]
    _layers.unknown(keep, per_cell + left_out, file=file)
    qc_mat = grids.qc
    if grids.qc_layer_col is not None:  # QC varies within a sample's panel: per-cell flags
        col = grids.qc_layer_col
        qc_mat = qc_from_cells(value_layers[col], coded[col], ids.assay_panel, grids.on_panel)

    # annotate: obs, var, the measured cells, provenance
    obs = _build_obs(
        ids.s_uni, o_sample, dup_sample_codes, grids.plate, qc_mat, obs_cols, dtypes, where=where
    )
    obsm = _panel_frames(grids.plate, qc_mat, ids.p_uni, obs.index)
    var = build_var(var_cols, roles, ids.a_uni, ids.p_uni[ids.assay_panel], dtypes)
    measured = measured.reshape(pivot.n_obs, pivot.n_assay)
    if not np.array_equal(measured, _present_from_plates(grids.plate)[:, ids.assay_panel]):
        value_layers["measured"] = measured
    adata = ad.AnnData(X=X, obs=obs, var=var, layers=value_layers, obsm=obsm)
    # qc_warning and below_lod are computed on demand (olinkpipe._layout)
    _annotate(
        adata,
        file=file,
        data_format=data_format,
        product=product or guess_product(columns, var, metadata),
        metadata=metadata,
        columns=columns,
        roles=roles,
        dtypes=dtypes,
        coded=coded,
        row_order=order,
        dropped_ids=dropped_ids,
    )
    _layers.record(adata, keep, left_out)
    return adata


def _row_labeller(row_labels: Sequence[str] | None, row_offset: int):
    """How messages name rows: ``row_labels[i]``, else the 0-based row plus ``row_offset``."""

    def lines(rows: np.ndarray) -> list[object]:
        if row_labels is not None:
            return [row_labels[int(r)] for r in rows]
        return _line_numbers(rows, row_offset)

    return lines


def _value_layers(
    cols: dict[str, _Column], roles: dict, pivot: Pivot, *, file, lines, decimal
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Coerce the value column to ``X`` and the LOD column to the ``lod`` layer (floats);
    warn when no value is a number."""
    X = pivot.scatter(
        _numeric(cols[roles["value"]], file=file, lines=lines, decimal=decimal),
        np.nan,
        np.float64,
    )
    if not np.isfinite(X).any():
        warn(
            f"{file or 'long table'}: column {roles['value']!r} holds no numeric value at all "
            "(every value is missing); check that this is the right column and file"
        )
    if roles["lod"] is not None:
        lod = pivot.scatter(
            _numeric(cols[roles["lod"]], file=file, lines=lines, decimal=decimal),
            np.nan,
            np.float64,
        )
    else:
        lod = np.full(X.shape, np.nan)
    return X, {"lod": lod}


def _panel_frames(
    plate: np.ndarray, qc: np.ndarray, panels: np.ndarray, index: pd.Index
) -> dict[str, pd.DataFrame]:
    """``obsm``: the PlateID and QC_Warning of each obs row (``index``) on each panel."""
    names = [str(p) for p in panels]
    obsm = {
        "PlateID": pd.DataFrame(plate.astype(str), columns=names),
        "QC_Warning": pd.DataFrame(qc.astype(str), columns=names),
    }
    for m in obsm.values():
        m.index = index
    return obsm


def _annotate(
    adata: ad.AnnData,
    *,
    file: str | None,
    data_format: str,
    product: str,
    metadata: dict[str, str] | None,
    columns: list[str],
    roles: dict[str, str | None],
    dtypes: dict[str, str],
    coded: dict[str, np.ndarray],
    row_order: str,
    dropped_ids: list[str],
) -> None:
    """Record the provenance, compact the LOD layer and record dropped duplicate rows."""
    prov = provenance(adata)
    prov.update(
        {
            "source": [str(file)] if file else [],
            "format": data_format,
            "product": product,
            "data_type": VALUE_ALIASES.get(roles["value"], "NPX"),
            "reader_version": _reader_version(),
            "metadata": {str(k): str(v) for k, v in (metadata or {}).items()},
            "long_columns": list(columns),
            "columns": {k: v for k, v in roles.items() if v is not None},
            "dtypes": dtypes,
            "coded_layers": coded,
            "row_order": row_order,
        }
    )
    compact_lod(adata)  # LOD constant per assay and plate: an assays × plates table
    if dropped_ids:
        record_exclusion(
            adata,
            step="read_npx",
            kind="measurement",
            ids=dropped_ids,
            reason="exact duplicate row (same SampleID, OlinkID, PlateID and values)",
            warn_user=False,
        )


def build_var(
    var_cols: dict[str, Any],
    roles: dict[str, str | None],
    assay_ids: np.ndarray,
    panels: np.ndarray,
    dtypes: dict[str, str],
) -> pd.DataFrame:
    """``var`` from the assay-level columns (one value per assay, in ``assay_ids`` order):
    ``Assay``, ``UniProt``, ``Panel`` (one per assay), the file's other assay columns under
    their own names and dtypes, ``AssayType`` and ``is_control``. Pops the role columns
    from ``var_cols``."""
    n_assay = len(assay_ids)
    var_index = pd.Index(assay_ids.astype(str), name=None)
    vcols: dict[str, Any] = {
        "Assay": var_cols.pop(roles["assay"]) if roles["assay"] else assay_ids.astype(str)
    }
    if roles["uniprot"] and roles["uniprot"] in var_cols:
        vcols["UniProt"] = var_cols.pop(roles["uniprot"])
    else:
        vcols["UniProt"] = np.full(n_assay, "", dtype=object)
    vcols["Panel"] = np.asarray(panels).astype(str)
    if roles["panel"]:
        var_cols.pop(roles["panel"], None)
    for c, v in var_cols.items():
        vcols[c] = _as_series(v, dtypes[c], var_index)
    if "AssayType" in var_cols:
        at = pd.Series(vcols["AssayType"], dtype=object)
        vcols["AssayType"] = at.where(at.notna(), "assay").astype(str).to_numpy()
    else:
        vcols["AssayType"] = np.asarray(
            [assay_type_from_name(a) for a in vcols["Assay"]], dtype=object
        )
    vcols["is_control"] = pd.Series(vcols["AssayType"]).astype(str).str.lower().to_numpy() != (
        "assay"
    )
    var = pd.DataFrame(vcols, index=var_index)
    var.index.name = None
    return var


def _as_series(values: np.ndarray, dtype: str, index: pd.Index) -> np.ndarray:
    if values.dtype == object:
        return np.where(pd.isna(values), np.nan, values).astype(object)
    if dtype[:3] in ("int", "uin") and values.dtype.kind == "f" and not np.isnan(values).any():
        return values.astype(dtype)
    if dtype == "bool" and values.dtype.kind == "f" and not np.isnan(values).any():
        return values.astype(bool)
    return values


def _join_rows(mat: np.ndarray, keep: np.ndarray, empty: str) -> np.ndarray:
    """Per row, the distinct kept values joined with ";" (``empty`` when none); the work is
    done once per distinct row pattern."""
    codes, uniques = pd.factorize(pd.Series(mat.ravel(), dtype=object).astype(str))
    codes = np.where(keep.ravel(), codes, -1).reshape(mat.shape)
    patterns, inverse = np.unique(codes, axis=0, return_inverse=True)
    joined = [
        ";".join(dict.fromkeys(str(uniques[c]) for c in row if c >= 0)) or empty
        for row in patterns
    ]
    return np.asarray(joined, dtype=object)[np.asarray(inverse).ravel()]


def _make_unique(index: np.ndarray) -> np.ndarray:
    seen: dict[str, int] = {}
    out = []
    for name in index:
        k = seen.get(name, 0)
        out.append(name if k == 0 else f"{name}#{k}")
        seen[name] = k + 1
    return np.asarray(out, dtype=object)
