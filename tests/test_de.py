"""tl.differential against independent per-assay references (scipy, statsmodels, enumeration)."""

from __future__ import annotations

import itertools
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from builders import make_study
from scipy import stats
from statsmodels.stats.multitest import multipletests

import olinkpipe as op
from olinkpipe.errors import DesignError, MissingColumnError, OlinkpipeWarning

TOL = 1e-10


def _pairs(adata):
    obs = adata.obs[~adata.obs["is_control"]]
    good = [s for s, g in obs.groupby("Subject") if sorted(g["Time"]) == ["Baseline", "Week.6"]]
    rb = [
        adata.obs_names.get_loc(obs.index[(obs.Subject == s) & (obs.Time == "Baseline")][0])
        for s in good
    ]
    rw = [
        adata.obs_names.get_loc(obs.index[(obs.Subject == s) & (obs.Time == "Week.6")][0])
        for s in good
    ]
    return np.array(rb), np.array(rw)


def _run(adata, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return op.tl.differential(adata, groupby="Time", reference="Baseline", **kw)


def _by_id(res):
    return res.set_index("OlinkID")


def _check_bh(res):
    p = res["p_value"].to_numpy()
    ok = ~np.isnan(p)
    exp = multipletests(p[ok], method="fdr_bh")[1]
    np.testing.assert_allclose(res["p_adj"].to_numpy()[ok], exp, rtol=0, atol=TOL)
    assert res["p_adj"][~ok].isna().all()
    assert (res["significant"] == (res["p_adj"].fillna(1) < 0.05)).all()


def test_paired_ttest_matches_scipy_ttest_rel():
    adata = make_study()
    res = _by_id(_run(adata, pair="Subject"))
    rb, rw = _pairs(adata)
    tested = 0
    for j, oid in enumerate(adata.var_names[:-1]):
        a, b = adata.X[rw, j], adata.X[rb, j]
        ok = ~np.isnan(a) & ~np.isnan(b)
        row = res.loc[oid]
        assert row["n"] == ok.sum()
        if ok.sum() < 3 or np.var(a[ok] - b[ok]) == 0:
            assert np.isnan(row["p_value"]) and row["reason"]
            continue
        r = stats.ttest_rel(a[ok], b[ok])
        ci = r.confidence_interval(0.95)
        got = row[["estimate", "statistic", "df", "p_value", "ci_low", "ci_high"]].to_numpy(float)
        exp = [np.mean(a[ok] - b[ok]), r.statistic, r.df, r.pvalue, ci.low, ci.high]
        np.testing.assert_allclose(got, exp, rtol=0, atol=TOL)
        assert row["mean_target"] == pytest.approx(a[ok].mean(), abs=TOL)
        assert row["mean_reference"] == pytest.approx(b[ok].mean(), abs=TOL)
        tested += 1
    assert tested >= 25
    full = _run(adata, pair="Subject")
    _check_bh(full)
    p = full["p_value"].to_numpy()
    assert np.all(np.diff(p[~np.isnan(p)]) >= 0) and np.isnan(p[-2:]).all()


def test_pairing_exclusions_are_warned_and_recorded():
    adata = make_study()
    with pytest.warns(OlinkpipeWarning) as rec:
        res = op.tl.differential(adata, groupby="Time", reference="Baseline", pair="Subject")
    msgs = " | ".join(str(w.message) for w in rec)
    assert "2 incomplete or duplicated pair(s)" in msgs
    assert "1 control sample(s): 'S052'" in msgs and "1 control assay(s)" in msgs
    ex = dict(map(tuple, res.attrs["excluded_pairs"]))
    assert ex == {"P90": "no Week.6 sample", "P91": "more than one sample per level"}
    assert res.attrs["excluded_assays"] == ["OID00029"]
    assert res.attrs["excluded_samples"] == ["S052"]  # the control sample
    assert res.attrs["sign"] == "Week.6 - Baseline" and res.attrs["n_pairs"] == 24
    assert "OID00029" not in set(res["OlinkID"])
    few = _by_id(res).loc["OID00001"]
    assert np.isnan(few["statistic"]) and "fewer than 3" in few["reason"]
    zero = _by_id(res).loc["OID00002"]
    assert np.isnan(zero["p_value"]) and "zero variance" in zero["reason"]
    assert zero["estimate"] == pytest.approx(0.5)


@pytest.mark.parametrize("equal_var", [False, True])
def test_unpaired_ttest_matches_scipy_ttest_ind(equal_var):
    adata = make_study(seed=3)
    res = _by_id(_run(adata, equal_var=equal_var))
    keep = ~adata.obs["is_control"].to_numpy()
    wk = keep & adata.obs["Time"].eq("Week.6").to_numpy()
    bl = keep & adata.obs["Time"].eq("Baseline").to_numpy()
    for j, oid in enumerate(adata.var_names[:-1]):
        if j in (1, 2):
            continue
        r = stats.ttest_ind(adata.X[wk, j], adata.X[bl, j], equal_var=equal_var, nan_policy="omit")
        row = res.loc[oid]
        exp = [r.statistic, r.pvalue, r.df]
        np.testing.assert_allclose(
            row[["statistic", "p_value", "df"]].to_numpy(float), exp, rtol=0, atol=TOL
        )
        ci = r.confidence_interval()
        np.testing.assert_allclose([row["ci_low"], row["ci_high"]], [ci.low, ci.high], atol=TOL)
        est = np.nanmean(adata.X[wk, j]) - np.nanmean(adata.X[bl, j])
        assert row["estimate"] == pytest.approx(est, abs=TOL)
    assert res.loc["OID00001", "reason"].startswith("fewer than 3")


def _walsh(d):
    i, j = np.triu_indices(d.size)
    return np.sort((d[i] + d[j]) / 2.0)


def _enumerated_signrank_q(n, p):
    """Smallest q with P(V <= q) >= p, by enumerating all 2^n sign patterns (independent)."""
    ranks = np.arange(1, n + 1)
    v = np.array(
        [ranks[list(s)].sum() for r in range(n + 1) for s in itertools.combinations(range(n), r)]
    )
    cdf = np.array([(v <= q).mean() for q in range(v.max() + 1)])
    return int(np.argmax(cdf >= p - 1e-12))


@pytest.mark.parametrize("exact", [None, False])
def test_signed_rank_matches_scipy_and_walsh_averages(exact):
    adata = make_study(seed=5, n_pairs=60)
    res = _by_id(_run(adata, pair="Subject", method="wilcoxon", exact=exact, wilcoxon_ci="order"))
    rb, rw = _pairs(adata)
    z = stats.norm.ppf(0.975)
    for j, oid in enumerate(adata.var_names[:-1]):
        if j in (1, 2):
            continue
        d = adata.X[rw, j] - adata.X[rb, j]
        d = d[~np.isnan(d)]
        row = res.loc[oid]
        use_exact = exact is None and d.size < 50  # R's rule (continuous data: no ties)
        ref = stats.wilcoxon(d, method="exact" if use_exact else "approx", correction=True)
        assert row["p_value"] == pytest.approx(ref.pvalue, abs=TOL)
        v = stats.wilcoxon(d, alternative="greater", method="approx").statistic
        assert row["statistic"] == v
        w = _walsh(d)
        assert row["estimate"] == pytest.approx(np.median(w), abs=TOL)
        big_n = w.size
        if use_exact:
            continue  # exact CI ranks are checked by enumeration below
        k = int(
            np.ceil(big_n / 2 - z * np.sqrt(d.size * (d.size + 1) * (2 * d.size + 1) / 24) - 0.5)
        )
        assert row["ci_low"] == pytest.approx(w[k - 1], abs=TOL)
        assert row["ci_high"] == pytest.approx(w[big_n - k], abs=TOL)
    _check_bh(res.reset_index())


def test_signed_rank_exact_small_sample_matches_enumeration():
    adata = make_study(seed=7, n_pairs=10, nan_frac=0.0, m=6)
    res = _by_id(_run(adata, pair="Subject", method="wilcoxon"))
    rb, rw = _pairs(adata)
    q = _enumerated_signrank_q(10, 0.025)
    for j in (0, 3, 4):
        d = adata.X[rw, j] - adata.X[rb, j]
        row = res.loc[adata.var_names[j]]
        assert row["p_value"] == pytest.approx(stats.wilcoxon(d, method="exact").pvalue, abs=TOL)
        w = _walsh(d)
        assert row["estimate"] == pytest.approx(np.median(w), abs=TOL)
        assert row["ci_low"] == pytest.approx(w[q - 1], abs=TOL)
        assert row["ci_high"] == pytest.approx(w[w.size - q], abs=TOL)


def test_signed_rank_ties_and_zeros_use_corrected_normal():
    adata = make_study(seed=11, ties=True, n_pairs=30)
    res = _by_id(_run(adata, pair="Subject", method="wilcoxon"))
    rb, rw = _pairs(adata)
    for j in (0, 3, 5, 8):
        d = adata.X[rw, j] - adata.X[rb, j]
        d = d[~np.isnan(d)]
        ref = stats.wilcoxon(d, method="approx", correction=True, zero_method="wilcox")
        assert res.loc[adata.var_names[j], "p_value"] == pytest.approx(ref.pvalue, abs=TOL)


@pytest.mark.parametrize(("seed", "n_pairs", "ties"), [(2, 30, False), (4, 60, True)])
def test_rank_sum_matches_mannwhitneyu(seed, n_pairs, ties):
    adata = make_study(seed=seed, n_pairs=n_pairs, ties=ties)
    res = _by_id(_run(adata, method="wilcoxon", wilcoxon_ci="order"))
    keep = ~adata.obs["is_control"].to_numpy()
    wk = keep & adata.obs["Time"].eq("Week.6").to_numpy()
    bl = keep & adata.obs["Time"].eq("Baseline").to_numpy()
    for j, oid in enumerate(adata.var_names[:-1]):
        if j in (1, 2):
            continue
        a, b = adata.X[wk, j], adata.X[bl, j]
        a, b = a[~np.isnan(a)], b[~np.isnan(b)]
        has_ties = np.unique(np.r_[a, b]).size < a.size + b.size
        exact = a.size < 50 and b.size < 50 and not has_ties
        ref = stats.mannwhitneyu(
            a, b, method="exact" if exact else "asymptotic", use_continuity=True
        )
        row = res.loc[oid]
        assert row["p_value"] == pytest.approx(ref.pvalue, abs=TOL)
        assert row["statistic"] == ref.statistic
        assert row["estimate"] == pytest.approx(np.median(np.subtract.outer(a, b)), abs=TOL)


def test_rank_sum_exact_ci_matches_enumeration():
    rng = np.random.default_rng(3)
    obs = pd.DataFrame({"g": ["r"] * 6 + ["t"] * 7}, index=[f"s{i}" for i in range(13)])
    x = rng.normal(size=(13, 3))
    adata = ad.AnnData(x, obs=obs)
    res = op.tl.differential(adata, groupby="g", reference="r", method="wilcoxon")
    # U distribution of the target sample (size 7 among 13) by enumeration
    u = []
    for s in itertools.combinations(range(13), 7):
        ranks = np.array(s) + 1
        u.append(ranks.sum() - 7 * 8 / 2)
    u = np.array(u)
    cdf = np.array([(u <= q).mean() for q in range(43)])
    q = int(np.argmax(cdf >= 0.025 - 1e-12))
    for j in range(3):
        diffs = np.sort(np.subtract.outer(x[6:, j], x[:6, j]).ravel())
        row = res.set_index("OlinkID").loc[adata.var_names[j]]
        assert row["ci_low"] == pytest.approx(diffs[q - 1], abs=TOL)
        assert row["ci_high"] == pytest.approx(diffs[diffs.size - q], abs=TOL)
        ref = stats.mannwhitneyu(x[6:, j], x[:6, j], method="exact")
        assert row["p_value"] == pytest.approx(ref.pvalue, abs=TOL)


def test_hodges_lehmann_can_be_skipped():
    adata = make_study(seed=1)
    res = _run(adata, pair="Subject", method="wilcoxon", hodges_lehmann=False)
    assert res["estimate"].isna().all() and res["p_value"].notna().sum() > 20


def test_sign_follows_named_reference():
    adata = make_study(seed=2)
    a = _by_id(_run(adata, pair="Subject"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        b = _by_id(op.tl.differential(adata, groupby="Time", reference="Week.6", pair="Subject"))
    b = b.loc[a.index]
    np.testing.assert_allclose(a["estimate"], -b["estimate"], atol=TOL)
    np.testing.assert_allclose(a["p_value"], b["p_value"], atol=TOL)
    assert b.attrs["sign"] == "Baseline - Week.6"


def test_errors_name_the_problem():
    adata = make_study(m=5)
    with pytest.raises(DesignError, match="reference level 'Day0'"):
        op.tl.differential(adata, groupby="Time", reference="Day0")
    with pytest.raises(MissingColumnError, match="Patient"):
        op.tl.differential(adata, groupby="Time", reference="Baseline", pair="Patient")
    with pytest.raises(DesignError, match="only supported by method='moderated'"):
        op.tl.differential(adata, groupby="Time", reference="Baseline", covariates=["age"])
    with pytest.raises(DesignError, match="method='anova'"):
        op.tl.differential(adata, groupby="Time", reference="Baseline", method="anova")
    adata.obs["Time3"] = np.resize(["a", "b", "c"], adata.n_obs)
    with pytest.raises(DesignError, match="target= must be given"):
        op.tl.differential(adata, groupby="Time3", reference="a")


def test_controls_kept_on_request_and_layer_used():
    adata = make_study(seed=6, m=6)
    adata.layers["shifted"] = adata.X + 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        base = _run(adata, pair="Subject")
        shifted = _run(adata, pair="Subject", layer="shifted")
    np.testing.assert_allclose(shifted["estimate"], base["estimate"], atol=TOL)
    np.testing.assert_allclose(shifted["mean_reference"], base["mean_reference"] + 1, atol=TOL)
    with pytest.warns(OlinkpipeWarning, match="incomplete or duplicated"):
        res = op.tl.differential(
            adata, groupby="Time", reference="Baseline", pair="Subject", exclude_controls=False
        )
    assert "OID00005" in set(res["OlinkID"]) and res.attrs["excluded_assays"] == []
    # the control sample (Subject "CTRL", Baseline only) is now an incomplete pair
    assert ["CTRL", "no Week.6 sample"] in res.attrs["excluded_pairs"]


@pytest.mark.parametrize("triangular", [True, False])
def test_kth_pair_sums_matches_brute_force_with_nan_and_ties(triangular):
    from olinkpipe.tl._kernels import kth_pair_sums

    rng = np.random.default_rng(12)
    m, n = 7, 90
    a = np.round(rng.normal(size=(m, n)), 1)  # many tied sums
    a[rng.random(a.shape) < 0.1] = np.nan
    a = np.sort(a, axis=1)
    b = a if triangular else np.sort(np.round(rng.normal(size=(m, n)), 2), axis=1)
    na = (~np.isnan(a)).sum(axis=1)
    nb = (~np.isnan(b)).sum(axis=1)
    for frac in (0.0, 0.03, 0.5, 0.97, 1.0):
        sums, ks = [], []
        for r in range(m):
            x, y = a[r, : na[r]], b[r, : nb[r]]
            s = np.add.outer(x, y)
            s = np.sort(s[np.triu_indices(x.size)] if triangular else s.ravel())
            sums.append(s)
            ks.append(max(1, int(frac * (s.size - 1))))
        got = kth_pair_sums(a, b, na, nb, np.array(ks, dtype=float), triangular, extra=1)
        for r in range(m):
            assert got[r, 0] == pytest.approx(sums[r][ks[r] - 1], abs=1e-12)
            assert got[r, 1] == pytest.approx(sums[r][ks[r]], abs=1e-12)


def test_signed_rank_means_and_large_sample_hodges_lehmann():
    # 300 pairs: the selection runs its full path (estimate, two counts, extraction)
    adata = make_study(seed=13, n_pairs=300, m=8, nan_frac=0.05)
    for ties in (False, True):
        if ties:
            adata.X = np.round(adata.X, 1)  # many tied Walsh averages
        res = _by_id(_run(adata, pair="Subject", method="wilcoxon", wilcoxon_ci="order"))
        rb, rw = _pairs(adata)
        z = stats.norm.ppf(0.975)
        for j in (0, 3, 4, 5, 6):
            a, b = adata.X[rw, j], adata.X[rb, j]
            ok = ~np.isnan(a) & ~np.isnan(b)
            d = a[ok] - b[ok]
            row = res.loc[adata.var_names[j]]
            assert row["mean_target"] == pytest.approx(a[ok].mean(), abs=TOL)
            assert row["mean_reference"] == pytest.approx(b[ok].mean(), abs=TOL)
            w = _walsh(d)
            assert row["estimate"] == pytest.approx(np.median(w), abs=1e-12)
            nn = d.size
            k = int(np.ceil(w.size / 2 - z * np.sqrt(nn * (nn + 1) * (2 * nn + 1) / 24) - 0.5))
            assert row["ci_low"] == pytest.approx(w[k - 1], abs=1e-12)
            assert row["ci_high"] == pytest.approx(w[w.size - k], abs=1e-12)


def test_rank_sum_normal_approximation_ci_is_order_statistics():
    rng = np.random.default_rng(14)
    n1, n2 = 70, 55  # both >= 50: normal approximation; continuous data: no ties
    obs = pd.DataFrame({"g": ["r"] * n1 + ["t"] * n2}, index=[f"s{i}" for i in range(n1 + n2)])
    x = rng.normal(size=(n1 + n2, 4)) + np.r_[np.zeros(n1), np.full(n2, 0.4)][:, None]
    x[3, 1] = np.nan
    adata = ad.AnnData(x, obs=obs)
    res = op.tl.differential(
        adata, groupby="g", reference="r", method="wilcoxon", wilcoxon_ci="order"
    )
    res = res.set_index("OlinkID")
    z = stats.norm.ppf(0.975)
    for j in range(4):
        xt, xr = x[n1:, j], x[:n1, j]
        xt, xr = xt[~np.isnan(xt)], xr[~np.isnan(xr)]
        diffs = np.sort(np.subtract.outer(xt, xr).ravel())
        sigma = np.sqrt(xt.size * xr.size * (xt.size + xr.size + 1) / 12)
        k = int(np.ceil(diffs.size / 2 - z * sigma - 0.5))
        row = res.loc[adata.var_names[j]]
        assert row["estimate"] == pytest.approx(np.median(diffs), abs=1e-12)
        assert row["ci_low"] == pytest.approx(diffs[k - 1], abs=1e-12)
        assert row["ci_high"] == pytest.approx(diffs[diffs.size - k], abs=1e-12)


@pytest.mark.parametrize("nan_frac", [0.02, 0.3])
def test_paired_ttest_dense_missingness_and_ill_conditioned_assays(nan_frac):
    adata = make_study(seed=15, n_pairs=40, m=10, nan_frac=nan_frac)
    wk = adata.obs["Time"].eq("Week.6").to_numpy()
    rng = np.random.default_rng(1)
    adata.X[wk, 3] = adata.X[~wk, 3][: wk.sum()] + 50.0 + 1e-3 * rng.normal(size=wk.sum())
    res = _by_id(_run(adata, pair="Subject"))
    rb, rw = _pairs(adata)
    for j in (0, 3, 4, 7):
        a, b = adata.X[rw, j], adata.X[rb, j]
        ok = ~np.isnan(a) & ~np.isnan(b)
        r = stats.ttest_rel(a[ok], b[ok])
        row = res.loc[adata.var_names[j]]
        assert row["n"] == ok.sum()
        assert row["estimate"] == pytest.approx(np.mean(a[ok] - b[ok]), abs=TOL)
        # |mean| / sd = 5e4 for assay 3: a one-pass sum of squares would lose ~9 digits
        assert row["statistic"] == pytest.approx(r.statistic, rel=1e-9)
        assert row["p_value"] == pytest.approx(r.pvalue, abs=TOL)
