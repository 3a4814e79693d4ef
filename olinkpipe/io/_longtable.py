"""The long table as columns of integer codes or numbers (:class:`_Column`), row groups
(:class:`_Groups`) and the table checks that come before :func:`~olinkpipe.io.convert.from_long`
builds the AnnData."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import NPXFormatError, format_message, preview


class _Column:
    """One column of the long table as integer codes (strings) or a numpy array (numbers)."""

    def __init__(self, name: str, arr: pa.ChunkedArray, file: str | None = None):
        self.name = name
        self.file = file
        self.type = arr.type
        self._arr = arr
        self._codes: np.ndarray | None = None
        self._uniques: np.ndarray | None = None
        self._values: np.ndarray | None = None

    @property
    def is_numeric(self) -> bool:
        t = self.type
        return (
            pa.types.is_integer(t)
            or pa.types.is_floating(t)
            or pa.types.is_boolean(t)
            or pa.types.is_null(t)
        )

    @property
    def pandas_dtype(self) -> str:
        t = self.type
        if pa.types.is_integer(t) or pa.types.is_floating(t):
            return np.dtype(t.to_pandas_dtype()).name
        if pa.types.is_boolean(t):
            return "bool"
        if pa.types.is_null(t):
            return "float64"
        return "object"

    def codes(self) -> tuple[np.ndarray, np.ndarray]:
        """``(codes, uniques)``: int32 codes (-1 = null), uniques as an object array of str."""
        if self._codes is None:
            arr = self._arr
            if not pa.types.is_dictionary(arr.type):
                if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
                    arr = pc.cast(arr, pa.string())
                arr = pc.dictionary_encode(arr)
            if arr.num_chunks == 0:
                self._codes = np.zeros(0, dtype=np.int64)
                self._uniques = np.array([], dtype=object)
            else:
                arr = pa.chunked_array(arr.chunks, type=arr.type).unify_dictionaries()
                dictionary = arr.chunks[0].dictionary
                if not (
                    pa.types.is_string(dictionary.type)
                    or pa.types.is_large_string(dictionary.type)
                ):
                    dictionary = pc.cast(dictionary, pa.string())
                parts = [
                    (
                        c.indices.to_numpy()
                        if c.null_count == 0
                        else pc.fill_null(c.indices, -1).to_numpy(zero_copy_only=False)
                    )
                    for c in arr.chunks
                ]
                self._codes = (
                    np.concatenate(parts).astype(np.int32, copy=False)
                    if parts
                    else np.zeros(0, dtype=np.int32)
                )
                try:
                    self._uniques = np.asarray(dictionary.to_pylist(), dtype=object)
                except UnicodeDecodeError as err:  # parquet pages are not validated on read
                    msg = format_message(
                        f"text that is not UTF-8 ({err}); the file is damaged",
                        file=self.file,
                        column=self.name,
                        hint="Export or download the file again.",
                    )
                    raise NPXFormatError(msg) from err
                # a dictionary column (pandas categorical in parquet) may list values no row
                # uses, e.g. a subset saved with pandas: keep only the used ones
                out_of_range = np.flatnonzero(self._codes >= len(self._uniques))
                if out_of_range.size:  # a damaged parquet page
                    msg = format_message(
                        f"damaged dictionary-encoded column: {out_of_range.size} value(s) point "
                        f"past its {len(self._uniques)} distinct values",
                        file=self.file,
                        column=self.name,
                        rows=(out_of_range[:5] + 1).tolist(),
                        hint="Export or download the file again.",
                    )
                    raise NPXFormatError(msg)
                used = np.zeros(len(self._uniques), dtype=bool)
                used[self._codes[self._codes >= 0]] = True
                if not used.all():
                    remap = (np.cumsum(used) - 1).astype(np.int32)
                    self._codes = np.where(self._codes >= 0, remap[self._codes], -1).astype(
                        np.int32
                    )
                    self._uniques = self._uniques[used]
        return self._codes, self._uniques

    def values(self) -> np.ndarray:
        """Numeric values as float64 (NaN = null); only for numeric columns."""
        if self._values is None:
            arr = pc.cast(self._arr, pa.float64())
            self._values = (
                arr.combine_chunks().to_numpy(zero_copy_only=False)
                if arr.num_chunks
                else np.zeros(0, dtype=np.float64)
            )
        return self._values

    def release(self) -> None:
        self._arr = None  # type: ignore[assignment]


class _Groups:
    """Row -> group codes with cached run structure for fast "constant within group" checks.

    Olink long files are sorted (assay-major), so most rows continue the previous row's
    group; only run starts need the scatter/gather.
    """

    def __init__(self, codes: np.ndarray, n_groups: int):
        self.codes = codes
        self.n = n_groups
        cont = codes[1:] == codes[:-1]
        n_runs = int(len(codes) - cont.sum()) if len(codes) else 0
        self.runs = n_runs < len(codes) // 4
        if self.runs:
            self.cont = cont
            self.starts = np.concatenate([[0], np.flatnonzero(~cont) + 1])

    def constant(self, key: np.ndarray) -> tuple[bool, np.ndarray]:
        """Is ``key`` constant within each group? Returns ``(ok, value per group)``.

        A group with no rows (a sample not run on a panel) gets NaN for float keys, -1
        (= null for integer codes) for signed integers, else 0: never uninitialised memory.
        """
        if key.dtype.kind == "f":
            first = np.full(self.n, np.nan, dtype=key.dtype)
        elif key.dtype.kind == "i":
            first = np.full(self.n, -1, dtype=key.dtype)
        else:
            first = np.zeros(self.n, dtype=key.dtype)
        if len(key) == 0:
            return True, first
        floaty = key.dtype.kind == "f"
        if self.runs:
            a, b = key[1:], key[:-1]
            same = (a == b) | (np.isnan(a) & np.isnan(b)) if floaty else a == b
            if not np.all(same | ~self.cont):
                # not constant: each group's value in its first row, so that callers can
                # name the rows that differ from it (not every row of every group)
                first[self.codes[::-1]] = key[::-1]
                return False, first
            g, k = self.codes[self.starts], key[self.starts]
        else:
            g, k = self.codes, key
        first[g[::-1]] = k[::-1]  # the first row's value where a group is not constant
        back = first[g]
        same = (back == k) | (np.isnan(back) & np.isnan(k)) if floaty else back == k
        return bool(same.all()), first


def _constant_within(group: np.ndarray, n_groups: int, key: np.ndarray) -> tuple[bool, np.ndarray]:
    """Is ``key`` constant within each group? Returns ``(ok, value per group)``."""
    return _Groups(group, n_groups).constant(key)


def _first_rows(codes: np.ndarray, n: int) -> np.ndarray:
    """Row number of the first occurrence of each code 0..n-1."""
    first = np.full(n, -1, dtype=np.int64)
    rows = np.arange(len(codes), dtype=np.int64)
    first[codes[::-1]] = rows[::-1]
    return first


def _combine(a: np.ndarray, n: int, b: np.ndarray) -> np.ndarray:
    """``a * n + b`` in int32 when it cannot overflow, else int64."""
    top = (int(a.max()) + 1) * n if len(a) else 0
    dtype = np.int32 if top < np.iinfo(np.int32).max else np.int64
    return a.astype(dtype, copy=False) * dtype(n) + b.astype(dtype, copy=False)


def _factorize(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(key, sort=False)
    return codes.astype(np.int64, copy=False), np.asarray(uniques)


def _to_table(data: pd.DataFrame | pa.Table) -> pa.Table:
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pd.DataFrame):
        frame = data.reset_index(drop=True)
        frame.columns = [str(c) for c in frame.columns]
        cols = {}
        for c in frame.columns:
            s = frame[c]
            if s.dtype == object or isinstance(s.dtype, pd.CategoricalDtype | pd.StringDtype):
                vals = s.astype(object).where(s.notna(), None)
                try:
                    cols[c] = pa.array(vals.tolist(), from_pandas=True)
                except (pa.ArrowInvalid, pa.ArrowTypeError):
                    cols[c] = pa.array(
                        [None if v is None else str(v) for v in vals.tolist()], type=pa.string()
                    )
            else:
                cols[c] = pa.array(s, from_pandas=True)
        return pa.table(cols)
    msg = f"from_long needs a pandas DataFrame or a pyarrow Table, not {type(data).__name__}."
    raise NPXFormatError(msg)


def _flat_text(table: pa.Table, *, file: str | None, lines: Any) -> pa.Table:
    """Refuse nested columns; binary columns become text when they are UTF-8, else an error
    naming the column and rows (a parquet column of raw bytes, a file's damaged bytes)."""
    nested = [f.name for f in table.schema if pa.types.is_nested(f.type)]
    if nested:
        kinds = sorted({str(table.schema.field(c).type).split("<")[0] for c in nested})
        msg = format_message(
            f"column(s) {preview(nested)} hold nested values ({', '.join(kinds)}), which an "
            "Olink export never has",
            file=file,
            hint="Flatten these columns (one value per cell) or drop them before reading.",
        )
        raise NPXFormatError(msg)
    for i, f in enumerate(table.schema):
        t = f.type
        if not (pa.types.is_binary(t) or pa.types.is_large_binary(t)):
            if not pa.types.is_fixed_size_binary(t):
                continue
        try:
            text = pc.cast(table.column(i), pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
            bad = [
                k
                for k, v in enumerate(table.column(i).to_pylist())
                if v is not None and not _is_utf8(v)
            ]
            msg = format_message(
                f"bytes that are not UTF-8 text ({err})",
                file=file,
                column=f.name,
                rows=lines(np.asarray(bad[:5])) if bad else None,
                hint="Save the file as UTF-8, or export it again.",
            )
            raise NPXFormatError(msg) from err
        table = table.set_column(i, f.name, text)
    return table


def _is_utf8(v: bytes) -> bool:
    try:
        v.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _line_numbers(rows: np.ndarray, offset: int) -> list[int]:
    return [int(r) + offset for r in rows]
