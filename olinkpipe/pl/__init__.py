"""Matplotlib figures. Functions take ``tl``/``clinical`` frames and return Axes; they never show or save."""

from .cluster import clustered_heatmap
from .crossproduct import bridgeability
from .de import heatmap, paired, volcano
from .embed import pca, pca_by_panel, umap
from .enrichment import enrichment, gsea, leading_edge, pathway
from .kinetics import correlation, kinetics, peaks
from .oa import boxplot, lmer
from .plates import plate_distribution, plate_layout
from .qc import bridge, distribution, qc
from .survival import cumulative_incidence, survival, swimmer

__all__ = [
    "qc",
    "pca",
    "distribution",
    "bridge",
    "bridgeability",
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
    "pca_by_panel",
    "umap",
    "lmer",
    "boxplot",
    "clustered_heatmap",
    "plate_layout",
    "plate_distribution",
]
