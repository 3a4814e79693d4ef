"""table_one: the auto test rule at its boundaries, p-values vs scipy, summaries, exports.

Fisher–Freeman–Halton references were computed by hand with R 4.2.2 ``fisher.test`` (exact
network algorithm) on the tables written out below.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from olinkpipe import clinical
from olinkpipe.clinical.table_one import choose_2x2_test, fisher_freeman_halton, format_p
from olinkpipe.errors import DesignError, MissingColumnError, OlinkpipeWarning, ValidationError


def _patients(table: list[list[int]], groups=("A", "B"), var: str = "x") -> pd.DataFrame:
    """Patient rows from a contingency table: rows = levels of ``var``, columns = groups."""
    rows = []
    for i, counts in enumerate(table):
        for j, k in enumerate(counts):
            rows += [{"arm": groups[j], var: f"L{i}"}] * k
    return pd.DataFrame(rows)


# each case: table (levels × groups), n, smallest expected count, rule
BOUNDARY_CASES = {
    "n39_all_expected_ge5": ([[10, 10], [9, 10]], "fisher"),  # n = 39 -> Fisher
    "n40_all_expected_ge5": ([[10, 10], [10, 10]], "chi2"),  # n = 40, expected 10
    "expected_exactly_5": ([[5, 15], [5, 15]], "chi2"),  # expected 10*20/40 = 5
    "expected_4.75": ([[2, 17], [8, 13]], "yates"),  # 19*10/40 = 4.75
    "expected_exactly_1": ([[0, 4], [10, 26]], "yates"),  # 4*10/40 = 1
    "expected_0.975": ([[0, 3], [13, 24]], "fisher"),  # 3*13/40 = 0.975
    "n100_expected_ge5": ([[30, 20], [25, 25]], "chi2"),
}


@pytest.mark.parametrize("case", BOUNDARY_CASES, ids=list(BOUNDARY_CASES))
def test_auto_rule_boundaries_and_p_values_vs_scipy(case):
    table, rule = BOUNDARY_CASES[case]
    arr = np.array(table)
    expected = stats.contingency.expected_freq(arr)
    assert choose_2x2_test(arr) == rule, (arr.sum(), expected.min())
    t1 = clinical.table_one(_patients(table), group="arm", categorical=["x"])
    first = t1.loc[t1["variable"] == "x"].iloc[0]
    if rule == "fisher":
        ref = stats.fisher_exact(arr).pvalue
        assert first["test"] == "Fisher exact"
    else:
        ref = stats.chi2_contingency(arr, correction=rule == "yates").pvalue
        assert first["test"] == (
            "Pearson chi-square" if rule == "chi2" else "chi-square, Yates continuity correction"
        )
    assert first["p_value"] == pytest.approx(ref, rel=1e-12)
    assert t1.attrs["tests"]["x"] == rule


def test_boundary_values_are_what_the_cases_claim():
    n = {k: int(np.sum(v[0])) for k, v in BOUNDARY_CASES.items()}
    emin = {
        k: stats.contingency.expected_freq(np.array(v[0])).min() for k, v in BOUNDARY_CASES.items()
    }
    assert n["n39_all_expected_ge5"] == 39 and emin["n39_all_expected_ge5"] >= 5
    assert n["n40_all_expected_ge5"] == 40
    assert emin["expected_exactly_5"] == 5.0 and emin["expected_exactly_1"] == 1.0
    assert emin["expected_0.975"] == pytest.approx(0.975)


def test_forced_tests_and_yates_differs_from_pearson():
    table = [[2, 17], [8, 13]]
    df = _patients(table)
    p = {
        k: clinical.table_one(df, group="arm", categorical=["x"], test=k).loc[1, "p_value"]
        for k in ("chi2", "yates", "fisher")
    }
    arr = np.array(table)
    assert p["chi2"] == pytest.approx(stats.chi2_contingency(arr, correction=False).pvalue)
    assert p["yates"] == pytest.approx(stats.chi2_contingency(arr, correction=True).pvalue)
    assert p["fisher"] == pytest.approx(stats.fisher_exact(arr).pvalue)
    assert p["chi2"] < p["yates"]
    none = clinical.table_one(df, group="arm", categorical=["x"], test="none")
    assert none["p_value"].isna().all() and (none["test"] == "").all()


def test_larger_tables_pearson_and_fisher_freeman_halton():
    # CR1/CR2/CR3/relapse by arm, as in the study's table
    table = [[12, 23], [8, 20], [2, 1], [1, 0]]
    df = _patients(table, groups=("CAR-T", "control"), var="status")
    # 4 of 8 expected counts are below 5 (rows CR3 and relapse): warned, as SPSS footnotes
    with pytest.warns(OlinkpipeWarning, match=r"'status': 4 of 8 cells \(50%\)"):
        t1 = clinical.table_one(df, group="arm", categorical=["status"])
    assert t1.attrs["notes"][0].startswith("status: 4 of 8 cells")
    assert (stats.contingency.expected_freq(np.array(table)) < 5).sum() == 4
    assert t1.loc[1, "test"] == "Pearson chi-square"
    ref = stats.chi2_contingency(np.array(table), correction=False).pvalue
    assert t1.loc[1, "p_value"] == pytest.approx(ref, rel=1e-12)
    exact = clinical.table_one(df, group="arm", categorical=["status"], rxc_test="fisher")
    assert exact.loc[1, "test"] == "Fisher-Freeman-Halton exact"
    assert exact.loc[1, "p_value"] == pytest.approx(0.249808637692, abs=1e-10)  # R fisher.test


@pytest.mark.parametrize(
    ("table", "r_p"),
    [
        ([[2, 4, 1, 16], [4, 6, 1, 33]], 0.955912863671),
        ([[7, 14, 2], [13, 27, 4]], 1.0),
    ],
)
def test_fisher_freeman_halton_exact_vs_r(table, r_p):
    p, kind = fisher_freeman_halton(np.array(table))
    assert kind == "fisher_fh"
    assert p == pytest.approx(r_p, abs=1e-10)
    p_t, _ = fisher_freeman_halton(np.array(table).T)
    assert p_t == pytest.approx(p, abs=1e-12)


def test_fisher_freeman_halton_monte_carlo_for_3x3():
    # R fisher.test(matrix(c(3,0,5,1,6,2,0,4,3), 3, byrow = TRUE))$p.value = 0.0210347295358
    p, kind = fisher_freeman_halton(np.array([[3, 0, 5], [1, 6, 2], [0, 4, 3]]), seed=1)
    assert kind == "fisher_fh_mc"
    assert p == pytest.approx(0.0210347295358, abs=0.002)  # MC SE ~ 0.00045
    p2, _ = fisher_freeman_halton(np.array([[3, 0, 5], [1, 6, 2], [0, 4, 3]]), seed=1)
    assert p2 == p


def _continuous_frame(seed: int = 0, k: int = 2) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = [23, 44, 15][:k]
    arms = np.repeat(["CAR-T", "control", "other"][:k], sizes)
    age = rng.normal(35, 12, arms.size).round()
    cd34 = rng.lognormal(1.5, 0.3, arms.size).round(1)
    return pd.DataFrame({"arm": arms, "age": age, "cd34": cd34})


def test_continuous_tests_and_summaries_vs_scipy():
    df = _continuous_frame()
    t1 = clinical.table_one(
        df, group="arm", continuous=["age", "cd34"], nonnormal=["cd34"], overall=True
    )
    a, b = (df.loc[df["arm"] == g] for g in ("CAR-T", "control"))
    age = t1.loc[t1["variable"] == "age"].iloc[0]
    assert age["level"] == "mean (SD)" and age["test"] == "Welch t-test"
    ref = stats.ttest_ind(a["age"], b["age"], equal_var=False).pvalue
    assert age["p_value"] == pytest.approx(ref, rel=1e-12)
    assert age["CAR-T"] == f"{a['age'].mean():.1f} ({a['age'].std(ddof=1):.1f})"
    assert age["Overall"] == f"{df['age'].mean():.1f} ({df['age'].std(ddof=1):.1f})"
    cd = t1.loc[t1["variable"] == "cd34"].iloc[0]
    assert cd["level"] == "median (range)" and cd["test"] == "Mann-Whitney U"
    ties = df["cd34"].duplicated().any()  # rounded to 0.1: ties -> normal approximation
    assert ties
    ref = stats.mannwhitneyu(a["cd34"], b["cd34"], method="asymptotic").pvalue
    assert cd["p_value"] == pytest.approx(ref, rel=1e-12)
    x = b["cd34"]
    assert cd["control"] == f"{x.median():.1f} ({x.min():.1f}-{x.max():.1f})"
    iqr = clinical.table_one(df, group="arm", continuous=["cd34"], nonnormal=["cd34"],
                             spread="iqr", digits=2)  # fmt: skip
    q1, q3 = np.percentile(x, [25, 75])
    assert iqr.loc[1, "control"] == f"{x.median():.2f} [{q1:.2f}, {q3:.2f}]"


def test_mann_whitney_exact_below_50_without_ties_as_r():
    # R 4.2.2: wilcox.test(x, y)$p.value = 0.00173942956282 (exact: no ties, n < 50);
    # wilcox.test(x, y, exact = FALSE)$p.value = 0.00269189381314 (what scipy's "auto"
    # gives for groups larger than 8, so a table built on it would not match R)
    x = [3.1, 4.7, 2.2, 5.9, 6.3, 4.1, 3.8, 7.2, 5.5, 2.9, 6.8, 4.4]
    y = [4.9, 6.1, 7.7, 5.2, 8.3, 6.6, 7.1, 5.8, 9.0, 6.9, 7.9, 8.8, 5.1, 6.4, 7.4]
    df = pd.DataFrame({"arm": ["A"] * len(x) + ["B"] * len(y), "v": x + y})
    t1 = clinical.table_one(df, group="arm", continuous=["v"], nonnormal=["v"])
    assert t1.loc[1, "test"] == "Mann-Whitney U"
    assert t1.loc[1, "p_value"] == pytest.approx(0.00173942956282, abs=1e-13)
    big = pd.DataFrame({"arm": np.repeat(["A", "B"], 50), "v": np.arange(100.0) ** 1.1})
    t2 = clinical.table_one(big, group="arm", continuous=["v"], nonnormal=["v"])
    a, b = big["v"][:50], big["v"][50:]
    ref = stats.mannwhitneyu(a, b, method="asymptotic", use_continuity=True).pvalue
    assert t2.loc[1, "p_value"] == pytest.approx(ref, rel=1e-12)


def test_more_than_two_groups_anova_and_kruskal():
    df = _continuous_frame(seed=4, k=3)
    t1 = clinical.table_one(df, group="arm", continuous=["age", "cd34"], nonnormal=["cd34"])
    parts = [df.loc[df["arm"] == g] for g in ("CAR-T", "control", "other")]
    assert t1.loc[1, "test"] == "one-way ANOVA"
    assert t1.loc[1, "p_value"] == pytest.approx(
        stats.f_oneway(*[p["age"] for p in parts]).pvalue, rel=1e-12
    )
    assert t1.loc[2, "test"] == "Kruskal-Wallis"
    assert t1.loc[2, "p_value"] == pytest.approx(
        stats.kruskal(*[p["cd34"] for p in parts]).pvalue, rel=1e-12
    )


def test_layout_missing_values_and_percentages():
    df = _patients([[5, 10], [15, 14]], groups=("CAR-T", "control"), var="sex")
    df["sex"] = df["sex"].map({"L0": "F", "L1": "M"})
    df["age"] = np.arange(len(df), dtype=float)
    df.loc[[0, 1, 30], "sex"] = None  # two CAR-T, one control
    df.loc[[2], "age"] = np.nan
    t1 = clinical.table_one(df, group="arm", categorical=["sex"], continuous=["age"])
    assert list(t1.columns) == ["variable", "level", "CAR-T", "control", "test", "p_value"]
    assert t1.loc[0, ["variable", "CAR-T", "control"]].tolist() == ["n", "20", "24"]
    sex = t1.loc[t1["variable"] == "sex"]
    assert sex["level"].tolist() == ["F", "M", "missing"]
    # percentages of patients with a known value: 3/18 F in CAR-T
    assert sex.iloc[0]["CAR-T"] == "3 (16.7)"
    assert sex.iloc[2][["CAR-T", "control"]].tolist() == ["2", "1"]
    assert np.isfinite(sex.iloc[0]["p_value"]) and sex.iloc[1:]["p_value"].isna().all()
    known = df.dropna(subset=["sex"])
    tab = pd.crosstab(known["sex"], known["arm"]).to_numpy()
    rule = choose_2x2_test(tab)
    ref = (
        stats.fisher_exact(tab).pvalue
        if rule == "fisher"
        else stats.chi2_contingency(tab, correction=rule == "yates").pvalue
    )
    assert sex.iloc[0]["p_value"] == pytest.approx(ref, rel=1e-12)
    assert t1.attrs["missing"] == {"sex": 3, "age": 1}
    age = t1.loc[t1["variable"] == "age"]
    assert age["level"].tolist() == ["mean (SD)", "missing"]


def test_errors_and_excluded_group_rows():
    df = _patients([[5, 10], [15, 14]])
    with pytest.raises(MissingColumnError, match="nope"):
        clinical.table_one(df, group="arm", categorical=["nope"])
    with pytest.raises(DesignError, match="listed twice"):
        clinical.table_one(df, group="arm", categorical=["x", "x"])
    with pytest.raises(DesignError, match="not in continuous"):
        clinical.table_one(df, group="arm", categorical=["x"], nonnormal=["x"])
    with pytest.raises(DesignError, match="at least two levels"):
        clinical.table_one(df.assign(arm="A"), group="arm", categorical=["x"])
    with pytest.raises(ValidationError, match="non-numeric"):
        clinical.table_one(df, group="arm", continuous=["x"])
    with pytest.raises(DesignError, match="test="):
        clinical.table_one(df, group="arm", categorical=["x"], test="t")
    holes = df.copy()
    holes.loc[[3, 4], "arm"] = None
    with pytest.warns(OlinkpipeWarning, match="excluded 2 patient row"):
        t1 = clinical.table_one(holes, group="arm", categorical=["x"])
    assert t1.attrs["excluded"] == ["3", "4"]


def test_format_p():
    assert format_p(0.0004) == "<0.001"
    assert format_p(0.04213) == "0.042"
    assert format_p(np.nan) == ""


def test_exports(tmp_path):
    df = _patients([[12, 23], [11, 21]], groups=("CAR-T", "control"), var="sex")
    df["age"] = np.linspace(9, 63, len(df))
    t1 = clinical.table_one(df, group="arm", categorical=["sex"], continuous=["age"])
    csv = clinical.export_table_one(t1, tmp_path / "t1.csv")
    back = pd.read_csv(io.StringIO(csv), keep_default_na=False)
    assert list(back.columns) == ["Variable", "Level", "CAR-T (n = 23)", "control (n = 44)",
                                  "Test", "p"]  # fmt: skip
    assert back.shape[0] == len(t1)
    assert (tmp_path / "t1.csv").read_text() == csv
    tsv = clinical.export_table_one(t1, fmt="tsv")
    assert tsv.splitlines()[0].split("\t")[2] == "CAR-T (n = 23)"
    md = clinical.export_table_one(t1, tmp_path / "t1.md", title="Table 1")
    lines = md.splitlines()
    assert lines[0] == "**Table 1**" and lines[2].startswith("| Variable | Level |")
    assert len([ln for ln in lines if ln.startswith("|")]) == len(t1) + 2
    html = clinical.export_table_one(t1, tmp_path / "t1.html")
    assert html.count("<tr>") == len(t1) + 1 and "<html" not in html
    assert html.count("<td ") == len(t1) * 6 and html.count("<th ") == 6
    assert "&lt;" not in html.split("</thead>")[0]
    both = clinical.table_one(df, group="arm", categorical=["sex"], overall=True)
    head = clinical.export_table_one(both, fmt="csv").splitlines()[0]
    assert head.endswith("control (n = 44),Overall (n = 67),Test,p")
    word = clinical.export_table_one(t1, tmp_path / "t1.doc")
    assert 'content="Word.Document"' in word and "Tests: Pearson chi-square" in word
    assert "Welch t-test" in word
    with pytest.raises(ValidationError, match="suffix"):
        clinical.export_table_one(t1, tmp_path / "t1.xyz")


def test_numeric_codes_and_categorical_order():
    df = pd.DataFrame(
        {
            "arm": pd.Categorical(["ctrl"] * 6 + ["CAR-T"] * 6, categories=["CAR-T", "ctrl"]),
            "ph": [1.0, 0.0, 1.0, np.nan, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0],
        }
    )
    t1 = clinical.table_one(df, group="arm", categorical=["ph"])
    assert list(t1.columns[2:4]) == ["CAR-T", "ctrl"]  # category order, not alphabetical
    assert t1["level"].tolist() == ["", "0", "1", "missing"]
    assert t1.loc[1, "ctrl"] == "3 (60.0)" and t1.loc[3, "ctrl"] == "1"


# --------------------------------------------------------------------------- per-variable steps
def test_summarise_categorical_step():
    from olinkpipe.clinical.table_one import _summarise_categorical, smd_categorical

    x = pd.Series(["a", "b", None, "a", "b", "b"], name="sex")
    masks = [np.array([1, 1, 1, 0, 0, 0], bool), np.array([0, 0, 0, 1, 1, 1], bool)]
    s = _summarise_categorical(
        x, masks, test="fisher", rxc_test="chi2", seed=0, digits=1, overall=True, smd=True
    )
    # percentages of the known values per group; the missing value is not counted
    assert s.rows == [
        ("a", ["1 (50.0)", "1 (33.3)", "2 (40.0)"]),
        ("b", ["1 (50.0)", "2 (66.7)", "3 (60.0)"]),
    ]
    assert s.kind == "fisher" and s.note == ""
    assert s.p == pytest.approx(stats.fisher_exact([[1, 1], [1, 2]]).pvalue)
    np.testing.assert_allclose(s.smd, smd_categorical(np.array([[1, 1], [1, 2]])))
    # no known value: one NA row, no test; SMDs NaN
    none = pd.Series([None] * 6, dtype=object, name="sex")
    s = _summarise_categorical(
        none, masks, test="auto", rxc_test="chi2", seed=0, digits=1, overall=False, smd=True
    )
    assert s.rows == [("", ["NA", "NA"])] and s.kind == "" and np.isnan(s.p)
    assert np.isnan(s.smd).all() and s.smd.shape == (1,)


def test_summarise_categorical_notes_small_expected_counts():
    from olinkpipe.clinical.table_one import _summarise_categorical

    x = pd.Series(list("abcabc"), name="v")
    masks = [np.array([1, 1, 1, 0, 0, 0], bool), np.array([0, 0, 0, 1, 1, 1], bool)]
    s = _summarise_categorical(
        x, masks, test="auto", rxc_test="chi2", seed=0, digits=1, overall=False, smd=False
    )
    assert s.kind == "chi2" and s.smd is None
    assert s.note.startswith("6 of 6 cells (100%) have an expected count below 5")


def test_summarise_continuous_step():
    from olinkpipe.clinical.table_one import _summarise_continuous

    x = pd.Series([1.0, 2.0, np.nan, 4.0, 6.0, 8.0], name="age")
    masks = [np.array([1, 1, 1, 0, 0, 0], bool), np.array([0, 0, 0, 1, 1, 1], bool)]
    s = _summarise_continuous(
        x, masks, nonnormal=False, test="auto", spread="range", digits=1, overall=True, smd=True
    )
    assert s.rows == [("mean (SD)", ["1.5 (0.7)", "6.0 (2.0)", "4.2 (2.9)"])]
    ref = stats.ttest_ind([1.0, 2.0], [4.0, 6.0, 8.0], equal_var=False).pvalue
    assert s.kind == "welch" and s.p == pytest.approx(ref)
    assert s.smd.tolist() == pytest.approx([4.5 / 1.5])  # |1.5 - 6| / sqrt((0.5 + 4) / 2)
    s = _summarise_continuous(
        x, masks, nonnormal=True, test="none", spread="iqr", digits=0, overall=False, smd=False
    )
    assert s.rows == [("median [IQR]", ["2 [1, 2]", "6 [5, 7]"])] and s.kind == ""
    bad = pd.Series([1.0, "x", 3.0], index=["p1", "p2", "p3"], name="age", dtype=object)
    with pytest.raises(
        ValidationError, match=r"'age': continuous variable has non-numeric values. Rows: p2\."
    ):
        _summarise_continuous(
            bad, [np.ones(3, bool)] * 2, nonnormal=False, test="none", spread="range",
            digits=1, overall=False, smd=False,
        )  # fmt: skip
