"""select_bridge_samples and read_fixed_lod on a dask-backed AnnData reduce over blocks
(the whole matrix is never computed) and equal the in-memory result; the workflow's dask
progress bar shows under ``olinkpipe run -v``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from builders import dask_study, lazy, make_adata, panel_sorted

import olinkpipe as op

da = pytest.importorskip("dask.array")
from dask.callbacks import Callback  # noqa: E402


@pytest.fixture
def study():
    return dask_study()


class LargestResult(Callback):
    """The largest numpy result (in elements) of any task that ran."""

    def __init__(self):
        super().__init__()
        self.largest = 0
        self.runs = 0

    def _start(self, dsk):
        self.runs += 1

    def _posttask(self, key, result, dsk, state, worker_id):
        if isinstance(result, np.ndarray):
            self.largest = max(self.largest, result.size)


def test_select_bridge_samples_by_panel_on_dask():
    a = panel_sorted(make_adata(60, 16, seed=7, nan_frac=0.0))
    X = a.X.copy()
    X[5, a.var["Panel"].to_numpy() == "Olink Oncology"] += 12  # a QC outlier on one panel
    a.X = X
    exp = op.pp.select_bridge_samples(a, 6, max_missing=0.3)
    with LargestResult() as seen:
        got = op.pp.select_bridge_samples(lazy(a), 6, max_missing=0.3)
    pd.testing.assert_frame_equal(got, exp, check_exact=True)
    assert got.attrs == exp.attrs and exp.attrs["n_outlier_samples"] >= 1
    assert seen.runs >= 1
    # one panel's columns at most (8 of 16 assays), never the whole matrix
    assert seen.largest <= a.n_obs * 8 < a.n_obs * a.n_vars


def test_read_fixed_lod_on_dask_stays_lazy(study, tmp_path):
    a = study.copy()
    if "Normalization" in a.var:  # plate-control scale: the LOD applies as written
        del a.var["Normalization"]
    table = pd.DataFrame(
        {
            "OlinkID": a.var_names,
            "LodNPX": np.linspace(0.5, 2.0, a.n_vars),
            "LodMethod": "lod_npx",
        }
    )
    path = tmp_path / "fixed.csv"
    table.to_csv(path, sep=";", index=False)
    exp = op.pp.read_fixed_lod(a, path)
    with LargestResult() as seen:
        got = op.pp.read_fixed_lod(lazy(a), path)
    assert seen.largest < a.n_obs * a.n_vars  # nothing computed whole (blocks at most)
    from olinkpipe.pp import _lazy

    assert _lazy.is_dask(got.X)
    np.testing.assert_array_equal(got.X.compute(), exp.X)
    for key in exp.layers:
        np.testing.assert_array_equal(
            np.asarray(got.layers[key].compute()), np.asarray(exp.layers[key])
        )
    assert got.uns["olinkpipe"]["lod"]["file"] == str(path)


def test_progress_bar_under_run_verbose(tmp_path, monkeypatch, capsys):
    """``olinkpipe run -v`` on a chunked run shows dask's bar (its minimum time forced to 0)."""
    pytest.importorskip("dask.diagnostics")
    import dask.diagnostics
    import yaml

    from olinkpipe.cli import main
    from olinkpipe.datasets import simulate_cart_study
    from olinkpipe.workflow import bundled_config

    real = dask.diagnostics.ProgressBar
    made = []

    class Always(real):
        def __init__(self, *args, **kwargs):
            kwargs["minimum"] = 0.0
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(dask.diagnostics, "ProgressBar", Always)
    simulate_cart_study(
        seed=5, n_treated=6, n_control=0, n_assays=30, out=tmp_path / "data", n_qc_warnings=0
    )
    cfg = yaml.safe_load(bundled_config("paired_de").read_text())
    cfg["inputs"] = {"npx": "data/npx_data.csv", "samples": "data/samples.csv"}
    cfg["enrichment"] = None
    cfg["output"] = {"figure_formats": ["png"], "h5ad": False, "parquet": False}
    cfg["differential"]["paired_plot"] = []
    cfg["compute"] = {"chunks": "panel", "scheduler": "synchronous"}
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["-v", "run", str(path), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert made, "no progress bar was made"
    assert "Completed" in err and "[" in err  # dask's bar: [####...] | 100% Completed
    # without -v: no bar
    made.clear()
    assert main(["run", str(path), "--out", str(tmp_path / "quiet")]) == 0
    assert not made and "Completed" not in capsys.readouterr().err
