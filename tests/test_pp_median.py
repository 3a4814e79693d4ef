"""pp._median: per-group and column medians equal ``np.nanmedian`` bit for bit, and the
in-place per-group shift equals a plain ``X + factors[code]``."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from olinkpipe import _parallel
from olinkpipe.pp import _median


def nanmedian(block: np.ndarray) -> np.ndarray:
    """The reference: numpy's own, NaN for an empty block or an all-NaN column."""
    if block.shape[0] == 0:
        return np.full(block.shape[1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmedian(block, axis=0)


def same_bits(got: np.ndarray, exp: np.ndarray) -> None:
    """Equal values, NaN where NaN (``-0.0 == 0.0``: the sign of a zero median is not
    numpy's either, see ``pp._utils.nanmedian0``)."""
    np.testing.assert_array_equal(got, exp)
    finite = ~np.isnan(exp) & (exp != 0)
    assert np.array_equal(got[finite].view(np.int64), exp[finite].view(np.int64))


def matrix(rng, n, m, *, nan=0.2, decimals=None, inf=False) -> np.ndarray:
    X = rng.normal(5, 2, (n, m))
    if decimals is not None:  # ties, as in 4-decimal NPX
        X = X.round(decimals)
    X[rng.random(X.shape) < nan] = np.nan
    if m > 2:
        X[:, 1] = np.nan  # an all-NaN assay
    if inf:
        X[rng.random(X.shape) < 0.03] = np.inf
        X[rng.random(X.shape) < 0.03] = -np.inf
    return X


def check_groups(X, code, n_groups, use=None, cols=None, threads=None) -> None:
    overall, med, count = _median.group_medians(
        X, code, n_groups, use=use, cols=cols, threads=threads
    )
    use = np.ones(X.shape[0], bool) if use is None else use
    cols = np.arange(X.shape[1]) if cols is None else cols
    sub = X[:, cols]
    same_bits(overall, nanmedian(sub[use]))
    for g in range(n_groups):
        rows = use & (code == g)
        same_bits(med[g], nanmedian(sub[rows]))
        np.testing.assert_array_equal(count[g], (~np.isnan(sub[rows])).sum(axis=0))


@pytest.mark.parametrize("seed", range(6))
def test_group_medians_random(seed):
    rng = np.random.default_rng(seed)
    n, m = int(rng.integers(2, 300)), int(rng.integers(1, 100))
    X = matrix(rng, n, m, nan=rng.random() * 0.9, decimals=int(rng.integers(0, 3)))
    n_groups = int(rng.integers(1, 12))
    code = rng.integers(-1, n_groups, n)  # unsorted labels, some rows in no group
    use = rng.random(n) < 0.85
    check_groups(X, code, n_groups, use=use, threads=1)


def test_group_medians_plates_in_blocks_even_odd_and_single_samples():
    rng = np.random.default_rng(7)
    sizes = [88, 88, 87, 1, 2, 88, 40]  # odd and even, single-sample plates
    code = np.repeat(np.arange(len(sizes)), sizes)
    X = matrix(rng, len(code), 75, nan=0.1, decimals=1)
    X[code == 4, 3] = np.nan  # a plate without a value for one assay
    check_groups(X, code, len(sizes))
    check_groups(X, code, len(sizes), use=rng.random(len(code)) < 0.9)


def test_group_medians_unequal_plates_and_interleaved_rows():
    rng = np.random.default_rng(8)
    code = np.r_[np.zeros(400, int), rng.integers(1, 6, 60)]  # one big plate: no padding
    X = matrix(rng, len(code), 50)
    check_groups(X, code, 6)
    perm = rng.permutation(len(code))  # rows of a plate scattered: gathers
    check_groups(X[perm], code[perm], 6)


def test_group_medians_infinities_and_empty_groups():
    rng = np.random.default_rng(9)
    code = rng.integers(0, 3, 120)
    X = matrix(rng, 120, 40, inf=True)
    X[:, 5] = np.inf
    X[:, 6] = -np.inf
    X[code == 0, 7] = np.inf
    X[code == 1, 7] = -np.inf  # median of inf and -inf: NaN, as numpy
    check_groups(X, code, 5)  # groups 3 and 4 have no rows: NaN, 0


def test_group_medians_column_subset_and_threads(monkeypatch):
    monkeypatch.setenv(_parallel.ENV_THREADS, "2")
    rng = np.random.default_rng(10)
    code = np.repeat(np.arange(12), 90)
    X = matrix(rng, len(code), 2_100, nan=0.1)  # > 16 MB: threaded tiles
    check_groups(X, code, 12)
    cols = np.r_[np.arange(5, 70), np.arange(300, 301), np.arange(2_000, 2_050)]
    check_groups(X, code, 12, cols=cols)


def test_column_medians():
    rng = np.random.default_rng(11)
    X = matrix(rng, 500, 90, nan=0.3, decimals=1, inf=True)
    med, n = _median.column_medians(X)
    same_bits(med, nanmedian(X))
    np.testing.assert_array_equal(n, (~np.isnan(X)).sum(axis=0))
    for rows in (np.array([3]), np.array([7, 2, 2, 400]), rng.permutation(500)[:77]):
        cols = np.array([0, 1, 2, 50, 51, 89])
        med, n = _median.column_medians(X, rows, cols)
        same_bits(med, nanmedian(X[rows][:, cols]))
        np.testing.assert_array_equal(n, (~np.isnan(X[rows][:, cols])).sum(axis=0))


@pytest.mark.parametrize("sorted_codes", [True, False])
def test_add_by_group(sorted_codes, monkeypatch):
    monkeypatch.setenv(_parallel.ENV_THREADS, "2")
    rng = np.random.default_rng(12)
    code = rng.integers(-1, 5, 1_200)
    code = np.sort(code) if sorted_codes else code
    X = rng.normal(size=(1_200, 2_000))  # > 16 MB: threaded
    factors = rng.normal(size=(6, 2_000))
    for cols in (None, np.r_[np.arange(3, 900), np.arange(1_000, 1_100)]):
        exp = X.copy()
        sel = np.arange(2_000) if cols is None else cols
        exp[:, sel] = X[:, sel] + factors[code][:, sel]
        _median.add_by_group(X, code, factors, cols)
        assert np.array_equal(X.view(np.int64), exp.view(np.int64))


def plate_study(seed: int = 13):
    """Samples on plates in scattered order, two panels, NaN, a control sample per plate."""
    import anndata as ad
    import pandas as pd

    rng = np.random.default_rng(seed)
    n, m = 180, 40
    plate = rng.permutation(np.repeat(["P1", "P2", "P3", "P4"], [50, 50, 49, 31]))
    X = matrix(rng, n, m, nan=0.15, decimals=3) + (pd.factorize(plate)[0] * 0.3)[:, None]
    sample_type = np.where(rng.random(n) < 0.05, "CONTROL", "SAMPLE")
    obs = pd.DataFrame(
        {"SampleID": [f"S{i}" for i in range(n)], "PlateID": plate, "SampleType": sample_type},
        index=[f"S{i}" for i in range(n)],
    )
    var = pd.DataFrame(
        {"Panel": np.repeat(["A", "B"], m // 2)}, index=[f"OID{j:05d}" for j in range(m)]
    )
    return ad.AnnData(X=X, obs=obs, var=var)


@pytest.mark.parametrize("controls", ["drop", "keep"])
def test_normalize_plates_equals_nanmedian_reference_and_dask(controls):
    """normalize_plates shifts each plate by median(all) - median(plate), the medians of
    np.nanmedian; the dask path (assay blocks of 7) gives the same bits."""
    import olinkpipe as op
    from olinkpipe import _controls
    from olinkpipe.pp import _lazy

    a = plate_study()
    X = np.asarray(a.X).copy()
    use = np.ones(a.n_obs, bool)
    if controls == "drop":
        use &= ~_controls.control_samples(a)
    plate = a.obs["PlateID"].to_numpy()
    exp = X.copy()
    overall = nanmedian(X[use])
    for p in np.unique(plate):
        factor = overall - nanmedian(X[use & (plate == p)])
        exp[plate == p] = X[plate == p] + np.where(np.isnan(factor), 0.0, factor)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got = op.pp.normalize_plates(a, controls=controls)
        lazy = op.pp.normalize_plates(_lazy.to_dask(a, max_assays=7), controls=controls)
    assert np.array_equal(np.asarray(got.X).view(np.int64), exp.view(np.int64))
    assert np.array_equal(np.asarray(lazy.X.compute()).view(np.int64), exp.view(np.int64))
