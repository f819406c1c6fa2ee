"""Figures from the tables, in one style, each saved in every format it is asked for (PNG, PDF).

The functions take a table and the names of its columns, not generation-specific columns, so
the same code draws restoration results (a task column instead of the dataset, a restorer
instead of a sampler):

- `metric_vs_x`     a metric against NFE (or any x), a line per sampler preset, bands over seeds,
                    a panel per score source and dataset that has runs
- `heatmap`         a metric over two parameters, e.g. training sigma-distribution x sampling schedule
- `schedule_curves` sigma_k against k for every schedule and step count of a sweep
- `training_curves` training loss against step, per trained model
- `sample_grid`     scatter grids of 2-D samples
- `ramp_study`      the temperature-ramp study: a metric against steps, hue ramp, style T0, floor drawn
- `error_sources`   each network's error against steps beside the oracle's (discretisation) part
"""

from __future__ import annotations

import itertools
import logging
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # jobs have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from diffsweep import runs  # noqa: E402
from diffsweep.tables import HEATMAP_REDUCE, PLOT_FORMATS, distinguishing, param_columns, records  # noqa: E402

log = logging.getLogger("diffsweep")

STYLE = {"context": "paper", "style": "whitegrid", "font_scale": 1.1, "palette": "colorblind",
         "rc": {"pdf.fonttype": 42, "ps.fonttype": 42, "savefig.dpi": 150, "legend.frameon": False}}


def theme() -> None:
    """The one style of every figure (seaborn paper context, colour-blind palette, TrueType in PDFs)."""
    sns.set_theme(**STYLE)


# --- metric vs NFE -------------------------------------------------------------------------

MAX_SERIES = 12   # lines in one figure's legend; beyond it each preset's configurations are pooled into one line
MAX_PANELS = 12   # rows or columns of a grid of panels (models, presets, configurations); beyond it the best are picked


def metric_vs_x(table: pd.DataFrame, metric: str, out, x: str = "nfe", hue: str = "sampler",
                row: str | None = "model", col: str | None = "dataset", style: str | None = None,
                replicates=("seed",)) -> None:
    """`metric` against `x`: a panel per (`col`, `row`) pair that has runs (wrapped, three to a
    row: no empty panels), a line per `hue` value (plus whatever parameter else tells runs at the
    same x apart, e.g. a swept knob), optionally a line style per `style` value. A line is the
    mean over `replicates` (seeds; a restoration's measurements too) with a band of one standard
    deviation. Where that makes more than MAX_SERIES lines (a sweep over knobs), a line is a
    whole `hue` value instead, its band spanning its configurations and replicates, so the legend
    stays short. Only runs with status ok (if the table has a status column) and a finite metric
    are drawn. The table lists its parameter columns (`tables.param_columns`)."""
    theme()
    params = param_columns(table)
    ok = _finished(table, metric)
    if ok.empty:
        _placeholder(out, f"no finished runs with '{metric}'")
        return
    facets = [c for c in (col, row) if c and ok[c].nunique() > 1]
    labels = series_labels(ok, hue, [c for c in (*facets, style, x) if c], params, replicates)
    pooled = labels.nunique() > max(MAX_SERIES, ok[hue].nunique())
    ok = ok.assign(**{hue: ok[hue].astype("string") if pooled else labels})
    lines = [c for c in (hue, style) if c]
    points = (ok.groupby([*facets, *lines, x], dropna=False, sort=True)[metric].agg(["mean", "std"])
              .reset_index())
    panels = list(points.groupby(facets, sort=True)) if facets else [((), points)]
    series = sorted(points[hue].unique())
    colours = dict(zip(series, sns.color_palette("colorblind" if len(series) <= 10 else "husl", len(series))))
    dashes = dict(zip(sorted(points[style].unique()) if style else [], ["-", "--", ":", "-."] * 100))
    wrap = min(3, len(panels))
    fig, axes = plt.subplots(math.ceil(len(panels) / wrap), wrap, squeeze=False,
                             figsize=(3.75 * wrap, 3.0 * math.ceil(len(panels) / wrap)))
    for ax in axes.flat[len(panels):]:
        fig.delaxes(ax)
    positive, x_positive = bool((ok[metric] > 0).all()), bool((ok[x] > 0).all())
    for ax, (key, panel) in zip(axes.flat, panels):
        for line_key, line in panel.groupby(lines, sort=True):
            line_key = line_key if isinstance(line_key, tuple) else (line_key,)
            colour, dash = colours[line_key[0]], dashes.get(line_key[1], "-") if style else "-"
            spread = line["std"].fillna(0.0)
            ax.plot(line[x], line["mean"], marker="o", markersize=4, color=colour, linestyle=dash,
                    label=" / ".join(str(v) for v in line_key))
            if len(line) > 1:
                ax.fill_between(line[x], line["mean"] - spread, line["mean"] + spread, color=colour, alpha=0.2,
                                linewidth=0)
            else:           # a band over one x has no width: a bar instead
                ax.errorbar(line[x], line["mean"], yerr=spread, color=colour, capsize=2, linewidth=1)
        _log_axes(ax, x=x_positive, y=positive)
        if not positive:
            _symlog_y(ax, ok[metric])
        key = key if isinstance(key, tuple) else (key,)
        ax.set_title(" / ".join(str(v) for v in key), fontsize=9)
        ax.set(xlabel=_label(x), ylabel=metric)
    handles = {label: handle for ax in fig.axes for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend([handles[k] for k in sorted(handles)], sorted(handles), loc="upper left",
               bbox_to_anchor=(1.0, 0.95), title=hue)
    spread_over = (f"configurations of a {hue} (over {MAX_SERIES} lines otherwise) and " if pooled else "") + \
        " and ".join(replicates)
    fig.suptitle(f"{metric}: mean, band of one standard deviation over {spread_over}", fontsize=9)
    fig.tight_layout()
    save(fig, out)


def metric_vs_nfe(table: pd.DataFrame, metric: str, out) -> None:
    """Generation: a metric against NFE, a line per sampler preset, a row of panels per score
    source and a column per dataset."""
    metric_vs_x(table, metric, out, x="nfe", hue="sampler", row="model", col="dataset")


def series_labels(table: pd.DataFrame, hue: str, within, params, replicates=("seed",)) -> pd.Series:
    """The `hue` value, extended by the parameters (of `params`) that still tell runs apart at
    the same (`within`) point, so that a band spans `replicates` only: `rw (T0=0.1)`, `rw (T0=1)`.
    Found on the distinct configurations and labelled once each: 100k runs are a few thousand."""
    keys = [hue, *within]
    candidates = [c for c in table.columns if c in params and c not in (*replicates, *keys)]
    extra = distinguishing(records(_distinct(table[[*keys, *candidates]])), keys, candidates)
    if not extra:
        return table[hue].astype("string")

    def label(row):
        detail = ", ".join(f"{c.removeprefix('knob_')}={_short(row[c])}" for c in extra if not pd.isna(row[c]))
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


# --- heatmap ----------------------------------------------------------------------------------

def heatmap_data(table: pd.DataFrame, metric: str, rows: str = "model_train_sigma_name", columns: str = "schedule",
                 facet: str | None = "dataset", reduce: str = "best", better: str = "lower",
                 seed: str = "seed") -> dict:
    """{facet value: DataFrame rows x columns} of `metric`: seeds averaged per configuration
    (every parameter column but the seed), then the configurations of a cell reduced by
    `reduce`: best (min or max by `better`), mean or median. The table lists its parameter
    columns (`tables.param_columns`)."""
    params = param_columns(table)
    ok = _finished(table, metric)
    if ok.empty:
        return {}
    if reduce == "best":
        how = "max" if better == "higher" else "min"
    elif reduce in HEATMAP_REDUCE:
        how = reduce
    else:
        raise ValueError(f"reduce: '{reduce}' is not allowed; allowed: {', '.join(HEATMAP_REDUCE)}")
    config = list(dict.fromkeys([c for c in (rows, columns, facet) if c] +
                                [c for c in ok.columns if c in params and c != seed]))
    per_config = ok.groupby(config, dropna=False)[metric].mean().reset_index()
    out = {}
    for value in (sorted(per_config[facet].dropna().unique()) if facet else [None]):
        part = per_config if value is None else per_config[per_config[facet] == value]
        grid = part.groupby([rows, columns], dropna=False)[metric].agg(how).unstack(columns)
        grid.index = [_short(v) for v in grid.index]
        grid.columns = [_short(v) for v in grid.columns]
        out[value] = grid.astype(float)
    return out


def heatmap(table: pd.DataFrame, metric: str, out, rows: str = "model_train_sigma_name", columns: str = "schedule",
            facet: str | None = "dataset", reduce: str = "best", better: str = "lower", seed: str = "seed",
            number_format: str = ".2g") -> None:
    """One annotated heatmap per `facet` value of `heatmap_data`: e.g. training
    sigma-distribution x sampling schedule, the paper's decoupling of training and sampling."""
    theme()
    missing = [c for c in (rows, columns) if c not in table.columns]
    data = {} if missing else heatmap_data(table, metric, rows, columns, facet, reduce, better, seed)
    if not data:
        _placeholder(out, f"no finished runs with '{metric}'" if not missing else f"no column {', '.join(missing)}")
        return
    n_rows = max(len(grid.index) for grid in data.values())
    n_cols = max(len(grid.columns) for grid in data.values())
    width, height = 1.6 + 1.1 * max(2, n_cols), 1.9 + 0.45 * max(1, n_rows)
    wrap = min(2, len(data))
    fig, axes = plt.subplots(math.ceil(len(data) / wrap), wrap, figsize=(width * wrap, height *
                             math.ceil(len(data) / wrap)), squeeze=False)
    for ax in axes.flat[len(data):]:
        ax.set_axis_off()
    cmap = "viridis" if better == "higher" else "viridis_r"     # brighter is better
    for ax, (value, grid) in zip(axes.flat, data.items()):
        finite = grid.to_numpy()[np.isfinite(grid.to_numpy())]
        norm = None
        if finite.size and finite.min() > 0 and finite.max() / finite.min() > 10:
            from matplotlib.colors import LogNorm
            norm = LogNorm(vmin=finite.min(), vmax=finite.max())
        sns.heatmap(grid, ax=ax, annot=True, fmt=number_format, cmap=cmap, norm=norm, linewidths=0.5,
                    cbar_kws={"label": metric, "shrink": 0.8}, annot_kws={"fontsize": 8})
        ax.set_title(f"{facet} = {value}" if facet else "")
        ax.set_xlabel(columns)
        ax.set_ylabel(rows if ax in axes[:, 0] else "")
        ax.tick_params(axis="x", rotation=30)
        ax.tick_params(axis="y", rotation=0)
    what = "best over samplers, steps and knobs" if reduce == "best" else f"{reduce} over configurations"
    fig.suptitle(f"{metric} ({what} per cell; {better} is better)", fontsize=9)
    fig.tight_layout()
    save(fig, out)


# --- noise schedules ------------------------------------------------------------------------

def schedule_points(manifest: pd.DataFrame) -> list[dict]:
    """Every (schedule, its parameters, step count) that `manifest` (runs.parquet) uses."""
    knob_columns = [c for c in manifest.columns if c.startswith("schedule_")]
    points, seen = [], set()
    for row in records(manifest[["schedule", "steps", *knob_columns]].drop_duplicates()):
        values = {c.removeprefix("schedule_"): row[c] for c in knob_columns if row[c] is not None}
        key = (row["schedule"], int(row["steps"]), tuple(sorted(values.items())))
        if key not in seen:
            seen.add(key)
            points.append({"schedule": row["schedule"], "steps": int(row["steps"]), "knobs": values})
    return sorted(points, key=lambda p: (p["schedule"], sorted(p["knobs"].items()), p["steps"]))


def schedule_curves(manifest: pd.DataFrame, out) -> None:
    """sigma_k against k (log scale) for every schedule and step count a sweep uses: a panel
    per schedule (and non-default parameters; a panel per schedule with all its knob values in it
    where that would make over MAX_SERIES panels), a line per step count (a colour scale beyond
    MAX_SERIES step counts)."""
    from diffsweep import noise

    theme()
    frames = []
    for point in schedule_points(manifest):
        sigmas = noise.make_schedule(point["schedule"], point["steps"], **_schedule_knobs(point))
        defaults = {k: knob.default for k, knob in noise.SCHEDULES[point["schedule"]].knobs.items()}
        changed = {k: v for k, v in point["knobs"].items() if k in defaults and v != defaults[k]}
        title = point["schedule"] + ("".join(f"\n{k}={_short(v)}" for k, v in sorted(changed.items())))
        frames.append(pd.DataFrame({"k": np.arange(len(sigmas)), "sigma": sigmas, "K": str(point["steps"]),
                                    "schedule": title}))
    if not frames:
        _placeholder(out, "no sampling schedules in the sweep")
        return
    data = pd.concat(frames, ignore_index=True)
    variants = data["schedule"].nunique() > MAX_SERIES    # a sweep over schedule knobs: a panel per schedule
    if variants:
        data = data.assign(variant=data["schedule"],
                           schedule=data["schedule"].str.split("\n").str[0] + "\n(every knob value)")
    n_panels = data["schedule"].nunique()
    steps = sorted(data["K"].unique(), key=int)
    many_steps = len(steps) > MAX_SERIES                   # a colour scale with a few values in the legend
    grid = sns.relplot(data=data.assign(K=data["K"].astype(int)) if many_steps else data, x="k", y="sigma", hue="K",
                       hue_order=None if many_steps else steps, col="schedule", kind="line",
                       col_wrap=min(3, n_panels), height=2.8, aspect=1.25,
                       palette="viridis" if many_steps else sns.color_palette("viridis", len(steps)),
                       legend="brief" if many_steps else "auto", units="variant" if variants else None,
                       estimator=None if variants else "mean",
                       facet_kws={"sharex": False, "sharey": False}, marker=".", markersize=4, markeredgewidth=0)
    for ax in grid.axes.flat:
        _log_axes(ax, y=True)
    grid.set_axis_labels("step k", r"$\sigma_k$")
    grid.set_titles("{col_name}")
    if grid.legend is not None:
        grid.legend.set_title("steps K")
    save(grid.figure, out)


def _schedule_knobs(point: dict) -> dict:
    """Manifest values in the types the schedule's knobs declare (Parquet makes ints floats)."""
    from diffsweep import noise

    declared = noise.SCHEDULES[point["schedule"]].knobs
    out = {}
    for key, value in point["knobs"].items():
        if key in declared:
            kind = declared[key].type
            out[key] = int(value) if kind == "int" else float(value) if kind == "float" else value
    return out


# --- training ---------------------------------------------------------------------------------

def training_curves(training: pd.DataFrame, manifest: pd.DataFrame | None, out, y: str = "loss_ema",
                    hue: str = "model", col: str = "dataset") -> None:
    """Training loss against step, a line per model (named through the manifest), a panel per dataset."""
    theme()
    y = y if y in training.columns else "loss"
    if training.empty or y not in training.columns:
        _placeholder(out, "no trained models")
        return
    data, hue, col = _named_by_model(training, manifest, hue, col, "step")
    grid = sns.relplot(data=data, x="step", y=y, hue=hue, col=col, kind="line", height=3.0, aspect=1.3,
                       col_wrap=min(3, data[col].nunique()) if col else None, facet_kws={"sharey": False},
                       hue_order=sorted(data[hue].unique()))
    for ax in grid.axes.flat:
        _log_axes(ax, y=bool((data[y] > 0).all()))
    grid.set_axis_labels("optimiser step", "training loss" + (" (EMA)" if y == "loss_ema" else ""))
    save(grid.figure, out)


def loss_by_sigma(by_sigma: pd.DataFrame, manifest: pd.DataFrame | None, out, last_fraction: float = 0.5,
                  hue: str = "model", col: str = "dataset") -> None:
    """Plain denoising error E||x0 - D||^2 against training sigma (bins of the training log),
    pooled over the last `last_fraction` of training: where each recipe learned the denoiser."""
    theme()
    if by_sigma.empty:
        _placeholder(out, "no trained models")
        return
    last = by_sigma.groupby("model_id")["step"].transform("max")
    data = by_sigma[by_sigma["step"] > (1 - last_fraction) * last]
    data = data.assign(error=data["x0_mse"] * data["count"])
    data = data.groupby(["model_id", "sigma_lo", "sigma_hi"], as_index=False)[["error", "count"]].sum()
    lo, hi = data["sigma_lo"].where(data["sigma_lo"] > 0, data["sigma_hi"] / 10), data["sigma_hi"]
    data = data.assign(x0_mse=data["error"] / data["count"],
                       sigma=np.sqrt(lo * hi.where(np.isfinite(hi), lo * 10)))
    data, hue, col = _named_by_model(data, manifest, hue, col, "sigma")
    grid = sns.relplot(data=data, x="sigma", y="x0_mse", hue=hue, col=col, kind="line", marker="o", height=3.0,
                       aspect=1.3, col_wrap=min(3, data[col].nunique()) if col else None,
                       facet_kws={"sharey": False}, hue_order=sorted(data[hue].unique()))
    for ax in grid.axes.flat:
        _log_axes(ax, x=True, y=bool((data["x0_mse"] > 0).all()))
    grid.set_axis_labels("training sigma (bin centre)", "denoising error E|x0 - D|^2")
    save(grid.figure, out)


def _named_by_model(data: pd.DataFrame, manifest: pd.DataFrame | None, hue: str, col: str, x: str):
    """Per-model rows joined with the model's name and dataset (through the manifest), and the
    hue and facet columns that exist: (data, hue, col)."""
    if manifest is not None:
        names = manifest[[c for c in ("model_id", hue, col) if c in manifest.columns]].drop_duplicates("model_id")
        data = data.merge(names, on="model_id", how="left")
    hue = hue if hue in data.columns else "model_id"
    col = col if col in data.columns else None
    return data.assign(**{hue: series_labels(data, hue, [c for c in (col, x) if c], params=())}), hue, col


# --- samples ----------------------------------------------------------------------------------

def sample_grid(table: pd.DataFrame, dataset: str, results, reference: np.ndarray, out, max_points: int = 1000,
                rank_by: str | None = None, better: str = "lower") -> None:
    """Rows: models; columns: the exact reference and each sampler preset at its largest NFE (lowest
    seed). At most MAX_PANELS presets and MAX_PANELS models: beyond that, the presets whose shown
    runs have the best mean `rank_by` (a metric column; `better`: lower or higher) over the models,
    then the models with the best mean over those presets; by name where no shown run has a value.
    The title and the log say how many were left out. Only the shown runs' records are read.
    2-D sets are scatter plots; image sets show a mosaic of the first samples."""
    theme()
    images = reference.ndim == 4
    max_points = 16 if images else max_points
    rows = table[(table["dataset"] == dataset) & table["status"].isin(runs.DONE_STATUSES)]   # runs with samples
    rows = rows[rows["seed"] == rows["seed"].min()] if not rows.empty else rows
    shown = (rows.sort_values(["model", "sampler", "nfe", "run_id"], kind="stable")
             .drop_duplicates(["model", "sampler"], keep="last"))
    score = _scores(shown, rank_by)
    presets = pick(score.groupby(shown["sampler"], observed=True).mean(), MAX_PANELS, better)
    chosen = shown["sampler"].isin(presets)
    models = pick(score[chosen].groupby(shown.loc[chosen, "model"], observed=True).mean(), MAX_PANELS, better)
    shown = shown[chosen & shown["model"].isin(models)]
    note = _left_out({"presets": (len(presets), rows["sampler"].nunique()),
                      "models": (len(models), rows["model"].nunique())},
                     f"the best by {rank_by} at their largest NFE" if score.notna().any() else "the first by name")
    runs_shown = {(run["model"], run["sampler"]): run for run in records(shown[["model", "sampler", "run_id", "nfe"]])}
    states = runs.index(results, only=set(shown["run_id"]))
    n_rows, n_cols = max(1, len(models)), 1 + len(presets)
    # no shared axes: each limit set would walk every other panel (a 13 x 12 grid took 30 s); the
    # limits are set on every panel below
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.2 * n_cols, 2.2 * n_rows), squeeze=False)
    for r in range(n_rows):
        _panel(axes[r, 0], reference[:max_points], "exact" if r == 0 else "")
        for c, preset in enumerate(presets, start=1):
            ax = axes[r, c]
            run = runs_shown.get((models[r], preset)) if models else None
            if run is None:
                ax.set_axis_off()
                continue
            try:   # checked against the sha256 in its record
                x = runs.read_run_arrays(results, run["run_id"], states=states).get("x")
                if x is None or x.ndim != reference.ndim or x.shape[1:] != reference.shape[1:] or not len(x):
                    raise runs.CorruptRecord(f"its samples.npz holds no samples x of shape (n, "
                                             f"{', '.join(map(str, reference.shape[1:]))})")
                x = x[:max_points]
            except (runs.CorruptRecord, runs.NoSamples) as error:   # the figure is still made, without this panel
                log.warning("samples of run %s left out of the figure: %s", run["run_id"], error)
                ax.set_axis_off()
                why = "samples not kept" if isinstance(error, runs.NoSamples) else "unreadable samples"
                ax.set_title(f"{preset}\n{why}", fontsize=8)
                continue
            _panel(ax, x, f"{preset}\nNFE {int(run['nfe'])}" if r == 0 else "")
        axes[r, 0].set_ylabel(models[r] if models else "")
    if not images:   # the exact samples' extent (their finite rows: a damaged reference still gives a figure)
        finite = reference[np.isfinite(reference).all(axis=1)]
        limits = np.quantile(finite, [0.001, 0.999], axis=0) if len(finite) else np.array([[-1.0, -1.0], [1.0, 1.0]])
        pad = 0.15 * (limits[1] - limits[0]) + 1e-9     # a positive extent even for a single point
        for ax in axes.flat:
            ax.set_xlim(limits[0, 0] - pad[0], limits[1, 0] + pad[0])
            ax.set_ylim(limits[0, 1] - pad[1], limits[1, 1] + pad[1])
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{dataset}\n{note}" if note else dataset, fontsize=None if not note else 10)
    fig.tight_layout()
    save(fig, out)


def _panel(ax, x, title) -> None:
    """A scatter of 2-D points, or a mosaic of (n, C, H, W) images in [-1, 1]."""
    if x.ndim == 4:
        from diffsweep.images import tile

        ax.imshow(tile(np.nan_to_num(x)), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        finite = np.isfinite(x).all(axis=1)
        ax.scatter(x[finite, 0], x[finite, 1], s=2, alpha=0.5, linewidths=0, rasterized=True)
    ax.set_title(title, fontsize=8)


# --- studies (docs/studies.md) ----------------------------------------------------------------

def ramp_study(summary: pd.DataFrame, floors: dict, out, metric: str = "sliced_w2") -> None:
    """The temperature-ramp study (`tables.studies.ramp_summary`): `metric` against steps, a panel
    per dataset, a colour per ramp, a line style per T0, bars of one standard deviation over
    seeds, and each dataset's exact-sample floor (`floors`: dataset -> value) as a grey line."""
    theme()
    if summary.empty:
        _placeholder(out, "no finished runs of the temperature-ramp study")
        return
    data = summary.assign(ramp=summary["knob_ramp"].astype(str), T0=summary["knob_T0"].map(_short))
    datasets = sorted(data["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.8 * len(datasets), 3.2), squeeze=False)
    for ax, dataset in zip(axes.flat, datasets):
        panel = data[data["dataset"] == dataset]
        sns.lineplot(data=panel, x="steps", y="mean", hue="ramp", style="T0", markers=True, ax=ax,
                     hue_order=sorted(data["ramp"].unique()), style_order=sorted(data["T0"].unique(), key=float))
        for _, line in panel.iterrows():
            ax.errorbar(line["steps"], line["mean"], yerr=0.0 if pd.isna(line["std"]) else line["std"],
                        fmt="none", ecolor="0.4", elinewidth=0.8)
        if dataset in floors:
            ax.axhline(floors[dataset], color="0.5", linestyle=":", label="exact-sample floor")
        _log_axes(ax, x=True, y=bool((panel["mean"] > 0).all()))
        ax.set(title=dataset, xlabel=_label("steps"), ylabel=metric if ax is axes.flat[0] else "")
        if ax is not axes.flat[-1]:
            ax.get_legend().remove()
    fig.tight_layout()     # each panel has its own y scale: keep its tick labels off the neighbour
    axes.flat[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    save(fig, out)


def error_sources(sources: pd.DataFrame, out, better: str = "lower") -> None:
    """Where the error comes from (`tables.studies.error_sources`): each network's total error
    against steps (a colour per network) and the oracle's at the same sampler and steps
    (discretisation, black dashed); the gap is the score error. A row per dataset, a column
    per sampler configuration (six to a row). Bounded for large sweeps: at most MAX_SERIES - 1
    networks (the legend, with the oracle, at most MAX_SERIES entries), those with the best mean
    error at their configurations' largest steps, and at most MAX_PANELS configurations per
    dataset, those where these networks' mean error at the configuration's largest steps is
    best (`better`: the metric's direction, lower or higher); the title and the log say how many
    were left out."""
    theme()
    if sources.empty:
        _placeholder(out, "no trained network with a matching oracle run")
        return
    metric = sources.attrs.get("metric", "metric")
    settings = [c for c in sources.attrs.get("settings", ["dataset", "sampler", "steps"]) if c in sources.columns]
    within = [c for c in settings if c not in ("dataset", "sampler", "steps")]
    configuration = sources["sampler"].astype(str)
    if within:
        def knob_text(row) -> str:      # " (steps_per_level=10)"; nothing where the knobs do not apply
            parts = [f"{c.removeprefix('knob_')}={_short(row[c])}" for c in within if not pd.isna(row[c])]
            return f" ({', '.join(parts)})" if parts else ""
        configuration = configuration + sources[within].apply(knob_text, axis=1)
    data = sources.assign(configuration=configuration)
    n_models, n_configurations = data["model"].nunique(), len(data[["dataset", "configuration"]].drop_duplicates())

    def at_largest_steps(frame):
        return frame[frame["steps"] == frame.groupby(["dataset", "configuration"])["steps"].transform("max")]
    models = pick(at_largest_steps(data).groupby("model", observed=True)["total"].mean(), MAX_SERIES - 1, better)
    data = data[data["model"].isin(models)]
    last = at_largest_steps(data)
    datasets = sorted(data["dataset"].unique())
    columns = {dataset: pick(last[last["dataset"] == dataset].groupby("configuration", observed=True)["total"].mean(),
                             MAX_PANELS, better) for dataset in datasets}
    note = _left_out({"networks": (len(models), n_models),
                      "configurations": (sum(map(len, columns.values())), n_configurations)},
                     f"the best by mean {metric} at their largest steps")
    wrap = min(6, max(map(len, columns.values())))    # a dataset's panels, six to a row
    rows = {dataset: math.ceil(len(columns[dataset]) / wrap) for dataset in datasets}
    first_row = dict(zip(datasets, itertools.accumulate([0, *rows.values()])))
    fig, axes = plt.subplots(sum(rows.values()), wrap, squeeze=False,
                             figsize=(3.2 * wrap, 2.8 * sum(rows.values())))
    colours = dict(zip(models, sns.color_palette("colorblind" if len(models) <= 10 else "husl", len(models))))
    for dataset in datasets:
        top = first_row[dataset]
        for ax in axes[top:top + rows[dataset]].flat[len(columns[dataset]):]:
            ax.set_axis_off()
        for j, config in enumerate(columns[dataset]):
            ax = axes[top + j // wrap, j % wrap]
            panel = data[(data["dataset"] == dataset) & (data["configuration"] == config)].sort_values("steps")
            for model, lines in panel.groupby("model"):
                ax.plot(lines["steps"], lines["total"], marker="o", color=colours[model], label=f"{model} (total)")
            oracle = panel.drop_duplicates("steps")
            ax.plot(oracle["steps"], oracle["discretisation"], "k--", marker="x", label="oracle (discretisation)")
            _log_axes(ax, x=bool((panel["steps"] > 0).all()) and panel["steps"].nunique() > 1,
                      y=bool((panel[["total", "discretisation"]] > 0).all().all()))
            if panel["steps"].nunique() == 1:      # one K: its tick alone, not a fractional axis around it
                ax.set_xticks(panel["steps"].unique())
            ax.set_title(f"{dataset} / {config}", fontsize=8)
            ax.set(xlabel=_label("steps"), ylabel=metric if j % wrap == 0 else "")
    handles = {label: handle for ax in axes.flat for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.0, 0.95))
    if note:
        fig.suptitle(note, fontsize=9)
    fig.tight_layout()
    save(fig, out)


# --- helpers ----------------------------------------------------------------------------------

def pick(scores: pd.Series, limit: int, better: str = "lower") -> list:
    """The `limit` index values of `scores` (a score per preset, model, ...) with the best score
    (`better`: lower or higher; no score counts as worst, ties go by name), in name order."""
    ranked = scores.sort_index().sort_values(ascending=better != "higher", na_position="last", kind="stable")
    return sorted(ranked.index[:limit])


def _scores(frame: pd.DataFrame, column: str | None) -> pd.Series:
    """`column` of `frame` as finite floats (NaN elsewhere, and everywhere where there is no such column)."""
    if column not in frame.columns:
        return pd.Series(np.nan, index=frame.index)
    values = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return values.where(np.isfinite(values))


def _left_out(counts: dict, rule: str) -> str:
    """'12 of 40 presets, 12 of 30 models: `rule`' for the {what: (shown, total)} that lost some
    (logged), or '' where nothing was left out."""
    parts = [f"{shown} of {total} {what}" for what, (shown, total) in counts.items() if shown < total]
    if not parts:
        return ""
    note = f"{', '.join(parts)}: {rule}"
    log.info("figure shows %s", note)
    return note


def _finished(table: pd.DataFrame, metric: str) -> pd.DataFrame:
    if metric not in table.columns:
        return table.iloc[:0]
    ok = table[pd.to_numeric(table[metric], errors="coerce").notna()]
    if "status" in ok.columns:
        ok = ok[ok["status"] == "ok"]
    ok = ok[np.isfinite(ok[metric].astype(float))]
    return ok.assign(**{metric: ok[metric].astype(float)})


def _log_axes(ax, x: bool = False, y: bool = False) -> None:
    """Log scales with plain tick labels (10, 20, 50 rather than 2 x 10^1); values within a factor
    of 2 (e.g. a ratio near 1) keep a linear scale, where a log one would show a single tick."""
    from matplotlib import ticker

    for use, axis, set_scale in ((x, ax.xaxis, ax.set_xscale), (y, ax.yaxis, ax.set_yscale)):
        if not use:
            continue
        set_scale("log")
        low, high = axis.get_view_interval()
        decades = np.log10(max(high, 1e-300) / max(low, 1e-300))
        if decades < np.log10(2.0):
            set_scale("linear")
            continue
        subs = (tuple(range(1, 10)) if decades <= 0.7 else (1.0, 2.0, 3.0, 5.0) if decades <= 1.2
                else (1.0, 2.0, 5.0) if decades <= 2.5 else (1.0,))
        axis.set_major_locator(ticker.LogLocator(base=10, subs=subs))
        axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        axis.set_minor_formatter(ticker.NullFormatter())


def _symlog_y(ax, values: pd.Series) -> None:
    """A symmetric-log y axis for values of either sign spanning several decades (e.g. a
    log-likelihood with a few runs far off): linear within the smallest magnitude."""
    magnitude = values.abs()
    nonzero = magnitude[magnitude > 0]
    if nonzero.empty or nonzero.max() / nonzero.min() < 100:
        return
    threshold = max(nonzero.min(), 1e-3 * nonzero.max())     # noise around zero stays in the linear part
    ax.set_yscale("symlog", linthresh=10 ** np.floor(np.log10(threshold)))


def _label(column: str) -> str:
    return {"nfe": "network evaluations (NFE)", "steps": "steps K"}.get(column, column)


def _short(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _placeholder(out, message: str) -> None:
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.text(0.5, 0.5, message, ha="center", va="center")
    ax.set_axis_off()
    save(fig, out)


def save(fig, out) -> None:
    """Write `fig` to one path or several (the format follows each suffix), atomically."""
    from diffsweep.io import atomic_path

    paths = [Path(p) for p in ([out] if isinstance(out, (str, Path)) else out)]
    unknown = [str(p) for p in paths if p.suffix.lstrip(".") not in PLOT_FORMATS]
    if unknown:
        raise ValueError(f"figure {', '.join(unknown)}: the suffix is not one of {', '.join(PLOT_FORMATS)}")
    for path in paths:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, dpi=150 if path.suffix == ".png" else None, bbox_inches="tight",
                        format=path.suffix.lstrip("."))
    plt.close(fig)


def restoration_vs_nfe(table: pd.DataFrame, metric: str, out) -> None:
    """Restoration: a metric against NFE, a line per restorer preset, a row per score source and a
    column per task; bands over measurements and seeds."""
    metric_vs_x(table, metric, out, x="nfe", hue="restorer", row="model", col="task",
                replicates=("seed", "measurement"))
