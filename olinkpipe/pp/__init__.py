"""Preprocessing: QC, LOD handling and normalization. Each function returns a new AnnData."""

from .bridge import bridge_normalize, select_bridge_samples
from .clean import clean
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
    "normalize_projects",
    "clean",
]
