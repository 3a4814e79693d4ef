"""Kernels of cross-product bridging: OlinkAnalyze's bridgeability statistics and quantile
smoothing, on bridge-pair blocks (pairs × assays, NaN where a value is not used).

Every statistic follows OlinkAnalyze 5.0.2 (``olink_normalization_bridgeable``,
``olink_normalization_qs``) and R's definitions: quantiles are R's type 7 written as R
computes them, the Kolmogorov–Smirnov statistic is ``ks.test(x, y)$statistic``, the spline
is ``lm(y ~ splines::ns(x, knots))`` evaluated with ``predict``.
"""

from __future__ import annotations

import numpy as np

# OlinkAnalyze 5.0.2 thresholds (olink_normalization_bridgeable)
MIN_COUNT = 10  # a measurement is used when its count is above this
LOW_MEDIAN_COUNT = 150  # an assay has low counts when the median count is below this
OUTLIER_IQR = 3.0  # outlier: outside median ± 3 IQR, per product
MAX_RANGE_DIFF = 1.0  # |(P90 − P10)_ref − (P90 − P10)_other| above this ...
MIN_R2 = 0.8  # ... with low counts and R² below this: not bridgeable
MAX_KS = 0.2  # KS statistic above this: quantile smoothing instead of median centring
QS_PROBS = (0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95)  # knots of the smoothing spline
_KS_CHUNK = 4_000_000  # booleans per chunk of the vectorised KS statistic


def quantile_sorted(srt: np.ndarray, n: np.ndarray, prob: float) -> np.ndarray:
    """R ``quantile(x, prob, type = 7)`` of each column of ``srt`` (sorted, NaN last, ``n``
    values), computed as R does: ``(1 − h)·x[lo] + h·x[hi]`` with ``index = 1 + (n − 1)·p``.
    """
    n = np.asarray(n)
    cols = np.arange(srt.shape[1])
    index = 1.0 + np.maximum(n - 1, 0) * prob
    lo = np.floor(index).astype(np.intp)
    hi = np.ceil(index).astype(np.intp)
    lo_c, hi_c = np.clip(lo - 1, 0, None), np.clip(hi - 1, 0, None)
    x_lo, x_hi = srt[lo_c, cols], srt[hi_c, cols]
    h = index - lo
    with np.errstate(invalid="ignore"):
        out = np.where((index > lo) & (x_hi != x_lo), (1 - h) * x_lo + h * x_hi, x_lo)
    return np.where(n > 0, out, np.nan)


def quantile_1d(x: np.ndarray, probs) -> np.ndarray:
    """R ``quantile(x, probs, type = 7, names = FALSE)`` of a vector without NaN."""
    srt = np.sort(np.asarray(x, dtype=float))
    n = len(srt)
    probs = np.asarray(probs, dtype=float)
    index = 1.0 + max(n - 1, 0) * probs
    lo = np.floor(index).astype(np.intp)
    hi = np.ceil(index).astype(np.intp)
    x_lo, x_hi = srt[lo - 1], srt[hi - 1]
    h = index - lo
    return np.where((index > lo) & (x_hi != x_lo), (1 - h) * x_lo + h * x_hi, x_lo)


def _sorted(block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return np.sort(block, axis=0), (~np.isnan(block)).sum(axis=0)


def ranges(block: np.ndarray) -> np.ndarray:
    """Per column ``quantile(x, 0.9) − quantile(x, 0.1)`` (R type 7), NaN ignored."""
    srt, n = _sorted(block)
    return quantile_sorted(srt, n, 0.9) - quantile_sorted(srt, n, 0.1)


def outliers(block: np.ndarray) -> np.ndarray:
    """OlinkAnalyze's ``olink_median_iqr_outlier``: a value outside median ± 3·IQR of its
    column (R ``median``, ``IQR`` type 7); False for NaN."""
    srt, n = _sorted(block)
    q1, q3 = quantile_sorted(srt, n, 0.25), quantile_sorted(srt, n, 0.75)
    from ._utils import median_sorted

    med = median_sorted(srt, n)
    half = (q3 - q1) * OUTLIER_IQR
    with np.errstate(invalid="ignore"):
        return (block < med - half) | (block > med + half)


def r_squared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column squared Pearson correlation of the rows where both are not NaN
    (R ``cor(x, y)^2``; NaN with fewer than two pairs or no spread)."""
    ok = ~(np.isnan(a) | np.isnan(b))
    n = ok.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma = np.where(ok, a, 0.0).sum(axis=0) / n
        mb = np.where(ok, b, 0.0).sum(axis=0) / n
        da = np.where(ok, a - ma, 0.0)
        db = np.where(ok, b - mb, 0.0)
        r = (da * db).sum(axis=0) / np.sqrt((da * da).sum(axis=0) * (db * db).sum(axis=0))
        r = np.clip(r, -1.0, 1.0)
    return np.where(n >= 2, r * r, np.nan)


def ks_statistic(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per column two-sample Kolmogorov–Smirnov statistic ``max |F_a − F_b|`` over the
    non-NaN values of each (R ``ks.test(x, y)$statistic``); NaN for an empty column.

    Both ECDFs are evaluated at every observed value of the column (ties counted with
    ``<=``, so the supremum is exact), a few columns at a time.
    """
    p, m = a.shape
    na, nb = (~np.isnan(a)).sum(axis=0), (~np.isnan(b)).sum(axis=0)
    z = np.vstack([a, b])
    out = np.full(m, np.nan)
    step = max(1, _KS_CHUNK // max(1, p * 2 * p))
    for lo in range(0, m, step):
        sl = slice(lo, lo + step)
        zz = z[:, sl][None, :, :]
        with np.errstate(invalid="ignore", divide="ignore"):
            fa = (a[:, None, sl] <= zz).sum(axis=0) / na[sl]
            fb = (b[:, None, sl] <= zz).sum(axis=0) / nb[sl]
        d = np.where(np.isnan(z[:, sl]), 0.0, np.abs(fa - fb))
        out[sl] = np.where((na[sl] > 0) & (nb[sl] > 0), d.max(axis=0), np.nan)
    return out


def _and3(*conds: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """R's ``&`` of logical vectors given as (value, is_na): FALSE wins over NA."""
    any_false = np.zeros_like(conds[0][0], dtype=bool)
    any_na = np.zeros_like(any_false)
    for val, na in conds:
        any_false |= ~val & ~na
        any_na |= na
    return ~any_false & ~any_na, ~any_false & any_na


def recommend(
    n_used: np.ndarray, range_diff: np.ndarray, low_count: np.ndarray, r2: np.ndarray, ks
) -> tuple[np.ndarray, np.ndarray]:
    """OlinkAnalyze's decision: ``(IsBridgeable, BridgingRecommendation)``.

    Not bridgeable when range difference > 1 **and** low counts **and** R² < 0.8 (R's
    three-valued ``&``: an NA condition makes the assay NotBridgeable unless another
    condition is FALSE); then KS ≤ 0.2 → MedianCentering, > 0.2 → QuantileSmoothing.
    Assays without any usable pair are NotBridgeable.
    """
    with np.errstate(invalid="ignore"):
        c1 = (range_diff > MAX_RANGE_DIFF, np.isnan(range_diff))
        c3 = (r2 < MIN_R2, np.isnan(r2))
    c2 = (np.asarray(low_count, dtype=bool), np.zeros(len(r2), dtype=bool))
    not_b, not_b_na = _and3(c1, c2, c3)
    bridgeable = ~not_b & ~not_b_na & (n_used > 0)
    with np.errstate(invalid="ignore"):
        rec = np.where(
            ~bridgeable,
            "NotBridgeable",
            np.where(
                ks <= MAX_KS, "MedianCentering", np.where(ks > MAX_KS, "QuantileSmoothing", "")
            ),
        ).astype(object)
    rec[rec == ""] = "NotBridgeable"  # KS NA: OlinkAnalyze's case_when gives NA
    return bridgeable, rec


# ---- quantile smoothing -------------------------------------------------------------


def _natural_basis(x: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """A basis of the natural cubic splines with ``knots`` (first and last = boundary
    knots), intercept included: the same function space as R's ``1 + ns(x, knots =
    interior, Boundary.knots = range)``, linear beyond the boundary knots as R extrapolates.
    Truncated-power form (Hastie, Tibshirani & Friedman, eq. 5.4–5.5) on x scaled to [0, 1].
    """
    lo, hi = knots[0], knots[-1]
    scale = hi - lo if hi > lo else 1.0
    t = (x - lo) / scale
    k = (knots - lo) / scale
    last = len(k) - 1

    def d(j):
        return (np.clip(t - k[j], 0, None) ** 3 - np.clip(t - k[last], 0, None) ** 3) / (
            k[last] - k[j]
        )

    d_prev = d(last - 1)
    cols = [np.ones_like(t), t] + [d(j) - d_prev for j in range(last - 1)]
    return np.column_stack(cols)


def qs_fit(ref_vals: np.ndarray, other_vals: np.ndarray):
    """OlinkAnalyze's ``ecdf_transform_npx`` fit for one assay, on the model pairs.

    The ECDF of the other product's values, read at its distinct values, gives
    probabilities; the reference values' quantiles (type 7) at those probabilities are the
    targets; a natural cubic spline of the distinct other-product values with knots at
    their 5, 10, 25, 50, 75, 90 and 95 % quantiles is fitted to them by least squares.
    Returns the spline knots and coefficients (None when the values have too few distinct
    values for distinct knots).
    """
    n = len(other_vals)
    vals, counts = np.unique(other_vals, return_counts=True)
    probs = np.cumsum(counts) / n  # R: cumsum(tabulate(match(x, vals))) / n
    target = quantile_1d(ref_vals, probs)
    inner = quantile_1d(vals, QS_PROBS)
    knots = np.concatenate([[vals[0]], inner, [vals[-1]]])
    if np.any(np.diff(knots) <= 0):  # fewer than 3 distinct values: no spline
        return None
    basis = _natural_basis(vals, knots)
    coef, *_ = np.linalg.lstsq(basis, target, rcond=None)
    return knots, coef


def qs_predict(model, x: np.ndarray) -> np.ndarray:
    """The fitted spline at ``x`` (NaN stays NaN)."""
    out = np.full(x.shape, np.nan)
    if model is None:
        return out
    knots, coef = model
    ok = ~np.isnan(x)
    if ok.any():
        out[ok] = _natural_basis(x[ok], knots) @ coef
    return out
