"""Memory of the simulated study's AnnData (``CartStudy.to_anndata``), issue 14 item 2.

Simulates a CAR-T study (``op.datasets.simulate_cart_study``) with ``n_treated`` patients
(two samples each, plus two sample controls per plate) and ``n_assays`` assays, then
builds its AnnData once under :mod:`tracemalloc` (numpy reports its buffers to it) and
prints

- X's bytes, and the bytes of every layer, of obsm and of varm (DataFrames with their
  strings), each as a multiple of X;
- the peak allocation of ``to_anndata`` above what existed before it, as a multiple of X
  (the long frame it pivots is not counted: it exists before the call).

Run: ``python benchmarks/bench_simulate.py [n_treated n_assays]`` (default 1,000 patients
× 3,000 assays: 2,046 samples × 3,000 assays).
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc

import olinkpipe as op


def _bytes(v) -> int:
    if hasattr(v, "memory_usage"):
        return int(v.memory_usage(deep=True).sum())
    return int(v.nbytes)


def main() -> None:
    n_treated = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    n_assays = int(sys.argv[2]) if len(sys.argv) > 2 else 3000
    t0 = time.perf_counter()
    study = op.datasets.simulate_cart_study(
        seed=0, n_treated=n_treated, n_control=0, n_assays=n_assays
    )
    t_sim = time.perf_counter() - t0
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    adata = study.to_anndata()
    t_build = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    x = adata.X.nbytes
    mib = 2**20
    print(f"olinkpipe from {op.__file__}")
    print(f"{adata.n_obs:,} samples × {adata.n_vars:,} assays; X {x / mib:.1f} MiB")
    print(f"simulate_cart_study {t_sim:.2f} s; to_anndata {t_build:.2f} s")
    rows = [(f"layers[{k!r}] ({v.dtype})", _bytes(v)) for k, v in adata.layers.items()]
    rows += [(f"obsm[{k!r}]", _bytes(v)) for k, v in adata.obsm.items()]
    rows += [(f"varm[{k!r}] {v.shape}", _bytes(v)) for k, v in adata.varm.items()]
    for name, b in rows:
        print(f"  {name:<40} {b / mib:9.2f} MiB  {b / x:6.3f} × X")
    extra = sum(b for _, b in rows)
    print(f"layers + obsm + varm: {extra / mib:.1f} MiB = {extra / x:.3f} × X")
    print(f"X + layers + obsm + varm: {(x + extra) / x:.3f} × X")
    print(f"to_anndata peak allocation: {peak / mib:.1f} MiB = {peak / x:.2f} × X")


if __name__ == "__main__":
    main()
