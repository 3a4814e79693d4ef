"""Kaplan–Meier, log-rank, cumulative incidence and Gray's test vs independent references.

References: lifelines fitted directly (KaplanMeierFitter, logrank_test,
multivariate_logrank_test, AalenJohansenFitter), hand formulas, and R values transcribed
below. The R values were produced by hand with R 4.2.2, survival 3.5-3 and cmprsk 2.2-11
(Debian packages) on the 40-patient table ``R_DATA`` written out in this file:

    d <- data.frame(t = R_DATA$t, ev = R_DATA$ev, g = R_DATA$g, s = R_DATA$s)
    x <- cmprsk::cuminc(d$t, d$ev, d$g); x$Tests; timepoints(x, c(3, 5, 10, 20))
    cmprsk::cuminc(d$t, d$ev, d$g, rho = 1)$Tests
    cmprsk::cuminc(d$t, d$ev, d$g, d$s)$Tests          # stratified
    d2 <- d[d$g != "c", ]; cmprsk::cuminc(d2$t, d2$ev, d2$g)$Tests
    cv <- cbind(gb = d$g == "b", gc = d$g == "c", x = R_DATA$x)
    cmprsk::crr(d$t, d$ev, cv, gtol = 1e-10, maxiter = 50)          # $coef, $var
    cmprsk::crr(d$t, d$ev, cv, failcode = 2, gtol = 1e-10, maxiter = 50)
    f <- survfit(Surv(t, ev == 1) ~ g, data = d)       # conf.type = "log" (default)
    summary(f, times = c(3, 5, 10, 20)); survdiff(Surv(t, ev == 1) ~ g, data = d)
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines import AalenJohansenFitter, KaplanMeierFitter
from lifelines.statistics import logrank_test, multivariate_logrank_test
from lifelines.utils import median_survival_times
from scipy import stats

from olinkpipe import clinical
from olinkpipe.errors import DesignError, MissingColumnError, OlinkpipeWarning, ValidationError

R_DATA = pd.DataFrame(
    {
        "t": [
            8,
            11,
            7,
            10,
            3,
            35,
            1,
            29,
            7,
            4,
            6,
            4,
            10,
            12,
            20,
            3,
            32,
            8,
            4,
            10,
            2,
            2,
            13,
            9,
            23,
            6,
            6,
            13,
            6,
            1,
            4,
            11,
            7,
            15,
            1,
            10,
            4,
            5,
            32,
            15,
        ],
        "ev": [
            2,
            1,
            1,
            0,
            1,
            1,
            2,
            0,
            1,
            0,
            0,
            0,
            0,
            2,
            0,
            2,
            1,
            1,
            1,
            1,
            0,
            1,
            0,
            1,
            0,
            2,
            0,
            1,
            0,
            2,
            1,
            0,
            2,
            2,
            2,
            1,
            0,
            0,
            2,
            1,
        ],
        "g": ["a"] * 14 + ["b"] * 13 + ["c"] * 13,
        "s": [
            1,
            1,
            1,
            2,
            2,
            2,
            2,
            2,
            1,
            1,
            2,
            1,
            1,
            1,
            2,
            1,
            2,
            2,
            2,
            1,
            2,
            2,
            1,
            1,
            1,
            2,
            1,
            1,
            2,
            1,
            2,
            1,
            2,
            1,
            1,
            2,
            1,
            2,
            2,
            1,
        ],
    }  # fmt: skip
)
R_DATA["e"] = (R_DATA["ev"] == 1).astype(int)
R_DATA["x"] = [-0.63, 0.18, -0.84, 1.6, 0.33, -0.82, 0.49, 0.74, 0.58, -0.31, 1.51, 0.39,
               -0.62, -2.21, 1.12, -0.04, -0.02, 0.94, 0.82, 0.59, 0.92, 0.78, 0.07, -1.99,
               0.62, -0.06, -0.16, -1.47, -0.48, 0.42, 1.36, -0.1, 0.39, -0.05, -1.38, -0.41,
               -0.39, -0.06, 1.1, 0.76]  # fmt: skip
TIMES = [3, 5, 10, 20]


def _cohort(seed: int = 1, n1: int = 30, n2: int = 40, ties: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = n1 + n2
    arm = np.repeat(["CAR-T", "control"], [n1, n2])
    t_rel = rng.exponential(np.where(arm == "CAR-T", 60.0, 25.0))
    t_nrm = rng.exponential(50.0, n)
    cens = rng.uniform(5, 60, n)
    t = np.minimum.reduce([t_rel, t_nrm, cens])
    status = np.select([t == t_rel, t == t_nrm], [1, 2], 0)
    if ties:
        t = np.ceil(t)
    return pd.DataFrame({"time": t, "status": status, "arm": arm, "dead": (status > 0) * 1})


# --------------------------------------------------------------------------- Kaplan–Meier
def test_km_matches_lifelines_log_log():
    df = _cohort(ties=True)
    km = clinical.kaplan_meier(df, time="time", event="dead", group="arm")
    assert km.attrs["ci"] == "log-log"
    for g, sub in df.groupby("arm"):
        kmf = KaplanMeierFitter().fit(sub["time"], sub["dead"])
        mine = km.loc[km["group"] == g]
        np.testing.assert_allclose(mine["time"], kmf.survival_function_.index, rtol=0, atol=0)
        np.testing.assert_allclose(mine["estimate"], kmf.survival_function_.iloc[:, 0], atol=1e-12)
        ci = kmf.confidence_interval_.to_numpy()
        alive = mine["estimate"].to_numpy() > 0
        np.testing.assert_allclose(mine["ci_low"][alive], ci[alive, 0], atol=1e-12)
        np.testing.assert_allclose(mine["ci_high"][alive], ci[alive, 1], atol=1e-12)
        np.testing.assert_array_equal(mine["n_at_risk"], kmf.event_table["at_risk"])
        med = [m for m in km.attrs["median"] if m["group"] == g][0]
        assert med["median"] == kmf.median_survival_time_
        lo, hi = median_survival_times(kmf.confidence_interval_).iloc[0]
        assert med["ci_low"] == lo and med["ci_high"] == hi


def test_km_log_ci_matches_r_survfit():
    km = clinical.kaplan_meier(R_DATA, time="t", event="e", group="g", at=TIMES, ci="log")
    assert km.attrs["ci"] == "log"
    # summary(survfit(Surv(t, ev == 1) ~ g), times = c(3, 5, 10, 20)): surv, lower, upper
    r_surv = [0.923076923077, 0.923076923077, 0.717948717949, 0.538461538462,
              0.923076923077, 0.830769230769, 0.474725274725, 0.474725274725,
              1.0, 0.909090909091, 0.757575757576, 0.378787878788]  # fmt: skip
    r_low = [0.789018575865, 0.789018575865, 0.489579049660, 0.271935128970,
             0.789018575865, 0.640926605233, 0.237630200535, 0.237630200535,
             1.0, 0.754133845082, 0.505944459037, 0.131249625198]  # fmt: skip
    r_high = [1, 1, 1, 1, 1, 1, 0.948381501827, 0.948381501827, 1, 1, 1, 1]
    r_n = [13, 10, 6, 2, 11, 9, 5, 3, 11, 9, 6, 1]
    np.testing.assert_allclose(km["estimate"], r_surv, atol=1e-11)
    np.testing.assert_allclose(km["ci_low"], r_low, atol=1e-11)
    np.testing.assert_allclose(km["ci_high"], r_high, atol=1e-11)
    np.testing.assert_array_equal(km["n_at_risk"], r_n)
    assert list(km.columns) == ["group", "time", "estimate", "ci_low", "ci_high", "n_at_risk"]
    # R: median 35 / 10 / 15; lower limits 7 / 8 / 13; upper NA (never reached)
    med = pd.DataFrame(km.attrs["median"])
    assert med["median"].tolist() == [35, 10, 15]
    assert med["ci_low"].tolist() == [7, 8, 13]
    assert np.isinf(med["ci_high"]).all()


def test_km_log_log_ci_matches_r_survfit():
    # summary(survfit(Surv(t, ev == 1) ~ g, conf.type = "log-log"), times = c(3, 5, 10, 20))
    # lower / upper; R gives NA for group c at 3 months where S = 1 (lifelines, and we, 1)
    km = clinical.kaplan_meier(R_DATA, time="t", event="e", group="g", at=TIMES)
    r_low = [0.566359466131, 0.566359466131, 0.349181661101, 0.154687887628,
             0.566359466131, 0.471738410589, 0.151660355451, 0.151660355451,
             np.nan, 0.508080205770, 0.304706670498, 0.055437356373]  # fmt: skip
    r_high = [0.988794062304, 0.988794062304, 0.900906203137, 0.814381688832,
              0.988794062304, 0.955279509761, 0.745064541663, 0.745064541663,
              np.nan, 0.986673822668, 0.937199145125, 0.721940906668]  # fmt: skip
    defined = ~np.isnan(r_low)
    np.testing.assert_allclose(km["ci_low"][defined], np.array(r_low)[defined], atol=1e-11)
    np.testing.assert_allclose(km["ci_high"][defined], np.array(r_high)[defined], atol=1e-11)
    assert km.loc[~defined, ["estimate", "ci_low", "ci_high"]].to_numpy().tolist() == [[1, 1, 1]]
    # quantile(fit, 0.5): medians 35 / 10 / 15, lower limits 7 / 4 / 10, upper NA
    med = pd.DataFrame(km.attrs["median"])
    assert med["median"].tolist() == [35, 10, 15] and med["ci_low"].tolist() == [7, 4, 10]
    assert np.isinf(med["ci_high"]).all()


def test_km_log_ci_hand_greenwood():
    # 6 patients: events at 1, 2, 3, 5; censored at 2, 4
    df = pd.DataFrame({"t": [1, 2, 2, 3, 4, 5], "e": [1, 1, 0, 1, 0, 1]})
    km = clinical.kaplan_meier(df, time="t", event="e", at=[3], ci="log", alpha=0.1)
    s = (5 / 6) * (4 / 5) * (2 / 3)
    var = 1 / (6 * 5) + 1 / (5 * 4) + 1 / (3 * 2)
    z = 1.6448536269514722
    assert km["estimate"].iloc[0] == pytest.approx(s, abs=1e-14)
    assert km["ci_low"].iloc[0] == pytest.approx(s * np.exp(-z * np.sqrt(var)), abs=1e-12)
    assert km["ci_high"].iloc[0] == pytest.approx(min(1, s * np.exp(z * np.sqrt(var))))
    assert km["n_at_risk"].iloc[0] == 3


def test_km_at_times_beyond_follow_up_and_single_group():
    df = pd.DataFrame({"t": [1.0, 2.0, 3.0], "e": [1, 0, 1]})
    km = clinical.kaplan_meier(df, time="t", event="e", at=[0, 2.5, 3, 10])
    assert km["group"].eq("all").all()
    np.testing.assert_allclose(km["estimate"][:3], [1.0, 2 / 3, 0.0])
    assert np.isnan(km["estimate"].iloc[3])
    assert km["n_at_risk"].tolist() == [3, 1, 1, 0]


# --------------------------------------------------------------------------- log-rank
def test_logrank_two_groups_matches_lifelines():
    df = _cohort(seed=3, ties=True)
    res = clinical.logrank(df, time="time", event="dead", group="arm")
    a, b = (df.loc[df["arm"] == g] for g in ("CAR-T", "control"))
    ref = logrank_test(a["time"], b["time"], a["dead"], b["dead"])
    assert list(res.columns) == ["statistic", "df", "p_value"]
    assert res["statistic"].iloc[0] == pytest.approx(ref.test_statistic, rel=1e-10)
    assert res["p_value"].iloc[0] == pytest.approx(ref.p_value, rel=1e-10)
    assert res["df"].iloc[0] == 1
    obs = res.attrs["observed"]
    assert obs["CAR-T"] == a["dead"].sum() and obs["control"] == b["dead"].sum()
    assert sum(res.attrs["expected"].values()) == pytest.approx(df["dead"].sum())


def test_logrank_three_groups_matches_lifelines_and_r():
    res = clinical.logrank(R_DATA, time="t", event="e", group="g")
    ref = multivariate_logrank_test(R_DATA["t"], R_DATA["g"], R_DATA["e"])
    assert res["statistic"].iloc[0] == pytest.approx(ref.test_statistic, rel=1e-10)
    assert res["df"].iloc[0] == 2
    # R survdiff: p = 0.7109433255; expected 5.71290267300, 4.56798759235, 4.71910973465
    assert res["p_value"].iloc[0] == pytest.approx(0.7109433255, abs=1e-9)
    np.testing.assert_allclose(
        list(res.attrs["expected"].values()), [5.71290267300, 4.56798759235, 4.71910973465]
    )


# --------------------------------------------------------------------------- cumulative incidence
def test_cif_point_estimates_match_lifelines_aalen_johansen():
    df = _cohort(seed=5)  # continuous times: lifelines would jitter ties
    cif = clinical.cumulative_incidence(df, time="time", event="status", group="arm")
    for g, sub in df.groupby("arm"):
        for cause in (1, 2):
            aj = AalenJohansenFitter(calculate_variance=False).fit(
                sub["time"], sub["status"], event_of_interest=cause
            )
            ref = aj.cumulative_density_.iloc[:, 0]
            mine = cif.loc[(cif["group"] == g) & (cif["cause"] == cause)]
            idx = np.searchsorted(mine["time"].to_numpy(), ref.index.to_numpy(), side="right")
            got = mine["estimate"].to_numpy()[idx - 1]
            np.testing.assert_allclose(got, ref.to_numpy(), atol=1e-12)


def test_cif_matches_cmprsk_timepoints():
    cif = clinical.cumulative_incidence(R_DATA, time="t", event="ev", group="g", at=TIMES)
    assert list(cif.columns)[:7] == [
        "group", "cause", "time", "estimate", "variance", "ci_low", "ci_high",
    ]  # fmt: skip
    # timepoints(cuminc(t, ev, g), c(3, 5, 10, 20)): rows "a 1", "b 1", "c 1", "a 2", ...
    est = {
        ("a", 1): [0.0714285714286, 0.0714285714286, 0.261904761905, 0.404761904762],
        ("b", 1): [0.0769230769231, 0.1608391608392, 0.448551448551, 0.448551448551],
        ("c", 1): [0.0, 0.0769230769231, 0.186813186813, 0.461538461538],
        ("a", 2): [0.0714285714286, 0.0714285714286, 0.166666666667, 0.309523809524],
        ("b", 2): [0.0839160839161, 0.0839160839161, 0.167832167832, 0.167832167832],
        ("c", 2): [0.1538461538462, 0.1538461538462, 0.263736263736, 0.401098901099],
    }
    var = {
        ("a", 1): [0.00513223040696, 0.00513223040696, 0.0193653179001, 0.0336490275331],
        ("b", 1): [0.00591715976331, 0.01200254291163, 0.0266567398635, 0.0266567398635],
        ("c", 1): [0.0, 0.00600681369912, 0.0172873524522, 0.0390894209576],
        ("a", 2): [0.00510204081633, 0.00510204081633, 0.0135663607668, 0.0330171226626],
        ("b", 2): [0.00709081128662, 0.00709081128662, 0.0130284012801, 0.0130284012801],
        ("c", 2): [0.01084812623274, 0.01084812623274, 0.0204099929375, 0.0353340188505],
    }
    for (g, c), values in est.items():
        sub = cif.loc[(cif["group"] == g) & (cif["cause"] == c)]
        np.testing.assert_allclose(sub["estimate"], values, atol=1e-12)
        np.testing.assert_allclose(sub["variance"], var[(g, c)], atol=1e-13)


def test_cif_log_log_and_linear_ci_hand_formula():
    cif = clinical.cumulative_incidence(R_DATA, time="t", event="ev", group="g", at=[10])
    f, v = cif["estimate"].to_numpy(), cif["variance"].to_numpy()
    z = 1.959963984540054
    lo = f ** np.exp(z * np.sqrt(v) / (f * np.abs(np.log(f))))
    hi = f ** np.exp(-z * np.sqrt(v) / (f * np.abs(np.log(f))))
    np.testing.assert_allclose(cif["ci_low"], lo, rtol=1e-12)
    np.testing.assert_allclose(cif["ci_high"], hi, rtol=1e-12)
    assert (cif["ci_low"] < f).all() and (cif["ci_high"] > f).all()
    lin = clinical.cumulative_incidence(
        R_DATA, time="t", event="ev", group="g", at=[3], ci="linear"
    )
    f3, v3 = lin["estimate"].to_numpy(), lin["variance"].to_numpy()
    np.testing.assert_allclose(lin["ci_low"], np.clip(f3 - z * np.sqrt(v3), 0, 1))
    np.testing.assert_allclose(lin["ci_high"], np.clip(f3 + z * np.sqrt(v3), 0, 1))


def test_cif_without_competing_events_is_one_minus_km():
    df = _cohort(seed=8, ties=True)
    df["status"] = df["dead"]
    cif = clinical.cumulative_incidence(df, time="time", event="status", group="arm")
    km = clinical.kaplan_meier(df, time="time", event="dead", group="arm")
    np.testing.assert_allclose(cif["estimate"], 1 - km["estimate"], atol=1e-12)
    assert cif["cause"].unique().tolist() == [1]


def test_cif_beyond_last_follow_up_is_nan():
    df = pd.DataFrame({"t": [1.0, 2, 3, 4], "s": [1, 2, 0, 1]})
    cif = clinical.cumulative_incidence(df, time="t", event="s", at=[0, 4, 5])
    c1 = cif.loc[cif["cause"] == 1]
    np.testing.assert_allclose(c1["estimate"][:2], [0.0, 0.25 + 0.5])
    assert np.isnan(c1["estimate"].iloc[2]) and c1["n_at_risk"].tolist() == [4, 1, 0]


# --------------------------------------------------------------------------- Gray's test
@pytest.mark.parametrize(
    ("kwargs", "subset", "expected"),
    [
        ({}, None, [(0.986466001869, 0.610648970708), (1.647091381853, 0.438872785252)]),
        ({"rho": 1}, None, [(1.05654282445, 0.589623304921), (1.54864672666, 0.461015615559)]),
        ({"strata": "s"}, None, [(1.03571626293, 0.595795297511), (1.28797782888, 0.5251932891)]),
        ({}, ["a", "b"], [(0.629760976000, 0.427443003013), (0.224348268849, 0.635746542802)]),
    ],
    ids=["3groups", "rho1", "strata", "2groups"],
)
def test_gray_matches_cmprsk(kwargs, subset, expected):
    df = R_DATA if subset is None else R_DATA.loc[R_DATA["g"].isin(subset)]
    res = clinical.gray_test(df, time="t", event="ev", group="g", cause=None, **kwargs)
    assert list(res.columns) == ["cause", "statistic", "df", "p_value"]
    assert res["cause"].tolist() == [1, 2]
    np.testing.assert_allclose(res["statistic"], [e[0] for e in expected], rtol=1e-10)
    np.testing.assert_allclose(res["p_value"], [e[1] for e in expected], rtol=1e-9)
    assert (res["df"] == df["g"].nunique() - 1).all()


def test_gray_default_tests_cause_one_and_is_invariant_to_group_order():
    res = clinical.gray_test(R_DATA, time="t", event="ev", group="g")
    assert res["cause"].tolist() == [1]
    relabel = R_DATA.assign(g=R_DATA["g"].map({"a": "z", "b": "y", "c": "x"}))
    res2 = clinical.gray_test(relabel, time="t", event="ev", group="g")
    assert res2["statistic"].iloc[0] == pytest.approx(res["statistic"].iloc[0], rel=1e-12)


def test_gray_type_one_error_under_the_null():
    # 400 null data sets of 25 + 25 patients with relapse, NRM and censoring: the rejection
    # rate at 5 % must lie in a binomial 99.9 % band around 0.05 (about 0.021-0.088).
    rng = np.random.default_rng(11)
    reps, n = 400, 50
    pvals = np.empty(reps)
    grp = np.repeat(["A", "B"], n // 2)
    for r in range(reps):
        t_rel, t_nrm, cens = rng.exponential(20, n), rng.exponential(30, n), rng.uniform(5, 40, n)
        t = np.minimum.reduce([t_rel, t_nrm, cens])
        s = np.select([t == t_rel, t == t_nrm], [1, 2], 0)
        df = pd.DataFrame({"t": np.round(t, 1), "s": s, "g": grp})
        pvals[r] = clinical.gray_test(df, time="t", event="s", group="g")["p_value"].iloc[0]
    rate = (pvals < 0.05).mean()
    assert 0.021 <= rate <= 0.088, rate
    # and the p-values are roughly uniform: the median near 0.5
    assert 0.4 < np.median(pvals) < 0.6


def test_gray_detects_a_real_difference():
    df = _cohort(seed=2, n1=60, n2=60)
    res = clinical.gray_test(df, time="time", event="status", group="arm")
    assert res["p_value"].iloc[0] < 0.05


# --------------------------------------------------------------------------- errors
def test_errors_and_exclusions():
    df = R_DATA.copy()
    with pytest.raises(MissingColumnError, match="nope"):
        clinical.kaplan_meier(df, time="nope", event="e")
    with pytest.raises(ValidationError, match="event codes must be 0 = censored, 1 = event"):
        clinical.kaplan_meier(df, time="t", event="ev")
    bad = df.assign(ev=df["ev"].where(df.index != 3, -1))
    with pytest.raises(ValidationError, match="Rows: 3"):
        clinical.cumulative_incidence(bad, time="t", event="ev")
    bad = df.assign(ev=df["ev"].astype(float).where(df.index != 4, 1.5))
    with pytest.raises(ValidationError, match="event codes"):
        clinical.gray_test(bad, time="t", event="ev", group="g")
    neg = df.assign(t=df["t"].where(df.index != 7, -2))
    with pytest.raises(ValidationError, match=">= 0.*Rows: 7"):
        clinical.logrank(neg, time="t", event="e", group="g")
    with pytest.raises(ValidationError, match="not numeric"):
        clinical.kaplan_meier(df.assign(t="x"), time="t", event="e")
    one = df.assign(g="a")
    with pytest.raises(DesignError, match="at least two levels"):
        clinical.logrank(one, time="t", event="e", group="g")
    with pytest.raises(DesignError, match="at least two levels"):
        clinical.gray_test(one, time="t", event="ev", group="g")
    with pytest.raises(DesignError, match="ci="):
        clinical.kaplan_meier(df, time="t", event="e", ci="plain")
    with pytest.raises(DesignError, match="ci="):
        clinical.cumulative_incidence(df, time="t", event="ev", ci="log")
    with pytest.raises(ValidationError, match="at="):
        clinical.kaplan_meier(df, time="t", event="e", at=[-1])
    with pytest.raises(ValidationError, match="cause"):
        clinical.gray_test(df, time="t", event="ev", group="g", cause=0)
    holes = df.copy()
    holes.loc[[2, 9], "t"] = np.nan
    holes.loc[5, "g"] = None
    with pytest.warns(OlinkpipeWarning, match="excluded 3 patient row"):
        km = clinical.kaplan_meier(holes, time="t", event="e", group="g")
    assert km.attrs["excluded"] == ["2", "5", "9"]
    assert sum(km.attrs["n"].values()) == 37


def test_gray_absent_cause_warns_and_cif_still_reports_cause_one():
    df = pd.DataFrame({"t": [1.0, 2, 3, 4], "s": [2, 0, 2, 0], "g": ["a", "a", "b", "b"]})
    with pytest.warns(OlinkpipeWarning, match="no events of cause 1"):
        res = clinical.gray_test(df, time="t", event="s", group="g")
    assert np.isnan(res["p_value"].iloc[0])
    cif = clinical.cumulative_incidence(df, time="t", event="s", at=[4])
    assert cif["cause"].tolist() == [1, 2]
    assert cif["estimate"].tolist() == [0.0, 0.25 + 0.75 * 1 / 2]


# R 4.2.2, cmprsk 2.2-11, two competing codes (2 and 3), ties of all kinds at t = 4:
#   t <- c(4,4,4,4,3,34,1,29,6,4,6,4,9,11,19,3,32,8,4,9,1,1,13,8,22,5,6,12,6,1)
#   e <- c(1,0,3,2,0,2,0,0,2,1,2,1,2,0,1,1,2,1,1,0,1,0,0,2,1,3,1,1,1,1)
#   g <- rep(c("A", "B"), each = 15); x <- cuminc(t, e, g); x$Tests; timepoints(x, c(4, 10))
CR3 = pd.DataFrame(
    {
        "t": [4, 4, 4, 4, 3, 34, 1, 29, 6, 4, 6, 4, 9, 11, 19, 3, 32, 8, 4, 9, 1, 1, 13, 8, 22,
              5, 6, 12, 6, 1],
        "e": [1, 0, 3, 2, 0, 2, 0, 0, 2, 1, 2, 1, 2, 0, 1, 1, 2, 1, 1, 0, 1, 0, 0, 2, 1, 3, 1,
              1, 1, 1],
        "g": ["A"] * 15 + ["B"] * 15,
    }
)  # fmt: skip


def test_two_competing_codes_match_cmprsk():
    res = clinical.gray_test(CR3, time="t", event="e", group="g", cause=None)
    assert res["cause"].tolist() == [1, 2, 3]
    np.testing.assert_allclose(
        res["statistic"], [3.092197263995, 1.685129420055, 0.014354062885], rtol=1e-10
    )
    np.testing.assert_allclose(
        res["p_value"], [0.0786685132544, 0.1942442651719, 0.9046348940029], rtol=1e-10
    )
    cif = clinical.cumulative_incidence(CR3, time="t", event="e", group="g", at=[4, 10])
    est = {
        ("A", 1): [0.2307692307692, 0.2307692307692],
        ("B", 1): [0.2777777777778, 0.4944444444444],
        ("A", 2): [0.0769230769231, 0.3406593406593],
        ("B", 2): [0.0, 0.0722222222222],
        ("A", 3): [0.0769230769231, 0.0769230769231],
        ("B", 3): [0.0, 0.0722222222222],
    }
    var = {
        ("A", 1): [0.01479289940828, 0.01479289940828],
        ("B", 1): [0.01525875639512, 0.01997875026520],
        ("A", 2): [0.00591715976331, 0.02116491567041],
        ("B", 2): [0.0, 0.00561932009601],
        ("A", 3): [0.00591715976331, 0.00591715976331],
        ("B", 3): [0.0, 0.00536863694667],
    }
    for (g, c), values in est.items():
        sub = cif.loc[(cif["group"] == g) & (cif["cause"] == c)]
        np.testing.assert_allclose(sub["estimate"], values, atol=1e-12)
        np.testing.assert_allclose(sub["variance"], var[(g, c)], atol=1e-13)


# --------------------------------------------------------------------------- Fine–Gray
def test_fine_gray_matches_cmprsk_crr():
    fg = clinical.fine_gray(R_DATA, time="t", event="ev", covariates=["g", "x"])
    assert fg["term"].tolist() == ["g[b]", "g[c]", "x"]
    np.testing.assert_allclose(
        fg["coef"], [0.2944233677231, -0.3149380013148, 0.0728595754531], atol=1e-8
    )
    r_var = np.array(
        [
            [0.3425691136091, 0.1754591053614, -0.0389429965024],
            [0.1754591053614, 0.3944201311488, -0.0268772219325],
            [-0.0389429965024, -0.0268772219325, 0.0885111204734],
        ]
    )
    np.testing.assert_allclose(fg.attrs["vcov"], r_var, atol=1e-8)
    np.testing.assert_allclose(fg["se"], np.sqrt(np.diag(r_var)), atol=1e-8)
    np.testing.assert_allclose(fg["hr"], np.exp(fg["coef"]))
    np.testing.assert_allclose(fg["ci_low"], np.exp(fg["coef"] - 1.959963984540054 * fg["se"]))
    np.testing.assert_allclose(
        fg["p_value"], 2 * stats.norm.sf(np.abs(fg["coef"] / fg["se"])), rtol=1e-12
    )
    assert fg.attrs["loglik"] == pytest.approx(-44.9910781055, abs=1e-8)
    fg2 = clinical.fine_gray(R_DATA, time="t", event="ev", covariates=["g", "x"], cause=2)
    np.testing.assert_allclose(
        fg2["coef"], [-0.284048699890, 0.704677598539, -0.318545408770], atol=1e-8
    )
    np.testing.assert_allclose(fg2["se"], [0.916220718388, 0.680197134861, 0.275038795694],
                               atol=1e-8)  # fmt: skip
    assert fg2.attrs["loglik"] == pytest.approx(-30.9944226691, abs=1e-8)


def test_fine_gray_errors():
    with pytest.raises(ValidationError, match="no events of cause 3"):
        clinical.fine_gray(R_DATA, time="t", event="ev", covariates=["x"], cause=3)
    with pytest.raises(DesignError, match="do not vary"):
        clinical.fine_gray(R_DATA.assign(k=1.0), time="t", event="ev", covariates=["k"])
    with pytest.raises(MissingColumnError):
        clinical.fine_gray(R_DATA, time="t", event="ev", covariates=["nope"])


def test_boolean_events_and_categorical_group_order():
    df = R_DATA.assign(
        e=R_DATA["e"].astype(bool),
        g=pd.Categorical(R_DATA["g"], categories=["c", "a", "b"]),
    )
    km = clinical.kaplan_meier(df, time="t", event="e", group="g", at=[10])
    assert km["group"].tolist() == ["c", "a", "b"]
    ref = clinical.kaplan_meier(R_DATA, time="t", event="e", group="g", at=[10])
    np.testing.assert_allclose(km["estimate"], ref["estimate"].to_numpy()[[2, 0, 1]])


def test_at_times_read_the_right_continuous_step_function():
    # at= on a jump time gives the value after the jump; between jumps the last value; the
    # full-curve frame and at= agree everywhere (KM and cumulative incidence)
    df = _cohort(seed=4, ties=True)
    km = clinical.kaplan_meier(df, time="time", event="dead", group="arm")
    cif = clinical.cumulative_incidence(df, time="time", event="status", group="arm")
    for g in ("CAR-T", "control"):
        curve = km.loc[km["group"] == g]
        t = curve["time"].to_numpy()
        mids = (t[1:] + t[:-1]) / 2
        at = clinical.kaplan_meier(df, time="time", event="dead", group="arm", at=t)
        at = at.loc[at["group"] == g]
        for col in ("estimate", "ci_low", "ci_high", "n_at_risk"):
            np.testing.assert_array_equal(at[col].to_numpy(), curve[col].to_numpy())
        mid = clinical.kaplan_meier(df, time="time", event="dead", group="arm", at=mids)
        mid = mid.loc[mid["group"] == g]
        np.testing.assert_array_equal(mid["estimate"], curve["estimate"].to_numpy()[:-1])
        # n at risk just after a time = those with follow-up beyond it
        np.testing.assert_array_equal(
            mid["n_at_risk"], [(df.loc[df["arm"] == g, "time"] >= m).sum() for m in mids]
        )
        c1 = cif.loc[(cif["group"] == g) & (cif["cause"] == 1)]
        at = clinical.cumulative_incidence(
            df, time="time", event="status", group="arm", at=c1["time"].to_numpy()
        )
        at = at.loc[(at["group"] == g) & (at["cause"] == 1)]
        for col in ("estimate", "variance", "n_at_risk"):
            np.testing.assert_array_equal(at[col].to_numpy(), c1[col].to_numpy())


def test_edge_cohorts_group_without_events_all_censored_single_patient():
    # R: survdiff(Surv(1:6, c(1, 1, 0, 0, 0, 0)) ~ rep(c("a", "b"), each = 3))$chisq
    #    = 2.469387755 (group b has no events)
    noev = pd.DataFrame({"t": [1.0, 2, 3, 4, 5, 6], "e": [1, 1, 0, 0, 0, 0], "g": list("aaabbb")})
    lr = clinical.logrank(noev, time="t", event="e", group="g")
    assert lr["statistic"].iloc[0] == pytest.approx(2.469387755, abs=1e-9)
    km = clinical.kaplan_meier(noev, time="t", event="e", group="g", at=[3])
    assert km["estimate"].tolist() == [pytest.approx((2 / 3) * (1 / 2)), 1.0]
    # all censored: S = 1 throughout, median not reached
    cens = noev.assign(e=0)
    km = clinical.kaplan_meier(cens, time="t", event="e")
    assert (km["estimate"] == 1).all() and km.attrs["median"][0]["median"] == np.inf
    # one patient: R cuminc(c(3), c(1)) -> estimate 1 at t = 3; beyond follow-up NaN
    one = pd.DataFrame({"t": [3.0], "e": [1]})
    km = clinical.kaplan_meier(one, time="t", event="e", at=[0, 3, 4])
    np.testing.assert_array_equal(km["estimate"], [1.0, 0.0, np.nan])
    cif = clinical.cumulative_incidence(one, time="t", event="e", at=[2.9, 3])
    assert cif["estimate"].tolist() == [0.0, 1.0]
