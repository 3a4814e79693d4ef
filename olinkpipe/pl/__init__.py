"""Matplotlib figures. Functions take ``tl``/``clinical`` frames and return Axes; they never show or save."""

from .qc import qc, pca, distribution, bridge
from .de import volcano, paired, heatmap
from .enrichment import enrichment, gsea, pathway, leading_edge
from .kinetics import kinetics, peaks, correlation
from .survival import survival, cumulative_incidence, swimmer

__all__ = ['qc', 'pca', 'distribution', 'bridge', 'volcano', 'paired', 'heatmap', 'enrichment', 'gsea', 'pathway', 'leading_edge', 'kinetics', 'peaks', 'correlation', 'survival', 'cumulative_incidence', 'swimmer']
