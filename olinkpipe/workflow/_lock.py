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


def _alive(info: dict) -> bool:
    if info.get("host") != socket.gethostname():
        return True  # another machine's run: we cannot tell, so respect it
    pid = info.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    recorded = info.get("proc_start")
    return recorded is None or recorded == _proc_start(pid)


def holder(out: Path) -> dict | None:
    """The live run holding ``out``'s lock (its recorded pid, host, start), or ``None``."""
    try:
        info = json.loads((out / LOCK_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
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
                os.link(tmp, lock)  # atomic: fails when the lock exists, never half-written
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


def release(out: Path) -> None:
    """Remove ``out``'s lock if this process holds it."""
    lock = out / LOCK_NAME
    try:
        info = json.loads(lock.read_text(encoding="utf-8"))
        if info.get("pid") == os.getpid():
            lock.unlink()
    except (OSError, ValueError, AttributeError):
        pass
