"""AnnData -> long (tidy) Olink table: :func:`to_long` and :func:`measured_mask`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .._layout import has_lod, lod_matrix

DEFAULT_LONG = [
    "SampleID",
    "Index",
    "OlinkID",
    "UniProt",
    "Assay",
    "MissingFreq",
    "Panel",
    "Panel_Version",
    "PlateID",
    "QC_Warning",
    "LOD",
    "NPX",
]


def to_long(adata: ad.AnnData, *, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """Return the data in Olink's long format (one row per sample × assay measurement).

    Rows come assay by assay (``var`` order), samples in ``obs`` order within an assay (or
    sample by sample when the file that was read was ordered so, as Explore files are); a
    cell is a row when the sample ran on the assay's panel (``obsm["PlateID"]`` non-empty)
    and, if present, ``layers["measured"]`` is True. For data read with
    :func:`olinkpipe.read_npx` the columns are the file's, in the file's order, with the
    file's values (NaN where NPX was missing), so a long file round-trips.

    Parameters
    ----------
    adata
        Samples × assays AnnData as returned by :func:`olinkpipe.read_npx`.
    columns
        Column names to emit (default: those of the file that was read, else Olink's
        ``SampleID, Index, OlinkID, UniProt, Assay, MissingFreq, Panel, Panel_Version,
        PlateID, QC_Warning, LOD, NPX`` plus the other ``obs``/``var`` columns present).

    Returns
    -------
    DataFrame
        Long table with Olink's column names.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> df = pd.DataFrame({"SampleID": ["S1", "S2"], "OlinkID": ["OID1", "OID1"],
    ...                    "Assay": ["IL6", "IL6"], "NPX": [1.5, float("nan")]})
    >>> op.to_long(op.io.from_long(df))[["SampleID", "OlinkID", "NPX"]].shape
    (2, 3)
    """
    prov = adata.uns.get("olinkpipe", {})
    roles = dict(prov.get("columns", {})) if isinstance(prov, dict) else {}
    names = {
        "sample": roles.get("sample", "SampleID"),
        "olinkid": roles.get("olinkid", "OlinkID"),
        "value": roles.get("value", "NPX"),
        "lod": roles.get("lod", "LOD"),
        "plate": roles.get("plate", "PlateID"),
        "qc": roles.get("qc", "QC_Warning"),
    }
    dtypes = dict(prov.get("dtypes", {})) if isinstance(prov, dict) else {}
    coded = dict(prov.get("coded_layers", {})) if isinstance(prov, dict) else {}
    if columns is None:
        long_cols = prov.get("long_columns") if isinstance(prov, dict) else None
        if long_cols is not None and len(long_cols):
            columns = [str(c) for c in long_cols]
        else:
            derived = {"is_control", "qc_pass", "AssayType"}
            columns = [c for c in DEFAULT_LONG]
            extra_obs = [c for c in adata.obs.columns if c not in columns and c not in derived]
            extra_var = [c for c in adata.var.columns if c not in columns and c not in derived]
            columns += extra_obs + extra_var
            columns = [c for c in columns if _available(adata, c, names)]
    columns = list(columns)

    panels = (
        adata.var["Panel"].astype(str).to_numpy()
        if "Panel" in adata.var
        else np.full(adata.n_vars, "unknown", dtype=object)
    )
    present = np.ones(adata.shape, dtype=bool)
    plate_cell = None
    if "PlateID" in adata.obsm and isinstance(adata.obsm["PlateID"], pd.DataFrame):
        pm = adata.obsm["PlateID"]
        cols_idx = [pm.columns.get_loc(p) if p in pm.columns else -1 for p in panels]
        pvals = pm.to_numpy(dtype=object)
        plate_cell = np.empty(adata.shape, dtype=object)
        for j, k in enumerate(cols_idx):
            plate_cell[:, j] = pvals[:, k] if k >= 0 else ""
        if "measured" not in adata.layers:
            present = _present_from_plates(plate_cell.astype(str))
    if "measured" in adata.layers:
        present = np.asarray(adata.layers["measured"], dtype=bool)
    if str(prov.get("row_order", "assay")) == "sample":
        ii, jj = np.nonzero(present)  # sample by sample, as Explore files
    else:
        jj, ii = np.nonzero(present.T)  # assay by assay, as Target 96 files

    def cell(mat: Any) -> np.ndarray:
        mat = mat.toarray() if hasattr(mat, "toarray") else np.asarray(mat)
        return mat[ii, jj]

    out: dict[str, Any] = {}
    for c in columns:
        if c == names["sample"]:
            s = adata.obs["SampleID"] if "SampleID" in adata.obs else adata.obs_names.to_series()
            v = np.asarray(s, dtype=object)[ii]
        elif c == names["olinkid"]:
            v = np.asarray(adata.var_names, dtype=object)[jj]
        elif c == names["value"]:
            v = cell(adata.X).astype(np.float64)
        elif c == names["lod"] and has_lod(adata):
            v = cell(lod_matrix(adata)).astype(np.float64)
        elif c == names["plate"] and plate_cell is not None:
            v = plate_cell[ii, jj]
            v = np.where(v == "", None, v).astype(object)
        elif c == names["qc"] and c not in adata.layers and "QC_Warning" in adata.obsm:
            qm = adata.obsm["QC_Warning"]
            qv = qm.to_numpy(dtype=object)
            k = np.asarray(
                [qm.columns.get_loc(p) if p in qm.columns else -1 for p in panels], dtype=np.int64
            )
            v = np.where(k[jj] >= 0, qv[ii, np.maximum(k[jj], 0)], "")
            v = np.where(v == "", None, v).astype(object)
        elif c in adata.layers:
            if c in coded:
                cats = np.append(np.asarray(coded[c], dtype=object), None)
                codes = cell(adata.layers[c]).astype(np.int64)
                v = cats[np.where(codes < 0, len(cats) - 1, codes)]
            else:
                v = cell(adata.layers[c])
        elif c in adata.obs.columns:
            v = _column_values(adata.obs[c])[ii]
        elif c in adata.var.columns:
            v = _column_values(adata.var[c])[jj]
        elif c == "Index":
            v = (ii + 1).astype(np.int64)
        else:
            v = np.full(len(ii), np.nan)
        out[c] = _restore_dtype(v, dtypes.get(c))
    return pd.DataFrame(out, columns=columns)


def _present_from_plates(plate_cell: np.ndarray) -> np.ndarray:
    """Cells that are measurements by default: the sample has a plate on the assay's panel.

    When no plate is known at all (no PlateID column), every cell counts.
    """
    present = plate_cell != ""
    if not present.any():
        return np.ones(plate_cell.shape, dtype=bool)
    return present


def measured_mask(adata: ad.AnnData) -> np.ndarray:
    """Boolean samples × assays mask of the cells that are measurements (rows of the long file)."""
    if "measured" in adata.layers:
        return np.asarray(adata.layers["measured"], dtype=bool)
    if "PlateID" in adata.obsm and isinstance(adata.obsm["PlateID"], pd.DataFrame):
        pm = adata.obsm["PlateID"]
        panels = (
            adata.var["Panel"].astype(str).to_numpy()
            if "Panel" in adata.var
            else np.full(adata.n_vars, "unknown", dtype=object)
        )
        pvals = pm.to_numpy(dtype=object).astype(str)
        cell = np.full(adata.shape, "", dtype=object)
        for j, p in enumerate(panels):
            if p in pm.columns:
                cell[:, j] = pvals[:, pm.columns.get_loc(p)]
        return _present_from_plates(cell.astype(str))
    return np.ones(adata.shape, dtype=bool)


def _available(adata: ad.AnnData, c: str, names: dict[str, str]) -> bool:
    if c in names.values() or c in ("SampleID", "OlinkID"):
        return c != names["lod"] or has_lod(adata)
    return c in adata.obs.columns or c in adata.var.columns or c in adata.layers


def _column_values(s: pd.Series) -> np.ndarray:
    if isinstance(s.dtype, pd.CategoricalDtype):
        s = s.astype(object)
    arr = s.to_numpy()
    if arr.dtype == object:
        arr = np.where(pd.isna(arr), None, arr)
    return arr


def _restore_dtype(v: np.ndarray, dtype: str | None) -> Any:
    v = np.asarray(v)
    if dtype and dtype[:3] in ("int", "uin") and v.dtype.kind in "fiu":
        if v.dtype.kind == "f" and np.isnan(v).any():
            return v
        return v.astype(dtype)
    if dtype and dtype.startswith("float") and v.dtype.kind in "iubf":
        return v.astype(dtype)
    if dtype == "object" and v.dtype.kind != "O":
        return v.astype(object)
    if v.dtype == object:
        return pd.Series(v, dtype=object).where(pd.notna(v), np.nan).to_numpy()
    return v
