"""Regenerate the README / docs images from the bundled workflow on the bundled example.

    python docs/make_images.py            # writes docs/images/*.png

Runs ``olinkpipe.workflow.run`` with the bundled config (``workflows/cart_prophylaxis.yaml``,
seed 0) into a temporary folder and copies the figures the README shows, so the images are
the figures of the report a user gets, never drawn by hand. Each PNG records in its metadata
which script, workflow, seed and olinkpipe version made it (``tests/test_docs_images.py``
checks that every image the README uses carries it).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from PIL import Image
from PIL.PngImagePlugin import PngInfo

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "docs" / "images"

#: README image -> figure of the bundled workflow
FIGURES = {
    "volcano.png": "volcano",
    "ora_kegg.png": "ora",
    "pathway_jak_stat.png": "pathway_jak_stat_signaling_pathway",
}
MADE_BY = "docs/make_images.py"


def main() -> int:
    sys.path.insert(0, str(ROOT))  # this checkout's olinkpipe, not an installed one
    import olinkpipe
    from olinkpipe.workflow import load_config, run

    cfg = load_config()[0]
    with tempfile.TemporaryDirectory() as tmp:
        result = run(cfg, out=Path(tmp) / "out")
        IMAGES.mkdir(parents=True, exist_ok=True)
        for image, figure in FIGURES.items():
            info = PngInfo()
            info.add_text("Software", f"olinkpipe {olinkpipe.__version__}")
            info.add_text(
                "Description",
                f"made by {MADE_BY}: figure '{figure}' of the bundled workflow "
                f"'{cfg.name}' (seed {cfg.seed}) on the bundled, simulated example data",
            )
            with Image.open(result.figures[figure]) as im:
                im.save(IMAGES / image, pnginfo=info, optimize=True)
            print(f"{IMAGES / image} <- figures/{figure}.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
