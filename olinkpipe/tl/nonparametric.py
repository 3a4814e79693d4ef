"""Non-parametric one-way tests over all assays: Kruskal–Wallis / Friedman and post hoc.

The counterparts of OlinkAnalyze's ``olink_one_non_parametric`` and
``olink_one_non_parametric_posthoc``. The public wrappers validate the design and pull the
matrix; the array-only kernels below rank each block of assays once (sorting along the
sample axis) and form rank sums and tie terms as matrix products, so no Python loop runs
per assay.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import anndata as ad
import numpy as np
import pandas as pd
from scipy import special, stats

from .._design import (
    annotation,
    assay_list,
    complete_blocks,
    levels_of,
    long_frame,
    matrix,
    require_obs,
    select,
)
from .._docs import doc_adata, doc_alpha, doc_params
from .._stats import bh_adjust
from .._validate import check_literal
from .._warnings import warn
from ..errors import DesignError, format_message, preview
from . import _kernels
from ._ranks import runs

__all__ = ["nonparametric", "nonparametric_posthoc"]

logger = logging.getLogger("olinkpipe")

BLOCK = 512  # assays ranked together; bounds the working memory to a few copies of a block


# --------------------------------------------------------------------------------------
# array-only kernels (samples × assays in, one value per assay out)


def _ranks(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Average ranks (assays × samples; NaN stays NaN) of the columns of ``x``, the count
    and Σ(t³ − t) per column.

    One sort per assay row of the transposed block; NaN is sorted as +inf (numpy's SIMD
    sort path, several times faster than sorting NaN) and masked afterwards.
    """
    isn = np.isnan(x.T)
    key = np.where(isn, np.inf, x.T)  # assays × samples, C-contiguous
    n = key.shape[1] - np.count_nonzero(isn, axis=1)
    order = np.argsort(key, axis=1)
    s = np.take_along_axis(key, order, axis=1)
    valid = np.arange(key.shape[1])[None, :] < n[:, None]
    new = np.ones(s.shape, dtype=bool)
    new[:, 1:] = s[:, 1:] != s[:, :-1]
    r, ties = runs(new, valid)
    ranks = np.empty_like(r)
    np.put_along_axis(ranks, order, r, axis=1)
    return ranks, n, ties


def rank_sums(x: np.ndarray, codes: np.ndarray, k: int) -> tuple:
    """Rank sums and counts per group for each assay (column) of ``x``.

    ``codes`` (one per row, ``0..k-1``) gives each sample's group. Returns ``rsum`` and
    ``cnt`` (assays × k), ``n`` (values per assay) and ``ties`` (Σ(t³ − t) per assay).
    """
    ranks, n, ties = _ranks(x)
    onehot = np.zeros((x.shape[0], k))
    onehot[np.arange(x.shape[0]), codes] = 1.0
    valid = ~np.isnan(ranks)
    cnt = valid.astype(float) @ onehot
    np.copyto(ranks, 0.0, where=~valid)
    rsum = ranks @ onehot
    return rsum, cnt, n, ties


def kruskal_stat(rsum: np.ndarray, cnt: np.ndarray, n: np.ndarray, ties: np.ndarray) -> tuple:
    """Kruskal–Wallis H with tie correction (R ``kruskal.test``) and its df per assay."""
    nf = n.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        term = np.where(cnt > 0, rsum**2 / np.where(cnt > 0, cnt, 1.0), 0.0).sum(axis=1)
        h = 12.0 * term / (nf * (nf + 1.0)) - 3.0 * (nf + 1.0)
        h = h / (1.0 - ties / (nf**3 - nf))
    df = (cnt > 0).sum(axis=1) - 1.0
    with np.errstate(invalid="ignore"):
        p = stats.chi2.sf(h, df)
    return h, df, p


def dunn_z(rsum, cnt, n, ties, pairs) -> np.ndarray:
    """Dunn's z for each pair ``(a, b)``: mean rank of a minus that of b over its SE.

    The variance uses all ``N`` values of the assay with the tie correction of Dunn (1964)
    as dunn.test computes it: ``(N(N+1)/12 − Σ(t³ − t)/(12(N − 1)))·(1/n_a + 1/n_b)``.
    """
    nf = n.astype(float)[:, None]
    a = np.array([i for i, _ in pairs], dtype=int)
    b = np.array([j for _, j in pairs], dtype=int)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = rsum / cnt
        s2 = nf * (nf + 1.0) / 12.0 - ties[:, None] / (12.0 * (nf - 1.0))
        se = np.sqrt(s2 * (1.0 / cnt[:, a] + 1.0 / cnt[:, b]))
        return (mean[:, a] - mean[:, b]) / se


def friedman_stat(blocks: np.ndarray) -> tuple:
    """Friedman chi² with tie correction (R ``friedman.test``) over complete subjects.

    ``blocks`` is subjects × k levels × assays; a subject counts for an assay only if all
    ``k`` values are present. Returns ``chi2``, ``p`` and ``n`` (complete subjects).
    """
    k = blocks.shape[1]
    complete = ~np.isnan(blocks).any(axis=1)  # subjects × assays
    below = np.zeros(blocks.shape)
    equal = np.zeros(blocks.shape)
    for j in range(k):  # k comparisons of every value with level j (k is small)
        other = blocks[:, j : j + 1, :]
        below += blocks > other
        equal += blocks == other
    ranks = below + (equal + 1.0) / 2.0  # average rank within the subject
    rsum = np.where(complete[:, None, :], ranks, 0.0).sum(axis=0).T  # m × k
    # Σ over tie groups of t³ − t = Σ over values of t² − 1 (t = size of the value's group)
    tsum = np.where(complete[:, None, :], equal**2 - 1.0, 0.0).sum(axis=(0, 1))
    n = complete.sum(axis=0).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        num = 12.0 * ((rsum - n[:, None] * (k + 1) / 2.0) ** 2).sum(axis=1)
        chi2 = num / (n * k * (k + 1) - tsum / (k - 1))
        p = stats.chi2.sf(chi2, k - 1)
    return chi2, p, n.astype(np.int64)


def oa_dunn_adjust(p: np.ndarray) -> np.ndarray:
    """dunn.test's ``method = "bh"`` per row: ``min(1, p·m/r)``, no step-up.

    ``m`` is the number of non-NaN p-values in the row and ``r`` the ascending rank of
    each; among equal p-values the earlier column gets the larger rank (R's stable
    ``order(decreasing = TRUE)``). Unlike Benjamini–Hochberg, the running minimum over
    larger ranks is not taken, so an adjusted p-value can exceed that of a larger p.
    """
    m = (~np.isnan(p)).sum(axis=1, keepdims=True)
    key = np.where(np.isnan(p), np.inf, -p)  # NaN last
    order = np.argsort(key, axis=1, kind="stable")
    pos = np.empty_like(order)
    np.put_along_axis(pos, order, np.arange(p.shape[1])[None, :], axis=1)
    r = m - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(np.isnan(p), np.nan, np.minimum(1.0, p * m / r))


def r_signif(x: np.ndarray, digits: int) -> np.ndarray:
    """R's ``signif``: round to ``digits`` significant digits (NaN and 0 kept)."""
    x = np.asarray(x, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        e = np.floor(np.log10(np.abs(x)))
        scale = 10.0 ** (digits - 1 - np.where(np.isfinite(e), e, 0.0))
        return np.where(x == 0, 0.0, np.round(x * scale) / scale)


def r_round_p(x: np.ndarray, digits: int = 3) -> np.ndarray:
    """rstatix's ``p_round``: ``round(x, 3)`` above 10⁻³, else ``signif(x, 3)``."""
    x = np.asarray(x, dtype=float)
    return np.where(np.abs(x) > 10.0**-digits, np.round(x, digits), r_signif(x, digits))


def _bh_rows(p: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg within each row (the contrasts of one assay)."""
    return np.vstack([bh_adjust(row) for row in p]) if p.shape[0] else p.copy()


# --------------------------------------------------------------------------------------
# design


@dataclass
class _Design:
    rows: np.ndarray  # sample positions used
    codes: np.ndarray  # level of each used sample
    levels: list[str]
    acols: np.ndarray  # assay columns used
    excl: dict
    grid: np.ndarray | None = None  # subjects × levels positions in rows (-1 = none)
    subjects: list[str] | None = None
    excluded_subjects: list | None = None


def _design(adata, groupby, pair, exclude_controls, assays, step) -> _Design:
    cols = [groupby] + ([pair] if pair is not None else [])
    require_obs(adata, cols, hint="Pass column names of adata.obs.")
    rows, acols, excl = select(adata, cols, exclude_controls=exclude_controls, step=step)
    if assays is not None:
        pos = pd.Index(adata.var_names).get_indexer(assay_list(adata, assays))
        acols = np.array([c for c in pos if c in set(acols)], dtype=int)
    lab = adata.obs[groupby].iloc[rows]
    levels = levels_of(lab) if pair is not None else sorted(pd.unique(lab.astype(str)))
    if len(levels) < 2:
        msg = format_message(
            f"obs[{groupby!r}] has fewer than two levels among the samples tested",
            column=groupby,
            rows=levels,
            hint="A one-way test needs at least two groups.",
        )
        raise DesignError(msg)
    codes = pd.Index(levels).get_indexer(lab.astype(str))
    d = _Design(rows, codes, levels, acols, excl)
    if pair is not None:
        pid = adata.obs[pair].iloc[rows].astype(str).to_numpy()
        blocks = complete_blocks(pid, codes, levels, pair=pair, step=step)
        d.grid, d.subjects, d.excluded_subjects = blocks.grid, blocks.subjects, blocks.excluded
    return d


def _untested(x: np.ndarray, codes: np.ndarray, k: int, *, by_level: bool) -> np.ndarray:
    """Reasons (empty = tested): all values missing, or (by_level) a level all missing."""
    valid = ~np.isnan(x)
    reason = np.full(x.shape[1], "", dtype=object)
    if by_level:
        onehot = np.zeros((x.shape[0], k))
        onehot[np.arange(x.shape[0]), codes] = 1.0
        empty = (valid.T.astype(float) @ onehot) == 0
        reason[empty.any(axis=1)] = "all values missing in a level"
    reason[~valid.any(axis=0)] = "all values missing"
    return reason


def _blocks(x: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """subjects × levels × assays values from the samples × assays block ``x``."""
    out = x[np.maximum(grid, 0)]
    out[grid < 0] = np.nan
    return out


def _assay_blocks(m: int):
    for start in range(0, m, BLOCK):
        yield slice(start, min(start + BLOCK, m))


def _warn_untested(step: str, ann: pd.DataFrame, reason: np.ndarray) -> None:
    for why in sorted({r for r in reason if r}):
        ids = ann["OlinkID"].to_numpy()[reason == why]
        warn(f"{step}: {len(ids)} assay(s) not tested ({why}): {preview(ids)}")


# --------------------------------------------------------------------------------------
# public functions


@doc_params(adata=doc_adata, alpha=doc_alpha)
def nonparametric(
    adata: ad.AnnData,
    *,
    groupby: str,
    pair: str | None = None,
    alpha: float = 0.05,
    exclude_controls: bool = True,
    layer: str | None = None,
) -> pd.DataFrame:
    """Kruskal–Wallis (or Friedman, with ``pair=``) test of ``obs[groupby]`` per assay.

    Parameters
    ----------
    {adata}
    groupby
        Column of ``obs`` with two or more groups (e.g. ``"Site"``, ``"Time"``).
    pair
        Column of ``obs`` naming the subject (block). Given → Friedman's test for
        repeated measures (OlinkAnalyze ``dependence = TRUE, subject = pair``).
    {alpha}
    exclude_controls
        Leave out control samples and control assays (``is_control``).
    layer
        Use this layer instead of ``X``.

    Returns
    -------
    pandas.DataFrame
        One row per assay, sorted by ``p_value`` (NaN last): ``OlinkID``, ``Assay``,
        ``UniProt``, ``Panel`` (those in ``var``), ``statistic`` (Kruskal–Wallis H or
        Friedman chi², both tie-corrected), ``df`` (groups − 1), ``p_value`` (chi²
        approximation), ``p_adj`` (Benjamini–Hochberg over the assays tested),
        ``significant`` (``p_adj < alpha``), ``n`` (values used; Friedman: complete
        subjects) and ``reason`` (why an assay was not tested; empty when tested).
        ``attrs``: ``method`` (``"kruskal"`` or ``"friedman"``), ``test``, ``groupby``,
        ``pair``, ``levels``, ``alpha``, ``n_tested``, ``untested_assays``,
        ``excluded_samples``, ``excluded_assays``, ``excluded_subjects`` ([subject,
        reason] lists; Friedman only).

    Raises
    ------
    MissingColumnError
        ``groupby`` or ``pair`` is not a column of ``obs``.
    DesignError
        Fewer than two groups; with ``pair``, no subject with one sample at every level.

    Notes
    -----
    As OlinkAnalyze ``olink_one_non_parametric`` (5.0.2): samples with a missing group
    (and, here, control samples) are left out; assays with no value at all, or with no
    value in some group, are not tested (their rows stay, with a ``reason``); missing
    values are dropped per assay. Kruskal–Wallis equals R ``kruskal.test`` and
    ``scipy.stats.kruskal``. Friedman: per assay only subjects with a value at every level
    count (OlinkAnalyze removes the others per assay), then R ``friedman.test`` /
    ``scipy.stats.friedmanchisquare``. Subjects with two samples at one level are left
    out and listed (OlinkAnalyze would stop with R's "not an unreplicated complete block
    design" error), as are subjects missing a level altogether; OlinkAnalyze counts
    complete subjects per assay *name*, here per OlinkID (the same unless two panels
    share an assay name). Differences: untested assays keep a row (OlinkAnalyze drops
    them), rows are sorted by ``p_value`` (OlinkAnalyze: by adjusted p), and an
    all-tied assay gives NaN with a reason.

    Examples
    --------
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"Site": np.repeat(["A", "B", "C"], 6)},
    ...                    index=[f"S{i}" for i in range(18)])
    >>> var = pd.DataFrame(index=pd.Index(["OID1", "OID2"], name="OlinkID"))
    >>> adata = ad.AnnData(rng.normal(size=(18, 2)), obs=obs, var=var)
    >>> res = op.tl.nonparametric(adata, groupby="Site")
    >>> res.attrs["method"], res["df"].tolist()
    ('kruskal', [2.0, 2.0])
    """
    step = "nonparametric"
    d = _design(adata, groupby, pair, exclude_controls, None, step)
    x_all = matrix(adata, layer)
    m, k = d.acols.size, len(d.levels)
    stat, df, p = np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
    n = np.zeros(m, dtype=np.int64)
    reason = np.full(m, "", dtype=object)
    for sl in _assay_blocks(m):
        x = x_all[np.ix_(d.rows, d.acols[sl])]
        reason[sl] = _untested(x, d.codes, k, by_level=True)
        if pair is None:
            rsum, cnt, nb, ties = rank_sums(x, d.codes, k)
            stat[sl], df[sl], p[sl] = kruskal_stat(rsum, cnt, nb, ties)
        else:
            stat[sl], p[sl], nb = friedman_stat(_blocks(x, d.grid))
            df[sl] = k - 1.0
            no_block = (nb == 0) & (reason[sl] == "")
            reason[sl][no_block] = "no subject with a value at every level"
        n[sl] = nb
    ties_only = (reason == "") & ~np.isfinite(stat)
    reason[ties_only] = "all values tied"
    bad = reason != ""
    stat[bad], p[bad] = np.nan, np.nan
    df[bad & (reason != "all values tied")] = np.nan
    ann = annotation(adata, d.acols)
    _warn_untested(step, ann, reason)
    order = np.argsort(np.where(np.isnan(p), np.inf, p), kind="stable")
    frame = ann.iloc[order].reset_index(drop=True)
    frame["statistic"] = stat[order]
    frame["df"] = df[order]
    frame["p_value"] = p[order]
    frame["p_adj"] = bh_adjust(frame["p_value"].to_numpy())
    frame["significant"] = frame["p_adj"].to_numpy() < alpha
    frame["n"] = n[order]
    frame["reason"] = reason[order].astype(str)
    method = "friedman" if pair is not None else "kruskal"
    frame.attrs = {
        "method": method,
        "test": "Friedman rank sum test (tie-corrected)"
        if pair is not None
        else "Kruskal-Wallis rank sum test (tie-corrected)",
        "groupby": groupby,
        "pair": pair,
        "levels": list(d.levels),
        "alpha": float(alpha),
        "n_tested": int(np.isfinite(p).sum()),
        "untested_assays": [
            [str(a), str(r)] for a, r in zip(ann["OlinkID"], reason, strict=True) if r
        ],
        "excluded_subjects": d.excluded_subjects or [],
        **d.excl,
    }
    logger.info("nonparametric: %s on %d assays", method, m)
    return frame


@doc_params(adata=doc_adata)
def nonparametric_posthoc(
    adata: ad.AnnData,
    *,
    groupby: str,
    pair: str | None = None,
    assays: Sequence[str] | None = None,
    adjust: Literal["oa", "bh"] = "oa",
    alpha: float = 0.05,
    exclude_controls: bool = True,
    layer: str | None = None,
) -> pd.DataFrame:
    """Pairwise comparisons after :func:`nonparametric`: Dunn's test, or paired Wilcoxon.

    Parameters
    ----------
    {adata}
    groupby
        Column of ``obs`` with the groups compared pairwise.
    pair
        Column of ``obs`` naming the subject. None → Dunn's test (after Kruskal–Wallis);
        given → Wilcoxon signed-rank tests on the complete subjects (after Friedman).
    assays
        OlinkIDs (``var`` index) to test; all when None (OlinkAnalyze ``olinkid_list``).
    adjust
        Adjustment of the p-values over the contrasts of each assay. ``"oa"`` (default)
        as OlinkAnalyze: for Dunn's test dunn.test's ``"bh"`` as FSA calls it,
        ``min(1, p·m/r)`` with ``r`` the ascending rank of ``p`` among the ``m``
        contrasts (equal p-values ranked in dunn.test's contrast order), *without*
        Benjamini–Hochberg's running minimum (so it is not monotone in ``p``); for the
        paired Wilcoxon tests rstatix's numbers: each p rounded to 3 significant digits,
        Benjamini–Hochberg, the result rounded to 3 decimals (3 significant digits below
        0.001). ``"bh"``: Benjamini–Hochberg (R
        ``p.adjust(method = "BH")``) on the unrounded p-values, for both.
    alpha
        Significance level applied to ``p_adj`` for ``significant``.
    exclude_controls
        Leave out control samples and control assays (``is_control``).
    layer
        Use this layer instead of ``X``.

    Returns
    -------
    pandas.DataFrame
        One row per assay and contrast, sorted by ``p_adj`` (NaN last; OlinkAnalyze's
        order): annotation columns, ``term`` (``groupby``), ``contrast`` (``"A - B"``, A
        before B in level order: alphabetical for Dunn, as dunn.test; the categories'
        order, else alphabetical, for Wilcoxon, as R's factor), ``estimate`` (Dunn: z,
        positive when A has the higher mean rank, OlinkAnalyze's ``estimate``; Wilcoxon:
        Hodges–Lehmann pseudo-median of A − B, R's value), ``statistic`` (z; V),
        ``p_value`` (two-sided, unadjusted), ``p_adj``, ``significant``
        (``p_adj < alpha``), ``n`` (values of the assay used by Dunn's test; complete
        subjects for Wilcoxon) and ``reason``. ``attrs``: ``method`` (``"dunn"`` or
        ``"wilcoxon_paired"``), ``test``, ``adjust``, ``groupby``, ``pair``,
        ``levels``, ``alpha``, ``excluded_samples``, ``excluded_assays``,
        ``excluded_subjects``.

    Raises
    ------
    MissingColumnError
        ``groupby`` or ``pair`` is not a column of ``obs``.
    DesignError
        Unknown assays, fewer than two groups, no complete subject.

    Notes
    -----
    As OlinkAnalyze ``olink_one_non_parametric_posthoc`` (5.0.2).
    Dunn (``FSA::dunnTest``, which calls ``dunn.test``, two-sided): per assay the
    missing values are dropped and the values ranked once; ``z = (R̄_A − R̄_B) /
    sqrt((N(N+1)/12 − Σ(t³ − t)/(12(N − 1)))·(1/n_A + 1/n_B))``, ``p = 2Φ(−|z|)``.
    Only assays with no value at all are left out; a group without values in an assay
    drops out of that assay's contrasts (dunn.test does the same), its contrasts keep a
    row with NaN and a reason, and ``m`` counts the contrasts tested. ``adjust="oa"``
    reproduces dunn.test's numbers; ``"bh"`` is the proper step-up procedure.
    Wilcoxon (after Friedman; ``rstatix::wilcox_test(paired = TRUE)`` as OlinkAnalyze
    calls it): the subjects and assays of :func:`nonparametric` with ``pair`` (complete
    subjects per assay), R's ``wilcox.test(A, B, paired = TRUE, conf.int = TRUE)`` for
    every pair of levels: exact p below 50 pairs without ties or zeros, else normal with
    tie and continuity correction; estimate by R's root finder (see
    :func:`differential`, ``wilcoxon_ci="uniroot"``); ``p_value`` is never rounded,
    ``p_adj`` is rounded as rstatix does only with ``adjust="oa"``. Difference: assays
    with fewer than 3 complete subjects get NaN and a reason (R would still test them).

    Examples
    --------
    >>> import anndata as ad
    >>> import numpy as np
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> rng = np.random.default_rng(0)
    >>> obs = pd.DataFrame({"Site": np.repeat(["A", "B", "C"], 6)},
    ...                    index=[f"S{i}" for i in range(18)])
    >>> var = pd.DataFrame(index=pd.Index(["OID1"], name="OlinkID"))
    >>> adata = ad.AnnData(rng.normal(size=(18, 1)), obs=obs, var=var)
    >>> res = op.tl.nonparametric_posthoc(adata, groupby="Site")
    >>> sorted(res["contrast"])
    ['A - B', 'A - C', 'B - C']
    """
    check_literal("adjust", adjust, ["oa", "bh"])
    step = "nonparametric_posthoc"
    d = _design(adata, groupby, pair, exclude_controls, assays, step)
    x_all = matrix(adata, layer)
    m, k = d.acols.size, len(d.levels)
    if pair is None:  # dunn.test's order: 1-2, 1-3, 2-3, 1-4, ... (breaks ties in p)
        pairs = [(j, i) for i in range(1, k) for j in range(i)]
    else:  # rstatix: combn order
        pairs = list(itertools.combinations(range(k), 2))
    c = len(pairs)
    res = {key: np.full((m, c), np.nan) for key in ("estimate", "statistic", "p_value")}
    n = np.zeros((m, c), dtype=np.int64)
    reason = np.full((m, c), "", dtype=object)
    for sl in _assay_blocks(m):
        x = x_all[np.ix_(d.rows, d.acols[sl])]
        if pair is None:
            _dunn_block(x, d, pairs, sl, res, n, reason)
        else:
            _wilcoxon_block(x, d, pairs, sl, res, n, reason)
    p = res["p_value"]
    if adjust == "oa" and pair is None:
        p_adj = oa_dunn_adjust(p)
    elif adjust == "oa":  # rstatix: p to 3 significant digits, BH, then rounded again
        p_adj = r_round_p(_bh_rows(r_signif(p, 3)))
    else:
        p_adj = _bh_rows(p)
    ann = annotation(adata, d.acols)
    _warn_untested(step, ann, np.where((reason != "").all(axis=1), reason[:, 0], ""))
    frame = long_frame(ann, c)
    frame["term"] = groupby
    frame["contrast"] = np.tile([f"{d.levels[i]} - {d.levels[j]}" for i, j in pairs], m)
    frame["estimate"] = res["estimate"].ravel()
    frame["statistic"] = res["statistic"].ravel()
    frame["p_value"] = p.ravel()
    frame["p_adj"] = p_adj.ravel()
    frame["significant"] = frame["p_adj"].to_numpy() < alpha
    frame["n"] = n.ravel()
    frame["reason"] = reason.ravel().astype(str)
    frame = frame.sort_values("p_adj", kind="stable", na_position="last").reset_index(drop=True)
    frame.attrs = {
        "method": "dunn" if pair is None else "wilcoxon_paired",
        "test": "Dunn's test (tie-corrected, two-sided)"
        if pair is None
        else "Wilcoxon signed-rank test on complete subjects (R wilcox.test, paired)",
        "adjust": adjust,
        "adjust_method": _ADJUST_TEXT[(adjust, pair is None)],
        "groupby": groupby,
        "pair": pair,
        "levels": list(d.levels),
        "alpha": float(alpha),
        "excluded_subjects": d.excluded_subjects or [],
        **d.excl,
    }
    return frame


_ADJUST_TEXT = {
    ("oa", True): "dunn.test 'bh' within assay: min(1, p*m/rank), no step-up",
    ("oa", False): "rstatix: signif(p, 3), Benjamini-Hochberg within assay, rounded to 3",
    ("bh", True): "Benjamini-Hochberg within assay",
    ("bh", False): "Benjamini-Hochberg within assay",
}


def _dunn_block(x, d: _Design, pairs, sl, res, n, reason) -> None:
    k = len(d.levels)
    rsum, cnt, nb, ties = rank_sums(x, d.codes, k)
    z = dunn_z(rsum, cnt, nb, ties, pairs)
    a = np.array([i for i, _ in pairs])
    b = np.array([j for _, j in pairs])
    empty = (cnt[:, a] == 0) | (cnt[:, b] == 0)
    why = reason[sl]
    why[empty] = "no value in a group"
    why[(nb == 0)[:, None] & np.ones(len(pairs), dtype=bool)] = "all values missing"
    tied = (why == "") & ~np.isfinite(z)
    why[tied] = "all values tied"
    z[why != ""] = np.nan
    res["estimate"][sl] = z
    res["statistic"][sl] = z
    res["p_value"][sl] = 2.0 * special.ndtr(-np.abs(z))
    n[sl] = nb[:, None]


def _wilcoxon_block(x, d: _Design, pairs, sl, res, n, reason) -> None:
    k = len(d.levels)
    untested = _untested(x, d.codes, k, by_level=True)
    blocks = _blocks(x, d.grid)  # subjects × k × assays
    complete = ~np.isnan(blocks).any(axis=1)  # subjects × assays
    why = reason[sl]
    for ci, (i, j) in enumerate(pairs):
        diff = blocks[:, i, :] - blocks[:, j, :]
        diff[~complete] = np.nan
        out = _kernels.signed_rank(
            diff, exact=None, correction=True, conf_level=0.95, ci_method="uniroot"
        )
        for key in ("estimate", "statistic", "p_value"):
            res[key][sl, ci] = out[key]
        n[sl, ci] = complete.sum(axis=0)
        why[:, ci] = np.where(np.isnan(out["p_value"]), out["reason"], "")
    why[untested != ""] = untested[untested != ""][:, None]
    for key in ("estimate", "statistic", "p_value"):
        res[key][sl][untested != ""] = np.nan
