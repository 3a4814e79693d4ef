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


_INSIDE = (
    "upper right",
    "upper left",
    "lower right",
    "lower left",
    "center right",
    "center left",
    "upper center",
    "lower center",
)


def _covers(ax: Axes, box, renderer) -> bool:  # noqa: ANN001 - matplotlib objects
    """Whether the display-space ``box`` covers a point, line, band, bar or text of ``ax``."""
    import numpy as np
    from matplotlib.collections import LineCollection, PathCollection

    grown = box.padded(4)  # marker radius / line width margin

    def has_points(xy) -> bool:  # noqa: ANN001
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        xy = xy[np.isfinite(xy).all(axis=1)]
        return bool(xy.size) and grown.count_contains(xy) > 0

    for coll in ax.collections:
        if not coll.get_visible():
            continue
        if isinstance(coll, PathCollection):  # scatter: one marker per offset
            if has_points(coll.get_offset_transform().transform(coll.get_offsets())):
                return True
            continue
        trans = coll.get_transform()
        filled = not isinstance(coll, LineCollection)
        if any(
            trans.transform_path(path).intersects_bbox(grown, filled=filled)
            for path in coll.get_paths()
        ):
            return True
    for line in ax.lines:
        if not line.get_visible():
            continue
        path = line.get_transform().transform_path(line.get_path())
        drawn = line.get_linestyle() not in ("None", "none", "", " ")
        if drawn and path.intersects_bbox(grown, filled=False):
            return True
        if line.get_marker() not in ("None", "none", "", " ", None) and has_points(path.vertices):
            return True
    if any(p.get_visible() and p.get_window_extent(renderer).overlaps(box) for p in ax.patches):
        return True
    return any(
        t.get_visible() and t.get_text() and t.get_window_extent(renderer).overlaps(box)
        for t in ax.texts
    )


def place_legend(ax: Axes, *, outside: bool = False, **kwargs):  # noqa: ANN201
    """Add a legend where it covers no data point, line, bar or label of ``ax``.

    Tries the corners and edges inside the Axes, in order, and puts it outside on the
    right (``bbox_to_anchor=(1.02, 1)``) when none is free, or when ``outside``. Call it
    last, once limits and labels are final; a figure saved with ``bbox_inches="tight"``
    keeps an outside legend.
    """
    kwargs.pop("loc", None)
    kwargs.pop("bbox_to_anchor", None)
    if not outside:
        renderer = None  # artists then use their figure's own (works under any backend)
        ax.get_xlim(), ax.get_ylim()  # settle autoscaled limits before measuring
        for loc in _INSIDE:
            leg = ax.legend(loc=loc, **kwargs)
            box = leg.get_window_extent(renderer)
            if not _covers(ax, box, renderer):
                return leg
    return ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, **kwargs)
