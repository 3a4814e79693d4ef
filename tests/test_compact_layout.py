"""The compact AnnData layout (olinkpipe._layout, docs/data_model.md): LOD as an assays ×
plates table, below-LOD and QC flags on demand, small code layers; the same values as the
long file, whatever the layout, in memory and on dask, through h5ad/zarr and subsetting."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from io_builders import sort_long

import olinkpipe as op
from olinkpipe import _layout
from olinkpipe.datasets import write_large_explore
from olinkpipe.pp import _lazy


def make_table(seed: int = 3, n_samples: int = 12, plates: int = 3) -> pd.DataFrame:
    """Long Explore-like table: two panels, samples on ``plates`` plates, LOD constant per
    assay and plate, QC varying per cell (so it is a per-cell code layer), one missing NPX."""
    rng = np.random.default_rng(seed)
    rows = []
    lod = {}
    for panel, oids in (("Oncology", [1, 2, 3]), ("Inflammation", [4, 5])):
        for o in oids:
            for i in range(n_samples):
                plate = f"Run/{i % plates}"  # a "/" in the name: must survive h5ad and zarr
                key = (o, plate)
                lod.setdefault(key, round(rng.normal(-1, 0.5), 4))
                rows.append(
                    {
                        "SampleID": f"S{i:02d}",
                        "OlinkID": f"OID0000{o}",
                        "Assay": f"G{o}",
                        "Panel": panel,
                        "PlateID": plate,
                        "QC_Warning": "WARN" if rng.random() < 0.2 else "PASS",
                        "LOD": lod[key],
                        "NPX": round(rng.normal(0, 1.5), 4),
                    }
                )
    df = pd.DataFrame(rows)
    df.loc[5, "NPX"] = np.nan
    return df


def _cell(adata, df, column):
    """``df[column]`` placed at each row's (sample, assay) cell; NaN elsewhere."""
    out = np.full(adata.shape, np.nan)
    i = adata.obs_names.get_indexer(df["SampleID"])
    j = adata.var_names.get_indexer(df["OlinkID"])
    out[i, j] = df[column].to_numpy(dtype=float)
    return out


def _nbytes(adata) -> int:
    n = np.asarray(adata.X).nbytes + sum(np.asarray(v).nbytes for v in adata.layers.values())
    n += sum(np.asarray(v).nbytes for v in adata.varm.values())
    for v in adata.obsm.values():
        n += int(v.memory_usage(deep=False).sum()) if isinstance(v, pd.DataFrame) else v.nbytes
    return n


@pytest.fixture
def table():
    return make_table()


@pytest.fixture
def adata(table):
    return op.io.from_long(table)


def test_reader_stores_the_compact_layout(adata, table):
    assert "lod" in adata.varm and "lod" not in adata.layers
    assert not {"below_lod", "qc_warning"} & set(adata.layers)
    assert adata.varm["lod"].shape == (adata.n_vars, 3)
    assert adata.uns["olinkpipe"]["lod_plates"] == ["Run/0", "Run/1", "Run/2"]
    assert adata.layers["QC_Warning"].dtype == np.int8  # two categories: int8 codes
    # every accessor against the long table itself (an independent computation)
    lod = _cell(adata, table, "LOD")
    np.testing.assert_array_equal(_layout.lod_matrix(adata), lod)
    npx = _cell(adata, table, "NPX")
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(_layout.below_lod_matrix(adata), npx < lod)
    qc = np.zeros(adata.shape, dtype=bool)
    qc[adata.obs_names.get_indexer(table.SampleID), adata.var_names.get_indexer(table.OlinkID)] = (
        table.QC_Warning != "PASS"
    ).to_numpy()
    np.testing.assert_array_equal(_layout.qc_warning_matrix(adata), qc)
    tab = _layout.lod_table(adata)
    first = table.groupby(["OlinkID", "PlateID"])["LOD"].first().unstack()
    pd.testing.assert_frame_equal(
        tab, first.loc[adata.var_names, tab.columns], check_names=False, check_exact=True
    )
    # rows and columns selected before expanding
    rows, cols = np.array([3, 0, 7]), np.array([4, 1])
    np.testing.assert_array_equal(_layout.lod_matrix(adata, rows, cols), lod[np.ix_(rows, cols)])


def test_to_long_is_unchanged(adata, table):
    got = op.to_long(adata)
    pd.testing.assert_frame_equal(
        sort_long(got[table.columns]), sort_long(table), check_dtype=False, check_exact=True
    )


def test_lod_that_varies_within_a_plate_stays_a_full_layer(table):
    table.loc[0, "LOD"] += 0.1  # one sample's LOD differs from its plate's
    adata = op.io.from_long(table)
    assert "lod" in adata.layers and "lod" not in adata.varm
    assert "lod_plates" not in adata.uns["olinkpipe"]
    np.testing.assert_array_equal(_layout.lod_matrix(adata), _cell(adata, table, "LOD"))
    pd.testing.assert_frame_equal(
        sort_long(op.to_long(adata)[table.columns]), sort_long(table), check_dtype=False
    )


def test_file_without_plates_or_lod():
    df = make_table().drop(columns=["PlateID"])
    df["LOD"] = df.groupby("OlinkID")["LOD"].transform("first")  # one LOD per assay
    a = op.io.from_long(df)
    assert a.uns["olinkpipe"]["lod_plates"] == [""] and a.varm["lod"].shape == (5, 1)
    np.testing.assert_array_equal(_layout.lod_matrix(a), _cell(a, df, "LOD"))
    b = op.io.from_long(make_table().drop(columns=["LOD"]))
    assert _layout.has_lod(b) and np.isnan(_layout.lod_matrix(b)).all()


@pytest.mark.parametrize("fmt", ["h5ad", "zarr"])
def test_write_read_keeps_the_layout(adata, tmp_path, fmt):
    path = tmp_path / f"a.{fmt}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # anndata: zarr v2 is no longer the default
        getattr(adata, f"write_{fmt}")(path)
        back = getattr(ad, f"read_{fmt}")(path)
    assert "lod" in back.varm and "lod" not in back.layers
    assert list(back.uns["olinkpipe"]["lod_plates"]) == ["Run/0", "Run/1", "Run/2"]
    assert back.layers["QC_Warning"].dtype == np.int8
    for fn in (_layout.lod_matrix, _layout.below_lod_matrix, _layout.qc_warning_matrix):
        np.testing.assert_array_equal(fn(back), fn(adata))
    pd.testing.assert_frame_equal(op.to_long(back), op.to_long(adata), check_dtype=False)


def test_subsetting_keeps_the_table_consistent(adata):
    rows = np.array([True, False] * 6)
    cols = np.array([True, False, True, True, False])
    sub = adata[rows, cols]
    full = _layout.lod_matrix(adata)[np.ix_(rows, cols)]
    np.testing.assert_array_equal(_layout.lod_matrix(sub), full)
    np.testing.assert_array_equal(_layout.lod_matrix(sub.copy()), full)
    np.testing.assert_array_equal(
        _layout.qc_warning_matrix(sub), _layout.qc_warning_matrix(adata)[np.ix_(rows, cols)]
    )


def _old_layout(adata):
    """The layout readers wrote before (full LOD, below_lod and qc_warning layers)."""
    old = adata.copy()
    old.layers["lod"] = _layout.lod_matrix(adata)
    old.layers["below_lod"] = _layout.below_lod_matrix(adata)
    old.layers["qc_warning"] = _layout.qc_warning_matrix(adata)
    del old.varm["lod"]
    return old


def test_old_layout_still_works(adata):
    old = _old_layout(adata)
    for fn in (_layout.lod_matrix, _layout.below_lod_matrix, _layout.qc_warning_matrix):
        np.testing.assert_array_equal(fn(old), fn(adata))
    assert old.layers["lod"] is not None and _layout.lod_table(old) is None
    for f in (op.pp.qc_summary,):
        pd.testing.assert_frame_equal(f(old), f(adata))
    with pytest.warns(op.errors.OlinkpipeWarning):
        a = op.pp.filter(adata, qc_warning="mask", min_detected=0.9)
    with pytest.warns(op.errors.OlinkpipeWarning):
        b = op.pp.filter(old, qc_warning="mask", min_detected=0.9)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(_layout.lod_matrix(a), _layout.lod_matrix(b))


def test_normalize_plates_shifts_the_table(adata):
    old = _old_layout(adata)
    a = op.pp.normalize_plates(adata, controls="keep")
    b = op.pp.normalize_plates(old, controls="keep")
    assert "lod" in a.varm and "lod" not in a.layers  # still a table
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(_layout.lod_matrix(a), b.layers["lod"])  # bit for bit
    ref = pd.Series(2.0, index=adata.var_names)
    c = op.pp.reference_median_normalize(adata, ref)
    d = op.pp.reference_median_normalize(old, ref)
    np.testing.assert_array_equal(_layout.lod_matrix(c), _layout.lod_matrix(d))
    assert "lod" in c.varm


def test_censor_and_compute_lod_on_the_compact_layout(adata):
    lod = _layout.lod_matrix(adata)
    c = op.pp.censor_lod(adata, how="lod")
    below = np.asarray(adata.X) < lod
    np.testing.assert_array_equal(c.X[below], lod[below])
    np.testing.assert_array_equal(c.layers["below_lod"], below)
    b = op.pp.below_lod(adata)
    np.testing.assert_array_equal(b.layers["below_lod"], below)


def test_dask_accessors_equal_in_memory(adata):
    pytest.importorskip("dask.array")
    lazy = _lazy.to_dask(adata, max_assays=2)
    for fn in (_layout.lod_matrix, _layout.below_lod_matrix, _layout.qc_warning_matrix):
        got = fn(lazy)
        assert _lazy.is_dask(got)
        np.testing.assert_array_equal(got.compute(), fn(adata))
    norm = op.pp.normalize_plates(lazy, controls="keep")
    np.testing.assert_array_equal(
        _layout.lod_matrix(norm).compute(),
        _layout.lod_matrix(op.pp.normalize_plates(adata, controls="keep")),
    )


def test_explore_read_is_at_most_one_and_a_half_x(tmp_path):
    path = write_large_explore(tmp_path / "e.parquet", 120, 400, seed=2)  # obsm: 2 per panel
    adata = op.read_npx(path)
    assert "lod" in adata.varm and set(adata.layers) <= {"Assay_Warning"}
    assert all(adata.layers[k].dtype == np.int8 for k in adata.layers)
    ratio = _nbytes(adata) / np.asarray(adata.X).nbytes
    assert ratio <= 1.5, ratio
    whole = op.read_npx(path, chunks="panel")  # dask: the same plate table, from the scan
    assert "lod" not in whole.layers and _lazy.is_dask(whole.X)
    np.testing.assert_array_equal(whole.varm["lod"], adata.varm["lod"])
    assert list(whole.uns["olinkpipe"]["lod_plates"]) == list(adata.uns["olinkpipe"]["lod_plates"])
    lod = _layout.lod_matrix(whole)
    assert _lazy.is_dask(lod)
    np.testing.assert_array_equal(lod.compute(), _layout.lod_matrix(adata))
    np.testing.assert_array_equal(
        _layout.qc_warning_matrix(whole).compute(), _layout.qc_warning_matrix(adata)
    )


def test_bridge_normalize_stacks_and_recompacts():
    ref = op.io.from_long(make_table(seed=5))
    t2 = make_table(seed=6)
    t2["PlateID"] = t2["PlateID"].str.replace("Run", "Other")  # the other run's own plates
    other = op.io.from_long(t2)
    bridge = ["S00", "S01", "S02", "S03"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", op.errors.OlinkpipeWarning)
        a = op.pp.bridge_normalize(ref, other, bridge)
        b = op.pp.bridge_normalize(_old_layout(ref), _old_layout(other), bridge)
    assert "lod" in a.varm and "lod" not in a.layers  # six plates, one table
    assert len(a.uns["olinkpipe"]["lod_plates"]) == 6
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(_layout.lod_matrix(a), _layout.lod_matrix(b))
    np.testing.assert_array_equal(_layout.qc_warning_matrix(a), b.layers["qc_warning"])
    assert "lod" in b.varm  # old-layout projects: the stacked LOD is stored compactly too
    # the other project's LOD moved with its NPX by the factor
    factor = a.var["Adj_factor"].to_numpy()
    rows = (a.obs["Project"] == "P2").to_numpy()
    np.testing.assert_allclose(
        _layout.lod_matrix(a)[rows], _layout.lod_matrix(other) + factor, rtol=0, atol=1e-12
    )


def test_compute_lod_replaces_the_table(adata):
    a = adata.copy()
    a.obs["SampleType"] = ["NEGATIVE_CONTROL"] * 10 + ["SAMPLE"] * 2
    out = op.pp.compute_lod(a, min_nc=5)  # QC-warned cells do not count
    assert "lod" in out.layers and "lod" not in out.varm
    assert "lod_plates" not in out.uns["olinkpipe"]
    assert _layout.lod_table(out) is None
    np.testing.assert_array_equal(_layout.lod_matrix(out), out.layers["lod"])
    assert "lod" in a.varm  # the input keeps its table


def test_dask_filter_and_qc_summary_on_the_compact_layout(adata):
    pytest.importorskip("dask.array")
    lazy = _lazy.to_dask(adata, max_assays=2)
    pd.testing.assert_frame_equal(op.pp.qc_summary(lazy), op.pp.qc_summary(adata))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", op.errors.OlinkpipeWarning)
        a = op.pp.filter(adata, qc_warning="mask", min_detected=0.9)
        b = op.pp.filter(lazy, qc_warning="mask", min_detected=0.9)
    assert _lazy.is_dask(b.X)
    np.testing.assert_array_equal(b.X.compute(), a.X)
    np.testing.assert_array_equal(_layout.lod_matrix(b).compute(), _layout.lod_matrix(a))


def test_not_a_full_grid_keeps_measured_and_round_trips(table):
    part = table.drop(index=[0, 7, 30]).reset_index(drop=True)  # three rows missing
    adata = op.io.from_long(part)
    assert "measured" in adata.layers and "lod" in adata.varm
    lod = _layout.lod_matrix(adata)
    np.testing.assert_array_equal(lod, _cell(adata, part, "LOD"))  # NaN where no row
    np.testing.assert_array_equal(_layout.qc_warning_matrix(adata)[np.isnan(lod)], False)
    pd.testing.assert_frame_equal(
        sort_long(op.to_long(adata)[part.columns]), sort_long(part), check_dtype=False
    )


def test_passed_counts_as_a_pass_everywhere(table):
    table["QC_Warning"] = np.where(table["SampleID"] == "S01", "WARN", "Passed")
    adata = op.io.from_long(table)  # constant per sample and panel: obsm, no code layer
    assert "QC_Warning" not in adata.layers
    qc = _layout.qc_warning_matrix(adata)
    assert qc[adata.obs_names.get_loc("S01")].all() and qc.sum() == adata.n_vars
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", op.errors.OlinkpipeWarning)
        out = op.pp.filter(adata, qc_warning="mask", min_detected=0)
    assert np.isnan(out.X[adata.obs_names.get_loc("S01")]).all()
    assert np.isnan(out.X).sum() == adata.n_vars + np.isnan(adata.X).sum()


def test_table_without_plate_labels_is_an_error(adata):
    a = adata.copy()
    del a.uns["olinkpipe"]["lod_plates"]
    with pytest.raises(op.errors.ValidationError, match="lod_plates"):
        _layout.lod_matrix(a)
