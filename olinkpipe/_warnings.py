"""One helper for every warning olinkpipe emits.

:func:`warn` points at a fixed depth of the stack (``stacklevel``); :func:`warn_user` points
at the first line outside the olinkpipe package, wherever in the package it is called
from (the readers and ``pp`` use it). Both go through the block-task sink (:func:`collect`).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from .errors import OlinkpipeWarning

#: set inside a dask block task (tl._blocks): warnings are kept there and the caller
#: re-emits them once, merged over the blocks (warnings.catch_warnings is not thread-safe)
_SINK: ContextVar[list | None] = ContextVar("olinkpipe_warning_sink", default=None)


def warn(message: str, category: type[Warning] = OlinkpipeWarning, *, stacklevel: int = 3) -> None:
    """Emit ``message`` as an :class:`OlinkpipeWarning`, pointing at the caller's line.

    ``stacklevel=3`` points at the line that called the public function that called this.
    """
    sink = _SINK.get()
    if sink is not None:
        sink.append((message, category))
        return
    warnings.warn(message, category, stacklevel=stacklevel)


_PKG_DIR = os.path.dirname(os.path.abspath(__file__))


def warn_user(message: str, category: type[Warning] = OlinkpipeWarning) -> None:
    """Emit ``message`` pointing at the first caller outside the olinkpipe package."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PKG_DIR):
        frame = frame.f_back
        level += 1
    warn(message, category, stacklevel=level + 2)


@contextmanager
def collect() -> Iterator[list]:
    """Keep the warnings :func:`warn` emits in this thread/context as ``(message, category)``."""
    sink: list = []
    token = _SINK.set(sink)
    try:
        yield sink
    finally:
        _SINK.reset(token)
