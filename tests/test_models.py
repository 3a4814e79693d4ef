"""tl.anova / anova_posthoc / longitudinal against statsmodels and scipy fitted per assay."""

from __future__ import annotations

import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from builders import make_repeated as make_long
from scipy import stats
from statsmodels.stats.anova import anova_lm
from statsmodels.stats.multicomp import pairwise_tukeyhsd
from statsmodels.stats.multitest import multipletests

import olinkpipe as op
from olinkpipe.errors import DesignError, OlinkpipeWarning


def _frame(adata, j):
    df = adata.obs.copy()
    df["y"] = adata.X[:, j]
    return df.dropna(subset=["y"])


@pytest.mark.parametrize("terms", [["Site"], ["Site", "Time"]])
def test_anova_matches_statsmodels_type3(terms):
    adata = make_long(seed=1)
    res = op.tl.anova(adata, formula_terms=terms).set_index(["OlinkID", "term"])
    rhs = "*".join(f"C({t}, Sum)" for t in terms)
    rows = []
    for j, oid in enumerate(adata.var_names):
        tab = anova_lm(smf.ols(f"y ~ {rhs}", data=_frame(adata, j)).fit(), typ=3)
        for idx, rec in tab.iterrows():
            if idx in ("Intercept", "Residual"):
                continue
            term = idx.replace("C(", "").replace(", Sum)", "")
            got = res.loc[(oid, term)]
            np.testing.assert_allclose(
                [got["sumsq"], got["df"], got["statistic"], got["p_value"]],
                [rec["sum_sq"], rec["df"], rec["F"], rec["PR(>F)"]],
                rtol=1e-9,
                atol=1e-12,
            )
            rows.append(rec["PR(>F)"])
    full = op.tl.anova(adata, formula_terms=terms)
    np.testing.assert_allclose(
        np.sort(full["p_adj"]),
        np.sort(multipletests(full["p_value"], method="fdr_bh")[1]),
        atol=1e-12,
    )
    assert len(rows) == len(full)


def test_anova_with_numeric_covariate_matches_statsmodels():
    adata = make_long(seed=2)
    res = op.tl.anova(adata, formula_terms="Time", covariates="age").set_index(["OlinkID", "term"])
    for j, oid in enumerate(adata.var_names[:3]):
        tab = anova_lm(smf.ols("y ~ C(Time, Sum) + age", data=_frame(adata, j)).fit(), typ=3)
        assert res.loc[(oid, "Time"), "statistic"] == pytest.approx(tab.loc["C(Time, Sum)", "F"])
        assert res.loc[(oid, "age"), "p_value"] == pytest.approx(tab.loc["age", "PR(>F)"])


def test_posthoc_one_way_matches_tukeyhsd():
    adata = make_long(seed=3, n_subj=15, m=3)
    res = op.tl.anova_posthoc(adata, formula_terms="Site", effect="Site")
    res = res.set_index(["OlinkID", "contrast"])
    for j, oid in enumerate(adata.var_names):
        df = _frame(adata, j)
        tk = pairwise_tukeyhsd(df["y"], df["Site"])
        s = tk.summary()
        for row in s.data[1:]:
            g1, g2, meandiff, padj, lower, upper = row[:6]
            got = res.loc[(oid, f"{g1} - {g2}")]
            # statsmodels reports group2 - group1 and rounds its summary; use raw arrays
            k = [i for i, r in enumerate(s.data[1:]) if r[0] == g1 and r[1] == g2][0]
            assert got["estimate"] == pytest.approx(-tk.meandiffs[k], abs=1e-10)
            assert got["p_adj"] == pytest.approx(tk.pvalues[k], abs=1e-6)
            assert got["ci_high"] == pytest.approx(-tk.confint[k][0], abs=1e-6)


def test_longitudinal_mixed_matches_statsmodels_per_assay():
    adata = make_long(seed=4, m=4)
    res = op.tl.longitudinal(adata, time="Time", subject="Subject", reference="D0")
    res = res.set_index(["OlinkID", "term"])
    for j, oid in enumerate(adata.var_names):
        df = _frame(adata, j)
        fit = smf.mixedlm("y ~ C(Time, Treatment('D0'))", df, groups=df["Subject"]).fit(reml=True)
        names = [f"C(Time, Treatment('D0'))[T.{t}]" for t in ("D14", "D28")]
        b = fit.fe_params[names].to_numpy()
        v = fit.cov_params().loc[names, names].to_numpy()
        chi2 = b @ np.linalg.solve(v, b)
        got = res.loc[(oid, "time")]
        assert got["statistic"] == pytest.approx(chi2, rel=1e-5)
        assert got["p_value"] == pytest.approx(stats.chi2.sf(chi2, 2), rel=1e-4, abs=1e-10)
        assert got["n"] == len(df)
        for t, nm in zip(("D14", "D28"), names, strict=True):
            c = res.loc[(oid, f"{t} - D0")]
            assert c["estimate"] == pytest.approx(fit.fe_params[nm], rel=1e-5, abs=1e-8)
            assert c["statistic"] == pytest.approx(fit.tvalues[nm], rel=1e-4)
    for term in ["time", "D14 - D0", "D28 - D0"]:
        sub = res.xs(term, level="term")
        np.testing.assert_allclose(
            sub["p_adj"], multipletests(sub["p_value"], method="fdr_bh")[1], atol=1e-12
        )


def test_longitudinal_balanced_contrast_is_mean_difference():
    # complete balanced data: the mixed-model time contrast equals the mean difference
    adata = make_long(seed=5, m=2, nan_frac=0.0)
    with joblib.parallel_config(backend="threading"):  # exercise n_jobs without process start-up
        res = op.tl.longitudinal(adata, time="Time", subject="Subject", reference="D0", n_jobs=2)
    res = res.set_index(["OlinkID", "term"])
    for j, oid in enumerate(adata.var_names):
        t = adata.obs["Time"].to_numpy()
        diff = adata.X[t == "D28", j].mean() - adata.X[t == "D0", j].mean()
        assert res.loc[(oid, "D28 - D0"), "estimate"] == pytest.approx(diff, abs=1e-6)


@pytest.mark.parametrize("ties", [False, True])
def test_friedman_matches_scipy(ties):
    adata = make_long(seed=6, n_subj=10, ties=ties, nan_frac=0.04)
    adata.obs.loc["S000", "Time"] = "D14"  # P00 twice at D14: excluded, warned
    with pytest.warns(OlinkpipeWarning, match="more than one sample"):
        res = op.tl.longitudinal(adata, time="Time", subject="Subject", method="friedman")
    assert res.attrs["excluded_subjects"] == ["P00"]
    res = res.set_index("OlinkID")
    obs = adata.obs
    for j, oid in enumerate(adata.var_names):
        tab = pd.DataFrame({"s": obs["Subject"], "t": obs["Time"], "y": adata.X[:, j]})
        tab = tab[tab.s != "P00"].pivot(index="s", columns="t", values="y").dropna()
        r = stats.friedmanchisquare(*[tab[c] for c in ["D0", "D14", "D28"]])
        assert res.loc[oid, "statistic"] == pytest.approx(r.statistic, abs=1e-10)
        assert res.loc[oid, "p_value"] == pytest.approx(r.pvalue, abs=1e-12)
        assert res.loc[oid, "n_subjects"] == len(tab)


def test_model_errors():
    adata = make_long(m=2)
    with pytest.raises(DesignError, match="reference 'D99'"):
        op.tl.longitudinal(adata, time="Time", subject="Subject", reference="D99")
    with pytest.raises(DesignError, match="not among formula_terms"):
        op.tl.anova_posthoc(adata, formula_terms="Site", effect="Time")
    with pytest.raises(DesignError, match="method"):
        op.tl.longitudinal(adata, time="Time", subject="Subject", method="gee")
    adata.obs.loc["S000", "Site"] = np.nan
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        res = op.tl.anova(adata, formula_terms="Site")
    assert res.attrs["excluded_samples"] == ["S000"]
    assert any(issubclass(x.category, OlinkpipeWarning) for x in w)


def test_longitudinal_lr_test_matches_statsmodels_ml_fits():
    adata = make_long(seed=8, m=2)
    res = op.tl.longitudinal(
        adata, time="Time", subject="Subject", reference="D0", test="lr", progress=False
    )
    res = res.set_index(["OlinkID", "term"])
    for j, oid in enumerate(adata.var_names):
        df = _frame(adata, j)
        full = smf.mixedlm("y ~ C(Time, Treatment('D0'))", df, groups=df["Subject"]).fit(
            reml=False
        )
        null = smf.mixedlm("y ~ 1", df, groups=df["Subject"]).fit(reml=False)
        lr = 2 * (full.llf - null.llf)
        assert res.loc[(oid, "time"), "statistic"] == pytest.approx(lr, rel=1e-4)
        assert res.loc[(oid, "time"), "p_value"] == pytest.approx(stats.chi2.sf(lr, 2), rel=1e-3)
    assert "likelihood-ratio" in res.attrs["test"]


def test_control_samples_are_left_out_and_reported():
    adata = make_long(seed=9, m=2)
    adata.obs.loc[["S000", "S001"], "is_control"] = True
    with pytest.warns(OlinkpipeWarning, match="2 control sample"):
        res = op.tl.anova(adata, formula_terms="Site")
    assert res.attrs["excluded_samples"] == ["S000", "S001"]
    assert (res["n"] <= adata.n_obs - 2).all()


def test_longitudinal_with_covariate_matches_statsmodels():
    adata = make_long(seed=10, m=2)
    res = op.tl.longitudinal(
        adata, time="Time", subject="Subject", reference="D0", covariates=["age"], progress=False
    )
    res = res.set_index(["OlinkID", "term"])
    for j, oid in enumerate(adata.var_names):
        df = _frame(adata, j)
        fit = smf.mixedlm("y ~ C(Time, Treatment('D0')) + age", df, groups=df["Subject"]).fit()
        nm = "C(Time, Treatment('D0'))[T.D14]"
        assert res.loc[(oid, "D14 - D0"), "estimate"] == pytest.approx(fit.fe_params[nm], rel=1e-4)
