"""QC figures: each is drawn on a given Axes, checked for its artists and saved as PNG."""

from __future__ import annotations

import warnings

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.axes import Axes
from test_pp_data import make_adata

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
    assert len(ax.lines) >= 8  # 4 dashed outlier lines per panel
    assert "S3" in {t.get_text() for t in ax.texts}  # the outlier is labelled
    _save(ax, tmp_path, "qc")
    ax2 = op.pl.qc(summary, panel="Olink Oncology")  # from the frame, new figure
    assert isinstance(ax2, Axes) and len(ax2.lines) == 4
    with pytest.raises(ValidationError, match="panel"):
        op.pl.qc(summary, panel="nope")


def test_pca_plot(adata, tmp_path):
    ax = op.pl.pca(adata, color="PlateID")
    n_imputed = int(np.isnan(adata.X).sum())
    assert f"{n_imputed} missing values imputed by assay median" in ax.get_title()
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
    _save(ax, tmp_path, "distribution")


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
    _save(ax, tmp_path, "bridge")
    with pytest.raises(ValidationError, match="bridge_normalize"):
        op.pl.bridge(None, ref)
