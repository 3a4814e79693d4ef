"""Array kernels for competing risks: cmprsk-style cumulative incidence and Gray's test.

Pure numpy, no pandas: the public wrappers in :mod:`olinkpipe.clinical.survival` validate
the table, split it by group and build the tidy frames.

The logic follows the algorithm descriptions of R's ``cmprsk`` package (Gray 2000, GPL):
``cinc`` (Aalen–Johansen cumulative incidence with its delta-method variance, Gray 1988
eq. 2.3 as implemented) and ``crstm``/``crst`` (Gray's K-sample score and its variance). It
is written here from those descriptions, not translated line by line.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class _Steps:
    """Per distinct time of one sample: risk set and counts."""

    time: np.ndarray  # distinct observed times, ascending
    n_at_risk: np.ndarray  # number with T >= time
    n_event: np.ndarray  # (n_times, n_causes) events of each cause at time
    n_censored: np.ndarray  # censored at time


def steps(time: np.ndarray, event: np.ndarray, causes: np.ndarray) -> _Steps:
    """Tabulate distinct times with the risk set and event counts per cause."""
    utime, inv = np.unique(time, return_inverse=True)
    nt = utime.size
    n_removed = np.bincount(inv, minlength=nt)
    n_at_risk = time.size - np.concatenate([[0], np.cumsum(n_removed)[:-1]])
    d = np.zeros((nt, causes.size))
    for j, c in enumerate(causes):
        d[:, j] = np.bincount(inv, weights=(event == c).astype(float), minlength=nt)
    cens = np.bincount(inv, weights=(event == 0).astype(float), minlength=nt)
    return _Steps(utime, n_at_risk.astype(float), d, cens)


def cuminc_curve(st: _Steps, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative incidence of cause column ``j`` and its variance at each distinct time.

    The estimate is Aalen–Johansen: ``F(t) = sum_{s<=t} S(s-) d_j(s) / n(s)`` with ``S`` the
    all-cause Kaplan–Meier. The variance is cmprsk's (``cinc``): it is updated only at times
    where cause ``j`` occurs and carried forward in between, so it equals what
    ``cmprsk::timepoints`` reports.
    """
    n = st.n_at_risk
    d_all = st.n_event.sum(axis=1)
    d1 = st.n_event[:, j]
    d2 = d_all - d1
    s_after = np.cumprod(1.0 - d_all / n)
    s_before = np.concatenate([[1.0], s_after[:-1]])
    f = np.cumsum(s_before * d1 / n)

    with np.errstate(divide="ignore", invalid="ignore"):
        inv_after = np.where(s_after > 0, 1.0 / s_after, 0.0)
        # competing events at this time (skipped when the KM has reached 0)
        t5 = np.where(d2 > 1, 1.0 - (d2 - 1.0) / (n - 1.0), 1.0)
        t6 = np.where((d2 > 0) & (s_after > 0), s_before**2 * t5 * d2 / n**2, 0.0)
        t4 = f * inv_after
        a1, a2, a3 = t4 * t4 * t6, inv_after * t4 * t6, inv_after * inv_after * t6
        # events of the cause of interest
        t5 = np.where(d1 > 1, 1.0 - (d1 - 1.0) / (n - 1.0), 1.0)
        t6 = np.where(d1 > 0, s_before**2 * t5 * d1 / n**2, 0.0)
        t4 = 1.0 + inv_after * f
        a1 = a1 + t4 * t4 * t6
        a2 = a2 + inv_after * t4 * t6
        a3 = a3 + inv_after * inv_after * t6
    v1, v2, v3 = np.cumsum(a1), np.cumsum(a2), np.cumsum(a3)
    var_at_jump = v1 + f * f * v3 - 2.0 * f * v2
    jump = d1 > 0
    # carry the variance of the last jump of this cause forward (0 before the first)
    last = np.maximum.accumulate(np.where(jump, np.arange(f.size), -1))
    var = np.where(last >= 0, var_at_jump[np.maximum(last, 0)], 0.0)
    return f, var


def gray_score(
    time: np.ndarray, status: np.ndarray, grp: np.ndarray, ng: int, rho: float
) -> tuple[np.ndarray, np.ndarray]:
    """Gray's (1988) score vector and covariance for the first ``ng - 1`` groups.

    ``time`` ascending; ``status`` 0 censored, 1 cause of interest, 2 any other cause;
    ``grp`` coded 0..ng-1. The weight is ``(1 - F(t-))**rho`` with ``F`` the pooled
    cumulative incidence of the cause of interest.
    """
    acc = _GrayState(np.bincount(grp, minlength=ng).astype(float))
    _, start = np.unique(time, return_index=True)
    stop = np.append(start[1:], time.size)
    with np.errstate(divide="ignore", invalid="ignore"):  # groups left empty are masked
        for lo, hi in zip(start, stop, strict=True):
            acc.update(grp[lo:hi], status[lo:hi], rho)
    return acc.result()


class _GrayState:
    """Running sums of Gray's score and variance over the distinct times (cmprsk crst).

    Notation: ``rs`` risk set per group; ``skmm``/``skm`` all-cause KM just before/at the
    current time; ``f1m`` group cumulative incidence just before; ``fm`` pooled cumulative
    incidence just before; ``c``, ``v2``, ``v3`` the terms combined in :meth:`result`.
    """

    def __init__(self, group_sizes: np.ndarray) -> None:
        self.ng = ng = group_sizes.size
        ng1 = ng - 1
        self.rs = group_sizes.copy()
        self.s = np.zeros(ng1)
        self.v = np.zeros((ng1, ng1))
        self.f1m = np.zeros(ng)
        self.skmm = np.ones(ng)
        self.skm = np.ones(ng)
        self.v3 = np.zeros(ng)
        self.v2 = np.zeros((ng1, ng))
        self.c = np.zeros((ng, ng))
        self.fm = 0.0

    def update(self, g: np.ndarray, m: np.ndarray, rho: float) -> None:
        ng, ng1 = self.ng, self.ng - 1
        rs, skmm, f1m, fm, c = self.rs, self.skmm, self.f1m, self.fm, self.c
        d1 = np.bincount(g[m == 1], minlength=ng).astype(float)
        d2 = np.bincount(g[m == 2], minlength=ng).astype(float)
        nd1, nd2 = d1.sum(), d2.sum()
        if nd1 > 0 or nd2 > 0:
            live = rs > 0
            skm = np.where(live, skmm * (rs - d1 - d2) / rs, self.skm)
            f1 = np.where(live, f1m + skmm * d1 / rs, f1m)
            h = np.where(live, rs / skmm, 0.0)
            tr = h.sum()  # sum_r h_r in the paper
            tq = np.where(live, rs * (1.0 - f1m) / skmm, 0.0).sum()  # sum_r R_r
            f = fm + nd1 / tr
            fb = (1.0 - fm) ** rho
            a = -fb * np.outer(h, h) / tr
            a[np.diag_indices(ng)] = fb * h * (1.0 - h / tr)
            if nd1 > 0:
                c += a * nd1 / (tr * (1.0 - fm))
            self.s += np.where(live, fb * (d1 - nd1 * rs * (1.0 - f1m) / (skmm * tq)), 0.0)[:ng1]
            if nd1 > 0:
                for k in np.flatnonzero(live):
                    t4 = 1.0 - (1.0 - f) / skm[k] if skm[k] > 0 else 1.0
                    t5 = 1.0 - (nd1 - 1.0) / (tr * skmm[k] - 1.0) if nd1 > 1 else 1.0
                    t3 = t5 * skmm[k] * nd1 / (tr * rs[k])
                    self.v3[k] += t4 * t4 * t3
                    t1 = a[:ng1, k] - t4 * c[:ng1, k]
                    self.v2[:, k] += t1 * t4 * t3
                    self.v += np.outer(t1, t1) * t3
            for k in np.flatnonzero((skm > 0) & (d2 > 0)):
                t4 = (1.0 - f) / skm[k]
                t5 = 1.0 - (d2[k] - 1.0) / (rs[k] - 1.0) if d2[k] > 1 else 1.0
                t3 = t5 * skmm[k] ** 2 * d2[k] / rs[k] ** 2
                self.v3[k] += t4 * t4 * t3
                t1 = t4 * c[:ng1, k]
                self.v2[:, k] -= t1 * t4 * t3
                self.v += np.outer(t1, t1) * t3
            self.fm, self.f1m, self.skmm, self.skm = f, f1, skm, skm
        self.rs = rs - np.bincount(g, minlength=ng)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        cc = self.c[: self.ng - 1]
        v = self.v + (cc * self.v3) @ cc.T + cc @ self.v2.T + self.v2 @ cc.T
        return self.s, v


# --------------------------------------------------------------------------- Fine–Gray
def censoring_km_before(time: np.ndarray, status: np.ndarray) -> np.ndarray:
    """Kaplan–Meier of the censoring distribution just before each time, ``G(t-)``.

    Failures of any cause count as censored for this curve; ``time`` ascending.
    """
    utime, inv = np.unique(time, return_inverse=True)
    removed = np.bincount(inv, minlength=utime.size)
    at_risk = time.size - np.concatenate([[0], np.cumsum(removed)[:-1]])
    cens = np.bincount(inv, weights=(status == 0).astype(float), minlength=utime.size)
    g_after = np.cumprod(1.0 - cens / at_risk)
    g_before = np.concatenate([[1.0], g_after[:-1]])
    return g_before[inv]


@dataclass(frozen=True)
class _FGData:
    time: np.ndarray
    status: np.ndarray  # 0 censored, 1 cause of interest, 2 other causes
    z: np.ndarray  # n × p
    g: np.ndarray  # G(t-) per subject
    w: np.ndarray  # failures × subjects risk-set weights (without exp(beta z))


def fg_data(time: np.ndarray, status: np.ndarray, z: np.ndarray) -> _FGData:
    """Sort-free setup of the Fine–Gray risk sets (``time`` must be ascending)."""
    g = censoring_km_before(time, status)
    fail = np.flatnonzero(status == 1)
    tf = time[fail][:, None]
    tj = time[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(g[None, :] > 0, g[fail][:, None] / g[None, :], 0.0)
    w = np.where(tj >= tf, 1.0, np.where(status[None, :] == 2, ratio, 0.0))
    return _FGData(time, status, z, g, w)


def fg_loglik(d: _FGData, beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Log partial likelihood, score and information of the Fine–Gray model."""
    eb = np.exp(d.z @ beta)
    fail = d.status == 1
    s0 = d.w @ eb
    s1 = d.w @ (eb[:, None] * d.z)
    zbar = s1 / s0[:, None]
    zf = d.z[fail]
    loglik = float((zf @ beta).sum() - np.log(s0).sum())
    score = (zf - zbar).sum(axis=0)
    s2 = np.einsum("fj,j,jk,jl->kl", d.w / s0[:, None], eb, d.z, d.z)
    info = s2 - zbar.T @ zbar
    return loglik, score, info


def fg_fit(d: _FGData, *, maxiter: int = 50, gtol: float = 1e-9) -> tuple[np.ndarray, bool]:
    """Newton–Raphson with step halving; returns (beta, converged)."""
    beta = np.zeros(d.z.shape[1])
    ll, score, info = fg_loglik(d, beta)
    for _ in range(maxiter):
        if np.max(np.abs(score)) < gtol * max(1.0, abs(ll)):
            return beta, True
        step = np.linalg.solve(info, score)
        for _half in range(30):
            new = beta + step
            ll_new, score_new, info_new = fg_loglik(d, new)
            if np.isfinite(ll_new) and ll_new >= ll - 1e-12:
                break
            step = step / 2
        beta, ll, score, info = new, ll_new, score_new, info_new
    return beta, bool(np.max(np.abs(score)) < 1e-6 * max(1.0, abs(ll)))


def fg_sandwich(d: _FGData, beta: np.ndarray) -> np.ndarray:
    """Fine & Gray (1999) robust variance, with the censoring-estimation term (cmprsk)."""
    t, st, z = d.time, d.status, d.z
    eb = np.exp(z @ beta)
    fail = np.flatnonzero(st == 1)
    s0 = d.w @ eb
    zbar = (d.w @ (eb[:, None] * z)) / s0[:, None]
    _, _, info = fg_loglik(d, beta)
    # eta_i: dN part minus the d Lambda part (w[f, i] is i's weight at failure f)
    eta = -np.einsum("fi,i,fik->ik", d.w / s0[:, None], eb, z[None, :, :] - zbar[:, None, :])
    eta[fail] += z[fail] - zbar
    # psi_i: censoring martingale part, evaluated at the distinct censoring times u
    cens_times = np.unique(t[st == 0])
    psi = np.zeros_like(z, dtype=float)
    if cens_times.size:
        y = (t[None, :] >= cens_times[:, None]).sum(axis=1).astype(float)
        dnc = (t[None, :] == cens_times[:, None]) & (st[None, :] == 0)
        dnc = dnc.sum(axis=1).astype(float)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv_g = np.where(d.g > 0, 1.0 / d.g, 0.0)
        a = (t[None, :] < cens_times[:, None]) & (st[None, :] == 2)
        a0 = a @ (eb * inv_g)
        a1 = a @ (eb[:, None] * z * inv_g[:, None])
        later = t[fail][None, :] >= cens_times[:, None]  # u × failures
        gf = d.g[fail]
        c0 = later @ (gf / s0)
        c1 = later @ (gf[:, None] * zbar / s0[:, None])
        q = a1 * c0[:, None] - a0[:, None] * c1
        cum = np.cumsum(q * (dnc / y**2)[:, None], axis=0)
        k = np.searchsorted(cens_times, t, side="right") - 1
        psi = -np.where(k[:, None] >= 0, cum[np.maximum(k, 0)], 0.0)
        own = np.searchsorted(cens_times, t)
        is_c = st == 0
        psi[is_c] += q[own[is_c]] / y[own[is_c], None]
    u = eta + psi
    inv = np.linalg.inv(info)
    return inv @ (u.T @ u) @ inv
