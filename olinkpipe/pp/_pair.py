"""Private machinery shared by two-project normalizations (bridge, subset, intensity).

Checks two AnnData objects before normalizing, aligns their assays, and builds the
concatenated result with the non-reference project shifted by the per-assay factor.
"""

from __future__ import annotations

import copy as _copy

import anndata as ad
import numpy as np
import pandas as pd

from .._provenance import EXCLUDED_COLUMNS, provenance
from ..errors import DesignError, ValidationError, format_message, preview
from . import _utils

EXPLORE_PRODUCTS = {"explore 3072": "Explore 3072", "explore ht": "Explore HT"}


def _product(adata: ad.AnnData) -> str:
    prov = adata.uns.get("olinkpipe", {})
    return str(prov.get("product", "unknown")) if isinstance(prov, dict) else "unknown"


def check_products(ref: ad.AnnData, other: ad.AnnData) -> None:
    """Cross-product (Explore 3072 ↔ Explore HT) bridging is out of scope: a clear error."""
    prods = {_product(ref).strip().lower(), _product(other).strip().lower()}
    if prods == set(EXPLORE_PRODUCTS):
        msg = format_message(
            "normalizing Explore 3072 data to Explore HT data (cross-product bridging) is not "
            "supported by olinkpipe: the assays differ between the products and need "
            "OlinkAnalyze's cross-product method (median centring or quantile smoothing)",
            column="uns['olinkpipe']['product']",
            hint="Use OlinkAnalyze::olink_normalization(), then read its output with read_npx.",
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
    names_r = pd.Index(ref.var_names[~ex_r])
    names_o = pd.Index(other.var_names[~ex_o])
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
    if norm_r is not None and norm_o is not None:
        nr, no = norm_r[cols_r], norm_o[cols_o]
        diff = nr != no
        if diff.any():
            _utils.warn_user(
                f"{step}: {int(diff.sum())} assay(s) were normalized differently in the two "
                f"projects (var['Normalization'], e.g. {nr[diff][0]!r} vs {no[diff][0]!r}): "
                f"{preview(common[diff])}. Bridging intensity- and plate-control-normalized "
                "data mixes scales; check the exports.",
            )
    return cols_r, cols_o, records


def warn_all_nan(blocks: dict[str, np.ndarray], names: pd.Index, *, step: str, what: str) -> None:
    """Warn about assays with no value at all in the rows used for the factor."""
    for proj, block in blocks.items():
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
    clash_r = ref_names.isin(other_names)
    if not clash_r.any():
        return ref_names, other_names
    clash_o = other_names.isin(ref_names)
    r = np.asarray(ref_names, dtype=object).copy()
    o = np.asarray(other_names, dtype=object).copy()
    r[clash_r] = [f"{n}@{projects[0]}" for n in r[clash_r]]
    o[clash_o] = [f"{n}@{projects[1]}" for n in o[clash_o]]
    return pd.Index(r), pd.Index(o)


def _writable(col: pd.Series) -> pd.Series:
    """A column present in one project only: nullable bool / string so h5ad can store it."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        col = col.astype(object)
    if col.dtype != object:
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


def combine(
    ref: ad.AnnData,
    other: ad.AnnData,
    cols_r: np.ndarray,
    cols_o: np.ndarray,
    factor: np.ndarray,
    *,
    projects: tuple[str, str],
    step: str,
    settings: dict,
    factors: pd.DataFrame,
    records: list[dict],
    obs_marks: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> ad.AnnData:
    """Stack both projects (shared assays), add ``factor`` to the other project's NPX and LOD."""
    nr, no, m = ref.n_obs, other.n_obs, len(cols_r)
    identity_r = m == ref.n_vars and np.array_equal(cols_r, np.arange(m))
    identity_o = m == other.n_vars and np.array_equal(cols_o, np.arange(m))

    def put(dst: np.ndarray, src: np.ndarray, cols: np.ndarray, identity: bool) -> None:
        """Write ``src[:, cols]`` into ``dst`` without an intermediate copy."""
        if identity:
            np.copyto(dst, src, casting="unsafe")
        elif src.dtype == dst.dtype:
            np.take(src, cols, axis=1, out=dst, mode="clip")  # cols are valid positions
        else:
            dst[...] = src[:, cols]

    def stack(a_r: np.ndarray, a_o: np.ndarray, *, shift: bool) -> np.ndarray:
        """One preallocated (n_ref + n_other) × m array, written in place (one pass each)."""
        a_r = np.asarray(a_r)
        a_o = np.asarray(a_o)
        dtype = np.result_type(a_r.dtype, a_o.dtype, *([factor.dtype] if shift else []))
        out = np.empty((nr + no, m), dtype=dtype)
        put(out[:nr], a_r, cols_r, identity_r)
        if shift and identity_o:
            np.add(a_o, factor, out=out[nr:], casting="unsafe")
        else:
            put(out[nr:], a_o, cols_o, identity_o)
            if shift:
                np.add(out[nr:], factor, out=out[nr:])
        return out

    # NPX and LOD of the other project are shifted by the factor on the way in; boolean
    # layers (below_lod, qc_warning) are copied once: shifting NPX and LOD by the same
    # amount does not change which values are below LOD.
    X = stack(np.asarray(ref.X, dtype=float), np.asarray(other.X, dtype=float), shift=True)
    layers_r, layers_o = ref.layers, other.layers  # anndata rebuilds the mapping per access
    coded_r, coded_o = _coded(ref), _coded(other)
    coded: dict[str, list[str]] = {}
    layers = {}
    for key in layers_r:
        if key not in layers_o or key == "measured":
            continue
        a_o = layers_o[key]
        if key in coded_r and key in coded_o:  # code layers: one category list for both
            cats = list(coded_r[key]) + [c for c in coded_o[key] if c not in set(coded_r[key])]
            coded[key] = cats
            lookup = np.array([-1] + [cats.index(c) for c in coded_o[key]], dtype=np.int32)
            a_o = lookup[np.asarray(a_o, dtype=np.int64) + 1]
        layers[key] = stack(layers_r[key], a_o, shift=key == "lod")
    if "measured" in layers_r or "measured" in layers_o:  # not a full grid in one project
        from ..io.convert import measured_mask

        layers["measured"] = stack(measured_mask(ref), measured_mask(other), shift=False)
    dropped_layers = sorted((set(layers_r) ^ set(layers_o)) - {"measured"})
    if dropped_layers:
        _utils.warn_user(
            f"{step}: layer(s) {dropped_layers!r} exist in only one project and are not kept.",
        )

    idx_r, idx_o = _unique_index(
        pd.Index(ref.obs_names.astype(str)), pd.Index(other.obs_names.astype(str)), projects
    )
    obs_r = ref.obs.copy()
    obs_o = other.obs.copy()
    obs_r.index, obs_o.index = idx_r, idx_o
    obs_r["Project"], obs_o["Project"] = projects
    for key, (mark_r, mark_o) in (obs_marks or {}).items():
        obs_r[key], obs_o[key] = mark_r, mark_o
    obs = pd.concat([obs_r, obs_o], axis=0, join="outer")
    for c in obs.columns:  # a column in one project only (NaN-filled) or of mixed type
        if c in obs_r and c in obs_o and obs_r[c].dtype == obs_o[c].dtype != object:
            continue
        col = obs[c]
        fixed = _writable(col)
        if fixed is not col:
            obs[c] = fixed
    obs["Project"] = pd.Categorical(obs["Project"].astype(str), categories=list(projects))

    obsm = {}
    for key in ref.obsm:
        if key in other.obsm and isinstance(ref.obsm[key], pd.DataFrame):
            tab_r, tab_o = ref.obsm[key].copy(), other.obsm[key].copy()
            tab_r.index, tab_o.index = idx_r, idx_o
            tab = pd.concat([tab_r, tab_o], axis=0)
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
    if coded:
        prov["coded_layers"] = {**prov.get("coded_layers", {}), **coded}
    uns = {k: v for k, v in ref.uns.items() if k != "olinkpipe"}
    uns["olinkpipe"] = prov

    out = ad.AnnData(X=X, obs=obs, var=var, layers=layers, obsm=obsm, uns=uns)
    norm = _utils.normalization_record(out)
    norm[step] = {**settings, "reference_project": projects[0], "factors": factors}
    provenance(out)
    for rec in records:
        _utils.exclude(out, step=step, **rec)
    return out


def factor_table(names: pd.Index, var: pd.DataFrame, factor: np.ndarray, **extra) -> pd.DataFrame:
    """Per-assay factor table stored in ``uns``: OlinkID, Assay, Panel, Adj_factor, extras."""
    tab = pd.DataFrame({"OlinkID": np.asarray(names, dtype=str)})
    for col in ("Assay", "Panel"):
        if col in var:
            tab[col] = var[col].astype(str).to_numpy()
    tab["Adj_factor"] = factor
    for k, v in extra.items():
        tab[k] = v
    return tab
