"""Per-cell values from small tables, numpy or dask: the floor under ``_layout`` and ``pp``.

A per group × assay table (the LOD per plate, a normalization factor per plate) becomes a
samples × assays matrix through ``codes`` (each sample's group per panel) and ``pidx``
(each assay's panel): cell (i, j) takes ``table[codes[i, pidx[j]], j]``, code ``-1`` the
table's last row. In memory this is written slice by slice
(:func:`~olinkpipe._parallel.column_slices`), on a dask array block by block, lazily; the
same numpy code runs on both, so their values are equal bit for bit.
:mod:`olinkpipe._layout` (the compact LOD) and :mod:`olinkpipe.pp` (normalization, LOD)
import these from here; ``pp._lazy`` re-exports them.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._dask import is_dask, require_dask
from ._parallel import column_slices

__all__ = ["add_by_code", "by_code", "expand_by_code", "from_columns"]


def from_columns(X, fn: Callable[[slice], np.ndarray], *, dtype) -> object:
    """A lazy array shaped and chunked as dask ``X`` whose block over columns ``sl`` is
    ``fn(sl)`` (e.g. per-panel sample masks expanded to the block's assays)."""
    da = require_dask("a dask-backed AnnData")

    def make(block, block_info=None):
        (_, _), (c0, c1) = block_info[0]["array-location"]
        return np.asarray(fn(slice(c0, c1)), dtype=dtype)

    return da.map_blocks(make, X, dtype=dtype)


def by_code(table: np.ndarray, codes: np.ndarray, pidx: np.ndarray) -> np.ndarray:
    """``table[codes[i, pidx[j]], j]`` for a column block (``table`` and ``pidx`` sliced
    to it; code ``-1`` takes the last row): whole rows of ``table`` gathered per run of
    assays of one panel, an index array of the block's size only when panels alternate."""
    pidx = np.asarray(pidx, dtype=np.intp).ravel()
    n_cols = len(pidx)
    if n_cols == 0:  # an empty block (e.g. every assay of a chunk filtered out)
        return np.empty((codes.shape[0], 0), dtype=table.dtype)
    present = np.unique(pidx)
    if len(present) and all(
        np.array_equal(codes[:, q], codes[:, present[0]]) for q in present[1:]
    ):  # every panel of the block on the same plates (the usual case): one row gather
        return table[codes[:, present[0]]]
    starts = np.flatnonzero(np.r_[True, pidx[1:] != pidx[:-1]]) if n_cols else []
    if len(starts) > 8:  # panels interleaved assay by assay: one gather with indices
        return np.take_along_axis(table, codes[:, pidx], axis=0)
    out = np.empty((codes.shape[0], n_cols), dtype=table.dtype)
    for lo, hi in zip(starts, [*starts[1:], n_cols], strict=True):
        out[:, lo:hi] = table[codes[:, pidx[lo]], lo:hi]
    return out


def add_by_code(X, codes: np.ndarray, pidx: np.ndarray, factors: np.ndarray):
    """``X[i, j] + factors[codes[i, pidx[j]], j]`` (code ``-1``: the last row of
    ``factors``): numpy ``X`` is changed in place, slice by slice, and returned; a dask
    ``X`` gives the lazy sum, block by block."""
    pidx = np.asarray(pidx, dtype=np.intp)

    if is_dask(X):
        da = require_dask("a dask-backed AnnData")

        def add(block, p, f):
            return block + by_code(f, codes, p)

        vp = da.from_array(pidx[None, :], chunks=((1,), X.chunks[1]))
        vf = da.from_array(factors, chunks=((factors.shape[0],), X.chunks[1]))
        return da.map_blocks(add, X, vp, vf, dtype=X.dtype)
    for sl in column_slices(X.shape[1], X.shape[0]):
        X[:, sl] += by_code(factors[:, sl], codes, pidx[sl])
    return X


def expand_by_code(X, codes: np.ndarray, pidx: np.ndarray, table: np.ndarray):
    """A new array ``table[codes[i, pidx[j]], j]`` (code ``-1``: the last row), NaN where
    ``X`` is NaN: a per group × assay table (e.g. LOD per plate) as samples × assays,
    written slice by slice in memory, block by block (lazily) on dask."""
    pidx = np.asarray(pidx, dtype=np.intp)

    def fill(block, p, t):
        out = by_code(t, codes, p)
        out[np.isnan(block)] = np.nan
        return out

    if is_dask(X):
        da = require_dask("a dask-backed AnnData")
        vp = da.from_array(pidx[None, :], chunks=((1,), X.chunks[1]))
        vt = da.from_array(table, chunks=((table.shape[0],), X.chunks[1]))
        return da.map_blocks(fill, X, vp, vt, dtype=float)
    out = np.empty(X.shape, dtype=float)
    for sl in column_slices(X.shape[1], X.shape[0]):
        out[:, sl] = fill(X[:, sl], pidx[sl], table[:, sl])
    return out
