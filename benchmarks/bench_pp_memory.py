"""Peak memory of each preprocessing step, as a multiple of the float64 NPX matrix.

A simulated study of 4,000 samples × 1,200 assays on 4 panels and 3 plates (5 % NaN),
with the layers a reader writes (``lod`` float, ``below_lod`` and ``qc_warning`` bool)
and 60 negative controls. Each step runs once under :mod:`tracemalloc` (numpy reports
its buffers to it), and the printed ratio is the step's peak allocation **above** what
existed before it, divided by ``X.nbytes``. The issue's target (#14, item 3): at most
one extra copy of X and of each layer, so a step that copies the object (``copy=True``)
may reach ``1 + lod (1) + two bool layers (0.25)`` = 2.25× X; with ``copy=False`` only
the temporaries remain.

The dask path is measured the same way on a dask copy (all samples × one block per
panel, ``pp._lazy.to_dask``) run on dask's default threaded scheduler, so the peak holds
the blocks being worked on plus whatever a step pulls into the client; the pipeline
qc_summary → flag_outliers → filter → normalize_plates → censor_lod is built lazily and
then computed once (``X.compute()``).

Run: ``python benchmarks/bench_pp_memory.py [n_samples n_assays]``.
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

PANELS = ("Cardiometabolic", "Inflammation", "Neurology", "Oncology")


def simulate(n: int, p: int, *, seed: int = 0) -> ad.AnnData:
    """A study shaped like an Explore export read by ``read_npx`` (panels contiguous)."""
    rng = np.random.default_rng(seed)
    n_nc = 60
    base = rng.normal(6, 2, p)
    X = base + rng.normal(0, 1, (n, p))
    X[-n_nc:] = base - 3 + rng.normal(0, 0.3, (n_nc, p))
    X[rng.random(X.shape) < 0.05] = np.nan
    ids = [f"S{i}" for i in range(n)]
    stype = np.array(["SAMPLE"] * n, dtype=object)
    stype[-n_nc:] = "NEGATIVE_CONTROL"
    stype[-n_nc - 20 : -n_nc] = "SAMPLE_CONTROL"
    plate = np.array([f"Plate{i % 3 + 1}" for i in range(n)], dtype=object)
    qc = np.where(rng.random(n) < 0.01, "WARN", "PASS").astype(object)
    obs = pd.DataFrame(
        {
            "SampleID": ids,
            "SampleType": stype,
            "is_control": stype != "SAMPLE",
            "PlateID": plate,
            "QC_Warning": qc,
            "qc_pass": qc == "PASS",
        },
        index=ids,
    )
    panel = np.repeat(PANELS, -(-p // len(PANELS)))[:p]
    var = pd.DataFrame(
        {"Assay": [f"G{j}" for j in range(p)], "Panel": panel, "Normalization": "Intensity"},
        index=pd.Index([f"OID{j:05d}" for j in range(p)], name="OlinkID"),
    )
    lod = np.repeat((base - 1.5)[None, :], n, axis=0)
    tab = pd.DataFrame({q: plate for q in PANELS}, index=ids)
    qct = pd.DataFrame({q: qc for q in PANELS}, index=ids)
    return ad.AnnData(
        X=X,
        obs=obs,
        var=var,
        layers={
            "lod": lod,
            "below_lod": X < lod,
            "qc_warning": np.repeat((qc != "PASS")[:, None], p, axis=1),
        },
        obsm={"PlateID": tab, "QC_Warning": qct},
        uns={"olinkpipe": {"product": "Explore 3072", "data_type": "NPX"}},
    )


def peak(fn) -> tuple[float, float]:
    """Peak bytes allocated above the start while ``fn`` runs, and seconds."""
    gc.collect()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = fn()
    dt = time.perf_counter() - t0
    top = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del res
    gc.collect()
    return top - base, dt


def main() -> None:
    n, p = (int(a) for a in sys.argv[1:3]) if len(sys.argv) > 2 else (4000, 1200)
    a = simulate(n, p)
    xb = a.X.nbytes
    half = n // 2
    ref, other = a[:half].copy(), a[half:].copy()
    other.X = other.X + 0.3
    bridges = list(ref.obs_names[:40])
    other_b = other.copy()
    other_b.obs_names = list(ref.obs_names[: other.n_obs])
    steps = {
        "qc_summary(by=sample)": lambda: op.pp.qc_summary(a),
        "qc_summary(by=assay)": lambda: op.pp.qc_summary(a, by="assay"),
        "flag_outliers (copy)": lambda: op.pp.flag_outliers(a),
        "flag_outliers (copy=False)": lambda: op.pp.flag_outliers(a.copy(), copy=False),
        "filter (copy)": lambda: op.pp.filter(a, min_detected=0.5),
        "filter mask (copy)": lambda: op.pp.filter(a, qc_warning="mask", min_detected=0.5),
        "normalize_plates (copy)": lambda: op.pp.normalize_plates(a),
        "compute_lod (copy)": lambda: op.pp.compute_lod(a, min_nc=10),
        "below_lod (copy)": lambda: op.pp.below_lod(a),
        "censor_lod (copy)": lambda: op.pp.censor_lod(a),
        "intensity_normalize": lambda: op.pp.intensity_normalize(ref, other),
        "bridge_normalize": lambda: op.pp.bridge_normalize(ref, other_b, bridges),
    }
    print(f"{n} samples x {p} assays; X = {xb / 2**20:.1f} MiB; ratios = peak above start / X")
    print(f"{'step':32s} {'peak/X':>7s} {'s':>7s}")
    for name, fn in steps.items():
        if "copy=False" in name:  # the copy made for the call is not the step's
            b = a.copy()
            fn2 = {
                "flag_outliers (copy=False)": lambda b=b: op.pp.flag_outliers(b, copy=False),
            }[name]
            used, dt = peak(fn2)
        else:
            used, dt = peak(fn)
        print(f"{name:32s} {used / xb:7.2f} {dt:7.2f}")
    for name, call in {
        "filter (copy=False)": lambda b: op.pp.filter(b, min_detected=0.5, copy=False),
        "normalize_plates (copy=False)": lambda b: op.pp.normalize_plates(b, copy=False),
        "compute_lod (copy=False)": lambda b: op.pp.compute_lod(b, min_nc=10, copy=False),
        "censor_lod (copy=False)": lambda b: op.pp.censor_lod(b, copy=False),
    }.items():
        b = a.copy()
        used, dt = peak(lambda b=b, call=call: call(b))
        print(f"{name:32s} {used / xb:7.2f} {dt:7.2f}")
        del b
    lazy_steps(a)


def lazy_steps(a: ad.AnnData) -> None:
    """The dask path: each step on the lazy object, then computing the result's X."""
    from olinkpipe.pp._lazy import to_dask

    xb = a.X.nbytes
    d = to_dask(a)
    print(f"dask path ({len(d.X.chunks[1])} blocks of all samples x one panel, threads):")
    state = {"d": d}
    steps = {
        "qc_summary": lambda: op.pp.qc_summary(state["d"]),
        "flag_outliers": lambda: op.pp.flag_outliers(state["d"]),
        "filter": lambda: op.pp.filter(state["d"], outliers="drop", min_detected=0.5),
        "normalize_plates": lambda: op.pp.normalize_plates(state["d"]),
        "censor_lod": lambda: op.pp.censor_lod(state["d"], how="lod"),
    }
    for name, fn in steps.items():
        res = {}

        def run(fn=fn, res=res):
            res["v"] = fn()

        used, dt = peak(run)
        if name != "qc_summary":
            state["d"] = res["v"]
        print(f"  {name:30s} {used / xb:7.2f} {dt:7.2f}")
    used, dt = peak(lambda: state["d"].X.compute())
    print(f"  {'compute X of the pipeline':30s} {used / xb:7.2f} {dt:7.2f}  (result = 1 X)")


if __name__ == "__main__":
    main()
