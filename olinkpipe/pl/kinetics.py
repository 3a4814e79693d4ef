"""Kinetics figures: curves by group over days, per-patient peaks by group, correlations."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from .._validate import check_literal, require_columns
from ..errors import DesignError, ValidationError, format_message, preview
from ._style import NS, get_ax, group_color, place_legend

__all__ = ["kinetics", "peaks", "correlation"]


def _with_group(table: pd.DataFrame, by: str, patients: pd.DataFrame | None) -> pd.DataFrame:
    if by in table.columns:
        return table
    if patients is None or by not in patients.columns:
        msg = format_message(
            f"column {by!r} is neither in the table nor in a patient table",
            column=by,
            hint="Pass patients=<patient table with that column> (e.g. from "
            "clinical.dose_groups) or add the column to the table.",
        )
        raise ValidationError(msg)
    require_columns(patients, ["patient"], what="patient table")
    return table.merge(patients[["patient", by]], on="patient", how="left")


def _readable_log(axis) -> None:  # noqa: ANN001 - a matplotlib Axis
    """Plain-number ticks at 1, 2, 5 × 10^k on a log axis spanning up to three decades."""
    lo, hi = axis.get_view_interval()
    if lo > 0 and hi / lo <= 1e3:
        axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(NullFormatter())


_METRIC_LABELS = {
    "cmax": "Peak {a}",
    "baseline": "Baseline {a}",
    "auc": "{a} AUC",
    "tmax": "Day of peak {a}",
    "fold_change": "{a} fold change from baseline",
    "last_detectable_day": "Last day {a} detectable",
    "n_samples": "{a} samples",
}


def _split_unit(analyte: str, unit: str | None) -> tuple[str, str | None]:
    """``("CAR-T", "copies/ug DNA")`` for an analyte whose name already ends in its unit."""
    if unit and analyte != unit and analyte.endswith(unit):
        return analyte[: -len(unit)].strip(" ,()"), unit
    return analyte, unit


def metric_label(summary: pd.DataFrame, metric: str, unit: str | None = None) -> str:
    """``"Peak IL-6 (pg/mL)"`` for a kinetics result with one analyte, else the column.

    Internal (not in ``__all__``), shared with the workflow's kinetics step."""
    if "analyte" not in summary.columns or summary["analyte"].nunique() != 1:
        return metric
    analyte, unit = _split_unit(str(summary["analyte"].iloc[0]), unit or summary.attrs.get("unit"))
    label = _METRIC_LABELS.get(metric, "{a} " + metric).format(a=analyte)
    if unit and metric in ("cmax", "baseline"):
        label += f" ({unit})"
    elif unit and metric == "auc":
        label += f" ({unit} × days)"
    return label


def _words(column: str) -> str:
    """A column name as words for a label: ``"dose_group"`` -> ``"dose group"``."""
    return str(column).replace("_", " ")


def _levels(col: pd.Series) -> list:
    if isinstance(col.dtype, pd.CategoricalDtype):
        return [lv for lv in col.cat.categories if (col == lv).any()]
    return sorted(col.dropna().unique().tolist(), key=str)


def kinetics(
    measurements: pd.DataFrame,
    analyte: str,
    *,
    by: str = "dose_group",
    patients: pd.DataFrame | None = None,
    log: bool = False,
    individual: bool = False,
    below_detection: str = "zero",
    ax: Axes | None = None,
) -> Axes:
    """Mean ± SEM of an analyte over days after infusion, one curve per group.

    Parameters
    ----------
    measurements
        Long measurement table (:func:`olinkpipe.clinical.read_measurements`).
    analyte
        The analyte to draw, e.g. ``"CAR-T copies/ug DNA"``.
    by
        Grouping column, in ``measurements`` or joined from ``patients`` on ``patient``.
    patients
        Patient table holding ``by`` (e.g. the output of ``clinical.dose_groups``).
    log
        Logarithmic y axis (symmetric-log, linear near 0, when values of 0 occur, so that
        undetectable samples stay visible).
    individual
        Also draw each patient's curve as a thin line.
    below_detection
        ``"zero"``, ``"lod_half"`` or ``"missing"``, as in :func:`olinkpipe.clinical.kinetics`.
    ax
        Matplotlib Axes to draw on; a new figure is made when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes; one error-bar line per group, labelled ``"<group> (n=<patients>)"``.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> m = pd.DataFrame({"patient": ["P1", "P1", "P2", "P2"], "day": [0, 7, 0, 7],
    ...                   "analyte": "IL-6", "value": [2.0, 40.0, 3.0, 20.0],
    ...                   "dose_group": ["low", "low", "high", "high"]})
    >>> ax = op.pl.kinetics(m, "IL-6")
    """
    check_literal("below_detection", below_detection, ["zero", "lod_half", "missing"])
    from ..clinical import read_measurements

    require_columns(measurements, ["patient", "day", "analyte", "value"], what="measurements")
    if measurements.attrs.get("validated") != "measurements":
        # typed flags ("FALSE" read from a CSV is not True), numeric days and values
        measurements = read_measurements(measurements)
    m = measurements.loc[measurements["analyte"] == analyte].copy()
    if m.empty:
        msg = format_message(
            f"no measurements of analyte {analyte!r}",
            column="analyte",
            hint=f"Choose one of {preview(sorted(measurements['analyte'].unique()))}.",
        )
        raise ValidationError(msg)
    m = _with_group(m, by, patients)
    value = pd.to_numeric(m["value"], errors="coerce").astype(float)
    if "below_detection" in m.columns:
        flag = m["below_detection"].to_numpy(dtype=bool)
        if below_detection == "zero":
            value[flag] = 0.0
        elif below_detection == "missing":
            value[flag] = np.nan
        else:
            lod = m["lod"].astype(float) if "lod" in m.columns else value
            value[flag] = (lod.fillna(value) / 2.0)[flag]
    m["_v"] = value
    ax = get_ax(ax)
    for i, level in enumerate(_levels(m[by])):
        sub = m.loc[m[by] == level]
        color = group_color(i)
        if individual:
            for _, pat in sub.sort_values("day").groupby("patient"):
                ax.plot(pat["day"], pat["_v"], color=color, alpha=0.25, lw=0.8)
        agg = sub.groupby("day")["_v"].agg(["mean", "sem"]).sort_index()
        ax.errorbar(
            agg.index,
            agg["mean"],
            yerr=agg["sem"].fillna(0.0),
            color=color,
            marker="o",
            ms=4,
            capsize=3,
            lw=1.8,
            label=f"{level} (n={sub['patient'].nunique()})",
        )
    ax.axvline(0, color=NS, ls="--", lw=0.8)
    if log:
        positive = m["_v"][m["_v"] > 0]
        if (m["_v"] <= 0).any() and len(positive):
            # linear below the first decade under the smallest positive value, so that 0
            # (undetectable) stays visible without its tick label running into 10^k
            linthresh = 10.0 ** np.floor(np.log10(float(positive.min())))
            ax.set_yscale("symlog", linthresh=linthresh, linscale=0.5)
            ax.set_ylim(bottom=0)
        else:
            ax.set_yscale("log")
            _readable_log(ax.yaxis)
    unit = None
    if "unit" in m.columns and m["unit"].notna().any():
        unit = str(m["unit"].dropna().iloc[0])
    name, unit = _split_unit(analyte, unit)
    ax.set_xlabel("Days after infusion")
    ax.set_ylabel(f"{name} ({unit})" if unit else name)
    ax.set_title(f"{name}: mean ± SEM by {_words(by)}")
    place_legend(ax, title=_words(by), frameon=False)
    return ax


def _p_text(p: float) -> str:
    if not np.isfinite(p):
        return "p = n/a"
    return "p < 0.001" if p < 0.001 else f"p = {p:.3f}"


def peaks(
    summary: pd.DataFrame,
    metric: str,
    by: str,
    *,
    patients: pd.DataFrame | None = None,
    result: pd.DataFrame | None = None,
    test: str = "mannwhitney",
    log: bool = False,
    unit: str | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Per-patient values of a metric (e.g. peak IL-6) by group: box, dots and the p-value.

    Parameters
    ----------
    summary
        Per-patient table, e.g. from :func:`olinkpipe.clinical.kinetics`.
    metric
        The column to plot, e.g. ``"cmax"``.
    by
        Grouping column, in ``summary`` or joined from ``patients``.
    patients
        Patient table holding ``by``.
    result
        Output of :func:`olinkpipe.clinical.compare_groups` with a row for ``metric``; its
        ``p_value`` is annotated. If ``None`` (and there are two groups) the comparison is
        run here with ``test``.
    test
        ``"mannwhitney"`` or ``"ttest"``, used when ``result`` is ``None``.
    log
        Logarithmic y axis.
    unit
        Unit of the analyte for the y label (default ``summary.attrs["unit"]``, set by
        :func:`olinkpipe.clinical.kinetics` from the measurements' ``unit`` column).
    ax
        Matplotlib Axes to draw on; a new figure is made when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes, with one box and one dot cloud per group and the p-value over them.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> s = pd.DataFrame({"dose_group": ["low"] * 4 + ["high"] * 4,
    ...                   "cmax": [1.0, 2.0, 3.0, 4.0, 2.5, 5.0, 6.0, 7.0]})
    >>> ax = op.pl.peaks(s, "cmax", "dose_group")
    """
    from ..clinical import compare_groups

    check_literal("test", test, ["mannwhitney", "ttest"])
    made = ax is None
    ylabel = metric_label(summary, metric, unit)
    table = _with_group(summary, by, patients)
    require_columns(table, [metric], what="summary table")
    levels = _levels(table[by])
    if not levels:
        msg = format_message("no groups to plot", column=by)
        raise DesignError(msg)
    ax = get_ax(ax, figsize=(3.2 + 0.8 * len(levels), 4.5))
    rng = np.random.default_rng(0)  # jitter only; fixed so figures are reproducible
    data = []
    for i, level in enumerate(levels):
        v = pd.to_numeric(table.loc[table[by] == level, metric], errors="coerce").dropna()
        data.append(v.to_numpy(float))
        ax.scatter(
            i + rng.uniform(-0.12, 0.12, len(v)),
            v,
            color=group_color(i),
            s=22,
            zorder=3,
            edgecolor="white",
            lw=0.5,
        )
    ax.boxplot(
        data,
        positions=range(len(levels)),
        widths=0.5,
        showfliers=False,
        medianprops={"color": "black"},
        boxprops={"color": NS},
        whiskerprops={"color": NS},
        capprops={"color": NS},
    )
    ax.set_xticks(range(len(levels)))
    ax.set_xticklabels([f"{lv}\n(n={len(d)})" for lv, d in zip(levels, data, strict=True)])
    if log:
        ax.set_yscale("log")
    ax.set_ylabel(ylabel)
    ax.set_xlabel(_words(by).capitalize())
    p = np.nan
    label = ""
    if result is not None:
        rows = result.loc[result["metric"] == metric]
        if "analyte" in rows.columns and "analyte" in table.columns:
            rows = rows.loc[rows["analyte"].isin(table["analyte"].unique())]
        if len(rows):
            p, label = float(rows["p_value"].iloc[0]), str(rows["test"].iloc[0])
    elif len(levels) == 2 and all(len(d) for d in data):
        res = compare_groups(table, by=by, metrics=metric, test=test)
        p, label = float(res["p_value"].iloc[0]), str(res["test"].iloc[0])
    if label:
        top = max(float(np.max(d)) for d in data if len(d))
        ymin, ymax = ax.get_ylim()
        y = top + 0.05 * (ymax - ymin) if not log else top * 1.15
        ax.plot([0, len(levels) - 1], [y, y], color="black", lw=0.8)
        ax.text(
            (len(levels) - 1) / 2,
            y,
            f"{_p_text(p)}\n{label}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
        ax.set_ylim(top=(y + 0.2 * (ymax - ymin)) if not log else y * 1.6)
    if log:
        _readable_log(ax.yaxis)
    if made:
        ax.figure.tight_layout()
    return ax


def correlation(
    table: pd.DataFrame,
    x: str,
    y: str,
    *,
    method: str = "spearman",
    hue: str | None = None,
    logx: bool = False,
    logy: bool = False,
    trend: str = "auto",
    xlabel: str | None = None,
    ylabel: str | None = None,
    result: pd.DataFrame | pd.Series | None = None,
    ax: Axes | None = None,
) -> Axes:
    """Scatter of two per-patient variables with the correlation and a matching trend.

    Parameters
    ----------
    table
        One row per patient.
    x, y
        Columns to plot (e.g. ``"dose"`` and ``"cmax"``).
    method
        ``"spearman"``, ``"pearson"`` or ``"kendall"``, as in
        :func:`olinkpipe.clinical.correlate`, whose coefficient, 95 % CI, p and n are the
        title.
    hue
        Optional grouping column for the dot colours.
    logx, logy
        Logarithmic axes; a trend is then fitted on the log scale.
    trend
        ``"auto"`` (default): a least-squares line for Pearson's r, which measures linear
        association, and no line for the rank correlations (Spearman, Kendall), which a
        straight line does not represent; ``"ols"`` a least-squares line, ``"lowess"`` a
        LOWESS smooth (statsmodels, ``frac=2/3``), ``"none"`` no line.
    xlabel, ylabel
        Axis labels with units, e.g. ``"Dose (cells/kg)"``; default the column names.
    result
        The row of :func:`olinkpipe.clinical.correlate` for ``x`` and ``y`` (a one-row
        frame or a Series) already computed, e.g. by the workflow: its coefficient, CI, p
        and n are the title, not recomputed. ``None`` (default) computes it.
    ax
        Matplotlib Axes to draw on; a new figure is made when ``None``.

    Returns
    -------
    matplotlib.axes.Axes
        The Axes with the dots, the trend (if any; its label says which) and the
        statistics as the title.

    Examples
    --------
    >>> import pandas as pd
    >>> import olinkpipe as op
    >>> t = pd.DataFrame({"dose": [1, 2, 3, 4, 5], "cmax": [2.0, 1.0, 4.0, 3.0, 5.0]})
    >>> ax = op.pl.correlation(t, "dose", "cmax", xlabel="Dose (cells/kg)")
    >>> len(ax.get_lines())  # Spearman: no straight line
    0
    >>> res = op.clinical.correlate(t, "dose", ["cmax"])  # computed once, drawn as is
    >>> ax = op.pl.correlation(t, "dose", "cmax", result=res)
    >>> ax.get_title().startswith("Spearman ρ = 0.80")
    True
    """
    from ..clinical import correlate

    check_literal("method", method, ["spearman", "pearson", "kendall"])
    check_literal("trend", trend, ["auto", "ols", "lowess", "none"])
    if trend == "auto":
        trend = "ols" if method == "pearson" else "none"
    require_columns(table, [x, y] + ([hue] if hue else []), what="table")
    made = ax is None
    ax = get_ax(ax, figsize=(5.0, 4.5))
    xs = pd.to_numeric(table[x], errors="coerce")
    ys = pd.to_numeric(table[y], errors="coerce")
    if hue:
        for i, level in enumerate(_levels(table[hue])):
            sel = (table[hue] == level).to_numpy()
            ax.scatter(
                xs[sel],
                ys[sel],
                color=group_color(i),
                s=26,
                label=str(level),
                edgecolor="white",
                lw=0.5,
                zorder=3,
            )
    else:
        ax.scatter(xs, ys, color=group_color(0), s=26, edgecolor="white", lw=0.5, zorder=3)
    ok = xs.notna() & ys.notna()
    if logx:
        ok &= xs > 0
        ax.set_xscale("log")
    if logy:
        ok &= ys > 0
        ax.set_yscale("log")
    _trend(ax, xs[ok], ys[ok], trend, logx=logx, logy=logy)
    res = _correlation_row(result, x, y, method) if result is not None else None
    if res is None:
        res = correlate(table, x, y, method=method).iloc[0]
    sym = {"spearman": "Spearman ρ", "pearson": "Pearson r", "kendall": "Kendall τ"}[method]
    ax.set_title(
        f"{sym} = {res['rho']:.2f} [95 % CI {res['ci_low']:.2f}, {res['ci_high']:.2f}], "
        f"{_p_text(res['p_value'])}, n = {int(res['n'])}",
        fontsize=9,
    )
    ax.set_xlabel(xlabel or x)
    ax.set_ylabel(ylabel or y)
    for axis, is_log in ((ax.xaxis, logx), (ax.yaxis, logy)):
        if not is_log:  # an offset reads "×10^6", not "1e6", next to the unit
            axis.get_major_formatter().set_useMathText(True)
    if logx:
        _readable_log(ax.xaxis)
    if logy:
        _readable_log(ax.yaxis)
    if made:
        ax.figure.tight_layout()
    if hue or trend != "none":
        place_legend(ax, title=hue, frameon=False, fontsize=8)
    return ax


def _correlation_row(result: pd.DataFrame | pd.Series, x: str, y: str, method: str) -> pd.Series:
    """The one row of a precomputed ``clinical.correlate`` result, checked."""
    row = result
    if isinstance(result, pd.DataFrame):
        if len(result) != 1:
            msg = (
                f"result: expected the one row of clinical.correlate for {x!r} and {y!r}, "
                f"got {len(result)} rows."
            )
            raise ValidationError(msg)
        row = result.iloc[0]
    missing = [c for c in ("rho", "ci_low", "ci_high", "p_value", "n") if c not in row.index]
    if missing:
        msg = f"result lacks {missing!r}; pass a row of olinkpipe.clinical.correlate."
        raise ValidationError(msg)
    if "method" in row.index and str(row["method"]) != method:
        msg = f"result is a {row['method']} correlation, but method={method!r}."
        raise ValidationError(msg)
    return row


def _trend(ax: Axes, xs: pd.Series, ys: pd.Series, trend: str, *, logx: bool, logy: bool) -> None:
    """Draw the least-squares line or LOWESS smooth of ``ys`` on ``xs`` (on the log scales)."""
    fx = np.log10(xs.to_numpy(float)) if logx else xs.to_numpy(float)
    fy = np.log10(ys.to_numpy(float)) if logy else ys.to_numpy(float)
    if trend == "none" or len(fx) < 3 or np.ptp(fx) == 0:
        return
    if trend == "ols":
        slope, intercept = np.polyfit(fx, fy, 1)
        gx = np.linspace(fx.min(), fx.max(), 50)
        gy = slope * gx + intercept
        label = "least-squares line"
    else:
        from statsmodels.nonparametric.smoothers_lowess import lowess

        fit = lowess(fy, fx, frac=2 / 3, return_sorted=True)
        gx, gy = fit[:, 0], fit[:, 1]
        label = "LOWESS smooth"
    ax.plot(10**gx if logx else gx, 10**gy if logy else gy, color="black", lw=1, label=label)
