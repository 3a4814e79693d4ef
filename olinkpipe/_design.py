"""The design layer every test function shares: :mod:`olinkpipe.tl` and
:func:`olinkpipe.clinical.protein_changes` (issue 20).

(The statistical design of a test; the plate layout of a study is :mod:`olinkpipe.design`.)
It sits one floor below ``tl`` and ``clinical`` (it imports neither), so both build their
designs here.

One place turns the caller's ``(adata, groupby, reference, target, pair, covariates,
exclusions)`` into a validated design:

- **columns and levels**: :func:`require_obs`, :func:`levels_of`, :func:`two_levels`
  (reference/target of a two-group comparison);
- **samples and assays used**, with what was left out and why (warned, listed in
  ``attrs``): :class:`Selection` (control samples, samples missing a design value, control
  assays) and :func:`select`;
- **pairing**: :func:`pair_two_levels` (one reference and one target sample per pair) and
  :func:`complete_blocks` (one sample per level and subject), incomplete pairs excluded
  with reasons;
- **covariates**: :func:`covariate_matrix`, :func:`two_group_covariates`;
- **assays**: :func:`assay_list` / :func:`subset_assays` (OlinkIDs), :func:`assay_positions`
  (names or OlinkIDs), :func:`annotation`;
- **result frames**: :func:`long_frame` (annotation repeated per term), :func:`ordered`
  (annotation first, then the method's result columns), :func:`family_p_adj`.

The functions here know AnnData and pandas; the statistics stay in the array-only kernels.
Where two public functions have always differed in a message or rule (e.g. which control
samples :func:`~olinkpipe.tl.differential` reports), the difference is an argument here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import anndata as ad
import numpy as np
import pandas as pd

from ._stats import bh_adjust
from ._validate import require_columns
from ._warnings import warn
from .errors import DesignError, format_message, preview

#: annotation columns copied from ``var`` to the front of every result (those present)
ANNOTATION = ["OlinkID", "Assay", "UniProt", "Panel"]


# --------------------------------------------------------------------------------------
# columns, levels and coding


def require_obs(
    adata: ad.AnnData, columns: Sequence[str], hint: str | None = "Name columns of adata.obs."
) -> None:
    """A :class:`~olinkpipe.errors.MissingColumnError` unless every column is in ``obs``."""
    if hint is None:
        require_columns(adata.obs, list(columns), what="obs")
    else:
        require_columns(adata.obs, list(columns), what="obs", hint=hint)


def matrix(adata: ad.AnnData, layer: str | None) -> np.ndarray:
    """``X`` (or ``layers[layer]``) as a dense float array."""
    x = adata.X if layer is None else adata.layers[layer]
    if hasattr(x, "toarray"):
        x = x.toarray()
    return np.asarray(x, dtype=float)


def is_numeric(s: pd.Series) -> bool:
    """A numeric obs column used as it is (booleans are categories, not numbers)."""
    return pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s)


def as_list(x: str | Sequence[str] | None) -> list[str]:
    """None → ``[]``, a string → ``[x]``, a sequence → a list."""
    if x is None:
        return []
    if isinstance(x, str):
        return [x]
    return list(x)


def split_terms(variable: str | Sequence[str]) -> list[str]:
    """Column names of ``"A*B"``, ``"A:B"`` or ``["A", "B"]``, each once, in order."""
    names: list[str] = []
    for v in as_list(variable):
        for part in re.split(r"[*:]", v):
            part = part.strip()
            if part and part not in names:
                names.append(part)
    return names


def levels_of(s: pd.Series) -> list[str]:
    """The levels present: the categories' order for a categorical, else sorted text."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        return [str(c) for c in s.cat.categories if (s == c).any()]
    return sorted(pd.unique(s.dropna().astype(str)))


def factor_levels(obs: pd.DataFrame, columns: Sequence[str]) -> dict[str, list[str] | None]:
    """Per column its levels (:func:`levels_of`), None for a numeric column; a DesignError
    for a factor with fewer than two levels among the samples used."""
    levels: dict[str, list[str] | None] = {}
    for c in columns:
        lev = None if is_numeric(obs[c]) else levels_of(obs[c])
        if lev is not None and len(lev) < 2:
            msg = format_message(
                f"obs[{c!r}] has fewer than two levels among the samples used",
                column=c,
                rows=lev,
                hint="Choose a column with at least two levels, or drop it.",
            )
            raise DesignError(msg)
        levels[c] = lev
    return levels


def sum_coding(values: np.ndarray, levels: list[str]) -> np.ndarray:
    """Sum-to-zero (deviation) contrasts: column k is 1 at level k, −1 at the last level."""
    k = len(levels)
    out = np.zeros((values.size, k - 1))
    for i, lev in enumerate(levels[:-1]):
        out[values == lev, i] = 1.0
    out[values == levels[-1], :] = -1.0
    return out


def covariate_matrix(obs: pd.DataFrame, covariates: Sequence[str]) -> tuple:
    """Numeric design columns for the covariates (categorical → treatment dummies)."""
    cols, names = [], []
    for c in covariates:
        s = obs[c]
        if not is_numeric(s):
            levels = sorted(pd.unique(s.dropna().astype(str)))
            for lev in levels[1:]:
                cols.append((s.astype(str) == lev).to_numpy(dtype=float))
                names.append(f"{c}[{lev}]")
        else:
            cols.append(s.to_numpy(dtype=float))
            names.append(c)
    if not cols:
        return np.zeros((len(obs), 0)), names
    return np.column_stack(cols), names


def two_levels(obs: pd.DataFrame, groupby: str, reference: str, target: str | None) -> tuple:
    """Labels of ``obs[groupby]`` as text (None where missing), reference and target.

    ``target`` may be None when ``groupby`` has exactly two levels.
    """
    codes, uniques = pd.factorize(obs[groupby])  # missing -> -1
    names = [str(u) for u in uniques]
    lab = pd.Series(np.array([*names, None], dtype=object)[codes], index=obs.index)
    levels = sorted(set(names))
    if str(reference) not in levels:
        msg = format_message(
            f"reference level {reference!r} is not a value of obs[{groupby!r}]",
            column=groupby,
            rows=levels,
            hint="Pass one of the listed levels as reference=.",
        )
        raise DesignError(msg)
    if target is None:
        others = [lv for lv in levels if lv != str(reference)]
        if len(others) != 1:
            msg = format_message(
                f"obs[{groupby!r}] has {len(levels)} levels, so target= must be given",
                column=groupby,
                rows=levels,
                hint="Name the level to compare with the reference as target=.",
            )
            raise DesignError(msg)
        target = others[0]
    if str(target) not in levels or str(target) == str(reference):
        msg = format_message(
            f"target level {target!r} is not a value of obs[{groupby!r}] other than the reference",
            column=groupby,
            rows=levels,
            hint="Pass a different level as target=.",
        )
        raise DesignError(msg)
    return lab, str(reference), str(target)


# --------------------------------------------------------------------------------------
# samples and assays used, and what was left out


@dataclass
class Selection:
    """The samples (``keep``) and assay columns (``acols``) a test uses, and the IDs left
    out (warned about as ``step``, listed in ``attrs``). Each ``drop_*`` is one rule."""

    step: str
    keep: np.ndarray
    acols: np.ndarray
    excluded_samples: list[str] = field(default_factory=list)
    excluded_assays: list[str] = field(default_factory=list)

    @classmethod
    def everything(cls, adata: ad.AnnData, step: str) -> Selection:
        return cls(step, np.ones(adata.n_obs, dtype=bool), np.arange(adata.n_vars))

    @property
    def rows(self) -> np.ndarray:
        return np.flatnonzero(self.keep)

    @property
    def excl(self) -> dict[str, list[str]]:
        return {
            "excluded_samples": list(self.excluded_samples),
            "excluded_assays": list(self.excluded_assays),
        }

    def drop_control_samples(self, obs: pd.DataFrame, among: np.ndarray | None = None) -> None:
        """Leave out ``obs["is_control"]`` samples; report those ``among`` (default all)."""
        if "is_control" not in obs:
            return
        ctrl = obs["is_control"].fillna(value=False).to_numpy(dtype=bool)
        shown = ctrl if among is None else ctrl & among
        if shown.any():
            ids = [str(i) for i in obs.index[shown]]
            warn(f"{self.step}: left out {len(ids)} control sample(s): {preview(ids)}")
            self.excluded_samples += ids
        self.keep &= ~ctrl

    def drop_missing(
        self,
        obs: pd.DataFrame,
        columns: Sequence[str],
        among: np.ndarray | None = None,
        label: str | None = None,
    ) -> None:
        """Leave out kept samples (``among`` them) with a missing value in ``columns``."""
        miss = obs[list(columns)].isna().any(axis=1).to_numpy() & self.keep
        if among is not None:
            miss &= among
        if miss.any():
            ids = [str(i) for i in obs.index[miss]]
            what = str(list(columns)) if label is None else label
            warn(f"{self.step}: left out {len(ids)} sample(s) with missing {what}: {preview(ids)}")
            self.excluded_samples += ids
            self.keep &= ~miss

    def drop_control_assays(self, var: pd.DataFrame) -> None:
        """Leave out ``var["is_control"]`` assays."""
        if "is_control" not in var:
            return
        vctrl = var["is_control"].fillna(value=False).to_numpy(dtype=bool)
        if vctrl.any():
            ids = [str(i) for i in var.index[vctrl]]
            warn(f"{self.step}: left out {len(ids)} control assay(s): {preview(ids)}")
            self.excluded_assays = ids
            self.acols = np.flatnonzero(~vctrl)


def select(
    adata: ad.AnnData, columns: Sequence[str], *, exclude_controls: bool, step: str
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Rows usable for a model (no control, no missing design value) and assay columns.

    The rule of the model functions (anova, longitudinal, lmer, ordinal, nonparametric):
    every control sample is reported, then samples missing any of ``columns``, then
    control assays.
    """
    sel = Selection.everything(adata, step)
    if exclude_controls:
        sel.drop_control_samples(adata.obs)
    sel.drop_missing(adata.obs, columns)
    if exclude_controls:
        sel.drop_control_assays(adata.var)
    return sel.rows, sel.acols, sel.excl


# --------------------------------------------------------------------------------------
# pairing


@dataclass
class Pairs:
    """Reference and target sample positions aligned by pair, and what was left out."""

    ir: np.ndarray
    it: np.ndarray
    ids: list
    excluded_pairs: list[list[str]]
    no_pair: list


def pair_two_levels(
    obs: pd.DataFrame, lab: pd.Series, keep: np.ndarray, pair: str, ref: str, tgt: str
) -> Pairs:
    """Match one ``ref`` and one ``tgt`` sample per value of ``obs[pair]`` (compared as
    text); a pair with a missing member or more than one sample per level is excluded with
    its reason, samples with no ``pair`` value are listed in ``no_pair``."""
    labv = lab.to_numpy()
    is_ref = keep & (labv == ref)
    is_tgt = keep & (labv == tgt)
    pid = obs[pair]
    no_pair = (is_ref | is_tgt) & pid.isna().to_numpy()
    excluded_samples = list(obs.index[no_pair])
    use = np.flatnonzero((is_ref | is_tgt) & ~no_pair)
    raw_codes, raw = pd.factorize(pid.to_numpy()[use])  # then compare as text
    str_codes, uniques = pd.factorize(np.array([str(u) for u in raw], dtype=object), sort=True)
    codes = str_codes[raw_codes]
    level = is_tgt[use].astype(np.int64)
    counts = np.bincount(codes * 2 + level, minlength=2 * len(uniques)).reshape(-1, 2)
    complete = (counts[:, 0] == 1) & (counts[:, 1] == 1)
    excluded_pairs = [
        [
            str(uniques[i]),
            "more than one sample per level"
            if counts[i].max() > 1
            else (f"no {ref} sample" if counts[i, 0] == 0 else f"no {tgt} sample"),
        ]
        for i in np.flatnonzero(~complete)
    ]
    ir = np.full(len(uniques), -1, dtype=np.int64)
    it = np.full(len(uniques), -1, dtype=np.int64)
    ok = complete[codes]
    ir[codes[ok & (level == 0)]] = use[ok & (level == 0)]
    it[codes[ok & (level == 1)]] = use[ok & (level == 1)]
    return Pairs(
        ir[complete], it[complete], list(uniques[complete]), excluded_pairs, excluded_samples
    )


def report_pairs(
    pairs: Pairs,
    *,
    step: str,
    pair: str,
    ref: str,
    tgt: str,
    sel: Selection | None = None,
    require: bool = True,
) -> None:
    """Warn about excluded pairs (and, with ``sel``, about samples with no ``pair`` value,
    recorded there); ``require``: a DesignError when no pair is complete."""
    if sel is not None and pairs.no_pair:
        warn(
            f"{step}: left out {len(pairs.no_pair)} sample(s) with no {pair!r} value: "
            f"{preview(pairs.no_pair)}"
        )
        sel.excluded_samples += [str(i) for i in pairs.no_pair]
    if pairs.excluded_pairs:
        warn(
            f"{step}: left out {len(pairs.excluded_pairs)} incomplete or duplicated "
            f"pair(s) of {pair!r}: {preview(p for p, _ in pairs.excluded_pairs)}"
        )
    if require and len(pairs.ids) == 0:
        msg = format_message(
            f"no {pair!r} has exactly one {ref!r} and one {tgt!r} sample",
            column=pair,
            rows=[p for p, _ in pairs.excluded_pairs],
            hint="Check the pair column and the levels compared.",
        )
        raise DesignError(msg)


@dataclass
class Blocks:
    """Subjects × levels positions among the rows used (``-1`` = none), complete subjects
    only, and the subjects left out as ``[subject, reason]``."""

    grid: np.ndarray
    subjects: list[str]
    excluded: list[list[str]]


def complete_blocks(
    pid: np.ndarray, codes: np.ndarray, levels: list[str], *, pair: str, step: str
) -> Blocks:
    """One sample per level and subject: subjects with a duplicate or a missing level are
    left out (warned, with reasons); a DesignError when none is complete."""
    scodes, subjects = pd.factorize(pid, sort=True)
    k = len(levels)
    counts = np.bincount(scodes * k + codes, minlength=len(subjects) * k).reshape(-1, k)
    dup = (counts > 1).any(axis=1)
    missing = (counts == 0).any(axis=1) & ~dup
    excluded = [[str(subjects[i]), "more than one sample per level"] for i in np.flatnonzero(dup)]
    excluded += [
        [str(subjects[i]), "no sample at level(s) " + ", ".join(np.array(levels)[counts[i] == 0])]
        for i in np.flatnonzero(missing)
    ]
    if dup.any():
        ids = [s for s, _ in excluded[: int(dup.sum())]]
        warn(
            f"{step}: left out {len(ids)} {pair!r} with more than one sample at a level: {preview(ids)}"
        )
    if missing.any():
        ids = [str(subjects[i]) for i in np.flatnonzero(missing)]
        warn(
            f"{step}: left out {len(ids)} {pair!r} without a sample at every level: {preview(ids)}"
        )
    keep = ~(dup | missing)
    if not keep.any():
        msg = format_message(
            f"no {pair!r} has exactly one sample at every level of the groups",
            column=pair,
            rows=[s for s, _ in excluded],
            hint="Friedman's test needs complete blocks: each subject measured once per level.",
        )
        raise DesignError(msg)
    grid = np.full((len(subjects), k), -1, dtype=np.int64)
    grid[scodes, codes] = np.arange(codes.size)  # positions among the rows used
    return Blocks(grid[keep], [str(s) for s in subjects[keep]], excluded)


def two_group_covariates(
    obs: pd.DataFrame, covariates: Sequence[str], ir: np.ndarray, it: np.ndarray, *, paired: bool
) -> tuple[np.ndarray, list[str]]:
    """Covariate columns of a two-group design: paired → within-pair changes (columns
    constant within every pair dropped and named), unpaired → target rows, then reference."""
    if not covariates:
        return np.zeros((it.size if paired else it.size + ir.size, 0)), []
    zc, names = covariate_matrix(obs, covariates)
    if not paired:
        return np.vstack([zc[it], zc[ir]]), []
    dz = zc[it] - zc[ir]
    varying = np.any(np.abs(dz) > 0, axis=0)
    dropped = [nm for nm, v in zip(names, varying, strict=True) if not v]
    return dz[:, varying], dropped


# --------------------------------------------------------------------------------------
# assays


def assay_list(adata: ad.AnnData, assays: str | Sequence[str]) -> list[str]:
    """``assays`` as a list of OlinkIDs, every one in ``adata.var_names`` (else a
    DesignError naming the unknown ones)."""
    assays = [assays] if isinstance(assays, str) else list(assays)
    unknown = [a for a in assays if a not in adata.var_names]
    if unknown:
        msg = format_message(
            "assays not found in var", rows=unknown, hint="Pass OlinkIDs (var index)."
        )
        raise DesignError(msg)
    return assays


def subset_assays(adata: ad.AnnData, assays: str | Sequence[str] | None) -> ad.AnnData:
    """``adata`` itself when ``assays`` is None, else a view on those assays (checked)."""
    if assays is None:
        return adata
    return adata[:, assay_list(adata, assays)]


def assay_positions(adata: ad.AnnData, assays: Sequence[str] | None) -> np.ndarray:
    """Column positions of assays named by ``var["Assay"]`` or OlinkID, in the caller's
    order, each once (all when None); a DesignError names those not found."""
    if assays is None:
        return np.arange(adata.n_vars)
    names = adata.var["Assay"].astype(str) if "Assay" in adata.var else adata.var_names
    wanted = [str(a) for a in assays]
    names_v, oids_v = names.to_numpy(), np.asarray(adata.var_names)
    per = [np.flatnonzero((names_v == a) | (oids_v == a)) for a in wanted]
    missing = [a for a, h in zip(wanted, per, strict=True) if h.size == 0]
    if missing:
        msg = format_message(
            f"assay(s) {preview(missing)} are not in the data",
            column="Assay",
            hint="Use names from var['Assay'] or OlinkIDs from var_names.",
        )
        raise DesignError(msg)
    return pd.unique(np.concatenate(per))


def annotation(adata: ad.AnnData, acols: np.ndarray) -> pd.DataFrame:
    """The :data:`ANNOTATION` columns present in ``var``, one row per assay in ``acols``."""
    var = adata.var.iloc[acols]
    out = pd.DataFrame({"OlinkID": var.index.astype(str).to_numpy()})
    for c in ANNOTATION[1:]:
        if c in var:
            out[c] = var[c].to_numpy()
    return out


# --------------------------------------------------------------------------------------
# result frames


def long_frame(ann: pd.DataFrame, per_assay: int) -> pd.DataFrame:
    """The annotation repeated ``per_assay`` times per assay (rows of terms/contrasts)."""
    return ann.loc[np.repeat(np.arange(len(ann)), per_assay)].reset_index(drop=True)


def ordered(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    """``frame`` with the annotation columns first, then ``columns`` (those present)."""
    ann = [c for c in ANNOTATION if c in frame.columns]
    return frame[ann + [c for c in columns if c in frame.columns and c not in ann]]


def family_p_adj(p: np.ndarray, is_covariate: np.ndarray) -> np.ndarray:
    """Benjamini–Hochberg over one family: the rows not of a covariate (NaN for those),
    as OlinkAnalyze's ``p.adjust(method = "fdr")`` grouped by "is a covariate"."""
    out = np.full(len(p), np.nan)
    out[~is_covariate] = bh_adjust(np.asarray(p)[~is_covariate])
    return out


def warn_untested(step: str, oids: Sequence[str], reasons: Sequence[str]) -> list[str]:
    """Warn once about the assays with a reason (not tested) and return their IDs."""
    untested = [str(o) for o, r in zip(oids, reasons, strict=True) if r]
    if untested:
        warn(f"{step}: {len(untested)} assay(s) not tested (see 'reason'): {preview(untested)}")
    return untested


# --------------------------------------------------------------------------------------
# the design of a two-group comparison (differential, protein_changes)


@dataclass
class TwoGroups:
    """Reference and target samples (aligned by pair when paired), the samples and assays
    used with what was left out, and the covariate columns."""

    groupby: str
    reference: str
    target: str
    pair: str | None
    sel: Selection
    ir: np.ndarray
    it: np.ndarray
    pairs: Pairs | None
    zcov: np.ndarray
    covariates_absorbed: list[str]

    @property
    def paired(self) -> bool:
        return self.pair is not None

    @property
    def levels(self) -> list[str]:
        return [self.reference, self.target]


def two_groups(
    adata: ad.AnnData,
    *,
    groupby: str,
    reference: str,
    target: str | None,
    pair: str | None,
    covariates: Sequence[str],
    exclude_controls: bool,
    step: str,
) -> TwoGroups:
    """The validated design of a two-group comparison.

    Controls and samples missing a covariate are reported only among the two levels
    compared (every control sample is left out); a pair must have exactly one sample at
    each level (else excluded with its reason, and a DesignError when none is left).
    """
    obs = adata.obs
    lab, reference, target = two_levels(obs, groupby, reference, target)
    in_levels = lab.isin([reference, target]).to_numpy()
    sel = Selection.everything(adata, step)
    if exclude_controls:
        sel.drop_control_samples(obs, among=in_levels)
        sel.drop_control_assays(adata.var)
    if covariates:
        sel.drop_missing(obs, covariates, among=in_levels, label="covariates")
    pairs = None
    if pair is not None:
        pairs = pair_two_levels(obs, lab, sel.keep, pair, reference, target)
        report_pairs(pairs, step=step, pair=pair, ref=reference, tgt=target, sel=sel)
        ir, it = pairs.ir, pairs.it
    else:
        use = sel.keep & in_levels
        ir = np.flatnonzero(use & (lab == reference).to_numpy())
        it = np.flatnonzero(use & (lab == target).to_numpy())
    zcov, absorbed = two_group_covariates(obs, covariates, ir, it, paired=pair is not None)
    return TwoGroups(groupby, reference, target, pair, sel, ir, it, pairs, zcov, absorbed)
