"""pl.bridgeability (OlinkAnalyze's olink_bridgeability_plot): the content of each panel
checked against numbers computed here from the data (numpy / scipy), on the synthetic
Explore HT / Explore 3072 pair of the cross-product tests."""

from __future__ import annotations

import warnings

import _crossproduct_data as data
import matplotlib
import numpy as np
import pytest
from matplotlib.collections import PolyCollection
from scipy import stats

import olinkpipe as op
from olinkpipe.errors import OlinkpipeWarning, ValidationError

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def drawn():
    ht, e3k = data.products()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        table = op.pp.bridgeability(ht, e3k, data.BRIDGE)
    yield ht, e3k, table
    matplotlib.pyplot.close("all")


def _pairs(ht, e3k, oid_r, oid_o):
    """Bridge pairs with both values and both counts above 10 (by hand)."""
    x = ht[data.BRIDGE, oid_r]
    y = e3k[data.BRIDGE, oid_o]
    keep = (
        (x.layers["Count"][:, 0] > 10)
        & (y.layers["Count"][:, 0] > 10)
        & ~np.isnan(x.X[:, 0])
        & ~np.isnan(y.X[:, 0])
    )
    return x.X[keep, 0], y.X[keep, 0]


def test_panels_show_the_data(drawn):
    ht, e3k, table = drawn
    axes = op.pl.bridgeability(ht, e3k, data.BRIDGE, "ATF4", table=table)
    assert len(axes) == 4
    fig = axes[0].figure
    assert fig._suptitle.get_text() == "ATF4 - OID40835_OID31162 (bridgeable: QuantileSmoothing)"
    # distributions: one violin per product, labelled
    violins = [c for c in axes[0].collections if isinstance(c, PolyCollection)]
    assert len(violins) == 2
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["P1", "P2"]
    assert axes[0].get_ylabel() == "NPX Distribution"
    # correlation: the 44 pairs (S03 has no Explore 3072 value), R² to 2 digits
    x, y = _pairs(ht, e3k, "OID40835", "OID31162")
    pts = axes[1].collections[0].get_offsets()
    np.testing.assert_allclose(np.asarray(pts), np.column_stack([x, y]))
    r2 = np.corrcoef(x, y)[0, 1] ** 2
    assert axes[1].get_title() == f"R\u00b2 = {float(f'{r2:.2g}'):g}"
    assert axes[1].get_xlabel() == "NPX P1" and axes[1].get_ylabel() == "NPX P2"
    # counts: median count of each product's sample rows with a count above 10
    heights = [p.get_height() for p in axes[2].patches]
    for h, a, oid in zip(heights, (ht, e3k), ("OID40835", "OID31162"), strict=True):
        c = a[a.obs["SampleType"] == "SAMPLE", oid].layers["Count"][:, 0]
        assert h == np.median(c[c > 10])
    dashed = [ln for ln in axes[2].lines if ln.get_linestyle() == "--"]
    assert len(dashed) == 1 and dashed[0].get_ydata()[0] == 150
    # ECDF: two steps and D of the bridge pairs (scipy)
    assert axes[3].get_ylabel() == "ECDF"
    d = stats.ks_2samp(x, y).statistic
    assert [t.get_text() for t in axes[3].texts] == [f"D = {float(f'{d:.2g}'):g}"]
    assert {ln.get_label() for ln in axes[3].lines} >= {"P1", "P2", "largest distance"}


def test_not_bridgeable_title_and_caption(drawn):
    ht, e3k, table = drawn
    axes = op.pl.bridgeability(ht, e3k, data.BRIDGE, "OID40981", table=table)
    assert axes[0].figure._suptitle.get_text().endswith("(non bridgeable)")
    notes = [t.get_text() for t in axes[1].texts]
    assert notes == ["Possibly bridging background to background"]  # R² < 0.2


def test_unknown_assay(drawn):
    ht, e3k, table = drawn
    with pytest.raises(ValidationError, match="not among the paired assays"):
        op.pl.bridgeability(ht, e3k, data.BRIDGE, "OID00000", table=table)
