"""Limit of detection: flag, censor, compute from negative controls, apply fixed LODs."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd

from .._dask import require_dask
from .._validate import check_literal, require_columns
from ..errors import NPXFormatError, ValidationError, format_message
from . import _lazy, _lod_methods, _utils

__all__ = ["below_lod", "censor_lod", "compute_lod", "read_fixed_lod"]

FIXED_LOD_COLUMNS = ["OlinkID", "DataAnalysisRefID", "LODNPX", "LODCount", "LODMethod"]


def below_lod(adata: ad.AnnData, *, copy: bool = True) -> ad.AnnData:
    """Fill ``layers["below_lod"]`` with ``X < lod`` (False where NPX or LOD is NaN).

    Parameters
    ----------
    adata
        Samples × assays AnnData with ``layers["lod"]``.
    copy
        Return a new AnnData (default; one copy of X and the layers) or change ``adata``
        in place and return it (``copy=False``; no copy of the arrays). A dask-backed
        ``adata`` gives a dask-backed result (X still lazy).

    Returns
    -------
    anndata.AnnData
        With the boolean layer ``below_lod``.

    Examples
    --------
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> out = op.pp.below_lod(adata)
    >>> round(float(out.layers["below_lod"].mean()), 3)
    0.063
    """
    out = _utils.new_result(adata, copy=copy, replaced=("below_lod",))
    lod = _utils.lod_layer(out, what="below_lod")
    out.layers["below_lod"] = _utils.npx(out) < lod  # lazy on the dask path
    return out


def censor_lod(
    adata: ad.AnnData,
    *,
    how: Literal["keep", "nan", "lod", "lod_half"] = "nan",
    copy: bool = True,
) -> ad.AnnData:
    """Replace values below LOD, for analyses that must censor (Olink advises keeping them).

    Parameters
    ----------
    adata
        Samples × assays AnnData with ``layers["lod"]``.
    how
        ``"keep"``: leave NPX as is (only ``layers["below_lod"]`` is refreshed); ``"nan"``:
        set to NaN; ``"lod"``: set to the LOD; ``"lod_half"``: set to half the LOD on the
        linear scale — ``LOD − 1`` for log2 data (``NPX``, the default ``data_type``),
        ``LOD / 2`` when ``uns["olinkpipe"]["data_type"] == "Quantified"``.
    copy
        Return a new AnnData (default; one copy of X and the layers) or change ``adata``
        in place and return it (``copy=False``; no copy of the arrays). A dask-backed
        ``adata`` gives a dask-backed result (X still lazy).

    Returns
    -------
    anndata.AnnData
        With censored ``X``, ``layers["below_lod"]`` marking the original values below LOD,
        and ``uns["olinkpipe"]["censor_lod"]`` (method, number of values replaced).

    Examples
    --------
    >>> import numpy as np
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> censored = op.pp.censor_lod(adata, how="lod")
    >>> censored.uns["olinkpipe"]["censor_lod"]["n_replaced"]
    1131
    >>> from olinkpipe._layout import lod_matrix  # the LOD per cell, whatever the layout
    >>> bool((censored.X >= lod_matrix(censored))[~np.isnan(adata.X)].all())
    True
    """
    check_literal("how", how, ["keep", "nan", "lod", "lod_half"])
    out = _utils.new_result(adata, copy=copy, replaced=("below_lod",))
    lod = _utils.lod_layer(out, what="censor_lod")
    X = _utils.npx(out)
    below = X < lod
    data_type = str(out.uns["olinkpipe"].get("data_type", "NPX"))
    if how != "keep" and _lazy.is_dask(X):  # lazy: one where() per block
        da = require_dask("censor_lod")
        value = {"nan": np.nan, "lod": lod}.get(how)
        if value is None:
            value = lod / 2.0 if data_type == "Quantified" else lod - 1.0
        out.X = da.where(below, value, X)
    elif how != "keep":  # in place on the result's own X (a copy unless copy=False)
        if how == "nan":
            X[below] = np.nan
        elif how == "lod":
            X[below] = lod[below]
        else:
            X[below] = lod[below] / 2.0 if data_type == "Quantified" else lod[below] - 1.0
        out.X = X
    out.layers["below_lod"] = below
    out.uns["olinkpipe"]["censor_lod"] = {
        "how": how,
        "data_type": data_type,
        "n_replaced": 0 if how == "keep" else int(below.sum()),  # dask: one small sum
    }
    return out


def _fixed_source(fixed_lod) -> tuple[pd.DataFrame, str | None]:
    """The fixed-LOD table and its file (a DataFrame, or a path read as Olink's CSV)."""
    if fixed_lod is None:
        msg = "compute_lod(method='fixed' or 'both') needs fixed_lod (see pp.read_fixed_lod)."
        raise ValidationError(msg)
    if isinstance(fixed_lod, pd.DataFrame):
        table, path = fixed_lod, None
    else:
        path = str(fixed_lod)
        table = _read_fixed_file(Path(fixed_lod))
    require_columns(
        _lod_methods.fixed_columns(table),
        ["OlinkID", "LODNPX"],
        what="fixed LOD table",
        hint="Olink's fixed-LOD files have OlinkID;DataAnalysisRefID;LODNPX;LODCount;"
        "LODMethod (older files: LodNPX, LodCount, LodMethod).",
    )
    return table, path


def compute_lod(
    adata: ad.AnnData,
    *,
    method: Literal["nclod", "fixed", "both"] = "nclod",
    fixed_lod: pd.DataFrame | str | PathLike[str] | None = None,
    groupby: str | None = None,
    min_nc: int = 10,
    count_rule: bool = True,
    intensity_median: Literal["plate", "all"] = "plate",
    prefer: Literal["nclod", "fixed"] = "nclod",
    copy: bool = True,
) -> ad.AnnData:
    """Compute ``layers["lod"]`` as OlinkAnalyze's ``olink_lod``: from negative controls
    (NCLOD), a fixed-LOD table, or both.

    Two steps, as OlinkAnalyze 5:

    1. An LOD per assay and reagent lot (``DataAnalysisRefID``) on the plate-control scale.
       ``method="nclod"``: over the negative controls (``obs["SampleType"] ==
       "NEGATIVE_CONTROL"``) that pass QC and have an NPX, ``LODNPX = median + max(0.2,
       3·SD)`` of ``layers["PCNormalizedNPX"]`` (else X; SD with n − 1); with a ``Count``
       layer also ``LODCount = max(150, 2 · max count)``, and the LOD is count-based
       (``LODMethod = "lod_count"``) where no negative control's count exceeds 150.
       ``method="fixed"``: Olink's fixed-LOD table (``LODNPX``, ``LODCount``,
       ``LODMethod`` per OlinkID and DataAnalysisRefID), see :func:`read_fixed_lod`.
    2. To the data's scale, per sample: a count-based LOD is ``log2(LODCount / ExtCount)
       − PCMedian`` (``ExtCount``: the sample's count of the extension control of the
       assay's panel and block; ``PCMedian``: median ``ExtNPX`` of the plate's plate
       controls); for ``var["Normalization"] == "Intensity"`` the median
       ``PCNormalizedNPX`` of the plate's study samples is subtracted; assays normalized
       otherwise (e.g. ``EXCLUDED``) get no LOD (NaN), as OlinkAnalyze.

    Parameters
    ----------
    adata
        Samples × assays AnnData.
    method
        ``"nclod"`` (default, as OlinkAnalyze), ``"fixed"`` or ``"both"``.
    fixed_lod
        For ``"fixed"`` / ``"both"``: a table with ``OlinkID`` and ``LODNPX`` (and
        ``DataAnalysisRefID``, ``LODCount``, ``LODMethod``; ``LodNPX`` etc. accepted), or
        the path of Olink's fixed-LOD CSV file.
    groupby
        NCLOD groups. ``None`` (default): per assay and reagent lot
        (``obs["DataAnalysisRefID"]`` when present, else all negative controls together),
        as OlinkAnalyze; ``"PlateID"``: per plate; or any ``obs`` column.
    min_nc
        Minimum number of passing negative controls per assay and group (Olink: 10;
        OlinkAnalyze checks the total number of NC samples, we check every assay/group).
    count_rule
        Use the count-based LOD where the counts say so (default, as OlinkAnalyze);
        ``False`` gives every assay its NPX-based LOD (olinkpipe ≤ 0.x behaviour).
    intensity_median
        ``"plate"`` (default, as OlinkAnalyze): an intensity-normalized assay's LOD is
        shifted by the median of each plate's samples; ``"all"``: by one median over all
        samples (olinkpipe's earlier behaviour).
    prefer
        With ``method="both"``: which LOD goes into ``layers["lod"]`` (what
        :func:`below_lod` and :func:`censor_lod` use); the other is stored as
        ``layers["FixedLOD"]`` (``prefer="nclod"``, the default) or ``layers["NCLOD"]``.
    copy
        Return a new AnnData (default; one copy of X and the layers) or change ``adata``
        in place and return it (``copy=False``; no copy of the arrays). A dask-backed
        ``adata`` gives a dask-backed result (X and the LOD lazy).

    Returns
    -------
    anndata.AnnData
        With ``layers["lod"]`` (NaN where NPX is NaN, as OlinkAnalyze; it replaces the
        plate table ``varm["lod"]`` and a stored ``layers["below_lod"]``) and
        ``uns["olinkpipe"]["lod"]``: the settings, the number
        of count-based assays and the LOD table (``table`` for NCLOD / fixed: OlinkID,
        group, LODNPX, LODCount, LODMethod; with ``"both"`` ``table`` and
        ``fixed_table``).

    Raises
    ------
    ValidationError
        Fewer than ``min_nc`` passing negative controls for some assay/group, naming them;
        ``fixed_lod`` missing for ``"fixed"`` / ``"both"``.

    Notes
    -----
    OlinkAnalyze's ``"Both"`` adds four columns (``NCLOD``, ``NCPCNormalizedLOD``,
    ``FixedLOD``, ``FixedPCNormalizedLOD``); olinkpipe keeps the two LODs on the data's
    scale (``layers["lod"]`` and ``layers["FixedLOD"]`` / ``["NCLOD"]``), not the
    PC-normalized ones. Without ``Count`` / ``ExtNPX`` layers or an extension control on
    the assay's block, a count-based LOD falls back to its ``LODNPX`` with a warning.

    Examples
    --------
    Twelve negative controls and twenty samples on three assays:

    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> rng = np.random.default_rng(0)
    >>> X = np.vstack([rng.normal(8, 1, (20, 3)), rng.normal(2, 0.3, (12, 3))])
    >>> obs = pd.DataFrame(
    ...     {"SampleType": ["SAMPLE"] * 20 + ["NEGATIVE_CONTROL"] * 12},
    ...     index=[f"S{i}" for i in range(32)],
    ... )
    >>> adata = ad.AnnData(X, obs=obs, var=pd.DataFrame(index=["OID00001", "OID00002", "OID00003"]))
    >>> out = op.pp.compute_lod(adata)
    >>> nc = X[20:, 0]
    >>> bool(out.layers["lod"][0, 0] == np.median(nc) + max(0.2, 3 * nc.std(ddof=1)))
    True
    >>> out.uns["olinkpipe"]["lod"]["method"]
    'nclod'
    """
    check_literal("method", method, ["nclod", "fixed", "both"])
    check_literal("intensity_median", intensity_median, ["plate", "all"])
    check_literal("prefer", prefer, ["nclod", "fixed"])
    replaced = ("lod", "below_lod") + (("NCLOD", "FixedLOD") if method == "both" else ())
    out = _utils.new_result(adata, copy=copy, replaced=replaced)
    settings: dict = {"method": method, "count_rule": bool(count_rule)}
    settings["intensity_median"] = intensity_median
    lods = {}
    if method in ("nclod", "both"):
        tab = _lod_methods.nc_table(
            out, groupby=groupby, min_nc=int(min_nc), count_rule=bool(count_rule)
        )
        lods["nclod"], info = _lod_methods.to_npx(out, tab, intensity_median=intensity_median)
        settings |= {"groupby": groupby or "", "min_nc": int(min_nc)}
        settings["n_count_based"] = info["n_count_based"]
        settings["table"] = tab.frame(out.var, groupby or "DataAnalysisRefID")
    if method in ("fixed", "both"):
        table, path = _fixed_source(fixed_lod)
        tab = _lod_methods.fixed_table(out, table)
        if not count_rule:
            tab.use_count[:] = False
        lods["fixed"], info = _lod_methods.to_npx(
            out, tab, intensity_median=intensity_median, fixed=True
        )
        key = "fixed_table" if method == "both" else "table"
        settings[key] = tab.frame(out.var, "DataAnalysisRefID")
        settings["n_count_based_fixed" if method == "both" else "n_count_based"] = info[
            "n_count_based"
        ]
        if path is not None:
            settings["file"] = path
    main = prefer if method == "both" else ("nclod" if method == "nclod" else "fixed")
    if method == "both":
        other = "fixed" if prefer == "nclod" else "nclod"
        name = {"nclod": "NCLOD", "fixed": "FixedLOD"}[other]
        out.layers[name] = lods[other]
        settings["lod_layer"] = {"nclod": "NCLOD", "fixed": "FixedLOD"}[prefer]
        settings["other_layer"] = name
    _utils.set_lod(out, lods[main])  # a full layer (NaN where X is NaN); below_lod on demand
    out.uns["olinkpipe"]["lod"] = settings
    return out


def _read_fixed_file(path: Path) -> pd.DataFrame:
    """Olink's fixed-LOD CSV (``;``-separated; ``,`` accepted) with its LOD columns numeric."""
    if not path.exists():
        msg = format_message(
            "fixed LOD file not found", file=path, hint="Check the path (Olink's download)."
        )
        raise NPXFormatError(msg)
    try:
        table = pd.read_csv(path, sep=None, engine="python", dtype={"OlinkID": str})
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
        msg = format_message(f"cannot parse the fixed LOD file ({err})", file=path)
        raise NPXFormatError(msg) from err
    named = _lod_methods.fixed_columns(table)
    missing = [c for c in ("OlinkID", "LODNPX") if c not in named.columns]
    if missing:
        msg = format_message(
            f"the fixed LOD file lacks column(s) {missing!r} (LODNPX may be spelled LodNPX); "
            f"it has {list(table.columns)!r}",
            file=path,
            hint="Expected Olink's format OlinkID;DataAnalysisRefID;LODNPX;LODCount;LODMethod.",
        )
        raise NPXFormatError(msg)
    return named


def read_fixed_lod(
    adata: ad.AnnData, path: str | PathLike[str], *, copy: bool = True
) -> ad.AnnData:
    """Apply an Olink fixed-LOD reference file to ``adata``.

    Olink publishes fixed LODs for Explore products as semicolon-separated CSV files with
    columns ``OlinkID;DataAnalysisRefID;LodNPX;LodCount;LodMethod`` (the format
    OlinkAnalyze ``olink_lod(lod_method = "FixedLOD")`` reads). Rows are matched on OlinkID
    and, when the data carry it (``var``, ``obs`` or parquet metadata), on
    ``DataAnalysisRefID``. Comma-separated files are accepted too.

    Parameters
    ----------
    adata
        Samples × assays AnnData.
    path
        The fixed-LOD CSV file.
    copy
        Return a new AnnData (default; one copy of X and the layers) or change ``adata``
        in place and return it (``copy=False``; no copy of the arrays). A dask-backed
        ``adata`` gives a dask-backed result (X still lazy).

    Returns
    -------
    anndata.AnnData
        As :func:`compute_lod` with ``method="fixed"``; ``uns["olinkpipe"]["lod"]["file"]``
        records the path.

    Raises
    ------
    NPXFormatError
        The file cannot be read or lacks ``OlinkID`` / ``LodNPX``.

    Examples
    --------
    >>> import pathlib
    >>> import tempfile
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "fixed_lod.csv"
    >>> table = pd.DataFrame({"OlinkID": adata.var_names, "LodNPX": 1.5, "LodMethod": "lod_npx"})
    >>> table.to_csv(path, sep=";", index=False)
    >>> del adata.var["Normalization"]  # plate-control scale: the LOD applies as written
    >>> out = op.pp.read_fixed_lod(adata, path)
    >>> float(np.nanmax(out.layers["lod"]))
    1.5
    """
    table = _read_fixed_file(Path(path))
    out = compute_lod(adata, method="fixed", fixed_lod=table, copy=copy)
    out.uns["olinkpipe"]["lod"]["file"] = str(path)
    return out
