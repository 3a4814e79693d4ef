"""Small helpers shared by the readers: :func:`warn_user` is
:func:`olinkpipe._warnings.warn_user` (the one warning helper), importable from here."""

from __future__ import annotations

from .._warnings import warn_user

__all__ = ["warn_user"]
