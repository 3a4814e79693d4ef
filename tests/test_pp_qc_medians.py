"""pp.qc takes column medians in tiles (pp._median.column_medians) on many rows and by
one sort (pp._utils.nanmedian0) on few: the values of np.nanmedian either way."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from builders import make_adata

import olinkpipe as op
from olinkpipe.pp import _lazy, qc


@pytest.mark.parametrize("n_samples", [1100, 2100])
def test_qc_medians_in_tiles_equal_nanmedian(n_samples):
    """qc_summary(by="assay") and the PCA/UMAP imputation take column medians in tiles
    (pp._median) on many rows: the values of np.nanmedian, in memory and on dask."""
    a = make_adata(n_samples, 12, seed=9, nan_frac=0.05)
    X = np.asarray(a.X)
    X[:, 3] = np.nan  # an assay with no value
    X[: n_samples - 3, 4] = np.nan  # one with three
    a.X = X
    study = ~a.obs["is_control"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = np.nanmedian(X[study], axis=0)
        want_all = np.nanmedian(X, axis=0)
    got = op.pp.qc_summary(a, by="assay")
    np.testing.assert_array_equal(got["median"].to_numpy(), want)
    pytest.importorskip("dask.array")
    lazy_got = op.pp.qc_summary(_lazy.to_dask(a, max_assays=5), by="assay")
    pd.testing.assert_frame_equal(lazy_got, got, check_exact=True)
    dim = qc.dimred_matrix(a, "include")
    keep = np.isin(a.var_names, dim["assays"])
    assert keep.sum() >= 8
    imputed = np.isnan(X[:, keep])
    np.testing.assert_array_equal(
        dim["X"][imputed], np.broadcast_to(want_all[keep], imputed.shape)[imputed]
    )
