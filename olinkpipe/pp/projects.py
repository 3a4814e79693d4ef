"""Normalization of more than two projects, chained as OlinkAnalyze's ``olink_normalization_n``.

Each step is one two-project normalization (:func:`~olinkpipe.pp.bridge_normalize` or
:func:`~olinkpipe.pp.subset_normalize`) of a project to the already normalized values of
the project(s) it is normalized to; this module only plans, checks and stitches the steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from .._validate import require_columns
from ..errors import DuplicateSampleError, OlinkpipeError, ValidationError, format_message
from . import _lodcols, _utils
from .bridge import bridge_normalize
from .normalize import subset_normalize

__all__ = ["normalize_projects"]

PLAN_COLUMNS = ["project", "normalize_to", "method", "samples"]
METHODS = ("bridge", "subset")
STEP = "normalize_projects"
#: obs columns the two-project functions add; they describe one step only and are dropped
_STEP_MARKS = ("bridge", "bridge_pair", "norm_sample")


@dataclass
class _Row:
    pos: int  # row number in the plan
    name: str
    to: list[str]  # empty for the reference
    method: str
    samples: object


def normalize_projects(
    projects: Mapping[str, ad.AnnData],
    plan: pd.DataFrame,
    *,
    keep_bridge: bool = False,
) -> ad.AnnData:
    """Normalize several projects to one reference, step by step, as OlinkAnalyze does.

    The equivalent of OlinkAnalyze's ``olink_normalization_n``: the plan's first row is the
    reference project (``normalize_to`` empty) and stays unchanged; every later row is
    normalized, in the plan's order, to the **already normalized** values of the project
    named in its ``normalize_to`` (several names, comma-separated or a list, are pooled as
    OlinkAnalyze pools them), with :func:`~olinkpipe.pp.bridge_normalize` (``"bridge"``)
    or :func:`~olinkpipe.pp.subset_normalize` (``"subset"``). A project normalized to a
    project that was itself normalized is therefore shifted by the sum of the factors
    along its chain, while each step's factor is recorded on its own.

    As in OlinkAnalyze, a bridge-normalized project's own copies of its bridge samples are
    dropped from the result (their reference copies stay), recorded in
    ``uns["olinkpipe"]["excluded"]``; ``keep_bridge=True`` keeps them.

    Parameters
    ----------
    projects
        Project name → samples × assays AnnData (``docs/data_model.md``).
    plan
        One row per project with columns ``project`` (a key of ``projects``),
        ``normalize_to`` (empty / None for the reference, else earlier project name(s)),
        ``method`` (``"bridge"`` or ``"subset"``, case-insensitive; ignored for the
        reference) and ``samples``:

        - bridge: the bridge samples, in any form :func:`~olinkpipe.pp.bridge_normalize`
          takes (IDs present in both projects, ``{reference_id: other_id}``, pairs), or
          OlinkAnalyze's ``{"DF1": reference_ids, "DF2": other_ids}``;
        - subset: ``None`` for all samples of both projects, a list of IDs looked up in
          both, or ``{"DF1": reference_ids, "DF2": other_ids}`` (OlinkAnalyze's form).
    keep_bridge
        Keep the bridge-normalized projects' own bridge samples (default False, as
        OlinkAnalyze).

    Returns
    -------
    anndata.AnnData
        All projects stacked on the assays every step kept, in plan order, with
        ``obs["Project"]`` (categorical in plan order). ``varm["Adj_factor"]`` (assays ×
        projects) holds each project's factor of its own step (0 for the reference), as
        OlinkAnalyze's ``Adj_factor`` column; ``uns["olinkpipe"]["normalization"]
        ["normalize_projects"]`` the plan and a long ``factors`` table (``Project``,
        ``normalize_to``, ``OlinkID``, ``Assay``, ``Panel``, ``Adj_factor``, ...). Sample
        names found in more than one project get an ``"@<project>"`` suffix.

    Raises
    ------
    MissingColumnError
        The plan lacks a column.
    ValidationError
        Unknown or repeated project names, no or two references, a ``normalize_to`` naming
        the project itself or a later row (a cycle), an unknown method, a bridge row
        without samples, or samples absent from their project (the error names the row).

    Notes
    -----
    Differences from OlinkAnalyze: the result keeps only assays shared along every step
    (OlinkAnalyze's long table keeps each step's shared assays, so an assay missing from a
    later project stays in the earlier ones); an assay dropped that way is recorded. The
    plan's order replaces OlinkAnalyze's ``order`` column, and project names replace its
    order numbers in ``normalize_to``.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> p1 = op.datasets.load_example().adata
    >>> p2 = p1.copy(); p2.X = p2.X + 0.5; p2.varm["lod"] = p2.varm["lod"] + 0.5
    >>> p3 = p1.copy(); p3.X = p3.X - 1.0; p3.varm["lod"] = p3.varm["lod"] - 1.0
    >>> plan = pd.DataFrame({
    ...     "project": ["P1", "P2", "P3"],
    ...     "normalize_to": [None, "P1", "P2"],
    ...     "method": [None, "bridge", "subset"],
    ...     "samples": [None, ["OL0002", "OL0006", "OL0008"], None],
    ... })
    >>> import warnings
    >>> with warnings.catch_warnings():  # it warns about the 3 bridge samples it drops
    ...     warnings.simplefilter("ignore")
    ...     out = op.pp.normalize_projects({"P1": p1, "P2": p2, "P3": p3}, plan)
    >>> out.obs["Project"].value_counts(sort=False).to_dict()  # P2's bridge copies dropped
    {'P1': 50, 'P2': 47, 'P3': 50}
    >>> out.varm["Adj_factor"].iloc[0].round(1).tolist()  # P3 to the normalized P2
    [0.0, -0.5, 1.0]
    """
    rows = _check_plan(projects, plan)
    ref = rows[0]
    running = projects[ref.name].copy()
    _utils.new_result(running, copy=False)
    had_norm = set(_utils.normalization_record(running))
    had_obs = set(running.obs.columns)
    proj_of = np.zeros(running.n_obs, dtype=np.intp)  # plan row of each running row
    names = list(running.obs_names.astype(str))  # each row's name in its own project
    keep = np.ones(running.n_obs, dtype=bool)
    # input row -> running row, -1 once dropped (a bridge sample removed at its own step)
    where = {ref.name: np.arange(running.n_obs)}
    factors: dict[str, pd.Series] = {ref.name: pd.Series(0.0, index=running.var_names)}
    tables: list[pd.DataFrame] = []
    for row in rows[1:]:
        other = projects[row.name]
        had_obs |= set(other.obs.columns)
        n_run = running.n_obs
        try:
            pair = _one_step(running, other, row, projects, where)
        except OlinkpipeError as err:
            msg = f"plan row {row.pos} (project {row.name!r}): {err}"
            raise type(err)(msg) from err
        proj_of = np.concatenate([proj_of, np.full(other.n_obs, rows.index(row))])
        names += list(other.obs_names.astype(str))
        new_keep = np.ones(other.n_obs, dtype=bool)
        if row.method == "bridge" and not keep_bridge:
            new_keep = ~pair.obs["bridge"].to_numpy(dtype=bool)[n_run:]
        keep = np.concatenate([keep, new_keep])
        where[row.name] = np.where(new_keep, n_run + np.arange(other.n_obs), -1)
        factors[row.name] = pair.var["Adj_factor"].astype(float)
        step = "bridge_normalize" if row.method == "bridge" else "subset_normalize"
        tab = _utils.normalization_record(pair)[step]["factors"]
        tables.append(tab.assign(Project=row.name, normalize_to=",".join(row.to)))
        if not new_keep.all():
            _utils.exclude(
                pair,
                step=STEP,
                kind="sample",
                ids=other.obs_names[~new_keep],
                reason=f"bridge sample of project {row.name} (its reference copy is kept, "
                "as OlinkAnalyze)",
            )
        running = pair
    return _finish(
        running, rows, keep, proj_of, names, factors, tables, had_norm, had_obs, keep_bridge
    )


def _one_step(running, other, row, projects, where) -> ad.AnnData:
    """One two-project normalization of ``other`` to the running result's rows of
    ``row.to`` (the reference side is the whole running result: only those rows enter the
    factor, and every row is carried along)."""
    label = ",".join(row.to)
    if row.method == "bridge":
        ids_r, ids_o = _bridge_pairs(row.samples)
        run_names = _running_names(running, ids_r, row.to, projects, where)
        return bridge_normalize(
            running, other, dict(zip(run_names, ids_o, strict=True)), projects=(label, row.name)
        )
    if row.samples is None:  # all (kept) samples of both
        ref_rows = np.concatenate([where[t] for t in row.to])
        ref_rows = ref_rows[ref_rows >= 0]
        run_names = list(running.obs_names[ref_rows].astype(str))
        ids_o = list(other.obs_names.astype(str))
    else:
        ids_r, ids_o = _subset_lists(row.samples)
        run_names = _running_names(running, ids_r, row.to, projects, where, allow_multiple=True)
    return subset_normalize(running, other, run_names, ids_o, projects=(label, row.name))


def _running_names(running, ids, to, projects, where, *, allow_multiple=False) -> list[str]:
    """Running-result row names of sample IDs of the projects ``to``, each ID looked up
    as the two-project functions look samples up (``obs_names``, then ``obs["SampleID"]``;
    with ``allow_multiple`` every row of a repeated SampleID, as R's ``%in%``)."""
    ids = list(dict.fromkeys(ids)) if allow_multiple else ids
    dup = pd.Index(ids)[pd.Index(ids).duplicated()].unique().tolist()
    if dup:
        msg = format_message("sample(s) listed more than once", column="samples", rows=dup)
        raise DuplicateSampleError(msg)
    hits: dict[str, list[int]] = {i: [] for i in ids}
    for t in to:
        adata, run_of = projects[t], where[t]
        names = pd.Index(adata.obs_names.astype(str))
        unique_name = names.drop_duplicates(keep=False)
        by_sid = (
            pd.Series(np.arange(adata.n_obs)).groupby(np.asarray(_utils.sample_ids(adata))).indices
        )
        for i in ids:
            if i in unique_name:
                found = [names.get_loc(i)]
            else:
                found = list(by_sid.get(i, ()))
            hits[i].extend(int(run_of[p]) if run_of[p] >= 0 else -1 for p in found)
    missing = [i for i, h in hits.items() if not h]
    if missing:
        msg = format_message(
            f"sample(s) not found in project(s) {to!r} (looked in obs_names and obs['SampleID'])",
            column="samples",
            rows=missing,
            hint="Check the spelling; for renamed samples give {'DF1': [...], 'DF2': [...]}.",
        )
        raise ValidationError(msg)
    gone = [i for i, h in hits.items() if any(p < 0 for p in h)]
    if gone:
        msg = format_message(
            f"sample(s) of project(s) {to!r} were dropped as bridge samples at their own "
            "normalization step and cannot be used again",
            column="samples",
            rows=gone,
            hint="Use the reference copies, or pass keep_bridge=True.",
        )
        raise ValidationError(msg)
    if not allow_multiple:
        multi = [i for i, h in hits.items() if len(h) > 1]
        if multi:
            msg = format_message(
                f"bridge sample(s) match several rows of the project(s) {to!r}",
                column="samples",
                rows=multi,
                hint="Pass the unique obs_names (e.g. 'ID@PlateID') instead.",
            )
            raise DuplicateSampleError(msg)
    rows = [p for h in hits.values() for p in h]
    return list(running.obs_names[np.asarray(rows, dtype=np.intp)].astype(str))


def _oa_lists(samples) -> tuple[list[str], list[str]] | None:
    """OlinkAnalyze's ``list(DF1 = ..., DF2 = ...)`` form, else None."""
    if isinstance(samples, Mapping) and set(map(str, samples)) == {"DF1", "DF2"}:
        return [str(s) for s in samples["DF1"]], [str(s) for s in samples["DF2"]]
    return None


def _bridge_pairs(samples) -> tuple[list[str], list[str]]:
    oa = _oa_lists(samples)
    if oa is not None:
        if len(oa[0]) != len(oa[1]):
            msg = "bridge samples: DF1 and DF2 must have the same length (pairs, in order)."
            raise ValidationError(msg)
        return oa
    ids_r, ids_o = _utils.as_mapping(samples)
    if not ids_r:
        msg = "no bridge samples given."
        raise ValidationError(msg)
    return ids_r, ids_o


def _subset_lists(samples) -> tuple[list[str], list[str]]:
    oa = _oa_lists(samples)
    if oa is not None:
        return oa
    if isinstance(samples, str):
        samples = [samples]
    ids = [str(s) for s in samples]
    return ids, ids


def _blank(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and np.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _targets(value) -> list[str]:
    if _blank(value):
        return []
    if isinstance(value, str):
        return [t.strip() for t in value.split(",") if t.strip()]
    return [str(t) for t in value]


def _check_plan(projects: Mapping[str, ad.AnnData], plan: pd.DataFrame) -> list[_Row]:
    """The plan as rows, after every check OlinkAnalyze's ``olink_normalization_n_check``
    makes (and a few more), each error naming the plan rows concerned."""
    if not isinstance(plan, pd.DataFrame):
        msg = f"plan must be a pandas DataFrame with columns {PLAN_COLUMNS}; got {type(plan)}."
        raise ValidationError(msg)
    if not isinstance(projects, Mapping) or not projects:
        msg = "projects must be a non-empty mapping name -> AnnData."
        raise ValidationError(msg)
    require_columns(plan, PLAN_COLUMNS, what="normalization plan")
    rows: list[_Row] = []
    for pos, rec in enumerate(plan[PLAN_COLUMNS].itertuples(index=False)):
        name = "" if _blank(rec.project) else str(rec.project)
        method = "" if _blank(rec.method) else str(rec.method).strip().lower()
        rows.append(_Row(pos, name, _targets(rec.normalize_to), method, rec.samples))

    def fail(problem: str, bad: list[_Row], hint: str) -> None:
        msg = format_message(
            problem,
            column="plan",
            rows=[f"{r.pos} ({r.name or 'no name'})" for r in bad],
            hint=hint,
        )
        raise ValidationError(msg)

    if not rows:
        fail("the plan has no rows", [], "Give one row per project.")
    unnamed = [r for r in rows if not r.name]
    if unnamed:
        fail("plan rows without a project name", unnamed, "Fill the 'project' column.")
    unknown = [r for r in rows if r.name not in projects]
    if unknown:
        fail(
            f"project(s) not among the given projects {list(projects)!r}",
            unknown,
            "Use the keys of `projects`.",
        )
    seen = pd.Index([r.name for r in rows])
    dup = [r for r, d in zip(rows, seen.duplicated(keep=False), strict=True) if d]
    if dup:
        fail("a project is listed more than once", dup, "Give one row per project.")
    unplanned = [p for p in projects if p not in set(seen)]
    if unplanned:
        msg = format_message(
            "project(s) given but absent from the plan",
            column="plan",
            rows=unplanned,
            hint="Add a plan row for each project, or leave it out of `projects`.",
        )
        raise ValidationError(msg)
    refs = [r for r in rows if not r.to]
    if len(refs) != 1:
        fail(
            f"the plan must have exactly one reference (normalize_to empty); it has {len(refs)}",
            refs,
            "Leave normalize_to empty on the reference row only.",
        )
    if rows[0].to:
        fail(
            "the reference (normalize_to empty) must be the plan's first row",
            [rows[0], *refs],
            "Order the plan: reference first, then each project after those it is normalized to.",
        )
    order = {r.name: r.pos for r in rows}
    bad_to = [r for r in rows if any(t not in order for t in r.to)]
    if bad_to:
        fail("normalize_to names an unknown project", bad_to, "Use names from 'project'.")
    selfref = [r for r in rows if r.name in r.to]
    if selfref:
        fail("a project is normalized to itself", selfref, "Remove the self-reference.")
    later = [r for r in rows if any(order[t] > r.pos for t in r.to)]
    if later:
        cyc = "a cycle or " if _has_cycle(rows) else ""
        fail(
            f"normalize_to names {cyc}a project of a later plan row (projects are normalized "
            "in the plan's order, each to already normalized ones)",
            later,
            "Reorder the plan so that each project follows those it is normalized to.",
        )
    bad_method = [r for r in rows[1:] if r.method not in METHODS]
    if bad_method:
        fail(f"method must be one of {list(METHODS)}", bad_method, "Fill the 'method' column.")
    no_bridge = [r for r in rows[1:] if r.method == "bridge" and _is_empty(r.samples)]
    if no_bridge:
        fail("a bridge row lists no bridge samples", no_bridge, "Give the bridge samples.")
    return rows


def _is_empty(samples) -> bool:
    if samples is None or (isinstance(samples, float) and np.isnan(samples)):
        return True
    try:
        return len(samples) == 0
    except TypeError:
        return False


def _has_cycle(rows: list[_Row]) -> bool:
    graph = {r.name: r.to for r in rows}
    state: dict[str, int] = {}

    def visit(n: str) -> bool:
        if state.get(n) == 1:
            return True
        if state.get(n) == 2:
            return False
        state[n] = 1
        found = any(visit(t) for t in graph.get(n, []))
        state[n] = 2
        return found

    return any(visit(n) for n in graph)


def _finish(running, rows, keep, proj_of, names, factors, tables, had_norm, had_obs, keep_bridge):
    """The result: rows kept, names made unique, Project, factors in varm and uns."""
    labels = [r.name for r in rows]
    out = running[keep].copy() if not keep.all() else running
    proj = proj_of[keep]
    own = np.asarray(names, dtype=object)[keep]
    pairs = pd.DataFrame({"name": own, "proj": proj}).drop_duplicates()
    shared = pairs["name"][pairs["name"].duplicated()].unique()
    own = np.where(
        np.isin(own, shared),
        [f"{n}@{labels[p]}" for n, p in zip(own, proj, strict=True)],
        own,
    )
    out.obs_names = pd.Index(own.astype(str))
    drop = [c for c in _STEP_MARKS if c in out.obs and c not in had_obs]
    out.obs = out.obs.drop(columns=drop)
    out.obs["Project"] = pd.Categorical.from_codes(proj, categories=labels)
    _lodcols.update_max_lod(out)  # OlinkAnalyze: over the stacked, normalized projects
    if "Adj_factor" in out.var:
        out.var = out.var.drop(columns="Adj_factor")
    adj = pd.DataFrame(
        {name: factors[name].reindex(out.var_names).to_numpy() for name in labels},
        index=out.var_names,
    )
    out.varm["Adj_factor"] = adj
    norm = _utils.normalization_record(out)
    for key in ("bridge_normalize", "subset_normalize"):
        if key in norm and key not in had_norm:
            del norm[key]
    long = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()
    if len(long):
        long = long[long["OlinkID"].isin(out.var_names.astype(str))]
        first = ["Project", "normalize_to"]
        long = long[first + [c for c in long.columns if c not in first]].reset_index(drop=True)
    norm[STEP] = {
        "reference_project": labels[0],
        "plan": pd.DataFrame(
            {
                "project": labels,
                "normalize_to": [",".join(r.to) for r in rows],
                "method": [r.method if r.to else "" for r in rows],
            }
        ),
        "keep_bridge": bool(keep_bridge),
        "factors": long,
    }
    return out
