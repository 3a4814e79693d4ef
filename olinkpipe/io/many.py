"""``read_exports``: several Olink exports of one study (a folder, or a list of files).

Studies often arrive as more than one file: one per panel (NPX Manager), one per plate or
run, or an export plus later re-runs. Each file is read with :func:`read_npx`, brought back
to Olink's long format (:func:`to_long`), and the rows are built into one AnnData by the
same builder every reader uses, so samples measured on several panels become one row and
assays measured on several plates one column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from os import PathLike
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from .._provenance import record_exclusion
from ..errors import (
    DesignError,
    DuplicateSampleError,
    MissingColumnError,
    NPXFormatError,
    OlinkpipeError,
    UnknownFormatError,
    format_message,
)
from . import _layers
from ._util import warn_user
from .convert import from_long, to_long
from .npx import read_npx

__all__ = ["read_exports", "EXPORT_SUFFIXES"]

#: file name endings looked at in a folder (case-insensitive)
EXPORT_SUFFIXES = (".csv", ".txt", ".tsv", ".parquet", ".xlsx", ".zip", ".gz")
#: column added to the long rows: the file each measurement came from
SOURCE_COLUMN = "SourceFile"


def _files(
    paths: str | PathLike[str] | Iterable[str | PathLike[str]],
    exclude: Iterable[str | PathLike[str]],
) -> tuple[list[Path], bool]:
    """The export files to read and whether they came from scanning a folder."""
    if isinstance(paths, str | PathLike):
        paths = [paths]
    given = [Path(p) for p in paths]
    skip = {Path(p).resolve() for p in exclude}
    files: list[Path] = []
    scanned = False
    for p in given:
        if p.is_dir():
            scanned = True
            files.extend(
                f
                for f in sorted(p.iterdir())
                if f.is_file()
                and not f.name.startswith(".")
                and f.name.lower().endswith(EXPORT_SUFFIXES)
                and f.resolve() not in skip
            )
        elif not p.exists():
            msg = format_message("file not found", file=str(p), hint="Check the path.")
            raise NPXFormatError(msg)
        else:
            files.append(p)
    if not files:
        msg = format_message(
            "no Olink export found",
            file=", ".join(map(str, given)) or "(no paths)",
            hint=f"A folder is searched for files ending in {', '.join(EXPORT_SUFFIXES)}.",
        )
        raise NPXFormatError(msg)
    return files, scanned


def _one(values: dict[str, str], key: str) -> str:
    """The one value of ``key`` shared by every file (``unknown`` ignored), or an error."""
    known = {f: v for f, v in values.items() if v and v != "unknown"}
    distinct = sorted(set(known.values()))
    if len(distinct) > 1:
        rows = [f"{f}: {v}" for f, v in known.items()]
        msg = format_message(
            f"the exports differ in {key} ({', '.join(distinct)}); they cannot be combined "
            "as one study",
            rows=rows,
            hint="Read them separately with read_npx and normalize them to each other "
            "(op.pp.bridge_normalize or op.pp.subset_normalize).",
        )
        raise DesignError(msg)
    return distinct[0] if distinct else "unknown"


def _check_overlap(longs: list[pd.DataFrame], names: list[str], key: list[str]) -> None:
    """The same sample, assay (and plate) in two files is a re-run, not more data: error."""
    keys = []
    for long, name in zip(longs, names, strict=True):
        cols = [c for c in key if c in long]
        k = long[cols].astype(str).drop_duplicates()
        keys.append(k.assign(**{SOURCE_COLUMN: name}))
    allk = pd.concat(keys, ignore_index=True)
    cols = [c for c in allk.columns if c != SOURCE_COLUMN]
    dup = allk[allk.duplicated(cols, keep=False)]
    if len(dup):
        first = dup.groupby(cols, sort=False)[SOURCE_COLUMN].agg(lambda s: " and ".join(s))
        rows = [f"{'/'.join(map(str, k))} in {files}" for k, files in first.head(5).items()]
        msg = format_message(
            f"{len(first)} measurement(s) ({'/'.join(cols)}) are in more than one file",
            column=", ".join(cols),
            rows=rows,
            hint="Two runs of the same samples are two projects: read them separately and "
            "bridge them (op.pp.bridge_normalize); or leave the duplicate file out.",
        )
        raise DuplicateSampleError(msg)


def _canonical_columns(parts: list[tuple[str, ad.AnnData]], names: list[str]):
    """Each file's long table with one set of column names for the Olink roles.

    Files may name a role differently (``PlateLOD``/``LOD``, ``SampleQC``/``QC_Warning``,
    ``Plate ID``/``PlateID``): the first file's name for each role is used for all.
    Returns the long tables and the role → column mapping.
    """
    roles_of = [dict(a.uns.get("olinkpipe", {}).get("columns", {})) for _, a in parts]
    canon: dict[str, str] = {}
    for roles in roles_of:
        for role, col in roles.items():
            if col and role not in canon:
                canon[role] = str(col)
    longs, renamed = [], []
    for (_, a), roles, name in zip(parts, roles_of, names, strict=True):
        long = to_long(a)
        ren = {
            str(col): canon[role]
            for role, col in roles.items()
            if col and str(col) != canon[role] and str(col) in long
        }
        clash = [new for new in ren.values() if new in long]
        if clash:
            msg = format_message(
                f"{name} has both columns named for one role ({', '.join(clash)})",
                file=name,
                hint="Read the files one by one with read_npx.",
            )
            raise DesignError(msg)
        if ren:
            long = long.rename(columns=ren)
            renamed.append(f"{name}: " + ", ".join(f"{k} -> {v}" for k, v in ren.items()))
        longs.append(long)
    if renamed:
        warn_user("read_exports: columns renamed to match the first file: " + "; ".join(renamed))
    return longs, canon


def read_exports(
    paths: str | PathLike[str] | Iterable[str | PathLike[str]],
    *,
    sep: str | None = None,
    product: str | None = None,
    duplicates: str = "rename",
    exclude: Iterable[str | PathLike[str]] = (),
    layers: Sequence[str] | None = None,
) -> ad.AnnData:
    """Read the Olink exports of one study, from a folder or a list of files, as one AnnData.

    Each file is read with :func:`olinkpipe.read_npx` (any format it reads; they may be
    mixed), converted back to Olink's long rows with a ``SourceFile`` column, and the rows of
    all files are built into one AnnData: a sample measured on several panels (one file per
    panel) is one row; an assay measured on several plates (one file per plate) is one
    column. ``SourceFile`` lands in ``obs`` when each sample comes from one file, in ``var``
    when each assay does, else in a layer.

    Parameters
    ----------
    paths
        A folder (every file ending in ``.csv``, ``.txt``, ``.tsv``, ``.parquet``,
        ``.xlsx``, ``.zip`` or ``.gz``, hidden files left out), one file, or a list of
        files and folders.
    sep, product, duplicates
        As in :func:`olinkpipe.read_npx` (``duplicates`` also applies across files: a
        control sample run on each plate becomes one row per plate).
    exclude
        Files in the folder that are not exports (a sample sheet, a patient table).
    layers
        As in :func:`olinkpipe.read_npx`: the per-cell columns kept (``None``: all), applied
        to each file; an error names a file without one of them.

    Returns
    -------
    anndata.AnnData
        As :func:`olinkpipe.read_npx` returns; ``uns["olinkpipe"]["files"]`` lists the files
        read. Role columns named differently in different files (``PlateLOD``/``LOD``,
        ``SampleQC``/``QC_Warning``) are renamed to the first file's names, with a warning;
        columns only some files have, and study samples found in several files, are warned
        about.
        Files in a folder that are not Olink exports (an unknown layout, or no
        SampleID/OlinkID/NPX columns) are skipped with a warning and recorded in ``uns["olinkpipe"]["excluded"]`` (kind
        ``"file"``).

    Raises
    ------
    NPXFormatError
        A path does not exist, no export was found, or a file is unreadable (its error).
    DesignError
        The files are of different products (e.g. Explore 3072 and Explore HT) or data
        types (NPX and Quantified).
    DuplicateSampleError
        The same SampleID, OlinkID (and PlateID) is in two files: two runs of the same
        samples are two projects to normalize, not one.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import olinkpipe as op
    >>> long = op.to_long(op.datasets.load_example().adata)
    >>> folder = Path(tempfile.mkdtemp())
    >>> for panel, rows in long.groupby("Panel"):  # one file per panel
    ...     rows.to_csv(folder / f"{panel}_NPX.csv", sep=";", index=False)
    >>> adata = op.io.read_exports(folder)
    >>> adata.shape
    (50, 359)
    >>> adata.var["SourceFile"].nunique()
    4
    """
    try:
        files, scanned = _files(paths, exclude)
    except OSError as err:  # a folder that cannot be listed
        msg = format_message(f"cannot list the files ({err})", file=str(err.filename or paths))
        raise NPXFormatError(msg) from err
    try:
        return _read_files(
            files, scanned, sep=sep, product=product, duplicates=duplicates, layers=layers
        )
    except OlinkpipeError:
        raise
    except (ValueError, TypeError, KeyError, IndexError, NotImplementedError, OSError) as err:
        shown = ", ".join(str(f) for f in files[:5]) + (" ..." if len(files) > 5 else "")
        msg = format_message(
            f"cannot combine the files ({type(err).__name__}: {str(err)[:200]})",
            file=shown,
            hint="Read each file with read_npx to find the one that differs.",
        )
        raise NPXFormatError(msg) from err


def _read_files(
    files: list[Path],
    scanned: bool,
    *,
    sep: str | None,
    product: str | None,
    duplicates: str,
    layers: Sequence[str] | None = None,
) -> ad.AnnData:
    parts: list[tuple[str, ad.AnnData]] = []
    skipped: list[tuple[str, str]] = []
    for f in files:
        try:
            adata = read_npx(f, sep=sep, product=product, duplicates=duplicates, layers=layers)
            parts.append((str(f), adata))
        except (UnknownFormatError, MissingColumnError) as exc:
            if not scanned:
                raise
            skipped.append((str(f), str(exc)))
            warn_user(f"read_exports: {f.name} is not an Olink export, skipped: {exc}")
    if not parts:
        msg = format_message(
            "no Olink export found among the files",
            rows=[name for name, _ in skipped],
            file=", ".join(str(p) for p in files[:5]),
        )
        raise NPXFormatError(msg)
    out = _combine(parts, product=product, duplicates=duplicates)
    if layers is not None:  # what each file left out
        left = [c for _, a in parts for c in a.uns["olinkpipe"]["layers"]["left_out"]]
        _layers.record(out, tuple(layers), list(dict.fromkeys(left)))
    for name, reason in skipped:
        record_exclusion(
            out,
            step="read_exports",
            kind="file",
            ids=[name],
            reason=f"not an Olink export: {reason.splitlines()[0][:200]}",
            warn_user=False,
        )
    return out


def _warn_partial_columns(longs: list[pd.DataFrame], names: list[str]) -> None:
    """Columns only some files have are empty for the others' rows: say so."""
    every = set.intersection(*(set(lg.columns) for lg in longs))
    partial = {}
    for lg, name in zip(longs, names, strict=True):
        for c in lg.columns:
            if c not in every:
                partial.setdefault(c, []).append(name)
    if partial:
        listed = "; ".join(f"{c} (only in {', '.join(f)})" for c, f in partial.items())
        warn_user(
            f"read_exports: {len(partial)} column(s) are not in every file and are empty for "
            f"the other files' rows, so they may be kept as a layer rather than in obs/var: "
            f"{listed}"
        )


def _warn_shared_samples(parts: list[tuple[str, ad.AnnData]], names: list[str]) -> None:
    """Study samples measured on the same assays in several files (on other plates) look
    like a second run: say so. (Per-panel files share samples but not assays.)"""
    seen: dict[str, list[str]] = {}
    for (_, a), name in zip(parts, names, strict=True):
        ids = a.obs["SampleID"] if "SampleID" in a.obs else pd.Series(a.obs_names)
        ctrl = (
            a.obs["is_control"].to_numpy(bool)
            if "is_control" in a.obs
            else np.zeros(a.n_obs, bool)
        )
        for sid in pd.unique(ids.astype(str).to_numpy()[~ctrl]):
            seen.setdefault(sid, []).append(name)
    assays = {name: set(map(str, a.var_names)) for (_, a), name in zip(parts, names, strict=True)}

    def same_assays(files: list[str]) -> bool:  # per-panel files share samples, not assays
        return any(assays[f] & assays[g] for i, f in enumerate(files) for g in files[i + 1 :])

    shared = {sid: f for sid, f in seen.items() if len(f) > 1 and same_assays(f)}
    if shared:
        files = sorted({n for f in shared.values() for n in f})
        warn_user(
            f"read_exports: {len(shared)} study sample(s) are in more than one file "
            f"({', '.join(files)}), e.g. {', '.join(list(shared)[:5])}; they are kept as "
            "separate rows per plate. If the files are two runs (projects), normalize them "
            "to each other instead (op.pp.bridge_normalize)."
        )


def _combine(parts: list[tuple[str, ad.AnnData]], *, product: str | None, duplicates: str):
    """One AnnData from the AnnData of each file (``(path, adata)`` pairs)."""
    if len(parts) == 1:
        out = parts[0][1]
        out.uns.setdefault("olinkpipe", {})["files"] = [parts[0][0]]
        return out
    names = [Path(name).name for name, _ in parts]
    if len(set(names)) < len(names):
        names = [name for name, _ in parts]
    provs = {n: a.uns.get("olinkpipe", {}) for n, (_, a) in zip(names, parts, strict=True)}
    kind = _one({n: str(p.get("product", "unknown")) for n, p in provs.items()}, "product")
    _one({n: str(p.get("data_type", "NPX")) for n, p in provs.items()}, "data type")
    longs, canon = _canonical_columns(parts, names)
    key = [canon.get(r, d) for r, d in (("sample", "SampleID"), ("olinkid", "OlinkID"))]
    key += [canon["plate"]] if "plate" in canon else []
    _check_overlap(longs, names, key)
    _warn_partial_columns(longs, names)
    _warn_shared_samples(parts, names)
    long = pd.concat(
        [lg.assign(**{SOURCE_COLUMN: n}) for lg, n in zip(longs, names, strict=True)],
        ignore_index=True,
        sort=False,
    )
    metas = [
        p.get("metadata") if isinstance(p.get("metadata"), dict) else {} for p in provs.values()
    ]
    shared_meta = {  # key-value metadata (parquet, workbook header) all files agree on
        k: v for k, v in metas[0].items() if all(str(m.get(k)) == str(v) for m in metas[1:])
    }
    out = from_long(
        long,
        product=product or (None if kind == "unknown" else kind),
        duplicates=duplicates,
        data_format="several files",
        metadata={str(k): str(v) for k, v in shared_meta.items()} or None,
    )
    prov = out.uns.setdefault("olinkpipe", {})
    prov["source"] = [name for name, _ in parts]
    prov["files"] = [name for name, _ in parts]
    excluded = [
        p["excluded"]
        for p in provs.values()
        if isinstance(p.get("excluded"), pd.DataFrame) and len(p["excluded"])
    ]
    if excluded:  # what each file's reader left out (duplicate rows, ...)
        prior = prov.get("excluded")
        frames = ([prior] if isinstance(prior, pd.DataFrame) and len(prior) else []) + excluded
        prov["excluded"] = pd.concat(frames, ignore_index=True)
    return out
