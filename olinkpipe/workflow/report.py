"""The self-contained HTML report of a workflow run (figures embedded as base64 PNG)."""

from __future__ import annotations

import base64
import datetime as _dt
import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from .. import _atomic
from ..tl.methods import get_method
from ._registry import steps

if TYPE_CHECKING:  # pragma: no cover
    from ._context import Context

__all__ = ["write_report", "methods_text"]


def _sections() -> list[tuple[str, str]]:
    """(key, heading) of the report's sections, in step order (from the step registry)."""
    out: dict[str, str] = {}
    for step in steps():
        if step.title is not None:
            out.setdefault(step.report_section, step.title)
    return list(out.items())


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:0;color:#222;
     line-height:1.45}
main{max-width:1100px;margin:0 auto;padding:1.5em 2em}
h1{margin-bottom:.1em} h2{border-bottom:2px solid #c0392b;padding-bottom:.2em;margin-top:2em}
.meta{color:#666} nav a{margin-right:1em}
.scroll{overflow:auto;max-width:100%;margin:.6em 0 1.2em;border:1px solid #ddd}
table{border-collapse:collapse;font-size:12px}
th,td{border:1px solid #ddd;padding:3px 6px;text-align:right;white-space:nowrap;
      vertical-align:top}
td.text{text-align:left;white-space:normal;min-width:14em;max-width:48em;
        overflow-wrap:anywhere}
th{background:#f4f4f4;position:sticky;top:0} td:first-child,th:first-child{text-align:left}
.banner{background:#fdecea;border:2px solid #c0392b;color:#7b241c;padding:.6em 1em;
        margin:1em 0;font-weight:600}
pre.config{font-size:12px;background:#f8f8f8;padding:1em;white-space:pre-wrap;
           overflow-wrap:anywhere;max-height:40em;overflow:auto}
figure{margin:1em 0 2em} figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{color:#555;font-size:13px} .caption{color:#555;font-size:13px;margin:0}
.status-done{color:#1e8449} .status-failed{color:#c0392b} .status-skipped{color:#888}
.methods p{margin:.4em 0} code{background:#f4f4f4;padding:0 3px}
"""


#: how the report writes numbers that are not ordinary (also in docs/workflow_config.md)
NUMBER_NOTE = (
    "Numbers in tables: blank = not computed (the row's reason says why); ∞ = infinite "
    "(e.g. an odds ratio with an empty cell, a median not reached); a p-value of exactly 0 "
    "is shown as '< 1e-300' (below double precision) or, for permutation p-values, as "
    "'< 1/permutations' (e.g. '< 0.001' with 1000 permutations)."
)
#: rows a table may have in the report; longer tables say so and link their CSV
MAX_ROWS = 5000


def _fmt(value: Any, depth: int = 0) -> str:
    """A cell or attribute value as text: numbers to 4 significant digits, ∞, no Python repr."""
    if value is None or value is pd.NA:
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return ""
        if np.isinf(value):
            return "∞" if value > 0 else "−∞"
        a = abs(float(value))
        if a != 0 and (a < 1e-3 or a >= 1e6):
            return f"{value:.3g}"
        return f"{value:.4g}"
    if isinstance(value, dict):
        sep = "; " if depth == 0 else ", "
        return sep.join(f"{k}: {_fmt(v, depth + 1)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | np.ndarray):
        items = list(value)
        if items and all(isinstance(v, list | tuple) for v in items):  # (ID, reason) pairs
            return "; ".join(" – ".join(_fmt(x, depth + 1) for x in v) for v in items)
        sep = "; " if any(isinstance(v, dict) for v in items) else ", "
        return sep.join(_fmt(v, depth + 1) for v in items)
    return str(value)


def _is_p_column(name: str) -> bool:
    n = str(name).lower()
    return n in ("p", "pval", "p_value", "p_adj", "fdr", "q_value", "fdr_q") or n.startswith("p_")


def _cell(value: Any, *, p_floor: str | None) -> str:
    if p_floor is not None and isinstance(value, float | np.floating) and value == 0:
        return p_floor
    return _fmt(value)


def _p_floor(frame: pd.DataFrame) -> str:
    """What a p-value of 0 means in ``frame``: below 1/permutations, or below double precision."""
    perms = frame.attrs.get("permutations")
    if isinstance(perms, int | np.integer) and perms > 0:
        return f"< {1 / perms:g}"
    return "< 1e-300"


def _table_html(frame: pd.DataFrame, visible: int = 25) -> str:
    """The whole table (up to :data:`MAX_ROWS`), scrolling after about ``visible`` rows."""
    shown = frame.head(MAX_ROWS)
    floor = _p_floor(frame)
    text_cols = {
        c
        for c in shown.columns
        if shown[c].dtype == object
        and shown[c].map(lambda v: len(_fmt(v)) if v is not None else 0).max() > 40
    }
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = []
    for values in shown.itertuples(index=False, name=None):
        cells = "".join(
            f"<td class='text'>{html.escape(_fmt(v))}</td>"
            if c in text_cols
            else f"<td>{html.escape(_cell(v, p_floor=floor if _is_p_column(c) else None))}</td>"
            for c, v in zip(shown.columns, values, strict=True)
        )
        body.append(f"<tr>{cells}</tr>")
    height = f"{1.9 * (visible + 1.5):.0f}em"
    return (
        f"<div class='scroll' style='max-height:{height}'><table><thead><tr>{head}</tr>"
        f"</thead><tbody>{''.join(body)}</tbody></table></div>"
    )


def _attrs_html(attrs: dict) -> str:
    """``attrs`` as an attribute/value table in words; long containers are counted, not dumped."""
    rows = []
    for key, value in attrs.items():
        n = len(value) if isinstance(value, dict | list | tuple) else 0
        if n > 30:
            kind = "entries" if isinstance(value, dict) else "values"
            text = f"{n} {kind} (used for the figures; not listed here)"
        elif (
            value
            and isinstance(value, dict)
            and all(isinstance(v, list | tuple) and len(v) > 30 for v in value.values())
        ):
            text = "; ".join(f"{k}: {len(v)} values" for k, v in value.items())
        else:
            text = _fmt(value) or "none"
        rows.append((key, text))
    return _table_html(pd.DataFrame(rows, columns=["attribute", "value"]), visible=40)


def _img(path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def de_test_text(d) -> str:
    """The name of the differential test of the ``differential`` section, for the Methods.

    The one place the report names a DE method.

    Examples
    --------
    >>> from olinkpipe.workflow.config import load_config
    >>> de_test_text(load_config()[0].differential)
    'limma-style empirical-Bayes moderated t-test (Smyth 2004) on the model ~ patient + timepoint'
    """
    return get_method("differential", d.method).methods_text(pair=d.pair, groupby=d.groupby)


def methods_text(cfg, versions: dict[str, str]) -> list[str]:
    """Methods paragraphs written from the config and the package versions.

    One paragraph per enabled step that has Methods text (the step registry's
    ``methods``), in step order; the data steps (read, LOD, clean, bridging, project
    normalization, QC) share the first paragraph.

    Examples
    --------
    >>> from olinkpipe.workflow.config import load_config
    >>> paragraphs = methods_text(load_config()[0], {"olinkpipe": "0.1.0"})
    >>> "moderated" in " ".join(paragraphs)
    True
    """
    groups: dict[str, list[str]] = {}
    for step in steps():
        if step.methods is None or not step.is_enabled(cfg):
            continue
        text = step.methods(cfg, versions)
        if text:
            groups.setdefault(step.paragraph or step.name, []).append(text)
    return [" ".join(parts) for parts in groups.values()]


def compute_text(compute: dict) -> str:
    """The Methods sentence saying what ran where (``run.json``'s ``compute``).

    Examples
    --------
    >>> compute_text({"chunks": None, "where": "in memory (no dask)"})
    'Computed in memory (no dask); the NPX matrix was held in memory.'
    """
    where = compute.get("where", "in memory (no dask)")
    chunks = compute.get("chunks")
    matrix = (
        "the NPX matrix was held in memory"
        if chunks is None
        else f"the NPX matrix was dask-backed in blocks of assays (chunks {chunks!r})"
    )
    return f"Computed {where}; {matrix}."


def _status_rows(result) -> str:
    rows = []
    for step, status in result.status.items():
        cls = (
            "done"
            if status == "done"
            else ("failed" if status.startswith("failed") else "skipped")
        )
        secs = result.timings.get(step)
        rows.append(
            f"<tr><td>{html.escape(step)}</td><td class='status-{cls}'>{html.escape(status)}</td>"
            f"<td>{'' if secs is None else f'{secs:.2f}'}</td></tr>"
        )
    return (
        "<table><thead><tr><th>step</th><th>status</th><th>seconds</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


SIMULATED = (
    "Simulated data: this report was run on olinkpipe's bundled example study, which is "
    "simulated (no patient data). Its findings describe the simulator, not biology."
)


def _simulated(ctx: Context) -> bool:
    """Whether any input is a file of the bundled (simulated) example study."""
    from ..datasets.example import example_dir

    root = Path(example_dir()).resolve()
    paths = [*getattr(ctx, "npx_paths", []), *ctx.inputs.values()]
    return any(Path(p).resolve().is_relative_to(root) for p in paths)


def _merge_warnings(warnings: list[str]) -> list[str]:
    """One line per distinct message: ``"A: x"`` and ``"B: x"`` become ``"A, B: x"``."""
    merged: dict[tuple[str, str], list[str]] = {}
    for w in warnings:
        parts = w.split(": ", 2)
        if len(parts) == 3 and " " not in parts[1].strip():  # "Category: source: message"
            key, source = (parts[0], parts[2]), parts[1]
        else:
            key, source = (w, ""), ""
        sources = merged.setdefault(key, [])
        if source and source not in sources:
            sources.append(source)
    return [
        f"{cat}: {', '.join(src)}: {msg}" if src else cat for (cat, msg), src in merged.items()
    ]


def _masked_text(record: Any) -> str:
    """What ``qc_warning: mask`` set to NaN, from ``uns["olinkpipe"]["filter"]`` ('' if nothing)."""
    if not isinstance(record, dict) or record.get("qc_warning") != "mask":
        return ""
    n = int(record.get("n_values_masked", 0) or 0)
    if not n:
        return ""
    return (
        f"Masked (qc_warning: mask, uns['olinkpipe']['filter']): {n} value(s) flagged by an "
        "Olink QC warning were set to missing (NaN); their samples were kept."
    )


def _exclusions(ctx: Context) -> str:
    parts = []
    adata = ctx.result.adata
    if adata is not None:
        exc = adata.uns.get("olinkpipe", {}).get("excluded")
        if isinstance(exc, pd.DataFrame) and len(exc):
            parts.append(
                "<p>Samples and assays removed (<code>uns['olinkpipe']['excluded']</code>):</p>"
            )
            parts.append(_table_html(exc))
        masked = _masked_text(adata.uns.get("olinkpipe", {}).get("filter"))
        if masked:
            parts.append(f"<p>{html.escape(masked)}</p>")
    # one note per distinct exclusion, naming every table it applies to
    notes: dict[tuple[str, str], list[str]] = {}
    for name, frame in ctx.result.tables.items():
        for key, value in getattr(frame, "attrs", {}).items():
            if not (key.startswith("excluded") or key in ("unmapped", "untested")):
                continue
            text = _fmt(value).strip()
            if text in ("", "None", "null"):
                continue
            notes.setdefault((key, text), []).append(name)
    for (key, text), names in notes.items():
        where = ", ".join(f"<code>{html.escape(n)}</code>" for n in names)
        parts.append(
            f"<p>Left out of {where} (<code>{html.escape(key)}</code>): {html.escape(text)}</p>"
        )
    if not parts:
        parts.append("<p>Nothing was excluded.</p>")
    if ctx.result.warnings:
        items = "".join(f"<li>{html.escape(w)}</li>" for w in _merge_warnings(ctx.result.warnings))
        parts.append(f"<p>Warnings raised during the run:</p><ul>{items}</ul>")
    return "".join(parts)


def write_report(ctx: Context, versions: dict[str, str]) -> None:
    """Write ``report.html`` for a finished run (called by :func:`olinkpipe.workflow.run`)."""
    cfg = ctx.cfg
    result = ctx.result
    rows = cfg.output.report_rows
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    sections = _sections()
    nav = "".join(
        f'<a href="#{key}">{title}</a>' for key, title in sections if key in ctx.sections
    )
    body = [
        f"<h1>{html.escape(cfg.name)}</h1>",
        f"<p class='meta'>olinkpipe {html.escape(versions.get('olinkpipe', '?'))} · {now} · "
        f"total {result.timings.get('total', 0):.1f} s · seed {cfg.seed}</p>",
        f"<nav>{nav}<a href='#methods'>Methods</a><a href='#exclusions'>Exclusions</a></nav>",
    ]
    if _simulated(ctx):
        body.append(f"<p class='banner' role='note'>{html.escape(SIMULATED)}</p>")
    if cfg.description:
        body.append(f"<p>{html.escape(cfg.description)}</p>")
    body.append("<h2 id='summary'>Steps</h2>" + _status_rows(result))
    body.append(f"<p class='caption'>{html.escape(NUMBER_NOTE)}</p>")
    inputs = "".join(
        f"<li><code>{html.escape(k)}</code>: {html.escape(str(p))}</li>"
        for k, p in ctx.inputs.items()
    )
    if inputs:
        body.append(f"<p>Inputs:</p><ul>{inputs}</ul>")
    for key, title in sections:
        items = ctx.sections.get(key)
        if not items and key not in ctx.notes:
            continue
        body.append(f"<h2 id='{key}'>{title}</h2>")
        for note in ctx.notes.get(key, []):
            body.append(f"<p>{html.escape(note)}</p>")
        for item in items or []:
            kind, name = item.split(":", 1)
            caption = ctx.captions.get(item, "")
            if kind == "table":
                frame = result.tables[name]
                csv = f"tables/{html.escape(name)}.csv"
                size = (
                    f"first {MAX_ROWS} of {len(frame)} rows here, all in"
                    if len(frame) > MAX_ROWS
                    else f"{len(frame)} rows{' (scroll)' if len(frame) > rows else ''}; also in"
                )
                body.append(
                    f"<h3>{html.escape(name)}</h3><p class='caption'>{html.escape(caption)} "
                    f"{size} <a href='{csv}'><code>{csv}</code></a>.</p>"
                )
                body.append(_table_html(frame, rows))
                if frame.attrs:
                    body.append(
                        f"<details><summary>how <code>{html.escape(name)}</code> was made "
                        f"(attrs)</summary>{_attrs_html(frame.attrs)}</details>"
                    )
            else:
                body.append(
                    f"<figure>{_img(result.figures[name])}<figcaption>{html.escape(caption)} "
                    f"(<code>figures/{html.escape(name)}.png</code>)</figcaption></figure>"
                )
    paragraphs = methods_text(cfg, versions) + ([SIMULATED] if _simulated(ctx) else [])
    paragraphs.append(compute_text(ctx.compute))
    methods = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    vers = ", ".join(f"{k} {v}" for k, v in versions.items())
    body.append(
        f"<h2 id='methods'>Methods</h2><div class='methods'>{methods}"
        f"<p class='meta'>Software: {html.escape(vers)}.</p></div>"
    )
    body.append(f"<h2 id='exclusions'>Exclusions and warnings</h2>{_exclusions(ctx)}")
    cfg_yaml = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    body.append(
        f"<h2 id='config'>Configuration</h2><pre class='config'>{html.escape(cfg_yaml)}</pre>"
    )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(cfg.name)} · olinkpipe report</title>"
        f"<style>{_CSS}</style></head><body><main>{''.join(body)}</main></body></html>"
    )
    _atomic.write_text(result.report, page)
