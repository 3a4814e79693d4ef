"""The rank-sum test of one pair of samples, for modules outside :mod:`olinkpipe.tl`.

A public-internal door (no leading underscore, not in ``tl.__all__``) into
:func:`olinkpipe.tl._kernels.rank_sum` (``ci_method="uniroot"``, with
:mod:`olinkpipe.tl._rwilcox` for R's estimate and CI), so that
:func:`olinkpipe.clinical.compare_groups` and :func:`olinkpipe.tl.differential` compute the
Wilcoxon rank-sum test, its Hodges–Lehmann estimate and its CI with one kernel. Other
subpackages import from here, not from ``tl``'s private modules.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._kernels import rank_sum

__all__ = ["RankSum", "rank_sum_test"]


@dataclass(frozen=True)
class RankSum:
    """Result of :func:`rank_sum_test` (R's ``htest`` fields; ``reason`` empty when tested)."""

    statistic: float
    p_value: float
    estimate: float
    ci_low: float
    ci_high: float
    exact: bool
    reason: str


def rank_sum_test(x: np.ndarray, y: np.ndarray, *, conf_level: float = 0.95) -> RankSum:
    """R's ``wilcox.test(x, y, conf.int = TRUE, conf.level = conf_level)`` (two-sided).

    ``exact = NULL`` and ``correct = TRUE`` as R's defaults: the exact null distribution,
    the median of all ``x_i - y_j`` and the CI from their order statistics when both
    samples have fewer than 50 values and there are no ties; otherwise the normal
    approximation with tie and continuity correction, and R's estimate and CI, the roots
    of ``W(d)`` found by R's own ``uniroot`` path (equal to R bit for bit; tested to 1e-8).
    ``statistic`` is R's ``W`` (U of ``x``). ``NaN`` values are dropped; an empty sample
    gives NaN and a ``reason``. Where R stops with an error (every value of ``x - d``
    tied with ``y`` at the only candidate shift, e.g. both samples constant) the
    estimate is that shift and the CI NaN.

    Examples
    --------
    >>> r = rank_sum_test(np.array([2.5, 5.0, 6.0, 7.0]), np.array([1.0, 2.0, 3.0, 4.0]))
    >>> r.statistic, round(r.p_value, 4), r.estimate
    (14.0, 0.1143, 3.0)
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    out = rank_sum(x[:, None], y[:, None], conf_level=conf_level, ci_method="uniroot", min_n=1)
    est = float(out["estimate"][0])
    xs, ys = x[~np.isnan(x)], y[~np.isnan(y)]
    if np.isnan(est) and xs.size and ys.size:
        lo, hi = xs.min() - ys.max(), xs.max() - ys.min()
        if lo == hi:  # the shift is known; R cannot compute a CI around it
            est = float(lo)
    return RankSum(
        statistic=float(out["statistic"][0]),
        p_value=float(out["p_value"][0]),
        estimate=est,
        ci_low=float(out["ci_low"][0]),
        ci_high=float(out["ci_high"][0]),
        exact=bool(out["exact"][0]),
        reason=str(out["reason"][0]),
    )
