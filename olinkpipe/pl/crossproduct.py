"""OlinkAnalyze's bridgeability plot for cross-product bridging (``olink_bridgeability_plot``)."""

from __future__ import annotations

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .._controls import control_samples
from .._samples import as_mapping, sample_ids
from ..errors import ValidationError, format_message
from ..pp import crossstats as cs
from ..pp.crossproduct import bridgeability as _table
from ._style import group_color

__all__ = ["bridgeability"]


def _row(table: pd.DataFrame, assay: str) -> pd.Series:
    for col in ("OlinkID", "OlinkID_ref", "OlinkID_other", "Assay"):
        hit = table[table[col].astype(str) == str(assay)] if col in table else table.iloc[:0]
        if len(hit):
            return hit.iloc[0]
    msg = format_message(
        f"pl.bridgeability: assay {assay!r} is not among the paired assays",
        column="OlinkID / Assay",
        hint=f"Pick one of {list(table['OlinkID'][:5])}…",
    )
    raise ValidationError(msg)


def _values(adata: ad.AnnData, oid: str) -> tuple[np.ndarray, np.ndarray, pd.Index]:
    """NPX (NaN dropped) of one assay over the sample rows with a count above 10 (as
    OlinkAnalyze's ``bridgeability_prep_data``), their SampleIDs, and those rows' counts."""
    j = adata.var_names.get_loc(oid)
    x = np.asarray(adata.X[:, j], dtype=float)
    c = np.asarray(adata.layers["Count"][:, j], dtype=float)
    with np.errstate(invalid="ignore"):
        keep = ~control_samples(adata) & (c > cs.MIN_COUNT)
    has = keep & ~np.isnan(x)
    return x[has], c[keep], sample_ids(adata)[has]


def bridgeability(
    ref: ad.AnnData,
    other: ad.AnnData,
    bridge_samples,
    assay: str,
    *,
    mapping: pd.DataFrame | None = None,
    projects: tuple[str, str] = ("P1", "P2"),
    table: pd.DataFrame | None = None,
) -> np.ndarray:
    """Bridgeability of one assay between two Olink products, as OlinkAnalyze draws it.

    Four panels, as ``olink_bridgeability_plot`` (OlinkAnalyze 5.0.2): the NPX
    distribution of each product (violin and box), the bridge samples' NPX in one product
    against the other with the least-squares line and R², the median count of each
    product with the 150 threshold (dashed), and the two ECDFs with the
    Kolmogorov–Smirnov distance D marked. Measurements with a count of 10 or less and
    control samples are left out, as in OlinkAnalyze. The figure title names the assay,
    whether it is bridgeable and :func:`olinkpipe.pp.bridgeability`'s recommendation.

    Parameters
    ----------
    ref, other, bridge_samples, mapping, projects
        As in :func:`olinkpipe.pp.bridgeability`.
    assay
        The assay: combined OlinkID (``"OID40770_OID20117"``), either product's OlinkID,
        or the Assay name (first match).
    table
        The result of :func:`olinkpipe.pp.bridgeability` for these data, to avoid
        computing it again.

    Returns
    -------
    numpy.ndarray
        The four Axes (distribution, correlation, counts, ECDF) of one figure.

    Examples
    --------
    The example data standing in for two products (as in :func:`olinkpipe.pp.bridgeability`):

    >>> import numpy as np
    >>> import olinkpipe as op
    >>> ht = op.datasets.load_example().adata
    >>> ht.uns["olinkpipe"]["product"] = "Explore HT"
    >>> ht.layers["Count"] = np.full(ht.shape, 500.0)
    >>> e3k = ht.copy()
    >>> e3k.uns["olinkpipe"]["product"] = "Explore 3072"
    >>> e3k.X = 1.2 * e3k.X + 0.3
    >>> bridges = list(ht.obs_names[~ht.obs["is_control"].to_numpy()][:45])
    >>> axes = op.pl.bridgeability(ht, e3k, bridges, "OID90001")
    >>> axes[0].figure.get_suptitle()
    'ACE - OID90001_OID90001 (bridgeable: QuantileSmoothing)'
    >>> axes[1].get_xlabel()
    'NPX P1'
    """
    if table is None:
        table = _table(ref, other, bridge_samples, mapping=mapping, projects=projects)
    row = _row(table, assay)
    x_r, c_r, s_r = _values(ref, row["OlinkID_ref"])
    x_o, c_o, s_o = _values(other, row["OlinkID_other"])
    ids_r, ids_o = as_mapping(bridge_samples)
    pairs = pd.DataFrame({"r": ids_r, "o": ids_o})
    pairs = pairs.merge(pd.DataFrame({"r": s_r, "x": x_r}), on="r").merge(
        pd.DataFrame({"o": s_o, "y": x_o}), on="o"
    )
    fig, axes = plt.subplots(2, 2, figsize=(10, 8))
    axes = axes.ravel()
    _distribution(axes[0], [x_r, x_o], projects)
    _correlation(axes[1], pairs["x"].to_numpy(), pairs["y"].to_numpy(), projects)
    _counts(axes[2], [c_r, c_o], projects)
    _ecdf(axes[3], [x_r, x_o], pairs, projects)
    rec = row["BridgingRecommendation"]
    verdict = "non bridgeable" if rec == "NotBridgeable" else f"bridgeable: {rec}"
    name = f"{row['Assay']} - {row['OlinkID']}" if "Assay" in row else str(row["OlinkID"])
    fig.suptitle(f"{name} ({verdict})")
    fig.tight_layout()
    return axes


def _distribution(ax, values, projects) -> None:
    parts = ax.violinplot([v for v in values], positions=[0, 1], widths=0.4, showextrema=False)
    for k, body in enumerate(parts["bodies"]):
        body.set_facecolor(group_color(k))
        body.set_alpha(0.4)
        body.set_label(projects[k])
    ax.boxplot(list(values), positions=[0, 1], widths=0.1, showfliers=False)
    ax.set_xticks([0, 1], list(projects))
    ax.set_xlabel("Platform")
    ax.set_ylabel("NPX Distribution")
    ax.legend(loc="best", title="Platform")


def _correlation(ax, x, y, projects) -> None:
    ax.scatter(x, y, color="blue", alpha=0.4, label="bridge samples")
    r2 = cs.r_squared(x[:, None], y[:, None])[0] if len(x) else np.nan
    if len(x) >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y, 1)
        grid = np.linspace(x.min(), x.max(), 50)
        ax.plot(grid, intercept + slope * grid, color="black", label="least squares")
    ax.set_title(f"R\u00b2 = {float(f'{r2:.2g}'):g}" if np.isfinite(r2) else "R\u00b2 = NA")
    ax.set_xlabel(f"NPX {projects[0]}")
    ax.set_ylabel(f"NPX {projects[1]}")
    if np.isfinite(r2) and r2 < 0.2:
        ax.annotate(
            "Possibly bridging background to background",
            (0.5, -0.18), xycoords="axes fraction", ha="center", fontsize=8,
        )  # fmt: skip
    ax.legend(loc="best")


def _counts(ax, counts, projects) -> None:
    meds = [float(np.median(c)) if len(c) else np.nan for c in counts]
    bars = ax.bar([0, 1], meds, width=0.5, color=[group_color(0), group_color(1)])
    for k, b in enumerate(bars):
        b.set_label(projects[k])
    ax.bar_label(bars, labels=[f"{m:g}" for m in meds])
    ax.axhline(cs.LOW_MEDIAN_COUNT, color="black", linestyle="--", linewidth=0.7)
    ax.annotate(
        f"{cs.LOW_MEDIAN_COUNT}", (1.0, cs.LOW_MEDIAN_COUNT), xycoords=("axes fraction", "data"),
        ha="right", va="bottom", fontsize=8,
    )  # fmt: skip
    ax.set_xticks([0, 1], list(projects))
    ax.set_xlabel("Platform")
    ax.set_ylabel("Median Count")


def _ecdf(ax, values, pairs: pd.DataFrame, projects) -> None:
    for k, v in enumerate(values):
        srt = np.sort(v)
        ax.step(srt, np.arange(1, len(srt) + 1) / max(len(srt), 1), where="post",
                color=group_color(k), label=projects[k])  # fmt: skip
    a, b = pairs["x"].to_numpy()[:, None], pairs["y"].to_numpy()[:, None]
    d = cs.ks_statistic(a, b)[0] if len(pairs) else np.nan
    if len(pairs):  # where the bridge samples' ECDFs differ most (OlinkAnalyze's grid)
        grid = np.linspace(min(a.min(), b.min()), max(a.max(), b.max()), len(pairs))
        f_a = (a[:, 0][None, :] <= grid[:, None]).mean(axis=1)
        f_b = (b[:, 0][None, :] <= grid[:, None]).mean(axis=1)
        k = int(np.argmax(np.abs(f_a - f_b)))
        ax.plot([grid[k], grid[k]], [f_a[k], f_b[k]], "k--", marker="o", label="largest distance")
    ax.text(0.98, 0.1, f"D = {float(f'{d:.2g}'):g}", transform=ax.transAxes, ha="right")
    ax.set_xlabel("NPX")
    ax.set_ylabel("ECDF")
    ax.legend(loc="best")
