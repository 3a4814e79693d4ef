"""Small helpers shared by the readers."""

from __future__ import annotations

import sys
from pathlib import Path

from .._warnings import warn

_PKG = str(Path(__file__).resolve().parent.parent)


def warn_user(message: str) -> None:
    """Warn, pointing at the first caller outside the olinkpipe package."""
    level = 1
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PKG):
        frame = frame.f_back
        level += 1
    warn(message, stacklevel=level + 2)
