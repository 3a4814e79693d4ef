"""One helper for every warning olinkpipe emits."""

from __future__ import annotations

import warnings

from .errors import OlinkpipeWarning


def warn(message: str, category: type[Warning] = OlinkpipeWarning, *, stacklevel: int = 3) -> None:
    """Emit ``message`` as an :class:`OlinkpipeWarning`, pointing at the caller's line.

    ``stacklevel=3`` points at the line that called the public function that called this.
    """
    warnings.warn(message, category, stacklevel=stacklevel)
