"""Long NPX files: dialects, the AnnData contract, round trip, duplicates, controls."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from io_builders import make_explore, make_long, sort_long, write_long

import olinkpipe as op
from olinkpipe._layout import below_lod_matrix, lod_matrix, qc_warning_matrix
from olinkpipe.errors import DuplicateSampleError, OlinkpipeWarning
from olinkpipe.io.convert import assay_type_from_name


def _read(path, **kw):
    with pytest.warns(OlinkpipeWarning, match="more than one plate"):
        return op.read_npx(path, **kw)


def _assert_same_rows(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    expected = expected.copy()
    for c in expected.columns[(expected.dtypes == "object").to_numpy()]:
        expected[c] = expected[c].where(expected[c].notna(), np.nan)
    pd.testing.assert_frame_equal(
        sort_long(got), sort_long(expected), check_dtype=True, rtol=0, atol=0
    )


DIALECTS = [
    pytest.param({"sep": ","}, "csv", id="comma"),
    pytest.param({"sep": ";"}, "csv", id="semicolon"),
    pytest.param({"sep": "\t"}, "tsv", id="tab"),
    pytest.param({"sep": "|"}, "txt", id="pipe"),
    pytest.param({"sep": ";", "decimal": ","}, "csv", id="semicolon-decimal-comma"),
    pytest.param({"sep": "\t", "decimal": ","}, "txt", id="tab-decimal-comma"),
    pytest.param({"sep": ",", "quoting": 2, "lineterminator": "\r\n"}, "csv", id="quoted-crlf"),
    pytest.param(
        {"sep": ";", "encoding": "utf-8-sig", "lineterminator": "\r\n"}, "csv", id="bom-crlf"
    ),
]


@pytest.mark.parametrize(("kw", "ext"), DIALECTS)
def test_long_dialects_round_trip_exactly(tmp_path, kw, ext):
    df = make_long()
    path = write_long(df, tmp_path / f"run_NPX.{ext}", **kw)
    adata = _read(path)
    _assert_same_rows(op.to_long(adata), df)


def test_r_write_csv_row_names_and_quotes(tmp_path):
    df = make_long(controls=False)
    path = tmp_path / "r.csv"
    out = df.copy()
    out.index = np.arange(1, len(df) + 1).astype(str)
    out.to_csv(path, quoting=2, index_label="", lineterminator="\r\n")
    assert path.read_text().startswith('"","SampleID"')
    adata = op.read_npx(path)
    _assert_same_rows(op.to_long(adata), df)


def test_extension_does_not_matter(tmp_path):
    df = make_long(controls=False)
    path = write_long(df, tmp_path / "export.dat", sep=";")
    assert op.read_npx(path).shape == (6, 6)


def test_data_model_contract(tmp_path):
    df = make_long(lod_per_plate=True)
    adata = _read(write_long(df, tmp_path / "a.csv"))
    # obs: one row per physical sample; the control on two plates gets one row per plate
    assert adata.n_obs == 8 and adata.n_vars == 6
    assert adata.obs.index.is_unique
    ctrl = adata.obs[adata.obs["SampleID"] == "CONTROL_SAMPLE_AS 1"]
    assert list(ctrl.index) == [
        "CONTROL_SAMPLE_AS 1@Run_INF_plate1;Run_CAM_plate1",
        "CONTROL_SAMPLE_AS 1@Run_INF_plate2;Run_CAM_plate2",
    ]
    assert ctrl["is_control"].all() and (ctrl["SampleType"] == "CONTROL").all()
    assert not adata.obs.loc["S1", "is_control"]
    # numeric-looking SampleIDs stay text
    assert "1001" in adata.obs_names and adata.obs.loc["1001", "SampleID"] == "1001"
    # per-panel plate and QC
    assert list(adata.obsm["PlateID"].columns) == ["Olink Inflammation", "Olink Cardiometabolic"]
    assert adata.obsm["PlateID"].loc["S1"].tolist() == ["Run_INF_plate1", "Run_CAM_plate1"]
    assert adata.obs.loc["S1", "PlateID"] == "Run_INF_plate1;Run_CAM_plate1"
    assert adata.obsm["QC_Warning"].loc["S2"].tolist() == ["Warning", "Pass"]
    assert adata.obs.loc["S2", "QC_Warning"] == "Warning" and not adata.obs.loc["S2", "qc_pass"]
    assert adata.obs.loc["S1", "QC_Warning"] == "PASS" and adata.obs.loc["S1", "qc_pass"]
    inf = (adata.var["Panel"] == "Olink Inflammation").to_numpy()
    i2 = adata.obs_names.get_loc("S2")
    qc = qc_warning_matrix(adata)
    assert qc[i2, inf].all() and not qc[i2, ~inf].any()
    # var
    assert adata.var.index[0] == "OID01001"
    assert list(adata.var["Assay"]) == ["IL6", "TNF", "CXCL8", "CHL1", "NRP1", "TNF"]
    assert (adata.var["AssayType"] == "assay").all() and not adata.var["is_control"].any()
    assert adata.var.loc["OID01004", "Panel_Version"] == "v.3602"
    # sample-level extras in obs, assay-level in var
    assert adata.obs.loc["S1", "Subject"] == "P1" and adata.obs.loc["S2", "Time"] == "Week.6"
    assert "MissingFreq" in adata.var
    # values, LOD per plate, below_lod
    row = df[(df.SampleID == "S5") & (df.OlinkID == "OID01002")].iloc[0]
    j = adata.var_names.get_loc("OID01002")
    i = adata.obs_names.get_loc("S5")
    assert adata.X[i, j] == row.NPX and lod_matrix(adata)[i, j] == row.LOD
    assert adata.X.dtype == np.float64
    assert np.isnan(adata.X[adata.obs_names.get_loc("S3"), adata.var_names.get_loc("OID01005")])
    expected_below = np.nan_to_num(adata.X, nan=np.inf) < lod_matrix(adata)
    np.testing.assert_array_equal(below_lod_matrix(adata), expected_below)
    prov = adata.uns["olinkpipe"]
    assert (
        prov["format"] == "long" and prov["product"] == "Target 96" and prov["data_type"] == "NPX"
    )
    assert prov["source"] == [str(tmp_path / "a.csv")]


def test_explore_columns_round_trip_and_layers(tmp_path):
    df = make_explore()
    path = write_long(df, tmp_path / "explore.csv", sep=";", lineterminator="\r\n")
    adata = op.read_npx(path)
    got = op.to_long(adata)
    _assert_same_rows(got, df)
    # QC varies within a sample's panel -> a coded layer plus the boolean mask
    assert "QC_Warning" in adata.layers
    flags = df.assign(w=df.QC_Warning != "PASS").set_index(["SampleID", "OlinkID"])["w"]
    qc = qc_warning_matrix(adata)
    for (s, o), w in flags.items():
        assert qc[adata.obs_names.get_loc(s), adata.var_names.get_loc(o)] == w
    assert "Count" in adata.layers and adata.layers["Count"].dtype == np.float64
    assert adata.obs.loc["CONTROL_SAMPLE_P1_A12", "SampleType"] == "CONTROL"
    assert adata.var["Normalization"].eq("Plate control").all()
    assert adata.uns["olinkpipe"]["product"] == "Explore 3072"
    # dates stay as written, not parsed
    assert adata.obs["Processing_StartDate"].iloc[0] == "2023-01-01"


def test_partial_grid_round_trips(tmp_path):
    """A random subset of rows (as Olink's ext example files): absent cells stay absent."""
    df = make_explore().sample(frac=0.6, random_state=3)
    adata = op.read_npx(write_long(df, tmp_path / "subset.csv"))
    assert "measured" in adata.layers and adata.layers["measured"].sum() == len(df)
    _assert_same_rows(op.to_long(adata), df)


def test_missing_npx_rows_kept_as_nan(tmp_path):
    df = make_long(controls=False)
    df.loc[df.index[:4], "NPX"] = np.nan
    adata = op.read_npx(write_long(df, tmp_path / "na.csv", na_rep="NA"))
    got = op.to_long(adata)
    assert len(got) == len(df) and got["NPX"].isna().sum() == df["NPX"].isna().sum()


def test_markers_read_as_nan_with_warning(tmp_path):
    df = make_long(controls=False).astype({"NPX": object})
    df.loc[0, "NPX"] = "> ULOQ"
    df.loc[1, "NPX"] = "< LLOQ"
    df.loc[2, "NPX"] = "No Data"
    with pytest.warns(OlinkpipeWarning, match="3 value"):
        adata = op.read_npx(write_long(df, tmp_path / "m.csv"))
    assert np.isnan(adata.X).sum() == 3 + 1  # three markers + the NaN of make_long


def test_duplicates_error_mode(tmp_path):
    path = write_long(make_long(), tmp_path / "d.csv")
    with pytest.raises(DuplicateSampleError, match="CONTROL_SAMPLE_AS 1"):
        op.read_npx(path, duplicates="error")
    with pytest.raises(op.errors.DesignError, match="duplicates"):
        op.read_npx(path, duplicates="keep")


def test_same_plate_conflicting_duplicate_names_rows(tmp_path):
    df = make_long(controls=False)
    extra = df.iloc[[0]].copy()
    extra["NPX"] = 99.0
    df = pd.concat([df, extra], ignore_index=True)
    with pytest.raises(DuplicateSampleError, match=r"S1.*OID01001.*Rows: 2, 38"):
        op.read_npx(write_long(df, tmp_path / "dup.csv"))


def test_exact_duplicate_row_dropped_with_warning(tmp_path):
    df = make_long(controls=False)
    df = pd.concat([df, df.iloc[[5]]], ignore_index=True)
    with pytest.warns(OlinkpipeWarning, match="exact duplicate"):
        adata = op.read_npx(write_long(df, tmp_path / "dup.csv"))
    assert adata.shape == (6, 6)


def test_from_long_dataframe_and_pyarrow_agree():
    import pyarrow as pa

    df = make_long(controls=False)
    a = op.io.from_long(df)
    b = op.io.from_long(pa.Table.from_pandas(df, preserve_index=False))
    np.testing.assert_array_equal(a.X, b.X)
    assert list(a.obs_names) == list(b.obs_names) and list(a.var_names) == list(b.var_names)


def test_pivot_matches_pandas_pivot():
    df = make_long(controls=False, seed=5)
    adata = op.io.from_long(df)
    ref = df.pivot(index="SampleID", columns="OlinkID", values="NPX")
    ref = ref.loc[adata.obs_names, adata.var_names]
    np.testing.assert_array_equal(adata.X, ref.to_numpy())


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("CTRL", "assay"),
        ("IL6", "assay"),
        ("Inc Ctrl 1", "inc_ctrl"),
        ("Incubation control 2", "inc_ctrl"),
        ("Ext Ctrl", "ext_ctrl"),
        ("Amplification control", "amp_ctrl"),
        ("Det Ctrl", "det_ctrl"),
        ("Negative control", "control"),
    ],
)
def test_control_assays_are_flagged_not_dropped(name, kind):
    assert assay_type_from_name(name) == kind


def test_control_assay_kept_in_data():
    df = make_long(controls=False)
    df.loc[df.OlinkID == "OID01003", "Assay"] = "Inc Ctrl 1"
    adata = op.io.from_long(df)
    assert adata.n_vars == 6
    assert (
        adata.var.loc["OID01003", "AssayType"] == "inc_ctrl"
        and adata.var.loc["OID01003", "is_control"]
    )


def test_explore_ht_sample_types_from_file():
    df = make_long(controls=False, extra=False)
    df["SampleType"] = np.where(df.SampleID == "S1", "NEGATIVE_CONTROL", "SAMPLE")
    adata = op.io.from_long(df)
    assert (
        adata.obs.loc["S1", "SampleType"] == "NEGATIVE_CONTROL"
        and adata.obs.loc["S1", "is_control"]
    )
    assert adata.obs["is_control"].sum() == 1


@pytest.mark.parametrize("order", ["assay", "sample"])
def test_row_order_preserved(tmp_path, order):
    df = make_explore()
    if order == "sample":
        df = df.sort_values(["SampleID", "Panel"], kind="stable").reset_index(drop=True)
    adata = op.read_npx(write_long(df, tmp_path / "o.csv", sep=";"))
    assert adata.uns["olinkpipe"]["row_order"] == order
    got = op.to_long(adata)
    np.testing.assert_array_equal(got["SampleID"], df["SampleID"])
    np.testing.assert_array_equal(got["OlinkID"], df["OlinkID"])


def test_windows_1252_encoding_and_explicit_sep(tmp_path):
    df = make_long(controls=False)
    df.loc[df.SampleID == "S1", "SampleID"] = "Ö31"
    path = tmp_path / "cp.csv"
    df.to_csv(path, sep="|", index=False, encoding="cp1252")
    with pytest.warns(OlinkpipeWarning, match="decoded as Windows-1252"):
        adata = op.read_npx(path, sep="|")
    assert "Ö31" in adata.obs_names and adata.shape == (6, 6)


def test_all_missing_npx_column(tmp_path):
    df = make_long(controls=False)
    df["NPX"] = np.nan
    with pytest.warns(OlinkpipeWarning, match="'NPX' holds no numeric value"):
        adata = op.read_npx(write_long(df, tmp_path / "na.csv"))
    assert adata.shape == (6, 6) and np.isnan(adata.X).all()
    assert op.io.summarize(adata)["pct_missing"] == 100.0
