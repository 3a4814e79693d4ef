"""op.design.randomize_plates(study=...): OlinkAnalyze's olink_plate_randomizer `study`."""

from __future__ import annotations

import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.errors import DesignError, MissingColumnError, ValidationError


def _multi_study(sizes=(("S1", 70, 5), ("S2", 45, 3), ("S3", 60, 6)), seed=0):
    """Studies of given sample counts, each of subjects with ``per`` samples (last shorter)."""
    rows = []
    for study, n, per in sizes:
        for i in range(n):
            rows.append((f"{study}-{i:03d}", study, f"P{i // per:02d}", "AB"[i % 2]))
    m = pd.DataFrame(rows, columns=["SampleID", "Study", "Subject", "Arm"])
    return m.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # shuffled input


def _samples(r):
    return r[r["SampleID"] != "CONTROL_SAMPLE"]


def _position(r):
    """Index of a well in the plate sequence: plate, then column-major (A1, B1, ...)."""
    plate = r["plate"].str.removeprefix("Plate ").astype(int) - 1
    return plate * 96 + (r["column"] - 1) * 8 + r["row"].map("ABCDEFGH".index)


def test_studies_take_consecutive_wells_in_sorted_order():
    m = _multi_study()
    r = op.design.randomize_plates(m, study="Study", seed=4)
    assert sorted(r["SampleID"]) == sorted(m["SampleID"])
    assert not r[["plate", "well"]].duplicated().any()
    assert r["column"].between(1, 11).all()
    # wells of study S1 come before those of S2, before those of S3 (no interleaving)
    pos = _position(r)
    spans = pos.groupby(r["Study"]).agg(["min", "max"])
    assert spans.loc["S1", "max"] < spans.loc["S2", "min"]
    assert spans.loc["S2", "max"] < spans.loc["S3", "min"]
    # 88 sample wells per plate: S1 = wells 0-69 of plate 1, S2 = 70-87 of plate 1 and
    # 0-26 of plate 2, S3 = 27-86 of plate 2 (no empty well). OlinkAnalyze 5.0.2 on the
    # same manifest sorted by study (it keeps studies apart only for sorted input, see
    # the docstring) gives the same table:
    #   r <- olink_plate_randomizer(m, study = "Study", seed = 4); table(r$plate, r$Study)
    #   Plate 1: S1 70, S2 18, S3 0;  Plate 2: S1 0, S2 27, S3 60
    assert r.attrs["study_plates"] == {
        "S1": ["Plate 1"],
        "S2": ["Plate 1", "Plate 2"],
        "S3": ["Plate 2"],
    }
    assert r.groupby(["plate", "Study"]).size().to_dict() == {
        ("Plate 1", "S1"): 70,
        ("Plate 1", "S2"): 18,
        ("Plate 2", "S2"): 27,
        ("Plate 2", "S3"): 60,
    }
    assert r.attrs["empty_wells"] == 0 and r.attrs["study"] == "Study"
    # every plate holds at most two studies (the end of one, the start of the next)
    assert r.groupby("plate")["Study"].nunique().max() <= 2


def test_randomised_within_study_and_seedable():
    m = _multi_study()
    a = op.design.randomize_plates(m, study="Study", seed=7)
    b = op.design.randomize_plates(m, study="Study", seed=7)
    c = op.design.randomize_plates(m, study="Study", seed=8)
    pd.testing.assert_frame_equal(a, b)
    assert not a["SampleID"].equals(c["SampleID"])
    # within study S1 the order of wells is not the input (or sorted) order
    s1 = a[a["Study"] == "S1"].sort_values(["column", "row"])
    ids = s1["SampleID"].tolist()
    assert ids != sorted(ids)
    # over many seeds each S1 sample visits many wells: a permutation, not a fixed map
    seen = {
        op.design.randomize_plates(m, study="Study", seed=s)
        .set_index("SampleID")
        .loc["S1-000", "well"]
        for s in range(30)
    }
    assert len(seen) > 10


def test_study_with_subjects_keeps_both_together():
    m = _multi_study()
    r = op.design.randomize_plates(m, study="Study", subject="Subject", seed=2)
    s = _samples(r)
    assert sorted(s["SampleID"]) == sorted(m["SampleID"])
    assert s.groupby(["Study", "Subject"])["plate"].nunique().max() == 1
    pos = _position(s)
    spans = pos.groupby(s["Study"]).agg(["min", "max"])
    assert spans.loc["S1", "max"] < spans.loc["S2", "min"] < spans.loc["S3", "min"]
    # the same subject ID in two studies is two subjects (P00 of S1 and of S2 may differ)
    assert set(s.loc[s["Subject"] == "P00", "Study"]) == {"S1", "S2", "S3"}
    # OlinkAnalyze 5.0.2 (study column named "study", the only name its subject + study
    # path accepts): olink_plate_randomizer(m, SubjectColumn = "Subject",
    # study = "study", seed = 4) -> Plate 1: S1 70, S2 18; Plate 2: S2 27, S3 60
    assert s.groupby(["plate", "Study"]).size().to_dict() == {
        ("Plate 1", "S1"): 70,
        ("Plate 1", "S2"): 18,
        ("Plate 2", "S2"): 27,
        ("Plate 2", "S3"): 60,
    }


def test_empty_wells_when_subjects_do_not_fit_exactly():
    # S1: 84 samples in subjects of 6 -> plate 1 (88 wells) keeps 4 free that no subject
    # of S2 (subjects of 6) can fill: S2's subjects must spill to plate 2 and leave wells
    rows = [(f"a{i}", "S1", f"A{i // 6}") for i in range(84)]
    rows += [(f"b{i}", "S2", f"B{i // 6}") for i in range(36)]
    m = pd.DataFrame(rows, columns=["SampleID", "Study", "Subject"])
    r = op.design.randomize_plates(m, study="Study", subject="Subject", seed=0)
    s = _samples(r)
    assert s.groupby("Subject")["plate"].nunique().max() == 1
    # OlinkAnalyze 5.0.2: olink_plate_randomizer(m3, SubjectColumn = "Subject",
    # study = "study", seed = 1) -> Plate 1: S1 84; Plate 2: S2 36 (4 wells left empty)
    assert r.attrs["empty_wells"] == 4
    assert r.attrs["study_plates"] == {"S1": ["Plate 1"], "S2": ["Plate 2"]}
    assert (s["plate"] == "Plate 1").sum() == 84


def test_study_that_cannot_fit_is_a_clear_error():
    rows = [(f"a{i}", "S1", f"A{i // 6}") for i in range(84)]
    rows += [(f"b{i}", "S2", f"B{i // 6}") for i in range(36)]
    m = pd.DataFrame(rows, columns=["SampleID", "Study", "Subject"])
    # exactly enough wells for the samples, but subjects of 6 cannot use plate 1's last 4
    with pytest.raises(DesignError, match=r"study 'S2' \(36 samples\) does not fit"):
        op.design.randomize_plates(
            m, study="Study", subject="Subject", available_spots=[88, 32], seed=0
        )
    # without subjects the same wells suffice
    r = op.design.randomize_plates(m, study="Study", available_spots=[88, 32], seed=0)
    assert r.groupby("plate").size().to_dict() == {"Plate 1": 88, "Plate 2": 32}
    with pytest.raises(DesignError, match="do not fit"):
        op.design.randomize_plates(m, study="Study", available_spots=[88, 20], seed=0)


def test_study_with_randomised_controls_and_balance():
    m = _multi_study()
    r = op.design.randomize_plates(m, study="Study", rand_ctrl=True, seed=5)
    ctrl = r[r["SampleID"] == "CONTROL_SAMPLE"]
    assert ctrl.groupby("plate").size().eq(8).all()
    assert not r[["plate", "well"]].duplicated().any()
    s = _samples(r)
    assert sorted(s["SampleID"]) == sorted(m["SampleID"])
    # balancing Arm within the study-constrained draws: never worse than one draw
    one = op.design.randomize_plates(m, study="Study", subject="Subject", seed=1)
    best = op.design.randomize_plates(
        m, study="Study", subject="Subject", balance="Arm", iterations=40, seed=1
    )
    assert best.attrs["draws"] == 40
    assert best.attrs["balance_chisq"] <= op.design.balance_chisq(one, "Arm") + 1e-12
    assert best.groupby(["Study", "Subject"])["plate"].nunique().max() == 1


def test_study_column_checks():
    m = _multi_study()
    with pytest.raises(MissingColumnError, match="Studie"):
        op.design.randomize_plates(m, study="Studie")
    bad = m.copy()
    bad.loc[3, "Study"] = None
    with pytest.raises(ValidationError, match="missing values"):
        op.design.randomize_plates(bad, study="Study")
