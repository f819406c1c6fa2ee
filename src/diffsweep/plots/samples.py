"""Samples next to exact samples: rows of score sources, columns of sampler presets at their
largest NFE; 2-D sets as scatter plots, image sets as mosaics. Reads the shown runs' stored
samples (checked against their records)."""

from __future__ import annotations

import logging

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from diffsweep import runs
from diffsweep.plots import style
from diffsweep.tables import records

log = logging.getLogger("diffsweep")


def sample_grid(table: pd.DataFrame, dataset: str, results, reference: np.ndarray, out, max_points: int = 1000,
                rank_by: str | None = None, better: str = "lower") -> None:
    """Rows: models; columns: the exact reference and each sampler preset at its largest NFE (lowest
    seed). At most style.MAX_PANELS presets and style.MAX_PANELS models: beyond that, the presets whose shown
    runs have the best mean `rank_by` (a metric column; `better`: lower or higher) over the models,
    then the models with the best mean over those presets; by name where no shown run has a value.
    The title and the log say how many were left out. Only the shown runs' records are read.
    2-D sets are scatter plots; image sets show a mosaic of the first samples."""
    style.theme()
    images = reference.ndim == 4
    max_points = 16 if images else max_points
    rows = table[(table["dataset"] == dataset) & table["status"].isin(runs.DONE_STATUSES)]   # runs with samples
    rows = rows[rows["seed"] == rows["seed"].min()] if not rows.empty else rows
    shown = (rows.sort_values(["model", "sampler", "nfe", "run_id"], kind="stable")
             .drop_duplicates(["model", "sampler"], keep="last"))
    score = style.scores(shown, rank_by)
    presets = style.pick(score.groupby(shown["sampler"], observed=True).mean(), style.MAX_PANELS, better)
    chosen = shown["sampler"].isin(presets)
    models = style.pick(score[chosen].groupby(shown.loc[chosen, "model"], observed=True).mean(), style.MAX_PANELS,
                        better)
    shown = shown[chosen & shown["model"].isin(models)]
    note = style.left_out({"presets": (len(presets), rows["sampler"].nunique()),
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
    style.save(fig, out)


def _panel(ax, x, title) -> None:
    """A scatter of 2-D points, or a mosaic of (n, C, H, W) images in [-1, 1]."""
    if x.ndim == 4:
        from diffsweep.images import tile

        ax.imshow(tile(np.nan_to_num(x)), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    else:
        finite = np.isfinite(x).all(axis=1)
        ax.scatter(x[finite, 0], x[finite, 1], s=2, alpha=0.5, linewidths=0, rasterized=True)
    ax.set_title(title, fontsize=8)

