"""The ``olinkpipe`` command line: info and convert."""

from __future__ import annotations

import shutil
import subprocess
import sys

import anndata as ad
import pandas as pd
import pytest
from io_builders import make_long, write_long

from olinkpipe.cli import main


@pytest.fixture
def export(tmp_path):
    return write_long(make_long(controls=False), tmp_path / "run1_NPX.csv", sep=";")


def test_info(export, capsys):
    assert main(["info", str(export)]) == 0
    out = capsys.readouterr().out
    assert "product                Target 96" in out
    assert "samples                6" in out and "assays                 6" in out
    assert "plates                 4" in out and "qc_warnings            1" in out
    assert "format                 long" in out and "qc_warning_samples     'S2'" in out
    assert "repeated_sample_ids    none" in out and "excluded               0" in out
    # per-panel table: INF has the QC warning, both panels 6 samples on 2 plates
    table = out.split("per panel:")[1].splitlines()
    inf = next(ln for ln in table if ln.startswith("Olink Inflammation")).split()
    cam = next(ln for ln in table if ln.startswith("Olink Cardiometabolic")).split()
    assert inf[2:7] == ["3", "6", "2", "1", "0.00"] and cam[2:6] == ["3", "6", "2", "0"]


def test_info_counts_repeated_ids_and_dropped_rows(tmp_path, capsys):
    df = make_long()
    path = write_long(pd.concat([df, df.iloc[[0]]]), tmp_path / "d.csv")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "repeated_sample_ids    'CONTROL_SAMPLE_AS 1'" in out
    assert "sample_ids             7" in out and "samples                8" in out
    assert "excluded               1" in out


@pytest.mark.parametrize("ext", ["h5ad", "parquet", "csv"])
def test_convert(export, tmp_path, capsys, ext):
    out = tmp_path / f"o.{ext}"
    assert main(["convert", str(export), str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    if ext == "h5ad":
        assert ad.read_h5ad(out).shape == (6, 6)


def test_errors_exit_1_with_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("")
    assert main(["info", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {bad}: the file is empty") and err.count("\n") == 1
    dup = write_long(make_long(), tmp_path / "dup.csv")
    assert main(["info", str(dup), "--duplicates", "error"]) == 1
    capsys.readouterr()
    assert main(["info", str(dup)]) == 0
    assert "olinkpipe: warning: " in capsys.readouterr().err  # warnings as one plain line


def test_entry_point_subprocess(export):
    exe = shutil.which("olinkpipe")
    cmd = [exe] if exe else [sys.executable, "-m", "olinkpipe"]
    res = subprocess.run([*cmd, "info", str(export)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "samples                6" in res.stdout


def test_tab_separator_option(tmp_path, capsys):
    path = write_long(make_long(controls=False), tmp_path / "run.txt", sep="\t")
    assert main(["info", str(path), "--sep", "\\t"]) == 0
    assert "samples                6" in capsys.readouterr().out


def test_convert_a_folder_of_exports(tmp_path, capsys):
    df = make_long(controls=False)
    folder = tmp_path / "exports"
    folder.mkdir()
    for panel, rows in df.groupby("Panel"):
        write_long(rows, folder / f"{panel}.csv", sep=";")
    out = tmp_path / "study.h5ad"
    assert main(["convert", str(folder), str(out)]) == 0
    assert "(6 samples x 6 assays)" in capsys.readouterr().out
    assert ad.read_h5ad(out).var["SourceFile"].nunique() == df["Panel"].nunique()
