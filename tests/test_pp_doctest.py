"""The docstring examples of olinkpipe.pp and olinkpipe.pl.qc run and print what they show.

They run on the bundled example study (``op.datasets.load_example()``), as the user's own
``python -m pytest --doctest-modules olinkpipe/pp`` would.
"""

from __future__ import annotations

import doctest
import importlib
import warnings

import matplotlib.pyplot as plt
import pytest

from olinkpipe.errors import OlinkpipeWarning

MODULES = [
    "olinkpipe.pp.qc",
    "olinkpipe.pp.lod",
    "olinkpipe.pp.normalize",
    "olinkpipe.pp.bridge",
    "olinkpipe.pl.qc",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OlinkpipeWarning)
        result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    plt.close("all")
    assert result.attempted > 0
    assert result.failed == 0, f"{result.failed} example(s) failed in {name}"


def test_every_public_function_has_a_runnable_example():
    import olinkpipe as op

    functions = [getattr(op.pp, n) for n in op.pp.__all__]
    functions += [getattr(op.pl, n) for n in ("qc", "pca", "distribution", "bridge")]
    for fn in functions:
        doc, name = fn.__doc__ or "", fn.__qualname__
        assert callable(fn), name
        assert ">>> " in doc.split("Examples", 1)[-1], name
        assert "+SKIP" not in doc, name
