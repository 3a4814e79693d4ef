"""Average ranks with ties, vectorised over the rows (assays): the floor under the rank
tests (:mod:`olinkpipe.tl._kernels`, :mod:`olinkpipe.tl._rwilcox`,
:mod:`olinkpipe.tl.nonparametric`), which all import it and none of which it imports.
"""

from __future__ import annotations

import numpy as np

__all__ = ["runs", "rank_sorted", "signed_abs_ranks"]


def runs(new: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average 1-based ranks and the tie term from a sorted-row "starts a new value" mask."""
    k = new.shape[1]
    pos = np.broadcast_to(np.arange(k), new.shape)
    start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    last = np.ones(new.shape, dtype=bool)
    last[:, :-1] = new[:, 1:]
    end = np.minimum.accumulate(np.where(last, pos, k - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = (start + end) / 2.0 + 1.0
    ranks[~valid] = np.nan
    t = (end - start + 1).astype(float)
    ties = np.where(valid, t * t - 1.0, 0.0).sum(axis=1)
    return ranks, ties


def rank_sorted(x: np.ndarray) -> tuple:
    """Sort each row of ``x`` (assays × values) and give average ranks with ties.

    Returns ``order, sorted, ranks, n, ties`` where ``ranks`` (1-based, NaN for the NaN
    entries, which sort last) is aligned with ``sorted``, ``n`` counts the non-NaN values
    per row and ``ties`` is the tie term Σ(t³ − t) over groups of equal values.
    """
    order = np.argsort(x, axis=1)
    s = np.take_along_axis(x, order, axis=1)
    valid = ~np.isnan(s)
    new = np.ones(s.shape, dtype=bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    ranks, ties = runs(new, valid)
    return order, s, ranks, valid.sum(axis=1), ties


def signed_abs_ranks(dt: np.ndarray) -> tuple:
    """Sum of ranks of |d| over positive d, count and tie term, per row; NaN/0 dropped.

    Sorting one unsigned 64-bit key per value, the IEEE bits of ``d`` rotated left by one,
    ``(bits(|d|) << 1) | sign``, orders the values by |d| (the bits of non-negative
    doubles sort like the numbers) while carrying the sign in the lowest bit (1 =
    negative): no argsort needed. NaN and zeros get the largest key (lowest bit 1, so they
    never count as positive) and sort last. Rows without ties (the usual case for NPX)
    take ranks 1..n directly; only rows with ties go through the average-rank computation.
    """
    isn = np.isnan(dt)
    n_all = dt.shape[1] - np.count_nonzero(isn, axis=1)
    drop = dt == 0
    drop |= isn
    n = dt.shape[1] - np.count_nonzero(drop, axis=1)
    bits = dt.view(np.uint64)
    key = bits << np.uint64(1)
    key |= bits >> np.uint64(63)
    key[drop] = np.uint64(0xFFFFFFFFFFFFFFFF)
    key.sort(axis=1)
    k = key.shape[1]
    same = (key[:, 1:] ^ key[:, :-1]) < np.uint64(2)  # equal |d| (sign bit ignored)
    same &= np.arange(1, k)[None, :] < n[:, None]
    tied = same.any(axis=1)
    neg = (key & np.uint64(1)).astype(np.float64)  # negative, NaN or zero
    v = k * (k + 1) / 2.0 - neg @ np.arange(1.0, k + 1.0)
    ties = np.zeros(key.shape[0])
    if tied.any():
        rows = np.flatnonzero(tied)
        new = np.ones((rows.size, k), dtype=bool)
        new[:, 1:] = ~same[rows]
        valid = np.arange(k)[None, :] < n[rows][:, None]
        ranks, ties[rows] = runs(new, valid)
        v[rows] = np.where(neg[rows] == 0, ranks, 0.0).sum(axis=1)
    return v, n, ties, n_all
