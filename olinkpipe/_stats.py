"""Small statistical helpers shared by every module (one home for BH)."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def bh_adjust(p_values: ArrayLike) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values; NaN in, NaN out.

    ``m`` is the number of non-NaN p-values (the number of tests performed),
    as R's ``p.adjust(method = "BH")`` with NA-removed input and PyDESeq2.

    Parameters
    ----------
    p_values
        Array of p-values of any shape; NaN marks an untested entry.

    Returns
    -------
    numpy.ndarray
        Adjusted p-values (same shape), capped at 1.

    Examples
    --------
    >>> bh_adjust([0.01, 0.04, np.nan, 0.03]).round(3).tolist()
    [0.03, 0.04, nan, 0.04]
    """
    p = np.asarray(p_values, dtype=float)
    flat = p.ravel()
    out = np.full(flat.shape, np.nan)
    ok = ~np.isnan(flat)
    m = int(ok.sum())
    if m:
        pv = flat[ok]
        order = np.argsort(pv, kind="mergesort")
        ranked = pv[order] * m / np.arange(1, m + 1)
        adj = np.minimum.accumulate(ranked[::-1])[::-1]
        res = np.empty(m)
        res[order] = np.minimum(adj, 1.0)
        out[ok] = res
    return out.reshape(p.shape)
