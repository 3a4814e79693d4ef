"""Cross-product bridging (Explore 3072 → Explore HT / Reveal, Explore HT ↔ Reveal), as
OlinkAnalyze 5.0.2's ``olink_normalization`` does when its two datasets come from different
products. Reached through :func:`olinkpipe.pp.bridge_normalize`; the per-assay statistics
alone through :func:`bridgeability`.
"""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd

from .._dask import is_dask
from ..errors import DesignError, MissingColumnError, ValidationError, format_message, preview
from . import _pair, _utils
from . import crossstats as cs

__all__ = ["bridgeability", "cross_product_normalize", "is_cross_product", "map_assays"]

# product as in uns["olinkpipe"]["product"] (lower case) -> OlinkAnalyze's short name
PRODUCTS = {
    "explore 3072": "E3072",
    "olink explore 3072": "E3072",
    "e3072": "E3072",
    "explore ht": "HT",
    "olink explore ht": "HT",
    "ht": "HT",
    "reveal": "Reveal",
    "olink reveal": "Reveal",
}
NAMES = {"E3072": "Explore 3072", "HT": "Explore HT", "Reveal": "Reveal"}
# OlinkAnalyze 5.0.2 olink_norm_product_n_samples: minimum model pairs for quantile smoothing
MIN_QS_SAMPLES = {
    frozenset({"E3072", "HT"}): 40,
    frozenset({"E3072", "Reveal"}): 32,
    frozenset({"HT", "Reveal"}): 24,
}
COUNT_LAYER = "Count"
STEP = "bridge_normalize"


def _code(adata: ad.AnnData) -> str | None:
    return PRODUCTS.get(_pair._product(adata).strip().lower())


def is_cross_product(ref: ad.AnnData, other: ad.AnnData) -> bool:
    """Whether ``ref`` and ``other`` come from two different products among Explore 3072,
    Explore HT and Reveal (``uns["olinkpipe"]["product"]``)."""
    a, b = _code(ref), _code(other)
    return a is not None and b is not None and a != b


def _check_order(ref: ad.AnnData, other: ad.AnnData) -> tuple[str, str, int]:
    """The two products and OlinkAnalyze's minimum number of pairs for quantile smoothing;
    Explore 3072 as the reference is an error, as in OlinkAnalyze."""
    a, b = _code(ref), _code(other)
    if a == "E3072":
        msg = format_message(
            f"cross-product bridging: the reference (ref) is Explore 3072 and the other project "
            f"is {NAMES[b]}; as in OlinkAnalyze, the newer product ({NAMES[b]}) must be the "
            "reference and Explore 3072 the project that is adjusted",
            column="uns['olinkpipe']['product']",
            hint="Swap the arguments: bridge_normalize(newer_product, explore_3072, ...).",
        )
        raise DesignError(msg)
    return a, b, MIN_QS_SAMPLES[frozenset({a, b})]


# ---- assay mapping ------------------------------------------------------------------


def _unique_names(adata: ad.AnnData, project: str) -> pd.Index:
    names = pd.Index(adata.var_names.astype(str))
    if names.has_duplicates:
        msg = format_message(
            f"OlinkIDs must be unique in var_names of project {project!r}",
            rows=names[names.duplicated()].unique(),
            hint="Make var_names unique.",
        )
        raise ValidationError(msg)
    return names


def _text(adata: ad.AnnData, col: str) -> np.ndarray:
    if col not in adata.var:
        return np.full(adata.n_vars, "", dtype=object)
    return adata.var[col].astype(object).where(adata.var[col].notna(), "").astype(str).to_numpy()


def _loose(adata: ad.AnnData) -> np.ndarray:
    """UniProt without an isoform suffix (``Q13114-2`` → ``Q13114``) and Assay, upper case,
    letters and digits only (``NT-proBNP`` = ``NTproBNP``); ``""`` without a UniProt."""
    uni = pd.Series(_text(adata, "UniProt")).str.replace(r"-\d+$", "", regex=True)
    uni = uni.str.upper().str.replace(r"[^0-9A-Z]", "", regex=True)
    assay = pd.Series(_text(adata, "Assay")).str.upper().str.replace(r"[^0-9A-Z]", "", regex=True)
    return np.where(uni != "", uni + "\x00" + assay, "").astype(object)


def _match(keys_r, keys_o, free_r, free_o) -> tuple[list[tuple[int, int]], list[str]]:
    """Pairs (i, j) of free assays with the same non-empty key; a key shared by several
    assays on both sides is ambiguous (no pair)."""
    left = pd.DataFrame({"key": keys_r, "i": np.arange(len(keys_r))})[free_r & (keys_r != "")]
    right = pd.DataFrame({"key": keys_o, "j": np.arange(len(keys_o))})[free_o & (keys_o != "")]
    both = left.merge(right, on="key", sort=False)
    if both.empty:
        return [], []
    n_i = both.groupby("key")["i"].transform("nunique")
    n_j = both.groupby("key")["j"].transform("nunique")
    ok = (n_i == 1) | (n_j == 1)  # one-to-one, or one assay measured under several IDs
    ambiguous = both.loc[~ok, "key"].unique().tolist()
    return list(zip(both.loc[ok, "i"], both.loc[ok, "j"], strict=True)), ambiguous


def map_assays(
    ref: ad.AnnData,
    other: ad.AnnData,
    mapping: pd.DataFrame | None = None,
    *,
    projects: tuple[str, str] = ("P1", "P2"),
) -> pd.DataFrame:
    """Pair the assays of two products: one row per pair, in the reference's order.

    Without ``mapping``: first the same OlinkID, then, among the assays still unpaired,
    the same ``(UniProt, Assay)``, then the same ``UniProt`` alone, then the same UniProt
    and Assay compared loosely (isoform suffix dropped, case and punctuation ignored:
    ``Q13114-2`` = ``Q13114``, ``NT-proBNP`` = ``NTproBNP``). A key found once on one
    side and several times on the other pairs the single assay with each of them (Explore
    3072 measures a few proteins on several panels under different OlinkIDs; OlinkAnalyze's
    mapping table pairs the Explore HT assay with each, too); a key found several times on
    both sides pairs nothing. With ``mapping``: the pairs of its first two columns
    (reference OlinkID, other OlinkID), e.g. OlinkAnalyze's ``OlinkID_HT`` and
    ``OlinkID_E3072``; pairs naming an assay absent from the data are ignored.

    Returns
    -------
    pandas.DataFrame
        Columns ``OlinkID`` (``"<ref>_<other>"``, OlinkAnalyze's combined identifier),
        ``OlinkID_ref``, ``OlinkID_other``, ``i``, ``j`` (column positions) and
        ``mapped_by`` (``"OlinkID"``, ``"UniProt+Assay"``, ``"UniProt"``,
        ``"UniProt+Assay (loose)"`` or ``"mapping"``);
        ``attrs``: ``unmapped_ref``, ``unmapped_other`` (the unpaired OlinkIDs),
        ``ambiguous_uniprot``, ``rule``.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> a = ad.AnnData(np.zeros((1, 2)), var=pd.DataFrame(
    ...     {"UniProt": ["P1", "P2"], "Assay": ["A", "B"]}, index=["OID40001", "OID40002"]))
    >>> b = ad.AnnData(np.zeros((1, 2)), var=pd.DataFrame(
    ...     {"UniProt": ["P2", "P3"], "Assay": ["B", "C"]}, index=["OID20002", "OID20003"]))
    >>> map_assays(a, b)[["OlinkID", "mapped_by"]].to_dict("records")
    [{'OlinkID': 'OID40002_OID20002', 'mapped_by': 'UniProt+Assay'}]
    """
    names_r, names_o = _unique_names(ref, projects[0]), _unique_names(other, projects[1])
    free_r = np.ones(len(names_r), dtype=bool)
    free_o = np.ones(len(names_o), dtype=bool)
    pairs: list[tuple[int, int, str]] = []
    ambiguous: list[str] = []

    def take(found, how):
        found = list(found)
        for i, j in found:
            pairs.append((int(i), int(j), how))
        for i, j in found:
            free_r[i] = free_o[j] = False

    if mapping is not None:
        take(_user_pairs(mapping, names_r, names_o), "mapping")
    else:
        same = names_r.intersection(names_o, sort=False)
        take(zip(names_r.get_indexer(same), names_o.get_indexer(same), strict=True), "OlinkID")
        uni_r, uni_o = _text(ref, "UniProt"), _text(other, "UniProt")
        key_r = np.where(uni_r != "", uni_r + "\x00" + _text(ref, "Assay"), "")
        key_o = np.where(uni_o != "", uni_o + "\x00" + _text(other, "Assay"), "")
        found, amb = _match(key_r, key_o, free_r, free_o)
        take(found, "UniProt+Assay")
        found, amb2 = _match(uni_r, uni_o, free_r, free_o)
        take(found, "UniProt")
        found, _ = _match(_loose(ref), _loose(other), free_r, free_o)
        take(found, "UniProt+Assay (loose)")
        ambiguous = sorted(set(amb2))
    pairs.sort(key=lambda p: (p[0], p[1]))
    i = np.array([p[0] for p in pairs], dtype=np.intp)
    j = np.array([p[1] for p in pairs], dtype=np.intp)
    out = pd.DataFrame(
        {
            "OlinkID": [f"{names_r[a]}_{names_o[b]}" for a, b in zip(i, j, strict=True)],
            "OlinkID_ref": np.asarray(names_r[i], dtype=object),
            "OlinkID_other": np.asarray(names_o[j], dtype=object),
            "i": i,
            "j": j,
            "mapped_by": [p[2] for p in pairs],
        }
    )
    out.attrs["unmapped_ref"] = [str(n) for n in names_r[free_r]]
    out.attrs["unmapped_other"] = [str(n) for n in names_o[free_o]]
    out.attrs["ambiguous_uniprot"] = ambiguous
    out.attrs["rule"] = "mapping" if mapping is not None else "OlinkID, UniProt+Assay, UniProt"
    return out


def _user_pairs(mapping, names_r: pd.Index, names_o: pd.Index) -> list[tuple[int, int]]:
    if not isinstance(mapping, pd.DataFrame) or mapping.shape[1] < 2:
        msg = (
            "mapping must be a DataFrame whose first two columns are the reference's and the "
            f"other project's OlinkIDs; got {type(mapping).__name__}."
        )
        raise ValidationError(msg)
    tab = mapping.iloc[:, :2].dropna().astype(str).drop_duplicates()
    i = names_r.get_indexer(tab.iloc[:, 0])
    j = names_o.get_indexer(tab.iloc[:, 1])
    keep = (i >= 0) & (j >= 0)
    if not keep.any():
        msg = format_message(
            "mapping: none of its pairs names an assay of both projects "
            "(first column: reference OlinkIDs, second: other project's)",
            column=f"{mapping.columns[0]}, {mapping.columns[1]}",
            rows=tab.iloc[:, 0].head(5),
        )
        raise ValidationError(msg)
    return list(zip(i[keep], j[keep], strict=True))


# ---- bridgeability ------------------------------------------------------------------


def _count(adata: ad.AnnData, project: str) -> np.ndarray:
    if COUNT_LAYER not in adata.layers:
        msg = format_message(
            f"cross-product bridging needs counts, but project {project!r} has no "
            f"layers['{COUNT_LAYER}'] (layers: {list(adata.layers)!r})",
            column="Count",
            hint="Re-export the NPX file with its Count column (as OlinkAnalyze requires).",
        )
        raise MissingColumnError(msg)
    return np.asarray(adata.layers[COUNT_LAYER], dtype=float)


def _rows_and_pairs(ref, other, bridge_samples, projects, mapping):
    """Resolve the bridge rows and map the assays (the shared first steps)."""
    if is_dask(ref.X) or is_dask(other.X):
        msg = "cross-product bridging needs in-memory data; call .to_memory() / compute first."
        raise ValidationError(msg)
    ids_r, ids_o = _utils.as_mapping(bridge_samples)
    if not ids_r:
        msg = "bridge_normalize: no bridge samples given."
        raise ValidationError(msg)
    rows_r = _utils.resolve_samples(ref, ids_r, what="bridge_samples", project=projects[0])
    rows_o = _utils.resolve_samples(other, ids_o, what="bridge_samples", project=projects[1])
    pairs = map_assays(ref, other, mapping, projects=projects)
    if pairs.empty:
        msg = format_message(
            "cross-product bridging: no assay of the reference matches one of the other "
            "project (same OlinkID, UniProt or Assay)",
            column="var_names, var['UniProt'], var['Assay']",
            hint="Pass mapping= with the OlinkID pairs.",
        )
        raise ValidationError(msg)
    return ids_r, ids_o, rows_r, rows_o, pairs


def _statistics(ref, other, rows_r, rows_o, pairs, min_n: int) -> pd.DataFrame:
    """OlinkAnalyze's bridgeability statistics for every pair, vectorised over assays."""
    cols_r, cols_o = pairs["i"].to_numpy(), pairs["j"].to_numpy()
    npx_r = _pair.block(ref, rows_r, cols_r)
    npx_o = _pair.block(other, rows_o, cols_o)
    cnt_r = _count(ref, "ref")[np.ix_(rows_r, cols_r)]
    cnt_o = _count(other, "other")[np.ix_(rows_o, cols_o)]
    sample_ok = ~_utils.control_samples(ref)[rows_r] & ~_utils.control_samples(other)[rows_o]
    assay_ok = ~_utils.control_assays(ref)[cols_r] & ~_utils.control_assays(other)[cols_o]
    with np.errstate(invalid="ignore"):
        model = sample_ok[:, None] & assay_ok[None, :] & (cnt_r > cs.MIN_COUNT)
        model &= ~np.isnan(npx_r) & ~np.isnan(npx_o)
        used = model & (cnt_o > cs.MIN_COUNT)
    a, b = np.where(used, npx_r, np.nan), np.where(used, npx_o, np.nan)
    range_r, range_o = cs.ranges(a), cs.ranges(b)
    med_r = _utils.nanmedian0(np.where(used, cnt_r, np.nan))
    med_o = _utils.nanmedian0(np.where(used, cnt_o, np.nan))
    with np.errstate(invalid="ignore"):
        low = (med_r < cs.LOW_MEDIAN_COUNT) | (med_o < cs.LOW_MEDIAN_COUNT)
    keep = used & ~(cs.outliers(a) | cs.outliers(b))
    a[~keep] = np.nan
    b[~keep] = np.nan
    r2, ks = cs.r_squared(a, b), cs.ks_statistic(a, b)
    n_used = keep.sum(axis=0)
    range_diff = np.abs(range_r - range_o)
    bridgeable, rec_oa = cs.recommend(n_used, range_diff, low, r2, ks)
    n_model = model.sum(axis=0)
    qs_ok = n_model >= min_n
    rec = np.where((rec_oa == "QuantileSmoothing") & ~qs_ok, "MedianCentering", rec_oa)
    table = pairs[["OlinkID", "OlinkID_ref", "OlinkID_other", "mapped_by"]].copy()
    for col in ("Assay", "UniProt", "Panel"):
        if col in ref.var:
            table[col] = _text(ref, col)[cols_r]
    table = table.assign(
        n_pairs=used.sum(axis=0),
        n_used=n_used,
        range_ref=range_r,
        range_other=range_o,
        range_diff=range_diff,
        median_count_ref=med_r,
        median_count_other=med_o,
        low_count=low,
        R2=r2,
        KS_statistic=ks,
        IsBridgeable=bridgeable,
        n_qs=n_model,
        qs_possible=qs_ok,
        BridgingRecommendation=rec.astype(object),
    )
    return table.reset_index(drop=True)


def bridgeability(
    ref: ad.AnnData,
    other: ad.AnnData,
    bridge_samples,
    *,
    mapping: pd.DataFrame | None = None,
    projects: tuple[str, str] = ("P1", "P2"),
) -> pd.DataFrame:
    """Per-assay bridgeability of two Olink products, as OlinkAnalyze computes it.

    Reproduces OlinkAnalyze 5.0.2 ``olink_normalization_bridgeable`` (called by
    ``olink_normalization`` for two products). On the bridge pairs, per mapped assay
    (see :func:`map_assays`), using sample rows (not controls) of real assays with a count
    above 10 in both products and an NPX in both:

    - ``range_diff``: |(P90 − P10) of the reference − (P90 − P10) of the other| (R type-7
      quantiles); ``low_count``: the median count over those pairs is below 150 in either
      product;
    - values outside median ± 3 IQR in either product are then dropped, and on the rest
      ``R2`` (squared Pearson correlation) and ``KS_statistic`` (two-sample
      Kolmogorov–Smirnov D) are computed;
    - ``IsBridgeable`` is false when range_diff > 1 **and** low_count **and** R2 < 0.8
      (R's logic: an undefined R2 makes the assay not bridgeable unless range_diff ≤ 1);
      assays with no usable pair are not bridgeable;
    - ``BridgingRecommendation``: ``NotBridgeable``; ``MedianCentering`` when KS ≤ 0.2;
      ``QuantileSmoothing`` when KS > 0.2 and the assay has at least OlinkAnalyze's minimum
      number of pairs for the spline (``n_qs``: pairs with a reference count above 10;
      40 for Explore 3072 → Explore HT, 32 for Explore 3072 → Reveal, 24 for Explore HT ↔
      Reveal), otherwise ``MedianCentering``.

    Parameters
    ----------
    ref
        The reference: Explore HT or Reveal (``uns["olinkpipe"]["product"]``), with
        ``layers["Count"]``.
    other
        The other product (Explore 3072, or the other of HT / Reveal), with counts.
    bridge_samples
        Samples measured with both products, as in :func:`olinkpipe.pp.bridge_normalize`.
    mapping
        Optional DataFrame of OlinkID pairs (first column the reference's, second the
        other's); default: the rule of :func:`map_assays`.
    projects
        Names of the reference and the other project (used in messages).

    Returns
    -------
    pandas.DataFrame
        One row per mapped assay: ``OlinkID`` (``"<ref>_<other>"``), ``OlinkID_ref``,
        ``OlinkID_other``, ``mapped_by``, ``Assay``, ``UniProt``, ``Panel``, ``n_pairs``,
        ``n_used`` (after outlier removal), ``range_ref``, ``range_other``,
        ``range_diff``, ``median_count_ref``, ``median_count_other``, ``low_count``,
        ``R2``, ``KS_statistic``, ``IsBridgeable``, ``n_qs``, ``qs_possible``,
        ``BridgingRecommendation``. ``attrs``: products, thresholds, unmapped assays.

    Notes
    -----
    Differences from OlinkAnalyze, and why:

    - **Assay mapping.** OlinkAnalyze joins the products through mapping tables shipped
      with it (licensed AGPL, so not copied here); olinkpipe pairs assays by the OlinkID,
      UniProt and Assay the exports carry (:func:`map_assays`), or by ``mapping=`` (pass
      OlinkAnalyze's table to reproduce its pairs exactly). Unpaired assays are left out
      and recorded; OlinkAnalyze calls them ``NotOverlapping``. On OlinkAnalyze's example
      Explore 3072 export the rule gives exactly the 2920 pairs of its Explore HT table;
      its Reveal table keeps one Explore 3072 copy of the 6 proteins measured on four
      panels, where the rule pairs each copy (18 more pairs).
    - **Too few bridge pairs.** OlinkAnalyze still recommends ``QuantileSmoothing`` for an
      assay whose spline it could not fit, and its bridged NPX is then missing; olinkpipe
      recommends ``MedianCentering`` for it (``qs_possible`` is False) and warns.
    - Bridge samples may be renamed between the runs (pairs or a mapping, as in
      :func:`olinkpipe.pp.bridge_normalize`); OlinkAnalyze needs identical SampleIDs.

    Examples
    --------
    The example data standing in for two products (counts made up; the "Explore 3072"
    run reads on another scale):

    >>> import numpy as np
    >>> import olinkpipe as op
    >>> ht = op.datasets.load_example().adata
    >>> ht.uns["olinkpipe"]["product"] = "Explore HT"
    >>> ht.layers["Count"] = np.full(ht.shape, 500.0)
    >>> e3k = ht.copy()
    >>> e3k.uns["olinkpipe"]["product"] = "Explore 3072"
    >>> e3k.X = 1.2 * e3k.X + 0.3
    >>> bridges = list(ht.obs_names[~ht.obs["is_control"].to_numpy()][:45])
    >>> table = op.pp.bridgeability(ht, e3k, bridges)
    >>> table.loc[0, ["OlinkID", "mapped_by", "BridgingRecommendation"]].tolist()
    ['OID90001_OID90001', 'OlinkID', 'QuantileSmoothing']
    >>> table["BridgingRecommendation"].value_counts().to_dict()
    {'QuantileSmoothing': 348, 'MedianCentering': 11}
    """
    projects = _pair.check_project_names(tuple(projects))
    if not is_cross_product(ref, other):
        msg = format_message(
            "bridgeability compares two different products (Explore 3072, Explore HT, Reveal); "
            f"got {_pair._product(ref)!r} and {_pair._product(other)!r}",
            column="uns['olinkpipe']['product']",
        )
        raise DesignError(msg)
    prod_r, prod_o, min_n = _check_order(ref, other)
    _, _, rows_r, rows_o, pairs = _rows_and_pairs(ref, other, bridge_samples, projects, mapping)
    table = _statistics(ref, other, rows_r, rows_o, pairs, min_n)
    table.attrs = _attrs(prod_r, prod_o, min_n, pairs)
    return table


def _attrs(prod_r: str, prod_o: str, min_n: int, pairs: pd.DataFrame) -> dict:
    return {
        "method": "OlinkAnalyze 5.0.2 olink_normalization_bridgeable",
        "reference_product": NAMES[prod_r],
        "other_product": NAMES[prod_o],
        "min_count": cs.MIN_COUNT,
        "low_median_count": cs.LOW_MEDIAN_COUNT,
        "outlier_iqr": cs.OUTLIER_IQR,
        "max_range_diff": cs.MAX_RANGE_DIFF,
        "min_r2": cs.MIN_R2,
        "max_ks": cs.MAX_KS,
        "min_qs_samples": int(min_n),
        "unmapped_ref": list(pairs.attrs["unmapped_ref"]),
        "unmapped_other": list(pairs.attrs["unmapped_other"]),
        "mapping_rule": pairs.attrs["rule"],
    }


# ---- normalization ------------------------------------------------------------------


def _records(pairs: pd.DataFrame, projects: tuple[str, str]) -> list[dict]:
    how = "the given mapping" if pairs.attrs["rule"] == "mapping" else "OlinkID, UniProt or Assay"
    out = []
    for key, proj, there in (
        ("unmapped_ref", projects[0], projects[1]),
        ("unmapped_other", projects[1], projects[0]),
    ):
        if pairs.attrs[key]:
            out.append(
                {
                    "kind": "assay",
                    "ids": pairs.attrs[key],
                    "reason": f"assay of project {proj} with no match in project {there} by {how}"
                    " (cross-product bridging)",
                }
            )
    return out


def _median_factor(ref, other, rows_r, rows_o, cols_r, cols_o, names) -> np.ndarray:
    """OlinkAnalyze's median-centring factor: median over all bridge pairs of ref − other
    (no count or sample-type filter, as ``norm_internal_bridge``); missing → 0."""
    diff = _pair.block(ref, rows_r, cols_r) - _pair.block(other, rows_o, cols_o)
    return _pair.zero_missing(_utils.nanmedian0(diff), names, step=STEP)


def _qs_layer(ref, other, X, rows_r, rows_o, pairs, table) -> np.ndarray:
    """``QSNormalizedNPX`` of the stacked result (OlinkAnalyze ``olink_normalization_qs``):
    reference sample rows keep their NPX, the other project's sample rows are the spline
    of their NPX (NaN where the assay has too few pairs), control samples and control
    assays NaN. The spline fits and predictions are batched over assays."""
    n_ref = ref.n_obs
    cols_r, cols_o = pairs["i"].to_numpy(), pairs["j"].to_numpy()
    qs = np.full(X.shape, np.nan)
    samp_r = ~_utils.control_samples(ref)
    samp_o = ~_utils.control_samples(other)
    assay_ok = ~_utils.control_assays(ref)[cols_r] & ~_utils.control_assays(other)[cols_o]
    np.copyto(qs[:n_ref], X[:n_ref], where=samp_r[:, None] & assay_ok[None, :])
    npx_r = _pair.block(ref, rows_r, cols_r)
    npx_o = _pair.block(other, rows_o, cols_o)
    cnt_r = _count(ref, "ref")[np.ix_(rows_r, cols_r)]
    pair_ok = samp_r[rows_r] & samp_o[rows_o]
    with np.errstate(invalid="ignore"):
        model = pair_ok[:, None] & (cnt_r > cs.MIN_COUNT) & ~np.isnan(npx_r) & ~np.isnan(npx_o)
    other_rows = np.flatnonzero(samp_o)
    fit = np.flatnonzero(assay_ok & table["qs_possible"].to_numpy())
    step = max(1, cs.QS_CHUNK // max(len(other_rows), npx_r.shape[0] * 9, 1))
    for lo in range(0, len(fit), step):  # a block of assays at a time: small temporaries
        cols = fit[lo : lo + step]
        ref_m = np.where(model[:, cols], npx_r[:, cols], np.nan)
        oth_m = np.where(model[:, cols], npx_o[:, cols], np.nan)
        x = X[np.ix_(n_ref + other_rows, cols)]
        qs[np.ix_(n_ref + other_rows, cols)] = cs.quantile_smooth(ref_m, oth_m, x)
    return qs


def cross_product_normalize(
    ref: ad.AnnData,
    other: ad.AnnData,
    bridge_samples,
    *,
    mapping: pd.DataFrame | None = None,
    projects: tuple[str, str] = ("P1", "P2"),
) -> ad.AnnData:
    """The cross-product branch of :func:`olinkpipe.pp.bridge_normalize` (see there)."""
    projects = _pair.check_project_names(tuple(projects))
    prod_r, prod_o, min_n = _check_order(ref, other)
    ids_r, ids_o, rows_r, rows_o, pairs = _rows_and_pairs(
        ref, other, bridge_samples, projects, mapping
    )
    table = _statistics(ref, other, rows_r, rows_o, pairs, min_n)
    table.attrs = _attrs(prod_r, prod_o, min_n, pairs)
    cols_r, cols_o = pairs["i"].to_numpy(), pairs["j"].to_numpy()
    names = pd.Index(pairs["OlinkID"])
    factor = _median_factor(ref, other, rows_r, rows_o, cols_r, cols_o, names)
    fallback = (table["BridgingRecommendation"] == "MedianCentering") & (
        table["KS_statistic"] > cs.MAX_KS
    )
    if fallback.any():
        _utils.warn_user(
            f"{STEP}: {int(fallback.sum())} assay(s) have fewer than {min_n} bridge pairs with a "
            f"reference count above {cs.MIN_COUNT} for quantile smoothing; they are "
            f"median-centred instead: {preview(names[fallback.to_numpy()])}."
        )
    marks = {
        "bridge": _pair.marks(ref.n_obs, other.n_obs, rows_r, rows_o),
        "bridge_pair": _pair.marks(ref.n_obs, other.n_obs, rows_r, rows_o, values=ids_r, empty=""),
    }
    settings = {
        "method": "cross-product",
        "reference_product": NAMES[prod_r],
        "other_product": NAMES[prod_o],
        "bridge_reference_ids": list(ids_r),
        "bridge_other_ids": list(ids_o),
        "min_qs_samples": int(min_n),
        "mapping_rule": pairs.attrs["rule"],
    }
    with _pair.Stack(ref, other, cols_r, cols_o) as stack, warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Variable names are not unique")
        stack.shift(np.zeros(len(cols_r)))  # copied unshifted; X is set below
        out = _pair.combine(
            stack,
            ref,
            other,
            factor,
            projects=projects,
            step=STEP,
            settings=settings,
            factor_columns={},
            records=_records(pairs, projects),
            obs_marks=marks,
        )
    _finish(out, ref, other, rows_r, rows_o, pairs, table, factor)
    return out


def _finish(out, ref, other, rows_r, rows_o, pairs, table, factor) -> None:
    """var annotations, the two normalized layers and X = the recommended value."""
    n_ref = ref.n_obs
    var = out.var
    var.index = pd.Index(pairs["OlinkID"].to_numpy(dtype=str))
    for col in ("OlinkID_ref", "OlinkID_other", "mapped_by"):
        var[col] = pairs[col].to_numpy(dtype=str)
    for col in ("R2", "KS_statistic", "range_diff", "low_count", "qs_possible"):
        var[col] = table[col].to_numpy()
    rec = table["BridgingRecommendation"].to_numpy(dtype=str)
    var["BridgingRecommendation"] = rec
    out.var = var
    X = np.asarray(out.X)
    mc = X.copy()
    mc[n_ref:] += factor
    qs = _qs_layer(ref, other, X, rows_r, rows_o, pairs, table)
    is_mc, is_qs = rec == "MedianCentering", rec == "QuantileSmoothing"
    np.copyto(X[n_ref:], mc[n_ref:], where=is_mc[None, :])
    np.copyto(X[n_ref:], qs[n_ref:], where=is_qs[None, :])
    out.layers["MedianCenteredNPX"] = mc
    out.layers["QSNormalizedNPX"] = qs
    rec_bridge = _utils.normalization_record(out)[STEP]
    table = table.copy()
    table.insert(table.columns.get_loc("OlinkID_other") + 1, "Adj_factor", factor)
    rec_bridge["factors"] = table
