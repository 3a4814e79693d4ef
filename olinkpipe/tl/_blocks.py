"""tl on a dask-backed AnnData: the in-memory code run per block of assays, then combined.

A dask-backed AnnData holds ``X`` (and its layers) as a ``dask.array.Array`` whose blocks are
all samples × a panel-aligned block of assays, with ``obs``/``var`` in memory. Every tl
statistic is per assay apart from a few steps over all assays (Benjamini–Hochberg, the sort,
limma's prior), so each public function runs unchanged on each block's in-memory numpy
sub-matrix inside a dask task (:func:`map_blocks`), and this module combines the per-block
results: concatenation in assay order, the steps over all assays, attrs and warnings merged.
Only the per-assay result rows come back from the tasks: under a ``dask.distributed`` client
the blocks are read and tested on the workers and the matrix never reaches the client.

A public function opts in with one hook at its top that hands itself to a combiner::

    if _blocks.is_lazy(adata):
        kw = locals()
        return _blocks.rows(anova, kw.pop("adata"), kw, family=_blocks.covariates_unadjusted)

The combiners take the function as an argument, so this module imports none of the modules
that use it (no import cycle). A frame of rows per assay (and term) sorted by p-value with
BH over all rows (or per family) is :func:`rows`; posthoc tables are :func:`posthoc`; BH
within each term is :func:`by_term`; other shapes (``tl.differential``'s, in ``tl/de.py``)
are a few lines built from :func:`map_blocks`, :func:`in_assay_order`, :func:`merge_attrs`
and :func:`emit`. Progress bars are off inside blocks (``progress``). ``differential``
also keeps its per-block kernel output (:func:`stash`) so that its own ``_frame`` and the
moderated t's global prior run once over all assays.
"""

from __future__ import annotations

import re
import threading
import warnings
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from contextvars import ContextVar
from types import SimpleNamespace
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .._dask import is_dask, require_dask
from .._stats import bh_adjust
from .._warnings import collect
from ..errors import OlinkpipeError, OlinkpipeWarning, format_message, preview

__all__ = ["is_lazy", "map_blocks", "rows", "in_assay_order", "merge_attrs", "emit", "stash"]

#: the kernel output of ``differential`` inside a block task (see :func:`stash`)
_STASH: ContextVar[dict | None] = ContextVar("olinkpipe_block_stash", default=None)
#: functions whose per-assay code is not thread-safe (warnings.catch_warnings) run one
#: block at a time per process
_SERIAL = threading.Lock()

#: attrs summed / concatenated over blocks; every other key is the same in every block
SUM_ATTRS = ("n_tested",)
CONCAT_ATTRS = ("excluded_assays", "untested_assays", "singular_fits", "hessian_dropped")

#: warnings that name assays: (pattern, attrs key with all of them); the merged warning says
#: how many over all blocks and previews the combined list (None: dropped, re-emitted later)
ASSAY_WARNINGS: list[tuple[re.Pattern, str | None]] = [
    (re.compile(r"^\w+: left out \d+ control assay\(s\): "), "excluded_assays"),
    (re.compile(r"^\w+: \d+ assay\(s\) not tested \(see 'reason'\): "), "untested_assays"),
    (re.compile(r"^\w+: \d+ assay\(s\) with a near-singular deviance Hessian"), "hessian_dropped"),
    (re.compile(r"R's Wilcoxon CI cannot reach the requested level"), None),
]


# --------------------------------------------------------------------------------------
# detection and the block map


def is_lazy(adata: ad.AnnData, layer: str | None = None) -> bool:
    """True when the matrix is a dask array or obs/var are not in memory (``read_lazy``)."""
    if not isinstance(adata.obs, pd.DataFrame) or not isinstance(adata.var, pd.DataFrame):
        return True
    x = adata.X if layer is None else adata.layers[layer]
    return is_dask(x)


def _in_memory(frame: Any, what: str) -> pd.DataFrame:
    """obs/var as pandas: ``read_lazy`` gives xarray-backed frames (small: load them)."""
    if isinstance(frame, pd.DataFrame):
        return frame
    if hasattr(frame, "to_memory"):
        out = frame.to_memory()
        if isinstance(out, pd.DataFrame):
            return out
    msg = format_message(
        f"adata.{what} is a {type(frame).__name__}, not a pandas DataFrame",
        hint=f"Load it first, e.g. adata.{what} = adata.{what}.to_memory().",
    )
    raise OlinkpipeError(msg)


def _matrix(adata: ad.AnnData, layer: str | None, step: str):
    """The dask matrix, with all samples in each block (row chunks merged lazily)."""
    x = adata.X if layer is None else adata.layers[layer]
    require_dask(f"{step} on a dask-backed AnnData")
    if len(x.chunks[0]) > 1:
        x = x.rechunk({0: -1})
    return x


def _task(func, xb, obs, var, kwargs, serial):
    """One block: the in-memory function on this block's assays, warnings kept apart."""
    if hasattr(xb, "toarray"):
        xb = xb.toarray()
    sub = ad.AnnData(np.asarray(xb, dtype=float), obs=obs, var=var)
    box: dict = {}
    token = _STASH.set(box)
    lock = _SERIAL if serial else nullcontext()
    try:
        with lock, collect() as sink:
            frame = func(sub, **kwargs)
    finally:
        _STASH.reset(token)
    # a stash replaces the frame: only per-assay arrays travel back
    return {
        "frame": None if box else frame,
        "attrs": dict(frame.attrs),
        "stash": box,
        "warnings": sink,
    }


def map_blocks(
    func: Callable,
    adata: ad.AnnData,
    kwargs: dict,
    *,
    layer: str | None = None,
    assays: Sequence[str] | None = None,
    serial: bool = False,
) -> SimpleNamespace:
    """Run ``func(block_adata, **kwargs)`` on every assay block of a dask-backed AnnData.

    Each block is an in-memory AnnData (all of ``obs``, the block's ``var``, its numpy
    sub-matrix as ``X``) built inside a dask task on whatever scheduler is active; only the
    returned frames, attrs, stashes and warnings come back. ``assays`` restricts (and orders)
    the assays first, as the posthoc functions do. Returns ``outs`` (one dict per block:
    ``frame``, ``attrs``, ``stash``, ``warnings``), ``var`` (the assays in their order),
    ``offsets`` (first assay of each block) and ``obs``.
    """
    import dask

    step = getattr(func, "__name__", "tl")
    if "layer" in kwargs:  # the blocks carry the layer as their X
        kwargs = {**kwargs, "layer": None}
    obs = _in_memory(adata.obs, "obs")
    var = _in_memory(adata.var, "var")
    x = _matrix(adata, layer, step)
    if assays is not None:
        idx = var.index.get_indexer(list(assays))
        x = x[:, idx]
        var = var.iloc[idx]
    if not var.index.is_unique:
        msg = format_message(
            f"{step} on a dask-backed AnnData needs unique var names (OlinkIDs)",
            rows=var.index[var.index.duplicated()].unique()[:5],
            hint="Call adata.var_names_make_unique() or drop the duplicated assays.",
        )
        raise OlinkpipeError(msg)
    widths = np.asarray(x.chunks[1], dtype=int)
    offsets = np.r_[0, np.cumsum(widths)[:-1]].astype(int)
    parts = x.to_delayed().ravel()
    keep = widths > 0
    parts, offsets, widths = parts[keep], offsets[keep], widths[keep]
    obs_d = dask.delayed(obs, pure=True)
    run = dask.delayed(_task, pure=True)
    tasks = [
        run(func, blk, obs_d, var.iloc[o : o + w], kwargs, serial)
        for blk, o, w in zip(parts, offsets, widths, strict=True)
    ]
    outs = list(dask.compute(*tasks))
    return SimpleNamespace(outs=outs, var=var, obs=obs, offsets=offsets)


def plain(func, adata: ad.AnnData, kwargs: dict, layer: str | None):
    """obs/var lazy (``read_lazy``) but X in memory: load obs/var, run the plain function."""
    x = adata.X if layer is None else adata.layers[layer]
    sub = ad.AnnData(
        x.toarray() if hasattr(x, "toarray") else np.asarray(x),
        obs=_in_memory(adata.obs, "obs"),
        var=_in_memory(adata.var, "var"),
    )
    if "layer" in kwargs:  # the chosen matrix is the X of sub
        kwargs = {**kwargs, "layer": None}
    return func(sub, **kwargs)


# --------------------------------------------------------------------------------------
# combining


def stash(**arrays: Any) -> None:
    """Inside a block task, keep per-assay arrays for the combiner (no-op otherwise)."""
    box = _STASH.get()
    if box is not None:
        box.update(arrays)


def concat_arrays(dicts: Sequence[dict]) -> dict:
    """Per-assay arrays concatenated over blocks; other values (scalars, text) from the first."""
    out = {}
    for k, v in dicts[0].items():
        if isinstance(v, np.ndarray) and v.ndim >= 1:
            out[k] = np.concatenate([d[k] for d in dicts])
        elif v is None:
            out[k] = None
        else:
            out[k] = v
    return out


def merge_attrs(attrs: Sequence[dict]) -> dict:
    """One attrs dict: counts summed, assay lists concatenated, the rest from the first."""
    out = dict(attrs[0])
    for k in out:
        if k in SUM_ATTRS:
            out[k] = int(sum(a[k] for a in attrs))
        elif k in CONCAT_ATTRS:
            out[k] = [i for a in attrs for i in a[k]]
    return out


def in_assay_order(frames: Sequence[pd.DataFrame], var: pd.DataFrame, terms=None) -> pd.DataFrame:
    """Block frames concatenated in the in-memory row order before its sort: assays in
    ``var`` order, then ``terms`` order within an assay (rows of equal key keep their order)."""
    frame = pd.concat(list(frames), ignore_index=True)
    a = var.index.astype(str).get_indexer(frame["OlinkID"].astype(str))
    keys = [a]
    if terms is not None and "term" in frame:
        t = pd.Index(list(terms)).get_indexer(frame["term"])
        keys = [t, a]
    order = np.lexsort(keys)
    return frame.iloc[order].reset_index(drop=True)


def sort_by_p(frame: pd.DataFrame, by: Sequence[str] = ("p_value",)) -> pd.DataFrame:
    """The in-memory sort: stable, NaN last."""
    out = frame.sort_values(list(by), kind="stable", na_position="last")
    return out.reset_index(drop=True)


def _merged_warnings(outs: Sequence[dict], attrs: dict) -> list[tuple[str, type]]:
    """Block warnings merged: identical ones once, assay ones rebuilt over all blocks, in
    the order they came (a message new in a later block goes after its predecessor there)."""
    merged: list[tuple[Any, str, type]] = []
    for out in outs:
        pos = 0
        for msg, cat in out["warnings"]:
            key: Any = msg
            for i, (pat, attr) in enumerate(ASSAY_WARNINGS):
                if pat.search(msg):
                    if attr is None:
                        key = None
                    else:
                        key = ("assays", i)
                        msg = _rebuild(msg, attrs.get(attr, []))
                    break
            if key is None:
                continue
            found = [j for j, (k, _, _) in enumerate(merged) if k == key]
            if found:
                pos = found[0] + 1
                continue
            merged.insert(pos, (key, msg, cat))
            pos += 1
    return [(m, c) for _, m, c in merged]


def _rebuild(msg: str, ids: Sequence[str]) -> str:
    """``step: N ... : preview`` with N and the preview over the combined assays."""
    msg = re.sub(r"\d+", str(len(ids)), msg, count=1)
    head = msg.rsplit(": ", 1)[0]
    return f"{head}: {preview(ids)}"


def emit(outs: Sequence[dict], attrs: dict, *, stacklevel: int = 4) -> None:
    """Re-emit the blocks' warnings once (see :func:`_merged_warnings`) at the user's line."""
    for msg, cat in _merged_warnings(outs, attrs):
        warnings.warn(msg, cat or OlinkpipeWarning, stacklevel=stacklevel)


def _finish(frame, res: SimpleNamespace, attrs: dict, *, stacklevel: int = 5) -> pd.DataFrame:
    emit(res.outs, attrs, stacklevel=stacklevel)
    frame.attrs = attrs
    return frame


def _significant(frame: pd.DataFrame, alpha: float) -> None:
    frame["significant"] = frame["p_adj"].fillna(1.0) < alpha


# --------------------------------------------------------------------------------------
# the combiners: each is given the public function it runs on every block


def rows(
    func: Callable,
    adata: ad.AnnData,
    kw: dict,
    *,
    family: Callable[[pd.DataFrame, dict], np.ndarray] | None = None,
) -> pd.DataFrame:
    """The combiner of a frame of rows per assay (and ``term``), sorted by ``p_value``.

    Block frames are put back in assay (then ``attrs["terms"]``) order, ``p_adj`` is
    Benjamini–Hochberg within each ``family`` label (``family(frame, attrs)`` gives one per
    row, None = not adjusted; default: all rows one family), ``significant`` is
    ``p_adj < kw["alpha"]``, then the stable sort by ``p_value`` (NaN last). A ``layer``
    keyword of ``func`` is honoured.
    """
    layer = kw.get("layer")
    if not is_dask(adata.X if layer is None else adata.layers[layer]):
        return plain(func, adata, kw, layer)
    res = map_blocks(func, adata, kw, layer=layer)
    attrs = merge_attrs([o["attrs"] for o in res.outs])
    frame = in_assay_order([o["frame"] for o in res.outs], res.var, attrs.get("terms"))
    p = frame["p_value"].to_numpy(dtype=float)
    labels = np.zeros(len(frame)) if family is None else np.asarray(family(frame, attrs))
    p_adj = np.full(len(frame), np.nan)
    codes, _ = pd.factorize(pd.Series(labels, dtype=object))  # None -> -1: not adjusted
    for c in np.unique(codes[codes >= 0]):
        p_adj[codes == c] = bh_adjust(p[codes == c])
    frame["p_adj"] = p_adj
    _significant(frame, kw["alpha"])
    return _finish(sort_by_p(frame), res, attrs, stacklevel=5)


def covariates_unadjusted(frame: pd.DataFrame, attrs: dict) -> np.ndarray:
    """BH family of anova/lmer rows: every factor and interaction row together; covariate
    rows reported but not adjusted (OlinkAnalyze's olink_anova / olink_lmer)."""
    return np.where(frame["term"].isin(attrs.get("covariates") or []), None, "variables")


def posthoc(func: Callable, adata: ad.AnnData, kw: dict) -> pd.DataFrame:
    """The combiner of posthoc tables (``tl.anova_posthoc``, ``tl.lmer_posthoc``): per assay
    and contrast, nothing pooled over assays."""
    if not is_dask(adata.X):
        return plain(func, adata, kw, None)
    assays = kw["assays"]
    if assays is not None:
        assays = [assays] if isinstance(assays, str) else list(assays)
        var = _in_memory(adata.var, "var")
        if not pd.Index(assays).isin(var.index).all():  # the function's own error
            return func(ad.AnnData(obs=_in_memory(adata.obs, "obs"), var=var), **kw)
    res = map_blocks(func, adata, kw | {"assays": None}, assays=assays)
    attrs = merge_attrs([o["attrs"] for o in res.outs])
    frame = pd.concat([o["frame"] for o in res.outs], ignore_index=True)
    return _finish(frame, res, attrs, stacklevel=5)


def by_term(func: Callable, adata: ad.AnnData, kw: dict) -> pd.DataFrame:
    """The combiner of :func:`olinkpipe.tl.longitudinal`: BH within each ``term``, rows
    sorted by term (in-memory order), then ``p_value``."""
    if not is_dask(adata.X):
        return plain(func, adata, kw, None)
    serial = kw["method"] == "mixed"  # its fits read warnings.catch_warnings
    res = map_blocks(func, adata, kw | {"progress": False}, serial=serial)
    attrs = merge_attrs([o["attrs"] for o in res.outs])
    first = res.outs[0]["frame"]
    terms = list(dict.fromkeys(first["term"]))  # in-memory order: term, then p_value
    frame = in_assay_order([o["frame"] for o in res.outs], res.var)
    frame["p_adj"] = frame.groupby("term")["p_value"].transform(lambda s: bh_adjust(s.to_numpy()))
    _significant(frame, kw["alpha"])
    frame["_t"] = pd.Index(terms).get_indexer(frame["term"])
    frame = sort_by_p(frame, ["_t", "p_value"]).drop(columns="_t")
    return _finish(frame, res, attrs)
