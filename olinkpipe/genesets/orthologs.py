"""Mouse gene symbols → human orthologs, offline (HGNC HCOP table shipped with the package).

Olink Target 96 Mouse Exploratory names its assays by mouse gene symbol (``Il6``,
``Cxcl1``); the offline collections hold human symbols. :func:`to_human` maps each mouse
symbol to one human symbol through HCOP (``data/orthologs_mouse_human.tsv.gz``, one row
per supported mouse-human pair with the number of orthology resources that agree; see
``data/manifest.json`` for source, version, licence and checksums).

One mouse gene with several human orthologs (``Ccl3`` → CCL3, CCL3L3, CCL18, CCL4) is
mapped to exactly one, chosen deterministically:

1. the human symbol that is the mouse symbol in capitals (``Cxcl1`` → CXCL1, although
   CXCL2 has more supporting resources): HGNC and MGI name orthologs alike;
2. otherwise the pair supported by the most resources;
3. remaining ties: the alphabetically first human symbol.

The others are reported as alternatives. Several mouse genes may map to one human gene;
``tl.ora`` / ``tl.gsea`` then keep one assay per human gene (the smallest p-value), as
for two assays of one protein.
"""

from __future__ import annotations

import functools
import gzip
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import resources

import numpy as np
import pandas as pd

from ..errors import ValidationError, format_message
from ._manifest import static_manifest

__all__ = ["ortholog_table", "to_human", "OrthologMap", "ORGANISMS"]

#: Organisms whose symbols can be mapped to human.
ORGANISMS = ("human", "mouse")

CHOICE_RULE = (
    "one human ortholog per mouse gene (HGNC HCOP): the same symbol in capitals if it is "
    "an ortholog, else the pair supported by the most resources, then alphabetical"
)


def _check_organism(organism: str) -> None:
    if organism not in ORGANISMS:
        msg = format_message(
            f"organism must be one of {list(ORGANISMS)!r}, got {organism!r}",
            hint="Mouse symbols are mapped to human orthologs; other species are not shipped.",
        )
        raise ValidationError(msg)


@functools.lru_cache(maxsize=1)
def _raw_table() -> pd.DataFrame:
    entry = static_manifest()["orthologs"]["mouse"]
    data = resources.files("olinkpipe.genesets").joinpath("data", entry["file"]).read_bytes()
    frame = pd.read_csv(
        io.BytesIO(gzip.decompress(data)),
        sep="\t",
        dtype={"mouse": str, "human": str, "n_sources": np.int64},
        keep_default_na=False,
    )
    return frame


def ortholog_table(organism: str = "mouse") -> pd.DataFrame:
    """The shipped ortholog pairs (a copy): ``mouse, human, n_sources``.

    Examples
    --------
    >>> t = ortholog_table()
    >>> int(t[(t["mouse"] == "Il6") & (t["human"] == "IL6")]["n_sources"].iloc[0]) >= 5
    True
    """
    _check_organism(organism)
    if organism == "human":
        msg = "organism='human' needs no ortholog table."
        raise ValidationError(msg)
    return _raw_table().copy()


@functools.lru_cache(maxsize=8)
def _choices(min_sources: int) -> tuple[dict[str, tuple[int, int]], np.ndarray, dict[str, str]]:
    """Pairs sorted by preference within each mouse gene, and where each gene's run is.

    Returns ``runs[mouse] -> (start, stop)`` into ``humans`` (best first) and
    ``lower[mouse.lower()] -> mouse`` for case-insensitive look-ups.
    """
    t = _raw_table()  # stored in preference order (bundle.sort_by_preference)
    t = t[t["n_sources"].to_numpy() >= min_sources]
    mice = t["mouse"].to_numpy(dtype=object)
    starts = np.flatnonzero(np.r_[True, mice[1:] != mice[:-1]]) if len(mice) else np.array([])
    stops = np.r_[starts[1:], len(mice)].astype(np.int64)
    runs = {str(m): (int(a), int(b)) for m, a, b in zip(mice[starts], starts, stops, strict=True)}
    lower: dict[str, str] = {}
    for m in sorted(runs):
        lower.setdefault(m.lower(), m)
    return runs, t["human"].to_numpy(dtype=object), lower


@dataclass(frozen=True)
class OrthologMap:
    """Result of :func:`to_human`: the mapping and what could not be mapped.

    ``mapping`` mouse symbol (as given) → human symbol; ``unmapped`` the symbols with no
    human ortholog in the table; ``alternatives`` mouse symbol → ``{"used": human,
    "others": [...]}`` for one-to-many orthologs; ``rule`` and ``source`` for attrs.
    """

    mapping: dict[str, str]
    unmapped: list[str]
    alternatives: dict[str, dict[str, object]] = field(default_factory=dict)
    rule: str = CHOICE_RULE
    source: str = ""

    def describe(self) -> dict[str, object]:
        """JSON-safe summary for result ``attrs``."""
        return {
            "organism": "mouse",
            "ortholog_source": self.source,
            "ortholog_rule": self.rule,
            "orthologs_unmapped": list(self.unmapped),
            "orthologs_one_to_many": {k: dict(v) for k, v in self.alternatives.items()},
        }


def to_human(
    symbols: Iterable[str], *, organism: str = "mouse", min_sources: int = 1
) -> OrthologMap:
    """Map mouse gene symbols to human orthologs (one each, see module notes).

    Parameters
    ----------
    symbols
        Mouse gene symbols (``Il6``); matched exactly, then ignoring case.
    organism
        ``"mouse"`` (the only species shipped besides human).
    min_sources
        Keep only pairs that at least this many orthology resources support (HCOP's
        measure of confidence; 1 keeps every pair).

    Returns
    -------
    OrthologMap
        ``mapping``, ``unmapped`` and ``alternatives`` (one-to-many choices).

    Examples
    --------
    >>> m = to_human(["Il6", "Cxcl1", "Ccl3", "NotAGene"])
    >>> m.mapping
    {'Il6': 'IL6', 'Cxcl1': 'CXCL1', 'Ccl3': 'CCL3'}
    >>> m.unmapped
    ['NotAGene']
    """
    _check_organism(organism)
    if organism == "human":
        syms = [str(s) for s in symbols]
        return OrthologMap({s: s for s in syms}, [], source="identity (human)")
    if int(min_sources) < 1:
        msg = f"min_sources must be >= 1, got {min_sources!r}."
        raise ValidationError(msg)
    runs, humans, lower = _choices(int(min_sources))
    mapping: dict[str, str] = {}
    unmapped: list[str] = []
    alternatives: dict[str, dict[str, object]] = {}
    for s in dict.fromkeys(str(x).strip() for x in symbols):
        key = s if s in runs else lower.get(s.lower())
        if key is None:
            unmapped.append(s)
            continue
        start, stop = runs[key]
        mapping[s] = str(humans[start])
        if stop - start > 1:
            others = [str(h) for h in humans[start + 1 : stop]]
            alternatives[s] = {"used": mapping[s], "others": others}
    entry = static_manifest()["orthologs"]["mouse"]
    return OrthologMap(
        mapping, unmapped, alternatives, source=f"{entry['title']}; {entry['version']}"
    )
