"""``summarize``: the headline numbers of a dataset (used by ``olinkpipe info``)."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .._layout import has_lod, lod_matrix, qc_warning_matrix
from ..errors import preview
from .convert import _is_pass, measured_mask

__all__ = ["summarize", "summarize_panels"]


def _dense(mat: Any) -> np.ndarray:
    return np.asarray(mat.toarray() if hasattr(mat, "toarray") else mat, dtype=float)


def _pct(num: float, den: float) -> float:
    return round(float(100.0 * num / den), 2) if den else float("nan")


def _plates(adata: ad.AnnData) -> list[str]:
    plates: dict[str, None] = {}
    if "PlateID" in adata.obsm:
        for col in adata.obsm["PlateID"].columns:
            plates.update((v, None) for v in adata.obsm["PlateID"][col].astype(str) if v)
    elif "PlateID" in adata.obs:
        for v in adata.obs["PlateID"].astype(str):
            plates.update((p, None) for p in v.split(";") if p)
    return list(plates)


def summarize(adata: ad.AnnData) -> dict[str, Any]:
    """Headline numbers of an Olink dataset.

    Parameters
    ----------
    adata
        Samples × assays AnnData as returned by :func:`olinkpipe.read_npx`.

    Returns
    -------
    dict
        ``product``, ``data_type``, ``format`` (``long``/``parquet``/``wide``, with the
        sheet read), ``source``, ``panels`` (count), ``panel_names``, ``samples`` (obs
        rows), ``sample_ids`` (distinct SampleIDs), ``repeated_sample_ids`` (SampleIDs with
        more than one row, e.g. controls on two plates), ``control_samples``, ``assays``,
        ``control_assays``, ``plates`` (distinct plates), ``plate_names``, ``qc_warnings``
        (samples with a non-passing QC on any panel), ``qc_warning_samples`` (their names),
        ``qc_warning_cells`` (measurements flagged), ``pct_missing`` (NaN among measured
        cells), ``pct_below_lod`` (below LOD among measured cells with NPX and LOD),
        ``assays_half_below_lod`` (assays with more than half their values below LOD),
        ``excluded`` (rows of ``uns["olinkpipe"]["excluded"]``, e.g. duplicate rows
        dropped by the reader).

    Examples
    --------
    >>> import pandas as pd
    >>> from olinkpipe.io import from_long, summarize
    >>> df = pd.DataFrame({"SampleID": ["S1", "S2"], "OlinkID": ["OID1", "OID1"],
    ...                    "Assay": ["IL6", "IL6"], "NPX": [1.5, 0.2], "LOD": [1.0, 1.0]})
    >>> summarize(from_long(df))["pct_below_lod"]
    50.0
    """
    prov = adata.uns.get("olinkpipe", {}) or {}
    X = _dense(adata.X)
    measured = measured_mask(adata)
    n_meas = int(measured.sum())
    nan = np.isnan(X) & measured
    below_per_assay = None
    if has_lod(adata):
        lod = _dense(lod_matrix(adata))
        with np.errstate(invalid="ignore"):
            has = measured & ~np.isnan(X) & ~np.isnan(lod)
            below = has & (X < lod)
        pct_below = _pct(below.sum(), has.sum())
        n_has = has.sum(axis=0)
        below_per_assay = np.where(n_has > 0, below.sum(axis=0) / np.maximum(n_has, 1), 0.0)
    else:
        pct_below = float("nan")
    plates = _plates(adata)
    qc_fail = (
        ~adata.obs["qc_pass"].astype(bool).to_numpy()
        if "qc_pass" in adata.obs
        else np.zeros(adata.n_obs, dtype=bool)
    )
    qc_cells = int(np.asarray(qc_warning_matrix(adata)).sum())
    panels = list(pd.unique(adata.var["Panel"].astype(str))) if "Panel" in adata.var else []
    src = prov.get("source", [])
    ids = (
        adata.obs["SampleID"].astype(str)
        if "SampleID" in adata.obs
        else adata.obs_names.to_series().astype(str)
    )
    counts = ids.value_counts(sort=False)
    repeated = list(counts.index[counts.to_numpy() > 1])
    fmt = str(prov.get("format", "unknown"))
    sheet = dict(prov.get("metadata", {}) or {}).get("Sheet")
    if sheet:
        fmt += f" (sheet {sheet!r})"
    excluded = prov.get("excluded")
    return {
        "product": str(prov.get("product", "unknown")),
        "data_type": str(prov.get("data_type", "NPX")),
        "format": fmt,
        "source": ", ".join(str(s) for s in src) if not isinstance(src, str) else src,
        "panels": len(panels),
        "panel_names": "; ".join(panels),
        "samples": int(adata.n_obs),
        "sample_ids": int(len(counts)),
        "repeated_sample_ids": preview(repeated) if repeated else "none",
        "control_samples": int(adata.obs["is_control"].astype(bool).sum())
        if "is_control" in adata.obs
        else 0,
        "assays": int(adata.n_vars),
        "control_assays": int(adata.var["is_control"].astype(bool).sum())
        if "is_control" in adata.var
        else 0,
        "plates": len(plates),
        "plate_names": preview(plates, limit=8) if plates else "none",
        "qc_warnings": int(qc_fail.sum()),
        "qc_warning_samples": preview(adata.obs_names[qc_fail]) if qc_fail.any() else "none",
        "qc_warning_cells": qc_cells,
        "pct_missing": _pct(nan.sum(), n_meas),
        "pct_below_lod": pct_below,
        "assays_half_below_lod": int((below_per_assay > 0.5).sum())
        if below_per_assay is not None
        else 0,
        "excluded": int(len(excluded)) if isinstance(excluded, pd.DataFrame) else 0,
    }


def summarize_panels(adata: ad.AnnData) -> pd.DataFrame:
    """The headline numbers per panel (what ``olinkpipe info`` prints below the summary).

    Parameters
    ----------
    adata
        Samples × assays AnnData as returned by :func:`olinkpipe.read_npx`.

    Returns
    -------
    DataFrame
        One row per panel (index ``Panel``): ``assays``, ``samples`` (obs rows measured on
        the panel), ``plates``, ``qc_warning_samples`` (samples whose QC on this panel is
        not a pass), ``pct_missing`` and ``pct_below_lod`` (of the panel's measured cells).

    Examples
    --------
    >>> import pandas as pd
    >>> from olinkpipe.io import from_long, summarize_panels
    >>> df = pd.DataFrame({"SampleID": ["S1", "S2"], "OlinkID": ["OID1", "OID1"],
    ...                    "Assay": ["IL6", "IL6"], "Panel": ["Olink Inflammation"] * 2,
    ...                    "NPX": [1.5, 0.2], "LOD": [1.0, 1.0]})
    >>> per_panel = summarize_panels(from_long(df))
    >>> per_panel.loc["Olink Inflammation", ["samples", "pct_below_lod"]].tolist()
    [2.0, 50.0]
    """
    X = _dense(adata.X)
    measured = measured_mask(adata)
    lod = _dense(lod_matrix(adata))  # all NaN when there is no LOD
    panel_of = (
        adata.var["Panel"].astype(str).to_numpy()
        if "Panel" in adata.var
        else np.full(adata.n_vars, "unknown", dtype=object)
    )
    plate_m = adata.obsm.get("PlateID")
    qc_m = adata.obsm.get("QC_Warning")
    rows = []
    for panel in pd.unique(panel_of):
        cols = panel_of == panel
        m = measured[:, cols]
        x, lo = X[:, cols], lod[:, cols]
        with np.errstate(invalid="ignore"):
            has = m & ~np.isnan(x) & ~np.isnan(lo)
            below = has & (x < lo)
        on_panel = m.any(axis=1)
        plates = 0
        qc_bad = 0
        if isinstance(plate_m, pd.DataFrame) and panel in plate_m.columns:
            names = plate_m[panel].astype(str)
            plates = int(names[names != ""].nunique())
        if isinstance(qc_m, pd.DataFrame) and panel in qc_m.columns:
            qc_bad = int((on_panel & ~_is_pass(qc_m[panel].astype(str).to_numpy())).sum())
        rows.append(
            {
                "Panel": panel,
                "assays": int(cols.sum()),
                "samples": int(on_panel.sum()),
                "plates": plates,
                "qc_warning_samples": qc_bad,
                "pct_missing": _pct((m & np.isnan(x)).sum(), m.sum()),
                "pct_below_lod": _pct(below.sum(), has.sum()),
            }
        )
    return pd.DataFrame(rows).set_index("Panel")
