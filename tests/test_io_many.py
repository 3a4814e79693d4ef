"""read_exports: a study in several files (per panel, per plate, mixed formats) as one."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe import _layout
from olinkpipe.errors import (
    DesignError,
    DuplicateSampleError,
    NPXFormatError,
    OlinkpipeWarning,
    UnknownFormatError,
)
from olinkpipe.io.many import _combine


@pytest.fixture(scope="module")
def whole(tmp_path_factory):
    """The simulated study as one long export, and what read_npx makes of it."""
    from olinkpipe.datasets import simulate_cart_study

    folder = tmp_path_factory.mktemp("one")
    study = simulate_cart_study(seed=11, n_treated=6, n_control=0, n_assays=40)
    path = folder / "all_NPX.csv"
    study.npx.to_csv(path, sep=";", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        return study.npx, op.read_npx(path)


def _same(got, expected):
    """Same values per (sample, assay), matched by name, whatever the row/column order."""
    assert set(got.obs_names) == set(expected.obs_names)
    assert set(got.var_names) == set(expected.var_names)
    g = got[expected.obs_names, expected.var_names]
    np.testing.assert_array_equal(g.X, expected.X)
    for fn in (_layout.lod_matrix, _layout.below_lod_matrix, _layout.qc_warning_matrix):
        np.testing.assert_array_equal(fn(g), fn(expected))
    for key in ("PlateID", "QC_Warning"):
        cols = expected.obsm[key].columns
        pd.testing.assert_frame_equal(g.obsm[key][cols], expected.obsm[key])
    for c in ("SampleID", "is_control", "qc_pass"):
        assert list(g.obs[c]) == list(expected.obs[c]), c
    for c in ("Assay", "Panel", "UniProt"):
        assert list(g.var[c].astype(str)) == list(expected.var[c].astype(str)), c


def test_one_file_per_panel(whole, tmp_path):
    npx, expected = whole
    for panel, rows in npx.groupby("Panel", observed=True):
        rows.to_csv(tmp_path / f"{panel}.csv", sep=";", index=False)
    got = op.io.read_exports(tmp_path)
    _same(got, expected)
    assert got.n_obs == npx["SampleID"].nunique()  # one row per sample, all panels
    src = got.var["SourceFile"]
    by_panel = got.var.groupby("Panel")["SourceFile"].nunique()
    assert (by_panel == 1).all() and src.nunique() == npx["Panel"].nunique()
    assert len(got.uns["olinkpipe"]["source"]) == npx["Panel"].nunique()


def test_one_file_per_plate_mixed_formats(whole, tmp_path):
    npx, expected = whole
    plates = sorted(npx["PlateID"].unique())
    assert len(plates) >= 2
    for i, plate in enumerate(plates):
        rows = npx[npx["PlateID"] == plate]
        if i == 0:
            rows.to_parquet(tmp_path / f"{plate}.parquet", index=False)
        else:
            rows.to_csv(tmp_path / f"{plate}.csv", sep=";", index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)  # controls on each plate
        got = op.io.read_exports(sorted(tmp_path.iterdir()))
    _same(got, expected)
    assert "SourceFile" in got.obs  # each sample comes from one plate file


def test_folder_skips_what_is_not_an_export(whole, tmp_path):
    npx, expected = whole
    for panel, rows in npx.groupby("Panel", observed=True):
        rows.to_csv(tmp_path / f"{panel}.csv", sep=";", index=False)
    sheet = pd.DataFrame({"SampleID": ["S1"], "patient": ["P1"]})
    sheet.to_csv(tmp_path / "samples.csv", index=False)
    (tmp_path / "notes.md").write_text("not looked at")
    with pytest.warns(OlinkpipeWarning, match="samples.csv is not an Olink export"):
        got = op.io.read_exports(tmp_path)
    _same(got, expected)
    ex = got.uns["olinkpipe"]["excluded"]
    assert list(ex.loc[ex["kind"] == "file", "id"]) == [str(tmp_path / "samples.csv")]
    # excluded explicitly: not read at all, no warning
    with warnings.catch_warnings():
        warnings.simplefilter("error", OlinkpipeWarning)
        op.io.read_exports(tmp_path, exclude=[tmp_path / "samples.csv"])
    # a file named explicitly must be an export
    with pytest.raises(UnknownFormatError, match="samples.csv: unknown format"):
        op.io.read_exports([tmp_path / "samples.csv", *tmp_path.glob("*.csv")])


def test_the_same_data_twice_is_an_error(whole, tmp_path):
    npx, _ = whole
    npx.to_csv(tmp_path / "run.csv", sep=";", index=False)
    npx.to_parquet(tmp_path / "run.parquet", index=False)
    with pytest.raises(DuplicateSampleError, match=r"run\.csv and run\.parquet.*bridge"):
        op.io.read_exports(tmp_path)


def test_different_products_is_an_error(whole, tmp_path):
    npx, _ = whole
    half = npx["SampleID"].isin(npx["SampleID"].unique()[:4])
    npx[half].to_csv(tmp_path / "x.csv", sep=";", index=False)
    npx[~half].to_csv(tmp_path / "y.csv", sep=";", index=False)
    x = op.read_npx(tmp_path / "x.csv", product="Explore 3072")
    y = op.read_npx(tmp_path / "y.csv", product="Explore HT")
    assert x.uns["olinkpipe"]["product"] != y.uns["olinkpipe"]["product"]
    with pytest.raises(DesignError, match="differ in product"):
        _combine([("x.csv", x), ("y.csv", y)], product=None, duplicates="rename")


def test_nothing_to_read(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(NPXFormatError, match="no Olink export found"):
        op.io.read_exports(tmp_path / "empty")
    with pytest.raises(NPXFormatError, match="file not found"):
        op.io.read_exports([tmp_path / "missing.csv"])


def test_panels_with_different_samples(whole, tmp_path):
    """A sample not run on a panel: no value there, never leftover memory (this read
    random indices before the fix)."""
    npx, _ = whole
    panels = sorted(npx["Panel"].unique())
    ids = npx["SampleID"].unique()
    first = npx[(npx["Panel"] == panels[0]) & npx["SampleID"].isin(ids[: len(ids) // 2])]
    rest = npx[(npx["Panel"] != panels[0])]
    first.to_csv(tmp_path / "a.csv", sep=";", index=False)
    rest.to_csv(tmp_path / "b.csv", sep=";", index=False)
    for _ in range(3):
        got = op.io.read_exports(tmp_path)
        on_first = (got.var["Panel"] == panels[0]).to_numpy()
        missing = ~got.obs["SampleID"].isin(first["SampleID"]).to_numpy()
        assert np.isnan(got.X[np.ix_(missing, on_first)]).all()
        assert (got.obsm["PlateID"].loc[missing, panels[0]] == "").all()
        assert (got.obsm["QC_Warning"].loc[missing, panels[0]] == "").all()


def test_parquet_with_unused_categories(whole, tmp_path):
    """pandas writes a categorical's full dictionary: a subset saved to parquet must not
    bring back the samples and assays it left out."""
    npx, _ = whole
    cat = npx.astype({"SampleID": "category", "OlinkID": "category", "Panel": "category"})
    panel = sorted(npx["Panel"].unique())[0]
    sub = cat[cat["Panel"] == panel]
    sub = sub[sub["SampleID"].isin(npx["SampleID"].unique()[:5])]
    sub.to_parquet(tmp_path / "sub.parquet", index=False)
    got = op.read_npx(tmp_path / "sub.parquet")
    assert got.n_obs == 5 and got.n_vars == sub["OlinkID"].nunique()
    assert list(got.obsm["PlateID"].columns) == [panel]


def test_role_columns_named_differently(whole, tmp_path):
    npx, expected = whole
    panels = sorted(npx["Panel"].unique())
    npx[npx["Panel"] == panels[0]].to_csv(tmp_path / "a.csv", sep=";", index=False)
    other = npx[npx["Panel"] != panels[0]].rename(
        columns={"LOD": "PlateLOD", "PlateID": "Plate ID"}
    )
    other.to_csv(tmp_path / "b.csv", sep=";", index=False)
    with pytest.warns(OlinkpipeWarning, match="renamed to match the first file.*PlateLOD -> LOD"):
        got = op.io.read_exports(tmp_path)
    _same(got, expected)


def test_workbook_that_is_not_an_export_is_skipped(whole, tmp_path):
    npx, expected = whole
    npx.to_csv(tmp_path / "all.csv", sep=";", index=False)
    pd.DataFrame({"patient": ["P1"], "dose": [1.0]}).to_excel(tmp_path / "clinical.xlsx")
    with pytest.warns(OlinkpipeWarning, match="clinical.xlsx is not an Olink export"):
        got = op.io.read_exports(tmp_path)
    _same(got, expected)


def test_two_runs_of_the_same_samples_are_warned_about(whole, tmp_path):
    npx, _ = whole
    study = npx[~npx["SampleID"].str.contains("CONTROL")]
    run2 = study.assign(PlateID=study["PlateID"].astype(str) + "_run2")
    study.to_csv(tmp_path / "run1.csv", sep=";", index=False)
    run2.to_csv(tmp_path / "run2.csv", sep=";", index=False)
    with pytest.warns(OlinkpipeWarning) as caught:
        got = op.io.read_exports(tmp_path)
    text = " ".join(str(w.message) for w in caught)
    assert "more than one file" in text and "bridge" in text
    assert "one row per plate" in text  # the builder's own note on the repeated IDs
    assert got.n_obs == 2 * study["SampleID"].nunique()  # one row per plate, none merged


def test_file_metadata_kept_where_the_files_agree(whole, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    npx, _ = whole
    plates = sorted(npx["PlateID"].astype(str).unique())
    for i, plate in enumerate(plates[:2]):
        rows = npx[npx["PlateID"].astype(str) == plate].astype({"PlateID": str})
        table = pa.Table.from_pandas(rows, preserve_index=False)
        meta = {"ProjectName": "CAR-T", "DataFileType": "NPX File", "FileVersion": str(i)}
        pq.write_table(table.replace_schema_metadata(meta), tmp_path / f"{plate}.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        got = op.io.read_exports(tmp_path)
    meta = got.uns["olinkpipe"]["metadata"]
    assert meta.get("ProjectName") == "CAR-T" and meta.get("DataFileType") == "NPX File"
    assert "FileVersion" not in meta  # the files disagree
