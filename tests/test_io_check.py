"""io.check (OlinkAnalyze's check_npx) and pp.clean (its clean_npx) on small exports.

The main table is built the way OlinkAnalyze 5.0.2's own test of ``clean_npx`` builds its
table (tests/testthat/test-clean_npx.R): one long row per defect, read here with
``op.io.from_long``. OA's expectations, written beside each assert:

- ``check_npx(df)``: ``oid_invalid = "OID1234"``, ``assay_na = "OID23456"``,
  ``sample_id_dups = "DuplicateSample"``, ``sample_id_na = "AllNA"``,
  ``assay_qc = "OID89012"``;
- ``clean_npx(df, check_log = log, control_sample_ids = "ControlID")`` keeps only the
  ``ValidSample`` row (assay ``OID12345``).

Our one difference of shape: the two DuplicateSample rows sit on two plates (OA's test
puts them on one plate with different NPX, which ``read_npx`` refuses as ambiguous).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.errors import OlinkpipeWarning, ValidationError

CASES = [
    # SampleID, OlinkID, SampleType, AssayType, SampleQC, AssayQC
    ("ValidSample", "OID12345", "SAMPLE", "assay", "PASS", "PASS"),
    ("InvalidOID", "OID1234", "SAMPLE", "assay", "PASS", "PASS"),
    ("AllNA", "OID23456", "SAMPLE", "assay", "PASS", "PASS"),
    ("DuplicateSample", "OID34567", "SAMPLE", "assay", "PASS", "PASS"),
    ("ControlType", "OID45678", "PLATE_CONTROL", "assay", "PASS", "PASS"),
    ("ControlID", "OID56789", "SAMPLE", "assay", "PASS", "PASS"),
    ("FailQC", "OID67890", "SAMPLE", "assay", "FAIL", "PASS"),
    ("ControlAssay", "OID78901", "SAMPLE", "ext_ctrl", "PASS", "PASS"),
    ("AssayWarn", "OID89012", "SAMPLE", "assay", "PASS", "WARN"),
    ("DuplicateSample", "OID34567", "SAMPLE", "assay", "PASS", "PASS"),
]


def oa_table() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    df = pd.DataFrame(
        CASES, columns=["SampleID", "OlinkID", "SampleType", "AssayType", "SampleQC", "AssayQC"]
    )
    df["NPX"] = rng.normal(size=len(df))
    df.loc[2, "NPX"] = np.nan
    df["PlateID"] = "plate1"
    df.loc[9, "PlateID"] = "plate2"
    df["UniProt"] = "uniprotid1"
    df["Assay"] = "assay_a"
    df["Panel"] = "panel_a"
    df["LOD"] = rng.normal(size=len(df))
    return df


def read(df: pd.DataFrame):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return op.io.from_long(df)


def clean(adata, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return op.pp.clean(adata, **kw)


def ids(frame: pd.DataFrame, kind: str) -> list[str]:
    return sorted(frame.loc[frame["kind"] == kind, "id"])


def test_check_finds_what_oa_finds():
    found = op.io.check(read(oa_table()))
    assert list(found.columns) == ["kind", "id", "detail"]
    assert ids(found, "invalid_olinkid") == ["OID1234"]  # OA: log$oid_invalid
    assert ids(found, "all_na_assay") == ["OID23456"]  # OA: log$assay_na
    assert ids(found, "duplicate_sample_id") == ["DuplicateSample"]  # log$sample_id_dups
    assert ids(found, "all_na_sample") == ["AllNA"]  # OA: log$sample_id_na
    assert ids(found, "assay_qc_warning") == ["OID89012"]  # OA: log$assay_qc
    assert ids(found, "nonunique_uniprot") == []
    assert len(found) == 5


def test_clean_keeps_what_oa_keeps():
    adata = read(oa_table())
    out = clean(adata, control_sample_ids=["ControlID"])
    # OA: clean_npx(df, control_sample_ids = "ControlID") == the ValidSample row only
    assert list(out.obs["SampleID"]) == ["ValidSample"]
    assert list(out.var_names) == ["OID12345"]
    assert out.X[0, 0] == oa_table().loc[0, "NPX"]
    exc = out.uns["olinkpipe"]["excluded"]
    exc = exc[exc["step"] == "clean"]
    assert set(exc.loc[exc["kind"] == "assay", "id"]) >= {"OID1234", "OID23456", "OID78901"}
    assert {"ControlType", "ControlID", "FailQC"} <= set(exc.loc[exc["kind"] == "sample", "id"])
    assert "AssayWarn" in set(exc["id"]) or "OID89012" in set(exc["id"])


def test_clean_warns():
    with pytest.warns(OlinkpipeWarning, match="clean: excluded"):
        op.pp.clean(read(oa_table()))


@pytest.mark.parametrize(
    ("keyword", "value", "kept_sample", "kept_assay"),
    [
        ("remove_invalid_oid", False, "InvalidOID", "OID1234"),
        ("remove_assay_na", False, "AllNA", "OID23456"),
        ("remove_dup_sample_id", False, "DuplicateSample", "OID34567"),
        ("remove_control_sample", False, "ControlType", "OID45678"),
        ("remove_control_sample", ["sc", "nc"], "ControlType", "OID45678"),
        ("remove_qc_warning", False, "FailQC", "OID67890"),
        ("remove_control_assay", False, "ControlAssay", "OID78901"),
        ("remove_control_assay", ["inc"], "ControlAssay", "OID78901"),
        ("remove_assay_warning", False, "AssayWarn", "OID89012"),
    ],
)
def test_each_step_can_be_turned_off(keyword, value, kept_sample, kept_assay):
    out = clean(read(oa_table()), **{keyword: value})
    assert set(out.obs["SampleID"]) == {"ValidSample", "ControlID", kept_sample}
    assert set(out.var_names) == {"OID12345", "OID56789", kept_assay}


def test_control_groups_selected():
    out = clean(read(oa_table()), remove_control_sample=["pc"], remove_control_assay=["ext"])
    assert "ControlType" not in set(out.obs["SampleID"])
    assert "OID78901" not in set(out.var_names)
    with pytest.raises(ValidationError, match="type group"):
        op.pp.clean(read(oa_table()), remove_control_sample=["plates"])


def two_panels(qc_b: str = "FAIL", with_type: bool = True) -> pd.DataFrame:
    """S1..S4 on panels A and B (two assays each); S2's panel B QC is ``qc_b``."""
    rows = []
    for s in ["S1", "S2", "S3", "S4", "CONTROL_SAMPLE_AS 1"]:
        for oid, panel in [
            ("OID00001", "A"),
            ("OID00002", "A"),
            ("OID00003", "B"),
            ("OID00004", "B"),
        ]:
            qc = qc_b if (s == "S2" and panel == "B") else "Pass"
            rows.append((s, oid, panel, qc, 1.0 + len(rows) / 10))
    df = pd.DataFrame(rows, columns=["SampleID", "OlinkID", "Panel", "QC_Warning", "NPX"])
    df["PlateID"] = "P1"
    df["UniProt"] = "Q" + df["OlinkID"].str[-1]
    if with_type:
        df["SampleType"] = np.where(df["SampleID"].str.startswith("CONTROL"), "CONTROL", "SAMPLE")
    return df


def test_qc_fail_on_one_panel_blanks_only_that_panel():
    """OA drops the failing rows only: S2 keeps panel A, loses panel B."""
    adata = read(two_panels("FAIL"))
    out = clean(adata)
    assert list(out.obs["SampleID"]) == ["S1", "S2", "S3", "S4"]  # CONTROL (sc) removed
    s2 = np.asarray(out.X)[list(out.obs["SampleID"]).index("S2")]
    np.testing.assert_array_equal(s2[:2], np.asarray(adata.X)[1, :2])
    assert np.isnan(s2[2:]).all()
    exc = out.uns["olinkpipe"]["excluded"]
    assert exc.loc[exc["kind"] == "measurement", "id"].tolist() == ["S2: 2 value(s)"]


def test_target96_warning_is_not_a_fail():
    """OA's clean_qc_warning matches "fail" only: a Target 96 'Warning' sample stays whole."""
    adata = read(two_panels("Warning"))
    out = clean(adata)
    assert "S2" in set(out.obs["SampleID"])
    assert not np.isnan(np.asarray(out.X)).any()


def test_no_sample_type_column_keeps_named_controls():
    """OA does not guess controls from names; the reader does, clean does not use it."""
    adata = read(two_panels("Pass", with_type=False))
    assert adata.obs["is_control"].any()  # the reader recognised it by name
    with pytest.warns(OlinkpipeWarning, match="no sample type column"):
        out = op.pp.clean(adata, remove_control_assay=False)
    assert "CONTROL_SAMPLE_AS 1" in set(out.obs["SampleID"])
    out = clean(adata, control_sample_ids="CONTROL_SAMPLE_AS 1")
    assert "CONTROL_SAMPLE_AS 1" not in set(out.obs["SampleID"])


def test_nonunique_uniprot_checked_and_unified():
    df = two_panels("Pass")
    df.loc[(df["SampleID"] == "S3") & (df["OlinkID"] == "OID00002"), "UniProt"] = "QX"
    adata = read(df)
    assert "UniProt" in adata.layers  # the reader keeps every UniProt seen, per measurement
    found = op.io.check(adata)
    row = found[found["kind"] == "nonunique_uniprot"]
    assert row["id"].tolist() == ["OID00002"]
    assert row["detail"].tolist() == ["Q2, QX"]  # in sample order, the first one first
    out = clean(adata)
    assert "UniProt" not in out.layers
    assert out.var["UniProt"].tolist() == ["Q1", "Q2", "Q3", "Q4"]  # OA keeps the first
    kept = clean(adata, convert_nonunique_uniprot=False)
    assert "UniProt" in kept.layers


def test_exact_duplicate_rows_count_as_duplicate_sample():
    """The reader drops exact duplicate rows; OA would see both, so check reports them."""
    df = two_panels("Pass")
    df = pd.concat([df, df.iloc[[0]]], ignore_index=True)
    adata = read(df)
    found = op.io.check(adata)
    assert ids(found, "duplicate_sample_id") == ["S1"]
    assert "S1" not in set(clean(adata).obs["SampleID"])


def test_assay_warning_per_measurement():
    """An assay warned on one plate only loses those values; warned everywhere, it goes."""
    df = two_panels("Pass")
    df["AssayQC"] = "PASS"
    df.loc[(df["OlinkID"] == "OID00001") & df["SampleID"].isin(["S1", "S2"]), "AssayQC"] = "WARN"
    df.loc[df["OlinkID"] == "OID00004", "AssayQC"] = "Warning"
    adata = read(df)
    assert ids(op.io.check(adata), "assay_qc_warning") == ["OID00001", "OID00004"]
    out = clean(adata)
    assert list(out.var_names) == ["OID00001", "OID00002", "OID00003"]
    col = np.asarray(out.X)[:, 0]
    assert np.isnan(col[:2]).all() and not np.isnan(col[2:]).any()


def test_outdated_darid():
    adata = read(two_panels("Pass"))
    adata.var["DataAnalysisRefID"] = ["D10007", "D10007", "D10015", "D10015"]
    adata.obs["PanelDataArchiveVersion"] = "1.4.0"
    found = op.io.check(adata)
    assert ids(found, "outdated_darid") == ["D10007"]
    adata.obs["PanelDataArchiveVersion"] = "1.5.0"
    assert ids(op.io.check(adata), "outdated_darid") == []


def test_clean_example_keeps_study_samples():
    adata = op.datasets.load_example().adata
    assert op.io.check(adata)["kind"].tolist() == ["assay_qc_warning"]
    out = clean(adata)
    assert not out.obs["is_control"].any()
    assert out.n_obs == int((~adata.obs["is_control"]).sum())
    assert out.n_vars == adata.n_vars  # the warned assay keeps its unwarned values
