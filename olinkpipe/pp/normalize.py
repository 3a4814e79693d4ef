"""Subset, intensity, reference-median and plate normalization.

All follow OlinkAnalyze 4.5.0 ``olink_normalization`` semantics: the per-assay adjustment
factor (``Adj_factor``) is a difference of medians (NA skipped; a factor that cannot be
computed becomes 0 with a warning) and is added to the non-reference project's NPX **and**
LOD. The reference project is left unchanged (its factor is 0).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import partial
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd

from .._validate import check_literal, require_columns
from ..errors import ValidationError, format_message, preview
from . import _lazy, _lodcols, _median, _pair, _utils

__all__ = [
    "subset_normalize",
    "intensity_normalize",
    "reference_median_normalize",
    "normalize_plates",
]


def _subset_factor(
    ref: ad.AnnData,
    other: ad.AnnData,
    rows_r: np.ndarray,
    rows_o: np.ndarray,
    cols_r: np.ndarray,
    cols_o: np.ndarray,
    *,
    step: str,
    projects: tuple[str, str],
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Median of the reference subset minus median of the other subset, per shared assay,
    and the factor table's extra columns (both medians, values per subset)."""
    med_r, n_r = _pair.column_median(ref, rows_r, cols_r)
    med_o, n_o = _pair.column_median(other, rows_o, cols_o)
    names = ref.var_names[cols_r]
    _pair.warn_all_nan(
        {projects[0]: n_r, projects[1]: n_o},
        names,
        step=step,
        what="normalization samples",
    )
    factor = _pair.zero_missing(med_r - med_o, names, step=step)
    return factor, {
        "median_reference": med_r,
        "median_other": med_o,
        "n_reference": n_r,
        "n_other": n_o,
    }


def _run_subset(
    ref: ad.AnnData,
    other: ad.AnnData,
    rows_r: np.ndarray,
    rows_o: np.ndarray,
    *,
    step: str,
    projects: tuple[str, str],
    settings: dict,
) -> ad.AnnData:
    def factor_of(cols_r: np.ndarray, cols_o: np.ndarray) -> tuple:
        return _subset_factor(
            ref, other, rows_r, rows_o, cols_r, cols_o, step=step, projects=projects
        )

    return _pair.normalize(
        ref,
        other,
        factor_of,
        projects=projects,
        step=step,
        settings=settings,
        obs_marks={"norm_sample": _pair.marks(ref.n_obs, other.n_obs, rows_r, rows_o)},
    )


def subset_normalize(
    ref: ad.AnnData,
    other: ad.AnnData,
    ref_samples: Iterable[str],
    other_samples: Iterable[str],
    *,
    projects: tuple[str, str] = ("P1", "P2"),
) -> ad.AnnData:
    """Normalize ``other`` to ``ref`` with a subset of samples from each project.

    Per assay (OlinkID), ``Adj_factor = median(ref NPX over ref_samples) − median(other NPX
    over other_samples)``, NaN skipped, exactly as OlinkAnalyze's subset normalization
    (``olink_normalization`` with ``overlapping_samples_df1/df2``). The factor is added to the
    other project's NPX and LOD; the reference is unchanged.

    Parameters
    ----------
    ref
        Reference project (samples × assays AnnData, see ``docs/data_model.md``).
    other
        Project to adjust.
    ref_samples
        Sample identifiers in ``ref`` (``obs_names`` or ``obs["SampleID"]``).
    other_samples
        Sample identifiers in ``other``; need not be the same samples.
    projects
        Names of the reference and the other project, written to ``obs["Project"]``.

    Returns
    -------
    anndata.AnnData
        Both projects stacked (shared assays only), ``obs["Project"]``, ``obs["norm_sample"]``
        (used for the factor), ``var["Adj_factor"]`` and
        ``uns["olinkpipe"]["normalization"]["subset_normalize"]["factors"]``. Assays present in
        only one project are dropped and recorded in ``uns["olinkpipe"]["excluded"]``.

    Raises
    ------
    ValidationError
        A listed sample is absent; DuplicateSampleError when listed twice.

    Examples
    --------
    >>> import numpy as np
    >>> import olinkpipe as op
    >>> run1 = op.datasets.load_example().adata
    >>> run2 = run1.copy()  # a second run reading 0.5 NPX higher on every assay
    >>> run2.X = run2.X + 0.5
    >>> run2.varm["lod"] = run2.varm["lod"] + 0.5  # the LOD per assay and plate
    >>> both = op.pp.subset_normalize(run1, run2, ["OL0002", "OL0006"], ["OL0008", "OL0009"])
    >>> int(both.obs["norm_sample"].sum())
    4
    >>> tab = both.uns["olinkpipe"]["normalization"]["subset_normalize"]["factors"]
    >>> bool(np.allclose(tab["Adj_factor"], tab["median_reference"] - tab["median_other"]))
    True
    """
    projects = _pair.check_project_names(tuple(projects))
    _pair.check_products(ref, other)
    rows_r = _utils.resolve_samples(
        ref, ref_samples, what="ref_samples", project=projects[0], allow_multiple=True
    )
    rows_o = _utils.resolve_samples(
        other, other_samples, what="other_samples", project=projects[1], allow_multiple=True
    )
    return _run_subset(
        ref,
        other,
        rows_r,
        rows_o,
        step="subset_normalize",
        projects=projects,
        settings={
            "method": "subset",
            "n_ref_samples": len(rows_r),
            "n_other_samples": len(rows_o),
        },
    )


def intensity_normalize(
    ref: ad.AnnData,
    other: ad.AnnData,
    *,
    controls: Literal["keep", "drop"] = "keep",
    qc_warning: Literal["keep", "drop"] = "keep",
    projects: tuple[str, str] = ("P1", "P2"),
) -> ad.AnnData:
    """Intensity normalization: subset normalization using all samples of both projects.

    ``Adj_factor = median(ref NPX) − median(other NPX)`` per assay, over **all** rows of
    each project by default, **control samples and samples with a QC warning included**.
    The factor is added to the other project's NPX and LOD.

    Warning: by default control samples (``obs["is_control"]``, e.g. ``CONTROL_SAMPLE_AS 1``)
    are used. This reproduces OlinkAnalyze's output exactly: its reference call
    (``olink_normalization(overlapping_samples_df1 = df1$SampleID, overlapping_samples_df2 =
    df2$SampleID)``) passes every SampleID, controls included, and R keeps them. Olink's
    own description of intensity normalization uses study samples only, without controls
    and QC-warning samples: pass ``controls="drop", qc_warning="drop"`` for that. On
    OlinkAnalyze's example data (``npx_data1``/``npx_data2``) the two choices give factors
    up to 0.34 NPX apart.

    Parameters
    ----------
    ref
        Reference project.
    other
        Project to adjust.
    controls
        ``"keep"`` (default, as OlinkAnalyze's reference call) computes the medians with
        control samples included; ``"drop"`` leaves them out of the medians (all rows are
        shifted either way).
    qc_warning
        ``"keep"`` (default) uses samples with a QC warning too; ``"drop"`` leaves them out
        of the medians.
    projects
        Names of the reference and the other project.

    Returns
    -------
    anndata.AnnData
        As :func:`subset_normalize`: both projects stacked, ``obs["norm_sample"]`` marking
        the rows the medians used; the step and its ``controls`` / ``qc_warning`` settings
        are recorded under ``uns["olinkpipe"]["normalization"]["intensity_normalize"]``.

    Examples
    --------
    >>> import numpy as np
    >>> import olinkpipe as op
    >>> run1 = op.datasets.load_example().adata
    >>> run2 = run1.copy()  # a second run reading 0.5 NPX higher on every assay
    >>> run2.X = run2.X + 0.5
    >>> run2.varm["lod"] = run2.varm["lod"] + 0.5  # the LOD per assay and plate
    >>> both = op.pp.intensity_normalize(run1, run2)  # controls kept, as OlinkAnalyze
    >>> bool(np.allclose(both.var["Adj_factor"], -0.5))
    True
    >>> int(both.obs["norm_sample"].sum())
    100
    >>> study_only = op.pp.intensity_normalize(run1, run2, controls="drop")
    >>> int(study_only.obs["norm_sample"].sum())
    92
    """
    check_literal("controls", controls, ["keep", "drop"])
    check_literal("qc_warning", qc_warning, ["keep", "drop"])
    projects = _pair.check_project_names(tuple(projects))
    _pair.check_products(ref, other)

    def rows(a: ad.AnnData) -> np.ndarray:
        keep = np.ones(a.n_obs, dtype=bool)
        if controls == "drop":
            keep &= ~_utils.control_samples(a)
        if qc_warning == "drop":
            keep &= ~_utils.sample_qc_fail(a)
        return np.flatnonzero(keep)

    rows_r, rows_o = rows(ref), rows(other)
    for r, proj in ((rows_r, projects[0]), (rows_o, projects[1])):
        if len(r) == 0:
            msg = f"intensity_normalize: no samples left in project {proj!r} after filtering."
            raise ValidationError(msg)
    return _run_subset(
        ref,
        other,
        rows_r,
        rows_o,
        step="intensity_normalize",
        projects=projects,
        settings={"method": "intensity", "controls": controls, "qc_warning": qc_warning},
    )


def _reference_series(reference_medians: pd.DataFrame | pd.Series | Mapping) -> pd.Series:
    if isinstance(reference_medians, pd.DataFrame):
        require_columns(
            reference_medians,
            ["OlinkID", "Reference_NPX"],
            what="reference_medians table",
            hint="Pass a DataFrame with columns OlinkID and Reference_NPX (as OlinkAnalyze).",
        )
        ser = reference_medians.set_index(reference_medians["OlinkID"].astype(str))[
            "Reference_NPX"
        ]
    else:
        ser = pd.Series(reference_medians)
        ser.index = ser.index.astype(str)
    if ser.index.has_duplicates:
        msg = format_message(
            "reference_medians lists an OlinkID more than once",
            column="OlinkID",
            rows=ser.index[ser.index.duplicated()].unique(),
            hint="Give one Reference_NPX per OlinkID.",
        )
        raise ValidationError(msg)
    return pd.to_numeric(ser, errors="coerce").astype(float)


def reference_median_normalize(
    adata: ad.AnnData,
    reference_medians: pd.DataFrame | pd.Series | Mapping[str, float],
    *,
    samples: Iterable[str] | None = None,
    project: str = "P1",
) -> ad.AnnData:
    """Shift each assay so that its median over ``samples`` equals a reference median.

    ``Adj_factor = Reference_NPX − median(NPX over samples)`` per OlinkID (NaN skipped; a
    missing factor becomes 0 with a warning), added to NPX and LOD, as OlinkAnalyze's
    reference median normalization. Assays without a reference median are dropped and
    recorded, as OlinkAnalyze drops assays not shared with ``reference_medians``.

    Parameters
    ----------
    adata
        Samples × assays AnnData.
    reference_medians
        DataFrame with columns ``OlinkID`` and ``Reference_NPX`` (OlinkAnalyze's format), or a
        Series / mapping OlinkID → reference median.
    samples
        Samples whose median is matched (``overlapping_samples_df1``); all samples when None.
    project
        Written to ``obs["Project"]``.

    Returns
    -------
    anndata.AnnData
        New object with shifted ``X`` and LOD (plate table or layer), ``var["Adj_factor"]`` and
        ``uns["olinkpipe"]["normalization"]["reference_median_normalize"]["factors"]``.

    Examples
    --------
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> ref = pd.DataFrame({"OlinkID": adata.var_names, "Reference_NPX": 5.0})
    >>> out = op.pp.reference_median_normalize(adata, ref)
    >>> bool(np.allclose(np.nanmedian(out.X, axis=0), 5.0))
    True
    """
    step = "reference_median_normalize"
    refmed = _reference_series(reference_medians)
    have = adata.var_names.isin(refmed.index)
    out = _utils.subset_copy(adata, np.ones(adata.n_obs, dtype=bool), have)  # one copy
    _utils.new_result(out, copy=False)
    rows = (
        np.arange(out.n_obs)
        if samples is None
        else _utils.resolve_samples(
            out, samples, what="samples", project=project, allow_multiple=True
        )
    )
    names = out.var_names
    med, n = _pair.column_median(out, rows, np.arange(out.n_vars))
    _pair.warn_all_nan({project: n}, names, step=step, what="normalization samples")
    target = refmed.reindex(names).to_numpy()
    factor = _pair.zero_missing(target - med, names, step=step)
    out.X = _shifted(_utils.npx(out), factor)
    _utils.shift_lod(out, factor)  # the LOD table or layer
    for key in _lodcols.shifted_layers(out):  # MaxLOD, PlateLOD, ... (OlinkAnalyze)
        if key == "lod":
            continue  # shifted above
        layer = out.layers[key]
        out.layers[key] = _shifted(
            layer if _lazy.is_dask(layer) else np.asarray(layer, float), factor
        )
    _lodcols.update_max_lod(out)
    out.var["Adj_factor"] = factor
    out.obs["Project"] = project
    table = _pair.factor_table(names, out.var, factor, Reference_NPX=target, median=med, n=n)
    _utils.normalization_record(out)[step] = {
        "method": "reference_median",
        "n_samples": len(rows),
        "factors": table,
    }
    if (~have).any():
        _utils.exclude(
            out, step=step, kind="assay", ids=adata.var_names[~have], reason="no reference median"
        )
    return out


def _shifted(X, factor: np.ndarray):
    """``X + factor`` per assay: in place on a private numpy copy, lazily on dask."""
    if _lazy.is_dask(X):
        return X + factor
    X += factor
    return X


def normalize_plates(
    adata: ad.AnnData,
    *,
    method: Literal["intensity"] = "intensity",
    controls: Literal["keep", "drop"] = "drop",
    copy: bool = True,
) -> ad.AnnData:
    """Within-project plate intensity normalization.

    For every plate and assay, ``Adj_factor = median(NPX over all plates) − median(NPX on the
    plate)``, computed over study samples (controls left out by default) and added to every
    NPX and LOD value of that plate and assay, so that each plate's median equals the
    project's. The plate of a cell is its panel's plate (``obsm["PlateID"]``).

    Parameters
    ----------
    adata
        Samples × assays AnnData.
    method
        ``"intensity"`` (the only method: median centring per plate).
    controls
        ``"drop"`` (default) computes medians from study samples only; all rows are shifted.
    copy
        Return a new AnnData (default; one copy of X and the layers) or change ``adata``
        in place and return it (``copy=False``; no copy of the arrays). A dask-backed
        ``adata`` gives a dask-backed result (X still lazy).

    Returns
    -------
    anndata.AnnData
        Shifted ``X`` and LOD (per plate column of the table, or the layer); the plate ×
        assay factors as a long table (``PlateID``, ``OlinkID``, ``Adj_factor``, ``n``) in
        ``uns["olinkpipe"]["normalization"]["normalize_plates"]["factors"]``.

    Examples
    --------
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> out = op.pp.normalize_plates(adata)
    >>> tab = out.uns["olinkpipe"]["normalization"]["normalize_plates"]["factors"]
    >>> list(tab.columns)
    ['PlateID', 'Panel', 'OlinkID', 'Adj_factor', 'n']
    >>> sorted(tab["PlateID"].unique())
    ['Plate1', 'Plate2']
    """
    check_literal("method", method, ["intensity"])
    check_literal("controls", controls, ["keep", "drop"])
    step = "normalize_plates"
    out = _utils.new_result(adata, copy=copy)
    use = np.ones(out.n_obs, dtype=bool)
    if controls == "drop":
        use &= ~_utils.control_samples(out)
    plate_tab = _utils.per_panel_obs(out, "PlateID")
    has_plates = bool((plate_tab.to_numpy() != "").any())
    pans = _utils.panels(out)
    pan_list = list(plate_tab.columns)
    pidx = pd.Index(pan_list).get_indexer(pans)
    plates = pd.unique(plate_tab.to_numpy().ravel())
    codes = np.column_stack(
        [pd.Index(plates).get_indexer(plate_tab[p].to_numpy()) for p in pan_list]
    ).reshape(out.n_obs, len(pan_list))
    n_pl = len(plates)
    X = _utils.npx(out)
    if _lazy.is_dask(X):  # per assay block, one thread each (dask runs the blocks)
        stats = _lazy.per_assay(
            partial(_plate_medians, use=use, codes=codes, n_plates=n_pl, threads=1),
            [X],
            k=1 + 2 * n_pl,
            vectors=[pidx],
        )
    else:  # the whole matrix: tiles shared out to threads (pp._median)
        stats = _plate_medians(X, pidx, use=use, codes=codes, n_plates=n_pl)
    overall, med, count = stats[0], stats[1 : 1 + n_pl], stats[1 + n_pl :]
    # factor per plate (code) and assay; the last row (code -1: no plate) shifts nothing
    factors, table, missing = _plate_factors(
        out.var_names, plate_tab, plates, pidx, overall, med, count, has_plates=has_plates
    )
    if has_plates and "" in set(plates):  # cells on no plate keep their values
        codes = np.where(codes == int(np.flatnonzero(plates == "")[0]), -1, codes)
    if missing:
        _utils.warn_user(
            f"{step}: no study-sample values for {len(missing)} plate/assay pair(s) "
            f"({preview(missing)}); their factor is set to 0.",
        )
    out.X = _shift_by_plate(X, codes, pidx, factors)
    lod = out.layers["lod"] if "lod" in out.layers else None
    if isinstance(lod, np.ndarray) and lod.dtype == np.float64:  # a full layer: in place
        out.layers["lod"] = _shift_by_plate(lod, codes, pidx, factors)
    else:
        _utils.shift_lod_by_plate(out, codes, pidx, factors, plates)  # table or layer
    _utils.normalization_record(out)[step] = {
        "method": method,
        "controls": controls,
        "factors": table,
    }
    return out


def _plate_factors(
    names: pd.Index,
    plate_tab: pd.DataFrame,
    plates: np.ndarray,
    pidx: np.ndarray,
    overall: np.ndarray,
    med: np.ndarray,
    count: np.ndarray,
    *,
    has_plates: bool,
) -> tuple[np.ndarray, pd.DataFrame, list[str]]:
    """Factor per plate (code) and assay (the last row, code -1: no plate, shifts
    nothing), the long factor table (one frame built once) and the plate/assay pairs
    without a factor (set to 0)."""
    factors = np.zeros((len(plates) + 1, len(names)))
    labels: list[tuple[str, str]] = []  # (plate, panel) of each pair
    col_parts: list[np.ndarray] = []
    code_of: list[int] = []
    for p_i, panel in enumerate(plate_tab.columns):
        cols = np.flatnonzero(pidx == p_i)
        for plate in pd.unique(plate_tab[panel].to_numpy()):
            if plate == "" and has_plates:  # not measured on this panel: nothing to shift
                continue
            labels.append((str(plate), str(panel)))
            code_of.append(int(np.flatnonzero(plates == plate)[0]))
            col_parts.append(cols)
    pair = np.repeat(np.arange(len(labels)), [len(c) for c in col_parts])
    col = np.concatenate(col_parts) if col_parts else np.empty(0, dtype=np.intp)
    code = np.asarray(code_of, dtype=np.intp)[pair]
    plate_of = np.array([p for p, _ in labels] or [""], dtype=object)[pair]
    panel_of = np.array([q for _, q in labels] or [""], dtype=object)[pair]
    fac = overall[col] - med[code, col]
    bad = np.isnan(fac)
    missing = [f"{p}/{v}" for p, v in zip(plate_of[bad], names[col[bad]], strict=True)]
    fac[bad] = 0.0
    factors[code, col] = fac
    table = pd.DataFrame(
        {
            "PlateID": plate_of,
            "Panel": panel_of,
            "OlinkID": np.asarray(names.astype(str), dtype=object)[col],
            "Adj_factor": fac,
            "n": count[code, col].astype(np.int64),
        }
    )
    return factors, table, missing


def _panel_groups(codes: np.ndarray, pidx: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(plate code of each sample, assay columns) per set of panels whose samples sit on
    the same plates (usually one set: every panel)."""
    groups: dict[bytes, list[int]] = {}
    for p in np.unique(pidx):
        groups.setdefault(codes[:, p].tobytes(), []).append(int(p))
    return [(codes[:, pans[0]], np.flatnonzero(np.isin(pidx, pans))) for pans in groups.values()]


def _plate_medians(
    block: np.ndarray,
    pidx: np.ndarray,
    *,
    use: np.ndarray,
    codes: np.ndarray,
    n_plates: int,
    threads: int | None = None,
) -> np.ndarray:
    """Per assay of a block: median over the ``use`` rows, then each plate's median and
    number of values over its ``use`` rows (NaN / 0 where the plate is not on the panel),
    exact (``np.nanmedian``'s values, :func:`olinkpipe.pp._median.group_medians`)."""
    pidx = np.asarray(pidx, dtype=np.intp)
    out = np.full((1 + 2 * n_plates, block.shape[1]), np.nan)
    for code, cols in _panel_groups(codes, pidx):
        overall, med, count = _median.group_medians(
            block, code, n_plates, use=use, cols=cols, threads=threads
        )
        out[0, cols] = overall
        out[1 : 1 + n_plates, cols] = med
        out[1 + n_plates :, cols] = count
    return out


def _shift_by_plate(X, codes: np.ndarray, pidx: np.ndarray, factors: np.ndarray):
    """``X[i, j] + factors[codes[i, pidx[j]], j]``: in place on a float64 numpy array (one
    threaded pass, :func:`olinkpipe.pp._median.add_by_group`), lazily on dask."""
    if _lazy.is_dask(X) or not (isinstance(X, np.ndarray) and X.dtype == np.float64):
        return _lazy.add_by_code(X, codes, pidx, factors)
    for code, cols in _panel_groups(codes, np.asarray(pidx, dtype=np.intp)):
        _median.add_by_group(X, code, factors, cols)
    return X
