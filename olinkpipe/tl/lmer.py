"""Linear mixed model per assay with lmerTest's type-III F tests (OlinkAnalyze ``olink_lmer``).

``NPX ~ A * B (+ covariates) + (1 | random)`` is fitted to every assay and each fixed term is
tested with the F statistic and Satterthwaite denominator df that ``anova(model, type = 3)``
of lmerTest reports. The model has one random intercept, so its likelihood has a closed
form in per-subject sums (``V_i = σ² I + σ²_b 11ᵀ``): the fit, the Hessian of the deviance
and the derivatives of ``Cov(β̂)`` are computed exactly here in numpy instead of by
numerical differentiation, in the one per-assay loop of :func:`models._run_per_assay`.
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
from .de import _matrix
from .models import _annotation, _as_list, _levels_of, _run_per_assay, _select, _sum_coding

__all__ = ["lmer"]

logger = logging.getLogger("olinkpipe")

#: θ = σ_b / σ grid used to bracket the optimum of the profiled deviance
_THETA_GRID = np.r_[0.0, np.logspace(-4, 4, 41)]
#: lmerTest's tolerance for positive eigenvalues of the deviance Hessian
_HESS_TOL = 1e-8
_LOG2PI = np.log(2.0 * np.pi)


# --------------------------------------------------------------------------------------
# design


def _is_numeric(s: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


class _Design:
    """Fixed effects: full factorial of ``variables`` (sum-to-zero factors, raw numerics)
    plus additive ``covariates``; ``spans`` maps each term to its columns."""

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
        cols = {c: self._block(obs, c) for c in variables + covariates}
        n = len(obs)
        blocks = [np.ones((n, 1))]
        self.spans: list[tuple[str, slice]] = []
        pos = 1
        terms = [
            t for r in range(1, len(variables) + 1) for t in itertools.combinations(variables, r)
        ]
        terms += [(c,) for c in covariates]
        for term in terms:
            block = cols[term[0]]
            for f in term[1:]:
                block = (block[:, :, None] * cols[f][:, None, :]).reshape(n, -1)
            blocks.append(block)
            self.spans.append((":".join(term), slice(pos, pos + block.shape[1])))
            pos += block.shape[1]
        self.x = np.hstack(blocks)
        self.factors = [c for c in variables + covariates if self.levels[c] is not None]

    def _block(self, obs: pd.DataFrame, c: str) -> np.ndarray:
        lev = self.levels[c]
        if lev is None:
            return obs[c].to_numpy(dtype=float)[:, None]
        return _sum_coding(obs[c].astype(str).to_numpy(), lev)


# --------------------------------------------------------------------------------------
# kernel: one assay, random intercept, closed-form (RE)ML deviance and its derivatives


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
    beta = np.linalg.solve(m1, b1[:, :, None])[:, :, 0]
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
        s = sigma**2
        tau = theta**2 * s
        n = st.n
        lam = s + n * tau
        m = st.wxx / s + st.u.T @ (st.u / lam[:, None])
        b = st.wxy / s + st.u.T @ (st.my / lam)
        c = np.linalg.inv(m)
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


def _optimum(st: _Stats, *, reml: bool) -> _Point:
    """Global minimum of the (RE)ML deviance over θ ≥ 0: grid, Brent, then Newton steps."""
    dev, s = _profile(st, _THETA_GRID, reml=reml)
    k = int(np.nanargmin(dev))
    lo = _THETA_GRID[max(k - 1, 0)]
    hi = _THETA_GRID[min(k + 1, _THETA_GRID.size - 1)]
    res = optimize.minimize_scalar(
        lambda t: _profile(st, np.array([t]), reml=reml)[0][0],
        bounds=(lo, hi),
        method="bounded",
        options={"xatol": 1e-12 * max(hi, 1.0)},
    )
    theta = float(res.x)
    # the boundary σ_b = 0 (lme4's singular fit) is the optimum when the deviance rises there
    d0, s0 = _profile(st, np.array([0.0]), reml=reml)
    at0 = _Point(st, 0.0, float(np.sqrt(s0[0])), reml=reml)
    if at0.grad[0] >= 0.0 and d0[0] <= res.fun + 1e-10 * max(abs(res.fun), 1.0):
        return at0
    pt = _Point(
        st, theta, float(np.sqrt(_profile(st, np.array([theta]), reml=reml)[1][0])), reml=reml
    )
    for _ in range(8):  # Newton in φ: the last digits Brent's bracket cannot give
        try:
            step = np.linalg.solve(pt.hess_phi, pt.grad_phi)
        except np.linalg.LinAlgError:
            break
        phi = np.array([pt.theta, pt.sigma]) - step
        if not np.all(np.isfinite(phi)) or phi[0] <= 0 or phi[1] <= 0:
            break
        new = _Point(st, float(phi[0]), float(phi[1]), reml=reml)
        if new.dev > pt.dev + 1e-12 * abs(pt.dev):
            break
        pt = new
        if np.all(np.abs(step) <= 1e-13 * np.abs(phi)):
            break
    return pt


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


def _type3(pt: _Point, spans) -> dict:
    """lmerTest's type-III table at a fitted point: F, NumDF, Satterthwaite DenDF, SS."""
    nt = len(spans)
    out = {k: np.full(nt, np.nan) for k in ["F", "numdf", "dendf", "sumsq", "meansq"]}
    p = pt.beta.size
    # vcov of φ = 2 H⁻¹ over the positive eigenvalues of H (lmerTest's as_lmerModLT)
    ev, vec = np.linalg.eigh(pt.hess_phi)
    pos = ev > _HESS_TOL
    a = 2.0 * (vec[:, pos] / ev[pos]) @ vec[:, pos].T
    sigma2 = pt.sigma**2
    for t, (_, sl) in enumerate(spans):
        lmat = np.eye(p)[sl]
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


def _fit_lmer(
    y: np.ndarray, x: np.ndarray, groups: np.ndarray, spans, reml: bool, reason: str
) -> dict:
    """One assay: fit, then type-III F, Satterthwaite ddf, sums of squares per term."""
    nt = len(spans)
    out = {k: np.full(nt, np.nan) for k in ["F", "numdf", "dendf", "sumsq", "meansq"]}
    ok = ~np.isnan(y)
    y, x, groups = y[ok], x[ok], groups[ok]
    out.update(n=int(ok.sum()), reason=reason, singular=False)
    if reason:
        return out
    n_groups = np.unique(groups).size
    if n_groups < 2 or n_groups >= y.size:
        out["reason"] = "too few samples: need 2+ subjects and more samples than subjects"
        return out
    if y.size <= x.shape[1] or np.linalg.matrix_rank(x) < x.shape[1]:
        out["reason"] = "fixed effects not estimable (empty factor combination or collinear)"
        return out
    st = _Stats(y, x, groups)
    resid_w = st.yw - st.xw @ np.linalg.lstsq(st.xw, st.yw, rcond=None)[0]
    if resid_w @ resid_w <= 1e-20 * max(y @ y, 1.0):
        out["reason"] = "no within-subject variation left after the fixed effects"
        return out
    try:
        pt = _optimum(st, reml=reml)
        out.update(_type3(pt, spans))
    except (np.linalg.LinAlgError, ZeroDivisionError, FloatingPointError) as err:
        out["reason"] = f"fit failed: {err}"
        return out
    out["singular"] = pt.theta == 0.0
    out["theta"], out["sigma"] = pt.theta, pt.sigma
    return out


# --------------------------------------------------------------------------------------
# public


def _split_terms(variable: str | Sequence[str]) -> list[str]:
    names: list[str] = []
    for v in _as_list(variable):
        for part in re.split(r"[*:]", v):
            part = part.strip()
            if part and part not in names:
                names.append(part)
    return names


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
        excluded samples/assays.

    Raises
    ------
    MissingColumnError
        A named column is not in ``obs``.
    DesignError
        A factor has fewer than two levels, or ``random`` is also a fixed effect.

    Notes
    -----
    The term tested is that of the sum-to-zero coded model: for a full factorial this
    is the type-III hypothesis lmerTest builds for any coding; a factor crossed with a
    numeric variable is tested at value 0 of that variable, as lmerTest does. For a
    term with contrast matrix ``L`` (``q`` rows), ``F = (Lβ̂)' (L C L')⁻¹ (Lβ̂) / q`` with
    ``C = Cov(β̂) = (X'V⁻¹X)⁻¹``. With ``L C L' = P D P'``, each row ``m`` gets
    ``ν_m = 2 D_m² / (g_m' A g_m)``: ``g_m`` the gradient of ``P_m' L C L' P_m`` in
    lme4's variance parameters ``(θ = σ_b/σ, σ)`` and ``A = 2 H⁻¹``, ``H`` the Hessian of
    the deviance (−2 log likelihood; REML's if ``reml``); lmerTest combines them
    (``get_Fstat_ddf``): ``ν`` if ``q = 1``, their mean if all equal, 2 if any ``ν ≤ 2``,
    else ``2E/(E − q)`` with ``E = Σ ν/(ν − 2)``. The likelihood of one random intercept
    is a closed form in per-subject sums, so the fit (grid, Brent, Newton on the
    profiled deviance, the boundary ``σ_b = 0`` included), ``H`` and ``∂C/∂θ`` are
    computed exactly rather than numerically. Samples missing an assay are dropped for
    it (lme4's ``na.omit``); an assay with no value in some factor level (which
    ``olink_lmer`` does not test) or an inestimable design keeps NaN statistics and a
    ``reason``. R's results can differ in the 6th digit: lme4's optimizer stops short of
    the optimum, and lmerTest rounds its type-III contrasts to 7 digits (``zapsmall``).

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
        adata, variables + covs + [random], exclude_controls=exclude_controls, step="lmer"
    )
    obs = adata.obs.iloc[rows]
    design = _Design(obs, variables, covs)
    x = design.x
    groups = pd.factorize(obs[random].astype(str))[0]
    y = _matrix(adata, None)[np.ix_(rows, acols)]
    m = y.shape[1]
    nt = len(design.spans)
    ann = _annotation(adata, acols)

    # an assay without any value in a level of a factor is not tested (as olink_lmer)
    pre_reason = np.full(m, "", dtype=object)
    observed = (~np.isnan(y)).astype(float)
    for f in design.factors:
        vals = obs[f].astype(str).to_numpy()
        for lev in design.levels[f] or []:
            empty = observed[vals == lev].sum(axis=0) == 0
            fresh = empty & (pre_reason == "")
            pre_reason[fresh] = f"no NPX value in level {lev!r} of {f!r}"

    jobs = [(y[:, j], x, groups, design.spans, reml, str(pre_reason[j])) for j in range(m)]
    fits = _run_per_assay(_fit_lmer, jobs, n_jobs=n_jobs, progress=progress, desc="lmer")
    stack = {
        k: np.vstack([f[k] for f in fits]) for k in ["F", "numdf", "dendf", "sumsq", "meansq"]
    }
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
        **excl,
    }
    logger.info("lmer: %d assays, %d not tested", m, len(untested))
    return frame
