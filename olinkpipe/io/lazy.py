"""``read_npx(..., chunks=...)``: a dask-backed AnnData, blocks of assays aligned to panels.

X and every layer are ``dask.array.Array`` s whose blocks hold all samples and a block of
assays that never spans two panels. For parquet nothing of the matrix is read at read time:
the key and metadata columns are read to build ``obs``/``var``/``obsm``/``uns`` (passes A and
B of :mod:`olinkpipe.io.stream`), and each block is read by one task that reads only the
row groups holding its assays. Other formats (and parquet files that the streaming path
leaves to the in-memory reader) are read in memory and then wrapped with
``dask.array.from_array`` in the same layout.
"""

from __future__ import annotations

import math
from typing import Any

import anndata as ad
import numpy as np

from .._dask import require_dask
from .._layout import code_dtype
from ..errors import DesignError
from . import stream

__all__ = ["check_chunks", "assay_blocks", "wrap", "lazy"]


def check_chunks(chunks: Any) -> None:
    """Raise DesignError unless ``chunks`` is ``"auto"``, ``"panel"`` or a positive int."""
    ok = chunks in ("auto", "panel") or (
        isinstance(chunks, int | np.integer) and not isinstance(chunks, bool) and chunks > 0
    )
    if not ok:
        msg = (
            f"Argument chunks={chunks!r} must be 'auto', 'panel' or a positive number of "
            "assays per block."
        )
        raise DesignError(msg)


def assay_blocks(panels: np.ndarray, n_obs: int, chunks: Any) -> list[tuple[int, int]]:
    """``(lo, hi)`` assay ranges: runs of one panel in ``var`` order, split to the size."""
    panels = np.asarray(panels)
    n = len(panels)
    if n == 0:
        return []
    starts = [0, *(np.flatnonzero(panels[1:] != panels[:-1]) + 1).tolist(), n]
    size = None
    if chunks == "auto":
        size = stream.auto_block(n_obs)
    elif chunks != "panel":
        size = int(chunks)
    out = []
    for lo, hi in zip(starts[:-1], starts[1:], strict=True):
        step = hi - lo if size is None else size
        if size is not None and chunks == "auto":  # equal blocks within the panel
            k = math.ceil((hi - lo) / size)
            step = math.ceil((hi - lo) / k)
        out += [(a, min(a + step, hi)) for a in range(lo, hi, step)]
    return out


def wrap(adata: ad.AnnData, chunks: Any) -> ad.AnnData:
    """An in-memory AnnData with X and every layer as dask arrays in the block layout."""
    da = require_dask("read_npx(chunks=...)")
    panels = adata.var["Panel"].to_numpy() if "Panel" in adata.var else np.zeros(adata.n_vars)
    blocks = assay_blocks(panels, adata.n_obs, chunks)
    widths = tuple(hi - lo for lo, hi in blocks) or (0,)
    layout = ((adata.n_obs,), widths)
    adata.X = da.from_array(adata.X, chunks=layout)
    for k in list(adata.layers.keys()):
        adata.layers[k] = da.from_array(np.asarray(adata.layers[k]), chunks=layout)
    return adata


def _dtypes(plan: stream.StreamPlan) -> dict[str, Any]:
    """dtype of every array a block task returns (code layers: the smallest int)."""
    out: dict[str, Any] = {"X": np.float64, "lod": np.float64, "measured": bool}
    for c in plan.layer_cols:
        out[c] = code_dtype(len(plan.coded[c])) if c in plan.coded else np.float64
    return out


def _block(plan: stream.StreamPlan, lo: int, hi: int) -> dict:
    vals = stream.read_values(plan, lo, hi)
    roles = plan.roles
    X = vals.pop(roles["value"])
    out = {"X": X}
    if plan.lod_table is None:  # else the plate table, stored by stream.build
        out["lod"] = vals.pop(roles["lod"]) if roles["lod"] else np.full(X.shape, np.nan)
    dtypes = _dtypes(plan)
    out.update({c: vals.pop(c).astype(dtypes[c], copy=False) for c in plan.layer_cols})
    out.update(stream._derived(plan, lo, hi))
    return out


def lazy(plan: stream.StreamPlan, chunks: Any, *, file: str, product: str | None) -> ad.AnnData:
    """The dask-backed AnnData of a scanned parquet dataset (no value read yet).

    A LOD constant per assay and plate is the plate table ``varm["lod"]`` found by the scan
    (as the in-memory reader stores it), anything else a lazy full layer; ``qc_warning`` /
    ``below_lod`` are computed on demand (:mod:`olinkpipe._layout`)."""
    da = require_dask("read_npx(chunks=...)")
    import dask

    panels = plan.panel_uni[plan.assay_panel]
    blocks = assay_blocks(panels, plan.n_obs, chunks)
    names = ["X", *(["lod"] if plan.lod_table is None else []), *plan.layer_cols]
    if stream.needs_measured(plan):
        names.append("measured")
    dtypes = _dtypes(plan)
    plan_d = dask.delayed(plan, traverse=False)
    parts: dict[str, list] = {k: [] for k in names}
    for lo, hi in blocks:
        task = dask.delayed(_block, pure=True)(plan_d, lo, hi)
        for k in names:
            parts[k].append(da.from_delayed(task[k], shape=(plan.n_obs, hi - lo), dtype=dtypes[k]))
    arrays = {
        k: da.concatenate(v, axis=1)
        if v
        else da.zeros((plan.n_obs, 0), dtype=dtypes[k], chunks=((plan.n_obs,), (0,)))
        for k, v in parts.items()
    }
    X = arrays.pop("X")
    return stream.build(
        plan, X, arrays, file=file, product=product, data_format="parquet", derived=False
    )
