"""Per-assay ordinal regression on NPX ranks (OlinkAnalyze ``olink_ordinalRegression``).

Every assay's NPX values are replaced by their ranks, treated as ordered categories (one per
distinct value), and a proportional-odds model ``P(rank <= j) = logistic(θ_j − x'β)``
(``ordinal::clm``) is fitted with the Newton fitter of :mod:`olinkpipe._ordinal`. Each term
gets the Wald chi-square test that ``anova(clm, type = "marginal")`` reports; the post hoc
compares estimated marginal means on the latent scale (``emmeans`` on the ``clm``). The model
has no matrix form over assays (one threshold per distinct value), so the assays are fitted in
the one per-assay loop of :func:`olinkpipe.tl._loop.run_single_blas`.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
from scipy import stats

from .._design import (
    annotation,
    as_list,
    factor_levels,
    family_p_adj,
    long_frame,
    matrix,
    require_obs,
    select,
    split_terms,
    subset_assays,
    warn_untested,
)
from .._docs import doc_adata, doc_alpha, doc_params
from .._ordinal import fit_ordinal
from ..errors import DesignError, format_message
from ._emmeans import (
    assay_rows,
    check_effect,
    check_factor_effect,
    check_p_adjust,
    emm_cells,
    pairs_of,
    posthoc_frame,
    posthoc_tail,
    z_adjust,
)
from ._loop import run_single_blas

__all__ = ["ordinal", "ordinal_posthoc"]

logger = logging.getLogger("olinkpipe")

_EPS = np.sqrt(np.finfo(float).eps)  # ordinal's contestMD rank tolerance


class _Design:
    """``NPX ~ A * B * … + covariates`` in R's default treatment coding, intercept dropped
    (``clm``'s thresholds take its place); terms in R's order (by degree, covariates after
    the main effects of ``variables``)."""

    def __init__(self, obs: pd.DataFrame, variables: list[str], covariates: list[str]):
        self.levels = factor_levels(obs, variables + covariates)
        combos = [
            t for r in range(2, len(variables) + 1) for t in itertools.combinations(variables, r)
        ]
        self.terms = [(v,) for v in variables] + [(c,) for c in covariates] + combos
        self.factors = [c for c in self.levels if self.levels[c] is not None]
        self.x = self.matrix(obs)
        self.spans: list[tuple[str, slice]] = []
        pos = 0
        for t in self.terms:
            width = int(np.prod([len(self.levels[v] or [0, 0]) - 1 for v in t]))
            self.spans.append((":".join(t), slice(pos, pos + width)))
            pos += width

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows of the design (no intercept) for the predictor values in ``frame``."""
        n = len(frame)
        cols = {}
        for c, lev in self.levels.items():
            if lev is None:
                cols[c] = frame[c].to_numpy(dtype=float)[:, None]
            else:
                vals = frame[c].astype(str).to_numpy()
                cols[c] = (vals[:, None] == np.asarray(lev[1:])[None, :]).astype(float)
        blocks = []
        for t in self.terms:
            block = cols[t[0]]
            for f in t[1:]:  # first factor varies fastest, as R's model.matrix
                block = (cols[f][:, :, None] * block[:, None, :]).reshape(n, -1)
            blocks.append(block)
        return np.hstack(blocks)


def _pre_reasons(y: np.ndarray, obs: pd.DataFrame, design: _Design, variables) -> np.ndarray:
    """Assays not fitted: fewer than two distinct values, no value in a level of a factor
    (``olink_ordinalRegression`` skips those too), or an empty cell of the factorial."""
    reason = np.full(y.shape[1], "", dtype=object)
    observed = ~np.isnan(y)
    for j in range(y.shape[1]):
        if np.unique(y[observed[:, j], j]).size < 2:
            reason[j] = "fewer than two distinct NPX values"
    obsf = observed.astype(float)
    factors = [v for v in variables + list(design.levels) if v in design.factors]
    factors = list(dict.fromkeys(factors))
    for f in factors:
        vals = obs[f].astype(str).to_numpy()
        for lev in design.levels[f] or []:
            empty = (obsf[vals == lev].sum(axis=0) == 0) & (reason == "")
            reason[empty] = f"no NPX value in level {lev!r} of {f!r}"
    fvars = [v for v in variables if design.levels[v] is not None]
    if len(fvars) > 1:
        vals = [obs[f].astype(str).to_numpy() for f in fvars]
        for cell in itertools.product(*(design.levels[f] or [] for f in fvars)):
            rows = np.logical_and.reduce([v == c for v, c in zip(vals, cell, strict=True)])
            empty = (obsf[rows].sum(axis=0) == 0) & (reason == "")
            reason[empty] = (
                f"no NPX value in the {'×'.join(fvars)} cell {cell}: not tested (clm "
                "would drop the inestimable coefficients)"
            )
    return reason


def _fit_assay(y: np.ndarray, x: np.ndarray, reason: str):
    """One assay: the proportional-odds fit on the ranks of the observed NPX, or a reason."""
    ok = ~np.isnan(y)
    if reason:
        return None, int(ok.sum()), reason
    codes = np.unique(y[ok], return_inverse=True)[1].ravel()  # rank → ordered category
    try:
        fit = fit_ordinal(x[ok], codes)
    except Exception as err:  # noqa: BLE001 - one assay's failure must not stop the others
        return None, int(ok.sum()), f"fit failed: {type(err).__name__}: {err}"
    if not fit.converged or not np.all(np.isfinite(fit.cov)):
        return None, int(ok.sum()), "the model did not converge (separation?)"
    return fit, int(ok.sum()), ""


def _wald(beta: np.ndarray, cov: np.ndarray) -> tuple[float, float]:
    """``contestMD``: chi-square of ``β = 0`` on the positive eigen-directions of ``cov``."""
    d, p = np.linalg.eigh(cov)
    d, p = d[::-1], p[:, ::-1]
    pos = d > max(_EPS * d[0], 0.0)
    z = p[:, pos].T @ beta
    return float(np.sum(z**2 / d[pos])), float(pos.sum())


def _test_assay(y: np.ndarray, x: np.ndarray, spans, reason: str) -> dict:
    nt = len(spans)
    out = {"chisq": np.full(nt, np.nan), "df": np.full(nt, np.nan)}
    fit, out["n"], out["reason"] = _fit_assay(y, x, reason)
    if fit is not None:
        k1 = fit.theta.size
        for i, (_, sl) in enumerate(spans):
            idx = np.arange(x.shape[1])[sl]
            out["chisq"][i], out["df"][i] = _wald(
                fit.beta[idx], fit.cov[np.ix_(k1 + idx, k1 + idx)]
            )
    return out


def _setup(adata, variable, covariates, exclude_controls: bool, layer, step: str) -> dict:
    variables = split_terms(variable)
    if not variables:
        msg = format_message("groupby is empty", hint="Name at least one obs column.")
        raise DesignError(msg)
    covs = [c for c in split_terms(as_list(covariates)) if c not in variables]
    require_obs(adata, variables + covs)
    rows, acols, excl = select(
        adata, variables + covs, exclude_controls=exclude_controls, step=step
    )
    obs = adata.obs.iloc[rows]
    design = _Design(obs, variables, covs)
    y = matrix(adata, layer)[np.ix_(rows, acols)]
    return {
        "variables": variables,
        "covs": covs,
        "obs": obs,
        "design": design,
        "y": np.asarray(y, dtype=float),
        "ann": annotation(adata, acols),
        "excl": excl,
        "formula": "rank(NPX) ~ " + "*".join(variables) + "".join(f" + {c}" for c in covs),
    }


@doc_params(adata=doc_adata, alpha=doc_alpha)
def ordinal(
    adata: ad.AnnData,
    *,
    groupby: str | Sequence[str],
    covariates: str | Sequence[str] | None = None,
    return_covariates: bool = False,
    alpha: float = 0.05,
    n_jobs: int = 1,
    progress: bool = False,
    exclude_controls: bool = True,
    layer: str | None = None,
) -> pd.DataFrame:
    """Ordinal regression of each assay's NPX ranks, as OlinkAnalyze ``olink_ordinalRegression``.

    Per assay, ``rank(NPX) ~ A * B * … + covariates`` is fitted as a cumulative logit
    (proportional-odds) model with one threshold per distinct NPX value, as
    ``ordinal::clm`` fits the ranked, factor-coded NPX in OlinkAnalyze, and every term is
    tested with the Wald chi-square of ``anova(model, type = "marginal")``.

    Parameters
    ----------
    {adata}
    groupby
        One or more columns of ``obs`` (``"A*B"`` / ``"A:B"`` read as ``["A", "B"]``); all
        their interactions enter (OlinkAnalyze's ``variable``). Non-numeric columns are
        factors in treatment coding (first level, sorted or categorical order, is the
        reference); numeric columns enter as they are.
    covariates
        Further columns of ``obs``, entered additively.
    return_covariates
        Also return the covariate rows (``p_adj`` NaN for them); OlinkAnalyze's
        ``return.covariates``. Default False, as there.
    {alpha}
    n_jobs
        Parallel workers (joblib) for the per-assay loop.
    progress
        Show a tqdm progress bar over assays.
    exclude_controls
        Leave out control samples and control assays (``is_control``).
    layer
        Use this layer instead of ``X``.

    Returns
    -------
    pandas.DataFrame
        One row per assay and term, sorted by ``p_value`` (NaN last): ``OlinkID``,
        ``Assay``, ``UniProt``, ``Panel`` (those in ``var``), ``term``, ``statistic``
        (Wald chi-square), ``df``, ``p_value``, ``p_adj`` (Benjamini–Hochberg over all
        assay × term rows of ``groupby``, one family as OlinkAnalyze), ``significant``
        (``p_adj < alpha``), ``n`` (samples used), ``reason`` (why an assay was not
        tested; its statistics are NaN). ``attrs``: method, test, formula, terms,
        covariates, alpha, ``untested_assays``, excluded samples/assays.

    Raises
    ------
    MissingColumnError
        A named column is not in ``obs``.
    DesignError
        A factor has fewer than two levels.

    Notes
    -----
    The outcome is the per-assay rank of NPX, ties sharing a category, so the model has
    ``K − 1`` thresholds for ``K`` distinct values; it is invariant to any increasing
    transformation of NPX. ``type = "marginal"`` tests each term's own coefficients in
    R's treatment coding: with an interaction in the model a main effect is the effect at
    the reference level of the other factor(s), as in OlinkAnalyze. The chi-square is
    ``β_T' V_TT⁻¹ β_T`` on the eigen-directions of ``V_TT`` above ``√ε`` times the largest
    (``ordinal``'s ``contestMD``), ``V`` the inverse observed information.

    Differences from OlinkAnalyze: samples without an NPX value are dropped for that assay
    (OlinkAnalyze ranks with R's ``rank()``, which puts missing values above every value,
    as the highest categories); an assay with an empty cell of the factorial is not tested
    (``clm`` drops the inestimable coefficients); assays whose fit does not converge
    (separation) get NaN statistics and a ``reason`` instead of ``clm``'s warning.
    ``olink_ordinalRegression`` only fits OlinkIDs of the form ``OID`` + 5 digits; here all
    non-control assays are fitted. Each fit has ``K − 1 + p`` parameters; the Newton
    steps use the tridiagonal threshold block of the Hessian (a Schur complement in the
    ``p`` coefficients), so an assay takes about the square of the number of samples in
    time (one core: ~4 ms at 100 samples, 40 ms at 300, 0.3 s at 1000; ``n_jobs``
    spreads the assays).

    Examples
    --------
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"Group": np.repeat(["A", "B", "C"], 10)},
    ...                    index=[f"S{i}" for i in range(30)])
    >>> var = pd.DataFrame(index=pd.Index(["OID1", "OID2"], name="OlinkID"))
    >>> adata = ad.AnnData(rng.normal(size=(30, 2)), obs=obs, var=var)
    >>> res = op.tl.ordinal(adata, groupby="Group")
    >>> res[["term", "df"]].drop_duplicates().values.tolist()
    [['Group', 2.0]]
    """
    su = _setup(adata, groupby, covariates, exclude_controls, layer, "ordinal")
    variables, covs, obs, design = su["variables"], su["covs"], su["obs"], su["design"]
    y, ann = su["y"], su["ann"]
    m = y.shape[1]
    nt = len(design.spans)
    pre = _pre_reasons(y, obs, design, variables)
    jobs = [(y[:, j], design.x, design.spans, str(pre[j])) for j in range(m)]
    fits = run_single_blas(_test_assay, jobs, n_jobs=n_jobs, progress=progress, desc="ordinal")
    names = [name for name, _ in design.spans]
    frame = long_frame(ann, nt)
    frame["term"] = np.tile(names, m)
    frame["statistic"] = np.concatenate([f["chisq"] for f in fits])
    frame["df"] = np.concatenate([f["df"] for f in fits])
    with np.errstate(invalid="ignore"):
        frame["p_value"] = stats.chi2.sf(frame["statistic"], frame["df"])
    is_cov = frame["term"].isin(covs).to_numpy()
    frame["p_adj"] = family_p_adj(frame["p_value"].to_numpy(), is_cov)
    frame["significant"] = frame["p_adj"].fillna(1.0) < alpha
    frame["n"] = np.repeat([f["n"] for f in fits], nt)
    frame["reason"] = np.repeat([f["reason"] for f in fits], nt).astype(str)
    if not return_covariates:
        frame = frame.loc[~is_cov]
    frame = frame.sort_values("p_value", kind="stable", na_position="last")
    frame = frame.reset_index(drop=True)
    oids = ann["OlinkID"].astype(str).to_numpy()
    untested = warn_untested("ordinal", oids, [f["reason"] for f in fits])
    frame.attrs = {
        "method": "ordinal",
        "test": "cumulative logit model (ordinal::clm) on NPX ranks; Wald chi-square, "
        'anova(type = "marginal")',
        "formula": su["formula"],
        "terms": names if return_covariates else [t for t in names if t not in covs],
        "covariates": covs,
        "alpha": float(alpha),
        "n_tested": int(m - len(untested)),
        "untested_assays": untested,
        **su["excl"],
    }
    logger.info("ordinal: %d assays, %d not tested", m, len(untested))
    return frame


# --------------------------------------------------------------------------------------
# post hoc: emmeans on the clm (latent scale), olink_ordinalRegression_posthoc


def _posthoc_assay(y: np.ndarray, x: np.ndarray, lmat: np.ndarray, means: bool, reason: str):
    """``L (θ, β)`` on emmeans' latent scale (``x'β − mean θ``) and its SE, per row."""
    k = lmat.shape[0]
    out = {"est": np.full(k, np.nan), "se": np.full(k, np.nan)}
    fit, out["n"], out["reason"] = _fit_assay(y, x, reason)
    if fit is not None:
        k1 = fit.theta.size
        th = np.full((k, k1), -1.0 / k1 if means else 0.0)
        full = np.hstack([th, lmat])
        out["est"] = full @ np.concatenate([fit.theta, fit.beta])
        out["se"] = np.sqrt(np.einsum("mp,pq,mq->m", full, fit.cov, full))
    return out


@doc_params(adata=doc_adata, alpha=doc_alpha)
def ordinal_posthoc(
    adata: ad.AnnData,
    *,
    groupby: str | Sequence[str],
    effect: str | Sequence[str],
    covariates: str | Sequence[str] | None = None,
    assays: Sequence[str] | None = None,
    mean_return: bool = False,
    p_adjust: str = "tukey",
    conf_level: float = 0.95,
    alpha: float = 0.05,
    n_jobs: int = 1,
    progress: bool = False,
    exclude_controls: bool = True,
    layer: str | None = None,
) -> pd.DataFrame:
    """Pairwise contrasts after :func:`ordinal`, as OlinkAnalyze
    ``olink_ordinalRegression_posthoc``.

    Per assay the model of :func:`ordinal` is fitted and the estimated marginal means of
    ``effect`` on the latent scale (``emmeans(clm, pairwise ~ effect)``) are compared
    pairwise with z tests (``df = Inf``) and Tukey-adjusted p-values and intervals.

    Parameters
    ----------
    {adata}
    groupby
        The factors of the model (full factorial), as in :func:`ordinal`.
    effect
        The factor (or factors, for their combinations; ``"A:B"`` read as ``["A", "B"]``)
        whose marginal means are compared; must be among ``groupby``.
    covariates
        As in :func:`ordinal`. Numeric ones are held at ``round(mean, 4)`` and
        ``round(mean + sd, 4)`` and averaged over (OlinkAnalyze's ``cov.reduce``); factors
        are averaged over their levels with equal weights (emmeans).
    assays
        OlinkIDs (``var`` index) to test; all when None (``olinkid_list``).
    mean_return
        Return the marginal means (one row per cell of ``effect``) instead of contrasts.
    p_adjust
        ``"tukey"`` (default), ``"sidak"``, ``"bonferroni"`` or ``"none"``, within an
        assay (OlinkAnalyze's ``post_hoc_padjust_method``). The intervals of the means
        (``mean_return``) are unadjusted, as the ``$emmeans`` part of OlinkAnalyze's
        ``emmeans(model, pairwise ~ effect, adjust = ...)`` call.
    conf_level
        Confidence level of the (family-wise) intervals.
    {alpha}
    n_jobs
        Parallel workers (joblib) for the per-assay loop.
    progress
        Show a tqdm progress bar over assays.
    exclude_controls
        Leave out control samples and control assays.
    layer
        Use this layer instead of ``X``.

    Returns
    -------
    pandas.DataFrame
        One row per assay and contrast: annotation columns, ``term``, ``contrast``
        (``"A - B"``, emmeans' order, cells of several factors labelled ``"a1 b1"``, first
        factor varying fastest), ``estimate`` (difference of latent means, ``x'β``),
        ``ci_low``, ``ci_high`` (adjusted), ``statistic`` (z), ``df`` (inf), ``p_adj``,
        ``significant``, ``n``, ``reason``. With ``mean_return``: the ``effect`` columns,
        ``emmean`` (``x'β − mean(θ)``, emmeans' latent mode), ``ci_low``, ``ci_high``,
        ``df``, ``n``, ``reason``. ``attrs``: method, effect, p_adjust, formula, alpha,
        conf_level, ``untested_assays``, excluded samples/assays.

    Raises
    ------
    DesignError
        ``effect`` is not among ``groupby`` or is numeric, an assay is not in ``var``,
        ``p_adjust`` is unknown, or as :func:`ordinal`.
    MissingColumnError
        A named column is not in ``obs``.

    Notes
    -----
    Rows are in assay order and emmeans' contrast order (OlinkAnalyze sorts by
    ``Adjusted_pval`` and returns ``contrast``, ``estimate`` and ``Adjusted_pval`` only;
    the same numbers are ``contrast``, ``estimate`` and ``p_adj`` here). Missing NPX are
    dropped per assay, as in :func:`ordinal`.

    Examples
    --------
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"Group": np.repeat(["A", "B", "C"], 10)},
    ...                    index=[f"S{i}" for i in range(30)])
    >>> var = pd.DataFrame(index=pd.Index(["OID1"], name="OlinkID"))
    >>> adata = ad.AnnData(rng.normal(size=(30, 1)), obs=obs, var=var)
    >>> op.tl.ordinal_posthoc(adata, groupby="Group", effect="Group")["contrast"].tolist()
    ['A - B', 'A - C', 'B - C']
    """
    check_p_adjust(p_adjust)
    effect_l = split_terms(effect)
    variables = split_terms(groupby)
    check_effect(
        effect, effect_l, variables, "groupby", "All effect terms must be included in groupby."
    )
    sub = subset_assays(adata, assays)
    su = _setup(sub, variables, covariates, exclude_controls, layer, "ordinal_posthoc")
    obs, design, y, ann = su["obs"], su["design"], su["y"], su["ann"]
    check_factor_effect(effect_l, design.levels)
    cells, labels, lmat_of = emm_cells(design, obs, effect_l)
    k = len(cells)
    pairs = pairs_of(k)
    pre = _pre_reasons(y, obs, design, variables)
    rows = assay_rows(y, lmat_of, pairs, means=mean_return)
    jobs = [(y[:, j], design.x, lm, mean_return, str(pre[j])) for j, lm in enumerate(rows)]
    fits = run_single_blas(
        _posthoc_assay, jobs, n_jobs=n_jobs, progress=progress, desc="ordinal_posthoc"
    )
    est, se = (np.vstack([f[key] for f in fits]) for key in ["est", "se"])
    with np.errstate(invalid="ignore", divide="ignore"):
        z = est / se
    method = "none" if mean_return else p_adjust  # emmeans' $emmeans: unadjusted
    p, crit = z_adjust(method, z, k, k if mean_return else len(pairs), conf_level)
    frame, _ = posthoc_frame(ann, effect_l, cells, labels, pairs, est, se, crit, means=mean_return)
    posthoc_tail(frame, np.inf, None if mean_return else p, fits, alpha)
    untested = warn_untested(
        "ordinal_posthoc", ann["OlinkID"].astype(str).to_numpy(), [f["reason"] for f in fits]
    )
    frame.attrs = {
        "method": "ordinal_posthoc",
        "test": "estimated marginal means (emmeans, latent scale) of a cumulative logit "
        "model on NPX ranks" + ("" if mean_return else "; pairwise z contrasts"),
        "formula": su["formula"],
        "effect": effect_l,
        "p_adjust": method,
        "alpha": float(alpha),
        "conf_level": float(conf_level),
        "untested_assays": untested,
        **su["excl"],
    }
    return frame
