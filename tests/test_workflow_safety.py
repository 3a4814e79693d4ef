"""Issue 15/19: atomic workflow outputs, the run lock, hostile configs and early errors.

The interruption tests run ``python -m olinkpipe run`` as a real subprocess (with this
worktree first on PYTHONPATH), interrupt it with SIGINT or SIGKILL when given files appear
in the output folder, and check what is left on disk.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import anndata
import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

import olinkpipe as op
from olinkpipe._atomic import TMP_PREFIX, OutputError, atomic_path, write_bytes
from olinkpipe.cli import main
from olinkpipe.errors import ConfigError, DesignError, OlinkpipeWarning
from olinkpipe.workflow import WorkflowError, _lock, load_config, run
from olinkpipe.workflow.runner import OutputExistsError, RunLockedError

ROOT = Path(__file__).resolve().parents[1]
PNG_END = b"IEND\xaeB`\x82"


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A small paired study on disk and a workflow config for it (figures PNG + PDF)."""
    from olinkpipe.datasets import simulate_cart_study

    base = tmp_path_factory.mktemp("safety")
    simulate_cart_study(
        seed=5, n_treated=8, n_control=0, n_assays=60, out=base / "data", n_qc_warnings=0
    )
    cfg = {
        "name": "safety",
        "inputs": {"npx": "data/npx_data.csv", "samples": "data/samples.csv"},
        "differential": {
            "groupby": "timepoint",
            "reference": "pre",
            "pair": "patient",
            "paired_plot": ["SIT1"],
        },
        "output": {"figure_formats": ["png", "pdf"]},
    }
    path = base / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def _start(config: Path, out: Path, *extra: str, **kw) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "olinkpipe", "run", str(config), "--out", str(out), *extra]
    return subprocess.Popen(
        cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw
    )


def _wait_for(proc: subprocess.Popen, ready, timeout: float = 120.0) -> None:
    """Poll until ``ready()`` is true; fail if the run ends first."""
    end = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (rc {proc.returncode}) before the kill point:\n{err}")
        if time.monotonic() > end:
            proc.kill()
            pytest.fail("kill point not reached")
        time.sleep(0.002)


def _temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.startswith(TMP_PREFIX)]


def _check_final_files(out: Path) -> dict:
    """Every file under its final name is whole; returns run.json."""
    for path in out.rglob("*"):
        if path.is_dir() or path.name.startswith(TMP_PREFIX) or path.name == _lock.LOCK_NAME:
            continue
        data = path.read_bytes()
        if path.suffix == ".csv":
            assert len(pd.read_csv(path).columns) > 1, path
        elif path.suffix == ".parquet":
            pq.read_table(path)
        elif path.suffix == ".png":
            assert data.startswith(b"\x89PNG") and data.endswith(PNG_END), path
        elif path.suffix == ".pdf":
            assert data.startswith(b"%PDF") and data.rstrip().endswith(b"%%EOF"), path
        elif path.suffix == ".h5ad":
            anndata.read_h5ad(path)
        elif path.name == "report.html":
            assert data.rstrip().endswith(b"</html>"), path
        elif path.name != "run.json":
            pytest.fail(f"unexpected file {path}")
    return json.loads((out / "run.json").read_text())


# ----------------------------------------------------------------------------- interrupts


@pytest.mark.slow
@pytest.mark.parametrize(
    ("sig", "point"),
    [
        (signal.SIGINT, "tables/qc_samples.csv"),
        (signal.SIGINT, "a temporary file"),
        (signal.SIGTERM, "figures/volcano.png"),
    ],
)
def test_sigint_leaves_an_interrupted_run_and_force_reruns(study, tmp_path, sig, point):
    out = tmp_path / "res"
    proc = _start(study, out)
    if point == "a temporary file":
        _wait_for(proc, lambda: out.is_dir() and bool(_temp_files(out / "figures")))
    else:
        _wait_for(proc, lambda: (out / point).exists())
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    what, code = ("interrupted", 130) if sig == signal.SIGINT else ("terminated", 143)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert errors == [f"error: {what}; {out / 'run.json'} records the run as interrupted"]
    record = _check_final_files(out)
    assert record["status"] == "interrupted" and what in record["error"]
    assert "interrupted" in record["steps"].values()
    assert not (out / "report.html").exists()
    assert not _temp_files(out) and not (out / _lock.LOCK_NAME).exists()
    # without --force the next run says what is there and what to do
    with pytest.raises(
        OutputExistsError, match=r"did not finish \(run\.json status 'interrupted'\)"
    ):
        run(study, out=out)
    if point != "figures/volcano.png":
        return  # one --force rerun is enough
    res = run(study, out=out, force=True)
    assert _check_final_files(out)["status"] == "complete"
    assert res.report.is_file() and not _temp_files(out)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["a temporary file", "tables/differential.csv"])
def test_sigkill_never_leaves_a_half_written_file(study, tmp_path, point, capsys):
    out = tmp_path / "res"
    proc = _start(study, out)
    if point == "a temporary file":  # killed while a figure is being written
        _wait_for(proc, lambda: out.is_dir() and bool(_temp_files(out / "figures")))
    else:
        _wait_for(proc, lambda: (out / point).exists())
    proc.kill()
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    record = _check_final_files(out)
    assert record["status"] == "running"  # never 'complete'
    assert (out / _lock.LOCK_NAME).exists()  # stale: its process is gone
    assert _lock.holder(out) is None
    # the stale lock does not block; without --force the CLI names --force
    assert main(["run", str(study), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "did not finish (run.json status 'running')" in err and "rerun with --force" in err
    if point != "a temporary file":
        return  # one --force rerun is enough
    assert main(["run", str(study), "--out", str(out), "--force"]) == 0
    record = _check_final_files(out)
    assert record["status"] == "complete" and record["error"] is None
    assert not _temp_files(out) and not (out / _lock.LOCK_NAME).exists()


@pytest.mark.slow
def test_a_second_run_into_the_same_folder_fails_at_once(study, tmp_path, capsys):
    out = tmp_path / "res"
    proc = _start(study, out)
    _wait_for(proc, lambda: (out / _lock.LOCK_NAME).exists())
    t0 = time.monotonic()
    with pytest.raises(RunLockedError, match=rf"another olinkpipe run \(pid {proc.pid} on "):
        run(study, out=out, force=True)
    assert time.monotonic() - t0 < 5
    assert main(["run", str(study), "--out", str(out), "--force"]) == 1
    assert "is writing to this folder" in capsys.readouterr().err
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    record = _check_final_files(out)
    assert record["status"] == "complete"
    assert set(record["figures"]) == {p.stem for p in (out / "figures").glob("*.png")}


def test_stale_lock_of_a_dead_or_reused_pid_is_taken_over(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = _lock.socket.gethostname()
    for info in (
        {"pid": dead.pid, "host": host, "started": "x", "proc_start": None},
        {"pid": os.getpid(), "host": host, "started": "x", "proc_start": "1"},  # reused pid
    ):
        (tmp_path / _lock.LOCK_NAME).write_text(json.dumps(info))
        assert _lock.holder(tmp_path) is None
        assert _lock.acquire(tmp_path) is None
        assert json.loads((tmp_path / _lock.LOCK_NAME).read_text())["pid"] == os.getpid()
        _lock.release(tmp_path)
        assert not (tmp_path / _lock.LOCK_NAME).exists()
    live = {"pid": os.getpid(), "host": host, "proc_start": _lock._proc_start(os.getpid())}
    (tmp_path / _lock.LOCK_NAME).write_text(json.dumps(live))
    assert _lock.acquire(tmp_path)["pid"] == os.getpid()  # a live holder is respected


# ----------------------------------------------------------------------------- write failures


def _limit_file_size(limit: int):
    import resource

    def pre():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit -> EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return pre


@pytest.mark.slow
def test_run_that_cannot_write_fails_cleanly(study, tmp_path):
    out = tmp_path / "res"
    proc = _start(study, out, preexec_fn=_limit_file_size(50_000))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1
    assert "could not write its output" in errors[0] and "File too large" in errors[0]
    assert f"{out}{os.sep}" in errors[0]  # names the file
    record = _check_final_files(out)
    assert record["status"] == "failed" and "File too large" in record["error"]
    assert not _temp_files(out) and not (out / _lock.LOCK_NAME).exists()


def test_convert_that_cannot_write_h5ad_fails_cleanly(study, tmp_path):
    npx = study.parent / "data" / "npx_data.csv"
    target = tmp_path / "o.h5ad"
    cmd = [sys.executable, "-m", "olinkpipe", "convert", str(npx), str(target)]
    res = subprocess.run(
        cmd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limit_file_size(20_000),
    )
    assert res.returncode == 1, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"error: {target}: cannot write: File too large. Hint: the file is larger than this "
        "system allows; choose another output location."
    ]
    assert list(tmp_path.iterdir()) == []  # neither the file nor a temporary one


def test_write_failures_are_output_errors_naming_the_path(tmp_path, monkeypatch, capsys):
    adata = op.io.from_long(
        pd.DataFrame({"SampleID": ["S1"], "OlinkID": ["OID1"], "Assay": ["IL6"], "NPX": [1.0]})
    )
    with pytest.raises(OutputError, match=r"nowhere/a\.csv: cannot write, its folder does not"):
        op.io.write(adata, tmp_path / "nowhere" / "a.csv")

    def denied(src, dst):
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr(os, "replace", denied)
    for ext in ("h5ad", "parquet", "csv"):
        with pytest.raises(OutputError, match=rf"o\.{ext}: cannot write: Permission denied"):
            op.io.write(adata, tmp_path / f"o.{ext}")
    assert list(tmp_path.iterdir()) == []
    long = tmp_path / "in.csv"
    monkeypatch.undo()
    op.io.write(adata, long)
    monkeypatch.setattr(os, "replace", denied)
    assert main(["convert", str(long), str(tmp_path / "o.h5ad")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'o.h5ad'}: cannot write: Permission denied")
    with pytest.raises(OutputError, match=r"x\.bin: cannot write: Permission denied"):
        write_bytes(tmp_path / "x.bin", b"1")
    with pytest.raises(KeyboardInterrupt), atomic_path(tmp_path / "y") as tmp:
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_out_dir(study, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputError, match=r"ro/res: cannot create the output folder"):
            run(study, out=ro / "res")
    finally:
        ro.chmod(0o700)


def test_out_path_under_a_file_is_an_output_error(study, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match=r"file/res: cannot create the output folder"):
        run(study, out=tmp_path / "file" / "res")


# ----------------------------------------------------------------------------- the CLI


def test_cli_errors_are_one_line_with_status_1(tmp_path, capsys, monkeypatch):
    assert main(["run", "--outt", "x"]) == 1
    err = capsys.readouterr().err
    assert err == "error: unrecognized arguments: --outt (see 'olinkpipe --help')\n"
    assert main(["convert", "a.csv"]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == "error: the following arguments are required: out (see 'olinkpipe convert --help')\n"
    )

    import olinkpipe.cli as cli

    def boom(args):
        raise TypeError("a bug")

    monkeypatch.setattr(cli, "_info", boom)
    assert main(["info", "x.csv"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: unexpected TypeError: a bug")

    def stop(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_info", stop)
    assert main(["info", "x.csv"]) == 130
    assert capsys.readouterr().err == "error: interrupted\n"


def test_run_help_shows_default_out_and_bundled_workflows(capsys):
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: olinkpipe_results)" in text
    assert (
        "bundled workflows (give the name instead of a YAML file): cart_prophylaxis, paired_de"
        in text
    )


def test_second_run_of_the_same_command_says_force(study, tmp_path, capsys):
    out = tmp_path / "res"
    assert main(["run", str(study), "--out", str(out)]) == 0
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    capsys.readouterr()
    assert main(["run", str(study), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "(it holds a finished olinkpipe run). Hint: rerun with --force" in err
    assert "force=True" not in err


# ----------------------------------------------------------------------------- configs


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "w.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_config_not_utf8(tmp_path):
    path = _write(tmp_path, "name: caf\u00e9\ninputs:\n  npx: caf\u00e9.csv\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"w\.yaml: not UTF-8 text \(byte 0xe9 on line 1\)"):
        load_config(path)


def test_config_duplicate_keys_name_key_and_lines(tmp_path):
    path = _write(tmp_path, "inputs: {npx: a.csv}\nqc:\n  controls: keep\n  controls: drop\n")
    with pytest.raises(
        ConfigError, match=r"w\.yaml: line 4: key 'controls' appears twice .*first on line 3"
    ):
        load_config(path)
    path = _write(tmp_path, "inputs: {npx: a.csv}\ninputs: {npx: b.csv}\n")
    with pytest.raises(ConfigError, match=r"line 2: key 'inputs' appears twice"):
        load_config(path)


def test_config_alias_bomb_is_refused_at_once(tmp_path):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines.append("inputs: {npx: *a9}")
    path = _write(tmp_path, "\n".join(lines) + "\n")
    t0 = time.perf_counter()
    with pytest.raises(
        ConfigError, match=r"aliases expand to more than 10,000 extra entries"
    ) as e:
        load_config(path)
    assert time.perf_counter() - t0 < 1.0
    assert len(str(e.value)) < 400
    path = _write(tmp_path, "x: &x [1, *x]\ninputs: {npx: a.csv}\n")
    with pytest.raises(ConfigError, match="refers to itself"):
        load_config(path)


def test_config_small_aliases_still_work(tmp_path):
    path = _write(
        tmp_path,
        "inputs: {npx: a.csv}\nqc: &q {controls: keep}\noutput: {figure_formats: &f [png, pdf]}\n",
    )
    cfg, _ = load_config(path)
    assert cfg.qc.controls == "keep" and cfg.output.figure_formats == ["png", "pdf"]


@pytest.mark.parametrize(
    "text",
    [
        "inputs: {npx: a.csv}\nqc: {qc_warning: '" + "x" * 100_000 + "'}\n",
        "inputs: {npx: a.csv}\nqc:\n  " + "k" * 1000 + ": 1\n",
        "inputs: {npx: a.csv}\nqc: {outlier_sd: [" + ", ".join(["1"] * 20_000) + "]}\n",
    ],
    ids=["long value", "long key", "long list"],
)
def test_config_errors_quote_at_most_200_characters(tmp_path, text):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=r"w\.yaml: invalid workflow config: key") as e:
        load_config(path)
    assert len(str(e.value)) < 200 + 600
    assert "…" in str(e.value) or "..." in str(e.value)


def test_config_too_large_is_refused(tmp_path):
    path = _write(tmp_path, "inputs: {npx: a.csv}\n#" + "x" * (1 << 20) + "\n")
    with pytest.raises(ConfigError, match=r"too large for a workflow config"):
        load_config(path)


# ----------------------------------------------------------------------------- early errors


def _cfg(tmp_path: Path, **over) -> dict:
    cfg = {
        "inputs": {
            "npx": str(tmp_path / "data" / "npx_data.csv"),
            "samples": str(tmp_path / "data" / "samples.csv"),
        },
        "output": {"figure_formats": ["png"], "parquet": False, "h5ad": False},
    }
    for key, value in over.items():
        cfg[key] = value
    return cfg


@pytest.fixture
def small(tmp_path):
    from olinkpipe.datasets import simulate_cart_study

    return simulate_cart_study(
        seed=11, n_treated=6, n_control=0, n_assays=30, out=tmp_path / "data", n_qc_warnings=0
    )


def test_missing_samples_path_is_found_before_the_out_dir_exists(tmp_path, small):
    cfg = _cfg(tmp_path)
    cfg["inputs"]["samples"] = "sheet_typo.csv"
    with pytest.raises(ConfigError, match=r"sheet_typo\.csv: input 'samples' not found"):
        run(cfg, out=tmp_path / "res")
    assert not (tmp_path / "res").exists()


def test_inputs_sheet_picks_a_sheet_and_is_checked_first(tmp_path):
    from io_builders import make_long, wide_grid, write_wide_xlsx

    long = make_long(controls=False)
    book = write_wide_xlsx(tmp_path / "w.xlsx", wide_grid(long), user_sheet_first=True)
    cfg = {
        "inputs": {"npx": str(book), "sheet": "NPX data"},
        "qc": {"pca_color": None},
        "output": {"figure_formats": ["png"], "parquet": False, "h5ad": False},
    }
    with pytest.raises(
        ConfigError, match=r"has no sheet 'NPX data' \(did you mean 'NPX Data'\?\)"
    ):
        run(cfg, out=tmp_path / "res")
    assert not (tmp_path / "res").exists()
    cfg["inputs"]["sheet"] = 7
    with pytest.raises(ConfigError, match=r"has 2 sheet\(s\), so there is no position 7"):
        run(cfg, out=tmp_path / "res")
    cfg["inputs"]["sheet"] = "NPX Data"
    res = run(cfg, out=tmp_path / "res")  # warnings are recorded in the run
    assert res.status["read"] == "done" and res.adata.n_vars == long["OlinkID"].nunique()
    csv = tmp_path / "long.csv"
    long.to_csv(csv, index=False)
    cfg["inputs"]["npx"] = str(csv)
    with pytest.raises(ConfigError, match=r"inputs.sheet: 'NPX Data' is set, but inputs.npx is"):
        run(cfg, out=tmp_path / "res2")


def test_sample_sheet_matching_no_sample_fails_in_read(tmp_path, small):
    sheet = small.samples.copy()
    sheet["SampleID"] = "X" + sheet["SampleID"].astype(str)
    sheet.to_csv(tmp_path / "data" / "samples.csv", index=False)
    first = str(sheet["SampleID"].iloc[0])
    with pytest.raises(
        WorkflowError,
        match=rf"none of the sample sheet's {len(sheet)} SampleIDs is a sample of the export: "
        rf"the sheet has '{first}', .*\(and \d+ more\), the export has 'OL",
    ) as info:
        run(_cfg(tmp_path), out=tmp_path / "res")
    assert info.value.step == "read" and isinstance(info.value.__cause__, DesignError)


def test_colliding_sheet_columns_are_renamed_with_a_warning(small):
    adata = op.io.from_long(small.npx)
    sheet = small.samples.copy()
    sheet["PlateID"] = "from the sheet"
    with pytest.warns(OlinkpipeWarning, match=r"'PlateID' are already in obs.*'PlateID_clinical'"):
        out = op.annotate(adata, sheet, id_column="SampleID")
    assert (out.obs["PlateID_clinical"].dropna() == "from the sheet").all()


def test_too_few_pairs_is_an_error_not_a_done_step_of_nans(tmp_path):
    from olinkpipe.datasets import simulate_cart_study

    simulate_cart_study(
        seed=12, n_treated=2, n_control=0, n_assays=20, out=tmp_path / "data", n_qc_warnings=0
    )
    diff = {"groupby": "timepoint", "reference": "pre", "pair": "patient"}
    cfg = _cfg(tmp_path, differential=diff, enrichment={"gsea": None})
    with pytest.raises(
        WorkflowError,
        match=r"no assay could be tested: after QC there are 2 complete post/pre pair\(s\) of "
        r"'patient'; the moderated test needs at least 3 pairs",
    ):
        run(cfg, out=tmp_path / "res")
    cfg["on_error"] = "continue"
    res = run(cfg, out=tmp_path / "res", force=True)
    assert res.status["differential"].startswith("failed: DesignError: differential: no assay")
    assert res.status["enrichment"] == "skipped: needs differential"


@pytest.mark.parametrize(
    ("diff", "pattern"),
    [
        (
            {"groupby": "timepont"},
            r"differential\.groupby: 'timepont' is not a sample column "
            r"\(did you mean 'timepoint'\?\)",
        ),
        (
            {"reference": "pree"},
            r"differential\.reference: 'pree' is not a value of 'timepoint' "
            r"after QC \(did you mean 'pre'\?\); its values are 'post', 'pre'",
        ),
        ({"pair": "patiant"}, r"differential\.pair: 'patiant' is not a sample column"),
    ],
)
def test_differential_settings_are_checked_in_config_words(tmp_path, small, diff, pattern):
    base = {"groupby": "timepoint", "reference": "pre", "pair": "patient"}
    cfg = _cfg(tmp_path, differential={**base, **diff})
    with pytest.raises(WorkflowError, match=pattern) as info:
        run(cfg, out=tmp_path / "res")
    text = str(info.value)
    assert "=" not in text.replace("==", "")  # no Python syntax such as target=
    assert ".." not in text.replace("...", "")  # no doubled full stops
    assert "'read' section" not in text


def test_read_failure_points_at_the_inputs_section(tmp_path):
    npx = tmp_path / "not_olink.csv"
    npx.write_text("a,b\n1,2\n")
    with pytest.raises(WorkflowError, match=r"step 'read' failed.*'inputs' section") as info:
        run({"inputs": {"npx": str(npx)}}, out=tmp_path / "res")
    assert ".." not in str(info.value).replace("...", "")


def test_patient_columns_named_in_the_config_are_checked_first(tmp_path, small):
    cfg = _cfg(tmp_path)
    cfg["inputs"]["patients"] = str(tmp_path / "data" / "patients.csv")
    cfg["outcomes"] = {"survival": {"PFS": {"time": "pfs_month", "event": "pfs_event"}}}
    cfg["table_one"] = {"categorical": ["sex", "no_such_column"]}
    with pytest.raises(
        ConfigError,
        match=r"patients\.csv: the config names column\(s\) the patient table does not have: "
        r"outcomes\.survival\.PFS\.time: 'pfs_month' \(did you mean 'pfs_months'\?\); "
        r"table_one\.categorical: 'no_such_column'\. Its columns: 'patient', 'group'",
    ):
        run(cfg, out=tmp_path / "res")
    assert not (tmp_path / "res").exists()


def test_a_test_table_of_only_missing_p_values_is_an_error():
    from olinkpipe.workflow.runner import _check_some_tested

    lr = pd.DataFrame({"statistic": [float("nan")], "df": [1], "p_value": [float("nan")]})
    with pytest.raises(DesignError, match=r"logrank_os: no test could be computed"):
        _check_some_tested("logrank_os", lr)
    by_dose = pd.DataFrame({"p_value": [float("nan")] * 2, "n_low": [1, 1], "n_high": [0, 1]})
    with pytest.raises(DesignError, match=r"too few samples, pairs or events \(n_low: 1; n_high"):
        _check_some_tested("kinetics_by_dose", by_dose)
    by_dose.loc[0, "p_value"] = 0.5
    _check_some_tested("kinetics_by_dose", by_dose)  # some tested: kept, NaN rows say n
    _check_some_tested("table_one", lr)  # descriptive tables may have no tests


def test_dask_backed_h5ad_is_written_without_an_image_after_a_space_check(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    import dask.array as da
    import numpy as np

    from olinkpipe._atomic import write_h5ad

    adata = anndata.AnnData(da.from_array(np.arange(600.0).reshape(20, 30), chunks=(5, 30)))
    path = write_h5ad(adata, tmp_path / "d.h5ad")
    np.testing.assert_array_equal(anndata.read_h5ad(path).X, np.arange(600.0).reshape(20, 30))
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(1 << 30, 1 << 30, 1 << 20))
    with pytest.raises(OutputError, match=r"e\.h5ad: cannot write: needs about 0 MiB, 1 MiB free"):
        write_h5ad(adata, tmp_path / "e.h5ad")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.h5ad"]


def test_sample_id_column_is_checked_first(tmp_path, small):
    cfg = _cfg(tmp_path)
    cfg["inputs"]["sample_id_column"] = "sampleid"
    with pytest.raises(
        ConfigError,
        match=r"samples\.csv: inputs\.sample_id_column: the sample sheet has no column "
        r"'sampleid' \(did you mean 'SampleID'\?\)\. Its columns: 'SampleID'",
    ):
        run(cfg, out=tmp_path / "res")
    assert not (tmp_path / "res").exists()


def test_lock_without_hard_links_and_a_lock_being_written(tmp_path, monkeypatch):
    def no_links(src, dst):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    assert _lock.acquire(tmp_path) is None  # exclusive create instead
    assert json.loads((tmp_path / _lock.LOCK_NAME).read_text())["pid"] == os.getpid()
    assert _lock.acquire(tmp_path)["pid"] == os.getpid()  # held
    _lock.release(tmp_path)
    (tmp_path / _lock.LOCK_NAME).write_text("")  # created, not yet written: live
    assert _lock.holder(tmp_path) is not None
    old = time.time() - 60
    os.utime(tmp_path / _lock.LOCK_NAME, (old, old))  # an empty lock from long ago: stale
    assert _lock.holder(tmp_path) is None


def test_an_error_raised_while_an_interrupt_unwinds_is_the_interrupt(study, tmp_path, monkeypatch):
    """SIGTERM / Ctrl-C landing in a library's clean-up (matplotlib restoring a figure's
    attributes) used to surface as that clean-up's AttributeError: the step was reported
    as failed and the run exited 1. The interrupt behind it now stops the run as
    interrupted (exit 130, run.json 'interrupted')."""
    import dataclasses

    from olinkpipe.workflow import _registry

    def cleanup_fails_during_interrupt(ctx):
        try:
            raise KeyboardInterrupt
        finally:
            raise AttributeError("'Figure' object has no attribute 'draw'")

    qc = _registry.get("qc")
    monkeypatch.setitem(
        _registry._STEPS, "qc", dataclasses.replace(qc, run=cleanup_fails_during_interrupt)
    )
    out = tmp_path / "res"
    assert main(["run", str(study), "--out", str(out)]) == 130
    record = json.loads((out / "run.json").read_text())
    assert record["status"] == "interrupted" and record["steps"]["qc"] == "interrupted"
