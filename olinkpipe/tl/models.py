"""ANOVA over all assays and its post-hoc contrasts (OlinkAnalyze ``olink_anova``).

ANOVA and its post-hoc contrasts are ordinary least squares solved for all assays sharing a
missingness pattern at once. :func:`longitudinal` (mixed model, Friedman) lives in
:mod:`olinkpipe.tl._longitudinal` and is importable from here as before.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
from scipy import stats

from .._design import (
    annotation,
    as_list,
    family_p_adj,
    is_numeric,
    levels_of,
    long_frame,
    matrix,
    require_obs,
    select,
    subset_assays,
    sum_coding,
)
from .._docs import doc_adata, doc_alpha, doc_params
from ..errors import DesignError, format_message
from . import _blocks
from ._longitudinal import longitudinal

__all__ = ["longitudinal", "anova", "anova_posthoc"]  # longitudinal: from _longitudinal


logger = logging.getLogger("olinkpipe")


# --------------------------------------------------------------------------------------
# shared helpers


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
        self.levels = {f: levels_of(obs[f]) for f in factors}
        self.cov_levels: dict[str, list[str] | None] = {}
        self.cov_means: dict[str, float] = {}
        for c in covariates:
            s = obs[c]
            if is_numeric(s):
                self.cov_levels[c] = None
                self.cov_means[c] = float(s.mean())
            else:
                self.cov_levels[c] = levels_of(s)
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
            f: sum_coding(frame[f].astype(str).to_numpy(), self.levels[f]) for f in self.factors
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
                block = sum_coding(frame[c].astype(str).to_numpy(), self.cov_levels[c])
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


def _anova_setup(adata, formula_terms, covariates, exclude_controls, step):
    factors = as_list(formula_terms)
    covs = as_list(covariates)
    if not factors:
        msg = format_message("formula_terms is empty", hint="Name at least one obs column.")
        raise DesignError(msg)
    require_obs(adata, factors + covs)
    rows, acols, excl = select(adata, factors + covs, exclude_controls=exclude_controls, step=step)
    obs = adata.obs.iloc[rows]
    model = _Model(obs, factors, covs)
    z, spans = model.matrix(obs)
    y = matrix(adata, None)[np.ix_(rows, acols)]
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
        kw = locals()
        return _blocks.rows(anova, kw.pop("adata"), kw, family=_blocks.covariates_unadjusted)
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
    ann = annotation(adata, acols)
    frame = long_frame(ann, nt)
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
    frame["p_adj"] = family_p_adj(frame["p_value"].to_numpy(), is_cov)
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
        kw = locals()
        return _blocks.posthoc(anova_posthoc, kw.pop("adata"), kw)
    effect_l = as_list(effect)
    factors = as_list(formula_terms)
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
    names, cmat, pairs = _effect_contrasts(model, effect_l)
    k = len(names)
    est, se, dfr, n = _contrasts(z, y, cmat)
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
    m, npair = y.shape[1], len(pairs)
    frame = long_frame(annotation(sub, acols), npair)
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


def _effect_contrasts(model: _Model, effect_l: list[str]) -> tuple:
    """emmeans' cells of the effect (first factor varying fastest; covariates at their
    mean, factor covariates averaged over their levels), their labels and the rows of the
    pairwise contrasts of their marginal means in the model's coefficients."""
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
    pairs = list(itertools.combinations(range(len(names)), 2))
    cmat = np.vstack([lmean[i] - lmean[j] for i, j in pairs])
    return names, cmat, pairs


def _contrasts(z: np.ndarray, y: np.ndarray, cmat: np.ndarray) -> tuple:
    """Estimates and SEs of the contrast rows ``cmat`` for every assay (assays × rows),
    residual df and samples used per assay."""
    m = y.shape[1]
    est = np.full((m, cmat.shape[0]), np.nan)
    se = np.full((m, cmat.shape[0]), np.nan)
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
    return est, se, dfr, n
