"""clinical.dose_groups / compare_groups / correlate / associate_outcome vs independent fits."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from lifelines import CoxPHFitter
from scipy import stats
from statsmodels.miscmodels.ordinal_model import OrderedModel
from statsmodels.stats.multitest import multipletests

from olinkpipe.clinical import associate_outcome, compare_groups, correlate, dose_groups
from olinkpipe.clinical._firth import detect_separation
from olinkpipe.errors import DesignError, MissingColumnError, OlinkpipeWarning, ValidationError
from olinkpipe.tl.ranktests import rank_sum_test


def _study(seed: int = 11, n: int = 23) -> pd.DataFrame:
    """A CAR-T cohort like STUDY.md: dose 1-4.9e6/kg, peaks, CRS, relapse follow-up."""
    rng = np.random.default_rng(seed)
    dose = np.round(rng.uniform(1.0, 4.9, n), 1) * 1e6
    peak = np.exp(9 + 0.2 * dose / 1e6 + rng.normal(0, 0.8, n))
    il6 = np.exp(3 + 0.3 * np.log(peak) / 9 + rng.normal(0, 0.7, n))
    crp = np.exp(3.5 + rng.normal(0, 0.6, n))
    lin = -1.0 + 0.6 * (dose / 1e6 - 2.5) + 0.5 * rng.normal(size=n)
    crs_grade = np.digitize(lin + rng.logistic(size=n), [0.0, 1.5])  # 0, 1, 2
    time = rng.exponential(600, n)
    cens = rng.uniform(200, 900, n)
    return pd.DataFrame(
        {
            "patient": [f"P{i:02d}" for i in range(n)],
            "dose": dose,
            "age": rng.integers(9, 63, n).astype(float),
            "cart_cmax": peak,
            "il6_cmax": il6,
            "crp_cmax": crp,
            "crs_grade": crs_grade,
            "crs_any": (crs_grade >= 1).astype(int),
            "pfs_time": np.minimum(time, cens),
            "pfs_event": (time <= cens).astype(int),
        }
    )


# ------------------------------------------------------------------------------ dose groups


def test_dose_groups_threshold_rule_and_quantile():
    p = pd.DataFrame({"patient": list("ABCD"), "dose": [1e6, 2e6, 2.1e6, 4.9e6]})
    out = dose_groups(p)
    assert out["dose_group"].tolist() == ["low", "low", "high", "high"]  # 2e6 is low (> rule)
    assert list(out["dose_group"].cat.categories) == ["low", "high"]
    assert dose_groups(p, rule="ge")["dose_group"].tolist() == ["low", "high", "high", "high"]
    med = dose_groups(p, quantile=0.5, labels=("L", "H"), name="g")
    assert med["g"].tolist() == ["L", "L", "H", "H"]
    assert med.attrs["dose_groups"]["threshold"] == pytest.approx(2.05e6)
    assert "dose_group" not in p.columns  # input untouched
    p.loc[1, "dose"] = np.nan
    with pytest.warns(OlinkpipeWarning, match="no dose for 'B'"):
        assert pd.isna(dose_groups(p)["dose_group"][1])
    with pytest.raises(DesignError, match="rule"):
        dose_groups(p, rule="lt")


# --------------------------------------------------------------------------- rank-sum test


def test_exact_hodges_lehmann_ci_inverts_scipy_exact_test():
    rng = np.random.default_rng(5)
    x, y = rng.normal(1.0, 1, 9), rng.normal(0, 1, 12)
    w = rank_sum_test(x, y)
    diffs = np.sort(np.subtract.outer(x, y).ravel())
    assert w.exact
    assert w.estimate == pytest.approx(np.median(diffs), abs=1e-14)
    # a shift d is inside the exact CI iff scipy's exact test of (x - d) vs y has p >= 0.05
    mids = (diffs[1:] + diffs[:-1]) / 2
    for d in mids:
        p = stats.mannwhitneyu(x - d, y, method="exact").pvalue
        assert (p >= 0.05) == (w.ci_low < d < w.ci_high), d


# 36 patients (17 low, 19 high); tmax and cmax tied, auc untied. R 4.2.2 on this table as CSV:
#   x <- d[[m]][d$g == "high"]; y <- d[[m]][d$g == "low"]
#   wilcox.test(x, y, conf.int = TRUE, conf.level = cl, exact = FALSE, correct = TRUE)  # tied
#   wilcox.test(x, y, conf.int = TRUE, conf.level = cl)  # auc: exact
_MW = pd.DataFrame(
    {
        "g": ["low"] * 17 + ["high"] * 19,
        "tmax": [10, 7, 10, 10, 10, 28, 28, 10, 28, 14, 10, 10, 28, 10, 10, 21, 7, 7, 3, 7,
                 21, 14, 14, 17, 3, 14, 21, 28, 10, 14, 7, 7, 7, 7, 3, 17],
        "cmax": [13, 32, 47, 37, 25, 50, 14, 18, 17, 40, 11, 14, 71, 14, 5, 36, 43, 15, 15,
                 17, 26, 57, 48, 12, 69, 16, 30, 24, 20, 13, 113, 25, 65, 17, 37, 19],
        "auc": [112.88, 129.8, 76.38, 97.57, 112.89, 132.78, 130.5, 85.44, 71.08, 94.75,
                125.43, 131.17, 62.03, 44.28, 83.52, 109.2, 135.6, 76.7, 93.99, 130.59,
                78.39, 125.63, 147.15, 132.7, 153.83, 93.01, 59.29, 149.29, 125.4, 143.15,
                108.39, 69.56, 89.53, 93.27, 82.94, 107.98],
    }
)  # fmt: skip
_R_MW = {  # (metric, conf.level): W, p, estimate, conf.int
    ("tmax", 0.95): (122.5, 0.21347750171606475, -2.9999539565608364, -6.9999368587651354,
                     3.9999548007465702),
    ("tmax", 0.90): (122.5, 0.21347750171606475, -2.9999539565608364, -6.9999283214802794,
                     3.6284582099786355e-05),
    ("cmax", 0.95): (177.5, 0.62304700541207436, 1.9999173670838843, -11.999980590642693,
                     12.000081814030191),
    ("cmax", 0.90): (177.5, 0.62304700541207436, 1.9999173670838843, -8.0000388609236186,
                     10.999948363233138),
    ("auc", 0.95): (175, 0.68401642682824682, 7.2699999999999818, -17.040000000000006,
                    24.030000000000001),
    ("auc", 0.90): (175, 0.68401642682824682, 7.2699999999999818, -10.199999999999989,
                    21.719999999999999),
}  # fmt: skip


@pytest.mark.parametrize("conf_level", [0.95, 0.90])
def test_compare_groups_mann_whitney_equals_r_with_ties(conf_level):
    out = compare_groups(
        _MW, by="g", metrics=["tmax", "cmax", "auc"], conf_level=conf_level
    ).set_index("metric")
    assert out.attrs["effect"] == "high - low"
    for metric in ["tmax", "cmax", "auc"]:
        ref = _R_MW[(metric, conf_level)]
        got = out.loc[
            metric, ["statistic", "p_value", "effect", "effect_ci_low", "effect_ci_high"]
        ]
        np.testing.assert_allclose(got.to_numpy(float), ref, rtol=0, atol=1e-8)
        assert ("exact" in out.loc[metric, "test"]) == (metric == "auc")


def test_compare_groups_and_tl_differential_share_the_rank_sum_kernel():
    # the same numbers through tl.differential(method="wilcoxon", wilcoxon_ci="uniroot")
    import anndata as ad

    import olinkpipe as op

    x = _MW[["tmax", "cmax", "auc"]].to_numpy(float)
    obs = pd.DataFrame({"g": _MW["g"].to_numpy()}, index=[f"S{i}" for i in range(len(_MW))])
    var = pd.DataFrame(index=pd.Index(["tmax", "cmax", "auc"], name="OlinkID"))
    res = op.tl.differential(
        ad.AnnData(x, obs=obs, var=var),
        groupby="g",
        reference="low",
        method="wilcoxon",
        wilcoxon_ci="uniroot",
    ).set_index("OlinkID")
    cg = compare_groups(_MW, by="g", metrics=["tmax", "cmax", "auc"]).set_index("metric")
    for m in ["tmax", "cmax", "auc"]:
        assert res.loc[m, "estimate"] == cg.loc[m, "effect"]
        assert res.loc[m, "ci_low"] == cg.loc[m, "effect_ci_low"]
        assert res.loc[m, "ci_high"] == cg.loc[m, "effect_ci_high"]
        assert res.loc[m, "p_value"] == cg.loc[m, "p_value"]


# -------------------------------------------------------------------------- compare groups


@pytest.mark.parametrize("test", ["mannwhitney", "ttest"])
def test_compare_groups_against_scipy(test):
    s = dose_groups(_study())
    metrics = ["cart_cmax", "il6_cmax", "crp_cmax"]
    s.loc[3, "il6_cmax"] = np.nan  # a missing value is left out of that metric only
    with pytest.warns(OlinkpipeWarning, match=r"il6_cmax: 1 \('P03'\)"):
        out = compare_groups(s, by="dose_group", metrics=metrics, test=test)
    assert out.attrs["excluded"] == {"il6_cmax": ["P03"]}
    assert list(out.columns[:9]) == [
        "metric",
        "test",
        "statistic",
        "p_value",
        "p_adj",
        "effect",
        "effect_ci_low",
        "effect_ci_high",
        "cliffs_delta",
    ]
    assert out.attrs["effect"] == "high - low"
    for _, row in out.iterrows():
        v = s[["dose_group", row["metric"]]].dropna()
        x = v.loc[v["dose_group"] == "high", row["metric"]].to_numpy()
        y = v.loc[v["dose_group"] == "low", row["metric"]].to_numpy()
        if test == "mannwhitney":
            ref = stats.mannwhitneyu(x, y, method="exact")  # continuous data: no ties, n < 50
            assert row["statistic"] == ref.statistic
            assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
            assert row["effect"] == pytest.approx(np.median(np.subtract.outer(x, y)))
        else:
            ref = stats.ttest_ind(x, y, equal_var=False)
            ci = ref.confidence_interval()
            assert row["statistic"] == pytest.approx(ref.statistic, rel=1e-12)
            assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
            assert row["effect"] == pytest.approx(x.mean() - y.mean(), rel=1e-12)
            assert row["effect_ci_low"] == pytest.approx(ci.low, rel=1e-10)
            assert row["effect_ci_high"] == pytest.approx(ci.high, rel=1e-10)
        u = stats.mannwhitneyu(x, y).statistic
        assert row["cliffs_delta"] == pytest.approx(2 * u / (len(x) * len(y)) - 1, abs=1e-14)
        assert row["n_high"] == len(x) and row["n_low"] == len(y)
        assert row["median_low"] == pytest.approx(np.median(y))
        assert row["q1_high"] == pytest.approx(np.quantile(x, 0.25))  # R type 7
        assert row["sem_low"] == pytest.approx(stats.sem(y))
    np.testing.assert_allclose(out["p_adj"], multipletests(out["p_value"], method="fdr_bh")[1])


def test_compare_groups_joins_patients_and_splits_analytes():
    s = _study()
    pts = dose_groups(s[["patient", "dose"]])
    long = pd.concat(
        [
            s[["patient", "il6_cmax"]].rename(columns={"il6_cmax": "cmax"}).assign(analyte="IL-6"),
            s[["patient", "crp_cmax"]].rename(columns={"crp_cmax": "cmax"}).assign(analyte="CRP"),
        ]
    )
    out = compare_groups(long, by="dose_group", metrics="cmax", patients=pts)
    assert out["analyte"].tolist() == ["IL-6", "CRP"]
    wide = compare_groups(dose_groups(s), by="dose_group", metrics=["il6_cmax", "crp_cmax"])
    np.testing.assert_allclose(out["p_value"], wide["p_value"])
    with pytest.raises(DesignError, match="exactly two groups"):
        compare_groups(s.assign(g=np.arange(len(s)) % 3), by="g", metrics="dose")
    with pytest.raises(MissingColumnError, match="dose_group"):
        compare_groups(s, by="dose_group", metrics="dose")


# ------------------------------------------------------------------------------ correlate


@pytest.mark.parametrize(
    ("method", "func"),
    [("spearman", stats.spearmanr), ("pearson", stats.pearsonr), ("kendall", stats.kendalltau)],
)
def test_correlate_against_scipy(method, func):
    s = _study()
    s.loc[[2, 5], "il6_cmax"] = np.nan
    with pytest.warns(OlinkpipeWarning, match="cart_cmax ~ il6_cmax: 2"):
        out = correlate(s, "cart_cmax", ["dose", "il6_cmax", "crp_cmax"], method=method)
    assert out.attrs["excluded"] == {"cart_cmax ~ il6_cmax": ["P02", "P05"]}
    assert list(out.columns) == [
        "x",
        "y",
        "method",
        "rho",
        "ci_low",
        "ci_high",
        "p_value",
        "p_adj",
        "n",
    ]
    for _, row in out.iterrows():
        v = s[["cart_cmax", row["y"]]].dropna()
        ref = func(v["cart_cmax"], v[row["y"]])
        assert row["n"] == len(v)
        assert row["rho"] == pytest.approx(ref.statistic, rel=1e-12)
        if method == "spearman":  # no ties: R's exact/Edgeworth p, near the t approximation
            assert row["p_value"] == pytest.approx(ref.pvalue, rel=0.25)
        else:  # Kendall: exact without ties and n < 50, as scipy's method="exact" and R
            assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-10)
        assert row["ci_low"] < row["rho"] < row["ci_high"]
        if method == "pearson":  # Fisher z as R's cor.test / scipy
            ci = ref.confidence_interval()
            assert row["ci_low"] == pytest.approx(ci.low, rel=1e-10)
            assert row["ci_high"] == pytest.approx(ci.high, rel=1e-10)
        if method == "spearman":  # Fieller et al.: se = sqrt(1.06 / (n - 3))
            half = 1.959963984540054 * np.sqrt(1.06 / (len(v) - 3))
            assert row["ci_high"] == pytest.approx(np.tanh(np.arctanh(ref.statistic) + half))
    np.testing.assert_allclose(out["p_adj"], multipletests(out["p_value"], method="fdr_bh")[1])


# R 4.2.2: y <- <vector>; x <- seq_along(y); cor.test(x, y, method = "spearman" / "kendall")
# (estimate, p.value), printed with sprintf("%.15g"). n = 8: exact permutation p; 12 and 23:
# AS 89 Edgeworth series; Kendall n = 40: exact (scipy's "auto" would use the normal
# approximation above n = 33 and give 2.59e-07 instead).
R_COR = [
    ([3, 1, 5, 4, 2, 8, 6, 7], 0.0575892857142857, 0.108680555555555),
    ([7, 1, 8, 5, 2, 9, 3, 6, 11, 4, 10, 12], 0.0987515700723274, 0.0863171145983646),
    ([8, 1, 9, 7, 2, 14, 4, 6, 18, 3, 11, 17, 5, 19, 15, 10, 21, 13, 16, 23, 12, 20, 22],
     0.000287774827256024, 0.000557197648941132),
    ([13, 1, 12, 8, 2, 19, 5, 6, 23, 3, 14, 21, 4, 24, 16, 7, 31, 11, 15, 32, 9, 26, 29, 10,
      34, 25, 17, 37, 20, 27, 38, 18, 36, 35, 22, 39, 33, 30, 40, 28],
     3.76859166261876e-07, 2.90077039055703e-07),
]  # fmt: skip


@pytest.mark.parametrize(("y", "p_spearman", "p_kendall"), R_COR, ids=["n8", "n12", "n23", "n40"])
def test_correlate_p_values_match_r_cor_test(y, p_spearman, p_kendall):
    t = pd.DataFrame({"x": np.arange(1.0, len(y) + 1), "y": np.asarray(y, float)})
    sp = correlate(t, "x", "y", method="spearman")
    assert sp["p_value"].iloc[0] == pytest.approx(p_spearman, rel=1e-12)
    kd = correlate(t, "x", "y", method="kendall")
    assert kd["p_value"].iloc[0] == pytest.approx(p_kendall, rel=1e-12)
    # with a tie both fall back to the (tie-corrected) approximations, as R and scipy do
    tied = t.assign(y=t["y"].where(t["y"] != 1, 2))
    ref = stats.spearmanr(tied["x"], tied["y"])
    assert correlate(tied, "x", "y")["p_value"].iloc[0] == pytest.approx(ref.pvalue, rel=1e-12)


def test_correlate_bootstrap_is_seeded():
    s = _study()
    a = correlate(s, "dose", "cart_cmax", ci="bootstrap", n_boot=500, seed=1)
    b = correlate(s, "dose", "cart_cmax", ci="bootstrap", n_boot=500, seed=1)
    c = correlate(s, "dose", "cart_cmax", ci="bootstrap", n_boot=500, seed=2)
    pd.testing.assert_frame_equal(a, b)
    assert a["ci_low"][0] != c["ci_low"][0]
    # independent percentile bootstrap with the same resamples
    rng = np.random.default_rng(1)
    idx = rng.integers(0, len(s), size=(500, len(s)))
    rhos = [
        stats.spearmanr(s["dose"].to_numpy()[i], s["cart_cmax"].to_numpy()[i]).statistic
        for i in idx
    ]
    lo, hi = np.nanquantile(rhos, [0.025, 0.975])
    assert a["ci_low"][0] == pytest.approx(lo, abs=1e-12)
    assert a["ci_high"][0] == pytest.approx(hi, abs=1e-12)
    k = correlate(s, "dose", "cart_cmax", method="kendall", ci="bootstrap", n_boot=200)
    assert k["ci_low"][0] < k["rho"][0] < k["ci_high"][0]


# ------------------------------------------------------------------------ outcome models


def test_logistic_matches_statsmodels_logit():
    s = _study(seed=4, n=60)
    s["dose_m"] = s["dose"] / 1e6
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no separation, nothing to warn about
        out = associate_outcome(s, "crs_any", ["dose_m", "age"], "logistic")
    X = sm.add_constant(s[["dose_m", "age"]])
    ref = sm.Logit(s["crs_any"], X).fit(disp=0)
    ci = ref.conf_int()
    assert out["predictor"].tolist() == ["dose_m", "age"]
    np.testing.assert_allclose(out["estimate"], np.exp(ref.params[1:]), rtol=1e-6)
    np.testing.assert_allclose(out["ci_low"], np.exp(ci.iloc[1:, 0]), rtol=1e-6)
    np.testing.assert_allclose(out["ci_high"], np.exp(ci.iloc[1:, 1]), rtol=1e-6)
    np.testing.assert_allclose(out["p_value"], ref.pvalues[1:], rtol=1e-5)
    assert (out["n"] == 60).all() and out["method"].str.startswith("ML logistic").all()


def test_ordinal_matches_orderedmodel():
    s = _study(seed=8, n=50)
    s["dose_m"] = s["dose"] / 1e6
    out = associate_outcome(s, "crs_grade", ["dose_m", "age"], "ordinal")
    y = pd.Series(pd.Categorical(s["crs_grade"], ordered=True))
    ref = OrderedModel(y, s[["dose_m", "age"]], distr="logit").fit(
        method="bfgs", disp=False, maxiter=2000
    )
    np.testing.assert_allclose(out["coef"], ref.params[:2], rtol=1e-4)
    np.testing.assert_allclose(out["estimate"], np.exp(ref.params[:2]), rtol=1e-4)
    np.testing.assert_allclose(out["p_value"], ref.pvalues[:2], rtol=1e-3)
    np.testing.assert_allclose(out["ci_low"], np.exp(ref.conf_int().iloc[:2, 0]), rtol=1e-4)


def test_cox_matches_lifelines_and_dummy_codes_dose_group():
    s = dose_groups(_study(seed=2, n=67))
    out = associate_outcome(s, "pfs_event", ["dose_group", "age"], "cox", duration="pfs_time")
    assert out["predictor"].tolist() == ["dose_group[high]", "age"]
    df = pd.DataFrame(
        {
            "high": (s["dose_group"] == "high").astype(float),
            "age": s["age"],
            "t": s["pfs_time"],
            "e": s["pfs_event"],
        }
    )
    ref = CoxPHFitter().fit(df, "t", "e").summary
    np.testing.assert_allclose(out["estimate"], ref["exp(coef)"], rtol=1e-6)
    np.testing.assert_allclose(out["ci_low"], ref["exp(coef) lower 95%"], rtol=1e-6)
    np.testing.assert_allclose(out["ci_high"], ref["exp(coef) upper 95%"], rtol=1e-6)
    np.testing.assert_allclose(out["p_value"], ref["p"], rtol=1e-6)
    assert out["n_events"].iloc[0] == s["pfs_event"].sum()
    with pytest.raises(ValidationError, match="duration"):
        associate_outcome(s, "pfs_event", "age", "cox")


# Aggregated sex2 data of R's logistf package (urinary tract infection, 239 women; Cytel
# LogXact manual), columns case, age, oc, vic, vicl, vis, dia, count.
SEX2 = [
    (0, 0, 0, 0, 0, 1, 0, 1),
    (0, 0, 0, 1, 0, 0, 0, 2),
    (0, 0, 0, 1, 0, 1, 0, 1),
    (0, 0, 0, 1, 1, 0, 0, 8),
    (0, 0, 0, 1, 1, 1, 0, 18),
    (0, 0, 1, 0, 0, 0, 0, 42),
    (0, 0, 1, 0, 0, 1, 0, 1),
    (0, 0, 1, 1, 0, 0, 0, 1),
    (0, 0, 1, 1, 1, 0, 0, 5),
    (0, 0, 1, 1, 1, 1, 0, 6),
    (0, 1, 0, 1, 1, 0, 0, 2),
    (0, 1, 0, 1, 1, 1, 0, 4),
    (0, 1, 1, 0, 0, 0, 0, 14),
    (0, 1, 1, 0, 0, 1, 0, 1),
    (0, 1, 1, 1, 0, 0, 0, 1),
    (0, 1, 1, 1, 1, 1, 0, 2),
    (1, 0, 0, 0, 0, 1, 0, 1),
    (1, 0, 0, 1, 0, 0, 0, 14),
    (1, 0, 0, 1, 0, 1, 0, 3),
    (1, 0, 0, 1, 1, 0, 0, 10),
    (1, 0, 0, 1, 1, 1, 0, 12),
    (1, 0, 0, 1, 1, 1, 1, 1),
    (1, 0, 1, 0, 0, 0, 0, 44),
    (1, 0, 1, 0, 0, 0, 1, 3),
    (1, 0, 1, 1, 0, 0, 0, 15),
    (1, 0, 1, 1, 0, 0, 1, 1),
    (1, 0, 1, 1, 0, 1, 0, 2),
    (1, 0, 1, 1, 1, 0, 0, 7),
    (1, 0, 1, 1, 1, 1, 0, 3),
    (1, 1, 0, 1, 0, 0, 0, 2),
    (1, 1, 0, 1, 0, 1, 0, 1),
    (1, 1, 0, 1, 0, 1, 1, 1),
    (1, 1, 0, 1, 1, 0, 0, 1),
    (1, 1, 0, 1, 1, 1, 1, 1),
    (1, 1, 1, 0, 0, 0, 0, 5),
    (1, 1, 1, 1, 0, 0, 0, 3),
]


def test_firth_matches_logistf_sex2_example():
    # logistf(case ~ age + oc + vic + vicl + vis + dia, data = sex2) (logistf README/help).
    # Coefficients and profile-likelihood CIs to 7-8 digits as printed by logistf, transcribed
    # from jzluo/firthlogist tests/test_firthlogist.py (which checks against logistf); the
    # penalised LR chi-squares (7.51, 0.02, 22.93, 19.10, 3.70, 7.90) from easystats/parameters
    # tests/testthat/_snaps/windows/model_parameters.logistf.md (model_parameters(logistf)).
    agg = pd.DataFrame(SEX2, columns=["case", "age", "oc", "vic", "vicl", "vis", "dia", "n"])
    sex2 = agg.loc[agg.index.repeat(agg["n"])].drop(columns="n").reset_index(drop=True)
    assert len(sex2) == 239
    preds = ["age", "oc", "vic", "vicl", "vis", "dia"]
    with pytest.warns(OlinkpipeWarning, match="separated"):  # dia = 1 only among cases
        out = associate_outcome(sex2, "case", preds, "logistic")
    coef = [-1.10598131, -0.06881673, 2.26887464, -2.11140817, -0.78831694, 3.09601166]
    lo = [-1.9737884, -0.9414363, 1.2730216, -3.2608611, -1.6080879, 0.7745682]
    hi = [-0.30742514, 0.78920202, 3.43543273, -1.11773495, 0.01518468, 8.03029352]
    chi2 = [7.51, 0.02, 22.93, 19.10, 3.70, 7.90]
    np.testing.assert_allclose(out["coef"], coef, atol=1e-6)
    np.testing.assert_allclose(np.log(out["ci_low"]), lo, atol=1e-6)
    np.testing.assert_allclose(np.log(out["ci_high"]), hi, atol=1e-6)
    np.testing.assert_allclose(stats.chi2.isf(out["p_value"], 1), chi2, atol=0.005)
    assert out["method"].str.contains("Firth").all()
    assert out["method"].str.contains("separation detected").all()


def test_firth_single_binary_predictor_equals_haldane_correction():
    # With one binary covariate the model is saturated and Firth's estimate of the log odds
    # ratio is that of the 2x2 table with 1/2 added to every cell (Firth 1993, Sec. 3).
    t = pd.DataFrame({"x": [0] * 10 + [1] * 8, "y": [0] * 7 + [1] * 3 + [1] * 8})  # zero cell
    assert detect_separation(np.column_stack([np.ones(18), t["x"]]), t["y"])
    with pytest.warns(OlinkpipeWarning, match="Firth"):
        out = associate_outcome(t, "y", "x")
    haldane = np.log((8.5 / 0.5) / (3.5 / 7.5))
    assert out["coef"].iloc[0] == pytest.approx(haldane, abs=1e-8)
    assert np.isfinite(out["ci_high"].iloc[0]) and out["ci_low"].iloc[0] > 1
    # ML on separated data: a warning saying the estimate is unstable
    with pytest.warns(OlinkpipeWarning, match="unstable"):
        ml = associate_outcome(t, "y", "x", firth=False)
    assert ml["method"].iloc[0].startswith("ML")
    forced = associate_outcome(_study(), "crs_any", "age", firth=True)
    assert "requested" in forced["method"].iloc[0]


def test_no_separation_detected_on_overlapping_data():
    s = _study(seed=4, n=60)
    X = np.column_stack([np.ones(len(s)), s["dose"] / 1e6])
    assert not detect_separation(X, s["crs_any"])


def test_outcome_input_errors_and_exclusions():
    s = _study()
    with pytest.raises(ValidationError, match="0/1"):
        associate_outcome(s, "crs_grade", "dose", "logistic")
    with pytest.raises(DesignError, match="kind"):
        associate_outcome(s, "crs_any", "dose", "poisson")
    s.loc[[1, 4], "age"] = np.nan
    with pytest.warns(OlinkpipeWarning, match="left out 2 patient"):
        out = associate_outcome(s, "crs_any", ["dose", "age"], separately=True)
    assert out.attrs["excluded"] == ["P01", "P04"]
    assert out["method"].str.startswith("univariable").all() and (out["n"] == 21).all()


def test_ties_use_normal_approximation_and_constant_groups_do_not_fail():
    s = pd.DataFrame(
        {
            "g": ["low"] * 6 + ["high"] * 6,
            "tmax": [7, 7, 10, 3, 7, 14, 7, 10, 10, 7, 14, 7],
            "flat": [28.0] * 12,
        }
    )
    out = compare_groups(s, by="g", metrics=["tmax", "flat"]).set_index("metric")
    x = s.loc[s["g"] == "high", "tmax"].to_numpy(float)
    y = s.loc[s["g"] == "low", "tmax"].to_numpy(float)
    ref = stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=True)
    assert "normal approx" in out.loc["tmax", "test"]
    assert out.loc["tmax", "p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
    # R 4.2.2: wilcox.test(c(7, 10, 10, 7, 14, 7), c(7, 7, 10, 3, 7, 14), conf.int = TRUE):
    # R's uniroot stops near, not on, a pairwise difference; we follow R
    r_est, r_lo, r_hi = 7.0108307892062771e-05, -3.0000548408211287, 6.9999458718478795
    assert abs(out.loc["tmax", "p_value"] - 0.54564549237188631) <= 1e-8
    assert abs(out.loc["tmax", "effect"] - r_est) <= 1e-8
    assert abs(out.loc["tmax", "effect_ci_low"] - r_lo) <= 1e-8
    assert abs(out.loc["tmax", "effect_ci_high"] - r_hi) <= 1e-8
    assert out.loc["flat", "effect"] == 0.0
    assert np.isnan(out.loc["flat", "effect_ci_low"])


# --------------------------------------------------------------- ordinal and Cox against R
# 40 patients, dose in cells/kg (0.5e6-50e6), 4 CRS grades, monthly (tied) PFS times.
# R 4.2.2 on this table as CSV, dose_m = dose / 1e6 (the MLE is equivariant: the dose
# coefficient and SE in cells/kg are R's / 1e6; R's own fits are less precise in cells/kg):
_CLIN = pd.DataFrame({
    "dose_m": [
        39.2, 33.7, 12.3, 9.4, 17.7, 8, 15.9, 12.3, 27.4, 45.9, 22.5, 38.1, 29, 25.8,
        33, 47.4, 45.8, 36.2, 6.6, 45.5, 35.8, 18, 11.5, 45.7, 40.9, 17.3, 48.2, 34.3,
        2.3, 19.6, 7.5, 18, 48.4, 30, 20.1, 9.6, 14.2, 36.1, 45.9, 21.4],
    "age": [
        13, 20, 35, 39, 23, 59, 26, 31, 52, 38, 69, 43, 48, 62, 37, 51, 68, 59, 64, 23,
        54, 31, 15, 9, 10, 69, 15, 17, 54, 52, 10, 56, 19, 58, 10, 23, 21, 27, 17, 48],
    "sex": [
        0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 1, 1, 1, 1, 1, 0, 1, 1, 1,
        0, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1],
    "grade": [
        0, 0, 0, 3, 0, 1, 0, 0, 0, 3, 1, 0, 2, 1, 0, 3, 3, 3, 1, 3,
        1, 2, 1, 0, 0, 1, 3, 3, 0, 1, 0, 2, 0, 3, 0, 0, 2, 2, 2, 1],
    "time": [
        120, 540, 420, 510, 330, 240, 150, 240, 360, 270, 420, 270, 180, 30,
        150, 120, 30, 180, 90, 60, 60, 660, 30, 210, 90, 120, 120, 270,
        150, 330, 90, 30, 30, 210, 30, 60, 60, 330, 540, 90],
    "event": [
        1, 0, 0, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1],
})  # fmt: skip
# ordinal::clm(factor(grade, ordered = TRUE) ~ dose_m + age + sex, link = "logit",
#              control = clm.control(gradTol = 1e-12)); coef(summary(.))[4:6, 1:2]
# (ordinal 2022.11-16; the default gradTol stops earlier: coefficients off up to 5e-9)
_R_CLM = np.array([
    [0.063959969365037075, 0.025792742189581185],
    [0.034960799818945773, 0.017503575173032245],
    [1.765922576725384330, 0.669592912224677428],
])  # fmt: skip
# survival::coxph(Surv(time, event) ~ dose_m + age + sex, ties = "efron"); survival 3.5-3,
# control = coxph.control(eps = 1e-14) (the default eps gives the same to 2e-12)
_R_COXPH = np.array([
    [0.0145517207671159773, 0.014618462870688773],
    [0.0088462198746226753, 0.010660953319731634],
    [0.0048018903479975401, 0.355107169414773827],
])  # fmt: skip


@pytest.mark.parametrize("unit", [1.0, 1e6])
def test_ordinal_equals_r_clm_whatever_the_dose_unit(unit):
    s = _CLIN.assign(dose=_CLIN["dose_m"] * unit)
    out = associate_outcome(s, "grade", ["dose", "age", "sex"], "ordinal")
    ref = _R_CLM / np.array([[unit], [1.0], [1.0]])
    np.testing.assert_allclose(out["coef"], ref[:, 0], rtol=1e-6)
    np.testing.assert_allclose(out["se"], ref[:, 1], rtol=1e-6)
    z = ref[:, 0] / ref[:, 1]
    np.testing.assert_allclose(out["p_value"], 2 * stats.norm.sf(np.abs(z)), rtol=1e-6)
    assert out["method"].str.contains("clm").all()


@pytest.mark.parametrize("unit", [1.0, 1e6])
def test_cox_equals_r_coxph_efron_on_tied_times(unit):
    s = _CLIN.assign(dose=_CLIN["dose_m"] * unit)
    assert s.loc[s["event"] == 1, "time"].duplicated().sum() == 20  # heavily tied
    out = associate_outcome(s, "event", ["dose", "age", "sex"], "cox", duration="time")
    ref = _R_COXPH / np.array([[unit], [1.0], [1.0]])
    np.testing.assert_allclose(out["coef"], ref[:, 0], rtol=1e-6)
    np.testing.assert_allclose(out["se"], ref[:, 1], rtol=1e-6)
    assert (out["n_events"] == 35).all()


def test_ordinal_separation_warns():
    s = pd.DataFrame({"x": np.arange(12.0), "g": [0] * 4 + [1] * 4 + [2] * 4})
    with pytest.warns(OlinkpipeWarning, match="did not converge or has extreme"):
        out = associate_outcome(s, "g", "x", "ordinal")
    assert abs(out["coef"].iloc[0]) > 10
