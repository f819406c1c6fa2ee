"""Figures from the tables: metric vs NFE per sampler, and scatter grids of samples."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # jobs have no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

STYLE = {"context": "paper", "style": "whitegrid", "font_scale": 1.1}


def metric_vs_nfe(table: pd.DataFrame, metric: str, out) -> None:
    """One panel per dataset: the metric against NFE, a line per sampler preset, a style per model."""
    sns.set_theme(**STYLE)
    ok = table[(table["status"] == "ok") & table[metric].notna()] if metric in table else table.iloc[:0]
    if ok.empty:
        fig, ax = plt.subplots(figsize=(4, 3))
        ax.text(0.5, 0.5, f"no finished runs with '{metric}'", ha="center", va="center")
        ax.set_axis_off()
        _save(fig, out)
        return
    grid = sns.relplot(data=ok, x="nfe", y=metric, hue="sampler", style="model", col="dataset", kind="line",
                       marker="o", errorbar="sd", col_wrap=min(3, ok["dataset"].nunique()),
                       height=3.2, aspect=1.2, facet_kws={"sharey": False})
    grid.set(xscale="log")
    if (ok[metric] > 0).all():
        grid.set(yscale="log")
    grid.set_axis_labels("network evaluations (NFE)", metric)
    _save(grid.figure, out)


def sample_grid(table: pd.DataFrame, dataset: str, results, reference: np.ndarray, out, max_points: int = 1000) -> None:
    """Rows: models; columns: the exact reference and each sampler preset at its largest NFE (seed 0)."""
    sns.set_theme(**STYLE)
    rows = table[(table["dataset"] == dataset) & (table["status"] != "missing")]
    rows = rows[rows["seed"] == rows["seed"].min()] if not rows.empty else rows
    best = rows.sort_values("nfe").groupby(["model", "sampler"], as_index=False).last()
    models, presets = sorted(best["model"].unique()), sorted(best["sampler"].unique())
    n_rows, n_cols = max(1, len(models)), 1 + len(presets)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(2.2 * n_cols, 2.2 * n_rows), squeeze=False,
                             sharex=True, sharey=True)
    limits = np.quantile(reference, [0.001, 0.999], axis=0)
    pad = 0.15 * (limits[1] - limits[0])
    for r in range(n_rows):
        _scatter(axes[r, 0], reference[:max_points], "exact" if r == 0 else "")
        for c, preset in enumerate(presets, start=1):
            ax = axes[r, c]
            hit = best[(best["model"] == models[r]) & (best["sampler"] == preset)] if models else best.iloc[:0]
            if hit.empty:
                ax.set_axis_off()
                continue
            run = hit.iloc[0]
            x = np.load(Path(results) / "runs" / run["run_id"] / "samples.npz")["x"][:max_points]
            _scatter(ax, x, f"{preset}\nNFE {int(run['nfe'])}" if r == 0 else "")
        axes[r, 0].set_ylabel(models[r] if models else "")
    for ax in axes.flat:
        ax.set_xlim(limits[0, 0] - pad[0], limits[1, 0] + pad[0])
        ax.set_ylim(limits[0, 1] - pad[1], limits[1, 1] + pad[1])
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(dataset)
    _save(fig, out)


def _scatter(ax, x, title) -> None:
    finite = np.isfinite(x).all(axis=1)
    ax.scatter(x[finite, 0], x[finite, 1], s=2, alpha=0.5, linewidths=0)
    ax.set_title(title, fontsize=8)


def _save(fig, out) -> None:
    from diffsweep.io import atomic_path

    out = Path(out)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format=out.suffix.lstrip("."))
    plt.close(fig)
