"""Moderated t (limma-style) against a hand-worked empirical-Bayes computation and OLS fits."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import optimize, special, stats

import olinkpipe as op
from olinkpipe.errors import OlinkpipeWarning
from olinkpipe.tl._limma import fit_f_dist, trigamma_inverse

TOL = 1e-10


def _hand_prior(s2, df):
    """Smyth (2004) section 6.2 moment estimates, written out step by step."""
    e = np.log(s2) - special.digamma(df / 2) + np.log(df / 2)
    emean = e.mean()
    evar = e.var(ddof=1) - special.polygamma(1, df / 2).mean()
    assert evar > 0
    half_d0 = optimize.brentq(lambda y: special.polygamma(1, y) - evar, 1e-8, 1e8, xtol=1e-14)
    d0 = 2 * half_d0
    s0 = np.exp(emean + special.digamma(d0 / 2) - np.log(d0 / 2))
    return s0, d0


def test_trigamma_inverse_solves_trigamma():
    x = np.array([1e-3, 0.05, 0.7, 3.0, 50.0])
    y = trigamma_inverse(x)
    np.testing.assert_allclose(special.polygamma(1, y), x, rtol=1e-8)


def _paired_adata(seed=0, n_pairs=8, m=12, nan_cells=()):
    rng = np.random.default_rng(seed)
    obs = pd.DataFrame(
        {
            "Subject": np.repeat([f"P{i}" for i in range(n_pairs)], 2),
            "Time": ["Pre", "Post"] * n_pairs,
            "dose": rng.normal(size=2 * n_pairs),
        },
        index=[f"S{i}" for i in range(2 * n_pairs)],
    )
    sd = rng.uniform(0.3, 1.5, m)
    x = rng.normal(5, 1, (2 * n_pairs, m)) + rng.normal(0, 1, (2 * n_pairs, m)) * sd
    x[1::2] += rng.normal(0, 0.5, m)
    for i, j in nan_cells:
        x[i, j] = np.nan
    var = pd.DataFrame(index=pd.Index([f"OID{j}" for j in range(m)], name="OlinkID"))
    return ad.AnnData(x, obs=obs, var=var)


def test_paired_moderated_matches_hand_worked_example():
    # one missing value (sample 0 = pair P0 Pre, assay 3): that assay has 7 pairs, df 6
    adata = _paired_adata(nan_cells=[(0, 3)])
    res = op.tl.differential(
        adata, groupby="Time", reference="Pre", pair="Subject", method="moderated"
    ).set_index("OlinkID")
    d = adata.X[1::2] - adata.X[0::2]  # Post - Pre per pair
    n = (~np.isnan(d)).sum(axis=0)
    mean = np.nanmean(d, axis=0)
    s2 = np.nanvar(d, axis=0, ddof=1)
    df = n - 1.0
    s0, d0 = _hand_prior(s2, df)
    assert res.attrs["df_prior"] == pytest.approx(d0, rel=1e-9)
    assert res.attrs["s2_prior"] == pytest.approx(s0 / 2, rel=1e-9)  # limma: sigma^2 scale
    post = (d0 * s0 + df * s2) / (d0 + df)
    t = mean / np.sqrt(post / n)
    df_tot = np.minimum(df + d0, df.sum())
    p = 2 * stats.t.sf(np.abs(t), df_tot)
    r = res.loc[adata.var_names]
    np.testing.assert_allclose(r["estimate"], mean, atol=TOL)
    np.testing.assert_allclose(r["statistic"], t, atol=1e-9)
    np.testing.assert_allclose(r["df"], df_tot, atol=1e-8)
    np.testing.assert_allclose(r["p_value"], p, atol=1e-10)
    half = stats.t.ppf(0.975, df_tot) * np.sqrt(post / n)
    np.testing.assert_allclose(r["ci_high"] - r["ci_low"], 2 * half, atol=1e-9)
    assert r.loc["OID3", "n"] == 7


def test_paired_model_equals_pair_plus_group_ols_with_missing_values():
    """The within-pair form gives the coefficient and residual df of y ~ pair + group."""
    adata = _paired_adata(seed=4, nan_cells=[(0, 2), (5, 2), (7, 9)])
    res = op.tl.differential(
        adata,
        groupby="Time",
        reference="Pre",
        pair="Subject",
        method="moderated",
        covariates=["dose"],
    )
    res = res.set_index("OlinkID")
    obs = adata.obs
    resid_df, s2 = [], []
    for j, oid in enumerate(adata.var_names):
        y = adata.X[:, j]
        ok = ~np.isnan(y)
        design = pd.get_dummies(obs["Subject"], drop_first=True, dtype=float)
        design["post"] = obs["Time"].eq("Post").astype(float)
        design["dose"] = obs["dose"]
        design = sm.add_constant(design)[ok]
        # drop pair dummies that are all zero or fit a lone sample: OLS handles it via rank
        fit = sm.OLS(y[ok], design).fit()
        rank = np.linalg.matrix_rank(design.to_numpy())
        assert res.loc[oid, "estimate"] == pytest.approx(fit.params["post"], abs=1e-9)
        resid_df.append(ok.sum() - rank)
        s2.append(np.sum(fit.resid**2) / (ok.sum() - rank))
    # the prior of the residual variances of y ~ pair + group (+ dose), as limma reports it
    s0, d0 = _hand_prior(np.array(s2), np.array(resid_df, dtype=float))
    assert res.attrs["df_prior"] == pytest.approx(d0, rel=1e-8)
    assert res.attrs["s2_prior"] == pytest.approx(s0, rel=1e-8)


def test_unpaired_moderated_with_covariate_matches_ols_then_hand_ebayes():
    rng = np.random.default_rng(8)
    n, m = 20, 15
    obs = pd.DataFrame(
        {
            "g": np.repeat(["ctrl", "case"], n // 2),
            "age": rng.normal(50, 9, n),
            "sex": np.resize(["F", "M", "M"], n),
        },
        index=[f"S{i}" for i in range(n)],
    )
    x = rng.normal(size=(n, m)) * rng.uniform(0.5, 2, m)
    x[rng.random(x.shape) < 0.05] = np.nan
    adata = ad.AnnData(x, obs=obs)
    res = op.tl.differential(
        adata, groupby="g", reference="ctrl", method="moderated", covariates=["age", "sex"]
    ).set_index("OlinkID")
    coefs, unscaled, s2, dfs = [], [], [], []
    for j in range(m):
        ok = ~np.isnan(x[:, j])
        z = np.column_stack([np.ones(n), obs["g"].eq("case"), obs["age"], obs["sex"].eq("M")])
        fit = sm.OLS(x[ok, j], z[ok].astype(float)).fit()
        coefs.append(fit.params[1])
        unscaled.append(fit.bse[1] / np.sqrt(fit.scale))
        s2.append(fit.scale)
        dfs.append(fit.df_resid)
    coefs, unscaled, s2, dfs = map(np.asarray, (coefs, unscaled, s2, dfs))
    s0, d0 = _hand_prior(s2, dfs)
    post = (d0 * s0 + dfs * s2) / (d0 + dfs)
    t = coefs / (np.sqrt(post) * unscaled)
    r = res.loc[adata.var_names]
    np.testing.assert_allclose(r["estimate"], coefs, atol=1e-10)
    np.testing.assert_allclose(r["statistic"], t, atol=1e-9)
    np.testing.assert_allclose(r["p_value"], 2 * stats.t.sf(np.abs(t), dfs + d0), atol=1e-10)


def test_fit_f_dist_infinite_prior_df_when_variances_agree():
    # identical variances: the sample variance of log s2 is 0 < mean trigamma -> d0 = inf
    s0, d0 = fit_f_dist(np.full(10, 2.0), np.full(10, 5.0))
    assert np.isinf(d0)
    e = np.log(2.0) - special.digamma(2.5) + np.log(2.5)
    assert s0 == pytest.approx(np.exp(e))


def test_subject_level_covariate_is_absorbed_and_reported():
    adata = _paired_adata(seed=2)
    adata.obs["site"] = np.repeat(["X", "Y"], adata.n_obs // 2)  # constant within each pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        res = op.tl.differential(
            adata,
            groupby="Time",
            reference="Pre",
            pair="Subject",
            method="moderated",
            covariates=["site"],
        )
    plain = op.tl.differential(
        adata, groupby="Time", reference="Pre", pair="Subject", method="moderated"
    )
    assert res.attrs["covariates_absorbed_by_pair"] == ["site[Y]"]
    pd.testing.assert_series_equal(res["statistic"], plain["statistic"])


def test_unpaired_moderated_without_covariates_is_pooled_variance_ebayes():
    rng = np.random.default_rng(21)
    n, m = 16, 10
    obs = pd.DataFrame({"g": np.resize(["a", "b"], n)}, index=[f"S{i}" for i in range(n)])
    x = rng.normal(size=(n, m)) * rng.uniform(0.5, 2, m)
    x[3, 2] = np.nan
    adata = ad.AnnData(x, obs=obs)
    res = op.tl.differential(adata, groupby="g", reference="a", method="moderated")
    res = res.set_index("OlinkID").loc[adata.var_names]
    isb = obs["g"].eq("b").to_numpy()
    coef, s2, df, unscaled = [], [], [], []
    for j in range(m):
        xb, xa = x[isb, j], x[~isb, j]
        xb, xa = xb[~np.isnan(xb)], xa[~np.isnan(xa)]
        coef.append(xb.mean() - xa.mean())
        d = xb.size + xa.size - 2.0
        s2.append((((xb - xb.mean()) ** 2).sum() + ((xa - xa.mean()) ** 2).sum()) / d)
        df.append(d)
        unscaled.append(np.sqrt(1 / xb.size + 1 / xa.size))
    coef, s2, df, unscaled = map(np.asarray, (coef, s2, df, unscaled))
    s0, d0 = _hand_prior(s2, df)
    t = coef / (np.sqrt((d0 * s0 + df * s2) / (d0 + df)) * unscaled)
    np.testing.assert_allclose(res["statistic"], t, atol=1e-9)
    np.testing.assert_allclose(res["df"], np.minimum(df + d0, df.sum()), atol=1e-8)


# R 4.2.2, limma 3.54.1, the table below as CSV (Subject, Time, y0..y7):
#   design <- model.matrix(~ Subject + factor(Time, levels = c("Pre", "Post")))
#   fit <- eBayes(lmFit(t(y), design)); fit$s2.prior; fit$df.prior
#   topTable(fit, coef = 8, number = Inf, sort.by = "none", confint = TRUE)
_PAIRED_X = np.array([
    [4.359, 7.579, 5.515, 5.508, 5.394, 6.587, 6.408, 4.236],
    [7.718, 6.843, 5.112, 5.09, 7.715, 7.359, 8.398, 4.837],
    [5.635, 5.337, 5.427, 4.482, 7.777, 6.224, 9.196, 5.068],
    [8.31, 6.859, 5.945, 6.596, 6.636, 5.985, 8.608, 4.669],
    [4.289, 6.25, 5.06, 4.454, 9.065, 5.942, 5.299, 2.593],
    [8.008, 8.132, 6.009, 7.44, 10.611, 8.422, 10.719, 5.394],
    [6.121, 6.025, 5.821, 5.865, 5.906, 6.422, 9.493, 3.47],
    [5.17, 6.903, 6.773, 5.857, 7.829, 9.513, 5.686, 4.338],
    [5.684, 8.057, 5.838, 3.804, 10.4, 6.908, 8.686, 3.315],
    [8.463, 6.707, 6.495, 5.67, 8.353, 7.898, 6.043, 4.216],
    [5.596, 5.45, 5.002, 5.984, 6.953, 6.915, 9.118, 4.97],
    [6.63, 6.94, 6.144, 4.672, 9.485, 10.634, 8.346, 5.532],
    [5.336, 6.85, 4.024, 4.738, 4.451, 7.332, 7.773, 4.171],
    [7.758, 6.72, 5.592, 5.12, 9.633, 8.436, 9.229, 3.758],
])  # fmt: skip
_R_S2_PRIOR, _R_DF_PRIOR = 1.0138827719954424, 4.4159874285200900
_R_PAIRED = np.array([  # logFC, CI.L, CI.R, t, P.Value
    [2.14814285714285580, 0.86390234996565862, 3.4323833643200530, 3.70691928243927027, 0.0037909218741383043],
    [0.50800000000000045, -0.60463732281860683, 1.6206373228186077, 1.01182736828118158, 0.3345477605343404326],
    [0.76900000000000057, -0.10139832643298785, 1.6393983264329890, 1.95796365741194456, 0.0775487858623642307],
    [0.80142857142857082, -0.45317288938485711, 2.0560300322419987, 1.41564828218550720, 0.1860773273662658656],
    [1.47371428571428509, -0.24751958189662115, 3.1949481533251913, 1.89744739603555823, 0.0858130823520883157],
    [1.70242857142857007, 0.51154688514242808, 2.8933102577147123, 3.16808347843855742, 0.0095430375185977176],
    [0.15085714285714225, -1.96832995387952536, 2.2700442395938101, 0.15775855190226593, 0.8776636062440983377],
    [0.70299999999999985, -0.33230882752030344, 1.7383088275203031, 1.50481025409424429, 0.1620779596506893849],
])  # fmt: skip


def test_paired_moderated_prior_and_statistics_as_limma():
    n_pairs = _PAIRED_X.shape[0] // 2
    obs = pd.DataFrame(
        {
            "Subject": np.repeat([f"P{i}" for i in range(n_pairs)], 2),
            "Time": ["Pre", "Post"] * n_pairs,
        },
        index=[f"S{i}" for i in range(2 * n_pairs)],
    )
    var = pd.DataFrame(index=pd.Index([f"y{j}" for j in range(8)], name="OlinkID"))
    adata = ad.AnnData(_PAIRED_X.copy(), obs=obs, var=var)
    res = op.tl.differential(
        adata, groupby="Time", reference="Pre", pair="Subject", method="moderated"
    )
    assert abs(res.attrs["s2_prior"] - _R_S2_PRIOR) <= 1e-10 * _R_S2_PRIOR
    assert abs(res.attrs["df_prior"] - _R_DF_PRIOR) <= 1e-8 * _R_DF_PRIOR
    r = res.set_index("OlinkID").loc[adata.var_names]
    got = r[["estimate", "ci_low", "ci_high", "statistic", "p_value"]].to_numpy()
    np.testing.assert_allclose(got, _R_PAIRED, rtol=0, atol=1e-8)
