"""Colours and small style helpers shared by every plot."""

from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

UP = "#c0392b"  # significant increase
DOWN = "#2471a3"  # significant decrease
NS = "#9e9e9e"  # not significant
HIGHLIGHT = "#f39c12"
GROUP_COLORS = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d"]


def get_ax(ax: Axes | None, figsize: tuple[float, float] = (6.0, 4.5)) -> Axes:
    """Return ``ax`` or a new Axes from ``plt.subplots`` (never ``plt.gca``)."""
    if ax is None:
        _, ax = plt.subplots(figsize=figsize)
    return ax


def group_color(i: int) -> str:
    """The i-th categorical colour."""
    return GROUP_COLORS[i % len(GROUP_COLORS)]
