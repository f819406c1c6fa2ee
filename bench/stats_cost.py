"""Cost of the statistics of diffsweep.stats on this CPU (docs/statistics.md): a bootstrap over
samples of sliced W2, MMD and energy distance per run, the intervals and tests of a table column,
and their projection to a sweep of 100k runs. Also the null and planted-difference figures of the
oracle tests at more repeats than the test suite runs. Prints figures; asserts nothing.

    python bench/stats_cost.py [--samples 2000] [--reference 5000] [--resamples 1000] [--threads 1]
"""

from __future__ import annotations

import argparse
import functools
import time

import numpy as np
import torch

from diffsweep import gmm, metrics, stats


def timed(call, repeats: int = 1) -> float:
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats


print = functools.partial(print, flush=True)   # figures appear as they are measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--reference", type=int, default=5000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--runs", type=int, default=100_000, help="sweep size of the projection")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ring = gmm.ring_mixture()

    def exact(n, seed):
        return ring.sample(n, torch.Generator().manual_seed(seed))[0]
    x, reference = exact(args.samples, 1), exact(args.reference, 2)
    print(f"ring8, {args.samples} samples against {args.reference} reference samples, {args.threads} torch thread(s)")
    cache = {}
    per_metric = {
        "sliced_w2": lambda a, b: metrics.sliced_wasserstein2(a, b, generator=torch.Generator().manual_seed(0)),
        "mmd": lambda a, b: metrics.mmd_rbf(a, b, cache=cache),
        "energy_distance": lambda a, b: metrics.energy_distance(a, b, cache=cache),
    }
    for name, metric in per_metric.items():
        metric(x, reference)                                  # fills the reference's cache
        one = timed(lambda: metric(x, reference), 3)
        total = one * args.resamples
        print(f"{name:16s} one evaluation {one * 1e3:8.1f} ms; bootstrap x {args.resamples}: {total:7.1f} s per run, "
              f"{total * args.runs / 3600:9.0f} CPU-hours at {args.runs} runs "
              f"({total * stats.SAMPLE_RESAMPLES / args.resamples:.1f} s per run at the default {stats.SAMPLE_RESAMPLES})")
    column = {f"cell{i}": {s: float(v) for s, v in enumerate(np.random.default_rng(i).normal(1.0, 0.1, 5))}
              for i in range(8)}
    per_column = timed(lambda: stats.compare_column(column), 20)
    print(f"compare_column, 8 cells x 5 seeds (t intervals, paired t, Holm): {per_column * 1e3:.2f} ms; "
          f"{per_column * args.runs / 40:.1f} s for {args.runs} runs in columns of 8 cells x 5 seeds")
    per_interval = timed(lambda: stats.seed_interval(column["cell0"].values(), method="bca"), 20)
    print(f"seed_interval bca (10000 resamples) {per_interval * 1e3:.2f} ms")

    # Null and planted figures at more repeats than tests/test_stats.py runs.
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


if __name__ == "__main__":
    main()
