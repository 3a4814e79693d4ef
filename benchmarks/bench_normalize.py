"""Bridge-normalization speed: olinkpipe vs the floor of one vectorised ``numpy.nanmedian``.

Two simulated projects of 3,000 assays × 2,000 samples share 50 bridge samples (10% NaN).
Prints the time of ``pp.bridge_normalize`` (checks, alignment, factor, shifting NPX and
LOD, building the stacked AnnData) and its ratio to a single ``np.nanmedian`` over the
bridge block of paired differences, the least any implementation must do. Target <= 5.

Run: ``python benchmarks/bench_normalize.py``
"""

from __future__ import annotations

import time
import warnings

import anndata as ad
import numpy as np
import pandas as pd

import olinkpipe as op
from olinkpipe.pp import _pair, _utils

N_SAMPLES, N_ASSAYS, N_BRIDGE, REPEATS = 2_000, 3_000, 50, 3


def project(rng: np.random.Generator, name: str, shift: np.ndarray) -> ad.AnnData:
    X = rng.normal(5, 2, (N_SAMPLES, N_ASSAYS)) + shift
    X[rng.random(X.shape) < 0.1] = np.nan
    ids = [f"B{i}" for i in range(N_BRIDGE)] + [f"{name}_{i}" for i in range(N_SAMPLES - N_BRIDGE)]
    obs = pd.DataFrame({"SampleID": ids, "SampleType": "SAMPLE", "is_control": False}, index=ids)
    var = pd.DataFrame(
        {"Assay": [f"G{j}" for j in range(N_ASSAYS)], "Panel": "Explore"},
        index=pd.Index([f"OID{j:05d}" for j in range(N_ASSAYS)], name="OlinkID"),
    )
    lod = np.full(X.shape, 1.0) + shift
    return ad.AnnData(X=X, obs=obs, var=var, layers={"lod": lod}, uns={"olinkpipe": {}})


def best_of(fn, repeats: int = REPEATS) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    rng = np.random.default_rng(0)
    ref = project(rng, "r", np.zeros(N_ASSAYS))
    other = project(rng, "o", rng.normal(0, 0.5, N_ASSAYS))
    bridges = [f"B{i}" for i in range(N_BRIDGE)]

    def ours():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return op.pp.bridge_normalize(ref, other, bridges)

    def floor():
        diff = ref.X[:N_BRIDGE] - other.X[:N_BRIDGE]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return np.nanmedian(diff, axis=0)

    def factor_only():
        rows_r = _utils.resolve_samples(ref, bridges, what="b", project="P1")
        rows_o = _utils.resolve_samples(other, bridges, what="b", project="P2")
        cols_r, cols_o, _ = _pair.align_assays(ref, other, step="b", projects=("P1", "P2"))
        diff = ref.X[np.ix_(rows_r, cols_r)] - other.X[np.ix_(rows_o, cols_o)]
        return np.nan_to_num(_utils.nanmedian0(diff))

    def write_floor():
        # the unavoidable output: two stacked samples x assays arrays (NPX and LOD)
        for a, b in ((ref.X, other.X), (ref.layers["lod"], other.layers["lod"])):
            out = np.empty((2 * N_SAMPLES, N_ASSAYS))
            out[:N_SAMPLES] = a
            np.add(b, 0.5, out=out[N_SAMPLES:])

    result = ours()
    expected = floor()
    np.testing.assert_array_equal(result.var["Adj_factor"].to_numpy(), np.nan_to_num(expected))
    t_ours, t_floor = best_of(ours), best_of(floor)
    t_factor, t_write = best_of(factor_only), best_of(write_floor)
    print(
        f"bridge_normalize: 2 x {N_SAMPLES} samples x {N_ASSAYS} assays, {N_BRIDGE} bridges "
        f"(best of {REPEATS})"
    )
    print(f"  olinkpipe.pp.bridge_normalize : {t_ours * 1e3:8.1f} ms")
    print(f"  np.nanmedian over bridge block: {t_floor * 1e3:8.1f} ms")
    print(f"  factor kernel (lookup, align, nanmedian): {t_factor * 1e3:8.1f} ms")
    print(f"  writing the stacked NPX + LOD arrays:      {t_write * 1e3:8.1f} ms")
    print(f"  ratio end-to-end / nanmedian:           {t_ours / t_floor:6.2f} (target <= 5)")
    print(f"  ratio factor kernel / nanmedian:        {t_factor / t_floor:6.2f}")
    print(f"  ratio end-to-end / (nanmedian + write): {t_ours / (t_floor + t_write):6.2f}")


if __name__ == "__main__":
    main()
