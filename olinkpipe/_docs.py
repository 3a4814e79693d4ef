"""Shared docstring fragments, filled in with :func:`doc_params`."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

doc_adata = """\
adata
    Samples × assays AnnData as returned by :func:`olinkpipe.read_npx`."""

doc_copy = """\
copy
    Return a new AnnData (default) and leave the input alone; with ``copy=False`` the
    input is changed in place and returned."""

doc_alpha = """\
alpha
    Significance level applied to ``p_adj`` (Benjamini–Hochberg) for ``significant``."""

doc_ax = """\
ax
    Matplotlib Axes to draw on; a new figure is made when ``None``."""


def doc_params(**kwds: str) -> Callable[[F], F]:
    """Fill ``{name}`` placeholders in a docstring with the shared fragments above.

    A placeholder stands alone on its line; the fragment's continuation lines are
    indented like the placeholder, so numpy-style sections stay well formed.
    """

    def dec(obj: F) -> F:
        doc = obj.__doc__
        if doc:
            for name, fragment in kwds.items():
                pattern = re.compile(rf"^([ \t]*)\{{{name}\}}", re.MULTILINE)
                doc = pattern.sub(lambda m, frag=fragment: textwrap.indent(frag, m.group(1)), doc)
            obj.__doc__ = doc
        return obj

    return dec
