"""The baseline characteristics table ("Table 1") with the tests clinical papers use.

:func:`table_one` returns a tidy :class:`pandas.DataFrame` of formatted cells; one
exporter, :func:`export_table_one`, writes it as CSV, tab-separated text, Markdown, HTML or
a Word-friendly HTML document.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats
from scipy.special import gammaln

from .._validate import check_literal, require_columns
from .._warnings import warn
from ..errors import DesignError, ValidationError, format_message, preview

__all__ = ["table_one", "export_table_one", "smd_continuous", "smd_categorical"]

TEST_NAMES = {
    "chi2": "Pearson chi-square",
    "yates": "chi-square, Yates continuity correction",
    "fisher": "Fisher exact",
    "fisher_fh": "Fisher-Freeman-Halton exact",
    "fisher_fh_mc": "Fisher-Freeman-Halton (Monte Carlo)",
    "welch": "Welch t-test",
    "anova": "one-way ANOVA",
    "mannwhitney": "Mann-Whitney U",
    "kruskal": "Kruskal-Wallis",
}
_MAX_EXACT_TABLES = 2_000_000


# --------------------------------------------------------------------------- test rules
def choose_2x2_test(table: np.ndarray) -> str:
    """The auto rule for a 2×2 table: ``"chi2"``, ``"yates"`` or ``"fisher"``.

    n < 40 or any expected count < 1 → Fisher; otherwise all expected ≥ 5 → Pearson
    chi-square; otherwise (some expected in [1, 5)) → Yates-corrected chi-square.
    """
    table = np.asarray(table, dtype=float)
    n = table.sum()
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / n
    emin = expected.min()
    tol = 1e-9
    if n < 40 or emin < 1 - tol:
        return "fisher"
    if emin >= 5 - tol:
        return "chi2"
    return "yates"


def fisher_freeman_halton(
    table: np.ndarray, *, n_resamples: int = 100_000, seed: int | None = 0
) -> tuple[float, str]:
    """Two-sided Fisher–Freeman–Halton p-value of an r×c table; returns (p, method key).

    Exact (full enumeration) when one margin has two categories and the number of
    tables is at most two million; otherwise a seeded Monte-Carlo estimate over tables
    with the observed margins (``scipy.stats.random_table``).
    """
    t = np.asarray(table, dtype=np.int64)
    if t.shape[0] != 2 and t.shape[1] == 2:
        t = t.T
    rows, cols = t.sum(axis=1), t.sum(axis=0)
    n = int(t.sum())
    const = gammaln(rows + 1).sum() + gammaln(cols + 1).sum() - gammaln(n + 1)

    def logp(tabs: np.ndarray) -> np.ndarray:  # tabs: (..., r, c)
        return const - gammaln(tabs + 1).sum(axis=(-2, -1))

    obs = logp(t)
    if t.shape[0] == 2:
        r1 = int(rows[0])
        first = np.zeros((1, 0), dtype=np.int64)
        feasible = True
        for j, cj in enumerate(cols):
            rest = int(cols[j + 1 :].sum())
            x = np.arange(cj + 1)
            s = first.sum(axis=1)
            cand = np.concatenate(
                [np.repeat(first, x.size, axis=0), np.tile(x, first.shape[0])[:, None]], axis=1
            )
            tot = np.repeat(s, x.size) + np.tile(x, first.shape[0])
            keep = (tot <= r1) & (tot + rest >= r1)
            first = cand[keep]
            if first.shape[0] > _MAX_EXACT_TABLES:
                feasible = False
                break
        if feasible:
            tabs = np.stack([first, cols[None, :] - first], axis=1)
            lp = logp(tabs)
            p = float(np.exp(lp[lp <= obs + 1e-7 * abs(obs) + 1e-12]).sum())
            return min(p, 1.0), "fisher_fh"
    rng = np.random.default_rng(seed)
    dist = stats.random_table(rows, cols)
    sims = dist.rvs(size=n_resamples, random_state=rng)
    lp = logp(sims)
    k = int((lp <= obs + 1e-7 * abs(obs) + 1e-12).sum())
    return (k + 1) / (n_resamples + 1), "fisher_fh_mc"


def _categorical_test(
    table: np.ndarray, test: str, rxc: str, seed: int | None
) -> tuple[str, float]:
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return "", np.nan
    if table.shape == (2, 2):
        kind = choose_2x2_test(table) if test == "auto" else test
        if kind == "fisher":
            return kind, float(stats.fisher_exact(table).pvalue)
        res = stats.chi2_contingency(table, correction=kind == "yates")
        return kind, float(res.pvalue)
    if rxc == "fisher" or test == "fisher":
        p, kind = fisher_freeman_halton(table, seed=seed)
        return kind, p
    return "chi2", float(stats.chi2_contingency(table, correction=False).pvalue)


def _small_expected(table: np.ndarray) -> str:
    """SPSS's footnote for an r×c chi-square: cells with an expected count below 5."""
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    if table.shape[0] < 2 or table.shape[1] < 2:
        return ""
    expected = stats.contingency.expected_freq(table)
    k = int((expected < 5).sum())
    if k == 0:
        return ""
    return (
        f"{k} of {expected.size} cells ({100 * k / expected.size:.0f}%) have an expected "
        f"count below 5 (minimum {expected.min():.2f})"
    )


def _continuous_test(values: list[np.ndarray], nonnormal: bool) -> tuple[str, float]:
    values = [v for v in values if v.size > 0]
    if len(values) < 2 or (not nonnormal and any(v.size < 2 for v in values)):
        return "", np.nan
    if len(values) == 2:
        if nonnormal:
            x, y = values
            # R's wilcox.test rule: exact without ties when both groups have < 50 values,
            # else the normal approximation with tie and continuity correction (scipy's
            # "auto" switches to the approximation above 8 values, which R does not)
            ties = np.unique(np.concatenate([x, y])).size < x.size + y.size
            exact = x.size < 50 and y.size < 50 and not ties
            res = stats.mannwhitneyu(
                x,
                y,
                alternative="two-sided",
                method="exact" if exact else "asymptotic",
                use_continuity=True,
            )
            return "mannwhitney", float(res.pvalue)
        return "welch", float(stats.ttest_ind(values[0], values[1], equal_var=False).pvalue)
    if nonnormal:
        return "kruskal", float(stats.kruskal(*values).pvalue)
    return "anova", float(stats.f_oneway(*values).pvalue)


# --------------------------------------------------------------------------- formatting
def _fmt(x: float, digits: int) -> str:
    return "NA" if not np.isfinite(x) else f"{x:.{digits}f}"


def _summary(v: np.ndarray, nonnormal: bool, spread: str, digits: int) -> str:
    if v.size == 0:
        return "NA"
    if not nonnormal:
        sd = v.std(ddof=1) if v.size > 1 else np.nan
        return f"{_fmt(v.mean(), digits)} ({_fmt(sd, digits)})"
    med = np.median(v)
    if spread == "iqr":
        q1, q3 = np.percentile(v, [25, 75])
        return f"{_fmt(med, digits)} [{_fmt(q1, digits)}, {_fmt(q3, digits)}]"
    return f"{_fmt(med, digits)} ({_fmt(v.min(), digits)}-{_fmt(v.max(), digits)})"


def format_p(p: float, digits: int = 3) -> str:
    """Format a p-value for a publication table (``"<0.001"``, ``"0.042"``)."""
    if p is None or not np.isfinite(p):
        return ""
    floor = 10.0**-digits
    return f"<{floor:.{digits}f}" if p < floor else f"{p:.{digits}f}"


# --------------------------------------------------------------------------- SMD
def smd_continuous(per: Sequence[np.ndarray]) -> np.ndarray:
    """Pairwise standardised mean differences of a continuous variable, as tableone.

    ``|mean_i − mean_j| / sqrt((s_i² + s_j²) / 2)`` for the pairs ``(1, 2), (1, 3), …,
    (2, 3), …`` of groups (R's ``combn`` order), missing values already removed; 0 when
    both the difference and the pooled variance are 0 (tableone's ``StdDiff``).

    Examples
    --------
    >>> import numpy as np
    >>> smd_continuous([np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.0, 4.0])]).tolist()
    [1.0]
    """
    means = np.array([v.mean() if v.size else np.nan for v in per])
    var = np.array([v.var(ddof=1) if v.size > 1 else np.nan for v in per])
    out = []
    for i, j in _pairs(len(per)):
        diff, pooled = means[i] - means[j], (var[i] + var[j]) / 2.0
        with np.errstate(divide="ignore", invalid="ignore"):
            d = abs(diff) / np.sqrt(pooled)
        out.append(0.0 if (diff == 0 and pooled == 0) else d)
    return np.array(out, dtype=float)


def smd_categorical(counts: np.ndarray) -> np.ndarray:
    """Pairwise multivariate SMDs of a categorical variable (Yang & Dalton 2012), as tableone.

    ``counts`` is levels × groups. Per group the level proportions among known values,
    the first level dropped (when there are more); for groups ``i, j``
    ``sqrt(d' S⁺ d)`` with ``d = p_i − p_j``, ``S = (S_i + S_j) / 2``,
    ``S_k = diag(p_k) − p_k p_k'`` and ``S⁺`` the Moore–Penrose inverse (``MASS::ginv``'s
    tolerance); NaN when ``S`` is 0 and ``d`` is not, 0 when both are.

    Examples
    --------
    >>> import numpy as np
    >>> round(float(smd_categorical(np.array([[5, 2], [5, 8]]))[0]), 6)  # 50% vs 80%
    0.662589
    """
    tab = np.asarray(counts, dtype=float).T  # groups × levels
    with np.errstate(divide="ignore", invalid="ignore"):
        prop = tab / tab.sum(axis=1, keepdims=True)
    if prop.shape[1] > 1:
        prop = prop[:, 1:]
    covs = [np.diag(p) - np.outer(p, p) for p in prop]
    out = []
    for i, j in _pairs(len(prop)):
        d, sp = prop[i] - prop[j], (covs[i] + covs[j]) / 2.0
        known = sp[~np.isnan(sp)]
        if np.all(known == 0):
            out.append(0.0 if np.all(~np.isnan(d) & (d == 0)) else np.nan)
        elif np.isnan(sp).any() or np.isnan(d).any():
            out.append(np.nan)
        else:
            ginv = np.linalg.pinv(sp, rcond=np.sqrt(np.finfo(float).eps))
            out.append(float(np.sqrt(d @ ginv @ d)))
    return np.array(out, dtype=float)


def _pairs(k: int) -> list[tuple[int, int]]:
    return [(i, j) for i in range(k) for j in range(i + 1, k)]


# --------------------------------------------------------------------------- table one steps
def _check_options(
    group: str,
    categorical: list[str],
    continuous: list[str],
    nonnormal: list[str],
    *,
    test: str,
    rxc_test: str,
    spread: str,
    smd: bool | str,
) -> None:
    """Raise on an unknown test / rxc_test / spread / smd, a variable listed twice (or
    used as the group), or a nonnormal name not in continuous."""
    check_literal("test", test, ["auto", "chi2", "yates", "fisher", "none"])
    check_literal("rxc_test", rxc_test, ["chi2", "fisher"])
    check_literal("spread", spread, ["range", "iqr"])
    if smd is not False:
        check_literal("smd", "mean" if smd is True else smd, ["mean", "max"])
    allvars = categorical + continuous
    dup = sorted({v for v in allvars if allvars.count(v) > 1} | ({group} & set(allvars)))
    if dup:
        msg = format_message(
            f"variable(s) {dup!r} listed twice (or also used as the group)",
            hint="List each column once, under categorical or continuous.",
        )
        raise DesignError(msg)
    stray = [v for v in nonnormal if v not in continuous]
    if stray:
        msg = format_message(
            f"nonnormal names {stray!r} that are not in continuous",
            hint="Add them to continuous as well, or remove them from nonnormal.",
        )
        raise DesignError(msg)


def _group_levels(g: pd.Series, group: str) -> list:
    """The group's levels present (categories' order, else sorted); at least two."""
    if isinstance(g.dtype, pd.CategoricalDtype):
        levels = [lv for lv in g.cat.categories if (g == lv).any()]
    else:
        levels = sorted(g.unique(), key=lambda x: (str(type(x)), x))
    if len(levels) < 2:
        msg = format_message(
            f"table_one compares groups but {group!r} has {len(levels)} level(s)",
            column=group,
            hint="Pass a group column with at least two levels.",
        )
        raise DesignError(msg)
    return levels


@dataclass
class _Summary:
    """One variable's summary: ``(level, cells)`` rows, its test, p-value and pairwise SMDs."""

    rows: list[tuple[str, list[str]]]
    kind: str = ""
    p: float = np.nan
    smd: np.ndarray | None = None
    note: str = ""  # an r×c chi-square's expected counts below 5


def _summarise_categorical(
    x: pd.Series,
    masks: list[np.ndarray],
    *,
    test: str,
    rxc_test: str,
    seed: int | None,
    digits: int,
    overall: bool,
    smd: bool,
) -> _Summary:
    """``n (%)`` per level and group (of known values), the categorical test and the SMDs."""
    cats = (
        [c for c in x.cat.categories if (x == c).any()]
        if isinstance(x.dtype, pd.CategoricalDtype)
        else sorted(x.dropna().unique(), key=lambda v: (str(type(v)), v))
    )
    counts = np.array(
        [[int(((x == c).to_numpy() & m).sum()) for m in masks] for c in cats]
    ).reshape(len(cats), len(masks))
    out = _Summary(rows=[])
    if test != "none" and counts.size:
        out.kind, out.p = _categorical_test(counts, test, rxc_test, seed)
        if out.kind == "chi2" and counts.shape != (2, 2):
            out.note = _small_expected(counts)
    known = counts.sum(axis=0)
    for i, c in enumerate(cats):
        cells = [_count_cell(counts[i, k], known[k], digits) for k in range(len(masks))]
        if overall:
            cells.append(_count_cell(counts[i].sum(), known.sum(), digits))
        out.rows.append((_level(c), cells))
    if not cats:
        out.rows.append(("", ["NA"] * (len(masks) + int(overall))))
    if smd:
        nan = np.full(len(_pairs(len(masks))), np.nan)
        out.smd = smd_categorical(counts) if cats else nan
    return out


def _summarise_continuous(
    x: pd.Series,
    masks: list[np.ndarray],
    *,
    nonnormal: bool,
    test: str,
    spread: str,
    digits: int,
    overall: bool,
    smd: bool,
) -> _Summary:
    """Mean (SD) or median (range / IQR) per group, the test and the SMDs; numbers only."""
    num = pd.to_numeric(x, errors="coerce")
    bad = num.isna() & ~x.isna()
    if bad.any():
        msg = format_message(
            "continuous variable has non-numeric values",
            column=x.name,
            rows=x.index[bad].tolist(),
            hint="Convert it to numbers, or list it under categorical.",
        )
        raise ValidationError(msg)
    vals = num.to_numpy(dtype=float)
    known = ~x.isna().to_numpy()
    per = [vals[m & known] for m in masks]
    out = _Summary(rows=[])
    if test != "none":
        out.kind, out.p = _continuous_test(per, nonnormal)
    cells = [_summary(v, nonnormal, spread, digits) for v in per]
    if overall:
        cells.append(_summary(vals[known], nonnormal, spread, digits))
    level = (
        "mean (SD)"
        if not nonnormal
        else ("median (range)" if spread == "range" else "median [IQR]")
    )
    out.rows.append((level, cells))
    if smd:
        out.smd = smd_continuous(per)
    return out


class _Rows:
    """The table's rows (dicts) as they are added, and each variable's pairwise SMDs."""

    def __init__(self, cols: list[str], groups: list[str], smd: bool | str) -> None:
        self.cols, self.smd_mode = cols, smd
        self.pair_names = [f"{groups[i]} vs {groups[j]}" for i, j in _pairs(len(groups))]
        self.rows: list[dict] = []
        self.smds: dict[str, dict[str, float]] = {}

    def add(self, variable: str, level: str, cells: list[str], kind="", p=np.nan) -> None:
        """Append one row: its cells, the test's display name and the p-value."""
        row = {"variable": variable, "level": level}
        row.update(dict(zip(self.cols, cells, strict=True)))
        row["test"] = TEST_NAMES.get(kind, "")
        row["p_value"] = p
        row["smd"] = np.nan
        self.rows.append(row)

    def add_variable(
        self, var: str, name: str, s: _Summary, miss: np.ndarray, masks: list[np.ndarray]
    ) -> None:
        """Append a variable's rows (test and SMD on the first) and its ``missing`` row."""
        first = len(self.rows)
        for i, (level, cells) in enumerate(s.rows):
            self.add(name, level, cells, s.kind if i == 0 else "", s.p if i == 0 else np.nan)
        if s.smd is not None:
            self.smds[var] = {k: float(v) for k, v in zip(self.pair_names, s.smd, strict=True)}
            summary = s.smd.max() if self.smd_mode == "max" else s.smd.mean()  # NaN if any
            self.rows[first]["smd"] = float(summary)
        if miss.any():
            cells = [str(int((miss & m).sum())) for m in masks]
            if len(self.cols) > len(masks):  # Overall
                cells.append(str(int(miss.sum())))
            self.add(name, "missing", cells)


# --------------------------------------------------------------------------- table one
def table_one(
    df: pd.DataFrame,
    *,
    group: str,
    categorical: Sequence[str] = (),
    continuous: Sequence[str] = (),
    nonnormal: Sequence[str] | None = None,
    test: str = "auto",
    rxc_test: str = "chi2",
    spread: str = "range",
    digits: int = 1,
    overall: bool = False,
    labels: dict[str, str] | None = None,
    seed: int | None = 0,
    smd: bool | str = False,
) -> pd.DataFrame:
    """Baseline characteristics by group with one p-value per variable.

    Parameters
    ----------
    df
        Patient table, one row per patient.
    group
        Column with the groups compared (e.g. ``"arm"``: CAR-T vs control).
    categorical
        Columns summarised as ``n (%)`` per level (percent of patients with a known value).
    continuous
        Columns summarised as ``mean (SD)``, or for those in ``nonnormal`` as
        ``median (min-max)`` (``spread="range"``) or ``median [Q1, Q3]``
        (``spread="iqr"``).
    nonnormal
        Continuous columns treated as non-normal: median summary and rank tests.
    test
        Test for categorical variables. ``"auto"`` (default) follows the convention of
        clinical papers and SPSS: for a 2×2 table, Pearson's chi-square when n ≥ 40 and
        every expected count ≥ 5; the Yates-corrected chi-square when n ≥ 40 and the
        smallest expected count is in [1, 5); Fisher's exact test when n < 40 or some
        expected count < 1. ``"chi2"``, ``"yates"``, ``"fisher"`` force one test (for 2×2
        tables); ``"none"`` reports no p-values. Continuous variables: Welch's t-test
        (normal) or Mann–Whitney U (``nonnormal``; exact p without ties when both groups
        have < 50 patients, else the normal approximation with tie and continuity
        correction, as R's ``wilcox.test``) for two groups; one-way ANOVA or
        Kruskal–Wallis for more than two.
    rxc_test
        Test for tables larger than 2×2: ``"chi2"`` (Pearson, default) or ``"fisher"``
        (Fisher–Freeman–Halton: exact enumeration when one margin has two categories,
        otherwise a seeded Monte-Carlo estimate with 100 000 tables).
    spread
        ``"range"`` or ``"iqr"`` for non-normal variables.
    digits
        Decimals of means, SDs, medians and percentages.
    overall
        Add an ``Overall`` column.
    labels
        Optional display names for variables (``{"age": "Age, years"}``).
    seed
        Seed of the Monte-Carlo Fisher–Freeman–Halton test.
    smd
        Add a column ``smd``: the standardised mean difference of each variable between
        the groups, as R's ``tableone`` reports it (``print(CreateTableOne(...), smd =
        TRUE)``). Continuous variables (normal or not): ``|m_1 − m_2| / sqrt((s_1² +
        s_2²) / 2)``; categorical ones: Yang & Dalton's multivariate SMD over the levels
        (:func:`smd_categorical`). With more than two groups, ``True`` or ``"mean"``
        gives the mean of the pairwise SMDs (tableone's printed ``SMD``) and ``"max"``
        the largest; every pair is in ``attrs["smd"]`` (variable → ``"A vs B"`` →
        value, tableone's ``ExtractSmd``). Default False: no column.

    Returns
    -------
    pandas.DataFrame
        Columns ``variable, level``, one column per group (named by the group level),
        ``Overall`` if asked, ``test`` (the test's name, e.g. ``"Fisher exact"``) and
        ``p_value`` (float, on the variable's first row; ``NaN`` elsewhere), ``smd``
        if asked (float, on the variable's first row). The first
        row is ``variable="n"`` with the group sizes. A variable with missing values gets
        an extra row ``level="missing"`` with the count; percentages and tests use the
        patients with a known value (never silently dropped). ``attrs``: ``group``,
        ``groups``, ``n``, ``tests`` (variable → test key), ``missing`` (variable →
        count), ``excluded`` (rows without a group), ``test_rule``, ``notes``. An r×c
        chi-square with expected counts below 5 is warned about (as SPSS's footnote)
        and noted in ``notes``.

    Raises
    ------
    MissingColumnError
        A named column is absent.
    DesignError
        Fewer than two groups, or a variable listed twice.
    ValidationError
        A continuous column is not numeric.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> pts = pd.DataFrame({"arm": ["CAR-T"] * 5 + ["control"] * 5,
    ...                     "sex": ["M", "F", "M", "M", "F", "F", "F", "M", "F", "F"],
    ...                     "age": [30, 41, 25, 52, 38, 36, 44, 29, 50, 33]})
    >>> t1 = op.clinical.table_one(pts, group="arm", categorical=["sex"], continuous=["age"])
    >>> print(t1[["variable", "level", "CAR-T", "control"]].to_string(index=False))
    variable     level       CAR-T    control
           n                     5          5
         sex         F    2 (40.0)   4 (80.0)
         sex         M    3 (60.0)   1 (20.0)
         age mean (SD) 37.2 (10.4) 38.4 (8.5)
    >>> t1.loc[1, "test"], round(float(t1.loc[1, "p_value"]), 3)
    ('Fisher exact', 0.524)
    """
    categorical, continuous = list(categorical), list(continuous)
    nonnormal = list(nonnormal or [])
    labels = dict(labels or {})
    _check_options(
        group,
        categorical,
        continuous,
        nonnormal,
        test=test,
        rxc_test=rxc_test,
        spread=spread,
        smd=smd,
    )
    require_columns(df, [group] + categorical + continuous, what="patient table")
    no_group = df[group].isna()
    excluded = [str(i) for i in df.index[no_group]]
    if excluded:
        warn(
            f"table_one: excluded {len(excluded)} patient row(s) with a missing {group!r}: "
            f"{preview(excluded)}",
            stacklevel=3,
        )
    d = df.loc[~no_group]
    levels = _group_levels(d[group], group)
    gcols = [str(lv) for lv in levels]
    masks = [(d[group] == lv).to_numpy() for lv in levels]
    table = _Rows(gcols + (["Overall"] if overall else []), gcols, smd)
    sizes = [int(m.sum()) for m in masks]
    table.add("n", "", [str(s) for s in sizes] + ([str(len(d))] if overall else []))
    tests: dict[str, str] = {}
    missing: dict[str, int] = {}
    notes: list[str] = []
    options = {"test": test, "digits": digits, "overall": overall, "smd": smd is not False}
    for var in categorical + continuous:
        x = d[var]
        if var in categorical:
            s = _summarise_categorical(x, masks, rxc_test=rxc_test, seed=seed, **options)
            if s.note:
                notes.append(f"{var}: {s.note}")
                warn(
                    f"table_one: {var!r}: {s.note}; the chi-square p-value may be "
                    "inaccurate, rxc_test='fisher' gives the exact test.",
                    stacklevel=3,
                )
        else:
            s = _summarise_continuous(
                x, masks, nonnormal=var in nonnormal, spread=spread, **options
            )
        miss = x.isna().to_numpy()
        missing[var] = int(miss.sum())
        tests[var] = s.kind
        table.add_variable(var, labels.get(var, var), s, miss, masks)
    extra = ["smd"] if smd is not False else []
    out = pd.DataFrame(
        table.rows, columns=["variable", "level", *table.cols, "test", "p_value", *extra]
    )
    out.attrs = {
        "group": group,
        "groups": gcols,
        "n": dict(zip(gcols, sizes, strict=True)),
        "tests": tests,
        "missing": missing,
        "excluded": excluded,
        "test_rule": test,
        "rxc_test": rxc_test,
        "notes": notes,
        "digits": digits,
    }
    if smd is not False:
        out.attrs["smd"] = table.smds
        out.attrs["smd_summary"] = "max" if smd == "max" else "mean"
    return out


def _level(value: object) -> str:
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _count_cell(k: int, n: int, digits: int) -> str:
    pct = 100.0 * k / n if n else np.nan
    return f"{k} ({_fmt(pct, digits)})"


# --------------------------------------------------------------------------- export
def export_table_one(
    table: pd.DataFrame,
    path: str | PathLike[str] | None = None,
    *,
    fmt: str | None = None,
    p_digits: int = 3,
    title: str | None = None,
) -> str:
    """Render (and optionally write) a :func:`table_one` result.

    Parameters
    ----------
    table
        The frame returned by :func:`table_one`.
    path
        File to write; its suffix picks the format when ``fmt`` is ``None`` (``.csv``,
        ``.tsv``/``.txt``, ``.md``, ``.html``/``.htm``, ``.doc`` → Word).
    fmt
        ``"csv"``, ``"tsv"`` (pastes into Word or Excel as a table), ``"markdown"``,
        ``"html"`` (a bare ``<table>``) or ``"word"``: a standalone HTML document with a
        three-line-table layout and inline styles that Word opens (save as ``.doc``) or
        pastes as a native table, with the tests listed in a footnote.
    p_digits
        Decimals of p-values (smaller values print as ``<0.001``).
    title
        Optional caption (Markdown, HTML and Word).

    Returns
    -------
    str
        The rendered text (also written to ``path`` when given). Group headers carry the
        group size, e.g. ``CAR-T (n = 23)``; p-values are formatted text.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> pts = pd.DataFrame({"arm": ["A"] * 4 + ["B"] * 4, "sex": list("MFMMFFFM")})
    >>> t1 = op.clinical.table_one(pts, group="arm", categorical=["sex"])
    >>> print(op.clinical.export_table_one(t1, fmt="markdown").splitlines()[0])
    | Variable | Level | A (n = 4) | B (n = 4) | Test | p |
    """
    if fmt is None:
        suffix = Path(path).suffix.lower() if path is not None else ""
        fmt = {
            ".csv": "csv",
            ".tsv": "tsv",
            ".txt": "tsv",
            ".md": "markdown",
            ".html": "html",
            ".htm": "html",
            ".doc": "word",
        }.get(suffix, "csv" if path is None else "")
        if not fmt:
            msg = format_message(
                f"cannot tell the format from the file suffix {suffix!r}",
                file=str(path),
                hint="Pass fmt='csv', 'tsv', 'markdown', 'html' or 'word'.",
            )
            raise ValidationError(msg)
    check_literal("fmt", fmt, ["csv", "tsv", "markdown", "html", "word"])
    require_columns(table, ["variable", "level", "test", "p_value"], what="table_one result")
    fixed = ("variable", "level", "test", "p_value", "smd")
    groups = [c for c in table.columns if c not in fixed]
    has_smd = "smd" in table.columns
    nmap = dict(table.attrs.get("n", {}))
    if "Overall" in groups and "Overall" not in nmap and nmap:
        nmap["Overall"] = sum(nmap.values())
    heads = [f"{c} (n = {nmap[c]})" if c in nmap else str(c) for c in groups]
    body = table.copy()
    body["p_value"] = [format_p(p, p_digits) for p in body["p_value"]]
    # show each variable name once
    first = ~body["variable"].eq(body["variable"].shift())
    body["variable"] = np.where(first, body["variable"], "")
    smd_cols = []
    if has_smd:  # tableone prints the SMD with 3 decimals
        body["smd"] = ["" if np.isnan(v) else f"{v:.3f}" for v in body["smd"].astype(float)]
        smd_cols = ["smd"]
    body = body[["variable", "level", *groups, "test", "p_value", *smd_cols]].astype(str)
    header = ["Variable", "Level", *heads, "Test", "p", *(["SMD"] if has_smd else [])]
    if fmt in ("csv", "tsv"):
        out = body.set_axis(header, axis=1).to_csv(
            index=False, sep="," if fmt == "csv" else "\t", lineterminator="\n"
        )
    elif fmt == "markdown":
        esc = lambda s: str(s).replace("|", "\\|")  # noqa: E731
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(esc(v) for v in r) + " |" for r in body.to_numpy()]
        out = (f"**{title}**\n\n" if title else "") + "\n".join(lines) + "\n"
    else:
        out = _html(body, header, title, word=fmt == "word", table=table)
    if path is not None:
        Path(path).write_text(out, encoding="utf-8")
    return out


def _html(body: pd.DataFrame, header: list[str], title: str | None, *, word: bool, table):
    e = html.escape
    cell = 'style="padding:2px 8px;text-align:{a};{b}"'
    top = "border-top:1.5pt solid black;"
    mid = "border-bottom:0.75pt solid black;"
    bottom = "border-bottom:1.5pt solid black;"
    nrow = len(body)
    parts = [
        "<table style=\"border-collapse:collapse;font-family:'Times New Roman';font-size:10pt\">"
    ]
    if title:
        parts.append(f'<caption style="text-align:left"><b>{e(title)}</b></caption>')
    parts.append("<thead><tr>")
    for i, h in enumerate(header):
        a = "left" if i < 2 else "center"
        parts.append(f"<th {cell.format(a=a, b=top + mid if word else '')}>{e(h)}</th>")
    parts.append("</tr></thead><tbody>")
    for r, vals in enumerate(body.to_numpy()):
        parts.append("<tr>")
        for i, v in enumerate(vals):
            a = "left" if i < 2 else "center"
            b = bottom if word and r == nrow - 1 else ""
            parts.append(f"<td {cell.format(a=a, b=b)}>{e(str(v))}</td>")
        parts.append("</tr>")
    parts.append("</tbody></table>")
    tab = "".join(parts)
    if not word:
        return tab + "\n"
    used = [t for t in dict.fromkeys(table["test"]) if t]
    note = (
        "Categorical: n (%) of patients with known values; continuous: mean (SD) or median "
        "(range / [IQR]). Tests: " + "; ".join(used) + "."
        if used
        else "n (%) or mean (SD) / median."
    )
    return (
        '<html xmlns:o="urn:schemas-microsoft-com:office:office" '
        'xmlns:w="urn:schemas-microsoft-com:office:word">'
        '<head><meta charset="utf-8"><meta name="ProgId" content="Word.Document">'
        "<title>Table 1</title></head><body>"
        + tab
        + f"<p style=\"font-family:'Times New Roman';font-size:9pt\">{e(note)}</p>"
        + "</body></html>\n"
    )
