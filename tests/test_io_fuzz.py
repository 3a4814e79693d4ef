"""Seeded fuzz test of the readers: mutated exports are read whole or refused cleanly.

Small exports (long CSV, wide CSV and xlsx, parquet, a delivery zip with its checksum, the
head of the bundled example) are mutated (truncated, bytes flipped, rows and columns
dropped or duplicated, cells blanked, delimiters and encodings swapped) and read. Every
call must either raise an :class:`~olinkpipe.errors.OlinkpipeError` that is not the
reader's last-resort wrapper (``unexpected``) or return an AnnData; where the mutation's
effect on the sample and assay sets is known (structural mutations), the AnnData must hold
exactly those samples and assays. About 20 s on one core.
"""

from __future__ import annotations

import hashlib
import io
import random
import warnings
import zipfile
from pathlib import Path

import pandas as pd
import pytest
from io_builders import make_long, wide_grid, write_wide_csv, write_wide_xlsx

import olinkpipe as op
from olinkpipe.errors import OlinkpipeError

EXAMPLE = Path(op.__file__).parent / "datasets" / "example"
SEED = 20261206


def _long_csv(tmp: Path) -> Path:
    df = make_long(controls=True)
    path = tmp / "long.csv"
    df.to_csv(path, sep=";", decimal=",", index=False)
    return path


def _example_head(tmp: Path) -> Path:
    lines = (EXAMPLE / "npx_data.csv").read_text(encoding="utf-8").splitlines()
    path = tmp / "example_head.csv"
    path.write_text("\n".join(lines[:361]) + "\n", encoding="utf-8")
    return path


def _wide_csv(tmp: Path) -> Path:
    return write_wide_csv(tmp / "wide.csv", wide_grid(make_long(controls=False)))


def _wide_xlsx(tmp: Path) -> Path:
    return write_wide_xlsx(tmp / "wide.xlsx", wide_grid(make_long(controls=False)))


def _delivery_zip(tmp: Path) -> Path:
    data = make_long(controls=False).to_csv(sep=";", index=False).encode()
    path = tmp / "delivery.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("npx.csv", data)
        z.writestr("checksum_sha256.txt", hashlib.sha256(data).hexdigest() + "\n")
        z.writestr("README.txt", "Olink delivery")
    return path


def _parquet(tmp: Path) -> Path:
    path = tmp / "example.parquet"
    path.write_bytes((EXAMPLE / "npx_data.parquet").read_bytes())
    return path


# --- expected sample / assay sets of a long or wide text export ---------------------------


def _long_sets(text: str, sep: str) -> tuple[set[str], set[str]]:
    df = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False)
    return set(df["SampleID"][df["SampleID"] != ""]), set(df["OlinkID"][df["OlinkID"] != ""])


def _wide_sets(text: str, sep: str) -> tuple[set[str], set[str]]:
    rows = [ln.split(sep) for ln in text.splitlines()]
    i_oid = next(k for k, r in enumerate(rows) if r[0] == "OlinkID")
    i_lod = next(k for k, r in enumerate(rows) if r[0] == "LOD")
    samples = {r[0].strip() for r in rows[i_oid + 1 : i_lod] if r[0]}  # stripped, warned
    return samples, {c for c in rows[i_oid][1:] if c}


# --- mutations: (name, new bytes, whether the sets are known) -----------------------------


def _lines(data: bytes) -> list[bytes]:
    return data.split(b"\n")


def _structural(rng: random.Random, data: bytes, kind: str, sep: bytes):
    """Text-level mutations whose effect on the samples and assays is known."""
    lines = _lines(data)
    body = [k for k, ln in enumerate(lines) if ln.strip()]
    if kind == "long":
        header, data_lines = body[0], body[1:]
    else:  # wide: sample rows lie between the OlinkID row and the blank row before LOD
        i_oid = next(k for k, ln in enumerate(lines) if ln.startswith(b"OlinkID"))
        i_lod = next(k for k, ln in enumerate(lines) if ln.startswith(b"LOD"))
        header, data_lines = None, [k for k in range(i_oid + 1, i_lod) if lines[k].strip()]
    op_name = rng.choice(
        ["drop_row", "dup_row", "blank_cell", "swap_sep", "encoding", "gap", "drop_col", "dup_col"]
    )
    out = list(lines)
    if op_name in ("drop_col", "dup_col"):
        head_row = lines[header] if kind == "long" else lines[i_oid]
        j = rng.randrange(0 if kind == "long" else 1, len(head_row.split(sep)))
        out = [_edit_column(ln, sep, j, drop=op_name == "drop_col") for ln in out]
        ids = _id_fields(lines[header], sep) if kind == "long" else set()
        # a dropped SampleID / OlinkID column: only a clean error is acceptable
        return op_name, b"\n".join(out), not (op_name == "drop_col" and j in ids)
    if op_name == "drop_row":
        del out[rng.choice(data_lines)]
    elif op_name == "dup_row":
        k = rng.choice(data_lines)
        out.insert(k, out[k])
    elif op_name == "blank_cell":
        k = rng.choice(data_lines)
        cells = out[k].split(sep)
        skip = {0} if kind == "wide" else _id_fields(lines[header], sep)
        j = rng.choice([i for i in range(len(cells)) if i not in skip])
        cells[j] = b""
        out[k] = sep.join(cells)
    elif op_name == "gap" and kind == "wide":
        out.insert(rng.choice(data_lines[1:]), b"")
    elif op_name == "swap_sep":
        other = b"\t" if sep != b"\t" else b"|"
        out = [ln.replace(sep, other) for ln in out]
    elif op_name == "encoding":
        text = b"\n".join(out).decode("utf-8")
        enc = rng.choice(["utf-16", "cp1252", "utf-8-sig"])
        return op_name, text.encode(enc, errors="replace"), True
    return op_name, b"\n".join(out), True


def _edit_column(line: bytes, sep: bytes, j: int, *, drop: bool) -> bytes:
    cells = line.split(sep)
    if j < len(cells):
        if drop:
            del cells[j]
        else:
            cells.insert(j, cells[j])
    return sep.join(cells)


def _id_fields(header: bytes, sep: bytes) -> set[int]:
    names = [h.strip(b'"') for h in header.split(sep)]
    return {i for i, h in enumerate(names) if h in (b"SampleID", b"OlinkID")}


def _bytewise(rng: random.Random, data: bytes):
    """Byte-level damage: nothing is known about the result but its type."""
    op_name = rng.choice(["truncate", "flip", "flip_many", "zero_block"])
    buf = bytearray(data)
    if op_name == "truncate":
        return op_name, bytes(buf[: rng.randrange(1, len(buf))]), False
    n = 1 if op_name == "flip" else rng.randint(2, 20)
    if op_name == "zero_block":
        k = rng.randrange(len(buf))
        buf[k : k + rng.randint(1, 64)] = bytes(min(64, len(buf) - k))[: len(buf[k : k + 64])]
        return op_name, bytes(buf), False
    for _ in range(n):
        buf[rng.randrange(len(buf))] = rng.randrange(256)
    return op_name, bytes(buf), False


def _check(path: Path, expected: tuple[set[str], set[str]] | None, what: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a fuzzed file may warn about anything
        try:
            adata = op.read_npx(path)
        except OlinkpipeError as err:
            assert not getattr(err, "unexpected", False), f"{what}: {err!r}"
            assert str(path) in str(err), f"{what}: the message does not name the file: {err}"
            return
        except Exception as err:  # noqa: BLE001 - the assertion is the point
            pytest.fail(f"{what}: raw {type(err).__name__}: {err}")
    assert adata.n_obs > 0 and adata.n_vars > 0, what
    if expected is not None:
        samples, assays = expected
        got = set(adata.obs["SampleID"].astype(str))
        assert got == samples, f"{what}: samples {sorted(samples ^ got)[:5]} differ"
        assert set(adata.var_names) == assays, f"{what}: assays differ"


BASES = {
    "long": (_long_csv, "long", b";", 150),
    "example_head": (_example_head, "long", b";", 60),
    "wide_csv": (_wide_csv, "wide", b";", 150),
    "wide_xlsx": (_wide_xlsx, None, None, 80),
    "zip": (_delivery_zip, None, None, 150),
    "parquet": (_parquet, None, None, 60),
}


@pytest.mark.parametrize("base", list(BASES))
def test_mutated_exports_read_whole_or_refused(tmp_path, base):
    make, kind, sep, n = BASES[base]
    src = make(tmp_path)
    data = src.read_bytes()
    rng = random.Random(f"{SEED}-{base}")
    for i in range(n):
        structural = kind is not None and rng.random() < 0.6
        if structural:
            name, mutated, known = _structural(rng, data, kind, sep)
        else:
            name, mutated, known = _bytewise(rng, data)
        path = tmp_path / f"m{i}{src.suffix}"
        path.write_bytes(mutated)
        expected = None
        if structural and known:
            text = mutated.decode("utf-8") if name != "encoding" else data.decode("utf-8")
            use_sep = sep.decode()
            if name == "swap_sep":
                use_sep = "\t" if use_sep != "\t" else "|"
            expected = (_long_sets if kind == "long" else _wide_sets)(text, use_sep)
        _check(path, expected, f"{base} #{i} {name}")
