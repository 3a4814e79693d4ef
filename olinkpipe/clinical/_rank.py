"""Cliff's delta and the p-value of R's ``cor.test(method = "spearman")``.

Private kernels of :func:`olinkpipe.clinical.compare_groups` and
:func:`olinkpipe.clinical.correlate`. The rank-sum test itself (``wilcox.test``) is the
one kernel of :mod:`olinkpipe.tl.ranktests`, shared with :func:`olinkpipe.tl.differential`.
"""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np
from scipy import stats


def cliffs_delta(x: np.ndarray, y: np.ndarray) -> float:
    """Cliff's delta: P(X > Y) - P(X < Y) over all pairs."""
    return float(np.mean(np.sign(np.subtract.outer(np.asarray(x), np.asarray(y)))))


# --------------------------------------------------------------------------- Spearman
_SMALL_N = 9  # exact enumeration up to here, as R's prho
# Edgeworth series coefficients of Best & Roberts (1975), Algorithm AS 89
_AS89 = (0.2274, 0.2531, 0.1745, 0.0758, 0.1033, 0.3932, 0.0879, 0.0151, 0.0072, 0.0831,
         0.0131, 4.6e-4)  # fmt: skip


@lru_cache(maxsize=_SMALL_N)
def _s_counts(n: int) -> np.ndarray:
    """Null distribution of ``S = sum (i - p_i)^2`` over all n! permutations (counts by S)."""
    perms = np.array(list(itertools.permutations(range(n))), dtype=np.int64)
    return np.bincount(((perms - np.arange(n)) ** 2).sum(axis=1))


def _s_upper(s: float, n: int) -> float:
    """P(S >= s) under independence: exact for n <= 9, else AS 89's Edgeworth series."""
    if s <= 0:
        return 1.0
    if s > (n**3 - n) / 3:
        return 0.0
    if n <= _SMALL_N:
        counts = _s_counts(n)
        return float(counts[int(np.ceil(s)) :].sum() / counts.sum())
    c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12 = _AS89
    b = 1.0 / n
    x = (6.0 * (s - 1) * b / (n * n - 1) - 1) * np.sqrt(1 / b - 1)
    y = x * x
    u = (
        x
        * b
        * (
            c1
            + b * (c2 + c3 * b)
            + y
            * (
                -c4
                + b * (c5 + c6 * b)
                - y * b * (c7 + c8 * b - y * (c9 - c10 * b + y * b * (c11 - c12 * y)))
            )
        )
    )
    p = u / np.exp(y / 2) + stats.norm.sf(x)
    return float(min(max(p, 0.0), 1.0))


def spearman_p(rho: float, n: int) -> float:
    """Two-sided p of Spearman's rho without ties as R's ``cor.test`` (``exact = NULL``).

    ``S = (n^3 - n)(1 - rho) / 6``; the tail of ``S`` on the side of the observation
    (exact permutation distribution for n <= 9, Edgeworth series of AS 89 up to n = 1289),
    doubled and capped at 1. For n >= 1290 R (and this function) use the t approximation.
    """
    if n >= 1290:
        t = rho * np.sqrt((n - 2) / (1 - rho * rho)) if abs(rho) < 1 else np.inf
        return float(2 * stats.t.sf(abs(t), n - 2))
    q = (n**3 - n) * (1 - rho) / 6
    if q > (n**3 - n) / 6:
        p = _s_upper(round(q), n)
    else:  # S is even: P(S <= q) = 1 - P(S >= q + 2)
        p = 1.0 - _s_upper(round(q) + 2, n)
    return min(2.0 * p, 1.0)
