"""The shared ``assays=`` check of the post-hoc and non-parametric functions."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.errors import DesignError


@pytest.fixture
def adata():
    rng = np.random.default_rng(3)
    obs = pd.DataFrame({"Site": np.repeat(["A", "B", "C"], 8)}, index=[f"S{i}" for i in range(24)])
    var = pd.DataFrame(index=pd.Index(["OID1", "OID2", "OID3"], name="OlinkID"))
    return ad.AnnData(rng.normal(size=(24, 3)), obs=obs, var=var)


@pytest.mark.parametrize(
    "call",
    [
        lambda a, s: op.tl.anova_posthoc(a, formula_terms="Site", effect="Site", assays=s),
        lambda a, s: op.tl.nonparametric_posthoc(a, groupby="Site", assays=s),
    ],
    ids=["anova_posthoc", "nonparametric_posthoc"],
)
def test_one_olinkid_as_a_string_equals_a_list(adata, call):
    one, listed = call(adata, "OID2"), call(adata, ["OID2"])
    pd.testing.assert_frame_equal(one, listed)
    assert set(one["OlinkID"]) == {"OID2"}


@pytest.mark.parametrize(
    "call",
    [
        lambda a, s: op.tl.anova_posthoc(a, formula_terms="Site", effect="Site", assays=s),
        lambda a, s: op.tl.nonparametric_posthoc(a, groupby="Site", assays=s),
        lambda a, s: op.tl.ordinal_posthoc(a, groupby="Site", effect="Site", assays=s),
    ],
    ids=["anova_posthoc", "nonparametric_posthoc", "ordinal_posthoc"],
)
def test_unknown_assays_are_named(adata, call):
    with pytest.raises(DesignError, match=r"assays not found in var\. Rows: OIDX\."):
        call(adata, ["OID1", "OIDX"])


# --------------------------------------------------------------------------------------
# the design layer (olinkpipe/_design.py) and the method registry (tl/methods.py), issue 20


@pytest.fixture
def repeated():
    """8 subjects × 3 times in two groups, 2 assays (one a control assay), 2 control
    samples at a fourth time point and 1 at a compared level."""
    rng = np.random.default_rng(11)
    obs = pd.DataFrame(
        {
            "Subject": np.repeat([f"P{i}" for i in range(8)], 3),
            "Group": np.repeat(["A", "B"], 12),
            "Time": ["D0", "D7", "D28"] * 8,
        },
        index=[f"S{i}" for i in range(24)],
    )
    ctrl = pd.DataFrame(
        {"Subject": ["C1", "C2", "C3"], "Group": ["A", "A", "B"], "Time": ["QC", "QC", "D0"]},
        index=["K1", "K2", "K3"],
    )
    obs = pd.concat([obs, ctrl])
    obs["is_control"] = obs.index.str.startswith("K")
    var = pd.DataFrame(
        {"Assay": ["a", "b", "c"], "is_control": [False, False, True]},
        index=pd.Index(["OID1", "OID2", "OID3"], name="OlinkID"),
    )
    x = rng.normal(size=(27, 3)) + np.repeat(rng.normal(size=(9, 3)), 3, axis=0)
    return ad.AnnData(x, obs=obs, var=var)


def _quiet(func, *args, **kw):
    with pytest.warns(op.errors.OlinkpipeWarning):
        return func(*args, **kw)


CALLS = {
    "differential": lambda a: op.tl.differential(
        a, groupby="Time", reference="D0", target="D7", pair="Subject"
    ),
    "longitudinal": lambda a: op.tl.longitudinal(
        a, time="Time", subject="Subject", method="friedman"
    ),
    "anova": lambda a: op.tl.anova(a, formula_terms=["Group", "Time"]),
    "anova_posthoc": lambda a: op.tl.anova_posthoc(a, formula_terms="Time", effect="Time"),
    "lmer": lambda a: op.tl.lmer(a, ["Group", "Time"], "Subject", progress=False),
    "lmer_posthoc": lambda a: op.tl.lmer_posthoc(
        a, "Time", "Subject", effect="Time", progress=False
    ),
    "ordinal": lambda a: op.tl.ordinal(a, groupby="Time", progress=False),
    "ordinal_posthoc": lambda a: op.tl.ordinal_posthoc(
        a, groupby="Time", effect="Time", progress=False
    ),
    "nonparametric": lambda a: op.tl.nonparametric(a, groupby="Time", pair="Subject"),
    "nonparametric_posthoc": lambda a: op.tl.nonparametric_posthoc(a, groupby="Time"),
}


@pytest.mark.parametrize("function", list(CALLS))
def test_result_columns_are_the_annotation_then_the_registrys(repeated, function):
    from olinkpipe.tl.methods import METHODS

    adata = repeated[repeated.obs["Time"] != "QC"].copy()  # D0..D28 only: no QC level
    res = _quiet(CALLS[function], adata)
    meta = METHODS[(function, res.attrs["method"])]
    assert list(res.columns) == ["OlinkID", "Assay", *meta.result_columns]
    assert meta.description and meta.methods_text(pair="Subject", groupby="Time")


def test_controls_are_reported_among_the_compared_levels_only_by_differential(repeated):
    # differential: the QC-level controls K1, K2 are not among D0/D7, only K3 is reported;
    # the model functions report every control sample (both rules kept from before #20)
    with pytest.warns(op.errors.OlinkpipeWarning) as rec:
        de = CALLS["differential"](repeated)
    assert de.attrs["excluded_samples"] == ["K3"]
    assert de.attrs["excluded_assays"] == ["OID3"]
    assert "differential: left out 1 control sample(s): 'K3'" in [str(w.message) for w in rec]
    anova = _quiet(op.tl.anova, repeated, formula_terms="Group")
    assert anova.attrs["excluded_samples"] == ["K1", "K2", "K3"]
    assert anova.attrs["excluded_assays"] == ["OID3"]


def test_incomplete_pairs_are_left_out_with_reasons_alike_in_tl_and_clinical(repeated):
    adata = repeated[~repeated.obs["is_control"]].copy()
    drop = adata.obs.index[(adata.obs["Subject"] == "P1") & (adata.obs["Time"] == "D7")]
    extra = adata[(adata.obs["Subject"] == "P2") & (adata.obs["Time"] == "D0")].copy()
    extra.obs_names = ["S2b"]
    adata = ad.concat([adata[~adata.obs.index.isin(drop)], extra], merge="same")[:, :2].copy()
    expected = [["P1", "no D7 sample"], ["P2", "more than one sample per level"]]
    kw = {"groupby": "Time", "reference": "D0", "target": "D7", "pair": "Subject"}
    with pytest.warns(op.errors.OlinkpipeWarning, match="left out 2 incomplete or duplicated"):
        de = op.tl.differential(adata, **kw)
    with pytest.warns(op.errors.OlinkpipeWarning, match="protein_changes: left out 2"):
        ch = op.clinical.protein_changes(adata, **kw)
    assert de.attrs["excluded_pairs"] == expected
    assert ch.attrs["excluded_pairs"] == expected
    assert de.attrs["n_pairs"] == len(ch) == 6
    assert ch["Subject"].tolist() == ["P0", "P3", "P4", "P5", "P6", "P7"]


def test_friedman_blocks_leave_out_incomplete_subjects_with_reasons(repeated):
    adata = repeated[~repeated.obs["is_control"]].copy()
    adata = adata[~((adata.obs["Subject"] == "P3") & (adata.obs["Time"] == "D28")), :2].copy()
    with pytest.warns(op.errors.OlinkpipeWarning, match="without a sample at every level: 'P3'"):
        res = op.tl.nonparametric(adata, groupby="Time", pair="Subject")
    assert res.attrs["excluded_subjects"] == [["P3", "no sample at level(s) D28"]]
    assert set(res["n"]) == {7}


def test_differential_method_names_are_the_registrys():
    from olinkpipe.tl.methods import methods_of

    assert list(methods_of("differential")) == ["ttest", "wilcoxon", "moderated"]
    adata = ad.AnnData(
        np.zeros((4, 1)), obs=pd.DataFrame({"g": ["a", "a", "b", "b"]}, index=list("wxyz"))
    )
    with pytest.raises(
        DesignError, match=r"method='nope' .* \['ttest', 'wilcoxon', 'moderated'\]"
    ):
        op.tl.differential(adata, groupby="g", reference="a", method="nope")
    with pytest.raises(DesignError, match="only supported by method='moderated', not 'ttest'"):
        op.tl.differential(adata, groupby="g", reference="a", covariates=["g"])


def test_a_new_method_is_one_registry_entry(monkeypatch, repeated):
    """A registered method is accepted by tl.differential and named in the report's
    Methods paragraph (the report had its own dict and raised KeyError before #20)."""
    import dataclasses

    from olinkpipe.tl import methods
    from olinkpipe.workflow.config import load_config
    from olinkpipe.workflow.report import methods_text

    new = dataclasses.replace(
        methods.METHODS[("differential", "ttest")],
        name="student",
        methods_unpaired="Student's t-test (test entry)",
    )
    monkeypatch.setitem(methods.METHODS, ("differential", "student"), new)
    adata = repeated[~repeated.obs["is_control"]].copy()
    kw = {"groupby": "Group", "reference": "A", "exclude_controls": False}
    got = op.tl.differential(adata, method="student", equal_var=True, **kw)
    exp = op.tl.differential(adata, method="ttest", equal_var=True, **kw)
    assert got.attrs["method"] == "student"
    pd.testing.assert_frame_equal(got, exp)
    cfg = load_config()[0]
    diff = cfg.differential.model_copy(update={"method": "student", "pair": None})
    text = " ".join(methods_text(cfg.model_copy(update={"differential": diff}), {}))
    assert "with the Student's t-test (test entry)." in text


def test_methods_text_of_the_report_is_unchanged():
    from olinkpipe.tl.methods import get_method

    paired = {"pair": "patient", "groupby": "timepoint"}
    assert get_method("differential", "ttest").methods_text(**paired) == "paired t-test"
    assert get_method("differential", "ttest").methods_text() == "Welch's t-test"
    assert get_method("differential", "moderated").methods_text(**paired) == (
        "limma-style empirical-Bayes moderated t-test (Smyth 2004) on the model ~ patient + "
        "timepoint"
    )
    assert get_method("differential", "wilcoxon").methods_text() == (
        "Wilcoxon rank-sum test with the Hodges–Lehmann estimate"
    )


def test_tl_modules_import_each_other_without_a_cycle():
    """Issue 20 item 6: no import circle inside tl (module- and function-level imports),
    tl/_blocks (the dask combiners, given the function to call) included."""
    import ast
    import pathlib

    root = pathlib.Path(op.__file__).parent / "tl"
    graph = {}
    for path in root.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    deps.add(node.module.split(".")[0])
                else:
                    deps.update(a.name for a in node.names)
        graph[path.stem] = {d for d in deps if (root / f"{d}.py").exists()}
    state: dict[str, int] = {}

    def visit(mod, stack):
        state[mod] = 1
        for dep in graph[mod]:
            assert state.get(dep) != 1, f"import cycle: {' -> '.join([*stack, mod, dep])}"
            if dep not in state:
                visit(dep, [*stack, mod])
        state[mod] = 2

    for mod in graph:
        if mod not in state:
            visit(mod, [])
