"""Standardised mean differences in clinical.table_one against R's tableone.

R 4.2.2, tableone 0.13.2 (CRAN)::

    d <- read.csv("t1.csv", na.strings = c("", "NA"))   # PTS below
    vars <- c("age", "crp", "sex", "stage", "grade")
    t <- CreateTableOne(vars = vars, strata = "arm", data = d,
                        factorVars = c("sex", "stage", "grade"))
    ExtractSmd(t)                         # average, 1 vs 2, 1 vs 3, 2 vs 3
    print(t, smd = TRUE, nonnormal = "crp")   # SMD column = the average

and the same on ``d[d$arm != "C", ]`` for two groups.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from olinkpipe.clinical import export_table_one, table_one
from olinkpipe.clinical.table_one import smd_categorical, smd_continuous
from olinkpipe.errors import OlinkpipeWarning

nan = np.nan
PTS = pd.DataFrame(
    {
        "arm": ["A"] * 8 + ["B"] * 8 + ["C"] * 8,
        "age": [34, 51, 47, 62, 29, 55, 43, 60, 38, 45, 52, 49, 66, 41, 57, 36,
                58, 63, 49, 71, 54, 60, 67, 45],
        "crp": [2.1, 8.4, nan, 15.2, 1.1, 4.4, 3.3, 22.0, 5.5, 2.2, nan, 7.7, 9.1, 3.0, 4.8,
                1.9, 12.5, 30.1, 6.6, 18.0, nan, 9.9, 25.4, 7.2],
        "sex": list("MFMMFFMF" "FFMFMFFF" "MMMFMMFM"),
        "stage": ["I", "II", "III", "II", "I", None, "III", "II", "II", "II", "I", "III",
                  "II", "I", "II", "II", "III", "III", "II", "III", None, "II", "III", "I"],
        "grade": ["G1", "G2", "G3", "G1", "G2", "G3", "G1", "G1", "G1", "G2", "G2", "G1",
                  "G1", "G2", "G1", "G2", "G2", "G2", "G1", "G2", "G2", "G1", "G2", "G2"],
    }
)  # fmt: skip
# ExtractSmd(t): average, 1 vs 2, 1 vs 3, 2 vs 3 ("grade" has G3 in arm A only: the
# pooled covariance of B vs C is singular, MASS::ginv)
R_SMD = {
    "age": [0.718211519645202, 0.0339919766821767, 1.03042318695601, 1.09021939529742],
    "crp": [1.00911075043831, 0.544226827117568, 0.892006608239111, 1.59109881595825],
    "sex": [0.74124850200965, 0.534522483824849, 0.534522483824849, 1.15470053837925],
    "stage": [0.713566147709851, 0.463381075264342, 0.612372435695794, 1.06494493216942],
    "grade": [0.90410919022142, 0.894427190999916, 1.2833778958395, 0.534522483824849],
}


def _t1(data: pd.DataFrame, **kw) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return table_one(
            data,
            group="arm",
            categorical=["sex", "stage", "grade"],
            continuous=["age", "crp"],
            nonnormal=["crp"],
            test="none",
            **kw,
        )


def test_smd_three_groups_matches_tableone():
    t = _t1(PTS, smd=True)
    first = t.dropna(subset=["smd"]).set_index("variable")
    for var, ref in R_SMD.items():
        assert first.loc[var, "smd"] == pytest.approx(ref[0], rel=1e-12)
        pairs = t.attrs["smd"][var]
        assert list(pairs) == ["A vs B", "A vs C", "B vs C"]
        np.testing.assert_allclose(list(pairs.values()), ref[1:], rtol=1e-12)
    # the SMD sits on the variable's first row only
    assert t.loc[t["variable"] == "stage", "smd"].notna().sum() == 1
    assert t.loc[t["variable"] == "n", "smd"].isna().all()


def test_smd_max_and_two_groups():
    t = _t1(PTS, smd="max").dropna(subset=["smd"]).set_index("variable")
    for var, ref in R_SMD.items():
        assert t.loc[var, "smd"] == pytest.approx(max(ref[1:]), rel=1e-12)
    two = _t1(PTS[PTS["arm"] != "C"], smd=True).dropna(subset=["smd"]).set_index("variable")
    for var, ref in R_SMD.items():  # ExtractSmd(t2): the "1 vs 2" column of the above
        assert two.loc[var, "smd"] == pytest.approx(ref[1], rel=1e-12)


def test_smd_opt_in_export_and_edges():
    assert "smd" not in _t1(PTS).columns
    md = export_table_one(_t1(PTS, smd=True), fmt="markdown").splitlines()
    assert md[0].endswith("| p | SMD |")
    assert any("| 0.718 |" in line for line in md)  # print(t, smd = TRUE): 0.718
    with pytest.raises(Exception, match="smd"):
        _t1(PTS, smd="median")
    # constant in both groups: 0 (StdDiff's rule); one group with one value: NaN
    assert smd_continuous([np.array([2.0, 2.0]), np.array([2.0, 2.0])]).tolist() == [0.0]
    assert np.isnan(smd_continuous([np.array([1.0]), np.array([2.0, 3.0])])[0])
    # same single level everywhere: 0; different single levels: NaN (zero covariance)
    assert smd_categorical(np.array([[3, 4]])).tolist() == [0.0]
    assert np.isnan(smd_categorical(np.array([[3, 0], [0, 4]]))[0])
