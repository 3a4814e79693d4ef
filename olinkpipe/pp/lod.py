"""Limit of detection: flag, censor, compute from negative controls, apply fixed LODs."""

from __future__ import annotations

import warnings
from os import PathLike
from pathlib import Path
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd

from .._dask import require_dask
from .._validate import check_literal, require_columns
from ..errors import NPXFormatError, ValidationError, format_message, preview
from . import _lazy, _utils

__all__ = ["below_lod", "censor_lod", "compute_lod", "read_fixed_lod"]

FIXED_LOD_COLUMNS = ["OlinkID", "DataAnalysisRefID", "LodNPX"]


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


def _nc_rows(adata: ad.AnnData) -> np.ndarray:
    if "SampleType" not in adata.obs:
        msg = format_message(
            "NCLOD needs obs['SampleType'] to find the negative controls",
            column="SampleType",
            hint="Read an Explore export with a SampleType column, or use method='fixed'.",
        )
        raise ValidationError(msg)
    return adata.obs["SampleType"].astype(str).str.upper().eq("NEGATIVE_CONTROL").to_numpy()


def _intensity_shift(adata: ad.AnnData, pc) -> np.ndarray:
    """Per-assay median PC-normalized NPX over SAMPLEs for intensity-normalized assays, else 0.

    OlinkAnalyze's ``olink_lod`` turns a plate-control-normalized LOD into an intensity-
    normalized one by subtracting this median.
    """
    shift = np.zeros(adata.n_vars)
    if "Normalization" not in adata.var:
        return shift
    inten = adata.var["Normalization"].astype(str).str.lower().eq("intensity").to_numpy()
    if not inten.any():
        return shift
    if "SampleType" in adata.obs:
        samples = adata.obs["SampleType"].astype(str).str.upper().eq("SAMPLE").to_numpy()
    else:
        samples = ~_utils.control_samples(adata)
    rows = np.flatnonzero(samples)
    med = _lazy.per_assay(lambda b: _utils.nanmedian0(b[rows]), [pc])[0]
    shift[inten] = med[inten]
    return np.where(np.isnan(shift), 0.0, shift)


def _group_codes(
    adata: ad.AnnData, groupby: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group of every cell as ``codes[i, gidx[j]]`` (samples × a few columns, e.g. one per
    panel for plates) and the group names."""
    if groupby is None:
        codes = np.zeros((adata.n_obs, 1), dtype=np.intp)
        return codes, np.zeros(adata.n_vars, dtype=np.intp), np.array(["all"], dtype=object)
    if groupby == "PlateID":
        tab = _utils.per_panel_obs(adata, "PlateID")
        groups = pd.unique(tab.to_numpy().ravel())
        codes = np.column_stack(
            [pd.Index(groups).get_indexer(tab[p].to_numpy()) for p in tab.columns]
        ).reshape(adata.n_obs, tab.shape[1])
        gidx = pd.Index(list(tab.columns)).get_indexer(_utils.panels(adata))
        return codes, gidx, np.asarray(groups, dtype=object)
    if groupby not in adata.obs:
        msg = format_message(
            f"groupby column {groupby!r} is not in obs",
            column=groupby,
            hint="Pass None, 'PlateID' or an obs column (e.g. 'DataAnalysisRefID').",
        )
        raise ValidationError(msg)
    cat = pd.Categorical(adata.obs[groupby].astype(str))
    codes = cat.codes.astype(np.intp)[:, None]
    return codes, np.zeros(adata.n_vars, dtype=np.intp), np.asarray(cat.categories, dtype=object)


def _nclod(adata: ad.AnnData, *, groupby: str | None, min_nc: int):
    """LOD = median(NC) + max(0.2, 3 · SD(NC)) per assay (and group): a group × assay
    table, with the group of every cell as ``codes[i, gidx[j]]``.

    Only the negative-control rows are read for the statistics; the table is expanded to
    samples × assays block by block (:func:`_lazy.expand_by_code`).
    """
    nc = _nc_rows(adata)
    use_pc = "PCNormalizedNPX" in adata.layers
    values = adata.layers["PCNormalizedNPX"] if use_pc else _utils.npx(adata)
    if not _lazy.is_dask(values):
        values = np.asarray(values, dtype=float)
    nc_rows = np.flatnonzero(nc)
    if _utils.has_cell_qc(adata):
        values_nc, fail_nc = _lazy.rows_of([values, _utils.qc_fail_cells(adata)], nc_rows)
        values_nc, fail_nc = values_nc.astype(float), fail_nc.astype(bool)
    else:
        values_nc = _lazy.rows_of([values], nc_rows)[0].astype(float)
        by_panel, pidx = _utils.qc_fail_by_panel(adata)
        fail_nc = by_panel[nc_rows][:, pidx]
    real = ~_utils.control_assays(adata)
    ok_nc = ~fail_nc & ~np.isnan(values_nc) & real[None, :]
    if groupby is None and "DataAnalysisRefID" in adata.obs:
        groupby = "DataAnalysisRefID"  # OlinkAnalyze: per assay and reagent lot
    codes, gidx, groups = _group_codes(adata, groupby)
    codes_nc = codes[nc_rows][:, gidx]
    table = np.full((len(groups) + 1, adata.n_vars), np.nan)  # last row: code -1, no group
    too_few: list[str] = []
    for k, g in enumerate(groups):  # one pass per plate/lot, vectorised over assays
        block = np.where(ok_nc & (codes_nc == k), values_nc, np.nan)  # NC rows only
        n = (~np.isnan(block)).sum(axis=0)
        present = (codes == k).any(axis=0)[gidx] & real
        short = present & (n < min_nc)
        too_few.extend(
            f"{g}/{v} (n={c})" for v, c in zip(adata.var_names[short], n[short], strict=True)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = _utils.nanmedian0(block)
            sd = np.nanstd(block, axis=0, ddof=1)
        table[k] = np.where(present, med + np.maximum(0.2, 3.0 * sd), np.nan)
    if too_few:
        msg = format_message(
            f"NCLOD needs at least {min_nc} passing negative controls (SampleType "
            f"NEGATIVE_CONTROL, QC pass, NPX present) per assay"
            + ("" if groupby is None else f" and {groupby}")
            + f"; {len(too_few)} group(s) have fewer",
            column="SampleType",
            rows=too_few,
            hint="Use method='fixed' with Olink's fixed-LOD file (pp.read_fixed_lod), or a "
            "coarser groupby.",
        )
        raise ValidationError(msg)
    if use_pc:
        table = table - _intensity_shift(adata, values)[None, :]
    return table, codes, gidx


def _fixed(adata: ad.AnnData, table: pd.DataFrame) -> np.ndarray:
    require_columns(
        table,
        ["OlinkID", "LodNPX"],
        what="fixed LOD table",
        hint="Olink's fixed-LOD files have OlinkID;DataAnalysisRefID;LodNPX;LodCount;LodMethod.",
    )
    tab = table.copy()
    tab["OlinkID"] = tab["OlinkID"].astype(str)
    ref_col = "DataAnalysisRefID"
    if ref_col in tab:
        ids = None
        if ref_col in adata.var:
            ids = set(adata.var[ref_col].astype(str))
        elif ref_col in adata.obs:
            ids = set(adata.obs[ref_col].astype(str))
        elif isinstance(adata.uns.get("olinkpipe", {}).get("metadata"), dict):
            meta = adata.uns["olinkpipe"]["metadata"]
            if ref_col in meta:
                ids = {str(meta[ref_col])}
        if ids is not None:
            tab = tab[tab[ref_col].astype(str).isin(ids)]
        if ref_col in adata.var:
            key = adata.var_names.astype(str) + "\x00" + adata.var[ref_col].astype(str)
            tab_key = tab["OlinkID"] + "\x00" + tab[ref_col].astype(str)
            lod = pd.Series(tab["LodNPX"].to_numpy(float), index=tab_key)
            lod = lod[~lod.index.duplicated()]
            values = lod.reindex(key).to_numpy()
        else:
            dup = tab["OlinkID"][tab["OlinkID"].duplicated()].unique()
            if len(dup):
                msg = format_message(
                    "the fixed LOD table has several DataAnalysisRefIDs for the same OlinkID "
                    "and the data do not say which applies",
                    column=ref_col,
                    rows=dup,
                    hint="Add var['DataAnalysisRefID'] (or obs) to the data, or filter the table.",
                )
                raise ValidationError(msg)
            values = tab.set_index("OlinkID")["LodNPX"].astype(float).reindex(adata.var_names)
            values = values.to_numpy()
    else:
        values = tab.drop_duplicates("OlinkID").set_index("OlinkID")["LodNPX"].astype(float)
        values = values.reindex(adata.var_names).to_numpy()
    if "LodMethod" in tab and tab["LodMethod"].astype(str).str.lower().ne("lod_npx").any():
        _utils.warn_user(
            "read_fixed_lod: some rows have LodMethod other than 'lod_npx'; olinkpipe uses "
            "LodNPX for them (count-based LODs need Count/ExtCount, not supported).",
        )
    missing = np.isnan(values) & ~_utils.control_assays(adata)
    if missing.any():
        _utils.warn_user(
            f"fixed LOD: no LOD for {int(missing.sum())} assay(s) "
            f"({preview(adata.var_names[missing])}); their LOD is NaN.",
        )
    lod = values[None, :]
    if "PCNormalizedNPX" in adata.layers:
        pc = adata.layers["PCNormalizedNPX"]
        lod = lod - _intensity_shift(adata, pc if _lazy.is_dask(pc) else np.asarray(pc, float))
    elif (
        "Normalization" in adata.var
        and adata.var["Normalization"].astype(str).str.lower().eq("intensity").any()
    ):
        _utils.warn_user(
            "fixed LOD: intensity-normalized assays need layers['PCNormalizedNPX'] to convert "
            "the plate-control LOD (as OlinkAnalyze does); the LOD was applied unconverted.",
        )
    codes = np.zeros((adata.n_obs, 1), dtype=np.intp)
    return lod, codes, np.zeros(adata.n_vars, dtype=np.intp)


def compute_lod(
    adata: ad.AnnData,
    *,
    method: Literal["nclod", "fixed"] = "nclod",
    fixed_lod: pd.DataFrame | None = None,
    groupby: str | None = None,
    min_nc: int = 10,
    copy: bool = True,
) -> ad.AnnData:
    """Compute ``layers["lod"]`` from negative controls (NCLOD) or a fixed-LOD table.

    ``method="nclod"``: per assay (and ``groupby`` group), over negative controls
    (``obs["SampleType"] == "NEGATIVE_CONTROL"``) that pass QC and have a value,
    ``LOD = median(NC) + max(0.2, 3 · SD(NC))`` (SD with n − 1), as OlinkAnalyze
    ``olink_lod(lod_method = "NCLOD")``. When ``layers["PCNormalizedNPX"]`` exists the NC
    statistics use it and, for assays with ``var["Normalization"] == "Intensity"``, the
    LOD is moved to the intensity scale by subtracting the median PC-normalized NPX of the
    study samples (OlinkAnalyze's ``int_norm_count``). ``method="fixed"`` applies a table
    as read by :func:`read_fixed_lod`.

    Parameters
    ----------
    adata
        Samples × assays AnnData.
    method
        ``"nclod"`` or ``"fixed"``.
    fixed_lod
        Table with ``OlinkID`` and ``LodNPX`` (and ``DataAnalysisRefID``) for ``"fixed"``.
    groupby
        ``None`` (default): one LOD per assay and reagent lot (``obs["DataAnalysisRefID"]``
        when present, else all negative controls together), as OlinkAnalyze;
        ``"PlateID"``: per plate (Olink Explore runs usually have too few NCs per plate);
        or any ``obs`` column.
    min_nc
        Minimum number of passing negative controls per assay and group (Olink: 10;
        OlinkAnalyze checks the total number of NC samples, we check every assay/group).
    copy
        Return a new AnnData (default; one copy of X and the layers) or change ``adata``
        in place and return it (``copy=False``; no copy of the arrays). A dask-backed
        ``adata`` gives a dask-backed result (X still lazy).

    Returns
    -------
    anndata.AnnData
        With ``layers["lod"]`` (NaN where NPX is NaN, as OlinkAnalyze; it replaces the
        plate table ``varm["lod"]`` and a stored ``layers["below_lod"]``) and
        ``uns["olinkpipe"]["lod"]`` (method, settings).

    Raises
    ------
    ValidationError
        Fewer than ``min_nc`` passing negative controls for some assay/group, naming them.

    Notes
    -----
    Count-based LODs (OlinkAnalyze's ``lod_count`` path for assays with low counts) are not
    implemented: the NPX-based formula is used for every assay.

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
    check_literal("method", method, ["nclod", "fixed"])
    out = _utils.new_result(adata, copy=copy, replaced=("lod", "below_lod"))
    if method == "nclod":
        table, codes, gidx = _nclod(out, groupby=groupby, min_nc=int(min_nc))
        settings = {"method": "nclod", "groupby": groupby or "", "min_nc": int(min_nc)}
    else:
        if fixed_lod is None:
            msg = "compute_lod(method='fixed') needs fixed_lod (see pp.read_fixed_lod)."
            raise ValidationError(msg)
        table, codes, gidx = _fixed(out, fixed_lod)
        settings = {"method": "fixed"}
    X = _utils.npx(out)
    lod = _lazy.expand_by_code(X, codes, gidx, table)  # NaN where X is NaN
    _utils.set_lod(out, lod)  # a full layer (NaN where X is NaN); below_lod on demand
    out.uns["olinkpipe"]["lod"] = settings
    return out


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
    path = Path(path)
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
    missing = [c for c in ("OlinkID", "LodNPX") if c not in table.columns]
    if missing:
        msg = format_message(
            f"the fixed LOD file lacks column(s) {missing!r}; it has {list(table.columns)!r}",
            file=path,
            hint="Expected Olink's format OlinkID;DataAnalysisRefID;LodNPX;LodCount;LodMethod.",
        )
        raise NPXFormatError(msg)
    table["LodNPX"] = pd.to_numeric(table["LodNPX"], errors="coerce")
    out = compute_lod(adata, method="fixed", fixed_lod=table, copy=copy)
    out.uns["olinkpipe"]["lod"]["file"] = str(path)
    return out
