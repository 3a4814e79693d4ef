"""Re-export of :mod:`olinkpipe._ordinal` (moved there to be shared with ``tl``)."""

from .._ordinal import OrdinalFit, fit_ordinal

__all__ = ["OrdinalFit", "fit_ordinal"]
