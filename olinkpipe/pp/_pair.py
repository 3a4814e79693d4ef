"""Private machinery shared by two-project normalizations (bridge, subset, intensity).

Checks two AnnData objects before normalizing, aligns their assays, and builds the
concatenated result with the non-reference project shifted by the per-assay factor.
"""

from __future__ import annotations

import copy as _copy
from functools import partial

import anndata as ad
import numpy as np
import pandas as pd

from .. import _layout, _parallel
from .._dask import require_dask
from .._provenance import EXCLUDED_COLUMNS, provenance
from ..errors import DesignError, ValidationError, format_message, preview
from . import _lazy, _lodcols, _median, _utils

EXPLORE_PRODUCTS = {"explore 3072": "Explore 3072", "explore ht": "Explore HT"}
SMALL_ROWS = _median.SMALL_ROWS  # one sort below, pp._median's tiles above


def _product(adata: ad.AnnData) -> str:
    prov = adata.uns.get("olinkpipe", {})
    return str(prov.get("product", "unknown")) if isinstance(prov, dict) else "unknown"


def check_products(ref: ad.AnnData, other: ad.AnnData) -> None:
    """Explore 3072 ↔ Explore HT outside bridge_normalize (subset, intensity): a clear error."""
    prods = {_product(ref).strip().lower(), _product(other).strip().lower()}
    if prods == set(EXPLORE_PRODUCTS):
        msg = format_message(
            "Explore 3072 and Explore HT data can only be normalized to each other by "
            "cross-product bridging: the assays differ between the products",
            column="uns['olinkpipe']['product']",
            hint="Use pp.bridge_normalize(explore_ht, explore_3072, bridge_samples).",
        )
        raise DesignError(msg)


def check_project_names(projects: tuple[str, str]) -> tuple[str, str]:
    if len(projects) != 2 or str(projects[0]) == str(projects[1]):
        msg = f"projects must be two distinct names (reference, other); got {projects!r}."
        raise ValidationError(msg)
    return str(projects[0]), str(projects[1])


def _normalization(adata: ad.AnnData) -> np.ndarray | None:
    """``var["Normalization"]`` as a str array (string work on its few distinct values)."""
    if "Normalization" not in adata.var:
        return None
    codes, uniq = pd.factorize(adata.var["Normalization"], use_na_sentinel=False)
    return np.asarray([str(u) for u in uniq], dtype=object)[codes]


def _excluded_assays(adata: ad.AnnData, norm: np.ndarray | None) -> np.ndarray:
    if norm is None:
        return np.zeros(adata.n_vars, dtype=bool)
    codes, uniq = pd.factorize(norm)
    return np.asarray([u.upper() == "EXCLUDED" for u in uniq], dtype=bool)[codes]


def align_assays(
    ref: ad.AnnData, other: ad.AnnData, *, step: str, projects: tuple[str, str]
) -> tuple[np.ndarray, np.ndarray, list[dict]]:
    """Column positions of the assays shared by both projects, in the reference order.

    Assays marked ``Normalization == "EXCLUDED"`` and assays present in only one project are
    dropped (returned as exclusion records). Differing ``Normalization`` types warn.
    """
    records: list[dict] = []
    norm_r, norm_o = _normalization(ref), _normalization(other)
    ex_r, ex_o = _excluded_assays(ref, norm_r), _excluded_assays(other, norm_o)
    for ex, ad_, proj in ((ex_r, ref, projects[0]), (ex_o, other, projects[1])):
        if ex.any():
            records.append(
                {
                    "kind": "assay",
                    "ids": list(ad_.var_names[ex]),
                    "reason": f"Normalization is EXCLUDED in project {proj}",
                }
            )
    names_r = ref.var_names[~ex_r] if ex_r.any() else ref.var_names
    names_o = other.var_names[~ex_o] if ex_o.any() else other.var_names
    if len(names_r) and names_r.equals(names_o) and names_r.is_unique:  # same, same order
        cols_r, cols_o = np.flatnonzero(~ex_r), np.flatnonzero(~ex_o)
        _warn_normalization(norm_r, norm_o, cols_r, cols_o, names_r, step=step)
        return cols_r, cols_o, records
    if names_r.has_duplicates or names_o.has_duplicates:
        dup = list(names_r[names_r.duplicated()]) + list(names_o[names_o.duplicated()])
        msg = format_message(
            "OlinkIDs must be unique in var_names", rows=dup, hint="Make var_names unique."
        )
        raise ValidationError(msg)
    only_r = names_r.difference(names_o, sort=False)
    only_o = names_o.difference(names_r, sort=False)
    if len(only_r):
        records.append(
            {
                "kind": "assay",
                "ids": list(only_r),
                "reason": f"assay only in project {projects[0]}",
            }
        )
    if len(only_o):
        records.append(
            {
                "kind": "assay",
                "ids": list(only_o),
                "reason": f"assay only in project {projects[1]}",
            }
        )
    common = names_r[names_r.isin(names_o)]
    if len(common) == 0:
        msg = format_message(
            f"{step}: the two projects share no assays (OlinkID)",
            column="var_names",
            hint="Check that both objects are indexed by OlinkID.",
        )
        raise ValidationError(msg)
    cols_r = ref.var_names.get_indexer(common)
    cols_o = other.var_names.get_indexer(common)
    _warn_normalization(norm_r, norm_o, cols_r, cols_o, common, step=step)
    return cols_r, cols_o, records


def _warn_normalization(norm_r, norm_o, cols_r, cols_o, common: pd.Index, *, step: str) -> None:
    """Warn when a shared assay's ``var["Normalization"]`` differs between the projects."""
    if norm_r is None or norm_o is None:
        return
    nr, no = norm_r[cols_r], norm_o[cols_o]
    diff = nr != no
    if diff.any():
        _utils.warn_user(
            f"{step}: {int(diff.sum())} assay(s) were normalized differently in the two "
            f"projects (var['Normalization'], e.g. {nr[diff][0]!r} vs {no[diff][0]!r}): "
            f"{preview(common[diff])}. Bridging intensity- and plate-control-normalized "
            "data mixes scales; check the exports.",
        )


def block(adata: ad.AnnData, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A private float copy of ``X[rows][:, cols]`` (a few rows: bridge samples); on dask
    only those rows are computed."""
    out = np.asarray(_lazy.rows(_utils.npx(adata), rows), dtype=float)
    if len(cols) == adata.n_vars and np.array_equal(cols, np.arange(adata.n_vars)):
        return out
    return out[:, cols]


def column_median(adata: ad.AnnData, rows: np.ndarray, cols: np.ndarray) -> tuple:
    """Per-assay median of ``X[rows]`` and number of values, at ``cols``: block by block,
    never a copy of all the rows (intensity normalization uses every sample)."""
    rows = np.asarray(rows, dtype=np.intp)
    X = _utils.npx(adata)
    if not _lazy.is_dask(X) and len(rows) >= SMALL_ROWS:  # threaded, in tiles (pp._median)
        med, n = _median.column_medians(X, rows, cols)
        return med, n.astype(np.int64)

    def kernel(b):
        if len(rows) < SMALL_ROWS:  # a few rows: one np.sort along them is faster
            b = b[rows]
            return np.vstack([_utils.nanmedian0(b), (~np.isnan(b)).sum(axis=0)])
        return np.vstack(_median.column_medians(b, rows, threads=1))

    med, n = _lazy.per_assay(kernel, [X], k=2)
    return med[cols], n[cols].astype(np.int64)


def warn_all_nan(blocks: dict[str, np.ndarray], names: pd.Index, *, step: str, what: str) -> None:
    """Warn about assays with no value at all in the rows used for the factor."""
    for proj, block in blocks.items():
        if block.ndim == 1:  # values per assay already counted
            allnan = block == 0
        else:
            allnan = np.isnan(block).all(axis=0) if block.shape[0] else np.ones(len(names), bool)
        if allnan.any():
            _utils.warn_user(
                f"{step}: {int(allnan.sum())} assay(s) have no values in the {what} of project "
                f"{proj}: {preview(names[allnan])}; their adjustment factor is set to 0.",
            )


def zero_missing(factor: np.ndarray, names: pd.Index, *, step: str) -> np.ndarray:
    """OlinkAnalyze semantics: a factor that cannot be computed (NA) becomes 0, with a warning."""
    bad = np.isnan(factor)
    if bad.any():
        _utils.warn_user(
            f"{step}: adjustment factor missing for {int(bad.sum())} assay(s) "
            f"({preview(names[bad])}); set to 0 as in OlinkAnalyze.",
        )
        factor = np.where(bad, 0.0, factor)
    return factor


def _unique_index(ref_names: pd.Index, other_names: pd.Index, projects: tuple[str, str]):
    """Both projects' row names, those found in both suffixed ``@<project>``, as one Index."""
    both = ref_names.append(other_names)
    if both.is_unique:
        return both
    clash_r = ref_names.isin(other_names)
    clash_o = other_names.isin(ref_names)
    r = np.asarray(ref_names, dtype=object).copy()
    o = np.asarray(other_names, dtype=object).copy()
    r[clash_r] = [f"{n}@{projects[0]}" for n in r[clash_r]]
    o[clash_o] = [f"{n}@{projects[1]}" for n in o[clash_o]]
    return pd.Index(np.concatenate([r, o]))


def _writable(col: pd.Series) -> pd.Series:
    """A column present in one project only: nullable bool / string so h5ad can store it."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(object)
    if col.dtype != object:
        return col
    kind = pd.api.types.infer_dtype(col, skipna=False)
    if kind == "string":  # all str, none missing: the common case, one pass
        return col
    kind = pd.api.types.infer_dtype(col, skipna=True)
    if kind == "boolean":
        return col.astype("boolean")
    if kind != "string" or col.isna().any():
        return col.map(
            lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
        )
    return col


def _coded(adata: ad.AnnData) -> dict:
    prov = adata.uns.get("olinkpipe", {})
    coded = prov.get("coded_layers", {}) if isinstance(prov, dict) else {}
    return {k: [str(c) for c in v] for k, v in coded.items()} if isinstance(coded, dict) else {}


def _merge_excluded(ref: ad.AnnData, other: ad.AnnData) -> pd.DataFrame:
    frames = []
    for a in (ref, other):
        prov = a.uns.get("olinkpipe", {})
        if isinstance(prov, dict) and isinstance(prov.get("excluded"), pd.DataFrame):
            frames.append(prov["excluded"])
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype=str) for c in EXCLUDED_COLUMNS})
    return pd.concat(frames, ignore_index=True).drop_duplicates(ignore_index=True)


def _layers(ref: ad.AnnData, other: ad.AnnData) -> tuple[dict, dict, bool]:
    """Both projects' layers to stack, and whether the LOD is left out of them because
    both store it as a plate table (:func:`olinkpipe._layout.stack_lod` stacks the
    tables); otherwise a table is expanded to a full layer."""
    if _layout.tables_stack(ref, other):
        return dict(ref.layers), dict(other.layers), True
    return _layout.layers_with_lod(ref), _layout.layers_with_lod(other), False


def merged_codes(cats_r, cats_o) -> tuple[list[str], np.ndarray | None]:
    """One category list for a code layer of both projects (the reference's, then the
    other's new ones) and the lookup ``new = lookup[old + 1]`` for the other's codes (-1
    stays -1), of the smallest int dtype holding them; None when its codes stay as they are."""
    known = set(cats_r)
    cats = list(cats_r) + [c for c in cats_o if c not in known]
    pos = [cats.index(c) for c in cats_o]
    if pos == list(range(len(pos))):
        return cats, None
    return cats, np.array([-1, *pos], dtype=_layout.code_dtype(len(cats)))


def _fill(
    dst: np.ndarray,
    src: np.ndarray,
    cols: np.ndarray,
    identity: bool,
    shift,
    recode=None,
    runs=None,
) -> None:
    """``dst[...] = src[:, cols] (+ shift)`` without an intermediate copy; with ``recode``,
    codes ``c`` become ``recode[c + 1]`` (a block-sized temporary); ``runs``: ``cols`` as
    :func:`_runs` (copied run by run instead of gathered)."""
    if recode is not None:
        src = recode[np.asarray(src, dtype=np.intp) + 1]
    if runs is not None:  # cols in a few runs of consecutive positions: slice copies
        for d0, s0, n in runs:
            dst_run, src_run = dst[:, d0 : d0 + n], src[:, s0 : s0 + n]
            if shift is None:
                np.copyto(dst_run, src_run, casting="unsafe")
            else:
                np.add(src_run, shift[d0 : d0 + n], out=dst_run, casting="unsafe")
        return
    if identity:
        if shift is None:
            np.copyto(dst, src, casting="unsafe")
        else:
            np.add(src, shift, out=dst, casting="unsafe")
        return
    if src.dtype == dst.dtype:
        np.take(src, cols, axis=1, out=dst, mode="clip")  # cols are valid positions
    else:
        dst[...] = src[:, cols]
    if shift is not None:
        np.add(dst, shift, out=dst)


def _runs(cols: np.ndarray) -> list[tuple[int, int, int]] | None:
    """``cols`` as runs of consecutive positions (output start, source start, length), or
    None when there are many (more than one per 8 columns: a gather is then faster)."""
    cols = np.asarray(cols, dtype=np.intp)
    source = _median.runs(cols)
    if not source or len(source) * 8 > len(cols):
        return None
    out, at = [], 0
    for lo, hi in source:
        out.append((at, lo, hi - lo))
        at += hi - lo
    return out


def _allocate(shape: tuple[int, int], dtype) -> np.ndarray:
    """An output array of :class:`Stack`, uninitialised (every value is written once)."""
    return np.empty(shape, dtype=dtype)


class Stack:
    """Both projects' NPX and layers stacked on the shared assays, written in the background.

    Creating it allocates every output array ((n_ref + n_other) × shared assays, one
    ``np.empty`` each) and starts copying the reference project in row blocks on background
    threads (:class:`olinkpipe._parallel.Jobs`); :meth:`shift` queues the other project
    with the factor added to NPX and LOD on the way in; :meth:`arrays` waits (this thread
    helping) and returns them. Each output value is written once. Boolean layers
    (``below_lod``, ``qc_warning``) are copied: shifting NPX and LOD by the same amount does
    not change which values are below LOD. Code layers are re-coded to one category list.
    Use it as a context manager, so that no thread outlives an error.
    """

    SHIFTED = ("X", "lod", *_lodcols.LOD_NAMES)  # every LOD layer, as OlinkAnalyze

    def __init__(
        self, ref: ad.AnnData, other: ad.AnnData, cols_r: np.ndarray, cols_o: np.ndarray
    ) -> None:
        self.n_ref, m = ref.n_obs, len(cols_r)
        self.cols = (cols_r, cols_o)
        self.identity = (
            m == ref.n_vars and np.array_equal(cols_r, np.arange(m)),
            m == other.n_vars and np.array_equal(cols_o, np.arange(m)),
        )
        self.runs = tuple(
            None if ident else _runs(c) for ident, c in zip(self.identity, self.cols, strict=True)
        )
        sources = {"X": (np.asarray(ref.X, dtype=float), np.asarray(other.X, dtype=float))}
        layers_r, layers_o, self.lod_tables = _layers(ref, other)
        coded_r, coded_o = _coded(ref), _coded(other)
        self.coded: dict[str, list[str]] = {}
        self.recode: dict[str, np.ndarray] = {}
        for key in layers_r:
            if key not in layers_o or key == "measured":
                continue
            if key in coded_r and key in coded_o:  # code layers: one category list for both
                self.coded[key], lookup = merged_codes(coded_r[key], coded_o[key])
                if lookup is not None:  # the other's codes mapped block by block
                    self.recode[key] = lookup
            sources[key] = (np.asarray(layers_r[key]), np.asarray(layers_o[key]))
        if "measured" in layers_r or "measured" in layers_o:  # not a full grid in one project
            from ..io.convert import measured_mask

            sources["measured"] = (measured_mask(ref), measured_mask(other))
        self.dropped_layers = sorted((set(layers_r) ^ set(layers_o)) - {"measured"})
        self.sources = sources
        self.out = {}
        for key, (a_r, a_o) in sources.items():
            shifted = (np.float64,) if key in self.SHIFTED else ()
            o_dtype = self.recode[key].dtype if key in self.recode else a_o.dtype
            dtype = np.result_type(a_r.dtype, o_dtype, *shifted)
            self.out[key] = _allocate((ref.n_obs + other.n_obs, m), dtype)
        self.jobs = _parallel.Jobs(nbytes=sum(a.nbytes for a in self.out.values()))
        self._blocks = 2 * _parallel.n_threads()
        try:
            self._queue(0, None)
        except BaseException as exc:  # not yet in a with block: end the threads here
            self.jobs.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def _queue(self, half: int, factor: np.ndarray | None) -> None:
        cols, identity = self.cols[half], self.identity[half]
        offset = 0 if half == 0 else self.n_ref
        for key, out in self.out.items():
            src = self.sources[key][half]
            shift = factor if key in self.SHIFTED else None
            recode = self.recode.get(key) if half == 1 else None
            runs = self.runs[half]
            for lo, hi in _parallel.row_blocks(src.shape[0], self._blocks):
                dst = out[offset + lo : offset + hi]
                fill = partial(_fill, dst, src[lo:hi], cols, identity, shift, recode, runs)
                self.jobs.add(fill)

    def shift(self, factor: np.ndarray) -> None:
        """Queue the other project, ``factor`` (per shared assay) added to NPX and LOD."""
        self._queue(1, np.asarray(factor, dtype=float))

    def arrays(self, *, wait: bool = True) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """The stacked NPX and layers, after waiting for every write (``wait=False``: at
        once, still being written; only for code that does not read them before a wait)."""
        if wait:
            self.jobs.wait()
        layers = dict(self.out)
        return layers.pop("X"), layers

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc) -> None:
        self.jobs.__exit__(*exc)


class LazyStack:
    """:class:`Stack` for dask-backed projects: the same outputs as lazy arrays (each
    project's shared assays, the other shifted by the factor on NPX and LOD, stacked on
    the samples axis into one row block), so :func:`combine` builds the result unchanged."""

    SHIFTED = Stack.SHIFTED

    def __init__(
        self, ref: ad.AnnData, other: ad.AnnData, cols_r: np.ndarray, cols_o: np.ndarray
    ) -> None:
        self.da = require_dask("a dask-backed AnnData")
        self.cols = (cols_r, cols_o)
        m = len(cols_r)
        ident = (
            m == ref.n_vars and np.array_equal(cols_r, np.arange(m)),
            m == other.n_vars and np.array_equal(cols_o, np.arange(m)),
        )
        coded_r, coded_o = _coded(ref), _coded(other)
        self.coded: dict[str, list[str]] = {}
        sources = {"X": (ref.X, other.X)}
        layers_r, layers_o, self.lod_tables = _layers(ref, other)
        for key in layers_r:
            if key not in layers_o:
                continue
            a_o = layers_o[key]
            if key in coded_r and key in coded_o:
                self.coded[key], lookup = merged_codes(coded_r[key], coded_o[key])
                if lookup is not None:
                    a_o = self._lazy(a_o).map_blocks(
                        lambda b, lk=lookup: lk[np.asarray(b, dtype=np.intp) + 1],
                        dtype=lookup.dtype,
                    )
            sources[key] = (layers_r[key], a_o)
        self.dropped_layers = sorted((set(layers_r) ^ set(layers_o)) - {"measured"})
        if "measured" in ref.layers or "measured" in other.layers:
            sources["measured"] = tuple(
                a.layers["measured"] if "measured" in a.layers else np.ones(a.shape, bool)
                for a in (ref, other)
            )
        self.sources = {
            k: tuple(
                self._lazy(a) if i else self._lazy(a)[:, cols]
                for a, i, cols in zip(v, ident, self.cols, strict=True)
            )
            for k, v in sources.items()
        }
        self.out: dict = {}

    def _lazy(self, a):
        return a if _lazy.is_dask(a) else self.da.from_array(np.asarray(a), chunks=(-1, "auto"))

    def shift(self, factor: np.ndarray) -> None:
        for key, (a_r, a_o) in self.sources.items():
            if key in self.SHIFTED:
                a_r = a_r.astype(np.result_type(a_r.dtype, a_o.dtype, np.float64))
                a_o = a_o + np.asarray(factor, dtype=float)
            joined = self.da.concatenate([a_r, a_o.astype(a_r.dtype)], axis=0)
            self.out[key] = joined.rechunk({0: -1})

    def arrays(self, *, wait: bool = True) -> tuple:
        layers = dict(self.out)
        return layers.pop("X"), layers

    def __enter__(self) -> LazyStack:
        return self

    def __exit__(self, *exc) -> None:
        return None


def marks(n_ref: int, n_other: int, rows_r, rows_o, values=True, empty=False) -> tuple:
    """Per-sample ``obs`` marks of both projects: ``values`` at ``rows_*``, else ``empty``."""
    dtype = bool if isinstance(empty, bool) else object
    out = []
    for n, rows in ((n_ref, rows_r), (n_other, rows_o)):
        mark = np.full(n, empty, dtype=dtype)
        mark[rows] = values
        out.append(mark)
    return tuple(out)


def normalize(
    ref: ad.AnnData,
    other: ad.AnnData,
    factor_of,
    *,
    projects: tuple[str, str],
    step: str,
    settings: dict,
    obs_marks: dict[str, tuple[np.ndarray, np.ndarray]],
) -> ad.AnnData:
    """The two-project pipeline every normalization shares: align the assays, start
    copying the reference project (:class:`Stack`), compute the per-assay factor with
    ``factor_of(cols_r, cols_o) -> (factor, factor_columns)``, queue the other project
    shifted by it and build the result (:func:`combine`) while the arrays are written."""
    cols_r, cols_o, records = align_assays(ref, other, step=step, projects=projects)
    lazy = _lazy.is_dask(ref.X) or _lazy.is_dask(other.X)
    with (LazyStack if lazy else Stack)(
        ref, other, cols_r, cols_o
    ) as stack:  # copying the reference starts
        factor, columns = factor_of(cols_r, cols_o)
        stack.shift(factor)
        return combine(
            stack,
            ref,
            other,
            factor,
            projects=projects,
            step=step,
            settings=settings,
            factor_columns=columns,
            records=records,
            obs_marks=obs_marks,
        )


def combine(
    stack: Stack,
    ref: ad.AnnData,
    other: ad.AnnData,
    factor: np.ndarray,
    *,
    projects: tuple[str, str],
    step: str,
    settings: dict,
    factor_columns: dict[str, np.ndarray],
    records: list[dict],
    obs_marks: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> ad.AnnData:
    """The normalized AnnData: ``stack``'s arrays (``factor`` already queued with
    :meth:`Stack.shift`) with both projects' obs, the shared assays' var plus
    ``Adj_factor``, merged obsm and uns, and the factor table (``OlinkID``, ``Assay``,
    ``Panel``, ``Adj_factor`` and ``factor_columns``). Built while the arrays are written.
    """
    cols_r = stack.cols[0]

    dropped_layers = stack.dropped_layers
    if dropped_layers:
        _utils.warn_user(
            f"{step}: layer(s) {dropped_layers!r} exist in only one project and are not kept.",
        )

    nr = ref.n_obs
    index = _unique_index(
        pd.Index(ref.obs_names.astype(str)), pd.Index(other.obs_names.astype(str)), projects
    )
    obs_r, obs_o = ref.obs, other.obs
    obs = pd.concat([obs_r, obs_o], axis=0, join="outer", ignore_index=True)
    obs.index = index
    for c in obs.columns:  # a column in one project only (NaN-filled) or of mixed type
        if c in obs_r and c in obs_o and obs_r[c].dtype == obs_o[c].dtype != object:
            continue
        col = obs[c]
        fixed = _writable(col)
        if fixed is not col:
            obs[c] = fixed
    added = {
        "Project": pd.Categorical.from_codes(
            np.repeat(np.array([0, 1], dtype=np.int8), [nr, other.n_obs]),
            categories=list(projects),
        )
    }
    for key, (mark_r, mark_o) in (obs_marks or {}).items():
        added[key] = np.concatenate([np.asarray(mark_r), np.asarray(mark_o)])
    # column order: the reference's columns (Project and the marks where they were, else
    # after them), then those of the other project only
    order = list(obs_r.columns) + [c for c in added if c not in obs_r.columns]
    order += [c for c in obs.columns if c not in set(order)]
    obs = obs.assign(**added)[order]

    obsm = {}
    for key in ref.obsm:
        if key in other.obsm and isinstance(ref.obsm[key], pd.DataFrame):
            tab_r, tab_o = ref.obsm[key], other.obsm[key]
            tab = pd.concat([tab_r, tab_o], axis=0, ignore_index=True)
            tab.index = index
            # a panel of one project only: empty string = "not on that panel" (data model)
            obsm[key] = tab if tab_r.columns.equals(tab_o.columns) else tab.fillna("")

    var = ref.var.iloc[cols_r].copy()
    var["Adj_factor"] = factor

    prov_r = ref.uns.get("olinkpipe", {})
    prov_o = other.uns.get("olinkpipe", {})
    prov = _copy.deepcopy(prov_r) if isinstance(prov_r, dict) else {}
    srcs = []
    for p in (prov_r, prov_o):
        if isinstance(p, dict) and "source" in p:
            srcs.extend(list(np.atleast_1d(p["source"])))
    if srcs:
        prov["source"] = [str(s) for s in srcs]
    prov["excluded"] = _merge_excluded(ref, other)
    if stack.coded:
        prov["coded_layers"] = {**prov.get("coded_layers", {}), **stack.coded}
    uns = {k: v for k, v in ref.uns.items() if k != "olinkpipe"}
    uns["olinkpipe"] = prov

    factors = factor_table(ref.var_names[cols_r], var, factor, **factor_columns)
    # AnnData only takes references to the (allocated, still being written) arrays and
    # checks their shapes, so it is built before waiting; nothing reads a value until then.
    X, layers = stack.arrays(wait=False)
    out = ad.AnnData(X=X, obs=obs, var=var, layers=layers, obsm=obsm, uns=uns)
    norm = _utils.normalization_record(out)
    norm[step] = {**settings, "reference_project": projects[0], "factors": factors}
    provenance(out)
    for rec in records:
        _utils.exclude(out, step=step, **rec)
    if stack.lod_tables:  # the two plate tables stacked, never expanded (reads no array)
        _layout.stack_lod(out, ref, other, cols_r, stack.cols[1], factor)
    stack.arrays()  # wait for every write
    if not stack.lod_tables:  # the stacked LOD layer back to a plate table when it is one
        _layout.compact_lod(out)
    _lodcols.update_max_lod(out)  # OlinkAnalyze: MaxLOD = the assay's max after normalizing
    return out


def factor_table(names: pd.Index, var: pd.DataFrame, factor: np.ndarray, **extra) -> pd.DataFrame:
    """Per-assay factor table stored in ``uns``: OlinkID, Assay, Panel, Adj_factor, extras."""
    cols = {"OlinkID": np.asarray(names.astype(str), dtype=object)}
    for col in ("Assay", "Panel"):
        if col in var:
            cols[col] = var[col].astype(str).to_numpy()
    cols["Adj_factor"] = factor
    cols.update(extra)
    return pd.DataFrame(cols)
