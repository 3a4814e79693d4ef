"""Outcome figures: Kaplan–Meier curves, cumulative incidence curves, swimmer plot.

The curve plots take the frames of :mod:`olinkpipe.clinical.survival` (the whole curve,
``at=None``) and recompute nothing; the test results are passed in for the p-value label.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from .._validate import require_columns
from ..errors import ValidationError, format_message
from ._style import NS, UP, get_ax, group_color, place_legend

__all__ = ["survival", "cumulative_incidence", "swimmer"]


def _step_curve(ax: Axes, sub: pd.DataFrame, t, y, *, color, band: float | None, **step_kw):
    """Right-continuous step curve with its CI band (``ci_low``/``ci_high``) when ``band``."""
    ax.step(t, y, where="post", color=color, **step_kw)
    if band is not None:
        ax.fill_between(
            t,
            sub["ci_low"].to_numpy(dtype=float),
            sub["ci_high"].to_numpy(dtype=float),
            step="post",
            color=color,
            alpha=band,
            lw=0,
        )


def _p_text(result: pd.DataFrame | float | None, label: str, cause: int | None = None) -> str:
    if result is None:
        return ""
    if isinstance(result, pd.DataFrame):
        rows = result
        if cause is not None and "cause" in rows.columns:
            rows = rows.loc[rows["cause"] == cause]
        if rows.empty:
            return ""
        p = float(rows["p_value"].iloc[0])
    else:
        p = float(result)
    if not np.isfinite(p):
        return f"{label} p = NA"
    return f"{label} p < 0.001" if p < 0.001 else f"{label} p = {p:.3f}"


def _flags(col: pd.Series) -> np.ndarray:
    """True/False flags from bools, 0/1 or text ("TRUE", "yes"); missing is False."""
    if pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype=bool)
    text = col.astype("string").str.strip().str.lower()
    return (
        text.isin(["true", "t", "yes", "y", "1", "1.0"]).fillna(value=False).to_numpy(dtype=bool)
    )


def _legend(ax: Axes, p_text: str) -> None:
    """Legend placed where it hides least of the curves, the test's p-value as its title."""
    leg = place_legend(
        ax,
        frameon=True,
        fontsize=9,
        title=p_text or None,
        title_fontsize=9,
        alignment="left",
    )
    leg.get_frame().set(facecolor="white", edgecolor="none", alpha=0.85)


def _at_risk(times: np.ndarray, n_at_risk: np.ndarray, ticks: np.ndarray) -> list[int]:
    """Patients with follow-up >= t, read off the step table (0 after the last time)."""
    idx = np.searchsorted(times, ticks, side="left")
    return [int(n_at_risk[i]) if i < times.size else 0 for i in idx]


def _risk_table(
    ax: Axes,
    curves: list[tuple[str, str, np.ndarray, np.ndarray]],
    risk_times: Sequence[float] | None,
    *,
    made_fig: bool,
) -> None:
    lo, hi = ax.get_xlim()
    ticks = np.asarray(risk_times if risk_times is not None else ax.get_xticks(), dtype=float)
    ticks = ticks[(ticks >= lo - 1e-9) & (ticks <= hi + 1e-9)]
    ax.set_xticks(ticks)
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    step = 0.075
    top = -0.2
    ax.text(
        -0.07,
        top,
        "No. at risk",
        transform=ax.transAxes,
        ha="right",
        va="center",
        fontsize=8,
        fontweight="bold",
    )
    for i, (label, color, times, n_risk) in enumerate(curves):
        y = top - step * (i + 1)
        ax.text(
            -0.07,
            y,
            label,
            transform=ax.transAxes,
            ha="right",
            va="center",
            fontsize=8,
            color=color,
        )
        for t, n in zip(ticks, _at_risk(times, n_risk, ticks), strict=True):
            ax.text(t, y, str(n), transform=trans, ha="center", va="center", fontsize=8)
    if made_fig:
        ax.figure.subplots_adjust(bottom=0.17 + 0.06 * len(curves), left=0.22)


def survival(
    km: pd.DataFrame,
    *,
    logrank: pd.DataFrame | float | None = None,
    ci: bool = True,
    risk_table: bool = True,
    risk_times: Sequence[float] | None = None,
    censor_marks: bool = True,
    xlabel: str = "Months",
    ylabel: str = "Survival probability",
    ax: Axes | None = None,
) -> Axes:
    """Kaplan–Meier curves with confidence bands, numbers at risk and the log-rank p.

    Parameters
    ----------
    km
        The whole-curve frame of :func:`olinkpipe.clinical.kaplan_meier` (``at=None``).
    logrank
        The frame of :func:`olinkpipe.clinical.logrank` (or a p-value) for the label.
    ci
        Draw the confidence band (the interval named in ``km.attrs["ci"]``).
    risk_table
        Write the numbers at risk under the axis at the x ticks (or ``risk_times``). On
        a new figure room is made for it; on an ``ax`` you pass, leave room below the
        Axes (e.g. ``fig.subplots_adjust(bottom=0.3)``).
    risk_times
        Times for the numbers at risk; default the x ticks.
    censor_marks
        Mark censored times with ``+``.
    xlabel, ylabel
        Axis labels.
    ax
        Matplotlib Axes to draw on; a new figure is made when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        One step line per group (labelled ``"<group> (n=<n>)"``), bands as filled areas,
        the log-rank p as the legend's title (``ax.get_legend().get_title()``).

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> pts = pd.DataFrame({"months": [3, 6, 8, 12, 20, 4, 9, 15, 24, 30],
    ...                     "died": [1, 0, 1, 0, 0, 1, 1, 0, 0, 0],
    ...                     "arm": ["CAR-T"] * 5 + ["control"] * 5})
    >>> km = op.clinical.kaplan_meier(pts, time="months", event="died", group="arm")
    >>> lr = op.clinical.logrank(pts, time="months", event="died", group="arm")
    >>> ax = op.pl.survival(km, logrank=lr)
    >>> len(ax.get_lines()) >= 2
    True
    """
    cols = ["group", "time", "estimate", "ci_low", "ci_high", "n_at_risk", "n_censored"]
    if "n_censored" not in km.columns:
        msg = format_message(
            "pl.survival needs the whole curve, not estimates at chosen times",
            hint="Call clinical.kaplan_meier(..., at=None) for the plot.",
        )
        raise ValidationError(msg)
    require_columns(km, cols, what="kaplan_meier result")
    made = ax is None
    ax = get_ax(ax, figsize=(6.5, 5.0))
    curves = []
    groups = list(dict.fromkeys(km["group"]))
    for i, g in enumerate(groups):
        sub = km.loc[km["group"] == g].sort_values("time")
        t = sub["time"].to_numpy(dtype=float)
        s = sub["estimate"].to_numpy(dtype=float)
        color = group_color(i)
        n0 = int(sub["n_at_risk"].iloc[0])
        label = str(g) if len(groups) > 1 or g != "all" else "All patients"
        _step_curve(
            ax,
            sub,
            t,
            s,
            color=color,
            band=0.15 if ci else None,
            lw=1.8,
            label=f"{label} (n={n0})",
        )
        if censor_marks:
            cens = sub["n_censored"].to_numpy() > 0
            ax.plot(t[cens], s[cens], ls="none", marker="+", ms=7, mew=1.2, color=color)
        curves.append((label, color, t, sub["n_at_risk"].to_numpy()))
    ax.set_ylim(-0.02, 1.05)
    ax.set_xlim(left=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.spines[["top", "right"]].set_visible(False)
    if risk_table:
        _risk_table(ax, curves, risk_times, made_fig=made)
    _legend(ax, _p_text(logrank, "Log-rank"))
    return ax


def cumulative_incidence(
    cif: pd.DataFrame,
    *,
    gray: pd.DataFrame | float | None = None,
    cause: int | Sequence[int] = 1,
    ci: bool = False,
    risk_table: bool = True,
    risk_times: Sequence[float] | None = None,
    cause_labels: dict[int, str] | None = None,
    xlabel: str = "Months",
    ylabel: str = "Cumulative incidence",
    ax: Axes | None = None,
) -> Axes:
    """Cumulative incidence curves per group (and cause) with Gray's p-value.

    Parameters
    ----------
    cif
        The whole-curve frame of :func:`olinkpipe.clinical.cumulative_incidence`.
    gray
        The frame of :func:`olinkpipe.clinical.gray_test` (its row for the first of
        ``cause``) or a p-value, for the label.
    cause
        Cause(s) to draw; the first solid, further ones (e.g. the competing non-relapse
        mortality, 2) dashed.
    ci
        Draw confidence bands (the interval named in ``cif.attrs["ci"]``).
    risk_table
        Write the numbers at risk under the axis.
    risk_times
        Times for the numbers at risk; default the x ticks.
    cause_labels
        Names for causes in the legend, e.g. ``{1: "Relapse", 2: "NRM"}``.
    xlabel, ylabel
        Axis labels.
    ax
        Matplotlib Axes to draw on; a new figure is made when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        One step line per group × cause; Gray's p as the legend's title, naming the cause
        when several are drawn (``"Gray's test (Relapse) p = 0.041"``).

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> pts = pd.DataFrame({"months": [2, 4, 5, 7, 9, 12, 18, 24, 3, 30],
    ...                     "status": [1, 2, 0, 1, 0, 2, 0, 0, 1, 0],
    ...                     "arm": ["CAR-T"] * 5 + ["control"] * 5})
    >>> cif = op.clinical.cumulative_incidence(pts, time="months", event="status", group="arm")
    >>> ax = op.pl.cumulative_incidence(cif, cause=[1, 2])
    >>> len(ax.get_lines()) >= 4
    True
    """
    cols = ["group", "cause", "time", "estimate", "ci_low", "ci_high", "n_at_risk"]
    require_columns(cif, cols, what="cumulative_incidence result")
    causes = [cause] if np.isscalar(cause) else list(cause)
    missing = [c for c in causes if c not in set(cif["cause"])]
    if missing:
        msg = format_message(
            f"cause(s) {missing!r} are not in the cumulative incidence table "
            f"(it has {sorted(set(cif['cause']))!r})",
            column="cause",
            hint="Pick a cause code that occurs in the data.",
        )
        raise ValidationError(msg)
    labels = {1: "Relapse", 2: "Competing event"} | dict(cause_labels or {})
    made = ax is None
    ax = get_ax(ax, figsize=(6.5, 5.0))
    curves = []
    groups = list(dict.fromkeys(cif["group"]))
    styles = ["-", "--", ":", "-."]
    for i, g in enumerate(groups):
        color = group_color(i)
        gl = str(g) if g != "all" else "All patients"
        for j, c in enumerate(causes):
            sub = cif.loc[(cif["group"] == g) & (cif["cause"] == c)].sort_values("time")
            t = sub["time"].to_numpy(dtype=float)
            f = sub["estimate"].to_numpy(dtype=float)
            name = gl if len(causes) == 1 else f"{gl}: {labels.get(c, f'cause {c}')}"
            _step_curve(
                ax,
                sub,
                t,
                f,
                color=color,
                band=0.12 if ci else None,
                ls=styles[j % 4],
                lw=1.8,
                label=name,
            )
            if j == 0:
                curves.append((gl, color, t, sub["n_at_risk"].to_numpy()))
    ax.set_ylim(-0.02, 1.0)
    ax.set_xlim(left=0)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    # name the cause the p-value belongs to when several causes are drawn
    which = f" ({labels.get(causes[0], f'cause {causes[0]}')})" if len(causes) > 1 else ""
    ax.spines[["top", "right"]].set_visible(False)
    if risk_table:
        _risk_table(ax, curves, risk_times, made_fig=made)
    _legend(ax, _p_text(gray, f"Gray's test{which}", cause=causes[0]))
    return ax


def _swimmer_frame(
    patients: pd.DataFrame,
    *,
    id: str,  # noqa: A002
    follow_up: str,
    start: str | None,
    events: Sequence[str],
    sort: bool,
) -> pd.DataFrame:
    """A copy with the bars' ``_start`` and ``_end``, checked (follow-up given, no event after
    it) and sorted by follow-up when asked."""
    d = patients.copy()
    fu = pd.to_numeric(d[follow_up], errors="coerce")
    if fu.isna().any():
        msg = format_message(
            "follow-up time missing or not numeric",
            column=follow_up,
            rows=d.loc[fu.isna(), id].tolist(),
            hint="Every patient needs a last follow-up time for the bar.",
        )
        raise ValidationError(msg)
    d["_end"] = fu.astype(float)
    d["_start"] = (
        pd.to_numeric(d[start], errors="coerce").fillna(0.0).astype(float) if start else 0.0
    )
    for col in events:
        v = pd.to_numeric(d[col], errors="coerce")
        late = v > d["_end"] + 1e-9
        if late.any():
            msg = format_message(
                "event time after the last follow-up",
                column=col,
                rows=d.loc[late, id].tolist(),
                hint="Last follow-up must be on or after every event time.",
            )
            raise ValidationError(msg)
    if sort:
        d = d.sort_values("_end", ascending=True, kind="mergesort")
    return d.reset_index(drop=True)


def _swimmer_bars(ax: Axes, d: pd.DataFrame, y: np.ndarray, group: str | None) -> list:
    """One bar per patient, coloured by ``group``; the group legend's handles."""
    handles: list = []
    if group:
        levels = list(dict.fromkeys(d[group].dropna()))
        cmap = {g: group_color(i) for i, g in enumerate(levels)}
        colors = [cmap.get(g, NS) for g in d[group]]
        handles += [Line2D([], [], color=cmap[g], lw=6, label=str(g)) for g in levels]
    else:
        colors = [NS] * len(d)
    ax.barh(
        y, d["_end"] - d["_start"], left=d["_start"], height=0.6, color=colors, edgecolor="none"
    )
    return handles


def _swimmer_events(
    ax: Axes,
    d: pd.DataFrame,
    y: np.ndarray,
    *,
    relapse: str | None,
    relapse_site: str | None,
    gvhd: str | None,
    death: str | None,
) -> None:
    """Event markers: relapse (open triangle if extramedullary), GVHD, death."""

    def mark(col: str, mask: np.ndarray, label: str, **kw) -> None:
        x = pd.to_numeric(d[col], errors="coerce").to_numpy(dtype=float)
        sel = mask & np.isfinite(x)
        if sel.any():
            ax.plot(x[sel], y[sel], ls="none", label=label, zorder=3, **kw)

    every = np.ones(len(d), dtype=bool)
    if relapse:
        if relapse_site:
            site = d[relapse_site].astype(str).str.lower()
            em = (site.str.contains("extra") | site.str.fullmatch("emd?")).to_numpy()
            mark(
                relapse,
                em,
                "Relapse (extramedullary)",
                marker="^",
                ms=8,
                mfc="white",
                mec=UP,
                mew=1.5,
            )
            mark(relapse, ~em, "Relapse (marrow)", marker="^", ms=8, color=UP)
        else:
            mark(relapse, every, "Relapse", marker="^", ms=8, color=UP)
    if gvhd:
        mark(gvhd, every, "GVHD", marker="D", ms=6, color="#7570b3")
    if death:
        mark(death, every, "Death", marker="X", ms=8, color="black")


def _ongoing_arrows(ax: Axes, d: pd.DataFrame, y: np.ndarray, ongoing: str) -> list:
    """An arrow past the bar's end for each ongoing response; its legend handle (if any)."""
    flag = _flags(d[ongoing])
    span = float(d["_end"].max()) or 1.0
    for yi, xe in zip(y[flag], d["_end"].to_numpy()[flag], strict=True):
        ax.annotate(
            "",
            xy=(xe + 0.04 * span, yi),
            xytext=(xe, yi),
            arrowprops={"arrowstyle": "->", "color": "black", "lw": 1.2},
        )
    if not flag.any():
        return []
    arrow = Line2D(
        [], [], color="black", marker=r"$\rightarrow$", ls="none", ms=10, label="Ongoing response"
    )
    return [arrow]


def swimmer(
    patients: pd.DataFrame,
    *,
    id: str = "patient",  # noqa: A002
    follow_up: str = "follow_up",
    start: str | None = None,
    group: str | None = None,
    relapse: str | None = None,
    relapse_site: str | None = None,
    death: str | None = None,
    gvhd: str | None = None,
    ongoing: str | None = None,
    sort: bool = True,
    xlabel: str = "Months since infusion",
    ax: Axes | None = None,
) -> Axes:
    """Swimmer plot: one bar per patient from infusion to last follow-up, with events.

    Parameters
    ----------
    patients
        One row per patient.
    id
        Column with the patient ID (bar label).
    follow_up
        Column with the time of last follow-up (end of the bar), since infusion.
    start
        Optional column with the bar start (default 0 = infusion).
    group
        Optional column colouring the bars (e.g. dose group).
    relapse
        Column with the time of relapse (``NaN`` = none).
    relapse_site
        Column naming the relapse site; values containing ``"extra"`` (e.g.
        ``"extramedullary"``, ``"EMD"`` is also recognised) are drawn as open triangles,
        others (marrow) as filled triangles.
    death
        Column with the time of death (``NaN`` = alive): a black cross.
    gvhd
        Column with the time of GVHD onset: a diamond.
    ongoing
        Boolean column: ongoing response at last follow-up, drawn as an arrow at the end.
    sort
        Sort bars by follow-up (longest at the top).
    xlabel
        X-axis label.
    ax
        Matplotlib Axes to draw on; a new figure is made when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        Horizontal bars (one per patient, labelled by ID) and marker artists with a legend.

    Raises
    ------
    ValidationError
        A follow-up time is missing or an event lies after the last follow-up.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import olinkpipe as op
    >>> pts = pd.DataFrame({"patient": ["P1", "P2", "P3"], "follow_up": [24.0, 8.5, 30.1],
    ...                     "relapse": [np.nan, 6.0, np.nan],
    ...                     "relapse_site": [None, "extramedullary", None],
    ...                     "death": [np.nan, 8.5, np.nan], "gvhd": [1.0, np.nan, np.nan],
    ...                     "ongoing": [True, False, True]})
    >>> ax = op.pl.swimmer(pts, relapse="relapse", relapse_site="relapse_site",
    ...                    death="death", gvhd="gvhd", ongoing="ongoing")
    >>> len(ax.patches)
    3
    """
    opt = [c for c in (start, group, relapse, relapse_site, death, gvhd, ongoing) if c]
    require_columns(patients, [id, follow_up, *opt], what="patient table")
    events = [c for c in (relapse, death, gvhd) if c]
    d = _swimmer_frame(patients, id=id, follow_up=follow_up, start=start, events=events, sort=sort)
    made = ax is None
    ax = get_ax(ax, figsize=(7.0, max(3.0, 0.28 * len(d) + 1.2)))
    y = np.arange(len(d))
    handles = _swimmer_bars(ax, d, y, group)
    _swimmer_events(ax, d, y, relapse=relapse, relapse_site=relapse_site, gvhd=gvhd, death=death)
    if ongoing:
        handles += _ongoing_arrows(ax, d, y, ongoing)
    ax.set_yticks(y)
    ax.set_yticklabels(d[id].astype(str), fontsize=7 if len(d) > 30 else 8)
    ax.set_ylim(-0.7, len(d) - 0.3)
    ax.set_xlim(left=min(0.0, float(np.min(d["_start"]))))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("Patient")
    ax.spines[["top", "right"]].set_visible(False)
    handles = ax.get_legend_handles_labels()[0] + handles
    if handles:
        ax.legend(
            handles=handles,
            loc="upper left",
            bbox_to_anchor=(1.01, 1.0),
            frameon=False,
            fontsize=8,
        )
    if made:
        ax.figure.tight_layout()
    return ax
