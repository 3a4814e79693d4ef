"""Bridge normalization of two projects and Olink's bridge-sample selector."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd

from .._dask import is_dask
from .._validate import check_literal
from ..errors import ValidationError, format_message
from . import _pair, _utils, crossproduct
from .qc import _outside, _panel_stats

__all__ = ["bridge_normalize", "select_bridge_samples"]

BridgeSamples = Mapping[str, str] | Iterable[str] | Iterable[tuple[str, str]] | pd.DataFrame


def bridge_normalize(
    ref: ad.AnnData,
    other: ad.AnnData,
    bridge_samples: BridgeSamples,
    *,
    method: Literal["median", "paired"] = "median",
    projects: tuple[str, str] = ("P1", "P2"),
    mapping: pd.DataFrame | None = None,
) -> ad.AnnData:
    """Bridge-normalize ``other`` to ``ref`` using samples measured in both projects.

    When the two come from different products (``uns["olinkpipe"]["product"]``: Explore
    3072 with Explore HT or Reveal as ``ref``, or Explore HT with Reveal), OlinkAnalyze's
    cross-product bridging is done instead: assays are paired (``mapping``), each gets a
    ``var["BridgingRecommendation"]`` and X the recommended value; see
    :func:`olinkpipe.pp.bridgeability` and ``docs/bridging.md``.

    Per assay (OlinkID), with ``method="median"`` (default, OlinkAnalyze's bridge
    normalization), ``Adj_factor = median over bridge pairs of (NPX_ref − NPX_other)``; pairs
    with a NaN are skipped and a factor that cannot be computed becomes 0 with a warning.
    The factor is added to every NPX **and** LOD value of ``other``; ``ref`` is unchanged.
    QC warnings and LOD play no part, as in OlinkAnalyze.

    Parameters
    ----------
    ref
        Reference project (samples × assays AnnData, see ``docs/data_model.md``).
    other
        Project to adjust.
    bridge_samples
        Samples measured in both projects: a list of identifiers shared by both, a mapping
        ``{reference_id: other_id}`` for samples renamed in the second run, a list of
        ``(reference_id, other_id)`` pairs, or a two-column DataFrame. Identifiers are
        looked up in ``obs_names`` first, then ``obs["SampleID"]``.
    method
        ``"median"``: median of the paired differences (OlinkAnalyze). ``"paired"``: mean of
        the paired differences (the least-squares paired estimate; more sensitive to a bad
        bridge sample, no OlinkAnalyze equivalent).
    projects
        Names of the reference and the other project, written to ``obs["Project"]``.
    mapping
        Cross-product bridging only: a DataFrame of OlinkID pairs (first column the
        reference's, second the other's); default: pair by OlinkID, UniProt and Assay
        (:func:`olinkpipe.pp.crossproduct.map_assays`).

    Returns
    -------
    anndata.AnnData
        Both projects stacked (assays shared by both; the others are dropped and recorded in
        ``uns["olinkpipe"]["excluded"]``), both copies of every bridge sample kept, with
        ``obs["Project"]``, ``obs["bridge"]`` (bool) and ``obs["bridge_pair"]`` (the
        reference ID of the pair, ``""`` otherwise). ``var["Adj_factor"]`` holds the factor
        applied to the other project; ``uns["olinkpipe"]["normalization"]["bridge_normalize"]``
        the settings and a ``factors`` table (with ``n_pairs`` per assay). Row names shared
        by both projects get an ``"@<project>"`` suffix to stay unique.

    Raises
    ------
    ValidationError
        A bridge sample is missing from either project.
    DuplicateSampleError
        A bridge sample is listed twice or matches several rows.
    DesignError
        Cross-product bridging with Explore 3072 as the reference (the newer product must
        be ``ref``, as in OlinkAnalyze).

    Notes
    -----
    Before normalizing, assays marked ``Normalization == "EXCLUDED"`` or present in only one
    project are dropped and reported; differing ``var["Normalization"]`` between the projects
    and assays with no bridge values in a project are warned about.

    Dask-backed projects (X and layers ``dask.array``) give a dask-backed result: the
    factor is computed from the bridge rows only, the stacked arrays stay lazy (one row
    block, the reference's assay blocks).

    The stacked arrays are written on a few threads (``OLINKPIPE_NUM_THREADS``; see
    ``docs/api/pp.md``); the result does not depend on it.

    Layers: ``lod`` is shifted with NPX; boolean layers (``below_lod``, ``qc_warning``) are
    carried over unchanged (shifting NPX and LOD by the same amount does not change which
    values are below LOD); code layers are re-coded to one category list
    (``uns["olinkpipe"]["coded_layers"]``); ``measured`` is kept when either project is not
    a full grid; other layers present in only one project are dropped with a warning.

    Examples
    --------
    >>> import numpy as np
    >>> import olinkpipe as op
    >>> run1 = op.datasets.load_example().adata
    >>> run2 = run1.copy()  # a second run reading 0.5 NPX higher on every assay
    >>> run2.X = run2.X + 0.5
    >>> run2.varm["lod"] = run2.varm["lod"] + 0.5
    >>> both = op.pp.bridge_normalize(run1, run2, ["OL0002", "OL0006", "OL0008"])
    >>> both.shape
    (100, 359)
    >>> bool(np.allclose(both.var["Adj_factor"], -0.5))
    True
    >>> both.obs.loc[both.obs["bridge"], ["Project", "bridge_pair"]].head(2)
              Project bridge_pair
    OL0002@P1      P1      OL0002
    OL0006@P1      P1      OL0006

    Bridge samples renamed in the second run:

    >>> run2.obs_names = [f"{s}_rerun" for s in run2.obs_names]
    >>> run2.obs["SampleID"] = list(run2.obs_names)
    >>> both = op.pp.bridge_normalize(run1, run2, {"OL0002": "OL0002_rerun", "OL0006": "OL0006_rerun"})
    >>> int(both.obs["bridge"].sum())
    4
    """
    step = "bridge_normalize"
    check_literal("method", method, ["median", "paired"])
    projects = _pair.check_project_names(tuple(projects))
    if crossproduct.is_cross_product(ref, other):
        if method != "median":
            msg = "bridge_normalize: cross-product bridging has no method='paired'."
            raise ValidationError(msg)
        return crossproduct.cross_product_normalize(
            ref, other, bridge_samples, mapping=mapping, projects=projects
        )
    if mapping is not None:
        msg = "bridge_normalize: mapping= is for cross-product bridging (two products) only."
        raise ValidationError(msg)
    ids_r, ids_o = _utils.as_mapping(bridge_samples)
    if not ids_r:
        msg = "bridge_normalize: no bridge samples given."
        raise ValidationError(msg)
    rows_r = _utils.resolve_samples(ref, ids_r, what="bridge_samples", project=projects[0])
    rows_o = _utils.resolve_samples(other, ids_o, what="bridge_samples", project=projects[1])

    def factor_of(cols_r: np.ndarray, cols_o: np.ndarray) -> tuple:
        raw, n_pairs = _bridge_factor(
            ref, other, rows_r, rows_o, cols_r, cols_o, method=method, projects=projects
        )
        return _pair.zero_missing(raw, ref.var_names[cols_r], step=step), {"n_pairs": n_pairs}

    n_r, n_o = ref.n_obs, other.n_obs
    return _pair.normalize(
        ref,
        other,
        factor_of,
        projects=projects,
        step=step,
        settings={
            "method": method,
            "bridge_reference_ids": list(ids_r),
            "bridge_other_ids": list(ids_o),
        },
        obs_marks={
            "bridge": _pair.marks(n_r, n_o, rows_r, rows_o),
            "bridge_pair": _pair.marks(n_r, n_o, rows_r, rows_o, values=ids_r, empty=""),
        },
    )


def _bridge_factor(
    ref: ad.AnnData,
    other: ad.AnnData,
    rows_r: np.ndarray,
    rows_o: np.ndarray,
    cols_r: np.ndarray,
    cols_o: np.ndarray,
    *,
    method: str,
    projects: tuple[str, str],
) -> tuple[np.ndarray, np.ndarray]:
    """Per-assay factor over bridge pairs (NaN where no pair) and the number of pairs.

    Only the small bridge block (pairs × shared assays) is read; one ``np.nanmedian``.
    """
    block_r = _pair.block(ref, rows_r, cols_r)
    block_o = _pair.block(other, rows_o, cols_o)
    _pair.warn_all_nan(
        {projects[0]: block_r, projects[1]: block_o},
        ref.var_names[cols_r],
        step="bridge_normalize",
        what="bridge samples",
    )
    diff = np.subtract(block_r, block_o, out=block_r)  # block_r is a private copy
    n_pairs = diff.shape[0] - np.isnan(diff).sum(axis=0)
    if method == "median":
        return _utils.nanmedian0(diff), n_pairs
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n_pairs > 0, np.nansum(diff, axis=0) / n_pairs, np.nan), n_pairs


def _columns(X, cols: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``X[rows][:, cols]`` as a float numpy array (a dask ``X``: those columns computed)."""
    part = X[:, cols]
    if is_dask(part):
        part = part.compute()
    return np.ascontiguousarray(np.asarray(part)[rows], dtype=float)  # same sums either way


def select_bridge_samples(
    adata: ad.AnnData,
    n: int,
    *,
    max_missing: float = 0.1,
) -> pd.DataFrame:
    """Choose ``n`` bridge samples that pass QC, are well detected and span the NPX range.

    Reproduces OlinkAnalyze 4.5.0 ``olink_bridgeselector(df, sampleMissingFreq, n)``:

    1. control samples (``obs["is_control"]`` or a ``CONTROL_SAMPL`` ID) and control assays
       are left out;
    2. per panel, samples whose median or IQR (R ``IQR`` type 7) of NPX lies outside
       mean ± 3 SD (of all remaining samples) are outliers;
    3. NPX ≤ LOD (or with no LOD) counts as missing;
    4. samples with any non-passing QC warning or any outlier panel are dropped;
    5. samples with ``PercAssaysBelowLOD`` (fraction of the sample's measured assays that are
       missing) ``< max_missing`` are kept and sorted by ``MeanNPX`` (mean NPX above LOD),
       descending;
    6. the rows ``floor(seq(1, N, length.out = n + 2))`` without the first and last are
       picked.

    Parameters
    ----------
    adata
        Samples × assays AnnData with ``layers["lod"]``.
    n
        Number of bridge samples wanted (Olink recommends 8–16).
    max_missing
        Threshold on the fraction of assays below LOD per sample (OlinkAnalyze
        ``sampleMissingFreq``); Olink suggests starting at 0.1 and relaxing to 0.2.

    Returns
    -------
    pandas.DataFrame
        Columns ``SampleID``, ``PercAssaysBelowLOD`` (a fraction, as in OlinkAnalyze) and
        ``MeanNPX``, sorted by ``MeanNPX`` descending (OlinkAnalyze returns them in random
        order); ``attrs`` hold the settings and the number of candidates.

    Raises
    ------
    ValidationError
        Fewer than ``n`` samples qualify.

    Examples
    --------
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> bridges = op.pp.select_bridge_samples(adata, 4, max_missing=0.1)
    >>> list(bridges.columns)
    ['SampleID', 'PercAssaysBelowLOD', 'MeanNPX']
    >>> bool(bridges["MeanNPX"].is_monotonic_decreasing)
    True
    """
    if int(n) != n or n < 1:
        msg = f"n must be a positive integer; got {n!r}."
        raise ValidationError(msg)
    n = int(n)
    sample_keep = ~_utils.control_samples(adata)
    assay_keep = ~_utils.control_assays(adata)
    sub = adata[sample_keep][:, assay_keep]
    # the arrays are taken from adata itself: a view's dask layers would be computed whole
    lod = _utils.lod_layer(adata, what="select_bridge_samples")
    rows, keep_cols = np.flatnonzero(sample_keep), np.flatnonzero(assay_keep)
    pans = _utils.panels(sub)
    plate_tab = _utils.per_panel_obs(sub, "PlateID")
    has_plate_info = "PlateID" in sub.obsm and isinstance(sub.obsm["PlateID"], pd.DataFrame)

    # panel by panel (a dask X: one panel's columns computed at a time, never the whole)
    outlier = np.zeros(sub.n_obs, dtype=bool)
    n_rows = np.zeros(sub.n_obs, dtype=np.int64)  # measured assays (on the sample's panels)
    n_missing = np.zeros(sub.n_obs, dtype=np.int64)
    n_above = np.zeros(sub.n_obs, dtype=np.int64)
    sum_above = np.zeros(sub.n_obs)
    for panel in pd.unique(pans):
        cols = np.flatnonzero(pans == panel)
        block = _columns(adata.X, keep_cols[cols], rows)
        if has_plate_info:
            ran = plate_tab[panel].to_numpy() != ""
        else:
            ran = ~np.isnan(block).all(axis=1)
        med, iqr = _panel_stats(block[ran])
        # R: a sample with no NPX on a panel it ran on has NA stats -> NA outlier -> dropped
        flag = _outside(med, iqr, sd=3.0) | np.isnan(med)
        outlier[np.flatnonzero(ran)[flag]] = True
        # False where NPX or LOD is NaN, as R's ifelse(NPX <= LOD, NA, NPX)
        above = block > _columns(lod, keep_cols[cols], rows)
        n_rows += np.where(ran, len(cols), 0)
        n_missing += np.where(ran, (~above).sum(axis=1), 0)
        n_above += above.sum(axis=1)
        sum_above += np.where(above, block, 0.0).sum(axis=1)

    qc_fail = _utils.sample_qc_fail(sub)
    with np.errstate(invalid="ignore", divide="ignore"):
        perc = n_missing / n_rows
        mean_npx = sum_above / n_above
    ok = ~qc_fail & ~outlier & (n_rows > 0) & (perc < max_missing)
    cand = pd.DataFrame(
        {
            "SampleID": np.asarray(_utils.sample_ids(sub))[ok],
            "PercAssaysBelowLOD": perc[ok],
            "MeanNPX": mean_npx[ok],
        }
    )
    if len(cand) < n:
        msg = format_message(
            f"with max_missing={max_missing} only {len(cand)} sample(s) qualify as bridge "
            f"samples, fewer than n={n}",
            hint="Increase max_missing (e.g. to 0.2) and/or decrease n.",
        )
        raise ValidationError(msg)
    cand = cand.sort_values("MeanNPX", ascending=False, kind="mergesort").reset_index(drop=True)
    picks = np.floor(np.linspace(1, len(cand), n + 2))[1:-1].astype(int) - 1
    out = cand.iloc[picks].reset_index(drop=True)
    out.attrs = {
        "method": "OlinkAnalyze olink_bridgeselector (4.5.0)",
        "n": n,
        "max_missing": float(max_missing),
        "n_candidates": len(cand),
        "n_outlier_samples": int(outlier.sum()),
        "n_qc_fail_samples": int(qc_fail.sum()),
    }
    if out["SampleID"].duplicated().any():
        _utils.warn_user(
            "select_bridge_samples: the same SampleID was picked twice (duplicated rows)."
        )
    return out
