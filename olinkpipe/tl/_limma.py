"""Empirical-Bayes moderated t-statistics (Smyth 2004), written from the paper in numpy.

Array-only: per-assay linear models with a per-assay missingness mask, the moment
estimator of the prior (limma's ``fitFDist`` without covariate, i.e. the "legacy" method)
and the moderated t. Not a port of limma's GPL code.

References
----------
Smyth, G. K. (2004). Linear models and empirical Bayes methods for assessing differential
expression in microarray experiments. Statistical Applications in Genetics and Molecular
Biology 3, Article 3.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from ._kernels import MIN_N, _blank, _result, t_quantile, t_two_sided_p

__all__ = ["trigamma_inverse", "fit_f_dist", "masked_ols", "moderated_t", "ebayes"]


def trigamma_inverse(x: np.ndarray | float) -> np.ndarray:
    """Solve ``trigamma(y) = x`` for y > 0 by Newton's method on 1/trigamma (Smyth 2004).

    1/trigamma(y) is nearly linear in y, so Newton on it converges from ``y0 = 0.5 + 1/x``
    monotonically in a few steps.
    """
    x = np.asarray(x, dtype=float)
    y = 0.5 + 1.0 / x
    for _ in range(50):
        tri = special.polygamma(1, y)
        dif = tri * (1.0 - tri / x) / special.polygamma(2, y)
        y = y + dif
        if np.all(-dif / y < 1e-8):
            break
    y = np.where(x > 1e7, 1.0 / np.sqrt(x), y)
    return np.where(x < 1e-6, 1.0 / x, y)


def fit_f_dist(s2: np.ndarray, df: np.ndarray) -> tuple[float, float]:
    """Prior variance ``s0²`` and prior df ``d0`` from residual variances by moments.

    ``z = log s²`` has mean ``log s0² + ψ(d/2) − ψ(d0/2) + log(d0/d)`` and variance
    ``ψ'(d/2) + ψ'(d0/2)``; match the sample moments of ``e = z − ψ(d/2) + log(d/2)``
    (assays with df = 0 or non-finite s² are left out; zero variances are offset to
    1e-5 × median as limma does). Returns ``(s0², d0)``; ``d0 = inf`` when the sample
    variance of ``e`` does not exceed the mean of ``ψ'(d/2)``.
    """
    s2 = np.asarray(s2, dtype=float)
    df = np.asarray(df, dtype=float)
    ok = np.isfinite(s2) & np.isfinite(df) & (s2 > -1e-15) & (df > 1e-15)
    x, d = np.maximum(s2[ok], 0.0), df[ok]
    n = x.size
    if n == 0:
        return np.nan, np.nan
    if n == 1:
        return float(x[0]), 0.0
    med = np.median(x)
    if med == 0:
        med = 1.0
    x = np.maximum(x, 1e-5 * med)
    # df take few distinct values: evaluate the special functions once per value
    half, inv = np.unique(d / 2.0, return_inverse=True)
    e = np.log(x) - special.digamma(half)[inv] + np.log(d / 2.0)
    emean = e.mean()
    evar = ((e - emean) ** 2).sum() / (n - 1) - special.polygamma(1, half)[inv].mean()
    if evar > 0:
        d0 = 2.0 * float(trigamma_inverse(evar))
        s0 = float(np.exp(emean + special.digamma(d0 / 2.0) - np.log(d0 / 2.0)))
    else:
        d0 = np.inf
        s0 = float(np.exp(emean))
    return s0, d0


def masked_ols(y: np.ndarray, z: np.ndarray, coef: int) -> dict:
    """Least squares of every column of ``y`` (samples × assays, NaN = missing) on ``z``.

    Each assay uses only its observed rows: the normal equations ``Z'WZ`` (W = that
    assay's observed mask) are formed for all assays at once with one ``einsum`` and
    solved as a batch, so assays with different missingness get their own exact fit
    (what limma's ``lmFit`` does gene by gene when there are NAs). Returns the
    coefficient ``coef``, its unscaled standard deviation ``sqrt((Z'WZ)⁻¹[coef, coef])``,
    residual variance, residual df (observations − rank) and observation count.

    Works over slices of columns (each assay's fit is its own), so the temporaries (mask,
    weights, zero-filled copy, residuals) are those of one slice, not of the whole matrix.
    """
    from .._parallel import column_slices

    slices = column_slices(y.shape[1], y.shape[0])
    if len(slices) <= 1:
        return _masked_ols(y, z, coef)
    fits = [_masked_ols(y[:, sl], z, coef) for sl in slices]
    return {k: np.concatenate([f[k] for f in fits]) for k in fits[0]}


def _masked_ols(y: np.ndarray, z: np.ndarray, coef: int) -> dict:
    """:func:`masked_ols` of one slice of columns."""
    obs = ~np.isnan(y)
    w = obs.astype(float)
    y0 = np.where(obs, y, 0.0)
    n_obs = obs.sum(axis=0)
    p = z.shape[1]
    if p == 1 and np.all(z == 1.0):
        gram = n_obs.astype(float)[:, None, None]
    else:
        gram = np.einsum("ik,il,ij->jkl", z, z, w, optimize=True)
    zy = (z.T @ y0).T[:, :, None]  # assays × p × 1
    if p == 1:
        full = gram[:, 0, 0] > 0
    else:
        full = np.linalg.matrix_rank(gram, tol=None) == p
    safe = np.where(full[:, None, None], gram, np.eye(p)[None])
    inv = np.linalg.inv(safe)
    beta = (inv @ zy)[:, :, 0]
    resid = np.where(obs, y - z @ beta.T, 0.0)
    rss = np.einsum("ij,ij->j", resid, resid)
    df = (n_obs - p).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        s2 = rss / df
    ok = full & (df > 0)
    return {
        "coef": np.where(full, beta[:, coef], np.nan),
        "unscaled": np.where(full, np.sqrt(inv[:, coef, coef]), np.nan),
        "s2": np.where(ok, s2, np.nan),
        "df": np.where(ok, df, 0.0),
        "n_obs": n_obs,
        "full_rank": full,
    }


def moderated_t(
    y: np.ndarray,
    z: np.ndarray,
    coef: int,
    *,
    n_units: np.ndarray,
    conf_level: float = 0.95,
    min_units: int = MIN_N,
    unit_name: str = "complete pairs",
) -> dict:
    """Moderated t for coefficient ``coef`` of ``y ~ z`` fitted per assay (see masked_ols).

    ``s̃² = (d0·s0² + d·s²)/(d0 + d)``, ``t = β / (s̃·u)`` with ``u`` the unscaled sd, on
    ``d + d0`` df (capped at the pooled residual df, as limma). Assays with fewer than
    ``min_units`` units (pairs or samples per group, ``n_units``) are not tested and do
    not enter the prior; neither do assays with zero residual variance (limma would
    offset them to 1e-5 × the median variance and test them; here they get NaN and a
    reason, like the t-test).
    """
    fit = masked_ols(y, z, coef)
    return ebayes(
        fit["coef"],
        fit["unscaled"],
        fit["s2"],
        fit["df"],
        n_units=n_units,
        full_rank=fit["full_rank"],
        conf_level=conf_level,
        min_units=min_units,
        unit_name=unit_name,
    )


def ebayes(
    coef: np.ndarray,
    unscaled: np.ndarray,
    s2: np.ndarray,
    df: np.ndarray,
    *,
    n_units: np.ndarray,
    full_rank: np.ndarray | None = None,
    conf_level: float = 0.95,
    min_units: int = MIN_N,
    unit_name: str = "complete pairs",
) -> dict:
    """Squeeze the residual variances towards the prior and form the moderated t.

    ``out["prior"]`` holds ``s2_prior`` and ``df_prior`` on the scale of ``s2`` (limma's
    ``fit$s2.prior``, ``fit$df.prior`` when ``s2`` are the model's residual variances; a
    paired caller passing variances of differences halves ``s2_prior``). Tested against
    limma 3.54.1 ``eBayes(lmFit(y, ~ pair + group))``: prior, estimate, CI, t and p to 1e-8.
    """
    m = coef.size
    out = _result(m)
    if full_rank is None:
        full_rank = np.ones(m, dtype=bool)
    few = np.asarray(n_units) < min_units
    scale = np.maximum(np.abs(coef), 1.0)
    with np.errstate(invalid="ignore"):
        zero = ~few & (s2 <= (1e-13 * scale) ** 2)
    df = np.where(few | zero, 0.0, df)
    s2 = np.where(few | zero, np.nan, s2)
    s0, d0 = fit_f_dist(s2, df)
    with np.errstate(invalid="ignore", divide="ignore"):
        if np.isinf(d0):
            s2_post = np.full(m, s0)
        else:
            s2_post = (d0 * s0 + df * np.nan_to_num(s2)) / (d0 + df)
        se = np.sqrt(s2_post) * unscaled
        t = coef / se
    df_total = np.minimum(df + d0, np.nansum(df))
    out["estimate"] = coef
    out["statistic"] = t
    out["df"] = df_total
    out["p_value"] = t_two_sided_p(t, df_total)
    q = t_quantile(0.5 + conf_level / 2.0, df_total)
    out["ci_low"] = coef - q * se
    out["ci_high"] = coef + q * se
    out["s2"] = s2
    out["s2_post"] = s2_post
    out["df_residual"] = df
    _blank(out, few, f"fewer than {min_units} {unit_name}")
    _blank(out, zero, "zero residual variance", keep_estimate=True)
    _blank(out, ~full_rank, "design not of full rank for this assay (missing values)")
    _blank(out, df <= 0, "no residual degrees of freedom")
    out["prior"] = {"s2_prior": s0, "df_prior": d0}
    return out
