"""Read and validate the clinical team's long measurement table and the patient table.

Both readers accept a path (CSV, TSV/TXT, XLSX or parquet) or a DataFrame and return a
clean copy with canonical dtypes. Problems a user can cause raise an
:class:`~olinkpipe.errors.OlinkpipeError` naming the file, the column and up to five rows
(file line numbers when reading a file, index labels for a DataFrame). Nothing is dropped
silently: exact duplicate rows are collapsed with a warning and listed in
``attrs["excluded"]``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .._warnings import warn
from ..errors import MissingColumnError, ValidationError, format_message, preview

__all__ = ["read_measurements", "read_patients"]

MEASUREMENT_COLUMNS = ["patient", "day", "analyte", "value"]
_TRUE = {"1", "true", "t", "yes", "y", "below", "<lod", "bdl"}
_FALSE = {"0", "false", "f", "no", "n", ""}
#: plausible CAR-T doses in cells per kg body weight: weight-based products and trials dose
#: about 1e5 - 1e7 cells/kg; flat doses (5e7 - 8e8 cells in total) divided by body weight
#: stay below 5e7/kg, so a total dose not divided by the weight (>= ~5e7) is caught
DOSE_RANGE = (1e4, 5e7)


def _load(path_or_frame: str | os.PathLike[str] | pd.DataFrame, what: str) -> tuple:
    """Return ``(frame, source, line_numbers)``; line numbers are for error messages."""
    if isinstance(path_or_frame, pd.DataFrame):
        lines = np.asarray(path_or_frame.index)
        return path_or_frame.reset_index(drop=True), None, lines
    if not isinstance(path_or_frame, str | os.PathLike):
        msg = f"{what} must be a path or a pandas DataFrame, not {type(path_or_frame).__name__}."
        raise ValidationError(msg)
    path = Path(path_or_frame)
    if not path.exists():
        msg = format_message(f"the {what} file does not exist", file=str(path))
        raise ValidationError(msg)
    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if suffix.endswith((".xlsx", ".xls")):
            frame = pd.read_excel(path)
        elif suffix.endswith(".parquet"):
            frame = pd.read_parquet(path)
        elif suffix.endswith((".tsv", ".txt", ".tsv.gz", ".txt.gz")):
            frame = pd.read_csv(path, sep="\t")
        else:
            frame = pd.read_csv(path, sep=None, engine="python")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        msg = format_message(f"cannot read the {what} file ({exc})", file=str(path))
        raise ValidationError(msg) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    # header is line 1, so data row i (0-based) is on line i + 2
    return frame, str(path), np.arange(len(frame)) + 2


def _rows(lines: np.ndarray, mask: np.ndarray, source: str | None) -> list[str]:
    picked = lines[np.asarray(mask, dtype=bool)]
    return [f"line {i}" if source is not None else str(i) for i in picked]


def _numeric(
    frame: pd.DataFrame, column: str, lines: np.ndarray, source: str | None, *, hint: str
) -> pd.Series:
    raw = frame[column]
    num = pd.to_numeric(raw, errors="coerce")
    bad = num.isna().to_numpy() & raw.notna().to_numpy()
    if isinstance(raw.dtype, pd.StringDtype) or raw.dtype == object:
        bad &= raw.astype(str).str.strip().ne("").to_numpy()
    if bad.any():
        shown = preview(raw[bad].astype(str).unique())
        msg = format_message(
            f"non-numeric values ({shown})",
            file=source,
            column=column,
            rows=_rows(lines, bad, source),
            hint=hint,
        )
        raise ValidationError(msg)
    return num.astype(float)


def _flag(frame: pd.DataFrame, column: str, lines: np.ndarray, source: str | None) -> pd.Series:
    raw = frame[column]
    if raw.dtype == bool:
        return raw.astype(bool)
    text = raw.astype(str).str.strip().str.lower().replace({"nan": "", "none": "", "<na>": ""})
    text = text.str.replace(r"\.0$", "", regex=True)
    ok = text.isin(_TRUE | _FALSE).to_numpy()
    if not ok.all():
        msg = format_message(
            f"cannot read values {preview(raw[~ok].astype(str).unique())} as true/false",
            file=source,
            column=column,
            rows=_rows(lines, ~ok, source),
            hint="Use 1/0 or TRUE/FALSE (empty counts as FALSE).",
        )
        raise ValidationError(msg)
    return text.isin(_TRUE)


def _missing(frame: pd.DataFrame, column: str, lines: np.ndarray, source: str | None) -> None:
    miss = frame[column].isna().to_numpy()
    if frame[column].dtype == object:
        miss |= frame[column].astype(str).str.strip().eq("").to_numpy()
    if miss.any():
        msg = format_message(
            "missing values",
            file=source,
            column=column,
            rows=_rows(lines, miss, source),
            hint="Fill them in or delete those rows.",
        )
        raise ValidationError(msg)


def read_patients(
    path_or_frame: str | os.PathLike[str] | pd.DataFrame,
    *,
    dose_column: str | None = "dose",
    dose_range: tuple[float, float] = DOSE_RANGE,
) -> pd.DataFrame:
    """Read and validate the patient table (one row per patient).

    Parameters
    ----------
    path_or_frame
        Path to a CSV/TSV/TXT/XLSX/parquet file, or a DataFrame. Required column:
        ``patient``. Recognised optional columns: ``dose`` (CAR-T cells per kg body weight),
        ``crs_grade`` and ``icans_grade`` (integers 0–5), time columns ending in ``_time``
        or ``_days``/``_months`` (non-negative numbers) and event flags ending in
        ``_event`` (0/1). Other columns are kept unchanged.
    dose_column
        Name of the dose column (``None``: no dose check).
    dose_range
        Plausible dose range in cells/kg; a dose outside it is an error. The default,
        1e4–5e7 cells/kg, catches a dose written in ×10^6 cells/kg (``2.0`` for
        ``2.0e6``) and most total doses not divided by body weight (``1.4e8`` cells).

    Returns
    -------
    pandas.DataFrame
        A copy with ``patient`` as a string column (kept as a column, index reset), numeric
        dose/grade/time columns and boolean event flags. ``attrs["source"]`` holds the file.

    Raises
    ------
    MissingColumnError
        ``patient`` (or the named dose column) is absent.
    ValidationError
        Duplicated or missing patient IDs, non-numeric or implausible doses, grades outside
        0–5, negative times, unreadable event flags.

    Examples
    --------
    >>> import pandas as pd
    >>> from olinkpipe.clinical import read_patients
    >>> pts = read_patients(pd.DataFrame({"patient": ["P1", "P2"], "dose": [2e6, 3.5e6]}))
    >>> pts["dose"].tolist()
    [2000000.0, 3500000.0]
    """
    frame, source, lines = _load(path_or_frame, "patient table")
    if "patient" not in frame.columns:
        msg = format_message(
            f"the patient table lacks the 'patient' column; it has {list(frame.columns)[:20]!r}",
            file=source,
            hint="Rename the patient identifier column to 'patient'.",
        )
        raise MissingColumnError(msg)
    _missing(frame, "patient", lines, source)
    frame["patient"] = frame["patient"].astype(str).str.strip()
    dup = frame["patient"].duplicated(keep=False).to_numpy()
    if dup.any():
        msg = format_message(
            f"patients listed more than once: {preview(frame.loc[dup, 'patient'].unique())}",
            file=source,
            column="patient",
            rows=_rows(lines, dup, source),
            hint="The patient table needs exactly one row per patient.",
        )
        raise ValidationError(msg)
    if dose_column is not None and dose_column in frame.columns:
        dose = _numeric(
            frame, dose_column, lines, source, hint="Give the dose as a number of cells per kg."
        )
        low, high = dose_range
        bad = (dose.notna() & ((dose < low) | (dose > high))).to_numpy()
        if bad.any():
            small = bool((dose[bad] < low).all())
            hint = (
                "The dose must be in cells per kg: a value like 2.0 probably means "
                "2.0 x 10^6 cells/kg, so multiply by 1e6."
                if small
                else "The dose must be in cells per kg; divide a total dose by body weight."
            )
            msg = format_message(
                f"implausible CAR-T dose(s) {preview(dose[bad].tolist())} outside "
                f"{low:g}–{high:g} cells/kg",
                file=source,
                column=dose_column,
                rows=_rows(lines, bad, source),
                hint=hint + " Pass dose_range=... if these doses are really meant.",
            )
            raise ValidationError(msg)
        frame[dose_column] = dose
    elif dose_column is not None and dose_column != "dose":
        msg = format_message(
            f"the patient table lacks the dose column {dose_column!r}",
            file=source,
            hint="Pass dose_column=None to skip the dose check.",
        )
        raise MissingColumnError(msg)
    for col in frame.columns:
        lower = col.lower()
        if lower in ("crs_grade", "icans_grade"):
            grade = _numeric(frame, col, lines, source, hint="Grades are integers 0-5.")
            bad = (grade.notna() & ~grade.isin(np.arange(6))).to_numpy()
            if bad.any():
                msg = format_message(
                    f"grades must be integers 0-5, got {preview(grade[bad].unique().tolist())}",
                    file=source,
                    column=col,
                    rows=_rows(lines, bad, source),
                    hint="Use ASTCT consensus grades (0 = none).",
                )
                raise ValidationError(msg)
            frame[col] = grade
        elif lower.endswith(("_time", "_days", "_months")):
            t = _numeric(frame, col, lines, source, hint="Times are numbers (days or months).")
            bad = (t < 0).to_numpy()
            if bad.any():
                msg = format_message(
                    "negative follow-up times",
                    file=source,
                    column=col,
                    rows=_rows(lines, bad, source),
                    hint="Times to event count from infusion or transplant and cannot be < 0.",
                )
                raise ValidationError(msg)
            frame[col] = t
        elif lower.endswith("_event"):
            frame[col] = _flag(frame, col, lines, source)
    frame = frame.reset_index(drop=True)
    frame.attrs = {"source": source, "validated": "patients"}
    return frame


def _require_measurement_columns(frame: pd.DataFrame, source: str | None) -> None:
    """Raise :class:`MissingColumnError` when a required measurement column is absent."""
    missing = [c for c in MEASUREMENT_COLUMNS if c not in frame.columns]
    if missing:
        msg = format_message(
            f"the measurement table lacks required column(s) {missing!r}; "
            f"it has {list(frame.columns)[:20]!r}",
            file=source,
            hint="Rename the columns, or map them with columns={'old': 'new'}.",
        )
        raise MissingColumnError(msg)


def _coerce_measurements(frame: pd.DataFrame, lines: np.ndarray, source: str | None) -> None:
    """Strip the IDs, make day/value/lod numbers and the flag boolean, in place; check gaps."""
    for col in ("patient", "analyte", "day"):
        _missing(frame, col, lines, source)
    frame["patient"] = frame["patient"].astype(str).str.strip()
    frame["analyte"] = frame["analyte"].astype(str).str.strip()
    frame["day"] = _numeric(
        frame, "day", lines, source, hint="Days are numbers relative to infusion (day 0)."
    )
    flag = (
        _flag(frame, "below_detection", lines, source)
        if "below_detection" in frame.columns
        else pd.Series(np.zeros(len(frame), dtype=bool), index=frame.index)
    )
    frame["below_detection"] = flag.to_numpy()
    frame["value"] = _numeric(
        frame,
        "value",
        lines,
        source,
        hint="Write values below detection as the detection limit (or leave them empty) and "
        "set below_detection to 1, instead of '<0.5'-style text.",
    )
    empty = (frame["value"].isna() & ~frame["below_detection"]).to_numpy()
    if empty.any():
        msg = format_message(
            "values missing but not flagged below detection",
            file=source,
            column="value",
            rows=_rows(lines, empty, source),
            hint="Delete rows that were not measured, or set below_detection to 1.",
        )
        raise ValidationError(msg)
    if "lod" in frame.columns:
        frame["lod"] = _numeric(frame, "lod", lines, source, hint="The LOD is a number.")


def _units(frame: pd.DataFrame, lines: np.ndarray, source: str | None) -> dict[str, str]:
    """Analyte → unit, the ``unit`` column cleaned in place; an error if an analyte has two."""
    units: dict[str, str] = {}
    if "unit" not in frame.columns:
        return units
    unit = frame["unit"].astype("string").str.strip()
    frame["unit"] = unit.astype(object).where(unit.notna(), None)
    for analyte, sub in frame.groupby("analyte", sort=True):
        seen = sub["unit"].dropna().unique()
        if len(seen) > 1:
            counts = sub["unit"].value_counts()
            minority = sub["unit"].ne(counts.index[0]) & sub["unit"].notna()
            msg = format_message(
                f"analyte {analyte!r} is reported in different units ({preview(sorted(seen))})",
                file=source,
                column="unit",
                rows=_rows(lines[sub.index.to_numpy()], minority.to_numpy(), source),
                hint="Convert these rows to one unit (e.g. CRP mg/dL x 10 = mg/L) or give "
                "them different analyte names.",
            )
            raise ValidationError(msg)
        if len(seen) == 1:
            units[str(analyte)] = str(seen[0])
    return units


def _check_patients(
    frame: pd.DataFrame,
    patients: pd.DataFrame | Sequence[str] | str | os.PathLike[str],
    lines: np.ndarray,
    source: str | None,
) -> None:
    """Raise when a measured patient is not among ``patients`` (a table, a path or IDs)."""
    if isinstance(patients, pd.DataFrame | str | os.PathLike):
        known = set(read_patients(patients, dose_column=None)["patient"])
    else:
        known = {str(p) for p in patients}
    unknown = ~frame["patient"].isin(known).to_numpy()
    if unknown.any():
        msg = format_message(
            f"measurements of patients not in the patient table: "
            f"{preview(frame.loc[unknown, 'patient'].unique())}",
            file=source,
            column="patient",
            rows=_rows(lines, unknown, source),
            hint="Check the IDs' spelling (leading zeros, prefixes) or add the patients.",
        )
        raise ValidationError(msg)


def _duplicate_rows(
    frame: pd.DataFrame, lines: np.ndarray, source: str | None
) -> tuple[pd.Series, pd.DataFrame]:
    """Rows repeating an earlier one exactly (to drop) and their record; conflicts raise."""
    key = ["patient", "analyte", "day"]
    dup = frame.duplicated(key, keep=False)
    drop = pd.Series(np.zeros(len(frame), dtype=bool), index=frame.index)
    excluded = pd.DataFrame(columns=["patient", "analyte", "day", "reason"])
    if not dup.any():
        return drop, excluded
    n_distinct = frame.loc[dup].groupby(key, sort=False).nunique(dropna=False)
    conflict = n_distinct.gt(1).any(axis=1)
    if conflict.any():
        bad_keys = conflict[conflict].index
        bad = frame.set_index(key).index.isin(bad_keys)
        msg = format_message(
            f"{len(bad_keys)} patient/analyte/day combination(s) occur more than once "
            f"with different values, e.g. {preview([tuple(k) for k in bad_keys], 3)}",
            file=source,
            rows=_rows(lines, bad, source),
            hint="Keep one measurement per patient, analyte and day (or use distinct days, "
            "e.g. 7.5 for a second sample on day 7).",
        )
        raise ValidationError(msg)
    drop = frame.duplicated(key, keep="first")
    return drop, frame.loc[drop, key].assign(reason="exact duplicate row collapsed")


def read_measurements(
    path_or_frame: str | os.PathLike[str] | pd.DataFrame,
    *,
    patients: pd.DataFrame | Sequence[str] | str | os.PathLike[str] | None = None,
    columns: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Read and validate a long table of per-patient measurements over time.

    Parameters
    ----------
    path_or_frame
        Path to a CSV/TSV/TXT/XLSX/parquet file, or a DataFrame, one row per patient,
        analyte and day. Required columns: ``patient``, ``day`` (relative to infusion;
        days before infusion are negative and valid), ``analyte`` (e.g. ``"IL-6"``,
        ``"CRP"``, ``"CAR-T copies/ug DNA"``) and ``value``. Optional: ``unit`` (must agree
        within an analyte), ``below_detection`` (1/0, TRUE/FALSE; for such rows ``value``
        may hold the detection limit or be empty) and ``lod`` (detection limit).
    patients
        The patient table (DataFrame or path, as :func:`read_patients`) or a list of
        patient IDs; measurements of any other patient are an error.
    columns
        Renames applied first, e.g. ``{"Subject": "patient", "Result": "value"}``.

    Returns
    -------
    pandas.DataFrame
        Columns ``patient`` (str), ``day`` (float), ``analyte`` (str), ``value`` (float),
        ``below_detection`` (bool), ``unit`` and ``lod`` when given, then any other
        columns; sorted by patient, analyte and day, index reset. ``attrs`` holds
        ``source``, ``units`` (analyte → unit) and ``excluded`` (collapsed duplicate
        rows: ``patient, analyte, day, reason``).

    Raises
    ------
    MissingColumnError
        A required column is absent.
    ValidationError
        Missing patient/analyte/day, non-numeric day or value, a value missing although
        not flagged below detection, unknown patients, the same patient, analyte and day
        twice with different values, units that disagree within an analyte.

    Warns
    -----
    OlinkpipeWarning
        Exact duplicate rows, which are collapsed to one.

    Examples
    --------
    >>> import pandas as pd
    >>> from olinkpipe.clinical import read_measurements
    >>> m = read_measurements(pd.DataFrame({
    ...     "patient": ["P1", "P1", "P1"], "day": [-1, 7, 14],
    ...     "analyte": "IL-6", "value": [3.0, 45.0, 8.0], "unit": "pg/mL"}))
    >>> m[["day", "value"]].to_numpy().tolist()
    [[-1.0, 3.0], [7.0, 45.0], [14.0, 8.0]]
    """
    frame, source, lines = _load(path_or_frame, "measurement table")
    if columns:
        frame = frame.rename(columns=columns)
    _require_measurement_columns(frame, source)
    _coerce_measurements(frame, lines, source)
    units = _units(frame, lines, source)
    if patients is not None:
        _check_patients(frame, patients, lines, source)
    # duplicates: identical rows collapse (recorded); conflicting rows are an error
    drop, excluded = _duplicate_rows(frame, lines, source)
    if drop.any():
        warn(
            f"read_measurements: collapsed {int(drop.sum())} exact duplicate row(s) "
            f"({preview(_rows(lines, drop.to_numpy(), source))}); recorded in "
            "attrs['excluded'].",
            stacklevel=2,
        )
        frame = frame.loc[~drop]
    first = ["patient", "day", "analyte", "value", "below_detection"]
    first += [c for c in ("unit", "lod") if c in frame.columns]
    frame = frame[first + [c for c in frame.columns if c not in first]]
    frame = frame.sort_values(["patient", "analyte", "day"], kind="mergesort").reset_index(
        drop=True
    )
    frame.attrs = {
        "source": source,
        "units": units,
        "excluded": excluded.reset_index(drop=True).to_dict("records"),
        "validated": "measurements",
    }
    return frame
