"""Write an olinkpipe AnnData: ``.h5ad``, or Olink long format as ``.parquet`` / ``.csv``."""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .._atomic import OutputError, atomic_path, output_error, write_h5ad
from ..errors import NPXFormatError, format_message
from .convert import to_long

__all__ = ["write", "h5ad_safe"]

_SUFFIXES = {".h5ad": "h5ad", ".parquet": "parquet", ".csv": "csv", ".tsv": "tsv", ".txt": "tsv"}


def write(adata: ad.AnnData, path: str | PathLike[str]) -> Path:
    """Write ``adata`` to ``path``; the format follows the extension.

    * ``.h5ad``: the AnnData itself (a copy made h5ad-safe by :func:`h5ad_safe`);
    * ``.parquet``: Olink long format (:func:`olinkpipe.to_long`), with the product and
      provenance as key-value metadata, as Olink Explore parquet files carry;
    * ``.csv`` (comma) or ``.tsv``/``.txt`` (tab): Olink long format, missing values as
      ``NA``.

    Parameters
    ----------
    adata
        Samples × assays AnnData as returned by :func:`olinkpipe.read_npx`.
    path
        Output file; its parent directory must exist. The file is written under a
        temporary name beside it and renamed when complete, so ``path`` is never left
        half-written (an interrupted or failed write leaves it as it was).

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    NPXFormatError
        Unsupported extension.
    OutputError
        The file cannot be written (missing folder, read-only or full disk), naming it.

    Examples
    --------
    >>> import os, tempfile
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> adata = op.io.from_long(pd.DataFrame({"SampleID": ["S1", "S2"], "OlinkID": ["OID1"] * 2,
    ...                                       "Assay": ["IL6"] * 2, "NPX": [1.5, 2.0]}))
    >>> out = op.io.write(adata, os.path.join(tempfile.mkdtemp(), "run1.h5ad"))
    >>> out.name
    'run1.h5ad'

    """
    path = Path(path)
    kind = _SUFFIXES.get(path.suffix.lower())
    if kind is None:
        msg = format_message(
            f"cannot write {path.suffix or 'files without an extension'!r}",
            file=str(path),
            hint="Use .h5ad (AnnData), .parquet, .csv or .tsv (Olink long format).",
        )
        raise NPXFormatError(msg)
    if not path.parent.is_dir():
        exc = FileNotFoundError(2, "No such file or directory")
        raise output_error(path, exc, "cannot write, its folder does not exist")
    try:
        _write(adata, path, kind)
    except OutputError:
        raise
    except OSError as exc:
        raise output_error(path, exc) from None
    return path


def _write(adata: ad.AnnData, path: Path, kind: str) -> None:
    if kind == "h5ad":
        safe = h5ad_safe(adata)
        safe.strings_to_categoricals()
        write_h5ad(safe, path)
        return
    long = to_long(adata)
    with atomic_path(path) as tmp:
        if kind == "parquet":
            table = pa.Table.from_pandas(long, preserve_index=False)
            prov = adata.uns.get("olinkpipe", {})
            meta = {str(k): str(v) for k, v in dict(prov.get("metadata", {}) or {}).items()}
            meta.setdefault("Product", str(prov.get("product", "unknown")))
            meta.setdefault("DataFileType", f"{prov.get('data_type', 'NPX')} File")
            meta["olinkpipe_reader_version"] = str(prov.get("reader_version", ""))
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), **meta})
            pq.write_table(table, tmp)
        else:
            sep = "," if kind == "csv" else "\t"
            long.to_csv(tmp, index=False, sep=sep, na_rep="NA")


def h5ad_safe(adata: ad.AnnData) -> ad.AnnData:
    """A copy of ``adata`` that ``write_h5ad`` accepts.

    Text columns of ``obs``/``var``/``obsm`` frames with missing or mixed values become
    categoricals of str; ``uns`` keeps only dicts, str, numbers, arrays and DataFrames
    (lists become arrays, ``None`` is dropped).

    Parameters
    ----------
    adata
        Any AnnData.

    Returns
    -------
    AnnData
        A sanitised copy.

    Examples
    --------
    >>> import anndata as ad, numpy as np, pandas as pd
    >>> a = ad.AnnData(np.zeros((2, 1)), obs=pd.DataFrame({"x": ["a", None]}, index=["1", "2"]))
    >>> h5ad_safe(a).obs["x"].dtype.name
    'category'
    """
    out = adata.copy()
    out.obs = _safe_frame(out.obs)
    out.var = _safe_frame(out.var)
    for key in list(out.obsm.keys()):
        if isinstance(out.obsm[key], pd.DataFrame):
            out.obsm[key] = _safe_frame(out.obsm[key]).astype(str)
    for key in list(out.layers.keys()):
        if np.asarray(out.layers[key]).dtype == object:
            out.layers[key] = np.asarray(out.layers[key], dtype=str)
    out.uns = _safe_uns(dict(out.uns))
    return out


def _safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.columns = [str(c) for c in frame.columns]
    frame.index = frame.index.astype(str)
    for c in frame.columns:
        s = frame[c]
        if s.dtype == object or isinstance(s.dtype, pd.StringDtype):
            vals = s.astype(object)
            present = vals[vals.notna()]
            if present.map(lambda v: isinstance(v, bool | np.bool_)).all() and vals.notna().all():
                frame[c] = vals.astype(bool)
                continue
            strs = vals.where(vals.isna(), vals.map(str))
            frame[c] = pd.Categorical(strs)
    return frame


def _safe_uns(value: Any) -> Any:
    if isinstance(value, dict):
        # HDF5 names cannot hold "/"
        return {str(k).replace("/", "_"): _safe_uns(v) for k, v in value.items() if v is not None}
    if isinstance(value, pd.DataFrame):
        df = value.copy()
        df.columns = [str(c) for c in df.columns]
        for c in df.columns:
            if df[c].dtype == object:
                df[c] = df[c].map(lambda v: "" if v is None else str(v))
        df.index = df.index.astype(str)
        return df
    if isinstance(value, list | tuple | set):
        arr = np.asarray(list(value), dtype=object)
        return _safe_uns(arr)
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            if all(
                isinstance(v, int | float | np.number) and not isinstance(v, bool)
                for v in value.ravel()
            ):
                return value.astype(float)
            return np.asarray(
                ["" if v is None else str(v) for v in value.ravel()], dtype=str
            ).reshape(value.shape)
        return value
    if isinstance(value, pd.Series):
        return _safe_uns(value.to_numpy())
    if isinstance(value, str | bool | int | float | np.generic):
        return value
    return str(value)
