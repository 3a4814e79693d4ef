"""Linear mixed model per assay with lmerTest's type-III F tests (OlinkAnalyze ``olink_lmer``).

``NPX ~ A * B (+ covariates) + (1 | random)`` is fitted to every assay and each fixed term is
tested with the F statistic and Satterthwaite denominator df that ``anova(model, type = 3)``
of lmerTest reports. The model has one random intercept, so its likelihood has a closed
form in per-subject sums (``V_i = σ² I + σ²_b 11ᵀ``): the fit, the Hessian of the deviance
and the derivatives of ``Cov(β̂)`` are computed exactly here in numpy instead of by
numerical differentiation, in the one per-assay loop of :func:`models._run_per_assay`.
The contrasts are lmerTest's own type-III ``L`` (:func:`_type3_contrasts`), whose rows the
Satterthwaite df depend on.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
from scipy import optimize, sparse, stats

from .._docs import doc_adata, doc_alpha, doc_params
from .._stats import bh_adjust
from .._validate import require_columns
from .._warnings import warn
from ..errors import DesignError, format_message, preview
from . import _blocks
from ._design import subset_assays
from .de import _is_numeric, _matrix
from .models import _annotation, _as_list, _levels_of, _run_per_assay, _select, _sum_coding

__all__ = ["lmer", "lmer_posthoc"]

logger = logging.getLogger("olinkpipe")

#: log θ (θ = σ_b / σ) grid that brackets the optimum of the profiled deviance; extended
#: while the deviance keeps falling, up to θ = 1e100 and down to θ = 1e-12
_LOG_THETA_GRID = np.log(np.logspace(-4, 4, 41))
_LOG_THETA_MAX = np.log(1e100)
_LOG_THETA_MIN = np.log(1e-12)
#: largest |∂ deviance / ∂ log θ| and |∂ deviance / ∂ log σ| accepted at the optimum
_GRAD_TOL = 1e-4
#: eigenvalues of the (Jacobi-scaled) deviance Hessian below this times the largest are
#: dropped from vcov(θ, σ) and reported (lmerTest: an absolute 1e-8, with a warning)
_HESS_RTOL = 1e-8
_LOG2PI = np.log(2.0 * np.pi)


# --------------------------------------------------------------------------------------
# design and lmerTest's type-III contrasts


def _zapsmall(a: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest entry."""
    mx = float(np.max(np.abs(a))) if a.size else 0.0
    if mx > 0:
        digits = max(0, digits - int(np.ceil(np.log10(mx))))
    return np.round(a, digits)


class _Design:
    """Fixed effects: full factorial of ``variables`` plus additive ``covariates``.

    ``x`` is the sum-to-zero coded design that is fitted (raw numerics); ``spans`` maps each
    term to its columns; ``lmats`` holds lmerTest's type-III contrast of each term in the
    coefficients of ``x`` (see :func:`_type3_contrasts`).
    """

    def __init__(self, obs: pd.DataFrame, variables: list[str], covariates: list[str]):
        self.levels: dict[str, list[str] | None] = {}
        for c in variables + covariates:
            self.levels[c] = None if _is_numeric(obs[c]) else _levels_of(obs[c])
            lev = self.levels[c]
            if lev is not None and len(lev) < 2:
                msg = format_message(
                    f"obs[{c!r}] has fewer than two levels among the samples used",
                    column=c,
                    rows=lev,
                    hint="Choose a column with at least two levels, or drop it.",
                )
                raise DesignError(msg)
        self.terms: list[tuple[str, ...]] = [
            t for r in range(1, len(variables) + 1) for t in itertools.combinations(variables, r)
        ]
        self.terms += [(c,) for c in covariates]
        self.factors = [c for c in variables + covariates if self.levels[c] is not None]
        blocks = {c: self._blocks(obs, c) for c in variables + covariates}
        n = len(obs)
        cols: dict[str, list[np.ndarray]] = {k: [np.ones((n, 1))] for k in ["sum", "trt", "full"]}
        keys: dict[str, list] = {"trt": [()], "full": [()]}  # column keys: (term, levels)
        self.spans: list[tuple[str, slice]] = []
        pos = 1
        for term in self.terms:
            for kind in cols:
                block, key = blocks[term[0]][kind]
                key = [(k,) for k in key]
                for f in term[1:]:
                    b2, k2 = blocks[f][kind]
                    block = (block[:, :, None] * b2[:, None, :]).reshape(n, -1)
                    key = [(*a, b) for a in key for b in k2]
                cols[kind].append(block)
                if kind in keys:
                    keys[kind] += [(term, k) for k in key]
            width = cols["sum"][-1].shape[1]
            self.spans.append((":".join(term), slice(pos, pos + width)))
            pos += width
        self.x = np.hstack(cols["sum"])
        self.lmats = _type3_contrasts(
            self.x,
            np.hstack(cols["trt"]),
            np.hstack(cols["full"]),
            keys,
            self.terms,
            self.spans,
            {c: self.levels[c] is None for c in variables + covariates},
        )

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows of the fitted (sum-coded) design for the predictor values in ``frame``."""
        cols = {}
        for c, lev in self.levels.items():
            if lev is None:
                cols[c] = frame[c].to_numpy(dtype=float)[:, None]
            else:
                cols[c] = _sum_coding(frame[c].astype(str).to_numpy(), lev)
        n = len(frame)
        blocks = [np.ones((n, 1))]
        for term in self.terms:
            block = cols[term[0]]
            for f in term[1:]:
                block = (block[:, :, None] * cols[f][:, None, :]).reshape(n, -1)
            blocks.append(block)
        return np.hstack(blocks)

    def _blocks(self, obs: pd.DataFrame, c: str) -> dict:
        """Columns of ``c`` in sum, treatment and full-indicator coding, with level keys."""
        lev = self.levels[c]
        if lev is None:
            col = obs[c].to_numpy(dtype=float)[:, None]
            return {k: (col, [None]) for k in ["sum", "trt", "full"]}
        vals = obs[c].astype(str).to_numpy()
        full = (vals[:, None] == np.asarray(lev)[None, :]).astype(float)
        return {
            "sum": (_sum_coding(vals, lev), lev[:-1]),
            "trt": (full[:, 1:], lev[1:]),  # R's contr.treatment: first level is the reference
            "full": (full, lev),
        }


def _type3_contrasts(x_sum, x_trt, rdx, keys, terms, spans, numeric) -> list[np.ndarray]:
    """lmerTest's type-III contrast of every term, mapped to the sum-coded coefficients.

    A port of lmerTest's ``extract_contrasts_type3`` (``get_contrasts_type3`` for models in
    ``contr.treatment`` coding, as ``olink_lmer`` fits them): ``L = zapsmall(t(ginv(X) rdX))``
    with ``X`` the treatment-coded design and ``rdX`` the rank-deficient design (intercept
    plus all-level indicators of every term); the columns of a term contained in other terms
    (SAS containment: more variables, the same numeric ones) are replaced by ``zapsmall`` of
    their residuals on the columns of the containing terms, highest order first; a term's
    contrast is its columns at the rows of ``X``'s coefficients, nonzero rows kept. As in
    ``get_contrasts_type3`` for other codings, it is mapped to the fitted (sum-coded)
    coefficients by ``zapsmall(ginv(X) X_sum)``, exact here (small integers). The
    ``zapsmall`` rounding to 7 digits (1/3 → 0.3333333) is kept: the ``L`` rows, and with
    them lmerTest's per-row Satterthwaite df, are lmerTest's.
    """
    lmat = _zapsmall(np.linalg.lstsq(x_trt, rdx, rcond=None)[0].T)  # rdX cols × X cols
    vars_of = [set(t) for t in terms]
    nums = [{v for v in t if numeric[v]} for t in terms]
    order = sorted(range(len(terms)), key=lambda i: -len(terms[i]))
    for i in order:
        contains = [j for j in range(len(terms)) if vars_of[i] < vars_of[j] and nums[i] == nums[j]]
        if contains:
            sl = spans[i][1]
            other = np.hstack([lmat[:, spans[j][1]] for j in contains])
            coef = np.linalg.lstsq(other, lmat[:, sl], rcond=None)[0]
            lmat[:, sl] = _zapsmall(lmat[:, sl] - other @ coef)
    where = {k: r for r, k in enumerate(keys["full"])}
    lmat = lmat[[where[k] for k in keys["trt"]]]  # rows of X's coefficients: p × p
    to_sum = _zapsmall(np.linalg.lstsq(x_trt, x_sum, rcond=None)[0])  # β_trt = M β_sum
    out = []
    for _, sl in spans:
        lt = lmat[:, sl].T
        lt = lt[np.abs(lt).sum(axis=1) > 1e-8]
        out.append(lt @ to_sum)
    return out


# --------------------------------------------------------------------------------------
# kernel: one assay, random intercept, closed-form (RE)ML deviance and its derivatives


def _scaled_solve(m: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``m z = b`` for symmetric positive definite ``m`` (stack) after Jacobi scaling.

    Between-subject columns enter ``X'V⁻¹X`` only through the subject means, weighted by
    ``1/(1 + θ²n)``: for a large θ their block is many orders smaller than the within one.
    """
    d = 1.0 / np.sqrt(np.diagonal(m, axis1=-2, axis2=-1))
    ms = m * d[..., :, None] * d[..., None, :]
    return d[..., :, None] * np.linalg.solve(ms, d[..., :, None] * b)


class _Stats:
    """Within-subject and subject-mean cross products of one assay's y and X."""

    def __init__(self, y: np.ndarray, x: np.ndarray, groups: np.ndarray):
        codes, g = np.unique(groups, return_inverse=True)
        self.N, self.p = x.shape
        self.G = codes.size
        zt = sparse.csr_matrix((np.ones(self.N), (g, np.arange(self.N))), shape=(self.G, self.N))
        self.n = np.asarray(zt.sum(axis=1)).ravel()
        sx = zt @ x
        sy = zt @ y
        # within-subject deviations (exact, no cancellation) and √n-scaled subject sums
        self.xw = x - (sx / self.n[:, None])[g]
        self.yw = y - (sy / self.n)[g]
        self.u = sx / np.sqrt(self.n)[:, None]
        self.my = sy / np.sqrt(self.n)
        self.wxx = self.xw.T @ self.xw
        self.wxy = self.xw.T @ self.yw


def _profile(st: _Stats, theta: np.ndarray, *, reml: bool) -> tuple[np.ndarray, np.ndarray]:
    """Profiled deviance (σ² at its optimum) and that σ² for each θ = σ_b / σ."""
    lam = 1.0 + np.outer(theta**2, st.n)  # K × G, relative subject-mean variance
    m1 = st.wxx + np.einsum("kg,gp,gq->kpq", 1.0 / lam, st.u, st.u)
    b1 = st.wxy + np.einsum("kg,gp,g->kp", 1.0 / lam, st.u, st.my)
    beta = _scaled_solve(m1, b1[:, :, None])[:, :, 0]
    rw = st.yw[None, :] - beta @ st.xw.T
    mr = st.my[None, :] - beta @ st.u.T
    q1 = np.einsum("kn,kn->k", rw, rw) + np.einsum("kg,kg->k", mr, mr / lam)
    dof = st.N - st.p if reml else st.N
    s = q1 / dof
    dev = dof * (np.log(s) + 1.0 + _LOG2PI) + np.log(lam).sum(axis=1)
    if reml:
        dev = dev + np.linalg.slogdet(m1)[1]
    return dev, s


class _Point:
    """Deviance, gradient and Hessian in ψ = (σ²_b, σ²) and in lme4's φ = (θ, σ)."""

    def __init__(self, st: _Stats, theta: float, sigma: float, *, reml: bool):
        s = sigma * sigma
        tau = theta * theta * s
        n = st.n
        lam = s + n * tau
        m = st.wxx / s + st.u.T @ (st.u / lam[:, None])
        b = st.wxy / s + st.u.T @ (st.my / lam)
        c = _scaled_solve(m, np.eye(st.p))
        c = 0.5 * (c + c.T)
        beta = c @ b
        rw = st.yw - st.xw @ beta
        mr = st.my - st.u @ beta
        rss_w = rw @ rw
        ew = st.wxy - st.wxx @ beta  # Xw' r_w
        # derivative weights of V⁻¹ (within part, per-subject-mean part): τ, s, ττ, τs, ss
        wts = {
            "t": (0.0, -n / lam**2),
            "s": (-1.0 / s**2, -1.0 / lam**2),
            "tt": (0.0, 2.0 * n**2 / lam**3),
            "ts": (0.0, 2.0 * n / lam**3),
            "ss": (2.0 / s**3, 2.0 / lam**3),
        }
        mk = {k: w * st.wxx + st.u.T @ (st.u * v[:, None]) for k, (w, v) in wts.items()}
        rq = {k: w * rss_w + v @ (mr * mr) for k, (w, v) in wts.items()}
        ek = {k: w * ew + st.u.T @ (v * mr) for k, (w, v) in wts.items() if len(k) == 1}
        q = rss_w / s + mr @ (mr / lam)
        dev = (st.N - st.G) * np.log(s) + np.log(lam).sum() + q + st.N * _LOG2PI
        d1 = {"t": (n / lam).sum(), "s": (st.N - st.G) / s + (1.0 / lam).sum()}
        d2 = {
            "tt": -(n**2 / lam**2).sum(),
            "ts": -(n / lam**2).sum(),
            "ss": -(st.N - st.G) / s**2 - (1.0 / lam**2).sum(),
        }
        keys = ["t", "s"]
        pairs = {(0, 0): "tt", (0, 1): "ts", (1, 0): "ts", (1, 1): "ss"}
        grad = np.array([d1[k] + rq[k] for k in keys])
        hess = np.empty((2, 2))
        for (i, j), kk in pairs.items():
            hess[i, j] = d2[kk] + rq[kk] - 2.0 * ek[keys[i]] @ c @ ek[keys[j]]
        if reml:  # + log|X'V⁻¹X| and its derivatives
            dev += np.linalg.slogdet(m)[1] - st.p * _LOG2PI
            cm = [c @ mk[k] for k in keys]
            grad += [np.trace(a) for a in cm]
            for (i, j), kk in pairs.items():
                hess[i, j] += np.trace(c @ mk[kk]) - np.sum(cm[i] * cm[j].T)
        # chain rule to φ = (θ, σ): τ = θ²σ², s = σ²
        jac = np.array([[2 * theta * s, 2 * theta**2 * sigma], [0.0, 2 * sigma]])
        self.grad_phi = jac.T @ grad
        self.hess_phi = (
            jac.T @ hess @ jac
            + grad[0] * np.array([[2 * s, 4 * theta * sigma], [4 * theta * sigma, 2 * theta**2]])
            + grad[1] * np.array([[0.0, 0.0], [0.0, 2.0]])
        )
        self.dev, self.grad, self.jac = dev, grad, jac
        self.beta, self.cov, self.mk = beta, c, [mk["t"], mk["s"]]
        self.theta, self.sigma = theta, sigma
        self.converged = ""  # why the optimum is not trusted ("" if it is)


def _point(st: _Stats, theta: float, *, reml: bool) -> _Point:
    sigma = float(np.sqrt(_profile(st, np.array([theta]), reml=reml)[1][0]))
    return _Point(st, theta, sigma, reml=reml)


def _optimum(st: _Stats, *, reml: bool) -> _Point:
    """Global minimum of the (RE)ML deviance over θ ≥ 0.

    Grid in log θ, extended upwards (no cap) while the deviance keeps falling and downwards
    towards the boundary θ = 0; Brent on log θ within the bracket; Newton steps in (θ, σ)
    for the last digits; then a check of the gradient (``converged`` says why not).
    """

    def prof(t: np.ndarray) -> np.ndarray:
        return _profile(st, np.exp(t), reml=reml)[0]

    t = _LOG_THETA_GRID.copy()
    dev = prof(t)
    step = t[1] - t[0]
    while int(np.argmin(dev)) == t.size - 1 and t[-1] < _LOG_THETA_MAX:  # keeps falling
        more = t[-1] + step * np.arange(1, 11)
        t, dev = np.r_[t, more], np.r_[dev, prof(more)]
    at0 = _point(st, 0.0, reml=reml)
    while int(np.argmin(dev)) == 0 and at0.grad[0] < 0 and t[0] > _LOG_THETA_MIN:  # to θ = 0
        less = t[0] - step * np.arange(10, 0, -1)
        t, dev = np.r_[less, t], np.r_[prof(less), dev]
    if not np.all(np.isfinite(dev)):
        msg = "deviance not finite on the θ grid"
        raise FloatingPointError(msg)
    k = int(np.argmin(dev))
    if k == t.size - 1:  # still falling at θ = 1e100: no finite optimum
        pt = _point(st, float(np.exp(t[k])), reml=reml)
        pt.converged = "subject variance grows without bound (no finite optimum)"
        return pt
    if k == 0:  # the optimum is the boundary or indistinguishable from it
        theta, fun = 0.0, at0.dev
        if at0.grad[0] < 0:  # deviance falls from θ = 0: minimise over [0, θ_1]
            res = optimize.minimize_scalar(
                lambda th: _profile(st, np.array([th]), reml=reml)[0][0],
                bounds=(0.0, float(np.exp(t[1]))),
                method="bounded",
                options={"xatol": 1e-14},
            )
            theta, fun = float(res.x), float(res.fun)
    else:
        res = optimize.minimize_scalar(
            lambda x: prof(np.array([x]))[0],
            bounds=(t[k - 1], t[k + 1]),
            method="bounded",
            options={"xatol": 1e-10},
        )
        theta, fun = float(np.exp(res.x)), float(res.fun)
    # the boundary σ_b = 0 (lme4's singular fit) is the optimum when the deviance rises there
    if at0.grad[0] >= 0.0 and at0.dev <= fun + 1e-10 * max(abs(fun), 1.0):
        return at0
    pt = _point(st, theta, reml=reml) if theta > 0 else at0
    for _ in range(8):  # Newton in φ: the last digits Brent's bracket cannot give
        if pt.theta == 0.0:
            break
        try:
            step_phi = np.linalg.solve(pt.hess_phi, pt.grad_phi)
        except np.linalg.LinAlgError:
            break
        phi = np.array([pt.theta, pt.sigma]) - step_phi
        if not np.all(np.isfinite(phi)) or phi[0] <= 0 or phi[1] <= 0:
            break
        new = _Point(st, float(phi[0]), float(phi[1]), reml=reml)
        if new.dev > pt.dev + 1e-12 * abs(pt.dev):
            break
        pt = new
        if np.all(np.abs(step_phi) <= 1e-13 * np.abs(phi)):
            break
    # convergence: derivatives in (log θ, log σ) at an interior optimum, in σ at θ = 0
    scaled = pt.grad_phi * np.array([pt.theta, pt.sigma])
    if pt.theta == 0.0:
        scaled = scaled[1:]
        if pt.grad[0] < 0:
            pt.converged = "deviance falls from the boundary σ_b = 0 (optimum not found)"
    if not np.all(np.abs(scaled) <= _GRAD_TOL):
        worst = float(np.max(np.abs(scaled)))
        pt.converged = f"optimizer did not converge (scaled gradient {worst:.1e})"
    return pt


def _vcov_varpar(pt: _Point) -> tuple[np.ndarray, str]:
    """lmerTest's ``vcov_varpar`` = 2 H⁻¹ over the positive eigenvalues of the deviance
    Hessian ``H`` in (θ, σ), equilibrated so that the cut-off is relative and scale-free.

    lmerTest drops eigenvalues below 1e-8 in absolute value (warning about them); here an
    eigenvalue of the Jacobi-scaled ``H`` below ``_HESS_RTOL`` times the largest is dropped
    and named in the returned note (a negative one means the fit is not a minimum).
    """
    h = pt.hess_phi
    dg = np.diag(h)
    use = dg > 0
    a = np.zeros((2, 2))
    note = ""
    if not use.any():
        return a, "deviance Hessian not positive definite"
    d = 1.0 / np.sqrt(dg[use])
    hs = h[np.ix_(use, use)] * d[:, None] * d[None, :]
    ev, vec = np.linalg.eigh(hs)
    pos = ev > _HESS_RTOL * ev.max()
    neg = ev < -_HESS_RTOL * ev.max()
    if neg.any() or (~use & (dg < 0)).any():
        return a, "deviance Hessian not positive definite (not a minimum)"
    n_drop = int((~pos).sum() + (~use).sum())
    if n_drop:
        note = f"{n_drop} eigenvalue(s) of the deviance Hessian near zero dropped"
    inv = (vec[:, pos] / ev[pos]) @ vec[:, pos].T
    a[np.ix_(use, use)] = 2.0 * d[:, None] * inv * d[None, :]
    return a, note


def _fstat_ddf(nu: np.ndarray) -> float:
    """lmerTest's ``get_Fstat_ddf``: combine the df of the q t-statistics into the F's ddf."""
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < 1e-8):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    e = np.sum(nu / (nu - 2.0))
    return float(2.0 * e / (e - nu.size))


def _type3(pt: _Point, lmats: list[np.ndarray], a: np.ndarray) -> dict:
    """lmerTest's ``contestMD`` for each term's type-III ``L``: F, NumDF, Satterthwaite
    DenDF; ``sumsq``/``meansq`` in units of the (standardised) response."""
    nt = len(lmats)
    out = {k: np.full(nt, np.nan) for k in ["F", "numdf", "dendf", "sumsq", "meansq"]}
    sigma2 = pt.sigma**2
    for t, lmat in enumerate(lmats):
        if lmat.shape[0] == 0:
            continue
        d, pv = np.linalg.eigh(lmat @ pt.cov @ lmat.T)
        d, pv = d[::-1], pv[:, ::-1]  # descending, as R's eigen
        keep = d > np.sqrt(np.finfo(float).eps) * max(d[0], 0.0)
        q = int(keep.sum())
        if q == 0:
            continue
        ptl = pv[:, keep].T @ lmat
        d = d[keep]
        fval = float(np.sum((ptl @ pt.beta) ** 2 / d) / q)
        w = ptl @ pt.cov  # q × p; dCov/dψ_k = −C M_k C
        g_psi = np.stack([-np.einsum("mp,pq,mq->m", w, mk, w) for mk in pt.mk], axis=1)
        g_phi = g_psi @ pt.jac  # q × 2: gradients in (θ, σ)
        with np.errstate(divide="ignore"):
            nu = 2.0 * d**2 / np.einsum("mi,ij,mj->m", g_phi, a, g_phi)
        out["F"][t] = fval
        out["numdf"][t] = q
        out["dendf"][t] = _fstat_ddf(nu)
        out["meansq"][t] = fval * sigma2
        out["sumsq"][t] = fval * sigma2 * q
    return out


def _standardise(y: np.ndarray) -> tuple[np.ndarray, float]:
    """``(y − mean)/scale`` without overflow for any finite ``y``, and that scale."""
    big = float(np.max(np.abs(y)))
    y1 = y / big
    y1 = y1 - y1.mean()
    sd = float(np.sqrt(np.mean(y1 * y1)))
    return y1 / sd, big * sd


_STATS = ["F", "numdf", "dendf", "sumsq", "meansq"]


def _fit_lmer(
    y: np.ndarray, x: np.ndarray, groups: np.ndarray, lmats, reml: bool, reason: str
) -> dict:
    """One assay: fit, then type-III F, Satterthwaite ddf, sums of squares per term.

    Never raises: any failure becomes the assay's ``reason`` (statistics NaN).
    """
    nt = len(lmats)
    out = {k: np.full(nt, np.nan) for k in _STATS}
    ok = ~np.isnan(y)
    out.update(n=int(ok.sum()), reason=reason, singular=False, note="")
    if reason:
        return out
    try:
        out.update(_fit_one(y[ok], x[ok], groups[ok], lmats, reml))
    except Exception as err:  # noqa: BLE001 - one assay's failure must not stop the others
        out.update({k: np.full(nt, np.nan) for k in _STATS})
        out["reason"] = f"fit failed: {type(err).__name__}: {err}"
    return out


def _fit_point(y, x, groups, reml: bool):
    """Checks, standardisation and the fit of one assay's observed values.

    Returns ``(point, A, note, scale)`` (``A`` = vcov of the variance parameters, NPX =
    ``mean + scale·y_std``) or a ``str`` reason why the assay is not fitted.
    """
    if not np.all(np.isfinite(y)):
        return "infinite NPX values"
    n_groups = np.unique(groups).size
    if n_groups < 2 or n_groups >= y.size:
        return "too few samples: need 2+ subjects and more samples than subjects"
    if y.size <= x.shape[1] or np.linalg.matrix_rank(x) < x.shape[1]:
        return "fixed effects not estimable (collinear design)"
    if np.ptp(y) == 0:
        return "no within-subject variation left after the fixed effects"
    # centre and scale: F and DenDF are invariant, the fit is not disturbed by the offset
    ys, scale = _standardise(y)
    st = _Stats(ys, x, groups)
    resid_w = st.yw - st.xw @ np.linalg.lstsq(st.xw, st.yw, rcond=None)[0]
    if resid_w @ resid_w <= 1e-20 * ys.size:
        return "no within-subject variation left after the fixed effects"
    with np.errstate(over="ignore", under="ignore"):
        pt = _optimum(st, reml=reml)
        if pt.converged:
            return f"fit not converged: {pt.converged}"
        a, note = _vcov_varpar(pt)
    if "not positive definite" in note:
        return f"fit not converged: {note}"
    return pt, a, note, scale


def _fit_one(y, x, groups, lmats, reml: bool) -> dict:
    fit = _fit_point(y, x, groups, reml)
    if isinstance(fit, str):
        return {"reason": fit}
    pt, a, note, scale = fit
    with np.errstate(over="ignore", under="ignore"):
        res = _type3(pt, lmats, a)
        for k in ["sumsq", "meansq"]:
            res[k] = res[k] * scale * scale  # back to NPX units (inf beyond ~1e154)
    res.update(singular=pt.theta == 0.0, theta=pt.theta, sigma=pt.sigma * scale, note=note)
    return res


# --------------------------------------------------------------------------------------
# public


def _pre_reasons(y: np.ndarray, obs: pd.DataFrame, design: _Design, variables) -> np.ndarray:
    """Assays not tested before fitting: no value at all, none in a level of a factor (as
    ``olink_lmer``), or none in a cell of the factorial (``olink_lmer`` does test those)."""
    m = y.shape[1]
    reason = np.full(m, "", dtype=object)
    observed = (~np.isnan(y)).astype(float)
    reason[observed.sum(axis=0) == 0] = "all values missing"

    def mark(empty: np.ndarray, text: str) -> None:
        fresh = empty & (reason == "")
        reason[fresh] = text

    for f in design.factors:
        vals = obs[f].astype(str).to_numpy()
        for lev in design.levels[f] or []:
            mark(observed[vals == lev].sum(axis=0) == 0, f"no NPX value in level {lev!r} of {f!r}")
    factors = [v for v in variables if design.levels[v] is not None]
    for r in range(len(factors), 1, -1):
        for combo in itertools.combinations(factors, r):
            vals = [obs[f].astype(str).to_numpy() for f in combo]
            for cell in itertools.product(*(design.levels[f] or [] for f in combo)):
                rows = np.logical_and.reduce([v == c for v, c in zip(vals, cell, strict=True)])
                mark(
                    observed[rows].sum(axis=0) == 0,
                    f"no NPX value in the {'×'.join(combo)} cell {cell}: not tested "
                    "(lmerTest would test the estimable part, 'Missing cells'; olinkpipe "
                    "does not)",
                )
    return reason


def _split_terms(variable: str | Sequence[str]) -> list[str]:
    names: list[str] = []
    for v in _as_list(variable):
        for part in re.split(r"[*:]", v):
            part = part.strip()
            if part and part not in names:
                names.append(part)
    return names


def _setup(adata, variable, random, covariates, exclude_controls: bool, step: str) -> dict:
    """Validated model pieces shared by :func:`lmer` and :func:`lmer_posthoc`."""
    variables = _split_terms(variable)
    covs = [c for c in _as_list(covariates) if c not in variables]
    if not variables:
        msg = format_message("variable is empty", hint="Name at least one obs column.")
        raise DesignError(msg)
    if not isinstance(random, str):
        msg = format_message(
            f"random must be one obs column name; got {random!r}",
            hint="Pass e.g. random='Subject'.",
        )
        raise DesignError(msg)
    require_columns(
        adata.obs, variables + covs + [random], what="obs", hint="Name columns of adata.obs."
    )
    if random in variables + covs:
        msg = format_message(
            f"{random!r} is both the random effect and a fixed effect",
            column=random,
            hint="Name the subject column only as random=.",
        )
        raise DesignError(msg)
    rows, acols, excl = _select(
        adata, variables + covs + [random], exclude_controls=exclude_controls, step=step
    )
    obs = adata.obs.iloc[rows]
    design = _Design(obs, variables, covs)
    return {
        "variables": variables,
        "covs": covs,
        "obs": obs,
        "design": design,
        "groups": pd.factorize(obs[random].astype(str))[0],
        "y": _matrix(adata, None)[np.ix_(rows, acols)],
        "ann": _annotation(adata, acols),
        "acols": acols,
        "excl": excl,
    }


@doc_params(adata=doc_adata, alpha=doc_alpha)
def lmer(
    adata: ad.AnnData,
    variable: str | Sequence[str],
    random: str,
    *,
    covariates: str | Sequence[str] | None = None,
    reml: bool = False,
    alpha: float = 0.05,
    n_jobs: int = 1,
    progress: bool = True,
    exclude_controls: bool = True,
) -> pd.DataFrame:
    """Linear mixed model per assay with type-III F tests, as OlinkAnalyze ``olink_lmer``.

    Fits ``NPX ~ A * B * … (+ covariates) + (1 | random)`` to every assay and tests each
    fixed term with lmerTest's ``anova(model, type = 3)``: F statistic, Satterthwaite
    denominator df.

    Parameters
    ----------
    {adata}
    variable
        One or more columns of ``obs``; all their interactions are included (the full
        factorial, as ``olink_lmer(variable = c("Treatment", "Time"))``; ``"A*B"`` and
        ``"A:B"`` are read as ``["A", "B"]``). Non-numeric columns are factors with
        sum-to-zero contrasts; numeric columns enter as they are (not centred).
    random
        Column of ``obs`` whose levels get a random intercept (e.g. the subject).
    covariates
        Further columns of ``obs`` entered additively (numeric as they are, others as
        factors); their rows are reported but left out of the BH family.
    reml
        ``False`` (default) fits by maximum likelihood, as ``olink_lmer`` does
        (``lmer(..., REML = FALSE)``); ``True`` fits by REML, lmerTest's own default.
    {alpha}
    n_jobs
        Parallel workers (joblib) for the per-assay loop.
    progress
        Show a tqdm progress bar over assays.
    exclude_controls
        Leave out control samples and control assays (``is_control``).

    Returns
    -------
    pandas.DataFrame
        One row per assay and term (intercept left out), sorted by ``p_value``:
        annotation columns, ``term`` (``"Treatment"``, ``"Treatment:Time"``), ``sumsq``,
        ``meansq`` (``F·σ̂²``, as lmerTest), ``NumDF``, ``DenDF`` (Satterthwaite),
        ``statistic`` (F), ``p_value``, ``p_adj`` (BH over all assay × term rows of
        ``variable``, one family as OlinkAnalyze; NaN for covariate rows),
        ``significant``, ``n`` (samples used), ``reason`` (why an assay was not tested;
        its statistics are NaN). ``attrs``: method, formula, terms, alpha,
        ``untested_assays``, ``singular_fits`` (subject variance estimated as 0),
        ``hessian_dropped`` (assays whose DenDF left out a near-zero eigenvalue of the
        deviance Hessian),
        excluded samples/assays.

    Raises
    ------
    MissingColumnError
        A named column is not in ``obs``.
    DesignError
        A factor has fewer than two levels, or ``random`` is also a fixed effect.

    Notes
    -----
    Each term is tested with lmerTest's own type-III contrast ``L``, built as
    ``get_contrasts_type3`` does for ``olink_lmer``'s treatment-coded model (the
    ``ginv(X) rdX`` contrasts, those of terms contained in others orthogonalised on the
    containing terms, SAS containment) and mapped to the sum-coded coefficients fitted
    here; a factor crossed with a numeric variable is tested at value 0 of that variable,
    as lmerTest does. The rows of ``L`` matter: lmerTest's Satterthwaite df of a multi-df
    term changes with the basis of the hypothesis, so identity rows of the sum-coded
    coefficients would give other DenDF (up to 0.4 % apart in unbalanced data).
    lmerTest's rounding of ``L`` to 7 digits (``zapsmall``, 1/3 → 0.3333333) is kept: it
    moves main-effect F by ~1e-7 from the exact hypothesis and matches ``olink_lmer``
    closer (on ``npx_data1`` the median relative F difference of ``Treatment`` drops from
    2e-7 to 4e-9). For ``L`` (``q`` rows), ``F = (Lβ̂)' (L C L')⁻¹ (Lβ̂) / q`` with
    ``C = Cov(β̂) = (X'V⁻¹X)⁻¹``. With ``L C L' = P D P'``, each row ``m`` gets
    ``ν_m = 2 D_m² / (g_m' A g_m)``: ``g_m`` the gradient of ``P_m' L C L' P_m`` in
    lme4's variance parameters ``(θ = σ_b/σ, σ)`` and ``A = 2 H⁻¹``, ``H`` the Hessian of
    the deviance (−2 log likelihood; REML's if ``reml``); lmerTest combines them
    (``get_Fstat_ddf``): ``ν`` if ``q = 1``, their mean if all equal, 2 if any ``ν ≤ 2``,
    else ``2E/(E − q)`` with ``E = Σ ν/(ν − 2)``.

    The likelihood of one random intercept is a closed form in per-subject sums, so the
    fit, ``H`` and ``∂C/∂θ`` are computed exactly rather than numerically. NPX is centred
    and scaled per assay before the fit (F and DenDF do not depend on it; sums of squares
    are reported in NPX units), so an offset or unit of NPX changes nothing. The profiled
    deviance is minimised over ``log θ`` on a grid extended without an upper cap while it
    keeps falling, then by Brent and Newton steps, the boundary ``σ_b = 0`` included; a
    fit whose gradient is not zero (or whose ``H`` is not positive definite) gets a
    ``reason`` and no statistics. Eigenvalues of the Jacobi-scaled ``H`` below 1e-8 of
    the largest are left out of ``A`` (lmerTest: below an absolute 1e-8, with a
    warning): such assays are warned about and listed in ``attrs["hessian_dropped"]``.

    Samples missing an assay are dropped for it (lme4's ``na.omit``); an assay with no
    value at all, or none in some factor level (which ``olink_lmer`` does not test), keeps
    NaN statistics and a ``reason``. Unlike ``olink_lmer``, an assay with an empty cell of
    the factorial (e.g. no value for one Treatment × Time combination) is not tested
    either: lmerTest drops the inestimable coefficients and tests what is left ("Missing
    cells ... Interpret type III hypotheses with care"), which is not reproduced here;
    the ``reason`` says so. R's results can differ in the 6th digit where lme4's
    optimizer stops short of the optimum.

    References
    ----------
    Kuznetsova, Brockhoff & Christensen (2017), lmerTest package: tests in linear mixed
    effects models. J Stat Softw 82(13).

    Examples
    --------
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"Subject": np.repeat([f"P{i}" for i in range(8)], 3),
    ...                     "Group": np.repeat(["A", "B"], 12),
    ...                     "Time": ["D0", "D7", "D28"] * 8},
    ...                    index=[f"S{i}" for i in range(24)])
    >>> var = pd.DataFrame(index=pd.Index(["OID1", "OID2"], name="OlinkID"))
    >>> x = rng.normal(size=(24, 2)) + np.repeat(rng.normal(size=(8, 2)), 3, axis=0)
    >>> adata = ad.AnnData(x, obs=obs, var=var)
    >>> res = op.tl.lmer(adata, ["Group", "Time"], "Subject", progress=False)
    >>> sorted(set(res["term"]))
    ['Group', 'Group:Time', 'Time']
    >>> res.loc[res["term"] == "Time", "DenDF"].round(6).tolist()
    [16.0, 16.0]
    """
    if _blocks.is_lazy(adata):  # dask-backed: the same code per block of assays
        return _blocks.lmer(**locals())
    su = _setup(adata, variable, random, covariates, exclude_controls, "lmer")
    variables, covs, obs, design = su["variables"], su["covs"], su["obs"], su["design"]
    x, groups, y, ann, excl = design.x, su["groups"], su["y"], su["ann"], su["excl"]
    m = y.shape[1]
    nt = len(design.spans)

    pre_reason = _pre_reasons(y, obs, design, variables)
    jobs = [(y[:, j], x, groups, design.lmats, reml, str(pre_reason[j])) for j in range(m)]
    fits = _run_per_assay(_fit_lmer, jobs, n_jobs=n_jobs, progress=progress, desc="lmer")
    stack = {k: np.vstack([f[k] for f in fits]) for k in _STATS}
    names = [name for name, _ in design.spans]
    frame = ann.loc[np.repeat(np.arange(m), nt)].reset_index(drop=True)
    frame["term"] = np.tile(names, m)
    frame["sumsq"] = stack["sumsq"].ravel()
    frame["meansq"] = stack["meansq"].ravel()
    frame["NumDF"] = stack["numdf"].ravel()
    frame["DenDF"] = stack["dendf"].ravel()
    frame["statistic"] = stack["F"].ravel()
    with np.errstate(invalid="ignore"):
        frame["p_value"] = stats.f.sf(frame["statistic"], frame["NumDF"], frame["DenDF"])
    is_cov = frame["term"].isin(covs).to_numpy()
    p_adj = np.full(len(frame), np.nan)
    p_adj[~is_cov] = bh_adjust(frame["p_value"].to_numpy()[~is_cov])
    frame["p_adj"] = p_adj
    frame["significant"] = frame["p_adj"].fillna(1.0) < alpha
    frame["n"] = np.repeat([f["n"] for f in fits], nt)
    frame["reason"] = np.repeat([f["reason"] for f in fits], nt).astype(str)
    frame = frame.sort_values("p_value", kind="stable", na_position="last")
    frame = frame.reset_index(drop=True)

    oids = ann["OlinkID"].astype(str).to_numpy()
    untested = [str(oids[j]) for j, f in enumerate(fits) if f["reason"]]
    if untested:
        warn(f"lmer: {len(untested)} assay(s) not tested (see 'reason'): {preview(untested)}")
    singular = [str(oids[j]) for j, f in enumerate(fits) if f["singular"]]
    flat = [str(oids[j]) for j, f in enumerate(fits) if f["note"]]
    if flat:
        warn(
            f"lmer: {len(flat)} assay(s) with a near-singular deviance Hessian: eigenvalue(s) "
            f"dropped from vcov(θ, σ), their DenDF rest on the others: {preview(flat)}"
        )
    rhs = "*".join(variables) + "".join(f" + {c}" for c in covs)
    fit_text = "REML" if reml else "ML (REML = FALSE, as olink_lmer)"
    frame.attrs = {
        "method": "lmer",
        "test": f"linear mixed model, {fit_text}; type III F, Satterthwaite df (lmerTest)",
        "formula": f"NPX ~ {rhs} + (1|{random})",
        "terms": names,
        "covariates": covs,
        "reml": bool(reml),
        "alpha": float(alpha),
        "n_tested": int(m - len(untested)),
        "untested_assays": untested,
        "singular_fits": singular,
        "hessian_dropped": flat,
        **excl,
    }
    logger.info("lmer: %d assays, %d not tested", m, len(untested))
    return frame


# --------------------------------------------------------------------------------------
# post-hoc: emmeans pairwise contrasts (olink_lmer_posthoc)

_P_ADJUST = ("tukey", "sidak", "bonferroni", "none")


def _fit_posthoc(y, x, groups, lmat, reml: bool, reason: str) -> dict:
    """One assay: fit, then ``lmat β̂`` (NPX units), its SE and Satterthwaite df per row.

    ``lmat`` rows are linear functions of the sum-coded coefficients (cell means when their
    intercept entry is 1, contrasts when it is 0). Never raises (failures are the reason).
    """
    k = lmat.shape[0]
    out = {key: np.full(k, np.nan) for key in ["est", "se", "df"]}
    ok = ~np.isnan(y)
    out.update(n=int(ok.sum()), reason=reason)
    if reason:
        return out
    try:
        fit = _fit_point(y[ok], x[ok], groups[ok], reml)
        if isinstance(fit, str):
            out["reason"] = fit
            return out
        pt, a, _, scale = fit
        with np.errstate(over="ignore", under="ignore", divide="ignore"):
            w = lmat @ pt.cov
            var = np.einsum("mp,mp->m", w, lmat)
            g_psi = np.stack([-np.einsum("mp,pq,mq->m", w, mk, w) for mk in pt.mk], axis=1)
            g_phi = g_psi @ pt.jac
            out["df"] = 2.0 * var**2 / np.einsum("mi,ij,mj->m", g_phi, a, g_phi)
        out["est"] = scale * (lmat @ pt.beta) + lmat[:, 0] * float(np.mean(y[ok]))
        out["se"] = scale * np.sqrt(var)
    except Exception as err:  # noqa: BLE001 - one assay's failure must not stop the others
        out.update({key: np.full(k, np.nan) for key in ["est", "se", "df"]})
        out["reason"] = f"fit failed: {type(err).__name__}: {err}"
    return out


def _emm_cells(design: _Design, obs: pd.DataFrame, effect: list[str]):
    """emmeans' cells of ``effect`` (first factor varying fastest), their labels and a
    function giving the rows ``L`` (cell means) for an assay's observed samples."""
    levels = design.levels
    cells = [c[::-1] for c in itertools.product(*[levels[e] for e in effect[::-1]])]
    labels = [" ".join(c) for c in cells]
    others = [c for c in levels if c not in effect]
    numeric = [c for c in others if levels[c] is None]
    cache: dict[tuple, np.ndarray] = {}

    def lmat(ok: np.ndarray) -> np.ndarray:
        # emmeans(cov.reduce = round(c(mean, mean + sd), 4)) of olink_lmer_posthoc
        vals = []
        for c in numeric:
            v = obs[c].to_numpy(dtype=float)[ok]
            mu, sd = float(np.mean(v)), float(np.std(v, ddof=1)) if v.size > 1 else np.nan
            vals.append((round(mu, 4), round(mu + sd, 4)))
        key = tuple(vals)
        if key not in cache:
            axes = [levels[c] if levels[c] is not None else vals[numeric.index(c)] for c in others]
            rest = pd.DataFrame(list(itertools.product(*axes)), columns=others)
            rows = []
            for cell in cells:
                grid = rest.assign(**dict(zip(effect, cell, strict=True)))
                rows.append(design.matrix(grid).mean(axis=0))
            cache[key] = np.vstack(rows)
        return cache[key]

    return cells, labels, lmat


def _critical(method: str, conf_level: float, k: int, family: int, df: np.ndarray):
    """Half-width multiplier of emmeans' adjusted intervals (``t`` scale)."""
    out = np.full(df.shape, np.nan)
    ok = np.isfinite(df) & (df > 0)
    if method == "tukey":
        for d in np.unique(df[ok]):
            out[df == d] = stats.studentized_range.ppf(conf_level, k, d) / np.sqrt(2.0)
        return out
    level = {
        "sidak": (1.0 + conf_level ** (1.0 / family)) / 2.0,
        "bonferroni": 1.0 - (1.0 - conf_level) / (2.0 * family),
        "none": (1.0 + conf_level) / 2.0,
    }[method]
    out[ok] = stats.t.ppf(level, df[ok])
    return out


def _adjusted_p(method: str, t: np.ndarray, df: np.ndarray, k: int, family: int) -> np.ndarray:
    p = np.full(t.shape, np.nan)
    ok = np.isfinite(t) & np.isfinite(df) & (df > 0)
    if method == "tukey":
        p[ok] = stats.studentized_range.sf(np.abs(t[ok]) * np.sqrt(2.0), k, df[ok])
    else:
        raw = 2.0 * stats.t.sf(np.abs(t[ok]), df[ok])
        if method == "sidak":
            raw = -np.expm1(family * np.log1p(-raw))
        elif method == "bonferroni":
            raw = family * raw
        p[ok] = raw
    return np.minimum(p, 1.0)


@doc_params(adata=doc_adata, alpha=doc_alpha)
def lmer_posthoc(
    adata: ad.AnnData,
    variable: str | Sequence[str],
    random: str,
    *,
    assays: Sequence[str] | None = None,
    effect: str | Sequence[str],
    covariates: str | Sequence[str] | None = None,
    mean_return: bool = False,
    p_adjust: str = "tukey",
    conf_level: float = 0.95,
    reml: bool = False,
    alpha: float = 0.05,
    n_jobs: int = 1,
    progress: bool = True,
    exclude_controls: bool = True,
) -> pd.DataFrame:
    """Pairwise contrasts of estimated marginal means after :func:`lmer`, as OlinkAnalyze
    ``olink_lmer_posthoc``.

    Per assay the model of :func:`lmer` is fitted and the marginal means of ``effect``
    (``emmeans(model, pairwise ~ effect, lmer.df = "satterthwaite")``) are compared
    pairwise, with Satterthwaite df and Tukey-adjusted p-values and intervals.

    Parameters
    ----------
    {adata}
    variable
        The fixed factors of the model (full factorial), as in :func:`lmer`.
    random
        Column of ``obs`` whose levels get a random intercept, as in :func:`lmer`.
    assays
        OlinkIDs (``var`` index) to test; all when None.
    effect
        The factor (or list of factors, for their combinations; ``"A:B"`` is read as
        ``["A", "B"]``) whose marginal means are compared; must be among ``variable``.
    covariates
        As in :func:`lmer`. Numeric ones are held at ``round(mean, 4)`` and
        ``round(mean + sd, 4)`` and averaged over (``olink_lmer_posthoc``'s
        ``cov.reduce``); factor covariates are averaged over their levels.
    mean_return
        Return the marginal means (one row per cell of ``effect``) instead of contrasts.
    p_adjust
        ``"tukey"`` (default, emmeans' studentized range within an assay), ``"sidak"``,
        ``"bonferroni"`` or ``"none"``; adjusts p-values and intervals alike. For the means
        (``mean_return``) ``"tukey"`` becomes ``"sidak"``, as in emmeans.
    conf_level
        Confidence level of the (family-wise) intervals.
    reml
        ``False`` (default) fits by ML, as ``olink_lmer_posthoc``; ``True`` by REML.
    {alpha}
    n_jobs
        Parallel workers (joblib) for the per-assay loop.
    progress
        Show a tqdm progress bar over assays.
    exclude_controls
        Leave out control samples and assays.

    Returns
    -------
    pandas.DataFrame
        One row per assay and contrast: annotation columns, ``term``
        (``"Treatment:Time"``), ``contrast`` (``"A - B"``; cells labelled ``"Treated
        Baseline"``, emmeans' order with the first factor varying fastest), ``estimate``,
        ``ci_low``, ``ci_high`` (adjusted), ``statistic`` (t), ``df`` (Satterthwaite),
        ``p_adj`` (adjusted within the assay), ``significant``, ``n``, ``reason`` (why an
        assay was not tested; its statistics are NaN). With ``mean_return``: the
        ``effect`` columns, ``emmean``, ``ci_low``, ``ci_high``, ``df``, ``n``, ``reason``
        per assay and cell. ``attrs``: method, effect, p_adjust, formula, alpha,
        conf_level, ``untested_assays``, excluded samples/assays.

    Raises
    ------
    DesignError
        ``effect`` is not among ``variable`` or is numeric, an assay is not in ``var``,
        ``p_adjust`` is unknown, or as :func:`lmer`.
    MissingColumnError
        A named column is not in ``obs``.

    Notes
    -----
    A cell mean is ``L β̂`` with ``L`` the design row averaged over an equally weighted
    grid of the other factors; a contrast is ``c = L_i − L_j`` with SE ``√(c C cᵀ)``,
    ``C = Cov(β̂)`` of the (ML) fit, and Satterthwaite df
    ``ν = 2 (c C cᵀ)² / (gᵀ A g)``, ``g`` the gradient of ``c C cᵀ`` in ``(θ, σ)`` and
    ``A = 2 H⁻¹`` as in :func:`lmer` (lmerTest's, which emmeans uses). Tukey:
    ``p = P(Q_{k, ν} > √2 |t|)`` and intervals ``± q_{k, ν}(conf_level)/√2 · SE`` with
    ``k`` cells, each contrast with its own ``ν`` (emmeans). Rows are in assay order and
    emmeans' contrast order (``olink_lmer_posthoc`` sorts by ``Adjusted_pval``); its
    ``conf.low``/``conf.high``/``Adjusted_pval`` are ``ci_low``/``ci_high``/``p_adj``.

    Examples
    --------
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"Subject": np.repeat([f"P{i}" for i in range(8)], 3),
    ...                     "Group": np.repeat(["A", "B"], 12),
    ...                     "Time": ["D0", "D7", "D28"] * 8},
    ...                    index=[f"S{i}" for i in range(24)])
    >>> var = pd.DataFrame(index=pd.Index(["OID1"], name="OlinkID"))
    >>> x = rng.normal(size=(24, 1)) + np.repeat(rng.normal(size=(8, 1)), 3, axis=0)
    >>> adata = ad.AnnData(x, obs=obs, var=var)
    >>> res = op.tl.lmer_posthoc(adata, ["Group", "Time"], "Subject", effect="Time",
    ...                          progress=False)
    >>> res["contrast"].tolist()
    ['D0 - D28', 'D0 - D7', 'D28 - D7']
    >>> res["df"].round(6).tolist()
    [16.0, 16.0, 16.0]
    """
    if _blocks.is_lazy(adata):  # dask-backed: the same code per block of assays
        return _blocks.lmer_posthoc(**locals())
    effect_l = _split_terms(effect)
    if p_adjust not in _P_ADJUST:
        msg = format_message(
            f"p_adjust must be one of {list(_P_ADJUST)}; got {p_adjust!r}",
            hint="Use 'tukey' (emmeans' default for pairwise contrasts).",
        )
        raise DesignError(msg)
    variables = _split_terms(variable)
    missing = [e for e in effect_l if e not in variables]
    if not effect_l or missing:
        msg = format_message(
            f"effect {missing or effect!r} is not among variable {variables!r}",
            hint="All effect terms must be included in the variable argument.",
        )
        raise DesignError(msg)
    sub = subset_assays(adata, assays)
    su = _setup(sub, variables, random, covariates, exclude_controls, "lmer_posthoc")
    obs, design, covs = su["obs"], su["design"], su["covs"]
    numeric = [e for e in effect_l if design.levels[e] is None]
    if numeric:
        msg = format_message(
            f"effect {numeric!r} is numeric: only factors are compared",
            hint="Convert the column to strings to treat it as a factor.",
        )
        raise DesignError(msg)
    y, ann = su["y"], su["ann"]
    m = y.shape[1]
    cells, labels, lmat_of = _emm_cells(design, obs, effect_l)
    k = len(cells)
    pairs = list(itertools.combinations(range(k), 2))
    pre_reason = _pre_reasons(y, obs, design, variables)
    jobs = []
    for j in range(m):
        lm = lmat_of(~np.isnan(y[:, j]))
        if not mean_return:
            lm = np.vstack([lm[a] - lm[b] for a, b in pairs])
        jobs.append((y[:, j], design.x, su["groups"], lm, reml, str(pre_reason[j])))
    fits = _run_per_assay(
        _fit_posthoc, jobs, n_jobs=n_jobs, progress=progress, desc="lmer_posthoc"
    )
    est, se, dfs = (np.vstack([f[key] for f in fits]) for key in ["est", "se", "df"])
    nrow = est.shape[1]
    frame = ann.loc[np.repeat(np.arange(m), nrow)].reset_index(drop=True)
    frame["term"] = ":".join(effect_l)
    if mean_return:
        method = "sidak" if p_adjust == "tukey" else p_adjust  # emmeans' note for means
        crit = _critical(method, conf_level, k, k, dfs)
        for i, e in enumerate(effect_l):
            frame[e] = np.tile([c[i] for c in cells], m)
        frame["emmean"] = est.ravel()
    else:
        method = p_adjust
        crit = _critical(method, conf_level, k, len(pairs), dfs)
        frame["contrast"] = np.tile([f"{labels[a]} - {labels[b]}" for a, b in pairs], m)
        frame["estimate"] = est.ravel()
    frame["ci_low"] = (est - crit * se).ravel()
    frame["ci_high"] = (est + crit * se).ravel()
    if not mean_return:
        with np.errstate(invalid="ignore", divide="ignore"):
            t = est / se
        frame["statistic"] = t.ravel()
    frame["df"] = dfs.ravel()
    if not mean_return:
        frame["p_adj"] = _adjusted_p(method, t, dfs, k, len(pairs)).ravel()
        frame["significant"] = frame["p_adj"].fillna(1.0) < alpha
    frame["n"] = np.repeat([f["n"] for f in fits], nrow)
    frame["reason"] = np.repeat([f["reason"] for f in fits], nrow).astype(str)
    oids = ann["OlinkID"].astype(str).to_numpy()
    untested = [str(oids[j]) for j, f in enumerate(fits) if f["reason"]]
    if untested:
        warn(
            f"lmer_posthoc: {len(untested)} assay(s) not tested (see 'reason'): "
            f"{preview(untested)}"
        )
    rhs = "*".join(variables) + "".join(f" + {c}" for c in covs)
    frame.attrs = {
        "method": "lmer_posthoc",
        "test": (
            "pairwise contrasts of estimated marginal means (emmeans), Satterthwaite df"
            if not mean_return
            else "estimated marginal means (emmeans), Satterthwaite df"
        ),
        "formula": f"NPX ~ {rhs} + (1|{random})",
        "effect": effect_l,
        "p_adjust": method,
        "reml": bool(reml),
        "alpha": float(alpha),
        "conf_level": float(conf_level),
        "untested_assays": untested,
        **su["excl"],
    }
    return frame
