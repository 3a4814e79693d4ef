"""The workflow's step registry: runner, config schema and report read one list."""

from __future__ import annotations

import ast
from pathlib import Path

from olinkpipe.workflow import STEPS, WorkflowConfig
from olinkpipe.workflow._registry import get, steps
from olinkpipe.workflow.report import _sections, methods_text

WORKFLOW = Path(__file__).parents[1] / "olinkpipe" / "workflow"


def test_steps_in_order_and_config_sections_from_the_registry():
    assert STEPS == [s.name for s in steps()]
    assert STEPS[:2] == ["read", "clinical"] and STEPS[-1] == "report"
    assert STEPS.index("lod") < STEPS.index("clean") < STEPS.index("qc")
    fields = list(WorkflowConfig.model_fields)
    with_model = [s.name for s in steps() if s.model is not None]
    assert [f for f in fields if f in with_model] == with_model  # every step, in run order
    assert fields[-2:] == ["output", "compute"]
    cfg = WorkflowConfig.model_validate({"inputs": {"npx": "a.csv"}})
    assert cfg.qc is not None and cfg.lod is None  # qc always there, lod optional


def test_report_sections_and_methods_from_the_registry():
    keys = [k for k, _ in _sections()]
    assert keys == [
        "preparation",
        "qc",
        "differential",
        "enrichment",
        "kinetics",
        "outcomes",
        "table_one",
    ]
    cfg = WorkflowConfig.model_validate(
        {"inputs": {"npx": "a.csv"}, "lod": {}, "clean": {"remove_assay_na": False}}
    )
    first = methods_text(cfg, {"olinkpipe": "9"})[0]  # read, lod, clean and qc: one paragraph
    assert first.startswith("Olink NPX data were read and analysed with olinkpipe 9")
    assert "negative controls" in first and "turned off: remove_assay_na" in first
    assert first.index("negative controls") < first.index("Samples with an Olink QC warning")


def test_unmet_needs_and_uses():
    qc = get("qc")
    assert qc.unmet({"read": "done", "lod": "skipped"}) == []  # lod not configured
    assert qc.unmet({"read": "done", "lod": "failed: x"}) == ["lod"]
    assert qc.unmet({"read": "done", "clean": "skipped: needs read"}) == ["clean"]
    assert get("enrichment").unmet({"differential": "skipped"}) == ["differential"]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            names.add((node.module or "").split(".")[0])
            names.update(a.name for a in node.names if not node.module)
    return names


def test_no_runner_report_cycle():
    """report and the steps import the shared context, never the runner (issue 20 item 6)."""
    assert "runner" not in _imports(WORKFLOW / "report.py")
    assert "runner" not in _imports(WORKFLOW / "_context.py")
    for path in (WORKFLOW / "steps").glob("*.py"):
        assert "runner" not in _imports(path), path.name
