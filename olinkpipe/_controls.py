"""What a control is: the one definition io, pp and tl use.

A control sample is one whose ``SampleType`` is not ``SAMPLE`` (OlinkAnalyze's sample
types: sample, plate and negative controls, calibrators ...). The readers record it in
``obs["is_control"]`` (from the file's ``Sample_Type``/``SampleType`` column or, without
one, from the SampleID); everything after reading takes ``obs["is_control"]`` and, for an
AnnData not made by olinkpipe's readers, ``SampleType``. A SampleID containing
``CONTROL_SAMPL`` (Olink's ``CONTROL_SAMPLE_AS 1`` ...) is a control whatever the columns
say. A control assay is one whose ``AssayType`` is not ``assay`` (``var["is_control"]``),
or, without either column, one whose ID is not an OlinkID (``OID`` + 5 digits).
"""

from __future__ import annotations

import re

import anndata as ad
import numpy as np
import pandas as pd

from ._samples import sample_ids

__all__ = ["CONTROL_ID", "OLINK_ID", "control_assays", "control_samples", "is_control_type"]

#: SampleIDs of Olink's control samples (``CONTROL_SAMPLE_AS 1``, ``CONTROL_SAMPLE_1``)
CONTROL_ID = re.compile(r"CONTROL_SAMPL")
#: an OlinkID; anything else in var_names (without AssayType) is a control assay
OLINK_ID = re.compile(r"^OID[0-9]{5}$")


def is_control_type(sample_types) -> np.ndarray:
    """True where a SampleType is not ``SAMPLE`` (any case): the readers' rule."""
    return (
        pd.Series(np.asarray(sample_types, dtype=object))
        .astype(str)
        .str.upper()
        .ne("SAMPLE")
        .to_numpy()
    )


def control_samples(adata: ad.AnnData) -> np.ndarray:
    """Boolean mask of control samples (``obs["is_control"]``, SampleType, or the ID pattern).

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> obs = pd.DataFrame({"SampleType": ["SAMPLE", "NEGATIVE_CONTROL", "SAMPLE"]},
    ...                    index=["S1", "NC1", "CONTROL_SAMPLE_AS 1"])
    >>> control_samples(ad.AnnData(np.zeros((3, 1)), obs=obs)).tolist()
    [False, True, True]
    """
    obs = adata.obs
    if "is_control" in obs:
        mask = obs["is_control"].fillna(value=False).to_numpy(dtype=bool)
    elif "SampleType" in obs:
        mask = is_control_type(obs["SampleType"])
    else:
        mask = np.zeros(adata.n_obs, dtype=bool)
    by_name = np.array([bool(CONTROL_ID.search(s)) for s in sample_ids(adata)], dtype=bool)
    return mask | by_name


def control_assays(adata: ad.AnnData) -> np.ndarray:
    """Boolean mask of control assays (``var["is_control"]``, AssayType, or a non-OlinkID)."""
    var = adata.var
    if "is_control" in var:
        return var["is_control"].fillna(value=False).to_numpy(dtype=bool)
    if "AssayType" in var:
        return var["AssayType"].astype(str).ne("assay").to_numpy()
    return np.array([not OLINK_ID.match(str(v)) for v in adata.var_names], dtype=bool)
