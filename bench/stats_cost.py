"""Cost of the statistics of diffsweep.stats on this CPU (docs/statistics.md): the bootstrap over
samples of sliced W2, MMD and energy distance per run (the slow path, `sampling_replicates` with the
metric of metrics.py, side by side with the fast paths), what the bootstrap and the floors add to
a run of the default grid (`--per-run`: runs.generation's finish with metrics.bootstrap_resamples on
and off, side by side, and a floor job per dataset), the intervals and tests of the table columns
of a 100k-run sweep, and the null and planted-difference figures of the oracle tests at more
repeats than the test suite runs. Prints figures and the load average; asserts nothing.

    python bench/stats_cost.py [--samples 2000] [--reference 5000] [--resamples 200] [--slow-resamples 3]
                               [--skip-oracle] [--per-run [--repeats 3] [--skip-floors]]
"""

from __future__ import annotations

import argparse
import functools
import os
import time

import numpy as np
import torch

from diffsweep import gmm, metrics, stats


def timed(call, repeats: int = 1) -> float:
    """CPU seconds per call (process time: the machine may be shared)."""
    start = time.process_time()
    for _ in range(repeats):
        call()
    return (time.process_time() - start) / repeats


print = functools.partial(print, flush=True)   # figures appear as they are measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--reference", type=int, default=5000)
    parser.add_argument("--resamples", type=int, default=stats.SAMPLE_RESAMPLES, help="resamples of the fast paths")
    parser.add_argument("--slow-resamples", type=int, default=3, help="resamples timed on the slow path")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=100_000, help="sweep size of the projection")
    parser.add_argument("--skip-oracle", action="store_true", help="leave out the null and planted figures")
    parser.add_argument("--per-run", action="store_true", help="only the cost per run of the default grid")
    parser.add_argument("--repeats", type=int, default=3, help="finish calls timed per setting (--per-run)")
    parser.add_argument("--skip-floors", action="store_true", help="--per-run without the floor jobs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if args.per_run:
        per_run(args.resamples, args.repeats, not args.skip_floors)
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        return
    ring = gmm.ring_mixture()

    def exact(n, seed):
        return ring.sample(n, torch.Generator().manual_seed(seed))[0]
    x, reference = exact(args.samples, 1), exact(args.reference, 2)
    print(f"ring8, {args.samples} samples against {args.reference} reference samples, {args.threads} torch thread(s), "
          f"CPU seconds")
    directions = metrics.random_directions(256, 2, torch.Generator().manual_seed(0))
    cache = {}
    metrics.mmd_rbf(x, reference, cache=cache), metrics.energy_distance(x, reference, cache=cache)   # reference terms
    paths = {   # name: (slow metric, fast bootstrap)
        "sliced_w2": (lambda a, b: metrics.sliced_wasserstein2(a, b, generator=torch.Generator().manual_seed(0)),
                      lambda: stats.sliced_w2_replicates(x, reference, directions, args.resamples)),
        "mmd": (lambda a, b: metrics.mmd_rbf(a, b, cache=cache),
                lambda: stats.mmd_replicates(x, reference, (0.25, 0.5, 1.0, 2.0, 4.0), args.resamples, cache=cache)),
        "energy_distance": (lambda a, b: metrics.energy_distance(a, b, cache=cache),
                            lambda: stats.energy_distance_replicates(x, reference, args.resamples, cache=cache)),
    }
    for name, (metric, fast) in paths.items():
        slow = timed(lambda: stats.sampling_replicates(x, metric, reference, args.slow_resamples)) / args.slow_resamples
        quick = timed(fast) / args.resamples
        total = quick * args.resamples
        print(f"{name:16s} per resample: slow {slow * 1e3:8.1f} ms, fast {quick * 1e3:7.2f} ms ({slow / quick:5.0f}x); "
              f"{args.resamples} resamples: {total:6.2f} s a run, {total * args.runs / 3600:6.0f} CPU-hours at "
              f"{args.runs} runs")

    # Table columns of a 100k-run sweep. bench/dag_scale.py's grid: one seed, eps x T0 = 400 x 250,
    # so a table of eps against T0 has 250 columns of 400 one-seed cells, compared on their bootstrap
    # replicates; and the same runs over 5 seeds: 2500 columns of 8 cells x 5 seeds.
    rng = np.random.default_rng(0)
    one_seed = []
    for _ in range(250):
        estimates = rng.normal(1.0, 0.1, 400)
        sampling = {f"eps{i}": stats.Sampling(float(v), rng.normal(v, 0.01, args.resamples))
                    for i, v in enumerate(estimates)}
        one_seed.append(({name: {0: run.estimate} for name, run in sampling.items()}, sampling))
    per_metric = timed(lambda: [stats.compare_column(cells, sampling=sampling) for cells, sampling in one_seed])
    print(f"compare_column, 250 columns x 400 one-seed cells ({args.resamples} replicates each): {per_metric:.2f} s "
          f"per metric")
    seeded = [{f"cell{i}": dict(enumerate(rng.normal(1.0, 0.1, 5))) for i in range(8)} for _ in range(2500)]
    per_metric = timed(lambda: [stats.compare_column(cells) for cells in seeded])
    print(f"compare_column, 2500 columns x 8 cells x 5 seeds (t intervals, paired t, Holm): {per_metric:.2f} s "
          "per metric")
    per_interval = timed(lambda: stats.seed_interval(seeded[0]["cell0"].values(), method="bca"), 20)
    print(f"seed_interval bca (10000 resamples) {per_interval * 1e3:.2f} ms")

    if not args.skip_oracle:
        oracle_figures(exact)
    print(f"load average after: {os.getloadavg()[0]:.1f}")


def oracle_figures(exact) -> None:
    """Null and planted figures at more repeats than tests/test_stats.py runs."""
    def column_of(shift, seeds, n, projections, ref, salt):
        cells = {"exact": {}, "other": {}}
        for seed in seeds:
            metric = lambda a, b: metrics.sliced_wasserstein2(a, b, n_projections=projections,
                                                              generator=torch.Generator().manual_seed(seed))
            cells["exact"][seed] = metric(exact(n, seed), ref)
            cells["other"][seed] = metric(exact(n, seed + salt) + torch.tensor([0.0, shift], dtype=torch.float64), ref)
        return cells
    ref128, ref512 = exact(128, 10_000), exact(512, 10_000)
    repeats = 200
    winners = sum(any(c.status == stats.BEST for c in stats.compare_column(
        column_of(0.0, range(3 * r, 3 * r + 3), 128, 16, ref128, 500_000)).cells.values()) for r in range(repeats))
    print(f"null (two identical configurations, 3 seeds, 128 samples): a winner in {winners}/{repeats} repeats "
          f"({100 * (1 - winners / repeats):.1f}% without)")
    for shift, n_seeds in ((0.5, 3), (0.5, 5), (1.0, 3), (1.0, 5)):
        detected = sum(stats.compare_column(column_of(shift, range(n_seeds * r, n_seeds * r + n_seeds), 512, 32,
                                                      ref512, 0)).cells["exact"].status == stats.BEST
                       for r in range(20))
        print(f"planted shift {shift} on ring8 (radius 4), 512 samples, {n_seeds} paired seeds: best in {detected}/20")


def per_run(resamples: int, repeats: int, with_floors: bool = True) -> None:
    """What metrics.bootstrap_resamples adds to a generation run's finish on the default grid's
    datasets and sample counts (config/config.yaml: ring8 and grid25 at 2000 samples, digits_gmm at
    1000, 5000 reference samples), bootstrap on and off timed alternately in this process (CPU
    seconds, median of `repeats`), and one floor job (floors.exact_floor of every distance) per dataset."""
    import statistics
    import tempfile
    from pathlib import Path

    from diffsweep import config, floors
    from diffsweep import grid as ds_grid
    from diffsweep.runs.generation import Generation
    from diffsweep.runs.source import build_dataset

    cfg = config.prepare(config.read_yaml(Path(__file__).parents[1] / "config" / "config.yaml"))
    grid = ds_grid.build(cfg)
    options = {key: value for key, value in cfg["metrics"].items() if key != "likelihood"}
    counts = {}
    for run in grid.of_kind("generation").values():
        counts[(run.model.data.name, run.n_samples)] = counts.get((run.model.data.name, run.n_samples), 0) + 1
    needed = {(spec["data"]["name"], spec["n_samples"]): (key, spec) for key, spec in floors.needed(grid, cfg["metrics"]).items()}
    added_total, floor_total = 0.0, 0.0
    for (name, n), runs in sorted(counts.items()):
        spec = next(s for s in grid.datasets.values() if s.name == name)
        with tempfile.TemporaryDirectory() as folder:
            dataset = build_dataset(ds_grid.data_dict(spec), folder)
            reference = dataset.sample(cfg["data"]["n_reference"], torch.Generator().manual_seed(1))
            samples = dataset.sample(n, torch.Generator().manual_seed(2)).double()
            jobs = {label: Generation(dataset, reference, torch.float64, torch.device("cpu"),
                                      {"metrics": {**options, "bootstrap_resamples": r}, "keep_samples": "none"})
                    for label, r in (("off", 0), ("on", resamples))}
            times = {"off": [], "on": []}
            run = {"id": "bench", "seed": 0}
            for _ in range(repeats):
                for label, job in jobs.items():
                    times[label].append(timed(lambda: job.finish(run, samples, Path(folder))))
            off, on = statistics.median(times["off"]), statistics.median(times["on"])
            added_total += (on - off) * runs
            print(f"{name} ({n} samples, {runs} runs of the default grid): finish {off:.2f} s without the bootstrap, "
                  f"{on:.2f} s with {resamples} resamples (+{on - off:.2f} s a run, {on / off:.1f}x; "
                  f"min/max on {min(times['on']):.2f}/{max(times['on']):.2f} s, n = {repeats})")
            if with_floors and (name, n) in needed:
                key, floor_spec = needed[(name, n)]
                cache = {}
                seconds = timed(lambda: [floors.exact_floor(dataset, reference, n, metric, key, floor_spec["n_projections"],
                                                            floor_spec["mmd_bandwidths"], floor_spec["repeats"], cache)
                                         for metric in floors.METRICS])
                floor_total += seconds
                print(f"  its floor job ({floor_spec['repeats']} exact sets, 3 distances): {seconds:.1f} s, once")
    print(f"default grid: the bootstrap adds {added_total:.0f} CPU-s over its generation runs, the floors "
          f"{floor_total:.0f} CPU-s")


if __name__ == "__main__":
    main()
