"""The four enrichment figures: drawn from the tl frames, checked and saved."""

from __future__ import annotations

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.errors import ValidationError

JAK = ["IL-2RB", "LIF-R", "IFN-gamma", "IL6", "IL10", "IL-10RA", "IL-10RB", "IL-15RA", "IL7"]


@pytest.fixture
def study():
    """A paired study: 12 subjects, pre/post, JAK-STAT proteins raised after infusion."""
    rng = np.random.default_rng(4)
    kegg = op.genesets.load("KEGG_2021_Human")
    others = sorted(kegg.genes - set(kegg["JAK-STAT signaling pathway"]))
    assays = JAK + list(rng.choice(others, 110, replace=False))
    n_sub = 12
    obs = pd.DataFrame(
        {
            "subject": np.repeat([f"P{i:02d}" for i in range(n_sub)], 2),
            "time": pd.Categorical(["pre", "post"] * n_sub, categories=["pre", "post"]),
        },
        index=[f"S{i:02d}" for i in range(2 * n_sub)],
    )
    x = rng.normal(5, 1, size=(2 * n_sub, len(assays)))
    x[1::2, : len(JAK)] += 1.5
    var = pd.DataFrame({"Assay": assays}, index=[f"OID{i:05d}" for i in range(len(assays))])
    adata = ad.AnnData(x, obs=obs, var=var)
    d = x[1::2] - x[0::2]
    est = d.mean(0)
    se = d.std(0, ddof=1) / np.sqrt(n_sub)
    from scipy import stats

    t = est / se
    p = 2 * stats.t.sf(np.abs(t), n_sub - 1)
    res = pd.DataFrame(
        {
            "OlinkID": var.index,
            "Assay": assays,
            "estimate": est,
            "ci_low": est - 2.2 * se,
            "ci_high": est + 2.2 * se,
            "statistic": t,
            "p_value": p,
            "p_adj": op._stats.bh_adjust(p),
        }
    )
    res["significant"] = res["p_adj"] < 0.05
    res.attrs = {"sign": "post - pre"}
    return adata, res


def test_all_four_enrichment_plots_are_saved(study, tmp_path):
    adata, res = study
    ora = op.tl.ora(res, "KEGG_2021_Human")
    gsea = op.tl.gsea(res, "KEGG_2021_Human", permutations=100)
    term = "JAK-STAT signaling pathway"
    assert ora["term"].iloc[0] == term or term in ora["term"].head(3).tolist()

    fig, ax = plt.subplots()
    got = op.pl.enrichment(ora, top=10, ax=ax)
    assert got is ax and len(ax.get_yticklabels()) == 10
    assert term in [t.get_text() for t in ax.get_yticklabels()]
    assert len(ax.collections) >= 1
    fig.savefig(tmp_path / "ora_dot.png")

    ax2 = op.pl.enrichment(gsea, top=8, kind="bar")
    assert len(ax2.patches) == 8
    ax2.figure.savefig(tmp_path / "gsea_bar.png")

    ax3 = op.pl.gsea(gsea, term)
    assert len(ax3.figure.axes) == 3
    line = ax3.get_lines()[0].get_ydata()
    es = gsea.set_index("term").loc[term, "es"]
    assert np.max(np.abs(line)) == pytest.approx(abs(es), rel=1e-9)
    n_lead = len(gsea.set_index("term").loc[term, "leading_edge"].split(";"))
    n_hits = gsea.set_index("term").loc[term, "set_size"]
    # the highlighted ticks are gseapy's leading edge
    assert f"leading edge: {n_lead} of {n_hits} genes" in [t.get_text() for t in ax3.texts]
    ticks = ax3.figure.axes[1].collections
    assert [len(c.get_segments()) for c in ticks] == [n_hits - n_lead, n_lead]
    ax3.figure.savefig(tmp_path / "gsea_running.png")

    ax4 = op.pl.pathway(res, "KEGG_2021_Human", term)
    labels = [t.get_text() for t in ax4.get_yticklabels()]
    assert "IL-2RB (IL2RB)" in labels and "LIF-R (LIFR)" in labels
    assert len(labels) == len(JAK)  # every measured member, nothing else
    ax4.figure.savefig(tmp_path / "pathway.png")

    ax5 = op.pl.leading_edge(adata, gsea, term, groupby="time", pair="subject")
    n_le = len(gsea.set_index("term").loc[term, "leading_edge"].split(";"))
    image = ax5.get_images()[0].get_array()
    assert image.shape == (n_le, adata.n_obs)
    assert [t.get_text() for t in ax5.get_xticklabels()] == ["pre", "post"]
    ax5.figure.savefig(tmp_path / "leading_edge.png")
    assert gsea.attrs["input"]["sign"] == "post - pre"
    ax6 = op.pl.leading_edge(adata, gsea, term, groupby="time", order=["post", "pre"])
    assert [t.get_text() for t in ax6.get_xticklabels()] == ["post", "pre"]
    first = ax6.get_images()[0].get_array()[:, : adata.n_obs // 2]
    assert np.nanmean(first) > 0  # post samples (raised) come first

    for name in ["ora_dot", "gsea_bar", "gsea_running", "pathway", "leading_edge"]:
        assert (tmp_path / f"{name}.png").stat().st_size > 1000


def test_plot_errors_name_the_problem(study):
    _, res = study
    gsea = op.tl.gsea(
        res, {"S": ["IL2RB", "CD274", "IFNG", "IL6", "IL10", "IL7"]}, permutations=20
    )
    with pytest.raises(ValidationError, match="not in the result"):
        op.pl.gsea(gsea, "missing term")
    bare = pd.DataFrame(gsea)  # same data, attrs dropped
    bare.attrs = {}
    with pytest.raises(ValidationError, match="running-score data"):
        op.pl.gsea(bare, "S")
    with pytest.raises(ValidationError, match="JAK-STAT signaling pathway"):
        op.pl.pathway(res, "KEGG_2021_Human", "JAK-STAT")


def test_enrichment_colours_follow_direction_and_empty_errors():
    from matplotlib.colors import to_rgba

    from olinkpipe.pl._style import DOWN, UP

    res = pd.DataFrame(
        {
            "term": ["a", "b"],
            "direction": ["up", "down"],
            "overlap": [3, 5],
            "p_value": [1e-3, 1e-2],
            "p_adj": [2e-3, 1e-2],
        }
    )
    ax = op.pl.enrichment(res)
    faces = [tuple(c) for c in ax.collections[0].get_facecolors()]
    # drawn bottom-up: least significant first
    assert faces == [to_rgba(DOWN), to_rgba(UP)]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["b", "a"]
    with pytest.raises(ValidationError, match="no terms"):
        op.pl.enrichment(res.iloc[:0])
    with pytest.raises(op.errors.DesignError, match="kind"):
        op.pl.enrichment(res, kind="pie")


def test_pathway_rows_labels_and_significance(tmp_path):
    # one row per assay: a combined assay is one row naming both genes; an assay name
    # measured on two panels carries its panel; p_adj is printed, significant in bold
    res = pd.DataFrame(
        {
            "OlinkID": ["OID1", "OID2", "OID3", "OID4", "OID5", "OID6"],
            "Assay": ["IL6", "IL6", "IL12", "IL-2RB", "ACTB", "IL-10RB"],
            "UniProt": ["P05231", "P05231", "P29459_P29460", "P14784", "P60709", "Q08334"],
            "Panel": ["Inflammation", "Oncology", "Immuno-Oncology", "Inflammation", "X", "Y"],
            "estimate": [1.2, 0.9, 0.3, 1.5, 2.0, -0.8],
            "ci_low": [0.8, 0.4, -0.2, 1.0, 1.5, -1.2],
            "ci_high": [1.6, 1.4, 0.8, 2.0, 2.5, -0.4],
            "p_adj": [0.001, 0.02, 0.4, 1e-5, 1e-6, 0.003],
        }
    )
    res.attrs = {"sign": "post - pre", "conf_level": 0.95}
    sets = {"JAK": ["IL6", "IL12A", "IL12B", "IL2RB", "IL10RB", "STAT3"]}
    fig, ax = plt.subplots()
    assert op.pl.pathway(res, sets, "JAK", ax=ax) is ax
    labels = [t.get_text() for t in ax.get_yticklabels()]
    # sorted by estimate, largest on top (ACTB is not in the set)
    assert labels == [
        "IL-10RB (IL10RB)",
        "IL12 (IL12A, IL12B)",
        "IL6 [Oncology]",
        "IL6 [Inflammation]",
        "IL-2RB (IL2RB)",
    ]
    bold = [t.get_fontweight() == "bold" for t in ax.get_yticklabels()]
    assert bold == [True, False, True, True, True]
    points = ax.collections[-1].get_offsets()
    np.testing.assert_allclose(points[:, 0], [-0.8, 0.3, 0.9, 1.2, 1.5])
    texts = [t.get_text() for t in ax.texts]
    assert "1.0e-05" in texts and "0.400" in texts and "p_adj" in texts
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["up (3)", "down (1)", "not significant (1)"]
    assert "4 of 5 measured members" in ax.get_title()
    assert ax.get_xlabel() == "estimate (post - pre), 95% CI"
    fig.savefig(tmp_path / "pathway.png")
    plt.close(fig)


def test_gsea_plot_leading_edge_of_a_negative_term():
    genes = [f"G{i:02d}" for i in range(60)]
    rng = np.random.default_rng(1)
    res = pd.DataFrame(
        {"gene": genes, "estimate": 1.0, "statistic": np.linspace(3, -3, 60), "p_value": 0.5}
    )
    members = list(rng.choice(genes[40:], 8, replace=False)) + ["G05", "G20"]
    g = op.tl.gsea(res, {"down": members}, permutations=20)
    row = g.set_index("term").loc["down"]
    assert row["es"] < 0
    ax = op.pl.gsea(g, "down")
    n_lead = len(row["leading_edge"].split(";"))
    assert f"leading edge: {n_lead} of 10 genes" in [t.get_text() for t in ax.texts]
    lead_ticks = ax.figure.axes[1].collections[1].get_segments()
    assert sorted(int(s[0][0]) for s in lead_ticks) == sorted(
        g.attrs["ranking"]["gene"].index(x) for x in row["leading_edge"].split(";")
    )
    plt.close(ax.figure)
