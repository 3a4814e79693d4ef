"""Fixtures shared by the test modules, built by tests/builders.py and tests/io_builders.py.

The repository's conftest.py (one level up) blocks the network and closes figures for
every test and doctest; this one holds data. Each fixture returns a fresh object unless it
is module- or session-scoped, so a test may change what it gets.
"""

from __future__ import annotations

import anndata as ad
import pandas as pd
import pytest
from builders import make_adata
from io_builders import make_long


@pytest.fixture
def npx_adata() -> ad.AnnData:
    """A two-panel NPX AnnData with NaNs, LOD, two WARN samples, controls and two plates
    (``builders.make_adata()``, seed 0)."""
    return make_adata()


@pytest.fixture
def long_export() -> pd.DataFrame:
    """A Target-96-like long export table, 2 panels x 3 assays (``io_builders.make_long()``)."""
    return make_long()
