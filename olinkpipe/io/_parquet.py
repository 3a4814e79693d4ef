"""The parquet reader: Olink Explore / Explore HT files and directories of parquet files
(streamed or wrapped lazily by :mod:`~olinkpipe.io.stream` where it can)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import IO

import anndata as ad
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import NPXFormatError, format_message
from . import _layers
from ._columns import STRING_COLUMNS
from ._stream_source import _metadata
from .convert import from_long

__all__ = ["read_parquet"]


def read_parquet(
    src: Path | IO[bytes], name: str, opts: dict, files: list[Path] | None = None
) -> ad.AnnData:
    if isinstance(src, Path):  # streamed, or None: read it whole below
        from . import stream

        got = stream.try_parquet(files or [src], name, opts, STRING_COLUMNS)
        if isinstance(got, stream.StreamPlan):
            from .lazy import lazy

            return lazy(got, opts["chunks"], file=name, product=opts["product"])
        if got is not None:
            return got
    source = str(src) if isinstance(src, Path) else src
    keep = opts.get("layers")
    skip: list[str] = []
    try:
        if keep is not None:  # measurement-level columns left out are not decoded
            names = pq.ParquetFile(str(files[0]) if files else source).schema_arrow.names
            skip = _layers.early_skip(keep, names)
        if files:  # a directory: its files as one table
            tables = [_parquet_table(str(f), skip) for f in files]
            table = pa.concat_tables(tables, promote_options="default")
            meta = _metadata([t.schema.metadata or {} for t in tables])  # what all agree on
        else:
            table = _parquet_table(source, skip)
            meta = _metadata([table.schema.metadata or {}])
    except (pa.ArrowInvalid, OSError, pa.ArrowException, UnicodeDecodeError, KeyError) as err:
        msg = format_message(
            f"truncated or corrupt parquet file ({err})",
            file=name,
            hint="Download or export the file again; its footer is missing or damaged.",
        )
        raise NPXFormatError(msg) from err
    table = table.replace_schema_metadata(None)
    try:
        adata = from_long(
            table,
            file=name,
            product=opts["product"],
            duplicates=opts["duplicates"],
            data_format="parquet",
            metadata=meta,
            row_offset=1,
            layers=keep,
        )
    except _layers.LayerNameError as err:  # name the columns not read, too
        _layers.unknown(keep, [*err.available, *skip], file=name)  # type: ignore[attr-defined]
        raise
    if skip:
        _layers.record(adata, keep, [*skip, *adata.uns["olinkpipe"]["layers"]["left_out"]])
    return adata


def _parquet_table(source: str | IO[bytes], skip: Sequence[str] = ()) -> pa.Table:
    schema = pq.ParquetFile(source).schema_arrow
    if not isinstance(source, str):
        source.seek(0)
    # text ID columns straight to dictionaries: the codes feed the pivot (string columns
    # only: a binary or nested column is named as an error later, not decoded here)
    text = [f.name for f in schema if f.name in STRING_COLUMNS and pa.types.is_string(f.type)]
    pf = pq.ParquetFile(source, read_dictionary=text)
    if not skip:
        return pf.read()
    return pf.read(columns=[f.name for f in schema if f.name not in set(skip)])
