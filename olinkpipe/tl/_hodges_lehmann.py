"""Hodges–Lehmann estimates and their confidence limits, vectorised over rows (assays).

The k-th smallest of the pairwise sums ``a[r, i] + b[r, j]`` (Walsh averages when
``triangular``) without forming them: counts by ``searchsorted`` over blocks of rows
(:class:`_Counter`), a starting guess from a grid of order statistics, then bisection on the
count. Used by the Wilcoxon kernels of :mod:`olinkpipe.tl._kernels`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["fill_hl", "kth_pair_sums"]


def fill_hl(a, b, na, nb, big_n, k_lo, k_hi, *, triangular, out):
    ok = big_n > 0
    n_ok = np.where(ok, big_n, 1.0)
    k_med = np.floor((n_ok + 1.0) / 2.0)
    est = np.full(a.shape[0], np.nan)
    if ok.any():
        rows = np.arange(a.shape[0])
        ia, ib = np.maximum(na - 1, 0), np.maximum(nb - 1, 0)
        tmin = float(np.nanmin(a[:, 0] + b[:, 0], initial=0.0))
        tmin -= abs(tmin) + 1.0
        tmax = float(np.nanmax(a[rows, ia] + b[rows, ib], initial=0.0))
        cnt = _Counter(a, b, na, nb, tmin, tmax, triangular)
        kw = {"counter": cnt, "grid": _pair_grid(a, b, na, nb, triangular=triangular)}
        ks = [np.where(ok, k_med, 1.0), np.where(ok, k_lo, 1.0), np.where(ok, k_hi, 1.0)]
        g_med, g_lo, g_hi = _estimate_kth(a, b, na, nb, ks, triangular, kw["grid"], cnt)
        vals = kth_pair_sums(a, b, na, nb, ks[0], triangular, extra=1, guess=g_med, **kw)
        odd = (n_ok % 2) == 1
        est = np.where(odd, vals[:, 0], (vals[:, 0] + vals[:, 1]) / 2.0)
        lo = kth_pair_sums(a, b, na, nb, ks[1], triangular, guess=g_lo, **kw)[:, 0]
        hi = kth_pair_sums(a, b, na, nb, ks[2], triangular, guess=g_hi, **kw)[:, 0]
        est[~ok] = np.nan
        lo[~ok] = np.nan
        hi[~ok] = np.nan
        out["ci_low"], out["ci_high"] = lo, hi
    out["estimate"] = est


# --------------------------------------------------------------------------------------
# k-th smallest of pairwise sums (Hodges–Lehmann), vectorised over rows


class _Counter:
    """Counts ``#{(i, j): a[r,i] + b[r,j] <= t[r]}`` for any subset of rows at once.

    A full count searches every ``t − a[r, i]`` in row ``r`` of ``b``: the rows of a
    small block are laid end to end with block-local offsets (small, so the comparisons
    stay exact to ~1e-13) and one ``searchsorted`` answers the whole block (queries
    ascend, so numpy reuses the previous position). Later counts start from the previous
    positions and only move the entries whose position changed (the thresholds of an
    interpolation search move little): ``b`` is kept padded with ``-inf``/``+inf`` at
    both ends of every row, so a move is one flat gather and compare per step over the
    entries still moving, with no bounds checks.

    Triangular (Walsh averages, ``a = b`` sorted): a pair ``i <= j`` with
    ``a_i + a_j <= t`` needs ``a_i <= t/2``, so only the ``h`` entries with
    ``a_i <= t/2`` are searched; the others get position ``i`` (they count nothing, and
    ``max(position, i)`` is then exact for the extraction of candidates).
    """

    def __init__(self, a, b, na, nb, tmin, tmax, triangular, *, acols=None, like=None):
        m, self.ka = a.shape
        self.kb = b.shape[1]
        if like is not None:  # same b (and bounds): share its arrays
            self.big, self.bfill, self.bflat = like.big, like.bfill, like.bflat
            self.base, self._local_b = like.base, like._local_b
        else:
            big = np.nanmax(np.abs(b), initial=0.0) + np.nanmax(np.abs(a), initial=0.0)
            self.big = big = float(big + max(abs(tmin), abs(tmax)) + 1.0)
            # missing b: above every t - a (counts nothing)
            self.bfill = np.where(np.isnan(b), 2.0 * big, b)
            pad = np.empty((m, self.kb + 2))
            pad[:, 0] = -np.inf
            pad[:, 1:-1] = self.bfill
            pad[:, -1] = np.inf
            self.bflat = pad.ravel()
            self.base = np.arange(m) * (self.kb + 2) + 1  # flat index of b[r, 0]
            self._local_b = {}
        # missing a: t - a below every b (counts nothing)
        self.afill = np.where(np.isnan(a), 4.0 * self.big, a)
        self.arev = self.afill[:, ::-1].copy()  # queries ascend along reversed rows
        self.nb = nb
        self.triangular = triangular
        # acols: the column of b that each column of a is (a subsample of columns)
        self.cols = np.arange(self.ka) if acols is None else np.asarray(acols)
        self.rev_cols = self.cols[::-1].copy()
        self.lowj = self.cols[None, :] if triangular else None
        self.last: np.ndarray | None = None

    def _rows(self, arr, rows):
        """``arr[rows]`` without a copy when ``rows`` are all rows (sorted, unique)."""
        return arr if rows.size == arr.shape[0] else arr[rows]

    def _searched(self, rows, t):
        """Entries to search: all valid ``a`` or, triangular, those with a_i <= t/2."""
        afill = self._rows(self.afill, rows)
        if self.triangular:
            h = np.count_nonzero(afill <= (t / 2.0)[:, None], axis=1)
        else:
            h = np.count_nonzero(afill < 2.0 * self.big, axis=1)
        return afill, h

    block = 8  # rows per searchsorted: small offsets keep the comparisons exact

    def _full(self, rows, t):
        ka, kb, block = self.ka, self.kb, self.block
        _, h = self._searched(rows, t)
        big_h = int(h.max(initial=0))  # search entries i < max(h) of every row: the
        # extra ones get their exact position too, and no ragged compaction is needed
        out = np.empty((rows.size, ka), dtype=np.intp)
        out[:, : ka - big_h] = self.rev_cols[: ka - big_h] if self.triangular else 0
        if big_h == 0:
            return out[:, ::-1]
        step = 8.0 * self.big
        local = (np.arange(rows.size) % block) * step
        # queries t - a_i for i = big_h-1 .. 0 (ascending within a row)
        q = (t + local)[:, None] - self._rows(self.arev, rows)[:, ka - big_h :]
        if rows.size == self.bfill.shape[0]:  # b with block-local offsets, made once
            if block not in self._local_b:
                self._local_b[block] = self.bfill + local[:, None]
            bf = self._local_b[block]
        else:
            bf = self.bfill[rows] + local[:, None]
        pos = out[:, ka - big_h :]
        for r0 in range(0, rows.size, block):
            r1 = min(r0 + block, rows.size)
            hit = np.searchsorted(bf[r0:r1].ravel(), q[r0:r1].ravel(), side="right")
            pos[r0:r1] = hit.reshape(r1 - r0, big_h)
        # positions relative to the start of each block of rows
        pos -= ((np.arange(rows.size) % block) * kb)[:, None]
        self.searched_upto = big_h
        return out[:, ::-1]

    def _moved(self, rows, t):
        afill, h = self._searched(rows, t)
        base = self._rows(self.base, rows)[:, None]
        flat_all = self._rows(self.last, rows) + base
        q_all = t[:, None] - afill
        if self.triangular:
            sel = np.flatnonzero(np.arange(self.ka)[None, :] < h[:, None])
            flat, q = flat_all.ravel()[sel], q_all.ravel()[sel]
        else:
            flat, q = flat_all.ravel(), q_all.ravel()
        bf = self.bflat
        cand = np.flatnonzero(bf[flat] <= q)  # b[idx] <= q: move up
        while cand.size:
            flat[cand] += 1
            cand = cand[bf[flat[cand]] <= q[cand]]
        cand = np.flatnonzero(bf[flat - 1] > q)  # b[idx - 1] > q: move down
        while cand.size:
            flat[cand] -= 1
            cand = cand[bf[flat[cand] - 1] > q[cand]]
        if not self.triangular:
            return flat.reshape(rows.size, self.ka) - base
        out = np.empty((rows.size, self.ka), dtype=np.intp)
        out[:] = self.cols  # position i for the entries not searched
        out.ravel()[sel] = flat - np.repeat(base.ravel(), h)
        return out

    def __call__(self, rows, t, *, incremental=False):
        if self.last is None:
            self.last = np.zeros((self.bfill.shape[0], self.ka), dtype=np.intp)
        self.searched_upto = self.ka
        idx = self._moved(rows, t) if incremental else self._full(rows, t)
        if rows.size == self.last.shape[0]:
            self.last = idx
        else:
            self.last[rows] = idx
        if self.lowj is None:
            cnt = idx.sum(axis=1)
        else:
            # entries past the searched ones sit at position i: they count nothing
            upto = self.searched_upto
            cnt = np.maximum(idx[:, :upto] - self.lowj[:, :upto], 0).sum(axis=1)
        return cnt.astype(float), idx


def _pair_grid(a, b, na, nb, *, triangular, g=24):
    """Sorted sums of a g × g grid of quantiles of each row: a cheap first guess."""
    ia = np.maximum(na - 1, 0)
    ib = np.maximum(nb - 1, 0)
    gi = np.clip(((np.arange(g) + 0.5) / g * na[:, None]).astype(int), 0, ia[:, None])
    gj = np.clip(((np.arange(g) + 0.5) / g * nb[:, None]).astype(int), 0, ib[:, None])
    grid = (
        np.take_along_axis(a, gi, axis=1)[:, :, None]
        + np.take_along_axis(b, gj, axis=1)[:, None, :]
    )
    grid = grid.reshape(a.shape[0], -1)
    if triangular:
        iu = np.triu_indices(g)
        grid = grid[:, iu[0] * g + iu[1]]
    return np.sort(np.where(np.isnan(grid), np.inf, grid), axis=1)


def _estimate_kth(a, b, na, nb, ks, triangular, grid, counter, *, stride=7, steps=1):
    """Thresholds near the k-th pair sum of every row, for each rank array in ``ks``.

    Counts only every ``stride``-th entry of ``a`` (the middle of each run of
    ``stride``, odd so that the middle is an entry) and scales by ``stride``, a midpoint
    rule for the monotone per-entry counts, so each step costs ~1/stride of an exact count; a few secant steps from the
    grid quantile then land within a few dozen ranks of ``k`` for smooth data. Only a
    first guess: :func:`kth_pair_sums` makes the result exact.
    """
    m, ka = a.shape
    rows = np.arange(m)
    acols = np.arange(min(stride // 2, ka - 1), ka, stride)
    big_n = na * (na + 1) / 2.0 if triangular else na.astype(float) * nb
    ia, ib = np.maximum(na - 1, 0), np.maximum(nb - 1, 0)
    lo = a[:, 0] + b[:, 0]
    hi = a[rows, ia] + b[rows, ib]
    finite = np.isfinite(lo) & np.isfinite(hi)
    sub = _Counter(
        np.ascontiguousarray(a[:, acols]),
        b,
        na,
        nb,
        0.0,
        0.0,
        triangular,
        acols=acols,
        like=counter,
    )
    sub.block = 64  # fewer, longer searches: the offsets' rounding is harmless here
    gsize = grid.shape[1]
    out = []
    for k in ks:
        frac = np.clip((k - 0.5) / np.maximum(big_n, 1.0), 0.0, 1.0)
        t0 = grid[rows, np.clip((frac * gsize).astype(int), 0, gsize - 1)]
        h = 2.0 / np.sqrt(gsize)
        f1 = np.clip((np.minimum(frac + h, 1.0) * gsize).astype(int), 0, gsize - 1)
        f0 = np.clip((np.maximum(frac - h, 0.0) * gsize).astype(int), 0, gsize - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = (grid[rows, f1] - grid[rows, f0]) / (
                (np.minimum(frac + h, 1.0) - np.maximum(frac - h, 0.0)) * np.maximum(big_n, 1.0)
            )
        slope = np.where(np.isfinite(slope) & (slope > 0), slope, 0.0)
        t = np.where(np.isfinite(t0), t0, 0.0)
        t = np.clip(t, lo, hi, where=finite, out=t)
        c = sub(rows, t)[0] * stride
        for _ in range(steps - 1):
            t_new = np.clip(t + (k - c) * slope, lo, hi, where=finite)
            c_new = sub(rows, t_new)[0] * stride
            with np.errstate(invalid="ignore", divide="ignore"):
                sec = (t_new - t) / (c_new - c)
            slope = np.where(np.isfinite(sec) & (sec > 0), sec, slope)
            t, c = t_new, c_new
        t = np.clip(t + (k - c) * slope, lo, hi, where=finite)
        out.append(np.where(finite, t, np.nan))
    return out


def kth_pair_sums(
    a: np.ndarray,
    b: np.ndarray,
    na: np.ndarray,
    nb: np.ndarray,
    k: np.ndarray,
    triangular: bool,
    *,
    extra: int = 0,
    window: int | None = None,
    counter: _Counter | None = None,
    grid: np.ndarray | None = None,
    guess: np.ndarray | None = None,
) -> np.ndarray:
    """Exact k-th smallest (1-based) of ``a[r, i] + b[r, j]`` for every row r.

    ``a`` and ``b`` are sorted ascending per row with NaN last (``na``, ``nb`` valid
    counts). With ``triangular`` only pairs ``j >= i`` count (Walsh averages when
    ``a = b = d/2``). Returns an array (rows, extra + 1) with the values of ranks
    ``k, k+1, …, k+extra``.

    The search brackets the answer by exact counts (one ``searchsorted`` over all rows at
    once) with interpolation steps until at most ``window`` pair sums remain between the
    bounds, then extracts those and sorts them; no pairwise matrix is ever formed, so
    memory is O(rows × n) and time O(rows × n log n) per step. ``guess`` (a first
    threshold per row, e.g. from :func:`_estimate_kth`) saves steps: with a good one the
    first exact count lands next to rank ``k`` and a second closes the bracket.
    """
    m, ka = a.shape
    res = np.full((m, extra + 1), np.nan)
    if m == 0:
        return res
    na = np.asarray(na)
    nb = np.asarray(nb)
    if window is None:
        window = max(64, ka // 2)
    k = np.asarray(k, dtype=float)
    br = _bracket(a, b, na, nb, k, k + extra, triangular, window, counter, grid, guess)
    mat, per_row = _candidates(a, b, na, br, triangular)
    _pick(res, mat, per_row, a, b, na, k, br, triangular)
    return res


@dataclass
class _Bracket:
    """Per row: the thresholds ``lo < hi`` around the wanted ranks, the counts of pair sums
    at or below them (``clo``, ``chi``), and each ``a[r, i]``'s searchsorted position in
    ``b[r]`` at both (the first ``width`` columns; ``has_hi``: ``hi`` was probed)."""

    live: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    clo: np.ndarray
    chi: np.ndarray
    idx_lo: np.ndarray
    idx_hi: np.ndarray
    has_hi: np.ndarray
    width: int


def _bracket(a, b, na, nb, k, kt, triangular, window, counter, grid, guess) -> _Bracket:
    """Close the bracket by exact counts until at most ``window`` pair sums remain in it.

    Interpolation (secant) steps on the count, starting from ``guess`` (or the quantile of
    a coarse grid of pair sums), bisection when a step leaves the bracket.
    """
    m, ka = a.shape
    ia = np.maximum(na - 1, 0)
    ib = np.maximum(nb - 1, 0)
    rows = np.arange(m)
    lo = a[:, 0] + b[:, 0]
    lo = lo - (np.abs(lo) + 1.0)
    hi = a[rows, ia] + b[rows, ib]
    big_n = na * (na + 1) / 2.0 if triangular else na.astype(float) * nb
    live = (na > 0) & (nb > 0) & (k >= 1) & (k <= big_n)
    kt = np.minimum(kt, big_n)  # ranks beyond N come back NaN
    lo[~live] = 0.0
    hi[~live] = 1.0
    if counter is None:
        counter = _Counter(a, b, na, nb, float(lo.min()), float(hi.max()), triangular)
    counter.last = None
    clo = np.zeros(m)
    chi = big_n.copy()
    idx_lo = np.zeros((m, ka), dtype=np.intp)
    idx_hi = np.empty((m, ka), dtype=np.intp)
    idx_hi[:] = nb[:, None]
    has_hi = np.zeros(m, dtype=bool)
    # triangular: entries past the searched ones sit at position i (count nothing, and
    # max(position, i) = i for the extraction), so only the first `width` columns of
    # the positions ever need updating or reading
    width = 0 if triangular else ka
    # first guess: the same quantile among pair sums of a coarse grid of each row
    if grid is None:
        grid = _pair_grid(a, b, na, nb, triangular=triangular)
    gsize = grid.shape[1]
    frac = np.clip((kt - 0.5) / np.maximum(big_n, 1.0), 0.0, 1.0)

    def gq(f):
        return grid[rows, np.clip((f * gsize).astype(int), 0, gsize - 1)]

    if guess is None:
        guess = gq(frac)
    # slope dt/dcount of the pair-sum quantile function, from the grid
    h = 2.0 / np.sqrt(gsize)
    with np.errstate(invalid="ignore"):
        slope = (gq(frac + h) - gq(frac - h)) / (
            (np.minimum(frac + h, 1.0) - np.maximum(frac - h, 0.0)) * np.maximum(big_n, 1.0)
        )
    slope = np.where(np.isfinite(slope) & (slope > 0), slope, 0.0)
    t_last = np.full(m, np.nan)
    c_last = np.full(m, np.nan)
    active = live & (chi - clo > window)
    eps = 4 * np.finfo(float).eps
    quarter = window / 4.0
    for it in range(200):
        act = np.flatnonzero(active)
        if act.size == 0:
            break
        l0, h0 = lo[act], hi[act]
        # aim a little inside the wider side so both bounds close in on the target
        aim = np.where(
            kt[act] - clo[act] > chi[act] - kt[act], kt[act] - quarter, kt[act] + quarter
        )
        aim = np.clip(aim, clo[act] + 0.5, chi[act] - 0.5)
        if it == 0:
            tt = guess[act]
        else:
            tl, cl = t_last[act], c_last[act]
            tt = tl + (aim - cl) * slope[act]
        mid = l0 + (h0 - l0) / 2.0
        tt = np.where((tt > l0) & (tt < h0), tt, mid)
        # once the bracket is narrow, update the previous positions instead of searching
        c, idx = counter(act, tt, incremental=it >= 2)
        # secant slope from this and the previous probe
        with np.errstate(invalid="ignore", divide="ignore"):
            new_slope = (tt - t_last[act]) / (c - c_last[act])
        slope[act] = np.where(np.isfinite(new_slope) & (new_slope > 0), new_slope, slope[act])
        t_last[act], c_last[act] = tt, c
        up = c >= kt[act]
        hi[act] = np.where(up, tt, h0)
        lo[act] = np.where(up, l0, tt)
        chi[act] = np.where(up, c, chi[act])
        clo[act] = np.where(up, clo[act], c)
        w = max(width, counter.searched_upto)
        if w > width and has_hi.any():  # rows bracketed earlier: new columns at i
            idx_hi[np.flatnonzero(has_hi), width:w] = np.arange(width, w)
        width = w
        r_up, r_dn = np.flatnonzero(up), np.flatnonzero(~up)
        idx_hi[act[r_up], :w] = idx[r_up, :w]
        idx_lo[act[r_dn], :w] = idx[r_dn, :w]
        has_hi[act[up]] = True
        stuck = (hi[act] - lo[act]) <= eps * (np.abs(hi[act]) + np.abs(lo[act]))
        active[act] = (chi[act] - clo[act] > window) & ~stuck
    return _Bracket(live, lo, hi, clo, chi, idx_lo, idx_hi, has_hi, width)


def _candidates(a, b, na, br: _Bracket, triangular) -> tuple[np.ndarray, np.ndarray]:
    """The pair sums in ``(lo, hi]`` of every row, sorted (rows padded with inf), and
    their number per row."""
    m, ka = a.shape
    live, idx_lo, idx_hi, has_hi, width = br.live, br.idx_lo, br.idx_hi, br.has_hi, br.width
    if triangular and not has_hi[live].all():  # a row never probed: all its columns
        if width:
            idx_hi[has_hi, width:] = np.arange(width, ka)
        width = ka
    w = width
    start = idx_lo[:, :w] if not triangular else np.maximum(idx_lo[:, :w], np.arange(w))
    stop = np.maximum(idx_hi[:, :w], start)
    length = stop - start
    if triangular:  # a missing a[i] (i >= na) has nothing in (start, stop] here
        length[~live] = 0
    else:
        length[(np.arange(w)[None, :] >= na[:, None]) | ~live[:, None]] = 0
    length = length.ravel()
    seg_w = np.flatnonzero(length)  # (row, i) cells with candidates
    seg_len = length[seg_w]
    seg = (seg_w // max(w, 1)) * ka + seg_w % max(w, 1)  # as flat indices of (m, ka)
    start = start.ravel()[seg_w]
    total = int(seg_len.sum())
    cell = np.repeat(seg, seg_len)
    row_of = cell // ka
    offs = np.arange(total) - np.repeat(np.cumsum(seg_len) - seg_len, seg_len)
    kb = b.shape[1]
    vals = a.ravel()[cell] + b.ravel()[row_of * kb + np.repeat(start, seg_len) + offs]
    per_row = np.bincount(row_of, minlength=m)
    width = max(int(per_row.max(initial=1)), 1)
    mat = np.full((m, width), np.inf)
    col = np.arange(total) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    mat.ravel()[row_of * width + col] = vals
    mat.sort(axis=1)
    return mat, per_row


def _pick(res, mat, per_row, a, b, na, k, br: _Bracket, triangular) -> None:
    """Ranks ``k, k+1, …`` of every row from its sorted candidates into ``res``."""
    ka = a.shape[1]
    rows = np.arange(a.shape[0])
    live, clo, idx_lo = br.live, br.clo, br.idx_lo
    for e in range(res.shape[1]):
        r = (k + e - clo - 1).astype(int)
        okr = live & (r >= 0) & (r < per_row)
        res[okr, e] = mat[rows[okr], r[okr]]
        below = live & (r == -1)  # the rank just below the window: the largest sum <= lo
        if below.any():
            p = idx_lo[below] - 1
            okp = (np.arange(ka)[None, :] < na[below][:, None]) & (p >= 0)
            if triangular:
                okp &= p >= np.arange(ka)[None, :]
            vb = np.take_along_axis(b[below], np.clip(p, 0, b.shape[1] - 1), axis=1)
            res[below, e] = np.where(okp, a[below] + vb, -np.inf).max(axis=1)
