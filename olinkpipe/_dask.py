"""Optional dask support: one place that knows whether an array is lazy and how to get dask.

dask and dask.distributed come with the ``olinkpipe[dask]`` extra. Every function that
accepts a dask-backed AnnData asks here, so a missing install always gives the same
:class:`~olinkpipe.errors.OlinkpipeError` telling the user what to install.
"""

from __future__ import annotations

from typing import Any

from .errors import OlinkpipeError

_INSTALL = "install it with: python -m pip install 'olinkpipe[dask]'"


def is_dask(x: Any) -> bool:
    """True when ``x`` is a ``dask.array.Array`` (without importing dask when it is absent)."""
    mod = type(x).__module__
    return mod.startswith("dask.") and hasattr(x, "chunks") and hasattr(x, "compute")


def require_dask(what: str = "this option"):
    """Import and return ``dask.array``, or raise an OlinkpipeError naming what to install."""
    try:
        import dask.array as da
    except ImportError as e:  # pragma: no cover - dask is in the test extra
        msg = f"{what} needs dask, which is not installed; {_INSTALL}"
        raise OlinkpipeError(msg) from e
    return da
