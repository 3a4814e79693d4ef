"""Provenance records in ``adata.uns["olinkpipe"]``: what was excluded, what was applied.

``uns["olinkpipe"]["excluded"]`` is a DataFrame with columns ``step, kind, id, reason``
(``kind`` is ``"sample"`` or ``"assay"``) so that it survives ``write_h5ad``.
"""

from __future__ import annotations

from collections.abc import Iterable

import anndata as ad
import pandas as pd

from ._warnings import warn

EXCLUDED_COLUMNS = ["step", "kind", "id", "reason"]


def provenance(adata: ad.AnnData) -> dict:
    """Return ``adata.uns["olinkpipe"]``, creating it (with an empty exclusion table)."""
    prov = adata.uns.setdefault("olinkpipe", {})
    if "excluded" not in prov or not isinstance(prov["excluded"], pd.DataFrame):
        prov["excluded"] = pd.DataFrame({c: pd.Series(dtype=str) for c in EXCLUDED_COLUMNS})
    return prov


def record_exclusion(
    adata: ad.AnnData,
    *,
    step: str,
    kind: str,
    ids: Iterable[object],
    reason: str,
    warn_user: bool = True,
) -> pd.DataFrame:
    """Append excluded samples/assays to ``uns["olinkpipe"]["excluded"]`` and warn.

    Returns the rows that were added.
    """
    ids = [str(i) for i in ids]
    prov = provenance(adata)
    new = pd.DataFrame({"step": step, "kind": kind, "id": ids, "reason": reason})
    if ids:
        prov["excluded"] = pd.concat([prov["excluded"], new], ignore_index=True)
        if warn_user:
            from .errors import preview

            warn(f"{step}: excluded {len(ids)} {kind}(s) ({reason}): {preview(ids)}", stacklevel=4)
    return new


def excluded(adata: ad.AnnData) -> pd.DataFrame:
    """The table of everything excluded so far (``step, kind, id, reason``)."""
    return provenance(adata)["excluded"].copy()
