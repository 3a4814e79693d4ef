"""clinical.read_measurements / read_patients: validation of the clinical long tables."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from olinkpipe.clinical import read_measurements, read_patients
from olinkpipe.errors import MissingColumnError, OlinkpipeWarning, ValidationError


def _measurements() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient": ["P2", "P1", "P1", "P1", "P1", "P2"],
            "day": [7, -3, 0, 7, 14, 0],
            "analyte": ["IL-6", "IL-6", "IL-6", "IL-6", "IL-6", "IL-6"],
            "value": [30.0, 2.0, 3.0, 55.0, 8.0, 1.5],
            "unit": "pg/mL",
            "below_detection": [0, 0, 0, 0, 0, 1],
        }
    )


def _patients() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "patient": ["P1", "P2", "P3"],
            "dose": [2.0e6, 4.9e6, 1.0e6],
            "crs_grade": [1, 0, 2],
            "relapse_time": [300.0, 120.5, 700.0],
            "relapse_event": ["1", "0", "FALSE"],
        }
    )


def test_read_measurements_canonical_types_sorted_and_negative_days_kept():
    m = read_measurements(_measurements(), patients=_patients())
    assert list(m.columns[:6]) == ["patient", "day", "analyte", "value", "below_detection", "unit"]
    assert m["day"].dtype == float and m["value"].dtype == float
    assert m["below_detection"].dtype == bool
    assert m["patient"].tolist() == ["P1"] * 4 + ["P2"] * 2
    assert m["day"].tolist() == [-3.0, 0.0, 7.0, 14.0, 0.0, 7.0]  # day -3 is valid
    assert m.attrs["units"] == {"IL-6": "pg/mL"}
    assert m.attrs["excluded"] == []


def test_missing_column_names_it_and_the_file(tmp_path):
    path = tmp_path / "labs.csv"
    _measurements().drop(columns="value").to_csv(path, index=False)
    with pytest.raises(MissingColumnError, match=r"labs\.csv.*\['value'\]"):
        read_measurements(path)


def test_unknown_patient_is_an_error_naming_patient_and_line(tmp_path):
    path = tmp_path / "labs.csv"
    m = _measurements()
    m.loc[0, "patient"] = "P99"
    m.to_csv(path, index=False)
    with pytest.raises(ValidationError, match=r"labs\.csv.*'P99'.*line 2"):
        read_measurements(path, patients=_patients())
    # a list of IDs works too
    with pytest.raises(ValidationError, match="P99"):
        read_measurements(m, patients=["P1", "P2"])


def test_conflicting_duplicates_raise_naming_rows():
    m = _measurements()
    m.loc[len(m)] = ["P1", 7, "IL-6", 60.0, "pg/mL", 0]  # P1 day 7 again, different value
    with pytest.raises(ValidationError, match=r"different values.*Rows: 3, 6"):
        read_measurements(m)


def test_exact_duplicates_warn_collapse_and_are_recorded():
    m = _measurements()
    m = pd.concat([m, m.iloc[[3]]], ignore_index=True)
    with pytest.warns(OlinkpipeWarning, match="collapsed 1 exact duplicate"):
        out = read_measurements(m)
    assert len(out) == 6
    assert out.attrs["excluded"] == [
        {"patient": "P1", "analyte": "IL-6", "day": 7.0, "reason": "exact duplicate row collapsed"}
    ]


def test_units_disagreeing_within_analyte():
    m = _measurements()
    m.loc[2, "unit"] = "ng/mL"
    with pytest.raises(ValidationError, match=r"'IL-6'.*different units.*ng/mL.*Rows: 2"):
        read_measurements(m)
    # different analytes may have different units
    m2 = _measurements()
    extra = pd.DataFrame(
        {"patient": ["P1"], "day": [7], "analyte": ["CRP"], "value": [80.0], "unit": ["mg/L"]}
    )
    out = read_measurements(pd.concat([m2, extra], ignore_index=True))
    assert out.attrs["units"] == {"CRP": "mg/L", "IL-6": "pg/mL"}


def test_non_numeric_values_and_days(tmp_path):
    m = _measurements().astype({"value": object})
    m.loc[4, "value"] = "<0.5"
    path = tmp_path / "labs.tsv"
    m.to_csv(path, sep="\t", index=False)
    with pytest.raises(ValidationError, match=r"labs\.tsv: column 'value'.*'<0\.5'.*line 6"):
        read_measurements(path)
    m = _measurements().astype({"day": object})
    m.loc[1, "day"] = "D7"
    with pytest.raises(ValidationError, match=r"column 'day'.*'D7'.*Rows: 1"):
        read_measurements(m)


def test_missing_value_needs_below_detection_flag():
    m = _measurements()
    m.loc[5, "value"] = np.nan  # flagged below detection: fine
    assert read_measurements(m)["value"].isna().sum() == 1
    m.loc[0, "value"] = np.nan  # not flagged: error
    with pytest.raises(ValidationError, match=r"not flagged below detection.*Rows: 0"):
        read_measurements(m)


def test_bad_below_detection_flags():
    m = _measurements().astype({"below_detection": object})
    m.loc[2, "below_detection"] = "maybe"
    with pytest.raises(ValidationError, match=r"below_detection.*'maybe'"):
        read_measurements(m)


def test_column_mapping():
    m = _measurements().rename(columns={"patient": "Subject", "value": "Result"})
    out = read_measurements(m, columns={"Subject": "patient", "Result": "value"})
    assert len(out) == 6


def test_read_patients_reads_file_and_types(tmp_path):
    path = tmp_path / "patients.csv"
    _patients().to_csv(path, index=False)
    p = read_patients(path)
    assert p["dose"].tolist() == [2.0e6, 4.9e6, 1.0e6]
    assert p["relapse_event"].tolist() == [True, False, False]
    assert p.attrs["source"] == str(path)


@pytest.mark.parametrize(
    ("dose", "pattern"),
    [
        (2.0, r"implausible.*2\.0.*multiply by 1e6"),  # 2.0 given for 2.0e6/kg
        (1.5e10, r"implausible.*divide a total dose by body weight"),
        (1.4e8, r"implausible.*divide a total dose by body weight"),  # 2e6/kg x 70 kg
        ("2e6/kg", r"non-numeric"),
    ],
)
def test_dose_plausibility(dose, pattern, tmp_path):
    p = _patients().astype({"dose": object})
    p.loc[1, "dose"] = dose
    path = tmp_path / "patients.csv"
    p.to_csv(path, index=False)
    with pytest.raises(ValidationError, match=r"patients\.csv: column 'dose'.*" + pattern):
        read_patients(path)


def test_all_doses_in_millions_are_caught_and_range_is_configurable():
    p = _patients()
    p["dose"] = [2.0, 4.9, 1.0]
    with pytest.raises(ValidationError, match="Rows: 0, 1, 2"):
        read_patients(p)
    out = read_patients(p, dose_range=(0.1, 10))
    assert out["dose"].tolist() == [2.0, 4.9, 1.0]


def test_patient_table_errors():
    p = _patients()
    p.loc[2, "patient"] = "P1"
    with pytest.raises(ValidationError, match=r"more than once.*'P1'.*Rows: 0, 2"):
        read_patients(p)
    p = _patients()
    p.loc[0, "crs_grade"] = 7
    with pytest.raises(ValidationError, match=r"crs_grade.*0-5"):
        read_patients(p)
    p = _patients()
    p.loc[1, "relapse_time"] = -4
    with pytest.raises(ValidationError, match=r"relapse_time.*negative.*Rows: 1"):
        read_patients(p)
    with pytest.raises(MissingColumnError, match="'patient'"):
        read_patients(p.drop(columns="patient"))
    with pytest.raises(MissingColumnError, match="cells_per_kg"):
        read_patients(p, dose_column="cells_per_kg")


def test_valid_input_emits_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_measurements(_measurements(), patients=_patients())
        read_patients(_patients())


def test_duplicate_rows_step():
    from olinkpipe.clinical.validate import _duplicate_rows

    frame = pd.DataFrame(
        {
            "patient": ["P1", "P1", "P2"],
            "analyte": "IL-6",
            "day": [0.0, 0.0, 0.0],
            "value": [1.0, 1.0, 2.0],
        }
    )
    lines = np.array([2, 3, 4])
    drop, excluded = _duplicate_rows(frame, lines, "m.csv")
    assert drop.tolist() == [False, True, False]
    assert excluded.to_dict("records") == [
        {"patient": "P1", "analyte": "IL-6", "day": 0.0, "reason": "exact duplicate row collapsed"}
    ]
    drop, excluded = _duplicate_rows(frame.iloc[[0, 2]], lines[[0, 2]], "m.csv")
    assert not drop.any() and excluded.empty
    frame.loc[1, "value"] = 1.5
    with pytest.raises(
        ValidationError, match=r"m\.csv.*1 patient/analyte/day.*Rows: line 2, line 3"
    ):
        _duplicate_rows(frame, lines, "m.csv")
