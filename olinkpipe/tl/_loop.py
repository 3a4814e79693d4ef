"""The one loop over assays for models without a matrix form (progress bar, ``n_jobs``)."""

from __future__ import annotations


def run_per_assay(func, jobs, *, n_jobs: int, progress: bool, desc: str) -> list:
    """``[func(*job) for job in jobs]`` with a tqdm bar, on ``n_jobs`` joblib workers."""
    from tqdm.auto import tqdm

    it = tqdm(jobs, desc=desc, disable=not progress, total=len(jobs))
    if n_jobs == 1:
        return [func(*a) for a in it]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=n_jobs)(delayed(func)(*a) for a in it)


def run_single_blas(func, jobs, *, n_jobs: int, progress: bool, desc: str) -> list:
    """:func:`run_per_assay` with BLAS held to one thread: for fits that are small dense
    solves, which threaded BLAS slows by an order of magnitude on a busy machine."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - comes with scikit-learn (scanpy)
        return run_per_assay(func, jobs, n_jobs=n_jobs, progress=progress, desc=desc)
    with threadpool_limits(limits=1, user_api="blas"):
        return run_per_assay(func, jobs, n_jobs=n_jobs, progress=progress, desc=desc)
