"""The README's images are made by docs/make_images.py from the bundled workflow (issue 19)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).parents[1]


def test_readme_images_come_from_the_script():
    script = runpy.run_path(str(ROOT / "docs" / "make_images.py"))  # defines, doesn't run
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    used = re.findall(r"\]\(docs/images/([^)]+\.png)\)", readme)
    assert used and set(used) <= set(script["FIGURES"]), used
    for name in used:
        with Image.open(ROOT / "docs" / "images" / name) as im:
            made = im.text.get("Description", "")
        assert made.startswith("made by docs/make_images.py"), (name, made)
        assert "(seed 0)" in made and "simulated" in made
