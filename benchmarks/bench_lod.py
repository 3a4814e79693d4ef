"""Time and peak memory of ``pp.compute_lod`` with OlinkAnalyze's rules (issue 17).

A simulated Explore HT / Reveal study: ``n`` samples on 96-well plates (each plate: 80
samples, 12 negative controls, 4 plate controls), ``p`` assays on one panel in 8 blocks,
each block with an extension control; the layers an HT export gives (``Count``,
``ExtNPX``, ``PCNormalizedNPX``, ``qc_warning``); half the assays intensity-normalized, a
quarter with low negative-control counts (a count-based LOD).

Compared in one run, ``copy=False`` (so only the step's own arrays count):

- ``oa``: the default, OlinkAnalyze's rules (count-aware, per-plate intensity median);
- ``old``: ``count_rule=False, intensity_median="all"`` (olinkpipe's earlier rule: one
  NC table, one median over all samples) — the floor the new rules are measured against.

Peaks are tracemalloc's (numpy reports its buffers) above the start of the step, as a
multiple of the float64 NPX matrix; the result layer itself is one X.

Run: ``python benchmarks/bench_lod.py [n_samples n_assays]`` (default 2,400 × 3,000).
"""

from __future__ import annotations

import gc
import sys
import time
import tracemalloc
import warnings

import anndata as ad
import numpy as np
import pandas as pd

import olinkpipe as op


def simulate(n: int, p: int, *, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    per_plate = ["SAMPLE"] * 80 + ["NEGATIVE_CONTROL"] * 12 + ["PLATE_CONTROL"] * 4
    stype = np.array([per_plate[i % 96] for i in range(n)], dtype=object)
    plate = np.array([f"Plate{i // 96 + 1}" for i in range(n)], dtype=object)
    base = rng.normal(4, 1.5, p)
    pc = base + rng.normal(0, 1, (n, p))
    nc = stype == "NEGATIVE_CONTROL"
    pc[nc] = base - 3 + rng.normal(0, 0.4, (nc.sum(), p))
    X = pc - np.median(pc[stype == "SAMPLE"], axis=0)
    X[rng.random(X.shape) < 0.02] = np.nan
    count = rng.integers(200, 5000, (n, p)).astype(float)
    low = rng.random(p) < 0.25
    count[np.ix_(nc, low)] = rng.integers(1, 100, (nc.sum(), low.sum()))
    n_blocks = 8
    block = np.repeat(np.arange(1, n_blocks + 1), -(-p // n_blocks))[:p].astype(str)
    ext = np.r_[np.flatnonzero(np.r_[True, block[1:] != block[:-1]])]
    atype = np.full(p, "assay", dtype=object)
    atype[ext] = "ext_ctrl"
    count[:, ext] = rng.integers(5000, 20000, (n, len(ext)))
    ids = [f"S{i}" for i in range(n)]
    obs = pd.DataFrame(
        {"SampleID": ids, "SampleType": stype, "PlateID": plate, "QC_Warning": "PASS"},
        index=ids,
    )
    var = pd.DataFrame(
        {
            "Panel": "Explore_HT",
            "Block": block,
            "AssayType": atype,
            "is_control": atype != "assay",
            "Normalization": np.where(rng.random(p) < 0.5, "Intensity", "Plate control"),
            "DataAnalysisRefID": "D1",
        },
        index=pd.Index([f"OID{j:05d}" for j in range(p)], name="OlinkID"),
    )
    layers = {
        "Count": count,
        "ExtNPX": pc - 2 + rng.normal(0, 0.2, (n, p)),
        "PCNormalizedNPX": pc,
        "qc_warning": np.zeros((n, p), dtype=bool),
    }
    return ad.AnnData(X=X, obs=obs, var=var, layers=layers)


def measure(adata: ad.AnnData, **kwargs) -> tuple[float, float]:
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        op.pp.compute_lod(adata, copy=False, **kwargs)
    elapsed = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return elapsed, peak / adata.X.nbytes


def main(n: int = 2400, p: int = 3000) -> None:
    adata = simulate(n, p)
    print(f"{n} samples × {p} assays, X = {adata.X.nbytes / 2**20:.0f} MiB")
    old_t, old_m = measure(adata, count_rule=False, intensity_median="all")
    oa_t, oa_m = measure(adata)
    n_count = adata.uns["olinkpipe"]["lod"]["n_count_based"]
    print(f"old rule : {old_t:6.2f} s, peak {old_m:.2f} × X")
    print(f"OA rules : {oa_t:6.2f} s, peak {oa_m:.2f} × X ({n_count} count-based assays)")
    print(f"ratio OA / old: time {oa_t / old_t:.2f} ×, peak {oa_m / old_m:.2f} ×")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
