"""Longitudinal test of a time effect per assay: linear mixed model or Friedman.

The public :func:`longitudinal` in named steps: :func:`_design` (exclusions, time levels,
reference, subjects with one sample per time point), then :func:`_friedman_frame` (array
kernel over all assays) or :func:`_mixed_frame` (statsmodels MixedLM per assay in the one
loop of :func:`olinkpipe.tl._loop.run_per_assay`), then :func:`_adjust_and_sort`.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from scipy import stats

from .._design import (
    annotation,
    covariate_matrix,
    levels_of,
    matrix,
    ordered,
    require_obs,
    select,
)
from .._docs import doc_adata, doc_alpha, doc_params
from .._stats import bh_adjust
from .._validate import check_literal
from .._warnings import warn
from ..errors import DesignError, format_message, preview
from . import _blocks
from ._loop import run_per_assay
from .methods import get_method, methods_of
from .nonparametric import friedman_stat

__all__ = ["longitudinal"]

logger = logging.getLogger("olinkpipe")


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
        kw = locals()
        return _blocks.by_term(longitudinal, kw.pop("adata"), kw)
    check_literal("method", method, list(methods_of("longitudinal")))
    check_literal("test", test, ["wald", "lr"])
    covs = list(covariates or [])
    if covs and method == "friedman":
        msg = format_message(
            "covariates are not supported by method='friedman'",
            hint="Use method='mixed' or drop covariates=.",
        )
        raise DesignError(msg)
    d = _design(adata, time, subject, reference, covs, exclude_controls)
    y = matrix(adata, None)[np.ix_(d.rows, d.acols)]
    ann = annotation(adata, d.acols)
    if method == "friedman":
        frame = _friedman_frame(y, ann, d)
        test_text = "Friedman rank-sum test (complete subjects per assay)"
    else:
        frame = _mixed_frame(y, ann, d, covs, test=test, n_jobs=n_jobs, progress=progress)
        test_text = "linear mixed model with random subject intercept; " + (
            "Wald chi2 (REML) for time"
            if test == "wald"
            else "likelihood-ratio chi2 (ML) for time"
        )
    frame = _adjust_and_sort(frame, d, alpha)
    frame.attrs = {
        "method": method,
        "test": test_text,
        "time": time,
        "subject": subject,
        "levels": d.levels,
        "reference": d.reference,
        "sign": f"<time> - {d.reference}",
        "alpha": float(alpha),
        "excluded_subjects": d.bad_subjects,
        "covariates": covs,
        **d.excl,
    }
    logger.info("longitudinal: %s on %d assays", method, y.shape[1])
    return frame


@dataclass
class _Times:
    """Samples used (positions, their time label and subject), time levels, reference."""

    rows: np.ndarray
    acols: np.ndarray
    excl: dict
    obs: pd.DataFrame
    tlab: np.ndarray
    subj: np.ndarray
    levels: list[str]
    reference: str
    bad_subjects: list[str]

    @property
    def others(self) -> list[str]:
        return [lv for lv in self.levels if lv != self.reference]


def _design(adata, time, subject, reference, covs, exclude_controls) -> _Times:
    """Exclusions, the time levels and reference, and subjects with one sample per time."""
    require_obs(adata, [time, subject] + covs, hint="Name obs columns.")
    rows, acols, excl = select(
        adata, [time, subject] + covs, exclude_controls=exclude_controls, step="longitudinal"
    )
    obs = adata.obs.iloc[rows]
    tlab = obs[time].astype(str).to_numpy()
    levels = levels_of(obs[time])
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
    return _Times(rows, acols, excl, obs, tlab, subj, levels, str(reference), bad_subj)


def _friedman_frame(y: np.ndarray, ann: pd.DataFrame, d: _Times) -> pd.DataFrame:
    """One ``"time"`` row per assay: Friedman's chi² over the complete subjects."""
    subjects = sorted(set(d.subj))
    s_idx = pd.Index(subjects).get_indexer(d.subj)
    t_idx = pd.Index(d.levels).get_indexer(d.tlab)
    blocks = np.full((len(subjects), len(d.levels), y.shape[1]), np.nan)
    blocks[s_idx, t_idx] = y
    chi2, p, n = friedman_stat(blocks)
    frame = ann.copy()
    frame["term"] = "time"
    frame["estimate"] = np.nan
    frame["ci_low"] = np.nan
    frame["ci_high"] = np.nan
    frame["statistic"] = chi2
    frame["df"] = float(len(d.levels) - 1)
    frame["p_value"] = np.where(n >= 2, p, np.nan)
    frame["n"] = n * len(d.levels)
    frame["n_subjects"] = n
    frame["reason"] = np.where(n >= 2, "", "fewer than 2 subjects with every time point")
    return frame


def _mixed_frame(y, ann, d: _Times, covs, *, test, n_jobs, progress) -> pd.DataFrame:
    """Per assay a ``"time"`` row (Wald or LR chi²) and one Wald z row per time point."""
    others = d.others
    tcols = np.column_stack([(d.tlab == lv).astype(float) for lv in others])
    parts = [np.ones((len(d.obs), 1)), tcols]
    if covs:
        parts.append(covariate_matrix(d.obs, covs)[0])
    x = np.hstack(parts)
    jobs = [(y[:, j], x, d.subj, len(others), test) for j in range(y.shape[1])]
    fits = run_per_assay(_fit_mixed, jobs, n_jobs=n_jobs, progress=progress, desc="mixed models")
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
                    "term": f"{lv} - {d.reference}",
                    "estimate": e,
                    "ci_low": e - z * s,
                    "ci_high": e + z * s,
                    "statistic": e / s if has else np.nan,
                    "df": np.nan,
                    "p_value": 2 * stats.norm.sf(abs(e / s)) if has else np.nan,
                }
            )
    rec = pd.DataFrame(recs)
    return pd.concat(
        [ann.iloc[rec["_a"].to_numpy()].reset_index(drop=True), rec.drop(columns="_a")], axis=1
    )


def _adjust_and_sort(frame: pd.DataFrame, d: _Times, alpha: float) -> pd.DataFrame:
    """BH within each term; rows by term (time first), then ``p_value``; columns ordered."""
    frame["p_adj"] = frame.groupby("term")["p_value"].transform(lambda s: bh_adjust(s.to_numpy()))
    frame["significant"] = frame["p_adj"].fillna(1.0) < alpha
    terms = ["time"] + [f"{lv} - {d.reference}" for lv in d.others]
    frame["_t"] = frame["term"].map({t: i for i, t in enumerate(terms)})
    frame = frame.sort_values(["_t", "p_value"], kind="stable", na_position="last")
    columns = get_method("longitudinal", "mixed").result_columns
    return ordered(frame, columns).reset_index(drop=True)


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
