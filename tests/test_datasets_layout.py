"""The simulated study's in-memory AnnData has the compact layout ``read_npx`` gives
(issue 14 item 2), with the same values as the full layers it used to hold."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe import _layout
from olinkpipe.datasets import simulate_cart_study
from olinkpipe.datasets.simulate import write_study

SMALL = {"seed": 7, "n_treated": 8, "n_control": 2, "n_assays": 60}
# sha256 (first 16 hex digits) of X, layers["lod"], layers["below_lod"] and
# layers["qc_warning"] as CartStudy.to_anndata() built them before the compact layout
# (main at 6e66ba1), in to_anndata's row and column order
BEFORE = {
    "small": {
        "X": "7d3c0f1e290c2e2b",
        "lod": "4e27516846c842ba",
        "below": "23a560ce8e1ebfdb",
        "qc": "2420a0fbb71ed6ec",
    },
    "default": {
        "X": "a983d910ec60dd93",
        "lod": "3bf18d1240ee0010",
        "below": "64c1e83aef870e08",
        "qc": "6e0f442befd6460d",
    },
}
KWARGS = {"small": SMALL, "default": {"seed": 0}}


def _sha(a, dtype: str) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype=dtype).tobytes()).hexdigest()[:16]


def _old_layers(npx: pd.DataFrame) -> dict[str, np.ndarray]:
    """The full layers as the simulator's pivot built them before the compact layout."""
    s_codes = npx["SampleID"].cat.codes.to_numpy()
    a_codes = npx["OlinkID"].cat.codes.to_numpy()
    shape = (len(npx["SampleID"].cat.categories), len(npx["OlinkID"].cat.categories))

    def mat(col: str, dtype=float, fill=np.nan):
        m = np.full(shape, fill, dtype=dtype)
        m[s_codes, a_codes] = npx[col].to_numpy()
        return m

    x = mat("NPX")
    lod = mat("LOD")
    return {
        "X": x,
        "lod": lod,
        "qc": mat("QC_Warning", dtype=object, fill="") != "PASS",
        "below": np.nan_to_num(x, nan=np.inf) < np.nan_to_num(lod, nan=-np.inf),
    }


def _cells(adata) -> dict[str, np.ndarray]:
    return {
        "X": np.asarray(adata.X, dtype=float),
        "lod": _layout.lod_matrix(adata),
        "below": _layout.below_lod_matrix(adata),
        "qc": _layout.qc_warning_matrix(adata),
    }


def _decoded(adata, name: str) -> np.ndarray:
    cats = np.append(adata.uns["olinkpipe"]["coded_layers"][name], None).astype(object)
    return cats[np.asarray(adata.layers[name], dtype=np.intp)]


def _layout_of(adata) -> dict:
    prov = adata.uns["olinkpipe"]
    return {
        "layers": {k: str(v.dtype) for k, v in adata.layers.items()},
        "varm": {k: (str(v.dtype), np.shape(v)) for k, v in adata.varm.items()},
        "obsm": {k: list(v.columns) for k, v in adata.obsm.items()},
        "lod_plates": prov.get("lod_plates"),
        "coded_layers": sorted(prov.get("coded_layers", {})),
        "columns": prov.get("columns"),
    }


@pytest.mark.parametrize("which", ["small", "default"])
def test_values_unchanged_from_the_full_layers(which):
    """X, LOD, below LOD and QC per cell are bit for bit what the old full layers held:
    against checksums taken on main before the change and against the old pivot."""
    study = simulate_cart_study(**KWARGS[which])
    adata = study.to_anndata()
    assert not {"lod", "below_lod", "qc_warning"} & set(adata.layers)
    assert "lod" in adata.varm
    got = _cells(adata)
    old = _old_layers(study.npx)
    for key in ("X", "lod"):
        np.testing.assert_array_equal(got[key].view(np.int64), old[key].view(np.int64))
        assert _sha(got[key], "<f8") == BEFORE[which][key]
    for key in ("below", "qc"):
        np.testing.assert_array_equal(got[key], old[key])
        assert _sha(got[key], "?") == BEFORE[which][key]
    assert old["qc"].any() and old["below"].any()


def _round_trip(study, tmp_path):
    write_study(study, tmp_path, npx_format="both")
    return {fmt: op.read_npx(tmp_path / f"npx_data.{fmt}") for fmt in ("csv", "parquet")}


def _assert_same_as_read(adata, read) -> None:
    assert _layout_of(adata) == _layout_of(read)
    assert set(adata.obs_names) == set(read.obs_names)
    assert set(adata.var_names) == set(read.var_names)
    read = read[adata.obs_names, adata.var_names].copy()
    mine, theirs = _cells(adata), _cells(read)
    for key in ("X", "lod"):
        np.testing.assert_array_equal(mine[key].view(np.int64), theirs[key].view(np.int64))
    for key in ("below", "qc"):
        np.testing.assert_array_equal(mine[key], theirs[key])
    for name in adata.uns["olinkpipe"]["coded_layers"]:
        np.testing.assert_array_equal(_decoded(adata, name), _decoded(read, name))
    if _layout.lod_table(adata) is not None:
        pd.testing.assert_frame_equal(
            _layout.lod_table(adata), _layout.lod_table(read), check_names=False
        )
    for key in ("PlateID", "QC_Warning"):
        pd.testing.assert_frame_equal(adata.obsm[key], read.obsm[key], check_names=False)
    for col in ("PlateID", "QC_Warning", "qc_pass", "is_control"):
        np.testing.assert_array_equal(adata.obs[col].to_numpy(), read.obs[col].to_numpy())
    if "Assay_Warning" in adata.var:
        np.testing.assert_array_equal(adata.var["Assay_Warning"], read.var["Assay_Warning"])


@pytest.mark.parametrize("n_assays", [8, 60])
def test_layout_matches_a_round_trip_through_the_files(tmp_path, n_assays):
    """to_anndata() has the layout read_npx gives for the written export (CSV and
    parquet): LOD table, no derived layers, Assay_Warning as an int8 code layer when it
    varies within an assay (a var column with 8 assays, where no assay warns)."""
    study = simulate_cart_study(**{**SMALL, "n_assays": n_assays})
    adata = study.to_anndata()
    for read in _round_trip(study, tmp_path).values():
        _assert_same_as_read(adata, read)
    if n_assays > 10:
        assert adata.layers["Assay_Warning"].dtype == np.int8
        assert (_decoded(adata, "Assay_Warning") == "WARN").sum() > 0
    else:
        assert "Assay_Warning" not in adata.layers and "Assay_Warning" in adata.var


def _edit(study, col: str, row: int, value):
    """The study with one cell of its long frame changed."""
    npx = study.npx.copy()
    npx.loc[row, col] = value
    return dataclasses.replace(study, npx=npx)


def test_lod_varying_within_a_plate_stays_a_full_layer(tmp_path):
    study = simulate_cart_study(**SMALL)
    edited = _edit(study, "LOD", 5, 99.0)
    adata = edited.to_anndata()
    assert "lod" in adata.layers and "lod" not in adata.varm
    np.testing.assert_array_equal(_layout.lod_matrix(adata), _old_layers(edited.npx)["lod"])
    for read in _round_trip(edited, tmp_path).values():
        _assert_same_as_read(adata, read)


def test_qc_varying_within_a_panel_is_a_code_layer(tmp_path):
    study = simulate_cart_study(**SMALL)
    edited = _edit(study, "QC_Warning", 3, "WARN")
    adata = edited.to_anndata()
    assert adata.layers["QC_Warning"].dtype == np.int8
    np.testing.assert_array_equal(_layout.qc_warning_matrix(adata), _old_layers(edited.npx)["qc"])
    for read in _round_trip(edited, tmp_path).values():
        _assert_same_as_read(adata, read)


def test_block_wise_pivot_equals_one_block(monkeypatch):
    """The pivot works over the long rows in blocks: small blocks give the same AnnData."""
    from olinkpipe.datasets import _pivot

    study = simulate_cart_study(**SMALL)
    for edited in (study, _edit(study, "LOD", 5, 99.0), _edit(study, "QC_Warning", 3, "WARN")):
        one = edited.to_anndata()
        monkeypatch.setattr(_pivot, "_ROWS", 37)
        many = edited.to_anndata()
        monkeypatch.setattr(_pivot, "_ROWS", 1 << 20)
        np.testing.assert_array_equal(one.X, many.X)
        pd.testing.assert_frame_equal(one.obs, many.obs)
        pd.testing.assert_frame_equal(one.var, many.var)
        assert _layout_of(one) == _layout_of(many)
        for key in one.layers:
            np.testing.assert_array_equal(one.layers[key], many.layers[key])
        for key in one.varm:
            np.testing.assert_array_equal(one.varm[key], many.varm[key])


def test_an_olinkid_without_rows_is_left_out_not_mislabelled():
    """An OlinkID category with no rows (its rows filtered out of ``npx``) is not a var row,
    and every other assay keeps its own annotation; the caller's frame is not changed."""
    study = simulate_cart_study(**SMALL)
    gone = str(study.npx["OlinkID"].cat.categories[0])
    npx = study.npx[study.npx["OlinkID"] != gone]
    adata = dataclasses.replace(study, npx=npx).to_anndata()
    assert (
        gone not in adata.var_names
        and adata.n_vars == len(study.npx["OlinkID"].cat.categories) - 1
    )
    first = npx.drop_duplicates("OlinkID").set_index("OlinkID")
    for col in ("Assay", "UniProt", "Panel"):
        expected = first.loc[adata.var_names, col].astype(str).to_numpy()
        np.testing.assert_array_equal(adata.var[col].astype(str).to_numpy(), expected)
    assert gone in npx["OlinkID"].cat.categories  # the caller's categories are untouched
