"""Threads for memory-bound array writes.

numpy releases the GIL while it copies, adds or gathers large arrays, so writing the row
blocks of a big output from a few threads overlaps the kernel's page faults (zeroing fresh
memory) and the copies themselves. On the 2-core benchmark machine this writes the stacked
NPX, LOD and boolean layers of a bridge normalization 1.5–1.8× faster than one thread.

The number of threads is ``OLINKPIPE_NUM_THREADS`` when set (``1`` turns threading off),
otherwise the CPUs available to the process, at most 4 (memory bandwidth, not cores, is the
limit beyond that). Outputs smaller than :data:`MIN_BYTES` are written in the calling thread.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable

import numpy as np

from .errors import ValidationError

ENV_THREADS = "OLINKPIPE_NUM_THREADS"
#: below this many output bytes, starting threads costs more than it saves
MIN_BYTES = 16 * 2**20
_MAX_DEFAULT = 4


#: bytes of one column slice of a samples × assays float64 matrix (a temporary's size)
SLICE_BYTES = 32 * 2**20


def column_slices(n: int, n_rows: int) -> list[slice]:
    """Contiguous column slices covering ``n`` columns, each about :data:`SLICE_BYTES` of
    float64 over ``n_rows`` rows and at most an eighth of the columns (at least 64)."""
    size = max(64, min(SLICE_BYTES // (8 * max(n_rows, 1)), -(-n // 8)))
    return [slice(lo, min(lo + size, n)) for lo in range(0, n, size)]


def n_threads() -> int:
    """Threads to use for large array writes (see the module docstring).

    Examples
    --------
    >>> n_threads() >= 1
    True
    """
    value = os.environ.get(ENV_THREADS, "").strip()
    if value:
        try:
            n = int(value)
        except ValueError:
            msg = f"{ENV_THREADS} must be a positive integer; got {value!r}."
            raise ValidationError(msg) from None
        if n < 1:
            msg = f"{ENV_THREADS} must be a positive integer; got {value!r}."
            raise ValidationError(msg)
        return n
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        cpus = os.cpu_count() or 1
    return max(1, min(cpus, _MAX_DEFAULT))


def row_blocks(n_rows: int, n_blocks: int) -> list[tuple[int, int]]:
    """``n_blocks`` (at most ``n_rows``) contiguous ``(start, stop)`` row ranges covering all rows.

    Examples
    --------
    >>> row_blocks(10, 3)
    [(0, 3), (3, 6), (6, 10)]
    >>> row_blocks(0, 4)
    []
    """
    n_blocks = max(1, min(n_blocks, n_rows))
    bounds = np.linspace(0, n_rows, n_blocks + 1).astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]


class Jobs:
    """Writes into preallocated outputs, run by background threads as they are queued.

    ``n_threads() - 1`` background threads start at once and take jobs (each writing its
    own part of the outputs) in the order they are added; :meth:`wait` makes the calling
    thread take the jobs still queued, joins the others and raises the first job's
    exception. So the caller can queue work, do something else (compute a factor, build
    obs and var) and then help finish: no core idles. As a context manager, leaving the
    block waits, so no thread outlives an error. ``nbytes`` is the total size of what the
    jobs write: for small outputs or one thread, :meth:`add` runs each job at once.

    Examples
    --------
    >>> import numpy as np
    >>> out = np.empty((4, 3))
    >>> with Jobs(nbytes=out.nbytes) as jobs:
    ...     for lo, hi in row_blocks(4, 2):
    ...         jobs.add(lambda lo=lo, hi=hi: out[lo:hi].fill(lo))
    >>> out[:, 0].tolist()
    [0.0, 0.0, 2.0, 2.0]
    """

    def __init__(self, *, nbytes: int) -> None:
        threads = 1 if nbytes < MIN_BYTES else n_threads()
        self._inline = threads < 2
        self._queue: deque[Callable[[], object]] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._errors: list[BaseException] = []
        self._workers: list[threading.Thread] = []
        try:
            for _ in range(threads - 1):
                worker = threading.Thread(target=self._work, kwargs={"block": True}, daemon=True)
                worker.start()
                self._workers.append(worker)
        except BaseException:
            self._stop()
            raise

    def add(self, job: Callable[[], object]) -> None:
        """Queue ``job`` (or run it now when not threaded)."""
        if self._inline:
            job()
            return
        with self._cond:
            self._queue.append(job)
            self._cond.notify()

    def _work(self, *, block: bool) -> None:
        while True:
            with self._cond:
                while block and not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue or self._errors:
                    return
                job = self._queue.popleft()
            try:
                job()
            except Exception as exc:  # re-raised by wait() in the caller's thread
                self._errors.append(exc)
            except BaseException as exc:  # KeyboardInterrupt, SystemExit: stop at once
                self._errors.append(exc)
                if not block:  # the caller's thread: let it go up now (wait() stops all)
                    raise

    def _stop(self) -> None:
        """Drop queued jobs and join the threads (after their current job)."""
        with self._cond:
            self._queue.clear()
            self._closed = True
            self._cond.notify_all()
        for worker in self._workers:
            worker.join()

    def wait(self) -> None:
        """Run what is still queued here, join the threads, raise the first job error."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        try:
            self._work(block=False)
            for worker in self._workers:
                worker.join()
        except BaseException:  # Ctrl-C here: no thread may go on writing
            self._stop()
            raise
        if self._errors:
            raise self._errors[0]

    def __enter__(self) -> Jobs:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.wait()
            return
        self._stop()  # an error in the block: drop queued jobs, let the threads end
