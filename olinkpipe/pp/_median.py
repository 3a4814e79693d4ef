"""Exact per-group column medians and the per-group shift, for plate and intensity
normalization.

The medians are R's ``median(na.rm = TRUE)``, i.e. the values of ``np.nanmedian`` (the
mean of the two middle values is ``(a + b) / 2``; one middle value is returned as is), bit
for bit: rank tests downstream turn a 1e-9 difference in a shifted NPX into another W.
An exact median needs the middle order statistic(s) of every column, so every value is
sorted or selected once; what this module saves is everything around that:

* no ``np.nanmedian`` (its masked-array path costs ~250 ms on a 2,000 × 3,000 plate
  block) and no sort along axis 0 of a C-ordered matrix (numpy copies every strided
  column into a buffer and back);
* X is read in tiles of a few assays × all samples, transposed into **one preallocated
  buffer per thread** (samples contiguous, grouped by plate), sorted or selected there in
  place while the tile is in cache;
* per-plate medians: each plate's values form one segment of a lane, segments padded with
  NaN to one width (NaN sorts last), so a whole tile is sorted with one ``np.sort`` call
  (x86-simd-sort on AVX-512 machines) and the medians are picked at the per-lane non-NaN
  counts;
* overall medians (all samples): one ``np.partition`` per tile at a **single** ``kth``
  for every lane, although lanes hold different numbers of values: ``c`` values of
  ``-inf`` and ``P − c`` of ``+inf`` are appended to each lane so that its lower middle
  value lands at the same position ``K`` (extra extreme values do not change which value
  is the k-th of the rest); the upper middle value of an even count is the smallest
  non-NaN value after ``K`` (``np.fmin.reduce``);
* tiles are shared out to threads (``olinkpipe._parallel``; numpy releases the GIL in
  copies, sorts and partitions).

:func:`add_by_group` is the shift that follows: ``X[i, j] += factors[code[i], j]`` in
place, one read and one write of every value, by runs of rows on one plate, threaded.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import _parallel

#: below this many rows a column median sorts the rows (``pp._utils.nanmedian0``), above it
#: selects them in tiles (:func:`column_medians`): measured crossover ~700 rows on one
#: thread, lower with two
SMALL_ROWS = 512
#: values per tile buffer (0.5 MB of float64, L2-resident): 32 assays of 2,000 samples,
#: more assays when there are fewer samples (fewer Python steps per value)
TILE_VALUES = 2**16
#: assays per tile, at least and at most
TILE_MIN, TILE_MAX = 32, 1024
#: tiles per job (a job allocates its buffer once)
_JOB_TILES = 8
#: padded plate segments are used when they waste at most this fraction of the buffer
_MAX_PAD = 0.5


def runs(idx: np.ndarray) -> list[tuple[int, int]]:
    """Contiguous ``(start, stop)`` runs of sorted positions ``idx`` (also
    :func:`olinkpipe.pp._pair`'s column copies)."""
    if len(idx) == 0:
        return []
    cut = np.flatnonzero(np.diff(idx) != 1) + 1
    starts = np.r_[0, cut]
    stops = np.r_[cut, len(idx)]
    return [(int(idx[a]), int(idx[b - 1]) + 1) for a, b in zip(starts, stops, strict=True)]


def _col_tiles(cols: np.ndarray, width: int) -> list[slice]:
    """Tiles of at most ``width`` columns: slices of the contiguous runs of ``cols``
    (panels are runs of columns, so a tile of X is a view)."""
    tiles: list[slice] = []
    for lo, hi in runs(np.asarray(cols, dtype=np.intp)):
        tiles.extend(slice(a, min(a + width, hi)) for a in range(lo, hi, width))
    return tiles


class _Layout:
    """Where each group's rows sit in a lane of the tile buffer.

    Segment ``g`` holds the rows ``rows[g]`` at ``offsets[g]``, ``width[g]`` slots wide
    (NaN after its rows when padded); the rows of no group (``rest``) follow; the pad
    region for the overall median starts at ``data``.
    """

    def __init__(self, rows: Sequence[np.ndarray], rest: np.ndarray, *, pad: bool) -> None:
        sizes = np.array([len(r) for r in rows], dtype=np.intp).reshape(-1)
        rest = np.asarray(rest, dtype=np.intp)
        self.sizes = sizes
        self.n_rest = len(rest)
        seg = int(sizes.max()) if len(sizes) else 0
        self.padded = pad and len(sizes) > 0 and seg * len(sizes) <= (1 + _MAX_PAD) * sizes.sum()
        self.width = np.full(len(sizes), seg) if self.padded else sizes
        self.offsets = (np.cumsum(self.width) - self.width).astype(np.intp)
        self.seg_end = int(self.width.sum())
        self.data = self.seg_end + len(rest)
        self.total = self.data + (int(sizes.sum()) + len(rest)) // 2 + 2  # widest pad region
        # copies: (lane position, first row, last row + 1) of runs of consecutive rows
        # landing on consecutive positions (merged across groups), and gathers
        self.copies: list[list[int]] = []
        self.gathers: list[tuple[int, np.ndarray]] = []
        for off, idx in [*zip(self.offsets, rows, strict=True), (self.seg_end, rest)]:
            idx = np.asarray(idx, dtype=np.intp)
            row_runs = runs(idx)
            if len(row_runs) > 4:
                self.gathers.append((int(off), idx))
                continue
            pos = int(off)
            for lo, hi in row_runs:
                last = self.copies[-1] if self.copies else None
                if last and last[0] + last[2] - last[1] == pos and last[2] == lo:
                    last[2] = hi
                else:
                    self.copies.append([pos, lo, hi])
                pos += hi - lo
        self.nan_fill = [
            (int(o + n), int(o + w))
            for o, n, w in zip(self.offsets, sizes, self.width, strict=True)
            if n < w
        ]

    def fill(self, buf: np.ndarray, X: np.ndarray, tile) -> int:
        """Copy ``X[rows, tile]`` transposed into ``buf`` (lanes = the tile's columns)."""
        src = X[:, tile]  # a view
        w = src.shape[1]
        for pos, lo, hi in self.copies:
            np.copyto(buf[:w, pos : pos + hi - lo], src[lo:hi].T)
        for pos, idx in self.gathers:
            np.copyto(buf[:w, pos : pos + len(idx)], np.take(src, idx, axis=0).T)
        for lo, hi in self.nan_fill:
            buf[:w, lo:hi] = np.nan
        return w


def _pick(buf: np.ndarray, start: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Median of sorted (NaN last) lane segments starting at ``start`` with ``n`` values
    each (``start``, ``n``: lanes × segments); NaN where ``n == 0``. ``buf`` is
    C-contiguous (its first ``len(n)`` rows are the lanes)."""
    flat = buf.reshape(-1)
    base = start + (np.arange(n.shape[0]) * buf.shape[1])[:, None]
    lo = flat[base + np.maximum((n - 1) // 2, 0)]
    hi = flat[base + np.maximum(n // 2, 0)]
    with np.errstate(invalid="ignore", over="ignore"):  # inf + -inf, as numpy
        med = np.where(lo == hi, lo, (lo + hi) / 2)  # one middle value: itself
    med[n == 0] = np.nan
    return med


def _overall(buf: np.ndarray, lay: _Layout, n_all: np.ndarray) -> np.ndarray:
    """Median of each whole lane (``n_all`` non-NaN values each), one partition at one
    ``kth`` for all lanes (module docstring)."""
    w = len(n_all)
    half = (np.maximum(n_all, 1) - 1) // 2
    k = int(half.max()) if w else 0
    shift = k - half  # -inf values each lane needs before its own values
    n_pad = int(shift.max()) if w else 0
    end = lay.data + n_pad
    lanes = buf[:w, :end]
    if n_pad:
        pads = np.arange(n_pad)
        lanes[:, lay.data :] = np.where(pads < shift[:, None], -np.inf, np.inf)
    lanes.partition(k, axis=1)
    lo = lanes[:, k].copy()
    even = (n_all % 2 == 0) & (n_all > 0)
    hi = lo.copy()
    if even.any() and k + 1 < end:  # no copy of the lanes: reduce all, keep the even
        hi[even] = np.fmin.reduce(lanes[:, k + 1 :], axis=1)[even]
    with np.errstate(invalid="ignore", over="ignore"):
        med = np.where(lo == hi, lo, (lo + hi) / 2)
    med[n_all == 0] = np.nan
    return med


def _tile_stats(buf, isnan_buf, X, tile, lay: _Layout, groups: bool) -> tuple:
    """(overall median, group medians, group counts) of one tile, lanes × …"""
    w = lay.fill(buf, X, tile)
    view = buf[:w]
    n_groups = len(lay.sizes)
    n_grp = np.zeros((w, n_groups), dtype=np.intp)
    if groups and lay.padded:  # sort every segment with one call, count from the sort
        seg = int(lay.width[0])  # a view (sorted in place), never a copy
        segs = np.lib.stride_tricks.as_strided(
            view, (w, n_groups, seg), (view.strides[0], seg * view.strides[1], view.strides[1])
        )
        segs.sort(axis=2)
        nan = np.isnan(segs, out=isnan_buf[:w])
        first = nan.argmax(axis=2)  # NaN sorts last: the first NaN is at the count
        n_grp[...] = np.where((first == 0) & ~nan[:, :, 0], seg, first)
    elif (lay.width > 0).any():  # NaN per segment, then values per group
        full = lay.width > 0
        isnan = np.isnan(view[:, : lay.seg_end])
        n_nan = np.add.reduceat(isnan, lay.offsets[full], axis=1, dtype=np.intp)
        n_grp[:, full] = lay.width[full] - n_nan
        if groups:
            for off, width in zip(lay.offsets, lay.width, strict=True):
                if width > 1:
                    view[:, off : off + width].sort(axis=1)
    n_rest = lay.n_rest - np.isnan(view[:, lay.seg_end : lay.data]).sum(axis=1)
    n_all = n_grp.sum(axis=1) + n_rest
    med_grp = _pick(buf, lay.offsets[None, :], n_grp) if groups and n_groups else None
    return _overall(buf, lay, n_all), med_grp, n_grp, n_all


def _run(X, cols, lay: _Layout, *, groups: bool, threads: int | None) -> tuple:
    n_cols = len(cols)
    n_groups = len(lay.sizes)
    overall = np.empty(n_cols)
    med = np.empty((n_groups, n_cols))
    count = np.empty((n_groups, n_cols), dtype=np.intp)
    n_all = np.empty(n_cols, dtype=np.intp)
    tile_cols = min(TILE_MAX, max(TILE_MIN, TILE_VALUES // lay.total))
    tiles = _col_tiles(cols, tile_cols)
    # position of each tile's columns in ``cols``
    where = np.empty(X.shape[1], dtype=np.intp)
    where[cols] = np.arange(n_cols)

    def job(part):
        buf = np.empty((tile_cols, lay.total))
        seg = int(lay.width[0]) if lay.padded else 0
        isnan_buf = np.empty((tile_cols, len(lay.sizes), seg), dtype=bool)
        for tile in part:
            o, m, n, n_tot = _tile_stats(buf, isnan_buf, X, tile, lay, groups)
            at = where[tile]
            overall[at] = o
            n_all[at] = n_tot
            count[:, at] = n.T
            if m is not None:
                med[:, at] = m.T

    nbytes = X.shape[0] * n_cols * 8 if threads != 1 else 0
    with _parallel.Jobs(nbytes=nbytes) as jobs:
        for i in range(0, len(tiles), _JOB_TILES):
            jobs.add(lambda part=tiles[i : i + _JOB_TILES]: job(part))
    return overall, med, count, n_all


def group_medians(
    X: np.ndarray,
    code: np.ndarray,
    n_groups: int,
    *,
    use: np.ndarray | None = None,
    cols: np.ndarray | None = None,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Column medians over all ``use`` rows and over the ``use`` rows of each group.

    Parameters
    ----------
    X
        Samples × assays float64 numpy array (not changed).
    code
        Group of each row (``0 .. n_groups - 1``; a negative code: in no group, but in the
        overall median).
    n_groups
        Number of groups.
    use
        Rows entering the medians (all when None).
    cols
        Columns to compute (all when None); results are in this order.
    threads
        ``1``: no threads (e.g. inside a dask task); None: ``olinkpipe._parallel``'s.

    Returns
    -------
    overall : numpy.ndarray
        ``(len(cols),)`` median over the ``use`` rows, NaN skipped (NaN when none).
    medians : numpy.ndarray
        ``(n_groups, len(cols))`` median of each group (NaN when it has no value).
    counts : numpy.ndarray
        ``(n_groups, len(cols))`` non-NaN values of each group (int).

    Examples
    --------
    >>> X = np.array([[1.0, 5.0], [2.0, np.nan], [4.0, 7.0], [9.0, 8.0]])
    >>> overall, med, n = group_medians(X, np.array([0, 0, 1, 1]), 2)
    >>> overall.tolist(), med.tolist(), n.tolist()
    ([3.0, 7.0], [[1.5, 5.0], [6.5, 7.5]], [[2, 1], [2, 2]])
    """
    X = np.asarray(X, dtype=float)
    code = np.asarray(code, dtype=np.intp)
    use = np.ones(X.shape[0], dtype=bool) if use is None else np.asarray(use, dtype=bool)
    cols = np.arange(X.shape[1]) if cols is None else np.asarray(cols, dtype=np.intp)
    rows = [np.flatnonzero(use & (code == g)) for g in range(n_groups)]
    present = [g for g in range(n_groups) if len(rows[g])]  # empty groups: NaN, 0
    rest = np.flatnonzero(use & ((code < 0) | (code >= n_groups)))
    lay = _Layout([rows[g] for g in present], rest, pad=True)
    overall, med_p, count_p, _ = _run(X, cols, lay, groups=True, threads=threads)
    med = np.full((n_groups, len(cols)), np.nan)
    count = np.zeros((n_groups, len(cols)), dtype=np.intp)
    med[present] = med_p
    count[present] = count_p
    return overall, med, count


def column_medians(
    X: np.ndarray,
    rows: np.ndarray | None = None,
    cols: np.ndarray | None = None,
    *,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Median (NaN skipped; NaN when no value) and number of values of each column
    ``cols`` (all when None) of ``X[rows]`` (all rows when None), without a copy of the
    rows; ``threads`` as in :func:`group_medians`.

    Examples
    --------
    >>> X = np.array([[1.0, np.nan], [3.0, np.nan], [2.0, 4.0], [8.0, np.nan]])
    >>> med, n = column_medians(X)
    >>> med.tolist(), n.tolist()
    ([2.5, 4.0], [4, 1])
    >>> column_medians(X, np.array([0, 2]))[0].tolist()
    [1.5, 4.0]
    """
    X = np.asarray(X, dtype=float)
    rows = np.arange(X.shape[0]) if rows is None else np.asarray(rows, dtype=np.intp)
    lay = _Layout([], np.sort(rows), pad=False)  # a row listed twice counts twice
    cols = np.arange(X.shape[1]) if cols is None else np.asarray(cols, dtype=np.intp)
    overall, _, _, n = _run(X, cols, lay, groups=False, threads=threads)
    return overall, n


def add_by_group(
    X: np.ndarray,
    code: np.ndarray,
    factors: np.ndarray,
    cols: np.ndarray | None = None,
    *,
    threads: int | None = None,
) -> None:
    """``X[i, j] += factors[code[i], j]`` in place for the columns ``cols`` (all when
    None; ``factors`` has one column per column of X), row code ``-1`` taking the last
    row of ``factors``.

    Each block of consecutive rows with one code and consecutive columns is shifted by one
    broadcast add (one read and one write of every value; with every column, a block is
    contiguous in memory); the blocks are shared out to ``olinkpipe._parallel`` threads.
    Rows whose codes alternate too often for blocks are shifted by column slices with a
    gathered ``factors[code]``.
    """
    code = np.asarray(code, dtype=np.intp)
    cols = np.arange(X.shape[1]) if cols is None else np.asarray(cols, dtype=np.intp)
    n = len(code)
    if n == 0 or len(cols) == 0:
        return
    bounds = np.r_[0, np.flatnonzero(code[1:] != code[:-1]) + 1, n]
    col_runs = runs(cols)
    blocks: list[tuple[int, int, int, int]] = []  # rows lo:hi, columns c0:c1
    if len(bounds) - 1 <= max(8, n // 16):
        step = max(16, -(-n // (8 * _parallel.n_threads())))  # rows per block, at most
        for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
            for a in range(int(lo), int(hi), step):
                blocks.extend((a, min(a + step, int(hi)), c0, c1) for c0, c1 in col_runs)

        def shift(block):
            lo, hi, c0, c1 = block
            view = X[lo:hi, c0:c1]  # np.add(out=): ``X[a:b] += f`` would copy it back again
            np.add(view, factors[code[lo], c0:c1], out=view)

    else:
        blocks = [(0, n, sl.start, sl.stop) for sl in _col_tiles(cols, 256)]

        def shift(block):
            _, _, c0, c1 = block
            view = X[:, c0:c1]
            np.add(view, factors[:, c0:c1][code], out=view)

    nbytes = X.shape[0] * len(cols) * 8 if threads != 1 else 0
    with _parallel.Jobs(nbytes=nbytes) as jobs:
        per_job = -(-len(blocks) // (4 * _parallel.n_threads()))
        for i in range(0, len(blocks), per_job):
            jobs.add(lambda part=blocks[i : i + per_job]: [shift(b) for b in part])
