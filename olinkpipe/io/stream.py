"""Streaming long reader: Explore parquet by row group, long CSV by block, into preallocated
matrices, with the same result as :func:`olinkpipe.io.convert.from_long` bit for bit.

The long table is never held whole nor pivoted. Three passes over the file read only what
each needs:

A. the key columns (SampleID, OlinkID, Panel): the samples, assays and panels, in the order
   :func:`~olinkpipe.io.convert.from_long` gives them (dictionary order, unused entries
   dropped);
B. the keys and every non-measurement column: which rows exist (the ``measured`` mask), the
   plate and QC per sample and panel, and whether each other column is constant per sample
   (``obs``), per assay (``var``) or neither (a layer); the LOD per plate and assay (the
   plate table, :mod:`olinkpipe._layout`);
C. the keys and the measurement columns (NPX, a LOD that is not a plate table, other
   per-cell columns): scattered straight into samples × assays arrays. The in-memory
   read does B and C in one pass.

Each batch's dictionary indices are mapped to the final sample and assay codes through one
small lookup per distinct dictionary. With ``chunks=`` pass C runs later, one dask task per
block of assays, reading only the row groups that hold those assays.

The parts: :mod:`~olinkpipe.io._stream_source` (where the rows come from),
:mod:`~olinkpipe.io._stream_track` (per-batch codes and constancy trackers),
:mod:`~olinkpipe.io._stream_scan` (passes A and B), and this module (pass C, the AnnData
and the entry points used by ``read_npx``).

Anything unusual is left to the in-memory reader, which gives the same answer or the right
error: a value or LOD column stored as text (markers such as ``> ULOQ``), infinite values,
missing identifiers, panels or plates, IDs that differ only by spaces, an OlinkID on two
panels or with two names, a SampleID on two plates within a panel, a (sample, assay) pair
that occurs twice, QC that varies within a sample's panel, or any parse error.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import pyarrow as pa

from .._layout import LOD_KEY, code_dtype, compact_lod
from .._provenance import provenance
from . import _layers
from ._stream_scan import StreamPlan, scan
from ._stream_source import (
    Fallback,
    Source,
    _metadata,  # noqa: F401 - used as stream._metadata
    _prefetch,  # noqa: F401 - used as stream._prefetch
    _refuse_odd_columns,
    _refuse_odd_types,
    csv_source,
    parquet_files,
    parquet_source,
    release_arrow,
)
from ._stream_track import _values
from ._util import warn_user
from .convert import (
    VALUE_ALIASES,
    _Column,
    _is_pass,
    _join_rows,
    _present_from_plates,
    _reader_version,
    build_var,
    guess_product,
    obs_frame,
)

__all__ = [
    "Fallback",
    "Source",
    "StreamPlan",
    "auto_block",
    "build",
    "csv_source",
    "needs_measured",
    "parquet_files",
    "parquet_source",
    "read_all",
    "read_values",
    "release_arrow",
    "scan",
    "try_csv",
    "try_parquet",
]

logger = logging.getLogger("olinkpipe")


# ------------------------------------------------------------------------------------------
# pass C: the per-cell values of a block of assays
# ------------------------------------------------------------------------------------------


def read_values(
    plan: StreamPlan, lo: int = 0, hi: int | None = None, names: list[str] | None = None
) -> dict[str, np.ndarray]:
    """X, LOD and the other per-cell columns for assays ``lo:hi`` (samples × assays each).

    Reads only the units that hold those assays; text layers hold their category codes.
    """
    hi = plan.n_assay if hi is None else hi
    width = hi - lo
    roles, dicts = plan.roles, plan.dicts
    scol, acol = roles["sample"], roles["olinkid"]
    names = plan.value_cols if names is None else names
    out: dict[str, np.ndarray] = {}
    if not names:
        return out
    for c in names:
        text = c in dicts and c not in (scol, acol)
        out[c] = np.full(
            plan.n_obs * width, -1 if text else np.nan, dtype=np.int32 if text else np.float64
        )
    units = np.flatnonzero(plan.unit_assays[:, lo:hi].any(axis=1)).tolist()
    for _, b in plan.source.batches([scol, acol, *names], units):
        s = dicts[scol].final_codes(b.column(scol))
        a = dicts[acol].final_codes(b.column(acol))
        if lo != 0 or hi != plan.n_assay:
            keep = (a >= lo) & (a < hi)
            if not keep.all():
                idx = np.flatnonzero(keep)
                s, a = s[idx], a[idx]
                b = b.take(pa.array(idx))
        cell = s.astype(np.int64) * width + (a - lo)
        for c in names:
            arr = out[c]
            if arr.dtype == np.int32:
                arr[cell] = dicts[c].final_codes(b.column(c))
            else:
                v = _values(b.column(c))
                if c in (roles["value"], roles["lod"]) and np.isinf(v).any():
                    msg = "infinite values"
                    raise Fallback(msg)
                arr[cell] = v
    return {c: v.reshape(plan.n_obs, width) for c, v in out.items()}


# ------------------------------------------------------------------------------------------
# the AnnData (same construction as from_long)
# ------------------------------------------------------------------------------------------


def read_all(plan: StreamPlan, *, file: str, product: str | None, data_format: str) -> ad.AnnData:
    """Pass C over the whole file and the AnnData, as :func:`from_long` builds it."""
    vals = plan.prefilled
    plan.prefilled = {}
    rest = [c for c in plan.value_cols if c not in vals]
    if rest:
        vals.update(read_values(plan, names=rest))
    roles = plan.roles
    X = vals.pop(roles["value"])
    if not np.isfinite(X).any():
        warn_user(
            f"{file or 'long table'}: column {roles['value']!r} holds no numeric value at all "
            "(every value is missing); check that this is the right column and file"
        )
    layers: dict[str, np.ndarray] = {}
    if plan.lod_table is None:  # the full LOD (the plate table is stored by build)
        layers["lod"] = vals.pop(roles["lod"]) if roles["lod"] else np.full(X.shape, np.nan)
    for c in plan.layer_cols:  # text codes as the in-memory reader gives them
        layers[c] = vals.pop(c)
        if c in plan.coded:
            layers[c] = layers[c].astype(np.int32, copy=False)
    return build(plan, X, layers, file=file, product=product, data_format=data_format)


def build(
    plan: StreamPlan,
    X: Any,
    layers: dict[str, Any],
    *,
    file: str,
    product: str | None,
    data_format: str,
    derived: bool = True,
) -> ad.AnnData:
    """obs, var, obsm, uns and the derived layers around ``X`` and the value layers.

    With ``derived`` the ``measured`` layer (when not the default) is computed here; the
    dask path passes it in ``layers`` instead. Code layers get the smallest int dtype; a
    LOD constant per assay and plate becomes the plate table (:mod:`olinkpipe._layout`);
    ``qc_warning`` and ``below_lod`` are computed on demand, not stored.
    """
    roles, columns = plan.roles, plan.columns
    types = plan.source.types
    dtypes = {c: _Column(c, pa.chunked_array([], type=types[c])).pandas_dtype for c in columns}
    _n_obs, n_assay = plan.n_obs, plan.n_assay
    panel_names = [str(p) for p in plan.panel_uni]
    qc_mat, plate_mat = plan.qc_mat, plan.plate_mat
    obsm = {
        "PlateID": pd.DataFrame(plate_mat.astype(str), columns=panel_names),
        "QC_Warning": pd.DataFrame(qc_mat.astype(str), columns=panel_names),
    }
    # --- obs ------------------------------------------------------------------------------
    sample_names = plan.sample_uni.astype(object)
    is_pass_op = _is_pass(qc_mat.ravel()).reshape(qc_mat.shape)
    plates_joined = _join_rows(plate_mat, plate_mat != "", "")
    qc_joined = _join_rows(qc_mat, ~is_pass_op, "PASS")
    index = np.asarray([str(x) for x in sample_names], dtype=object)
    if len(set(index)) != len(index):
        msg = "sample names not unique as text"
        raise Fallback(msg)
    obs_index = pd.Index(index, dtype=object, name=None)
    obs = obs_frame(
        sample_names, obs_index, plan.obs_cols, dtypes, plates_joined, qc_joined, is_pass_op
    )
    for m in obsm.values():
        m.index = obs.index
    # --- var ------------------------------------------------------------------------------
    var_cols = dict(plan.var_cols)
    a_uni = plan.assay_uni
    var = build_var(var_cols, roles, a_uni, plan.panel_uni[plan.assay_panel], dtypes)
    # --- derived layers -------------------------------------------------------------------
    if derived:
        layers.update(_derived(plan, 0, n_assay))
    for c, cats in plan.coded.items():
        if c in layers and isinstance(layers[c], np.ndarray):
            layers[c] = layers[c].astype(code_dtype(len(cats)), copy=False)
    adata = ad.AnnData(X=X, obs=obs, var=var, layers=layers, obsm=obsm)
    prov = provenance(adata)
    prov.update(
        {
            "source": [str(file)] if file else [],
            "format": data_format,
            "product": product or guess_product(columns, var, plan.source.metadata),
            "data_type": VALUE_ALIASES.get(roles["value"], "NPX"),
            "reader_version": _reader_version(),
            "metadata": {str(k): str(v) for k, v in plan.source.metadata.items()},
            "long_columns": list(columns),
            "columns": {k: v for k, v in roles.items() if v is not None},
            "dtypes": dtypes,
            "coded_layers": plan.coded,
            "row_order": plan.row_order,
        }
    )
    _layers.record(adata, plan.keep, plan.left_out)
    if plan.lod_table is not None:  # what compact_lod makes of the full LOD
        table, labels = plan.lod_table
        adata.varm[LOD_KEY] = table
        adata.uns.setdefault("olinkpipe", {})["lod_plates"] = list(labels)
    elif LOD_KEY in adata.layers:  # as from_long: a LOD constant per assay and plate
        compact_lod(adata)
    return adata


def _derived(plan: StreamPlan, lo: int, hi: int) -> dict[str, np.ndarray]:
    """``measured`` for assays lo:hi, when it differs from the default."""
    if needs_measured(plan):
        return {"measured": plan.measured[:, lo:hi]}
    return {}


def needs_measured(plan: StreamPlan) -> bool:
    """Does ``measured`` differ from the default (sample has a plate on the assay's panel)?"""
    cached = getattr(plan, "_needs_measured", None)
    if cached is None:
        present = _present_from_plates(plan.plate_mat)
        cached = False
        on_panel = plan.on_panel.reshape(present.shape)
        if not (on_panel & ~present).any():  # measured cells lie where present: count them
            per_panel = np.bincount(plan.assay_panel, minlength=present.shape[1])
            cached = plan.n_rows != int(present.sum(axis=0) @ per_panel)
            plan._needs_measured = cached  # type: ignore[attr-defined]
            return cached
        for k in range(present.shape[1]):  # panel by panel: no full-size temporary
            cols = np.flatnonzero(plan.assay_panel == k)
            if not np.array_equal(
                plan.measured[:, cols], np.repeat(present[:, [k]], len(cols), 1)
            ):
                cached = True
                break
        plan._needs_measured = cached  # type: ignore[attr-defined]
    return cached


def check_names(plan: StreamPlan, name: str) -> None:
    """:class:`~olinkpipe.io._layers.LayerNameError` for a ``layers=`` name that is not a
    per-cell column (the file's per-cell columns: the layers kept and left out)."""
    per_cell = [c for c in plan.layer_cols if c != plan.qc_layer] + plan.left_out
    _layers.unknown(plan.keep, per_cell, file=name)


def auto_block(n_obs: int) -> int:
    """Assays per block for ``chunks="auto"``: about 128 MiB of float64 per block."""
    return max(1, math.floor((128 << 20) / max(n_obs * 8, 1)))


# ------------------------------------------------------------------------------------------
# entry points used by read_npx
# ------------------------------------------------------------------------------------------


def try_parquet(
    paths: list[Path], name: str, opts: dict, string_columns: set[str]
) -> ad.AnnData | StreamPlan | None:
    """Stream parquet file(s); ``None`` when the in-memory reader must handle the file.

    With ``opts["chunks"]`` returns the :class:`StreamPlan` (passes A and B only).
    """
    try:
        source = parquet_source(paths, string_columns)
        lazy = opts.get("chunks") is not None
        plan = scan(source, values=not lazy, keep=opts.get("layers"))
        check_names(plan, name)
        if lazy:
            return plan
        return read_all(plan, file=name, product=opts["product"], data_format="parquet")
    except (Fallback, pa.ArrowException, OSError, UnicodeDecodeError, KeyError) as err:
        logger.debug("%s: read whole, not streamed (%s)", name, err)
        return None
    finally:
        release_arrow()


def try_csv(path: Path, name: str, info: Any, types: dict, opts: dict) -> ad.AnnData | None:
    """Stream a UTF-8 long CSV in blocks; ``None`` when the in-memory reader must read it."""
    import pyarrow.csv as pcsv

    if info.encoding != "utf-8":
        return None
    read = pcsv.ReadOptions(encoding="utf8", skip_rows=info.skip_rows, block_size=1 << 19)
    parse = pcsv.ParseOptions(delimiter=info.sep, quote_char='"', newlines_in_values=False)
    csv_opts = {"types": dict(types), "decimal": info.decimal, "read": read, "parse": parse}
    try:
        conv = pcsv.ConvertOptions(
            column_types=types,
            strings_can_be_null=True,
            decimal_point=info.decimal,
            quoted_strings_can_be_null=True,
        )
        # the schema as the streaming reader infers it (from its first block), read from
        # that block alone: opening the file would leave read-ahead blocks allocated
        with open(path, "rb") as fh:
            head = fh.read(1 << 20)
        if len(head) == 1 << 20:
            head = head[: head.rfind(b"\n") + 1]
        one = pcsv.ReadOptions(
            encoding="utf8", skip_rows=info.skip_rows, block_size=1 << 20, use_threads=False
        )
        with pcsv.open_csv(
            pa.BufferReader(head), read_options=one, parse_options=parse, convert_options=conv
        ) as reader:
            schema = reader.schema
        del reader, head
        for f in schema:  # dates stay as written (as the in-memory reader keeps them)
            t = f.type
            if pa.types.is_temporal(t) or pa.types.is_date(t) or pa.types.is_time(t):
                csv_opts["types"][f.name] = pa.string()
        ftypes = {f.name: csv_opts["types"].get(f.name, f.type) for f in schema}
        _refuse_odd_columns(list(schema.names))
        _refuse_odd_types(ftypes)
        source = csv_source(path, list(schema.names), ftypes, csv_opts)
        plan = scan(source, values=True, keep=opts.get("layers"))
        check_names(plan, name)
        return read_all(plan, file=name, product=opts["product"], data_format="long")
    except (Fallback, pa.ArrowException, OSError, UnicodeDecodeError) as err:
        logger.debug("%s: read whole, not streamed (%s)", name, err)
        return None
    finally:
        release_arrow()
