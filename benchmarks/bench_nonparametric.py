"""Speed and memory of tl.nonparametric(_posthoc) vs per-assay scipy loops.

Kruskal–Wallis: 3,000 assays × 1,000 samples in 5 groups, 2 % NaN; Friedman: 3,000 assays
× 300 subjects × 4 levels. Prints the time of ours and of a per-assay loop calling
``scipy.stats.kruskal`` / ``friedmanchisquare`` (the way a Python port of OlinkAnalyze's
per-assay ``group_modify`` works), their ratio, and the peak of memory allocated by ours
(tracemalloc) as a multiple of the float64 matrix. Dunn's post hoc (all 10 contrasts) is
timed too; scipy has no Dunn test, so it has no peer here.

Run: python benchmarks/bench_nonparametric.py [--assays 3000] [--samples 1000]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import anndata as ad
import numpy as np
import pandas as pd
from scipy import stats

import olinkpipe as op


def _best(func, repeat=3):
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        best = min(best, time.perf_counter() - t0)
    return best


def _peak(func):
    tracemalloc.start()
    func()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--assays", type=int, default=3000)
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--subjects", type=int, default=300)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    m, n = args.assays, args.samples

    x = rng.normal(size=(n, m))
    x[rng.random(x.shape) < 0.02] = np.nan
    g = rng.integers(0, 5, n)
    obs = pd.DataFrame({"G": [f"g{i}" for i in g]}, index=[f"S{i}" for i in range(n)])
    a = ad.AnnData(x, obs=obs, var=pd.DataFrame(index=[f"OID{i}" for i in range(m)]))

    def ours_kw():
        op.tl.nonparametric(a, groupby="G")

    def loop_kw():
        for j in range(m):
            ok = ~np.isnan(x[:, j])
            stats.kruskal(*[x[ok & (g == k), j] for k in range(5)])

    ours_kw()
    t_ours, t_loop = _best(ours_kw), _best(loop_kw, 1)
    mb = x.nbytes
    print(f"kruskal   {m} assays x {n} samples: ours {t_ours:.3f} s, scipy loop {t_loop:.3f} s,")
    print(
        f"          ratio loop/ours {t_loop / t_ours:.1f}, peak {_peak(ours_kw) / mb:.2f}x matrix"
    )
    t_dunn = _best(lambda: op.tl.nonparametric_posthoc(a, groupby="G"))
    print(f"dunn      10 contrasts: ours {t_dunn:.3f} s")

    s, k = args.subjects, 4
    y = rng.normal(size=(s * k, m))
    y[rng.random(y.shape) < 0.02] = np.nan
    obs = pd.DataFrame(
        {"P": np.repeat([f"P{i}" for i in range(s)], k), "T": np.tile(list("abcd"), s)},
        index=[f"S{i}" for i in range(s * k)],
    )
    b = ad.AnnData(y, obs=obs, var=pd.DataFrame(index=[f"OID{i}" for i in range(m)]))
    blocks = y.reshape(s, k, m)

    def ours_fr():
        op.tl.nonparametric(b, groupby="T", pair="P")

    def loop_fr():
        for j in range(m):
            bj = blocks[:, :, j]
            bj = bj[~np.isnan(bj).any(axis=1)]
            stats.friedmanchisquare(*bj.T)

    ours_fr()
    t_ours, t_loop = _best(ours_fr), _best(loop_fr, 1)
    print(f"friedman  {m} assays x {s} subjects x {k}: ours {t_ours:.3f} s, loop {t_loop:.3f} s,")
    print(
        f"          ratio loop/ours {t_loop / t_ours:.1f}, "
        f"peak {_peak(ours_fr) / y.nbytes:.2f}x matrix"
    )
    t_wx = _best(lambda: op.tl.nonparametric_posthoc(b, groupby="T", pair="P"), 1)
    print(f"wilcoxon  6 paired contrasts (R's estimate): ours {t_wx:.3f} s")


if __name__ == "__main__":
    main()
