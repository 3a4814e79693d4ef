"""Proportional-odds (cumulative logit) model fitted by Newton with analytic derivatives.

``P(Y <= j | x) = F(theta_j - x'beta)``, ``F`` the logistic distribution: the
parametrisation of R's ``ordinal::clm(link = "logit")`` and ``MASS::polr``. Private kernel
of :func:`olinkpipe.clinical.associate_outcome` (``kind="ordinal"``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

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
    """Log-likelihood, its gradient and Hessian in ``(theta, beta)``."""
    n, p = x.shape
    q = k - 1 + p
    _, _, fa, fb, prob = _pieces(params, x, y, k)
    if np.any(~(prob > 0)):
        return -np.inf, np.full(q, np.nan), np.full((q, q), np.nan)
    da, db = fa * (1 - fa), fb * (1 - fb)  # densities
    ga, gb = da / prob, -db / prob
    haa = da * (1 - 2 * fa) / prob - ga**2
    hbb = -db * (1 - 2 * fb) / prob - gb**2
    hab = -ga * gb
    ua = np.zeros((n, q))
    ub = np.zeros((n, q))
    rows = np.arange(n)
    up, low = y < k - 1, y > 0
    ua[rows[up], y[up]] = 1.0
    ub[rows[low], y[low] - 1] = 1.0
    ua[:, k - 1 :] = -x
    ub[:, k - 1 :] = -x
    grad = ua.T @ ga + ub.T @ gb
    cross = ua.T @ (hab[:, None] * ub)
    hess = ua.T @ (haa[:, None] * ua) + ub.T @ (hbb[:, None] * ub) + cross + cross.T
    return float(np.log(prob).sum()), grad, hess


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
    res = newton_max(lambda v: _loglik(v, xs, y, k), start)
    # (theta, beta) = T (theta~, beta~): beta = beta~ / s, theta = theta~ + centre'beta
    p = x.shape[1]
    t = np.eye(k - 1 + p)
    t[k - 1 :, k - 1 :] = np.diag(1.0 / scale)
    t[: k - 1, k - 1 :] = (centre / scale)[None, :]
    try:
        cov_s = np.linalg.inv(-res.hess)
    except np.linalg.LinAlgError:
        cov_s = np.full_like(res.hess, np.nan)
    params = t @ res.params
    beta_s = res.params[k - 1 :]
    return OrdinalFit(
        beta=params[k - 1 :],
        theta=params[: k - 1],
        cov=t @ cov_s @ t.T,
        loglik=res.loglik,
        converged=res.converged,
        max_abs_std_beta=float(np.max(np.abs(beta_s))) if p else 0.0,
    )
