"""Data-validity check of a read export, as OlinkAnalyze's ``check_npx``.

:func:`check` lists what OlinkAnalyze 5.0.2's ``check_npx`` reports, one row per finding;
:func:`olinkpipe.pp.clean` removes it. The helpers here read a text field wherever the
reader put it (a ``var`` or ``obs`` column, a per-panel ``obsm`` table or a per-cell code
layer) as one samples × assays mask.
"""

from __future__ import annotations

import re

import anndata as ad
import numpy as np
import pandas as pd

from ..errors import ValidationError

__all__ = ["check"]

#: OlinkAnalyze's valid OlinkID: OID and five digits, or two such joined by "_"
OLINKID = re.compile(r"^OID\d{5}$|^OID\d{5}_OID\d{5}$")
#: OlinkAnalyze's column names for each field, in its order of preference
SAMPLE_QC = ("QC_Warning", "SampleQC", "qc_warning", "sample_qc")
ASSAY_QC = ("Assay_Warning", "assay_warning", "AssayQC", "assay_qc")
PANEL_VERSION = (
    "Panel_Lot_Nr",
    "panel_lot_nr",
    "Panel_Version",
    "panel_version",
    "PanelVersion",
    "panelversion",
    "DataAnalysisRefID",
    "data_analysis_ref_id",
    "dataanalysisrefid",
)
QC_VERSION = (
    "PanelDataArchiveVersion",
    "panel_data_archive_version",
    "paneldataarchiveversion",
    "ExploreVersion",
    "explore_version",
    "exploreversion",
)
#: Data Analysis Reference IDs that need Panel Archive Version 1.5.0 or later (OA 5.0.2)
OUTDATED_DARID = re.compile(r"^D[1-8]00(07|08|10|14)$")
MIN_ARCHIVE_VERSION = (1, 5, 0)
KINDS = (
    "invalid_olinkid",
    "all_na_assay",
    "duplicate_sample_id",
    "all_na_sample",
    "assay_qc_warning",
    "nonunique_uniprot",
    "outdated_darid",
)


def check(adata: ad.AnnData) -> pd.DataFrame:
    """List the data-validity problems OlinkAnalyze's ``check_npx`` reports.

    One row per finding, with columns ``kind``, ``id`` (an OlinkID, SampleID or Data
    Analysis Reference ID) and ``detail``. The kinds, in OlinkAnalyze's order:

    - ``invalid_olinkid``: an OlinkID that is not ``OID`` + five digits (or two such joined
      by ``_``);
    - ``all_na_assay``: an assay with no value in any sample;
    - ``duplicate_sample_id``: a SampleID measured more than once on one assay (two obs
      rows ``ID@PlateID`` sharing an assay, or exact duplicate rows the reader dropped);
    - ``all_na_sample``: a SampleID with no value on any assay;
    - ``assay_qc_warning``: an assay whose ``Assay_Warning`` / ``AssayQC`` contains
      "warn" (any case) for some sample;
    - ``nonunique_uniprot``: an OlinkID listed with more than one UniProt in the export
      (the reader keeps them per measurement in the code layer ``UniProt``; ``detail``
      lists them);
    - ``outdated_darid``: a Data Analysis Reference ID (e.g. ``D10007``) exported with a
      Panel Data Archive / Explore version older than 1.5.0.

    OlinkAnalyze's column-class check has no counterpart: the reader stores NPX as floats
    and text as text.

    Parameters
    ----------
    adata
        AnnData from :func:`~olinkpipe.io.read_npx` (``docs/data_model.md``).

    Returns
    -------
    pandas.DataFrame
        Columns ``kind``, ``id``, ``detail``; empty when nothing is found.

    Examples
    --------
    >>> import numpy as np
    >>> import olinkpipe as op
    >>> adata = op.datasets.load_example().adata[:, :4].copy()
    >>> adata.X[:, 1] = np.nan
    >>> op.io.check(adata)
               kind        id                    detail
    0  all_na_assay  OID90002  no value in any sample
    """
    if not isinstance(adata, ad.AnnData):
        msg = f"check expects an AnnData; got {type(adata).__name__}."
        raise ValidationError(msg)
    rows: list[tuple[str, str, str]] = []
    names = adata.var_names.astype(str)
    for oid in names[~names.str.match(OLINKID.pattern)]:
        rows.append(("invalid_olinkid", oid, "not OID followed by five digits"))
    X = np.asarray(adata.X, dtype=float)
    nan = np.isnan(X)
    for oid in sorted(names[nan.all(axis=0)]):
        rows.append(("all_na_assay", oid, "no value in any sample"))
    for sid, detail in duplicate_sample_ids(adata).items():
        rows.append(("duplicate_sample_id", sid, detail))
    sids = sample_id_array(adata)
    all_na = pd.Series(nan.all(axis=1)).groupby(sids).all()
    for sid in sorted(all_na.index[all_na.to_numpy()]):
        rows.append(("all_na_sample", str(sid), "no value on any assay"))
    warn = text_mask(adata, ASSAY_QC, "warn")
    if warn is not None:
        for oid in sorted(names[warn.any(axis=0)]):
            rows.append(("assay_qc_warning", oid, "assay QC warning"))
    for oid, uni in nonunique_uniprot(adata).items():
        rows.append(("nonunique_uniprot", oid, ", ".join(uni)))
    for darid, version in outdated_darid(adata):
        rows.append(("outdated_darid", darid, f"archive version {version} < 1.5.0"))
    return pd.DataFrame(rows, columns=["kind", "id", "detail"]).astype(str)


def sample_id_array(adata: ad.AnnData) -> np.ndarray:
    """``obs["SampleID"]`` (else ``obs_names``) as str."""
    col = adata.obs["SampleID"] if "SampleID" in adata.obs else adata.obs_names
    return np.asarray(pd.Index(col).astype(str), dtype=object)


def duplicate_sample_ids(adata: ad.AnnData) -> dict[str, str]:
    """SampleID → detail, for SampleIDs measured twice on one assay (OA's rule)."""
    from .convert import measured_mask

    out: dict[str, str] = {}
    sids = sample_id_array(adata)
    repeated = pd.Index(sids)[pd.Index(sids).duplicated()].unique()
    if len(repeated):
        measured = measured_mask(adata)
        for sid in repeated:
            rows = np.flatnonzero(sids == sid)
            if (measured[rows].sum(axis=0) > 1).any():
                out[str(sid)] = f"{len(rows)} rows: " + ", ".join(map(str, adata.obs_names[rows]))
    prov = adata.uns.get("olinkpipe", {})
    exc = prov.get("excluded") if isinstance(prov, dict) else None
    if isinstance(exc, pd.DataFrame) and len(exc):
        dup = exc[(exc["kind"] == "measurement") & (exc["step"] == "read_npx")]
        for ident in dup["id"].astype(str):
            sid = ident.split(" / ")[0]
            out.setdefault(sid, "exact duplicate rows dropped by the reader")
    return out


def first_key(container, keys) -> str | None:
    return next((k for k in keys if k in container), None)


def text_mask(adata: ad.AnnData, keys, pattern: str) -> np.ndarray | None:
    """Samples × assays mask of the cells whose text field (the first of ``keys`` the
    object has) contains ``pattern`` (any case, as R's ``grepl(ignore.case = TRUE)``);
    None when the field is absent. Missing text never matches."""
    rx = re.compile(pattern, re.IGNORECASE)

    def hit(values) -> np.ndarray:
        vals = pd.Series(values, dtype=object)
        return vals.map(lambda v: isinstance(v, str) and bool(rx.search(v))).to_numpy(bool)

    coded = _coded(adata)
    key = first_key([k for k in adata.layers if k in coded], keys)
    if key is not None:
        lookup = np.concatenate([[False], hit(coded[key])])
        return lookup[np.asarray(adata.layers[key], dtype=np.int64) + 1]
    key = first_key(adata.var.columns, keys)
    if key is not None:
        return np.broadcast_to(hit(adata.var[key].to_numpy()), adata.shape).copy()
    key = first_key(adata.obsm.keys(), keys)
    if key is not None and isinstance(adata.obsm[key], pd.DataFrame) and "Panel" in adata.var:
        tab = adata.obsm[key]
        pans = adata.var["Panel"].astype(str).to_numpy()
        out = np.zeros(adata.shape, dtype=bool)
        for p in pd.unique(pans):
            if p in tab.columns:
                out[:, pans == p] = hit(tab[p].to_numpy())[:, None]
        return out
    key = first_key(adata.obs.columns, keys)
    if key is not None:
        return np.broadcast_to(hit(adata.obs[key].to_numpy())[:, None], adata.shape).copy()
    return None


def _coded(adata: ad.AnnData) -> dict[str, list]:
    prov = adata.uns.get("olinkpipe", {})
    coded = prov.get("coded_layers", {}) if isinstance(prov, dict) else {}
    return {k: list(v) for k, v in coded.items()} if isinstance(coded, dict) else {}


def nonunique_uniprot(adata: ad.AnnData) -> dict[str, list[str]]:
    """OlinkID → its UniProts, in order of first occurrence (obs order), for OlinkIDs with
    more than one; read from the code layer ``UniProt`` the reader keeps when UniProt
    varies within an OlinkID (a missing UniProt counts as one value, as in OA)."""
    coded = _coded(adata)
    if "UniProt" not in adata.layers or "UniProt" not in coded:
        return {}
    from .convert import measured_mask

    codes = np.asarray(adata.layers["UniProt"], dtype=np.int64)
    cats = np.asarray([str(c) for c in coded["UniProt"]] + ["NA"], dtype=object)
    measured = measured_mask(adata)
    srt = np.sort(np.where(measured, codes, -2), axis=0)  # -2: not measured, sorts first
    starts = srt != -2
    starts[1:] &= srt[1:] != srt[:-1]
    out: dict[str, list[str]] = {}
    for j in np.flatnonzero(starts.sum(axis=0) > 1):  # only the few OlinkIDs concerned
        col = codes[measured[:, j], j]
        _, first = np.unique(col, return_index=True)
        out[str(adata.var_names[j])] = [str(cats[col[i]]) for i in np.sort(first)]
    return out


def _version(text: str) -> tuple[int, ...] | None:
    parts = re.findall(r"\d+", str(text))
    return tuple(int(p) for p in parts) if parts else None


def outdated_darid(adata: ad.AnnData) -> list[tuple[str, str]]:
    """(DARID, archive version) pairs OlinkAnalyze flags as outdated."""
    qkey = first_key(adata.obs.columns, QC_VERSION) or first_key(adata.var.columns, QC_VERSION)
    pkey = first_key(adata.var.columns, PANEL_VERSION) or first_key(
        adata.obs.columns, PANEL_VERSION
    )
    if qkey is None or pkey is None:
        return []
    frame = adata.obs if qkey in adata.obs else adata.var
    pframe = adata.var if pkey in adata.var else adata.obs
    if frame is pframe:  # both per sample or both per assay: the pairs as they occur
        pairs = frame[[pkey, qkey]].dropna().astype(str).drop_duplicates()
        combos = list(pairs.itertuples(index=False, name=None))
    else:  # one per sample, one per assay: every sample meets every assay
        darids = pd.unique(pframe[pkey].dropna().astype(str))
        versions = pd.unique(frame[qkey].dropna().astype(str))
        combos = [(d, v) for d in darids for v in versions]
    out = []
    for d, v in combos:
        ver = _version(v)
        if OUTDATED_DARID.match(d) and ver is not None and ver < MIN_ARCHIVE_VERSION:
            out.append((d, v))
    return out
