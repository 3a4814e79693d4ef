"""Per-patient proteomic changes, to set beside clinical measures (expansion, IL-6, CRP)."""

from __future__ import annotations

from collections.abc import Sequence

import anndata as ad
import numpy as np
import pandas as pd

from .._design import (
    assay_positions,
    matrix,
    pair_two_levels,
    report_pairs,
    require_obs,
    two_levels,
)

__all__ = ["protein_changes"]


def protein_changes(
    adata: ad.AnnData,
    *,
    groupby: str,
    reference: str,
    target: str,
    pair: str,
    assays: Sequence[str] | None = None,
    layer: str | None = None,
) -> pd.DataFrame:
    """Within-patient change of NPX (target − reference), one row per patient.

    The table to correlate proteomic changes with clinical measures, e.g. the post − pre
    change of SIT1, CD28 and IL2RB against peak CAR-T expansion with
    :func:`olinkpipe.clinical.correlate`. Pairing follows :func:`olinkpipe.tl.differential`:
    a patient with a missing member or more than one sample per level is left out, warned
    about and listed in ``attrs["excluded_pairs"]``; never averaged.

    Parameters
    ----------
    adata
        Samples × assays AnnData as returned by :func:`olinkpipe.read_npx`.
    groupby
        Column of ``obs`` with the levels (e.g. ``"timepoint"``).
    reference, target
        The two levels; the change is ``target − reference``.
    pair
        Column of ``obs`` naming the patient.
    assays
        Assay names (``var["Assay"]``) or OlinkIDs to keep; all assays when ``None``.
    layer
        Layer to use instead of ``X``.

    Returns
    -------
    pandas.DataFrame
        Column ``pair`` (named like the ``obs`` column), then one column per assay, named by
        ``Assay`` (or by OlinkID where an assay name occurs on several panels), holding the
        change in NPX (NaN where either value is missing). ``attrs``: ``sign``,
        ``excluded_pairs``, ``olink_ids`` (column → OlinkID).

    Examples
    --------
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> ch = op.clinical.protein_changes(
    ...     adata, groupby="timepoint", reference="pre", target="post", pair="patient",
    ...     assays=["SIT1", "CD28", "IL2RB"])
    >>> list(ch.columns), len(ch)
    (['patient', 'SIT1', 'CD28', 'IL2RB'], 23)
    """
    require_obs(adata, [groupby, pair], hint=None)
    cols = assay_positions(adata, assays)
    lab, ref, tgt = two_levels(adata.obs, groupby, reference, target)
    keep = np.ones(adata.n_obs, dtype=bool)
    found = pair_two_levels(adata.obs, lab, keep, pair, ref, tgt)
    report_pairs(found, step="protein_changes", pair=pair, ref=ref, tgt=tgt, require=False)
    ir, it, pairs, excluded = found.ir, found.it, found.ids, found.excluded_pairs
    x = matrix(adata, layer)
    diff = x[np.ix_(it, cols)] - x[np.ix_(ir, cols)]
    oid = adata.var_names[cols]
    label = adata.var["Assay"].iloc[cols].astype(str) if "Assay" in adata.var else pd.Series(oid)
    dup = label.duplicated(keep=False).to_numpy()
    colnames = np.where(dup, oid, label.to_numpy())
    out = pd.DataFrame(diff, columns=colnames)
    out.insert(0, pair, pairs)
    out.attrs = {
        "sign": f"{tgt} - {ref}",
        "excluded_pairs": excluded,
        "olink_ids": dict(zip(colnames.tolist(), oid.tolist(), strict=True)),
    }
    return out
