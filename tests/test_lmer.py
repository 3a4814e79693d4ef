"""tl.lmer against the classical split-plot ANOVA, statsmodels MixedLM and a dense numeric
re-implementation of lmerTest's Satterthwaite recipe (finite differences, as numDeriv)."""

from __future__ import annotations

import importlib
import itertools
import warnings

import anndata as ad
import joblib
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf
from builders import TIMES, split_plot
from scipy import stats
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multitest import multipletests

import olinkpipe as op
from olinkpipe.errors import DesignError, MissingColumnError, OlinkpipeWarning

LMER_FIT = importlib.import_module("olinkpipe.tl._lmer_fit")  # its per-assay kernel

#: lmerTest rounds its type-III contrasts to 7 digits (zapsmall: 1/3 -> 0.3333333), which
#: moves the F of a term contained in another one (main effects) by ~1e-7 from the exact
#: textbook value; tl.lmer reproduces that rounding
ZAP = 1e-6


def _sum_code(values, levels):
    out = np.zeros((len(values), len(levels) - 1))
    for i, lev in enumerate(levels[:-1]):
        out[values == lev, i] = 1.0
    out[values == levels[-1]] = -1.0
    return out


def _design(obs, numeric=None):
    """[1, Group, Time(2), Group:Time(2)] sum-coded (or Group × numeric column)."""
    g = _sum_code(obs["Group"].to_numpy(), ["ctrl", "trt"])
    if numeric is None:
        other = _sum_code(obs["Time"].to_numpy(), TIMES)
        names = ["Group", "Time", "Group:Time"]
    else:
        other = obs[numeric].to_numpy(dtype=float)[:, None]
        names = ["Group", numeric, f"Group:{numeric}"]
    x = np.hstack([np.ones((len(obs), 1)), g, other, g * other])
    k = other.shape[1]
    spans = dict(zip(names, [slice(1, 2), slice(2, 2 + k), slice(2 + k, 2 + 2 * k)], strict=True))
    return x, spans


def _classical(y, obs):
    """Balanced split-plot ANOVA by hand: {term: (F, df_num, df_den, mean square)}."""
    df = obs.assign(y=y)
    n_subj, t, g = df["Subject"].nunique(), len(TIMES), 2
    grand = df["y"].mean()
    subj_mean = df.groupby("Subject")["y"].transform("mean")
    time_mean = df.groupby("Time")["y"].transform("mean")
    grp_mean = df.groupby("Group")["y"].transform("mean")
    cell_mean = df.groupby(["Group", "Time"])["y"].transform("mean")
    ss_subj_in_grp = ((subj_mean - grp_mean) ** 2).sum()
    ss_grp = ((grp_mean - grand) ** 2).sum()
    ss_time = ((time_mean - grand) ** 2).sum()
    ss_gt = ((cell_mean - grp_mean - time_mean + grand) ** 2).sum()
    ss_err = ((df["y"] - subj_mean) ** 2).sum() - ss_time - ss_gt
    df_b, df_w = n_subj - g, (n_subj - g) * (t - 1)
    ms_b, ms_w = ss_subj_in_grp / df_b, ss_err / df_w
    return {
        "Group": (ss_grp / (g - 1) / ms_b, g - 1, df_b, ss_grp / (g - 1)),
        "Time": (ss_time / (t - 1) / ms_w, t - 1, df_w, ss_time / (t - 1)),
        "Group:Time": (ss_gt / (t - 1) / ms_w, t - 1, df_w, ss_gt / (t - 1)),
    }


def _lmer(adata, variable=("Group", "Time"), **kw):
    return op.tl.lmer(adata, list(variable), "Subject", progress=False, **kw)


# --------------------------------------------------------------------------------------
# balanced: Satterthwaite = classical split-plot F tests with integer df


def test_balanced_reml_equals_split_plot_anova():
    adata = split_plot(seed=1)
    res = _lmer(adata, reml=True)
    assert res.attrs["singular_fits"] == []  # positive subject variance in every assay
    res = res.set_index(["OlinkID", "term"])
    for j, oid in enumerate(adata.var_names):
        for term, (f, df1, df2, ms) in _classical(adata.X[:, j], adata.obs).items():
            got = res.loc[(oid, term)]
            assert got["statistic"] == pytest.approx(f, rel=ZAP)
            assert got["NumDF"] == df1
            assert got["DenDF"] == pytest.approx(df2, rel=1e-8)  # 8 and 16: (n − g)(t − 1)
            assert got["p_value"] == pytest.approx(stats.f.sf(f, df1, df2), rel=ZAP)
            if term != "Group":  # within-subject terms: lmerTest's F·σ̂² is the classical MS
                assert got["meansq"] == pytest.approx(ms, rel=ZAP)
            assert got["sumsq"] == pytest.approx(got["meansq"] * df1, rel=1e-12)


def test_balanced_ml_default_scales_the_split_plot_anova():
    # olink_lmer fits by ML: σ̂² = RSS/N instead of RSS/(N − p) within each stratum, so
    # F grows by N/(N − p) and the Satterthwaite df become the stratum sizes N − G and G
    adata = split_plot(seed=2)
    res = _lmer(adata).set_index(["OlinkID", "term"])
    n_subj, n = 10, 30
    stratum = {"Group": (n_subj, 2), "Time": (n - n_subj, 4), "Group:Time": (n - n_subj, 4)}
    for j, oid in enumerate(adata.var_names):
        for term, (f, _, _, _) in _classical(adata.X[:, j], adata.obs).items():
            size, p_fixed = stratum[term]
            got = res.loc[(oid, term)]
            assert got["statistic"] == pytest.approx(f * size / (size - p_fixed), rel=ZAP)
            assert got["DenDF"] == pytest.approx(size, rel=1e-8)


def test_boundary_fit_zero_subject_variance_is_the_ols_anova():
    # subject means equal within each group: the subject variance is estimated as 0 (lme4's
    # singular fit); C then depends on σ only and lmerTest's df are the residual df
    adata = split_plot(seed=7, m=2)
    subj = adata.obs["Subject"].to_numpy()
    noise = np.random.default_rng(0).normal(size=(len(subj), 2))
    noise -= pd.DataFrame(noise).groupby(subj).transform("mean").to_numpy()
    grp = (adata.obs["Group"] == "trt").to_numpy()
    late = (adata.obs["Time"] == "T2").to_numpy()
    adata.X = 5 + noise + 0.4 * grp[:, None] + 0.7 * (grp & late)[:, None]
    n, p = 30, 6
    for reml in (True, False):
        res = _lmer(adata, reml=reml)
        assert res.attrs["singular_fits"] == ["OID00000", "OID00001"]
        res = res.set_index(["OlinkID", "term"])
        for j, oid in enumerate(adata.var_names):
            fit = smf.ols("y ~ C(Group, Sum)*C(Time, Sum)", data=adata.obs.assign(y=adata.X[:, j]))
            tab = anova_lm(fit.fit(), typ=3)
            for term in ["Group", "Time", "Group:Time"]:
                key = ":".join(f"C({t}, Sum)" for t in term.split(":"))
                got = res.loc[(oid, term)]
                scale = 1.0 if reml else (n - p) / n  # σ̂² = RSS/(N − p) or RSS/N
                assert got["statistic"] == pytest.approx(tab.loc[key, "F"] / scale, rel=ZAP)
                assert got["DenDF"] == pytest.approx(n - p if reml else n, rel=1e-8)


# --------------------------------------------------------------------------------------
# unbalanced: Wald F of a tight statsmodels fit, Satterthwaite by finite differences


def _sm_fit(y, x, groups, reml):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels' convergence notices: the reference fit
        fit = sm.MixedLM(y, x, groups=groups).fit(reml=reml, method="bfgs", gtol=1e-12)
    tau, s = float(np.asarray(fit.cov_re)[0, 0]), float(fit.scale)
    return np.asarray(fit.fe_params), tau, s


def _numeric_satterthwaite(y, x, groups, tau, s, lmat, reml):
    """lmerTest's recipe on dense matrices with central differences in (θ, σ)."""
    same = (groups[:, None] == groups[None, :]).astype(float)
    eye = np.eye(y.size)

    def cov_beta(phi):
        v = phi[1] ** 2 * (eye + phi[0] ** 2 * same)
        return np.linalg.inv(x.T @ np.linalg.solve(v, x))

    def deviance(phi):
        v = phi[1] ** 2 * (eye + phi[0] ** 2 * same)
        vi = np.linalg.inv(v)
        mmat = x.T @ vi @ x
        r = y - x @ np.linalg.solve(mmat, x.T @ vi @ y)
        dev = np.linalg.slogdet(v)[1] + r @ vi @ r
        return dev + (np.linalg.slogdet(mmat)[1] if reml else 0.0)

    phi = np.array([np.sqrt(tau / s), np.sqrt(s)])
    h = 1e-4 * phi
    e = np.diag(h)
    hess = np.array(
        [
            [
                (
                    deviance(phi + e[i] + e[k])
                    - deviance(phi + e[i] - e[k])
                    - deviance(phi - e[i] + e[k])
                    + deviance(phi - e[i] - e[k])
                )
                / (4 * h[i] * h[k])
                for k in range(2)
            ]
            for i in range(2)
        ]
    )
    jac = [(cov_beta(phi + e[i]) - cov_beta(phi - e[i])) / (2 * h[i]) for i in range(2)]
    a = 2 * np.linalg.inv(hess)
    d, p = np.linalg.eigh(lmat @ cov_beta(phi) @ lmat.T)
    ptl = p.T @ lmat
    nu = np.array(
        [
            2 * d[m] ** 2 / (g @ a @ g)
            for m in range(d.size)
            for g in [np.array([ptl[m] @ jm @ ptl[m] for jm in jac])]
        ]
    )
    if nu.size == 1:
        return nu[0]
    e_sum = np.sum(nu / (nu - 2))
    return 2 * e_sum / (e_sum - nu.size)


def _zap(a):
    """R's zapsmall(a): round to 7 significant digits of the largest |entry|."""
    mx = np.abs(a).max()
    return np.round(a, max(0, 7 - int(np.ceil(np.log10(mx))))) if mx > 0 else a


def _lmertest_type3(obs, factors):
    """lmerTest's type-III contrasts (extract_contrasts_type3) for a full factorial of
    factors, by name: treatment-coded X, rank-deficient all-level rdX, L = zap(ginv(X) rdX)',
    columns of contained terms replaced by zap(residuals on the containing terms' columns),
    rows of X's coefficients. Returns ({term: L in X's coefficients}, X)."""
    levels = {f: sorted(obs[f].unique()) for f in factors}
    terms = [c for r in range(1, len(factors) + 1) for c in itertools.combinations(factors, r)]

    def columns(term, drop_first):
        out = {"": np.ones(len(obs))}
        for f in term:
            out = {
                (name + ":" if name else "") + f"{f}[{lev}]": col * (obs[f] == lev).to_numpy()
                for name, col in out.items()
                for lev in levels[f][1 if drop_first else 0 :]
            }
        return out

    xcols, rdcols, owner = {"(Intercept)": np.ones(len(obs))}, {"(Intercept)": None}, {}
    for term in terms:
        for drop, target in [(True, xcols), (False, rdcols)]:
            for name, col in columns(term, drop).items():
                target[name] = col
                owner[name] = term
    rdcols["(Intercept)"] = np.ones(len(obs))
    x = np.column_stack(list(xcols.values()))
    rdx = np.column_stack(list(rdcols.values()))
    lmat = pd.DataFrame(_zap(np.linalg.pinv(x) @ rdx).T, index=list(rdcols), columns=list(xcols))
    for term in sorted(terms, key=len, reverse=True):
        mine = [c for c in xcols if owner.get(c) == term]
        over = [c for c in xcols if c in owner and set(term) < set(owner[c])]
        if over:
            z = lmat[over].to_numpy()
            yy = lmat[mine].to_numpy()
            lmat[mine] = _zap(yy - z @ np.linalg.pinv(z) @ yy)
    lmat = lmat.loc[list(xcols)]
    out = {}
    for term in terms:
        lt = lmat[[c for c in xcols if owner.get(c) == term]].to_numpy().T
        out[":".join(term)] = lt[np.abs(lt).sum(axis=1) > 1e-8]
    return out, x


def test_lmertest_type3_contrasts_of_a_2x3_design():
    # show_tests(anova(lmer(y ~ Group * Time + (1|Subject)), type = 3)) in treatment coding:
    # Group is averaged over the three times (1/3 rounded to 7 digits), Time over the groups
    obs = split_plot(n_subj=4, m=1).obs
    lt, _ = _lmertest_type3(obs, ["Group", "Time"])
    np.testing.assert_array_equal(lt["Group"], [[0, 1, 0, 0, 0.3333333, 0.3333333]])
    np.testing.assert_array_equal(lt["Time"], [[0, 0, 1, 0, 0.5, 0], [0, 0, 0, 1, 0, 0.5]])
    np.testing.assert_array_equal(lt["Group:Time"], np.eye(6)[4:])


@pytest.mark.parametrize("reml", [True, False], ids=["reml", "ml"])
@pytest.mark.parametrize("numeric", [None, "score"], ids=["factorial", "factor_x_numeric"])
def test_unbalanced_matches_statsmodels_wald_and_numeric_satterthwaite(reml, numeric):
    # lmerTest's F ddf depends on the rows of L, not only on the hypothesis they span: the
    # numeric recipe gets lmerTest's own type-III L (mapped to the sum-coded coefficients)
    adata = split_plot(n_subj=12, m=2, seed=3, nan_frac=0.2)
    variable = ("Group", "Time") if numeric is None else ("Group", numeric)
    res = _lmer(adata, variable=variable, reml=reml).set_index(["OlinkID", "term"])
    x_all, spans = _design(adata.obs, numeric)
    if numeric is None:
        lt, x_trt = _lmertest_type3(adata.obs, ["Group", "Time"])
        to_sum = _zap(np.linalg.pinv(x_trt) @ x_all)  # β_trt = M β_sum
        lmats = {term: lt[term] @ to_sum for term in spans}
    else:  # 1-df terms: the coefficient itself (Group at score = 0, as lmerTest)
        lmats = {term: np.eye(x_all.shape[1])[sl] for term, sl in spans.items()}
    groups = adata.obs["Subject"].to_numpy()
    for j, oid in enumerate(adata.var_names):
        ok = ~np.isnan(adata.X[:, j])
        y, x, grp = adata.X[ok, j], x_all[ok], groups[ok]
        beta, tau, s = _sm_fit(y, x, grp, reml)
        assert tau > 0
        v = s * np.eye(y.size) + tau * (grp[:, None] == grp[None, :])
        cov = np.linalg.inv(x.T @ np.linalg.solve(v, x))  # lmerTest's vcov(model)
        for term, lmat in lmats.items():
            lb = lmat @ beta
            f = lb @ np.linalg.solve(lmat @ cov @ lmat.T, lb) / lb.size
            got = res.loc[(oid, term)]
            assert got["n"] == ok.sum()
            assert got["NumDF"] == lb.size
            assert got["statistic"] == pytest.approx(f, rel=1e-6)
            assert got["meansq"] == pytest.approx(f * s, rel=1e-6)
            ddf = _numeric_satterthwaite(y, x, grp, tau, s, lmat, reml)
            assert got["DenDF"] == pytest.approx(ddf, rel=1e-6)
            assert abs(got["DenDF"] - round(got["DenDF"])) > 1e-5  # not an integer
            # between the subject-level df (close to it for the between-subject Group)
            # and the residual df of all samples (within-subject terms)
            n_subj, p = np.unique(grp).size, x.shape[1]
            between = n_subj - (2 if reml else 0)  # G − (intercept, Group) with REML
            if term == "Group":
                assert abs(got["DenDF"] - between) < 0.5
            else:
                assert between + 1 < got["DenDF"] < y.size - p
            assert got["p_value"] == pytest.approx(
                stats.f.sf(got["statistic"], got["NumDF"], got["DenDF"]), rel=1e-12
            )


# --------------------------------------------------------------------------------------
# robustness: θ without a cap, offset and scale of NPX, the deviance Hessian


def _by_row(res):
    return res.set_index(["OlinkID", "term"]).sort_index()


def test_huge_subject_variance_is_fitted_without_a_cap():
    # between-subject SD 1e5 times the residual SD (θ ≈ 1e5): still the split-plot ANOVA
    adata = split_plot(seed=8, m=2, subj_sd=6e4)
    res = _lmer(adata, reml=True)
    assert (res["reason"] == "").all() and res.attrs["hessian_dropped"] == []
    res = _by_row(res)
    for j, oid in enumerate(adata.var_names):
        for term, (f, _, df2, _) in _classical(adata.X[:, j], adata.obs).items():
            got = res.loc[(oid, term)]
            assert got["statistic"] == pytest.approx(f, rel=ZAP)
            assert got["DenDF"] == pytest.approx(df2, rel=1e-6)


def test_a_fit_that_does_not_converge_says_so(monkeypatch):
    adata = split_plot(seed=8, m=2, subj_sd=6e4)
    monkeypatch.setattr(LMER_FIT, "_LOG_THETA_MAX", np.log(1e3))  # the optimum is out of reach
    with pytest.warns(OlinkpipeWarning, match="2 assay"):
        res = _lmer(adata)
    assert res["reason"].str.startswith("fit not converged: subject variance grows").all()
    assert res[["statistic", "DenDF"]].isna().all().all()


def test_npx_offset_and_scale_leave_f_and_dendf_unchanged():
    adata = split_plot(n_subj=12, m=3, seed=3, nan_frac=0.15)
    ref = _by_row(_lmer(adata))
    for shift, factor, rel in [(1e6, 1.0, 1e-9), (0.0, 1e6, 1e-8), (0.0, 1e150, 1e-8)]:
        moved = adata.copy()
        moved.X = adata.X * factor + shift
        got = _by_row(_lmer(moved))  # NPX × 1e150 used to raise OverflowError
        assert (got["reason"] == "").all()
        np.testing.assert_allclose(got["statistic"], ref["statistic"], rtol=rel)
        np.testing.assert_allclose(got["DenDF"], ref["DenDF"], rtol=rel)
        np.testing.assert_allclose(got["meansq"], ref["meansq"] * factor**2, rtol=rel)


def test_dropped_hessian_eigenvalues_are_reported(monkeypatch):
    adata = split_plot(n_subj=12, m=2, seed=3, nan_frac=0.15)
    ref = _by_row(_lmer(adata))
    assert ref.attrs["hessian_dropped"] == []
    # a cut-off that drops the smaller eigenvalue of the (scaled) Hessian in every assay
    monkeypatch.setattr(LMER_FIT, "_HESS_RTOL", 0.999)
    with pytest.warns(OlinkpipeWarning, match="2 assay.*near-singular deviance Hessian"):
        res = _lmer(adata)
    assert res.attrs["hessian_dropped"] == ["OID00000", "OID00001"]
    assert (res["reason"] == "").all() and res["DenDF"].notna().all()
    assert not np.allclose(_by_row(res)["DenDF"], ref["DenDF"], rtol=1e-3)


# --------------------------------------------------------------------------------------
# bookkeeping: BH, covariates, assays that cannot be fitted, errors, workers


def test_bh_pools_all_variable_rows_and_covariate_rows_are_reported_apart():
    adata = split_plot(seed=4, m=5, nan_frac=0.05)
    res = _lmer(adata, covariates="age")
    assert set(res["term"]) == {"Group", "Time", "Group:Time", "age"}
    assert res.attrs["formula"] == "NPX ~ Group*Time + age + (1|Subject)"
    var_rows = res[res["term"] != "age"]
    np.testing.assert_allclose(
        var_rows["p_adj"], multipletests(var_rows["p_value"], method="fdr_bh")[1], atol=1e-12
    )
    assert res.loc[res["term"] == "age", "p_adj"].isna().all()
    assert not res.loc[res["term"] == "age", "significant"].any()
    assert (res["significant"] == (res["p_adj"].fillna(1.0) < 0.05)).all()
    assert res["p_value"].is_monotonic_increasing
    assert list(res.columns[:5]) == ["OlinkID", "Assay", "UniProt", "Panel", "term"]
    # the covariate's F is the Wald F of its coefficient
    x, _ = _design(adata.obs)
    x = np.column_stack([x, adata.obs["age"].to_numpy()])
    ok = ~np.isnan(adata.X[:, 0])
    grp = adata.obs["Subject"].to_numpy()[ok]
    beta, tau, s = _sm_fit(adata.X[ok, 0], x[ok], grp, reml=False)
    v = s * np.eye(ok.sum()) + tau * (grp[:, None] == grp[None, :])
    cov = np.linalg.inv(x[ok].T @ np.linalg.solve(v, x[ok]))
    got = res.set_index(["OlinkID", "term"]).loc[(adata.var_names[0], "age"), "statistic"]
    assert got == pytest.approx(beta[-1] ** 2 / cov[-1, -1], rel=1e-6)


def test_assays_that_cannot_be_fitted_keep_rows_with_a_reason():
    adata = split_plot(seed=5, m=7)
    x = adata.X.copy()
    x[(adata.obs["Time"] == "T2").to_numpy(), 1] = np.nan  # a level without data
    x[:, 2] = np.nan  # nothing measured
    once = np.zeros(len(x), dtype=bool)
    once[[0, 4, 8, 9, 13, 17]] = True  # six subjects, one sample each, every cell present
    x[~once, 3] = np.nan
    x[:, 4] = 7.0  # constant
    cell = ((adata.obs["Group"] == "trt") & (adata.obs["Time"] == "T1")).to_numpy()
    x[cell, 5] = np.nan  # an empty Group × Time cell (olink_lmer / lmerTest do test it)
    x[3, 6] = np.inf
    adata.X = x
    with pytest.warns(OlinkpipeWarning, match="6 assay"):
        res = _lmer(adata)
    assert len(res) == 7 * 3  # nothing dropped
    bad = res[res["OlinkID"] != "OID00000"]
    assert bad[["statistic", "DenDF", "p_value", "p_adj"]].isna().all().all()
    assert (bad["reason"] != "").all()
    assert (res.loc[res["OlinkID"] == "OID00000", "reason"] == "").all()
    reason = res.groupby("OlinkID")["reason"].first()
    assert "'T2'" in reason["OID00001"] and "'Time'" in reason["OID00001"]
    assert reason["OID00002"] == "all values missing"
    assert "too few" in reason["OID00003"]
    assert "no within-subject variation" in reason["OID00004"]
    assert "Group×Time cell ('trt', 'T1')" in reason["OID00005"]
    assert "Missing cells" in reason["OID00005"]  # says that lmerTest would test it
    assert "infinite" in reason["OID00006"]
    assert res.attrs["untested_assays"] == [f"OID0000{i}" for i in range(1, 7)]
    assert res.attrs["n_tested"] == 1
    assert res.groupby("OlinkID")["n"].first().tolist() == [30, 20, 0, 6, 30, 25, 30]
    good = res[res["OlinkID"] == "OID00000"]
    np.testing.assert_allclose(
        good["p_adj"], multipletests(good["p_value"], method="fdr_bh")[1], atol=1e-12
    )


def test_any_failure_inside_a_fit_becomes_the_assays_reason(monkeypatch):
    adata = split_plot(seed=5, m=2)

    def boom(st, *, reml):
        raise OverflowError("(34, 'Numerical result out of range')")

    monkeypatch.setattr(LMER_FIT, "_optimum", boom)
    with pytest.warns(OlinkpipeWarning, match="2 assay"):
        res = _lmer(adata)
    assert (
        res["reason"] == "fit failed: OverflowError: (34, 'Numerical result out of range')"
    ).all()
    assert res["statistic"].isna().all()


def test_control_samples_are_left_out_and_parallel_workers_agree():
    adata = split_plot(seed=6, m=3)
    ref = _lmer(adata)
    obs = adata.obs.copy()
    obs["is_control"] = obs["is_control"].astype(bool)
    extra = ad.AnnData(
        np.full((1, 3), 99.0),
        obs=pd.DataFrame({"is_control": [True]}, index=["CTRL"]),
        var=adata.var,
    )
    both = ad.concat([adata, extra], join="outer", merge="same")
    with pytest.warns(OlinkpipeWarning, match="control"):
        res = _lmer(both)
    assert res.attrs["excluded_samples"] == ["CTRL"]
    pd.testing.assert_frame_equal(res, ref, check_exact=False, rtol=1e-12)
    with joblib.parallel_config(backend="threading"):
        par = _lmer(adata, n_jobs=2)
    pd.testing.assert_frame_equal(par, ref)


def test_errors_name_the_problem():
    adata = split_plot(m=2)
    with pytest.raises(MissingColumnError, match="Visit"):
        op.tl.lmer(adata, ["Group", "Visit"], "Subject", progress=False)
    with pytest.raises(MissingColumnError, match="Patient"):
        op.tl.lmer(adata, "Time", "Patient", progress=False)
    adata.obs["Site"] = "A"
    with pytest.raises(DesignError, match="fewer than two levels"):
        op.tl.lmer(adata, ["Time", "Site"], "Subject", progress=False)
    with pytest.raises(DesignError, match="random effect and a fixed effect"):
        op.tl.lmer(adata, ["Time", "Subject"], "Subject", progress=False)
    with pytest.raises(DesignError, match="variable is empty"):
        op.tl.lmer(adata, [], "Subject", progress=False)


# --------------------------------------------------------------------------------------
# lmer_posthoc: emmeans pairwise contrasts (olink_lmer_posthoc)


def _posthoc(adata, effect, **kw):
    return op.tl.lmer_posthoc(
        adata, ["Group", "Time"], "Subject", effect=effect, progress=False, **kw
    )


def _split_plot_ms(y, obs):
    """Between- and within-subject mean squares of the balanced split plot (df 8, 16)."""
    df = obs.assign(y=y)
    subj = df.groupby("Subject")["y"].transform("mean")
    grp = df.groupby("Group")["y"].transform("mean")
    cell = df.groupby(["Group", "Time"])["y"].transform("mean")
    ss_b = ((subj - grp) ** 2).sum()
    ss_w = ((df["y"] - subj - cell + grp) ** 2).sum()
    return ss_b / 8, ss_w / 16


def test_posthoc_balanced_split_plot_contrasts_are_the_classical_ones():
    # REML in a balanced split plot: cell-mean differences, SE and df of the two strata
    adata = split_plot(seed=4)
    obs = adata.obs
    res = _posthoc(adata, ["Group", "Time"], reml=True)
    cells = [f"{g} {t}" for t in TIMES for g in ["ctrl", "trt"]]  # first factor fastest
    pairs = [f"{a} - {b}" for a, b in itertools.combinations(cells, 2)]
    assert res["contrast"].tolist() == pairs * 3
    assert (res["term"] == "Group:Time").all() and (res["n"] == 30).all()
    r, t = 5, len(TIMES)  # subjects per group, times
    for j, oid in enumerate(adata.var_names):
        y = adata.X[:, j]
        means = pd.Series(y).groupby((obs["Group"] + " " + obs["Time"]).to_numpy()).mean()
        ms_b, ms_w = _split_plot_ms(y, obs)
        sub = res[res["OlinkID"] == oid]
        for _, row in sub.iterrows():
            a, b = row["contrast"].split(" - ")
            assert row["estimate"] == pytest.approx(means[a] - means[b], abs=1e-9)
            se = row["estimate"] / row["statistic"]
            if a.split()[0] == b.split()[0]:  # same group: within-subject stratum
                assert se == pytest.approx(np.sqrt(2 * ms_w / r), rel=1e-6)
                assert row["df"] == pytest.approx(16, rel=1e-6)
            else:  # different subjects: σ² + σ_b² = (MS_b + (t − 1) MS_w) / t
                comb = (ms_b + (t - 1) * ms_w) / t
                assert se == pytest.approx(np.sqrt(2 * comb / r), rel=1e-6)
                sat = comb**2 / ((ms_b / t) ** 2 / 8 + ((t - 1) * ms_w / t) ** 2 / 16)
                assert row["df"] == pytest.approx(sat, rel=1e-6)
    # marginal means of one factor: averaged over the other; Group is tested by MS_b
    grp = _posthoc(adata, "Group", reml=True)
    assert grp["contrast"].tolist() == ["ctrl - trt"] * 3
    for j in range(3):
        y = adata.X[:, j]
        ms_b, _ = _split_plot_ms(y, obs)
        m = pd.Series(y).groupby(obs["Group"].to_numpy()).mean()
        row = grp.iloc[j]
        assert row["estimate"] == pytest.approx(m["ctrl"] - m["trt"], abs=1e-9)
        assert row["estimate"] / row["statistic"] == pytest.approx(
            np.sqrt(2 * ms_b / (t * r)), rel=1e-6
        )
        assert row["df"] == pytest.approx(8, rel=1e-6)
    means = _posthoc(adata, "Time", mean_return=True, reml=True)
    assert means["Time"].tolist() == TIMES * 3
    cell = pd.Series(adata.X[:, 0]).groupby(obs["Time"].to_numpy()).mean()
    np.testing.assert_allclose(means["emmean"][:3], cell[TIMES], atol=1e-9)


def test_posthoc_tukey_p_and_intervals_use_the_studentized_range():
    adata = split_plot(seed=5)
    for effect, k in [(["Group", "Time"], 6), ("Time", 3)]:
        res = _posthoc(adata, effect)
        q = np.abs(res["statistic"]) * np.sqrt(2)
        p = stats.studentized_range.sf(q, k, res["df"])
        np.testing.assert_allclose(res["p_adj"], p, rtol=1e-12)
        se = res["estimate"] / res["statistic"]
        half = stats.studentized_range.ppf(0.95, k, res["df"]) / np.sqrt(2) * se
        np.testing.assert_allclose(res["ci_high"] - res["estimate"], half, rtol=1e-9)
        np.testing.assert_allclose(res["estimate"] - res["ci_low"], half, rtol=1e-9)
        assert (res["significant"] == (res["p_adj"] < 0.05)).all()
    none = _posthoc(adata, "Time", p_adjust="none")
    np.testing.assert_allclose(
        none["p_adj"], 2 * stats.t.sf(np.abs(none["statistic"]), none["df"]), rtol=1e-12
    )


def test_posthoc_unbalanced_ml_df_is_the_numeric_satterthwaite():
    # ML fit (olink_lmer_posthoc), missing values: SE from statsmodels' fit, df by finite
    # differences of lmerTest's recipe for the 1-row contrast of two cell means
    adata = split_plot(n_subj=12, m=2, seed=3, nan_frac=0.2)
    res = _posthoc(adata, ["Group", "Time"])
    x_all, _ = _design(adata.obs)
    label = (adata.obs["Group"] + " " + adata.obs["Time"]).to_numpy()
    groups = adata.obs["Subject"].to_numpy()
    for j, oid in enumerate(adata.var_names):
        ok = ~np.isnan(adata.X[:, j])
        y, x, grp = adata.X[ok, j], x_all[ok], groups[ok]
        beta, tau, s = _sm_fit(y, x, grp, False)
        v = s * np.eye(y.size) + tau * (grp[:, None] == grp[None, :])
        cov = np.linalg.inv(x.T @ np.linalg.solve(v, x))
        for _, row in res[res["OlinkID"] == oid].iloc[[0, 4, 9, 14]].iterrows():
            a, b = row["contrast"].split(" - ")
            c = x_all[label == a][0] - x_all[label == b][0]
            assert row["estimate"] == pytest.approx(c @ beta, abs=1e-6)
            se = row["estimate"] / row["statistic"]
            assert se == pytest.approx(np.sqrt(c @ cov @ c), rel=1e-6)
            ddf = _numeric_satterthwaite(y, x, grp, tau, s, c[None, :], False)
            assert row["df"] == pytest.approx(ddf, rel=1e-6)
            assert row["n"] == ok.sum()


def test_posthoc_errors_name_the_problem():
    adata = split_plot(m=2)
    with pytest.raises(DesignError, match="not among variable"):
        _posthoc(adata, "Site")
    with pytest.raises(DesignError, match="assays not found"):
        _posthoc(adata, "Time", assays=["OID00000", "OID99999"])
    with pytest.raises(DesignError, match="p_adjust"):
        _posthoc(adata, "Time", p_adjust="holm")
    with pytest.raises(DesignError, match="numeric"):
        op.tl.lmer_posthoc(adata, ["Group", "score"], "Subject", effect="score", progress=False)
    one = _posthoc(adata, "Time", assays=["OID00001"])
    assert set(one["OlinkID"]) == {"OID00001"}
