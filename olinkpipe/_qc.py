"""The QC vocabulary: which ``QC_Warning`` / ``SampleQC`` values count as a pass.

One rule for io, pp and pl, the one OlinkAnalyze applies when it reads a file: ``PASS``,
``OK`` and ``PASSED`` (any case, surrounding spaces ignored) pass, and so does a missing or
empty value (not every export has a QC column); anything else (``WARN``, ``Warning``,
``FAIL``, ``NA`` text ...) does not.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

__all__ = ["PASS_VALUES", "is_pass"]

#: QC values that pass, upper-cased (missing and empty pass too: see :func:`is_pass`)
PASS_VALUES = frozenset({"PASS", "OK", "PASSED"})


def is_pass(values: Iterable | np.ndarray | pd.Series) -> np.ndarray:
    """True where a QC value is a pass (or missing/empty), as a bool array of the same shape.

    Examples
    --------
    >>> is_pass(["Pass", "PASSED", " ok ", "", None, "Warning", "FAIL"]).tolist()
    [True, True, True, True, True, False, False]
    """
    values = np.asarray(values, dtype=object)
    if values.size == 0:
        return np.ones(values.shape, dtype=bool)
    codes, uniques = pd.factorize(values.ravel(), use_na_sentinel=True)
    ok_u = np.array([str(u).strip().upper() in PASS_VALUES or not str(u).strip() for u in uniques])
    ok_u = np.append(ok_u, True)  # the sentinel -1 (missing) is a pass
    return ok_u[np.where(codes < 0, len(ok_u) - 1, codes)].reshape(values.shape)
