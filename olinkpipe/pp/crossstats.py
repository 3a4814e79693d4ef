"""Kernels of cross-product bridging: OlinkAnalyze's bridgeability statistics and quantile
smoothing, on bridge-pair blocks (pairs × assays, NaN where a value is not used).

Every statistic follows OlinkAnalyze 5.0.2 (``olink_normalization_bridgeable``,
``olink_normalization_qs``) and R's definitions: quantiles are R's type 7 written as R
computes them, the Kolmogorov–Smirnov statistic is ``ks.test(x, y)$statistic``, the spline
is ``lm(y ~ splines::ns(x, knots))`` evaluated with ``predict``.

Public-internal (not in ``pp.__all__``, but no leading underscore): used by
:mod:`olinkpipe.pp.crossproduct` (the table and the normalization) and by
:mod:`olinkpipe.pl.crossproduct`, which draws the same statistics for one assay.
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


# ---- quantile smoothing (vectorised over assays) -------------------------------------

QS_CHUNK = 500_000  # float64 values per temporary of the batched fit / prediction


def _quantile_at(srt: np.ndarray, n: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """R ``quantile(x, probs, type = 7)`` per column of ``srt`` (sorted, NaN last, ``n``
    values) at a matrix of probabilities (rows × columns; NaN → NaN), as R computes it."""
    index = 1.0 + np.maximum(n - 1, 0) * probs
    ok = ~np.isnan(index)
    lo = np.where(ok, np.floor(np.where(ok, index, 1.0)), 1.0)
    hi = np.where(ok, np.ceil(np.where(ok, index, 1.0)), 1.0)
    last = max(srt.shape[0] - 1, 0)
    x_lo = np.take_along_axis(srt, np.clip(lo.astype(np.intp) - 1, 0, last), axis=0)
    x_hi = np.take_along_axis(srt, np.clip(hi.astype(np.intp) - 1, 0, last), axis=0)
    h = index - lo
    with np.errstate(invalid="ignore"):
        out = np.where((index > lo) & (x_hi != x_lo), (1 - h) * x_lo + h * x_hi, x_lo)
    return np.where(ok, out, np.nan)


def _basis_columns(x: np.ndarray, knots: np.ndarray):
    """The natural cubic spline basis functions at ``x`` (rows × assays), one array per
    function, for per-assay ``knots`` (K × assays; first and last = boundary knots).

    Same function space as R's ``1 + splines::ns(x, knots = interior, Boundary.knots =
    range)`` (linear beyond the boundary knots, as R extrapolates), in the truncated-power
    form (Hastie, Tibshirani & Friedman, eq. 5.4–5.5) on x scaled to [0, 1] per assay; the
    fitted spline does not depend on the basis.
    """
    lo, hi = knots[0], knots[-1]
    scale = np.where(hi > lo, hi - lo, 1.0)
    t = (x - lo) / scale
    k = (knots - lo) / scale
    top = len(k) - 1

    def cube(j):  # (t - k_j)_+^3, multiplications only (``**`` calls pow)
        r = np.subtract(t, k[j])
        np.maximum(r, 0.0, out=r)
        r3 = r * r
        r3 *= r
        return r3

    tail = cube(top)

    def d(j):
        out = cube(j)
        out -= tail
        with np.errstate(invalid="ignore", divide="ignore"):
            out /= k[top] - k[j]
        return out

    d_prev = d(top - 1)
    yield np.ones_like(t)
    yield t.copy()  # callers may scale the arrays in place
    for j in range(top - 1):
        out = d(j)
        out -= d_prev
        yield out


def qs_fit(ref_vals: np.ndarray, other_vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """OlinkAnalyze's ``ecdf_transform_npx`` fit, for many assays at once.

    ``ref_vals`` and ``other_vals`` are pairs × assays, NaN where a pair is not a model
    pair (the same cells in both). Per assay, the ECDF of the other product's values at its
    distinct values gives probabilities; the reference values' type-7 quantiles at those
    probabilities are the targets; a natural cubic spline of the distinct other-product
    values with knots at their 5, 10, 25, 50, 75, 90 and 95 % quantiles is fitted to them
    by least squares (``lm``; here a batched SVD solve, as ``numpy.linalg.lstsq``).
    Returns the knots (9 × assays) and coefficients (9 × assays); NaN for an assay with
    fewer than 3 distinct values (no distinct knots).
    """
    srt = np.sort(other_vals, axis=0)
    n = (~np.isnan(srt)).sum(axis=0)
    rows = np.arange(srt.shape[0])[:, None]
    with np.errstate(invalid="ignore"):
        nxt = np.vstack([srt[1:], np.full((1, srt.shape[1]), np.nan)])
        last = (rows < n) & ((rows == n - 1) | (srt != nxt))  # last copy of each value
    pos = np.cumsum(last, axis=0) - 1
    n_u = last.sum(axis=0)
    vals = np.full(srt.shape, np.nan)
    probs = np.full(srt.shape, np.nan)
    r, c = np.nonzero(last)
    vals[pos[r, c], c] = srt[r, c]
    probs[pos[r, c], c] = (r + 1) / n[c]  # R: cumsum(tabulate(match(x, vals))) / n
    target = _quantile_at(np.sort(ref_vals, axis=0), n, probs)
    inner = np.vstack([_quantile_at(vals, n_u, np.full((1, len(n_u)), p)) for p in QS_PROBS])
    top = np.take_along_axis(vals, np.maximum(n_u - 1, 0)[None, :], axis=0)
    knots = np.vstack([vals[:1], inner, top])
    with np.errstate(invalid="ignore"):
        good = (np.diff(knots, axis=0) > 0).all(axis=0)
    used = ~np.isnan(vals)
    basis = np.stack(list(_basis_columns(np.where(used, vals, 0.0), knots)), axis=-1)
    basis[~used] = 0.0  # padding rows take no part in the fit
    y = np.where(used, target, 0.0)
    coef = np.full((len(QS_PROBS) + 2, srt.shape[1]), np.nan)
    if good.any():
        coef[:, good] = _lstsq(basis[:, good].transpose(1, 0, 2), y[:, good].T).T
    return knots, coef


def _lstsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched minimum-norm least squares (``numpy.linalg.lstsq`` with ``rcond=None``) of
    ``a`` (batch × rows × k) and ``b`` (batch × rows), by SVD."""
    u, sv, vt = np.linalg.svd(a, full_matrices=False)
    cut = np.finfo(float).eps * max(a.shape[1], a.shape[2]) * sv[:, :1]
    inv = np.where(sv > cut, 1.0 / np.where(sv > cut, sv, 1.0), 0.0)
    ub = np.einsum("bri,br->bi", u, b) * inv
    return np.einsum("bij,bi->bj", vt, ub)


def qs_predict(knots: np.ndarray, coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The fitted splines at ``x`` (rows × assays; NaN stays NaN, as R's ``predict``)."""
    out = np.zeros(x.shape)
    for k, col in enumerate(_basis_columns(x, knots)):
        col *= coef[k]
        out += col
    return out


def quantile_smooth(ref_vals: np.ndarray, other_vals: np.ndarray, x: np.ndarray) -> np.ndarray:
    """:func:`qs_fit` on the model pairs and :func:`qs_predict` at ``x`` (rows × assays),
    a block of assays at a time."""
    out = np.empty(x.shape)
    rows = max(ref_vals.shape[0] * (len(QS_PROBS) + 2), x.shape[0], 1)
    step = max(1, QS_CHUNK // rows)
    for lo in range(0, x.shape[1], step):
        sl = slice(lo, lo + step)
        knots, coef = qs_fit(ref_vals[:, sl], other_vals[:, sl])
        out[:, sl] = qs_predict(knots, coef, x[:, sl])
    return out
