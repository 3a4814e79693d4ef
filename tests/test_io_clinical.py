"""read_clinical and annotate."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from io_builders import make_long

import olinkpipe as op
from olinkpipe.errors import (
    DuplicateSampleError,
    MissingColumnError,
    OlinkpipeWarning,
    ValidationError,
)


@pytest.fixture
def adata():
    with pytest.warns(OlinkpipeWarning):
        return op.io.from_long(make_long())


def test_read_clinical_csv_sniffs_and_normalises_ids(tmp_path):
    path = tmp_path / "clin.csv"
    path.write_text("\ufeffsample;dose;response\nS1 ;50;CR\n1001;100;PD\n", encoding="utf-8")
    clin = op.read_clinical(path, id_column="sample")
    assert list(clin.index) == ["S1", "1001"] and clin.loc["1001", "dose"] == 100


def test_read_clinical_xlsx_numeric_ids(tmp_path):
    path = tmp_path / "clin.xlsx"
    pd.DataFrame({"id": [1001.0, 2.0], "age": [50, 60]}).to_excel(path, index=False)
    clin = op.read_clinical(path, id_column="id")
    assert list(clin.index) == ["1001", "2"]


def test_read_clinical_duplicates_and_missing_column():
    df = pd.DataFrame({"id": ["a", "b", "a"], "x": [1, 2, 3]})
    with pytest.raises(DuplicateSampleError, match=r"duplicated ID\(s\) 'a'.*Rows: 2, 4"):
        op.read_clinical(df, id_column="id")
    with pytest.raises(MissingColumnError, match="ID column 'patient' not found"):
        op.read_clinical(df, id_column="patient")
    with pytest.raises(ValidationError, match="empty ID"):
        op.read_clinical(pd.DataFrame({"id": ["a", None]}), id_column="id")


def test_annotate_joins_and_reports_missing(adata):
    clin = pd.DataFrame(
        {
            "SampleID": ["S1", "S2", "S3", "S4", "S5", "ZZ"],
            "dose": [1, 2, 3, 4, 5, 6],
            "Time": ["x"] * 6,
        }
    )
    with (
        pytest.warns(OlinkpipeWarning, match=r"1 sample\(s\) and 2 control sample\(s\).*'1001'"),
        pytest.warns(OlinkpipeWarning, match=r"'Time' are already in obs.*as 'Time_clinical'"),
    ):
        out = op.annotate(adata, op.read_clinical(clin, id_column="SampleID"))
    assert out is not adata and "dose" not in adata.obs
    assert out.obs.loc["S3", "dose"] == 3 and np.isnan(out.obs.loc["1001", "dose"])
    assert "Time_clinical" in out.obs and out.obs.loc["S2", "Time"] == "Week.6"
    rec = out.uns["olinkpipe"]["annotate"]
    assert sorted(rec["unmatched_samples"]) == sorted(
        ["1001"] + list(out.obs_names[out.obs.is_control])
    )
    assert list(rec["unused_clinical_ids"]) == ["ZZ"]


def test_annotate_by_subject_in_place(adata):
    clin = pd.DataFrame(
        {"patient": ["P1", "P2", "P3", "P4", "P5", "P1001"], "age": [50, 60, 70, 80, 90, 40]}
    )
    clin["patient"] = clin["patient"].str.replace("P1001", "P1")
    clin = clin.drop_duplicates("patient")
    out = op.annotate(adata, clin, on="Subject", id_column="patient", copy=False)
    assert out is adata
    assert adata.obs.loc["S2", "age"] == 60 and adata.obs.loc["1001", "age"] == 50


def test_annotate_errors(adata):
    clin = pd.DataFrame({"SampleID": ["S1"], "x": [1]})
    with pytest.raises(MissingColumnError, match="obs has no column 'nope'"):
        op.annotate(adata, clin, on="nope", id_column="SampleID")
    dup = pd.DataFrame({"x": [1, 2]}, index=["S1", "S1"])
    with pytest.raises(DuplicateSampleError):
        op.annotate(adata, dup)


def test_annotate_only_controls_missing_is_quiet(adata, recwarn):
    ids = [s for s in adata.obs["SampleID"] if not s.startswith("CONTROL")]
    clin = pd.DataFrame({"SampleID": ids, "arm": "A"})
    out = op.annotate(adata, clin, id_column="SampleID")
    assert not [w for w in recwarn if issubclass(w.category, OlinkpipeWarning)]
    assert len(out.uns["olinkpipe"]["annotate"]["unmatched_samples"]) == 2


def test_read_clinical_keeps_leading_zeros_and_reads_windows_1252(tmp_path):
    path = tmp_path / "clin.csv"
    path.write_bytes("id;dose\n007;50\n0012;60\nÖ31;70\n".encode("cp1252"))
    with pytest.warns(OlinkpipeWarning, match="decoded as Windows-1252"):
        clin = op.read_clinical(path, id_column="id")
    assert list(clin.index) == ["007", "0012", "Ö31"]
    npx = pd.DataFrame(
        {"SampleID": ["007", "0012", "Ö31"], "OlinkID": ["OID1"] * 3, "NPX": [1.0, 2.0, 3.0]}
    )
    out = op.annotate(op.io.from_long(npx), clin)
    assert out.obs["dose"].tolist() == [50, 60, 70]
