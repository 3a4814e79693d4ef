"""clinical.kinetics: Cmax, Tmax, AUC, fold change and persistence per patient."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from olinkpipe.clinical import kinetics
from olinkpipe.errors import DesignError, OlinkpipeWarning, ValidationError

COLUMNS = [
    "patient",
    "analyte",
    "baseline",
    "cmax",
    "tmax",
    "auc",
    "fold_change",
    "last_detectable_day",
    "n_samples",
    "reason",
]


def _simulated(seed: int = 3, n_patients: int = 12) -> pd.DataFrame:
    """CAR-T copies and IL-6 on an irregular schedule, some samples below detection."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_patients):
        days = np.sort(rng.choice([-5, -1, 0, 1, 3, 4, 7, 9, 10, 14, 17, 21, 28, 35], 8, False))
        peak_day = rng.choice([5, 7, 10])
        car = 1e4 * np.exp(-0.5 * ((days - peak_day) / 3.0) ** 2) * rng.lognormal(0, 0.3, 8)
        below = car < 50
        il6 = 5 + 200 * np.exp(-0.5 * ((days - 2) / 2.0) ** 2) * rng.lognormal(0, 0.3, 8)
        for d, c, b, v in zip(days, car, below, il6, strict=True):
            rows.append((f"P{i:02d}", d, "CAR-T copies/ug DNA", 50.0 if b else c, b))
            rows.append((f"P{i:02d}", d, "IL-6", v, False))
    return pd.DataFrame(rows, columns=["patient", "day", "analyte", "value", "below_detection"])


def test_hand_worked_example():
    # days      -2   0   3    7    14   21   28   35
    # value      1   2  10  100   40    5  <LOD  30   (day 35 outside the window)
    # window 0-28, zero for <LOD: Cmax = 100 at day 7; baseline = day-0 value 2.
    # AUC (trapezoid): (2+10)/2*3 + (10+100)/2*4 + (100+40)/2*7 + (40+5)/2*7 + (5+0)/2*7
    #                = 18 + 220 + 490 + 157.5 + 17.5 = 903
    # last detectable day in the window: 21; fold change 100 / 2 = 50; 6 samples in the window (days 0-28).
    m = pd.DataFrame(
        {
            "patient": "P1",
            "day": [-2, 0, 3, 7, 14, 21, 28, 35],
            "analyte": "CAR-T",
            "value": [1.0, 2.0, 10.0, 100.0, 40.0, 5.0, 0.4, 30.0],
            "below_detection": [0, 0, 0, 0, 0, 0, 1, 0],
        }
    )
    out = kinetics(m, analyte="CAR-T")
    assert list(out.columns) == COLUMNS
    row = out.iloc[0]
    assert row["baseline"] == 2.0
    assert row["cmax"] == 100.0 and row["tmax"] == 7.0
    assert row["auc"] == pytest.approx(903.0, abs=1e-12)
    assert row["fold_change"] == pytest.approx(50.0)
    # persistence looks past the window's end: detectable again on day 35
    assert row["last_detectable_day"] == 35.0
    assert row["n_samples"] == 6 and row["reason"] == ""
    # LOD/2 for the day-28 sample: last interval (5 + 0.2)/2 * 7 = 18.2 instead of 17.5
    half = kinetics(m, analyte="CAR-T", below_detection="lod_half").iloc[0]
    assert half["auc"] == pytest.approx(903.0 - 17.5 + 18.2, abs=1e-12)
    # missing: the day-28 sample counts as not taken; observed edges: AUC ends at day 21,
    # interpolated edges: day 28 = 5 + (30 - 5) * 7/14 = 17.5 from days 21 and 35
    miss = kinetics(m, analyte="CAR-T", below_detection="missing", edges="observed").iloc[0]
    assert miss["auc"] == pytest.approx(903.0 - 17.5, abs=1e-12)
    assert miss["n_samples"] == 5
    miss = kinetics(m, analyte="CAR-T", below_detection="missing").iloc[0]
    assert miss["auc"] == pytest.approx(903.0 - 17.5 + (5 + 17.5) / 2 * 7, abs=1e-12)
    # log-down: falling intervals 100->40, 40->5 use (c0-c1) dt / ln(c0/c1); 5->0 stays linear
    logd = kinetics(m, analyte="CAR-T", auc="linear-up/log-down").iloc[0]
    expected = 18 + 220 + 60 * 7 / np.log(100 / 40) + 35 * 7 / np.log(40 / 5) + 17.5
    assert logd["auc"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("below_detection", ["zero", "lod_half", "missing"])
@pytest.mark.parametrize("edges", ["interpolate", "observed"])
def test_against_numpy_trapezoid_and_pandas(below_detection, edges):
    m = _simulated()
    out = kinetics(
        m, analyte="CAR-T copies/ug DNA", below_detection=below_detection, min_points=1,
        edges=edges,
    ).set_index("patient")  # fmt: skip
    n_interpolated = 0
    for pid, sub in m.loc[m["analyte"] == "CAR-T copies/ug DNA"].groupby("patient"):
        v = sub["value"].to_numpy(float).copy()
        b = sub["below_detection"].to_numpy()
        v[b] = {"zero": 0.0, "lod_half": 25.0, "missing": np.nan}[below_detection]
        d = sub["day"].to_numpy(float)
        ok = ~np.isnan(v)
        keep = (d >= 0) & (d <= 28) & ok
        dd, vv = d[keep], v[keep]
        row = out.loc[pid]
        assert row["n_samples"] == keep.sum()
        # persistence: last detectable day from day 0 on, also after day 28
        det = d[(d >= 0) & ~b & (sub["value"].to_numpy() > 0)]
        if det.size:
            assert row["last_detectable_day"] == det.max()
        else:
            assert np.isnan(row["last_detectable_day"])
        # baseline: the last sample on or before day 0, NaN if it is below detection and
        # below_detection="missing" (never an earlier sample instead)
        pre = d <= 0
        if pre.any():
            assert row["baseline"] == pytest.approx(v[pre][-1], nan_ok=True)
        else:
            assert np.isnan(row["baseline"])
        if keep.sum() == 0:
            assert np.isnan(row["cmax"]) and np.isnan(row["auc"])
            continue
        assert row["cmax"] == vv.max()
        assert row["tmax"] == dd[np.argmax(vv)]
        # AUC reference: numpy.trapezoid over the samples in the window, plus (edges =
        # "interpolate") numpy.interp values on the edges 0 and 28 when samples lie on
        # both sides of an edge without one on it
        grid, vals = dd, vv
        if edges == "interpolate":
            dk, vk = d[ok], v[ok]
            add = [e for e in (0.0, 28.0) if dk.min() < e < dk.max() and e not in dk]
            n_interpolated += len(add)
            grid = np.sort(np.concatenate([dd, add]))
            vals = np.interp(grid, dk, vk)
        if grid.size < 2:
            assert np.isnan(row["auc"])
        else:
            assert row["auc"] == pytest.approx(np.trapezoid(vals, grid), rel=1e-12, abs=1e-9)
    if edges == "interpolate":
        assert n_interpolated >= 3  # the simulated schedules do exercise the edges


def test_window_edges_are_interpolated_never_extrapolated():
    # days     -1    3    10    21    35;  window (0, 28), no sample on either edge
    # values   4    40    20     8     2
    # day 0:  4 + (40 - 4) * 1/4 = 13;  day 28: 8 + (2 - 8) * 7/14 = 5
    # AUC = (13+40)/2*3 + (40+20)/2*7 + (20+8)/2*11 + (8+5)/2*7 = 79.5+210+154+45.5 = 489
    m = pd.DataFrame({"patient": "P1", "day": [-1, 3, 10, 21, 35], "analyte": "IL-6",
                      "value": [4.0, 40.0, 20.0, 8.0, 2.0]})  # fmt: skip
    row = kinetics(m, analyte="IL-6").iloc[0]
    assert row["auc"] == pytest.approx(489.0, abs=1e-12)
    assert row["n_samples"] == 3 and row["cmax"] == 40.0 and row["baseline"] == 4.0
    obs = kinetics(m, analyte="IL-6", edges="observed").iloc[0]
    assert obs["auc"] == pytest.approx(210.0 + 154.0, abs=1e-12)
    # log-down: the falling edge interval is interpolated log-linearly
    logd = kinetics(m, analyte="IL-6", auc="linear-up/log-down").iloc[0]
    c28 = np.exp(np.log(8) + 0.5 * (np.log(2) - np.log(8)))  # = 4
    expected = 79.5 + 20 * 7 / np.log(2) + 12 * 11 / np.log(20 / 8) + 4 * 7 / np.log(8 / c28)
    assert logd["auc"] == pytest.approx(expected, rel=1e-12)
    # no sample after day 21: nothing is extrapolated to day 28
    short = kinetics(m.iloc[:4], analyte="IL-6").iloc[0]
    assert short["auc"] == pytest.approx(79.5 + 210.0 + 154.0, abs=1e-12)


def test_baseline_below_detection_is_explicit_for_the_fold_change():
    # day-0 baseline below detection (LOD 10); an earlier detectable sample must not be used
    m = pd.DataFrame({"patient": "P1", "day": [-7, 0, 7, 14, 21], "analyte": "CAR-T",
                      "value": [30.0, 10.0, 800.0, 200.0, 50.0],
                      "below_detection": [0, 1, 0, 0, 0]})  # fmt: skip
    zero = kinetics(m, analyte="CAR-T").iloc[0]
    assert zero["baseline"] == 0.0 and np.isnan(zero["fold_change"])
    assert "baseline below detection" in zero["reason"]
    miss = kinetics(m, analyte="CAR-T", below_detection="missing").iloc[0]
    assert np.isnan(miss["baseline"]) and np.isnan(miss["fold_change"])
    assert "baseline below detection" in miss["reason"]
    half = kinetics(m, analyte="CAR-T", below_detection="lod_half").iloc[0]
    assert half["baseline"] == 5.0 and half["fold_change"] == pytest.approx(800 / 5)
    assert half["reason"] == ""


def test_tie_at_peak_takes_first_day_and_baseline_before_infusion():
    m = pd.DataFrame(
        {"patient": "P1", "day": [-3, 2, 5, 9], "analyte": "CRP", "value": [4.0, 80.0, 80.0, 20.0]}
    )
    row = kinetics(m, analyte="CRP").iloc[0]
    assert row["tmax"] == 2.0
    assert row["baseline"] == 4.0  # last sample before day 0
    assert row["fold_change"] == pytest.approx(20.0)


def test_too_few_points_are_nan_with_reason_and_warned():
    m = pd.DataFrame(
        {
            "patient": ["P1"] * 4 + ["P2"] * 2 + ["P3"],
            "day": [0, 3, 7, 14, 0, 7, 0],
            "analyte": ["IL-6"] * 6 + ["CRP"],
            "value": [1.0, 20.0, 5.0, 2.0, 3.0, 9.0, 7.0],
        }
    )
    with pytest.warns(OlinkpipeWarning, match="2 patient"):
        out = kinetics(m, analyte="IL-6").set_index("patient")
    assert out.loc["P1", "reason"] == ""
    assert np.isnan(out.loc["P2", ["cmax", "tmax", "auc", "fold_change"]].astype(float)).all()
    assert out.loc["P2", "baseline"] == 3.0 and out.loc["P2", "n_samples"] == 2
    assert out.loc["P2", "last_detectable_day"] == 7.0  # still reported, as documented
    assert "only 2 sample(s)" in out.loc["P2", "reason"]
    assert out.loc["P3", "reason"] == "no IL-6 measurements"
    assert out.attrs["too_few_samples"] == ["P2", "P3"]


def test_zero_or_missing_baseline_gives_nan_fold_change_with_reason():
    m = pd.DataFrame(
        {
            "patient": ["A"] * 3 + ["B"] * 3,
            "day": [0, 7, 14, 1, 7, 14],
            "analyte": "CAR-T",
            "value": [0.0, 5e3, 1e2, 10.0, 4e3, 3e2],
        }
    )
    out = kinetics(m, analyte="CAR-T").set_index("patient")
    assert np.isnan(out.loc["A", "fold_change"]) and "baseline is 0" in out.loc["A", "reason"]
    assert np.isnan(out.loc["B", "baseline"]) and "no baseline" in out.loc["B", "reason"]
    assert out.loc["B", "cmax"] == 4e3


def test_window_restricts_and_raw_frames_are_validated():
    m = _simulated()
    out = kinetics(m, analyte="IL-6", window=(0, 7), min_points=1)
    assert (out["tmax"].dropna() <= 7).all()
    bad = pd.concat([m, m.iloc[[0]].assign(value=1.0)], ignore_index=True)
    with pytest.raises(ValidationError, match="different values"):
        kinetics(bad, analyte="CAR-T copies/ug DNA")


def test_argument_errors():
    m = _simulated()
    with pytest.raises(ValidationError, match="no measurements of analyte 'IL6'"):
        kinetics(m, analyte="IL6")
    with pytest.raises(DesignError, match="below_detection"):
        kinetics(m, analyte="IL-6", below_detection="half")
    with pytest.raises(DesignError, match="auc"):
        kinetics(m, analyte="IL-6", auc="log")
    with pytest.raises(ValidationError, match="window"):
        kinetics(m, analyte="IL-6", window=(28, 0))
    nolod = pd.DataFrame(
        {
            "patient": "P",
            "day": [0, 1, 2],
            "analyte": "X",
            "value": [np.nan, 3.0, 1.0],
            "below_detection": [1, 0, 0],
        }
    )
    with pytest.raises(ValidationError, match="lod_half"):
        kinetics(nolod, analyte="X", below_detection="lod_half")


def test_never_detectable_patient_has_no_peak_day():
    m = pd.DataFrame({"patient": "P1", "day": [0, 7, 14, 21], "analyte": "CAR-T",
                      "value": 10.0, "below_detection": 1})  # fmt: skip
    row = kinetics(m, analyte="CAR-T").iloc[0]
    assert row["cmax"] == 0.0 and row["auc"] == 0.0
    assert np.isnan(row["tmax"]) and np.isnan(row["last_detectable_day"])
    assert "tmax undefined" in row["reason"] and "baseline below detection" in row["reason"]


def test_negative_days_window_and_baseline_before_infusion():
    # lymphodepletion window: days -5..14, baseline on day -5 (first sample), IL-6 rises
    # before infusion; hand-computed: AUC = (2+3)/2*4 + (3+9)/2*1 + (9+30)/2*4 + (30+6)/2*10
    #                                    = 10 + 6 + 78 + 180 = 274; peak 30 on day 4
    m = pd.DataFrame({"patient": "P1", "day": [-5, -1, 0, 4, 14, 21], "analyte": "IL-6",
                      "value": [2.0, 3.0, 9.0, 30.0, 6.0, 5.0]})  # fmt: skip
    row = kinetics(m, analyte="IL-6", window=(-5, 14), baseline_day=-5).iloc[0]
    assert row["baseline"] == 2.0 and row["cmax"] == 30.0 and row["tmax"] == 4.0
    assert row["auc"] == pytest.approx(274.0, abs=1e-12)
    assert row["fold_change"] == pytest.approx(15.0) and row["n_samples"] == 5
    assert row["last_detectable_day"] == 21.0  # persistence is not capped at the window


# --------------------------------------------------------------------------- the steps
def test_concentrations_step_below_detection():
    from olinkpipe.clinical.kinetics import _concentrations

    sub = pd.DataFrame(
        {
            "value": [0.4, 5.0, np.nan],
            "below_detection": [True, False, True],
            "lod": [np.nan, np.nan, 1.0],
        }
    )
    for mode, conc in (("zero", [0.0, 5.0, 0.0]), ("lod_half", [0.2, 5.0, 0.5])):
        s = sub.copy()
        _concentrations(s, mode)
        np.testing.assert_array_equal(s["conc"], conc)
        assert s["detectable"].tolist() == [False, True, False]
    s = sub.copy()
    _concentrations(s, "missing")
    assert s["conc"].isna().tolist() == [True, False, True]
    s = sub.drop(columns="lod").copy()  # flagged row 2 has no limit anywhere
    with pytest.raises(ValidationError, match=r"'lod'.*needs the detection limit.*Rows: 2"):
        _concentrations(s, "lod_half")


def test_auc_points_step_interpolates_the_edges():
    from olinkpipe.clinical.kinetics import _auc_points

    observed = pd.DataFrame({"patient": "P1", "day": [-2.0, 2.0, 10.0], "conc": [0.0, 4.0, 4.0]})
    win = observed.loc[observed["day"].between(0, 7)]
    pts, auc = _auc_points(win, observed, 0.0, 7.0, "interpolate", "linear")
    assert pts[["day", "conc"]].to_numpy().tolist() == [[0.0, 2.0], [2.0, 4.0], [7.0, 4.0]]
    assert auc.to_dict() == {"P1": 26.0}  # (2 + 4) / 2 * 2 + 4 * 5
    pts, auc = _auc_points(win, observed, 0.0, 7.0, "observed", "linear")
    assert len(pts) == 1 and auc.empty  # one point: no interval
