"""Array-only kernels for two-group tests, vectorised over the assays (columns).

Nothing here knows about AnnData. Every kernel takes float arrays whose columns are assays
and whose rows are samples (or pairs), with ``NaN`` for a missing value, and returns a dict
of 1-D arrays (one entry per assay). Missing values are dropped per assay, as
``nan_policy="omit"`` does in scipy.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd
from scipy import special, stats

__all__ = [
    "paired_moments",
    "one_sample_t_moments",
    "two_sample_t",
    "signed_rank",
    "rank_sum",
    "rank_sorted",
    "kth_pair_sums",
]

MIN_N = 3


def _result(m: int) -> dict[str, np.ndarray]:
    keys = ["estimate", "ci_low", "ci_high", "statistic", "df", "p_value"]
    out = {k: np.full(m, np.nan) for k in keys}
    out["reason"] = np.full(m, "", dtype=object)
    out["blanked"] = np.zeros(m, dtype=bool)  # True once a reason is set
    return out


def _nan_moments(x: np.ndarray, *, overwrite: bool = False) -> tuple:
    """Count, mean and centred sum of squares per column, NaN skipped (two-pass)."""
    isn = np.isnan(x)
    work = x if overwrite else x.copy()
    np.copyto(work, 0.0, where=isn)
    n = x.shape[0] - np.count_nonzero(isn, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = work.sum(axis=0) / n
    work -= mean
    np.copyto(work, 0.0, where=isn)
    ss = np.einsum("ij,ij->j", work, work)
    return n, mean, ss


def t_quantile(level: float, df: np.ndarray) -> np.ndarray:
    """``stats.t.ppf(level, df)`` evaluated once per distinct df (df are few)."""
    df = np.asarray(df, dtype=float)
    codes, uniq = pd.factorize(df.ravel())  # hashing: cheaper than np.unique's sort
    inv = np.where(codes < 0, uniq.size, codes)  # NaN df -> NaN quantile
    uniq = np.append(uniq, np.nan)
    with np.errstate(invalid="ignore"):
        q = special.stdtrit(uniq, level)
    q = np.where(np.isinf(uniq), special.ndtri(level), q)
    return q[inv].reshape(df.shape)


def t_two_sided_p(t: np.ndarray, df: np.ndarray) -> np.ndarray:
    """Two-sided p of Student's t (same special function as ``stats.t.sf``)."""
    with np.errstate(invalid="ignore"):
        return 2.0 * special.stdtr(df, -np.abs(t))


def _t_p_ci(est, se, df, conf_level, out):
    with np.errstate(invalid="ignore", divide="ignore"):
        t = est / se
    out["estimate"] = est
    out["statistic"] = t
    out["df"] = df
    out["p_value"] = t_two_sided_p(t, df)
    q = t_quantile(0.5 + conf_level / 2.0, df)
    out["ci_low"] = est - q * se
    out["ci_high"] = est + q * se


def paired_moments(
    x: np.ndarray,
    ir: np.ndarray,
    it: np.ndarray,
    cols: np.ndarray | None = None,
    *,
    block_bytes: int = 1 << 21,
) -> tuple:
    """Per assay: pairs used, mean and centred sum of squares of ``d = x[it] − x[ir]``,
    and the mean of ``x[ir]`` over the same pairs (NaN in either member drops the pair).

    Works through blocks of pairs (whole rows gathered into two buffers of about
    ``block_bytes``) so that every pass after the gathers runs in cache; ``x`` is read
    once and the difference matrix is never materialised in full. Missing cells are
    found once per block (``isnan`` of the differences) and zeroed by position, which
    costs time in proportion to the number of missing cells. The sum of squares is
    taken in one pass as ``Σd² − (Σd)²/n``; assays where that cancels (``|mean|`` above
    ~10 standard deviations, or all differences equal) are recomputed with an exact
    two-pass sum, so the result is accurate to a few ulps and exactly tiny when all
    differences are equal.
    """
    x = np.asarray(x, dtype=float)
    if cols is not None and cols.size < 0.75 * x.shape[1]:
        x = x[:, cols]  # few columns wanted: copy them once
        cols = None
    m = x.shape[1]
    npair = ir.size
    ir = np.asarray(ir, dtype=np.intp)
    it = np.asarray(it, dtype=np.intp)
    rows = int(max(1, min(npair, block_bytes // (8 * max(m, 1)))))
    nan_cnt = np.zeros(m, dtype=np.int64)
    s1 = np.zeros(m)
    s2 = np.zeros(m)
    sref = np.zeros(m)
    a_buf = np.empty((rows, m))
    b_buf = np.empty_like(a_buf)
    m_buf = np.empty(a_buf.shape, dtype=bool)
    for r0 in range(0, npair, rows):
        r1 = min(r0 + rows, npair)
        a, b, isn = a_buf[: r1 - r0], b_buf[: r1 - r0], m_buf[: r1 - r0]
        np.take(x, ir[r0:r1], axis=0, out=a, mode="clip")  # valid indices; unbuffered
        np.take(x, it[r0:r1], axis=0, out=b, mode="clip")
        np.subtract(b, a, out=b)
        np.isnan(b, out=isn)
        miss = np.flatnonzero(isn)
        if miss.size * 8 > isn.size:  # dense missingness: masked passes are cheaper
            np.copyto(b, 0.0, where=isn)
            np.copyto(a, 0.0, where=isn)
            nan_cnt += isn.sum(axis=0)
        elif miss.size:
            b.put(miss, 0.0)
            a.put(miss, 0.0)
            nan_cnt += np.bincount(miss % m, minlength=m)
        s1 += b.sum(axis=0)
        s2 += np.einsum("ij,ij->j", b, b)
        sref += a.sum(axis=0)
    cnt = npair - nan_cnt
    with np.errstate(invalid="ignore", divide="ignore"):
        mref = sref / cnt
        mean = s1 / cnt
    ss = s2 - s1 * mean
    redo = np.flatnonzero((cnt > 0) & ~(ss > 1e-2 * s2))  # cancellation: exact two-pass
    if redo.size:
        d = x[np.ix_(it, redo)] - x[np.ix_(ir, redo)]
        _, mean[redo], ss[redo] = _nan_moments(d, overwrite=True)
    ss = np.maximum(ss, 0.0)
    ss[cnt == 0] = np.nan
    out = (cnt, mean, ss, mref)
    if cols is not None:
        out = tuple(v[cols] for v in out)
    return out


def one_sample_t_moments(n, mean, ss, *, conf_level: float = 0.95) -> dict:
    """Paired t-test from per-assay count, mean and centred sum of squares of differences.

    Equals ``scipy.stats.ttest_rel(target, reference, nan_policy="omit")`` per assay.
    """
    out = _result(n.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = ss / (n - 1)
        se = np.sqrt(var / n)
    bad_n = n < MIN_N
    zero = ~bad_n & (var <= (1e-13 * np.maximum(np.abs(mean), 1.0)) ** 2)
    _t_p_ci(mean, se, n - 1.0, conf_level, out)
    out["n"] = n
    out["mean"] = mean.copy()
    _blank(out, bad_n, f"fewer than {MIN_N} complete pairs")
    _blank(out, zero, "zero variance of the differences", keep_estimate=True)
    return out


def two_sample_t(
    xt: np.ndarray, xr: np.ndarray, *, equal_var: bool = False, conf_level: float = 0.95
) -> dict:
    """Welch (default) or Student two-sample t-test, estimate = mean(target) − mean(reference).

    Equals ``scipy.stats.ttest_ind(target, reference, equal_var=..., nan_policy="omit")``.
    """
    m = xt.shape[1]
    out = _result(m)
    nt, mt, sst = _nan_moments(xt)
    nr, mr, ssr = _nan_moments(xr)
    with np.errstate(invalid="ignore", divide="ignore"):
        vt = sst / (nt - 1)
        vr = ssr / (nr - 1)
        if equal_var:
            df = nt + nr - 2.0
            sp = (sst + ssr) / df
            se = np.sqrt(sp * (1.0 / nt + 1.0 / nr))
        else:
            at, ar = vt / nt, vr / nr
            se = np.sqrt(at + ar)
            df = (at + ar) ** 2 / (at**2 / (nt - 1) + ar**2 / (nr - 1))
    _t_p_ci(mt - mr, se, df, conf_level, out)
    out["n"] = nt + nr
    out["n_target"], out["n_reference"] = nt, nr
    bad_n = (nt < MIN_N) | (nr < MIN_N)
    scale = np.maximum(np.maximum(np.abs(mt), np.abs(mr)), 1.0)
    zero = ~bad_n & (se <= 1e-13 * scale)
    _blank(out, bad_n, f"fewer than {MIN_N} samples in a group")
    _blank(out, zero, "zero variance in both groups", keep_estimate=True)
    return out


def _blank(out: dict, mask: np.ndarray, reason: str, *, keep_estimate: bool = False) -> None:
    """Set the statistics of the masked assays to NaN and record why (first reason wins)."""
    mask = np.asarray(mask, dtype=bool) & ~out["blanked"]
    if not mask.any():
        return
    out["blanked"] |= mask
    keys = ["ci_low", "ci_high", "statistic", "df", "p_value"]
    if not keep_estimate:
        keys.append("estimate")
    for k in keys:
        out[k][mask] = np.nan
    out["reason"][mask] = reason


# --------------------------------------------------------------------------------------
# ranks


def _runs(new: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Average 1-based ranks and the tie term from a sorted-row "starts a new value" mask."""
    k = new.shape[1]
    pos = np.broadcast_to(np.arange(k), new.shape)
    start = np.maximum.accumulate(np.where(new, pos, 0), axis=1)
    last = np.ones(new.shape, dtype=bool)
    last[:, :-1] = new[:, 1:]
    end = np.minimum.accumulate(np.where(last, pos, k - 1)[:, ::-1], axis=1)[:, ::-1]
    ranks = (start + end) / 2.0 + 1.0
    ranks[~valid] = np.nan
    t = (end - start + 1).astype(float)
    ties = np.where(valid, t * t - 1.0, 0.0).sum(axis=1)
    return ranks, ties


def rank_sorted(x: np.ndarray) -> tuple:
    """Sort each row of ``x`` (assays × values) and give average ranks with ties.

    Returns ``order, sorted, ranks, n, ties`` where ``ranks`` (1-based, NaN for the NaN
    entries, which sort last) is aligned with ``sorted``, ``n`` counts the non-NaN values
    per row and ``ties`` is the tie term Σ(t³ − t) over groups of equal values.
    """
    order = np.argsort(x, axis=1)
    s = np.take_along_axis(x, order, axis=1)
    valid = ~np.isnan(s)
    new = np.ones(s.shape, dtype=bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    ranks, ties = _runs(new, valid)
    return order, s, ranks, valid.sum(axis=1), ties


def _signed_abs_ranks(dt: np.ndarray) -> tuple:
    """Sum of ranks of |d| over positive d, count and tie term, per row; NaN/0 dropped.

    Sorting one unsigned 64-bit key per value, the IEEE bits of ``d`` rotated left by one,
    ``(bits(|d|) << 1) | sign``, orders the values by |d| (the bits of non-negative
    doubles sort like the numbers) while carrying the sign in the lowest bit (1 =
    negative): no argsort needed. NaN and zeros get the largest key (lowest bit 1, so they
    never count as positive) and sort last. Rows without ties (the usual case for NPX)
    take ranks 1..n directly; only rows with ties go through the average-rank computation.
    """
    isn = np.isnan(dt)
    n_all = dt.shape[1] - np.count_nonzero(isn, axis=1)
    drop = dt == 0
    drop |= isn
    n = dt.shape[1] - np.count_nonzero(drop, axis=1)
    bits = dt.view(np.uint64)
    key = bits << np.uint64(1)
    key |= bits >> np.uint64(63)
    key[drop] = np.uint64(0xFFFFFFFFFFFFFFFF)
    key.sort(axis=1)
    k = key.shape[1]
    same = (key[:, 1:] ^ key[:, :-1]) < np.uint64(2)  # equal |d| (sign bit ignored)
    same &= np.arange(1, k)[None, :] < n[:, None]
    tied = same.any(axis=1)
    neg = (key & np.uint64(1)).astype(np.float64)  # negative, NaN or zero
    v = k * (k + 1) / 2.0 - neg @ np.arange(1.0, k + 1.0)
    ties = np.zeros(key.shape[0])
    if tied.any():
        rows = np.flatnonzero(tied)
        new = np.ones((rows.size, k), dtype=bool)
        new[:, 1:] = ~same[rows]
        valid = np.arange(k)[None, :] < n[rows][:, None]
        ranks, ties[rows] = _runs(new, valid)
        v[rows] = np.where(neg[rows] == 0, ranks, 0.0).sum(axis=1)
    return v, n, ties, n_all


# --------------------------------------------------------------------------------------
# exact null distributions (cached per sample size; loops over sizes, never over assays)


@lru_cache(maxsize=256)
def _signrank_cdf(n: int) -> np.ndarray:
    """P(V <= v), v = 0..n(n+1)/2, for the signed-rank statistic without ties."""
    counts = np.zeros(n * (n + 1) // 2 + 1)
    counts[0] = 1.0
    top = 0
    for i in range(1, n + 1):
        counts[i : top + i + 1] += counts[: top + 1].copy()
        top += i
    return np.cumsum(counts) / 2.0**n


@lru_cache(maxsize=1024)
def _ranksum_cdf(n1: int, n2: int) -> np.ndarray:
    """P(U <= u), u = 0..n1*n2, for the Mann–Whitney U of the first sample, no ties."""
    # p[a][u] for a first-sample size a and current second-sample size b, built over b.
    prob = [np.ones(1) for _ in range(n1 + 1)]  # b = 0: U = 0 surely
    for b in range(1, n2 + 1):
        new = [np.ones(1)]  # a = 0: U = 0
        for a in range(1, n1 + 1):
            size = a * b + 1
            cur = np.zeros(size)
            # largest value from sample 1 (prob a/(a+b)): it exceeds all b of sample 2
            prev1 = new[a - 1]
            cur[b : b + prev1.size] += a / (a + b) * prev1
            prev2 = prob[a]
            cur[: prev2.size] += b / (a + b) * prev2
            new.append(cur)
        prob = new
    return np.cumsum(prob[n1])


def _exact_two_sided(stat: float, cdf: np.ndarray, mean: float) -> float:
    """R's two-sided exact p: 2·P(S >= s) if s > mean else 2·P(S <= s), capped at 1."""
    s = int(round(stat))
    if stat > mean:
        p = 1.0 - cdf[s - 1] if s >= 1 else 1.0
    else:
        p = cdf[s]
    return min(2.0 * p, 1.0)


def _q_lower(alpha_half: float, cdf: np.ndarray) -> int:
    """R's qsignrank/qwilcox: smallest q with P(S <= q) >= p (R's fuzz of 10 eps)."""
    return int(np.searchsorted(cdf, alpha_half - 10 * np.finfo(float).eps, side="left"))


# --------------------------------------------------------------------------------------
# Wilcoxon signed-rank and rank-sum


def signed_rank(
    d: np.ndarray,
    *,
    exact: bool | None = None,
    correction: bool = True,
    conf_level: float = 0.95,
    hodges_lehmann: bool = True,
    ci_method: Literal["order", "uniroot"] = "order",
) -> dict:
    """Wilcoxon signed-rank test on within-pair differences ``d`` (pairs × assays).

    Zero differences are dropped (R and scipy ``zero_method="wilcox"``). ``statistic`` is
    R's V (sum of the ranks of positive differences). The p-value is exact when ``exact``
    is True, or when ``exact`` is None and the assay has fewer than 50 non-zero
    differences without ties (R's rule); otherwise normal with tie and continuity
    correction. The estimate is the Hodges–Lehmann pseudo-median (median of the Walsh
    averages) and the CI their order statistics (see :func:`kth_pair_sums`). With
    ``ci_method="uniroot"`` the assays on the normal approximation get R's estimate and
    CI instead, found as R does by ``uniroot`` on W(d) (:mod:`._rwilcox`); assays on the
    exact test keep the order statistics (R's exact branch computes those too).
    """
    m = d.shape[1]
    out = _result(m)
    dt = np.ascontiguousarray(d.T)
    v, n, ties, n_all = _signed_abs_ranks(dt)
    zeros = n_all - n
    nf = n.astype(float)
    mu = nf * (nf + 1) / 4.0
    sigma = np.sqrt(nf * (nf + 1) * (2 * nf + 1) / 24.0 - ties / 48.0)
    z = v - mu
    corr = np.sign(z) * 0.5 if correction else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        zz = (z - corr) / sigma
    p = 2.0 * special.ndtr(-np.abs(zz))
    use_exact = _exact_mask(exact, n < 50, (ties == 0) & (zeros == 0))
    for size in np.unique(n[use_exact & (n > 0)]):
        cdf = _signrank_cdf(int(size))
        idx = np.flatnonzero(use_exact & (n == size))
        p[idx] = [_exact_two_sided(v[i], cdf, size * (size + 1) / 4.0) for i in idx]
    out["statistic"] = v
    out["p_value"] = np.minimum(p, 1.0)
    out["df"] = np.full(m, np.nan)
    out["n"] = n_all
    out["exact"] = use_exact
    if hodges_lehmann and ci_method == "uniroot":
        from . import _rwilcox  # imports this module

        def hl_exact(rows, sub):
            _hl_signed(dt[rows], n_all[rows], None, None, None, use_exact[rows], conf_level, sub)

        def hl_r(rows):
            return _rwilcox.signed_rank_uniroot(dt[rows], conf_level=conf_level)

        _hl_split(use_exact, hl_exact, hl_r, out, conf_level)
    elif hodges_lehmann:
        _hl_signed(dt, n_all, n, nf, ties, use_exact, conf_level, out)
    bad = n_all < MIN_N
    _blank(out, bad, f"fewer than {MIN_N} complete pairs")
    _blank(out, n == 0, "all differences are zero", keep_estimate=True)
    return out


def _hl_split(use_exact: np.ndarray, hl_exact, hl_r, out: dict, conf_level: float) -> None:
    """Estimate and CI by order statistics on the exact rows and R's ``uniroot`` on the rest.

    ``hl_exact(rows, sub)`` fills ``sub`` (a result dict for those rows) the usual way;
    ``hl_r(rows)`` returns ``(estimate, ci_low, ci_high, level)`` for the other rows. Where
    R can only reach a lower confidence level (it doubles alpha and warns), the CI is R's
    and ``reason`` says which level it has.
    """
    exact_rows = np.flatnonzero(use_exact)
    if exact_rows.size:
        sub = {k: np.full(exact_rows.size, np.nan) for k in ("estimate", "ci_low", "ci_high")}
        hl_exact(exact_rows, sub)
        for k in ("estimate", "ci_low", "ci_high"):
            out[k][exact_rows] = sub[k]
    r_rows = np.flatnonzero(~use_exact)
    if r_rows.size:
        est, lo, hi, level = hl_r(r_rows)
        out["estimate"][r_rows], out["ci_low"][r_rows], out["ci_high"][r_rows] = est, lo, hi
        for i in np.flatnonzero(level < conf_level):
            out["reason"][r_rows[i]] = (
                f"CI at {level[i]:.4g} confidence: {conf_level:.4g} not achievable (as R)"
            )


def _exact_mask(exact: bool | None, small: np.ndarray, untied: np.ndarray) -> np.ndarray:
    """Assays on R's exact test: ``exact=None`` small and untied (R's rule); ``True``
    untied (R falls back to the normal approximation with ties or zeros, and warns);
    ``False`` none."""
    if exact is None:
        return small & untied
    return untied.copy() if exact else np.zeros(untied.shape, dtype=bool)


def _ci_ranks(big_n, sigma, use_exact, cdfs, conf_level):
    """Order-statistic ranks (1-based) of the CI bounds among the N pairwise values."""
    z = stats.norm.ppf(0.5 + conf_level / 2.0)
    with np.errstate(invalid="ignore"):
        k_lo = np.ceil(big_n / 2.0 - z * sigma - 0.5)
    for i in np.flatnonzero(use_exact):
        cdf = cdfs(i)
        if cdf is not None:
            k_lo[i] = max(_q_lower((1 - conf_level) / 2.0, cdf), 1)
    k_lo = np.clip(k_lo, 1, np.maximum(big_n, 1))
    k_hi = big_n + 1 - k_lo
    return k_lo, k_hi


def _hl_signed(dt, n_all, n_nz, nf, ties, use_exact, conf_level, out):
    s = np.sort(dt, axis=1)
    s *= 0.5  # Walsh average = s_i + s_j over i <= j (zeros kept)
    nn = n_all.astype(float)
    big_n = nn * (nn + 1) / 2.0
    # sigma of V(x - d) near the bounds, where x - d has no zeros and (for continuous
    # data) no ties: R's uniroot evaluates it there
    sig = np.sqrt(nn * (nn + 1) * (2 * nn + 1) / 24.0)

    def cdfs(i):
        return _signrank_cdf(int(n_all[i])) if n_all[i] > 0 else None

    k_lo, k_hi = _ci_ranks(big_n, sig, use_exact, cdfs, conf_level)
    _fill_hl(s, s, n_all, n_all, big_n, k_lo, k_hi, triangular=True, out=out)


def rank_sum(
    xt: np.ndarray,
    xr: np.ndarray,
    *,
    exact: bool | None = None,
    correction: bool = True,
    conf_level: float = 0.95,
    hodges_lehmann: bool = True,
    ci_method: Literal["order", "uniroot"] = "order",
    min_n: int = MIN_N,
) -> dict:
    """Wilcoxon rank-sum (Mann–Whitney) test, target vs reference (samples × assays each).

    ``statistic`` is W = U of the target sample (R's W with ``x`` = target). p-value exact
    when ``exact`` is True, or when None and both groups have fewer than 50 values and
    there are no ties (R's rule); otherwise normal with tie and continuity correction. The
    estimate is the Hodges–Lehmann shift: the median of all target − reference differences.
    ``ci_method="uniroot"``: R's estimate and CI (``uniroot`` on W(d), :mod:`._rwilcox`)
    for the assays on the normal approximation, as in :func:`signed_rank`. Assays with
    fewer than ``min_n`` values in a group are not tested (R tests from 1).
    """
    m = xt.shape[1]
    out = _result(m)
    both = np.ascontiguousarray(np.vstack([xt, xr]).T)
    is_t = np.zeros(both.shape[1], dtype=bool)
    is_t[: xt.shape[0]] = True
    order, _, ranks, n, ties = rank_sorted(both)
    lab = is_t[order]
    nt = (~np.isnan(xt)).sum(axis=0)
    nr = (~np.isnan(xr)).sum(axis=0)
    w = np.where(lab, np.nan_to_num(ranks), 0.0).sum(axis=1) - nt * (nt + 1) / 2.0
    nt_f, nr_f, n_f = nt.astype(float), nr.astype(float), n.astype(float)
    mu = nt_f * nr_f / 2.0
    with np.errstate(invalid="ignore", divide="ignore"):
        sigma = np.sqrt(nt_f * nr_f / 12.0 * ((n_f + 1) - ties / (n_f * (n_f - 1))))
        z = w - mu
        corr = np.sign(z) * 0.5 if correction else 0.0
        zz = (z - corr) / sigma
    p = 2.0 * special.ndtr(-np.abs(zz))
    use_exact = _exact_mask(exact, (nt < 50) & (nr < 50), ties == 0)
    use_exact &= (nt > 0) & (nr > 0)
    for a, b in set(zip(nt[use_exact].tolist(), nr[use_exact].tolist(), strict=True)):
        cdf = _ranksum_cdf(int(a), int(b))
        idx = np.flatnonzero(use_exact & (nt == a) & (nr == b))
        p[idx] = [_exact_two_sided(w[i], cdf, a * b / 2.0) for i in idx]
    out["statistic"] = w
    out["p_value"] = np.minimum(p, 1.0)
    out["n"] = nt + nr
    out["n_target"], out["n_reference"] = nt, nr
    out["exact"] = use_exact
    if hodges_lehmann and ci_method == "uniroot":
        from . import _rwilcox  # imports this module

        def hl_exact(rows, sub):
            sig, ex = sigma[rows], use_exact[rows]
            _hl_ranksum(xt[:, rows], xr[:, rows], nt[rows], nr[rows], sig, ex, conf_level, sub)

        def hl_r(rows):
            return _rwilcox.rank_sum_uniroot(xt.T[rows], xr.T[rows], conf_level=conf_level)

        _hl_split(use_exact, hl_exact, hl_r, out, conf_level)
    elif hodges_lehmann:
        _hl_ranksum(xt, xr, nt, nr, sigma, use_exact, conf_level, out)
    bad = (nt < min_n) | (nr < min_n)
    _blank(out, bad, f"fewer than {min_n} samples in a group")
    _blank(out, ~bad & ~(sigma > 0), "all values tied", keep_estimate=True)
    return out


def _hl_ranksum(xt, xr, nt, nr, sigma, use_exact, conf_level, out):
    a_sorted = np.sort(np.ascontiguousarray(xt.T), axis=1)
    b_sorted = np.sort(-np.ascontiguousarray(xr.T), axis=1)
    big_n = nt.astype(float) * nr.astype(float)

    def cdfs(i):
        if nt[i] == 0 or nr[i] == 0:
            return None
        return _ranksum_cdf(int(nt[i]), int(nr[i]))

    k_lo, k_hi = _ci_ranks(big_n, sigma, use_exact, cdfs, conf_level)
    _fill_hl(a_sorted, b_sorted, nt, nr, big_n, k_lo, k_hi, triangular=False, out=out)


def _fill_hl(a, b, na, nb, big_n, k_lo, k_hi, *, triangular, out):
    ok = big_n > 0
    n_ok = np.where(ok, big_n, 1.0)
    k_med = np.floor((n_ok + 1.0) / 2.0)
    est = np.full(a.shape[0], np.nan)
    if ok.any():
        rows = np.arange(a.shape[0])
        ia, ib = np.maximum(na - 1, 0), np.maximum(nb - 1, 0)
        tmin = float(np.nanmin(a[:, 0] + b[:, 0], initial=0.0))
        tmin -= abs(tmin) + 1.0
        tmax = float(np.nanmax(a[rows, ia] + b[rows, ib], initial=0.0))
        cnt = _Counter(a, b, na, nb, tmin, tmax, triangular)
        kw = {"counter": cnt, "grid": _pair_grid(a, b, na, nb, triangular=triangular)}
        ks = [np.where(ok, k_med, 1.0), np.where(ok, k_lo, 1.0), np.where(ok, k_hi, 1.0)]
        g_med, g_lo, g_hi = _estimate_kth(a, b, na, nb, ks, triangular, kw["grid"], cnt)
        vals = kth_pair_sums(a, b, na, nb, ks[0], triangular, extra=1, guess=g_med, **kw)
        odd = (n_ok % 2) == 1
        est = np.where(odd, vals[:, 0], (vals[:, 0] + vals[:, 1]) / 2.0)
        lo = kth_pair_sums(a, b, na, nb, ks[1], triangular, guess=g_lo, **kw)[:, 0]
        hi = kth_pair_sums(a, b, na, nb, ks[2], triangular, guess=g_hi, **kw)[:, 0]
        est[~ok] = np.nan
        lo[~ok] = np.nan
        hi[~ok] = np.nan
        out["ci_low"], out["ci_high"] = lo, hi
    out["estimate"] = est


# --------------------------------------------------------------------------------------
# k-th smallest of pairwise sums (Hodges–Lehmann), vectorised over rows


class _Counter:
    """Counts ``#{(i, j): a[r,i] + b[r,j] <= t[r]}`` for any subset of rows at once.

    A full count searches every ``t − a[r, i]`` in row ``r`` of ``b``: the rows of a
    small block are laid end to end with block-local offsets (small, so the comparisons
    stay exact to ~1e-13) and one ``searchsorted`` answers the whole block (queries
    ascend, so numpy reuses the previous position). Later counts start from the previous
    positions and only move the entries whose position changed (the thresholds of an
    interpolation search move little): ``b`` is kept padded with ``-inf``/``+inf`` at
    both ends of every row, so a move is one flat gather and compare per step over the
    entries still moving, with no bounds checks.

    Triangular (Walsh averages, ``a = b`` sorted): a pair ``i <= j`` with
    ``a_i + a_j <= t`` needs ``a_i <= t/2``, so only the ``h`` entries with
    ``a_i <= t/2`` are searched; the others get position ``i`` (they count nothing, and
    ``max(position, i)`` is then exact for the extraction of candidates).
    """

    def __init__(self, a, b, na, nb, tmin, tmax, triangular, *, acols=None, like=None):
        m, self.ka = a.shape
        self.kb = b.shape[1]
        if like is not None:  # same b (and bounds): share its arrays
            self.big, self.bfill, self.bflat = like.big, like.bfill, like.bflat
            self.base, self._local_b = like.base, like._local_b
        else:
            big = np.nanmax(np.abs(b), initial=0.0) + np.nanmax(np.abs(a), initial=0.0)
            self.big = big = float(big + max(abs(tmin), abs(tmax)) + 1.0)
            # missing b: above every t - a (counts nothing)
            self.bfill = np.where(np.isnan(b), 2.0 * big, b)
            pad = np.empty((m, self.kb + 2))
            pad[:, 0] = -np.inf
            pad[:, 1:-1] = self.bfill
            pad[:, -1] = np.inf
            self.bflat = pad.ravel()
            self.base = np.arange(m) * (self.kb + 2) + 1  # flat index of b[r, 0]
            self._local_b = {}
        # missing a: t - a below every b (counts nothing)
        self.afill = np.where(np.isnan(a), 4.0 * self.big, a)
        self.arev = self.afill[:, ::-1].copy()  # queries ascend along reversed rows
        self.nb = nb
        self.triangular = triangular
        # acols: the column of b that each column of a is (a subsample of columns)
        self.cols = np.arange(self.ka) if acols is None else np.asarray(acols)
        self.rev_cols = self.cols[::-1].copy()
        self.lowj = self.cols[None, :] if triangular else None
        self.last: np.ndarray | None = None

    def _rows(self, arr, rows):
        """``arr[rows]`` without a copy when ``rows`` are all rows (sorted, unique)."""
        return arr if rows.size == arr.shape[0] else arr[rows]

    def _searched(self, rows, t):
        """Entries to search: all valid ``a`` or, triangular, those with a_i <= t/2."""
        afill = self._rows(self.afill, rows)
        if self.triangular:
            h = np.count_nonzero(afill <= (t / 2.0)[:, None], axis=1)
        else:
            h = np.count_nonzero(afill < 2.0 * self.big, axis=1)
        return afill, h

    block = 8  # rows per searchsorted: small offsets keep the comparisons exact

    def _full(self, rows, t):
        ka, kb, block = self.ka, self.kb, self.block
        _, h = self._searched(rows, t)
        big_h = int(h.max(initial=0))  # search entries i < max(h) of every row: the
        # extra ones get their exact position too, and no ragged compaction is needed
        out = np.empty((rows.size, ka), dtype=np.intp)
        out[:, : ka - big_h] = self.rev_cols[: ka - big_h] if self.triangular else 0
        if big_h == 0:
            return out[:, ::-1]
        step = 8.0 * self.big
        local = (np.arange(rows.size) % block) * step
        # queries t - a_i for i = big_h-1 .. 0 (ascending within a row)
        q = (t + local)[:, None] - self._rows(self.arev, rows)[:, ka - big_h :]
        if rows.size == self.bfill.shape[0]:  # b with block-local offsets, made once
            if block not in self._local_b:
                self._local_b[block] = self.bfill + local[:, None]
            bf = self._local_b[block]
        else:
            bf = self.bfill[rows] + local[:, None]
        pos = out[:, ka - big_h :]
        for r0 in range(0, rows.size, block):
            r1 = min(r0 + block, rows.size)
            hit = np.searchsorted(bf[r0:r1].ravel(), q[r0:r1].ravel(), side="right")
            pos[r0:r1] = hit.reshape(r1 - r0, big_h)
        # positions relative to the start of each block of rows
        pos -= ((np.arange(rows.size) % block) * kb)[:, None]
        self.searched_upto = big_h
        return out[:, ::-1]

    def _moved(self, rows, t):
        afill, h = self._searched(rows, t)
        base = self._rows(self.base, rows)[:, None]
        flat_all = self._rows(self.last, rows) + base
        q_all = t[:, None] - afill
        if self.triangular:
            sel = np.flatnonzero(np.arange(self.ka)[None, :] < h[:, None])
            flat, q = flat_all.ravel()[sel], q_all.ravel()[sel]
        else:
            flat, q = flat_all.ravel(), q_all.ravel()
        bf = self.bflat
        cand = np.flatnonzero(bf[flat] <= q)  # b[idx] <= q: move up
        while cand.size:
            flat[cand] += 1
            cand = cand[bf[flat[cand]] <= q[cand]]
        cand = np.flatnonzero(bf[flat - 1] > q)  # b[idx - 1] > q: move down
        while cand.size:
            flat[cand] -= 1
            cand = cand[bf[flat[cand] - 1] > q[cand]]
        if not self.triangular:
            return flat.reshape(rows.size, self.ka) - base
        out = np.empty((rows.size, self.ka), dtype=np.intp)
        out[:] = self.cols  # position i for the entries not searched
        out.ravel()[sel] = flat - np.repeat(base.ravel(), h)
        return out

    def __call__(self, rows, t, *, incremental=False):
        if self.last is None:
            self.last = np.zeros((self.bfill.shape[0], self.ka), dtype=np.intp)
        self.searched_upto = self.ka
        idx = self._moved(rows, t) if incremental else self._full(rows, t)
        if rows.size == self.last.shape[0]:
            self.last = idx
        else:
            self.last[rows] = idx
        if self.lowj is None:
            cnt = idx.sum(axis=1)
        else:
            # entries past the searched ones sit at position i: they count nothing
            upto = self.searched_upto
            cnt = np.maximum(idx[:, :upto] - self.lowj[:, :upto], 0).sum(axis=1)
        return cnt.astype(float), idx


def _pair_grid(a, b, na, nb, *, triangular, g=24):
    """Sorted sums of a g × g grid of quantiles of each row: a cheap first guess."""
    ia = np.maximum(na - 1, 0)
    ib = np.maximum(nb - 1, 0)
    gi = np.clip(((np.arange(g) + 0.5) / g * na[:, None]).astype(int), 0, ia[:, None])
    gj = np.clip(((np.arange(g) + 0.5) / g * nb[:, None]).astype(int), 0, ib[:, None])
    grid = (
        np.take_along_axis(a, gi, axis=1)[:, :, None]
        + np.take_along_axis(b, gj, axis=1)[:, None, :]
    )
    grid = grid.reshape(a.shape[0], -1)
    if triangular:
        iu = np.triu_indices(g)
        grid = grid[:, iu[0] * g + iu[1]]
    return np.sort(np.where(np.isnan(grid), np.inf, grid), axis=1)


def _estimate_kth(a, b, na, nb, ks, triangular, grid, counter, *, stride=7, steps=1):
    """Thresholds near the k-th pair sum of every row, for each rank array in ``ks``.

    Counts only every ``stride``-th entry of ``a`` (the middle of each run of
    ``stride``, odd so that the middle is an entry) and scales by ``stride``, a midpoint
    rule for the monotone per-entry counts, so each step costs ~1/stride of an exact count; a few secant steps from the
    grid quantile then land within a few dozen ranks of ``k`` for smooth data. Only a
    first guess: :func:`kth_pair_sums` makes the result exact.
    """
    m, ka = a.shape
    rows = np.arange(m)
    acols = np.arange(min(stride // 2, ka - 1), ka, stride)
    big_n = na * (na + 1) / 2.0 if triangular else na.astype(float) * nb
    ia, ib = np.maximum(na - 1, 0), np.maximum(nb - 1, 0)
    lo = a[:, 0] + b[:, 0]
    hi = a[rows, ia] + b[rows, ib]
    finite = np.isfinite(lo) & np.isfinite(hi)
    sub = _Counter(
        np.ascontiguousarray(a[:, acols]),
        b,
        na,
        nb,
        0.0,
        0.0,
        triangular,
        acols=acols,
        like=counter,
    )
    sub.block = 64  # fewer, longer searches: the offsets' rounding is harmless here
    gsize = grid.shape[1]
    out = []
    for k in ks:
        frac = np.clip((k - 0.5) / np.maximum(big_n, 1.0), 0.0, 1.0)
        t0 = grid[rows, np.clip((frac * gsize).astype(int), 0, gsize - 1)]
        h = 2.0 / np.sqrt(gsize)
        f1 = np.clip((np.minimum(frac + h, 1.0) * gsize).astype(int), 0, gsize - 1)
        f0 = np.clip((np.maximum(frac - h, 0.0) * gsize).astype(int), 0, gsize - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            slope = (grid[rows, f1] - grid[rows, f0]) / (
                (np.minimum(frac + h, 1.0) - np.maximum(frac - h, 0.0)) * np.maximum(big_n, 1.0)
            )
        slope = np.where(np.isfinite(slope) & (slope > 0), slope, 0.0)
        t = np.where(np.isfinite(t0), t0, 0.0)
        t = np.clip(t, lo, hi, where=finite, out=t)
        c = sub(rows, t)[0] * stride
        for _ in range(steps - 1):
            t_new = np.clip(t + (k - c) * slope, lo, hi, where=finite)
            c_new = sub(rows, t_new)[0] * stride
            with np.errstate(invalid="ignore", divide="ignore"):
                sec = (t_new - t) / (c_new - c)
            slope = np.where(np.isfinite(sec) & (sec > 0), sec, slope)
            t, c = t_new, c_new
        t = np.clip(t + (k - c) * slope, lo, hi, where=finite)
        out.append(np.where(finite, t, np.nan))
    return out


def kth_pair_sums(
    a: np.ndarray,
    b: np.ndarray,
    na: np.ndarray,
    nb: np.ndarray,
    k: np.ndarray,
    triangular: bool,
    *,
    extra: int = 0,
    window: int | None = None,
    counter: _Counter | None = None,
    grid: np.ndarray | None = None,
    guess: np.ndarray | None = None,
) -> np.ndarray:
    """Exact k-th smallest (1-based) of ``a[r, i] + b[r, j]`` for every row r.

    ``a`` and ``b`` are sorted ascending per row with NaN last (``na``, ``nb`` valid
    counts). With ``triangular`` only pairs ``j >= i`` count (Walsh averages when
    ``a = b = d/2``). Returns an array (rows, extra + 1) with the values of ranks
    ``k, k+1, …, k+extra``.

    The search brackets the answer by exact counts (one ``searchsorted`` over all rows at
    once) with interpolation steps until at most ``window`` pair sums remain between the
    bounds, then extracts those and sorts them; no pairwise matrix is ever formed, so
    memory is O(rows × n) and time O(rows × n log n) per step. ``guess`` (a first
    threshold per row, e.g. from :func:`_estimate_kth`) saves steps: with a good one the
    first exact count lands next to rank ``k`` and a second closes the bracket.
    """
    m, ka = a.shape
    res = np.full((m, extra + 1), np.nan)
    if m == 0:
        return res
    na = np.asarray(na)
    nb = np.asarray(nb)
    if window is None:
        window = max(64, ka // 2)
    k = np.asarray(k, dtype=float)
    kt = k + extra
    ia = np.maximum(na - 1, 0)
    ib = np.maximum(nb - 1, 0)
    rows = np.arange(m)
    lo = a[:, 0] + b[:, 0]
    lo = lo - (np.abs(lo) + 1.0)
    hi = a[rows, ia] + b[rows, ib]
    big_n = na * (na + 1) / 2.0 if triangular else na.astype(float) * nb
    live = (na > 0) & (nb > 0) & (k >= 1) & (k <= big_n)
    kt = np.minimum(kt, big_n)  # ranks beyond N come back NaN
    lo[~live] = 0.0
    hi[~live] = 1.0
    if counter is None:
        counter = _Counter(a, b, na, nb, float(lo.min()), float(hi.max()), triangular)
    counter.last = None
    clo = np.zeros(m)
    chi = big_n.copy()
    idx_lo = np.zeros((m, ka), dtype=np.intp)
    idx_hi = np.empty((m, ka), dtype=np.intp)
    idx_hi[:] = nb[:, None]
    has_hi = np.zeros(m, dtype=bool)
    # triangular: entries past the searched ones sit at position i (count nothing, and
    # max(position, i) = i for the extraction), so only the first `width` columns of
    # the positions ever need updating or reading
    width = 0 if triangular else ka
    # first guess: the same quantile among pair sums of a coarse grid of each row
    if grid is None:
        grid = _pair_grid(a, b, na, nb, triangular=triangular)
    gsize = grid.shape[1]
    frac = np.clip((kt - 0.5) / np.maximum(big_n, 1.0), 0.0, 1.0)

    def gq(f):
        return grid[rows, np.clip((f * gsize).astype(int), 0, gsize - 1)]

    if guess is None:
        guess = gq(frac)
    # slope dt/dcount of the pair-sum quantile function, from the grid
    h = 2.0 / np.sqrt(gsize)
    with np.errstate(invalid="ignore"):
        slope = (gq(frac + h) - gq(frac - h)) / (
            (np.minimum(frac + h, 1.0) - np.maximum(frac - h, 0.0)) * np.maximum(big_n, 1.0)
        )
    slope = np.where(np.isfinite(slope) & (slope > 0), slope, 0.0)
    t_last = np.full(m, np.nan)
    c_last = np.full(m, np.nan)
    active = live & (chi - clo > window)
    eps = 4 * np.finfo(float).eps
    quarter = window / 4.0
    for it in range(200):
        act = np.flatnonzero(active)
        if act.size == 0:
            break
        l0, h0 = lo[act], hi[act]
        # aim a little inside the wider side so both bounds close in on the target
        aim = np.where(
            kt[act] - clo[act] > chi[act] - kt[act], kt[act] - quarter, kt[act] + quarter
        )
        aim = np.clip(aim, clo[act] + 0.5, chi[act] - 0.5)
        if it == 0:
            tt = guess[act]
        else:
            tl, cl = t_last[act], c_last[act]
            tt = tl + (aim - cl) * slope[act]
        mid = l0 + (h0 - l0) / 2.0
        tt = np.where((tt > l0) & (tt < h0), tt, mid)
        # once the bracket is narrow, update the previous positions instead of searching
        c, idx = counter(act, tt, incremental=it >= 2)
        # secant slope from this and the previous probe
        with np.errstate(invalid="ignore", divide="ignore"):
            new_slope = (tt - t_last[act]) / (c - c_last[act])
        slope[act] = np.where(np.isfinite(new_slope) & (new_slope > 0), new_slope, slope[act])
        t_last[act], c_last[act] = tt, c
        up = c >= kt[act]
        hi[act] = np.where(up, tt, h0)
        lo[act] = np.where(up, l0, tt)
        chi[act] = np.where(up, c, chi[act])
        clo[act] = np.where(up, clo[act], c)
        w = max(width, counter.searched_upto)
        if w > width and has_hi.any():  # rows bracketed earlier: new columns at i
            idx_hi[np.flatnonzero(has_hi), width:w] = np.arange(width, w)
        width = w
        r_up, r_dn = np.flatnonzero(up), np.flatnonzero(~up)
        idx_hi[act[r_up], :w] = idx[r_up, :w]
        idx_lo[act[r_dn], :w] = idx[r_dn, :w]
        has_hi[act[up]] = True
        stuck = (hi[act] - lo[act]) <= eps * (np.abs(hi[act]) + np.abs(lo[act]))
        active[act] = (chi[act] - clo[act] > window) & ~stuck
    # extract the pair sums in (lo, hi] and pick the wanted ranks among them
    if triangular and not has_hi[live].all():  # a row never probed: all its columns
        if width:
            idx_hi[has_hi, width:] = np.arange(width, ka)
        width = ka
    w = width
    start = idx_lo[:, :w] if not triangular else np.maximum(idx_lo[:, :w], np.arange(w))
    stop = np.maximum(idx_hi[:, :w], start)
    length = stop - start
    if triangular:  # a missing a[i] (i >= na) has nothing in (start, stop] here
        length[~live] = 0
    else:
        length[(np.arange(w)[None, :] >= na[:, None]) | ~live[:, None]] = 0
    length = length.ravel()
    seg_w = np.flatnonzero(length)  # (row, i) cells with candidates
    seg_len = length[seg_w]
    seg = (seg_w // max(w, 1)) * ka + seg_w % max(w, 1)  # as flat indices of (m, ka)
    start = start.ravel()[seg_w]
    total = int(seg_len.sum())
    cell = np.repeat(seg, seg_len)
    row_of = cell // ka
    offs = np.arange(total) - np.repeat(np.cumsum(seg_len) - seg_len, seg_len)
    kb = b.shape[1]
    vals = a.ravel()[cell] + b.ravel()[row_of * kb + np.repeat(start, seg_len) + offs]
    per_row = np.bincount(row_of, minlength=m)
    width = max(int(per_row.max(initial=1)), 1)
    mat = np.full((m, width), np.inf)
    col = np.arange(total) - np.repeat(np.cumsum(per_row) - per_row, per_row)
    mat.ravel()[row_of * width + col] = vals
    mat.sort(axis=1)
    for e in range(extra + 1):
        r = (k + e - clo - 1).astype(int)
        okr = live & (r >= 0) & (r < per_row)
        res[okr, e] = mat[rows[okr], r[okr]]
        below = live & (r == -1)  # the rank just below the window: the largest sum <= lo
        if below.any():
            p = idx_lo[below] - 1
            okp = (np.arange(ka)[None, :] < na[below][:, None]) & (p >= 0)
            if triangular:
                okp &= p >= np.arange(ka)[None, :]
            vb = np.take_along_axis(b[below], np.clip(p, 0, b.shape[1] - 1), axis=1)
            res[below, e] = np.where(okp, a[below] + vb, -np.inf).max(axis=1)
    return res
