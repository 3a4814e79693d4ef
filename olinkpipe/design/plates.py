"""Plate randomisation: samples to plates and wells (OlinkAnalyze ``olink_plate_randomizer``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .._validate import require_columns
from ..errors import DesignError, DuplicateSampleError, ValidationError, format_message, preview

__all__ = ["randomize_plates", "balance_chisq", "PRODUCT_PLATE_SIZE"]

#: Wells per plate of each Olink product (OlinkAnalyze's ``accepted_olink_platforms``).
PRODUCT_PLATE_SIZE = {
    "Target 48": 48,
    "Target 96": 96,
    "Flex": 96,
    "Focus": 96,
    "Explore 3072": 96,
    "Explore HT": 96,
    "Reveal": 96,
}
ROWS = "ABCDEFGH"
CONTROL_ID = "CONTROL_SAMPLE"


def _codes(values: pd.Series) -> np.ndarray:
    """Integer level codes of a column, missing values as one more level."""
    codes, _ = pd.factorize(values.astype(object).where(values.notna(), "NA"), sort=True)
    return codes


def _chisq(plate: np.ndarray, codes: np.ndarray) -> float:
    """Pearson X² of the plate × level table (no continuity correction)."""
    table = np.zeros((plate.max() + 1, codes.max() + 1))
    np.add.at(table, (plate, codes), 1.0)
    table = table[table.sum(axis=1) > 0][:, table.sum(axis=0) > 0]
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    return float(((table - expected) ** 2 / expected).sum())


def balance_chisq(randomized: pd.DataFrame, columns: str | Sequence[str]) -> float:
    """Imbalance of variables across plates: the sum of their plate × level chi-square.

    For each column, Pearson's X² statistic (no continuity correction, as
    ``scipy.stats.chi2_contingency(table, correction=False)``) of the table of plates
    by levels (missing values form a level of their own); the sum over columns. 0 means
    every plate holds each level in the study's proportions. Control wells
    (``SampleID == "CONTROL_SAMPLE"``) are left out.

    Parameters
    ----------
    randomized
        The frame returned by :func:`randomize_plates` (needs ``plate`` and ``columns``).
    columns
        Variables to check (e.g. ``["Site", "Treatment"]``).

    Returns
    -------
    float
        The summed X² statistics.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"plate": ["Plate 1"] * 2 + ["Plate 2"] * 2, "Site": list("ABAB")})
    >>> balance_chisq(df, "Site")
    0.0
    """
    cols = [columns] if isinstance(columns, str) else list(columns)
    require_columns(randomized, ["plate", *cols], what="randomized manifest")
    frame = randomized
    if "SampleID" in frame:
        frame = frame[frame["SampleID"].astype(str) != CONTROL_ID]
    plate = pd.factorize(frame["plate"])[0]
    return float(sum(_chisq(plate, _codes(frame[c])) for c in cols))


def _plate_size(product: str | None, plate_size: int) -> int:
    if product is not None:
        if product not in PRODUCT_PLATE_SIZE:
            msg = f"product={product!r} is unknown; choose one of {list(PRODUCT_PLATE_SIZE)!r}."
            raise ValidationError(msg)
        return PRODUCT_PLATE_SIZE[product]
    if plate_size not in (48, 96):
        msg = f"plate_size={plate_size!r} is not an Olink plate size; choose 48 or 96."
        raise ValidationError(msg)
    return int(plate_size)


def _check_manifest(manifest, sample_col, subject, balance, study=None) -> None:
    if not isinstance(manifest, pd.DataFrame):
        msg = f"manifest must be a pandas DataFrame, got {type(manifest).__name__}."
        raise ValidationError(msg)
    keys = [sample_col] + ([subject] if subject else []) + ([study] if study else [])
    cols = keys + balance
    require_columns(manifest, cols, what="manifest")
    ids = manifest[sample_col]
    for col in keys:
        bad = manifest.index[manifest[col].isna()]
        if len(bad):
            msg = format_message("missing values are not allowed", column=col, rows=bad)
            raise ValidationError(msg)
    dup = ids[ids.duplicated()].unique()
    if len(dup):
        msg = format_message(
            f"SampleIDs occur more than once: {preview(dup)}",
            column=sample_col,
            hint="Each sample gets one well; make the IDs unique.",
        )
        raise DuplicateSampleError(msg)
    if (ids.astype(str) == CONTROL_ID).any():
        msg = format_message(f"{CONTROL_ID!r} is reserved for control wells", column=sample_col)
        raise ValidationError(msg)


def _spots(n: int, size: int, num_ctrl: int, rand_ctrl: bool, available) -> np.ndarray:
    """Wells available per plate (controls included when they are randomised)."""
    per_plate = size - num_ctrl * (not rand_ctrl)
    if available is None:
        return np.full(max(1, -(-n // (size - num_ctrl))), per_plate)
    spots = np.asarray(available, dtype=int).ravel()
    if spots.size == 0 or (spots < 1).any() or (spots > per_plate).any():
        msg = (
            f"available_spots={list(available)!r}: each plate offers 1 to {per_plate} wells "
            f"(plate of {size} with {num_ctrl} control wells)."
        )
        raise ValidationError(msg)
    cap = spots - num_ctrl * rand_ctrl
    if (cap < 0).any() or cap.sum() < n:
        msg = (
            f"{n} samples do not fit in available_spots={spots.tolist()!r} "
            f"({int(cap.clip(0).sum())} wells for samples); add plates or wells."
        )
        raise DesignError(msg)
    return spots


def _controls(rng: np.random.Generator, spots: np.ndarray, num_ctrl: int) -> list[np.ndarray]:
    """Random control wells of each plate (randomised controls)."""
    return [np.sort(rng.choice(k, size=num_ctrl, replace=False)) for k in spots]


def _free_wells(spots: np.ndarray, ctrl: list[np.ndarray] | None) -> list[np.ndarray]:
    """Each plate's sample wells in column-major order (A1, B1, …, H1, A2, …)."""
    wells = [np.arange(k) for k in spots]
    if ctrl is not None:
        wells = [np.setdiff1d(w, c) for w, c in zip(wells, ctrl, strict=True)]
    return wells


def _draw_samples(rng, n, spots, num_ctrl, rand_ctrl):
    """Complete randomisation: the first ``n`` sample wells, permuted over the samples.

    Randomised controls go to random wells among those a plate fills (samples + controls,
    as OlinkAnalyze); a plate left without samples gets none.
    """
    ctrl = None
    if rand_ctrl:
        fill, left = [], n
        for k in spots:
            fill.append(min(int(k), left + num_ctrl) if left > 0 else 0)
            left -= max(fill[-1] - num_ctrl, 0)
        ctrl = [
            np.sort(rng.choice(k, size=num_ctrl, replace=False)) if k else np.array([], int)
            for k in fill
        ]
    free = _free_wells(spots, ctrl)
    plate = np.concatenate([np.full(w.size, p) for p, w in enumerate(free)])[:n]
    well = np.concatenate(free)[:n]
    perm = rng.permutation(n)
    return plate[perm], well[perm], ctrl


def _draw_subjects(rng, groups, n, spots, num_ctrl, rand_ctrl):
    """Subjects to random plates with room (random order), then wells shuffled per plate."""
    ctrl = _controls(rng, spots, num_ctrl) if rand_ctrl else None
    free = _free_wells(spots, ctrl)
    left = np.array([w.size for w in free])
    used = np.zeros(len(free), dtype=int)
    plate, well = np.empty(n, dtype=int), np.empty(n, dtype=int)
    for g in rng.permutation(len(groups)):
        members = groups[g]
        fits = np.flatnonzero(left >= members.size)
        if fits.size == 0:
            return None
        p = int(rng.choice(fits))
        plate[members] = p
        well[members] = free[p][used[p] : used[p] + members.size]
        used[p] += members.size
        left[p] -= members.size
    for p in range(len(free)):  # scramble the filled wells within the plate
        idx = np.flatnonzero(plate == p)
        well[idx] = well[idx[rng.permutation(idx.size)]]
    return plate, well, ctrl


class _Layout:
    """The sample wells of all plates as one sequence (plate by plate, column order).

    With ``grow`` (no ``available_spots``), full plates are added when a study needs more
    wells than are left.
    """

    def __init__(self, rng, spots, num_ctrl, rand_ctrl, *, grow: bool) -> None:
        self.rng, self.num_ctrl, self.rand_ctrl, self.grow = rng, num_ctrl, rand_ctrl, grow
        self.spots = [int(k) for k in spots]
        self.ctrl = _controls(rng, np.asarray(self.spots), num_ctrl) if rand_ctrl else None
        free = _free_wells(np.asarray(self.spots), self.ctrl)
        self.plate = np.concatenate([np.full(w.size, p) for p, w in enumerate(free)])
        self.well = np.concatenate(free)

    def ensure(self, end: int, per_plate: int) -> bool:
        """Make at least ``end`` sample wells exist; False when that is not allowed."""
        while end > self.plate.size:
            if not self.grow:
                return False
            p = len(self.spots)
            self.spots.append(per_plate)
            ctrl = None
            if self.ctrl is not None:
                ctrl = np.sort(self.rng.choice(per_plate, size=self.num_ctrl, replace=False))
                self.ctrl.append(ctrl)
            w = _free_wells(np.array([per_plate]), None if ctrl is None else [ctrl])[0]
            self.plate = np.concatenate([self.plate, np.full(w.size, p)])
            self.well = np.concatenate([self.well, w])
        return True


def _fit_window(rng, groups, window_plate) -> list[np.ndarray] | None:
    """Subjects (random order) to random plates with room inside one window of wells.

    Returns each group's positions (relative to the window), or None when one does not fit.
    """
    free = {int(p): np.flatnonzero(window_plate == p) for p in np.unique(window_plate)}
    used = dict.fromkeys(free, 0)
    out: list[np.ndarray] = [np.empty(0, dtype=int)] * len(groups)
    for g in rng.permutation(len(groups)):
        k = groups[g].size
        fits = [p for p in free if free[p].size - used[p] >= k]
        if not fits:
            return None
        p = int(rng.choice(fits))
        out[g] = free[p][used[p] : used[p] + k]
        used[p] += k
    return out


def _draw_studies(rng, studies, subject_groups, n, spots, num_ctrl, rand_ctrl, ctx):
    """Studies in turn on consecutive wells; within a study, samples (or subjects) at random.

    ``studies``: (label, sample indices) in order; ``subject_groups``: per study the
    subjects' sample indices, or None. A study whose subjects do not fit in exactly its
    number of wells gets 1, 2, ... extra wells (left empty) as OlinkAnalyze does.
    Returns plate, well, controls, empty wells, or raises DesignError.
    """
    size, per_plate, grow, tries, study_col = ctx
    lay = _Layout(rng, spots, num_ctrl, rand_ctrl, grow=grow)
    plate, well = np.empty(n, dtype=int), np.empty(n, dtype=int)
    start, empty = 0, 0
    for s, (label, idx) in enumerate(studies):
        groups = None if subject_groups is None else subject_groups[s]
        extra = range(0, 1) if groups is None else range(0, per_plate + 1)
        placed = None
        for j in extra:
            end = start + idx.size + j
            if not lay.ensure(end, per_plate):
                break
            window = lay.plate[start:end]
            if groups is None:
                placed = start + rng.permutation(idx.size)
                break
            for _ in range(tries):
                fit = _fit_window(rng, groups, window)
                if fit is not None:
                    placed = np.empty(idx.size, dtype=int)
                    for g, pos in zip(groups, fit, strict=True):
                        placed[np.searchsorted(idx, g)] = start + pos
                    break
            if placed is not None:
                break
        if placed is None:
            left = int(lay.plate.size - start)
            how = " with each subject's samples on one plate" if groups is not None else ""
            msg = format_message(
                f"study {label!r} ({idx.size} samples) does not fit{how} in the {left} "
                f"sample wells left after the studies before it",
                column=study_col,
                hint="Add plates or wells (available_spots), or increase iterations.",
            )
            raise DesignError(msg)
        plate[idx], well[idx] = lay.plate[placed], lay.well[placed]
        empty += int(end - start - idx.size)
        start = end
        for p in np.unique(plate[idx]):  # scramble the study's wells within each plate
            on = idx[plate[idx] == p]
            well[on] = well[on[rng.permutation(on.size)]]
    spots_used = np.asarray(lay.spots)
    return plate, well, lay.ctrl, empty, spots_used


def _best_by_study(rng, manifest, study, groups, spots, plate_def, iterations, bal_codes):
    """Draw by study (``iterations`` times when balancing) and keep the most balanced."""
    size, num_ctrl, rand_ctrl, grow = plate_def
    codes, levels = pd.factorize(manifest[study], sort=True)
    studies = [(levels[k], np.flatnonzero(codes == k)) for k in range(len(levels))]
    sub_groups = None
    if groups is not None:  # a subject within its study (the same ID in two studies: two)
        sub_groups = [
            [gg for g in groups if (gg := np.intersect1d(g, idx)).size] for _, idx in studies
        ]
    per_plate = size - num_ctrl * (not rand_ctrl)
    ctx = (size, per_plate, grow, int(iterations), study)  # grow: no available_spots given
    best, best_crit, draws, info = None, np.inf, 0, {}
    for _ in range(int(iterations) if bal_codes else 1):
        draws += 1
        plate, well, ctrl, empty, used = _draw_studies(
            rng, studies, sub_groups, len(manifest), spots, num_ctrl, rand_ctrl, ctx
        )
        crit = sum(_chisq(plate, c) for c in bal_codes) if bal_codes else 0.0
        if best is None or crit < best_crit:
            best, best_crit = (plate, well, ctrl), crit
            info = {"study": study, "empty_wells": empty, "_spots": used}
            info["study_plates"] = {
                str(lab): [f"Plate {p + 1}" for p in np.unique(plate[idx])] for lab, idx in studies
            }
    return best, best_crit, draws, info


def _output(manifest, plate, well, ctrl, size, sample_col) -> pd.DataFrame:
    out = manifest.reset_index(drop=True).copy()
    out["plate"], out["_well"] = plate, well
    if ctrl is not None:
        rows = [(p, w) for p, c in enumerate(ctrl) for w in c]
        extra = pd.DataFrame({sample_col: CONTROL_ID, "plate": [r[0] for r in rows]})
        extra["_well"] = [r[1] for r in rows]
        out = pd.concat([out, extra], ignore_index=True)
    w = out.pop("_well").to_numpy()
    p = out["plate"].to_numpy()
    out["plate"] = [f"Plate {i + 1}" for i in p]
    out["row"] = np.array(list(ROWS))[w % 8]
    out["column"] = w // 8 + 1
    out["well"] = out["row"] + out["column"].astype(str)
    order = np.lexsort((w, p))
    return out.iloc[order].reset_index(drop=True)


def randomize_plates(
    manifest: pd.DataFrame,
    *,
    sample_col: str = "SampleID",
    subject: str | None = None,
    study: str | None = None,
    balance: str | Sequence[str] | None = None,
    product: str | None = None,
    plate_size: int = 96,
    num_ctrl: int = 8,
    rand_ctrl: bool = False,
    available_spots: Sequence[int] | None = None,
    iterations: int = 500,
    seed: int | np.random.Generator | None = None,
) -> pd.DataFrame:
    """Assign samples to plates and wells at random (OlinkAnalyze ``olink_plate_randomizer``).

    As OlinkAnalyze: plates have 8 rows and ``plate_size / 8`` columns (``product``
    sets the size: 48 for Target 48, 96 otherwise); wells are filled in column order
    (A1, B1, …, H1, A2, …) and the last ``num_ctrl`` wells of each plate (column 12 on a
    96-well plate) are left free for Olink's controls, or, with ``rand_ctrl=True``,
    ``num_ctrl`` wells per plate are drawn at random for them and returned as rows with
    ``SampleID == "CONTROL_SAMPLE"``. Without ``subject`` the samples are completely
    randomised over the first wells (plates filled in turn, the last one partly). With
    ``subject``, subjects are taken in random order, each put on a random plate that
    still has room for all of its samples, and the wells are then shuffled within each
    plate; when a subject does not fit, the draw is repeated, up to ``iterations`` times.

    With ``study`` (OlinkAnalyze ``study``), studies are kept together: they are taken
    in sorted order and each fills the sample wells that follow the previous study's
    (so a plate holds the end of one study and the start of the next at most), and the
    randomisation happens within the study: its samples are permuted over its wells,
    or, with ``subject``, its subjects go to random plates among the study's ones (a
    subject ID is a subject within its study). When the subjects do not fit in exactly
    the study's number of wells, 1, 2, … more wells are given to the study (left empty,
    counted in ``attrs["empty_wells"]``), trying ``iterations`` draws each time, as
    OlinkAnalyze does; plates are added as needed unless ``available_spots`` is given,
    and a study that does not fit then is an error naming it.

    ``balance`` goes beyond OlinkAnalyze, which only randomises: ``iterations`` valid
    draws are made and the one with the smallest imbalance, :func:`balance_chisq` (the
    sum over the ``balance`` columns of the plate × level Pearson X²), is kept.

    Parameters
    ----------
    manifest
        One row per sample; the sample ID column must be unique and complete.
    sample_col
        Column of sample IDs.
    subject
        Column of subject IDs (OlinkAnalyze ``SubjectColumn``): a subject's samples share
        a plate (longitudinal studies). Must be complete.
    study
        Column of study IDs (OlinkAnalyze ``study``): each study's samples take
        consecutive wells, randomised within the study (see above). Must be complete.
    balance
        Column(s) to balance across plates (e.g. ``"Site"``); None draws once (as
        OlinkAnalyze).
    product
        Olink product (a key of :data:`PRODUCT_PLATE_SIZE`); sets ``plate_size``.
    plate_size
        48 or 96 wells.
    num_ctrl
        Control wells per plate (positive integer).
    rand_ctrl
        Place the controls at random wells instead of the plate's last wells.
    available_spots
        Wells available per plate, one number per plate (at most ``plate_size -
        num_ctrl``, or ``plate_size`` with ``rand_ctrl``); default as many full plates as
        needed.
    iterations
        Draws allowed to fit subjects on plates, and the draws compared with ``balance``.
    seed
        Seed or :class:`numpy.random.Generator`. R's generator is not reproduced, so the
        same seed does not give OlinkAnalyze's wells.

    Returns
    -------
    pandas.DataFrame
        The manifest (new RangeIndex) with ``plate`` (``"Plate 1"``, …), ``row``
        (``"A"``–``"H"``), ``column`` (1–12) and ``well`` (``"A1"``), sorted by plate,
        column and row; control rows appended with ``rand_ctrl``. ``attrs``: method,
        plate_size, num_ctrl, rand_ctrl, n_plates, subject, study, ``study_plates``
        (study → its plates), ``empty_wells``, balance, balance_chisq, draws.

    Raises
    ------
    MissingColumnError
        A named column is not in the manifest.
    DuplicateSampleError
        A SampleID occurs twice (OlinkAnalyze only warns; a sample cannot take two wells).
    ValidationError
        Missing IDs, an unknown product or size, bad ``num_ctrl``/``available_spots``.
    DesignError
        More samples than wells, a subject with more samples than a plate holds,
        subjects that could not be fitted in ``iterations`` draws, or a study that does
        not fit in the wells left for it.

    Notes
    -----
    Without ``available_spots`` the number of plates is the smallest that holds the
    samples besides the controls (OlinkAnalyze's count with ``rand_ctrl`` can leave too
    few wells and then stops). With ``study`` and ``rand_ctrl`` the control wells of every
    plate are drawn first (OlinkAnalyze too); OlinkAnalyze then appends the control rows
    once per study, here they appear once. OlinkAnalyze 5.0.2 means to sort the manifest
    by study but sorts by the column's name (a constant), so without ``SubjectColumn`` it
    keeps studies apart only when the manifest is already sorted by study, and with
    ``SubjectColumn`` it runs only when the study column is named ``study``; here the
    studies are sorted and kept apart whatever the input order or column name. On sorted
    input both give the same plate × study counts (see tests/test_design_plates_study.py).

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> manifest = pd.DataFrame({"SampleID": [f"S{i}" for i in range(120)],
    ...                          "Subject": [f"P{i // 4}" for i in range(120)],
    ...                          "Site": ["A", "B", "C"] * 40})
    >>> plated = op.design.randomize_plates(manifest, subject="Subject", balance="Site", seed=1)
    >>> int(plated.groupby("Subject")["plate"].nunique().max())  # subjects stay on one plate
    1
    >>> sorted(plated["plate"].unique())
    ['Plate 1', 'Plate 2']
    """
    bal = [] if balance is None else [balance] if isinstance(balance, str) else list(balance)
    size = _plate_size(product, plate_size)
    if not isinstance(num_ctrl, (int, np.integer)) or isinstance(num_ctrl, bool):
        msg = f"num_ctrl={num_ctrl!r} must be a positive integer."
        raise ValidationError(msg)
    if not 1 <= num_ctrl < size:
        msg = f"num_ctrl={num_ctrl!r} must be a positive integer below the plate size {size}."
        raise ValidationError(msg)
    if int(iterations) < 1:
        msg = f"iterations={iterations!r} must be at least 1."
        raise ValidationError(msg)
    _check_manifest(manifest, sample_col, subject, bal, study)
    n = len(manifest)
    spots = _spots(n, size, num_ctrl, rand_ctrl, available_spots)
    rng = np.random.default_rng(seed)
    groups = None
    if subject is not None:
        codes, uniq = pd.factorize(manifest[subject])
        groups = [np.flatnonzero(codes == g) for g in range(len(uniq))]
        room = int((spots - num_ctrl * rand_ctrl).max())
        big = [uniq[g] for g, m in enumerate(groups) if m.size > room]
        if big:
            msg = format_message(
                f"subjects have more samples than a plate holds ({room} wells): {preview(big)}",
                column=subject,
                hint="Split these subjects or use more wells per plate.",
            )
            raise DesignError(msg)
    bal_codes = [_codes(manifest[c]) for c in bal]
    best, best_crit, draws = None, np.inf, 0
    extra: dict[str, object] = {"study": study, "empty_wells": 0}
    if study is not None:
        plate_def = (size, num_ctrl, rand_ctrl, available_spots is None)
        best, best_crit, draws, extra = _best_by_study(
            rng, manifest, study, groups, spots, plate_def, iterations, bal_codes
        )
        spots = extra.pop("_spots")
    for _ in range(int(iterations) * (study is None)):
        draws += 1
        if groups is None:
            cand = _draw_samples(rng, n, spots, num_ctrl, rand_ctrl)
        else:
            cand = _draw_subjects(rng, groups, n, spots, num_ctrl, rand_ctrl)
        if cand is None:
            continue
        if not bal:
            best = cand
            break
        crit = sum(_chisq(cand[0], c) for c in bal_codes)
        if crit < best_crit:
            best, best_crit = cand, crit
    if best is None:
        msg = (
            f"could not keep every subject of {subject!r} on one plate in {iterations} draws; "
            "increase iterations or available_spots."
        )
        raise DesignError(msg)
    out = _output(manifest, *best, size, sample_col)
    out.attrs = {
        "method": "olink_plate_randomizer",
        "plate_size": size,
        "num_ctrl": int(num_ctrl),
        "rand_ctrl": bool(rand_ctrl),
        "n_plates": len(spots),
        "subject": subject,
        **extra,
        "balance": bal,
        "balance_chisq": float(best_crit) if bal else None,
        "draws": draws,
    }
    return out
