"""Per-batch bookkeeping of the streaming reader (:mod:`olinkpipe.io.stream`): global
category codes of text columns over batches (:class:`_Dict`), whether a key is constant
within each group (:class:`_Const`, over the runs of :class:`_Runs`), and the conversion of
a batch's column to float64."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ._stream_source import Fallback
from .convert import _Column

__all__ = ["_Const", "_Dict", "_PlateLod", "_Runs", "_is_numeric", "_values"]


class _Dict:
    """Global codes for a text column over batches, in from_long's order (first appearance
    of each batch's dictionary entries), with the entries rows use."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}
        self.values: list[Any] = []
        self.used = np.zeros(0, dtype=bool)
        # the last dictionary's cache entry: [dictionary, lookup + [-1], final lookup + [-1],
        # flagged entries (QC), lookup is the identity, final lookup is the identity]
        self._last: list[Any] | None = None
        self.final: np.ndarray | None = None  # global -> final code (-1 unused)
        # new entries are numbered under a lock: pass B's metadata thread and the main
        # thread (or dask block tasks) may meet a new dictionary at the same time, and
        # ``setdefault(v, len(index))`` is not atomic across threads
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:
        """Pickled into dask tasks (distributed): everything but the lock."""
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _local(self, arr: pa.Array) -> tuple[np.ndarray, list[Any]]:
        """Batch indices (-1 = null) and the cache entry of the batch's dictionary."""
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if not pa.types.is_dictionary(arr.type):
            if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
                arr = pc.cast(arr, pa.string())
            arr = pc.dictionary_encode(arr)
        dictionary = arr.dictionary
        last = self._last  # one read: another thread may replace it (pass B's metadata
        # checks share the Panel dictionary with the main thread; dask block tasks)
        if last is None or not last[0].equals(dictionary):
            if not (
                pa.types.is_string(dictionary.type) or pa.types.is_large_string(dictionary.type)
            ):
                dictionary = pc.cast(dictionary, pa.string())
            with self._lock:
                lookup = np.fromiter(
                    (self.index.setdefault(v, len(self.index)) for v in dictionary.to_pylist()),
                    dtype=np.int32,
                    count=len(dictionary),
                )
                if len(self.index) > len(self.values):
                    self.values = list(self.index)
            ident = np.array_equal(lookup, np.arange(len(lookup)))
            last = [arr.dictionary, np.append(lookup, np.int32(-1)), None, None, ident, None]
            self._last = last
        idx = arr.indices
        if idx.null_count:
            idx = pc.fill_null(idx, -1)
        return idx.to_numpy(zero_copy_only=False).astype(np.int32, copy=False), last

    def codes(self, arr: pa.Array, *, mark: bool = False) -> np.ndarray:
        """Global codes (-1 = null); ``mark`` records which entries rows use."""
        local, entry = self._local(arr)
        if mark:
            self.mark(local, entry)
        return local if entry[4] else entry[1][local]

    def mark(self, local: np.ndarray, entry: list[Any]) -> None:
        """Record the entries that the batch indices ``local`` use."""
        self._grow()
        n = len(entry[1]) - 1
        if n and not self.used[entry[1][:-1]].all():  # else nothing new to record
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
            self._last[2] = self._last[5] = None
        return np.asarray(self.values, dtype=object)[self.used]

    def final_codes(self, arr: pa.Array) -> np.ndarray:
        local, entry = self._local(arr)
        if entry[2] is None:
            g = entry[1][:-1]
            if len(g) and int(g.max()) >= len(self.final):  # unseen in the scan
                msg = "dictionary changed between passes"
                raise Fallback(msg)
            entry[2] = np.append(self.final[g], np.int32(-1))
            entry[5] = np.array_equal(entry[2][:-1], np.arange(len(g)))
        return local if entry[5] else entry[2][local]

    def global_codes(self, local: np.ndarray, entry: list[Any]) -> np.ndarray:
        """Global codes of batch indices ``local`` of the dictionary cached in ``entry``."""
        return local if entry[4] else entry[1][local]


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


_EXACT = 2**53  # integers up to this size are exact as float64


def _values(arr: pa.Array) -> np.ndarray:
    """A numeric column as float64 (nulls NaN), as ``pyarrow.compute.cast`` gives it; float64
    and null-free integers are converted by numpy (no copy for float64)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = arr.type
    if pa.types.is_float64(t):
        return arr.to_numpy(zero_copy_only=False)
    if pa.types.is_integer(t) and not arr.null_count and len(arr):
        x = arr.to_numpy()
        if -_EXACT <= x.min() and x.max() <= _EXACT:  # else cast's own check decides
            return x.astype(np.float64)
    return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)


def _is_numeric(t: pa.DataType) -> bool:
    return _Column("", pa.chunked_array([], type=t)).is_numeric


_NAN_BITS = np.float64(np.nan).view(np.int64)


class _PlateLod:
    """The LOD per (plate, assay) over batches, while each pair holds one value: bit for bit,
    any NaN equal to any NaN (as :func:`olinkpipe._layout.compact_lod` compares).

    Plates are the global codes of the PlateID column (0 for every row of a file without
    one); the table grows as new plates appear. ``value`` holds each pair's first value
    (NaN for pairs not seen); ``ok`` turns False at the first pair with two values.
    """

    def __init__(self, n_assay: int):
        self.n_assay = n_assay
        self.value = np.zeros((0, n_assay))
        self._bits = np.zeros((0, n_assay), dtype=np.int64)
        self._seen = np.zeros((0, n_assay), dtype=bool)
        self._complete = True  # every pair of the table seen (no first values to set)
        self.ok = True

    def _grow(self, n_plates: int) -> None:
        extra = n_plates - len(self.value)
        if extra > 0:
            self.value = np.vstack([self.value, np.full((extra, self.n_assay), np.nan)])
            self._bits = np.vstack([self._bits, np.zeros((extra, self.n_assay), np.int64)])
            self._seen = np.vstack([self._seen, np.zeros((extra, self.n_assay), bool)])
            self._complete = False

    def update(self, plate: np.ndarray, assay: np.ndarray, lod: np.ndarray) -> bool:
        """Rows of one batch (plate codes, final assay codes, LOD); returns ``ok``.

        Where rows come in long runs of one pair (files sorted by assay and plate) only the
        runs' first rows are looked up, after comparing each row with the one before.
        """
        if not self.ok or not len(lod):
            return self.ok
        self._grow(int(plate.max()) + 1)
        g = plate.astype(np.intp) * self.n_assay
        g += assay
        bits = lod.view(np.int64)
        nan = np.isnan(lod)
        if nan.any():
            bits = np.where(nan, _NAN_BITS, bits)
        change = g[1:] != g[:-1]
        n_runs = int(np.count_nonzero(change)) + 1
        if n_runs * 4 <= len(g):  # long runs: within a run each row equals the one before
            differ = bits[1:] != bits[:-1]
            if (differ & ~change).any():
                self.ok = False
                return False
            starts = np.flatnonzero(np.concatenate(([True], change)))
            g, bits, lod = g[starts], bits[starts], lod[starts]
        flat_bits = self._bits.reshape(-1)
        if not self._complete:
            seen = self._seen.reshape(-1)
            new = ~seen[g]
            if new.any():
                first = g[new][::-1]  # reversed: the first row of each new pair wins
                flat_bits[first] = bits[new][::-1]
                self.value.reshape(-1)[first] = lod[new][::-1]
                seen[first] = True
                self._complete = bool(seen.all())
        if not np.array_equal(flat_bits[g], bits):
            self.ok = False
        return self.ok

    def rows(self, plates: np.ndarray, cols: np.ndarray | slice = slice(None)) -> np.ndarray:
        """``value[plates][:, cols]``, NaN for plate -1 and plates never seen."""
        tab = np.vstack([self.value[:, cols], np.full((1, self.n_assay), np.nan)[:, cols]])
        plates = np.asarray(plates)
        ok = (plates >= 0) & (plates < len(self.value))
        return tab[np.where(ok, plates, len(self.value))]
