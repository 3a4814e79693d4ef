"""``read_npx(..., layers=[...])``: which of a file's extra per-cell columns are kept.

``layers`` governs the *extra per-cell columns* of a long export: every column other than
the value (``X``), the LOD, SampleID / OlinkID / PlateID / the QC column and the assay's
annotation columns that is not constant per sample (``obs``) nor per assay (``var``), i.e.
what the full read stores as ``adata.layers[name]`` under the column's name (Explore HT's
``Count``, ``ExtNPX``, ``PCNormalizedNPX``, a varying ``AssayQC`` as a code layer, ...).
The data model's own layers are never governed: the LOD (``varm["lod"]`` or
``layers["lod"]``), ``layers["measured"]`` and a per-cell QC column (a QC warning that
varies within a sample's panel, needed for ``qc_warning``) are always kept.

``None`` keeps every per-cell column (the default); a list keeps those named. Readers apply
the choice while reading (:func:`wanted`: measurement-level columns left out are not read
at all, other left-out columns are not scattered into a matrix); :func:`apply` applies it
after the fact for readers that do not, so every path gives the same AnnData. The choice is
recorded in ``uns["olinkpipe"]["layers"]`` (``{"kept": [...], "left_out": [...]}``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import anndata as ad

from .._provenance import provenance
from ..errors import DesignError, format_message
from ._roles import MEASUREMENT_LEVEL

__all__ = ["apply", "check_layers", "early_skip", "record", "unknown", "wanted"]

#: layers the data model needs, never governed by ``layers=``
MODEL_LAYERS = ("lod", "measured", "below_lod", "qc_warning")
_KEY = "layers"


class LayerNameError(DesignError):
    """A name in ``read_npx(..., layers=[...])`` is not a per-cell column of the file."""


def check_layers(layers: Sequence[str] | None) -> tuple[str, ...] | None:
    """``layers`` as a tuple of names (None stays None); DesignError for anything else.

    Examples
    --------
    >>> check_layers(["Count"]), check_layers(None)
    (('Count',), None)
    """
    if layers is None:
        return None
    if isinstance(layers, str) or not all(isinstance(x, str) for x in layers):
        msg = (
            f"Argument layers={layers!r} must be None (keep every per-cell column) or a list "
            "of column names, e.g. layers=['Count'] or layers=[]."
        )
        raise DesignError(msg)
    return tuple(dict.fromkeys(layers))


def wanted(keep: tuple[str, ...] | None, column: str) -> bool:
    """Is per-cell ``column`` kept as a layer?"""
    return keep is None or column in keep


def early_skip(
    keep: tuple[str, ...] | None, columns: Iterable[str], special: set | None = None
) -> list[str]:
    """Measurement-level columns (always layers) left out: readers need not read them.
    ``special``: the role columns (value, LOD, ...); found from ``columns`` when None."""
    if keep is None:
        return []
    columns = list(columns)
    if special is None:
        from ._roles import resolve_roles

        roles = resolve_roles(columns)
        special = {roles[k] for k in ("sample", "olinkid", "value", "lod", "plate", "qc")}
    return [c for c in columns if c in MEASUREMENT_LEVEL and c not in special and c not in keep]


def unknown(keep: tuple[str, ...] | None, available: Iterable[str], *, file: str | None) -> None:
    """Raise :class:`LayerNameError` when ``keep`` names a column that is not among the
    file's per-cell columns ``available``, listing them and close matches."""
    if keep is None:
        return
    avail = list(dict.fromkeys(available))
    bad = [k for k in keep if k not in avail]
    if not bad:
        return
    from .._names import close_matches

    near = sorted({m for b in bad for m in close_matches(b, avail, n=3)})
    hint = f"Did you mean {near}? " if near else ""
    shown = avail if avail else "none: every other column is a role, obs or var column"
    msg = format_message(
        f"layers={list(keep)!r}: {bad!r} is not a per-cell column of the file; its per-cell "
        f"columns are {shown!r}",
        file=file,
        hint=hint + "layers= names the file's extra per-cell columns (X, the LOD and the QC "
        "columns are always kept); use layers=None to keep them all.",
    )
    err = LayerNameError(msg)
    err.available = avail  # type: ignore[attr-defined]
    raise err


def record(adata: ad.AnnData, keep: tuple[str, ...] | None, left_out: Sequence[str]) -> None:
    """``uns["olinkpipe"]["layers"]``: the per-cell columns kept and left out."""
    if keep is None:
        return
    prov = provenance(adata)
    prov[_KEY] = {"kept": list(keep), "left_out": list(left_out)}
    if left_out and "long_columns" in prov:  # to_long writes back what was read
        prov["long_columns"] = [c for c in prov["long_columns"] if c not in set(left_out)]


def per_cell(adata: ad.AnnData) -> list[str]:
    """The governed layers of an AnnData as read: every layer but the data model's own and
    the per-cell QC column."""
    qc = adata.uns.get("olinkpipe", {}).get("columns", {}).get("qc")
    return [k for k in adata.layers.keys() if k not in MODEL_LAYERS and k != qc]


def apply(adata: ad.AnnData, keep: tuple[str, ...] | None, *, file: str | None) -> ad.AnnData:
    """Apply ``keep`` to an AnnData read in full (readers with no per-cell columns, e.g.
    wide Target exports): unknown names raise, left-out layers are dropped; a no-op when
    the reader applied it already."""
    if keep is None or _KEY in adata.uns.get("olinkpipe", {}):
        return adata
    avail = per_cell(adata)
    unknown(keep, avail, file=file)
    left = [k for k in avail if k not in keep]
    for k in left:
        del adata.layers[k]
    coded = adata.uns.get("olinkpipe", {}).get("coded_layers")
    for k in left:
        if isinstance(coded, dict):
            coded.pop(k, None)
    record(adata, keep, left)
    return adata
