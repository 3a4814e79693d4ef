"""The per-assay kernel of :func:`~olinkpipe.tl.lmer`: one random intercept, closed-form
(RE)ML deviance, its derivatives, and lmerTest's Satterthwaite tests.

The model has one random intercept, so its likelihood has a closed form in per-subject sums
(``V_i = σ² I + σ²_b 11ᵀ``): the fit, the Hessian of the deviance and the derivatives of
``Cov(β̂)`` are computed exactly here in numpy instead of by numerical differentiation.
Array-only: ``y``, ``X`` and subject codes in, statistics out; never raises for one assay
(a failure becomes its ``reason``).
"""

from __future__ import annotations

import numpy as np
from scipy import optimize, sparse

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


STATS = ["F", "numdf", "dendf", "sumsq", "meansq"]


def fit_lmer(
    y: np.ndarray, x: np.ndarray, groups: np.ndarray, lmats, reml: bool, reason: str
) -> dict:
    """One assay: fit, then type-III F, Satterthwaite ddf, sums of squares per term.

    Never raises: any failure becomes the assay's ``reason`` (statistics NaN).
    """
    nt = len(lmats)
    out = {k: np.full(nt, np.nan) for k in STATS}
    ok = ~np.isnan(y)
    out.update(n=int(ok.sum()), reason=reason, singular=False, note="")
    if reason:
        return out
    try:
        out.update(_fit_one(y[ok], x[ok], groups[ok], lmats, reml))
    except Exception as err:  # noqa: BLE001 - one assay's failure must not stop the others
        out.update({k: np.full(nt, np.nan) for k in STATS})
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


def fit_posthoc(y, x, groups, lmat, reml: bool, reason: str) -> dict:
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
