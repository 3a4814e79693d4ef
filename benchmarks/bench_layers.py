"""Benchmark: the cost of an export's extra per-cell columns, and ``read_npx(layers=...)``.

Issue 14's target: "AnnData as read ≤ 1.5 × X for an export with one value column; each
extra per-cell value column (Explore HT's Count, ExtNPX, PCNormalizedNPX) adds at most one
X, and ``read_npx(..., layers=[...])`` lets a user leave them out."

Writes a simulated Explore parquet (``op.datasets.write_large_explore``, ``--samples`` ×
``--assays``) and an Explore-HT-like copy of it with ``Count`` (int32), ``ExtNPX`` and
``PCNormalizedNPX`` (float64) added per row, row group by row group. Then reads the HT file
with ``layers=None``, ``["Count"]`` and ``[]`` (and the one-value-column file), each in a
fresh subprocess, and prints: X + layers + obsm + varm as a multiple of X, the cost per
extra column (× X), read time and peak RSS above the post-import RSS (× the matrix).

Run: ``flock /tmp/bench.lock python benchmarks/bench_layers.py [--samples 4000 --assays 2923]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRA = ("Count", "ExtNPX", "PCNormalizedNPX")


def _child(path: str, layers: str) -> dict:
    """One read in this (fresh) process."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_scale import _anndata_bytes, _reset_peak, _rss

    import olinkpipe as op

    keep = json.loads(layers)
    base = _rss()
    _reset_peak()
    t0 = time.perf_counter()
    adata = op.read_npx(path, layers=keep)
    secs = time.perf_counter() - t0
    x = adata.X.nbytes
    extra = sum(adata.layers[k].nbytes for k in adata.layers.keys() if k in EXTRA)
    return {
        "time": secs,
        "peak": (_rss("VmHWM") - base) * 2**20 / x,
        "anndata": _anndata_bytes(adata) / x,
        "extra": extra / x,
        "layers": sorted(adata.layers.keys()),
        "shape": list(adata.shape),
    }


def _run(path: Path, keep: list[str] | None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, __file__, "--child", json.dumps(keep), "--file", str(path)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"read failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _add_ht_columns(src: Path, dst: Path) -> None:
    """``src`` with Count, ExtNPX and PCNormalizedNPX per row, row group by row group."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(src)
    rng = np.random.default_rng(0)
    writer = None
    for rg in range(pf.num_row_groups):
        t = pf.read_row_group(rg)
        npx = t.column("NPX").to_numpy(zero_copy_only=False)
        t = t.append_column("Count", pa.array(rng.integers(10, 20_000, len(npx), dtype=np.int32)))
        t = t.append_column("ExtNPX", pa.array(np.round(npx + 0.5, 4)))
        t = t.append_column("PCNormalizedNPX", pa.array(np.round(npx - 0.25, 4)))
        if writer is None:
            meta = dict(pf.schema_arrow.metadata or {})
            meta[b"Product"] = b"ExploreHT"
            writer = pq.ParquetWriter(dst, t.schema.with_metadata(meta), compression="zstd")
        writer.write_table(t.replace_schema_metadata(writer.schema.metadata))
    writer.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=4_000)
    ap.add_argument("--assays", type=int, default=2_923)
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(str(args.file), args.child)))
        return
    from olinkpipe.datasets import write_large_explore

    with tempfile.TemporaryDirectory() as tmp:
        one = Path(tmp) / "explore.parquet"
        ht = Path(tmp) / "explore_ht.parquet"
        write_large_explore(one, args.samples, args.assays, seed=1)
        _add_ht_columns(one, ht)
        runs = [("one value column", one, None)]
        runs += [(f"HT layers={k!r}", ht, k) for k in (None, ["Count"], [])]
        res = {what: _run(path, keep) for what, path, keep in runs}
    n, m = res["one value column"]["shape"]
    print(f"read_npx parquet {n:,} x {m:,} (X {n * m * 8 / 2**20:.0f} MiB), fresh process each:")
    for what, r in res.items():
        print(
            f"  {what:<28} AnnData {r['anndata']:.2f} x X (extra layers {r['extra']:.2f} x X), "
            f"read {r['time']:5.1f} s, peak +{r['peak']:.2f} x X; layers {r['layers']}"
        )
    full, none = res["HT layers=None"], res["HT layers=[]"]
    per = full["extra"] / len(EXTRA)
    print(
        f"  per extra value column (Count, ExtNPX, PCNormalizedNPX): {per:.2f} x X (target "
        f"<= 1; Count is stored as float64, as the in-memory reader gives it); layers=[] "
        f"(Assay_Warning's int8 codes left out too) vs the one-value file: {none['anndata']:.2f} vs "
        f"{res['one value column']['anndata']:.2f} x X (target <= 1.5); read time "
        f"layers=[] / None = {none['time'] / full['time']:.2f}"
    )


if __name__ == "__main__":
    main()
