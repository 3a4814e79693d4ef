"""QC figures: each is drawn on a given Axes, checked for its artists and saved as PNG."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from builders import make_adata
from matplotlib.axes import Axes
from matplotlib.patches import Rectangle

import olinkpipe as op
from olinkpipe.errors import OlinkpipeWarning, ValidationError


@pytest.fixture
def adata():
    a = make_adata(40, 20, seed=1)
    X = a.X.copy()
    X[2] += 8  # an outlier to label
    a.X = X
    return a


def _save(ax, tmp_path, name):
    path = tmp_path / f"{name}.png"
    ax.figure.savefig(path)
    assert path.stat().st_size > 1000


def test_qc_plot(adata, tmp_path):
    fig, ax = plt.subplots()
    out = op.pl.qc(adata, ax=ax)
    assert out is ax
    summary = op.pp.qc_summary(adata)
    n_points = sum(len(c.get_offsets()) for c in ax.collections)
    assert n_points == len(summary)
    # one dashed box per panel at mean ± 3 SD (pandas std: n - 1) of medians and IQRs
    boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
    assert len(boxes) == summary["Panel"].nunique() == 2
    got = sorted((b.get_x(), b.get_y(), b.get_width(), b.get_height()) for b in boxes)
    want = []
    for _, g in summary.groupby("Panel"):
        m, i = g["median"], g["iqr"]
        want.append((m.mean() - 3 * m.std(), i.mean() - 3 * i.std(), 6 * m.std(), 6 * i.std()))
    np.testing.assert_allclose(got, sorted(want), rtol=0, atol=1e-12)
    # the shifted sample is labelled, on both panels
    assert [t.get_text() for t in ax.texts] == ["S3", "S3"]
    _save(ax, tmp_path, "qc")
    ax2 = op.pl.qc(summary, panel="Olink Oncology")  # from the frame, new figure
    assert isinstance(ax2, Axes) and len(ax2.patches) == 1
    with pytest.raises(ValidationError, match="panel"):
        op.pl.qc(summary, panel="nope")


def test_pca_plot(adata, tmp_path):
    ax = op.pl.pca(adata, color="PlateID")
    # OlinkAnalyze: assays missing in > 5 % of the samples (<= 88 samples) left out
    missing = np.isnan(adata.X).mean(axis=0)
    dropped = missing > 0.05
    assert 0 < dropped.sum() < adata.n_vars  # the fixture exercises the rule
    n_imputed = int(np.isnan(adata.X[:, ~dropped]).sum())
    assert f"{n_imputed} missing values imputed by assay median" in ax.get_title()
    assert f"{int(dropped.sum())} assays > 5% missing left out" in ax.get_title()
    assert sum(len(c.get_offsets()) for c in ax.collections) == adata.n_obs
    assert ax.get_xlabel().startswith("PC1 (") and ax.get_ylabel().startswith("PC2 (")
    _save(ax, tmp_path, "pca")
    with pytest.raises(ValidationError, match="not an obs column"):
        op.pl.pca(adata, color="nope")


def test_distribution_plot(adata, tmp_path):
    ax = op.pl.distribution(adata)
    assert len(ax.patches) == adata.n_obs  # one box per sample
    colours = {tuple(p.get_facecolor()) for p in ax.patches}
    assert len(colours) == adata.obs["PlateID"].nunique()
    # medians drawn (black, visible on every fill) at each sample's NPX median, plate order
    order = np.argsort(adata.obs["PlateID"].to_numpy(), kind="mergesort")
    medians = [ln.get_ydata()[0] for ln in ax.lines if ln.get_gid() == "median"]
    np.testing.assert_allclose(medians, np.nanmedian(adata.X[order], axis=1), atol=1e-12)
    _save(ax, tmp_path, "distribution")
    onc = adata.var["Panel"].to_numpy() == "Olink Oncology"
    ax = op.pl.distribution(adata, panel="Olink Oncology")
    medians = [ln.get_ydata()[0] for ln in ax.lines if ln.get_gid() == "median"]
    np.testing.assert_allclose(medians, np.nanmedian(adata.X[order][:, onc], axis=1), atol=1e-12)
    assert ax.get_ylabel() == "NPX (Olink Oncology)"
    with pytest.raises(ValidationError, match="not in var"):
        op.pl.distribution(adata, panel="nope")


def test_bridge_plot(tmp_path):
    ref = make_adata(20, 10, seed=2, project="P1")
    other = make_adata(20, 10, seed=3, project="P2", shift=1.0, prefix="T")
    mapping = {f"S{i}": f"T{i}" for i in range(1, 9)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        after = op.pp.bridge_normalize(ref, other, mapping)
    ax = op.pl.bridge(None, after)
    before_pts, after_pts = ax.collections[1].get_offsets(), ax.collections[3].get_offsets()
    # after median bridge normalization the per-assay median difference is 0
    np.testing.assert_allclose(np.asarray(after_pts)[:, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(
        np.sort(np.asarray(before_pts)[:, 1]), np.sort(after.var["Adj_factor"]), atol=1e-12
    )
    # bars: IQR over pairs of the raw differences, from the inputs (pandas quantile = type 7)
    d = pd.DataFrame(ref[list(mapping)].X - other[list(mapping.values())].X, columns=ref.var_names)
    order = np.argsort(d.median().to_numpy(), kind="mergesort")
    segs = np.array([seg[:, 1] for seg in ax.collections[0].get_segments()])
    want = np.column_stack([d.quantile(0.25), d.quantile(0.75)])[order]
    np.testing.assert_allclose(segs, want, atol=1e-12)
    # the same figure when the unnormalized stack is passed explicitly
    before = after.copy()
    is_o = (before.obs["Project"] == "P2").to_numpy()
    X = before.X.copy()
    X[is_o] -= before.var["Adj_factor"].to_numpy()
    before.X = X
    ax2 = op.pl.bridge(before, after)
    np.testing.assert_allclose(ax2.collections[1].get_offsets(), before_pts, atol=1e-12)
    assert ax.get_ylabel() == "NPX P1 − P2"
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert sorted(labels) == sorted(after.var["Assay"])  # assay names for <= 40 assays
    _save(ax, tmp_path, "bridge")
    with pytest.raises(ValidationError, match="bridge_normalize"):
        op.pl.bridge(None, ref)
