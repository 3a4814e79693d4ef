"""Workflow configs, `olinkpipe run` and the HTML report."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import anndata
import numpy as np
import pandas as pd
import pytest
import yaml
from statsmodels.stats.multitest import multipletests

from olinkpipe.cli import main
from olinkpipe.errors import ConfigError, OlinkpipeError
from olinkpipe.workflow import WorkflowError, available_configs, bundled_config, load_config, run
from olinkpipe.workflow.config import WorkflowConfig, resolve_input

PNG = b"\x89PNG\r\n\x1a\n"


def _base(**over):
    cfg = {"inputs": {"npx": "run.csv"}}
    cfg.update(over)
    return cfg


# ----------------------------------------------------------------------------- config


def test_bundled_configs_validate():
    assert {"cart_prophylaxis", "paired_de"} <= set(available_configs())
    cfg, base = load_config()
    assert cfg.differential.pair == "patient" and cfg.differential.reference == "pre"
    assert cfg.enrichment.gene_sets == "KEGG_2021_Human"
    assert cfg.kinetics is not None and cfg.outcomes is not None and cfg.table_one is not None
    assert base == bundled_config().parent.resolve()
    minimal, _ = load_config("paired_de")
    assert minimal.kinetics is None and minimal.outcomes is None
    assert resolve_input(cfg.inputs.npx, base).is_file()


@pytest.mark.parametrize(
    ("config", "pattern"),
    [
        (
            _base(qc={"qc_warning": "dorp"}),
            r"'qc\.qc_warning'.*'dorp'.*allowed values: 'drop', 'mask' or 'keep'",
        ),
        (_base(qc={"qcwarning": "drop"}), r"'qc\.qcwarning' is not a known setting.*'qc_warning'"),
        (_base(differntial={}), r"'differntial' is not a known setting.*'differential'"),
        ({"inputs": {}}, r"'inputs\.npx' is required"),
        (
            _base(differential={"groupby": "t", "reference": "a", "method": "limma"}),
            r"'differential\.method'.*'ttest', 'wilcoxon' or 'moderated'",
        ),
        (
            _base(kinetics={"analytes": ["IL-6"], "window": [28, 0]}),
            r"'kinetics\.window'.*start < end",
        ),
        (_base(output={"figure_formats": ["pdf"]}), r"'output\.figure_formats'.*png"),
        (_base(enrichment={"gsea": {"permutations": 0}}), r"'enrichment\.gsea\.permutations'"),
    ],
)
def test_config_errors_name_key_and_allowed_values(config, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(config)


def test_config_file_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(bad)
    with pytest.raises(ConfigError, match="not found.*cart_prophylaxis"):
        load_config(tmp_path / "missing.yaml")
    typo = tmp_path / "typo.yaml"
    typo.write_text("inputs: {npx: a.csv}\nqc: {controls: maybe}\n")
    with pytest.raises(ConfigError, match=r"typo.yaml.*'qc\.controls'.*'maybe'"):
        load_config(typo)


def test_config_reference_documents_every_key():
    doc = (Path(__file__).parents[1] / "docs" / "workflow_config.md").read_text()

    def keys(model):
        for name, field in model.model_fields.items():
            yield name
            ann = field.annotation
            for sub in (ann, *getattr(ann, "__args__", ())):
                if isinstance(sub, type) and issubclass(sub, WorkflowConfig.__mro__[1]):
                    yield from keys(sub)

    missing = sorted(
        {
            k
            for k in keys(WorkflowConfig)
            if f"`{k}`" not in doc and f"`{k}." not in doc and f".{k}`" not in doc
        }
    )
    assert not missing, f"docs/workflow_config.md lacks {missing}"


# ----------------------------------------------------------------------------- runner


def test_existing_output_needs_force(tmp_path):
    (tmp_path / "keep.txt").write_text("user file")
    with pytest.raises(WorkflowError, match=r"not empty \(it holds other files\).*force=True"):
        run(out=tmp_path)
    assert (tmp_path / "keep.txt").exists()


def test_cli_reports_errors_with_exit_code(tmp_path, capsys):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "f").write_text("")
    assert main(["run", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "rerun with --force" in err and "force=True" not in err and err.count("\n") == 1
    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs: {npx: a.csv}\nqc: {outliers: toss}\n")
    assert main(["run", str(bad), "--out", str(tmp_path / "y")]) == 1
    assert "qc.outliers" in capsys.readouterr().err


def test_failing_step_is_named(tmp_path):
    npx = tmp_path / "not_olink.csv"
    npx.write_text("a,b\n1,2\n")
    with pytest.raises(WorkflowError, match="step 'read' failed") as info:
        run({"inputs": {"npx": str(npx)}}, out=tmp_path / "res")
    assert info.value.step == "read"
    assert isinstance(info.value, OlinkpipeError)
    record = json.loads((tmp_path / "res" / "run.json").read_text())
    assert record["status"] == "failed" and "step 'read' failed" in record["error"]
    assert record["steps"]["read"].startswith("failed")
    assert not (tmp_path / "res" / ".olinkpipe.lock").exists()


def test_missing_input_file_is_named_before_anything_is_written(tmp_path):
    with pytest.raises(ConfigError, match=r"nowhere.csv: input 'npx' not found.*relative to"):
        run({"inputs": {"npx": "nowhere.csv"}}, out=tmp_path / "res")
    assert not (tmp_path / "res").exists()


# ----------------------------------------------------------------------------- end to end


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.tables, self.ids, self.text = [], 0, set(), []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "table":
            self.tables += 1
        if "id" in attrs:
            self.ids.add(attrs["id"])

    def handle_data(self, data):
        self.text.append(data)


@pytest.fixture(scope="module")
def example_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "olinkpipe_results"
    return run(None, out=out)


@pytest.mark.slow
def test_end_to_end_on_bundled_example(example_run):
    res = example_run
    out = res.out
    optional = {"lod", "clean", "bridging", "normalize_projects"}  # not in this config
    assert all(s == "done" for k, s in res.status.items() if k not in optional), res.status
    assert all(res.status[k] == "skipped" for k in optional), res.status
    # outputs on disk
    for name in ["report.html", "run.json", "adata.h5ad"]:
        assert (out / name).is_file(), name
    assert anndata.read_h5ad(out / "adata.h5ad").shape == res.adata.shape
    for name in [
        "differential",
        "ora",
        "gsea",
        "kinetics",
        "kinetics_by_dose",
        "cumulative_incidence",
        "gray_test",
        "km_pfs",
        "km_os",
        "table_one",
        "qc_samples",
    ]:
        assert (out / "tables" / f"{name}.csv").is_file(), name
        assert (out / "tables" / f"{name}.parquet").is_file(), name
    for name in [
        "qc_iqr_median",
        "pca",
        "volcano",
        "paired",
        "ora",
        "cumulative_incidence",
        "km_os",
        "km_pfs",
        "swimmer",
    ]:
        assert (out / "figures" / f"{name}.png").read_bytes().startswith(PNG), name
        assert (out / "figures" / f"{name}.pdf").is_file(), name
    # the study's findings
    de = pd.read_csv(out / "tables" / "differential.csv")
    up = set(de.loc[de["significant"].astype(bool) & (de["estimate"] > 0), "Assay"])
    assert {"SIT1", "CD28", "IL2RB"} <= up
    ora = pd.read_csv(out / "tables" / "ora.csv")
    hits = set(ora.loc[ora["p_adj"] < 0.05, "term"])
    assert {"JAK-STAT signaling pathway", "PI3K-Akt signaling pathway"} <= hits
    # kinetics correlations: three named families, BH within each (statsmodels)
    corr = pd.read_csv(out / "tables" / "kinetics_correlations.csv")
    assert corr["family"].nunique() == 3
    for _, fam in corr.groupby("family"):
        ok = fam["p_value"].notna()
        bh = multipletests(fam.loc[ok, "p_value"], method="fdr_bh")[1]
        np.testing.assert_allclose(fam.loc[ok, "p_adj"], bh, rtol=1e-12)
    change = corr[corr["family"].str.endswith("protein change")]
    assert set(change["y"]) == {"SIT1", "CD28", "IL2RB"}
    assert (change["rho"] > 0).all()  # the rise follows the patient's peak expansion
    # run.json
    record = json.loads((out / "run.json").read_text())
    assert record["seed"] == 0 and record["versions"]["olinkpipe"]
    assert len(record["inputs"]["npx"]["sha256"]) == 64
    assert set(record["timings_seconds"]) >= {"read", "qc", "differential", "report"}
    # the report: parses, every image is an embedded PNG, tables and methods present
    page = _Page()
    page.feed(res.report.read_text(encoding="utf-8"))
    assert len(page.images) >= 12
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG)
    assert page.tables >= 10
    assert {"methods", "exclusions", "differential", "enrichment", "outcomes"} <= page.ids
    text = " ".join(page.text)
    assert "JAK-STAT signaling pathway" in text and "SIT1" in text
    assert "moderated" in text and "Benjamini" in text
    assert "QC warning" in text  # the exclusions section says what was removed and why
    assert "http://" not in res.report.read_text() and "https://" not in res.report.read_text()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium not installed")
def test_report_renders_in_headless_chromium(example_run, tmp_path):
    shot = tmp_path / "report.png"
    proc = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--screenshot={shot}",
            "--window-size=1200,2000",
            example_run.report.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=120,
    )
    assert shot.is_file(), proc.stderr.decode(errors="replace")[-2000:]
    assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 20_000


def test_paired_de_workflow_on_small_simulated_study(tmp_path):
    from olinkpipe.datasets import simulate_cart_study

    simulate_cart_study(
        seed=5, n_treated=8, n_control=0, n_assays=60, out=tmp_path / "data", n_qc_warnings=0
    )
    cfg = yaml.safe_load(bundled_config("paired_de").read_text())
    cfg["inputs"] = {"npx": "data/npx_data.csv", "samples": "data/samples.csv"}
    cfg["enrichment"] = None
    cfg["output"] = {"figure_formats": ["png"], "h5ad": False, "parquet": False}
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = run(path, out=tmp_path / "res")
    assert res.status["differential"] == "done"
    assert res.status["kinetics"] == "skipped" and res.status["enrichment"] == "skipped"
    assert len(res.tables["differential"]) == 60
    assert not (tmp_path / "res" / "adata.h5ad").exists()
    # rerun needs force, and force replaces the outputs
    with pytest.raises(WorkflowError, match="force"):
        run(path, out=tmp_path / "res")
    again = run(path, out=tmp_path / "res", force=True)
    assert again.report.is_file()


def test_on_error_continue_records_the_failure(tmp_path):
    from olinkpipe.datasets import simulate_cart_study

    simulate_cart_study(seed=6, n_treated=6, n_control=6, n_assays=30, out=tmp_path / "d")
    cfg = {
        "on_error": "continue",
        "inputs": {
            "npx": "d/npx_data.csv",
            "samples": "d/samples.csv",
            "patients": "d/patients.csv",
            "measurements": "d/measurements.csv",
        },
        "differential": {"groupby": "timepoint", "reference": "pre", "pair": "patient"},
        "kinetics": {"analytes": ["no such analyte"]},
        "output": {"figure_formats": ["png"], "parquet": False, "h5ad": False},
    }
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    res = run(path, out=tmp_path / "res")
    assert res.status["differential"] == "done"
    assert res.status["kinetics"].startswith("failed")
    assert "status-failed" in res.report.read_text()
    record = json.loads((tmp_path / "res" / "run.json").read_text())
    assert record["status"] == "complete" and record["steps"]["kinetics"].startswith("failed")


def _qc_only_run(tmp_path, npx: pd.DataFrame, qc: dict | None = None):
    npx.to_csv(tmp_path / "npx.csv", sep=";", index=False)
    cfg = {"name": "qc only", "inputs": {"npx": "npx.csv"}}
    cfg["output"] = {"figure_formats": ["png"], "h5ad": False, "parquet": False}
    if qc is not None:
        cfg["qc"] = qc
    path = tmp_path / "qc.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return run(path, out=tmp_path / f"res_{len(list(tmp_path.iterdir()))}")


def test_qc_warnings_on_every_sample_explain_mask(tmp_path):
    """Explore flags QC per sample and block, so 'drop' can remove every sample: the step
    says so and names qc_warning: mask; with mask the run completes and only the flagged
    values are NaN."""
    from olinkpipe.datasets import simulate_cart_study

    study = simulate_cart_study(seed=7, n_treated=6, n_control=0, n_assays=30)
    npx = study.npx.copy()
    panels = sorted(npx["Panel"].unique())
    warned = npx["Panel"] == panels[0]  # every sample warned on one panel
    npx["QC_Warning"] = np.where(warned, "WARN", "PASS")
    npx = npx[~npx["SampleID"].str.contains("CONTROL")]
    with pytest.raises(WorkflowError, match=r"QC left 0 of \d+ samples.*qc_warning: mask"):
        _qc_only_run(tmp_path, npx)
    res = _qc_only_run(tmp_path, npx, {"qc_warning": "mask"})
    adata = res.adata
    assert adata.n_obs == npx["SampleID"].nunique()
    on_first = (adata.var["Panel"] == panels[0]).to_numpy()
    assert np.isnan(adata.X[:, on_first]).all() and not np.isnan(adata.X[:, ~on_first]).all()
    # the report says what was masked (it used to say the flagged samples were 'kept')
    n_masked = int((warned & npx["NPX"].notna())[npx.index].sum())
    html = res.report.read_text(encoding="utf-8")
    assert (
        f"Masked (qc_warning: mask, uns[&#x27;olinkpipe&#x27;][&#x27;filter&#x27;]): {n_masked} value(s)"
        in html
    )
    assert "Values flagged by an Olink QC warning were set to missing (masked" in html
    assert f"qc_warning: mask set {n_masked} value(s)" in html


def test_qc_on_a_one_sample_export_skips_pca(tmp_path, caplog):
    from olinkpipe.datasets import simulate_cart_study

    npx = simulate_cart_study(seed=8, n_treated=3, n_control=0, n_assays=20).npx
    one = npx[npx["SampleID"] == npx["SampleID"].iloc[0]]
    with caplog.at_level("WARNING", logger="olinkpipe"):
        res = _qc_only_run(tmp_path, one, {"controls": "keep"})
    assert "no PCA outliers flagged" in caplog.text  # the runner logs warnings
    assert res.status["qc"] == "done" and "pca" not in res.figures
    assert "No PCA plot" in res.report.read_text(encoding="utf-8")


def test_folder_of_exports(tmp_path):
    """inputs.npx may be a folder: one export per panel plus the sample sheet next to them
    gives the same paired DE as the single export."""
    from olinkpipe.datasets import simulate_cart_study

    study = simulate_cart_study(seed=9, n_treated=8, n_control=0, n_assays=40, n_qc_warnings=0)
    folder = tmp_path / "exports"
    folder.mkdir()
    for panel, rows in study.npx.groupby("Panel", observed=True):
        rows.to_csv(folder / f"{panel}_NPX.csv", sep=";", index=False)
    study.samples.to_csv(folder / "samples.csv", index=False)
    study.npx.to_csv(tmp_path / "all_NPX.csv", sep=";", index=False)
    tables = {}
    for name, npx in (("folder", "exports"), ("file", "all_NPX.csv")):
        cfg = yaml.safe_load(bundled_config("paired_de").read_text())
        cfg["inputs"] = {"npx": npx, "samples": "exports/samples.csv"}
        cfg["enrichment"] = None
        cfg["output"] = {"figure_formats": ["png"], "h5ad": False, "parquet": False}
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(cfg))
        res = run(path, out=tmp_path / f"res_{name}")
        tables[name] = res.tables["differential"].set_index("OlinkID").sort_index()
        if name == "folder":
            record = json.loads((res.out / "run.json").read_text())
            files = {k for k in record["inputs"] if k.startswith("npx[")}
            assert len(files) == study.npx["Panel"].nunique()  # each file checksummed
    cols = ["estimate", "statistic", "p_value", "p_adj"]
    pd.testing.assert_frame_equal(tables["folder"][cols], tables["file"][cols])


def test_mask_leaving_every_assay_too_missing_for_pca_is_a_note(tmp_path):
    from olinkpipe.datasets import simulate_cart_study

    study = simulate_cart_study(seed=10, n_treated=5, n_control=0, n_assays=30)
    npx = study.npx[~study.npx["SampleID"].str.contains("CONTROL")].copy()
    one = npx["SampleID"].iloc[0]
    npx["QC_Warning"] = np.where(npx["SampleID"] == one, "WARN", "PASS")
    res = _qc_only_run(tmp_path, npx, {"qc_warning": "mask"})
    assert res.status["qc"] == "done" and "pca" not in res.figures
    assert "No PCA plot" in res.report.read_text(encoding="utf-8")
