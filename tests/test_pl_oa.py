"""OlinkAnalyze-style plots: plates, lmer means, boxplot stars, clustered heatmap, UMAP, PCA."""

from __future__ import annotations

import anndata as ad
import matplotlib
import numpy as np
import pandas as pd
import pytest

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.colors import to_rgba  # noqa: E402
from scipy.cluster.hierarchy import leaves_list, linkage  # noqa: E402

import olinkpipe as op  # noqa: E402
from olinkpipe.errors import DesignError, MissingColumnError  # noqa: E402
from olinkpipe.pl._style import group_color  # noqa: E402
from olinkpipe.pl.cluster import nan_euclidean  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture
def small():
    rng = np.random.default_rng(7)
    n, p = 40, 30
    obs = pd.DataFrame(
        {"Group": np.repeat(["A", "B", "C", "D"], 10), "Age": rng.normal(50, 10, n)},
        index=[f"S{i:02d}" for i in range(n)],
    )
    var = pd.DataFrame(
        {"Assay": [f"P{j}" for j in range(p)], "Panel": ["Olink Inflammation"] * 15 + ["Olink Oncology"] * 15},
        index=pd.Index([f"OID{10000 + j}" for j in range(p)], name="OlinkID"),
    )  # fmt: skip
    x = rng.normal(size=(n, p)) + np.repeat(rng.normal(size=(4, p)) * 2, 10, axis=0)
    return ad.AnnData(x, obs=obs, var=var)


# --- plates ------------------------------------------------------------------------


def _plated(rand_ctrl=False):
    m = pd.DataFrame({"SampleID": [f"S{i}" for i in range(120)], "Site": ["A", "B", "C"] * 40})
    return op.design.randomize_plates(m, rand_ctrl=rand_ctrl, seed=2)


def test_plate_layout_colours_each_well():
    r = _plated()
    axes = op.pl.plate_layout(r, "Site")
    assert len(axes) == 2 and [ax.get_title() for ax in axes] == ["Plate 1", "Plate 2"]
    colours = {"A": group_color(0), "B": group_color(1), "C": group_color(2)}
    for ax, plate in zip(axes, ["Plate 1", "Plate 2"], strict=True):
        assert len(ax.patches) == 96
        # wells drawn row-major (A1..A12, B1..); centre of the patch gives (row, column)
        face = {
            ("ABCDEFGH"[round(pt.get_y() + 0.5)], round(pt.get_x() + 0.5)): pt.get_facecolor()
            for pt in ax.patches
        }
        sub = r[r["plate"] == plate]
        for row, col, site in zip(sub["row"], sub["column"], sub["Site"], strict=True):
            assert face[(row, col)] == to_rgba(colours[site])
        assert all(face[(rw, 12)] == to_rgba("white") for rw in "ABCDEFGH")  # controls free
    labels = [t.get_text() for t in axes[0].get_legend().get_texts()]
    assert labels == ["A", "B", "C", "Empty"]


def test_plate_layout_random_controls_and_labels():
    r = _plated(rand_ctrl=True)
    axes = op.pl.plate_layout(r, "Site", labels=True)
    grey = to_rgba("#bdbdbd")
    n_ctrl = [sum(pt.get_facecolor() == grey for pt in ax.patches) for ax in axes]
    assert n_ctrl == [8, 8]
    assert sum(t.get_text() == "CONTROL" for t in axes[0].texts) == 8
    assert "CONTROL" in [t.get_text() for t in axes[0].get_legend().get_texts()]


def test_plate_distribution_bar_heights():
    r = _plated()
    ax = op.pl.plate_distribution(r, "Site")
    pct = pd.crosstab(r["plate"], r["Site"], normalize="index") * 100
    heights = np.array([b.get_height() for b in ax.patches]).reshape(3, 2)  # level-major
    np.testing.assert_allclose(heights.T, pct.to_numpy(), atol=1e-12)
    assert [t.get_text() for t in ax.get_xticklabels()] == ["Plate 1", "Plate 2"]
    with pytest.raises(MissingColumnError, match="Sex"):
        op.pl.plate_distribution(r, "Sex")


# --- lmer ----------------------------------------------------------------------------


def test_lmer_draws_the_posthoc_means():
    rng = np.random.default_rng(0)
    obs = pd.DataFrame(
        {
            "Subject": np.repeat([f"P{i}" for i in range(8)], 3),
            "Group": np.repeat(["A", "B"], 12),
            "Time": ["D0", "D7", "D28"] * 8,
        },
        index=[f"S{i}" for i in range(24)],
    )
    var = pd.DataFrame({"Assay": ["IL6", "TNF"]}, index=pd.Index(["OID1", "OID2"], name="OlinkID"))
    x = rng.normal(size=(24, 2)) + np.repeat(rng.normal(size=(8, 1)), 3, axis=0)
    adata = ad.AnnData(x, obs=obs, var=var)
    means = op.tl.lmer_posthoc(
        adata, ["Group", "Time"], "Subject", effect="Group:Time", mean_return=True, progress=False
    )
    order = ["D0", "D7", "D28"]
    axes = op.pl.lmer(means, "Time", color="Group", order=order)
    assert [ax.get_title() for ax in axes] == ["IL6 (OID1)", "TNF (OID2)"]
    for ax, oid in zip(axes, ["OID1", "OID2"], strict=True):
        assert [t.get_text() for t in ax.get_xticklabels()] == order
        assert len(ax.containers) == 2  # one errorbar per Group level
        for cont, grp in zip(ax.containers, ["A", "B"], strict=True):
            exp = (
                means[(means["OlinkID"] == oid) & (means["Group"] == grp)]
                .set_index("Time")
                .loc[order]
            )
            line, _, (bars,) = cont.lines
            np.testing.assert_allclose(line.get_ydata(), exp["emmean"], rtol=1e-12)
            segs = np.array(bars.get_segments())  # (level, 2 ends, xy)
            np.testing.assert_allclose(segs[:, 0, 1], exp["ci_low"], rtol=1e-12)
            np.testing.assert_allclose(segs[:, 1, 1], exp["ci_high"], rtol=1e-12)
            dodge = -0.2 if grp == "A" else 0.2
            np.testing.assert_allclose(line.get_xdata(), np.arange(3) + dodge)
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["A", "B"]
    with pytest.raises(DesignError, match="OID9"):
        op.pl.lmer(means, "Time", assays=["OID9"])


# --- boxplot -------------------------------------------------------------------------


def test_boxplot_stars_and_brackets_from_posthoc(small):
    ph = pd.DataFrame(
        {
            "OlinkID": "OID10000",
            "contrast": ["A - B", "A - C", "B - C", "C - D", "A - D", "B - D"],
            "p_adj": [0.03, 0.008, 0.001, 0.2, 0.05, 0.004],
            "significant": [True, True, True, False, False, True],
        }
    )
    (ax,) = op.pl.boxplot(small, ["OID10000"], "Group", posthoc=ph)
    y = small[:, "OID10000"].X.ravel()
    groups = small.obs["Group"].to_numpy()
    for i, g in enumerate("ABCD"):
        box_median = ax.lines[i * 6 + 4].get_ydata()[
            0
        ]  # whisker, whisker, cap, cap, median, flier
        assert box_median == pytest.approx(np.median(y[groups == g]))
    # OA: ordered by the smaller level (A-B, A-C, A-D | B-C, B-D | C-D), k-th of 6 at
    # max + k * 0.2 * range / 6; only significant ones drawn, stars at y + 0.1
    top, span = y.max(), np.ptp(y)
    expect = {(0, 1): (1, "*"), (0, 2): (2, "**"), (1, 2): (4, "***"), (1, 3): (5, "***")}
    brackets = [ln for ln in ax.lines if ln.get_label() == "posthoc"]
    assert len(brackets) == 4
    for ln in brackets:
        x1, x2 = ln.get_xdata()
        k, _ = expect[(x1, x2)]
        np.testing.assert_allclose(ln.get_ydata(), top + k * span * 0.2 / 6)
    texts = sorted((t.get_position()[0], t.get_position()[1], t.get_text()) for t in ax.texts)
    want = sorted(
        ((a + b) / 2, top + k * span * 0.2 / 6 + 0.1, s) for (a, b), (k, s) in expect.items()
    )
    assert [t[2] for t in texts] == [w[2] for w in want]
    np.testing.assert_allclose([t[:2] for t in texts], [w[:2] for w in want])


def test_boxplot_with_anova_posthoc(small):
    ph = op.tl.anova_posthoc(small, formula_terms="Group", effect="Group")
    oids = ["OID10000", "OID10001"]
    axes = op.pl.boxplot(small, oids, "Group", posthoc=ph)
    assert ph[ph["OlinkID"].isin(oids)]["significant"].sum() >= 2  # something to draw
    for ax, oid in zip(axes, oids, strict=True):
        sig = ph[(ph["OlinkID"] == oid) & ph["significant"]]
        assert sorted(t.get_text() for t in ax.texts) == sorted(op.pl.oa.stars(sig["p_adj"]))
        assert ax.get_title() == f"{small.var.loc[oid, 'Assay']} ({oid})"


# --- clustered heatmap --------------------------------------------------------------


def test_clustered_heatmap_order_is_scipy_linkage(small):
    ax = op.pl.clustered_heatmap(small, obs_annotation=["Group", "Age"], var_annotation="Panel")
    x = small.X
    z = (x - x.mean(0)) / x.std(0, ddof=1)  # pheatmap scale = "column"
    rows = small.obs_names[leaves_list(linkage(z, "complete", metric="euclidean"))]
    cols = small.var["Assay"].to_numpy()[leaves_list(linkage(z.T, "complete"))]
    assert [t.get_text() for t in ax.get_yticklabels()] == list(rows)
    assert [t.get_text() for t in ax.get_xticklabels()] == list(cols)
    img = ax.get_images()[0].get_array()
    np.testing.assert_allclose(
        img, pd.DataFrame(z, small.obs_names, small.var["Assay"]).loc[rows, cols]
    )
    by_label = {a.get_label(): a for a in ax.figure.axes}
    assert {"sample_dendrogram", "assay_dendrogram", "obs_annotation", "var_annotation"} <= set(
        by_label
    )
    bar = by_label["obs_annotation"].get_images()[0].get_array()
    groups = small.obs.loc[rows, "Group"]
    want = np.array([to_rgba(group_color("ABCD".index(g))) for g in groups])
    np.testing.assert_allclose(bar[:, 0, :], want)
    vbar = by_label["var_annotation"].get_images()[0].get_array()
    panel = small.var.set_index("Assay").loc[cols, "Panel"]
    want = np.array([to_rgba(group_color(int(p == "Olink Oncology"))) for p in panel])
    np.testing.assert_allclose(vbar[0, :, :], want)


def test_nan_euclidean_as_r_dist():
    rng = np.random.default_rng(3)
    z = rng.normal(size=(6, 5))
    z[0, 1] = z[3, 4] = z[3, 0] = np.nan
    d = nan_euclidean(z)
    for i in range(6):
        for j in range(6):
            m = ~np.isnan(z[i]) & ~np.isnan(z[j])
            ref = np.sqrt(((z[i, m] - z[j, m]) ** 2).sum() * 5 / m.sum())  # R ?dist
            assert d[i, j] == pytest.approx(ref, rel=1e-12, abs=1e-12)


# --- UMAP and PCA ------------------------------------------------------------------


@pytest.mark.slow
def test_umap_points_are_scanpys(small):
    import scanpy as sc

    ax = op.pl.umap(small, color="Group", seed=3, n_neighbors=10)
    tmp = ad.AnnData(small.X.copy())  # no controls, no NaN: preprocessing keeps X
    sc.pp.neighbors(tmp, n_neighbors=10, use_rep="X", random_state=3)
    sc.tl.umap(tmp, min_dist=0.1, random_state=3)
    got = np.vstack([c.get_offsets() for c in ax.collections])
    groups = small.obs["Group"].to_numpy()
    want = np.vstack([tmp.obsm["X_umap"][groups == g] for g in "ABCD"])
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    assert "X_umap" not in small.obsm and ax.get_xlabel() == "UMAP1"


def _svd_pca(x):
    z = (x - x.mean(0)) / x.std(0, ddof=1)
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    return u * s, vt.T


def test_pca_loadings_arrows(small):
    ax = op.pl.pca(small, loadings=3)
    scores, rot = _svd_pca(small.X)
    plotted = ax.collections[0].get_offsets()
    sign = np.sign([np.dot(plotted[:, k], scores[:, k]) for k in range(2)])
    scores, rot = scores[:, :2] * sign, rot[:, :2] * sign
    np.testing.assert_allclose(plotted, scores, atol=1e-8)
    # OA: 0.8 / max(extent(loading) / extent(score)), extents |min| and |max| per axis
    ext = lambda v: np.array([abs(v.min()), abs(v.max())])  # noqa: E731
    scale = 0.8 / max(np.max(ext(rot[:, k]) / ext(scores[:, k])) for k in range(2))
    top = np.argsort(-np.hypot(rot[:, 0], rot[:, 1]))[:3]
    arrows = [t for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
    labels = [t.get_text() for t in ax.texts if t.get_text()]
    assert labels == list(small.var["Assay"].to_numpy()[top])
    np.testing.assert_allclose([a.xy for a in arrows], rot[top] * scale, atol=1e-10)
    ax2 = op.pl.pca(small, loadings=["P5", "OID10007"])
    assert [t.get_text() for t in ax2.texts if t.get_text()] == ["P5", "P7"]


def test_pca_by_panel(small):
    axes = op.pl.pca_by_panel(small, color="Group", loadings=2)
    assert [ax.get_title().split("\n")[0] for ax in axes] == ["Inflammation", "Oncology"]
    for ax, sl in zip(axes, [slice(0, 15), slice(15, 30)], strict=True):
        scores, _ = _svd_pca(small.X[:, sl])
        got = np.vstack([c.get_offsets() for c in ax.collections])
        groups = small.obs["Group"].to_numpy()
        want = np.vstack([scores[groups == g, :2] for g in "ABCD"])
        np.testing.assert_allclose(np.abs(got), np.abs(want), atol=1e-8)
        assert sum(bool(t.get_text()) for t in ax.texts) == 2
    with pytest.raises(MissingColumnError, match="Block"):
        op.pl.pca_by_panel(small, panel_col="Block")
