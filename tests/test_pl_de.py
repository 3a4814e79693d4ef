"""Volcano, paired and heatmap figures: artists present, saved to a PNG, nothing shown."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
from builders import make_study
from matplotlib.colors import to_hex

import olinkpipe as op
from olinkpipe.errors import DesignError, MissingColumnError, OlinkpipeWarning
from olinkpipe.pl._style import DOWN, NS, UP


@pytest.fixture
def adata():
    a = make_study(seed=9, m=20, nan_frac=0.03)
    a.X[a.obs["Time"].eq("Week.6").to_numpy(), 5] += 2.0  # a clear riser
    a.X[a.obs["Time"].eq("Week.6").to_numpy(), 6] -= 2.0  # a clear faller
    return a


@pytest.fixture
def result(adata):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return op.tl.differential(
            adata, groupby="Time", reference="Baseline", pair="Subject", method="moderated"
        )


def test_volcano_colours_labels_and_title(result, tmp_path):
    fig, ax = plt.subplots()
    out = op.pl.volcano(result, label=["A7"], top=2, ax=ax)
    assert out is ax
    assert ax.get_title() == "Week.6 vs Baseline (reference): moderated t, 24 pairs"
    assert "Week.6 - Baseline" in ax.get_xlabel()
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    n_up = int(((result["p_adj"] < 0.05) & (result["estimate"] > 0)).sum())
    assert f"up, p_adj < 0.05 ({n_up})" in legend and "highlighted (1 asked for)" in legend
    assert any(t.startswith("BH cut-off") for t in legend)
    colours = {}
    for coll in ax.collections:
        fc = coll.get_facecolor()
        if len(coll.get_offsets()) and len(fc):
            colours[to_hex(fc[0], keep_alpha=False)] = len(coll.get_offsets())
    assert colours.get(UP, 0) >= 1 and colours.get(DOWN, 0) >= 1 and colours.get(NS, 0) >= 1
    texts = {t.get_text() for t in ax.texts}
    top2 = set(result.loc[result["significant"], "Assay"].iloc[:2])
    assert texts == top2 | {"A7"}
    assert "A2" not in texts  # zero-variance assay: not tested
    fig.savefig(tmp_path / "volcano.png")
    assert (tmp_path / "volcano.png").stat().st_size > 0


def test_volcano_needs_result_columns(result):
    with pytest.raises(MissingColumnError, match="p_adj"):
        op.pl.volcano(result.drop(columns="p_adj"))


def test_paired_draws_one_line_per_complete_pair(adata, tmp_path):
    ax = op.pl.paired(adata, ["A5", "OID00006"], "Time", "Subject", reference="Baseline")
    a, b = adata.X[:, 5], adata.X[:, 6]
    n_lines = len(ax.lines)
    assert n_lines >= 2 * 20  # pairs with both values, two assays, plus mean lines
    assert [t.get_text() for t in ax.get_xticklabels()][:2] == ["Baseline", "Week.6"]
    assert ax.get_title() == "Baseline → Week.6, paired by Subject"
    assert len(ax.get_legend().get_texts()) == 2
    assert np.isfinite(a).any() and np.isfinite(b).any()
    ax.figure.savefig(tmp_path / "paired.png")
    assert (tmp_path / "paired.png").exists()
    with pytest.raises(DesignError, match="not found"):
        op.pl.paired(adata, ["NOPE"], "Time", "Subject")


def test_heatmap_orders_by_group(adata, tmp_path):
    ax = op.pl.heatmap(adata, ["A5", "A6", "A7"], groupby="Time")
    img = ax.get_images()[0].get_array()
    assert img.shape == (3, adata.n_obs)
    assert [t.get_text() for t in ax.get_yticklabels()] == ["A5", "A6", "A7"]
    n_base = int(adata.obs["Time"].eq("Baseline").sum())
    n_week = int(adata.obs["Time"].eq("Week.6").sum())
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == [f"Baseline (n={n_base})", f"Week.6 (n={n_week})"]
    ax.figure.savefig(tmp_path / "heatmap.png")
    assert (tmp_path / "heatmap.png").exists()
    # levels in the order given (reference first), others left out; missing values last
    adata.obs.loc[adata.obs_names[:2], "Time"] = np.nan
    ax = op.pl.heatmap(adata, ["A5"], groupby="Time", order=["Week.6", "Baseline"], ax=None)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == [f"Week.6 (n={n_week - 1})", f"Baseline (n={n_base - 1})"]
    img = ax.get_images()[0].get_array()
    assert img.shape == (1, adata.n_obs - 2)
    ax = op.pl.heatmap(adata, ["A5"], groupby="Time")
    assert [t.get_text() for t in ax.get_xticklabels()][-1] == "NA (n=2)"
    plt.close("all")


def test_volcano_title_and_columns_come_from_the_method_registry(result):
    from olinkpipe.pl.de import _title
    from olinkpipe.tl.methods import methods_of

    for name, meta in methods_of("differential").items():
        assert _title({"method": name}, "b - a") == f"b - a: {meta.label}"
    assert _title({"method": "my_test", "n_pairs": 3}, "s") == "s: my_test, 3 pairs"
    assert _title({}, "s") == "s"
    # a result whose method has no estimate: the error names the method and the fix
    anova = result[["OlinkID", "Assay", "statistic", "p_value", "p_adj"]].copy()
    anova.attrs = {"method": "anova"}
    with pytest.raises(MissingColumnError, match=r"'estimate'.*anova.*method='ttest' / "):
        op.pl.volcano(anova)
    # a result whose method has one, missing a column: the plain message
    with pytest.raises(MissingColumnError, match=r"lacks column\(s\) \['p_adj'\]; it has"):
        op.pl.volcano(result.drop(columns="p_adj"))
