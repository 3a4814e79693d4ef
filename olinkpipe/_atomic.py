"""Atomic output files: write to a temporary name beside the target, then rename.

A reader (or a later run) never sees a half-written file under its final name: the
content goes to ``.olinkpipe-tmp-<random>-<name>`` in the target's folder and is moved
over the target with :func:`os.replace` once it is complete and flushed to disk. A failed
or interrupted write removes the temporary file. An :class:`OSError` on the way (read-only
or full disk, missing folder) becomes an :class:`OutputError` naming the path.

HDF5 aborts the process when the disk fills during a write, so :func:`write_h5ad` builds
the ``.h5ad`` image in memory (one extra copy of the data) and writes it with plain file
I/O.
"""

from __future__ import annotations

import errno
import io
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path

from .errors import OlinkpipeError

__all__ = ["OutputError", "TMP_PREFIX", "atomic_path", "write_bytes", "write_text", "write_h5ad"]

#: Temporary files start with this prefix (hidden; ``--force`` removes stale ones).
TMP_PREFIX = ".olinkpipe-tmp-"

_CHUNK = 1 << 22

_HINTS = {
    errno.ENOSPC: "the disk is full; free space or choose another output location",
    errno.EDQUOT: "the disk quota is exceeded; free space or choose another output location",
    errno.EFBIG: "the file is larger than this system allows; choose another output location",
    errno.EROFS: "the file system is read-only; choose a writable output location",
    errno.EACCES: "no permission to write there; choose a writable output location",
    errno.EPERM: "no permission to write there; choose a writable output location",
    errno.ENOENT: "the folder does not exist; create it or choose another output location",
}


class OutputError(OlinkpipeError, OSError):
    """An output file or folder could not be written (read-only or full disk, no folder).

    ``errno`` and ``filename`` are those of the failed write; ``str()`` is the message.
    """

    def __str__(self) -> str:  # OSError would show "[Errno n] None: filename"
        return str(self.args[0]) if self.args else ""


def output_error(
    path: str | PathLike[str], exc: OSError, what: str = "cannot write"
) -> OutputError:
    """An :class:`OutputError` naming ``path``, the system's reason and what to do."""
    reason = exc.strerror or type(exc).__name__
    hint = _HINTS.get(exc.errno, "check the output location")
    msg = f"{path}: {what}: {reason}. Hint: {hint}."
    err = OutputError(msg)
    err.errno = exc.errno
    err.filename = str(path)
    return err


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{TMP_PREFIX}{secrets.token_hex(4)}-{path.name}")


@contextmanager
def atomic_path(path: str | PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    Whatever the body writes to the yielded path becomes ``path`` only when the body
    returns; on an exception (or Ctrl-C) the temporary file is removed and ``path`` is left
    as it was.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> target = pathlib.Path(tempfile.mkdtemp()) / "table.csv"
    >>> with atomic_path(target) as tmp:
    ...     _ = tmp.write_text("a,b\\n1,2\\n")
    >>> target.read_text()
    'a,b\\n1,2\\n'
    """
    path = Path(path)
    tmp = _tmp_name(path)
    try:
        try:
            yield tmp
            _fsync(tmp)
            os.replace(tmp, path)
        except OSError as exc:
            if isinstance(exc, OlinkpipeError):
                raise
            raise output_error(path, exc) from None
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:  # pragma: no cover - best effort on a broken disk
            pass
        raise


def _fsync(tmp: Path) -> None:
    fd = os.open(tmp, os.O_RDWR if os.name == "nt" else os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes(path: str | PathLike[str], data: bytes | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically (plain file I/O, in chunks).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = write_bytes(pathlib.Path(tempfile.mkdtemp()) / "x.bin", b"abc")
    >>> p.read_bytes()
    b'abc'
    """
    path = Path(path)
    view = memoryview(data).cast("B")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            for start in range(0, len(view), _CHUNK):
                fh.write(view[start : start + _CHUNK])
    return path


def write_text(path: str | PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> write_text(pathlib.Path(tempfile.mkdtemp()) / "r.json", "{}").read_text()
    '{}'
    """
    return write_bytes(path, text.encode(encoding))


def write_h5ad(adata, path: str | PathLike[str]) -> Path:
    """Write ``adata`` as ``.h5ad`` atomically, building the HDF5 image in memory first.

    The image (one extra copy of the data) is written with plain file I/O, so a full disk
    is a clean :class:`OutputError` rather than an HDF5 abort. A dask-backed AnnData is
    not materialised: HDF5 writes it to the temporary file after a free-space check.

    Examples
    --------
    >>> import tempfile, pathlib, anndata as ad, numpy as np
    >>> p = write_h5ad(ad.AnnData(np.ones((2, 3))), pathlib.Path(tempfile.mkdtemp()) / "a.h5ad")
    >>> ad.read_h5ad(p).shape
    (2, 3)
    """
    import h5py

    try:
        from anndata.io import write_elem
    except ImportError:  # pragma: no cover - anndata < 0.11
        from anndata.experimental import write_elem

    if _lazy(adata):  # dask: never hold the whole image; check the space first instead
        return _write_h5ad_lazy(adata, Path(path))
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        write_elem(f, "/", adata)
    return write_bytes(path, buffer.getbuffer())


def _lazy(adata) -> bool:
    from ._dask import is_dask

    return is_dask(adata.X) or any(is_dask(v) for v in adata.layers.values())


def _write_h5ad_lazy(adata, path: Path) -> Path:
    """A dask-backed AnnData goes to disk through HDF5 after a free-space check."""
    import shutil

    need = sum(
        int(getattr(a, "nbytes", 0) or 0)
        for a in [adata.X, *adata.layers.values()]
        if a is not None
    )
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError as exc:
        raise output_error(path, exc) from None
    if free < need * 1.1 + (64 << 20):
        exc = OSError(
            errno.ENOSPC, f"needs about {need / 2**20:,.0f} MiB, {free / 2**20:,.0f} MiB free"
        )
        raise output_error(path, exc)
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp)
    return path
