"""Rank tests as R computes them: ``wilcox.test`` (with the Hodges–Lehmann shift and its CI)
and the p-value of ``cor.test(method = "spearman")``.

Private kernels of :func:`olinkpipe.clinical.compare_groups` and
:func:`olinkpipe.clinical.correlate`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, stats

_EPS = np.finfo(float).eps


@lru_cache(maxsize=64)
def _wilcox_counts(m: int, n: int) -> tuple[int, ...]:
    """Number of arrangements giving U = 0..m*n (coefficients of the q-binomial [m+n, m])."""
    poly = np.zeros(m * n + 1, dtype=object)
    poly[:] = 0
    poly[0] = 1
    for i in range(1, m + 1):
        k = n + i
        new = poly.copy()
        new[k:] = new[k:] - poly[: len(poly) - k]  # multiply by (1 - q^k)
        for j in range(i, len(new)):  # divide by (1 - q^i)
            new[j] = new[j] + new[j - i]
        poly = new
    return tuple(int(v) for v in poly)


def qwilcox(p: float, m: int, n: int) -> int:
    """Smallest ``q`` with P(U <= q) >= p for the rank-sum U (R's ``qwilcox``, lower tail)."""
    counts = np.array(_wilcox_counts(m, n), dtype=float)
    cdf = np.cumsum(counts) / counts.sum()
    if p <= 0.5:
        target = p - 10 * _EPS
        return int(np.argmax(cdf >= target))
    # R counts from the upper tail for p > 0.5
    target = 1 - p - 10 * _EPS
    upper = np.cumsum(counts[::-1]) / counts.sum()
    return int(m * n - np.argmax(upper > target))


@dataclass(frozen=True)
class WilcoxResult:
    statistic: float
    p_value: float
    estimate: float
    ci_low: float
    ci_high: float
    exact: bool


def wilcox_test(x: np.ndarray, y: np.ndarray, *, conf_level: float = 0.95) -> WilcoxResult:
    """Two-sided rank-sum test of ``x`` vs ``y`` with R's ``conf.int = TRUE`` semantics.

    Exact (no ties and both samples < 50): p from the exact null distribution, estimate the
    median of all differences ``x_i - y_j`` and the CI their order statistics at
    ``qwilcox``. Otherwise the normal approximation with tie and continuity correction,
    and the estimate and CI as roots of the standardised statistic of ``x - d`` vs ``y``.
    The statistic is ``W = U_x`` (R's ``W`` for ``wilcox.test(x, y)``).
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    nx, ny = len(x), len(y)
    ties = len(np.unique(np.concatenate([x, y]))) < nx + ny
    exact = nx < 50 and ny < 50 and not ties
    res = stats.mannwhitneyu(
        x,
        y,
        alternative="two-sided",
        method="exact" if exact else "asymptotic",
        use_continuity=True,
    )
    alpha = 1 - conf_level
    if exact:
        diffs = np.sort(np.subtract.outer(x, y).ravel())
        qu = qwilcox(alpha / 2, nx, ny)
        if qu == 0:
            qu = 1
        ql = nx * ny - qu
        return WilcoxResult(
            float(res.statistic),
            float(res.pvalue),
            float(np.median(diffs)),
            float(diffs[qu - 1]),
            float(diffs[ql]),
            exact=True,
        )

    def wdiff(d: float, zq: float) -> float:
        r = stats.rankdata(np.concatenate([x - d, y]))
        _, nties = np.unique(r, return_counts=True)
        dz = r[:nx].sum() - nx * (nx + 1) / 2 - nx * ny / 2
        corr = np.sign(dz) * 0.5
        sigma = np.sqrt(
            (nx * ny / 12)
            * ((nx + ny + 1) - np.sum(nties**3 - nties) / ((nx + ny) * (nx + ny - 1)))
        )
        return (dz - corr) / sigma - zq

    lo, hi = float(x.min() - y.max()), float(x.max() - y.min())
    if lo == hi:  # both samples constant: the shift is known, R cannot compute a CI
        return WilcoxResult(
            float(res.statistic), float(res.pvalue), lo, np.nan, np.nan, exact=False
        )

    jumps = np.unique(np.subtract.outer(x, y))

    def root(zq: float) -> float:
        f_lo, f_hi = wdiff(lo, zq), wdiff(hi, zq)
        if f_lo <= 0:
            return lo
        if f_hi >= 0:
            return hi
        r = float(optimize.brentq(wdiff, lo, hi, args=(zq,), xtol=1e-10))
        # the statistic only jumps where x_i - d passes a y_j: snap onto that difference
        near = jumps[np.argmin(np.abs(jumps - r))]
        return float(near) if abs(near - r) <= 1e-8 * max(1.0, abs(r)) else r

    z = stats.norm.ppf(1 - alpha / 2)
    return WilcoxResult(
        float(res.statistic),
        float(res.pvalue),
        root(0.0),
        root(z),
        root(-z),
        exact=False,
    )


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
