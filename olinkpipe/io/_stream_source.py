"""Where the streaming reader's long rows come from (:mod:`olinkpipe.io.stream`): parquet
row groups (one file or a directory's files, one dataset) or a long CSV read in blocks,
each a unit read as record batches; and the checks that leave a file to the in-memory
reader (:class:`Fallback`)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .convert import resolve_roles

__all__ = [
    "BATCH_ROWS",
    "Fallback",
    "Source",
    "csv_source",
    "parquet_files",
    "parquet_source",
    "read_ahead",
    "release_arrow",
]

BATCH_ROWS = 1 << 20
#: bytes per value assumed for a decoded column (int32 codes, float64 values, short text)
_VALUE_BYTES = 8


class Fallback(Exception):
    """The file needs the in-memory reader (see :mod:`olinkpipe.io.stream`)."""


@dataclass
class Source:
    """Where the long rows come from: ``units`` read one after another as record batches."""

    kind: str
    columns: list[str]
    types: dict[str, pa.DataType]
    units: list[Any]
    metadata: dict[str, str] = field(default_factory=dict)
    csv_opts: dict[str, Any] = field(default_factory=dict)

    def batches(
        self, columns: list[str], units: list[int] | None = None, *, ahead: int = 0
    ) -> Iterator[Any]:
        """Yield ``(unit, batch)`` for the given columns (all units when ``None``).

        With ``ahead`` parquet row groups (of at most :data:`BATCH_ROWS` rows each) are
        decoded by that many threads, ahead of the caller, and yielded in order.
        """
        todo = range(len(self.units)) if units is None else units
        if self.kind == "parquet" and ahead and len(todo) > 1 and self.unit_rows() <= BATCH_ROWS:
            yield from self._decoded_ahead(columns, list(todo), ahead)
            return
        if self.kind == "parquet":
            open_files: dict[str, pq.ParquetFile] = {}
            for u in todo:
                path, rg = self.units[u]
                pf = open_files.get(path)
                if pf is None:
                    pf = pq.ParquetFile(path, read_dictionary=self.csv_opts["dictionary"])
                    open_files[path] = pf
                for b in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[rg], columns=columns):
                    yield u, b
            return
        import pyarrow.csv as pcsv

        o = self.csv_opts
        conv = pcsv.ConvertOptions(
            column_types=o["types"],
            strings_can_be_null=True,
            decimal_point=o["decimal"],
            quoted_strings_can_be_null=True,
            include_columns=columns,
        )
        with pcsv.open_csv(
            o["path"],
            read_options=o["read"],
            parse_options=o["parse"],
            convert_options=conv,
        ) as reader:
            for b in reader:
                yield 0, b

    def unit_rows(self) -> int:
        """Rows of the largest parquet row group (a CSV: more than :data:`BATCH_ROWS`)."""
        return max(self.csv_opts.get("unit_rows", [BATCH_ROWS + 1]))

    def _decoded_ahead(self, columns: list[str], todo: list[int], ahead: int) -> Iterator[Any]:
        """Row groups decoded by ``ahead`` threads (each with its own file handles), at most
        ``ahead + 1`` of them in memory, yielded in order."""
        local = threading.local()
        dictionary = self.csv_opts["dictionary"]

        def read(u: int) -> list[Any]:
            files = getattr(local, "files", None)
            if files is None:
                files = local.files = {}
            path, rg = self.units[u]
            pf = files.get(path)
            if pf is None:
                pf = files[path] = pq.ParquetFile(path, read_dictionary=dictionary)
            return list(
                pf.iter_batches(
                    batch_size=BATCH_ROWS, row_groups=[rg], columns=columns, use_threads=False
                )
            )

        with ThreadPoolExecutor(max_workers=ahead) as pool:
            queue = deque(pool.submit(read, u) for u in todo[:ahead])
            for k, u in enumerate(todo):
                got = queue.popleft().result()
                if k + ahead < len(todo):
                    queue.append(pool.submit(read, todo[k + ahead]))
                for b in got:
                    yield u, b
                del got


def parquet_source(paths: list[Path], string_columns: set[str]) -> Source:
    """A source over one parquet file or a directory's files (one dataset, same columns)."""
    units, columns, types, metas, rows = [], None, {}, [], []
    for p in paths:
        pf = pq.ParquetFile(str(p))
        names = pf.schema_arrow.names
        if columns is None:
            columns = names
        elif names != columns:
            msg = "files with different columns"
            raise Fallback(msg)
        metas.append(pf.schema_arrow.metadata or {})
        units += [(str(p), k) for k in range(pf.metadata.num_row_groups)]
        rows += [pf.metadata.row_group(k).num_rows for k in range(pf.metadata.num_row_groups)]
    dictionary = [c for c in columns if c in string_columns]
    pf = pq.ParquetFile(str(paths[0]), read_dictionary=dictionary)
    types = {f.name: f.type for f in pf.schema_arrow}
    _refuse_odd_columns(list(types))
    _refuse_odd_types(types)
    meta = _metadata(metas)
    opts = {"dictionary": dictionary, "unit_rows": rows}
    return Source("parquet", columns, types, units, meta, opts)


def _refuse_odd_columns(columns: list[str]) -> None:
    """Columns the in-memory reader must see: an unnamed column (R's row names, a trailing
    delimiter, or values under no header: kept and warned about there) and a file whose X
    would be PCNormalizedNPX (warned about there)."""
    if any(not str(c).strip() or str(c).startswith(("Unnamed:", "...")) for c in columns):
        msg = "a column without a name"
        raise Fallback(msg)
    if resolve_roles(columns)["value"] == "PCNormalizedNPX":
        msg = "no NPX column: PCNormalizedNPX becomes X"
        raise Fallback(msg)


def _refuse_odd_types(types: dict[str, pa.DataType]) -> None:
    """true/false, binary and nested columns go to the in-memory reader, whose strict
    checks name them as errors (a bool NPX column is not a number)."""
    for name, t in types.items():
        if pa.types.is_dictionary(t):
            t = t.value_type
        if (
            pa.types.is_boolean(t)
            or pa.types.is_binary(t)
            or pa.types.is_large_binary(t)
            or pa.types.is_fixed_size_binary(t)
            or pa.types.is_nested(t)
        ):
            msg = f"column {name!r} of type {t}"
            raise Fallback(msg)


def _metadata(metas: list[dict]) -> dict[str, str]:
    """Key-value metadata (without pandas/Arrow keys) that all files agree on."""
    out: dict[str, str] | None = None
    for raw in metas:
        meta = {}
        for k, v in raw.items():
            key = k.decode("utf-8", "replace")
            if key in ("pandas", "ARROW:schema") or key.startswith("ARROW:"):
                continue
            meta[key] = v.decode("utf-8", "replace")
        out = meta if out is None else {k: v for k, v in out.items() if meta.get(k) == v}
    return out or {}


def csv_source(path: Path, columns: list[str], types: dict, opts: dict) -> Source:
    """A source over one long CSV read in blocks with ``pyarrow.csv.open_csv``."""
    return Source("csv", columns, types, [0], {}, {"path": str(path), **opts})


def _prefetch(batches: Iterator[Any]) -> Iterator[Any]:
    """Yield from ``batches``, decoding the next batch in a thread while the caller works on
    this one (Arrow's decoding and numpy both release the GIL)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(next, batches, None)
        while True:
            item = ahead.result()
            if item is None:
                return
            ahead = pool.submit(next, batches, None)
            yield item


def read_ahead(source: Source, columns: list[str], budget: int | None = None) -> Iterator[Any]:
    """``source.batches(columns)`` decoded ahead of the caller: parquet row groups by two
    threads (three row groups in memory: at most ``budget`` bytes, estimated at
    :data:`_VALUE_BYTES` per value), anything else batch by batch by one
    (:func:`_prefetch`)."""
    ahead = 2
    rows = source.unit_rows()
    if source.kind == "parquet" and len(source.units) > 1 and rows <= BATCH_ROWS:
        held = (ahead + 1) * rows * len(columns) * _VALUE_BYTES
        if budget is None or held <= budget:
            return source.batches(columns, ahead=ahead)
    return _prefetch(source.batches(columns))


def release_arrow() -> None:
    """Hand Arrow's freed memory back to the system (jemalloc/mimalloc keep it otherwise)."""
    release = getattr(pa.default_memory_pool(), "release_unused", None)
    if release is not None:
        release()


def parquet_files(path: Path) -> list[Path]:
    """The parquet files of a directory (one dataset), sorted by name."""
    return sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() == ".parquet")
