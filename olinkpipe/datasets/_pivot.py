"""The simulator's long frame -> the compact AnnData :func:`olinkpipe.read_npx` gives.

Works over the long rows block by block, so besides the AnnData it builds it holds only
per-block temporaries (sample × assay positions, flags) and per-(assay, plate) or
per-(sample, panel) tables.
"""

from __future__ import annotations

from collections.abc import Iterator

import anndata as ad
import numpy as np
import pandas as pd

from .._layout import LOD_KEY, code_dtype, set_lod

__all__ = ["long_to_anndata"]

#: the long frame's column for each reader role (``uns["olinkpipe"]["columns"]``)
ROLES = {
    "sample": "SampleID",
    "olinkid": "OlinkID",
    "value": "NPX",
    "lod": "LOD",
    "plate": "PlateID",
    "qc": "QC_Warning",
    "panel": "Panel",
    "assay": "Assay",
    "uniprot": "UniProt",
}
_ROWS = 1 << 20  # long rows per block


class _Pivot:
    """Row positions of a long frame in the samples × assays matrix, block by block."""

    def __init__(self, npx: pd.DataFrame) -> None:
        self.s = npx["SampleID"].cat.codes.to_numpy()
        self.a = npx["OlinkID"].cat.codes.to_numpy()
        self.shape = (len(npx["SampleID"].cat.categories), len(npx["OlinkID"].cat.categories))
        self.n = len(npx)

    def blocks(self) -> Iterator[slice]:
        for start in range(0, self.n, _ROWS):
            yield slice(start, min(start + _ROWS, self.n))

    def cells(self, sl: slice) -> np.ndarray:
        """Flat matrix positions of the rows ``sl``."""
        out = self.s[sl].astype(np.int64)
        out *= self.shape[1]
        out += self.a[sl]
        return out

    def scatter(self, values: np.ndarray, fill, dtype=float) -> np.ndarray:
        """Rows to a samples × assays matrix (``fill`` where there is no row)."""
        out = np.full(self.shape[0] * self.shape[1], fill, dtype=dtype)
        for sl in self.blocks():
            out[self.cells(sl)] = values[sl]
        return out.reshape(self.shape)

    def first_rows(self, codes: np.ndarray, n_groups: int) -> np.ndarray:
        """The first row of each group (``codes``: each row's group)."""
        first = np.full(n_groups, -1, dtype=np.int64)
        for sl in self.blocks():
            uniq, at = np.unique(codes[sl], return_index=True)
            new = first[uniq] < 0
            first[uniq[new]] = at[new] + sl.start
        return first

    def varies_within(self, codes: np.ndarray, group: np.ndarray, n_groups: int) -> bool:
        """True when ``codes`` is not constant within some group."""
        first = self.first_rows(group, n_groups)
        ref = np.zeros(n_groups, dtype=codes.dtype)
        ref[first >= 0] = codes[first[first >= 0]]
        return any(bool((codes[sl] != ref[group[sl]]).any()) for sl in self.blocks())


def _at(col: pd.Series, rows: np.ndarray) -> np.ndarray:
    """The text of a categorical column at ``rows`` (no object array of every row)."""
    cats = np.append(np.asarray(col.cat.categories, dtype=object).astype(str), "nan")
    return cats[col.cat.codes.to_numpy()[rows]]


def _without_unused_ids(npx: pd.DataFrame) -> pd.DataFrame:
    """``npx`` with unused OlinkID / SampleID categories dropped (such an ID has no rows, and
    its annotation would be another row's); the frame itself when there are none. Only the
    two columns are replaced, on a shallow copy: the long rows are not copied."""
    unused = []
    for c in ("OlinkID", "SampleID"):
        codes = npx[c].cat.codes.to_numpy()
        if not np.bincount(codes[codes >= 0], minlength=len(npx[c].cat.categories)).all():
            unused.append(c)
    if not unused:
        return npx
    npx = npx.copy(deep=False)
    for c in unused:
        npx[c] = npx[c].cat.remove_unused_categories()
    return npx


def long_to_anndata(npx: pd.DataFrame, samples: pd.DataFrame) -> ad.AnnData:
    """Pivot the simulator's long frame into the AnnData of docs/data_model.md.

    The layout is the one :func:`olinkpipe.read_npx` gives for the written export (the
    compact one): the LOD, constant per assay and plate, as the assays × plates table
    ``varm["lod"]`` (plates in ``uns["olinkpipe"]["lod_plates"]``), QC per sample and
    panel in ``obsm["QC_Warning"]``, below LOD and per-cell QC computed on demand
    (:mod:`olinkpipe._layout`), and an ``Assay_Warning`` that varies within an assay as
    an int8 code layer. No full LOD, ``below_lod`` or ``qc_warning`` layer is built.
    """
    npx = _without_unused_ids(npx)
    piv = _Pivot(npx)
    n_s, n_a = piv.shape
    first = piv.first_rows(piv.a, n_a)
    var = pd.DataFrame(
        {
            "Assay": _at(npx["Assay"], first),
            "UniProt": _at(npx["UniProt"], first),
            "Panel": _at(npx["Panel"], first),
            "Panel_Lot_Nr": _at(npx["Panel_Lot_Nr"], first),
            "MissingFreq": npx["MissingFreq"].to_numpy()[first],
            "Normalization": "Intensity",
            "Assay_Warning": "PASS",
            "AssayType": "assay",
            "is_control": False,
        },
        index=pd.Index(npx["OlinkID"].cat.categories.astype(str), name="OlinkID"),
    )
    sfirst = piv.first_rows(piv.s, n_s)
    obs = pd.DataFrame(index=pd.Index(npx["SampleID"].cat.categories.astype(str), name=None))
    obs["SampleID"] = obs.index
    stype = _at(npx["Sample_Type"], sfirst)
    obs["SampleType"] = np.where(stype == "CONTROL", "SAMPLE_CONTROL", "SAMPLE")
    obs["is_control"] = stype == "CONTROL"
    obs["PlateID"] = _at(npx["PlateID"], sfirst)
    panels = var["Panel"].to_numpy()
    pan_levels = pd.unique(panels)
    fail, qc_varies = _qc_by_panel(
        piv, npx["QC_Warning"], pd.Index(pan_levels).get_indexer(panels)
    )
    qc_panel = pd.DataFrame(np.where(fail, "WARN", "PASS"), index=obs.index, columns=pan_levels)
    obs["QC_Warning"] = np.where(fail.any(axis=1), "WARN", "PASS")
    obs["qc_pass"] = obs["QC_Warning"] == "PASS"
    sheet = samples.set_index("SampleID")
    for col in ("patient", "timepoint", "day"):
        if col in sheet:
            obs[col] = sheet[col].reindex(obs.index).to_numpy()
    adata = ad.AnnData(X=piv.scatter(npx["NPX"].to_numpy(dtype=float), np.nan), obs=obs, var=var)
    adata.obsm["PlateID"] = pd.DataFrame({p: obs["PlateID"] for p in qc_panel.columns})
    adata.obsm["QC_Warning"] = qc_panel
    measured = piv.scatter(np.ones(piv.n, dtype=bool), fill=False, dtype=bool)
    if not measured.all():  # not a full grid (the simulator always writes one)
        adata.layers["measured"] = measured
    del measured
    coded: dict[str, np.ndarray] = {}
    if qc_varies:  # QC varies within a sample's panel: per-cell codes, as the reader
        _code_layer(adata, piv, npx, "QC_Warning", coded)
    warn = npx["Assay_Warning"].cat
    if piv.varies_within(warn.codes.to_numpy(), piv.a, n_a):
        _code_layer(adata, piv, npx, "Assay_Warning", coded)
        del adata.var["Assay_Warning"]
    else:
        cats = np.append(np.asarray(warn.categories, dtype=object), None)
        adata.var["Assay_Warning"] = cats[warn.codes.to_numpy()[first]]
    adata.uns["olinkpipe"] = {
        "source": ["olinkpipe.datasets.simulate_cart_study"],
        "format": "long",
        "product": "Explore 3072",
        "data_type": "NPX",
        "columns": dict(ROLES),
        "coded_layers": coded,
    }
    _store_lod(adata, piv, npx)
    return adata


def _qc_by_panel(piv: _Pivot, qc: pd.Series, pidx: np.ndarray) -> tuple[np.ndarray, bool]:
    """QC failure per sample and panel (any of its cells not a ``PASS``; missing is a
    pass, as :func:`olinkpipe._layout.qc_warning_matrix`), and whether it varies within a
    (sample, panel) pair."""
    n_p = int(pidx.max()) + 1 if pidx.size else 0
    size = piv.shape[0] * n_p
    bad = np.append(np.asarray(qc.cat.categories, dtype=object) != "PASS", False)
    codes = qc.cat.codes.to_numpy()
    n_rows = np.zeros(size, dtype=np.int64)
    n_warn = np.zeros(size, dtype=np.int64)
    for sl in piv.blocks():
        key = piv.s[sl].astype(np.int64) * n_p + pidx[piv.a[sl]]
        n_rows += np.bincount(key, minlength=size)
        n_warn += np.bincount(key[bad[codes[sl]]], minlength=size)
    varies = bool(((n_warn > 0) & (n_warn < n_rows)).any())
    return (n_warn > 0).reshape(piv.shape[0], n_p), varies


def _code_layer(adata: ad.AnnData, piv: _Pivot, npx: pd.DataFrame, col: str, coded: dict) -> None:
    """A per-cell text column as a code layer (-1: missing) of the smallest int dtype, its
    categories (those that occur, in category order) in ``coded``."""
    cat = npx[col].cat
    codes = cat.codes.to_numpy()
    used = np.zeros(len(cat.categories) + 1, dtype=bool)  # the last: code -1
    for sl in piv.blocks():
        used[np.unique(codes[sl])] = True
    cats = np.asarray([str(c) for c in cat.categories], dtype=object)[used[:-1]]
    dt = code_dtype(len(cats))
    recode = np.append(np.cumsum(used[:-1]) - 1, -1).astype(dt)  # old code -> new code
    out = np.full(piv.shape[0] * piv.shape[1], -1, dtype=dt)
    for sl in piv.blocks():
        out[piv.cells(sl)] = recode[codes[sl]]
    adata.layers[col] = out.reshape(piv.shape)
    coded[col] = cats


def _store_lod(adata: ad.AnnData, piv: _Pivot, npx: pd.DataFrame) -> None:
    """The LOD as the assays × plates table when it is constant per assay and plate bit
    for bit (as :func:`olinkpipe._layout.compact_lod` decides for a read file), else as
    the full layer."""
    lod = npx["LOD"].to_numpy(dtype=float)
    labels = [str(p) for p in pd.unique(adata.obsm["PlateID"].to_numpy().ravel()) if p != ""]
    plate = npx["PlateID"].cat
    where = np.append(pd.Index(labels or [""]).get_indexer(plate.categories.astype(str)), -1)
    p_codes = plate.codes.to_numpy()  # code -1 (no plate): -1, i.e. the full layer
    table = np.full((adata.n_vars, len(labels or [""])), np.nan)
    same = True
    for sl in piv.blocks():
        rows = where[p_codes[sl]]
        if (rows < 0).any():
            same = False
            break
        table[piv.a[sl], rows] = lod[sl]
    for sl in piv.blocks() if same else ():
        exp, got = table[piv.a[sl], where[p_codes[sl]]], lod[sl]
        ok = (exp.view(np.int64) == got.view(np.int64)) | (np.isnan(exp) & np.isnan(got))
        if not ok.all():
            same = False
            break
    if same:
        adata.varm[LOD_KEY] = table
        adata.uns["olinkpipe"]["lod_plates"] = labels or [""]
    else:
        set_lod(adata, piv.scatter(lod, np.nan))
