"""tl.nonparametric / nonparametric_posthoc: Kruskal–Wallis, Friedman, Dunn, paired Wilcoxon.

References: scipy.stats (kruskal, friedmanchisquare, wilcoxon) per assay on random designs
with ties and missing values, and R 4.2.2 numbers written in with the call that made them
(stats::kruskal.test, stats::friedman.test, stats::wilcox.test, FSA 0.9.6 ``dunnTest``
over dunn.test 1.3.7, rstatix 0.7.2 ``wilcox_test``: the functions OlinkAnalyze 5.0.2's
olink_one_non_parametric(_posthoc) calls).
"""

from __future__ import annotations

import importlib
import itertools
import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import stats

import olinkpipe as op
from olinkpipe.errors import DesignError, MissingColumnError, OlinkpipeWarning

npm = importlib.import_module("olinkpipe.tl.nonparametric")  # the module, not the function
NA = np.nan


def _quiet(func, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return func(*args, **kwargs)


def _adata(x, obs, names=None):
    names = names or [f"OID{i:05d}" for i in range(x.shape[1])]
    var = pd.DataFrame(
        {"Assay": [f"A{i}" for i in range(x.shape[1])], "Panel": "P"},
        index=pd.Index(names, name="OlinkID"),
    )
    obs = obs.copy()
    obs.index = [f"S{i}" for i in range(len(obs))]
    return ad.AnnData(np.asarray(x, dtype=float), obs=obs, var=var)


# --------------------------------------------------------------------------------------
# the small design written into R (plus samples that must be left out)

KW_GROUPS = ["B", "A", "C", "A", "B", "C", "A", "B", "C", "A", "B", "C", "A", "C"]
KW_X = np.array(
    [
        [-0.4, -1.1, -0.4, NA, 0.5, 0.5, 0, 0, 0.2, 0.7, -0.2, 0.9, -0.4, -1.1],
        [-1.1, 2, 0.6, -0.9, -0.3, 1.1, 0.4, -0.8, -0.1, -0.7, NA, 0.8, 1.9, 0],
        [0.5, 1, 1.5, 1, 1, NA, 0, 0, 0, 0.5, 0, 0, 0.5, 0],
    ]
).T


def _kw_adata():
    """The R design, plus a control sample and a sample without a group (both left out)."""
    x = np.vstack([KW_X, [9.0, 9.0, 9.0], [-9.0, -9.0, -9.0]])
    obs = pd.DataFrame(
        {"Site": [*KW_GROUPS, "A", None], "is_control": [False] * 14 + [True, False]}
    )
    return _adata(x, obs)


# R: for x in (x1, x2, x3): kruskal.test(x ~ factor(g)) -> statistic, p.value (df = 2)
R_KW = [
    (0.2722689075630188, 0.87272528338531075),
    (4.219780219780219, 0.12125129001888767),
    (1.0850467289719654, 0.58127961985652632),
]
# R: FSA::dunnTest(x ~ factor(g), data = data.frame(x, g), method = "bh")$res
#    (Comparison, Z, P.unadj, P.adj) and p.adjust(P.unadj, "BH")
R_DUNN = [
    {
        "A - B": (-0.27500954910846342, 0.78330890194850866, 1.0, 0.81660914904108384),
        "A - C": (-0.52179393208720348, 0.60181381496951325, 1.0, 0.81660914904108384),
        "B - C": (-0.23190841426097922, 0.81660914904108384, 0.81660914904108384, 0.81660914904108384),
    },
    {
        "A - B": (1.68770603137858344, 0.091467673437176211, 0.13720151015576432, 0.13720151015576432),
        "A - C": (-0.32479917717646001, 0.745333067330802734, 0.74533306733080273, 0.74533306733080273),
        "B - C": (-1.96899036994168064, 0.048954196945762536, 0.14686259083728762, 0.13720151015576432),
    },
    {
        "A - B": (0.73370140861889199, 0.46313073982173025, 0.69469610973259543, 0.69469610973259543),
        "A - C": (0.98845884216711821, 0.32292798188599026, 0.96878394565797077, 0.69469610973259543),
        "B - C": (0.24168412226141589, 0.80902493349727345, 0.80902493349727345, 0.80902493349727345),
    },
]  # fmt: skip

# Friedman design: 8 subjects x T0, T1, T2; assay 0 misses S3 at T1
FR_A = np.array(
    [
        [[0.7, -0.7, -2], [-0.5, -0.1, 1], [3, NA, -0.5], [0.4, -0.5, -0.6],
         [-1.3, -1.3, 0], [0.2, 0.5, -1], [-0.7, -0.1, 0.2], [-0.6, -0.1, 1.5]],
        [[0, 1, -1], [0, 0, -2], [1, -1, -2], [-1, -1, 0],
         [2, 0, 1], [0, 0, 1], [-1, 0, 0], [0, -2, 0]],
    ]
)  # fmt: skip


def _fr_adata():
    """The R design in long form, plus subjects that must be left out: S9 has no T2
    sample, S10 two T0 samples, and a control sample."""
    rows, subj, time = [], [], []
    for s in range(8):
        for t in range(3):
            rows.append(FR_A[:, s, t])
            subj.append(f"S{s + 1}")
            time.append(f"T{t}")
    extra = [("S9", "T0"), ("S9", "T1"), ("S10", "T0"), ("S10", "T0"), ("S10", "T1")]
    extra += [("S10", "T2")]
    for s, t in extra:
        rows.append([5.0, 5.0])
        subj.append(s)
        time.append(t)
    rows.append([7.0, 7.0])
    subj.append("C")
    time.append("T1")
    obs = pd.DataFrame(
        {"Subject": subj, "Time": time, "is_control": [False] * (len(rows) - 1) + [True]}
    )
    order = np.random.default_rng(3).permutation(len(rows))  # order must not matter
    return _adata(np.array(rows)[order], obs.iloc[order])


# R: ok <- complete.cases(a); friedman.test(a[ok, ]) -> statistic, p.value, n
R_FR = [
    (0.51851851851851849, 0.77162294671541098, 7),
    (0.29629629629629628, 0.86230335683325876, 8),
]
# R: wilcox.test(a[ok, i], a[ok, j], paired = TRUE, conf.int = TRUE) -> V, p, estimate;
#    rstatix::wilcox_test(long, NPX ~ Time, p.adjust.method = "BH", paired = TRUE,
#    detailed = TRUE) -> p.adj
R_WX = [
    {
        "T0 - T1": (11, 1.0, 0.14994412133796808, 1.0),
        "T0 - T2": (12, 0.81250000000000011, -0.15000000000000002, 1.0),
        "T1 - T2": (11.5, 0.73486059920178859, -0.10441512519628776, 1.0),
    },
    {
        "T0 - T1": (12, 0.26954763815516597, 0.500009464565627, 0.645),
        "T0 - T2": (19, 0.42990617506590406, 0.50001529204723993, 0.645),
        "T1 - T2": (14.5, 1.0, 2.7927763408725116e-05, 1.0),
    },
]


# --------------------------------------------------------------------------------------
# against R


def test_kruskal_matches_r_and_leaves_out_controls_and_missing_groups():
    a = _kw_adata()
    with pytest.warns(OlinkpipeWarning) as rec:
        res = op.tl.nonparametric(a, groupby="Site")
    text = " ".join(str(w.message) for w in rec)
    assert "1 control sample(s): 'S14'" in text and "missing ['Site']: 'S15'" in text
    res = res.set_index("OlinkID").loc[a.var_names]
    np.testing.assert_allclose(res["statistic"], [s for s, _ in R_KW], rtol=1e-13)
    np.testing.assert_allclose(res["p_value"], [p for _, p in R_KW], rtol=1e-12)
    assert res["df"].tolist() == [2.0, 2.0, 2.0]
    assert res["n"].tolist() == [13, 13, 13]
    np.testing.assert_allclose(res["p_adj"], stats.false_discovery_control(res["p_value"]))
    assert set(res.attrs["excluded_samples"]) == {"S14", "S15"}
    assert res.attrs["method"] == "kruskal" and res.attrs["levels"] == ["A", "B", "C"]


@pytest.mark.parametrize("adjust", ["oa", "bh"])
def test_dunn_matches_fsa_dunntest(adjust):
    a = _kw_adata()
    res = _quiet(op.tl.nonparametric_posthoc, a, groupby="Site", adjust=adjust)
    assert len(res) == 9
    col = 2 if adjust == "oa" else 3
    for i, oid in enumerate(a.var_names):
        sub = res[res["OlinkID"] == oid].set_index("contrast")
        assert sorted(sub.index) == ["A - B", "A - C", "B - C"]
        for contrast, ref in R_DUNN[i].items():
            row = sub.loc[contrast]
            assert row["estimate"] == pytest.approx(ref[0], rel=1e-13)
            assert row["statistic"] == row["estimate"]
            assert row["p_value"] == pytest.approx(ref[1], rel=1e-12)
            assert row["p_adj"] == pytest.approx(ref[col], rel=1e-12)
    # sorted by p_adj as OlinkAnalyze
    assert res["p_adj"].is_monotonic_increasing


def test_friedman_matches_r_and_leaves_out_incomplete_subjects():
    a = _fr_adata()
    with pytest.warns(OlinkpipeWarning) as rec:
        res = op.tl.nonparametric(a, groupby="Time", pair="Subject")
    text = " ".join(str(w.message) for w in rec)
    assert "more than one sample at a level" in text and "without a sample at every" in text
    res = res.set_index("OlinkID").loc[a.var_names]
    np.testing.assert_allclose(res["statistic"], [s for s, _, _ in R_FR], rtol=1e-13)
    np.testing.assert_allclose(res["p_value"], [p for _, p, _ in R_FR], rtol=1e-12)
    assert res["n"].tolist() == [n for _, _, n in R_FR]
    assert res["df"].tolist() == [2.0, 2.0]
    assert res.attrs["method"] == "friedman"
    assert dict(res.attrs["excluded_subjects"]) == {
        "S10": "more than one sample per level",
        "S9": "no sample at level(s) T2",
    }


@pytest.mark.parametrize("adjust", ["oa", "bh"])
def test_paired_wilcoxon_posthoc_matches_r(adjust):
    a = _fr_adata()
    res = _quiet(op.tl.nonparametric_posthoc, a, groupby="Time", pair="Subject", adjust=adjust)
    for i, oid in enumerate(a.var_names):
        sub = res[res["OlinkID"] == oid].set_index("contrast")
        bh = stats.false_discovery_control([v[1] for v in R_WX[i].values()])
        for (contrast, (v, p, est, padj)), q in zip(R_WX[i].items(), bh, strict=True):
            row = sub.loc[contrast]
            assert row["statistic"] == v
            assert row["p_value"] == pytest.approx(p, rel=1e-12)
            assert row["estimate"] == pytest.approx(est, rel=1e-12)
            assert row["p_adj"] == pytest.approx(padj if adjust == "oa" else q, rel=1e-12)
            assert row["n"] == R_FR[i][2]
    assert res.attrs["method"] == "wilcoxon_paired"


# --------------------------------------------------------------------------------------
# against scipy on random designs with ties and missing values


def _random_groups(seed, n, k, m):
    rng = np.random.default_rng(seed)
    groups = np.array([f"g{j}" for j in rng.integers(0, k, n)])
    groups[:k] = [f"g{j}" for j in range(k)]  # every group present
    x = np.round(rng.normal(size=(n, m)), 1)  # ties
    x[rng.random((n, m)) < 0.1] = np.nan
    x[:, 0] = np.round(x[:, 0])  # heavy ties
    return x, pd.DataFrame({"G": groups})


@pytest.mark.parametrize(("seed", "n", "k"), [(0, 30, 3), (1, 60, 5), (2, 12, 2)])
def test_kruskal_matches_scipy(seed, n, k, monkeypatch):
    monkeypatch.setattr(npm, "BLOCK", 7)  # several assay blocks
    x, obs = _random_groups(seed, n, k, 40)
    a = _adata(x, obs)
    res = _quiet(op.tl.nonparametric, a, groupby="G").set_index("OlinkID").loc[a.var_names]
    g = obs["G"].to_numpy()
    for j in range(x.shape[1]):
        ok = ~np.isnan(x[:, j])
        samples = [x[ok & (g == lev), j] for lev in sorted(set(g))]
        ref = stats.kruskal(*samples)
        assert res["statistic"].iloc[j] == pytest.approx(ref.statistic, rel=1e-12, abs=1e-12)
        assert res["p_value"].iloc[j] == pytest.approx(ref.pvalue, rel=1e-12, abs=1e-14)
        assert res["n"].iloc[j] == ok.sum()


@pytest.mark.parametrize(("seed", "s", "k"), [(0, 15, 3), (1, 40, 4), (2, 6, 2)])
def test_friedman_matches_scipy(seed, s, k, monkeypatch):
    monkeypatch.setattr(npm, "BLOCK", 9)
    rng = np.random.default_rng(seed)
    m = 30
    x = np.round(rng.normal(size=(s * k, m)), 1)
    x[rng.random(x.shape) < 0.05] = np.nan
    x[:, 0] = np.round(x[:, 0])
    obs = pd.DataFrame(
        {
            "Subj": np.repeat([f"P{i}" for i in range(s)], k),
            "T": np.tile([f"t{j}" for j in range(k)], s),
        }
    )
    a = _adata(x, obs)
    res = _quiet(op.tl.nonparametric, a, groupby="T", pair="Subj")
    res = res.set_index("OlinkID").loc[a.var_names]
    blocks = x.reshape(s, k, m)
    for j in range(m):
        b = blocks[:, :, j]
        b = b[~np.isnan(b).any(axis=1)]
        if k == 2:  # scipy needs three groups; with two, chi² = (n₊ − n₋)² / (n₊ + n₋)
            pos, neg = (b[:, 0] > b[:, 1]).sum(), (b[:, 0] < b[:, 1]).sum()
            ref = (pos - neg) ** 2 / (pos + neg) if pos + neg else np.nan
            refp = stats.chi2.sf(ref, 1)
        else:
            r = stats.friedmanchisquare(*b.T)
            ref, refp = r.statistic, r.pvalue
        assert res["statistic"].iloc[j] == pytest.approx(ref, rel=1e-12, nan_ok=True)
        assert res["p_value"].iloc[j] == pytest.approx(refp, rel=1e-12, abs=1e-14, nan_ok=True)
        assert res["n"].iloc[j] == len(b)


def test_paired_wilcoxon_posthoc_matches_scipy():
    rng = np.random.default_rng(7)
    s, k, m = 20, 3, 12
    x = rng.normal(size=(s * k, m))  # no ties: R's (and scipy's) exact test, n < 50
    x[rng.random(x.shape) < 0.05] = np.nan
    obs = pd.DataFrame(
        {"Subj": np.repeat([f"P{i}" for i in range(s)], k), "T": np.tile(["a", "b", "c"], s)}
    )
    a = _adata(x, obs)
    res = _quiet(op.tl.nonparametric_posthoc, a, groupby="T", pair="Subj", adjust="bh")
    blocks = x.reshape(s, k, m)
    for j, oid in enumerate(a.var_names):
        b = blocks[:, :, j]
        b = b[~np.isnan(b).any(axis=1)]
        sub = res[res["OlinkID"] == oid].set_index("contrast")
        for i1, i2 in itertools.combinations(range(3), 2):
            row = sub.loc[f"{'abc'[i1]} - {'abc'[i2]}"]
            ref = stats.wilcoxon(b[:, i1], b[:, i2], method="exact")
            assert row["p_value"] == pytest.approx(ref.pvalue, rel=1e-12)
            w = b[:, i1] - b[:, i2]
            walsh = (w[:, None] + w[None, :])[np.triu_indices(len(w))] / 2
            assert row["estimate"] == pytest.approx(np.median(walsh), rel=1e-12)
            assert row["n"] == len(b)


# --------------------------------------------------------------------------------------
# OlinkAnalyze's exclusion rules and adjustments


def test_assay_with_empty_group_untested_but_dunn_uses_the_other_groups():
    x, obs = _random_groups(4, 24, 3, 3)
    g = obs["G"].to_numpy()
    x[g == "g1", 1] = np.nan  # assay 1: no value in g1
    x[:, 2] = np.nan  # assay 2: nothing
    a = _adata(x, obs)
    with pytest.warns(OlinkpipeWarning, match="not tested"):
        res = op.tl.nonparametric(a, groupby="G")
    res = res.set_index("OlinkID")
    assert res.loc["OID00001", "reason"] == "all values missing in a level"
    assert res.loc["OID00002", "reason"] == "all values missing"
    assert res[["statistic", "p_value", "p_adj"]].iloc[1:].isna().all().all()
    assert res.attrs["n_tested"] == 1
    assert res.loc["OID00000", "p_adj"] == res.loc["OID00000", "p_value"]  # m = 1
    ph = _quiet(op.tl.nonparametric_posthoc, a, groupby="G")
    one = ph[ph["OlinkID"] == "OID00001"].set_index("contrast")
    assert one.loc[["g0 - g1", "g1 - g2"], "p_value"].isna().all()
    assert (one.loc[["g0 - g1", "g1 - g2"], "reason"] == "no value in a group").all()
    # dunn.test on the two groups present: one contrast, m = 1, N = values present
    ok = (g != "g1") & ~np.isnan(x[:, 1])
    xs, gs = x[ok, 1], g[ok]
    r = stats.rankdata(xs)
    _, t = np.unique(xs, return_counts=True)
    nn = len(xs)
    s2 = nn * (nn + 1) / 12 - (t**3 - t).sum() / (12 * (nn - 1))
    n0, n2 = (gs == "g0").sum(), (gs == "g2").sum()
    z = (r[gs == "g0"].mean() - r[gs == "g2"].mean()) / np.sqrt(s2 * (1 / n0 + 1 / n2))
    assert one.loc["g0 - g2", "estimate"] == pytest.approx(z, rel=1e-12)
    assert one.loc["g0 - g2", "p_adj"] == one.loc["g0 - g2", "p_value"]
    assert ph[ph["OlinkID"] == "OID00002"]["p_value"].isna().all()


def test_friedman_excludes_subjects_per_assay_and_assays_with_an_empty_level():
    s, k = 10, 3
    rng = np.random.default_rng(5)
    x = rng.normal(size=(s * k, 3))
    obs = pd.DataFrame(
        {"Subj": np.repeat([f"P{i}" for i in range(s)], k), "T": np.tile(list("abc"), s)}
    )
    x[[0, 4], 0] = np.nan  # assay 0: P0 (a) and P1 (b) incomplete -> 8 subjects
    x[obs["T"].to_numpy() == "c", 1] = np.nan  # assay 1: level c empty -> not tested
    a = _adata(x, obs)
    res = _quiet(op.tl.nonparametric, a, groupby="T", pair="Subj").set_index("OlinkID")
    assert res.loc["OID00000", "n"] == 8
    ref = stats.friedmanchisquare(*x[:, 0].reshape(s, k)[2:].T)
    assert res.loc["OID00000", "statistic"] == pytest.approx(ref.statistic, rel=1e-12)
    assert res.loc["OID00001", "reason"] == "all values missing in a level"
    assert np.isnan(res.loc["OID00001", "p_value"])
    assert res.loc["OID00002", "n"] == 10
    ph = _quiet(op.tl.nonparametric_posthoc, a, groupby="T", pair="Subj")
    assert ph[ph["OlinkID"] == "OID00001"]["p_value"].isna().all()
    assert (ph[ph["OlinkID"] == "OID00000"]["n"] == 8).all()


def test_oa_dunn_adjustment_is_p_m_over_rank_without_step_up():
    p = np.array([[0.04, 0.05, 0.5, np.nan], [0.2, 0.2, 0.2, 0.01]])
    got = npm.oa_dunn_adjust(p)
    # row 0: m = 3, ranks 1, 2, 3 -> 0.12, 0.075, 0.5 (BH would give 0.075, 0.075, 0.5)
    np.testing.assert_allclose(got[0], [0.12, 0.075, 0.5, np.nan])
    # row 1: ties keep R's stable decreasing order: the first 0.2 gets the largest rank
    np.testing.assert_allclose(got[1], [0.2, 0.2 * 4 / 3, 0.2 * 4 / 2, 0.04])


def test_dunn_ties_in_p_follow_dunn_test_order():
    # R: d <- data.frame(x = c(9, 4, 5, 7, 11, 3, 6, 2, 1, 12, 10, 8),
    #                    g = factor(rep(c("A", "B", "C", "D"), each = 3)))
    #    FSA::dunnTest(x ~ g, data = d, method = "bh")$res  (B - C and A - D share p)
    ref = {
        "A - B": (-0.33968311024337872, 0.73409518231947579),
        "A - C": (1.01904933073013626, 0.36981545696046475),
        "B - C": (1.35873244097351487, 0.34846277649605023),
        "A - D": (-1.35873244097351487, 0.52269416474407537),
        "B - D": (-1.01904933073013626, 0.46226932120058095),
        "C - D": (-2.37778177170365135, 0.10450278172139975),
    }
    x = np.array([[9, 4, 5, 7, 11, 3, 6, 2, 1, 12, 10, 8]], dtype=float).T
    a = _adata(x, pd.DataFrame({"G": list("AAABBBCCCDDD")}))
    res = op.tl.nonparametric_posthoc(a, groupby="G").set_index("contrast")
    for contrast, (z, padj) in ref.items():
        assert res.loc[contrast, "estimate"] == pytest.approx(z, rel=1e-13)
        assert res.loc[contrast, "p_adj"] == pytest.approx(padj, rel=1e-12)
    # rows sorted by p_adj; before sorting in dunn.test's order
    assert res.index.tolist() == ["C - D", "B - C", "A - C", "B - D", "A - D", "A - B"]


def test_rstatix_rounding():
    x = np.array([0.0001786084, 0.0123456, 0.2345, np.nan, 0.0])
    np.testing.assert_allclose(
        npm.r_signif(x, 3), [0.000179, 0.0123, 0.234, np.nan, 0.0], rtol=1e-14
    )
    np.testing.assert_allclose(npm.r_round_p(x), [0.000179, 0.012, 0.234, np.nan, 0.0], rtol=1e-14)


def test_design_errors():
    x, obs = _random_groups(0, 12, 2, 2)
    a = _adata(x, obs)
    with pytest.raises(DesignError, match="assays not found"):
        op.tl.nonparametric_posthoc(a, groupby="G", assays=["nope"])
    one = a[a.obs["G"] == "g0"].copy()
    with pytest.raises(DesignError, match="fewer than two levels"):
        op.tl.nonparametric(one, groupby="G")
    obs2 = pd.DataFrame({"G": ["a", "b", "a"] * 2, "P": ["p1"] * 3 + ["p2"] * 3})
    b = _adata(np.zeros((6, 1)), obs2)  # every subject has two "a" samples
    with pytest.raises(DesignError, match="exactly one sample at every level"):
        _quiet(op.tl.nonparametric, b, groupby="G", pair="P")
    with pytest.raises(DesignError, match="adjust"):
        op.tl.nonparametric_posthoc(a, groupby="G", adjust="holm")
    with pytest.raises(MissingColumnError):
        op.tl.nonparametric(a, groupby="nope")


def test_all_tied_assay_is_nan_with_reason_and_attrs_are_json_safe():
    import json

    x, obs = _random_groups(1, 15, 3, 2)
    x[:, 1] = 1.0
    a = _adata(x, obs)
    res = _quiet(op.tl.nonparametric, a, groupby="G").set_index("OlinkID")
    assert res.loc["OID00001", "reason"] == "all values tied"
    assert np.isnan(res.loc["OID00001", "p_value"])
    json.dumps(res.attrs)
    ph = _quiet(op.tl.nonparametric_posthoc, a, groupby="G")
    assert (ph[ph["OlinkID"] == "OID00001"]["reason"] == "all values tied").all()
    json.dumps(ph.attrs)
    assert list(ph.columns[:4]) == ["OlinkID", "Assay", "Panel", "term"]
