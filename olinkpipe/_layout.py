"""The compact AnnData layout: one place that reads and writes LOD, below-LOD and QC cells.

A reader stores what varies per cell and nothing it can derive (docs/data_model.md):

- **LOD** constant per assay and plate is an assays × plates table, ``varm["lod"]``
  (float64, one column per plate, labels in ``uns["olinkpipe"]["lod_plates"]``; the plate
  of cell (i, j) is ``obsm["PlateID"]`` of sample i on assay j's panel). Anything else
  (a LOD that varies within a plate, one computed by ``pp.compute_lod``, data built by
  hand) is the full float layer ``layers["lod"]``. A file with no PlateID at all is one
  plate labelled ``""``.
- **below LOD** is ``X < lod`` and **QC warning** comes from the per-cell QC code layer or
  the per-panel ``obsm["QC_Warning"]``: both computed on demand, never stored by a reader.
  An old file (or a hand-built AnnData) holding ``layers["below_lod"]`` /
  ``layers["qc_warning"]`` is still read from those layers.

Every function works on both layouts, dense or dask (a dask-backed ``X`` gives lazy
results, block by block). Use these instead of ``adata.layers["lod"]`` and friends.

Examples
--------
>>> import olinkpipe as op
>>> from olinkpipe import _layout
>>> adata = op.datasets.load_example().adata
>>> "lod" in adata.layers, "lod" in adata.varm
(False, True)
>>> _layout.lod_matrix(adata).shape == adata.shape
True
"""

from __future__ import annotations

from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ._blockwise import add_by_code, by_code, from_columns
from ._dask import is_dask, require_dask
from ._parallel import column_slices
from ._qc import is_pass

__all__ = [
    "LOD_KEY",
    "below_lod_matrix",
    "code_dtype",
    "compact_lod",
    "has_lod",
    "layers_with_lod",
    "lod_matrix",
    "lod_table",
    "panels",
    "per_panel_obs",
    "qc_fail_by_panel",
    "qc_warning_matrix",
    "set_lod",
    "shift_lod",
    "shift_lod_by_plate",
    "stack_lod",
    "tables_stack",
]

#: ``varm`` key of the assays × plates LOD table (and ``layers`` key of the full LOD)
LOD_KEY = "lod"
_PLATES = "lod_plates"  # uns["olinkpipe"] key: the table's column labels


def code_dtype(n_categories: int) -> type:
    """The smallest signed int dtype holding codes ``-1 .. n_categories - 1``."""
    for dt in (np.int8, np.int16, np.int32):
        if n_categories <= np.iinfo(dt).max:
            return dt
    return np.int64


# --- plates of the cells ---------------------------------------------------------------------


def _prov(adata: ad.AnnData) -> dict:
    prov = adata.uns.get("olinkpipe")
    return prov if isinstance(prov, dict) else {}


def panels(adata: ad.AnnData) -> np.ndarray:
    """Panel of each assay (``var["Panel"]``; one pseudo-panel ``"all"`` when absent)."""
    if "Panel" in adata.var:
        return adata.var["Panel"].astype(str).to_numpy()
    return np.full(adata.n_vars, "all", dtype=object)


def per_panel_obs(adata: ad.AnnData, key: str) -> pd.DataFrame:
    """Sample × panel table of a per-panel field (``obsm[key]``, else ``obs[key]`` broadcast).

    Missing information is the empty string.
    """
    pans = pd.unique(panels(adata))
    if key in adata.obsm and isinstance(adata.obsm[key], pd.DataFrame):
        tab = adata.obsm[key]
        out = pd.DataFrame(index=adata.obs_names)
        for p in pans:
            out[p] = tab[p].astype(object).fillna("").astype(str) if p in tab else ""
        return out
    if key in adata.obs:
        col = adata.obs[key].astype(object).fillna("").astype(str).to_numpy()
        return pd.DataFrame({p: col for p in pans}, index=adata.obs_names)
    return pd.DataFrame({p: [""] * adata.n_obs for p in pans}, index=adata.obs_names)


def qc_fail_by_panel(adata: ad.AnnData) -> tuple[np.ndarray, np.ndarray]:
    """QC failure per sample and panel (``n_obs × n_panels`` bool from the per-panel
    ``QC_Warning``) and each assay's panel position: cell (i, j) fails when
    ``fail[i, pidx[j]]``. Small, where :func:`qc_warning_matrix` is a full matrix."""
    tab = per_panel_obs(adata, "QC_Warning")
    fail_tab = ~tab.apply(lambda s: pd.Series(is_pass(s), index=s.index))
    pidx = pd.Index(list(fail_tab.columns)).get_indexer(panels(adata))
    return fail_tab.to_numpy(dtype=bool).reshape(adata.n_obs, -1), pidx


def _plate_ids(adata: ad.AnnData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each sample's plate per panel as a position in ``names`` (-1: no plate, ``""``),
    the distinct plate strings ``names`` in order of first appearance over the samples ×
    panels table read row by row, and each assay's panel column. Each column is hashed
    once and each distinct value converted to str once."""
    pans = panels(adata)
    uniq = list(pd.unique(pans))
    pidx = pd.Index(uniq).get_indexer(pans)
    src = adata.obsm.get("PlateID") if "PlateID" in adata.obsm else None
    local, strs = [], []
    for p in uniq:
        if isinstance(src, pd.DataFrame) and p in src.columns:
            col = src[p]
        elif not isinstance(src, pd.DataFrame) and "PlateID" in adata.obs:
            col = adata.obs["PlateID"]
        else:
            col = None
        if col is None:
            c, u = np.full(adata.n_obs, -1, dtype=np.intp), []
        else:
            c, u = pd.factorize(col, use_na_sentinel=True)
        local.append(np.asarray(c, dtype=np.intp))
        strs.append([str(v) for v in u])
    glob, names = pd.factorize(pd.Index([v for u in strs for v in u] + [""]))
    names = np.asarray(names, dtype=object)
    empty = np.flatnonzero(names == "")  # "" (a missing value or an empty string): -1
    glob = np.where(glob == empty[0], -1, glob)
    codes = np.full((adata.n_obs, len(uniq)), -1, dtype=np.intp)
    first = np.full(len(names), np.iinfo(np.int64).max, dtype=np.int64)
    offset = 0
    for k, (c, u) in enumerate(zip(local, strs, strict=True)):
        lookup = np.append(glob[offset : offset + len(u)], -1)  # local -1 -> -1
        offset += len(u)
        codes[:, k] = lookup[c]
        q, at = np.unique(codes[:, k], return_index=True)
        np.minimum.at(first, q[q >= 0], at[q >= 0].astype(np.int64) * len(uniq) + k)
    seen = np.flatnonzero(first < np.iinfo(np.int64).max)
    order = seen[np.argsort(first[seen], kind="stable")]
    remap = np.full(len(names) + 1, -1, dtype=np.intp)
    remap[order] = np.arange(len(order))
    return remap[codes], names[order], pidx


def _stacked_labels(adata: ad.AnnData) -> list[str]:
    """The plate labels :func:`compact_lod` gives ``adata``'s LOD table."""
    _, names, _ = _plate_ids(adata)
    return [str(p) for p in names] if len(names) else [""]


def _plate_codes(
    adata: ad.AnnData, labels: list[str], ids: tuple | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's plate per panel as a position in ``labels`` (-1: none), and each
    assay's panel column: cell (i, j) is on plate ``labels[codes[i, pidx[j]]]``
    (``ids``: :func:`_plate_ids` of ``adata`` when already at hand)."""
    ids, names, pidx = ids or _plate_ids(adata)  # no plate at all: every cell on plate ""
    lookup = pd.Index(labels).get_indexer(pd.Index(np.append(names, ""), dtype=object))
    if not len(names):  # "" is a plate (labels [""]) when no sample has one
        return lookup[ids].astype(np.intp), pidx
    lookup[-1] = -1  # not on that panel: no LOD
    return lookup[ids].astype(np.intp), pidx


def _labels(adata: ad.AnnData) -> list[str]:
    """The plate labels of ``varm["lod"]``'s columns (an error when they do not match)."""
    labels = [str(p) for p in np.atleast_1d(_prov(adata).get(_PLATES, []))]
    width = np.shape(adata.varm[LOD_KEY])[1] if LOD_KEY in adata.varm else len(labels)
    if width != len(labels):
        from .errors import ValidationError

        msg = (
            f"varm['lod'] has {width} plate column(s) but uns['olinkpipe']['lod_plates'] "
            f"names {len(labels)}; set lod_plates to the plate of each column "
            "(docs/data_model.md), or store the LOD as layers['lod']."
        )
        raise ValidationError(msg)
    return labels


def has_lod(adata: ad.AnnData) -> bool:
    """True when ``adata`` carries a LOD (the full layer or the plate table)."""
    return LOD_KEY in adata.layers or _is_compact(adata)


def _is_compact(adata: ad.AnnData) -> bool:
    return LOD_KEY not in adata.layers and LOD_KEY in adata.varm


def lod_table(adata: ad.AnnData) -> pd.DataFrame | None:
    """The assays × plates LOD table (``var_names`` × plate labels), or None when the LOD
    is a full layer or absent.

    Examples
    --------
    >>> import olinkpipe as op
    >>> from olinkpipe import _layout
    >>> adata = op.datasets.load_example().adata
    >>> _layout.lod_table(adata).shape == (adata.n_vars, 2)  # two plates
    True
    """
    if not _is_compact(adata):
        return None
    return pd.DataFrame(
        np.asarray(adata.varm[LOD_KEY], dtype=float), index=adata.var_names, columns=_labels(adata)
    )


# --- reading ---------------------------------------------------------------------------------


def _sub(a, rows, cols):
    if rows is not None:
        a = a[np.asarray(rows)]
    if cols is not None:
        a = a[:, np.asarray(cols)]
    return a


def _count(n: int, sel) -> int:
    return n if sel is None else len(np.arange(n)[np.asarray(sel)])


def _measured(adata: ad.AnnData, rows=None, cols=None):
    if "measured" not in adata.layers:
        return None
    m = _sub(adata.layers["measured"], rows, cols)
    return m if is_dask(m) else np.asarray(m, dtype=bool)


def lod_matrix(adata: ad.AnnData, rows=None, cols=None):
    """LOD per sample × assay (float64; NaN where unknown), from the layer or the table.

    Parameters
    ----------
    adata
        Samples × assays AnnData with a LOD (see :func:`has_lod`).
    rows, cols
        Optional row / column selections (anything numpy indexing takes).

    Returns
    -------
    numpy.ndarray or dask.array.Array
        A dask array (computed block by block) when ``adata.X`` is one; a new array (or
        the stored layer itself) otherwise. All-NaN when ``adata`` has no LOD.
    """
    if LOD_KEY in adata.layers:
        lod = _sub(adata.layers[LOD_KEY], rows, cols)
        return lod if is_dask(lod) else np.asarray(lod, dtype=float)
    shape = (_count(adata.n_obs, rows), _count(adata.n_vars, cols))
    if not _is_compact(adata):
        return np.full(shape, np.nan)
    table = np.asarray(adata.varm[LOD_KEY], dtype=float).T  # plates × assays
    table = np.vstack([table, np.full((1, adata.n_vars), np.nan)])  # code -1: no LOD
    codes, pidx = _plate_codes(adata, _labels(adata))
    if rows is not None:
        codes = codes[np.asarray(rows)]
    if cols is not None:
        table, pidx = table[:, np.asarray(cols)], pidx[np.asarray(cols)]
    X = _sub(adata.X, rows, cols)
    measured = _measured(adata, rows, cols)
    if is_dask(X):
        lod = from_columns(X, lambda sl: by_code(table[:, sl], codes, pidx[sl]), dtype=float)
        if measured is not None:
            da = require_dask("a dask-backed AnnData")
            lod = da.where(measured, lod, np.nan)
        return lod
    out = np.empty(shape, dtype=float)
    for sl in column_slices(shape[1], shape[0]):
        out[:, sl] = by_code(table[:, sl], codes, pidx[sl])
    if measured is not None:
        out[~measured] = np.nan
    return out


def below_lod_matrix(adata: ad.AnnData, rows=None, cols=None):
    """``X < lod`` per cell (False where NPX or LOD is NaN); a stored
    ``layers["below_lod"]`` (old files, :func:`olinkpipe.pp.censor_lod`) is returned as is."""
    if "below_lod" in adata.layers:
        b = _sub(adata.layers["below_lod"], rows, cols)
        return b if is_dask(b) else np.asarray(b, dtype=bool)
    X = _sub(adata.X, rows, cols)
    X = X if is_dask(X) else np.asarray(X, dtype=float)
    with np.errstate(invalid="ignore"):
        return X < lod_matrix(adata, rows, cols)


def _qc_layer(adata: ad.AnnData) -> str | None:
    """The per-cell QC code layer (Explore files whose QC varies within a panel), if any."""
    prov = _prov(adata)
    name = dict(prov.get("columns", {})).get("qc")
    coded = prov.get("coded_layers", {})
    if name and name in adata.layers and name in coded:
        return str(name)
    return None


def qc_warning_matrix(adata: ad.AnnData, rows=None, cols=None):
    """True where the cell's QC warning is not a pass (``Pass``/``PASS``/``OK`` and missing
    count as pass), False for cells not measured: from ``layers["qc_warning"]`` when stored,
    else the per-cell QC code layer, else the per-panel ``obsm["QC_Warning"]``."""
    if "qc_warning" in adata.layers:
        q = _sub(adata.layers["qc_warning"], rows, cols)
        return q if is_dask(q) else np.asarray(q, dtype=bool)
    name = _qc_layer(adata)
    if name is not None:
        cats = np.asarray(_prov(adata)["coded_layers"][name], dtype=object)
        lookup = np.append(~is_pass(cats), False)  # code -1 (missing): a pass
        codes = _sub(adata.layers[name], rows, cols)
        if is_dask(codes):
            return codes.map_blocks(lambda b: lookup[np.asarray(b, np.intp)], dtype=bool)
        return lookup[np.asarray(codes, dtype=np.intp)]
    fail, pidx = qc_fail_by_panel(adata)
    if rows is not None:
        fail = fail[np.asarray(rows)]
    if cols is not None:
        pidx = pidx[np.asarray(cols)]
    measured = _measured(adata, rows, cols)
    X = _sub(adata.X, rows, cols)
    if is_dask(X):
        out = from_columns(X, lambda sl: fail[:, pidx[sl]], dtype=bool)
        return out if measured is None else out & measured
    out = fail[:, pidx]
    return out if measured is None else out & measured


# --- writing ---------------------------------------------------------------------------------


def _drop_table(adata: ad.AnnData) -> None:
    if LOD_KEY in adata.varm:
        del adata.varm[LOD_KEY]
    _prov(adata).pop(_PLATES, None)


def set_lod(adata: ad.AnnData, lod) -> None:
    """Store a full LOD (samples × assays, numpy or dask) as ``layers["lod"]``, dropping
    the plate table and any stored ``below_lod`` (now computed from it)."""
    _drop_table(adata)
    adata.layers.pop("below_lod", None)
    adata.layers[LOD_KEY] = lod


def compact_lod(adata: ad.AnnData) -> bool:
    """Replace a numpy ``layers["lod"]`` that is constant per assay and plate (bit for bit,
    NaN equal to NaN, NaN where the cell is not measured) by the plate table. Returns True
    when it did; a dask layer or a LOD that varies within a plate is left as it is."""
    if LOD_KEY not in adata.layers:
        return _is_compact(adata)
    _drop_table(adata)  # a full layer wins over any (stale) table
    lod = adata.layers[LOD_KEY]
    if is_dask(lod):
        return False
    lod = np.asarray(lod, dtype=float)
    labels = _stacked_labels(adata)
    codes, pidx = _plate_codes(adata, labels)
    table = np.full((len(labels) + 1, adata.n_vars), np.nan)
    for k in range(codes.shape[1]):  # each plate's first sample on the panel gives its row
        cols = np.flatnonzero(pidx == k)
        q, first = np.unique(codes[:, k], return_index=True)
        keep = q >= 0
        table[np.ix_(q[keep], cols)] = lod[np.ix_(first[keep], cols)]
    measured = _measured(adata)
    i8 = np.int64
    for sl in column_slices(adata.n_vars, adata.n_obs):
        exp = by_code(table[:, sl], codes, pidx[sl])
        if measured is not None:
            exp[~measured[:, sl]] = np.nan
        got = lod[:, sl]
        same = (exp.view(i8) == got.view(i8)) | (np.isnan(exp) & np.isnan(got))
        if not same.all():
            return False
    del adata.layers[LOD_KEY]
    adata.varm[LOD_KEY] = np.ascontiguousarray(table[:-1].T)
    adata.uns.setdefault("olinkpipe", {})[_PLATES] = labels
    return True


def shift_lod(adata: ad.AnnData, factor: np.ndarray) -> None:
    """Add a per-assay ``factor`` to the LOD (the table's rows, or the full layer)."""
    factor = np.asarray(factor, dtype=float)
    if _is_compact(adata):
        adata.varm[LOD_KEY] = np.asarray(adata.varm[LOD_KEY], dtype=float) + factor[:, None]
    elif LOD_KEY in adata.layers:  # in place on a float64 numpy layer, lazily on dask
        lod = adata.layers[LOD_KEY]
        if is_dask(lod) or not (isinstance(lod, np.ndarray) and lod.dtype == np.float64):
            adata.layers[LOD_KEY] = (lod if is_dask(lod) else np.asarray(lod, float)) + factor
        else:
            lod += factor


def shift_lod_by_plate(
    adata: ad.AnnData,
    codes: np.ndarray,
    pidx: np.ndarray,
    factors: np.ndarray,
    plates: np.ndarray,
) -> None:
    """Add ``factors[codes[i, pidx[j]], j]`` to the LOD of cell (i, j), where ``codes`` are
    positions in ``plates`` (-1: no plate, the last row of ``factors``): each table column
    gets its plate's row, a full layer is shifted cell by cell
    (:func:`olinkpipe._blockwise.add_by_code`)."""
    if _is_compact(adata):
        table = np.asarray(adata.varm[LOD_KEY], dtype=float).copy()
        where = pd.Index([str(p) for p in plates])
        for c, label in enumerate(_labels(adata)):
            k = where.get_indexer([label])[0]
            if k >= 0:
                table[:, c] += factors[k]
        adata.varm[LOD_KEY] = table
    elif LOD_KEY in adata.layers:
        lod = adata.layers[LOD_KEY]
        lod = lod if is_dask(lod) else np.asarray(lod, dtype=float)
        adata.layers[LOD_KEY] = add_by_code(lod, codes, pidx, factors)


def tables_stack(ref: ad.AnnData, other: ad.AnnData) -> bool:
    """True when both projects store the LOD as a plate table on a full grid (no
    ``measured`` layer): :func:`stack_lod` then stacks the tables, never a full LOD."""
    return all(_is_compact(a) and "measured" not in a.layers for a in (ref, other))


def _shifted_table(adata: ad.AnnData, cols: np.ndarray, factor) -> np.ndarray:
    """``adata``'s plate table at ``cols`` (+ ``factor`` per assay), a NaN column appended
    (code -1: no LOD); the same float64 sums as a full layer shifted cell by cell."""
    tab = np.asarray(adata.varm[LOD_KEY], dtype=float)[np.asarray(cols)]
    if factor is not None:
        tab = tab + np.asarray(factor, dtype=float)[:, None]
    return np.hstack([tab, np.full((len(tab), 1), np.nan)])


def _row_keys(a: np.ndarray) -> np.ndarray:
    """One int64 per row of a small non-negative-after-shift int matrix (distinct rows,
    distinct keys): ``np.unique`` on them instead of the much slower ``axis=0``."""
    a = a - a.min(axis=0) if len(a) else a
    key = np.zeros(len(a), dtype=np.int64)
    for col in a.T:
        key = key * (int(col.max()) + 1 if len(col) else 1) + col
    return key


def _stacked_table(out, parts) -> tuple[np.ndarray, list[str]] | None:
    """The plate table of ``out`` whose rows are ``parts`` (``(adata, cols, factor)`` each,
    stacked in order) as :func:`compact_lod` would find it on the expanded, stacked LOD,
    or None when the stacked LOD is not constant per plate (bit for bit, NaN equal)."""
    ids = _plate_ids(out)
    labels = [str(p) for p in ids[1]] if len(ids[1]) else [""]  # as _stacked_labels
    codes_s, pidx_s = _plate_codes(out, labels, ids)
    srcs, codes, pcols, proj = [], [], [], []
    for k, (a, cols, factor) in enumerate(parts):
        srcs.append(_shifted_table(a, cols, factor))
        c, p = _plate_codes(a, _labels(a))
        codes.append(c)
        pcols.append(p[np.asarray(cols)])
        proj.append(np.full(a.n_obs, k))
    proj = np.concatenate(proj)
    table = np.full((out.n_vars, len(labels) + 1), np.nan)
    # assays read alike (one stacked panel, one panel in each project) form a group
    keys = np.column_stack([pidx_s, *pcols]).astype(np.int64)
    _, first_j, inverse = np.unique(_row_keys(keys), return_index=True, return_inverse=True)
    for g, key in enumerate(keys[first_j]):
        J = np.flatnonzero(inverse == g)
        s = codes_s[:, key[0]]
        c = np.concatenate([codes[k][:, key[1 + k]] for k in range(len(parts))])
        q, first = np.unique(s, return_index=True)  # each plate's first sample gives it
        keep = q >= 0
        for k, src in enumerate(srcs):
            hit = keep & (proj[first] == k)
            table[np.ix_(J, q[hit])] = src[np.ix_(J, c[first[hit]])]
        # every (stacked plate, project, own plate) met must expand to the same values
        both = np.column_stack([s, proj, c]).astype(np.int64)
        combos = both[np.unique(_row_keys(both), return_index=True)[1]]
        exp = table[np.ix_(J, combos[:, 0])]  # code -1: the NaN column
        got = np.empty_like(exp)
        for k, src in enumerate(srcs):
            on = combos[:, 1] == k
            got[:, on] = src[np.ix_(J, combos[on, 2])]
        i8 = np.int64
        if not ((exp.view(i8) == got.view(i8)) | (np.isnan(exp) & np.isnan(got))).all():
            return None
    return np.ascontiguousarray(table[:, :-1]), labels


def stack_lod(
    out: ad.AnnData,
    ref: ad.AnnData,
    other: ad.AnnData,
    cols_r: np.ndarray,
    cols_o: np.ndarray,
    factor: np.ndarray,
) -> bool:
    """Store the LOD of ``out``, ``ref``'s rows then ``other``'s on the assays ``cols_r`` /
    ``cols_o``, ``other``'s shifted by ``factor``, from the two plate tables
    (:func:`tables_stack`) without expanding them.

    The result is exactly what expanding both tables, stacking them and
    :func:`compact_lod` give: the stacked table (``varm["lod"]``, ``lod_plates``) when the
    stacked LOD is constant per assay and plate, else (e.g. a plate label used by both
    projects with different LODs) the full layer, lazy when ``out.X`` is a dask array.
    Returns True when it stored a table.
    """
    _drop_table(out)
    found = _stacked_table(out, [(ref, cols_r, None), (other, cols_o, factor)])
    if found is not None:
        out.varm[LOD_KEY], out.uns.setdefault("olinkpipe", {})[_PLATES] = found
        return True
    parts = [lod_matrix(ref, cols=cols_r), lod_matrix(other, cols=cols_o)]
    factor = np.asarray(factor, dtype=float)
    if is_dask(out.X):
        da = require_dask("a dask-backed AnnData")
        lazy = [p if is_dask(p) else da.from_array(p, chunks=(-1, "auto")) for p in parts]
        lod = da.concatenate([lazy[0], lazy[1] + factor], axis=0).rechunk({0: -1})
    else:
        lod = np.empty(out.shape)
        lod[: ref.n_obs] = parts[0]
        np.add(parts[1], factor, out=lod[ref.n_obs :])
    out.layers[LOD_KEY] = lod
    return False


def layers_with_lod(adata: ad.AnnData) -> dict[str, Any]:
    """``adata``'s layers with the LOD as a full layer (expanded from the table when
    compact), e.g. to stack two projects cell by cell."""
    layers = {k: adata.layers[k] for k in adata.layers}
    if _is_compact(adata):
        layers[LOD_KEY] = lod_matrix(adata)
    return layers
