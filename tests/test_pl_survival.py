"""Outcome figures: KM with numbers at risk, cumulative incidence with Gray's p, swimmer."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PolyCollection

import olinkpipe as op
from olinkpipe.errors import MissingColumnError, ValidationError


@pytest.fixture
def cohort() -> pd.DataFrame:
    rng = np.random.default_rng(3)
    arm = np.repeat(["CAR-T", "control"], [23, 44])
    t_rel = rng.exponential(np.where(arm == "CAR-T", 200.0, 40.0))
    t_nrm = rng.exponential(120.0, arm.size)
    fu = rng.uniform(6, 62, arm.size)
    t = np.minimum.reduce([t_rel, t_nrm, fu]).round(1)
    status = np.select([t == t_rel.round(1), t == t_nrm.round(1)], [1, 2], 0)
    return pd.DataFrame(
        {
            "patient": [f"P{i:02d}" for i in range(arm.size)],
            "arm": arm,
            "months": t,
            "status": status,
            "dead": (status == 2).astype(int),
            "follow_up": fu.round(1),
        }
    )


def _texts(ax) -> list[str]:
    return [t.get_text() for t in ax.texts]


def test_survival_plot(cohort, tmp_path):
    km = op.clinical.kaplan_meier(cohort, time="months", event="dead", group="arm")
    lr = op.clinical.logrank(cohort, time="months", event="dead", group="arm")
    ax = op.pl.survival(km, logrank=lr, risk_times=[0, 12, 24, 36])
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert "CAR-T (n=23)" in labels and "control (n=44)" in labels
    assert len([c for c in ax.collections if isinstance(c, PolyCollection)]) == 2  # CI bands
    texts = _texts(ax)
    p = lr["p_value"].iloc[0]
    title = ax.get_legend().get_title().get_text()
    assert title == (f"Log-rank p = {p:.3f}" if p >= 0.001 else "Log-rank p < 0.001")
    # numbers at risk at 12 months equal the patients followed >= 12 months
    for arm in ("CAR-T", "control"):
        n12 = int((cohort.loc[cohort["arm"] == arm, "months"] >= 12).sum())
        assert str(n12) in texts
    assert "No. at risk" in texts and "23" in texts and "44" in texts
    ax.figure.savefig(tmp_path / "km.png")
    assert (tmp_path / "km.png").stat().st_size > 5000


def test_survival_plot_on_given_axes_and_errors(cohort):
    km = op.clinical.kaplan_meier(cohort, time="months", event="dead")
    fig, axes = plt.subplots(1, 2)
    ax = op.pl.survival(km, ax=axes[1], ci=False, risk_table=False, censor_marks=False)
    assert ax is axes[1] and len(ax.get_lines()) == 1 and not ax.collections
    at = op.clinical.kaplan_meier(cohort, time="months", event="dead", at=[12])
    with pytest.raises(ValidationError, match="at=None"):
        op.pl.survival(at)


def test_cumulative_incidence_plot(cohort, tmp_path):
    cif = op.clinical.cumulative_incidence(cohort, time="months", event="status", group="arm")
    gray = op.clinical.gray_test(cohort, time="months", event="status", group="arm")
    ax = op.pl.cumulative_incidence(cif, gray=gray, cause=[1, 2], ci=True,
                                    cause_labels={2: "NRM"})  # fmt: skip
    labels = [ln.get_label() for ln in ax.get_lines()]
    assert {"CAR-T: Relapse", "CAR-T: NRM", "control: Relapse", "control: NRM"} <= set(labels)
    p = gray["p_value"].iloc[0]
    # two causes drawn: the label names the cause the p-value belongs to
    title = ax.get_legend().get_title().get_text()
    assert title == (f"Gray's test (Relapse) p = {p:.3f}" if p >= 0.001
                     else "Gray's test (Relapse) p < 0.001")  # fmt: skip
    one = op.pl.cumulative_incidence(cif, gray=0.0412, cause=1)
    assert one.get_legend().get_title().get_text() == "Gray's test p = 0.041"
    # the drawn curve is the table's curve
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "control: Relapse")
    sub = cif.loc[(cif["group"] == "control") & (cif["cause"] == 1)]
    np.testing.assert_allclose(line.get_ydata(), sub["estimate"])
    ax.figure.savefig(tmp_path / "cif.png")
    assert (tmp_path / "cif.png").stat().st_size > 5000
    with pytest.raises(ValidationError, match="cause"):
        op.pl.cumulative_incidence(cif, cause=7)
    with pytest.raises(MissingColumnError):
        op.pl.cumulative_incidence(cif.drop(columns="cause"))


def test_swimmer_plot(cohort, tmp_path):
    pts = cohort.loc[cohort["arm"] == "CAR-T"].copy()
    pts["follow_up"] = np.maximum(pts["follow_up"], pts["months"])
    pts["relapse"] = np.where(pts["status"] == 1, pts["months"], np.nan)
    pts.loc[pts.index[:2], "relapse"] = [3.0, 5.0]
    pts["site"] = None
    pts.loc[pts.index[0], "site"] = "extramedullary"
    pts.loc[pts.index[1], "site"] = "marrow"
    pts["death"] = np.where(pts["dead"] == 1, pts["months"], np.nan)
    pts.loc[pts.index[5], "death"] = pts.loc[pts.index[5], "follow_up"]
    pts["gvhd"] = np.nan
    pts.loc[pts.index[3], "gvhd"] = 0.7
    pts["ongoing"] = pts["relapse"].isna() & pts["death"].isna()
    pts["dose"] = np.where(np.arange(len(pts)) % 2 == 0, "high", "low")
    ax = op.pl.swimmer(pts, group="dose", relapse="relapse", relapse_site="site",
                       death="death", gvhd="gvhd", ongoing="ongoing")  # fmt: skip
    assert len(ax.patches) == len(pts)
    widths = sorted(p.get_width() for p in ax.patches)
    np.testing.assert_allclose(widths, np.sort(pts["follow_up"]))
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    for name in ("Relapse (extramedullary)", "Relapse (marrow)", "Death", "GVHD",
                 "Ongoing response", "high", "low"):  # fmt: skip
        assert name in legend
    n_arrows = sum(1 for c in ax.get_children() if type(c).__name__ == "Annotation")
    assert n_arrows == int(pts["ongoing"].sum())
    ax.figure.savefig(tmp_path / "swimmer.png")
    assert (tmp_path / "swimmer.png").stat().st_size > 5000
    late = pts.assign(relapse=pts["follow_up"] + 1)
    with pytest.raises(ValidationError, match="after the last follow-up"):
        op.pl.swimmer(late, relapse="relapse")
