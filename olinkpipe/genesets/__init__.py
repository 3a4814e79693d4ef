"""Gene-set collections (offline KEGG / GO) and the Olink assay -> gene symbol table."""

from .collections import GeneSetCollection, available, load, read_gmt
from .mapping import alias_table, map_assays

__all__ = ["load", "available", "read_gmt", "map_assays", "alias_table", "GeneSetCollection"]
