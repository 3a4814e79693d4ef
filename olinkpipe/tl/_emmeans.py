"""Estimated marginal means and their pairwise contrasts, as emmeans computes them: the
post-hoc step shared by :func:`~olinkpipe.tl.lmer_posthoc` and
:func:`~olinkpipe.tl.ordinal_posthoc`.

The cells of the effect and the rows ``L`` of their means (:func:`emm_cells`), the contrast
rows per assay (:func:`assay_rows`), adjusted p-values and interval multipliers on the ``t``
(:func:`critical`, :func:`adjusted_p`) or ``z`` scale (:func:`z_adjust`), and the result
frame (:func:`posthoc_frame`, :func:`posthoc_tail`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from .._design import long_frame
from ..errors import DesignError, format_message

#: the p-value adjustments of the post-hoc functions (emmeans' ``adjust``)
P_ADJUST = ("tukey", "sidak", "bonferroni", "none")


def check_p_adjust(p_adjust: str) -> None:
    if p_adjust not in P_ADJUST:
        msg = format_message(
            f"p_adjust must be one of {list(P_ADJUST)}; got {p_adjust!r}",
            hint="Use 'tukey' (emmeans' default for pairwise contrasts).",
        )
        raise DesignError(msg)


def check_effect(effect, effect_l: list[str], variables: list[str], argname: str, hint: str):
    """Every effect term is one of the model's ``variables`` (named ``argname``)."""
    missing = [e for e in effect_l if e not in variables]
    if not effect_l or missing:
        msg = format_message(
            f"effect {missing or effect!r} is not among {argname} {variables!r}", hint=hint
        )
        raise DesignError(msg)


def check_factor_effect(effect_l: list[str], levels: dict) -> None:
    """Only factors (``levels[e]`` not None) are compared."""
    numeric = [e for e in effect_l if levels[e] is None]
    if numeric:
        msg = format_message(
            f"effect {numeric!r} is numeric: only factors are compared",
            hint="Convert the column to strings to treat it as a factor.",
        )
        raise DesignError(msg)


def emm_cells(design, obs: pd.DataFrame, effect: list[str]):
    """emmeans' cells of ``effect`` (first factor varying fastest), their labels and a
    function giving the rows ``L`` (cell means) for an assay's observed samples."""
    levels = design.levels
    cells = [c[::-1] for c in itertools.product(*[levels[e] for e in effect[::-1]])]
    labels = [" ".join(c) for c in cells]
    others = [c for c in levels if c not in effect]
    numeric = [c for c in others if levels[c] is None]
    cache: dict[tuple, np.ndarray] = {}

    def lmat(ok: np.ndarray) -> np.ndarray:
        # emmeans(cov.reduce = round(c(mean, mean + sd), 4)) of olink_lmer_posthoc
        vals = []
        for c in numeric:
            v = obs[c].to_numpy(dtype=float)[ok]
            mu, sd = float(np.mean(v)), float(np.std(v, ddof=1)) if v.size > 1 else np.nan
            vals.append((round(mu, 4), round(mu + sd, 4)))
        key = tuple(vals)
        if key not in cache:
            axes = [levels[c] if levels[c] is not None else vals[numeric.index(c)] for c in others]
            rest = pd.DataFrame(list(itertools.product(*axes)), columns=others)
            rows = []
            for cell in cells:
                grid = rest.assign(**dict(zip(effect, cell, strict=True)))
                rows.append(design.matrix(grid).mean(axis=0))
            cache[key] = np.vstack(rows)
        return cache[key]

    return cells, labels, lmat


def critical(method: str, conf_level: float, k: int, family: int, df: np.ndarray):
    """Half-width multiplier of emmeans' adjusted intervals (``t`` scale)."""
    out = np.full(df.shape, np.nan)
    ok = np.isfinite(df) & (df > 0)
    if method == "tukey":
        for d in np.unique(df[ok]):
            out[df == d] = stats.studentized_range.ppf(conf_level, k, d) / np.sqrt(2.0)
        return out
    level = {
        "sidak": (1.0 + conf_level ** (1.0 / family)) / 2.0,
        "bonferroni": 1.0 - (1.0 - conf_level) / (2.0 * family),
        "none": (1.0 + conf_level) / 2.0,
    }[method]
    out[ok] = stats.t.ppf(level, df[ok])
    return out


def adjusted_p(method: str, t: np.ndarray, df: np.ndarray, k: int, family: int) -> np.ndarray:
    p = np.full(t.shape, np.nan)
    ok = np.isfinite(t) & np.isfinite(df) & (df > 0)
    if method == "tukey":
        p[ok] = stats.studentized_range.sf(np.abs(t[ok]) * np.sqrt(2.0), k, df[ok])
    else:
        raw = 2.0 * stats.t.sf(np.abs(t[ok]), df[ok])
        if method == "sidak":
            raw = -np.expm1(family * np.log1p(-raw))
        elif method == "bonferroni":
            raw = family * raw
        p[ok] = raw
    return np.minimum(p, 1.0)


def z_adjust(method: str, z: np.ndarray, k: int, family: int, conf_level: float):
    """emmeans' adjusted p-values and interval multipliers with ``df = Inf`` (z tests)."""
    if method == "tukey":
        with np.errstate(invalid="ignore"):
            p = stats.studentized_range.sf(np.abs(z) * np.sqrt(2.0), k, np.inf)
        crit = stats.studentized_range.ppf(conf_level, k, np.inf) / np.sqrt(2.0)
        return np.minimum(p, 1.0), crit
    raw = 2.0 * stats.norm.sf(np.abs(z))
    if method == "sidak":
        p = -np.expm1(family * np.log1p(-raw))
        level = (1.0 + conf_level ** (1.0 / family)) / 2.0
    elif method == "bonferroni":
        p = family * raw
        level = 1.0 - (1.0 - conf_level) / (2.0 * family)
    else:
        p, level = raw, (1.0 + conf_level) / 2.0
    return np.minimum(p, 1.0), stats.norm.ppf(level)


def pairs_of(k: int) -> list[tuple[int, int]]:
    """emmeans' pairwise contrasts: every earlier cell minus every later one."""
    return list(itertools.combinations(range(k), 2))


def assay_rows(y: np.ndarray, lmat_of: Callable, pairs, *, means: bool) -> list[np.ndarray]:
    """Per assay: the cell-mean rows for its observed samples, or their pairwise contrasts."""
    out = []
    for j in range(y.shape[1]):
        lm = lmat_of(~np.isnan(y[:, j]))
        if not means:
            lm = np.vstack([lm[a] - lm[b] for a, b in pairs])
        out.append(lm)
    return out


def posthoc_frame(
    ann: pd.DataFrame,
    effect: Sequence[str],
    cells,
    labels,
    pairs,
    est: np.ndarray,
    se: np.ndarray,
    crit,
    *,
    means: bool,
) -> tuple[pd.DataFrame, np.ndarray | None]:
    """Rows per assay and contrast (``means``: per cell): ``term``, ``contrast`` and
    ``estimate`` (or the effect columns and ``emmean``), ``ci_low``, ``ci_high`` and the
    statistic ``est / se`` (contrasts only; also returned)."""
    m, nrow = est.shape
    frame = long_frame(ann, nrow)
    frame["term"] = ":".join(effect)
    if means:
        for i, e in enumerate(effect):
            frame[e] = np.tile([c[i] for c in cells], m)
        frame["emmean"] = est.ravel()
    else:
        frame["contrast"] = np.tile([f"{labels[a]} - {labels[b]}" for a, b in pairs], m)
        frame["estimate"] = est.ravel()
    frame["ci_low"] = (est - crit * se).ravel()
    frame["ci_high"] = (est + crit * se).ravel()
    stat = None
    if not means:
        with np.errstate(invalid="ignore", divide="ignore"):
            stat = est / se
        frame["statistic"] = stat.ravel()
    return frame, stat


def posthoc_tail(frame, df, p_adj, fits: list[dict], alpha: float) -> None:
    """``df``, then (contrasts: ``p_adj`` given) ``p_adj`` and ``significant``, then ``n``
    and ``reason`` from the per-assay fits."""
    nrow = len(frame) // max(len(fits), 1)
    frame["df"] = df.ravel() if isinstance(df, np.ndarray) else df
    if p_adj is not None:
        frame["p_adj"] = p_adj.ravel()
        frame["significant"] = frame["p_adj"].fillna(1.0) < alpha
    frame["n"] = np.repeat([f["n"] for f in fits], nrow)
    frame["reason"] = np.repeat([f["reason"] for f in fits], nrow).astype(str)
