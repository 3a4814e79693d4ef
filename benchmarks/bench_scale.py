"""Benchmark: reading and the in-memory pipeline at biobank scale (issue 14, item 7).

Writes a simulated Explore 3072 long parquet (``op.datasets.write_large_explore``;
``--samples`` × ``--assays``, default 10,000 × 2,923) and a smaller long CSV
(``--csv-samples``), then measures, each in a fresh subprocess:

* ``read_npx`` of the parquet against ``pyarrow.parquet.read_table`` of the same file:
  time ratio (target ≤ 2; the CPU-time ratio too, which other jobs on the machine change
  less) and peak RSS above the post-import RSS as a multiple of the
  float64 NPX matrix (target ≤ 3); the same for the CSV against ``pyarrow.csv.read_csv``
  (target ≤ 4 × the matrix);
* the AnnData as read: X + layers + obsm + varm as a multiple of X's bytes (target ≤ 1.5);
* the pipeline read → ``pp.qc_summary`` → ``pp.flag_outliers`` → ``pp.filter`` →
  ``pp.normalize_plates`` → ``tl.differential`` (ttest, moderated), each result replacing
  the last, calling only the public API: time and peak RSS above the post-import baseline
  per step, as a multiple of the matrix (the peak is reset before each step through
  ``/proc/self/clear_refs``, Linux only).

Run: ``python benchmarks/bench_scale.py [--samples 10000 --assays 2923 --csv-samples 2000]``
(``--file PATH`` reuses a parquet written before; ``--skip csv,pipeline,read_table`` leaves
parts out).
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

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent


def _rss(field: str = "VmRSS") -> float:
    """MiB of the current (VmRSS) or peak (VmHWM) resident memory of this process."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:  # pragma: no cover - not Linux
        pass


def _anndata_bytes(adata) -> int:
    """X + layers + obsm + varm bytes (obsm/varm DataFrames with their strings)."""

    def size(v) -> int:
        if hasattr(v, "memory_usage"):
            return int(v.memory_usage(deep=True).sum())
        return int(v.nbytes)

    arrays = [adata.X, *adata.layers.values(), *adata.obsm.values(), *adata.varm.values()]
    return sum(size(v) for v in arrays)


def _child(mode: str, path: str, results: str | None = None) -> dict:
    """Run one measurement in this (fresh) process; returns the figures."""
    import olinkpipe as op  # noqa: F401 - the baseline includes the package

    if mode in ("read_table", "read_csv"):
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

    base = _rss()
    _reset_peak()
    t0, c0 = time.perf_counter(), time.process_time()
    if mode in ("read_table", "read_csv"):
        table = pq.read_table(path) if mode == "read_table" else pcsv.read_csv(path)
        return {
            "time": time.perf_counter() - t0,
            "cpu": time.process_time() - c0,
            "peak": _rss("VmHWM") - base,
            "rows": len(table),
        }
    client = None
    if mode == "dask":  # LocalCluster(2 workers x 3 GiB): read lazily, every step on workers
        from dask.distributed import Client, LocalCluster

        cluster = LocalCluster(
            n_workers=2, threads_per_worker=1, memory_limit="3GiB", dashboard_address=None
        )
        client = Client(cluster)
        base = _rss()
        _reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        adata = op.read_npx(path, chunks="auto")
    else:
        adata = op.read_npx(path)
    out = {
        "read": {
            "time": time.perf_counter() - t0,
            "cpu": time.process_time() - c0,
            "peak": _rss("VmHWM") - base,
        },
        "shape": list(adata.shape),
        "after": _rss() - base,
        "anndata": _anndata_bytes(adata) / adata.X.nbytes,
    }
    if mode not in ("pipeline", "dask"):
        return out
    adata.obs["group"] = ["case" if i % 2 else "control" for i in range(adata.n_obs)]
    steps = [
        ("qc_summary", lambda a: (op.pp.qc_summary(a), a)[1]),
        ("flag_outliers", lambda a: op.pp.flag_outliers(a)),
        ("filter", lambda a: op.pp.filter(a)),
        ("normalize_plates", lambda a: op.pp.normalize_plates(a)),
        (
            "differential ttest",
            lambda a: (
                _keep(op.tl.differential(a, groupby="group", reference="control", target="case")),
                a,
            )[1],
        ),
        (
            "differential moderated",
            lambda a: (
                _keep(
                    op.tl.differential(
                        a, groupby="group", reference="control", target="case", method="moderated"
                    )
                ),
                a,
            )[1],
        ),
    ]
    frames = {}
    for name, step in steps:
        _reset_peak()
        t0 = time.perf_counter()
        adata = step(adata)
        out[name] = {"time": time.perf_counter() - t0, "peak": _rss("VmHWM") - base}
        if name.startswith("differential"):
            frames[name] = _last_frame.pop()
    out["final_shape"] = list(adata.shape)
    if results:  # the result frames, compared between the in-memory and dask runs
        pd.to_pickle(frames, results)
    if client is not None:
        import resource

        peaks = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        out["worker_peaks"] = sorted(peaks.values())
        client.close()
    return out


_last_frame: list = []


def _keep(frame):
    _last_frame.append(frame)
    return frame


def _run(mode: str, path: Path, results: Path | None = None) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, __file__, "--child", mode, "--file", str(path)]
    if results is not None:
        cmd += ["--results", str(results)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def _write(path: Path, n_samples: int, n_assays: int, file_format: str) -> float:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    code = (
        "import resource, time, sys; from olinkpipe.datasets import write_large_explore; "
        "t = time.perf_counter(); "
        f"write_large_explore({str(path)!r}, {n_samples}, {n_assays}, seed=1, "
        f"file_format={file_format!r}); "
        "print(time.perf_counter() - t, "
        "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)"
    )
    t0 = time.perf_counter()
    res = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    secs, peak = (float(x) for x in res.stdout.split())
    print(
        f"write_large_explore {file_format} {n_samples:,} x {n_assays:,}: {secs:.1f} s, "
        f"peak RSS {peak:.0f} MiB (whole process; wall {time.perf_counter() - t0:.1f} s)"
    )
    return secs


def _print_pipeline(res: dict, mat: float, what: str) -> None:
    print(f"pipeline, {what} (each result replacing the last; final {res['final_shape']}):")
    for k, v in res.items():
        if isinstance(v, dict):
            print(
                f"  {k:<24} {v['time']:7.1f} s   peak +{v['peak']:6.0f} MiB = "
                f"{v['peak'] / mat:5.2f} x matrix"
            )


def _compare(a: Path, b: Path) -> None:
    """The differential frames of the in-memory and the dask run: same rows, flags, text;
    numbers equal within 1e-10."""
    import numpy as np
    import pandas as pd

    fa, fb = pd.read_pickle(a), pd.read_pickle(b)
    for name in fa:
        x, y = fa[name], fb[name]
        assert list(x.columns) == list(y.columns) and len(x) == len(y), name
        worst = 0.0
        for c in x.columns:
            u, v = x[c].to_numpy(), y[c].to_numpy()
            if u.dtype.kind == "f":
                assert np.array_equal(np.isnan(u), np.isnan(v)), (name, c)
                ok = ~np.isnan(u)
                if ok.any():
                    worst = max(worst, float(np.max(np.abs(u[ok] - v[ok]))))
            else:
                assert (u == v).all(), (name, c)
        assert worst <= 1e-10, (name, worst)
        print(f"  {name}: dask equals in-memory ({len(x)} rows, max |diff| {worst:.1e})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=10_000)
    ap.add_argument("--assays", type=int, default=2_923)
    ap.add_argument("--csv-samples", type=int, default=2_000)
    ap.add_argument("--file", type=Path, default=None)
    ap.add_argument("--skip", default="", help="comma-separated: csv, pipeline, read_table, dask")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--results", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.child, str(args.file), args.results)))
        return
    skip = set(filter(None, args.skip.split(",")))
    with tempfile.TemporaryDirectory() as tmp:
        path = args.file
        if path is None:
            path = Path(tmp) / "explore.parquet"
            _write(path, args.samples, args.assays, "parquet")
        mode = "read" if "pipeline" in skip else "pipeline"
        t_all = time.perf_counter()
        ours = _run(mode, path, Path(tmp) / "memory.pkl")
        t_memory = time.perf_counter() - t_all  # the child process: start, read, pipeline
        n, m = ours["shape"]
        mat = n * m * 8 / 2**20
        r = ours["read"]
        if "read_table" in skip:  # read_table itself needs ~15 x the matrix
            versus = "read_table not run"
        else:
            base = _run("read_table", path)
            versus = (
                f"{r['time'] / base['time']:.2f} x pyarrow.parquet.read_table "
                f"({base['time']:.1f} s, peak {base['peak'] / mat:.2f} x matrix; target <= 2; "
                f"CPU time {r['cpu']:.1f} s = {r['cpu'] / base['cpu']:.2f} x {base['cpu']:.1f} s)"
            )
        print(
            f"read_npx parquet {n:,} x {m:,} (matrix {mat:.0f} MiB): {r['time']:.1f} s = "
            f"{versus}; peak +{r['peak']:.0f} MiB = {r['peak'] / mat:.2f} x matrix "
            f"(target <= 3); after the read +{ours['after']:.0f} MiB; AnnData X+layers+obsm+varm = "
            f"{ours['anndata']:.2f} x X (target <= 1.5)"
        )
        if mode == "pipeline":
            _print_pipeline(
                ours, mat, f"in memory, end to end {t_memory:.1f} s (read_table not counted)"
            )
        if mode == "pipeline" and "dask" not in skip:
            t_all = time.perf_counter()
            lazy = _run("dask", path, Path(tmp) / "dask.pkl")
            _print_pipeline(lazy, mat, f"dask, end to end {time.perf_counter() - t_all:.1f} s")
            print(f"  worker peak RSS (MiB): {[round(p) for p in lazy['worker_peaks']]}")
            _compare(Path(tmp) / "memory.pkl", Path(tmp) / "dask.pkl")
        if "csv" not in skip:
            csv = Path(tmp) / "explore.csv"
            _write(csv, args.csv_samples, args.assays, "csv")
            ours = _run("read", csv)
            base = _run("read_csv", csv)
            n, m = ours["shape"]
            mat = n * m * 8 / 2**20
            r = ours["read"]
            print(
                f"read_npx csv {n:,} x {m:,} (matrix {mat:.0f} MiB): {r['time']:.1f} s = "
                f"{r['time'] / base['time']:.2f} x pyarrow.csv.read_csv ({base['time']:.1f} s); "
                f"peak +{r['peak']:.0f} MiB = {r['peak'] / mat:.2f} x matrix (target <= 4)"
            )


if __name__ == "__main__":
    main()
