"""Dose groups, group comparisons, correlations and outcome models on per-patient tables."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .._stats import bh_adjust
from .._validate import check_fraction, check_literal, require_columns
from .._warnings import warn
from ..errors import DesignError, ValidationError, format_message, preview
from ..tl.ranktests import rank_sum_test
from ._cox import fit_cox
from ._firth import detect_separation, firth_logistic
from ._ordinal import fit_ordinal
from ._rank import cliffs_delta, spearman_p

__all__ = ["dose_groups", "compare_groups", "correlate", "associate_outcome"]


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


def _join_patients(
    table: pd.DataFrame, patients: pd.DataFrame | None, needed: Sequence[str]
) -> pd.DataFrame:
    """Join columns the table lacks from the patient table (on ``patient``)."""
    lacking = [c for c in needed if c not in table.columns]
    if not lacking or patients is None:
        return table
    require_columns(patients, ["patient", *lacking], what="patient table")
    if "patient" not in table.columns:
        msg = "the table has no 'patient' column to join the patient table on."
        raise ValidationError(msg)
    return table.merge(patients[["patient", *lacking]], on="patient", how="left")


def _ids(table: pd.DataFrame, mask: np.ndarray) -> list[str]:
    """Patient IDs (or index labels) of the rows in ``mask``."""
    labels = table["patient"] if "patient" in table.columns else table.index.to_series()
    return [str(v) for v in labels.to_numpy()[np.asarray(mask, dtype=bool)]]


def _warn_left_out(step: str, left_out: dict[str, list[str]], what: str) -> None:
    if left_out:
        parts = [f"{k}: {len(v)} ({preview(v, 3)})" for k, v in left_out.items()]
        warn(
            f"{step}: left out patients with a missing {what}: "
            + "; ".join(parts[:5])
            + (f"; and {len(parts) - 5} more" if len(parts) > 5 else "")
            + ". Recorded in attrs['excluded'].",
            stacklevel=4,
        )


# ----------------------------------------------------------------------------- dose groups


def dose_groups(
    patients: pd.DataFrame,
    *,
    threshold: float | None = 2e6,
    rule: str = "gt",
    quantile: float | None = None,
    column: str = "dose",
    labels: tuple[str, str] = ("low", "high"),
    name: str = "dose_group",
) -> pd.DataFrame:
    """Split patients into a low- and a high-dose group.

    Parameters
    ----------
    patients
        Patient table with a dose column (cells/kg), e.g. from :func:`read_patients`.
    threshold
        Dose cut-off in cells/kg (default 2e6, the study's split).
    rule
        ``"gt"``: high when dose > threshold (so exactly 2e6/kg is low, as in the study);
        ``"ge"``: high when dose >= threshold.
    quantile
        If given (e.g. ``0.5``), the threshold is this quantile of the doses instead
        (median split), using the same ``rule``.
    column
        The dose column.
    labels
        Names of the (low, high) groups.
    name
        Name of the new column.

    Returns
    -------
    pandas.DataFrame
        A copy of ``patients`` with an ordered categorical column ``name`` (low < high).
        Patients without a dose get a missing group (with a warning). ``attrs["dose_groups"]``
        records the threshold and rule.

    Examples
    --------
    >>> import pandas as pd
    >>> from olinkpipe.clinical import dose_groups
    >>> pts = pd.DataFrame({"patient": ["P1", "P2", "P3"], "dose": [1e6, 2e6, 4.9e6]})
    >>> dose_groups(pts)["dose_group"].tolist()
    ['low', 'low', 'high']
    """
    check_literal("rule", rule, ["gt", "ge"])
    require_columns(patients, [column], what="patient table")
    dose = pd.to_numeric(patients[column], errors="coerce")
    if quantile is not None:
        check_fraction("quantile", quantile)
        threshold = float(dose.quantile(quantile))
    if threshold is None:
        msg = "Give threshold= (cells/kg) or quantile=."
        raise ValidationError(msg)
    high = dose > threshold if rule == "gt" else dose >= threshold
    group = pd.Series(np.where(high, labels[1], labels[0]), index=patients.index, dtype=object)
    group[dose.isna()] = np.nan
    out = patients.copy()
    out[name] = pd.Categorical(group, categories=list(labels), ordered=True)
    if dose.isna().any():
        ids = patients.loc[dose.isna(), "patient"] if "patient" in patients else dose.index
        warn(
            f"dose_groups: no dose for {preview(list(ids))}; their group is missing.", stacklevel=2
        )
    out.attrs = {
        **patients.attrs,
        "dose_groups": {
            "column": column,
            "threshold": float(threshold),
            "rule": rule,
            "quantile": quantile,
            "labels": list(labels),
        },
    }
    return out


# ------------------------------------------------------------------------- compare groups


def _group_summary(values: np.ndarray) -> dict[str, float]:
    n = len(values)
    if n == 0:
        return {
            "n": 0,
            "median": np.nan,
            "q1": np.nan,
            "q3": np.nan,
            "mean": np.nan,
            "sem": np.nan,
        }
    q1, med, q3 = np.percentile(values, [25, 50, 75])
    sem = float(np.std(values, ddof=1) / np.sqrt(n)) if n > 1 else np.nan
    return {"n": n, "median": med, "q1": q1, "q3": q3, "mean": float(np.mean(values)), "sem": sem}


def compare_groups(
    summary: pd.DataFrame,
    *,
    by: str,
    metrics: str | Sequence[str],
    test: str = "mannwhitney",
    reference: str | None = None,
    patients: pd.DataFrame | None = None,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Compare per-patient metrics between two groups (e.g. peak IL-6 by dose group).

    Parameters
    ----------
    summary
        Per-patient table, e.g. from :func:`kinetics`. If it has an ``analyte`` column
        (kinetics results, possibly several concatenated), each analyte × metric is
        compared separately and the output gets an ``analyte`` column.
    by
        Grouping column with exactly two levels (joined from ``patients`` if absent).
    metrics
        Column(s) to compare, e.g. ``["cmax", "auc"]``.
    test
        ``"mannwhitney"``: Wilcoxon rank-sum as R's ``wilcox.test(other, reference,
        conf.int = TRUE, conf.level = conf_level)``: exact p and Hodges–Lehmann CI
        without ties and both groups < 50, else normal approximation with tie and
        continuity correction, estimate and CI R's ``uniroot`` roots (``exact = FALSE,
        correct = TRUE``). The kernel of :func:`olinkpipe.tl.differential`
        (``wilcoxon_ci="uniroot"``); equal to R 4.2.2 to 1e-8 (W, p, estimate, CI).
        Both groups constant: the shift as ``effect`` and no CI (R stops with an
        error).
        ``"ttest"``: Welch's t-test (R's ``t.test`` default), effect = difference in means.
    reference
        The reference level; ``effect`` is other − reference. Default: ``"low"`` when the
        levels are low/high, else the first level (categorical order, else sorted).
    patients
        Patient table to take ``by`` from when ``summary`` lacks it.
    conf_level
        Confidence level of the effect's CI.

    Returns
    -------
    pandas.DataFrame
        One row per metric (and analyte): ``[analyte,] metric, test, statistic, p_value,
        p_adj, effect, effect_ci_low, effect_ci_high, cliffs_delta``, then per group
        ``n_<g>, median_<g>, q1_<g>, q3_<g>, mean_<g>, sem_<g>``. ``statistic`` is R's
        ``W`` (U of the other group) or Welch's t; ``effect`` is the Hodges–Lehmann
        shift (Mann–Whitney) or the mean difference (t-test); ``cliffs_delta`` is
        P(other > reference) − P(other < reference). ``p_adj``: Benjamini–Hochberg over
        the rows. Patients with a missing value (or group) are left out per metric, with a
        warning, listed in ``attrs["excluded"]`` (metric → IDs) and visible in the ``n_``
        columns; a metric with too few values gets NaN statistics. ``attrs`` also hold the
        reference, other level and sign text.

    Examples
    --------
    >>> import pandas as pd
    >>> from olinkpipe.clinical import compare_groups
    >>> s = pd.DataFrame({"dose_group": ["low"] * 4 + ["high"] * 4,
    ...                   "cmax": [1.0, 2.0, 3.0, 4.0, 2.5, 5.0, 6.0, 7.0]})
    >>> r = compare_groups(s, by="dose_group", metrics="cmax")
    >>> float(r.loc[0, "statistic"]), round(float(r.loc[0, "p_value"]), 4)
    (14.0, 0.1143)
    """
    check_literal("test", test, ["mannwhitney", "ttest"])
    metrics = _as_list(metrics)
    table = _join_patients(summary, patients, [by])
    require_columns(table, [by, *metrics], what="summary table")
    col = table[by]
    if isinstance(col.dtype, pd.CategoricalDtype):
        levels = [lv for lv in col.cat.categories if (col == lv).any()]
    else:
        levels = sorted(col.dropna().unique().tolist(), key=str)
    if len(levels) != 2:
        msg = format_message(
            f"compare_groups needs exactly two groups, found {len(levels)}: {preview(levels)}",
            column=by,
            hint="Subset the table or recode the column to two levels (see dose_groups).",
        )
        raise DesignError(msg)
    if reference is None:
        reference = "low" if set(map(str, levels)) == {"low", "high"} else levels[0]
    if reference not in levels:
        msg = f"reference={reference!r} is not a level of {by!r} ({levels!r})."
        raise DesignError(msg)
    other = levels[1] if levels[0] == reference else levels[0]
    blocks = (
        list(table.groupby("analyte", sort=False))
        if "analyte" in table.columns
        else [(None, table)]
    )
    rows = []
    notes = []
    left_out: dict[str, list[str]] = {}
    for analyte, block in blocks:
        for metric in metrics:
            vals = pd.to_numeric(block[metric], errors="coerce")
            gone = (vals.isna() | block[by].isna()).to_numpy()
            if gone.any():
                key = metric if analyte is None else f"{analyte} {metric}"
                left_out[key] = _ids(block, gone)
            x = vals[(block[by] == other).to_numpy()].dropna().to_numpy(float)
            y = vals[(block[by] == reference).to_numpy()].dropna().to_numpy(float)
            row: dict[str, object] = {} if analyte is None else {"analyte": analyte}
            row["metric"] = metric
            stat = p = eff = lo = hi = np.nan
            name = "Mann-Whitney U" if test == "mannwhitney" else "Welch t"
            enough = len(x) >= 2 and len(y) >= 2 if test == "ttest" else len(x) and len(y)
            if enough:
                if test == "mannwhitney":
                    w = rank_sum_test(x, y, conf_level=conf_level)
                    stat, p, eff, lo, hi = w.statistic, w.p_value, w.estimate, w.ci_low, w.ci_high
                    name += " (exact)" if w.exact else " (normal approx., corrected)"
                    if w.reason:
                        notes.append(f"{metric}: {w.reason} ({len(x)} vs {len(y)})")
                else:
                    t = stats.ttest_ind(x, y, equal_var=False)
                    ci = t.confidence_interval(conf_level)
                    stat, p = float(t.statistic), float(t.pvalue)
                    eff, lo, hi = float(x.mean() - y.mean()), float(ci.low), float(ci.high)
            else:
                notes.append(f"{metric}: too few values ({len(x)} vs {len(y)})")
            row.update(
                test=name,
                statistic=stat,
                p_value=p,
                p_adj=np.nan,
                effect=eff,
                effect_ci_low=lo,
                effect_ci_high=hi,
                cliffs_delta=cliffs_delta(x, y) if len(x) and len(y) else np.nan,
            )
            for level, v in ((reference, y), (other, x)):
                for key, value in _group_summary(v).items():
                    row[f"{key}_{level}"] = value
            rows.append(row)
    out = pd.DataFrame(rows)
    out["p_adj"] = bh_adjust(out["p_value"].to_numpy(float))
    _warn_left_out("compare_groups", left_out, "value or group")
    out.attrs = {
        "method": test,
        "by": by,
        "reference": str(reference),
        "other": str(other),
        "effect": f"{other} - {reference}",
        "conf_level": conf_level,
        "notes": notes,
        "excluded": left_out,
    }
    return out


# ------------------------------------------------------------------------------ correlate

_FISHER_VAR = {"pearson": 1.0, "spearman": 1.06, "kendall": 0.437}
_FISHER_DF = {"pearson": 3, "spearman": 3, "kendall": 4}


def _corr(x: np.ndarray, y: np.ndarray, method: str) -> tuple[float, float]:
    """Coefficient and two-sided p-value with the p-value rules of R's ``cor.test``."""
    n = len(x)
    ties = np.unique(x).size < n or np.unique(y).size < n
    if method == "pearson":
        r = stats.pearsonr(x, y)
    elif method == "spearman":
        r = stats.spearmanr(x, y)
        if not ties:  # R: exact / Edgeworth p; with ties the t approximation, as scipy
            return float(r.statistic), spearman_p(float(r.statistic), n)
    else:  # R: exact below 50 without ties, else the tie-corrected normal approximation
        exact = n < 50 and not ties
        r = stats.kendalltau(x, y, method="exact" if exact else "asymptotic")
    return float(r.statistic), float(r.pvalue)


def _bootstrap(
    x: np.ndarray, y: np.ndarray, method: str, n_boot: int, seed: int, conf_level: float
) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(x), size=(n_boot, len(x)))
    xb, yb = x[idx], y[idx]
    if method == "kendall":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            rho = np.array([stats.kendalltau(a, b).statistic for a, b in zip(xb, yb, strict=True)])
    else:
        if method == "spearman":
            xb, yb = stats.rankdata(xb, axis=1), stats.rankdata(yb, axis=1)
        xc = xb - xb.mean(axis=1, keepdims=True)
        yc = yb - yb.mean(axis=1, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            rho = (xc * yc).sum(1) / np.sqrt((xc**2).sum(1) * (yc**2).sum(1))
    a = (1 - conf_level) / 2
    lo, hi = np.nanquantile(rho, [a, 1 - a])
    return float(lo), float(hi)


def correlate(
    table: pd.DataFrame,
    x: str | Sequence[str],
    ys: str | Sequence[str],
    method: str = "spearman",
    *,
    ci: str = "fisher",
    n_boot: int = 2000,
    seed: int = 0,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Correlate per-patient variables: dose vs peak expansion, peak expansion vs IL-6, ...

    Parameters
    ----------
    table
        One row per patient (e.g. patients merged with :func:`kinetics` results and
        per-patient post − pre NPX changes).
    x
        Column (or columns) on one side.
    ys
        Column(s) on the other side; every ``x`` is paired with every ``y`` (not itself).
    method
        ``"spearman"``, ``"pearson"`` or ``"kendall"`` (tau-b). Coefficients from
        ``scipy.stats``; p-values as R's ``cor.test``: Pearson's t test; Spearman
        without ties the exact permutation p (n <= 9) or the Edgeworth series of AS 89
        (n < 1290), with ties the t approximation; Kendall exact without ties and n < 50,
        else the tie-corrected normal approximation.
    ci
        ``"fisher"``: Fisher z interval, ``tanh(atanh(r) ± z * se)`` with se
        ``1/sqrt(n-3)`` (Pearson, as R's ``cor.test``), ``sqrt(1.06/(n-3))`` (Spearman)
        or ``sqrt(0.437/(n-4))`` (Kendall) after Fieller, Hartley & Pearson (1957).
        ``"bootstrap"``: percentile interval of ``n_boot`` resamples of patients.
    n_boot
        Bootstrap resamples.
    seed
        Seed of the bootstrap.
    conf_level
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per pair: ``x, y, method, rho, ci_low, ci_high, p_value, p_adj, n``
        (pairwise complete patients; BH over the rows). Pairs with n < 3 get NaN.
        Patients left out for a missing value are warned about and listed in
        ``attrs["excluded"]`` (``"x ~ y"`` → IDs).

    Examples
    --------
    >>> import pandas as pd
    >>> from olinkpipe.clinical import correlate
    >>> t = pd.DataFrame({"dose": [1, 2, 3, 4, 5], "cmax": [2.0, 1.0, 4.0, 3.0, 5.0],
    ...                   "il6": [1.0, 3.0, 2.0, 5.0, 4.0]})
    >>> correlate(t, "dose", ["cmax", "il6"])["rho"].round(2).tolist()
    [0.8, 0.8]
    """
    check_literal("method", method, ["spearman", "pearson", "kendall"])
    check_literal("ci", ci, ["fisher", "bootstrap"])
    xs, ylist = _as_list(x), _as_list(ys)
    require_columns(table, [*xs, *ylist], what="table")
    z = stats.norm.ppf(1 - (1 - conf_level) / 2)
    rows = []
    left_out: dict[str, list[str]] = {}
    for xc in xs:
        for yc in ylist:
            if yc == xc:
                continue
            a = pd.to_numeric(table[xc], errors="coerce").to_numpy(float)
            b = pd.to_numeric(table[yc], errors="coerce").to_numpy(float)
            ok = ~np.isnan(a) & ~np.isnan(b)
            if not ok.all():
                left_out[f"{xc} ~ {yc}"] = _ids(table, ~ok)
            a, b = a[ok], b[ok]
            n = int(ok.sum())
            rho = p = lo = hi = np.nan
            if n >= 3 and np.ptp(a) > 0 and np.ptp(b) > 0:
                rho, p = _corr(a, b, method)
                if ci == "fisher":
                    dfree = n - _FISHER_DF[method]
                    if dfree > 0:
                        se = np.sqrt(_FISHER_VAR[method] / dfree)
                        zr = np.arctanh(np.clip(rho, -1 + 1e-15, 1 - 1e-15))
                        lo, hi = float(np.tanh(zr - z * se)), float(np.tanh(zr + z * se))
                else:
                    lo, hi = _bootstrap(a, b, method, n_boot, seed, conf_level)
            rows.append(
                {
                    "x": xc,
                    "y": yc,
                    "method": method,
                    "rho": rho,
                    "ci_low": lo,
                    "ci_high": hi,
                    "p_value": p,
                    "p_adj": np.nan,
                    "n": n,
                }
            )
    out = pd.DataFrame(
        rows, columns=["x", "y", "method", "rho", "ci_low", "ci_high", "p_value", "p_adj", "n"]
    )
    out["p_adj"] = bh_adjust(out["p_value"].to_numpy(float))
    _warn_left_out("correlate", left_out, "value (pairwise)")
    out.attrs = {
        "method": method,
        "excluded": left_out,
        "ci": ci,
        "conf_level": conf_level,
        "n_boot": n_boot if ci == "bootstrap" else None,
        "seed": seed if ci == "bootstrap" else None,
    }
    return out


# ----------------------------------------------------------------------- outcome models


def _design(frame: pd.DataFrame, predictors: list[str]) -> pd.DataFrame:
    """Numeric design columns; non-numeric predictors become 0/1 dummies vs the first level."""
    parts = []
    for p in predictors:
        col = frame[p]
        if pd.api.types.is_bool_dtype(col) or pd.api.types.is_numeric_dtype(col):
            parts.append(col.astype(float).rename(p))
            continue
        cat = col if isinstance(col.dtype, pd.CategoricalDtype) else col.astype("category")
        cat = cat.cat.remove_unused_categories()
        levels = list(cat.cat.categories)
        if len(levels) < 2:
            msg = format_message(
                f"predictor {p!r} has a single level ({preview(levels)})",
                column=p,
                hint="Drop it from predictors.",
            )
            raise DesignError(msg)
        for lv in levels[1:]:
            parts.append((cat == lv).astype(float).rename(f"{p}[{lv}]"))
    return pd.concat(parts, axis=1)


def _binary(values: pd.Series, name: str) -> np.ndarray:
    v = values.astype(float) if values.dtype == bool else pd.to_numeric(values, errors="coerce")
    bad = ~v.isin([0, 1])
    if bad.any():
        msg = format_message(
            f"the outcome must be 0/1 (or True/False), found {preview(values[bad].unique())}",
            column=name,
            hint="Binarise it, e.g. table['crs_any'] = table['crs_grade'] >= 1, or use "
            "kind='ordinal' for a graded outcome.",
        )
        raise ValidationError(msg)
    return v.to_numpy(float)


def _fit_logistic(
    X: pd.DataFrame, y: np.ndarray, firth: bool | str, conf_level: float
) -> tuple[pd.DataFrame, str]:
    import statsmodels.api as sm

    Xc = np.column_stack([np.ones(len(X)), X.to_numpy(float)])
    separated = detect_separation(Xc, y)
    use_firth = firth is True or (firth == "auto" and separated)
    if use_firth:
        res = firth_logistic(Xc, y, alpha=1 - conf_level)
        why = "separation detected" if separated else "requested"
        if separated and firth == "auto":
            warn(
                "associate_outcome: the outcome is (quasi-)completely separated by "
                f"{preview(list(X.columns))}, so the ML odds ratios are infinite; using "
                "Firth's penalised logistic regression instead.",
                stacklevel=3,
            )
        frame = pd.DataFrame(
            {
                "coef": res.coef[1:],
                "se": res.se[1:],
                "lo": res.ci_low[1:],
                "hi": res.ci_high[1:],
                "p": res.p_value[1:],
            },
            index=X.columns,
        )
        return frame, (
            f"Firth penalised logistic ({why}); profile penalised-likelihood CI, penalised LR p"
        )
    if separated:
        warn(
            "associate_outcome: the outcome is (quasi-)completely separated by "
            f"{preview(list(X.columns))}: the ML estimates are unstable (they diverge to "
            "infinity) and their CIs and p-values are meaningless. Use firth='auto'.",
            stacklevel=3,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.Logit(y, Xc).fit(disp=0, method="newton", maxiter=100)
    ci = np.asarray(fit.conf_int(alpha=1 - conf_level))
    frame = pd.DataFrame(
        {
            "coef": fit.params[1:],
            "se": fit.bse[1:],
            "lo": ci[1:, 0],
            "hi": ci[1:, 1],
            "p": fit.pvalues[1:],
        },
        index=X.columns,
    )
    return frame, "ML logistic (statsmodels Logit); Wald CI and p"


def _wald(names, coef: np.ndarray, se: np.ndarray, conf_level: float) -> pd.DataFrame:
    """Wald CI and two-sided p (R's ``confint.default`` and ``summary`` z tests)."""
    z = stats.norm.ppf(0.5 + conf_level / 2)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 2 * stats.norm.sf(np.abs(coef / se))
    return pd.DataFrame(
        {"coef": coef, "se": se, "lo": coef - z * se, "hi": coef + z * se, "p": p},
        index=names,
    )


def _fit_ordinal(X: pd.DataFrame, y: pd.Series, conf_level: float) -> tuple[pd.DataFrame, str]:
    if isinstance(y.dtype, pd.CategoricalDtype):
        codes = y.cat.remove_unused_categories().cat.codes.to_numpy()
    else:
        codes = np.unique(y.to_numpy(), return_inverse=True)[1].ravel()
    if codes.max() < 1:
        msg = format_message(
            "the ordinal outcome has a single level", hint="Use an outcome with 2+ grades."
        )
        raise DesignError(msg)
    fit = fit_ordinal(X.to_numpy(float), codes)
    k = X.shape[1]
    se = np.sqrt(np.diag(fit.cov)[-k:])
    frame = _wald(X.columns, fit.beta, se, conf_level)
    if not fit.converged or fit.max_abs_std_beta > 10 or not np.isfinite(se).all():
        warn(
            "associate_outcome: the ordinal model did not converge or has extreme "
            "coefficients (likely separation with this small sample): the odds ratios are "
            "unstable.",
            stacklevel=3,
        )
    return frame, "proportional-odds logistic (ML, as ordinal::clm / MASS::polr); Wald CI and p"


def _fit_cox(
    X: pd.DataFrame, time: np.ndarray, event: np.ndarray, conf_level: float
) -> tuple[pd.DataFrame, str]:
    for c in X.columns:
        v = X[c].to_numpy()
        if set(np.unique(v)) <= {0.0, 1.0}:
            ev = [event[v == lv].sum() for lv in (0.0, 1.0)]
            if min(ev) == 0:
                warn(
                    f"associate_outcome: no events in one level of {c!r} (monotone "
                    "likelihood): its hazard ratio is unstable (tends to 0 or infinity).",
                    stacklevel=3,
                )
    fit = fit_cox(X.to_numpy(float), time, event)
    frame = _wald(X.columns, fit.beta, np.sqrt(np.diag(fit.cov)), conf_level)
    return frame, "Cox proportional hazards (Efron ties, as survival::coxph); Wald CI and p"


def associate_outcome(
    table: pd.DataFrame,
    outcome: str,
    predictors: str | Sequence[str],
    kind: str = "logistic",
    *,
    duration: str | None = None,
    firth: bool | str = "auto",
    separately: bool = False,
    conf_level: float = 0.95,
) -> pd.DataFrame:
    """Odds or hazard ratios of predictors for an outcome (CRS, relapse, PFS, ...).

    Parameters
    ----------
    table
        One row per patient.
    outcome
        Outcome column: 0/1 for ``"logistic"`` (e.g. CRS any grade), ordered grades for
        ``"ordinal"`` (e.g. ``crs_grade``), the event flag for ``"cox"``.
    predictors
        Predictor column(s); numeric columns enter as they are, others as 0/1 dummies
        against their first level (categorical order, e.g. ``dose_group`` low < high).
    kind
        ``"logistic"``, ``"ordinal"`` (proportional odds, ``P(grade <= j) =
        F(theta_j - x'beta)``, as R's ``ordinal::clm`` and ``MASS::polr``) or ``"cox"``
        (Efron ties, as R's ``survival::coxph``).
    duration
        Time-to-event column, required for ``"cox"``.
    firth
        Logistic only. ``"auto"``: Firth's penalised likelihood when (quasi-)complete
        separation is detected (linear program of Konis 2007), else ML; ``True``: always
        Firth; ``False``: always ML (with a warning if separated).
    separately
        Fit one (univariable) model per predictor instead of one joint model.
    conf_level
        Confidence level.

    Returns
    -------
    pandas.DataFrame
        One row per predictor term: ``predictor, kind, estimate`` (odds ratio or hazard
        ratio), ``ci_low, ci_high, p_value, n, method`` (which fit was used), then
        ``coef`` (log scale), ``se`` and ``n_events``. Rows with a missing outcome or
        predictor are left out with a warning (``attrs["excluded"]``).

    Notes
    -----
    ML logistic, ordinal and Cox CIs and p are Wald (R's ``confint.default``; R's
    ``confint`` on a ``glm`` profiles the likelihood instead). The ordinal and Cox models
    are fitted by Newton's method with analytic gradient and Hessian on standardised
    covariates until the step is below 1e-10, SEs from the analytic Hessian, so any
    covariate scale (dose in cells/kg) is fine: coefficients and SEs equal
    ``ordinal::clm(link = "logit")`` and ``survival::coxph(ties = "efron")`` to 1e-6
    (tested with R 4.2.2, ordinal 2022.11-16, survival 3.5-3, on tied times).
    ``MASS::polr`` has the same coefficients (to its optimiser's tolerance) but SEs
    from a numerical Hessian, off by ~1e-4 relative. Firth fits give profile penalised
    likelihood CIs and penalised likelihood-ratio p-values, as R's ``logistf`` defaults.

    References
    ----------
    Firth D (1993) Biometrika 80:27–38. Heinze G, Schemper M (2002) Stat Med 21:2409–19.
    Konis K (2007) Linear programming algorithms for detecting separated data in binary
    logistic regression models. DPhil thesis, Oxford.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from olinkpipe.clinical import associate_outcome
    >>> rng = np.random.default_rng(0)
    >>> t = pd.DataFrame({"dose": rng.uniform(1, 5, 40)})
    >>> t["crs"] = (rng.uniform(size=40) < 1 / (1 + np.exp(3 - t["dose"]))).astype(int)
    >>> associate_outcome(t, "crs", "dose")[["predictor", "kind"]].values.tolist()
    [['dose', 'logistic']]
    """
    check_literal("kind", kind, ["logistic", "ordinal", "cox"])
    check_literal("firth", firth, ["auto", True, False])
    preds = _as_list(predictors)
    needed = [outcome, *preds] + ([duration] if duration else [])
    if kind == "cox" and duration is None:
        msg = "kind='cox' needs duration= (the time-to-event column)."
        raise ValidationError(msg)
    require_columns(table, needed, what="table")
    complete = table[needed].notna().all(axis=1)
    excluded: list[str] = []
    if not complete.all():
        ids = table.loc[~complete, "patient"] if "patient" in table else table.index[~complete]
        excluded = [str(i) for i in ids]
        warn(
            f"associate_outcome: left out {len(excluded)} patient(s) with a missing "
            f"outcome or predictor: {preview(excluded)}",
            stacklevel=2,
        )
    data = table.loc[complete]
    if kind == "cox":
        t = pd.to_numeric(data[duration], errors="coerce").to_numpy(float)
        if np.isnan(t).any() or (t < 0).any():
            msg = format_message("durations must be non-negative numbers", column=duration)
            raise ValidationError(msg)
        event = _binary(data[outcome], outcome)
    elif kind == "logistic":
        event = _binary(data[outcome], outcome)
    else:
        event = None
    groups = [[p] for p in preds] if separately else [preds]
    rows = []
    for group in groups:
        X = _design(data, group)
        if kind == "logistic":
            frame, method = _fit_logistic(X, event, firth, conf_level)
        elif kind == "ordinal":
            frame, method = _fit_ordinal(X, data[outcome], conf_level)
        else:
            frame, method = _fit_cox(X, t, event, conf_level)
        if separately:
            method = "univariable " + method
        with np.errstate(over="ignore"):  # separated ML fits may diverge: OR = inf
            ratio = np.exp(frame[["coef", "lo", "hi"]].to_numpy(float))
        for (term, r), (est, lo, hi) in zip(frame.iterrows(), ratio, strict=True):
            rows.append(
                {
                    "predictor": term,
                    "kind": kind,
                    "estimate": float(est),
                    "ci_low": float(lo),
                    "ci_high": float(hi),
                    "p_value": float(r["p"]),
                    "n": int(len(data)),
                    "method": method,
                    "coef": float(r["coef"]),
                    "se": float(r["se"]),
                    "n_events": int(event.sum()) if event is not None else np.nan,
                }
            )
    out = pd.DataFrame(rows)
    out.attrs = {
        "kind": kind,
        "outcome": outcome,
        "duration": duration,
        "estimate": {
            "logistic": "odds ratio",
            "ordinal": "odds ratio (higher grade)",
            "cox": "hazard ratio",
        }[kind],
        "conf_level": conf_level,
        "excluded": excluded,
    }
    return out
