"""One warning helper, one QC vocabulary, one definition of a control, one h5ad sanitiser
(issue 20 item 3): the rule in its home module and the places that use it agree."""

from __future__ import annotations

import importlib
import warnings

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from builders import make_adata

import olinkpipe as op
from olinkpipe import _controls, _qc, _warnings
from olinkpipe.errors import OlinkpipeWarning
from olinkpipe.io import _util as io_util
from olinkpipe.pp import _utils as pp_utils


def test_one_warning_helper_points_at_the_users_line():
    assert io_util.warn_user is _warnings.warn_user is pp_utils.warn_user
    with pytest.warns(OlinkpipeWarning, match="hello") as rec:
        _warnings.warn_user("hello")
    assert rec[0].filename == __file__
    with _warnings.collect() as sink:  # the block-task sink catches it like warn()
        _warnings.warn_user("kept")
    assert sink == [("kept", OlinkpipeWarning)]


def test_qc_vocabulary_is_the_readers():
    assert _qc.PASS_VALUES == {"PASS", "OK", "PASSED"}
    got = _qc.is_pass(np.array([["Pass", " passed "], [None, "WARN"], ["", "Warning"]]))
    assert got.tolist() == [[True, True], [True, False], [True, False]]
    assert _qc.is_pass([]).shape == (0,)


def _passed(adata: ad.AnnData) -> ad.AnnData:
    """The QC text PASS written PASSED, with no qc_pass / qc_warning layer to fall back on."""
    out = adata.copy()
    out.obsm["QC_Warning"] = out.obsm["QC_Warning"].replace("PASS", "PASSED")
    del out.obs["qc_pass"]
    del out.layers["qc_warning"]
    return out


def test_passed_passes_in_pp(npx_adata):
    adata = npx_adata
    base = _passed(adata)
    base.obsm["QC_Warning"] = adata.obsm["QC_Warning"].copy()  # PASS spelled PASS
    fail_pass, _ = pp_utils.qc_fail_by_panel(base)
    fail_passed, _ = pp_utils.qc_fail_by_panel(_passed(adata))
    np.testing.assert_array_equal(fail_passed, fail_pass)
    assert fail_passed.sum() == 2 * 2  # the two WARN samples, on both panels
    with pytest.warns(OlinkpipeWarning):
        kept = op.pp.filter(_passed(adata), controls="keep")
    assert kept.n_obs == adata.n_obs - 2  # only the WARN samples are dropped


def test_passed_passes_in_pl():
    summary = op.pp.qc_summary(make_adata(12, 6, seed=3))
    summary["QC_Warning"] = summary["QC_Warning"].astype(str)
    passed = summary.assign(QC_Warning=summary["QC_Warning"].replace("PASS", "PASSED"))
    offsets = []
    for frame in (summary, passed):
        _, ax = plt.subplots()
        op.pl.qc(frame, ax=ax)
        offsets.append([len(c.get_offsets()) for c in ax.collections])
    assert offsets[0] == offsets[1]
    assert (summary["QC_Warning"] != "PASS").sum() > 0  # some points are drawn as warnings


def test_one_definition_of_control():
    obs = pd.DataFrame(
        {"SampleType": ["SAMPLE", "NEGATIVE_CONTROL", "sample", "SAMPLE"]},
        index=["S1", "NC1", "S2", "CONTROL_SAMPLE_AS 1"],
    )
    a = ad.AnnData(np.zeros((4, 2)), obs=obs, var=pd.DataFrame(index=["OID00001", "Inc Ctrl"]))
    assert _controls.control_samples(a).tolist() == [False, True, False, True]
    assert _controls.control_assays(a).tolist() == [False, True]
    assert pp_utils.control_samples is _controls.control_samples
    a.obs["is_control"] = [False, False, True, False]  # what the reader recorded wins
    assert _controls.control_samples(a).tolist() == [False, False, True, True]
    assert _controls.is_control_type(["SAMPLE", "sample", "CONTROL", None]).tolist() == [
        False,
        False,
        True,
        True,
    ]


def test_workflow_writes_h5ad_through_the_one_sanitiser(npx_adata, tmp_path, monkeypatch):
    from olinkpipe.workflow import _outputs

    io_write = importlib.import_module("olinkpipe.io.write")  # io.write is also a function

    calls = []
    real = io_write.h5ad_safe

    def spy(adata):
        calls.append(adata.n_obs)
        return real(adata)

    monkeypatch.setattr(io_write, "h5ad_safe", spy)
    adata = npx_adata
    adata.uns["note"] = None  # dropped, as io.write drops it
    adata.uns["mixed"] = [1, "a"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _outputs.write_h5ad(adata, tmp_path / "a.h5ad")
    back = ad.read_h5ad(tmp_path / "a.h5ad")
    assert calls == [adata.n_obs] and "note" not in back.uns
    assert back.uns["mixed"].tolist() == ["1", "a"]
