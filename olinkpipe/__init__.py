"""olinkpipe: Olink proteomics and clinical biomarker analysis on AnnData.

The public face, scanpy style::

    import olinkpipe as op

    adata = op.read_npx("run1_NPX.csv")
    adata = op.pp.filter(adata, qc_warning="drop")
    res = op.tl.differential(adata, groupby="timepoint", reference="pre", pair="patient")
    op.pl.volcano(res, label=["SIT1", "CD28", "IL2RB"])
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("olinkpipe")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from . import clinical, datasets, design, errors, genesets, io, pl, pp, tl, workflow
from .errors import OlinkpipeError, OlinkpipeWarning
from .io import annotate, read_clinical, read_npx, to_long

__all__ = [
    "__version__",
    "read_npx",
    "to_long",
    "read_clinical",
    "annotate",
    "io",
    "pp",
    "tl",
    "pl",
    "clinical",
    "design",
    "genesets",
    "datasets",
    "workflow",
    "errors",
    "OlinkpipeError",
    "OlinkpipeWarning",
]
