"""Firth's penalised-likelihood logistic regression and separation detection (numpy only).

Private kernel of :func:`olinkpipe.clinical.associate_outcome`. The penalised log-likelihood
is ``l*(b) = l(b) + 0.5 log det I(b)`` with ``I(b) = X' W X`` (Jeffreys prior; Firth 1993).
Its gradient is Firth's modified score ``X' (y - p + h (1/2 - p))`` with ``h`` the diagonal
of the hat matrix ``W^1/2 X I^-1 X' W^1/2``. Estimation is Newton-Raphson with the Fisher
information as the Hessian approximation and step halving on ``l*``; confidence limits and
p-values come from the profile penalised likelihood as in R's ``logistf`` (Heinze &
Schemper 2002): the limits of coefficient ``j`` are the values ``b`` where
``2 (l*(b_hat) - max_{b_-j} l*(b_j = b)) = qchisq(1 - alpha, 1)``, and the p-value is the
penalised likelihood-ratio test of ``b_j = 0``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

_TOL = 1e-10
_MAXIT = 200
_MAXSTEP = 5.0


@dataclass(frozen=True)
class FirthResult:
    """Coefficients, Wald SEs, profile-likelihood CIs and PLR p-values of a Firth fit."""

    coef: np.ndarray
    se: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    p_value: np.ndarray
    chi2: np.ndarray
    loglik: float
    converged: bool


def _penalised_loglik(X: np.ndarray, y: np.ndarray, beta: np.ndarray) -> float:
    eta = X @ beta
    # log(1 + exp(eta)) without overflow
    ll = float(np.sum(y * eta - np.logaddexp(0.0, eta)))
    p = 1.0 / (1.0 + np.exp(-eta))
    w = p * (1.0 - p)
    sign, logdet = np.linalg.slogdet(X.T @ (X * w[:, None]))
    if sign <= 0:
        return -np.inf
    return ll + 0.5 * logdet


def _score_info(X: np.ndarray, y: np.ndarray, beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = 1.0 / (1.0 + np.exp(-(X @ beta)))
    w = p * (1.0 - p)
    info = X.T @ (X * w[:, None])
    inv = np.linalg.pinv(info)
    h = np.einsum("ij,jk,ik->i", X, inv, X) * w
    score = X.T @ (y - p + h * (0.5 - p))
    return score, info


def _fit(
    X: np.ndarray, y: np.ndarray, beta0: np.ndarray, free: np.ndarray
) -> tuple[np.ndarray, float, bool]:
    """Maximise l* over the coordinates in ``free`` (boolean mask), others held fixed."""
    beta = beta0.copy()
    ll = _penalised_loglik(X, y, beta)
    for _ in range(_MAXIT):
        score, info = _score_info(X, y, beta)
        s, sub = score[free], info[np.ix_(free, free)]
        step = np.linalg.lstsq(sub, s, rcond=None)[0]
        big = np.max(np.abs(step)) if step.size else 0.0
        if big > _MAXSTEP:
            step *= _MAXSTEP / big
        for _half in range(30):
            cand = beta.copy()
            cand[free] += step
            ll_new = _penalised_loglik(X, y, cand)
            if ll_new >= ll - 1e-12:
                break
            step /= 2.0
        beta, ll_old, ll = cand, ll, ll_new
        if np.max(np.abs(step), initial=0.0) < _TOL and abs(ll - ll_old) < _TOL:
            return beta, ll, True
        if np.max(np.abs(s), initial=0.0) < _TOL:
            return beta, ll, True
    return beta, ll, False


def _profile_limit(
    X: np.ndarray, y: np.ndarray, beta: np.ndarray, j: int, ll_max: float, crit: float, side: int
) -> float:
    """The value of coefficient j (below: side=-1, above: side=+1) where the PLR hits crit."""
    free = np.ones(X.shape[1], dtype=bool)
    free[j] = False
    start = beta.copy()

    def deviance_gap(b: float) -> float:
        init = start.copy()
        init[j] = b
        _, ll, _ = _fit(X, y, init, free)
        return 2.0 * (ll_max - ll) - crit

    _, info = _score_info(X, y, beta)
    se = float(np.sqrt(np.linalg.pinv(info)[j, j]))
    width = max(se, 0.1)
    inner = beta[j]
    outer = beta[j] + side * width
    for _ in range(60):
        if deviance_gap(outer) > 0:
            break
        inner, outer = outer, beta[j] + side * (abs(outer - beta[j]) * 2.0)
        if abs(outer) > 1e3:
            return float(side * np.inf)
    lo, hi = sorted((inner, outer))
    return float(optimize.brentq(deviance_gap, lo, hi, xtol=1e-10, rtol=1e-12))


def firth_logistic(X: np.ndarray, y: np.ndarray, *, alpha: float = 0.05) -> FirthResult:
    """Fit Firth's logistic regression; ``X`` includes the intercept column if wanted.

    Returns profile penalised-likelihood CIs and penalised likelihood-ratio p-values
    (``logistf`` defaults ``pl=TRUE``).
    """
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    k = X.shape[1]
    free = np.ones(k, dtype=bool)
    beta, ll_max, converged = _fit(X, y, np.zeros(k), free)
    _, info = _score_info(X, y, beta)
    se = np.sqrt(np.diag(np.linalg.pinv(info)))
    crit = float(stats.chi2.ppf(1.0 - alpha, 1))
    lows, highs, chi2, pvals = (np.empty(k) for _ in range(4))
    for j in range(k):
        lows[j] = _profile_limit(X, y, beta, j, ll_max, crit, -1)
        highs[j] = _profile_limit(X, y, beta, j, ll_max, crit, +1)
        fixed = np.ones(k, dtype=bool)
        fixed[j] = False
        init = beta.copy()
        init[j] = 0.0
        _, ll0, _ = _fit(X, y, init, fixed)
        chi2[j] = max(2.0 * (ll_max - ll0), 0.0)
        pvals[j] = float(stats.chi2.sf(chi2[j], 1))
    return FirthResult(beta, se, lows, highs, pvals, chi2, float(ll_max), converged)


def detect_separation(X: np.ndarray, y: np.ndarray) -> bool:
    """True when the binary outcome is (quasi-)completely separated by ``X``.

    Linear program of Konis (2007), as in R's ``detectseparation``: with ``s = 2y - 1``,
    maximise ``sum_i s_i x_i' b`` subject to ``s_i x_i' b >= 0`` and ``-1 <= b <= 1``. The
    optimum is 0 unless some direction separates the outcomes (then the ML estimate is
    infinite). ``X`` should include the intercept column.
    """
    X = np.asarray(X, dtype=float)
    s = 2.0 * np.asarray(y, dtype=float) - 1.0
    sx = X * s[:, None]
    scale = np.maximum(np.abs(X).max(axis=0), 1e-12)
    sx = sx / scale  # scale-free: bounds on b act on standardised columns
    res = optimize.linprog(
        c=-sx.sum(axis=0),
        A_ub=-sx,
        b_ub=np.zeros(len(s)),
        bounds=[(-1.0, 1.0)] * X.shape[1],
        method="highs",
    )
    if not res.success:
        return False
    return bool(-res.fun > 1e-7 * len(s))
