"""Name lookups shared by every layer: "did you mean ...?" hints for a mistyped name.

On the floor (imports no subpackage), so readers, plots and the workflow all use the same
rule; :mod:`olinkpipe.genesets.collections` re-exports it.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["close_matches"]


def close_matches(name: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """Up to ``n`` names in ``choices`` like ``name``: a typo, other case, or a part of it.

    Case-insensitive :func:`difflib.get_close_matches` (similarity >= 0.6), keeping those
    within 0.1 of the best (in KEGG, "JAK-STAT signalling pathway" is near every
    "... signaling pathway"), then names containing ``name`` or contained in it.

    Examples
    --------
    >>> close_matches("JAK-STAT signalling pathway",
    ...               ["JAK-STAT signaling pathway", "Apoptosis", "mTOR signaling pathway"])
    ['JAK-STAT signaling pathway']
    """
    import difflib

    by_lower: dict[str, str] = {}
    for c in choices:
        by_lower.setdefault(str(c).lower(), str(c))
    key = str(name).lower().strip()
    scored = []
    for c in by_lower:
        sm = difflib.SequenceMatcher(None, key, c)
        if sm.real_quick_ratio() >= 0.6 and sm.quick_ratio() >= 0.6 and sm.ratio() >= 0.6:
            scored.append((sm.ratio(), c))
    scored.sort(key=lambda rc: -rc[0])
    hits = [c for r, c in scored if r >= scored[0][0] - 0.1][:n]
    if len(hits) < n and len(key) >= 3:
        hits += [c for c in by_lower if (key in c or c in key) and c not in hits][: n - len(hits)]
    return [by_lower[h] for h in hits]
