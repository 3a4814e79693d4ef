"""Wilcoxon rank-sum test with the Hodges–Lehmann shift and its CI, as R's ``wilcox.test``.

Private kernel of :func:`olinkpipe.clinical.compare_groups`.
"""

from __future__ import annotations

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

    def root(zq: float) -> float:
        f_lo, f_hi = wdiff(lo, zq), wdiff(hi, zq)
        if f_lo <= 0:
            return lo
        if f_hi >= 0:
            return hi
        return float(optimize.brentq(wdiff, lo, hi, args=(zq,), xtol=1e-10))

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
