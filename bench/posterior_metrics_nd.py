"""Cost of scoring restorations against the exact posterior at d = 800 and 1000 (restoration/metrics.py
on a StructuredPosterior), and of the former dense path, side by side in one process.

    python bench/posterior_metrics_nd.py [--dims 800 1000] [--n 1000] [--exact 10000] [--floor-repeats 100]
                                         [--resamples 200] [--threads 1] [--dense]

Per problem (the published grid25_pairs prior under its 4 x d matrix; a random rank-4-plus-diagonal
prior, K = 25, under a random d/2 x d matrix), in float64: the exact posterior, `--exact` exact
posterior samples, the measurement's reference (`posterior_reference`: directions, the dense posterior
covariance for posterior_cov_error, the table) without and with its floors (`--floor-repeats` exact sets
of `--n`), and scoring `--n` restorations (`posterior_metrics`) without and with `--resamples` bootstrap
resamples. The restorations are exact posterior samples plus noise. With `--dense`, the mode-weight
metric as it was computed before (the posterior as a dense GaussianMixture: K d x d covariances and
their eigendecompositions, then the responsibilities of the n restorations), once, against the
structured responsibilities (the prior's) on the same rows, with their largest difference. One run of
each figure (no repeats: they take seconds); the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def problems(dim: int):
    import torch

    from diffsweep import gmm
    from diffsweep.restoration.posterior import grid25_pairs_problem

    published = grid25_pairs_problem(dim, 4)
    prior = gmm.random_mixture(dim, 25, seed=0, covariance="lowrank", rank=4)
    g = torch.Generator().manual_seed(1)
    wide = torch.randn(dim // 2, dim, generator=g, dtype=torch.float64) / dim ** 0.5
    truth = prior.sample(1, g)[0][0]
    return {"grid25_pairs, d_y = 4": (published.prior, published.matrix, published.y, published.noise_std),
            "random rank 4, d_y = d/2": (prior, wide, wide @ truth + 0.1 * torch.randn(dim // 2, generator=g,
                                                                                          dtype=torch.float64), 0.1)}


def measure(args, dim: int, label: str, prior, A, y, s) -> None:
    import torch

    from diffsweep.gmm import GaussianMixture
    from diffsweep.restoration import metrics as rmetrics
    from diffsweep.restoration.posterior import exact_posterior

    g = torch.Generator().manual_seed(2)
    figures = {}
    posterior, figures["posterior"] = timed(lambda: exact_posterior(prior, A, y, s))
    exact, figures[f"{args.exact} exact samples"] = timed(lambda: posterior.sample(args.exact, g))
    restorations = posterior.sample(args.n, g) + 0.3 * torch.randn(args.n, dim, generator=g, dtype=torch.float64)
    truth = torch.zeros(dim, dtype=torch.float64)
    state = g.get_state()
    reference, figures["reference, no floors"] = timed(lambda: rmetrics.posterior_reference(posterior, exact, args.n, g))
    g.set_state(state)
    floored, figures[f"reference, {args.floor_repeats} floor sets"] = timed(
        lambda: rmetrics.posterior_reference(posterior, exact, args.n, g, floor_repeats=args.floor_repeats))
    _, figures["score, no bootstrap"] = timed(lambda: rmetrics.posterior_metrics(restorations, reference, truth))
    values, figures[f"score, {args.resamples} resamples"] = timed(
        lambda: rmetrics.posterior_metrics(restorations, floored, truth, resamples=args.resamples))
    print(f"\nd = {dim}, {label}, n = {args.n}: "
          f"max-sliced W2 {values['max_sliced_w2_posterior']:.3g} (floor {values['max_sliced_w2_posterior_floor']:.3g}), "
          f"mode-weight error {values['posterior_mode_weight_error']:.3g}")
    for name, seconds in figures.items():
        print(f"  {name:34s} {seconds:8.2f} s")
    if args.dense:
        structured, fast = timed(lambda: posterior.responsibilities(restorations))
        keep = posterior.weights > 0

        def dense():
            mixture = GaussianMixture(posterior.weights[keep], posterior.means[keep], posterior.covariances[keep])
            return mixture.responsibilities(restorations)
        former, slow = timed(dense)
        gap = (structured[:, keep] - former).abs().max().item()
        print(f"  responsibilities of {args.n} rows: dense posterior mixture {slow:.2f} s, the prior's {fast:.3f} s "
              f"({slow / fast:.0f}x); largest difference {gap:.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", type=int, nargs="+", default=[800, 1000])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--exact", type=int, default=10_000)
    parser.add_argument("--floor-repeats", type=int, default=100)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dense", action="store_true")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {args.threads} thread(s)")
    for dim in args.dims:
        for label, problem in problems(dim).items():
            measure(args, dim, label, *problem)
    print(f"\nload average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
