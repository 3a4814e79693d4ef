"""Long (tidy) Olink data <-> AnnData.

:func:`from_long` is the one builder every reader feeds: it turns a long table (one row per
sample × assay measurement, Olink's column names) into the AnnData of ``docs/data_model.md``
with integer codes and numpy scatter (no ``pivot_table``). :func:`to_long` goes back, so
that ``to_long(read_npx(f))`` returns the rows and values of ``f``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NamedTuple

import anndata as ad
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from .._layout import code_dtype, compact_lod, has_lod, lod_matrix
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
from ._util import warn_user as warn

__all__ = ["to_long", "from_long"]

# Column roles and the names Olink exports use for them, in order of preference.
SAMPLE_ALIASES = ("SampleID", "Sample_ID", "Sample ID")
OLINKID_ALIASES = ("OlinkID", "Olink_ID", "Olink ID")
VALUE_ALIASES = {
    "NPX": "NPX",
    "Quantified_value": "Quantified",
    "Quantified value": "Quantified",
    "PCNormalizedNPX": "NPX",
    "Ct": "Ct",
}
LOD_ALIASES = ("LOD", "PlateLOD", "Plate_LOD", "MaxLOD", "LODNPX", "Max LOD", "Plate LOD")
PLATE_ALIASES = ("PlateID", "Plate_ID", "Plate ID")
QC_ALIASES = ("QC_Warning", "SampleQC", "QC Warning", "Sample_QC")
PANEL_ALIASES = ("Panel",)

# Columns that belong to the assay whenever they are constant per OlinkID.
ASSAY_LEVEL = {
    "Assay",
    "UniProt",
    "Panel",
    "Panel_Version",
    "Panel_Lot_Nr",
    "MissingFreq",
    "Normalization",
    "Assay_Warning",
    "AssayQC",
    "AssayType",
    "Block",
    "Unit",
}
# Per-measurement columns: always layers, even when a tiny file makes them look constant.
MEASUREMENT_LEVEL = {
    "NPX",
    "Quantified_value",
    "PCNormalizedNPX",
    "ExtNPX",
    "Count",
    "Ct",
    "LOD",
    "PlateLOD",
    "Plate_LOD",
    "MaxLOD",
    "LODNPX",
}
SAMPLE_TYPES = {"SAMPLE", "SAMPLE_CONTROL", "PLATE_CONTROL", "NEGATIVE_CONTROL", "CONTROL"}


def _reader_version() -> str:
    try:
        return version("olinkpipe")
    except PackageNotFoundError:  # pragma: no cover
        return "0.0.0+unknown"


def _find(columns: Sequence[str], aliases: Sequence[str]) -> str | None:
    """First alias present in ``columns``; case/space/underscore-insensitive fallback."""
    for a in aliases:
        if a in columns:
            return a
    norm = {re.sub(r"[\s_]", "", c).lower(): c for c in columns}
    for a in aliases:
        hit = norm.get(re.sub(r"[\s_]", "", a).lower())
        if hit is not None:
            return hit
    return None


def resolve_roles(columns: Sequence[str]) -> dict[str, str | None]:
    """Map the roles ``sample, olinkid, value, lod, plate, qc, panel`` to column names."""
    value = None
    for a in VALUE_ALIASES:
        if a in columns:
            value = a
            break
    if value is None:
        value = _find(columns, tuple(VALUE_ALIASES))
    return {
        "sample": _find(columns, SAMPLE_ALIASES),
        "olinkid": _find(columns, OLINKID_ALIASES),
        "value": value,
        "lod": _find(columns, LOD_ALIASES),
        "plate": _find(columns, PLATE_ALIASES),
        "qc": _find(columns, QC_ALIASES),
        "panel": _find(columns, PANEL_ALIASES),
        "assay": _find(columns, ("Assay",)),
        "uniprot": _find(columns, ("UniProt", "Uniprot", "Uniprot ID", "UniProt_ID")),
    }


class _Column:
    """One column of the long table as integer codes (strings) or a numpy array (numbers)."""

    def __init__(self, name: str, arr: pa.ChunkedArray, file: str | None = None):
        self.name = name
        self.file = file
        self.type = arr.type
        self._arr = arr
        self._codes: np.ndarray | None = None
        self._uniques: np.ndarray | None = None
        self._values: np.ndarray | None = None

    @property
    def is_numeric(self) -> bool:
        t = self.type
        return (
            pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_boolean(t)
            or pa.types.is_null(t)
        )

    @property
    def pandas_dtype(self) -> str:
        t = self.type
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            return np.dtype(t.to_pandas_dtype()).name
        if pa.types.is_boolean(t):
            return "bool"
        if pa.types.is_null(t):
            return "float64"
        return "object"

    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, uniques)``: int32 codes (-1 = null), uniques as an object array of str."""
        if self._codes is None:
            arr = self._arr
            if not pa.types.is_dictionary(arr.type):
                if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
                    arr = pc.cast(arr, pa.string())
                arr = pc.dictionary_encode(arr)
            if arr.num_chunks == 0:
                self._codes = np.zeros(0, dtype=np.int64)
                self._uniques = np.array([], dtype=object)
            else:
                arr = pa.chunked_array(arr.chunks, type=arr.type).unify_dictionaries()
                dictionary = arr.chunks[0].dictionary
                if not (
                    pa.types.is_string(dictionary.type)
                    or pa.types.is_large_string(dictionary.type)
                ):
                    dictionary = pc.cast(dictionary, pa.string())
                parts = [
                    (
                        c.indices.to_numpy()
                        if c.null_count == 0
                        else pc.fill_null(c.indices, -1).to_numpy(zero_copy_only=False)
                    )
                    for c in arr.chunks
                ]
                self._codes = (
                    np.concatenate(parts).astype(np.int32, copy=False)
                    if parts
                    else np.zeros(0, dtype=np.int32)
                )
                try:
                    self._uniques = np.asarray(dictionary.to_pylist(), dtype=object)
                except UnicodeDecodeError as err:  # parquet pages are not validated on read
                    msg = format_message(
                        f"text that is not UTF-8 ({err}); the file is damaged",
                        file=self.file,
                        column=self.name,
                        hint="Export or download the file again.",
                    )
                    raise NPXFormatError(msg) from err
                # a dictionary column (pandas categorical in parquet) may list values no row
                # uses, e.g. a subset saved with pandas: keep only the used ones
                out_of_range = np.flatnonzero(self._codes >= len(self._uniques))
                if out_of_range.size:  # a damaged parquet page
                    msg = format_message(
                        f"damaged dictionary-encoded column: {out_of_range.size} value(s) point "
                        f"past its {len(self._uniques)} distinct values",
                        file=self.file,
                        column=self.name,
                        rows=(out_of_range[:5] + 1).tolist(),
                        hint="Export or download the file again.",
                    )
                    raise NPXFormatError(msg)
                used = np.zeros(len(self._uniques), dtype=bool)
                used[self._codes[self._codes >= 0]] = True
                if not used.all():
                    remap = (np.cumsum(used) - 1).astype(np.int32)
                    self._codes = np.where(self._codes >= 0, remap[self._codes], -1).astype(
                        np.int32
                    )
                    self._uniques = self._uniques[used]
        return self._codes, self._uniques

    def values(self) -> np.ndarray:
        """Numeric values as float64 (NaN = null); only for numeric columns."""
        if self._values is None:
            arr = pc.cast(self._arr, pa.float64())
            self._values = (
                arr.combine_chunks().to_numpy(zero_copy_only=False)
                if arr.num_chunks
                else np.zeros(0, dtype=np.float64)
            )
        return self._values

    def release(self) -> None:
        self._arr = None  # type: ignore[assignment]


class _Groups:
    """Row -> group codes with cached run structure for fast "constant within group" checks.

    Olink long files are sorted (assay-major), so most rows continue the previous row's
    group; only run starts need the scatter/gather.
    """

    def __init__(self, codes: np.ndarray, n_groups: int):
        self.codes = codes
        self.n = n_groups
        cont = codes[1:] == codes[:-1]
        n_runs = int(len(codes) - cont.sum()) if len(codes) else 0
        self.runs = n_runs < len(codes) // 4
        if self.runs:
            self.cont = cont
            self.starts = np.concatenate([[0], np.flatnonzero(~cont) + 1])

    def constant(self, key: np.ndarray) -> tuple[bool, np.ndarray]:
        """Is ``key`` constant within each group? Returns ``(ok, value per group)``.

        A group with no rows (a sample not run on a panel) gets NaN for float keys, -1
        (= null for integer codes) for signed integers, else 0: never uninitialised memory.
        """
        if key.dtype.kind == "f":
            first = np.full(self.n, np.nan, dtype=key.dtype)
        elif key.dtype.kind == "i":
            first = np.full(self.n, -1, dtype=key.dtype)
        else:
            first = np.zeros(self.n, dtype=key.dtype)
        if len(key) == 0:
            return True, first
        floaty = key.dtype.kind == "f"
        if self.runs:
            a, b = key[1:], key[:-1]
            same = (a == b) | (np.isnan(a) & np.isnan(b)) if floaty else a == b
            if not np.all(same | ~self.cont):
                # not constant: each group's value in its first row, so that callers can
                # name the rows that differ from it (not every row of every group)
                first[self.codes[::-1]] = key[::-1]
                return False, first
            g, k = self.codes[self.starts], key[self.starts]
        else:
            g, k = self.codes, key
        first[g[::-1]] = k[::-1]  # the first row's value where a group is not constant
        back = first[g]
        same = (back == k) | (np.isnan(back) & np.isnan(k)) if floaty else back == k
        return bool(same.all()), first


def _constant_within(group: np.ndarray, n_groups: int, key: np.ndarray) -> tuple[bool, np.ndarray]:
    """Is ``key`` constant within each group? Returns ``(ok, value per group)``."""
    return _Groups(group, n_groups).constant(key)


def _first_rows(codes: np.ndarray, n: int) -> np.ndarray:
    """Row number of the first occurrence of each code 0..n-1."""
    first = np.full(n, -1, dtype=np.int64)
    rows = np.arange(len(codes), dtype=np.int64)
    first[codes[::-1]] = rows[::-1]
    return first


def _combine(a: np.ndarray, n: int, b: np.ndarray) -> np.ndarray:
    """``a * n + b`` in int32 when it cannot overflow, else int64."""
    top = (int(a.max()) + 1) * n if len(a) else 0
    dtype = np.int32 if top < np.iinfo(np.int32).max else np.int64
    return a.astype(dtype, copy=False) * dtype(n) + b.astype(dtype, copy=False)


def _factorize(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(key, sort=False)
    return codes.astype(np.int64, copy=False), np.asarray(uniques)


def assay_type_from_name(name: object) -> str:
    """Olink control-assay class from an assay name (``"assay"`` for real assays).

    Control assays are named like ``Inc Ctrl 1``, ``Incubation control``, ``Ext Ctrl``,
    ``Amp Ctrl``, ``Det Ctrl``: a control word after a qualifier. A lone gene symbol such
    as ``CTRL`` (chymotrypsin-like protease) is an assay.
    """
    tokens = [t for t in re.split(r"[\s_\-]+", str(name).strip().lower()) if t]
    is_ctrl = len(tokens) >= 2 and any(t.startswith(("ctrl", "control")) for t in tokens[1:])
    if not is_ctrl:
        return "assay"
    first = tokens[0]
    for prefix, kind in (
        ("inc", "inc_ctrl"),
        ("ext", "ext_ctrl"),
        ("amp", "amp_ctrl"),
        ("det", "det_ctrl"),
    ):
        if first.startswith(prefix):
            return kind
    return "control"


def sample_type_from_name(name: object) -> str:
    """``"CONTROL"`` for control-looking sample names, else ``"SAMPLE"``."""
    s = str(name).upper()
    if "CONTROL" in s or "CTRL" in s or s.startswith(("IPC", "NEG_", "NEGATIVE", "NC_", "PC_")):
        return "CONTROL"
    return "SAMPLE"


def _to_table(data: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        frame = data.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
        cols = {}
        for c in frame.columns:
            s = frame[c]
            if s.dtype == object or isinstance(s.dtype, pd.CategoricalDtype | pd.StringDtype):
                vals = s.astype(object).where(s.notna(), None)
                try:
                    cols[c] = pa.array(vals.tolist(), from_pandas=True)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    cols[c] = pa.array(
                        [None if v is None else str(v) for v in vals.tolist()], type=pa.string()
                    )
            else:
                cols[c] = pa.array(s, from_pandas=True)
        return pa.table(cols)
    msg = f"from_long needs a pandas DataFrame or a pyarrow Table, not {type(data).__name__}."
    raise NPXFormatError(msg)


def _flat_text(table: pa.Table, *, file: str | None, lines: Any) -> pa.Table:
    """Refuse nested columns; binary columns become text when they are UTF-8, else an error
    naming the column and rows (a parquet column of raw bytes, a file's damaged bytes)."""
    nested = [f.name for f in table.schema if pa.types.is_nested(f.type)]
    if nested:
        kinds = sorted({str(table.schema.field(c).type).split("<")[0] for c in nested})
        msg = format_message(
            f"column(s) {preview(nested)} hold nested values ({', '.join(kinds)}), which an "
            "Olink export never has",
            file=file,
            hint="Flatten these columns (one value per cell) or drop them before reading.",
        )
        raise NPXFormatError(msg)
    for i, f in enumerate(table.schema):
        t = f.type
        if not (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
            if not pa.types.is_fixed_size_binary(t):
                continue
        try:
            text = pc.cast(table.column(i), pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            bad = [
                k
                for k, v in enumerate(table.column(i).to_pylist())
                if v is not None and not _is_utf8(v)
            ]
            msg = format_message(
                f"bytes that are not UTF-8 text ({err})",
                file=file,
                column=f.name,
                rows=lines(np.asarray(bad[:5])) if bad else None,
                hint="Save the file as UTF-8, or export it again.",
            )
            raise NPXFormatError(msg) from err
        table = table.set_column(i, f.name, text)
    return table


def _is_utf8(v: bytes) -> bool:
    try:
        v.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _line_numbers(rows: np.ndarray, offset: int) -> list[int]:
    return [int(r) + offset for r in rows]


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


class _Ids(NamedTuple):
    """Codes and unique values of the key columns, one code per row (:func:`_identifiers`)."""

    s_codes: np.ndarray
    s_uni: np.ndarray
    a_codes: np.ndarray
    a_uni: np.ndarray
    p_codes: np.ndarray
    p_uni: np.ndarray
    q_codes: np.ndarray
    q_uni: np.ndarray
    assay_panel: np.ndarray
    a_groups: _Groups


def _identifiers(
    cols: dict[str, _Column], roles: dict[str, str | None], n: int, *, file, lines, where: str
) -> _Ids:
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
    n_assay = len(a_uni)
    for col, uni in ((scol, s_uni), (acol, a_uni)):
        # IDs are kept as written, so "S1" and "S1 " are two samples: say so
        stripped = pd.Series([str(u).strip() for u in uni], dtype=object)
        clash = stripped.duplicated(keep=False).to_numpy()
        if clash.any():
            shown = sorted({repr(str(u)) for u in uni[clash]})
            warn(
                f"{where}: column {col!r}: {clash.sum()} IDs differ only by leading/trailing "
                f"spaces and are kept apart: {', '.join(shown[:6])}; strip them in the file "
                "if they are the same"
            )

    if roles["panel"] is not None:
        p_codes, p_uni = cols[roles["panel"]].codes()
        if (p_codes < 0).any():
            p_uni = np.append(p_uni, "unknown").astype(object)
            p_codes = np.where(p_codes < 0, len(p_uni) - 1, p_codes)
    else:
        p_codes, p_uni = np.zeros(n, dtype=np.int64), np.array(["unknown"], dtype=object)
    a_groups = _Groups(a_codes, n_assay)
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
        as_codes, as_uni = cols[roles["assay"]].codes()
        ok, assay_name = a_groups.constant(as_codes)
        if not ok:
            bad_ids = np.unique(a_codes[assay_name[a_codes] != as_codes])
            in_bad = np.isin(a_codes, bad_ids)
            # name the rows that disagree with the OlinkID's most common Assay name
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
                column=roles["assay"],
                rows=lines(bad),
                hint="Each OlinkID must name one assay; correct the Assay column or the OlinkIDs.",
            )
            raise NPXFormatError(msg)

    if roles["plate"] is not None:
        q_codes, q_uni = cols[roles["plate"]].codes()
        if (q_codes < 0).any():
            q_uni = np.append(q_uni, "").astype(object)
            q_codes = np.where(q_codes < 0, len(q_uni) - 1, q_codes)
    else:
        q_codes, q_uni = np.zeros(n, dtype=np.int64), np.array([""], dtype=object)
    return _Ids(
        s_codes, s_uni, a_codes, a_uni, p_codes, p_uni, q_codes, q_uni, assay_panel, a_groups
    )


def _obs_rows(ids: _Ids, *, ordered: bool, duplicates: str, file, scol: str) -> tuple:
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
    table: pa.Table, ids: _Ids, o_codes: np.ndarray, n_obs: int, *, file, lines, where: str, scol
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
    if row_offset is None:
        row_offset = 2 if file else 0

    def lines(rows: np.ndarray) -> list[object]:
        if row_labels is not None:
            return [row_labels[int(r)] for r in rows]
        return _line_numbers(rows, row_offset)

    table = _to_table(data)
    where = file or "long table"
    columns, roles = _columns(table, file=file)
    n = table.num_rows
    table = _flat_text(table, file=file, lines=lines)
    cols = {c: _Column(c, table.column(c), file) for c in columns}
    scol, acol, vcol = roles["sample"], roles["olinkid"], roles["value"]
    if vcol == "PCNormalizedNPX":
        warn(
            f"{where}: no NPX column; X holds column 'PCNormalizedNPX' (Explore's plate-control "
            "normalized NPX), recorded as provenance columns['value']"
        )

    ids = _identifiers(cols, roles, n, file=file, lines=lines, where=where)
    s_uni, a_codes, a_uni = ids.s_uni, ids.a_codes, ids.a_uni
    p_codes, p_uni, q_codes, q_uni = ids.p_codes, ids.p_uni, ids.q_codes, ids.q_uni
    n_assay, assay_panel, a_groups = len(a_uni), ids.assay_panel, ids.a_groups
    n_panel = len(p_uni)
    o_codes, o_uni, o_sample, dup_sample_codes = _obs_rows(
        ids, ordered=isinstance(data, pa.Table), duplicates=duplicates, file=file, scol=scol
    )
    n_obs = len(o_uni)

    cell, measured, keep_rows, dropped_ids = _cells(
        table, ids, o_codes, n_obs, file=file, lines=lines, where=where, scol=scol
    )
    if keep_rows is not None:
        rows_o = o_codes[keep_rows]
        flat = cell[keep_rows]
    else:
        rows_o = o_codes
        flat = cell

    def scatter(values: np.ndarray, fill: Any, dtype: Any, *, kept: bool = False) -> np.ndarray:
        """Rows to the matrix; ``kept``: ``values`` already hold only the kept rows."""
        out = np.full(n_obs * n_assay, fill, dtype=dtype)
        out[flat] = values if keep_rows is None or kept else values[keep_rows]
        return out.reshape(n_obs, n_assay)

    # rows grouped by sample (Explore) or by assay (Target 96)? to_long writes them back so
    if len(flat) > 1:
        sample_changes = int(np.count_nonzero(rows_o[1:] != rows_o[:-1]))
        rows_a = a_codes if keep_rows is None else a_codes[keep_rows]
        assay_changes = int(np.count_nonzero(rows_a[1:] != rows_a[:-1]))
        row_order = "sample" if sample_changes < assay_changes else "assay"
    else:
        row_order = "assay"

    # --- values -----------------------------------------------------------------------------
    special = {scol, acol, vcol, roles["lod"], roles["plate"], roles["qc"]} - {None}
    assay_level = ASSAY_LEVEL | {roles[k] for k in ("assay", "uniprot", "panel") if roles[k]}
    dtypes = {c: cols[c].pandas_dtype for c in columns}
    X = scatter(_numeric(cols[vcol], file=file, lines=lines, decimal=decimal), np.nan, np.float64)
    if not np.isfinite(X).any():
        warn(
            f"{where}: column {vcol!r} holds no numeric value at all (every value is missing); "
            "check that this is the right column and file"
        )
    layers: dict[str, np.ndarray] = {}
    if roles["lod"] is not None:
        layers["lod"] = scatter(
            _numeric(cols[roles["lod"]], file=file, lines=lines, decimal=decimal),
            np.nan,
            np.float64,
        )
    else:
        layers["lod"] = np.full(X.shape, np.nan)

    # --- per (obs, panel): PlateID and QC_Warning --------------------------------------
    op_idx = _combine(rows_o, n_panel, p_codes if keep_rows is None else p_codes[keep_rows])
    panel_names = [str(p) for p in p_uni]
    on_panel = np.zeros(n_obs * n_panel, dtype=bool)
    on_panel[op_idx] = True
    plate_code = np.full(n_obs * n_panel, len(q_uni), dtype=np.int64)
    plate_code[op_idx] = q_codes if keep_rows is None else q_codes[keep_rows]
    plate_mat = np.append(q_uni, "").astype(object)[plate_code].reshape(n_obs, n_panel)
    del plate_code
    obsm: dict[str, pd.DataFrame] = {}
    coded: dict[str, np.ndarray] = {}
    var_cols: dict[str, np.ndarray] = {}
    obs_cols: dict[str, np.ndarray] = {}

    qc_mat = np.full(n_obs * n_panel, "", dtype=object)
    qc_layer_col: str | None = None
    if roles["qc"] is not None:
        qcodes, quni = cols[roles["qc"]].codes()
        quni_ext = np.append(quni, None).astype(object)
        qk = qcodes if keep_rows is None else qcodes[keep_rows]
        ok, per_op = _Groups(op_idx, n_obs * n_panel).constant(qk)
        if ok:
            vals = quni_ext[per_op]
            vals = np.where(pd.isna(vals), "", vals)
            qc_mat = np.where(on_panel, vals, "").astype(object)
        else:
            qc_layer_col = roles["qc"]
    qc_mat = qc_mat.reshape(n_obs, n_panel)
    obsm["PlateID"] = pd.DataFrame(plate_mat.astype(str), columns=panel_names)
    obsm["QC_Warning"] = pd.DataFrame(qc_mat.astype(str), columns=panel_names)

    # --- every other column -----------------------------------------------------------------
    obs_group = o_codes if keep_rows is None else o_codes[keep_rows]
    a_group = a_codes if keep_rows is None else a_codes[keep_rows]
    group_cache: dict[str, _Groups] = {}
    if keep_rows is None:
        group_cache["var"] = a_groups
    for c in columns:
        if c in special and c != qc_layer_col:
            continue
        col = cols[c]
        if col.is_numeric:
            key = col.values()
            key = key if keep_rows is None else key[keep_rows]
            uniques = None
        else:
            key, uniques = col.codes()
            key = key if keep_rows is None else key[keep_rows]
        placed = False
        if c not in MEASUREMENT_LEVEL and c != qc_layer_col:
            order = ("var", "obs") if c in assay_level else ("obs", "var")
            for slot in order:
                if slot not in group_cache:
                    group, n_groups = (obs_group, n_obs) if slot == "obs" else (a_group, n_assay)
                    group_cache[slot] = _Groups(group, n_groups)
                ok, per = group_cache[slot].constant(key)
                if ok:
                    if uniques is not None:
                        per = np.append(uniques, None).astype(object)[per]
                    (obs_cols if slot == "obs" else var_cols)[c] = per
                    placed = True
                    break
        if placed:
            continue
        if uniques is None:
            layers[c] = scatter(key, np.nan, np.float64, kept=True)
        else:
            dt = code_dtype(len(uniques))  # int8 when the categories fit
            layers[c] = scatter(key.astype(dt), -1, dt, kept=True)
            coded[c] = np.asarray([str(u) for u in uniques], dtype=object)
        col.release()

    qc_cell_flag = None
    if qc_layer_col is not None:  # QC varies within a sample's panel: per-cell flags
        codes_mat = layers[qc_layer_col]
        cats = coded[qc_layer_col]
        cat_pass = _is_pass(cats)
        qc_cell_flag = np.zeros(codes_mat.shape, dtype=bool)
        valid = codes_mat >= 0
        qc_cell_flag[valid] = ~cat_pass[codes_mat[valid]]
        any_flag = np.zeros((n_obs, n_panel), dtype=bool)
        for k in range(n_panel):
            any_flag[:, k] = qc_cell_flag[:, assay_panel == k].any(axis=1)
        bad_labels = [str(c) for c, ok in zip(cats, cat_pass, strict=True) if not ok]
        good_labels = [str(c) for c, ok in zip(cats, cat_pass, strict=True) if ok and str(c)]
        qc_mat = np.where(
            any_flag,
            bad_labels[0] if bad_labels else "WARN",
            good_labels[0] if good_labels else "PASS",
        )
        qc_mat = np.where(on_panel.reshape(n_obs, n_panel), qc_mat, "").astype(object)
        obsm["QC_Warning"] = pd.DataFrame(qc_mat.astype(str), columns=panel_names)

    obs = _build_obs(
        s_uni, o_sample, dup_sample_codes, plate_mat, qc_mat, obs_cols, dtypes, where=where
    )
    for m in obsm.values():
        m.index = obs.index

    # --- var ----------------------------------------------------------------------------------
    var = build_var(var_cols, roles, a_uni, p_uni[assay_panel], dtypes)

    # --- measured cells and QC layers --------------------------------------------------
    measured = measured.reshape(n_obs, n_assay)
    default_present = _present_from_plates(plate_mat)[:, assay_panel]
    if not np.array_equal(measured, default_present):
        layers["measured"] = measured
    del qc_cell_flag  # qc_warning and below_lod are computed on demand (olinkpipe._layout)

    adata = ad.AnnData(X=X, obs=obs, var=var, layers=layers, obsm=obsm)
    data_type = VALUE_ALIASES.get(vcol, "NPX")
    prov = provenance(adata)
    prov.update(
        {
            "source": [str(file)] if file else [],
            "format": data_format,
            "product": product or guess_product(columns, var, metadata),
            "data_type": data_type,
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
    return adata


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


def _numeric(
    col: _Column,
    *,
    file: str | None,
    lines: Any = None,
    decimal: str | None = None,
) -> np.ndarray:
    """A value column as float64; text markers (``> ULOQ``, ``No Data``, ...) become NaN.

    ``lines`` turns 0-based row positions into the row names used in messages.
    """
    if lines is None:

        def lines(rows: np.ndarray) -> list[int]:
            return _line_numbers(rows, 2 if file else 0)

    if pa.types.is_boolean(col.type):
        msg = format_message(
            "true/false values where numbers are expected",
            file=file,
            column=col.name,
            rows=lines(np.arange(min(len(col._arr), 5))),
            hint="This column holds TRUE/FALSE, not measurements; check the column names.",
        )
        raise NPXFormatError(msg)
    if col.is_numeric:
        out = col.values()
        markers = 0
        marker_u: list[int] = []
        codes = None
    else:
        codes, uniques = col.codes()
        parsed = np.full(len(uniques), np.nan)
        bad_u, ambiguous_u, marker_u = [], [], []
        for k, u in enumerate(uniques):
            value, ok, is_marker = parse_number(u, decimal=decimal)
            parsed[k] = value
            if is_marker:
                marker_u.append(k)
            if not ok:
                (ambiguous_u if _ambiguous(u, decimal) else bad_u).append(k)
        for bad, problem, hint in (
            (
                bad_u,
                "non-numeric value(s)",
                "Values must be numbers (decimal point or comma), empty, NA or an Olink "
                "marker such as '> ULOQ' / '< LLOQ' / 'No Data'; fix or remove these rows.",
            ),
            (
                ambiguous_u,
                f"value(s) that are ambiguous in a file with decimal mark {decimal!r} (a "
                "thousands separator or a decimal mark of the other convention?)",
                "Export the file again with one decimal mark and no thousands separators, "
                "or fix these values.",
            ),
        ):
            if bad:
                bad_rows = np.flatnonzero(np.isin(codes, bad))
                examples = [str(uniques[k]) for k in bad[:5]]
                msg = format_message(
                    f"{problem} {preview(examples)}",
                    file=file,
                    column=col.name,
                    rows=lines(bad_rows),
                    hint=hint,
                )
                raise NPXFormatError(msg)
        out = (
            np.where(codes >= 0, parsed[np.maximum(codes, 0)], np.nan)
            if len(uniques)
            else np.full(len(codes), np.nan)
        )
        markers = len(marker_u)
    infinite = np.flatnonzero(np.isinf(out))
    if infinite.size:
        msg = format_message(
            "infinite value(s) (Inf / -Inf) are not valid measurements",
            file=file,
            column=col.name,
            rows=lines(infinite),
            hint="Replace them with NA (not measured) or the measured value.",
        )
        raise NPXFormatError(msg)
    if markers:
        n_marked = int(np.isin(codes, marker_u).sum())
        warn(
            f"{file or 'long table'}: column {col.name!r}: {n_marked} value(s) were text "
            f"markers ({preview([str(uniques[k]).strip() for k in marker_u])}: Olink's "
            "'> ULOQ', '< LLOQ', 'No Data', '#' or Excel errors such as '#N/A') and are read "
            "as NaN"
        )
    return out


# numbers as NPX Manager, Explore and R write them: ASCII digits, a decimal point, an
# exponent, Inf/NaN (Python's float() would also take 1_000, Arabic-Indic digits, "infinity")
_NUMBER = re.compile(r"^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$|^[-+]?(inf|nan)$", re.I)
_MARKER = re.compile(
    r"^\s*(>\s*ULOQ|<\s*LLOQ|<\s*LOD|>\s*LOD|No\s*Data|NA|N/A|NaN|-|#+|"
    r"#N/A|#DIV/0!|#VALUE!|#REF!|#NUM!|#NAME\?|#NULL!|)\s*$",  # Excel's error values
    re.I,
)
# thousands separators: both marks present (the last one is the decimal mark), or a mark
# repeated between groups of three digits
_GROUPED = {
    ",": re.compile(r"^[-+]?[1-9][0-9]{0,2}(\.[0-9]{3})+(,[0-9]*)?$"),  # 1.234,5  12.345.678
    ".": re.compile(r"^[-+]?[1-9][0-9]{0,2}(,[0-9]{3})+(\.[0-9]*)?$"),  # 1,234.5  12,345,678
}
_ONE_GROUP = {
    ",": re.compile(r"^[-+]?[1-9][0-9]{0,2}\.[0-9]{3}$"),  # 1.234: 1234 or 1.234?
    ".": re.compile(r"^[-+]?[1-9][0-9]{0,2},[0-9]{3}$"),  # 1,234: 1234 or 1.234?
}


def _ambiguous(value: object, decimal: str | None) -> bool:
    """A single thousands-like group (``1.234`` with decimal comma) where it is ambiguous."""
    return decimal in _ONE_GROUP and bool(_ONE_GROUP[decimal].match(str(value).strip()))


def parse_number(value: object, *, decimal: str | None = None) -> tuple[float, bool, bool]:
    """``(number, ok, is_marker)`` for one cell of an Olink export.

    Accepts numbers, numeric text with a decimal point or comma, thousands separators
    where they are unambiguous (``1.234,5``, ``12,345,678``), and Olink's text markers
    (``> ULOQ``, ``< LLOQ``, ``No Data``, ``#``), which are NaN. With ``decimal`` (the
    file's decimal mark) a single group such as ``1.234`` in a decimal-comma file is
    ambiguous (``ok`` False) rather than guessed.

    Examples
    --------
    >>> parse_number("1,5"), parse_number("1.234,5"), parse_number("> ULOQ")[1:]
    ((1.5, True, False), (1234.5, True, False), (True, True))
    >>> parse_number("1.234", decimal=",")[1]
    False
    """
    if value is None:
        return np.nan, True, False
    if isinstance(value, bool | np.bool_):  # TRUE/FALSE is not a measurement
        return np.nan, False, False
    if isinstance(value, int | float | np.integer | np.floating):
        return float(value), True, False
    s = str(value).strip()
    if s == "" or s.upper() in {"NA", "NAN", "N/A", "NULL"}:
        return np.nan, True, False
    if _ambiguous(s, decimal):
        return np.nan, False, False
    for dec, pattern in _GROUPED.items():
        if ("," in s and "." in s or s.count("." if dec == "," else ",") > 1) and pattern.match(s):
            thousands = "." if dec == "," else ","
            return float(s.replace(thousands, "").replace(",", ".")), True, False
    if _NUMBER.match(s):
        return float(s), True, False
    t = s.replace(",", ".") if s.count(",") == 1 and "." not in s else s
    t = t.rstrip("#").strip() if t.endswith("#") and len(t) > 1 else t
    if _NUMBER.match(t):
        return float(t), True, False
    if _MARKER.match(s):
        return np.nan, True, True
    return np.nan, False, False


def guess_product(
    columns: Sequence[str], var: pd.DataFrame | None, metadata: dict[str, str] | None
) -> str:
    """Best guess at the Olink product from metadata, columns and panel names.

    As OlinkAnalyze: the parquet metadata ``Product`` (``ExploreHT``, ``Explore3072``,
    ``Reveal``) when present, else the panels (every assay on panel ``Reveal`` → Reveal,
    ``Explore_HT`` → Explore HT), else the columns.
    """
    meta = {str(k).lower(): str(v) for k, v in (metadata or {}).items()}
    prod = meta.get("product", "")
    if prod:
        p = prod.replace(" ", "").replace("_", "").lower().removeprefix("olink")
        if p == "explorehtht" or p == "exploreht":
            return "Explore HT"
        if p == "reveal":
            return "Reveal"
        if p.startswith("explore"):
            return "Explore 3072"
        return prod
    cols = set(columns)
    panels = [] if var is None or "Panel" not in var else list(pd.unique(var["Panel"]))
    by_panel = {str(x).replace(" ", "_").lower() for x in panels}
    if by_panel == {"reveal"}:
        return "Reveal"
    if by_panel == {"explore_ht"}:
        return "Explore HT"
    text = " ".join(str(p) for p in panels).lower()
    if "target 48" in text or "48" in text.split():
        return "Target 48"
    if "Quantified_value" in cols or "Unit" in cols:
        return "Flex" if "Plate_LQL" in cols or "LLOQ" in cols else "Target 96"
    if cols & {"ExtNPX", "PCNormalizedNPX", "Count", "Block"}:
        return (
            "Explore HT" if "AssayType" in cols or "DataAnalysisRefID" in cols else "Explore 3072"
        )
    if text.startswith("olink") or "target 96" in text:
        return "Target 96"
    if "ExploreVersion" in cols or "Panel_Lot_Nr" in cols or "explore" in text:
        return "Explore 3072"
    return "unknown"


# ------------------------------------------------------------------------------------------
# AnnData -> long
# ------------------------------------------------------------------------------------------

DEFAULT_LONG = [
    "SampleID",
    "Index",
    "OlinkID",
    "UniProt",
    "Assay",
    "MissingFreq",
    "Panel",
    "Panel_Version",
    "PlateID",
    "QC_Warning",
    "LOD",
    "NPX",
]


def to_long(adata: ad.AnnData, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Return the data in Olink's long format (one row per sample × assay measurement).

    Rows come assay by assay (``var`` order), samples in ``obs`` order within an assay (or
    sample by sample when the file that was read was ordered so, as Explore files are); a
    cell is a row when the sample ran on the assay's panel (``obsm["PlateID"]`` non-empty)
    and, if present, ``layers["measured"]`` is True. For data read with
    :func:`olinkpipe.read_npx` the columns are the file's, in the file's order, with the
    file's values (NaN where NPX was missing), so a long file round-trips.

    Parameters
    ----------
    adata
        Samples × assays AnnData as returned by :func:`olinkpipe.read_npx`.
    columns
        Column names to emit (default: those of the file that was read, else Olink's
        ``SampleID, Index, OlinkID, UniProt, Assay, MissingFreq, Panel, Panel_Version,
        PlateID, QC_Warning, LOD, NPX`` plus the other ``obs``/``var`` columns present).

    Returns
    -------
    DataFrame
        Long table with Olink's column names.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> df = pd.DataFrame({"SampleID": ["S1", "S2"], "OlinkID": ["OID1", "OID1"],
    ...                    "Assay": ["IL6", "IL6"], "NPX": [1.5, float("nan")]})
    >>> op.to_long(op.io.from_long(df))[["SampleID", "OlinkID", "NPX"]].shape
    (2, 3)
    """
    prov = adata.uns.get("olinkpipe", {})
    roles = dict(prov.get("columns", {})) if isinstance(prov, dict) else {}
    names = {
        "sample": roles.get("sample", "SampleID"),
        "olinkid": roles.get("olinkid", "OlinkID"),
        "value": roles.get("value", "NPX"),
        "lod": roles.get("lod", "LOD"),
        "plate": roles.get("plate", "PlateID"),
        "qc": roles.get("qc", "QC_Warning"),
    }
    dtypes = dict(prov.get("dtypes", {})) if isinstance(prov, dict) else {}
    coded = dict(prov.get("coded_layers", {})) if isinstance(prov, dict) else {}
    if columns is None:
        long_cols = prov.get("long_columns") if isinstance(prov, dict) else None
        if long_cols is not None and len(long_cols):
            columns = [str(c) for c in long_cols]
        else:
            derived = {"is_control", "qc_pass", "AssayType"}
            columns = [c for c in DEFAULT_LONG]
            extra_obs = [c for c in adata.obs.columns if c not in columns and c not in derived]
            extra_var = [c for c in adata.var.columns if c not in columns and c not in derived]
            columns += extra_obs + extra_var
            columns = [c for c in columns if _available(adata, c, names)]
    columns = list(columns)

    panels = (
        adata.var["Panel"].astype(str).to_numpy()
        if "Panel" in adata.var
        else np.full(adata.n_vars, "unknown", dtype=object)
    )
    present = np.ones(adata.shape, dtype=bool)
    plate_cell = None
    if "PlateID" in adata.obsm and isinstance(adata.obsm["PlateID"], pd.DataFrame):
        pm = adata.obsm["PlateID"]
        cols_idx = [pm.columns.get_loc(p) if p in pm.columns else -1 for p in panels]
        pvals = pm.to_numpy(dtype=object)
        plate_cell = np.empty(adata.shape, dtype=object)
        for j, k in enumerate(cols_idx):
            plate_cell[:, j] = pvals[:, k] if k >= 0 else ""
        if "measured" not in adata.layers:
            present = _present_from_plates(plate_cell.astype(str))
    if "measured" in adata.layers:
        present = np.asarray(adata.layers["measured"], dtype=bool)
    if str(prov.get("row_order", "assay")) == "sample":
        ii, jj = np.nonzero(present)  # sample by sample, as Explore files
    else:
        jj, ii = np.nonzero(present.T)  # assay by assay, as Target 96 files

    def cell(mat: Any) -> np.ndarray:
        mat = mat.toarray() if hasattr(mat, "toarray") else np.asarray(mat)
        return mat[ii, jj]

    out: dict[str, Any] = {}
    for c in columns:
        if c == names["sample"]:
            s = adata.obs["SampleID"] if "SampleID" in adata.obs else adata.obs_names.to_series()
            v = np.asarray(s, dtype=object)[ii]
        elif c == names["olinkid"]:
            v = np.asarray(adata.var_names, dtype=object)[jj]
        elif c == names["value"]:
            v = cell(adata.X).astype(np.float64)
        elif c == names["lod"] and has_lod(adata):
            v = cell(lod_matrix(adata)).astype(np.float64)
        elif c == names["plate"] and plate_cell is not None:
            v = plate_cell[ii, jj]
            v = np.where(v == "", None, v).astype(object)
        elif c == names["qc"] and c not in adata.layers and "QC_Warning" in adata.obsm:
            qm = adata.obsm["QC_Warning"]
            qv = qm.to_numpy(dtype=object)
            k = np.asarray(
                [qm.columns.get_loc(p) if p in qm.columns else -1 for p in panels], dtype=np.int64
            )
            v = np.where(k[jj] >= 0, qv[ii, np.maximum(k[jj], 0)], "")
            v = np.where(v == "", None, v).astype(object)
        elif c in adata.layers:
            if c in coded:
                cats = np.append(np.asarray(coded[c], dtype=object), None)
                codes = cell(adata.layers[c]).astype(np.int64)
                v = cats[np.where(codes < 0, len(cats) - 1, codes)]
            else:
                v = cell(adata.layers[c])
        elif c in adata.obs.columns:
            v = _column_values(adata.obs[c])[ii]
        elif c in adata.var.columns:
            v = _column_values(adata.var[c])[jj]
        elif c == "Index":
            v = (ii + 1).astype(np.int64)
        else:
            v = np.full(len(ii), np.nan)
        out[c] = _restore_dtype(v, dtypes.get(c))
    return pd.DataFrame(out, columns=columns)


def _present_from_plates(plate_cell: np.ndarray) -> np.ndarray:
    """Cells that are measurements by default: the sample has a plate on the assay's panel.

    When no plate is known at all (no PlateID column), every cell counts.
    """
    present = plate_cell != ""
    if not present.any():
        return np.ones(plate_cell.shape, dtype=bool)
    return present


def measured_mask(adata: ad.AnnData) -> np.ndarray:
    """Boolean samples × assays mask of the cells that are measurements (rows of the long file)."""
    if "measured" in adata.layers:
        return np.asarray(adata.layers["measured"], dtype=bool)
    if "PlateID" in adata.obsm and isinstance(adata.obsm["PlateID"], pd.DataFrame):
        pm = adata.obsm["PlateID"]
        panels = (
            adata.var["Panel"].astype(str).to_numpy()
            if "Panel" in adata.var
            else np.full(adata.n_vars, "unknown", dtype=object)
        )
        pvals = pm.to_numpy(dtype=object).astype(str)
        cell = np.full(adata.shape, "", dtype=object)
        for j, p in enumerate(panels):
            if p in pm.columns:
                cell[:, j] = pvals[:, pm.columns.get_loc(p)]
        return _present_from_plates(cell.astype(str))
    return np.ones(adata.shape, dtype=bool)


def _available(adata: ad.AnnData, c: str, names: dict[str, str]) -> bool:
    if c in names.values() or c in ("SampleID", "OlinkID"):
        return c != names["lod"] or has_lod(adata)
    return c in adata.obs.columns or c in adata.var.columns or c in adata.layers


def _column_values(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    arr = s.to_numpy()
    if arr.dtype == object:
        arr = np.where(pd.isna(arr), None, arr)
    return arr


def _restore_dtype(v: np.ndarray, dtype: str | None) -> Any:
    v = np.asarray(v)
    if dtype and dtype[:3] in ("int", "uin") and v.dtype.kind in "fiu":
        if v.dtype.kind == "f" and np.isnan(v).any():
            return v
        return v.astype(dtype)
    if dtype and dtype.startswith("float") and v.dtype.kind in "iubf":
        return v.astype(dtype)
    if dtype == "object" and v.dtype.kind != "O":
        return v.astype(object)
    if v.dtype == object:
        return pd.Series(v, dtype=object).where(pd.notna(v), np.nan).to_numpy()
    return v
