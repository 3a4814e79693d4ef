"""Streaming long reader: Explore parquet by row group, long CSV by block, into preallocated
matrices, with the same result as :func:`olinkpipe.io.convert.from_long` bit for bit.

The long table is never held whole nor pivoted. Three passes over the file read only what
each needs:

A. the key columns (SampleID, OlinkID, Panel): the samples, assays and panels, in the order
   :func:`~olinkpipe.io.convert.from_long` gives them (dictionary order, unused entries
   dropped);
B. the keys and every non-measurement column: which rows exist (the ``measured`` mask), the
   plate and QC per sample and panel, and whether each other column is constant per sample
   (``obs``), per assay (``var``) or neither (a layer);
C. the keys and the measurement columns (NPX, LOD, other per-cell columns): scattered
   straight into samples × assays arrays.

Each batch's dictionary indices are mapped to the final sample and assay codes through one
small lookup per distinct dictionary. With ``chunks=`` pass C runs later, one dask task per
block of assays, reading only the row groups that hold those assays.

Anything unusual is left to the in-memory reader, which gives the same answer or the right
error: a value or LOD column stored as text (markers such as ``> ULOQ``), infinite values,
missing identifiers, panels or plates, IDs that differ only by spaces, an OlinkID on two
panels or with two names, a SampleID on two plates within a panel, a (sample, assay) pair
that occurs twice, QC that varies within a sample's panel, or any parse error.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .._layout import code_dtype, compact_lod
from .._provenance import provenance
from ._util import warn_user
from .convert import (
    ASSAY_LEVEL,
    MEASUREMENT_LEVEL,
    VALUE_ALIASES,
    _Column,
    _is_pass,
    _join_rows,
    _present_from_plates,
    _reader_version,
    build_var,
    guess_product,
    obs_frame,
    resolve_roles,
)

__all__ = ["Fallback", "StreamPlan", "parquet_source", "csv_source", "scan", "read_all"]

logger = logging.getLogger("olinkpipe")
BATCH_ROWS = 1 << 20
_PANEL_CAP = 64  # panels per file the per-(sample, panel) grids allow


class Fallback(Exception):
    """The file needs the in-memory reader (see the module docstring)."""


# ------------------------------------------------------------------------------------------
# sources: a list of units (parquet row groups / the one CSV), each read as record batches
# ------------------------------------------------------------------------------------------


@dataclass
class Source:
    """Where the long rows come from: ``units`` read one after another as record batches."""

    kind: str
    columns: list[str]
    types: dict[str, pa.DataType]
    units: list[Any]
    metadata: dict[str, str] = field(default_factory=dict)
    csv_opts: dict[str, Any] = field(default_factory=dict)

    def batches(self, columns: list[str], units: list[int] | None = None) -> Iterator[Any]:
        """Yield ``(unit, batch)`` for the given columns (all units when ``None``)."""
        todo = range(len(self.units)) if units is None else units
        if self.kind == "parquet":
            open_files: dict[str, pq.ParquetFile] = {}
            for u in todo:
                path, rg = self.units[u]
                pf = open_files.get(path)
                if pf is None:
                    pf = pq.ParquetFile(path, read_dictionary=self.csv_opts["dictionary"])
                    open_files[path] = pf
                for b in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[rg], columns=columns):
                    yield u, b
            return
        import pyarrow.csv as pcsv

        o = self.csv_opts
        conv = pcsv.ConvertOptions(
            column_types=o["types"],
            strings_can_be_null=True,
            decimal_point=o["decimal"],
            quoted_strings_can_be_null=True,
            include_columns=columns,
        )
        with pcsv.open_csv(
            o["path"],
            read_options=o["read"],
            parse_options=o["parse"],
            convert_options=conv,
        ) as reader:
            for b in reader:
                yield 0, b


def parquet_source(paths: list[Path], string_columns: set[str]) -> Source:
    """A source over one parquet file or a directory's files (one dataset, same columns)."""
    units, columns, types, metas = [], None, {}, []
    for p in paths:
        pf = pq.ParquetFile(str(p))
        names = pf.schema_arrow.names
        if columns is None:
            columns = names
        elif names != columns:
            msg = "files with different columns"
            raise Fallback(msg)
        metas.append(pf.schema_arrow.metadata or {})
        units += [(str(p), k) for k in range(pf.metadata.num_row_groups)]
    dictionary = [c for c in columns if c in string_columns]
    pf = pq.ParquetFile(str(paths[0]), read_dictionary=dictionary)
    types = {f.name: f.type for f in pf.schema_arrow}
    _refuse_odd_columns(list(types))
    _refuse_odd_types(types)
    meta = _metadata(metas)
    return Source("parquet", columns, types, units, meta, {"dictionary": dictionary})


def _refuse_odd_columns(columns: list[str]) -> None:
    """Columns the in-memory reader must see: an unnamed column (R's row names, a trailing
    delimiter, or values under no header: kept and warned about there) and a file whose X
    would be PCNormalizedNPX (warned about there)."""
    if any(not str(c).strip() or str(c).startswith(("Unnamed:", "...")) for c in columns):
        msg = "a column without a name"
        raise Fallback(msg)
    if resolve_roles(columns)["value"] == "PCNormalizedNPX":
        msg = "no NPX column: PCNormalizedNPX becomes X"
        raise Fallback(msg)


def _refuse_odd_types(types: dict[str, pa.DataType]) -> None:
    """true/false, binary and nested columns go to the in-memory reader, whose strict
    checks name them as errors (a bool NPX column is not a number)."""
    for name, t in types.items():
        if pa.types.is_dictionary(t):
            t = t.value_type
        if (
            pa.types.is_boolean(t)
            or pa.types.is_binary(t)
            or pa.types.is_large_binary(t)
            or pa.types.is_fixed_size_binary(t)
            or pa.types.is_nested(t)
        ):
            msg = f"column {name!r} of type {t}"
            raise Fallback(msg)


def _metadata(metas: list[dict]) -> dict[str, str]:
    """Key-value metadata (without pandas/Arrow keys) that all files agree on."""
    out: dict[str, str] | None = None
    for raw in metas:
        meta = {}
        for k, v in raw.items():
            key = k.decode("utf-8", "replace")
            if key in ("pandas", "ARROW:schema") or key.startswith("ARROW:"):
                continue
            meta[key] = v.decode("utf-8", "replace")
        out = meta if out is None else {k: v for k, v in out.items() if meta.get(k) == v}
    return out or {}


def csv_source(path: Path, columns: list[str], types: dict, opts: dict) -> Source:
    """A source over one long CSV read in blocks with ``pyarrow.csv.open_csv``."""
    return Source("csv", columns, types, [0], {}, {"path": str(path), **opts})


# ------------------------------------------------------------------------------------------
# small streaming helpers
# ------------------------------------------------------------------------------------------


class _Dict:
    """Global codes for a text column over batches, in from_long's order (first appearance
    of each batch's dictionary entries), with the entries rows use."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}
        self.values: list[Any] = []
        self.used = np.zeros(0, dtype=bool)
        self._last: list[Any] | None = None  # [dictionary, lookup + [-1], final lookup]
        self.final: np.ndarray | None = None  # global -> final code (-1 unused)

    def _local(self, arr: pa.Array) -> tuple[np.ndarray, list[Any]]:
        """Batch indices (-1 = null) and the cache entry of the batch's dictionary."""
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if not pa.types.is_dictionary(arr.type):
            if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
                arr = pc.cast(arr, pa.string())
            arr = pc.dictionary_encode(arr)
        dictionary = arr.dictionary
        if self._last is None or not self._last[0].equals(dictionary):
            if not (
                pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type)
            ):
                dictionary = pc.cast(dictionary, pa.string())
            lookup = np.fromiter(
                (self.index.setdefault(v, len(self.index)) for v in dictionary.to_pylist()),
                dtype=np.int32,
                count=len(dictionary),
            )
            if len(self.index) > len(self.values):
                self.values = list(self.index)
            self._last = [arr.dictionary, np.append(lookup, np.int32(-1)), None]
        idx = arr.indices
        if idx.null_count:
            idx = pc.fill_null(idx, -1)
        return idx.to_numpy(zero_copy_only=False), self._last

    def codes(self, arr: pa.Array, *, mark: bool = False) -> np.ndarray:
        """Global codes (-1 = null); ``mark`` records which entries rows use."""
        local, entry = self._local(arr)
        if mark:
            self.mark(local, entry)
        return entry[1][local]

    def mark(self, local: np.ndarray, entry: list[Any]) -> None:
        """Record the entries that the batch indices ``local`` use."""
        self._grow()
        n = len(entry[1]) - 1
        if n:
            hit = np.bincount(local[local >= 0] if local.min() < 0 else local, minlength=n)
            self.used[entry[1][:-1][hit > 0]] = True

    def scalar(self, arr: pa.Array) -> int | None:
        """The global code when every row holds the same non-null value, else None."""
        local, entry = self._local(arr)
        if len(local) and local[0] >= 0 and local.min() == local.max():
            return int(entry[1][local[0]])
        return None

    def _grow(self) -> None:
        if len(self.used) < len(self.values):
            self.used = np.concatenate(
                [self.used, np.zeros(len(self.values) - len(self.used), dtype=bool)]
            )

    def finish(self, *, keep_all: bool = False) -> np.ndarray:
        """The used values in order; sets ``final`` (global code -> final code)."""
        self._grow()
        if keep_all:  # a column whose unused entries do not matter (only values do)
            self.used[:] = True
        self.final = np.where(self.used, np.cumsum(self.used) - 1, -1).astype(np.int32)
        if self._last is not None:
            self._last[2] = None
        return np.asarray(self.values, dtype=object)[self.used]

    def final_codes(self, arr: pa.Array) -> np.ndarray:
        local, entry = self._local(arr)
        if entry[2] is None:
            g = entry[1][:-1]
            if len(g) and int(g.max()) >= len(self.final):  # unseen in the scan
                msg = "dictionary changed between passes"
                raise Fallback(msg)
            entry[2] = np.append(self.final[g], np.int32(-1))
        return entry[2][local]


class _Const:
    """Is a key constant within each group (over batches)? NaN equals NaN for floats.

    ``first`` holds each group's first key. Batches come with their group runs
    (:class:`_Runs`): where runs are long (rows sorted by the group) only the run changes
    are compared and one row per run is looked up; otherwise every row is compared with its
    group's first key (a gather over a small table).
    """

    def __init__(self, n_groups: int, *, floaty: bool):
        self.floaty = floaty
        self.first = np.full(n_groups, np.nan) if floaty else np.full(n_groups, -1, dtype=np.int32)
        self.seen = np.zeros(n_groups, dtype=bool)
        self.unseen = n_groups
        self.ok = True
        self._local_first: tuple[np.ndarray, np.ndarray] | None = None  # (lookup, first)

    def update(self, runs: _Runs, key: np.ndarray, lookup: np.ndarray | None = None) -> None:
        """Rows of a batch: ``key`` (local codes mapped through ``lookup`` when given)."""
        if not self.ok or len(key) == 0:
            return
        if runs.long:
            chg = key[1:] != key[:-1]
            chg &= runs.inner
            if chg.any():
                at = np.flatnonzero(chg)
                if not self.floaty or not (np.isnan(key[at]) & np.isnan(key[at + 1])).all():
                    self.ok = False
                    return
            groups, key = runs.heads, key[runs.starts]
        else:
            groups = runs.groups
            if lookup is not None and not self.unseen:  # compare local codes, no lookup
                if self._local_first is None or self._local_first[0] is not lookup:
                    inv = np.full(max(int(lookup.max()), int(self.first.max())) + 2, -2, np.int32)
                    inv[lookup[:-1]] = np.arange(len(lookup) - 1, dtype=np.int32)
                    inv[-1] = -1  # null stays null
                    self._local_first = (lookup, inv[self.first])
                if not (self._local_first[1][groups] == key).all():
                    self.ok = False
                return
        self._gather(groups, key if lookup is None else lookup[key])

    def _gather(self, groups: np.ndarray, key: np.ndarray) -> None:
        if self.unseen:
            new = ~self.seen[groups]
            if new.any():
                g = groups[new]
                self.first[g[::-1]] = key[new][::-1]  # first row of each new group
                self.seen[g] = True
                self.unseen = len(self.seen) - int(np.count_nonzero(self.seen))
        back = self.first[groups]
        same = back == key
        if not same.all():
            if self.floaty:
                same |= np.isnan(back) & np.isnan(key)
                if same.all():
                    return
            self.ok = False

    def update_scalar(self, present: np.ndarray, value: Any) -> None:
        """Every row of the batch holds ``value``; ``present`` marks the batch's groups."""
        if not self.ok:
            return
        if self.unseen:
            new = present & ~self.seen
            self.first[new] = value
            self.seen |= new
            self.unseen = len(self.seen) - int(np.count_nonzero(self.seen))
        back = self.first[present]
        same = back == value
        if self.floaty and value != value:
            same = np.isnan(back)
        if not same.all():
            self.ok = False


class _Runs:
    """The runs of equal group codes in one batch (rows sorted by the group or not)."""

    def __init__(self, groups: np.ndarray, n_groups: int):
        self.groups = groups
        self.n_groups = n_groups
        change = groups[1:] != groups[:-1]
        self.changes = int(np.count_nonzero(change))
        self.long = (self.changes + 1) * 4 <= len(groups)
        self.inner = ~change if self.long else None  # rows continuing a run
        if self.long:
            self.starts = np.concatenate(([0], np.flatnonzero(change) + 1))
            self.heads = groups[self.starts]
        self._present: np.ndarray | None = None

    @property
    def present(self) -> np.ndarray:
        """Which groups the batch holds (bool per group)."""
        if self._present is None:
            self._present = np.zeros(self.n_groups, dtype=bool)
            self._present[self.heads if self.long else self.groups] = True
        return self._present


def _prefetch(batches: Iterator[Any]) -> Iterator[Any]:
    """Yield from ``batches``, decoding the next batch in a thread while the caller works on
    this one (Arrow's decoding and numpy both release the GIL)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(next, batches, None)
        while True:
            item = ahead.result()
            if item is None:
                return
            ahead = pool.submit(next, batches, None)
            yield item


def _values(arr: pa.Array) -> np.ndarray:
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)


def _is_numeric(t: pa.DataType) -> bool:
    return _Column("", pa.chunked_array([], type=t)).is_numeric


# ------------------------------------------------------------------------------------------
# the plan: everything but the per-cell values (passes A and B)
# ------------------------------------------------------------------------------------------


@dataclass
class StreamPlan:
    """What passes A and B found: enough to build obs/var/obsm/uns and to read any block."""

    source: Source
    roles: dict[str, str | None]
    columns: list[str]
    dicts: dict[str, _Dict]
    n_obs: int
    n_assay: int
    sample_uni: np.ndarray
    assay_uni: np.ndarray
    panel_uni: np.ndarray
    assay_panel: np.ndarray
    measured: np.ndarray
    plate_mat: np.ndarray
    qc_mat: np.ndarray
    on_panel: np.ndarray
    obs_cols: dict[str, np.ndarray]
    var_cols: dict[str, np.ndarray]
    layer_cols: list[str]
    coded: dict[str, np.ndarray]
    unit_assays: np.ndarray  # units × assays: which assays each unit holds
    row_order: str
    n_rows: int
    qc_layer: str | None = None
    prefilled: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def value_cols(self) -> list[str]:
        """Columns read in pass C: value, LOD and the other per-cell columns."""
        lod = [self.roles["lod"]] if self.roles["lod"] else []
        return [self.roles["value"], *lod, *self.layer_cols]


def scan(source: Source, *, values: bool = False) -> StreamPlan:
    """Passes A and B; raises :class:`Fallback` for anything the streaming path leaves out.

    With ``values`` pass B also scatters the value, LOD and numeric per-cell columns (and
    the extra pass for columns that fail their first slot the columns themselves), so the
    whole read takes two passes in the common case: ``plan.prefilled`` holds them.
    """
    columns = [c for c in source.columns if c not in ("", "Unnamed: 0", "...1")]
    if len(set(columns)) != len(columns):
        msg = "repeated column names"
        raise Fallback(msg)
    roles = resolve_roles(columns)
    if any(roles[r] is None for r in ("sample", "olinkid", "value")):
        msg = "required column missing"
        raise Fallback(msg)
    types = source.types
    for r in ("value", "lod"):
        if roles[r] is not None and not _is_numeric(types[roles[r]]):
            msg = f"{r} column stored as text"
            raise Fallback(msg)
    scol, acol, pcol = roles["sample"], roles["olinkid"], roles["panel"]
    dicts = {scol: _Dict(), acol: _Dict()}
    if pcol:
        dicts[pcol] = _Dict()

    # --- pass A: samples, assays, panels ----------------------------------------------------
    keys = [c for c in (scol, acol, pcol) if c]
    n_rows = 0
    for _, b in source.batches(keys):
        n_rows += b.num_rows
        for c in keys:
            codes = dicts[c].codes(b.column(c), mark=True)
            if (codes < 0).any():
                msg = f"missing {c}"
                raise Fallback(msg)
    if n_rows == 0:
        msg = "no rows"
        raise Fallback(msg)
    release_arrow()  # pass A's batches, before the matrices are allocated
    s_uni, a_uni = dicts[scol].finish(), dicts[acol].finish()
    p_uni = dicts[pcol].finish() if pcol else np.array(["unknown"], dtype=object)
    for uni in (s_uni, a_uni):
        stripped = pd.Series([str(u).strip() for u in uni], dtype=object)
        if stripped.duplicated().any():
            msg = "IDs differing only by spaces"
            raise Fallback(msg)
    n_obs, n_assay, n_panel = len(s_uni), len(a_uni), len(p_uni)
    if n_panel > _PANEL_CAP:
        msg = "too many panels"
        raise Fallback(msg)

    # --- pass B: rows, plates, QC and the placement of every other column ---------------------
    special = {scol, acol, roles["value"], roles["lod"], roles["plate"], roles["qc"]} - {None}
    meta_cols = [c for c in columns if c not in special and c not in MEASUREMENT_LEVEL]
    direct_layers = [c for c in columns if c not in special and c in MEASUREMENT_LEVEL]
    text = {c for c in columns if not _is_numeric(types[c])}
    for c in meta_cols + direct_layers:
        if c in text and c not in dicts:
            dicts[c] = _Dict()
    for c in (roles["plate"], roles["qc"]):
        if c:
            dicts[c] = _Dict()
    assay_level = ASSAY_LEVEL | {roles[k] for k in ("assay", "uniprot", "panel") if roles[k]}
    # from_long tries var first for assay-level columns, obs first for the others; both
    # slots are tracked at once, and a column that fails both is a layer from then on
    first_slot = {c: "var" if c in assay_level else "obs" for c in meta_cols}
    sizes = {"obs": n_obs, "var": n_assay}
    trackers = {
        (c, slot): _Const(sizes[slot], floaty=c not in text)
        for c in meta_cols
        for slot in ("obs", "var")
    }
    read_b = [c for c in columns if c in {scol, acol, pcol, roles["plate"], roles["qc"]}]
    read_b += [c for c in meta_cols + direct_layers if c not in read_b]
    filled: dict[str, np.ndarray] = {}
    if values:
        lod = [roles["lod"]] if roles["lod"] else []
        for c in [roles["value"], *lod]:
            filled[c] = np.full(n_obs * n_assay, np.nan)
            read_b.append(c)
    # layers read in this pass: per-cell columns, and (from the batch where they fail both
    # slots) metadata columns; ``late`` counts the rows read before, read again below
    late: dict[str, int] = {c: 0 for c in direct_layers}
    spec: dict[str, np.ndarray] = {}
    if values:
        spec = {c: _layer_array(n_obs * n_assay, c in text) for c in direct_layers}
    panel_t = _Const(n_assay, floaty=False)
    plate_t = _Const(n_obs * n_panel, floaty=False)
    qc_t = _Const(n_obs * n_panel, floaty=False)
    qc_any = np.zeros(n_obs * n_panel, dtype=bool)
    measured = np.zeros(n_obs * n_assay, dtype=bool)
    unit_assays = np.zeros((len(source.units), n_assay), dtype=bool)
    last_s = last_a = None
    s_changes = a_changes = rows_done = 0
    for u, b in _prefetch(source.batches(read_b)):
        s = dicts[scol].final_codes(b.column(scol))
        a = dicts[acol].final_codes(b.column(acol))
        runs = {"obs": _Runs(s, n_obs), "var": _Runs(a, n_assay)}
        p = dicts[pcol].final_codes(b.column(pcol)) if pcol else np.zeros(len(s), np.int32)
        cell = s.astype(np.int64) * n_assay + a
        measured[cell] = True
        unit_assays[u] = runs["var"].present
        for c, arr in filled.items():
            v = _values(b.column(c))
            if np.isinf(v).any():
                msg = "infinite values"
                raise Fallback(msg)
            arr[cell] = v
        if len(s):
            s_changes += runs["obs"].changes + (last_s is not None and s[0] != last_s)
            a_changes += runs["var"].changes + (last_a is not None and a[0] != last_a)
            last_s, last_a = s[-1], a[-1]
        panel_t.update(runs["var"], p)
        sp = _Runs(s.astype(np.int64) * n_panel + p, n_obs * n_panel)
        if roles["plate"]:
            local, entry = dicts[roles["plate"]]._local(b.column(roles["plate"]))
            if len(local) and local.min() < 0:
                msg = "missing PlateID"
                raise Fallback(msg)
            plate_t.update(sp, local, entry[1])
            if not plate_t.ok:
                msg = "a SampleID on two plates within a panel"
                raise Fallback(msg)
        if roles["qc"]:
            _track_qc(dicts[roles["qc"]], b.column(roles["qc"]), qc_t, sp, qc_any)
        for c in meta_cols:
            pair = [(trackers[c, k], runs[k]) for k in ("obs", "var") if trackers[c, k].ok]
            if pair:
                _track(b.column(c), dicts.get(c), pair)
                if not any(t.ok for t, _ in pair):
                    late[c] = rows_done
                    if values:
                        spec[c] = _layer_array(n_obs * n_assay, c in text)
        for c in late:
            if late[c] <= rows_done:
                _scatter_layer(b.column(c), dicts.get(c), spec, c, cell)
        rows_done += b.num_rows
    if not panel_t.ok:
        msg = "an OlinkID on two panels"
        raise Fallback(msg)
    if int(np.count_nonzero(measured)) != n_rows:
        msg = "a (SampleID, OlinkID) pair occurs twice"
        raise Fallback(msg)
    _read_early(source, dicts, scol, acol, n_assay, late, spec, text)
    if roles["assay"] and not trackers[roles["assay"], "var"].ok:
        msg = "an OlinkID with two Assay names"
        raise Fallback(msg)
    second = {c: "obs" if s1 == "var" else "var" for c, s1 in first_slot.items()}

    # --- placements ----------------------------------------------------------------------
    obs_cols: dict[str, np.ndarray] = {}
    var_cols: dict[str, np.ndarray] = {}
    layer_cols: list[str] = []
    coded: dict[str, np.ndarray] = {}
    # QC that varies within a sample's panel: a per-cell text layer, as in from_long
    qc_layer = roles["qc"] if roles["qc"] and not qc_t.ok else None
    for c in columns:
        if c in special and c != qc_layer:
            continue
        if c in direct_layers or c == qc_layer:
            layer_cols.append(c)
            continue
        for slot in (first_slot[c], second[c]):
            t = trackers[c, slot]
            if t.ok:
                per = t.first
                if c in text:
                    uni = dicts[c].finish(keep_all=True)
                    per = np.where(per >= 0, dicts[c].final[np.maximum(per, 0)], -1)
                    per = np.append(uni, None).astype(object)[per]
                (obs_cols if slot == "obs" else var_cols)[c] = per
                break
        else:
            layer_cols.append(c)
    for c in layer_cols:
        if c in spec:  # scattered in pass B: text codes to their final categories
            if c in text:
                dicts[c].finish()
                _remap(spec[c], np.append(dicts[c].final, np.int32(-1)))
            filled[c] = spec[c]
    for c in layer_cols:
        if c in text:
            coded[c] = np.asarray([str(u) for u in dicts[c].finish()], dtype=object)

    def per_panel(t: _Const, c: str | None) -> np.ndarray:
        if c is None:
            return np.full(n_obs * n_panel, -1, dtype=np.int32)
        dicts[c].finish()
        f = dicts[c].final
        return np.where(t.first >= 0, f[np.maximum(t.first, 0)], -1)

    on_panel = _seen_grid(measured, n_obs, n_assay, n_panel, panel_t.first)
    if roles["plate"]:
        q_uni = dicts[roles["plate"]].finish(keep_all=True)
        plate_codes = per_panel(plate_t, roles["plate"])
        plate_mat = np.append(q_uni, "").astype(object)[plate_codes].reshape(n_obs, n_panel)
    else:  # from_long: one plate named "" for every sample
        plate_mat = np.full((n_obs, n_panel), "", dtype=object)
    qc_mat = np.full(n_obs * n_panel, "", dtype=object)
    if qc_layer:
        cat_pass = _is_pass(coded[qc_layer])
        cats = [str(c) for c in coded[qc_layer]]
        bad_labels = [c for c, ok in zip(cats, cat_pass, strict=True) if not ok]
        good_labels = [c for c, ok in zip(cats, cat_pass, strict=True) if ok and c]
        qc_mat = np.where(
            qc_any,
            bad_labels[0] if bad_labels else "WARN",
            good_labels[0] if good_labels else "PASS",
        )
        qc_mat = np.where(on_panel, qc_mat, "").astype(object)
    elif roles["qc"]:
        quni = dicts[roles["qc"]].finish()
        vals = np.append(quni, None).astype(object)[per_panel(qc_t, roles["qc"])]
        vals = np.where(pd.isna(vals), "", vals)
        qc_mat = np.where(on_panel, vals, "").astype(object)
    release_arrow()  # the batches' memory, before the AnnData is built
    return StreamPlan(
        source=source,
        roles=roles,
        columns=columns,
        dicts=dicts,
        n_obs=n_obs,
        n_assay=n_assay,
        sample_uni=s_uni,
        assay_uni=a_uni,
        panel_uni=p_uni,
        assay_panel=panel_t.first.astype(np.int64),
        measured=measured.reshape(n_obs, n_assay),
        plate_mat=plate_mat,
        qc_mat=qc_mat.reshape(n_obs, n_panel),
        on_panel=on_panel,
        obs_cols=obs_cols,
        var_cols=var_cols,
        layer_cols=layer_cols,
        coded=coded,
        unit_assays=unit_assays,
        row_order="sample" if s_changes < a_changes else "assay",
        qc_layer=qc_layer,
        prefilled={c: v.reshape(n_obs, n_assay) for c, v in filled.items()},
        n_rows=n_rows,
    )


def _layer_array(size: int, is_text: bool) -> np.ndarray:
    """A flat layer to scatter into: category codes (-1 = missing; int8, widened when a
    column has more categories) or floats (NaN)."""
    return np.full(size, -1, np.int8) if is_text else np.full(size, np.nan)


def _scatter_layer(
    col: Any, d: _Dict | None, spec: dict[str, np.ndarray], c: str, cell: np.ndarray
) -> None:
    """Layer column ``c`` of one batch: marks its text entries used and scatters it into
    ``spec[c]`` (when there)."""
    out = spec.get(c)
    if d is not None:
        codes = d.codes(col, mark=True)
        if out is None:
            return
        if len(d.values) > np.iinfo(out.dtype).max:  # more categories than the dtype holds
            out = spec[c] = out.astype(np.int16 if len(d.values) <= 32767 else np.int32)
        out[cell] = codes
    elif out is not None:
        out[cell] = _values(col)


def _read_early(
    source: Source,
    dicts: dict[str, _Dict],
    scol: str,
    acol: str,
    n_assay: int,
    late: dict[str, int],
    spec: dict[str, np.ndarray],
    text: set[str],
) -> None:
    """The rows of layer columns read before they were known to be layers (the first rows
    only: a column is usually known to be a layer after its first batch)."""
    todo = [c for c, n in late.items() if n > 0 and (c in spec or c in text)]
    if not todo:
        return
    need = max(late[c] for c in todo)
    done = 0
    for _, b in source.batches([scol, acol, *todo]):
        if done >= need:
            break
        s = dicts[scol].final_codes(b.column(scol))
        a = dicts[acol].final_codes(b.column(acol))
        cell = s.astype(np.int64) * n_assay + a
        for c in todo:
            if done < late[c]:
                _scatter_layer(b.column(c), dicts.get(c), spec, c, cell)
        done += b.num_rows


def _track(col: Any, d: _Dict | None, pair: list[tuple[_Const, _Runs]]) -> None:
    """Update a metadata column's trackers (obs and/or var slot) with one batch."""
    if d is not None:
        key, entry = d._local(col)
        lookup = entry[1]
    else:
        key, lookup = _values(col), None
    n = len(key)
    if n and key[0] == key[-1] and key.min() == key.max():  # one value (NaN never equal)
        if lookup is None or key[0] >= 0:
            value = key[0] if lookup is None else lookup[key[0]]
            for t, runs in pair:
                t.update_scalar(runs.present, value)
            return
    for t, runs in pair:
        t.update(runs, key, lookup)


def _track_qc(d: _Dict, col: Any, qc_t: _Const, sp: _Runs, qc_any: np.ndarray) -> None:
    """QC per (sample, panel): constancy, used categories, and pairs with a flagged row."""
    local, entry = d._local(col)
    d.mark(local, entry)
    qc_t.update(sp, local, entry[1])
    if len(entry) < 4:  # flagged local entries of this dictionary, cached with it
        bad = ~_is_pass(np.asarray(d.values, dtype=object))
        entry.append(np.append(bad[entry[1][:-1]], False))
    bad_local = entry[3]
    if bad_local.any():
        qc_any[sp.groups[bad_local[local]]] = True


def _seen_grid(
    measured: np.ndarray, n_obs: int, n_assay: int, n_panel: int, assay_panel: np.ndarray
) -> np.ndarray:
    """(sample, panel) pairs with at least one row, flattened."""
    m = measured.reshape(n_obs, n_assay)
    out = np.zeros((n_obs, n_panel), dtype=bool)
    for k in range(n_panel):
        out[:, k] = m[:, assay_panel == k].any(axis=1)
    return out.ravel()


# ------------------------------------------------------------------------------------------
# pass C: the per-cell values of a block of assays
# ------------------------------------------------------------------------------------------


def read_values(
    plan: StreamPlan, lo: int = 0, hi: int | None = None, names: list[str] | None = None
) -> dict[str, np.ndarray]:
    """X, LOD and the other per-cell columns for assays ``lo:hi`` (samples × assays each).

    Reads only the units that hold those assays; text layers hold their category codes.
    """
    hi = plan.n_assay if hi is None else hi
    width = hi - lo
    roles, dicts = plan.roles, plan.dicts
    scol, acol = roles["sample"], roles["olinkid"]
    names = plan.value_cols if names is None else names
    out: dict[str, np.ndarray] = {}
    if not names:
        return out
    for c in names:
        text = c in dicts and c not in (scol, acol)
        out[c] = np.full(
            plan.n_obs * width, -1 if text else np.nan, dtype=np.int32 if text else np.float64
        )
    units = np.flatnonzero(plan.unit_assays[:, lo:hi].any(axis=1)).tolist()
    for _, b in plan.source.batches([scol, acol, *names], units):
        s = dicts[scol].final_codes(b.column(scol))
        a = dicts[acol].final_codes(b.column(acol))
        if lo != 0 or hi != plan.n_assay:
            keep = (a >= lo) & (a < hi)
            if not keep.all():
                idx = np.flatnonzero(keep)
                s, a = s[idx], a[idx]
                b = b.take(pa.array(idx))
        cell = s.astype(np.int64) * width + (a - lo)
        for c in names:
            arr = out[c]
            if arr.dtype == np.int32:
                arr[cell] = dicts[c].final_codes(b.column(c))
            else:
                v = _values(b.column(c))
                if c in (roles["value"], roles["lod"]) and np.isinf(v).any():
                    msg = "infinite values"
                    raise Fallback(msg)
                arr[cell] = v
    return {c: v.reshape(plan.n_obs, width) for c, v in out.items()}


# ------------------------------------------------------------------------------------------
# the AnnData (same construction as from_long)
# ------------------------------------------------------------------------------------------


def read_all(plan: StreamPlan, *, file: str, product: str | None, data_format: str) -> ad.AnnData:
    """Pass C over the whole file and the AnnData, as :func:`from_long` builds it."""
    vals = plan.prefilled
    plan.prefilled = {}
    rest = [c for c in plan.value_cols if c not in vals]
    if rest:
        vals.update(read_values(plan, names=rest))
    roles = plan.roles
    X = vals.pop(roles["value"])
    if not np.isfinite(X).any():
        warn_user(
            f"{file or 'long table'}: column {roles['value']!r} holds no numeric value at all "
            "(every value is missing); check that this is the right column and file"
        )
    layers: dict[str, np.ndarray] = {
        "lod": vals.pop(roles["lod"]) if roles["lod"] else np.full(X.shape, np.nan)
    }
    for c in plan.layer_cols:  # text codes as the in-memory reader gives them
        layers[c] = vals.pop(c)
        if c in plan.coded:
            layers[c] = layers[c].astype(np.int32, copy=False)
    return build(plan, X, layers, file=file, product=product, data_format=data_format)


def build(
    plan: StreamPlan,
    X: Any,
    layers: dict[str, Any],
    *,
    file: str,
    product: str | None,
    data_format: str,
    derived: bool = True,
) -> ad.AnnData:
    """obs, var, obsm, uns and the derived layers around ``X`` and the value layers.

    With ``derived`` the ``measured`` layer (when not the default) is computed here; the
    dask path passes it in ``layers`` instead. Code layers get the smallest int dtype; a
    LOD constant per assay and plate becomes the plate table (:mod:`olinkpipe._layout`);
    ``qc_warning`` and ``below_lod`` are computed on demand, not stored.
    """
    roles, columns = plan.roles, plan.columns
    types = plan.source.types
    dtypes = {c: _Column(c, pa.chunked_array([], type=types[c])).pandas_dtype for c in columns}
    _n_obs, n_assay = plan.n_obs, plan.n_assay
    panel_names = [str(p) for p in plan.panel_uni]
    qc_mat, plate_mat = plan.qc_mat, plan.plate_mat
    obsm = {
        "PlateID": pd.DataFrame(plate_mat.astype(str), columns=panel_names),
        "QC_Warning": pd.DataFrame(qc_mat.astype(str), columns=panel_names),
    }
    # --- obs ------------------------------------------------------------------------------
    sample_names = plan.sample_uni.astype(object)
    is_pass_op = _is_pass(qc_mat.ravel()).reshape(qc_mat.shape)
    plates_joined = _join_rows(plate_mat, plate_mat != "", "")
    qc_joined = _join_rows(qc_mat, ~is_pass_op, "PASS")
    index = np.asarray([str(x) for x in sample_names], dtype=object)
    if len(set(index)) != len(index):
        msg = "sample names not unique as text"
        raise Fallback(msg)
    obs_index = pd.Index(index, dtype=object, name=None)
    obs = obs_frame(
        sample_names, obs_index, plan.obs_cols, dtypes, plates_joined, qc_joined, is_pass_op
    )
    for m in obsm.values():
        m.index = obs.index
    # --- var ------------------------------------------------------------------------------
    var_cols = dict(plan.var_cols)
    a_uni = plan.assay_uni
    var = build_var(var_cols, roles, a_uni, plan.panel_uni[plan.assay_panel], dtypes)
    # --- derived layers -------------------------------------------------------------------
    if derived:
        layers.update(_derived(plan, 0, n_assay))
    for c, cats in plan.coded.items():
        if c in layers and isinstance(layers[c], np.ndarray):
            layers[c] = layers[c].astype(code_dtype(len(cats)), copy=False)
    adata = ad.AnnData(X=X, obs=obs, var=var, layers=layers, obsm=obsm)
    prov = provenance(adata)
    prov.update(
        {
            "source": [str(file)] if file else [],
            "format": data_format,
            "product": product or guess_product(columns, var, plan.source.metadata),
            "data_type": VALUE_ALIASES.get(roles["value"], "NPX"),
            "reader_version": _reader_version(),
            "metadata": {str(k): str(v) for k, v in plan.source.metadata.items()},
            "long_columns": list(columns),
            "columns": {k: v for k, v in roles.items() if v is not None},
            "dtypes": dtypes,
            "coded_layers": plan.coded,
            "row_order": plan.row_order,
        }
    )
    compact_lod(adata)  # as from_long: LOD constant per assay and plate -> varm["lod"]
    return adata


def _derived(plan: StreamPlan, lo: int, hi: int) -> dict[str, np.ndarray]:
    """``measured`` for assays lo:hi, when it differs from the default."""
    if needs_measured(plan):
        return {"measured": plan.measured[:, lo:hi]}
    return {}


def needs_measured(plan: StreamPlan) -> bool:
    """Does ``measured`` differ from the default (sample has a plate on the assay's panel)?"""
    cached = getattr(plan, "_needs_measured", None)
    if cached is None:
        present = _present_from_plates(plan.plate_mat)
        cached = False
        for k in range(present.shape[1]):  # panel by panel: no full-size temporary
            cols = np.flatnonzero(plan.assay_panel == k)
            if not np.array_equal(
                plan.measured[:, cols], np.repeat(present[:, [k]], len(cols), 1)
            ):
                cached = True
                break
        plan._needs_measured = cached  # type: ignore[attr-defined]
    return cached


_ROWS = 4096  # rows per step of the row-blocked helpers below


def _remap(codes: np.ndarray, lookup: np.ndarray) -> None:
    """``codes[:] = lookup[codes]`` in place, a block of rows at a time (-1 stays -1)."""
    flat = codes.reshape(-1)
    step = _ROWS * 256
    for i in range(0, len(flat), step):
        part = flat[i : i + step]
        part[:] = lookup[part]


def auto_block(n_obs: int) -> int:
    """Assays per block for ``chunks="auto"``: about 128 MiB of float64 per block."""
    return max(1, math.floor((128 << 20) / max(n_obs * 8, 1)))


# ------------------------------------------------------------------------------------------
# entry points used by read_npx
# ------------------------------------------------------------------------------------------


def try_parquet(
    paths: list[Path], name: str, opts: dict, string_columns: set[str]
) -> ad.AnnData | StreamPlan | None:
    """Stream parquet file(s); ``None`` when the in-memory reader must handle the file.

    With ``opts["chunks"]`` returns the :class:`StreamPlan` (passes A and B only).
    """
    try:
        source = parquet_source(paths, string_columns)
        lazy = opts.get("chunks") is not None
        plan = scan(source, values=not lazy)
        if lazy:
            return plan
        return read_all(plan, file=name, product=opts["product"], data_format="parquet")
    except (Fallback, pa.ArrowException, OSError, UnicodeDecodeError, KeyError) as err:
        logger.debug("%s: read whole, not streamed (%s)", name, err)
        return None
    finally:
        release_arrow()


def try_csv(path: Path, name: str, info: Any, types: dict, opts: dict) -> ad.AnnData | None:
    """Stream a UTF-8 long CSV in blocks; ``None`` when the in-memory reader must read it."""
    import pyarrow.csv as pcsv

    if info.encoding != "utf-8":
        return None
    read = pcsv.ReadOptions(encoding="utf8", skip_rows=info.skip_rows, block_size=1 << 19)
    parse = pcsv.ParseOptions(delimiter=info.sep, quote_char='"', newlines_in_values=False)
    csv_opts = {"types": dict(types), "decimal": info.decimal, "read": read, "parse": parse}
    try:
        conv = pcsv.ConvertOptions(
            column_types=types,
            strings_can_be_null=True,
            decimal_point=info.decimal,
            quoted_strings_can_be_null=True,
        )
        # the schema as the streaming reader infers it (from its first block), read from
        # that block alone: opening the file would leave read-ahead blocks allocated
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
        if len(head) == 1 << 20:
            head = head[: head.rfind(b"\n") + 1]
        one = pcsv.ReadOptions(
            encoding="utf8", skip_rows=info.skip_rows, block_size=1 << 20, use_threads=False
        )
        with pcsv.open_csv(
            pa.BufferReader(head), read_options=one, parse_options=parse, convert_options=conv
        ) as reader:
            schema = reader.schema
        del reader, head
        for f in schema:  # dates stay as written (as the in-memory reader keeps them)
            t = f.type
            if pa.types.is_temporal(t) or pa.types.is_date(t) or pa.types.is_time(t):
                csv_opts["types"][f.name] = pa.string()
        ftypes = {f.name: csv_opts["types"].get(f.name, f.type) for f in schema}
        _refuse_odd_columns(list(schema.names))
        _refuse_odd_types(ftypes)
        source = csv_source(path, list(schema.names), ftypes, csv_opts)
        plan = scan(source, values=True)
        return read_all(plan, file=name, product=opts["product"], data_format="long")
    except (Fallback, pa.ArrowException, OSError, UnicodeDecodeError) as err:
        logger.debug("%s: read whole, not streamed (%s)", name, err)
        return None
    finally:
        release_arrow()


def release_arrow() -> None:
    """Hand Arrow's freed memory back to the system (jemalloc/mimalloc keep it otherwise)."""
    release = getattr(pa.default_memory_pool(), "release_unused", None)
    if release is not None:
        release()


def parquet_files(path: Path) -> list[Path]:
    """The parquet files of a directory (one dataset), sorted by name."""
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".parquet")
