"""Cross-product bridging speed and memory: ``pp.bridge_normalize`` on two products vs the
same call on one product (the within-product median bridge, the peer), in one run.

Two simulated projects (Explore HT as the reference, Explore 3072 adjusted; default
600 samples × 3,000 assays each, 10 % NaN, a ``Count`` layer, 60 bridge samples, the same
OlinkIDs so the pairing step is the cheap one). Printed, times the best of 3 untraced runs,
peaks from one more run under tracemalloc:

* within-product ``bridge_normalize`` (the products set equal), ms;
* cross-product ``bridge_normalize``, ms, and the ratio to the within-product run;
* ``pp.bridgeability`` alone (vectorised statistics), ms, and per assay;
* the quantile-smoothing share (one small spline fit per assay), estimated as cross −
  within − bridgeability;
* tracemalloc peak of each end-to-end call as a multiple of one float64 X of the result
  (the result holds X, ``MedianCenteredNPX``, ``QSNormalizedNPX`` and ``Count``: 4 ×).

Measured 2026-12-06 on the shared 2-core VM (load average ~9), defaults: within-product
101 ms (peak 2.16 × X); cross-product 1589 ms (peak 5.54 × X: the result's four matrices
plus ~1.5 × temporaries) = 15.8 × within-product; bridgeability 478 ms (159 µs per assay;
the KS statistic is half of it); quantile smoothing ~1.0 s (337 µs per assay: ECDF map,
knots, batched SVD fit and prediction, blocks of assays at a time). Before batching the
spline (one lstsq per assay) the cross-product call took 3.5–3.7 s at 1,000 assays.

Run: ``python benchmarks/bench_crossproduct.py [n_samples n_assays n_bridge]``.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
import warnings

import anndata as ad
import numpy as np
import pandas as pd

import olinkpipe as op
from olinkpipe.errors import OlinkpipeWarning


def project(rng, n, m, product, shift, names):
    X = rng.normal(3, 1, size=(n, m)) * (1.1 if shift else 1.0) + shift
    X[rng.random((n, m)) < 0.1] = np.nan
    var = pd.DataFrame(
        {"Assay": [f"A{j}" for j in range(m)], "UniProt": [f"P{j:05d}" for j in range(m)]},
        index=[f"OID{j:05d}" for j in range(m)],
    )
    var["AssayType"] = "assay"
    var["is_control"] = False
    obs = pd.DataFrame({"SampleID": names}, index=names)
    obs["SampleType"] = "SAMPLE"
    obs["is_control"] = False
    a = ad.AnnData(X=X, obs=obs, var=var, layers={"Count": rng.integers(5, 3000, (n, m)) * 1.0})
    a.uns["olinkpipe"] = {"product": product}
    return a


def best(fn, k=3):
    """Best time of ``k`` untraced runs, and the tracemalloc peak of one more run."""
    times = []
    for _ in range(k):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
        del out
    tracemalloc.start()
    out = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del out
    return min(times), peak


def main(n=600, m=3000, nb=60):
    rng = np.random.default_rng(0)
    bridges = [f"B{i}" for i in range(nb)]
    ht = project(rng, n, m, "Explore HT", 0.0, bridges + [f"H{i}" for i in range(n - nb)])
    e3k = project(rng, n, m, "Explore 3072", 0.4, bridges + [f"E{i}" for i in range(n - nb)])
    same = e3k.copy()
    same.uns["olinkpipe"] = {"product": "Explore HT"}
    warnings.simplefilter("ignore", OlinkpipeWarning)
    t_in, p_in = best(lambda: op.pp.bridge_normalize(ht, same, bridges))
    t_x, p_x = best(lambda: op.pp.bridge_normalize(ht, e3k, bridges))
    t_b, _ = best(lambda: op.pp.bridgeability(ht, e3k, bridges))
    x_bytes = 2 * n * m * 8
    print(f"{n} samples x {m} assays per product, {nb} bridge samples")
    print(f"within-product bridge_normalize   {t_in * 1e3:9.1f} ms  peak {p_in / x_bytes:.2f} x X")
    print(f"cross-product bridge_normalize    {t_x * 1e3:9.1f} ms  peak {p_x / x_bytes:.2f} x X"
          f"  = {t_x / t_in:.1f} x within-product")  # fmt: skip
    print(f"bridgeability (statistics)        {t_b * 1e3:9.1f} ms  = {t_b / m * 1e6:.0f} us/assay")
    qs = t_x - t_in - t_b
    print(f"quantile smoothing (estimate)     {qs * 1e3:9.1f} ms  = {qs / m * 1e6:.0f} us/assay")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
