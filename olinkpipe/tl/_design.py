"""The design pieces every test function shares (the start of issue 20's design layer).

Today: the ``assays=`` argument of the post-hoc and non-parametric functions, checked
against ``var_names`` in one place so every function names unknown IDs the same way and
accepts one OlinkID as a plain string.
"""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad

from ..errors import DesignError, format_message


def assay_list(adata: ad.AnnData, assays: str | Sequence[str]) -> list[str]:
    """``assays`` as a list of OlinkIDs, every one in ``adata.var_names`` (else a
    DesignError naming the unknown ones)."""
    assays = [assays] if isinstance(assays, str) else list(assays)
    unknown = [a for a in assays if a not in adata.var_names]
    if unknown:
        msg = format_message(
            "assays not found in var", rows=unknown, hint="Pass OlinkIDs (var index)."
        )
        raise DesignError(msg)
    return assays


def subset_assays(adata: ad.AnnData, assays: str | Sequence[str] | None) -> ad.AnnData:
    """``adata`` itself when ``assays`` is None, else a view on those assays (checked)."""
    if assays is None:
        return adata
    return adata[:, assay_list(adata, assays)]
