"""The rung figure of an adaptive search (docs/search.md): the metric against the rung budget, a
line per candidate through the rungs it reached, mean and interval at each; eliminated candidates
faded, the final survivors in colour and labelled; a panel per score source."""

from __future__ import annotations

import matplotlib.pyplot as plt

from diffsweep.plots.style import MAX_SERIES, axis_label, log_axes, placeholder, save, theme


def rung_figure(decisions: list[dict], out, labels: dict[str, str] | None = None) -> None:
    """`decisions`: the rung files in order; `labels`: candidate -> its legend text (default its id)."""
    theme()
    labels = labels or {}
    models = sorted(decisions[0]["groups"])
    if not models:
        placeholder(out, "no candidate ran on the searched score sources")
        return
    fig, axes = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4.5), squeeze=False)
    final = decisions[-1]
    budgets = [decision["budget"] for decision in decisions]
    for ax, model_id in zip(axes[0], models):
        winners = final["groups"].get(model_id, {}).get("survivors", []) if final["final"] else []
        tracks: dict[str, list] = {}
        for decision in decisions:
            for name, cell in decision["groups"].get(model_id, {}).get("comparison", {}).items():
                tracks.setdefault(name, []).append((decision["budget"], cell))
        for name, points in tracks.items():
            if name not in winners:
                ax.plot([b for b, _ in points], [c["mean"] for _, c in points], color="0.55", alpha=0.3, lw=0.8,
                        marker="o", ms=2.5, zorder=1)
        for index, name in enumerate(winners[:MAX_SERIES]):
            points = tracks[name]
            means = [c["mean"] for _, c in points]
            errors = [[m - (c["low"] if c["low"] is not None else m) for m, (_, c) in zip(means, points)],
                      [(c["high"] if c["high"] is not None else m) - m for m, (_, c) in zip(means, points)]]
            ax.errorbar([b for b, _ in points], means, yerr=errors, marker="o", lw=1.8, capsize=3, color=f"C{index}",
                        label=labels.get(name, name), zorder=2)
        log_axes(ax, x=True, y=True)
        ax.set_xscale("log")
        ax.set_xticks(budgets, [f"{b:g}" for b in budgets])
        ax.minorticks_off()
        ax.set_xlabel(f"rung budget: {final['axis']} per run")
        ax.set_ylabel(axis_label(final["metric"]))
        ax.set_title(final["groups"].get(model_id, {}).get("source", model_id), fontsize=9)
        if winners:
            ax.legend(fontsize=7, title="survivors (final rung); grey: eliminated" if final["final"] else None,
                      title_fontsize=7)
    save(fig, out)
