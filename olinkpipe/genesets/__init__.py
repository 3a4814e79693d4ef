"""Gene-set collections (offline KEGG / GO) and the Olink assay -> gene symbol table."""

from .collections import load, available, read_gmt
from .mapping import map_assays

__all__ = ['load', 'available', 'read_gmt', 'map_assays']
