"""The shared ``assays=`` check of the post-hoc and non-parametric functions."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.errors import DesignError


@pytest.fixture
def adata():
    rng = np.random.default_rng(3)
    obs = pd.DataFrame({"Site": np.repeat(["A", "B", "C"], 8)}, index=[f"S{i}" for i in range(24)])
    var = pd.DataFrame(index=pd.Index(["OID1", "OID2", "OID3"], name="OlinkID"))
    return ad.AnnData(rng.normal(size=(24, 3)), obs=obs, var=var)


@pytest.mark.parametrize(
    "call",
    [
        lambda a, s: op.tl.anova_posthoc(a, formula_terms="Site", effect="Site", assays=s),
        lambda a, s: op.tl.nonparametric_posthoc(a, groupby="Site", assays=s),
    ],
    ids=["anova_posthoc", "nonparametric_posthoc"],
)
def test_one_olinkid_as_a_string_equals_a_list(adata, call):
    one, listed = call(adata, "OID2"), call(adata, ["OID2"])
    pd.testing.assert_frame_equal(one, listed)
    assert set(one["OlinkID"]) == {"OID2"}


@pytest.mark.parametrize(
    "call",
    [
        lambda a, s: op.tl.anova_posthoc(a, formula_terms="Site", effect="Site", assays=s),
        lambda a, s: op.tl.nonparametric_posthoc(a, groupby="Site", assays=s),
        lambda a, s: op.tl.ordinal_posthoc(a, groupby="Site", effect="Site", assays=s),
    ],
    ids=["anova_posthoc", "nonparametric_posthoc", "ordinal_posthoc"],
)
def test_unknown_assays_are_named(adata, call):
    with pytest.raises(DesignError, match=r"assays not found in var\. Rows: OIDX\."):
        call(adata, ["OID1", "OIDX"])
