"""Target 96 / Target 48 wide exports (NPX Manager): xlsx and csv. Filled in below."""

from __future__ import annotations

__all__: list[str] = []
