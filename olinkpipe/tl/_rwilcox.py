"""R's asymptotic Wilcoxon estimate and confidence interval, reproduced bit for bit.

In the normal-approximation branch of R's ``wilcox.test(conf.int = TRUE)``
(``stats:::wilcox.test.default``, R 4.x, ``digits.rank = Inf``) the CI bounds are the
roots of the continuity-corrected standardised statistic ``W(d) - z`` and the estimate
the root of the uncorrected ``W(d)``, each found by ``uniroot(tol = 1e-4)``, i.e. by
Brent's method in C ``R_zeroin2`` (R's ``src/library/stats/src/zeroin.c``, after netlib
``c/brent.shar``). ``W`` is a step function, so the roots depend on the path of the root
finder; this module follows that path exactly: the same ``W(d)`` doubles (``x - d``,
exact zero removal, average ranks, tie-corrected sigma), the same ``qnorm`` (Wichura's
AS 241, R's ``nmath/qnorm.c``) and the same Brent iteration, vectorised over the assays
(every assay keeps its own iterate; ``W`` is evaluated for all assays still searching at
once).

Rows are assays, columns values, ``NaN`` missing (dropped per row, as ``na.omit`` in R).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .._validate import check_fraction
from ._ranks import runs, signed_abs_ranks

__all__ = ["qnorm", "zeroin", "signed_rank_uniroot", "rank_sum_uniroot"]

DBL_EPSILON = float(np.finfo(float).eps)
DBL_MAX = float(np.finfo(float).max)
TOL_ROOT = 1e-4  # wilcox.test's tol.root
MAXITER = 1000  # uniroot's maxiter


# --------------------------------------------------------------------------------------
# R's qnorm (AS 241) and mean of two values


# AS 241 coefficients, highest power first (R's qnorm.c evaluates them by Horner's rule)
_A = (2509.0809287301226727, 33430.575583588128105, 67265.770927008700853,
      45921.953931549871457, 13731.693765509461125, 1971.5909503065514427,
      133.14166789178437745, 3.387132872796366608)  # fmt: skip
_B = (5226.495278852854561, 28729.085735721942674, 39307.89580009271061,
      21213.794301586595867, 5394.1960214247511077, 687.1870074920579083,
      42.313330701600911252, 1.0)  # fmt: skip
_C = (7.7454501427834140764e-4, 0.0227238449892691845833, 0.24178072517745061177,
      1.27045825245236838258, 3.64784832476320460504, 5.7694972214606914055,
      4.6303378461565452959, 1.42343711074968357734)  # fmt: skip
_D = (1.05075007164441684324e-9, 5.475938084995344946e-4, 0.0151986665636164571966,
      0.14810397642748007459, 0.68976733498510000455, 1.6763848301838038494,
      2.05319162663775882187, 1.0)  # fmt: skip
_E = (2.01033439929228813265e-7, 2.71155556874348757815e-5, 0.0012426609473880784386,
      0.026532189526576123093, 0.29656057182850489123, 1.7848265399172913358,
      5.4637849111641143699, 6.6579046435011037772)  # fmt: skip
_F = (2.04426310338993978564e-15, 1.4215117583164458887e-7, 1.8463183175100546818e-5,
      7.868691311456132591e-4, 0.0148753612908506148525, 0.13692988092273580531,
      0.59983220655588793769, 1.0)  # fmt: skip


def _horner(r: float, coef: tuple) -> float:
    """``(((c0 * r + c1) * r + c2) ...)``: the operations of R's nested expressions."""
    acc = coef[0]
    for c in coef[1:]:
        acc = acc * r + c
    return acc


def qnorm(p: float, *, lower_tail: bool = True) -> float:
    """R's ``qnorm(p, lower.tail = lower_tail)`` (AS 241, same operations as ``qnorm.c``)."""
    if math.isnan(p) or p < 0 or p > 1:
        return math.nan
    if p == 0:
        return -math.inf if lower_tail else math.inf
    if p == 1:
        return math.inf if lower_tail else -math.inf
    p_ = p if lower_tail else 0.5 - p + 0.5  # R_DT_qIv
    q = p_ - 0.5
    if abs(q) <= 0.425:
        r = 0.180625 - q * q
        return q * _horner(r, _A) / _horner(r, _B)
    # min(p, 1 - p) < 0.075; R_DT_CIv(p) is 1 - p (lower tail) or p (upper tail)
    r = (0.5 - p + 0.5 if lower_tail else p) if q > 0 else p_
    r = math.sqrt(-math.log(r))
    if r <= 5.0:
        r += -1.6
        val = _horner(r, _C) / _horner(r, _D)
    else:
        r += -5.0
        val = _horner(r, _E) / _horner(r, _F)
    return -val if q < 0 else val


def _r_mean2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """R's ``mean(c(a, b))``: long-double sum, divide, one correction pass, round."""
    ld = np.longdouble
    if np.finfo(ld).nmant < 63:  # no x87 extended precision: plain double mean
        return (a + b) / 2.0
    la, lb = a.astype(ld), b.astype(ld)
    s = (la + lb) / ld(2)
    t = (la - s) + (lb - s)
    return (s + t / ld(2)).astype(float)


def _r_median(x: np.ndarray) -> np.ndarray:
    """R's ``median`` of each row of ``x`` (``NaN`` dropped; rows with a value)."""
    s = np.sort(x, axis=1)
    n = (~np.isnan(x)).sum(axis=1)
    rows = np.arange(x.shape[0])
    half = (n + 1) // 2 - 1
    lo = s[rows, np.maximum(half, 0)]
    hi = s[rows, np.minimum(half + 1, x.shape[1] - 1)]
    return np.where(n % 2 == 1, lo, _r_mean2(lo, hi))


# --------------------------------------------------------------------------------------
# Brent (R_zeroin2), one root per row


def zeroin(
    f: Callable[[np.ndarray, np.ndarray], np.ndarray],
    ax: np.ndarray,
    bx: np.ndarray,
    fa: np.ndarray,
    fb: np.ndarray,
    *,
    tol: float = TOL_ROOT,
    maxiter: int = MAXITER,
) -> np.ndarray:
    """R's ``uniroot(f, lower = ax, upper = bx, f.lower = fa, f.upper = fb, tol, maxiter)``
    for many independent problems at once.

    ``f(idx, d)`` returns the function values of problems ``idx`` at points ``d``. The
    iteration is ``R_zeroin2`` operation by operation (same comparisons, same
    interpolation formulas in the same order), each problem with its own state; a
    problem leaves the active set when R's loop would return. Non-finite values of
    ``f`` are replaced as R's ``uniroot`` wrapper does (``-Inf`` by ``-DBL_MAX``, ``Inf``
    and ``NaN`` by ``DBL_MAX``). As R, returns the last iterate after ``maxiter + 1``
    steps without convergence.
    """
    a = np.array(ax, dtype=float)
    b = np.array(bx, dtype=float)
    fa = np.array(fa, dtype=float)
    fb = np.array(fb, dtype=float)
    c = a.copy()
    fc = fa.copy()
    root = np.full(a.size, np.nan)
    at_a = fa == 0.0
    root[at_a] = a[at_a]
    at_b = ~at_a & (fb == 0.0)
    root[at_b] = b[at_b]
    active = np.flatnonzero(~(at_a | at_b))
    half_tol = tol / 2
    two_eps = 2 * DBL_EPSILON
    for _ in range(maxiter + 1):
        if active.size == 0:
            break
        A, B, C = a[active], b[active], c[active]
        FA, FB, FC = fa[active], fb[active], fc[active]
        prev_step = B - A
        sw = np.abs(FC) < np.abs(FB)  # swap so that b is the best approximation
        A = np.where(sw, B, A)
        B = np.where(sw, C, B)
        C = np.where(sw, A, C)
        FA = np.where(sw, FB, FA)
        FB = np.where(sw, FC, FB)
        FC = np.where(sw, FA, FC)
        tol_act = two_eps * np.abs(B) + half_tol
        new_step = (C - B) / 2
        conv = (np.abs(new_step) <= tol_act) | (FB == 0.0)
        if conv.any():
            root[active[conv]] = B[conv]
            keep = ~conv
            active = active[keep]
            A, B, C, FA, FB, FC = A[keep], B[keep], C[keep], FA[keep], FB[keep], FC[keep]
            prev_step, tol_act, new_step = prev_step[keep], tol_act[keep], new_step[keep]
            if active.size == 0:
                break
        interp = (np.abs(prev_step) >= tol_act) & (np.abs(FA) > np.abs(FB))
        if interp.any():
            i = np.flatnonzero(interp)
            a_i, b_i, c_i = A[i], B[i], C[i]
            fa_i, fb_i, fc_i = FA[i], FB[i], FC[i]
            cb = c_i - b_i
            lin = a_i == c_i
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                # linear interpolation (two distinct points)
                t1_l = fb_i / fa_i
                p_l = cb * t1_l
                q_l = 1.0 - t1_l
                # inverse quadratic interpolation
                q0 = fa_i / fc_i
                t1 = fb_i / fc_i
                t2 = fb_i / fa_i
                p_q = t2 * (cb * q0 * (q0 - t1) - (b_i - a_i) * (t1 - 1.0))
                q_q = (q0 - 1.0) * (t1 - 1.0) * (t2 - 1.0)
                p = np.where(lin, p_l, p_q)
                q = np.where(lin, q_l, q_q)
                pos = p > 0.0
                q = np.where(pos, -q, q)
                p = np.where(pos, p, -p)
                ps = prev_step[i]
                ta = tol_act[i]
                ok = (p < (0.75 * cb * q - np.abs(ta * q) / 2)) & (p < np.abs(ps * q / 2))
                step = p / q
            new_step[i] = np.where(ok, step, new_step[i])
        small = np.abs(new_step) < tol_act
        new_step = np.where(small, np.where(new_step > 0.0, tol_act, -tol_act), new_step)
        A = B
        FA = FB
        B = B + new_step
        FB = np.asarray(f(active, B), dtype=float)
        FB = np.where(np.isnan(FB), DBL_MAX, np.clip(FB, -DBL_MAX, DBL_MAX))
        adj = ((FB > 0) & (FC > 0)) | ((FB < 0) & (FC < 0))
        C = np.where(adj, A, C)
        FC = np.where(adj, FA, FC)
        a[active], b[active], c[active] = A, B, C
        fa[active], fb[active], fc[active] = FA, FB, FC
    root[active] = b[active]  # not converged: R warns and returns the last iterate
    return root


# --------------------------------------------------------------------------------------
# the standardised statistics W(d) of wilcox.test.default


def _w_signed(x: np.ndarray, d: np.ndarray, *, correct: np.ndarray | bool) -> np.ndarray:
    """Signed-rank ``W(d)`` for each row of ``x`` (zeros already removed, ``NaN`` padded)."""
    xd = x - d[:, None]  # R: xd <- x - d; xd <- xd[xd != 0]; rank(abs(xd))
    v, nx, ties, _ = signed_abs_ranks(xd)
    nx = nx.astype(float)
    zd = v - nx * (nx + 1) / 4
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.sqrt(nx * (nx + 1) * (2 * nx + 1) / 24 - ties / 48)
        corr = np.where(correct, np.sign(zd) * 0.5, 0.0)
        return (zd - corr) / sigma


def _w_ranksum(
    xs: np.ndarray,
    ys: np.ndarray,
    nx: np.ndarray,
    ny: np.ndarray,
    d: np.ndarray,
    *,
    correct: np.ndarray | bool,
) -> np.ndarray:
    """Rank-sum ``W(d)``: ranks of ``c(x - d, y)`` per row (``xs``, ``ys`` sorted, NaN last).

    ``x - d`` stays sorted (subtraction is monotone), so the stable sort of the two
    sorted runs is a single merge.
    """
    kx = xs.shape[1]
    comb = np.concatenate([xs - d[:, None], ys], axis=1)
    order = np.argsort(comb, axis=1, kind="stable")
    s = np.take_along_axis(comb, order, axis=1)
    valid = ~np.isnan(s)
    in_x = (order < kx) & valid
    same = s[:, 1:] == s[:, :-1]  # NaN never equals: only valid values tie
    tied = same.any(axis=1)
    # rows without ties: the ranks are the positions 1..n (sums of integers: exact)
    sx = in_x.astype(float) @ np.arange(1.0, s.shape[1] + 1.0)
    ties = np.zeros(s.shape[0])
    if tied.any():
        rows = np.flatnonzero(tied)
        new = np.ones((rows.size, s.shape[1]), dtype=bool)
        new[:, 1:] = ~same[rows]
        ranks, ties[rows] = runs(new, valid[rows])
        sx[rows] = np.where(in_x[rows], ranks, 0.0).sum(axis=1)
    dz = sx - nx * (nx + 1) / 2 - nx * ny / 2
    n = nx + ny
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.where(correct, np.sign(dz) * 0.5, 0.0)
        sigma = np.sqrt((nx * ny / 12) * ((n + 1) - ties / (n * (n - 1))))
        return (dz - corr) / sigma


def _sign_ok(fl: np.ndarray, fu: np.ndarray) -> np.ndarray:
    """uniroot's check ``sign(f.lower) * sign(f.upper) <= 0``."""
    return np.sign(fl) * np.sign(fu) <= 0


# --------------------------------------------------------------------------------------
# drivers


def signed_rank_uniroot(x: np.ndarray, *, conf_level: float = 0.95) -> tuple:
    """Estimate and CI of R's asymptotic signed-rank branch for each row of ``x``.

    ``x`` holds the paired differences (rows = assays, ``NaN`` = missing pair). Follows
    ``wilcox.test.default`` with ``alternative = "two.sided"``, ``mu = 0``,
    ``correct = TRUE``: zero differences removed, search interval ``[min(x), max(x)]``,
    ``alpha`` doubled until ``W(min)`` and ``W(max)`` bracket the normal quantiles
    (``rep(median(x), 2)`` if ``alpha`` reaches 1), CI bounds by ``uniroot`` on the
    continuity-corrected ``W(d) - z``, estimate by ``uniroot`` on ``W(d)`` without
    correction. Where R gives no CI (all non-zero differences equal) the estimate is
    R's midrange and the CI ``NaN``; all-zero rows give ``NaN``.

    Returns
    -------
    tuple
        ``(estimate, ci_low, ci_high, level)``, 1-D arrays, one entry per row; ``level``
        is the confidence level R reaches: ``conf_level``, or lower where R doubles
        ``alpha`` and warns "requested conf.level not achievable" (few, tied values).
    """
    check_fraction("conf_level", conf_level)
    x = np.array(x, dtype=float, ndmin=2)
    x[x == 0] = np.nan  # R: x <- x[x != 0]
    m = x.shape[0]
    est = np.full(m, np.nan)
    lo = np.full(m, np.nan)
    hi = np.full(m, np.nan)
    level = np.full(m, float(conf_level))
    n = (~np.isnan(x)).sum(axis=1)
    rows = np.flatnonzero(n > 0)
    if rows.size == 0:
        return est, lo, hi, level
    x = np.ascontiguousarray(x[rows])
    mumin = np.nanmin(x, axis=1)
    mumax = np.nanmax(x, axis=1)
    wmin = _w_signed(x, mumin, correct=True)
    fin = np.isfinite(wmin)
    # R: W(mumin) not finite -> no CI, estimate = midrange
    est[rows[~fin]] = (mumin[~fin] + mumax[~fin]) / 2
    sel = np.flatnonzero(fin)
    if sel.size == 0:
        return est, lo, hi, level
    x, mumin, mumax, wmin = x[sel], mumin[sel], mumax[sel], wmin[sel]
    rows = rows[sel]
    wmax = _w_signed(x, mumax, correct=True)
    # alpha doubling: repeat { if (Wmumin < z(1-a/2) || Wmumax > z(a/2)) a <- 2a else break }
    alpha = np.full(rows.size, np.nan)
    a = 1 - conf_level
    todo = np.ones(rows.size, dtype=bool)
    while todo.any():
        mindiff = wmin - qnorm(a / 2, lower_tail=False)
        maxdiff = wmax - qnorm(a / 2)
        stop = todo & ~((mindiff < 0) | (maxdiff > 0))
        alpha[stop] = a
        todo &= ~stop
        if a >= 1 and todo.any():  # cannot happen (W(min) >= 0 >= W(max)); R would loop
            alpha[todo] = a
            break
        a *= 2
    # R: if (alpha >= 1 || 1 - conf.level < alpha * 0.75) conf.level <- 1 - pmin(1, alpha)
    short = (alpha >= 1) | ((1 - conf_level) < alpha * 0.75)
    level[rows[short]] = 1 - np.minimum(1.0, alpha[short])
    med = alpha >= 1
    if med.any():
        mval = _r_median(x[med])
        lo[rows[med]] = mval
        hi[rows[med]] = mval
    ci = np.flatnonzero(~med)
    z_up = np.array([qnorm(v / 2, lower_tail=False) for v in alpha[ci]])
    z_lo = np.array([qnorm(v / 2) for v in alpha[ci]])
    # estimate: correct <- FALSE; uniroot(W, mumin, mumax) evaluates f.lower/f.upper itself
    all_rows = np.arange(rows.size)
    w0min = _w_signed(x, mumin, correct=False)
    w0max = _w_signed(x, mumax, correct=False)
    good = _sign_ok(w0min, w0max)
    er = all_rows[good]
    # stacked problems: lower bound, upper bound, estimate
    prow = np.concatenate([ci, ci, er])
    zq = np.concatenate([z_up, z_lo, np.zeros(er.size)])
    corr = np.concatenate([np.ones(2 * ci.size, dtype=bool), np.zeros(er.size, dtype=bool)])
    fl = np.concatenate([wmin[ci] - z_up, wmin[ci] - z_lo, w0min[er]])
    fu = np.concatenate([wmax[ci] - z_up, wmax[ci] - z_lo, w0max[er]])

    def f(idx: np.ndarray, d: np.ndarray) -> np.ndarray:
        r = prow[idx]
        return _w_signed(x[r], d, correct=corr[idx]) - zq[idx]

    roots = zeroin(f, mumin[prow], mumax[prow], fl, fu)
    k = ci.size
    lo[rows[ci]] = roots[:k]
    hi[rows[ci]] = roots[k : 2 * k]
    est[rows[er]] = roots[2 * k :]
    return est, lo, hi, level


def rank_sum_uniroot(xt: np.ndarray, xr: np.ndarray, *, conf_level: float = 0.95) -> tuple:
    """Estimate and CI of R's asymptotic rank-sum branch, ``x`` = target, ``y`` = reference.

    Rows are assays (``xt``: target values, ``xr``: reference values, ``NaN`` missing).
    Follows ``wilcox.test.default`` (two-sided, ``correct = TRUE``): search interval
    ``[min(x) - max(y), max(x) - min(y)]``, ``root()`` returns an end point when ``W``
    there is already past the quantile, else ``uniroot`` on ``W(d) - z``; estimate by
    ``uniroot`` on ``W(d)`` without correction. Rows where R stops with an error (all
    values tied, an empty group, end points of the same sign) give ``NaN``.

    Returns
    -------
    tuple
        ``(estimate, ci_low, ci_high, level)``, 1-D arrays, one entry per row (``level``
        is ``conf_level``: R's rank-sum CI never lowers it).
    """
    check_fraction("conf_level", conf_level)
    xs = np.sort(np.array(xt, dtype=float, ndmin=2), axis=1)
    ys = np.sort(np.array(xr, dtype=float, ndmin=2), axis=1)
    m = xs.shape[0]
    est = np.full(m, np.nan)
    lo = np.full(m, np.nan)
    hi = np.full(m, np.nan)
    level = np.full(m, float(conf_level))
    nxi = (~np.isnan(xs)).sum(axis=1)
    nyi = (~np.isnan(ys)).sum(axis=1)
    rows = np.flatnonzero((nxi > 0) & (nyi > 0))
    if rows.size == 0:
        return est, lo, hi, level
    xs, ys = np.ascontiguousarray(xs[rows]), np.ascontiguousarray(ys[rows])
    nx, ny = nxi[rows].astype(float), nyi[rows].astype(float)
    r_ = np.arange(rows.size)
    mumin = xs[:, 0] - ys[r_, nyi[rows] - 1]
    mumax = xs[r_, nxi[rows] - 1] - ys[r_, 0]

    def w(sub: np.ndarray, d: np.ndarray, *, correct) -> np.ndarray:
        return _w_ranksum(xs[sub], ys[sub], nx[sub], ny[sub], d, correct=correct)

    wmin = w(r_, mumin, correct=True)
    wmax = w(r_, mumax, correct=True)
    alpha = 1 - conf_level
    z_up = qnorm(alpha / 2, lower_tail=False)
    z_lo = qnorm(alpha / 2)
    # R errors on NaN comparisons (all tied) and on lower >= upper: leave those NaN
    usable = np.isfinite(wmin) & np.isfinite(wmax) & (mumin < mumax)
    probs = []  # (row, zq, correct, f.lower, f.upper, target array)
    for zq, target in ((z_up, lo), (z_lo, hi)):
        fl = wmin - zq
        fu = wmax - zq
        at_min = usable & (fl <= 0)
        at_max = usable & ~at_min & (fu >= 0)
        target[rows[at_min]] = mumin[at_min]
        target[rows[at_max]] = mumax[at_max]
        rest = np.flatnonzero(usable & ~at_min & ~at_max)
        probs.append((rest, np.full(rest.size, zq), True, fl[rest], fu[rest], target))
    w0min = w(r_, mumin, correct=False)
    w0max = w(r_, mumax, correct=False)
    er = np.flatnonzero(usable & _sign_ok(w0min, w0max))
    probs.append((er, np.zeros(er.size), False, w0min[er], w0max[er], est))
    prow = np.concatenate([p[0] for p in probs])
    zq = np.concatenate([p[1] for p in probs])
    corr = np.concatenate([np.full(p[0].size, p[2]) for p in probs])
    fl = np.concatenate([p[3] for p in probs])
    fu = np.concatenate([p[4] for p in probs])

    def f(idx: np.ndarray, d: np.ndarray) -> np.ndarray:
        return w(prow[idx], d, correct=corr[idx]) - zq[idx]

    roots = zeroin(f, mumin[prow], mumax[prow], fl, fu)
    start = 0
    for sub, *_, target in probs:
        target[rows[sub]] = roots[start : start + sub.size]
        start += sub.size
    return est, lo, hi, level
