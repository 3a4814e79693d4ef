"""The workflow's ``compute:`` section: dask-backed runs under a chosen scheduler."""

from __future__ import annotations

import json
import socket

import pandas as pd
import pytest
import yaml

from olinkpipe.cli import main
from olinkpipe.errors import ConfigError
from olinkpipe.workflow import bundled_config, load_config, run

pytest.importorskip("dask")


@pytest.mark.parametrize(
    ("compute", "pattern"),
    [
        ({"chunks": 0}, r"'compute\.chunks'.*'auto', 'panel' or a positive number.*got 0"),
        ({"chunks": "panels"}, r"'compute\.chunks'.*got 'panels'"),
        ({"chunks": True}, r"'compute\.chunks'.*got True"),
        ({"chunks": 2.5}, r"'compute\.chunks'.*got 2\.5"),
        ({"scheduler": "thread"}, r"'compute\.scheduler'.*'threads'.*tcp://host:8786.*'thread'"),
        ({"scheduler": "tcp://"}, r"'compute\.scheduler'.*got 'tcp://'"),
        ({"schedular": "threads"}, r"'compute\.schedular'.*did you mean 'scheduler'"),
    ],
)
def test_compute_config_errors(compute, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config({"inputs": {"npx": "a.csv"}, "compute": compute})


def test_compute_defaults_and_allowed_values():
    cfg, _ = load_config({"inputs": {"npx": "a.csv"}})
    assert cfg.compute.chunks is None and cfg.compute.scheduler is None
    for chunks in ("auto", "panel", 7):
        for scheduler in ("threads", "processes", "synchronous", "tcp://127.0.0.1:8786"):
            c = {"chunks": chunks, "scheduler": scheduler}
            cfg, _ = load_config({"inputs": {"npx": "a.csv"}, "compute": c})
            assert (cfg.compute.chunks, cfg.compute.scheduler) == (chunks, scheduler)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The bundled paired_de workflow on a small simulated study (no enrichment)."""
    from olinkpipe.datasets import simulate_cart_study

    tmp = tmp_path_factory.mktemp("compute")
    simulate_cart_study(
        seed=5, n_treated=8, n_control=0, n_assays=60, out=tmp / "data", n_qc_warnings=0
    )
    cfg = yaml.safe_load(bundled_config("paired_de").read_text())
    cfg["inputs"] = {"npx": "data/npx_data.csv", "samples": "data/samples.csv"}
    cfg["enrichment"] = None
    cfg["output"] = {"figure_formats": ["png"], "h5ad": True, "parquet": False}
    cfg["differential"]["paired_plot"] = ["IL6"]
    path = tmp / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    memory = run(path, out=tmp / "memory")
    return tmp, cfg, memory


def _write(tmp, cfg, name, compute):
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump({**cfg, "compute": compute}))
    return path


def test_chunked_synchronous_run_equals_in_memory(study):
    from olinkpipe._dask import is_dask

    tmp, cfg, memory = study
    path = _write(tmp, cfg, "sync", {"chunks": "panel", "scheduler": "synchronous"})
    res = run(path, out=tmp / "sync")
    assert res.status == memory.status
    assert is_dask(res.adata.X)  # the steps ran on the dask-backed AnnData
    pd.testing.assert_frame_equal(
        res.tables["differential"], memory.tables["differential"], rtol=1e-10
    )
    for name in ("qc_samples", "qc_assays"):
        pd.testing.assert_frame_equal(res.tables[name], memory.tables[name], rtol=1e-10)
    assert set(res.figures) == set(memory.figures) and "paired" in res.figures
    record = json.loads((tmp / "sync" / "run.json").read_text())
    assert record["compute"]["chunks"] == "panel"
    assert record["compute"]["scheduler"] == "synchronous"
    assert "local scheduler 'synchronous'" in record["compute"]["where"]
    mem_record = json.loads((tmp / "memory" / "run.json").read_text())
    assert mem_record["compute"] == {
        "chunks": None,
        "scheduler": None,
        "where": "in memory (no dask)",
    }
    html = (tmp / "sync" / "report.html").read_text()
    assert "local scheduler &#x27;synchronous&#x27;" in html and "chunks &#x27;panel&#x27;" in html


def test_cli_overrides_compute(study):
    tmp, cfg, memory = study
    path = _write(tmp, cfg, "cli", {})
    rc = main(["run", str(path), "--out", str(tmp / "cli"), "--chunks", "25"])
    assert rc == 0
    record = json.loads((tmp / "cli" / "run.json").read_text())
    assert record["compute"]["chunks"] == 25 and record["compute"]["scheduler"] is None
    got = pd.read_csv(tmp / "cli" / "tables" / "differential.csv")
    want = pd.read_csv(tmp / "memory" / "tables" / "differential.csv")
    pd.testing.assert_frame_equal(got, want, rtol=1e-10)
    with pytest.raises(ConfigError, match=r"--scheduler/--chunks.*'compute\.scheduler'"):
        run(path, out=tmp / "cli2", scheduler="nowhere")
    assert not (tmp / "cli2").exists()


def test_unreachable_scheduler_is_a_config_error_before_writing(study, monkeypatch):
    from olinkpipe.workflow import runner

    tmp, cfg, _ = study
    with socket.socket() as s:  # a free loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    monkeypatch.setattr(runner, "CONNECT_TIMEOUT", 2)
    path = _write(tmp, cfg, "down", {"chunks": "panel", "scheduler": address})
    with pytest.raises(ConfigError, match=rf"cannot connect.*{address}"):
        run(path, out=tmp / "down")
    assert not (tmp / "down").exists()


def test_distributed_run_records_address(study):
    distributed = pytest.importorskip("distributed")
    tmp, cfg, memory = study
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=1,
        processes=False,
        protocol="tcp://",
        host="127.0.0.1",
        dashboard_address=":0",  # any free port: a busy 8787 must not fail the test
    ) as cluster:
        address = cluster.scheduler_address
        path = _write(tmp, cfg, "dist", {"chunks": "panel"})
        res = run(path, out=tmp / "dist", scheduler=address)
    assert res.status["differential"] == "done"
    pd.testing.assert_frame_equal(
        res.tables["differential"], memory.tables["differential"], rtol=1e-10
    )
    record = json.loads((tmp / "dist" / "run.json").read_text())
    assert record["compute"]["address"] == address == record["compute"]["scheduler"]
    assert record["compute"]["n_workers"] == 1
    assert address in (tmp / "dist" / "report.html").read_text()


def test_folder_of_exports_is_wrapped_in_blocks(tmp_path):
    """read_exports has no chunks=: the folder is read in memory, then split into dask
    blocks; the DE equals the in-memory folder run and the report says so."""
    from olinkpipe._dask import is_dask
    from olinkpipe.datasets import simulate_cart_study

    study = simulate_cart_study(seed=9, n_treated=8, n_control=0, n_assays=40, n_qc_warnings=0)
    folder = tmp_path / "exports"
    folder.mkdir()
    for panel, rows in study.npx.groupby("Panel", observed=True):
        rows.to_csv(folder / f"{panel}_NPX.csv", sep=";", index=False)
    study.samples.to_csv(folder / "samples.csv", index=False)
    cfg = yaml.safe_load(bundled_config("paired_de").read_text())
    cfg["inputs"] = {"npx": "exports", "samples": "exports/samples.csv"}
    cfg["enrichment"] = None
    cfg["output"] = {"figure_formats": ["png"], "h5ad": False, "parquet": False}
    memory = run(_write(tmp_path, cfg, "mem", {}), out=tmp_path / "mem")
    chunked = run(_write(tmp_path, cfg, "dask", {"chunks": 10}), out=tmp_path / "dask")
    assert is_dask(chunked.adata.X) and not is_dask(memory.adata.X)
    assert max(chunked.adata.X.chunks[1]) <= 10
    pd.testing.assert_frame_equal(
        chunked.tables["differential"], memory.tables["differential"], rtol=1e-10
    )
    assert "read_exports has no chunks=" in (tmp_path / "dask" / "report.html").read_text()
