"""The seeded AnnData builder (tests/builders.py) follows docs/data_model.md."""

from __future__ import annotations

import numpy as np
from builders import make_adata


def test_builder_follows_the_data_model():
    a = make_adata()
    assert a.obs_names.is_unique and a.var_names.is_unique
    assert a.X.dtype == np.float64 and np.isnan(a.X).any()
    assert set(a.obsm["PlateID"].columns) == set(a.var["Panel"])
    assert a.layers["below_lod"].dtype == bool
