"""The fixed-effects design of :func:`~olinkpipe.tl.lmer`: sum-to-zero coding of a full
factorial plus covariates, lmerTest's type-III contrasts ``L`` and the assays that cannot be
tested before any fit."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from .._design import factor_levels, sum_coding


def _zapsmall(a: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest entry."""
    mx = float(np.max(np.abs(a))) if a.size else 0.0
    if mx > 0:
        digits = max(0, digits - int(np.ceil(np.log10(mx))))
    return np.round(a, digits)


class _Design:
    """Fixed effects: full factorial of ``variables`` plus additive ``covariates``.

    ``x`` is the sum-to-zero coded design that is fitted (raw numerics); ``spans`` maps each
    term to its columns; ``lmats`` holds lmerTest's type-III contrast of each term in the
    coefficients of ``x`` (see :func:`_type3_contrasts`).
    """

    def __init__(self, obs: pd.DataFrame, variables: list[str], covariates: list[str]):
        self.levels = factor_levels(obs, variables + covariates)
        self.terms: list[tuple[str, ...]] = [
            t for r in range(1, len(variables) + 1) for t in itertools.combinations(variables, r)
        ]
        self.terms += [(c,) for c in covariates]
        self.factors = [c for c in variables + covariates if self.levels[c] is not None]
        blocks = {c: self._blocks(obs, c) for c in variables + covariates}
        n = len(obs)
        cols: dict[str, list[np.ndarray]] = {k: [np.ones((n, 1))] for k in ["sum", "trt", "full"]}
        keys: dict[str, list] = {"trt": [()], "full": [()]}  # column keys: (term, levels)
        self.spans: list[tuple[str, slice]] = []
        pos = 1
        for term in self.terms:
            for kind in cols:
                block, key = blocks[term[0]][kind]
                key = [(k,) for k in key]
                for f in term[1:]:
                    b2, k2 = blocks[f][kind]
                    block = (block[:, :, None] * b2[:, None, :]).reshape(n, -1)
                    key = [(*a, b) for a in key for b in k2]
                cols[kind].append(block)
                if kind in keys:
                    keys[kind] += [(term, k) for k in key]
            width = cols["sum"][-1].shape[1]
            self.spans.append((":".join(term), slice(pos, pos + width)))
            pos += width
        self.x = np.hstack(cols["sum"])
        self.lmats = _type3_contrasts(
            self.x,
            np.hstack(cols["trt"]),
            np.hstack(cols["full"]),
            keys,
            self.terms,
            self.spans,
            {c: self.levels[c] is None for c in variables + covariates},
        )

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows of the fitted (sum-coded) design for the predictor values in ``frame``."""
        cols = {}
        for c, lev in self.levels.items():
            if lev is None:
                cols[c] = frame[c].to_numpy(dtype=float)[:, None]
            else:
                cols[c] = sum_coding(frame[c].astype(str).to_numpy(), lev)
        n = len(frame)
        blocks = [np.ones((n, 1))]
        for term in self.terms:
            block = cols[term[0]]
            for f in term[1:]:
                block = (block[:, :, None] * cols[f][:, None, :]).reshape(n, -1)
            blocks.append(block)
        return np.hstack(blocks)

    def _blocks(self, obs: pd.DataFrame, c: str) -> dict:
        """Columns of ``c`` in sum, treatment and full-indicator coding, with level keys."""
        lev = self.levels[c]
        if lev is None:
            col = obs[c].to_numpy(dtype=float)[:, None]
            return {k: (col, [None]) for k in ["sum", "trt", "full"]}
        vals = obs[c].astype(str).to_numpy()
        full = (vals[:, None] == np.asarray(lev)[None, :]).astype(float)
        return {
            "sum": (sum_coding(vals, lev), lev[:-1]),
            "trt": (full[:, 1:], lev[1:]),  # R's contr.treatment: first level is the reference
            "full": (full, lev),
        }


def _type3_contrasts(x_sum, x_trt, rdx, keys, terms, spans, numeric) -> list[np.ndarray]:
    """lmerTest's type-III contrast of every term, mapped to the sum-coded coefficients.

    A port of lmerTest's ``extract_contrasts_type3`` (``get_contrasts_type3`` for models in
    ``contr.treatment`` coding, as ``olink_lmer`` fits them): ``L = zapsmall(t(ginv(X) rdX))``
    with ``X`` the treatment-coded design and ``rdX`` the rank-deficient design (intercept
    plus all-level indicators of every term); the columns of a term contained in other terms
    (SAS containment: more variables, the same numeric ones) are replaced by ``zapsmall`` of
    their residuals on the columns of the containing terms, highest order first; a term's
    contrast is its columns at the rows of ``X``'s coefficients, nonzero rows kept. As in
    ``get_contrasts_type3`` for other codings, it is mapped to the fitted (sum-coded)
    coefficients by ``zapsmall(ginv(X) X_sum)``, exact here (small integers). The
    ``zapsmall`` rounding to 7 digits (1/3 → 0.3333333) is kept: the ``L`` rows, and with
    them lmerTest's per-row Satterthwaite df, are lmerTest's.
    """
    lmat = _zapsmall(np.linalg.lstsq(x_trt, rdx, rcond=None)[0].T)  # rdX cols × X cols
    vars_of = [set(t) for t in terms]
    nums = [{v for v in t if numeric[v]} for t in terms]
    order = sorted(range(len(terms)), key=lambda i: -len(terms[i]))
    for i in order:
        contains = [j for j in range(len(terms)) if vars_of[i] < vars_of[j] and nums[i] == nums[j]]
        if contains:
            sl = spans[i][1]
            other = np.hstack([lmat[:, spans[j][1]] for j in contains])
            coef = np.linalg.lstsq(other, lmat[:, sl], rcond=None)[0]
            lmat[:, sl] = _zapsmall(lmat[:, sl] - other @ coef)
    where = {k: r for r, k in enumerate(keys["full"])}
    lmat = lmat[[where[k] for k in keys["trt"]]]  # rows of X's coefficients: p × p
    to_sum = _zapsmall(np.linalg.lstsq(x_trt, x_sum, rcond=None)[0])  # β_trt = M β_sum
    out = []
    for _, sl in spans:
        lt = lmat[:, sl].T
        lt = lt[np.abs(lt).sum(axis=1) > 1e-8]
        out.append(lt @ to_sum)
    return out


def _pre_reasons(y: np.ndarray, obs: pd.DataFrame, design: _Design, variables) -> np.ndarray:
    """Assays not tested before fitting: no value at all, none in a level of a factor (as
    ``olink_lmer``), or none in a cell of the factorial (``olink_lmer`` does test those)."""
    m = y.shape[1]
    reason = np.full(m, "", dtype=object)
    observed = (~np.isnan(y)).astype(float)
    reason[observed.sum(axis=0) == 0] = "all values missing"

    def mark(empty: np.ndarray, text: str) -> None:
        fresh = empty & (reason == "")
        reason[fresh] = text

    for f in design.factors:
        vals = obs[f].astype(str).to_numpy()
        for lev in design.levels[f] or []:
            mark(observed[vals == lev].sum(axis=0) == 0, f"no NPX value in level {lev!r} of {f!r}")
    factors = [v for v in variables if design.levels[v] is not None]
    for r in range(len(factors), 1, -1):
        for combo in itertools.combinations(factors, r):
            vals = [obs[f].astype(str).to_numpy() for f in combo]
            for cell in itertools.product(*(design.levels[f] or [] for f in combo)):
                rows = np.logical_and.reduce([v == c for v, c in zip(vals, cell, strict=True)])
                mark(
                    observed[rows].sum(axis=0) == 0,
                    f"no NPX value in the {'×'.join(combo)} cell {cell}: not tested "
                    "(lmerTest would test the estimable part, 'Missing cells'; olinkpipe "
                    "does not)",
                )
    return reason
