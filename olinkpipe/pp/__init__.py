"""Preprocessing: QC, LOD handling and normalization. Each function returns a new AnnData."""

from .qc import qc_summary, flag_outliers, filter
from .lod import below_lod, censor_lod, compute_lod, read_fixed_lod
from .normalize import subset_normalize, intensity_normalize, reference_median_normalize, normalize_plates
from .bridge import bridge_normalize, select_bridge_samples

__all__ = ['qc_summary', 'flag_outliers', 'filter', 'below_lod', 'censor_lod', 'compute_lod', 'read_fixed_lod', 'subset_normalize', 'intensity_normalize', 'reference_median_normalize', 'normalize_plates', 'bridge_normalize', 'select_bridge_samples']
