"""Block-wise kernels shared by the in-memory and the dask paths of ``pp``.

Every per-assay statistic is a column-independent kernel ``fn(block) -> (k, n_cols)`` run
on column slices: in memory on slices of about :data:`SLICE_BYTES` (so a temporary is
at most a slice, never a copy of X), on a dask array once per assay block
(``map_blocks``; each block holds all samples and a panel-aligned block of assays). Both
paths run the same numpy code on the same values of each column, so their results are
bit for bit equal. Per-sample statistics over a panel gather that panel's assay blocks
into one (all samples × the panel's assays) and reduce it to a few numbers per sample.
Only such small per-sample / per-assay vectors are computed; a dask-backed X stays lazy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import anndata as ad
import numpy as np

from .._blockwise import add_by_code, by_code, expand_by_code, from_columns  # noqa: F401 (pp)
from .._dask import is_dask, require_dask
from .._layout import panels
from .._parallel import SLICE_BYTES, column_slices  # noqa: F401 (shared with tl)

#: float64 bytes per column slice in memory (at least 64 assays): a kernel's temporaries
#: stay a few slices, never a copy of X


def is_lazy(adata: ad.AnnData) -> bool:
    """True when ``adata.X`` is a dask array (the dask path of ``pp``)."""
    return is_dask(adata.X)


def per_assay(
    fn: Callable[..., np.ndarray],
    arrays: Sequence,
    *,
    k: int = 1,
    dtype=float,
    vectors: Sequence[np.ndarray] = (),
) -> np.ndarray:
    """``fn(*blocks, *vector_blocks) -> (k, n_cols)`` over column blocks of ``arrays``.

    ``arrays`` (same shape) are all numpy or all dask (chunks aligned to the first's);
    ``vectors`` are small per-assay numpy arrays (``(m, n_vars)``, or 1-D) sliced to the
    same columns. Returns a ``(k, n_vars)`` numpy array; a dask input is computed to that
    small result only.
    """
    first = arrays[0]
    n_cols = first.shape[1]
    vecs = [np.atleast_2d(np.asarray(v)) for v in vectors]
    flat = [np.ndim(v) == 1 for v in vectors]
    n_arrays = len(arrays)  # the closure must not hold the arrays: dask tokenizes it

    def call(*blocks):
        b, v = blocks[:n_arrays], blocks[n_arrays:]
        v = [x[0] if f else x for x, f in zip(v, flat, strict=True)]
        return np.asarray(fn(*b, *v), dtype=dtype).reshape(k, b[0].shape[1])

    if is_dask(first):
        da = require_dask("a dask-backed AnnData")
        arrs = [first] + [_aligned(a, first.chunks) for a in arrays[1:]]
        arrs += [da.from_array(v, chunks=((v.shape[0],), first.chunks[1])) for v in vecs]
        res = da.map_blocks(call, *arrs, chunks=((k,), first.chunks[1]), dtype=dtype)
        return np.asarray(res.compute())
    out = np.empty((k, n_cols), dtype=dtype)
    for sl in column_slices(n_cols, first.shape[0]):
        out[:, sl] = call(*(a[:, sl] for a in arrays), *(v[:, sl] for v in vecs))
    return out


def per_sample(
    fn: Callable[..., np.ndarray], arrays: Sequence, cols: np.ndarray, *, k: int
) -> np.ndarray:
    """``fn(*blocks) -> (n_obs, k)`` on ``arrays[:, cols]`` (one panel), as numpy.

    On dask the panel's columns are gathered into one block per array (all samples × the
    panel's assays; a panel-aligned layout makes that a concatenation of whole blocks).
    """
    return per_sample_many(fn, arrays, [cols], k=k)[0]


def per_sample_many(
    fn: Callable[..., np.ndarray], arrays: Sequence, col_sets: Sequence[np.ndarray], *, k: int
) -> list[np.ndarray]:
    """:func:`per_sample` for several panels; on dask computed together (one pass)."""
    first = arrays[0]
    n = first.shape[0]

    def call(*b):
        return np.asarray(fn(*b), dtype=float).reshape(b[0].shape[0], k)

    if is_dask(first):
        da = require_dask("a dask-backed AnnData")
        import dask

        lazy = []
        for cols in col_sets:
            cols = np.asarray(cols, dtype=np.intp)
            sub = [_aligned(a, first.chunks)[:, cols].rechunk({0: -1, 1: -1}) for a in arrays]
            lazy.append(da.map_blocks(call, *sub, chunks=((n,), (k,)), dtype=float))
        return [np.asarray(r) for r in dask.compute(*lazy)]
    out = []
    for cols in col_sets:
        cols = np.asarray(cols, dtype=np.intp)
        contiguous = len(cols) and np.array_equal(cols, np.arange(cols[0], cols[0] + len(cols)))
        sel = slice(int(cols[0]), int(cols[0]) + len(cols)) if contiguous else cols
        out.append(call(*(a[:, sel] for a in arrays)))
    return out


def _aligned(a, chunks):
    """``a`` as a dask array with ``chunks`` (a numpy layer next to a dask X is wrapped)."""
    da = require_dask("a dask-backed AnnData")
    if not is_dask(a):
        return da.from_array(np.asarray(a), chunks=chunks)
    return a if a.chunks == chunks else a.rechunk(chunks)


def rows(X, rows: np.ndarray) -> np.ndarray:
    """``X[rows]`` as numpy (a few rows, e.g. bridge or negative-control samples)."""
    rows = np.asarray(rows, dtype=np.intp)
    if is_dask(X):
        return np.asarray(X[rows].compute())
    return np.asarray(X)[rows]


def rows_of(arrays: Sequence, rows: np.ndarray) -> list[np.ndarray]:
    """:func:`rows` of several arrays; the dask ones computed together (one pass)."""
    rows = np.asarray(rows, dtype=np.intp)
    lazy = [i for i, a in enumerate(arrays) if is_dask(a)]
    out = [None if i in lazy else np.asarray(a)[rows] for i, a in enumerate(arrays)]
    if lazy:
        import dask

        for i, value in zip(lazy, dask.compute(*(arrays[i][rows] for i in lazy)), strict=True):
            out[i] = np.asarray(value)
    return out


def panel_chunks(adata: ad.AnnData, max_assays: int | None = None) -> tuple[int, ...]:
    """Assay chunk sizes aligned to panels: one block per run of a panel's assays (at most
    ``max_assays`` assays each), never spanning two panels."""
    pans = panels(adata)
    if len(pans) == 0:
        return (0,)
    starts = np.flatnonzero(np.r_[True, pans[1:] != pans[:-1]])
    bounds = np.r_[starts, len(pans)]
    sizes: list[int] = []
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        n = int(hi - lo)
        step = n if not max_assays else int(max_assays)
        sizes.extend([step] * (n // step) + ([n % step] if n % step else []))
    return tuple(sizes)


def to_dask(adata: ad.AnnData, *, max_assays: int | None = None) -> ad.AnnData:
    """A copy of ``adata`` whose X and layers are dask arrays in the ``pp`` layout (all
    samples × panel-aligned assay blocks); obs, var, obsm and uns stay in memory."""
    da = require_dask("to_dask")
    chunks = ((adata.n_obs,), panel_chunks(adata, max_assays))
    out = adata.copy()
    out.X = da.from_array(np.asarray(adata.X), chunks=chunks)
    for key in list(out.layers):
        out.layers[key] = da.from_array(np.asarray(adata.layers[key]), chunks=chunks)
    return out


def nanquantile_sorted(srt: np.ndarray, n: np.ndarray, q: float) -> np.ndarray:
    """Column quantile ``q`` (numpy's ``linear`` = R type 7) of NaN-last sorted columns.

    ``srt`` is ``np.sort(block, axis=0)``, ``n`` the non-NaN count per column; the same
    arithmetic as ``np.nanquantile`` (virtual index, floor, ``_lerp``), so equal to it.
    """
    n_cols = srt.shape[1]
    cols = np.arange(n_cols)
    nf = n.astype(float)
    virtual = nf * q + (1 + q * (1 - 1 - 1)) - 1
    prev = np.floor(virtual)
    gamma = virtual - prev
    prev_i = np.clip(prev.astype(np.intp), 0, np.maximum(n - 1, 0))
    next_i = np.clip(prev_i + 1, 0, np.maximum(n - 1, 0))
    a = srt[prev_i, cols] if srt.shape[0] else np.full(n_cols, np.nan)
    b = srt[next_i, cols] if srt.shape[0] else np.full(n_cols, np.nan)
    with np.errstate(invalid="ignore"):
        diff = b - a
        out = a + diff * gamma
        hi = gamma >= 0.5
        out[hi] = (b - diff * (1 - gamma))[hi]
    out[n == 0] = np.nan
    return out
