"""op.design.randomize_plates (OlinkAnalyze olink_plate_randomizer) and balance_chisq."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency

import olinkpipe as op
from olinkpipe.errors import DesignError, DuplicateSampleError, MissingColumnError, ValidationError


def _manifest(n=138, per_subject=6, seed=0):
    rng = np.random.default_rng(seed)
    subj = [f"P{i // per_subject:02d}" for i in range(n)]
    site_of = {s: ("A" if rng.random() < 0.8 else "B") for s in sorted(set(subj))}  # skewed
    return pd.DataFrame(
        {
            "SampleID": [f"S{i:03d}" for i in range(n)],
            "Subject": subj,
            "Site": [site_of[s] for s in subj],
            "Visit": [i % per_subject + 1 for i in range(n)],
        }
    )


def _samples(r):
    return r[r["SampleID"] != "CONTROL_SAMPLE"]


def test_every_sample_once_and_control_column_free():
    m = _manifest()
    r = op.design.randomize_plates(m, seed=3)
    assert sorted(r["SampleID"]) == sorted(m["SampleID"])
    assert not r[["plate", "well"]].duplicated().any()
    assert set(r["row"]) <= set("ABCDEFGH")
    assert r["column"].between(1, 11).all()  # column 12 = the 8 control wells, left free
    assert r["well"].tolist() == (r["row"] + r["column"].astype(str)).tolist()
    assert r.groupby("plate").size().to_dict() == {"Plate 1": 88, "Plate 2": 50}
    # other columns travel with their sample
    back = r.set_index("SampleID").loc[m["SampleID"], ["Subject", "Site"]]
    assert (back.to_numpy() == m[["Subject", "Site"]].to_numpy()).all()
    # OA fills plates in column order: the 50 wells of plate 2 are its first 50
    p2 = r[r["plate"] == "Plate 2"]
    idx = (p2["column"] - 1) * 8 + p2["row"].map("ABCDEFGH".index)
    assert sorted(idx) == list(range(50))


def test_product_target48():
    r = op.design.randomize_plates(_manifest(60), product="Target 48", seed=1)
    assert r["column"].max() <= 5 and r.attrs["plate_size"] == 48
    assert r.groupby("plate").size().tolist() == [40, 20]


def test_subjects_on_one_plate_and_wells_shuffled():
    m = _manifest()
    r = op.design.randomize_plates(m, subject="Subject", seed=11)
    assert r.groupby("Subject")["plate"].nunique().max() == 1
    assert sorted(r["SampleID"]) == sorted(m["SampleID"])
    assert not r[["plate", "well"]].duplicated().any()
    assert r["column"].max() <= 11
    # a subject's samples are not in consecutive wells (wells shuffled within the plate)
    first = r[r["Subject"] == "P00"]
    assert (
        np.diff(np.sort((first["column"] - 1) * 8 + first["row"].map("ABCDEFGH".index))).max() > 1
    )


def test_seeded_reproducibility():
    m = _manifest()
    a = op.design.randomize_plates(m, subject="Subject", balance="Site", iterations=50, seed=5)
    b = op.design.randomize_plates(m, subject="Subject", balance="Site", iterations=50, seed=5)
    c = op.design.randomize_plates(m, subject="Subject", balance="Site", iterations=50, seed=6)
    pd.testing.assert_frame_equal(a, b)
    assert not a["SampleID"].equals(c["SampleID"])
    g = np.random.default_rng(5)
    d = op.design.randomize_plates(m, subject="Subject", balance="Site", iterations=50, seed=g)
    pd.testing.assert_frame_equal(a, d)


def test_balance_chisq_equals_scipy():
    r = op.design.randomize_plates(_manifest(), subject="Subject", seed=2)
    expected = sum(
        chi2_contingency(pd.crosstab(r["plate"], r[c]).to_numpy(), correction=False).statistic
        for c in ["Site", "Visit"]
    )
    assert op.design.balance_chisq(r, ["Site", "Visit"]) == pytest.approx(expected, rel=1e-12)


def test_balance_better_than_naive():
    m = _manifest(per_subject=3)
    naive = [
        op.design.balance_chisq(op.design.randomize_plates(m, subject="Subject", seed=s), "Site")
        for s in range(30)
    ]
    r = op.design.randomize_plates(m, subject="Subject", balance="Site", iterations=300, seed=0)
    crit = op.design.balance_chisq(r, "Site")
    assert crit == pytest.approx(r.attrs["balance_chisq"])
    assert r.attrs["draws"] == 300
    assert crit <= min(naive) and crit < np.median(naive) / 5
    assert r.groupby("Subject")["plate"].nunique().max() == 1


def test_randomised_controls():
    r = op.design.randomize_plates(_manifest(), rand_ctrl=True, num_ctrl=4, seed=1)
    ctrl = r[r["SampleID"] == "CONTROL_SAMPLE"]
    assert ctrl.groupby("plate").size().tolist() == [4, 4]
    assert not r[["plate", "well"]].duplicated().any()
    assert len(_samples(r)) == 138
    assert r["column"].max() == 12 or ctrl["column"].max() <= 12  # whole plate usable
    assert r.groupby("plate").size().tolist() == [96, 138 - 92 + 4]


def test_available_spots():
    r = op.design.randomize_plates(
        _manifest(), subject="Subject", available_spots=[72, 72], seed=4
    )
    assert r.groupby("plate").size().max() <= 72


@pytest.mark.parametrize(
    ("kwargs", "manifest", "error", "match"),
    [
        ({"subject": "Patient"}, None, MissingColumnError, "Patient"),
        ({"balance": "Sex"}, None, MissingColumnError, "Sex"),
        ({"available_spots": [60, 60]}, None, DesignError, "138 samples do not fit"),
        ({"available_spots": [90]}, None, ValidationError, "1 to 88"),
        ({"product": "Olink X"}, None, ValidationError, "Target 48"),
        ({"num_ctrl": 0}, None, ValidationError, "num_ctrl"),
        ({"subject": "Subject"}, "big", DesignError, "'P00'"),
        ({"subject": "Subject", "iterations": 20}, "nofit", DesignError, "could not keep"),
        ({}, "dup", DuplicateSampleError, "'S001'"),
        ({"subject": "Subject"}, "nasubj", ValidationError, "Subject"),
    ],
)
def test_errors(kwargs, manifest, error, match):
    m = _manifest()
    if manifest == "big":
        m["Subject"] = np.where(np.arange(len(m)) < 90, "P00", m["Subject"])
    elif manifest == "nofit":
        m = _manifest(n=150, per_subject=50)  # 3 subjects of 50; only one fits per plate
    elif manifest == "dup":
        m.loc[2, "SampleID"] = "S001"
    elif manifest == "nasubj":
        m.loc[4, "Subject"] = None
    with pytest.raises(error, match=match):
        op.design.randomize_plates(m, seed=0, **kwargs)
