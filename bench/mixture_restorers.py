"""Restorers against the exact posterior of a Gaussian-mixture prior under a random operator.

    python bench/mixture_restorers.py eta    [--problems 10] [--samples 1000] [--steps 100] [--dims 1 2 4]
    python bench/mixture_restorers.py survey [--problems 5]  [--samples 500]  [--steps 100] [--dims 1 2 4]

The problem family is the published one (MCGdiff; the benchopt Gaussian-mixture benchmark), built here
from the library's pieces: a 25-mode mixture in d = 8 (means on the grid {-16, -8, 0, 8, 16}^2 repeated
over coordinate pairs, identity covariances, weights from squared standard normals drawn from seed 27),
the operator `random_matrix` (d_y x 8, sorted uniform singular values, noise std uniform up to the
largest singular value: `noise: uniform_max_singular`) from the problem's seed, a ground truth drawn
from the prior with that seed, one measurement. Not the published instances (their draw order
interleaves the mixture and the operator), the same family. The exact denoiser drives every restorer;
each problem's exact posterior gives `--reference` exact samples.

`eta`: DDRM with eta 0.85 (the default) against eta 1, the same sampling seed per problem (paired),
scored by max-sliced W2 (100 projections, the benchmark's score) and sliced W2 to the exact samples;
per d_y: the mean over problems of each, the paired difference with its t interval (95%) and the paired
t test's p value, and the floor (exact sets of the same size).
`survey`: every SVD-based restorer (default knobs), plain prior samples and exact posterior samples:
max-sliced W2 and the mode-weight error per d_y, means over problems: which restorers score like the
prior (ignore the measurement), and whether they miss the posterior's component weights.
Prints the load average before and after; times are wall-clock on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from diffsweep import restoration, stats  # noqa: E402
from diffsweep import metrics as sample_metrics  # noqa: E402
from diffsweep.gmm import GaussianMixture  # noqa: E402
from diffsweep.noise import make_schedule  # noqa: E402
from diffsweep.restoration import metrics as rmetrics  # noqa: E402
from diffsweep.restoration.operators import measurement_noise_std  # noqa: E402
from diffsweep.restoration.posterior import exact_posterior  # noqa: E402
from diffsweep.restoration.registry import OPERATORS  # noqa: E402
from diffsweep.runs.source import initial_sample  # noqa: E402

SURVEY = ["ddrm", "diffpir", "pigdm", "dps", "replacement", "ilvr", "ddnm", "ddnm_plus", "red_diff", "daps",
          "twisted_smc", "rw_conditional"]


def published_mixture(dim: int = 8, seed: int = 27) -> GaussianMixture:
    means = torch.tensor([[-8.0 * i, -8.0 * j] * (dim // 2) for i in range(-2, 3) for j in range(-2, 3)],
                         dtype=torch.float64)
    weights = torch.randn(len(means), generator=torch.Generator().manual_seed(seed), dtype=torch.float64) ** 2
    return GaussianMixture(weights / weights.sum(), means, torch.eye(dim, dtype=torch.float64).expand(len(means), dim, dim))


def problem(prior: GaussianMixture, d_y: int, seed: int):
    """(operator, y, noise std, exact posterior) of problem `seed`."""
    family = OPERATORS.get("random_matrix")
    operator = family.build((prior.dim,), seed, family.resolve_knobs(
        {"measurements": d_y, "noise": "uniform_max_singular"}))
    generator = torch.Generator().manual_seed(seed)
    truth, _ = prior.sample(1, generator)
    s = measurement_noise_std(operator, 1.0)
    y = operator.forward(truth) + s * torch.randn(1, d_y, generator=generator, dtype=torch.float64)
    return operator, y, s, exact_posterior(prior, operator.matrix(), y[0], s)


def restore(prior, name: str, knobs: dict, operator, y, s, n: int, steps: int, seed: int):
    spec = restoration.get(name)
    sigmas = make_schedule(spec.default_schedule, steps).tolist()
    generator = torch.Generator().manual_seed(seed)
    x = initial_sample(spec.init, sigmas[0], (n, prior.dim), generator, torch.float64, torch.device("cpu"))
    samples, _ = spec.fn(prior.denoise, x, sigmas, generator, operator, y.expand(n, -1), s,
                         **spec.resolve_knobs(knobs))
    return samples.detach()


def scores(samples, exact, seed: int) -> tuple[float, float]:
    directions = sample_metrics.random_directions(rmetrics.MAX_SLICED_PROJECTIONS, exact.shape[1],
                                                  torch.Generator().manual_seed(seed))
    finite = samples[torch.isfinite(samples).all(1)]
    if len(finite) < len(samples):
        return float("nan"), float("nan")
    return (rmetrics.max_sliced_wasserstein(finite, exact, directions),
            sample_metrics.sliced_wasserstein2(finite, exact, generator=torch.Generator().manual_seed(seed)))


def eta_study(args, prior) -> None:
    for d_y in args.dims:
        rows = []
        for p in range(args.problems):
            operator, y, s, posterior = problem(prior, d_y, p)
            exact = posterior.sample(args.reference, torch.Generator().manual_seed(10_000 + p))
            floor = scores(posterior.sample(args.samples, torch.Generator().manual_seed(20_000 + p)), exact, p)
            values = [scores(restore(prior, "ddrm", {"eta": eta}, operator, y, s, args.samples, args.steps, p),
                             exact, p) for eta in (0.85, 1.0)]
            rows.append([*values[0], *values[1], *floor])
        rows = np.array(rows)
        for k, metric in enumerate(("max-sliced W2", "sliced W2")):
            default, one, floor = rows[:, k], rows[:, 2 + k], rows[:, 4 + k]
            difference = stats.seed_interval(default - one)
            p_value = stats.paired_test(default, one)
            print(f"d_y={d_y} {metric:13s} n={len(rows)} problems: eta 0.85 {default.mean():.3f}, eta 1 {one.mean():.3f}, "
                  f"floor {floor.mean():.3f}; 0.85 - 1 = {difference.text('.3f')} (95% t interval), "
                  f"paired t p = {p_value:.2g}; eta 1 better on {int((one < default).sum())}/{len(rows)}")


def survey(args, prior) -> None:
    """Per restorer and d_y, the mean over problems of max-sliced W2 and of the mode-weight error (total
    variation between the posterior's component weights and the samples' mean responsibilities)."""
    names = ["prior", "exact", *SURVEY]
    results = {name: [] for name in names}
    for d_y in args.dims:
        per = {name: [] for name in names}
        for p in range(args.problems):
            operator, y, s, posterior = problem(prior, d_y, p)
            exact = posterior.sample(args.reference, torch.Generator().manual_seed(10_000 + p))
            draws = {"prior": prior.sample(args.samples, torch.Generator().manual_seed(p))[0],
                     "exact": posterior.sample(args.samples, torch.Generator().manual_seed(20_000 + p))}
            draws.update({name: restore(prior, name, {}, operator, y, s, args.samples, args.steps, p)
                          for name in SURVEY})
            for name, samples in draws.items():
                finite = torch.isfinite(samples).all()
                weights = rmetrics.mode_weight_gap(posterior.responsibilities(samples), posterior.weights) \
                    if finite else float("nan")
                per[name].append((scores(samples, exact, p)[0], weights))
        for name in names:
            results[name].append(np.nanmean(np.array(per[name]), axis=0))
    print(f"{'restorer':15s} " + " ".join(f"d_y={d}: max-sliced W2, mode-weight error" for d in args.dims))
    for name, values in results.items():
        print(f"{name:15s} " + " ".join(f"{v[0]:12.2f} {v[1]:10.3f}          " for v in values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", choices=("eta", "survey"))
    parser.add_argument("--problems", type=int, default=None)
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--reference", type=int, default=10_000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--dims", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    args.problems = args.problems or (10 if args.study == "eta" else 5)
    args.samples = args.samples or (1000 if args.study == "eta" else 500)
    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()}; {args}")
    started = time.perf_counter()
    (eta_study if args.study == "eta" else survey)(args, published_mixture())
    print(f"{time.perf_counter() - started:.0f} s; load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
