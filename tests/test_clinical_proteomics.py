"""clinical.protein_changes: per-patient NPX changes, checked against a pandas pivot."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest

import olinkpipe as op
from olinkpipe.errors import DesignError, OlinkpipeWarning


def _adata(seed=0):
    rng = np.random.default_rng(seed)
    patients = ["P1", "P2", "P3", "P4", "P5"]
    rows = [(p, t) for p in patients for t in ("pre", "post")]
    rows = [r for r in rows if r != ("P5", "post")] + [("P4", "post")]  # P5 unpaired, P4 twice
    obs = pd.DataFrame(rows, columns=["patient", "timepoint"])
    obs.index = [f"S{i}" for i in range(len(obs))]
    var = pd.DataFrame(
        {"Assay": ["SIT1", "CD28", "IL6", "IL6"], "Panel": ["A", "A", "A", "B"]},
        index=["OID1", "OID2", "OID3", "OID4"],
    )
    x = rng.normal(size=(len(obs), 4))
    x[0, 1] = np.nan
    return ad.AnnData(x, obs=obs, var=var)


def test_changes_equal_pandas_pivot_and_bad_pairs_are_reported():
    adata = _adata()
    with pytest.warns(OlinkpipeWarning, match="left out 2"):
        ch = op.clinical.protein_changes(
            adata, groupby="timepoint", reference="pre", target="post", pair="patient"
        )
    long = pd.DataFrame(adata.X, columns=adata.var_names, index=adata.obs_names).join(adata.obs)
    ok = long[~long["patient"].isin(["P4", "P5"])]
    wide = ok.set_index(["patient", "timepoint"])[list(adata.var_names)].unstack("timepoint")
    expected = wide.xs("post", axis=1, level=1) - wide.xs("pre", axis=1, level=1)
    got = ch.set_index("patient")
    # IL6 is on two panels, so its columns are named by OlinkID
    assert list(got.columns) == ["SIT1", "CD28", "OID3", "OID4"]
    np.testing.assert_allclose(got.to_numpy(), expected.loc[got.index].to_numpy(), atol=1e-15)
    assert np.isnan(got.loc["P1", "CD28"])
    assert sorted(p for p, _ in ch.attrs["excluded_pairs"]) == ["P4", "P5"]
    assert ch.attrs["sign"] == "post - pre"


def test_selected_assays_keep_the_callers_order_and_unknown_assay_errors():
    adata = _adata()
    with pytest.warns(OlinkpipeWarning):
        ch = op.clinical.protein_changes(
            adata,
            groupby="timepoint",
            reference="pre",
            target="post",
            pair="patient",
            assays=["CD28", "SIT1"],
        )
    assert list(ch.columns) == ["patient", "CD28", "SIT1"]
    with pytest.raises(DesignError, match="NOPE"):
        op.clinical.protein_changes(
            adata,
            groupby="timepoint",
            reference="pre",
            target="post",
            pair="patient",
            assays=["NOPE"],
        )
