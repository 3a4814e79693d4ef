"""Speed of tl.differential on a paired design vs per-assay scipy loops and a nanmean pass.

Paired design, 3,000 assays × 500 pairs (1,000 samples), 2 % NaN. Prints, for ttest,
wilcoxon and moderated, the time of ``tl.differential``, the time of a per-assay loop
calling scipy (the way OlinkAnalyze and Python ports work) and of one ``numpy.nanmean``
pass over the difference matrix, the ratios, and whether issue 5's target is met.

Reference loops
    ttest      scipy.stats.ttest_rel(post, pre, nan_policy="omit") per assay
    moderated  the same loop (it computes the per-assay variances the moderated t needs;
               limma itself is vectorised, so there is no per-assay R loop to mirror)
    wilcoxon   (a) scipy.stats.wilcoxon(d) per assay: p-values only
               (b) (a) + Hodges-Lehmann estimate and CI from the sorted Walsh averages per
                   assay, against ``wilcoxon_ci="order"`` (the textbook values; issue 5's
                   target)
               (c) (a) + R's own estimate and CI (``uniroot`` on W(d), as
                   wilcox.test(conf.int=TRUE) / olink_wilcox return them) one assay at a
                   time with olinkpipe's port of R's code, against the default
                   ``wilcoxon_ci="uniroot"`` run on all assays at once (no target in the
                   issue; the ratio shows what vectorising R's root finder gains)

Everything is warmed up first; then ours (best of 3), the nanmean pass (best of 5) and the
loop (once) alternate for ``--rounds`` rounds (``--hl-rounds`` for the slow HL loop) and
the best of each is kept, so a busy shared machine slows all of them alike. The ratios
still vary by some 10-20 % between runs on a shared machine.

Run: python benchmarks/bench_de.py [--assays 3000] [--pairs 500] [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
import warnings

import anndata as ad
import numpy as np
import pandas as pd
from scipy import stats

import olinkpipe as op


def make(n_assays: int, n_pairs: int, seed: int = 0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    n = 2 * n_pairs
    obs = pd.DataFrame(
        {
            "Subject": np.repeat([f"P{i:04d}" for i in range(n_pairs)], 2),
            "Time": ["Baseline", "Week.6"] * n_pairs,
        },
        index=[f"S{i:05d}" for i in range(n)],
    )
    x = rng.normal(5, 1, (n, n_assays))
    x[1::2] += rng.normal(0, 0.3, n_assays)
    x[rng.random(x.shape) < 0.02] = np.nan
    var = pd.DataFrame(
        {"Assay": [f"A{j}" for j in range(n_assays)]},
        index=pd.Index([f"OID{j:05d}" for j in range(n_assays)], name="OlinkID"),
    )
    return ad.AnnData(x, obs=obs, var=var)


def timed(func) -> float:
    t0 = time.perf_counter()
    func()
    return time.perf_counter() - t0


def loop_ttest(pre, post):
    for j in range(pre.shape[1]):
        stats.ttest_rel(post[:, j], pre[:, j], nan_policy="omit")


def loop_wilcoxon(d, *, hl: bool):
    z = stats.norm.ppf(0.975)
    for j in range(d.shape[1]):
        dj = d[:, j]
        dj = dj[~np.isnan(dj)]
        stats.wilcoxon(dj, correction=True, method="approx")
        if hl:
            n = dj.size
            iu = np.triu_indices(n)
            w = (dj[iu[0]] + dj[iu[1]]) / 2.0
            k = int(np.ceil(w.size / 2 - z * np.sqrt(n * (n + 1) * (2 * n + 1) / 24) - 0.5))
            mid = (w.size - 1) // 2
            part = np.partition(w, [k - 1, mid, mid + 1, w.size - k])
            _ = (part[mid] + part[mid + 1]) / 2, part[k - 1], part[w.size - k]


def loop_wilcoxon_uniroot(d):
    from olinkpipe.tl._rwilcox import signed_rank_uniroot

    for j in range(d.shape[1]):
        dj = d[:, j]
        dj = dj[~np.isnan(dj)]
        stats.wilcoxon(dj, correction=True, method="approx")
        signed_rank_uniroot(dj[None, :])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--assays", type=int, default=3000)
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=5, help="alternations per method")
    ap.add_argument("--hl-rounds", type=int, default=2, help="alternations for the HL loop")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    adata = make(args.assays, args.pairs)
    pre, post = adata.X[0::2], adata.X[1::2]
    d = post - pre
    print(f"paired design: {args.assays} assays x {args.pairs} pairs, 2% NaN")

    def ours(name, **extra):
        return lambda: op.tl.differential(
            adata, groupby="Time", reference="Baseline", pair="Subject", method=name, **extra
        )

    def nanmean():
        return np.nanmean(d, axis=0)

    cases = [
        ("ttest", ours("ttest"), lambda: loop_ttest(pre, post), "scipy ttest_rel loop", 100),
        (
            "moderated",
            ours("moderated"),
            lambda: loop_ttest(pre, post),
            "scipy ttest_rel loop",
            100,
        ),
        (
            "wilcoxon p only",
            ours("wilcoxon", hodges_lehmann=False),
            lambda: loop_wilcoxon(d, hl=False),
            "scipy wilcoxon loop",
            20,
        ),
        (
            "wilcoxon + HL, CI",
            ours("wilcoxon", wilcoxon_ci="order"),
            lambda: loop_wilcoxon(d, hl=True),
            "scipy wilcoxon + Walsh-average HL/CI loop",
            20,
        ),
        (
            "wilcoxon + R CI",
            ours("wilcoxon"),
            lambda: loop_wilcoxon_uniroot(d),
            "scipy wilcoxon + R uniroot CI, per assay",
            None,
        ),
    ]
    for _, run, *_ in cases:  # warm up (imports, caches) before anything is timed
        run()
    print(
        f"{'method':<19}{'ours ms':>9}{'loop ms':>10}{'nanmean ms':>12}"
        f"{'loop/ours':>11}{'ours/nanmean':>14}  target  reference loop"
    )
    for label, run, loop, loop_name, target in cases:
        rounds = args.hl_rounds if "CI" in label else args.rounds
        t_ours, t_loop, t_nm = np.inf, np.inf, np.inf
        # ours, the loop and the nanmean pass alternate, best of each: a busy shared
        # machine then slows all three alike
        for _ in range(rounds):
            t_ours = min(t_ours, min(timed(run) for _ in range(3)))
            t_nm = min(t_nm, min(timed(nanmean) for _ in range(5)))
            t_loop = min(t_loop, timed(loop))
        ratio = t_loop / t_ours
        near = t_ours / t_nm
        if target is None:  # reported, no target in the issue
            ok, goal = None, "no target"
        else:
            ok = ratio >= target and (target < 100 or near <= 5)
            goal = f">={target}x" + (", <=5x nanmean" if target >= 100 else "")
        print(
            f"{label:<19}{t_ours * 1e3:>9.1f}{t_loop * 1e3:>10.0f}{t_nm * 1e3:>12.2f}"
            f"{ratio:>10.0f}x{near:>13.1f}x  {'--  ' if ok is None else 'met ' if ok else 'MISS'}    "
            f"{loop_name} ({goal})"
        )
    print(
        "\nTargets (issue 5): ttest and moderated >= 100x the loop and within 5x of one "
        "nanmean pass over the difference matrix; wilcoxon >= 20x the loop."
    )


if __name__ == "__main__":
    main()
