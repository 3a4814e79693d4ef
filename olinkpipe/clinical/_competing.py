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
