"""Heatmaps: a metric over two parameters (e.g. training sigma-distribution x sampling schedule,
the paper's decoupling of training and sampling), a panel per dataset, configurations of a cell
reduced to their best (or mean, median)."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from diffsweep.plots import style
from diffsweep.tables import HEATMAP_REDUCE, param_columns


def heatmap_data(table: pd.DataFrame, metric: str, rows: str = "model_train_sigma_name", columns: str = "schedule",
                 facet: str | None = "dataset", reduce: str = "best", better: str = "lower",
                 seed: str = "seed") -> dict:
    """{facet value: DataFrame rows x columns} of `metric`: seeds averaged per configuration
    (every parameter column but the seed), then the configurations of a cell reduced by
    `reduce`: best (min or max by `better`), mean or median. The table lists its parameter
    columns (`tables.param_columns`)."""
    parameter_columns = param_columns(table)
    ok = style.finished(table, metric)
    if ok.empty:
        return {}
    if reduce == "best":
        how = "max" if better == "higher" else "min"
    elif reduce in HEATMAP_REDUCE:
        how = reduce
    else:
        raise ValueError(f"reduce: '{reduce}' is not allowed; allowed: {', '.join(HEATMAP_REDUCE)}")
    config = list(dict.fromkeys([c for c in (rows, columns, facet) if c] +
                                [c for c in ok.columns if c in parameter_columns and c != seed]))
    per_config = ok.groupby(config, dropna=False)[metric].mean().reset_index()
    out = {}
    for value in (sorted(per_config[facet].dropna().unique()) if facet else [None]):
        part = per_config if value is None else per_config[per_config[facet] == value]
        grid = part.groupby([rows, columns], dropna=False)[metric].agg(how).unstack(columns)
        grid.index = [style.short(v) for v in grid.index]
        grid.columns = [style.short(v) for v in grid.columns]
        out[value] = grid.astype(float)
    return out


def heatmap(table: pd.DataFrame, metric: str, out, rows: str = "model_train_sigma_name", columns: str = "schedule",
            facet: str | None = "dataset", reduce: str = "best", better: str = "lower", seed: str = "seed",
            number_format: str = ".2g") -> None:
    """One annotated heatmap per `facet` value of `heatmap_data`: e.g. training
    sigma-distribution x sampling schedule, the paper's decoupling of training and sampling."""
    style.theme()
    missing = [c for c in (rows, columns) if c not in table.columns]
    data = {} if missing else heatmap_data(table, metric, rows, columns, facet, reduce, better, seed)
    if not data:
        style.placeholder(out, f"no finished runs with '{metric}'" if not missing
                          else f"no column {', '.join(missing)}")
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
    style.save(fig, out)

