"""Re-export of :mod:`olinkpipe._newton` (moved there to be shared with ``tl``)."""

from .._newton import MAXITER, TOL, NewtonResult, newton_max, standardise

__all__ = ["MAXITER", "TOL", "NewtonResult", "newton_max", "standardise"]
