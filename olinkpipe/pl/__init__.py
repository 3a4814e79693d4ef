"""Matplotlib figures. Functions take ``tl``/``clinical`` frames and return Axes; they never show or save."""

from .de import heatmap, paired, volcano
from .enrichment import enrichment, gsea, leading_edge, pathway
from .kinetics import correlation, kinetics, peaks
from .qc import bridge, distribution, pca, qc
from .survival import cumulative_incidence, survival, swimmer

__all__ = [
    "qc",
    "pca",
    "distribution",
    "bridge",
    "volcano",
    "paired",
    "heatmap",
    "enrichment",
    "gsea",
    "pathway",
    "leading_edge",
    "kinetics",
    "peaks",
    "correlation",
    "survival",
    "cumulative_incidence",
    "swimmer",
]
