"""Removal of what OlinkAnalyze's ``clean_npx`` removes, each removal recorded and warned."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import anndata as ad
import numpy as np
import pandas as pd

from .._provenance import provenance
from ..errors import ValidationError, format_message
from ..io.check import (
    ASSAY_QC,
    SAMPLE_QC,
    check,
    first_key,
    nonunique_uniprot,
    sample_id_array,
    text_mask,
)
from . import _utils

__all__ = ["clean"]

STEP = "clean"
#: OlinkAnalyze 5.0.2's sample types (``olink_sample_types``) by group
SAMPLE_TYPES = {
    "sample": ("SAMPLE",),
    "sc": (
        "CONTROL",
        "SAMPLE_CONTROL",
        "SAMPLE_CONTROL_1",
        "SAMPLE_CONTROL_2",
        "SAMPLE_CONTROL_3",
        "SAMPLE_CONTROL_4",
    ),
    "pc": ("PLATE_CONTROL", "INTERPLATE_CONTROL"),
    "nc": ("NEGATIVE_CONTROL",),
    "calibrator": ("CALIBRATOR", "CALIBRATOR_A", "CALIBRATOR_B", "CALIBRATOR_C"),
    "other": ("NOT_USED", "EMPTY"),
}
#: OlinkAnalyze 5.0.2's assay types (``olink_assay_types``) by group
ASSAY_TYPES = {
    "assay": ("assay",),
    "inc": ("inc_ctrl", "inc_ctrl_1", "inc_ctrl_2"),
    "det": ("det_ctrl",),
    "ext": ("ext_ctrl",),
    "amp": ("amp_ctrl",),
}
SAMPLE_TYPE_COLUMNS = ("Sample_Type", "SampleType", "sample_type", "sampletype")
ASSAY_TYPE_COLUMNS = ("Assay_Type", "AssayType", "assay_type", "assaytype")


def clean(
    adata: ad.AnnData,
    *,
    remove_invalid_oid: bool = True,
    remove_assay_na: bool = True,
    remove_dup_sample_id: bool = True,
    remove_control_sample: bool | Sequence[str] = True,
    control_sample_ids: Iterable[str] | None = None,
    remove_qc_warning: bool = True,
    remove_control_assay: bool | Sequence[str] = True,
    remove_assay_warning: bool = True,
    convert_nonunique_uniprot: bool = True,
) -> ad.AnnData:
    """Remove what OlinkAnalyze's ``clean_npx`` removes, in its order.

    The problems are those :func:`olinkpipe.io.check` finds on ``adata`` as given (as
    OlinkAnalyze runs ``check_npx`` once, before cleaning). Steps, each turned off by its
    keyword (OlinkAnalyze's argument names):

    1. ``remove_invalid_oid``: assays whose OlinkID is not valid;
    2. ``remove_assay_na``: assays with no value in any sample;
    3. ``remove_dup_sample_id``: **every** row of a SampleID measured twice on one assay;
    4. ``remove_control_sample``: samples whose sample type (the export's ``SampleType`` /
       ``Sample_Type`` column) is a control type: all of them (``True``) or the groups
       named (``"sc"``, ``"pc"``, ``"nc"``, ``"calibrator"``, ``"other"``);
    5. ``control_sample_ids``: the samples listed (by SampleID);
    6. ``remove_qc_warning``: measurements whose sample QC (``QC_Warning`` / ``SampleQC``)
       contains "fail" (any case). Only these measurements go, as in OlinkAnalyze (a
       sample failing on one panel keeps its other panels): their NPX becomes NaN, and a
       sample left with no measurement is removed. A Target 96 ``Warning`` is not a fail
       and stays, as in OlinkAnalyze;
    7. ``remove_control_assay``: control assays by the export's ``AssayType`` column: all
       (``True``) or the groups named (``"inc"``, ``"det"``, ``"ext"``, ``"amp"``);
    8. ``remove_assay_warning``: measurements whose ``Assay_Warning`` / ``AssayQC``
       contains "warn" (any case): the whole assay where the warning is per assay, else
       those measurements (NaN), the assay removed when none is left;
    9. ``convert_nonunique_uniprot``: an OlinkID listed with several UniProts gets the
       first one (in sample order) in ``var["UniProt"]`` and the ``UniProt`` code layer is
       dropped.

    Every removal is recorded in ``uns["olinkpipe"]["excluded"]`` (``step="clean"``;
    measurements set to NaN with ``kind="measurement"``, one row per sample and step) and
    warned about. As OlinkAnalyze works on rows, a sample or assay left without any
    measurement by these steps is removed too (recorded as "no measurement left").

    Differences from OlinkAnalyze, by design of the data model: as OlinkAnalyze,
    control samples and assays are recognised only from a sample / assay type column of
    the export; when the export had none (the reader then guesses the type from the name,
    e.g. ``CONTROL_SAMPLE_AS 1``), they are kept with a warning, as OlinkAnalyze informs;
    remove them with ``control_sample_ids`` or :func:`olinkpipe.pp.filter`. Removed
    measurements are NaN (the data model is a grid) where OlinkAnalyze drops the rows.
    OlinkAnalyze's column-type conversion has no counterpart (NPX is always float).

    Parameters
    ----------
    adata
        AnnData from :func:`~olinkpipe.io.read_npx`.
    remove_invalid_oid, remove_assay_na, remove_dup_sample_id, remove_qc_warning, remove_assay_warning, convert_nonunique_uniprot
        Turn the step off with False.
    remove_control_sample, remove_control_assay
        True (all control types), False, or the type groups to remove.
    control_sample_ids
        SampleIDs to remove (e.g. controls the export does not mark); absent ones are
        reported in a warning.

    Returns
    -------
    anndata.AnnData
        A new, cleaned AnnData.

    Examples
    --------
    >>> import warnings
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     out = op.pp.clean(adata)
    >>> out.n_obs < adata.n_obs
    True
    >>> sorted(out.uns["olinkpipe"]["excluded"]["kind"].unique())
    ['measurement', 'sample']
    """
    if not isinstance(adata, ad.AnnData):
        msg = f"clean expects an AnnData; got {type(adata).__name__}."
        raise ValidationError(msg)
    sample_groups = _groups("remove_control_sample", remove_control_sample, SAMPLE_TYPES)
    assay_groups = _groups("remove_control_assay", remove_control_assay, ASSAY_TYPES)
    findings = check(adata)

    def found(kind: str) -> set[str]:
        return set(findings.loc[findings["kind"] == kind, "id"])

    records: list[tuple[str, list, str]] = []  # written to the result at the end
    names = adata.var_names.astype(str)
    drop_assays = np.zeros(adata.n_vars, dtype=bool)
    for flag, kind, reason in (
        (remove_invalid_oid, "invalid_olinkid", "invalid OlinkID"),
        (remove_assay_na, "all_na_assay", "no value in any sample"),
    ):
        if flag:
            hit = names.isin(found(kind)) & ~drop_assays
            _record(records, "assay", names[hit], reason)
            drop_assays |= hit
    sids = sample_id_array(adata)
    drop_samples = np.zeros(adata.n_obs, dtype=bool)
    if remove_dup_sample_id:
        hit = np.isin(sids, list(found("duplicate_sample_id")))
        _record(records, "sample", adata.obs_names[hit], "SampleID measured twice on an assay")
        drop_samples |= hit
    hit = _control_samples(adata, sample_groups) & ~drop_samples
    _record(records, "sample", adata.obs_names[hit], "control sample (sample type)")
    drop_samples |= hit
    if control_sample_ids is not None:
        given = [control_sample_ids] if isinstance(control_sample_ids, str) else control_sample_ids
        ids = [str(i) for i in given]
        absent = sorted(set(ids) - set(sids))
        if absent:
            _utils.warn_user(f"{STEP}: control_sample_ids not in the data: {absent!r}")
        hit = np.isin(sids, ids) & ~drop_samples
        _record(records, "sample", adata.obs_names[hit], "listed in control_sample_ids")
        drop_samples |= hit
    measured = _measured(adata)
    blanked = np.zeros(adata.shape, dtype=bool)
    if remove_qc_warning:
        fail = text_mask(adata, SAMPLE_QC, "fail")
        if fail is not None:
            partial, whole = _split(fail, measured, ~drop_samples, ~drop_assays)
            _record(
                records, "sample", adata.obs_names[whole], "sample QC fail on every measurement"
            )
            _record_cells(records, partial, adata.obs_names, "sample QC fail")
            drop_samples |= whole
            blanked |= partial
    hit = _control_assays(adata, assay_groups) & ~drop_assays
    _record(records, "assay", names[hit], "control assay (assay type)")
    drop_assays |= hit
    if remove_assay_warning:
        warn = text_mask(adata, ASSAY_QC, "warn")
        if warn is not None:
            partial, whole = _split(warn.T, measured.T, ~drop_assays, ~drop_samples)
            _record(records, "assay", names[whole], "assay QC warning on every measurement")
            _record_cells(records, partial, names, "assay QC warning")
            drop_assays |= whole
            blanked |= partial.T
    # OlinkAnalyze works on rows: a sample (assay) all of whose rows went is gone too
    left = measured & ~blanked & ~drop_samples[:, None] & ~drop_assays[None, :]
    empty_s = ~drop_samples & ~left.any(axis=1)
    empty_a = ~drop_assays & ~left.any(axis=0)
    _record(records, "sample", adata.obs_names[empty_s], "no measurement left")
    _record(records, "assay", names[empty_a], "no measurement left")
    drop_samples |= empty_s
    drop_assays |= empty_a
    out = adata[~drop_samples, ~drop_assays].copy()  # the one copy
    provenance(out)
    for kind, ids, reason in records:
        _utils.exclude(out, step=STEP, kind=kind, ids=ids, reason=reason)
    gone = blanked[np.ix_(~drop_samples, ~drop_assays)]
    if gone.any():
        X = out.X
        if not (isinstance(X, np.ndarray) and X.dtype.kind == "f"):
            X = np.asarray(X, dtype=float)
        X[gone] = np.nan
        out.X = X
        for key in ("below_lod", "measured"):
            if key in out.layers:
                out.layers[key] = np.asarray(out.layers[key], dtype=bool) & ~gone
    if convert_nonunique_uniprot:
        _unify_uniprot(out)
    return out


def _record(records: list, kind: str, ids, reason: str) -> None:
    ids = [str(i) for i in ids]
    if ids:
        records.append((kind, ids, reason))


def _record_cells(records: list, partial: np.ndarray, labels, reason: str) -> None:
    """One ``measurement`` record per sample (or assay) that lost some values."""
    counts = partial.sum(axis=1)
    rows = np.flatnonzero(counts)
    ids = [f"{labels[i]}: {int(counts[i])} value(s)" for i in rows]
    _record(records, "measurement", ids, f"{reason} (set to NaN)")


def _split(mask, measured, keep_rows, keep_cols) -> tuple[np.ndarray, np.ndarray]:
    """Flagged measurements of the kept rows and columns: those of rows with some
    unflagged measurement left (to blank), and the rows flagged on every one (to drop)."""
    live = measured & keep_rows[:, None] & keep_cols[None, :]
    flagged = mask & live
    n_live, n_flag = live.sum(axis=1), flagged.sum(axis=1)
    whole = keep_rows & (n_live > 0) & (n_flag == n_live)
    return flagged & ~whole[:, None], whole


def _measured(adata: ad.AnnData) -> np.ndarray:
    from ..io.convert import measured_mask

    return measured_mask(adata)


def _groups(name: str, value, table: dict[str, tuple[str, ...]]) -> list[str]:
    """The control-type values a ``remove_control_*`` argument selects (OA's rule)."""
    controls = [k for k in table if k not in ("sample", "assay")]
    if isinstance(value, bool | np.bool_):
        return [v for k in controls for v in table[k]] if value else []
    chosen = [value] if isinstance(value, str) else [str(v) for v in value]
    known = [c for c in chosen if c in table]
    if not known:
        msg = format_message(
            f"{name}: none of {chosen!r} is a type group",
            hint=f"Use True, False or some of {list(table)!r}.",
        )
        raise ValidationError(msg)
    unknown = [c for c in chosen if c not in table]
    if unknown:
        _utils.warn_user(
            f"{STEP}: {name}: unknown group(s) {unknown!r} ignored; expected some of "
            f"{list(table)!r}."
        )
    return [v for k in known for v in table[k]]


def _export_column(adata: ad.AnnData, frame: pd.DataFrame, columns, what: str) -> str | None:
    """The sample / assay type column OlinkAnalyze would use: the first of ``columns`` in
    ``frame``, provided the export had one (the reader otherwise guesses the type from the
    name, which OlinkAnalyze does not)."""
    key = first_key(frame.columns, columns)
    prov = adata.uns.get("olinkpipe", {})
    file_cols = prov.get("long_columns") if isinstance(prov, dict) else None
    if file_cols is not None and not set(map(str, file_cols)) & set(columns):
        key = None
    if key is None:
        _utils.warn_user(
            f"{STEP}: the export has no {what} type column ({', '.join(columns[:2])}); control "
            f"{what}s are not removed, as in OlinkAnalyze. Remove them by ID if needed."
        )
    return key


def _control_samples(adata: ad.AnnData, types: list[str]) -> np.ndarray:
    if not types:
        return np.zeros(adata.n_obs, dtype=bool)
    key = _export_column(adata, adata.obs, SAMPLE_TYPE_COLUMNS, "sample")
    if key is None:
        return np.zeros(adata.n_obs, dtype=bool)
    return adata.obs[key].astype(object).isin(types).to_numpy(dtype=bool)


def _control_assays(adata: ad.AnnData, types: list[str]) -> np.ndarray:
    if not types:
        return np.zeros(adata.n_vars, dtype=bool)
    key = _export_column(adata, adata.var, ASSAY_TYPE_COLUMNS, "assay")
    if key is None:
        return np.zeros(adata.n_vars, dtype=bool)
    return adata.var[key].astype(object).isin(types).to_numpy(dtype=bool)


def _unify_uniprot(adata: ad.AnnData) -> None:
    """``var["UniProt"]`` from the ``UniProt`` code layer: each assay's first UniProt in
    sample order (OlinkAnalyze keeps the first instance); the layer is dropped."""
    prov = provenance(adata)
    coded = prov.get("coded_layers", {})
    if "UniProt" not in adata.layers or not isinstance(coded, dict) or "UniProt" not in coded:
        return
    several = nonunique_uniprot(adata)
    codes = np.asarray(adata.layers["UniProt"], dtype=np.int64)
    valid = (codes >= 0) & _measured(adata)
    first = valid.argmax(axis=0)
    cats = np.asarray([str(c) for c in coded["UniProt"]], dtype=object)
    picked = codes[first, np.arange(adata.n_vars)]
    adata.var["UniProt"] = np.where(valid.any(axis=0), cats[np.maximum(picked, 0)], "")
    del adata.layers["UniProt"]
    prov["coded_layers"] = {k: v for k, v in coded.items() if k != "UniProt"}
    if several:
        shown = [f"{oid} -> {adata.var.at[oid, 'UniProt']}" for oid in list(several)[:5]]
        _utils.warn_user(
            f"{STEP}: {len(several)} OlinkID(s) had several UniProts; the first is kept: "
            + "; ".join(shown)
        )
