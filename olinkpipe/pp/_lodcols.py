"""LOD layers beyond ``layers["lod"]`` and OlinkAnalyze's MaxLOD update after normalization.

OlinkAnalyze treats every column named like an LOD (``LOD``, ``PlateLOD``, ``MaxLOD``,
``NCLOD``, ``FixedLOD``, ``PCNormalizedLOD``, ...) as an LOD: a normalization adds the
adjustment factor to all of them, and afterwards sets each ``MaxLOD``-like column to its
largest value per assay over the normalized data (``norm_internal_update_maxlod``).
The reader stores such columns as layers under their file names; these helpers find them.
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np

from .._dask import is_dask, require_dask

#: the spellings OlinkAnalyze 5.0.2 reads as an LOD column (besides ``layers["lod"]``)
LOD_NAMES = (
    "LOD",
    "lod",
    "Plate LOD",
    "Plate_LOD",
    "PlateLOD",
    "plate lod",
    "plate_lod",
    "platelod",
    "Max LOD",
    "Max_LOD",
    "MaxLOD",
    "max lod",
    "max_lod",
    "maxlod",
    "LODNPX",
    "lodnpx",
    "LOD_NPX",
    "lod_npx",
    "PCNormalizedLOD",
    "pcnormalizedlod",
    "pc_normalized_lod",
    "NCLOD",
    "NCPCNormalizedLOD",
    "FixedLOD",
    "FixedPCNormalizedLOD",
    "LODIPCNormalizedNPX",
    "LODQuant",
)
#: those OlinkAnalyze updates to the per-assay maximum after a normalization
MAX_LOD_NAMES = tuple(n for n in LOD_NAMES if "max" in n.lower())


def shifted_layers(adata: ad.AnnData) -> list[str]:
    """Layers a normalization shifts with NPX: ``lod`` and every other LOD-named layer."""
    return [k for k in adata.layers if k == "lod" or k in LOD_NAMES]


def max_lod_layers(adata: ad.AnnData) -> list[str]:
    """MaxLOD-named layers, and ``lod`` when it was read from a MaxLOD column."""
    keys = [k for k in adata.layers if k in MAX_LOD_NAMES]
    prov = adata.uns.get("olinkpipe", {})
    role = prov.get("columns", {}).get("lod") if isinstance(prov, dict) else None
    if "lod" in adata.layers and isinstance(role, str) and role in MAX_LOD_NAMES:
        keys.append("lod")
    return keys


def update_max_lod(adata: ad.AnnData) -> list[str]:
    """Set every MaxLOD layer to its per-assay maximum (NaN skipped), in place.

    OlinkAnalyze's ``norm_internal_update_maxlod``, run after ``olink_normalization`` and
    ``olink_normalization_n``: the value goes to every cell that has an NPX or a MaxLOD
    (cells that are no measurement stay NaN). An assay with no MaxLOD stays NaN (R gives
    ``-Inf`` with a warning). Vectorised over assays; lazy on a dask-backed AnnData.
    Returns the layers updated.
    """
    keys = max_lod_layers(adata)
    X = adata.X
    for key in keys:
        layer = adata.layers[key]
        if is_dask(layer) or is_dask(X):
            da = require_dask("a dask-backed AnnData")
            lay = layer if is_dask(layer) else da.from_array(np.asarray(layer, dtype=float))
            with warnings.catch_warnings():  # an all-NaN column: NaN, quietly
                warnings.simplefilter("ignore", RuntimeWarning)
                top = np.asarray(da.nanmax(lay, axis=0).compute())
            keep = ~da.isnan(lay) | ~da.isnan(X)
            adata.layers[key] = da.where(keep, top[None, :], np.nan)
            continue
        arr = np.asarray(layer, dtype=float)
        has = ~np.isnan(arr)
        top = np.where(has.any(axis=0), np.where(has, arr, -np.inf).max(axis=0), np.nan)
        keep = has | ~np.isnan(np.asarray(X, dtype=float))
        adata.layers[key] = np.where(keep, top[None, :], np.nan)
    if _max_lod_table(adata):  # the compact layout: the assays × plates table of a MaxLOD
        tab = np.asarray(adata.varm["lod"], dtype=float)
        has = ~np.isnan(tab)
        top = np.where(has.any(axis=1), np.where(has, tab, -np.inf).max(axis=1), np.nan)
        adata.varm["lod"] = np.where(has, top[:, None], np.nan)
        keys.append("lod")
    return keys


def _max_lod_table(adata: ad.AnnData) -> bool:
    """True when the LOD is the plate table (``varm["lod"]``) read from a MaxLOD column."""
    prov = adata.uns.get("olinkpipe", {})
    role = prov.get("columns", {}).get("lod") if isinstance(prov, dict) else None
    compact = "lod" not in adata.layers and "lod" in adata.varm
    return compact and isinstance(role, str) and role in MAX_LOD_NAMES
