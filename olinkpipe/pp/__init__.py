"""Preprocessing: QC, LOD handling and normalization.

Each step returns an AnnData. With ``copy=True`` (the default) the input is left alone and
the result holds one copy of X and of each layer (layers the step rewrites are not copied
first); with ``copy=False`` the step changes ``adata`` in place and returns that same object
(not ``None``, unlike scanpy), so ``adata = step(adata, copy=False)`` works either way.
Temporaries are column slices of about ``pp._lazy.SLICE_BYTES``, never a copy of X:
``benchmarks/bench_pp_memory.py`` prints each step's peak as a multiple of X.
``filter`` returns one copy of what it keeps (``copy=False``: that copy replaces the
object's contents); the two-project normalizations return the new stacked object.

Dask: an AnnData whose X and layers are ``dask.array`` arrays (all samples × panel-aligned
assay blocks, as ``read_npx(chunks=...)`` gives) is accepted by every step; X and the
layers of the result stay lazy. Per-assay statistics run the same numpy kernels on each
block (so medians, shifts and flags equal the in-memory ones bit for bit), per-sample
statistics gather one panel at a time, and only small per-sample / per-assay results are
computed, on whatever dask scheduler is active (a ``dask.distributed.Client`` included).
"""

from .bridge import bridge_normalize, select_bridge_samples
from .clean import clean
from .crossproduct import bridgeability
from .lod import below_lod, censor_lod, compute_lod, read_fixed_lod
from .normalize import (
    intensity_normalize,
    normalize_plates,
    reference_median_normalize,
    subset_normalize,
)
from .projects import normalize_projects
from .qc import filter, flag_outliers, qc_summary

__all__ = [
    "qc_summary",
    "flag_outliers",
    "filter",
    "below_lod",
    "censor_lod",
    "compute_lod",
    "read_fixed_lod",
    "subset_normalize",
    "intensity_normalize",
    "reference_median_normalize",
    "normalize_plates",
    "bridge_normalize",
    "select_bridge_samples",
    "bridgeability",
    "normalize_projects",
    "clean",
]
