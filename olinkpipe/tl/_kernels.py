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

from . import _rwilcox
from ._hodges_lehmann import fill_hl, kth_pair_sums
from ._ranks import rank_sorted, signed_abs_ranks

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
    v, n, ties, n_all = signed_abs_ranks(dt)
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
    fill_hl(s, s, n_all, n_all, big_n, k_lo, k_hi, triangular=True, out=out)


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
    fill_hl(a_sorted, b_sorted, nt, nr, big_n, k_lo, k_hi, triangular=False, out=out)
