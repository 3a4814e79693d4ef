"""The documentation site builds (mkdocs + mkdocstrings) and its pages stay in sync."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def _build(tmp_path, *, strict):
    cmd = [
        sys.executable,
        "-m",
        "mkdocs",
        "build",
        "-f",
        str(ROOT / "mkdocs.yml"),
        "-d",
        str(tmp_path / "site"),
    ]
    if strict:
        cmd.append("--strict")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)


def test_docs_build(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    build = _build(tmp_path, strict=True)
    if build.returncode != 0:
        # Strict failed: allowed only for warnings from other people's pages (tutorials,
        # docstrings of other modules), never from the pages kept with the workflow
        # (index, workflow_config, api/, images/); the site must still build.
        warnings = [line for line in build.stderr.splitlines() if "WARNING" in line]
        own = [
            w
            for w in warnings
            if re.search(r"'(index|workflow_config)\.md'|api/|images/", w)
            and "tutorials/" not in w
        ]
        assert not own, own
        build = _build(tmp_path, strict=False)
        assert build.returncode == 0, build.stderr[-3000:]
    site = tmp_path / "site"
    assert (site / "index.html").is_file()
    assert (site / "workflow_config" / "index.html").is_file()
    api = (site / "api" / "workflow" / "index.html").read_text()
    assert "olinkpipe.workflow.run" in api or "run" in api
    assert "simulate_cart_study" in (site / "api" / "datasets" / "index.html").read_text()
    # offline: no script, stylesheet or image from another host (highlight.js CDN, fonts)
    remote = re.compile(r"<(?:script|link|img)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//", re.I)
    for page in site.rglob("*.html"):
        hit = remote.search(page.read_text(encoding="utf-8"))
        assert hit is None, f"{page.relative_to(site)} loads {hit.group(0)!r}"


def test_config_reference_embeds_the_bundled_config():
    doc = (ROOT / "docs" / "workflow_config.md").read_text()
    cfg = (ROOT / "olinkpipe" / "workflow" / "configs" / "cart_prophylaxis.yaml").read_text()
    embedded = "\n".join(line[4:] for line in cfg.splitlines())
    block = "\n".join("    " + line if line else "    " for line in cfg.splitlines())
    assert block.rstrip() in doc.rstrip() or embedded in doc


def test_readme_quickstart_commands():
    readme = (ROOT / "README.md").read_text()
    assert "python -m pip install -e . && olinkpipe run --out olinkpipe_results" in readme
    assert "python -m pip install -e '.[test]' && python -m pytest" in readme
    for image in re.findall(r"\]\((docs/images/[^)]+)\)", readme):
        assert (ROOT / image).is_file(), image
