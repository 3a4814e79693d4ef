"""Linear mixed model per assay with lmerTest's type-III F tests (OlinkAnalyze ``olink_lmer``).

``NPX ~ A * B (+ covariates) + (1 | random)`` is fitted to every assay and each fixed term is
tested with the F statistic and Satterthwaite denominator df that ``anova(model, type = 3)``
of lmerTest reports. The model has one random intercept, so its likelihood has a closed
form in per-subject sums (``V_i = σ² I + σ²_b 11ᵀ``): the fit, the Hessian of the deviance
and the derivatives of ``Cov(β̂)`` are computed exactly in numpy instead of by numerical
differentiation (:mod:`olinkpipe.tl._lmer_fit`), in the one per-assay loop of
:func:`olinkpipe.tl._loop.run_per_assay`. The contrasts are lmerTest's own type-III ``L``
(:mod:`olinkpipe.tl._lmer_design`), whose rows the Satterthwaite df depend on; the post hoc
shares emmeans' machinery (:mod:`olinkpipe.tl._emmeans`) with the ordinal model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd
from scipy import stats

from .._design import (
    annotation,
    as_list,
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
from .._warnings import warn
from ..errors import DesignError, format_message, preview
from . import _blocks
from ._emmeans import (
    adjusted_p,
    assay_rows,
    check_effect,
    check_factor_effect,
    check_p_adjust,
    critical,
    emm_cells,
    pairs_of,
    posthoc_frame,
    posthoc_tail,
)
from ._lmer_design import _Design, _pre_reasons
from ._lmer_fit import STATS, fit_lmer, fit_posthoc
from ._loop import run_per_assay

__all__ = ["lmer", "lmer_posthoc"]

logger = logging.getLogger("olinkpipe")


def _setup(adata, variable, random, covariates, exclude_controls: bool, step: str) -> dict:
    """Validated model pieces shared by :func:`lmer` and :func:`lmer_posthoc`."""
    variables = split_terms(variable)
    covs = [c for c in as_list(covariates) if c not in variables]
    if not variables:
        msg = format_message("variable is empty", hint="Name at least one obs column.")
        raise DesignError(msg)
    if not isinstance(random, str):
        msg = format_message(
            f"random must be one obs column name; got {random!r}",
            hint="Pass e.g. random='Subject'.",
        )
        raise DesignError(msg)
    require_obs(adata, variables + covs + [random])
    if random in variables + covs:
        msg = format_message(
            f"{random!r} is both the random effect and a fixed effect",
            column=random,
            hint="Name the subject column only as random=.",
        )
        raise DesignError(msg)
    rows, acols, excl = select(
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
        "y": matrix(adata, None)[np.ix_(rows, acols)],
        "ann": annotation(adata, acols),
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
        kw = locals() | {"progress": False}
        return _blocks.rows(lmer, kw.pop("adata"), kw, family=_blocks.covariates_unadjusted)
    su = _setup(adata, variable, random, covariates, exclude_controls, "lmer")
    variables, covs, obs, design = su["variables"], su["covs"], su["obs"], su["design"]
    x, groups, y, ann = design.x, su["groups"], su["y"], su["ann"]
    m = y.shape[1]
    pre_reason = _pre_reasons(y, obs, design, variables)
    jobs = [(y[:, j], x, groups, design.lmats, reml, str(pre_reason[j])) for j in range(m)]
    fits = run_per_assay(fit_lmer, jobs, n_jobs=n_jobs, progress=progress, desc="lmer")
    frame = _lmer_frame(ann, design, fits, covs, alpha)
    oids = ann["OlinkID"].astype(str).to_numpy()
    untested = warn_untested("lmer", oids, [f["reason"] for f in fits])
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
        "terms": [name for name, _ in design.spans],
        "covariates": covs,
        "reml": bool(reml),
        "alpha": float(alpha),
        "n_tested": int(m - len(untested)),
        "untested_assays": untested,
        "singular_fits": singular,
        "hessian_dropped": flat,
        **su["excl"],
    }
    logger.info("lmer: %d assays, %d not tested", m, len(untested))
    return frame


def _lmer_frame(ann, design: _Design, fits: list[dict], covs, alpha) -> pd.DataFrame:
    """One row per assay and term, BH over the variable rows, sorted by ``p_value``."""
    nt = len(design.spans)
    stack = {k: np.vstack([f[k] for f in fits]) for k in STATS}
    frame = long_frame(ann, nt)
    frame["term"] = np.tile([name for name, _ in design.spans], len(fits))
    frame["sumsq"] = stack["sumsq"].ravel()
    frame["meansq"] = stack["meansq"].ravel()
    frame["NumDF"] = stack["numdf"].ravel()
    frame["DenDF"] = stack["dendf"].ravel()
    frame["statistic"] = stack["F"].ravel()
    with np.errstate(invalid="ignore"):
        frame["p_value"] = stats.f.sf(frame["statistic"], frame["NumDF"], frame["DenDF"])
    is_cov = frame["term"].isin(covs).to_numpy()
    frame["p_adj"] = family_p_adj(frame["p_value"].to_numpy(), is_cov)
    frame["significant"] = frame["p_adj"].fillna(1.0) < alpha
    frame["n"] = np.repeat([f["n"] for f in fits], nt)
    frame["reason"] = np.repeat([f["reason"] for f in fits], nt).astype(str)
    frame = frame.sort_values("p_value", kind="stable", na_position="last")
    return frame.reset_index(drop=True)


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
        kw = locals() | {"progress": False}
        return _blocks.posthoc(lmer_posthoc, kw.pop("adata"), kw)
    effect_l = split_terms(effect)
    check_p_adjust(p_adjust)
    variables = split_terms(variable)
    check_effect(
        effect,
        effect_l,
        variables,
        "variable",
        "All effect terms must be included in the variable argument.",
    )
    sub = subset_assays(adata, assays)
    su = _setup(sub, variables, random, covariates, exclude_controls, "lmer_posthoc")
    obs, design, covs, y, ann = su["obs"], su["design"], su["covs"], su["y"], su["ann"]
    check_factor_effect(effect_l, design.levels)
    cells, labels, lmat_of = emm_cells(design, obs, effect_l)
    k = len(cells)
    pairs = pairs_of(k)
    pre_reason = _pre_reasons(y, obs, design, variables)
    rows = assay_rows(y, lmat_of, pairs, means=mean_return)
    jobs = [
        (y[:, j], design.x, su["groups"], lm, reml, str(pre_reason[j]))
        for j, lm in enumerate(rows)
    ]
    fits = run_per_assay(fit_posthoc, jobs, n_jobs=n_jobs, progress=progress, desc="lmer_posthoc")
    est, se, dfs = (np.vstack([f[key] for f in fits]) for key in ["est", "se", "df"])
    # emmeans' note for means: "tukey" becomes "sidak"
    method = "sidak" if mean_return and p_adjust == "tukey" else p_adjust
    crit = critical(method, conf_level, k, k if mean_return else len(pairs), dfs)
    frame, t = posthoc_frame(ann, effect_l, cells, labels, pairs, est, se, crit, means=mean_return)
    p_adj = None if mean_return else adjusted_p(method, t, dfs, k, len(pairs))
    posthoc_tail(frame, dfs, p_adj, fits, alpha)
    untested = warn_untested(
        "lmer_posthoc", ann["OlinkID"].astype(str).to_numpy(), [f["reason"] for f in fits]
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
