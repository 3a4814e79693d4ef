"""Which sample is which: the export's SampleIDs and the pairs of bridge samples.

Shared by :mod:`olinkpipe.pp` (bridging, normalization, QC), :mod:`olinkpipe.pl` (the
bridgeability plot) and :mod:`olinkpipe._controls`; ``pp._utils`` re-exports both names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import anndata as ad
import pandas as pd

from .errors import ValidationError

__all__ = ["as_mapping", "sample_ids"]


def sample_ids(adata: ad.AnnData) -> pd.Index:
    """The export's SampleIDs (``obs["SampleID"]``), or ``obs_names`` when absent."""
    if "SampleID" in adata.obs:
        return pd.Index(adata.obs["SampleID"].astype(str))
    return pd.Index(adata.obs_names.astype(str))


def as_mapping(samples: Mapping[object, object] | Iterable[object]) -> tuple[list[str], list[str]]:
    """Bridge samples as (reference IDs, other IDs): a list of shared IDs, pairs, or a mapping."""
    if isinstance(samples, Mapping):
        pairs = [(str(k), str(v)) for k, v in samples.items()]
    elif isinstance(samples, pd.DataFrame):
        if samples.shape[1] != 2:
            msg = "bridge_samples as a DataFrame must have two columns (reference ID, other ID)."
            raise ValidationError(msg)
        pairs = [(str(a), str(b)) for a, b in samples.itertuples(index=False)]
    else:
        pairs = []
        for s in samples:
            if isinstance(s, tuple | list) and len(s) == 2:
                pairs.append((str(s[0]), str(s[1])))
            else:
                pairs.append((str(s), str(s)))
    return [a for a, _ in pairs], [b for _, b in pairs]
