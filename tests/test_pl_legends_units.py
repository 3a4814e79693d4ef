"""Figures a scientist can send on (issue 19): legends cover no data, axes carry units,
the drawn trend matches the statistic, names that cannot be placed are warned about."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.errors import OlinkpipeWarning


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _data_points(ax) -> np.ndarray:
    """Display coordinates of scatter markers and of points along lines, line collections
    (the bridge plot's IQR bars, error bars) and patch outlines.

    Written independently of ``pl._style.place_legend``: lines are sampled at 100 points
    per segment, so a line crossing the legend (the volcano's BH cut-off) counts.
    """
    pts = []
    for coll in ax.collections:
        if isinstance(coll, plt.matplotlib.collections.PathCollection):
            off = np.asarray(coll.get_offsets(), dtype=float).reshape(-1, 2)
            pts.append(coll.get_offset_transform().transform(off))
        elif isinstance(coll, plt.matplotlib.collections.LineCollection):  # bars, error bars
            t = np.linspace(0.0, 1.0, 100)[:, None]
            for seg in coll.get_segments():
                xy = coll.get_transform().transform(np.asarray(seg, dtype=float))
                for a, b in zip(xy[:-1], xy[1:], strict=True):
                    pts.append(a + t * (b - a))
    for line in ax.lines:
        xy = line.get_transform().transform(np.asarray(line.get_xydata(), dtype=float))
        xy = xy[np.isfinite(xy).all(axis=1)]
        if line.get_linestyle() in ("None", "none", "", " ") or len(xy) < 2:
            pts.append(xy)
            continue
        t = np.linspace(0.0, 1.0, 100)[:, None]
        for a, b in zip(xy[:-1], xy[1:], strict=True):
            pts.append(a + t * (b - a))
    for patch in ax.patches:  # outlines, e.g. the QC plot's dashed outlier boxes
        xy = patch.get_transform().transform_path(patch.get_path()).vertices
        t = np.linspace(0.0, 1.0, 100)[:, None]
        for a, b in zip(xy[:-1], xy[1:], strict=True):
            pts.append(a + t * (b - a))
    if not pts:
        return np.empty((0, 2))
    out = np.vstack(pts)
    return out[np.isfinite(out).all(axis=1)]


def assert_legend_covers_nothing(ax) -> None:
    fig = ax.figure
    fig.canvas.draw()
    leg = ax.get_legend()
    assert leg is not None, "the figure has no legend"
    box = leg.get_window_extent()
    pts = _data_points(ax)
    inside = (
        (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)
    )
    assert not inside.any(), f"legend {box} covers {int(inside.sum())} data point(s)"
    for text in ax.texts:
        if text.get_text():
            assert not text.get_window_extent().overlaps(box), f"legend covers {text.get_text()!r}"


def _de_result(n: int = 300, seed: int = 1) -> pd.DataFrame:
    """A result whose strongest changes are DOWN: the upper left is crowded with points."""
    rng = np.random.default_rng(seed)
    est = rng.normal(0, 0.3, n)
    est[:40] = -rng.uniform(1.0, 2.0, 40)
    p = np.clip(np.exp(-np.abs(est) * rng.uniform(4, 12, n)), 1e-12, 1)
    from statsmodels.stats.multitest import multipletests

    res = pd.DataFrame(
        {
            "OlinkID": [f"OID{i:05d}" for i in range(n)],
            "Assay": [f"A{i}" for i in range(n)],
            "estimate": est,
            "p_value": p,
            "p_adj": multipletests(p, method="fdr_bh")[1],
        }
    )
    res.attrs["sign"] = "post - pre"
    return res


def test_volcano_legend_clear_of_points_and_bh_line():
    ax = op.pl.volcano(_de_result(), top=5)
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert not any("label=" in t for t in texts)  # no Python syntax in the legend
    assert any(t.startswith("BH cut-off") for t in texts)
    assert_legend_covers_nothing(ax)


def test_volcano_warns_about_names_not_in_the_result():
    res = _de_result()
    with pytest.warns(OlinkpipeWarning, match=r"not in the result.*'A10x'.*did you mean 'A10'"):
        ax = op.pl.volcano(res, label=["A3", "A10x", "NOPE"])
    bold = [t.get_text() for t in ax.texts if t.get_fontweight() == "bold"]
    assert bold == ["A3"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        op.pl.volcano(res, label=["A3", "OID00004"])  # assay names and OlinkIDs: no warning


def test_qc_plot_legend_clear_of_points():
    adata = op.datasets.load_example().adata
    ax = op.pl.qc(adata)
    assert_legend_covers_nothing(ax)


def test_pca_legend_clear_of_points():
    adata = op.datasets.load_example().adata
    ax = op.pl.pca(adata, color="timepoint")
    assert_legend_covers_nothing(ax)


@pytest.fixture
def example():
    return op.datasets.load_example()


def _peaks(example, analyte: str) -> pd.DataFrame:
    return op.clinical.kinetics(example.measurements, analyte=analyte, window=(0, 28))


def test_dose_vs_peak_draws_no_least_squares_line_for_spearman(example):
    summary = _peaks(example, "CAR-T copies/ug DNA")
    table = summary.merge(example.patients[["patient", "dose"]], on="patient")
    ax = op.pl.correlation(
        table, "dose", "cmax", logy=True, xlabel="Dose (cells/kg)", ylabel="Peak CAR-T"
    )
    assert ax.get_lines() == []  # a straight line would not be what rho measures
    rho = op.clinical.correlate(table, "dose", "cmax")
    assert f"Spearman ρ = {rho['rho'].iloc[0]:.2f}" in ax.get_title()
    assert f"p = {rho['p_value'].iloc[0]:.3f}" in ax.get_title()
    assert ax.get_xlabel() == "Dose (cells/kg)"
    # Pearson: the least-squares line, named in the legend; LOWESS on request
    ax = op.pl.correlation(table, "dose", "cmax", method="pearson")
    assert [ln.get_label() for ln in ax.get_lines()] == ["least-squares line"]
    assert_legend_covers_nothing(ax)
    ax = op.pl.correlation(table, "dose", "cmax", trend="lowess")
    assert [ln.get_label() for ln in ax.get_lines()] == ["LOWESS smooth"]


def test_axis_labels_carry_units_once(example):
    ax = op.pl.kinetics(example.measurements, "CAR-T copies/ug DNA", by="patient")
    assert ax.get_ylabel() == "CAR-T (copies/ug DNA)"  # not "CAR-T copies/ug DNA (copies/ug DNA)"
    il6 = _peaks(example, "IL-6")
    unit = example.measurements.loc[example.measurements["analyte"] == "IL-6", "unit"].iloc[0]
    groups = op.clinical.dose_groups(example.patients[example.patients["dose"].notna()])
    ax = op.pl.peaks(il6, "cmax", "dose_group", patients=groups)
    assert ax.get_ylabel() == f"Peak IL-6 ({unit})"
    # a concatenated table loses attrs: the unit can be given
    bare = il6.copy()
    bare.attrs = {}
    ax = op.pl.peaks(bare, "cmax", "dose_group", patients=groups, unit="pg/mL")
    assert ax.get_ylabel() == "Peak IL-6 (pg/mL)"


def test_kinetics_legend_clear(example):
    groups = op.clinical.dose_groups(example.patients[example.patients["dose"].notna()])
    ax = op.pl.kinetics(example.measurements, "IL-6", patients=groups)
    assert_legend_covers_nothing(ax)


def test_survival_and_cif_legends_clear(example):
    pts = example.patients
    km = op.clinical.kaplan_meier(pts, time="os_months", event="os_event", group="group")
    lr = op.clinical.logrank(pts, time="os_months", event="os_event", group="group")
    ax = op.pl.survival(km, logrank=lr, xlabel="Months since transplant")
    assert ax.get_xlabel() == "Months since transplant"
    assert_legend_covers_nothing(ax)
    cif = op.clinical.cumulative_incidence(
        pts, time="cir_months", event="cir_status", group="group"
    )
    ax = op.pl.cumulative_incidence(cif, cause=[1, 2])
    assert_legend_covers_nothing(ax)


def test_swimmer_reads_flags_with_missing_values_without_pandas_warnings():
    pts = pd.DataFrame(
        {
            "patient": ["P1", "P2", "P3"],
            "follow_up": [24.0, 8.5, 30.1],
            "ongoing": pd.Series([True, np.nan, "FALSE"], dtype=object),
        }
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # pandas' FutureWarning on fillna downcasting
        ax = op.pl.swimmer(pts, ongoing="ongoing")
    arrows = [t for t in ax.texts if getattr(t, "arrow_patch", None) is not None]
    assert len(arrows) == 1  # only P1 is ongoing; NaN and "FALSE" are not


@pytest.fixture(scope="module")
def example_de():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        adata = op.pp.filter(op.datasets.load_example().adata, qc_warning="drop", controls="drop")
        de = op.tl.differential(
            adata,
            groupby="timepoint",
            reference="pre",
            target="post",
            pair="patient",
            method="moderated",
        )
    return adata, de


def test_paired_pathway_and_dot_legends_clear(example_de):
    adata, de = example_de
    ax = op.pl.paired(adata, ["SIT1", "CD28", "IL2RB"], "timepoint", "patient", reference="pre")
    assert ax.get_ylabel() == "NPX"
    assert_legend_covers_nothing(ax)
    ax = op.pl.pathway(de, "KEGG_2021_Human", "JAK-STAT signaling pathway")
    assert "post - pre" in ax.get_xlabel()
    assert_legend_covers_nothing(ax)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        ora = op.tl.ora(de, "KEGG_2021_Human", direction="up")
    ax = op.pl.enrichment(ora, top=15)
    assert_legend_covers_nothing(ax)


def test_bridge_legend_clear(example):
    run1 = example.adata
    run2 = run1.copy()  # a second run reading 0.5 NPX higher, noisily, on every assay
    run2.X = run2.X + 0.5 + np.random.default_rng(3).normal(0, 0.2, run2.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        both = op.pp.bridge_normalize(run1, run2, list(run1.obs_names[:8]))
    ax = op.pl.bridge(None, both)
    assert ax.get_ylabel().startswith("NPX ")  # NPX difference, reference − other
    assert ax.get_legend() is not None
    assert_legend_covers_nothing(ax)


def test_distribution_legend_clear(example):
    adata = example.adata
    ax = op.pl.distribution(adata)
    assert ax.get_ylabel() == "NPX"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == sorted(
        adata.obs["PlateID"].astype(str).unique()
    )
    assert_legend_covers_nothing(ax)


def test_swimmer_legend_clear(example):
    pts = example.patients
    pts = pts[pts["group"] == "CAR-T"]  # as the workflow draws it (workflow.config.Swimmer)
    ax = op.pl.swimmer(
        pts,
        follow_up="followup_months",
        start="infusion_months",
        relapse="relapse_months",
        relapse_site="relapse_site",
        death="death_months",
        gvhd="agvhd_months",
        ongoing="ongoing_response",
        xlabel="Months since transplant",
    )
    assert ax.get_xlabel() == "Months since transplant"
    assert {"Death", "Ongoing response"} <= {t.get_text() for t in ax.get_legend().get_texts()}
    assert_legend_covers_nothing(ax)


def test_gsea_plot_has_no_legend_and_its_note_covers_no_curve():
    """One running-score curve: by design no legend; the leading-edge note is the only
    text on the panel and must not sit on the curve or the peak line."""
    genes = [f"G{i:02d}" for i in range(60)]
    res = pd.DataFrame(
        {"gene": genes, "estimate": 1.0, "statistic": np.linspace(3, -3, 60), "p_value": 0.5}
    )
    g = op.tl.gsea(res, {"top": genes[:5] + ["G30", "G50"]}, permutations=20)
    ax = op.pl.gsea(g, "top")
    assert all(a.get_legend() is None for a in ax.figure.axes)
    ax.figure.canvas.draw()
    (note,) = [t for t in ax.texts if t.get_text().startswith("leading edge")]
    box = note.get_window_extent()
    pts = _data_points(ax)
    inside = (
        (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)
    )
    assert not inside.any(), f"the leading-edge note covers {int(inside.sum())} point(s)"
