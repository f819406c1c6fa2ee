"""A metric against NFE (or any x): a line per preset (and per swept parameter that tells runs
apart), bands over seeds, a panel per score source and dataset (or task) that has runs. The same
code draws generation (`metric_vs_nfe`) and restoration (`restoration_vs_nfe`) tables: it takes a
table and the names of its columns.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from diffsweep.plots import style
from diffsweep.tables import distinguishing, param_columns, records


def metric_vs_x(table: pd.DataFrame, metric: str, out, x: str = "nfe", hue: str = "sampler",
                row: str | None = "model", col: str | None = "dataset", line_style: str | None = None,
                replicates=("seed",)) -> None:
    """`metric` against `x`: a panel per (`col`, `row`) pair that has runs (wrapped, three to a
    row: no empty panels), a line per `hue` value (plus whatever parameter else tells runs at the
    same x apart, e.g. a swept knob), optionally a line style per `line_style` value. A line is the
    mean over `replicates` (seeds; a restoration's measurements too) with a band of one standard
    deviation. Where that makes more than style.MAX_SERIES lines (a sweep over knobs), a line is a
    whole `hue` value instead, its band spanning its configurations and replicates, so the legend
    stays short. Only runs with status ok (if the table has a status column) and a finite metric
    are drawn. The table lists its parameter columns (`tables.param_columns`)."""
    style.theme()
    parameter_columns = param_columns(table)
    ok = style.finished(table, metric)
    if ok.empty:
        style.placeholder(out, f"no finished runs with '{metric}'")
        return
    facets = [c for c in (col, row) if c and ok[c].nunique() > 1]
    labels = series_labels(ok, hue, [c for c in (*facets, line_style, x) if c], parameter_columns, replicates)
    pooled = labels.nunique() > max(style.MAX_SERIES, ok[hue].nunique())
    ok = ok.assign(**{hue: ok[hue].astype("string") if pooled else labels})
    lines = [c for c in (hue, line_style) if c]
    points = (ok.groupby([*facets, *lines, x], dropna=False, sort=True)[metric].agg(["mean", "std"])
              .reset_index())
    panels = list(points.groupby(facets, sort=True)) if facets else [((), points)]
    series = sorted(points[hue].unique())
    colours = dict(zip(series, sns.color_palette("colorblind" if len(series) <= 10 else "husl", len(series))))
    dashes = dict(zip(sorted(points[line_style].unique()) if line_style else [], ["-", "--", ":", "-."] * 100))
    wrap = min(3, len(panels))
    fig, axes = plt.subplots(math.ceil(len(panels) / wrap), wrap, squeeze=False,
                             figsize=(3.75 * wrap, 3.0 * math.ceil(len(panels) / wrap)))
    for ax in axes.flat[len(panels):]:
        fig.delaxes(ax)
    positive, x_positive = bool((ok[metric] > 0).all()), bool((ok[x] > 0).all())
    for ax, (key, panel) in zip(axes.flat, panels):
        for line_key, line in panel.groupby(lines, sort=True):
            line_key = line_key if isinstance(line_key, tuple) else (line_key,)
            colour, dash = colours[line_key[0]], dashes.get(line_key[1], "-") if line_style else "-"
            spread = line["std"].fillna(0.0)
            ax.plot(line[x], line["mean"], marker="o", markersize=4, color=colour, linestyle=dash,
                    label=" / ".join(str(v) for v in line_key))
            if len(line) > 1:
                ax.fill_between(line[x], line["mean"] - spread, line["mean"] + spread, color=colour, alpha=0.2,
                                linewidth=0)
            else:           # a band over one x has no width: a bar instead
                ax.errorbar(line[x], line["mean"], yerr=spread, color=colour, capsize=2, linewidth=1)
        style.log_axes(ax, x=x_positive, y=positive)
        if not positive:
            style.symlog_y(ax, ok[metric])
        key = key if isinstance(key, tuple) else (key,)
        ax.set_title(" / ".join(str(v) for v in key), fontsize=9)
        ax.set(xlabel=style.axis_label(x), ylabel=metric)
    handles = {label: handle for ax in fig.axes for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend([handles[k] for k in sorted(handles)], sorted(handles), loc="upper left",
               bbox_to_anchor=(1.0, 0.95), title=hue)
    spread_over = (f"configurations of a {hue} (over {style.MAX_SERIES} lines otherwise) and " if pooled else "") + \
        " and ".join(replicates)
    fig.suptitle(f"{metric}: mean, band of one standard deviation over {spread_over}", fontsize=9)
    fig.tight_layout()
    style.save(fig, out)


def metric_vs_nfe(table: pd.DataFrame, metric: str, out) -> None:
    """Generation: a metric against NFE, a line per sampler preset, a row of panels per score
    source and a column per dataset."""
    metric_vs_x(table, metric, out, x="nfe", hue="sampler", row="model", col="dataset")


def restoration_vs_nfe(table: pd.DataFrame, metric: str, out) -> None:
    """Restoration: a metric against NFE, a line per restorer preset, a row per score source and a
    column per task; bands over measurements and seeds."""
    metric_vs_x(table, metric, out, x="nfe", hue="restorer", row="model", col="task",
                replicates=("seed", "measurement"))


def series_labels(table: pd.DataFrame, hue: str, within, parameter_columns, replicates=("seed",)) -> pd.Series:
    """The `hue` value, extended by the parameters (of `parameter_columns`) that still tell runs apart at
    the same (`within`) point, so that a band spans `replicates` only: `rw (T0=0.1)`, `rw (T0=1)`.
    Found on the distinct configurations and labelled once each: 100k runs are a few thousand."""
    keys = [hue, *within]
    candidates = [c for c in table.columns if c in parameter_columns and c not in (*replicates, *keys)]
    extra = distinguishing(records(_distinct(table[[*keys, *candidates]])), keys, candidates)
    if not extra:
        return table[hue].astype("string")

    def label(row):
        detail = ", ".join(f"{c.removeprefix('knob_')}={style.short(row[c])}" for c in extra if not pd.isna(row[c]))
        return f"{row[hue]} ({detail})" if detail else str(row[hue])
    combos = _distinct(table[[hue, *extra]])
    combos = combos.assign(label=combos.apply(label, axis=1))
    merged = table[[hue, *extra]].merge(combos, how="left", on=[hue, *extra])
    return pd.Series(merged["label"].to_numpy(), index=table.index, dtype="string")


def _distinct(frame: pd.DataFrame) -> pd.DataFrame:
    """The distinct rows of `frame` (all of them where a value cannot be hashed, e.g. a list)."""
    try:
        return frame.drop_duplicates()
    except TypeError:
        return frame

