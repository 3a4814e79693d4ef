"""Passes A and B of the streaming reader (:mod:`olinkpipe.io.stream`): everything but the
per-cell values, as a :class:`StreamPlan`.

A. the key columns (SampleID, OlinkID, Panel): the samples, assays and panels, in the order
   :func:`~olinkpipe.io.convert.from_long` gives them (dictionary order, unused entries
   dropped);
B. the keys and every non-measurement column: which rows exist (the ``measured`` mask), the
   plate and QC per sample and panel, and whether each other column is constant per sample
   (``obs``), per assay (``var``) or neither (a layer); and the LOD per (plate, assay),
   stored as the assays × plates table of :mod:`olinkpipe._layout` when that reproduces
   it cell for cell. With ``values`` pass B also scatters the value and per-cell columns
   (the full LOD only from the first (plate, assay) pair that holds two LODs, filled from
   the table so far, or where the table would not reproduce it).
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._layers import early_skip, wanted
from ._stream_source import Fallback, Source, read_ahead, release_arrow
from ._stream_track import _Const, _Dict, _is_numeric, _PlateLod, _Runs, _values
from .convert import ASSAY_LEVEL, MEASUREMENT_LEVEL, _is_pass, resolve_roles

__all__ = ["StreamPlan", "scan"]

_PANEL_CAP = 64  # panels per file the per-(sample, panel) grids allow
_ROWS = 4096  # rows per step of the row-blocked helpers below


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
    #: the LOD as ``(assays × plates table, plate labels)`` when that reproduces it cell for
    #: cell (:mod:`olinkpipe._layout`); None: a full layer
    lod_table: tuple[np.ndarray, list[str]] | None = None
    #: ``read_npx(layers=...)``: the per-cell columns kept (None: all) and those left out
    keep: tuple[str, ...] | None = None
    left_out: list[str] = field(default_factory=list)

    @property
    def value_cols(self) -> list[str]:
        """Columns read in pass C: value, LOD (unless a plate table) and the other per-cell
        columns."""
        lod = [self.roles["lod"]] if self.roles["lod"] and self.lod_table is None else []
        return [self.roles["value"], *lod, *self.layer_cols]


def scan(
    source: Source, *, values: bool = False, keep: tuple[str, ...] | None = None
) -> StreamPlan:
    """Passes A and B; raises :class:`Fallback` for anything the streaming path leaves out.

    With ``values`` pass B also scatters the value, LOD and numeric per-cell columns (and
    the extra pass for columns that fail their first slot the columns themselves), so the
    whole read takes two passes in the common case: ``plan.prefilled`` holds them. Per-cell
    columns not in ``keep`` (None: all) are left out: measurement-level ones are not read,
    others only as far as their placement needs (:mod:`olinkpipe.io._layers`).
    """
    sc = _Scan(source, values=values, keep=keep)
    sc.pass_a()
    sc.setup_b()
    # row groups decoded ahead hold at most half a matrix (the read's peak is about 2);
    # the metadata columns of each batch are checked by a second thread (disjoint state)
    with ThreadPoolExecutor(max_workers=1) as meta:
        sc.meta_pool = meta
        for u, b in read_ahead(source, sc.read_b, budget=sc.n_obs * sc.n_assay * 4):
            sc.batch_b(u, b)
        sc.wait_meta()
    sc.finish_b()
    sc.place()
    sc.panel_grids()
    sc.lod_layout()
    release_arrow()  # the batches' memory, before the AnnData is built
    return sc.plan()


class _Scan:
    """The state of one scan, step by step (see :func:`scan`)."""

    def __init__(self, source: Source, *, values: bool, keep: tuple[str, ...] | None = None):
        """Roles and key dictionaries; refuses what the streaming path leaves out."""
        self.source, self.values, self.keep = source, values, keep
        columns = [c for c in source.columns if c not in ("", "Unnamed: 0", "...1")]
        if len(set(columns)) != len(columns):
            msg = "repeated column names"
            raise Fallback(msg)
        roles = resolve_roles(columns)
        if any(roles[r] is None for r in ("sample", "olinkid", "value")):
            msg = "required column missing"
            raise Fallback(msg)
        for r in ("value", "lod"):
            if roles[r] is not None and not _is_numeric(source.types[roles[r]]):
                msg = f"{r} column stored as text"
                raise Fallback(msg)
        self.columns, self.roles = columns, roles
        self.scol, self.acol, self.pcol = roles["sample"], roles["olinkid"], roles["panel"]
        self.dicts = {self.scol: _Dict(), self.acol: _Dict()}
        if self.pcol:
            self.dicts[self.pcol] = _Dict()

    # --- pass A ------------------------------------------------------------------------------

    def pass_a(self) -> None:
        """Samples, assays and panels."""
        dicts = self.dicts
        keys = [c for c in (self.scol, self.acol, self.pcol) if c]
        n_rows = 0
        for _, b in read_ahead(self.source, keys):
            n_rows += b.num_rows
            for c in keys:
                local, entry = dicts[c]._local(b.column(c))
                if len(local) and local.min() < 0:
                    msg = f"missing {c}"
                    raise Fallback(msg)
                dicts[c].mark(local, entry)
        if n_rows == 0:
            msg = "no rows"
            raise Fallback(msg)
        release_arrow()  # pass A's batches, before the matrices are allocated
        self.n_rows = n_rows
        self.s_uni, self.a_uni = dicts[self.scol].finish(), dicts[self.acol].finish()
        if self.pcol:
            self.p_uni = dicts[self.pcol].finish()
        else:
            self.p_uni = np.array(["unknown"], dtype=object)
        for uni in (self.s_uni, self.a_uni):
            stripped = pd.Series([str(u).strip() for u in uni], dtype=object)
            if stripped.duplicated().any():
                msg = "IDs differing only by spaces"
                raise Fallback(msg)
        self.n_obs, self.n_assay, self.n_panel = len(self.s_uni), len(self.a_uni), len(self.p_uni)
        if self.n_panel > _PANEL_CAP:
            msg = "too many panels"
            raise Fallback(msg)

    # --- pass B ------------------------------------------------------------------------------

    def setup_b(self) -> None:
        """The columns pass B reads, their trackers and the arrays it fills."""
        roles, columns, dicts = self.roles, self.columns, self.dicts
        n_obs, n_assay, n_panel = self.n_obs, self.n_assay, self.n_panel
        special = {self.scol, self.acol, roles["value"], roles["lod"], roles["plate"]}
        self.special = (special | {roles["qc"]}) - {None}
        self.meta_cols = [
            c for c in columns if c not in self.special and c not in MEASUREMENT_LEVEL
        ]
        self.skipped = early_skip(self.keep, columns, self.special)  # never read
        self.direct_layers = [
            c
            for c in columns
            if c not in self.special and c in MEASUREMENT_LEVEL and c not in self.skipped
        ]
        self.text = text = {c for c in columns if not _is_numeric(self.source.types[c])}
        for c in self.meta_cols + self.direct_layers:
            if c in text and c not in dicts:
                dicts[c] = _Dict()
        for c in (roles["plate"], roles["qc"]):
            if c:
                dicts[c] = _Dict()
        assay_level = ASSAY_LEVEL | {roles[k] for k in ("assay", "uniprot", "panel") if roles[k]}
        # from_long tries var first for assay-level columns, obs first for the others; both
        # slots are tracked at once, and a column that fails both is a layer from then on
        self.first_slot = {c: "var" if c in assay_level else "obs" for c in self.meta_cols}
        sizes = {"obs": n_obs, "var": n_assay}
        self.trackers = {
            (c, slot): _Const(sizes[slot], floaty=c not in text)
            for c in self.meta_cols
            for slot in ("obs", "var")
        }
        keys = {self.scol, self.acol, self.pcol, roles["plate"], roles["qc"]}
        self.read_b = [c for c in columns if c in keys]
        self.read_b += [c for c in self.meta_cols + self.direct_layers if c not in self.read_b]
        self.filled: dict[str, np.ndarray] = {}
        if self.values:
            self.filled[roles["value"]] = np.full(n_obs * n_assay, np.nan)
            self.read_b.append(roles["value"])
        # the LOD per (plate, assay) while constant; the full LOD only from the first pair
        # that is not (and only when reading values)
        self.lod_t = _PlateLod(n_assay)
        self.lod_full: np.ndarray | None = None
        if roles["lod"]:
            self.read_b.append(roles["lod"])
        # layers read in this pass: per-cell columns, and (from the batch where they fail both
        # slots) metadata columns; ``late`` counts the rows read before, read again below
        self.late: dict[str, int] = {c: 0 for c in self.direct_layers}
        self.spec: dict[str, np.ndarray] = {}
        if self.values:
            self.spec = {c: _layer_array(n_obs * n_assay, c in text) for c in self.direct_layers}
        self.panel_t = _Const(n_assay, floaty=False)
        self.plate_t = _Const(n_obs * n_panel, floaty=False)
        self.qc_t = _Const(n_obs * n_panel, floaty=False)
        self.qc_any = np.zeros(n_obs * n_panel, dtype=bool)
        self.measured = np.zeros(n_obs * n_assay, dtype=bool)
        self.unit_assays = np.zeros((len(self.source.units), n_assay), dtype=bool)
        self.last_s = self.last_a = None
        self.s_changes = self.a_changes = self.rows_done = 0
        self.meta_pool: ThreadPoolExecutor | None = None
        self._meta_job: Future | None = None

    def batch_b(self, u: int, b: Any) -> None:
        """One batch of pass B."""
        dicts, roles, n_assay, n_panel = self.dicts, self.roles, self.n_assay, self.n_panel
        s = dicts[self.scol].final_codes(b.column(self.scol))
        a = dicts[self.acol].final_codes(b.column(self.acol))
        runs = {"obs": _Runs(s, self.n_obs), "var": _Runs(a, n_assay)}
        if self.pcol:
            p = dicts[self.pcol].final_codes(b.column(self.pcol))
        else:
            p = np.zeros(len(s), np.int32)
        cell = np.multiply(s, n_assay, dtype=np.int64)
        cell += a
        self.measured[cell] = True
        self.unit_assays[u] = runs["var"].present
        for c, arr in self.filled.items():
            v = _values(b.column(c))
            if np.isinf(v).any():
                msg = "infinite values"
                raise Fallback(msg)
            arr[cell] = v
        if len(s):
            self.s_changes += runs["obs"].changes + (
                self.last_s is not None and s[0] != self.last_s
            )
            self.a_changes += runs["var"].changes + (
                self.last_a is not None and a[0] != self.last_a
            )
            self.last_s, self.last_a = s[-1], a[-1]
        self.panel_t.update(runs["var"], p)
        sp_dtype = np.int32 if self.n_obs * n_panel < 2**31 else np.int64
        sp_codes = np.multiply(s, n_panel, dtype=sp_dtype)
        sp_codes += p
        sp = _Runs(sp_codes, self.n_obs * n_panel)
        q = None
        if roles["plate"]:
            local, entry = dicts[roles["plate"]]._local(b.column(roles["plate"]))
            if len(local) and local.min() < 0:
                msg = "missing PlateID"
                raise Fallback(msg)
            self.plate_t.update(sp, local, entry[1])
            if not self.plate_t.ok:
                msg = "a SampleID on two plates within a panel"
                raise Fallback(msg)
            if self.lod_t.ok and roles["lod"]:
                q = dicts[roles["plate"]].global_codes(local, entry)
        if roles["lod"]:
            self._lod(b.column(roles["lod"]), q, a, cell)
        if roles["qc"]:
            _track_qc(dicts[roles["qc"]], b.column(roles["qc"]), self.qc_t, sp, self.qc_any)
        self.wait_meta()  # at most one batch's metadata checks in flight
        if self.meta_pool is None:
            self._meta(b, runs, cell, self.rows_done)
        else:
            self._meta_job = self.meta_pool.submit(self._meta, b, runs, cell, self.rows_done)
        self.rows_done += b.num_rows

    def wait_meta(self) -> None:
        """Wait for the metadata checks of the last batch (raising what they raised)."""
        job, self._meta_job = self._meta_job, None
        if job is not None:
            job.result()

    def _full_lod(self) -> np.ndarray:
        """The flat full LOD, filled from the plate table built so far."""
        return _expand_lod(
            self.lod_t,
            self._plate_codes(),
            self.panel_t.first,
            self.measured.reshape(self.n_obs, self.n_assay),
        ).reshape(-1)

    def _lod(self, col: Any, q: np.ndarray | None, a: np.ndarray, cell: np.ndarray) -> None:
        """The LOD of one batch: tracked per (plate, assay); scattered into the full LOD
        once that exists."""
        v = _values(col)
        if np.isinf(v).any():
            msg = "infinite values"
            raise Fallback(msg)
        if self.lod_t.ok:
            q = np.zeros(len(v), np.int32) if q is None else q
            if not self.lod_t.update(q, a, v) and self.values:  # first pair with two values
                self.lod_full = self._full_lod()
        if self.lod_full is not None:
            self.lod_full[cell] = v

    def _plate_codes(self) -> np.ndarray:
        """Each (sample, panel)'s plate as the LOD tracker codes it (-1: none yet)."""
        if self.roles["plate"]:
            return self.plate_t.first.reshape(self.n_obs, self.n_panel)
        return np.zeros((self.n_obs, self.n_panel), dtype=np.int32)

    def _meta(self, b: Any, runs: dict[str, _Runs], cell: np.ndarray, rows_done: int) -> None:
        """Constancy of the metadata columns; layer columns scattered (``rows_done``: rows
        of the batches before this one)."""
        for c in self.meta_cols:
            tr = self.trackers
            pair = [(tr[c, k], runs[k]) for k in ("obs", "var") if tr[c, k].ok]
            if pair:
                _track(b.column(c), self.dicts.get(c), pair)
                if not any(t.ok for t, _ in pair) and wanted(self.keep, c):
                    self.late[c] = rows_done
                    if self.values:
                        self.spec[c] = _layer_array(self.n_obs * self.n_assay, c in self.text)
        for c in self.late:
            if self.late[c] <= rows_done:
                _scatter_layer(b.column(c), self.dicts.get(c), self.spec, c, cell)

    def finish_b(self) -> None:
        """Checks over the whole pass; the rows of late layers read before they were known."""
        if not self.panel_t.ok:
            msg = "an OlinkID on two panels"
            raise Fallback(msg)
        if int(np.count_nonzero(self.measured)) != self.n_rows:
            msg = "a (SampleID, OlinkID) pair occurs twice"
            raise Fallback(msg)
        _read_early(
            self.source,
            self.dicts,
            self.scol,
            self.acol,
            self.n_assay,
            self.late,
            self.spec,
            self.text,
        )
        if self.roles["assay"] and not self.trackers[self.roles["assay"], "var"].ok:
            msg = "an OlinkID with two Assay names"
            raise Fallback(msg)

    # --- placements ----------------------------------------------------------------------

    def place(self) -> None:
        """Each column to obs, var or a layer (as from_long places it)."""
        roles, dicts, text = self.roles, self.dicts, self.text
        second = {c: "obs" if s1 == "var" else "var" for c, s1 in self.first_slot.items()}
        self.obs_cols: dict[str, np.ndarray] = {}
        self.var_cols: dict[str, np.ndarray] = {}
        self.layer_cols: list[str] = []
        self.coded: dict[str, np.ndarray] = {}
        # QC that varies within a sample's panel: a per-cell text layer, as in from_long
        qc_layer = roles["qc"] if roles["qc"] and not self.qc_t.ok else None
        self.qc_layer = qc_layer
        for c in self.columns:
            if (c in self.special and c != qc_layer) or c in self.skipped:
                continue
            if c in self.direct_layers or c == qc_layer:
                self.layer_cols.append(c)
                continue
            for slot in (self.first_slot[c], second[c]):
                t = self.trackers[c, slot]
                if t.ok:
                    per = t.first
                    if c in text:
                        uni = dicts[c].finish(keep_all=True)
                        per = np.where(per >= 0, dicts[c].final[np.maximum(per, 0)], -1)
                        per = np.append(uni, None).astype(object)[per]
                    (self.obs_cols if slot == "obs" else self.var_cols)[c] = per
                    break
            else:
                self.layer_cols.append(c)
        self.left_out = list(self.skipped)
        for c in list(self.layer_cols):
            if c != qc_layer and not wanted(self.keep, c):
                self.layer_cols.remove(c)
                self.left_out.append(c)
                self.spec.pop(c, None)
        for c in self.layer_cols:
            if c in self.spec:  # scattered in pass B: text codes to their final categories
                if c in text:
                    dicts[c].finish()
                    _remap(self.spec[c], np.append(dicts[c].final, np.int32(-1)))
                self.filled[c] = self.spec[c]
        for c in self.layer_cols:
            if c in text:
                self.coded[c] = np.asarray([str(u) for u in dicts[c].finish()], dtype=object)

    def _per_panel(self, t: _Const, c: str | None) -> np.ndarray:
        """Final codes per (sample, panel) of a column tracked per (sample, panel)."""
        if c is None:
            return np.full(self.n_obs * self.n_panel, -1, dtype=np.int32)
        self.dicts[c].finish()
        f = self.dicts[c].final
        return np.where(t.first >= 0, f[np.maximum(t.first, 0)], -1)

    def panel_grids(self) -> None:
        """Plate and QC per (sample, panel), and which (sample, panel) pairs have rows."""
        roles, n_obs, n_panel = self.roles, self.n_obs, self.n_panel
        on_panel = _seen_grid(self.measured, n_obs, self.n_assay, n_panel, self.panel_t.first)
        self.on_panel = on_panel
        if roles["plate"]:
            q_uni = self.dicts[roles["plate"]].finish(keep_all=True)
            plate_codes = self._per_panel(self.plate_t, roles["plate"])
            plate_mat = np.append(q_uni, "").astype(object)[plate_codes]
        else:  # from_long: one plate named "" for every sample
            plate_mat = np.full(n_obs * n_panel, "", dtype=object)
        self.plate_mat = plate_mat.reshape(n_obs, n_panel)
        qc_mat = np.full(n_obs * n_panel, "", dtype=object)
        if self.qc_layer:
            cat_pass = _is_pass(self.coded[self.qc_layer])
            cats = [str(c) for c in self.coded[self.qc_layer]]
            bad_labels = [c for c, ok in zip(cats, cat_pass, strict=True) if not ok]
            good_labels = [c for c, ok in zip(cats, cat_pass, strict=True) if ok and c]
            qc_mat = np.where(
                self.qc_any,
                bad_labels[0] if bad_labels else "WARN",
                good_labels[0] if good_labels else "PASS",
            )
            qc_mat = np.where(on_panel, qc_mat, "").astype(object)
        elif roles["qc"]:
            quni = self.dicts[roles["qc"]].finish()
            vals = np.append(quni, None).astype(object)[self._per_panel(self.qc_t, roles["qc"])]
            vals = np.where(pd.isna(vals), "", vals)
            qc_mat = np.where(on_panel, vals, "").astype(object)
        self.qc_mat = qc_mat.reshape(n_obs, n_panel)

    def plan(self) -> StreamPlan:
        """The :class:`StreamPlan` of this scan."""
        n_obs, n_assay = self.n_obs, self.n_assay
        return StreamPlan(
            source=self.source,
            roles=self.roles,
            columns=self.columns,
            dicts=self.dicts,
            n_obs=n_obs,
            n_assay=n_assay,
            sample_uni=self.s_uni,
            assay_uni=self.a_uni,
            panel_uni=self.p_uni,
            assay_panel=self.panel_t.first.astype(np.int64),
            measured=self.measured.reshape(n_obs, n_assay),
            plate_mat=self.plate_mat,
            qc_mat=self.qc_mat,
            on_panel=self.on_panel,
            obs_cols=self.obs_cols,
            var_cols=self.var_cols,
            layer_cols=self.layer_cols,
            coded=self.coded,
            unit_assays=self.unit_assays,
            row_order="sample" if self.s_changes < self.a_changes else "assay",
            qc_layer=self.qc_layer,
            prefilled={c: v.reshape(n_obs, n_assay) for c, v in self.filled.items()},
            n_rows=self.n_rows,
            lod_table=self.lod_table,
            keep=self.keep,
            left_out=self.left_out,
        )

    def lod_layout(self) -> None:
        """The LOD as the plate table when that reproduces it; else, when reading values,
        the full LOD (``filled``)."""
        self.lod_table = None
        if self.lod_t.ok:
            plate = self.roles["plate"]
            names = [str(v) for v in self.dicts[plate].values] if plate else None
            self.lod_table = _compact_table(
                self.lod_t,
                self._plate_codes(),
                names,
                self.plate_mat,
                self.panel_t.first,
                self.measured.reshape(self.n_obs, self.n_assay),
            )
        if self.lod_table is None and self.values and self.roles["lod"]:
            if self.lod_full is None:
                self.lod_full = self._full_lod()
            self.filled[self.roles["lod"]] = self.lod_full
        self.lod_t = self.lod_full = None  # type: ignore[assignment]


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
    if entry[3] is None:  # flagged local entries of this dictionary, cached with it
        bad = ~_is_pass(np.asarray(d.values, dtype=object))
        entry[3] = np.append(bad[entry[1][:-1]], False)
    bad_local = entry[3]
    if bad_local.any():
        flagged = np.flatnonzero(bad_local[:-1])
        if len(flagged) == 1:  # one flagged entry (WARN): compare instead of a gather
            rows = local == flagged[0]
        else:
            rows = bad_local[local]
        if rows.any():
            qc_any[sp.groups[rows]] = True


def _seen_grid(
    measured: np.ndarray, n_obs: int, n_assay: int, n_panel: int, assay_panel: np.ndarray
) -> np.ndarray:
    """(sample, panel) pairs with at least one row, flattened."""
    m = measured.reshape(n_obs, n_assay)
    out = np.zeros((n_obs, n_panel), dtype=bool)
    for k in range(n_panel):
        out[:, k] = m[:, assay_panel == k].any(axis=1)
    return out.ravel()


def _remap(codes: np.ndarray, lookup: np.ndarray) -> None:
    """``codes[:] = lookup[codes]`` in place, a block of rows at a time (-1 stays -1)."""
    flat = codes.reshape(-1)
    step = _ROWS * 256
    for i in range(0, len(flat), step):
        part = flat[i : i + step]
        part[:] = lookup[part]


def _expand_lod(
    lod_t: _PlateLod, plate: np.ndarray, assay_panel: np.ndarray, measured: np.ndarray
) -> np.ndarray:
    """The full samples × assays LOD of the cells in ``measured`` from the per-(plate,
    assay) values (NaN elsewhere); ``plate`` holds each (sample, panel)'s plate code."""
    full = np.full(measured.shape, np.nan)
    for k in range(plate.shape[1]):
        cols = np.flatnonzero(assay_panel == k)
        if len(cols):
            full[:, cols] = lod_t.rows(plate[:, k], cols)
    full[~measured] = np.nan
    return full


def _compact_table(
    lod_t: _PlateLod,
    plate: np.ndarray,
    names: list[str] | None,
    plate_mat: np.ndarray,
    assay_panel: np.ndarray,
    measured: np.ndarray,
) -> tuple[np.ndarray, list[str]] | None:
    """``(assays × plates table, plate labels)`` exactly as
    :func:`olinkpipe._layout.compact_lod` makes them from the full LOD, or None where it
    would keep the full layer.

    Each (plate, assay) pair holds one LOD (``lod_t.ok``). As there, the labels are the
    plates in order of first appearance over samples × panels (panels in ``var`` order; one
    plate ``""`` without PlateID), and a pair's value is its first sample's LOD on the
    panel: a pair whose first sample has no row for the assay gets NaN, so any other LOD
    in that pair keeps the full layer. ``names``: the plate codes' labels (None: no PlateID
    column); a plate named ``""`` is left to ``compact_lod`` (None).
    """
    order = pd.unique(assay_panel)  # panels in var order, as _layout orders them
    tab = plate_mat[:, order]
    if names is None:
        labels, codes = [""], np.zeros(plate.shape, dtype=np.intp)
        glob = np.zeros(1, dtype=np.intp)
    else:
        if "" in names:
            return None
        labels = [str(p) for p in pd.unique(tab.ravel()) if p != ""]
        index = {n: i for i, n in enumerate(names)}
        glob = np.asarray([index[lab] for lab in labels], dtype=np.intp)
        inv = np.full(len(names) + 1, -1, dtype=np.intp)
        inv[glob] = np.arange(len(glob))
        codes = np.where(plate >= 0, inv[plate], -1)  # -1 (no plate) maps to inv[-1] = -1
    table = np.full((len(labels), len(assay_panel)), np.nan)
    for k in range(plate.shape[1]):
        cols = np.flatnonzero(assay_panel == k)
        q, first = np.unique(codes[:, k], return_index=True)
        keep = q >= 0
        q, first = q[keep], first[keep]
        if not len(cols) or not len(q):
            continue
        vals = lod_t.rows(glob[q], cols)
        missing = ~measured[np.ix_(first, cols)]
        if (missing & ~np.isnan(vals)).any():  # first sample without a row: NaN in the table
            return None
        vals[missing] = np.nan
        table[np.ix_(q, cols)] = vals
    return np.ascontiguousarray(table.T), labels
