"""Patient / sample metadata: read a clinical table and join it onto ``obs``."""

from __future__ import annotations

import logging
from os import PathLike
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .._provenance import provenance
from ..errors import (
    DuplicateSampleError,
    MissingColumnError,
    NPXFormatError,
    OlinkpipeError,
    ValidationError,
    format_message,
    preview,
)
from ._util import warn_user

__all__ = ["read_clinical", "annotate"]

logger = logging.getLogger("olinkpipe")


def _id_strings(values: pd.Series) -> pd.Series:
    """IDs as stripped text; whole numbers read as floats (``1001.0``) become ``"1001"``."""

    def one(v: object) -> object:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return None
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        s = str(v).strip()
        return s or None

    return values.astype(object).map(one)


def _read_text_table(path: Path, *, sep: str | None, id_column: str) -> pd.DataFrame:
    """A delimited clinical table; the ID column as text (``007`` stays ``007``), UTF-8 or,
    failing that, Windows-1252 (with a warning)."""
    kw = {"sep": sep, "engine": "python", "dtype": {id_column: str}}
    try:
        return pd.read_csv(path, encoding="utf-8-sig", **kw)
    except UnicodeDecodeError:
        frame = pd.read_csv(path, encoding="cp1252", **kw)
        warn_user(
            f"{path}: not valid UTF-8; decoded as Windows-1252 (Western European); check names "
            "with accents, or save the file as UTF-8"
        )
        return frame


def read_clinical(
    path_or_frame: str | PathLike[str] | pd.DataFrame,
    *,
    id_column: str,
    sep: str | None = None,
    sheet: str | int = 0,
) -> pd.DataFrame:
    """Read a clinical / sample metadata table and check its ID column.

    Parameters
    ----------
    path_or_frame
        A ``.csv``/``.tsv``/``.txt`` (delimiter sniffed), ``.xlsx`` or ``.parquet`` file, or
        a DataFrame.
    id_column
        Column holding the ID to join on (a SampleID, or a subject ID when samples are
        joined by subject).
    sep
        Delimiter of a text file; sniffed when ``None``.
    sheet
        Sheet of an ``.xlsx`` file.

    Returns
    -------
    DataFrame
        The table indexed by the IDs as text (stripped; whole numbers without ``.0``),
        with ``id_column`` kept as a column.

    Raises
    ------
    MissingColumnError
        ``id_column`` is absent.
    DuplicateSampleError
        An ID occurs more than once.
    ValidationError
        Empty IDs.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> clin = op.read_clinical(pd.DataFrame({"patient": ["P1", "P2"], "dose": [1, 2]}),
    ...                         id_column="patient")
    >>> list(clin.index)
    ['P1', 'P2']
    """
    name = "clinical table"
    if isinstance(path_or_frame, pd.DataFrame):
        frame = path_or_frame.copy()
    else:
        p = Path(path_or_frame)
        name = str(p)
        if not p.exists():
            msg = format_message("file not found", file=name, hint="Check the path.")
            raise NPXFormatError(msg)
        suffix = p.suffix.lower()
        try:
            if suffix in (".xlsx", ".xlsm"):
                frame = pd.read_excel(p, sheet_name=sheet)
            elif suffix == ".parquet":
                frame = pd.read_parquet(p)
            else:
                frame = _read_text_table(p, sep=sep, id_column=id_column)
        except OlinkpipeError:
            raise
        except Exception as err:  # noqa: BLE001 - any parser's failure on a damaged file
            msg = format_message(
                f"cannot read the clinical table ({type(err).__name__}: {str(err)[:200]})",
                file=name,
                hint="Save it as CSV (UTF-8) or .xlsx and read it again.",
            )
            raise NPXFormatError(msg) from err
    frame.columns = [str(c).strip() for c in frame.columns]
    if id_column not in frame.columns:
        msg = format_message(
            f"ID column {id_column!r} not found; the columns are {list(frame.columns)[:20]!r}",
            file=name,
            hint="Pass id_column= as the name of the column holding the sample (or subject) IDs.",
        )
        raise MissingColumnError(msg)
    ids = _id_strings(frame[id_column])
    empty = np.flatnonzero(ids.isna().to_numpy())
    if empty.size:
        msg = format_message(
            "empty ID(s)",
            file=name,
            column=id_column,
            rows=[int(r) + 2 for r in empty],
            hint="Fill in the IDs or delete those rows.",
        )
        raise ValidationError(msg)
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        msg = format_message(
            f"duplicated ID(s) {preview(pd.unique(ids[dup]))}",
            file=name,
            column=id_column,
            rows=[int(r) + 2 for r in np.flatnonzero(dup)],
            hint="Each ID must occur once; merge or remove the repeated rows.",
        )
        raise DuplicateSampleError(msg)
    frame.index = pd.Index(ids.to_numpy(dtype=object), name=None)
    frame.attrs["id_column"] = id_column
    return frame


def annotate(
    adata: ad.AnnData,
    clinical: pd.DataFrame | str | PathLike[str],
    *,
    on: str = "SampleID",
    id_column: str | None = None,
    copy: bool = True,
) -> ad.AnnData:
    """Join clinical / sample metadata onto ``adata.obs``.

    Each sample's ``obs[on]`` value is looked up among the clinical IDs (text, stripped).
    Samples without metadata are kept, with NaN in the new columns; study samples without a
    record are named in a warning (control samples, which never have one, are only counted),
    and all are recorded in ``uns["olinkpipe"]["annotate"]`` together with clinical IDs that
    match no sample.
    A clinical column whose name is already in ``obs`` is added as ``<name>_clinical``.

    Parameters
    ----------
    adata
        Samples × assays AnnData as returned by :func:`olinkpipe.read_npx`.
    clinical
        Table from :func:`read_clinical` (indexed by ID), or a DataFrame / path together
        with ``id_column``.
    on
        ``obs`` column to join on (``"SampleID"``; or e.g. ``"Subject"`` to join
        patient-level data onto every sample of that patient).
    id_column
        ID column of ``clinical`` when it is not the output of :func:`read_clinical`.
    copy
        Return a new AnnData (default) and leave the input alone; with ``copy=False`` the
        input is changed in place and returned.

    Returns
    -------
    AnnData
        With the clinical columns in ``obs``.

    Raises
    ------
    MissingColumnError
        ``on`` is not an ``obs`` column, or ``id_column`` is absent.
    DuplicateSampleError
        Duplicated IDs in the clinical table.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> df = pd.DataFrame({"SampleID": ["S1", "S2"], "OlinkID": ["OID1", "OID1"],
    ...                    "Assay": ["IL6", "IL6"], "NPX": [1.5, 2.0]})
    >>> clin = pd.DataFrame({"SampleID": ["S1", "S2"], "dose": [50, 100]})
    >>> a = op.annotate(op.io.from_long(df), clin, id_column="SampleID")
    >>> a.obs["dose"].tolist()
    [50, 100]
    """
    if id_column is not None or not isinstance(clinical, pd.DataFrame):
        if id_column is None:
            msg = "annotate: pass id_column= when clinical is a file path."
            raise MissingColumnError(msg)
        clinical = read_clinical(clinical, id_column=id_column)
    else:
        ids = _id_strings(clinical.index.to_series())
        dup = ids.duplicated(keep=False).to_numpy()
        if dup.any():
            msg = format_message(
                f"duplicated ID(s) in the clinical table index: {preview(pd.unique(ids[dup]))}",
                hint="Each ID must occur once; use read_clinical(..., id_column=...) first.",
            )
            raise DuplicateSampleError(msg)
        clinical = clinical.copy()
        clinical.index = pd.Index(ids.to_numpy(dtype=object))
    if on not in adata.obs.columns:
        msg = format_message(
            f"obs has no column {on!r}; it has {list(adata.obs.columns)[:20]!r}",
            hint="Pass on= as the obs column holding the IDs used in the clinical table.",
        )
        raise MissingColumnError(msg)
    out = adata.copy() if copy else adata
    keys = _id_strings(out.obs[on])
    idcol = clinical.attrs.get("id_column", id_column)
    add = clinical.drop(columns=[c for c in (idcol,) if c in clinical.columns and c == on])
    matched = keys.isin(clinical.index).to_numpy()
    new_cols = []
    for c in add.columns:
        target = c if c not in out.obs.columns else f"{c}_clinical"
        out.obs[target] = add[c].reindex(keys.to_numpy()).to_numpy()
        new_cols.append(target)
    renamed = [str(c) for c in add.columns if c not in new_cols]
    if renamed:
        warn_user(
            f"annotate: clinical column(s) {preview(renamed)} are already in obs (from the "
            f"export), so the clinical values were added as "
            f"{preview([f'{c}_clinical' for c in renamed])}"
        )
    is_ctrl = (
        out.obs["is_control"].astype(bool).to_numpy()
        if "is_control" in out.obs
        else np.zeros(out.n_obs, dtype=bool)
    )
    missing = out.obs_names[~matched]
    missing_study = out.obs_names[~matched & ~is_ctrl]
    unused = sorted(set(clinical.index) - set(keys.dropna()))
    if len(missing_study):
        warn_user(
            f"annotate: {len(missing_study)} sample(s) and {len(missing) - len(missing_study)} "
            f"control sample(s) have no clinical record (matched on obs[{on!r}]): "
            f"{preview(list(missing_study))}"
        )
    elif len(missing):
        logger.info(
            "annotate: %d control sample(s) have no clinical record (expected)", len(missing)
        )
    prov = provenance(out)
    prov["annotate"] = {
        "on": on,
        "columns": np.asarray(new_cols, dtype=str),
        "unmatched_samples": np.asarray([str(s) for s in missing], dtype=str),
        "unused_clinical_ids": np.asarray([str(s) for s in unused], dtype=str),
    }
    return out
