"""The kernels behind :func:`olinkpipe.tl.differential`'s methods, one adapter per method.

Each adapter takes the pulled data of a two-group design (:class:`Data`: paired
differences or moments, or the two groups' matrices, and covariate columns) and the
options, and returns per-assay arrays (``estimate``, ``ci_low``, ``ci_high``,
``statistic``, ``df``, ``p_value``, ``n``, ``reason``). A method whose statistic needs every
assay (limma's prior) adds a ``finish`` step run once over all assays. The registry
:mod:`olinkpipe.tl.methods` names them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels, _limma


@dataclass
class Data:
    """The matrices a kernel reads (samples/pairs × assays), pulled by ``de._pull``."""

    paired: bool
    d: np.ndarray | None = None
    xr: np.ndarray | None = None
    xt: np.ndarray | None = None
    zcov: np.ndarray | None = None
    moments: tuple | None = None
    mean_reference: np.ndarray | None = None
    mean_target: np.ndarray | None = None


def ttest(data: Data, opts: dict) -> dict:
    if data.paired:
        return _kernels.one_sample_t_moments(*data.moments, conf_level=opts["conf_level"])
    return _kernels.two_sample_t(
        data.xt, data.xr, equal_var=opts["equal_var"], conf_level=opts["conf_level"]
    )


def wilcoxon(data: Data, opts: dict) -> dict:
    kw = {
        "exact": opts["exact"],
        "correction": True,
        "conf_level": opts["conf_level"],
        "hodges_lehmann": opts["hodges_lehmann"],
        "ci_method": opts["wilcoxon_ci"],
    }
    if data.paired:
        return _kernels.signed_rank(data.d, **kw)
    return _kernels.rank_sum(data.xt, data.xr, **kw)


def moderated(data: Data, opts: dict) -> dict:
    """Per-assay least squares: the inputs of eBayes (the prior needs every assay: finish)."""
    if data.paired and data.moments is not None:
        n, mean, ss = data.moments
        with np.errstate(invalid="ignore", divide="ignore"):
            s2 = ss / (n - 1.0)
            unscaled = 1.0 / np.sqrt(n)
        return {
            "coef": mean,
            "unscaled": unscaled,
            "s2": s2,
            "df": np.maximum(n - 1.0, 0.0),
            "n_units": n,
            "full_rank": None,
            "unit_name": "complete pairs",
            "n": n,
        }
    if data.paired:
        z = np.column_stack([np.ones(data.d.shape[0]), data.zcov])
        n_units = (~np.isnan(data.d)).sum(axis=0)
        fit = _limma.masked_ols(data.d, z, 0)
        unit_name, n = "complete pairs", n_units
    else:
        y = np.vstack([data.xt, data.xr])
        g = np.r_[np.ones(data.xt.shape[0]), np.zeros(data.xr.shape[0])]
        z = np.column_stack([np.ones(y.shape[0]), g, data.zcov])
        nt = (~np.isnan(data.xt)).sum(axis=0)
        nr = (~np.isnan(data.xr)).sum(axis=0)
        fit = _limma.masked_ols(y, z, 1)
        n_units, unit_name, n = np.minimum(nt, nr), "samples in a group", nt + nr
    return {
        "coef": fit["coef"],
        "unscaled": fit["unscaled"],
        "s2": fit["s2"],
        "df": fit["df"],
        "n_units": n_units,
        "full_rank": fit["full_rank"],
        "unit_name": unit_name,
        "n": n,
    }


def moderated_finish(fit: dict, opts: dict) -> dict:
    """eBayes over all assays (limma's prior is global: a dask path pools the blocks first)."""
    args = {k: v for k, v in fit.items() if k != "n"}
    out = _limma.ebayes(**args, conf_level=opts["conf_level"])
    out["n"] = fit["n"]
    return out
