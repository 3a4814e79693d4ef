"""``summarize``: the headline numbers of a dataset (used by ``olinkpipe info``)."""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from .convert import measured_mask

__all__ = ["summarize"]


def summarize(adata: ad.AnnData) -> dict[str, Any]:
    """Headline numbers of an Olink dataset.

        Parameters
        ----------
        adata
            Samples × assays AnnData as returned by :func:`olinkpipe.read_npx`.

        Returns
        -------
        dict
            ``product``, ``data_type``, ``source``, ``panels`` (count), ``panel_names``,
            ``samples``, ``control_samples``, ``assays``, ``control_assays``, ``plates``
            (distinct plates), ``qc_warnings`` (samples with a non-passing QC on any panel),
            ``qc_warning_cells`` (measurements flagged), ``pct_missing`` (NaN among measured
            cells), ``pct_below_lod`` (below LOD among measured cells with NPX and LOD).

        Examples
        --------
        >>> import pandas as pd

    from .convert import measured_mask
        >>> from olinkpipe.io import from_long, summarize
        >>> df = pd.DataFrame({"SampleID": ["S1", "S2"], "OlinkID": ["OID1", "OID1"],
        ...                    "Assay": ["IL6", "IL6"], "NPX": [1.5, 0.2], "LOD": [1.0, 1.0]})
        >>> summarize(from_long(df))["pct_below_lod"]
        50.0
    """
    prov = adata.uns.get("olinkpipe", {}) or {}
    X = np.asarray(adata.X.toarray() if hasattr(adata.X, "toarray") else adata.X, dtype=float)
    measured = measured_mask(adata)
    n_meas = int(measured.sum())
    nan = np.isnan(X) & measured
    lod = np.asarray(adata.layers["lod"], dtype=float) if "lod" in adata.layers else None
    if lod is not None:
        with np.errstate(invalid="ignore"):
            has = measured & ~np.isnan(X) & ~np.isnan(lod)
            below = has & (X < lod)
        pct_below = round(float(100.0 * below.sum() / has.sum()), 2) if has.sum() else float("nan")
    else:
        pct_below = float("nan")
    plates: set[str] = set()
    if "PlateID" in adata.obsm:
        for col in adata.obsm["PlateID"].columns:
            plates.update(v for v in adata.obsm["PlateID"][col].astype(str) if v)
    elif "PlateID" in adata.obs:
        for v in adata.obs["PlateID"].astype(str):
            plates.update(p for p in v.split(";") if p)
    qc_samples = int((~adata.obs["qc_pass"].astype(bool)).sum()) if "qc_pass" in adata.obs else 0
    qc_cells = (
        int(np.asarray(adata.layers["qc_warning"]).sum()) if "qc_warning" in adata.layers else 0
    )
    panels = list(pd.unique(adata.var["Panel"].astype(str))) if "Panel" in adata.var else []
    src = prov.get("source", [])
    return {
        "product": str(prov.get("product", "unknown")),
        "data_type": str(prov.get("data_type", "NPX")),
        "source": ", ".join(str(s) for s in src) if not isinstance(src, str) else src,
        "panels": len(panels),
        "panel_names": "; ".join(panels),
        "samples": int(adata.n_obs),
        "control_samples": int(adata.obs["is_control"].astype(bool).sum())
        if "is_control" in adata.obs
        else 0,
        "assays": int(adata.n_vars),
        "control_assays": int(adata.var["is_control"].astype(bool).sum())
        if "is_control" in adata.var
        else 0,
        "plates": len(plates),
        "qc_warnings": qc_samples,
        "qc_warning_cells": qc_cells,
        "pct_missing": round(float(100.0 * nan.sum() / n_meas), 2) if n_meas else float("nan"),
        "pct_below_lod": pct_below,
    }
