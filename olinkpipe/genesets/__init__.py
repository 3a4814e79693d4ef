"""Gene-set collections (offline KEGG / GO, bundled Reactome / Hallmark), the Olink assay ->
gene symbol table and mouse -> human orthologs."""

from .collections import GeneSetCollection, available, load, read_gmt, refresh
from .mapping import alias_table, map_assays
from .orthologs import ortholog_table, to_human

__all__ = [
    "load",
    "available",
    "read_gmt",
    "refresh",
    "map_assays",
    "alias_table",
    "to_human",
    "ortholog_table",
    "bundle_collection",
    "build_orthologs",
    "GeneSetCollection",
]


def __getattr__(name: str) -> object:
    # the build step is imported on first use, so `python -m olinkpipe.genesets.bundle`
    # runs the module fresh (runpy warns about a module already imported by its package)
    if name in ("bundle_collection", "build_orthologs"):
        from . import bundle

        return getattr(bundle, name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
