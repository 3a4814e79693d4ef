"""pl functions draw the frames pp/tl/clinical returned instead of recomputing them
(issue 20 item 4); the old calls (recomputing) keep working and draw the same."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.errors import ValidationError


@pytest.fixture(scope="module")
def adata():
    return op.datasets.load_example().adata


def _points(ax):
    return [np.asarray(c.get_offsets()) for c in ax.collections]


def test_qc_from_the_summary_equals_qc_from_adata(adata):
    old = op.pl.qc(adata)
    new = op.pl.qc(op.pp.qc_summary(adata, by="sample"))
    for a, b in zip(_points(old), _points(new), strict=True):
        np.testing.assert_array_equal(a, b)
    assert [t.get_text() for t in old.texts] == [t.get_text() for t in new.texts]
    plt.close("all")


def test_pca_from_given_scores(adata):
    from olinkpipe.pp.qc import pca_scores

    old = op.pl.pca(adata, color="PlateID")
    given = pca_scores(adata, n_comps=2, controls="include")
    new = op.pl.pca(adata, color="PlateID", scores=given)
    for a, b in zip(_points(old), _points(new), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)
    assert (old.get_xlabel(), old.get_title()) == (new.get_xlabel(), new.get_title())
    # drawn as given, not recomputed: scaled scores are drawn scaled
    doubled = (given[0] * 2, *given[1:])
    ax = op.pl.pca(adata, scores=doubled)
    np.testing.assert_allclose(_points(ax)[0], _points(op.pl.pca(adata))[0] * 2, atol=1e-12)
    with pytest.raises(ValidationError, match="4-tuple"):
        op.pl.pca(adata, scores=given[0])
    with pytest.raises(ValidationError, match="loadings need the PCA fit"):
        op.pl.pca(adata, scores=given, loadings=3)
    plt.close("all")


def test_correlation_from_the_correlate_row():
    t = pd.DataFrame({"dose": [1, 2, 3, 4, 5, 6], "cmax": [2.0, 1.0, 4.0, 3.0, 6.0, 5.0]})
    res = op.clinical.correlate(t, "dose", ["cmax"], "spearman")
    old = op.pl.correlation(t, "dose", "cmax")
    assert op.pl.correlation(t, "dose", "cmax", result=res).get_title() == old.get_title()
    assert op.pl.correlation(t, "dose", "cmax", result=res.iloc[0]).get_title() == old.get_title()
    made_up = res.assign(rho=0.123)  # the title shows what was given
    assert "ρ = 0.12 " in op.pl.correlation(t, "dose", "cmax", result=made_up).get_title()
    with pytest.raises(ValidationError, match="spearman correlation, but method='pearson'"):
        op.pl.correlation(t, "dose", "cmax", method="pearson", result=res)
    with pytest.raises(ValidationError, match="got 2 rows"):
        op.pl.correlation(t, "dose", "cmax", result=pd.concat([res, res]))
    plt.close("all")
