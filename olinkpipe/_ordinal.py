"""Proportional-odds (cumulative logit) model fitted by Newton with analytic derivatives.

``P(Y <= j | x) = F(theta_j - x'beta)``, ``F`` the logistic distribution: the
parametrisation of R's ``ordinal::clm(link = "logit")`` and ``MASS::polr``. Internal kernel
shared by :func:`olinkpipe.clinical.associate_outcome` (``kind="ordinal"``) and
:func:`olinkpipe.tl.ordinal` (one fit per assay, NPX ranks as the outcome).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, special

from ._newton import newton_max, standardise


@dataclass(frozen=True)
class OrdinalFit:
    beta: np.ndarray  # covariate coefficients
    theta: np.ndarray  # thresholds (K - 1)
    cov: np.ndarray  # covariance of (theta, beta), inverse of the observed information
    loglik: float
    converged: bool
    max_abs_std_beta: float  # largest coefficient per SD of its covariate


def _pieces(params: np.ndarray, x: np.ndarray, y: np.ndarray, k: int):
    theta, beta = params[: k - 1], params[k - 1 :]
    eta = x @ beta
    th = np.concatenate([[-np.inf], theta, [np.inf]])
    a = th[y + 1] - eta  # upper limit of the observed category
    b = th[y] - eta  # lower limit
    fa, fb = special.expit(a), special.expit(b)
    with np.errstate(invalid="ignore"):
        prob = fa * (1.0 - fb) * -np.expm1(b - a)  # F(a) - F(b) without cancellation
    return a, b, fa, fb, prob


def _loglik(params: np.ndarray, x: np.ndarray, y: np.ndarray, k: int):
    """Log-likelihood, its gradient and Hessian in ``(theta, beta)``.

    Observation ``i`` touches thresholds ``y_i`` (upper limit ``a``) and ``y_i - 1`` (lower
    limit ``b``) only, so the threshold block of the Hessian is tridiagonal and is summed
    with ``bincount`` (O(n·p + K²) rather than dense n × (K + p) products: with NPX ranks
    as the outcome ``K`` is about ``n``).
    """
    n, p = x.shape
    k1 = k - 1
    q = k1 + p
    _, _, fa, fb, prob = _pieces(params, x, y, k)
    if np.any(~(prob > 0)):
        return -np.inf, np.full(q, np.nan), np.full((q, q), np.nan)
    da, db = fa * (1 - fa), fb * (1 - fb)  # densities
    ga, gb = da / prob, -db / prob
    haa = da * (1 - 2 * fa) / prob - ga**2
    hbb = -db * (1 - 2 * fb) / prob - gb**2
    hab = -ga * gb
    up, low = y < k1, y > 0  # observation has an upper / a lower finite limit
    iu, il = y[up], y[low] - 1
    both = up & low
    grad = np.empty(q)
    grad[:k1] = np.bincount(iu, ga[up], k1) + np.bincount(il, gb[low], k1)
    grad[k1:] = -(x.T @ (ga + gb))
    hess = np.zeros((q, q))
    diag = np.bincount(iu, haa[up], k1) + np.bincount(il, hbb[low], k1)
    tt = hess[:k1, :k1]
    tt[np.arange(k1), np.arange(k1)] = diag
    off = np.bincount(y[both] - 1, hab[both], k1)[: k1 - 1]  # (j + 1, j) entries
    tt[np.arange(1, k1), np.arange(k1 - 1)] = off
    tt[np.arange(k1 - 1), np.arange(1, k1)] = off
    wa, wb = haa + hab, hbb + hab
    for c in range(p):  # threshold × coefficient block
        hess[:k1, k1 + c] = -(
            np.bincount(iu, wa[up] * x[up, c], k1) + np.bincount(il, wb[low] * x[low, c], k1)
        )
    hess[k1:, :k1] = hess[:k1, k1:].T
    hess[k1:, k1:] = x.T @ ((haa + hbb + 2 * hab)[:, None] * x)
    return float(np.log(prob).sum()), grad, hess


def _block_solve(hess: np.ndarray, k1: int, rhs: np.ndarray) -> np.ndarray:
    """Solve ``(−hess) z = rhs`` using the tridiagonal threshold block (O(K·p²), not O(K³)).

    ``−hess = [[A, B], [B', D]]`` with ``A`` tridiagonal and positive definite (the
    log-likelihood is concave): ``W = A⁻¹B`` by banded Cholesky, the Schur complement
    ``S = D − B'W``, then ``v = S⁻¹(r₂ − B'A⁻¹r₁)``, ``u = A⁻¹r₁ − W v``. Raises
    ``LinAlgError`` when ``A`` or ``S`` is not positive definite.
    """
    m = -hess
    a_band = np.zeros((2, k1))
    a_band[0, 1:] = np.diagonal(m[:k1, :k1], 1)
    a_band[1] = np.diagonal(m[:k1, :k1])
    b, d = m[:k1, k1:], m[k1:, k1:]
    r = rhs.reshape(rhs.shape[0], -1)
    try:
        sol = linalg.solveh_banded(a_band, np.hstack([b, r[:k1]]), check_finite=False)
    except ValueError as err:  # non-finite input
        raise np.linalg.LinAlgError(str(err)) from err
    w, wr = sol[:, : b.shape[1]], sol[:, b.shape[1] :]
    schur = d - b.T @ w
    v = np.linalg.solve(schur, r[k1:] - b.T @ wr)
    return np.vstack([wr - w @ v, v]).reshape(rhs.shape)


def _unstandardise(cov_s: np.ndarray, k1: int, c: np.ndarray, inv_scale: np.ndarray):
    """``T cov_s Tᵀ`` for ``T = [[I, 1c'], [0, diag(inv_scale)]]`` without dense products."""

    def left(m: np.ndarray) -> np.ndarray:  # T @ m
        out = m.copy()
        out[:k1] += (c @ m[k1:])[None, :]
        out[k1:] *= inv_scale[:, None]
        return out

    return left(left(cov_s).T).T


def fit_ordinal(x: np.ndarray, y: np.ndarray) -> OrdinalFit:
    """Fit the model to covariates ``x`` (n × p) and category codes ``y`` (0..K-1, all seen).

    Fitted on standardised covariates by :func:`~._newton.newton_max` to a step below
    1e-10, the covariance the inverse observed information from the analytic Hessian,
    both mapped back to the covariates' own units. Equals ``ordinal::clm`` (2022.11-16,
    R 4.2.2) to 1e-6 in coefficients and SEs, also with dose in cells/kg.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=int)
    k = int(y.max()) + 1
    xs, centre, scale = standardise(x)
    cum = np.cumsum(np.bincount(y, minlength=k))[:-1] / y.size
    start = np.concatenate([special.logit(cum), np.zeros(x.shape[1])])
    p, k1 = x.shape[1], k - 1

    def solve(h: np.ndarray, g: np.ndarray) -> np.ndarray:  # (−h)⁻¹ g
        if p == 0 or k1 < 2:
            return np.linalg.solve(-h, g)
        try:
            return _block_solve(h, k1, g)
        except np.linalg.LinAlgError:
            return np.linalg.solve(-h, g)

    res = newton_max(lambda v: _loglik(v, xs, y, k), start, solve=solve)
    # (theta, beta) = T (theta~, beta~): beta = beta~ / s, theta = theta~ + centre'beta
    try:
        cov_s = solve(res.hess, np.eye(k1 + p))
    except np.linalg.LinAlgError:
        cov_s = np.full_like(res.hess, np.nan)
    c = centre / scale
    beta_s = res.params[k1:]
    theta = res.params[:k1] + c @ beta_s
    return OrdinalFit(
        beta=beta_s / scale,
        theta=theta,
        cov=_unstandardise(cov_s, k1, c, 1.0 / scale),
        loglik=res.loglik,
        converged=res.converged,
        max_abs_std_beta=float(np.max(np.abs(beta_s))) if p else 0.0,
    )
