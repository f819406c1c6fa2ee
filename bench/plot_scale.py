"""Benchmark: drawing the metric-vs-NFE and heatmap figures of a synthetic table of many runs.

    python bench/plot_scale.py [--runs 100000] [--out DIR]

The table has the default grid's shape, scaled up: three datasets, score sources on some of them
only (MLPs on ring8, UNets on the digits, the oracle on all), six presets per dataset family, four
step counts, two swept knobs and four seeds. Prints the seconds of each figure (PNG written to
`--out`, a temporary folder by default) and the number of panels and legend entries it has.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

SOURCES = {"ring8": ["oracle", "mlp_ddpm", "mlp_ve", "mlp_edm"], "grid25": ["oracle"],
           "digits_gmm": ["oracle", "unet_edm", "unet_ddpm"]}
PRESETS = {"ring8": ["rw", "ddim", "ddpm", "dpmpp_2m", "edm", "pc"], "grid25": ["rw", "ddim", "ddpm", "dpmpp_2m", "edm", "pc"],
           "digits_gmm": ["digits_rw", "digits_ddim", "digits_heun", "digits_dpmpp_2m", "digits_edm_churn",
                          "digits_pc"]}
STEPS = (10, 20, 50, 100)
SEEDS = 4


def synthetic_table(n_runs: int):
    """About `n_runs` rows of a generation table: every score source x preset x steps x seed, the
    `rw` presets sweeping eps x T0 on enough values to reach `n_runs` (the others one configuration)."""
    import numpy as np

    from diffsweep import tables

    pairs = [(d, m, p) for d, models in SOURCES.items() for m in models for p in PRESETS[d]]
    swept = [pair for pair in pairs if pair[2].endswith("rw")]
    per_config = len(STEPS) * SEEDS
    side = max(1, math.isqrt(max(1, (n_runs // per_config - (len(pairs) - len(swept))) // len(swept))))
    values = np.geomspace(0.05, 2.0, side).round(4).tolist()
    rng = np.random.default_rng(0)
    rows = []
    for dataset, model, preset in pairs:
        configs = [(eps, t0) for eps in values for t0 in values] if preset.endswith("rw") else [(None, None)]
        for eps, t0 in configs:
            for steps in STEPS:
                for seed in range(SEEDS):
                    rows.append({"run_id": f"{len(rows):016x}", "dataset": dataset, "model": model, "sampler": preset,
                                 "schedule": "karras", "steps": steps, "knob_eps": eps, "knob_T0": t0, "seed": seed,
                                 "status": "ok", "nfe": steps,
                                 "sliced_w2": float(1 / steps + (eps or 0) * 0.1 + rng.gamma(2.0, 0.01))})
    return tables.with_params(tables.typed_frame(rows), ["dataset", "model", "sampler", "schedule", "steps",
                                                         "knob_eps", "knob_T0", "seed"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    from diffsweep import plots

    started = time.perf_counter()
    table = synthetic_table(args.runs)
    print(f"# synthetic table: {len(table):,} runs, {time.perf_counter() - started:.1f} s to build")
    out = Path(args.out or tempfile.mkdtemp(prefix="plot_scale_"))
    out.mkdir(parents=True, exist_ok=True)
    kept = []
    plots_save = plots.save

    def save(fig, path):          # count the panels and legend entries before the figure is closed
        axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
        entries = sum(len(legend.get_texts()) for legend in [*fig.legends, *(ax.get_legend() for ax in axes)]
                      if legend is not None)
        kept.append((len(axes), entries))
        plots_save(fig, path)

    plots.save = save
    figures = {"metric_vs_nfe": lambda path: plots.metric_vs_nfe(table, "sliced_w2", path),
               "heatmap": lambda path: plots.heatmap(table, "sliced_w2", path, rows="model", columns="sampler")}
    for name, draw in figures.items():
        started = time.perf_counter()
        draw(out / f"{name}.png")
        panels, entries = kept[-1]
        print(f"{name:<15} {time.perf_counter() - started:6.1f} s  {panels} panels, {entries} legend entries  "
              f"{out / f'{name}.png'}")


if __name__ == "__main__":
    main()
