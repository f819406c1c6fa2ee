"""A metric against NFE (or any x): a line per preset (and per swept parameter that tells runs
apart) with its interval, a panel per score source and dataset (or task) that has runs, the
metric's floor where the table carries it. The same code draws generation (`metric_vs_nfe`) and
restoration (`restoration_vs_nfe`) tables: it takes a table and the names of its columns.

Readable with many presets: a hue per family (sampler or restorer family), a marker and dash per
preset within it; a panel holds at most style.MAX_LINES_PER_PANEL lines, more go to small
multiples (a column of panels per group of families); lines that share an x are dodged sideways.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from diffsweep import stats
from diffsweep.plots import style
from diffsweep.tables import distinguishing, param_columns, records

# How a point's interval was obtained (`point_intervals`)
SEEDS, SAMPLING, NONE = "seeds", "sampling", "none"


def metric_vs_x(table: pd.DataFrame, metric: str, out, x: str = "nfe", hue: str = "sampler",
                family: str | None = None, row: str | None = "model", col: str | None = "dataset",
                replicates=("seed",), level: float = stats.DEFAULT_LEVEL) -> None:
    """`metric` against `x`: a panel per (`col`, `row`) pair that has runs (no empty panels), a
    line per `hue` value (plus whatever parameter else tells runs at the same x apart, e.g. a swept
    knob), coloured by its `family` (a column; default: each `hue` value its own family). A point
    is the mean over `replicates` (seeds; a restoration's measurements too) with its `level` t
    interval (`point_intervals`; one replicate: +- z se from the `<metric>_se` column where the
    run has it). Where the rows carry `<metric>_floor` (and `_floor_low`, `_floor_high`), each
    panel draws the floor as a line and band. Where lines make more than style.MAX_SERIES
    configurations (a sweep over knobs), a line is a whole `hue` value instead, pooling its
    configurations. Only runs with status ok (if the table has a status column) and a finite metric
    are drawn. The table lists its parameter columns (`tables.param_columns`)."""
    style.theme()
    parameter_columns = param_columns(table)
    ok = style.finished(table, metric)
    if ok.empty:
        style.placeholder(out, f"no finished runs with '{metric}'")
        return
    facets = [c for c in (col, row) if c and ok[c].nunique() > 1]
    labels = series_labels(ok, hue, [c for c in (*facets, x) if c], parameter_columns, replicates)
    pooled = labels.nunique() > max(style.MAX_SERIES, ok[hue].nunique())
    ok = ok.assign(**{hue: ok[hue].astype("string") if pooled else labels})
    family_of = (ok[[hue, family]] if family in ok.columns else ok[[hue]].assign(_family=ok[hue])).drop_duplicates(hue)
    families = dict(zip(family_of.iloc[:, 0].astype(str), family_of.iloc[:, 1].astype(str)))
    points = point_intervals(ok, [*facets, hue, x], metric, level)
    points[hue] = points[hue].astype(str)
    groups = style.family_groups(families)
    styles = {series: s for group in groups for series, s in style.line_styles(group, families).items()}
    group_of = {series: i for i, group in enumerate(groups) for series in group}
    points["_group"] = points[hue].map(group_of)
    floors = floor_levels(ok, facets, metric)
    keys = [key for key, _ in points.groupby(facets, sort=True)] if facets else [()]
    cells = [(key, g) for key in keys for g in range(len(groups))
             if not _panel_points(points, facets, key, g).empty]
    many = len(groups) > 1        # small multiples: a row per facet key, a column per group of families
    ncols = len(groups) if many else min(3, len(cells))
    nrows = len(keys) if many else math.ceil(len(cells) / ncols)
    fig, axes = plt.subplots(nrows, ncols, squeeze=False, figsize=(3.75 * ncols, 3.0 * nrows))
    where = {(key, g): axes[keys.index(key), g] if many else axes.flat[i] for i, (key, g) in enumerate(cells)}
    for ax in axes.flat:
        if ax not in where.values():
            fig.delaxes(ax)
    positive, x_positive = bool((ok[metric] > 0).all()), bool((ok[x] > 0).all())
    dodged = False
    for (key, g), ax in where.items():
        panel = _panel_points(points, facets, key, g)
        dodged |= _draw_panel(ax, panel, hue, x, styles, x_positive)
        floor = floors.get(key if isinstance(key, tuple) else (key,))
        if floor is not None:
            _draw_floor(ax, floor)
        style.log_axes(ax, x=x_positive, y=positive and (floor is None or bool((floor.stack() > 0).all())))
        if not positive:
            style.symlog_y(ax, ok[metric])
        key = key if isinstance(key, tuple) else (key,)
        ax.set_title(" / ".join(str(v) for v in key), fontsize=9)
        ax.set(xlabel=style.axis_label(x), ylabel=metric)
    _legends(fig, where, groups, hue, many)
    fig.suptitle(describe(metric, points, replicates, level, pooled, hue, bool(floors), dodged), fontsize=9)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))     # room for the two lines of the caption
    style.save(fig, out)


def point_intervals(frame: pd.DataFrame, keys: list, metric: str, level: float = stats.DEFAULT_LEVEL) -> pd.DataFrame:
    """A row per `keys` value: `mean` of `metric` over the rows (the replicates), `n`, and the
    interval's `half` width with its `basis`: `seeds` (n >= 2: the t interval of
    `stats.seed_interval`), `sampling` (n = 1 and a finite `<metric>_se`: +- z se, the run's own
    sampling error only), or `none`."""
    se_column = f"{metric}_se"
    frame = frame.assign(_se=pd.to_numeric(frame[se_column], errors="coerce").astype(float)
                         if se_column in frame.columns else np.nan)
    points = (frame.groupby(keys, dropna=False, sort=True)
              .agg(mean=(metric, "mean"), sd=(metric, "std"), n=(metric, "count"), se=("_se", "mean"))
              .reset_index())
    half = stats.t_half_widths(points["sd"], points["n"], level)
    sampling = (points["n"] == 1) & np.isfinite(points["se"])
    half = np.where(sampling, stats.normal_half_widths(points["se"].fillna(0.0), level), half)
    basis = np.where(points["n"] >= 2, SEEDS, np.where(sampling, SAMPLING, NONE))
    return points.assign(half=half, basis=basis).drop(columns=["sd", "se"])


def floor_levels(frame: pd.DataFrame, facets: list, metric: str) -> dict:
    """Per facet key (a tuple), the distinct floors of its rows: a frame of `floor`, `low`, `high`
    (the band: NaN where the table has no `_floor_low`/`_floor_high`). Empty where the table carries
    no finite `<metric>_floor`."""
    name = f"{metric}_floor"
    if name not in frame.columns:
        return {}
    columns = {"floor": name, "low": f"{name}_low", "high": f"{name}_high"}
    values = pd.DataFrame({short: pd.to_numeric(frame[column], errors="coerce").astype(float)
                           if column in frame.columns else np.nan for short, column in columns.items()},
                          index=frame.index)
    values = pd.concat([frame[facets], values], axis=1)[np.isfinite(values["floor"])]
    if values.empty:
        return {}
    if not facets:
        return {(): values[list(columns)].drop_duplicates().reset_index(drop=True)}
    return {key if isinstance(key, tuple) else (key,): part[list(columns)].drop_duplicates().reset_index(drop=True)
            for key, part in values.groupby(facets, sort=True)}


def describe(metric: str, points: pd.DataFrame, replicates, level: float, pooled: bool, hue: str,
             floors: bool, dodged: bool) -> str:
    """The figure's caption (its suptitle): what a point and its interval are, and on what they rest."""
    percent = f"{100 * level:g}%"
    over = (f"configurations of a {hue} (over {style.MAX_SERIES} lines otherwise) and " if pooled else "") + \
        " and ".join(replicates)
    parts = [f"{metric}: mean over {over}"]
    ns = sorted(points.loc[points["basis"] == SEEDS, "n"].unique())
    if ns:
        n_text = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}-{ns[-1]}"
        parts.append(f"band or bar: {percent} t interval ({n_text})")
    if (points["basis"] == SAMPLING).any():
        z = float(stats.normal_half_widths(1.0, level))
        parts.append(f"one run: +- {z:.2f} se of its own sampling error ({metric}_se), not seed-to-seed spread")
    if (points["basis"] == NONE).any():
        parts.append(f"no interval where one run has no {metric}_se")
    if floors:
        parts.append("grey: the floor, what exact samples score (line: mean, band: central 95%)")
    if dodged:
        parts.append("single points at one x dodged sideways")
    text = "; ".join(parts)
    # wrapped in two lines of similar length: a suptitle wider than the figure is cut
    cut = text.find("; ", len(text) // 2)
    return text if cut < 0 else text[:cut + 1] + "\n" + text[cut + 2:]


def _panel_points(points: pd.DataFrame, facets: list, key, group: int) -> pd.DataFrame:
    mask = points["_group"] == group
    for column, value in zip(facets, key if isinstance(key, tuple) else (key,)):
        mask &= points[column] == value
    return points[mask]


def _draw_panel(ax, panel: pd.DataFrame, hue: str, x: str, styles: dict, log_x: bool) -> bool:
    """The lines of one panel, each with its band; a line of one point gets a bar instead, dodged
    sideways where other lines have a point at its x, so that bars do not sit on one another
    (returns whether any was dodged)."""
    lines = list(panel.groupby(hue, sort=True))
    lines_at = panel.groupby(x)[hue].nunique()
    singles = [series for series, line in lines if len(line) == 1]
    values = panel[x].astype(float)
    span = float(values.max() - values.min()) or float(values.abs().max())
    dodged = False
    for series, line in lines:
        look = styles[series]
        xs, mean, half = line[x].astype(float).to_numpy(), line["mean"].to_numpy(), line["half"].to_numpy()
        if len(line) == 1 and lines_at[line[x].iloc[0]] > 1:
            xs, dodged = style.dodge(xs, singles.index(series), len(singles), log_x, span), True
        ax.plot(xs, mean, marker=look.marker, markersize=4, color=look.colour, linestyle=look.dash, label=series)
        if not np.isfinite(half).any():
            continue
        if len(line) > 1:
            ax.fill_between(xs, mean - half, mean + half, color=look.colour, alpha=0.15, linewidth=0)
        else:           # a band over one x has no width: a bar instead
            ax.errorbar(xs, mean, yerr=np.nan_to_num(half), color=look.colour, capsize=2, linewidth=1,
                        linestyle="none")
    return dodged


def _draw_floor(ax, floor: pd.DataFrame) -> None:
    for value, low, high in floor[["floor", "low", "high"]].itertuples(index=False):
        ax.axhline(value, color="0.35", linestyle=(0, (1, 1)), linewidth=1, label="floor (exact samples)")
        if np.isfinite(low) and np.isfinite(high):
            ax.axhspan(low, high, color="0.5", alpha=0.15, linewidth=0)


def _legends(fig, where: dict, groups: list, hue: str, many: bool) -> None:
    """One legend at the right; with small multiples one below each column of panels, naming its series."""
    def handles_of(panels) -> dict:
        return {label: handle for ax in panels for handle, label in zip(*ax.get_legend_handles_labels())}
    if not many:
        handles = handles_of(where.values())
        fig.legend(list(handles.values()), list(handles), loc="upper left", bbox_to_anchor=(1.0, 0.95), title=hue)
        return
    for g, group in enumerate(groups):
        column = [ax for (key, index), ax in where.items() if index == g]
        handles = handles_of(column)
        column[-1].legend(list(handles.values()), list(handles), loc="upper center", bbox_to_anchor=(0.5, -0.25),
                          ncol=2, fontsize=7, title=hue, title_fontsize=8)


def metric_vs_nfe(table: pd.DataFrame, metric: str, out) -> None:
    """Generation: a metric against NFE, a line per sampler preset coloured by its family, a row of
    panels per score source and a column per dataset."""
    metric_vs_x(table, metric, out, x="nfe", hue="sampler", family="sampler_family", row="model", col="dataset")


def restoration_vs_nfe(table: pd.DataFrame, metric: str, out) -> None:
    """Restoration: a metric against NFE, a line per restorer preset coloured by its family, a row
    per score source and a column per task; intervals over measurements and seeds."""
    metric_vs_x(table, metric, out, x="nfe", hue="restorer", family="restorer_family", row="model", col="task",
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
