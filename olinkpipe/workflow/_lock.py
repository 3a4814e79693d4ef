"""A lock file in a run's output folder: one run writes there at a time.

The lock records the holder's pid, host and process start time. A lock whose process is
gone (a run killed with SIGKILL) is stale and is taken over; a live holder makes the
second run fail at once.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from .._atomic import TMP_PREFIX, output_error

__all__ = ["LOCK_NAME", "acquire", "release", "holder"]

LOCK_NAME = ".olinkpipe.lock"


def _proc_start(pid: int) -> str | None:
    """Start time of ``pid`` in clock ticks since boot (Linux), to tell a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, 0, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return False
        code = ctypes.c_ulong()
        try:
            kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        finally:
            kernel32.CloseHandle(handle)
        return code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def _alive(info: dict) -> bool:
    if info.get("host") != socket.gethostname():
        return True  # another machine's run: we cannot tell, so respect it
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0 or not _pid_alive(pid):
        return False
    recorded = info.get("proc_start")
    return recorded is None or recorded == _proc_start(pid)


def holder(out: Path) -> dict | None:
    """The live run holding ``out``'s lock (its recorded pid, host, start), or ``None``."""
    lock = out / LOCK_NAME
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
    except ValueError:  # being written (no hard links here): young means live
        try:
            young = time.time() - lock.stat().st_mtime < 10
        except OSError:
            return None
        return {"pid": "?", "host": "?", "started": "just now"} if young else None
    except OSError:
        return None
    return info if isinstance(info, dict) and _alive(info) else None


def acquire(out: Path) -> dict | None:
    """Take ``out``'s lock; return the live holder's record instead when another run has it."""
    lock = out / LOCK_NAME
    info = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "proc_start": _proc_start(os.getpid()),
    }
    tmp = out / f"{TMP_PREFIX}{os.getpid()}-lock"
    try:
        tmp.write_text(json.dumps(info), encoding="utf-8")
        for _ in range(3):
            try:
                _create(tmp, lock, info)
                return None
            except FileExistsError:
                live = holder(out)
                if live is not None:
                    return live
                lock.unlink(missing_ok=True)  # stale: its run is gone
        return {"pid": "?", "host": "?", "started": "just now"}
    except OSError as exc:
        raise output_error(lock, exc, "cannot create the run's lock file") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def _create(tmp: Path, lock: Path, info: dict) -> None:
    """Create ``lock`` holding ``info``; FileExistsError when it exists."""
    try:
        os.link(tmp, lock)  # atomic: fails when the lock exists, never half-written
        return
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system: exclusive create instead
        pass
    fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(json.dumps(info))


def release(out: Path) -> None:
    """Remove ``out``'s lock if this process holds it."""
    lock = out / LOCK_NAME
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        if info.get("pid") == os.getpid():
            lock.unlink()
    except (OSError, ValueError, AttributeError):
        pass
