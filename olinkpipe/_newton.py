"""Newton–Raphson maximisation with step halving, for the clinical regression models.

Internal kernel shared by the subpackages: :mod:`olinkpipe._ordinal` (clinical ordinal
outcomes, :func:`olinkpipe.tl.ordinal`) and :mod:`olinkpipe.clinical._cox`.
The models are fitted on standardised covariates (centred, unit SD), where the Hessian
is well conditioned whatever the covariate's unit (dose in cells/kg ~1e6–1e8), and
mapped back by :func:`unscale`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

TOL = 1e-10  # on the largest Newton step, in standardised units
MAXITER = 200


@dataclass(frozen=True)
class NewtonResult:
    params: np.ndarray
    loglik: float
    grad: np.ndarray
    hess: np.ndarray
    converged: bool
    n_iter: int


def newton_max(
    fun: Callable[[np.ndarray], tuple[float, np.ndarray, np.ndarray]],
    x0: np.ndarray,
    *,
    tol: float = TOL,
    maxiter: int = MAXITER,
    solve: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> NewtonResult:
    """Maximise ``fun(x) -> (loglik, gradient, Hessian)`` from ``x0``.

    Full Newton steps, halved (up to 30 times) while the log-likelihood decreases;
    converged when the largest step is below ``tol`` (the next step is then ~tol²:
    quadratic convergence), after which one more evaluation gives the Hessian at the
    solution. Not converged: a non-finite value, no ascent, or ``maxiter`` reached
    (e.g. separation, where the estimates diverge). ``solve(hess, grad)`` returns the
    Newton step ``(−hess)⁻¹ grad`` (default: a dense solve); a model with structure in
    its Hessian passes a faster one.
    """
    x = np.asarray(x0, dtype=float).copy()
    ll, g, h = fun(x)
    for it in range(1, maxiter + 1):
        if not (np.isfinite(ll) and np.all(np.isfinite(g)) and np.all(np.isfinite(h))):
            return NewtonResult(x, ll, g, h, converged=False, n_iter=it)
        try:
            step = np.linalg.solve(-h, g) if solve is None else solve(h, g)
        except np.linalg.LinAlgError:
            return NewtonResult(x, ll, g, h, converged=False, n_iter=it)
        for _ in range(30):
            new = fun(x + step)
            if np.isfinite(new[0]) and new[0] >= ll - 1e-12 * abs(ll):
                break
            step = step / 2
        else:
            return NewtonResult(x, ll, g, h, converged=False, n_iter=it)
        x = x + step
        ll, g, h = new
        if np.max(np.abs(step)) < tol:
            return NewtonResult(x, ll, g, h, converged=True, n_iter=it)
    return NewtonResult(x, ll, g, h, converged=False, n_iter=maxiter)


def standardise(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(x - centre) / scale`` per column (scale 1 for a constant column)."""
    centre = x.mean(axis=0)
    scale = x.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return (x - centre) / scale, centre, scale
