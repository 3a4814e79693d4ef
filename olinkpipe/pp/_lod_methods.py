"""OlinkAnalyze's LOD (``olink_lod``): an LOD table per reagent lot, then the NPX scale.

Both methods give, per assay and group (``DataAnalysisRefID`` or ``groupby``), an LOD on
the plate-control-normalized scale (``LODNPX``), an LOD in counts (``LODCount``) and which
of them applies (``LODMethod``: ``lod_npx`` or ``lod_count``) — from the negative controls
(:func:`nc_table`) or from Olink's fixed-LOD file (:func:`fixed_table`). :func:`to_npx`
then turns the table into the data's scale, cell by cell, as OlinkAnalyze does:

- ``lod_count``: ``log2(LODCount / ExtCount) − PCMedian``, with ``ExtCount`` the sample's
  count of the extension control of the assay's panel and block, and ``PCMedian`` the
  median ``ExtNPX`` of the plate controls on the assay and plate;
- intensity-normalized assays: minus the median ``PCNormalizedNPX`` of the plate's study
  samples (``PlateMedianNPX``);
- ``var["Normalization"]`` neither intensity nor plate control (e.g. ``EXCLUDED``): NaN.

Everything is a group × assay or plate × assay table (a few rows) plus, for count-based
LODs, a samples × blocks matrix of extension counts; the samples × assays LOD is written
block by block from them (in memory slice by slice, on dask lazily).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from .._dask import require_dask
from ..errors import ValidationError, format_message, preview
from . import _lazy, _utils

#: OlinkAnalyze's count rule: an assay whose negative controls never exceed this count
#: gets a count-based LOD of at least this count (``olink_nc_lod``)
MIN_COUNT = 150
#: the columns of Olink's fixed-LOD files (OlinkAnalyze 5 / current downloads), with the
#: spellings older files and olinkpipe's earlier versions used
#: Explore HT reagent lots (DataAnalysisRefID D<1-8>00<07|08|10|14>) that must be exported
#: with Panel Data Archive Version 1.5.0 or later (OlinkAnalyze's ``check_darid``); data
#: exported earlier need a fixed-LOD file of version 6.0.0 or later
OUTDATED_DARID = re.compile(r"^D[1-8]00(07|08|10|14)$")
MIN_ARCHIVE_VERSION = (1, 5, 0)
MIN_FIXED_LOD_VERSION = (6, 0, 0)
FIXED_COLUMNS = {
    "olinkid": "OlinkID",
    "dataanalysisrefid": "DataAnalysisRefID",
    "lodnpx": "LODNPX",
    "lodcount": "LODCount",
    "lodmethod": "LODMethod",
}


@dataclass
class LodTable:
    """Per group × assay LOD (row ``-1`` / the last row: no group, NaN)."""

    npx: np.ndarray  # (n_groups + 1, n_vars) LODNPX
    count: np.ndarray  # (n_groups + 1, n_vars) LODCount
    use_count: np.ndarray  # bool, LODMethod == "lod_count"
    codes: np.ndarray  # (n_obs, k) group of each sample, per column set
    gidx: np.ndarray  # (n_vars,) column of ``codes`` for each assay
    groups: np.ndarray  # group names

    def frame(self, var: pd.DataFrame, group_name: str) -> pd.DataFrame:
        """Long table ``OlinkID, <group>, LODNPX, LODCount, LODMethod`` (OlinkAnalyze's
        ``lod_data``), rows with an LOD only; the group of a single-group table is the
        assay's ``var[group_name]`` when there is one."""
        g, j = np.nonzero(~np.isnan(self.npx[:-1]) | ~np.isnan(self.count[:-1]))
        names = np.asarray(self.groups, dtype=object)[g].astype(str)
        if len(self.groups) == 1 and group_name in var:
            names = var[group_name].astype(str).to_numpy()[j]
        return pd.DataFrame(
            {
                "OlinkID": np.asarray(var.index.astype(str))[j],
                group_name: names,
                "LODNPX": self.npx[g, j],
                "LODCount": self.count[g, j],
                "LODMethod": np.where(self.use_count[g, j], "lod_count", "lod_npx"),
            }
        )


# ------------------------------------------------------------------------------------------
# Groups
# ------------------------------------------------------------------------------------------


def group_codes(
    adata: ad.AnnData, groupby: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group of every cell as ``codes[i, gidx[j]]`` (samples × a few columns, e.g. one per
    panel for plates) and the group names."""
    if groupby is None:
        codes = np.zeros((adata.n_obs, 1), dtype=np.intp)
        return codes, np.zeros(adata.n_vars, dtype=np.intp), np.array(["all"], dtype=object)
    if groupby == "PlateID":
        return _plate_codes(adata)
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


def _plate_codes(adata: ad.AnnData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Plate of every cell as ``codes[i, pidx[j]]`` (one column per panel; ``-1`` where the
    sample has no plate on the panel) and the plate names."""
    tab = _utils.per_panel_obs(adata, "PlateID")
    groups = pd.unique(tab.to_numpy().ravel())
    groups = groups[groups != ""] if len(groups) > 1 else groups
    index = pd.Index(groups)
    codes = np.column_stack([index.get_indexer(tab[p].to_numpy()) for p in tab.columns])
    codes = codes.reshape(adata.n_obs, tab.shape[1]).astype(np.intp)
    pidx = pd.Index(list(tab.columns)).get_indexer(_utils.panels(adata))
    return codes, pidx, np.asarray(groups, dtype=object)


# ------------------------------------------------------------------------------------------
# LOD tables
# ------------------------------------------------------------------------------------------


def _nc_rows(adata: ad.AnnData) -> np.ndarray:
    if "SampleType" not in adata.obs:
        msg = format_message(
            "NCLOD needs obs['SampleType'] to find the negative controls",
            column="SampleType",
            hint="Read an Explore export with a SampleType column, or use method='fixed'.",
        )
        raise ValidationError(msg)
    nc = adata.obs["SampleType"].astype(str).str.upper().eq("NEGATIVE_CONTROL")
    return np.flatnonzero(nc.to_numpy())


def pc_values(adata: ad.AnnData):
    """The plate-control-normalized NPX (``layers["PCNormalizedNPX"]``, else X)."""
    if "PCNormalizedNPX" in adata.layers:
        pc = adata.layers["PCNormalizedNPX"]
        return pc if _lazy.is_dask(pc) else np.asarray(pc, dtype=float)
    return _utils.npx(adata)


def nc_table(adata: ad.AnnData, *, groupby: str | None, min_nc: int, count_rule: bool) -> LodTable:
    """OlinkAnalyze's ``olink_nc_lod`` per assay and group, over negative controls that pass
    QC and have an NPX: ``LODNPX = median(PC) + max(0.2, 3·SD(PC))`` (PC-normalized NPX,
    SD with n − 1), ``LODCount = max(150, 2·max(Count))`` and ``lod_count`` where the
    largest count is at most 150 (``count_rule`` and a ``Count`` layer; else ``lod_npx``)."""
    nc_rows = _nc_rows(adata)
    X = _utils.npx(adata)
    pc = pc_values(adata)
    arrays = [X, pc]
    has_count = count_rule and "Count" in adata.layers
    if has_count:
        arrays.append(adata.layers["Count"])
    cell_qc = _utils.has_cell_qc(adata)
    if cell_qc:
        arrays.append(_utils.qc_fail_cells(adata))
    got = _lazy.rows_of(arrays, nc_rows)
    x_nc, pc_nc = got[0].astype(float), got[1].astype(float)
    count_nc = got[2].astype(float) if has_count else None
    if cell_qc:
        fail_nc = got[-1].astype(bool)
    else:
        by_panel, pidx = _utils.qc_fail_by_panel(adata)
        fail_nc = by_panel[nc_rows][:, pidx]
    real = ~_utils.control_assays(adata)
    ok_nc = ~fail_nc & ~np.isnan(x_nc) & real[None, :]  # OlinkAnalyze: NPX present
    if groupby is None and "DataAnalysisRefID" in adata.obs:
        groupby = "DataAnalysisRefID"  # OlinkAnalyze: per assay and reagent lot
    codes, gidx, groups = group_codes(adata, groupby)
    codes_nc = codes[nc_rows][:, gidx]
    shape = (len(groups) + 1, adata.n_vars)  # last row: code -1, no group
    lod_npx, lod_count = np.full(shape, np.nan), np.full(shape, np.nan)
    use_count = np.zeros(shape, dtype=bool)
    too_few: list[str] = []
    for k, g in enumerate(groups):  # one pass per lot/plate, vectorised over assays
        sel = ok_nc & (codes_nc == k)
        block = np.where(sel, pc_nc, np.nan)  # NC rows only
        n = sel.sum(axis=0)
        present = (codes == k).any(axis=0)[gidx] & real
        short = present & (n < min_nc)
        too_few.extend(
            f"{g}/{v} (n={c})" for v, c in zip(adata.var_names[short], n[short], strict=True)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = _utils.nanmedian0(block)
            sd = np.nanstd(block, axis=0, ddof=1)
            lod_npx[k] = np.where(present, med + np.maximum(0.2, 3.0 * sd), np.nan)
            if count_nc is not None:
                top = np.nanmax(np.where(sel, count_nc, np.nan), axis=0)  # NaN: no count
                lod_count[k] = np.where(present, np.fmax(float(MIN_COUNT), 2.0 * top), np.nan)
                use_count[k] = present & ~(top > MIN_COUNT)
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
    return LodTable(lod_npx, lod_count, use_count, codes, gidx, groups)


def fixed_columns(table: pd.DataFrame) -> pd.DataFrame:
    """A fixed-LOD table with OlinkAnalyze's column names (``LODNPX``, ``LODCount``,
    ``LODMethod``; older ``LodNPX`` spellings are matched case-insensitively)."""
    rename = {}
    for col in table.columns:
        key = str(col).strip().replace("_", "").lower()
        if key in FIXED_COLUMNS and FIXED_COLUMNS[key] not in rename.values():
            rename[col] = FIXED_COLUMNS[key]
    return table.rename(columns=rename)


def _version(text: str) -> tuple[int, ...] | None:
    parts = re.findall(r"\d+", str(text))
    return tuple(int(x) for x in parts) if parts else None


def _outdated_darids(adata: ad.AnnData) -> list[str]:
    """``DARID / version`` pairs of the data exported before Panel Data Archive 1.5.0 for
    the lots that need it (OlinkAnalyze's ``check_darid``)."""
    ref_col = "DataAnalysisRefID"
    ver_col = next(
        (
            c
            for c in ("PanelDataArchiveVersion", "ExploreVersion")
            if c in adata.var or c in adata.obs
        ),
        None,
    )
    if ver_col is None:
        return []
    for frame in (adata.var, adata.obs):
        if ref_col in frame and ver_col in frame:
            pairs = set(zip(frame[ref_col].astype(str), frame[ver_col].astype(str), strict=True))
            break
    else:
        where = adata.var if ref_col in adata.var else adata.obs
        where_v = adata.var if ver_col in adata.var else adata.obs
        if ref_col not in where:
            return []
        refs = set(where[ref_col].astype(str))
        pairs = {(r, v) for r in refs for v in set(where_v[ver_col].astype(str))}
    out = []
    for ref, ver in sorted(pairs):
        v = _version(ver)
        if OUTDATED_DARID.match(ref) and v is not None and v < MIN_ARCHIVE_VERSION:
            out.append(f"{ref} / {ver}")
    return out


def check_fixed_version(adata: ad.AnnData, table: pd.DataFrame) -> None:
    """Warn, as OlinkAnalyze's ``check_ht_fixed_lod_version``, when Explore HT data from an
    outdated lot / archive combination meet a fixed-LOD file without a ``Version`` of at
    least 6.0.0 (or with several versions)."""
    if "Panel" in table and not table["Panel"].astype(str).eq("Explore_HT").all():
        return  # (OlinkAnalyze: a file without Panel counts as Explore HT)
    bad = _outdated_darids(adata)
    if not bad:
        return
    what = f"the data have DataAnalysisRefID / archive version combination(s) {preview(bad)}"
    hint = "download the newest fixed-LOD file from olink.com (version 6.0.0 or later)."
    if "Version" not in table:
        _utils.warn_user(f"fixed LOD: outdated fixed-LOD file (no Version column); {what}; {hint}")
        return
    versions = sorted(set(table["Version"].astype(str)))
    if len(versions) != 1:
        _utils.warn_user(f"fixed LOD: the file has several versions {versions!r}; {what}; {hint}")
        return
    v = _version(versions[0])
    if v is None or v < MIN_FIXED_LOD_VERSION:
        _utils.warn_user(
            f"fixed LOD: outdated fixed-LOD file (version {versions[0]}); {what}; {hint}"
        )


def _data_refids(adata: ad.AnnData, ref_col: str):
    """Where the data say which DataAnalysisRefID applies: ``("var", ids)``,
    ``("obs", ids)``, ``("meta", {id})`` or ``(None, None)``."""
    if ref_col in adata.var:
        return "var", adata.var[ref_col].astype(str).to_numpy()
    if ref_col in adata.obs:
        return "obs", adata.obs[ref_col].astype(str).to_numpy()
    meta = adata.uns.get("olinkpipe", {}).get("metadata")
    if isinstance(meta, dict) and ref_col in meta:
        return "meta", np.asarray([str(meta[ref_col])], dtype=object)
    return None, None


def fixed_table(adata: ad.AnnData, table: pd.DataFrame) -> LodTable:
    """OlinkAnalyze's ``olink_fixed_lod``: the file's rows matched on OlinkID and the data's
    DataAnalysisRefID (``var``, ``obs`` or parquet metadata)."""
    tab = fixed_columns(table)
    check_fixed_version(adata, tab)
    tab["OlinkID"] = tab["OlinkID"].astype(str)
    lod_npx = pd.to_numeric(tab["LODNPX"], errors="coerce").to_numpy(float)
    count_col = tab["LODCount"] if "LODCount" in tab else pd.Series(np.nan, index=tab.index)
    lod_count = pd.to_numeric(count_col, errors="coerce").to_numpy(float)
    if "LODMethod" in tab:  # OlinkAnalyze: anything but lod_npx takes the count formula
        method = tab["LODMethod"].astype(str).str.strip().str.lower()
        use_count = method.ne("lod_npx").to_numpy()
    else:
        use_count = np.zeros(len(tab), dtype=bool)
    ref_col = "DataAnalysisRefID"
    where, ids = _data_refids(adata, ref_col) if ref_col in tab else (None, None)
    names = adata.var_names.astype(str)
    if where == "obs":
        cat = pd.Categorical(ids)
        groups = np.asarray(cat.categories, dtype=object)
        codes = cat.codes.astype(np.intp)[:, None]
        keys = [names + "\x00" + g for g in groups]
    elif where in ("var", "meta"):
        groups = np.asarray(["all"], dtype=object)
        codes = np.zeros((adata.n_obs, 1), dtype=np.intp)
        keys = [names + "\x00" + (ids if where == "var" else ids[0])]
    else:
        dup = tab["OlinkID"][tab["OlinkID"].duplicated()].unique()
        if len(dup):
            msg = format_message(
                "the fixed LOD table has several rows for the same OlinkID and the data do "
                "not say which DataAnalysisRefID applies",
                column=ref_col,
                rows=dup,
                hint="Add var['DataAnalysisRefID'] (or obs) to the data, or filter the table.",
            )
            raise ValidationError(msg)
        groups = np.asarray(["all"], dtype=object)
        codes = np.zeros((adata.n_obs, 1), dtype=np.intp)
        keys = [pd.Index(names)]
    tab_key = (
        tab["OlinkID"] if where is None else tab["OlinkID"] + "\x00" + tab[ref_col].astype(str)
    )
    first = ~pd.Index(tab_key).duplicated()
    index = pd.Index(tab_key[first])
    shape = (len(groups) + 1, adata.n_vars)
    out_npx, out_count = np.full(shape, np.nan), np.full(shape, np.nan)
    out_use = np.zeros(shape, dtype=bool)
    for k, key in enumerate(keys):
        pos = index.get_indexer(pd.Index(key))
        hit = pos >= 0
        out_npx[k, hit] = lod_npx[first][pos[hit]]
        out_count[k, hit] = lod_count[first][pos[hit]]
        out_use[k, hit] = use_count[first][pos[hit]]
    missing = np.isnan(out_npx[:-1]).all(axis=0) & ~out_use[:-1].any(axis=0)
    missing &= ~_utils.control_assays(adata)
    if missing.any():
        _utils.warn_user(
            f"fixed LOD: no LOD for {int(missing.sum())} assay(s) "
            f"({preview(adata.var_names[missing])}); their LOD is NaN.",
        )
    return LodTable(out_npx, out_count, out_use, codes, np.zeros(adata.n_vars, np.intp), groups)


# ------------------------------------------------------------------------------------------
# To the data's NPX scale
# ------------------------------------------------------------------------------------------


def _normalization(adata: ad.AnnData) -> tuple[np.ndarray, np.ndarray]:
    """(intensity-normalized, no LOD) masks per assay from ``var["Normalization"]``:
    OlinkAnalyze gives an LOD to ``Intensity`` and ``Plate control`` assays only."""
    if "Normalization" not in adata.var:
        return np.zeros(adata.n_vars, bool), np.zeros(adata.n_vars, bool)
    norm = adata.var["Normalization"].astype(str).str.strip().str.lower()
    inten = norm.eq("intensity").to_numpy()
    return inten, ~inten & ~norm.eq("plate control").to_numpy()


def _plate_medians(values, rows: np.ndarray, pcodes, pidx, n_plates: int) -> np.ndarray:
    """(n_plates + 1) × assays medians of ``values`` over ``rows`` of each plate (NaN
    skipped, as R's ``median(na.rm = TRUE)``); the last row is NaN (no plate)."""
    codes = pcodes[rows]

    def kernel(block, p):
        p = np.asarray(p, dtype=np.intp)
        sub = np.asarray(block, dtype=float)[rows]
        out = np.full((n_plates + 1, sub.shape[1]), np.nan)
        present = np.unique(p)
        if all(np.array_equal(codes[:, q], codes[:, present[0]]) for q in present[1:]):
            plate = codes[:, present[0]]  # the usual case: each plate's rows, one sort in all
            for k in range(n_plates):
                out[k] = _utils.nanmedian0(sub[plate == k])
            return out
        cell = codes[:, p]  # panels of the block on different plates: mask per plate
        for k in range(n_plates):  # a few plates, vectorised over assays
            out[k] = _utils.nanmedian0(np.where(cell == k, sub, np.nan))
        return out

    if len(rows) == 0:
        return np.full((n_plates + 1, len(pidx)), np.nan)
    return _lazy.per_assay(kernel, [values], k=n_plates + 1, vectors=[pidx.astype(float)])


def _ext_counts(adata: ad.AnnData) -> tuple[np.ndarray, np.ndarray]:
    """log2 of every sample's extension-control count per panel and block (samples ×
    blocks, a last column of NaN) and each assay's block column (``-1`` when its panel
    and block have no extension control)."""
    var = adata.var
    pans = _utils.panels(adata).astype(str)
    block = var["Block"].astype(str).to_numpy() if "Block" in var else np.full(len(pans), "")
    key = pd.Index(pans + "\x00" + block)
    kind = var["AssayType"].astype(str).str.lower() if "AssayType" in var else None
    ext = np.zeros(adata.n_vars, bool) if kind is None else kind.eq("ext_ctrl").to_numpy()
    ext_cols = np.flatnonzero(ext)
    ext_keys = key[ext_cols]
    first = ~ext_keys.duplicated()
    ext_cols, ext_keys = ext_cols[first], ext_keys[first]
    bidx = pd.Index(ext_keys).get_indexer(key)
    count = adata.layers["Count"]
    cols = np.asarray(count[:, ext_cols].compute() if _lazy.is_dask(count) else count[:, ext_cols])
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.log2(np.asarray(cols, dtype=float))
    return np.column_stack([logs, np.full(adata.n_obs, np.nan)]), bidx


def to_npx(
    adata: ad.AnnData, tab: LodTable, *, intensity_median: str = "plate", fixed: bool = False
) -> tuple[object, dict]:
    """The samples × assays LOD on the data's scale (numpy or lazy dask, NaN where NPX is
    NaN), and counts for the record."""
    X = _utils.npx(adata)
    n_vars = adata.n_vars
    inten, no_lod = _normalization(adata)
    pcodes, pidx, plates = _plate_codes(adata)
    n_plates = len(plates)
    use_count = tab.use_count.copy()
    info = {"n_count_based": 0, "count_fallback": []}
    counts_ok = "Count" in adata.layers and "ExtNPX" in adata.layers
    ext_log, bidx = (None, None)
    if use_count.any() and counts_ok:
        ext_log, bidx = _ext_counts(adata)
        no_ext = use_count.any(axis=0) & (bidx < 0)
        if no_ext.any():
            info["count_fallback"] = list(adata.var_names[no_ext].astype(str))
            use_count[:, no_ext] = False
    elif use_count.any():
        info["count_fallback"] = list(adata.var_names[use_count.any(axis=0)].astype(str))
        use_count[:] = False
    if info["count_fallback"]:
        _utils.warn_user(
            f"LOD: {len(info['count_fallback'])} assay(s) have a count-based LOD "
            "(LODMethod lod_count) but the data lack the counts to convert it (layers "
            "'Count' and 'ExtNPX', an ext_ctrl assay of the same panel and block); their "
            f"LODNPX is used instead: {preview(info['count_fallback'])}",
        )
    info["n_count_based"] = int(use_count.any(axis=0).sum())
    # per plate × assay terms: PCMedian (count LODs), PlateMedianNPX (intensity)
    pc_median = np.zeros((n_plates + 1, n_vars))
    if use_count.any():
        st = adata.obs["SampleType"].astype(str).str.upper() if "SampleType" in adata.obs else None
        pc_rows = np.flatnonzero(st.eq("PLATE_CONTROL")) if st is not None else np.array([], int)
        pc_median = _plate_medians(adata.layers["ExtNPX"], pc_rows, pcodes, pidx, n_plates)
    shift = np.zeros((n_plates + 1, n_vars))
    use_pc = "PCNormalizedNPX" in adata.layers
    if inten.any() and use_pc:
        if "SampleType" in adata.obs:
            samples = adata.obs["SampleType"].astype(str).str.upper().eq("SAMPLE").to_numpy()
        else:
            samples = ~_utils.control_samples(adata)
        rows = np.flatnonzero(samples)
        pc = pc_values(adata)
        if intensity_median == "all":  # olinkpipe < 0.x: one median over all samples
            med = _lazy.per_assay(lambda b: _utils.nanmedian0(np.asarray(b)[rows]), [pc])[0]
            shift[:] = np.where(np.isnan(med), 0.0, med)[None, :]
        else:
            shift = _plate_medians(pc, rows, pcodes, pidx, n_plates)
        shift[:, ~inten] = 0.0
    elif inten.any() and fixed:  # an NC LOD from intensity NPX is on that scale already
        _utils.warn_user(
            "LOD: intensity-normalized assays need layers['PCNormalizedNPX'] to convert "
            "the plate-control LOD (as OlinkAnalyze does); the LOD was applied unconverted.",
        )
    # one row per (group, plate) pair that occurs: the LOD of every cell but the -log2(ExtCount)
    gcol = np.arange(pcodes.shape[1]) if tab.codes.shape[1] > 1 else np.zeros(pcodes.shape[1], int)
    gq = tab.codes[:, gcol]
    pair = np.where((gq < 0) | (pcodes < 0), -1, gq * (n_plates + 1) + pcodes)
    uniq, inv = np.unique(pair, return_inverse=True)
    inv = inv.reshape(pair.shape)
    real = uniq >= 0
    g_of = np.where(real, uniq // (n_plates + 1), -1)
    p_of = np.where(real, uniq % (n_plates + 1), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        by_count = np.log2(tab.count[g_of]) - pc_median[p_of]
    table = np.where(use_count[g_of], by_count, tab.npx[g_of]) - shift[p_of]
    table[~real] = np.nan
    table[:, no_lod] = np.nan
    table = np.vstack([table, np.full(n_vars, np.nan)])
    codes = np.where(pair < 0, -1, inv)
    counted = use_count[g_of].astype(float)
    counted[~real] = 0.0
    counted = np.vstack([counted, np.zeros(n_vars)])
    lod = _assemble(X, codes, pidx, table, counted, ext_log, bidx)
    return lod, info


def _assemble(X, codes, pidx, table, counted, ext_log, bidx):
    """``table[codes[i, pidx[j]], j]`` minus ``ext_log[i, bidx[j]]`` where the cell's LOD
    is count-based, NaN where X is NaN; slice by slice in memory, lazily on dask."""
    pidx = np.asarray(pidx, dtype=np.intp)
    if ext_log is None:
        return _lazy.expand_by_code(X, codes, pidx, table)
    bidx = np.asarray(bidx, dtype=np.intp)

    def fill(block, p, b, t, c):
        p, b = np.asarray(p, np.intp).ravel(), np.asarray(b, np.intp).ravel()
        out = _lazy.by_code(t, codes, p)
        use = _lazy.by_code(c, codes, p) > 0
        if use.any():
            out = np.where(use, out - ext_log[:, b], out)
        out[np.isnan(block)] = np.nan
        return out

    if _lazy.is_dask(X):
        da = require_dask("a dask-backed AnnData")
        vp = da.from_array(pidx[None, :], chunks=((1,), X.chunks[1]))
        vb = da.from_array(bidx[None, :], chunks=((1,), X.chunks[1]))
        vt = da.from_array(table, chunks=((table.shape[0],), X.chunks[1]))
        vc = da.from_array(counted, chunks=((counted.shape[0],), X.chunks[1]))
        return da.map_blocks(fill, X, vp, vb, vt, vc, dtype=float)
    out = np.empty(X.shape, dtype=float)
    for sl in _lazy.column_slices(X.shape[1], X.shape[0]):
        with np.errstate(invalid="ignore"):
            out[:, sl] = fill(X[:, sl], pidx[sl], bidx[sl], table[:, sl], counted[:, sl])
    return out
