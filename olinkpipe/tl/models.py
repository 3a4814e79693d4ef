"""Models over more than two groups: longitudinal (mixed model, Friedman) and ANOVA.

ANOVA and its post-hoc contrasts are ordinary least squares solved for all assays sharing a
missingness pattern at once; the mixed model has no matrix form and is fitted assay by
assay in one loop (:func:`_run_per_assay`) with a progress bar and ``n_jobs`` workers.
"""

from __future__ import annotations

import itertools
import logging
import re
import warnings
from collections.abc import Sequence
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from scipy import stats

from .._docs import doc_adata, doc_alpha, doc_params
from .._stats import bh_adjust
from .._validate import check_literal, require_columns
from .._warnings import warn
from ..errors import DesignError, format_message, preview
from . import _blocks
from ._design import subset_assays
from .de import ANNOTATION, _is_numeric, _matrix

__all__ = ["longitudinal", "anova", "anova_posthoc"]


logger = logging.getLogger("olinkpipe")


# --------------------------------------------------------------------------------------
# shared helpers


def _annotation(adata: ad.AnnData, acols: np.ndarray) -> pd.DataFrame:
    var = adata.var.iloc[acols]
    out = pd.DataFrame({"OlinkID": var.index.astype(str).to_numpy()})
    for c in ANNOTATION[1:]:
        if c in var:
            out[c] = var[c].to_numpy()
    return out


def _select(
    adata: ad.AnnData, columns: Sequence[str], *, exclude_controls: bool, step: str
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Rows usable for the model (no control, no missing design value) and assay columns."""
    obs = adata.obs
    keep = np.ones(adata.n_obs, dtype=bool)
    excl: dict[str, list[str]] = {"excluded_samples": [], "excluded_assays": []}
    if exclude_controls and "is_control" in obs:
        ctrl = obs["is_control"].fillna(value=False).to_numpy(dtype=bool)
        if ctrl.any():
            ids = [str(i) for i in obs.index[ctrl]]
            warn(f"{step}: left out {len(ids)} control sample(s): {preview(ids)}")
            excl["excluded_samples"] += ids
        keep &= ~ctrl
    miss = obs[list(columns)].isna().any(axis=1).to_numpy() & keep
    if miss.any():
        ids = [str(i) for i in obs.index[miss]]
        warn(f"{step}: left out {len(ids)} sample(s) with missing {list(columns)}: {preview(ids)}")
        excl["excluded_samples"] += ids
        keep &= ~miss
    acols = np.arange(adata.n_vars)
    if exclude_controls and "is_control" in adata.var:
        vctrl = adata.var["is_control"].fillna(value=False).to_numpy(dtype=bool)
        if vctrl.any():
            ids = [str(i) for i in adata.var.index[vctrl]]
            warn(f"{step}: left out {len(ids)} control assay(s): {preview(ids)}")
            excl["excluded_assays"] = ids
            acols = np.flatnonzero(~vctrl)
    return np.flatnonzero(keep), acols, excl


def _levels_of(s: pd.Series) -> list[str]:
    if isinstance(s.dtype, pd.CategoricalDtype):
        return [str(c) for c in s.cat.categories if (s == c).any()]
    return sorted(pd.unique(s.dropna().astype(str)))


def _sum_coding(values: np.ndarray, levels: list[str]) -> np.ndarray:
    """Sum-to-zero (deviation) contrasts: column k is 1 at level k, −1 at the last level."""
    k = len(levels)
    out = np.zeros((values.size, k - 1))
    for i, lev in enumerate(levels[:-1]):
        out[values == lev, i] = 1.0
    out[values == levels[-1], :] = -1.0
    return out


def _patterns(x: np.ndarray):
    """Group assay columns by their missingness pattern: yields (observed rows, columns)."""
    miss = np.isnan(x)
    if not miss.any():
        yield np.arange(x.shape[0]), np.arange(x.shape[1])
        return
    keys, inverse = np.unique(miss.T, axis=0, return_inverse=True)
    inverse = np.asarray(inverse).ravel()
    for g in range(keys.shape[0]):
        yield np.flatnonzero(~keys[g]), np.flatnonzero(inverse == g)


# --------------------------------------------------------------------------------------
# ANOVA


class _Model:
    """Sum-to-zero design of a full factorial of ``factors`` plus additive ``covariates``."""

    def __init__(self, obs: pd.DataFrame, factors: list[str], covariates: list[str]):
        self.factors = factors
        self.covariates = covariates
        self.levels = {f: _levels_of(obs[f]) for f in factors}
        self.cov_levels: dict[str, list[str] | None] = {}
        self.cov_means: dict[str, float] = {}
        for c in covariates:
            s = obs[c]
            if _is_numeric(s):
                self.cov_levels[c] = None
                self.cov_means[c] = float(s.mean())
            else:
                self.cov_levels[c] = _levels_of(s)
        self.terms: list[tuple[str, ...]] = []
        for r in range(1, len(factors) + 1):
            self.terms += list(itertools.combinations(factors, r))
        for f in factors:
            if len(self.levels[f]) < 2:
                msg = format_message(
                    f"factor {f!r} has fewer than two levels among the samples used",
                    column=f,
                    rows=self.levels[f],
                    hint="Choose a factor with at least two levels.",
                )
                raise DesignError(msg)

    def _factor_cols(self, frame: pd.DataFrame) -> dict[str, np.ndarray]:
        return {
            f: _sum_coding(frame[f].astype(str).to_numpy(), self.levels[f]) for f in self.factors
        }

    def matrix(self, frame: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, slice]]]:
        """Design matrix and (term name, column slice) for every term but the intercept."""
        fcols = self._factor_cols(frame)
        blocks = [np.ones((len(frame), 1))]
        spans: list[tuple[str, slice]] = []
        pos = 1
        for term in self.terms:
            block = fcols[term[0]]
            for f in term[1:]:
                nxt = fcols[f]
                block = (block[:, :, None] * nxt[:, None, :]).reshape(len(frame), -1)
            blocks.append(block)
            spans.append((":".join(term), slice(pos, pos + block.shape[1])))
            pos += block.shape[1]
        for c in self.covariates:
            if self.cov_levels[c] is None:
                block = frame[c].to_numpy(dtype=float)[:, None]
            else:
                block = _sum_coding(frame[c].astype(str).to_numpy(), self.cov_levels[c])
            blocks.append(block)
            spans.append((c, slice(pos, pos + block.shape[1])))
            pos += block.shape[1]
        return np.hstack(blocks), spans

    def grid(self) -> pd.DataFrame:
        """The reference grid of emmeans: all factor-level combinations, covariates averaged."""
        combos = list(itertools.product(*[self.levels[f] for f in self.factors]))
        frame = pd.DataFrame(combos, columns=self.factors)
        return frame


def _ols_by_pattern(z: np.ndarray, y: np.ndarray):
    """Yield (columns, rows, beta, xtx_inv, rss, df_resid) per missingness pattern."""
    p = z.shape[1]
    for rows, cols in _patterns(y):
        zr = z[rows]
        rank = np.linalg.matrix_rank(zr) if rows.size else 0
        if rank < p or rows.size <= p:
            yield cols, rows, None, None, None, rows.size - rank
            continue
        yr = y[np.ix_(rows, cols)]
        q, r = np.linalg.qr(zr)
        beta = np.linalg.solve(r, q.T @ yr)
        resid = yr - zr @ beta
        rss = np.einsum("ij,ij->j", resid, resid)
        rinv = np.linalg.inv(r)
        yield cols, rows, beta, rinv @ rinv.T, rss, rows.size - p


def _as_list(x: str | Sequence[str] | None) -> list[str]:
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return list(x)


def _anova_setup(adata, formula_terms, covariates, exclude_controls, step):
    factors = _as_list(formula_terms)
    covs = _as_list(covariates)
    if not factors:
        msg = format_message("formula_terms is empty", hint="Name at least one obs column.")
        raise DesignError(msg)
    require_columns(adata.obs, factors + covs, what="obs", hint="Name columns of adata.obs.")
    rows, acols, excl = _select(
        adata, factors + covs, exclude_controls=exclude_controls, step=step
    )
    obs = adata.obs.iloc[rows]
    model = _Model(obs, factors, covs)
    z, spans = model.matrix(obs)
    y = _matrix(adata, None)[np.ix_(rows, acols)]
    return model, obs, z, spans, y, acols, excl


@doc_params(adata=doc_adata, alpha=doc_alpha)
def anova(
    adata: ad.AnnData,
    *,
    formula_terms: str | Sequence[str],
    covariates: str | Sequence[str] | None = None,
    alpha: float = 0.05,
    exclude_controls: bool = True,
) -> pd.DataFrame:
    """Type-III ANOVA per assay: ``NPX ~ A * B * … (+ covariates)``, sum-to-zero contrasts.

    Parameters
    ----------
    {adata}
    formula_terms
        One or more categorical columns of ``obs``; all their interactions are included
        (the full factorial, as OlinkAnalyze ``olink_anova(variable=c("Site", "Time"))``).
    covariates
        Additional columns of ``obs`` entered additively (numeric as they are,
        categorical with sum-to-zero contrasts); their rows appear in the table too.
    {alpha}
    exclude_controls
        Leave out control samples and control assays (``is_control``).

    Returns
    -------
    pandas.DataFrame
        One row per assay and term (the intercept left out), sorted by ``p_value``:
        annotation columns, ``term`` (``"Site"``, ``"Site:Time"``), ``df``, ``sumsq``,
        ``meansq``, ``statistic`` (F), ``df_residual``, ``p_value``, ``p_adj``,
        ``significant``, ``n``, ``reason``. ``p_adj`` is Benjamini–Hochberg over one
        family: every assay's rows of ``formula_terms`` and their interactions, as
        OlinkAnalyze ``olink_anova`` (``p.adjust(method = "fdr")`` grouped by "is a
        covariate"); covariate rows get NaN ``p_adj`` (OA: ``NA``) and ``significant``
        False. ``attrs``: method, terms, alpha, excluded samples/assays.

    Notes
    -----
    Equals ``car::Anova(lm(NPX ~ A*B, contrasts = contr.sum), type = 3)`` and
    statsmodels ``anova_lm(ols("NPX ~ C(A, Sum)*C(B, Sum)"), typ=3)``: the sum of squares
    of a term is the Wald quadratic form ``β_T' V_T⁻¹ β_T`` of its coefficients, ``V_T``
    the block of ``(X'X)⁻¹``. Samples missing an assay are dropped for that assay; assays
    sharing a missingness pattern are solved together with one QR. Tested against
    ``car::Anova`` (car 3.1.1, R 4.2.2) with factors, their interaction and numeric and
    categorical covariates: F, p and ``p_adj`` to 1e-8.

    Examples
    --------
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"Site": np.repeat(["A", "B", "C"], 6)},
    ...                    index=[f"S{i}" for i in range(18)])
    >>> var = pd.DataFrame(index=pd.Index(["OID1", "OID2"], name="OlinkID"))
    >>> adata = ad.AnnData(rng.normal(size=(18, 2)), obs=obs, var=var)
    >>> res = op.tl.anova(adata, formula_terms="Site")
    >>> res["term"].tolist(), res["df"].tolist()
    (['Site', 'Site'], [2.0, 2.0])
    """
    if _blocks.is_lazy(adata):  # dask-backed: the same code per block of assays
        return _blocks.anova(**locals())
    model, obs, z, spans, y, acols, excl = _anova_setup(
        adata, formula_terms, covariates, exclude_controls, "anova"
    )
    m = y.shape[1]
    nt = len(spans)
    res = {k: np.full((m, nt), np.nan) for k in ["df", "sumsq", "statistic", "p_value", "df_res"]}
    reason = np.full((m, nt), "", dtype=object)
    n = np.zeros(m, dtype=int)
    for cols, rows, beta, xtx_inv, rss, df_res in _ols_by_pattern(z, y):
        n[cols] = rows.size
        if beta is None:
            reason[cols] = "design not estimable with this assay's samples (missing values)"
            continue
        mse = rss / df_res
        for t, (_, sl) in enumerate(spans):
            b = beta[sl]
            v_inv = np.linalg.inv(xtx_inv[sl, sl])
            ss = np.einsum("ia,ij,ja->a", b, v_inv, b)
            q = b.shape[0]
            res["df"][cols, t] = q
            res["sumsq"][cols, t] = ss
            res["df_res"][cols, t] = df_res
            with np.errstate(invalid="ignore", divide="ignore"):
                f = ss / q / mse
            res["statistic"][cols, t] = f
            res["p_value"][cols, t] = stats.f.sf(f, q, df_res)
    ann = _annotation(adata, acols)
    frame = ann.loc[np.repeat(np.arange(m), nt)].reset_index(drop=True)
    frame["term"] = np.tile([name for name, _ in spans], m)
    frame["df"] = res["df"].ravel()
    frame["sumsq"] = res["sumsq"].ravel()
    frame["meansq"] = frame["sumsq"] / frame["df"]
    frame["statistic"] = res["statistic"].ravel()
    frame["df_residual"] = res["df_res"].ravel()
    frame["p_value"] = res["p_value"].ravel()
    # OlinkAnalyze: one BH family over the rows of the factors and their interactions (all
    # assays); covariate rows are left out of it and get NA
    is_cov = frame["term"].isin(model.covariates).to_numpy()
    p_adj = np.full(len(frame), np.nan)
    p_adj[~is_cov] = bh_adjust(frame["p_value"].to_numpy()[~is_cov])
    frame["p_adj"] = p_adj
    frame["significant"] = frame["p_adj"].fillna(1.0) < alpha
    frame["n"] = np.repeat(n, nt)
    frame["reason"] = reason.ravel().astype(str)
    frame = frame.sort_values("p_value", kind="stable", na_position="last")
    frame = frame.reset_index(drop=True)
    frame.attrs = {
        "method": "anova",
        "test": "type-III ANOVA, sum-to-zero contrasts (car::Anova type 3)",
        "terms": [name for name, _ in spans],
        "covariates": [str(c) for c in model.covariates],
        "alpha": float(alpha),
        "n_tested": int(frame["p_value"].notna().sum()),
        **excl,
    }
    return frame


@doc_params(adata=doc_adata, alpha=doc_alpha)
def anova_posthoc(
    adata: ad.AnnData,
    *,
    formula_terms: str | Sequence[str],
    effect: str | Sequence[str],
    covariates: str | Sequence[str] | None = None,
    assays: Sequence[str] | None = None,
    conf_level: float = 0.95,
    alpha: float = 0.05,
    exclude_controls: bool = True,
) -> pd.DataFrame:
    """Tukey-adjusted pairwise contrasts of estimated marginal means after :func:`anova`.

    Parameters
    ----------
    {adata}
    formula_terms
        The factors of the ANOVA model (full factorial), as in :func:`anova`.
    effect
        The factor (or list of factors, for their combinations) whose marginal means are
        compared, e.g. ``"Site"`` or ``["Site", "Time"]``.
    covariates
        As in :func:`anova`; numeric ones are held at their mean.
    assays
        OlinkIDs (``var`` index) to test; all when None.
    conf_level
        Confidence level of the family-wise (Tukey) intervals.
    {alpha}
    exclude_controls
        Leave out control samples and assays.

    Returns
    -------
    pandas.DataFrame
        One row per assay and contrast: annotation columns, ``term``, ``contrast``
        (``"A - B"``; for several factors ``"a1 b1 - a2 b1"``: the levels joined by a
        space; a label with ``-``, ``+``, ``/`` or ``*`` in parentheses, as emmeans), ``estimate`` (marginal mean of A minus that of B), ``ci_low``, ``ci_high``, ``statistic`` (t), ``df``, ``p_adj`` (Tukey within
        assay), ``significant``, ``n``.

    Notes
    -----
    Marginal means average the model's predictions over an equally weighted grid of the
    other factors (emmeans' default), so this equals OlinkAnalyze
    ``olink_anova_posthoc`` (emmeans, Tukey); for a single factor it equals statsmodels
    ``pairwise_tukeyhsd`` (Tukey–Kramer) with the estimate's sign reversed
    (statsmodels reports group2 − group1). p-values use the studentized range
    distribution with ``k`` = number of means and the residual df. Rows, labels and
    signs follow ``emmeans(lm(NPX ~ A * B), pairwise ~ A:B, adjust = "tukey")``: the
    cells in emmeans' grid order (levels in order, the first factor varying fastest),
    every earlier cell minus every later one. Tested against emmeans 1.8.4 (R 4.2.2): estimates,
    SEs and CIs to 1e-10, Tukey p to 1e-8.

    Examples
    --------
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"Site": np.repeat(["A", "B", "C"], 6)},
    ...                    index=[f"S{i}" for i in range(18)])
    >>> var = pd.DataFrame(index=pd.Index(["OID1"], name="OlinkID"))
    >>> adata = ad.AnnData(rng.normal(size=(18, 1)), obs=obs, var=var)
    >>> op.tl.anova_posthoc(adata, formula_terms="Site", effect="Site")["contrast"].tolist()
    ['A - B', 'A - C', 'B - C']
    """
    if _blocks.is_lazy(adata):  # dask-backed: the same code per block of assays
        return _blocks.anova_posthoc(**locals())
    effect_l = _as_list(effect)
    factors = _as_list(formula_terms)
    missing = [e for e in effect_l if e not in factors]
    if missing:
        msg = format_message(
            f"effect {missing!r} is not among formula_terms {factors!r}",
            hint="The effect must be one of the model's factors.",
        )
        raise DesignError(msg)
    sub = subset_assays(adata, assays)
    model, obs, z, spans, y, acols, excl = _anova_setup(
        sub, factors, covariates, exclude_controls, "anova_posthoc"
    )
    grid = model.grid()
    for c in model.covariates:
        if model.cov_levels[c] is None:
            grid[c] = model.cov_means[c]
    # categorical covariates: average over their levels with equal weight
    cat_covs = [c for c in model.covariates if model.cov_levels[c] is not None]
    if cat_covs:
        extra = pd.DataFrame(
            list(itertools.product(*[model.cov_levels[c] for c in cat_covs])), columns=cat_covs
        )
        grid = grid.merge(extra, how="cross")
    lgrid, _ = model.matrix(grid)
    # cells of the effect in emmeans' order (first factor varying fastest), labelled as
    # emmeans' pairs() does: the levels joined by a space
    codes = [grid[f].astype(str).map(model.levels[f].index).to_numpy() for f in effect_l]
    cell = np.ravel_multi_index(codes[::-1], [len(model.levels[f]) for f in effect_l[::-1]])
    present, first = np.unique(cell, return_index=True)
    names = [" ".join(grid[effect_l].astype(str).iloc[i]) for i in first]
    # emmeans' option parens: a label containing - + / or * is put in parentheses
    names = [f"({nm})" if re.search(r"[-+/*]", nm) else nm for nm in names]
    lmean = np.vstack([lgrid[cell == c].mean(axis=0) for c in present])
    k = len(names)
    pairs = list(itertools.combinations(range(k), 2))
    cmat = np.vstack([lmean[i] - lmean[j] for i, j in pairs])
    m = y.shape[1]
    est = np.full((m, len(pairs)), np.nan)
    se = np.full((m, len(pairs)), np.nan)
    dfr = np.full(m, np.nan)
    n = np.zeros(m, dtype=int)
    for cols, rows, beta, xtx_inv, rss, df_res in _ols_by_pattern(z, y):
        n[cols] = rows.size
        if beta is None:
            continue
        est[cols] = (cmat @ beta).T
        unscaled = np.einsum("ci,ij,cj->c", cmat, xtx_inv, cmat)
        se[cols] = np.sqrt(np.outer(rss / df_res, unscaled))
        dfr[cols] = df_res
    with np.errstate(invalid="ignore", divide="ignore"):
        t = est / se
    dfb = np.broadcast_to(dfr[:, None], t.shape)
    okv = np.isfinite(t)
    p = np.full(t.shape, np.nan)
    qcrit = np.full(t.shape, np.nan)
    if okv.any():
        p[okv] = stats.studentized_range.sf(np.abs(t[okv]) * np.sqrt(2.0), k, dfb[okv])
        for d in np.unique(dfb[okv]):
            qcrit[dfb == d] = stats.studentized_range.ppf(conf_level, k, d) / np.sqrt(2.0)
    ann = _annotation(sub, acols)
    npair = len(pairs)
    frame = ann.loc[np.repeat(np.arange(m), npair)].reset_index(drop=True)
    frame["term"] = ":".join(effect_l)
    frame["contrast"] = np.tile([f"{names[i]} - {names[j]}" for i, j in pairs], m)
    frame["estimate"] = est.ravel()
    frame["ci_low"] = (est - qcrit * se).ravel()
    frame["ci_high"] = (est + qcrit * se).ravel()
    frame["statistic"] = t.ravel()
    frame["df"] = dfb.ravel()
    frame["p_adj"] = np.minimum(p.ravel(), 1.0)
    frame["significant"] = frame["p_adj"].fillna(1.0) < alpha
    frame["n"] = np.repeat(n, npair)
    frame.attrs = {
        "method": "anova_posthoc",
        "test": "Tukey-adjusted pairwise contrasts of estimated marginal means",
        "effect": effect_l,
        "alpha": float(alpha),
        "conf_level": float(conf_level),
        **excl,
    }
    return frame


# --------------------------------------------------------------------------------------
# longitudinal


def _fit_mixed(y, x, groups, n_time, test):
    """MixedLM with a random intercept for one assay; Wald or LR test of the time terms."""
    import statsmodels.api as sm

    out = {"reason": ""}
    ok = ~np.isnan(y)
    y, x, groups = y[ok], x[ok], groups[ok]
    out["n"] = int(ok.sum())
    out["n_subjects"] = int(np.unique(groups).size)
    if out["n_subjects"] < 3 or np.linalg.matrix_rank(x) < x.shape[1]:
        out["reason"] = "too few subjects or time points measured"
        return out
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            fit = sm.MixedLM(y, x, groups=groups).fit(reml=True)
        except (np.linalg.LinAlgError, ValueError) as err:  # pragma: no cover - rare
            out["reason"] = f"fit failed: {err}"
            return out
    if any("converge" in str(w.message).lower() for w in caught):
        out["reason"] = "converged with warnings"
    fe = np.asarray(fit.fe_params)
    cov = np.asarray(fit.cov_params())[: fe.size, : fe.size]
    idx = np.arange(1, 1 + n_time)
    b = fe[idx]
    v = cov[np.ix_(idx, idx)]
    out["chi2"] = float(b @ np.linalg.solve(v, b))
    out["est"] = b
    out["se"] = np.sqrt(np.diag(v))
    if test == "lr":  # ML fits of the model with and without the time terms
        keep = np.r_[0, np.arange(1 + n_time, x.shape[1])]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = sm.MixedLM(y, x, groups=groups).fit(reml=False)
            reduced = sm.MixedLM(y, x[:, keep], groups=groups).fit(reml=False)
        out["chi2"] = float(max(2.0 * (full.llf - reduced.llf), 0.0))
    return out


def _run_per_assay(func, jobs, *, n_jobs: int, progress: bool, desc: str) -> list:
    """The one loop over assays for models without a matrix form (progress + workers)."""
    from tqdm.auto import tqdm

    it = tqdm(jobs, desc=desc, disable=not progress, total=len(jobs))
    if n_jobs == 1:
        return [func(*a) for a in it]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=n_jobs)(delayed(func)(*a) for a in it)


def _friedman(blocks: np.ndarray):
    """Friedman chi² for blocks (subjects × k × assays), complete subjects per assay."""
    _, k, m = blocks.shape
    complete = ~np.isnan(blocks).any(axis=1)  # subjects × assays
    n = complete.sum(axis=0)
    x = blocks
    less = (x[:, :, None, :] > x[:, None, :, :]).sum(axis=2)  # values below each entry
    equal = (x[:, :, None, :] == x[:, None, :, :]).sum(axis=2)
    ranks = less + (equal + 1) / 2.0
    ranks = np.where(complete[:, None, :], ranks, 0.0)
    rsum = ranks.sum(axis=0)  # k × assays
    # tie term: Σ over subjects and tie groups of t(t² − 1) = Σ over entries of (t² − 1)
    ties = np.where(complete[:, None, :], equal.astype(float) ** 2 - 1.0, 0.0).sum(axis=(0, 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        chi2 = 12.0 / (k * n * (k + 1)) * (rsum**2).sum(axis=0) - 3.0 * n * (k + 1)
        chi2 = chi2 / (1.0 - ties / (k * (k * k - 1) * n))
    p = stats.chi2.sf(chi2, k - 1)
    return chi2, p, n


@doc_params(adata=doc_adata, alpha=doc_alpha)
def longitudinal(
    adata: ad.AnnData,
    *,
    time: str,
    subject: str,
    reference: str | None = None,
    method: Literal["mixed", "friedman"] = "mixed",
    covariates: Sequence[str] | None = None,
    test: Literal["wald", "lr"] = "wald",
    alpha: float = 0.05,
    n_jobs: int = 1,
    progress: bool = True,
    exclude_controls: bool = True,
) -> pd.DataFrame:
    """Test a time effect over two or more time points per assay, subjects repeated.

    Parameters
    ----------
    {adata}
    time
        Column of ``obs`` with the time point (categorical).
    subject
        Column of ``obs`` identifying the subject (random intercept / Friedman block).
    reference
        Reference time point of the contrasts; default the first level (categorical
        order, else sorted).
    method
        ``"mixed"``: linear mixed model ``NPX ~ time (+ covariates) + (1 | subject)``
        (statsmodels MixedLM, REML), Wald χ² test of all time coefficients and one
        contrast per time point vs the reference. ``"friedman"``: Friedman rank test on
        subjects measured at every time point (per assay).
    covariates
        Fixed-effect columns of ``obs`` (``"mixed"`` only); numeric as they are,
        others as treatment dummies.
    test
        Overall time test of ``"mixed"``: ``"wald"`` (χ² on the REML fit) or ``"lr"``
        (likelihood ratio of ML fits with and without time; two more fits per assay).
        The per-time-point contrasts are always Wald z from the REML fit.
    {alpha}
    n_jobs
        Parallel workers (joblib) for the per-assay mixed-model loop.
    progress
        Show a tqdm progress bar over assays (mixed models only).
    exclude_controls
        Leave out control samples and assays.

    Returns
    -------
    pandas.DataFrame
        Long table, one row per assay and ``term``: ``term == "time"`` holds the overall
        test (``statistic`` = Wald χ² or Friedman χ², ``df``, ``p_value``); with
        ``"mixed"`` also one row per contrast (``term`` like ``"Week.6 - Baseline"``,
        ``estimate``, ``ci_low``, ``ci_high``, ``statistic`` = z). ``p_adj`` is BH across
        assays within each term. Also ``n`` (samples used), ``n_subjects``, ``reason``.
        ``attrs``: method, levels, reference, excluded samples/subjects/assays.

    Notes
    -----
    A subject with more than one sample at the same time point is left out (warned and
    listed in ``attrs["excluded_subjects"]``), never averaged. The Wald test uses the
    REML fit; OlinkAnalyze's ``olink_lmer`` reports an F test with Satterthwaite df
    (lmerTest), which is close but not identical for small samples: use
    :func:`olinkpipe.tl.lmer` for OlinkAnalyze's numbers (ML fit, type-III F,
    Satterthwaite DenDF, factorial designs such as treatment × time).

    Examples
    --------
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"Subject": np.repeat([f"P{i}" for i in range(6)], 3),
    ...                     "Time": ["D0", "D7", "D28"] * 6},
    ...                    index=[f"S{i}" for i in range(18)])
    >>> var = pd.DataFrame(index=pd.Index(["OID1", "OID2"], name="OlinkID"))
    >>> adata = ad.AnnData(rng.normal(size=(18, 2)), obs=obs, var=var)
    >>> res = op.tl.longitudinal(adata, time="Time", subject="Subject", method="friedman")
    >>> res["df"].tolist()
    [2.0, 2.0]
    """
    if _blocks.is_lazy(adata):  # dask-backed: the same code per block of assays
        return _blocks.longitudinal(**locals())
    check_literal("method", method, ["mixed", "friedman"])
    check_literal("test", test, ["wald", "lr"])
    covs = list(covariates or [])
    if covs and method == "friedman":
        msg = format_message(
            "covariates are not supported by method='friedman'",
            hint="Use method='mixed' or drop covariates=.",
        )
        raise DesignError(msg)
    require_columns(adata.obs, [time, subject] + covs, what="obs", hint="Name obs columns.")
    rows, acols, excl = _select(
        adata, [time, subject] + covs, exclude_controls=exclude_controls, step="longitudinal"
    )
    obs = adata.obs.iloc[rows]
    tlab = obs[time].astype(str).to_numpy()
    levels = _levels_of(obs[time])
    if reference is None:
        reference = levels[0]
    if str(reference) not in levels:
        msg = format_message(
            f"reference {reference!r} is not a value of obs[{time!r}]",
            column=time,
            rows=levels,
            hint="Pass one of the listed time points.",
        )
        raise DesignError(msg)
    if len(levels) < 2:
        msg = format_message(f"obs[{time!r}] has fewer than two time points", column=time)
        raise DesignError(msg)
    reference = str(reference)
    others = [lv for lv in levels if lv != reference]
    subj = obs[subject].astype(str).to_numpy()
    dup = pd.Series(1, index=pd.MultiIndex.from_arrays([subj, tlab])).groupby(level=[0, 1]).size()
    bad_subj = sorted(set(dup[dup > 1].index.get_level_values(0)))
    if bad_subj:
        warn(
            f"longitudinal: left out {len(bad_subj)} subject(s) with more than one sample at a "
            f"time point: {preview(bad_subj)}"
        )
        keep = ~np.isin(subj, bad_subj)
        obs, tlab, subj, rows = obs[keep], tlab[keep], subj[keep], rows[keep]
    y = _matrix(adata, None)[np.ix_(rows, acols)]
    m = y.shape[1]
    ann = _annotation(adata, acols)

    if method == "friedman":
        subjects = sorted(set(subj))
        s_idx = pd.Index(subjects).get_indexer(subj)
        t_idx = pd.Index(levels).get_indexer(tlab)
        blocks = np.full((len(subjects), len(levels), m), np.nan)
        blocks[s_idx, t_idx] = y
        chi2, p, n = _friedman(blocks)
        frame = ann.copy()
        frame["term"] = "time"
        frame["estimate"] = np.nan
        frame["ci_low"] = np.nan
        frame["ci_high"] = np.nan
        frame["statistic"] = chi2
        frame["df"] = float(len(levels) - 1)
        frame["p_value"] = np.where(n >= 2, p, np.nan)
        frame["n"] = n * len(levels)
        frame["n_subjects"] = n
        frame["reason"] = np.where(n >= 2, "", "fewer than 2 subjects with every time point")
        test_text = "Friedman rank-sum test (complete subjects per assay)"
    else:
        tcols = np.column_stack([(tlab == lv).astype(float) for lv in others])
        parts = [np.ones((len(obs), 1)), tcols]
        if covs:
            from .de import _covariate_matrix

            zc, _ = _covariate_matrix(obs, covs)
            parts.append(zc)
        x = np.hstack(parts)
        jobs = [(y[:, j], x, subj, len(others), test) for j in range(m)]
        fits = _run_per_assay(
            _fit_mixed, jobs, n_jobs=n_jobs, progress=progress, desc="mixed models"
        )
        z = stats.norm.ppf(0.5 + 0.95 / 2.0)
        recs = []
        for j, f in enumerate(fits):
            base = {"_a": j, "n": f["n"], "n_subjects": f["n_subjects"], "reason": f["reason"]}
            has = "chi2" in f
            recs.append(
                {
                    **base,
                    "term": "time",
                    "statistic": f["chi2"] if has else np.nan,
                    "df": float(len(others)),
                    "p_value": stats.chi2.sf(f["chi2"], len(others)) if has else np.nan,
                }
            )
            for i, lv in enumerate(others):
                e = f["est"][i] if has else np.nan
                s = f["se"][i] if has else np.nan
                recs.append(
                    {
                        **base,
                        "term": f"{lv} - {reference}",
                        "estimate": e,
                        "ci_low": e - z * s,
                        "ci_high": e + z * s,
                        "statistic": e / s if has else np.nan,
                        "df": np.nan,
                        "p_value": 2 * stats.norm.sf(abs(e / s)) if has else np.nan,
                    }
                )
        rec = pd.DataFrame(recs)
        frame = pd.concat(
            [ann.iloc[rec["_a"].to_numpy()].reset_index(drop=True), rec.drop(columns="_a")],
            axis=1,
        )
        test_text = "linear mixed model with random subject intercept; " + (
            "Wald chi2 (REML) for time"
            if test == "wald"
            else "likelihood-ratio chi2 (ML) for time"
        )
    frame["p_adj"] = frame.groupby("term")["p_value"].transform(lambda s: bh_adjust(s.to_numpy()))
    frame["significant"] = frame["p_adj"].fillna(1.0) < alpha
    order_terms = {t: i for i, t in enumerate(["time"] + [f"{lv} - {reference}" for lv in others])}
    frame["_t"] = frame["term"].map(order_terms)
    frame = frame.sort_values(["_t", "p_value"], kind="stable", na_position="last")
    cols = list(ann.columns) + [
        "term",
        "estimate",
        "ci_low",
        "ci_high",
        "statistic",
        "df",
        "p_value",
        "p_adj",
        "significant",
        "n",
        "n_subjects",
        "reason",
    ]
    frame = frame[cols].reset_index(drop=True)
    frame.attrs = {
        "method": method,
        "test": test_text,
        "time": time,
        "subject": subject,
        "levels": levels,
        "reference": reference,
        "sign": f"<time> - {reference}",
        "alpha": float(alpha),
        "excluded_subjects": bad_subj,
        "covariates": covs,
        **excl,
    }
    logger.info("longitudinal: %s on %d assays", method, m)
    return frame
