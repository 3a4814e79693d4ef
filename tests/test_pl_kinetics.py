"""pl.kinetics / pl.peaks / pl.correlation: drawn on a given Axes, saved, artists checked."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.clinical import compare_groups, dose_groups, kinetics
from olinkpipe.errors import ValidationError


@pytest.fixture
def cohort():
    rng = np.random.default_rng(7)
    patients = pd.DataFrame(
        {"patient": [f"P{i}" for i in range(10)], "dose": rng.uniform(1, 4.9, 10) * 1e6}
    )
    patients = dose_groups(patients)
    rows = []
    for pid in patients["patient"]:
        for d in [-1, 0, 3, 7, 10, 14, 21, 28]:
            copies = 2e4 * np.exp(-0.5 * ((d - 7) / 3) ** 2) * rng.lognormal(0, 0.4)
            rows.append((pid, d, "CAR-T copies/ug DNA", copies, copies < 30, "copies/ug"))
    m = pd.DataFrame(
        rows, columns=["patient", "day", "analyte", "value", "below_detection", "unit"]
    )
    return m, patients


def test_kinetics_plot_mean_sem_by_group(cohort, tmp_path):
    m, patients = cohort
    fig, ax = plt.subplots()
    out = op.pl.kinetics(
        m, "CAR-T copies/ug DNA", patients=patients, log=True, individual=True, ax=ax
    )
    assert out is ax
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    n_low = int((patients["dose_group"] == "low").sum())
    assert labels == [f"low (n={n_low})", f"high (n={10 - n_low})"]
    assert len(ax.containers) == 2  # one error-bar container per group
    # the plotted means are the per-day group means
    low = m.merge(patients, on="patient").query("dose_group == 'low'")
    v = low["value"].where(~low["below_detection"], 0.0)
    expected = v.groupby(low["day"]).mean().to_numpy()
    np.testing.assert_allclose(np.asarray(ax.containers[0].lines[0].get_ydata(), float), expected)
    assert len(ax.lines) >= 10 + 2  # individual lines + mean lines
    assert ax.get_yscale() == "symlog"  # undetectable samples (0) stay on the axis
    linthresh = ax.yaxis.get_transform().linthresh  # a whole decade below the data
    every = m["value"].where(~m["below_detection"], 0.0)
    positive = every[every > 0].min()
    assert linthresh == 10.0 ** np.floor(np.log10(positive))
    assert ax.get_ylabel() == "CAR-T copies/ug DNA (copies/ug)"
    fig.savefig(tmp_path / "kinetics.png")
    assert (tmp_path / "kinetics.png").stat().st_size > 0
    with pytest.raises(ValidationError, match="dose_group"):
        op.pl.kinetics(m, "CAR-T copies/ug DNA")


def test_peaks_plot_annotates_p(cohort, tmp_path):
    m, patients = cohort
    summary = kinetics(m, analyte="CAR-T copies/ug DNA")
    res = compare_groups(summary, by="dose_group", metrics="cmax", patients=patients)
    ax = op.pl.peaks(summary, "cmax", "dose_group", patients=patients, log=True)
    texts = [t.get_text() for t in ax.texts]
    p = res["p_value"].iloc[0]
    assert any(f"p = {p:.3f}" in t for t in texts)
    assert len(ax.collections) == 2  # one dot cloud per group
    ax2 = op.pl.peaks(summary, "cmax", "dose_group", patients=patients, result=res)
    assert [t.get_text() for t in ax2.texts] == texts
    # the y label names the analyte and unit of the kinetics result
    assert ax.get_ylabel() == "Peak CAR-T copies/ug DNA (copies/ug)"
    assert ax.get_yscale() == "log"
    ax.figure.savefig(tmp_path / "peaks.png")
    assert (tmp_path / "peaks.png").stat().st_size > 0


def test_correlation_plot(cohort, tmp_path):
    m, patients = cohort
    table = kinetics(m, analyte="CAR-T copies/ug DNA").merge(patients, on="patient")
    fig, ax = plt.subplots()
    op.pl.correlation(table, "dose", "cmax", hue="dose_group", logy=True, ax=ax)
    rho = op.clinical.correlate(table, "dose", "cmax")["rho"].iloc[0]
    assert f"Spearman ρ = {rho:.2f}" in ax.get_title()
    assert len(ax.lines) == 0 and len(ax.collections) == 2  # no straight line for a rank rho
    fig.savefig(tmp_path / "correlation.png")
    assert (tmp_path / "correlation.png").stat().st_size > 0


def test_kinetics_plot_reads_text_flags_like_clinical_kinetics(cohort):
    # a CSV gives "TRUE"/"FALSE" strings: "FALSE" must not count as below detection
    m, patients = cohort
    text = m.assign(below_detection=m["below_detection"].map({True: "TRUE", False: "FALSE"}))
    ax = op.pl.kinetics(text, "CAR-T copies/ug DNA", patients=patients)
    ref = op.pl.kinetics(m, "CAR-T copies/ug DNA", patients=patients)
    got = np.asarray(ax.containers[0].lines[0].get_ydata(), float)
    np.testing.assert_allclose(got, np.asarray(ref.containers[0].lines[0].get_ydata(), float))
    assert got.max() > 1000
    plt.close("all")
