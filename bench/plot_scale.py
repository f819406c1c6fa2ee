"""Benchmark: drawing the figures of a synthetic sweep of many runs.

    python bench/plot_scale.py [--runs 100000] [--out DIR]

Two synthetic tables of about `--runs` runs each:

- the default grid's shape, scaled up (metric vs NFE, heatmap): three datasets, score sources on
  some of them only (MLPs on ring8, UNets on the digits, the oracle on all), six presets per
  dataset family, four step counts, two swept knobs and four seeds;
- a wide sweep (sample grid, error sources): two 2-D datasets x 30 score sources (the oracle and
  29 networks) x 40 presets x four step counts x as many seeds as that takes, with a results
  folder whose records list every run as done. The records are written through
  `runs.ShardStore` for one run and copied, with their run id, for the others: they all list
  that run's archived samples (100k archived sample sets would be gigabytes), so reading the
  records costs what it costs in a real sweep and reading samples what it costs per run.

Prints the seconds of each figure (PNG written to `--out`, a temporary folder by default) and
the number of panels and legend entries it has.
"""

from __future__ import annotations

import argparse
import math
import shutil
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
                    rows.append({"run_id": f"bench-{len(rows):016x}", "dataset": dataset, "model": model, "sampler": preset,
                                 "schedule": "karras", "steps": steps, "knob_eps": eps, "knob_T0": t0, "seed": seed,
                                 "status": "ok", "nfe": steps,
                                 "sliced_w2": float(1 / steps + (eps or 0) * 0.1 + rng.gamma(2.0, 0.01))})
    return tables.with_params(tables.typed_frame(rows), ["dataset", "model", "sampler", "schedule", "steps",
                                                         "knob_eps", "knob_T0", "seed"])


WIDE_DATASETS = ("ring8", "grid25")
WIDE_MODELS = ["oracle", *(f"mlp_{i:02d}" for i in range(29))]
WIDE_PRESETS = [f"preset_{i:02d}" for i in range(40)]


def wide_table(n_runs: int):
    """About `n_runs` rows of a generation table with many presets and score sources (module doc)."""
    import numpy as np

    from diffsweep import tables

    seeds = max(1, n_runs // (len(WIDE_DATASETS) * len(WIDE_MODELS) * len(WIDE_PRESETS) * len(STEPS)))
    rng = np.random.default_rng(1)
    rows = [{"run_id": f"bench-{i:016x}", "dataset": dataset, "model": model,
             "model_source": "oracle" if model == "oracle" else "trained", "sampler": preset, "schedule": "karras",
             "steps": steps, "seed": seed, "status": "ok", "nfe": steps,
             "sliced_w2": float(1 / steps + 0.01 * p + 0.02 * m + rng.gamma(2.0, 0.01))}
            for i, (dataset, (m, model), (p, preset), steps, seed) in enumerate(
                (d, m, p, k, s) for d in WIDE_DATASETS for m in enumerate(WIDE_MODELS) for p in enumerate(WIDE_PRESETS)
                for k in STEPS for s in range(seeds))]
    return tables.with_params(tables.typed_frame(rows), ["dataset", "model", "model_source", "sampler", "schedule",
                                                         "steps", "seed"])


def stored_results(table, folder: Path) -> None:
    """A results folder whose records list every run of `table` as done (module doc): one run
    stored through runs.ShardStore with 1000 2-D samples, the others copies of its record line."""
    import json

    import numpy as np

    from diffsweep import runs

    runs.mark_layout(folder)
    store = runs.ShardStore(folder, "bench")
    first, *others = table["run_id"].tolist()
    staging = store.run_staging(first)
    np.savez(staging / "samples.npz", x=np.random.default_rng(2).normal(size=(1000, 2)))
    origin = {"diffsweep": "0", "torch": "2", "numpy": "2", "python": "3.11", "git_revision": "0" * 40,
              "host": "node", "slurm_job_id": None, "cuda_visible_devices": None}
    metrics = dict.fromkeys(["sliced_w2", "mmd", "energy_distance", "mode_coverage", "mean_error", "cov_error",
                             "sliced_w2_std", "mmd_std", "nll_exact", "kl_histogram", "precision", "recall"], 0.1234)
    run = {"id": first, "kind": "generation", "row": {}, "identity": {}}
    store.append(runs.make_record(run, "ok", 10, 0.5, "cpu", origin, {"metrics": metrics, "skipped": {}}), staging)
    store.close()
    path = runs.record_file(folder, "bench")
    record = json.loads(path.read_text())
    with open(path, "a") as handle:     # run_id stays the first key: index's fast path reads it
        handle.writelines(json.dumps({**record, "run_id": run_id}, separators=(",", ":")) + "\n" for run_id in others)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--out", default="")
    args = parser.parse_args()

    from diffsweep.plots import heatmaps, lines, samples, style
    from diffsweep.studies import error_sources

    started = time.perf_counter()
    table = synthetic_table(args.runs)
    print(f"# synthetic table: {len(table):,} runs, {time.perf_counter() - started:.1f} s to build")
    out = Path(args.out or tempfile.mkdtemp(prefix="plot_scale_"))
    out.mkdir(parents=True, exist_ok=True)
    kept = []
    plots_save = style.save

    def save(fig, path):          # count the panels and legend entries before the figure is closed
        axes = [ax for ax in fig.axes if ax.get_visible() and ax.axison]
        entries = sum(len(legend.get_texts()) for legend in [*fig.legends, *(ax.get_legend() for ax in axes)]
                      if legend is not None)
        kept.append((len(axes), entries))
        plots_save(fig, path)

    style.save = save
    figures = {"metric_vs_nfe": lambda path: lines.metric_vs_nfe(table, "sliced_w2", path),
               "heatmap": lambda path: heatmaps.heatmap(table, "sliced_w2", path, rows="model", columns="sampler")}
    for name, draw in figures.items():
        timed(name, draw, out, kept)

    import numpy as np

    from diffsweep import runs

    started = time.perf_counter()
    wide, results = wide_table(args.runs), Path(tempfile.mkdtemp(prefix="plot_scale_results_"))
    stored_results(wide, results)
    print(f"# wide table: {len(wide):,} runs ({len(WIDE_DATASETS)} datasets x {len(WIDE_MODELS)} score sources x "
          f"{len(WIDE_PRESETS)} presets), its records written, {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    runs.index(results)
    print(f"# reading every record once (runs.index): {time.perf_counter() - started:.1f} s")
    reference = np.random.default_rng(3).normal(size=(1000, 2))
    started = time.perf_counter()
    sources = error_sources.table(wide)
    print(f"# error_sources table: {len(sources):,} rows, {time.perf_counter() - started:.1f} s")
    figures = {"sample_grid": lambda path: samples.sample_grid(wide, "ring8", results, reference, path,
                                                               rank_by="sliced_w2"),
               "error_sources": lambda path: error_sources.figure(sources, path)}
    for name, draw in figures.items():
        timed(name, draw, out, kept)
    shutil.rmtree(results)


def timed(name: str, draw, out: Path, kept: list) -> None:
    """Draw one figure to out/<name>.png and print its seconds, panels and legend entries."""
    started = time.perf_counter()
    draw(out / f"{name}.png")
    panels, entries = kept[-1]
    print(f"{name:<15} {time.perf_counter() - started:6.1f} s  {panels} panels, {entries} legend entries  "
          f"{out / f'{name}.png'}", flush=True)


if __name__ == "__main__":
    main()
