"""Package-wide checks: public API shape, BH, error messages."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

import olinkpipe as op
from olinkpipe._stats import bh_adjust
from olinkpipe.errors import MissingColumnError, OlinkpipeError, format_message

NAMESPACES = [op, op.io, op.pp, op.tl, op.pl, op.clinical, op.genesets, op.datasets]


@pytest.mark.parametrize("ns", NAMESPACES, ids=lambda m: m.__name__)
def test_public_functions_are_documented_and_typed(ns):
    for name in ns.__all__:
        obj = getattr(ns, name)
        if inspect.ismodule(obj) or not callable(obj) or inspect.isclass(obj):
            continue
        assert obj.__doc__ and "Examples" in obj.__doc__, f"{ns.__name__}.{name} lacks examples"
        sig = inspect.signature(obj)
        params = list(sig.parameters.values())
        positional = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
        assert len(positional) <= 4, f"{ns.__name__}.{name}: too many positional parameters"
        for p in params:
            if isinstance(p.default, bool):
                assert p.kind is p.KEYWORD_ONLY, (
                    f"{ns.__name__}.{name}: boolean {p.name} positional"
                )
        assert sig.return_annotation is not inspect.Signature.empty, f"{ns.__name__}.{name}"


def test_bh_matches_statsmodels_with_nan():
    rng = np.random.default_rng(1)
    p = rng.uniform(size=200) ** 3
    p[[3, 50, 77]] = np.nan
    ok = ~np.isnan(p)
    expected = np.full_like(p, np.nan)
    expected[ok] = multipletests(p[ok], method="fdr_bh")[1]
    np.testing.assert_allclose(bh_adjust(p), expected, rtol=0, atol=1e-12)
    assert np.isnan(bh_adjust(p)[[3, 50, 77]]).all()


def test_bh_hand_example():
    # m = 4, sorted p .01 .03 .04 .4 -> p*m/rank = .04 .06 .0533 .4; cumulative min from the top.
    np.testing.assert_allclose(
        bh_adjust([0.01, 0.04, 0.03, 0.4]), [0.04, 0.0533333333, 0.0533333333, 0.4]
    )


def test_error_message_names_file_column_rows_and_hint():
    msg = format_message("bad", file="x.csv", column="NPX", rows=range(10), hint="fix it")
    assert msg.startswith("x.csv: column 'NPX': bad.")
    assert "0, 1, 2, 3, 4 (and 5 more)" in msg
    assert msg.endswith("Hint: fix it")
    err = MissingColumnError(msg)
    assert isinstance(err, OlinkpipeError) and isinstance(err, KeyError)
    assert str(err) == msg
