"""Fixtures for the tests and the docstring examples: no network, headless matplotlib,
figures closed after each test."""

from __future__ import annotations

import os
import socket

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

_real_connect = socket.socket.connect


_LOOPBACK = ("127.", "::1", "localhost", "0:0:0:0:0:0:0:1")


def _guarded_connect(self, address):  # pragma: no cover - only hit on a network attempt
    if self.family == getattr(socket, "AF_UNIX", None):
        return _real_connect(self, address)
    host = address[0] if isinstance(address, tuple) and address else ""
    if isinstance(host, str) and host.startswith(_LOOPBACK):
        # this machine only: a dask.distributed LocalCluster talks over loopback
        return _real_connect(self, address)
    msg = f"olinkpipe tests run offline: blocked a network connection to {address!r}"
    raise RuntimeError(msg)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Every test runs with sockets blocked but loopback: nothing may download at run time."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    yield


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")
