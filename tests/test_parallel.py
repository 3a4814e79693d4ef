"""olinkpipe._parallel: background row-block writes, their errors and settings."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from olinkpipe import _parallel
from olinkpipe.errors import ValidationError


@pytest.fixture
def threaded(monkeypatch):
    monkeypatch.setattr(_parallel, "MIN_BYTES", 0)
    monkeypatch.setenv(_parallel.ENV_THREADS, "3")


def test_every_job_runs_once_on_several_threads(threaded):
    out = np.zeros(1000)
    seen = set()
    lock = threading.Lock()

    def job(lo, hi):
        with lock:
            seen.add(threading.get_ident())
        time.sleep(0.002)  # long enough for the background threads to take jobs too
        out[lo:hi] += 1

    with _parallel.Jobs(nbytes=out.nbytes) as jobs:
        for lo, hi in _parallel.row_blocks(1000, 60):
            jobs.add(lambda lo=lo, hi=hi: job(lo, hi))
    np.testing.assert_array_equal(out, 1.0)  # each block written exactly once
    assert len(seen) >= 2


def test_job_error_is_raised_in_the_caller(threaded):
    def boom():
        raise ValueError("job failed")

    jobs = _parallel.Jobs(nbytes=10**9)
    jobs.add(boom)
    with pytest.raises(ValueError, match="job failed"):
        jobs.wait()


def test_error_in_the_block_ends_the_threads(threaded):
    before = threading.active_count()
    with pytest.raises(KeyError), _parallel.Jobs(nbytes=10**9) as jobs:
        jobs.add(lambda: None)
        raise KeyError("caller failed")
    assert threading.active_count() == before


def test_small_outputs_and_one_thread_run_inline(monkeypatch):
    monkeypatch.setenv(_parallel.ENV_THREADS, "4")
    ran = []
    jobs = _parallel.Jobs(nbytes=10)  # below MIN_BYTES
    jobs.add(lambda: ran.append(threading.get_ident()))
    assert ran == [threading.get_ident()]  # ran at once, here
    jobs.wait()
    monkeypatch.setenv(_parallel.ENV_THREADS, "1")
    assert _parallel.n_threads() == 1


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_bad_thread_setting_is_a_clear_error(monkeypatch, value):
    monkeypatch.setenv(_parallel.ENV_THREADS, value)
    with pytest.raises(ValidationError, match="OLINKPIPE_NUM_THREADS"):
        _parallel.n_threads()


def test_row_blocks_cover_all_rows_once():
    for n_rows in (1, 7, 100):
        for n_blocks in (1, 3, 200):
            blocks = _parallel.row_blocks(n_rows, n_blocks)
            covered = np.concatenate([np.arange(a, b) for a, b in blocks])
            np.testing.assert_array_equal(covered, np.arange(n_rows))


def test_interrupt_in_a_job_stops_every_thread(threaded):
    before = threading.active_count()
    done = []

    def interrupted():
        raise KeyboardInterrupt

    jobs = _parallel.Jobs(nbytes=10**9)
    for i in range(20):
        jobs.add(interrupted if i == 3 else (lambda i=i: (time.sleep(0.001), done.append(i))))
    with pytest.raises(KeyboardInterrupt):
        jobs.wait()
    assert threading.active_count() == before
    assert len(done) < 19  # the queue was dropped, not run to the end after the interrupt


def test_thread_setting_is_read_only_for_large_outputs(monkeypatch):
    monkeypatch.setenv(_parallel.ENV_THREADS, "many")
    out = []
    with _parallel.Jobs(nbytes=1024) as jobs:  # small: inline, the setting is not read
        jobs.add(lambda: out.append(1))
    assert out == [1]
    with pytest.raises(ValidationError, match="OLINKPIPE_NUM_THREADS"):
        _parallel.Jobs(nbytes=10**9)
