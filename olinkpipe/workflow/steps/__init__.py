"""The workflow's steps, one module per step family; importing them registers them.

The order of the imports below is the order the steps run in. A new step: a module here
that defines its config section (a :class:`~olinkpipe.workflow._schema.Section`), its
``run(ctx)`` and its Methods text and calls :func:`~olinkpipe.workflow._registry.register`;
then add it to this list. See docs/architecture.md ("Workflow steps").
"""

# ruff: noqa: I001, F401 - the import order is the run order, not alphabetical
from .._registry import Step, register
from . import read  # read, clinical
from . import prepare  # lod, clean, bridging, normalize_projects
from . import qc
from . import differential
from . import enrichment
from . import kinetics
from . import outcomes  # outcomes, table_one

register(
    Step(
        "report",
        None,
        section="output",
        doc="write adata.h5ad, report.html and run.json (always last; run by the runner)",
    )
)
