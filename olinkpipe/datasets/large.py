"""A streaming writer of biobank-size, Explore-like long exports (parquet or CSV).

:func:`write_large_explore` writes one long NPX export (one row per sample × assay, Olink
Explore 3072's columns) block of assays by block of assays, so memory stays at one block
whatever the size: 54,000 samples × 2,923 assays (158 M rows) in about a minute and well
under 2 GiB. Meant for benchmarks and scale tests; the CAR-T study simulator
(:func:`olinkpipe.datasets.simulate_cart_study`) is the one with a biological story.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from os import PathLike
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from .._validate import check_literal
from ..errors import DesignError
from .simulate import assay_table

__all__ = ["write_large_explore"]

PANELS = (
    "Cardiometabolic",
    "Cardiometabolic_II",
    "Inflammation",
    "Inflammation_II",
    "Neurology",
    "Neurology_II",
    "Oncology",
    "Oncology_II",
)
COLUMNS = (
    "SampleID",
    "SampleType",
    "Index",
    "OlinkID",
    "UniProt",
    "Assay",
    "MissingFreq",
    "Panel",
    "Panel_Lot_Nr",
    "PlateID",
    "QC_Warning",
    "LOD",
    "NPX",
    "Normalization",
    "Assay_Warning",
    "ExploreVersion",
)
# Explore plate: 88 study samples, 2 sample controls, 3 negative and 3 plate controls.
_CONTROLS = (("SAMPLE_CONTROL", 2), ("NEGATIVE_CONTROL", 3), ("PLATE_CONTROL", 3))
_WELLS = 96
# dictionary pages for text and few-valued numbers; NPX would only fall back to plain
_DICTIONARY = [c for c in COLUMNS if c not in ("NPX", "LOD", "MissingFreq")]
# zstd compresses the random 4-decimal NPX and LOD little and slowly: lz4 there (the
# write's largest cost), zstd elsewhere
_COMPRESSION = {c: "lz4" if c in ("NPX", "LOD") else "zstd" for c in COLUMNS}


def _dict(codes: np.ndarray, values: pa.Array) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(codes, type=pa.int32()), values)


def _design(n_samples: int, n_assays: int, rng: np.random.Generator) -> dict:
    """Samples, plates and assays: everything that is small (no matrix)."""
    n_plates = math.ceil(n_samples / _WELLS)
    well = np.arange(n_samples) % _WELLS
    plate = np.arange(n_samples) // _WELLS
    stype = np.full(n_samples, "SAMPLE", dtype=object)
    start = _WELLS - sum(k for _, k in _CONTROLS)
    for kind, k in _CONTROLS:
        stype[(well >= start) & (well < start + k)] = kind
        start += k
    plate_names = np.array([f"Plate{p + 1:04d}" for p in range(n_plates)], dtype=object)
    ids = np.empty(n_samples, dtype=object)
    study = stype == "SAMPLE"
    ids[study] = [f"S{i + 1:06d}" for i in range(int(study.sum()))]
    for k in np.flatnonzero(~study):
        ids[k] = f"CONTROL_{stype[k]}_{plate_names[plate[k]]}_{well[k] + 1}"
    known = assay_table()
    a_names = [str(a) for a in known["Assay"]] + [
        f"PROT{k:04d}" for k in range(len(known), n_assays)
    ]
    uniprot = [str(u) for u in known["UniProt"]] + [
        f"Q{k:05d}" for k in range(len(known), n_assays)
    ]
    panel = np.minimum(np.arange(n_assays) * len(PANELS) // max(n_assays, 1), len(PANELS) - 1)
    mu = rng.normal(3.0, 2.0, n_assays)
    sd = rng.uniform(0.3, 1.5, n_assays)
    gap = np.where(rng.uniform(size=n_assays) < 0.15, rng.uniform(-0.5, 1.0, n_assays), 3.0)
    # fraction expected below LOD (normal model), as Explore's MissingFreq
    z = -gap / sd
    missing = np.round(0.5 * (1 + np.vectorize(math.erf)(z / math.sqrt(2))), 4)
    qc = np.zeros((n_samples, len(PANELS)), dtype=np.int8)
    who = rng.choice(n_samples, size=max(1, n_samples // 200), replace=False)
    qc[who, rng.integers(0, len(PANELS), who.size)] = 1
    return {
        "n_plates": n_plates,
        "plate": plate.astype(np.int32),
        "well": well,
        "stype": stype,
        "ids": ids,
        "plate_names": plate_names,
        "assay": np.asarray(a_names[:n_assays], dtype=object),
        "uniprot": np.asarray(uniprot[:n_assays], dtype=object),
        "olinkid": np.asarray([f"OID{30001 + k}" for k in range(n_assays)], dtype=object),
        "panel": panel.astype(np.int32),
        "mu": mu,
        "sd": sd,
        "gap": gap,
        "missing": missing,
        "qc": qc,
        "loadings": rng.normal(0.0, 0.3, (4, n_assays)),
        "factors": rng.normal(size=(n_samples, 4)),
        "normalization": np.where(rng.uniform(size=n_assays) < 0.05, 1, 0).astype(np.int32),
    }


def _block(
    d: dict, cols: np.ndarray, rng: np.random.Generator, dicts: dict, file_format: str
) -> pa.Table:
    """All samples × the assays ``cols``, as long rows (assay-major, samples within)."""
    n_s, n_b = len(d["ids"]), len(cols)
    mu, sd = d["mu"][cols], d["sd"][cols]
    plate_eff = rng.normal(0.0, 0.1, (d["n_plates"], n_b))
    x = d["factors"] @ d["loadings"][:, cols]
    x += rng.standard_normal((n_s, n_b)) * sd
    x += mu + plate_eff[d["plate"]]
    neg = d["stype"] == "NEGATIVE_CONTROL"
    x[neg] = (mu - d["gap"][cols] - 1.0) + 0.3 * rng.standard_normal((int(neg.sum()), n_b))
    qc_cell = d["qc"][:, d["panel"][cols]]
    x += qc_cell * 0.8
    n_nan = rng.binomial(x.size, 1e-4)
    x.ravel()[rng.integers(0, x.size, n_nan)] = np.nan
    lod = (mu - d["gap"][cols]) + rng.normal(0.0, 0.1, (d["n_plates"], n_b))
    lod = np.round(lod, 4)
    warn = (rng.uniform(size=(d["n_plates"], n_b)) < 0.01).astype(np.int32)
    si = np.tile(np.arange(n_s, dtype=np.int32), n_b)
    ai = np.repeat(cols.astype(np.int32), n_s)
    pi = d["plate"][si]
    tbl = {
        "SampleID": _dict(si, dicts["SampleID"]),
        "SampleType": _dict(dicts["stype_codes"][si], dicts["SampleType"]),
        "Index": pa.array((d["well"][si] + 1).astype(np.int64)),
        "OlinkID": _dict(ai, dicts["OlinkID"]),
        "UniProt": _dict(dicts["uniprot_codes"][ai], dicts["UniProt"]),
        "Assay": _dict(ai, dicts["Assay"]),
        "MissingFreq": pa.array(d["missing"][ai]),
        "Panel": _dict(d["panel"][ai], dicts["Panel"]),
        "Panel_Lot_Nr": _dict(d["panel"][ai], dicts["Panel_Lot_Nr"]),
        "PlateID": _dict(pi, dicts["PlateID"]),
        "QC_Warning": _dict(qc_cell.T.ravel().astype(np.int32), dicts["pass_warn"]),
        "LOD": pa.array(lod.T[np.repeat(np.arange(n_b), n_s), pi]),
        "NPX": pa.array(np.round(x.T.ravel(), 4)),
        "Normalization": _dict(d["normalization"][ai], dicts["Normalization"]),
        "Assay_Warning": _dict(warn.T[np.repeat(np.arange(n_b), n_s), pi], dicts["pass_warn"]),
        "ExploreVersion": _dict(np.zeros(n_s * n_b, dtype=np.int32), dicts["ExploreVersion"]),
    }
    table = pa.table(tbl)
    if file_format == "csv":  # text, as an export writes it
        plain = [
            pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type) else f
            for f in table.schema
        ]
        table = table.cast(pa.schema(plain))
    return table


def write_large_explore(
    path: str | PathLike[str],
    n_samples: int = 54_000,
    n_assays: int = 2_923,
    *,
    seed: int = 0,
    file_format: str = "parquet",
    assays_per_block: int = 16,
    per_panel: bool = False,
    sep: str = ",",
) -> Path:
    """Write a simulated Olink Explore 3072 long export of any size, streamed by block.

    Samples sit on 96-well plates (88 study samples, 2 sample controls, 3 negative and 3
    plate controls per plate, ``SampleType``); assays on eight Explore panels. NPX is a
    per-assay mean plus four shared latent factors, a plate effect and noise (4 decimals,
    about 1 in 10,000 values missing); LOD is constant per assay and plate; a few
    (sample, panel) pairs carry a QC warning and drift up; a few (plate, assay) pairs carry
    an assay warning. Rows are ordered by assay (panel by panel), samples within, and each
    parquet row group holds ``assays_per_block`` whole assays with dictionary-encoded text
    columns, so memory is one block whatever the size.

    Parameters
    ----------
    path
        File to write (a directory when ``per_panel``).
    n_samples, n_assays
        Matrix size (controls included in ``n_samples``).
    seed
        Random seed: the same seed writes the same file.
    file_format
        ``"parquet"`` (zstd; lz4 for NPX and LOD; key-value metadata like Explore's) or
        ``"csv"``.
    assays_per_block
        Assays per written block (one parquet row group); never spans two panels.
    per_panel
        Write a directory with one parquet file per panel (one dataset).
    sep
        CSV delimiter.

    Returns
    -------
    Path
        The file (or directory) written.

    Examples
    --------
    >>> import os, tempfile
    >>> import olinkpipe as op
    >>> from olinkpipe.datasets import write_large_explore
    >>> p = write_large_explore(os.path.join(tempfile.mkdtemp(), "big.parquet"), 200, 40)
    >>> op.read_npx(p).shape
    (200, 40)
    """
    check_literal("file_format", file_format, ["parquet", "csv"])
    if n_samples < 1 or n_assays < 1 or assays_per_block < 1:
        msg = (
            f"n_samples={n_samples}, n_assays={n_assays} and assays_per_block="
            f"{assays_per_block} must all be at least 1."
        )
        raise DesignError(msg)
    if per_panel and file_format != "parquet":
        msg = "per_panel=True writes parquet files only; use file_format='parquet'."
        raise DesignError(msg)
    rng = np.random.default_rng(seed)
    d = _design(n_samples, n_assays, rng)
    stype_levels = np.array(sorted(set(d["stype"])), dtype=object)
    stype_codes = np.searchsorted(stype_levels, d["stype"]).astype(np.int32)
    uniprot_levels, uniprot_codes = np.unique(d["uniprot"].astype(str), return_inverse=True)
    uniprot_codes = uniprot_codes.astype(np.int32)
    dicts = {
        "SampleID": pa.array(d["ids"], type=pa.string()),
        "SampleType": pa.array(stype_levels, type=pa.string()),
        "stype_codes": stype_codes,
        "OlinkID": pa.array(d["olinkid"], type=pa.string()),
        # a dictionary of unique values (a few assays share a UniProt): with duplicates the
        # parquet writer falls back to plain pages, unlike an export written by Arrow
        "UniProt": pa.array(uniprot_levels, type=pa.string()),
        "uniprot_codes": uniprot_codes,
        "Assay": pa.array(d["assay"], type=pa.string()),
        "Panel": pa.array(PANELS, type=pa.string()),
        "Panel_Lot_Nr": pa.array([f"B{4405 + k:05d}" for k in range(len(PANELS))]),
        "PlateID": pa.array(d["plate_names"], type=pa.string()),
        "pass_warn": pa.array(["PASS", "WARN"]),
        "Normalization": pa.array(["Intensity", "Plate control"]),
        "ExploreVersion": pa.array(["7.0.0"]),
    }
    meta = {
        b"Product": b"Explore 3072",
        b"DataFileType": b"NPX File",
        b"Simulated": b"olinkpipe.datasets.write_large_explore",
    }
    blocks = []
    for p in range(len(PANELS)):
        on = np.flatnonzero(d["panel"] == p)
        blocks += [(p, on[i : i + assays_per_block]) for i in range(0, len(on), assays_per_block)]
    out = Path(path)
    if per_panel:
        out.mkdir(parents=True, exist_ok=True)
    writer = None
    current = -1
    # the next block is simulated in a thread while this one is encoded and written
    # (both release the GIL): the two cores share the work
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        pending = pool.submit(_block, d, blocks[0][1], rng, dicts, file_format)
        for k, (p, _cols) in enumerate(blocks):
            table = pending.result()
            if k + 1 < len(blocks):
                pending = pool.submit(_block, d, blocks[k + 1][1], rng, dicts, file_format)
            if file_format == "csv":
                if writer is None:
                    opts = pcsv.WriteOptions(delimiter=sep, quoting_style="none")
                    writer = pcsv.CSVWriter(str(out), table.schema, write_options=opts)
                writer.write_table(table)
                continue
            if per_panel and p != current:
                if writer is not None:
                    writer.close()
                writer = None
                current = p
            if writer is None:
                target = out / f"panel_{p + 1}_{PANELS[p]}.parquet" if per_panel else out
                writer = pq.ParquetWriter(
                    str(target),
                    table.schema.with_metadata(meta),
                    compression=_COMPRESSION,
                    compression_level={c: 1 for c, v in _COMPRESSION.items() if v == "zstd"},
                    use_dictionary=_DICTIONARY,
                    write_statistics=["OlinkID", "Panel"],  # SampleID's would cost a third
                )
            writer.write_table(table.replace_schema_metadata(meta), row_group_size=len(table))
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        if writer is not None:
            writer.close()
    return out
