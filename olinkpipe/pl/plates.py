"""Plate figures for :func:`olinkpipe.design.randomize_plates` (OlinkAnalyze's plate displays)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.patches import Patch, Rectangle

from .._docs import doc_ax, doc_params
from .._validate import require_columns
from ._style import get_ax, group_color

__all__ = ["plate_layout", "plate_distribution"]

_ROWS = "ABCDEFGH"
_EMPTY, _CONTROL = "#ffffff", "#bdbdbd"


def _levels(values: pd.Series) -> list[str]:
    col = values.astype(object).where(values.notna(), "NA").astype(str)
    if isinstance(values.dtype, pd.CategoricalDtype):
        order = [str(c) for c in values.cat.categories] + ["NA"]
        return [lv for lv in order if lv in set(col)]
    return sorted(set(col))


def plate_layout(
    randomized: pd.DataFrame,
    color: str = "plate",
    *,
    plate_size: int | None = None,
    labels: bool = False,
) -> list[Axes]:
    """Draw every plate, wells coloured by a column (OlinkAnalyze ``olink_displayPlateLayout``).

    One Axes per plate, stacked (OlinkAnalyze's facets); rows A–H top to bottom, columns
    1–12 (1–6 on 48-well plates) left to right. Empty wells are white, control wells
    (``SampleID == "CONTROL_SAMPLE"``) grey and labelled ``"CONTROL"`` in the legend.

    Parameters
    ----------
    randomized
        The frame returned by :func:`olinkpipe.design.randomize_plates`.
    color
        Column whose levels colour the wells (e.g. ``"Site"``, ``"Subject"``).
    plate_size
        Wells per plate; default the frame's ``attrs["plate_size"]``, else 96.
    labels
        Write each well's level in the well.

    Returns
    -------
    list of matplotlib.axes.Axes
        One Axes per plate (all in one new figure); each well is a ``Rectangle`` patch.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> manifest = pd.DataFrame({"SampleID": [f"S{i}" for i in range(100)],
    ...                          "Site": ["A", "B"] * 50})
    >>> axes = op.pl.plate_layout(op.design.randomize_plates(manifest, seed=0), "Site")
    >>> len(axes), len(axes[0].patches)
    (2, 96)
    """
    require_columns(randomized, ["plate", "row", "column", color], what="randomized manifest")
    size = int(plate_size or randomized.attrs.get("plate_size", 96))
    ncol = size // 8
    plates = sorted(randomized["plate"].unique(), key=lambda p: (len(str(p)), str(p)))
    is_ctrl = (
        randomized["SampleID"].astype(str).eq("CONTROL_SAMPLE")
        if "SampleID" in randomized
        else pd.Series(data=False, index=randomized.index)
    )
    levels = _levels(randomized.loc[~is_ctrl, color])
    cmap = {lv: group_color(i) for i, lv in enumerate(levels)}
    fig, axes = plt.subplots(len(plates), 1, figsize=(0.45 * ncol + 2.5, 3.0 * len(plates)))
    axes = list(np.atleast_1d(axes))
    for ax, plate in zip(axes, plates, strict=True):
        sub = randomized[randomized["plate"] == plate]
        fill = {}
        for (r, c), lv, ctrl in zip(
            zip(sub["row"], sub["column"], strict=True),
            sub[color].astype(object).where(sub[color].notna(), "NA").astype(str),
            is_ctrl[sub.index],
            strict=True,
        ):
            fill[(str(r), int(c))] = "CONTROL" if ctrl else lv
        for i, r in enumerate(_ROWS):
            for c in range(1, ncol + 1):
                lv = fill.get((r, c))
                face = _EMPTY if lv is None else _CONTROL if lv == "CONTROL" else cmap[lv]
                ax.add_patch(
                    Rectangle((c - 0.5, i - 0.5), 1, 1, facecolor=face, edgecolor="k", lw=0.6)
                )
                if labels and lv is not None:
                    ax.text(c, i, lv, ha="center", va="center", fontsize=5)
        ax.set_xlim(0.5, ncol + 0.5)
        ax.set_ylim(7.5, -0.5)
        ax.set_xticks(range(1, ncol + 1))
        ax.set_xticklabels([f"Col{c}" for c in range(1, ncol + 1)], fontsize=7)
        ax.set_yticks(range(8))
        ax.set_yticklabels(list(_ROWS), fontsize=7)
        ax.set_aspect("equal")
        ax.set_title(str(plate), fontsize=9)
    handles = [Patch(facecolor=cmap[lv], edgecolor="k", label=lv) for lv in levels]
    if is_ctrl.any():
        handles.append(Patch(facecolor=_CONTROL, edgecolor="k", label="CONTROL"))
    handles.append(Patch(facecolor=_EMPTY, edgecolor="k", label="Empty"))
    if len(levels) <= 30:
        axes[0].legend(
            handles=handles, title=color, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1)
        )
    return axes


@doc_params(ax=doc_ax)
def plate_distribution(
    randomized: pd.DataFrame, color: str = "plate", *, ax: Axes | None = None
) -> Axes:
    """Per plate, the percentage of each level of a column as stacked bars.

    OlinkAnalyze ``olink_displayPlateDistributions``: one bar per plate, segments the
    levels' share of the plate's samples (control wells left out).

    Parameters
    ----------
    randomized
        The frame returned by :func:`olinkpipe.design.randomize_plates`.
    color
        Column whose distribution is shown (e.g. ``"Site"``).
    {ax}

    Returns
    -------
    matplotlib.axes.Axes
        The Axes; one ``Rectangle`` per plate and level, in level order.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> manifest = pd.DataFrame({"SampleID": [f"S{i}" for i in range(100)],
    ...                          "Site": ["A", "B"] * 50})
    >>> ax = op.pl.plate_distribution(op.design.randomize_plates(manifest, seed=0), "Site")
    >>> ax.get_ylabel()
    'Percent'
    """
    require_columns(randomized, ["plate", color], what="randomized manifest")
    frame = randomized
    if "SampleID" in frame:
        frame = frame[frame["SampleID"].astype(str) != "CONTROL_SAMPLE"]
    lv = frame[color].astype(object).where(frame[color].notna(), "NA").astype(str)
    levels = _levels(frame[color])
    table = pd.crosstab(frame["plate"], lv).reindex(columns=levels, fill_value=0)
    table = table.loc[sorted(table.index, key=lambda p: (len(str(p)), str(p)))]
    pct = 100.0 * table.div(table.sum(axis=1), axis=0)
    ax = get_ax(ax, figsize=(max(3.0, 0.8 * len(pct) + 2), 4.0))
    x = np.arange(len(pct))
    bottom = np.zeros(len(pct))
    for i, level in enumerate(levels):
        h = pct[level].to_numpy()
        ax.bar(x, h, bottom=bottom, color=group_color(i), edgecolor="0.6", label=level)
        bottom += h
    ax.set_xticks(x)
    ax.set_xticklabels([str(p) for p in pct.index], rotation=90, fontsize=8)
    ax.set_xlabel("Plate")
    ax.set_ylabel("Percent")
    ax.legend(title=color, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))
    return ax
