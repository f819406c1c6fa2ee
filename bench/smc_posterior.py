"""Twisted and guided SMC against the exact posterior on the published Gaussian-mixture problems (issue #23 item 5).

For each problem (grid25_pairs_problem(dim, d_y, seed)) and sampling seed, every variant restores
`--samples` samples with `--particles` particles per sample over the 100 levels of vp_respaced, and
prints the max-sliced Wasserstein distance (POT, 100 projections seeded by the sampling seed, as the
benchopt benchmark scores) of those samples against 10,000 exact posterior samples, the share of
samples in the posterior's second component against its exact weight, and the time. The floor is
printed once per problem: the same distance for `--floor-sets` sets of as many exact samples
(projections seed 0), their mean and middle-95% range. Ratios (distance / floor mean) are formed
per (problem, sampling seed); the summary gives their median and the 95% t interval of their
geometric mean over pairs.

    python bench/smc_posterior.py --dims 8 --d-y 1 2 4 --problem-seeds 27 28 29 --sampling-seeds 0 1
"""

import argparse
import math
import time

import numpy as np
import ot
import torch
from scipy import stats

from diffsweep.noise import make_schedule
from diffsweep.restoration.posterior import ProblemOperator, grid25_pairs_problem
from diffsweep.restoration.smc import guided_smc, twisted_smc
from diffsweep.samplers.randomness import GeneratorNoise

VARIANTS = {   # name: (restorer, knobs besides particles); "v" stands for the prior's variance per coordinate
    "default": (twisted_smc, {"prior_variance": 1.0}),
    "v_data": (twisted_smc, {"prior_variance": "v"}),
    "v_data_ess": (twisted_smc, {"prior_variance": "v", "resample_ess": 0.5}),
    "v_data_pool": (twisted_smc, {"prior_variance": "v", "pool": "pool"}),
    "v_data_pool_ess": (twisted_smc, {"prior_variance": "v", "pool": "pool", "resample_ess": 0.5}),
    "guided": (guided_smc, {"prior_variance": "v", "resample_ess": 0.5}),
    "guided_pool": (guided_smc, {"prior_variance": "v", "pool": "pool", "resample_ess": 0.5}),
}


def max_sliced(a, b, seed):
    return float(ot.max_sliced_wasserstein_distance(a.numpy(), b.numpy(), n_projections=100, seed=seed))


def data_variance(prior):
    """The prior's variance per coordinate, averaged over coordinates."""
    centred = prior.means - prior.weights @ prior.means
    return float((prior.weights @ (centred ** 2 + prior.diagonals)).mean())


def labels(prior, x):
    return prior.responsibilities(x).argmax(1)


def run(args):
    sigmas = make_schedule("vp_respaced", args.levels).tolist()
    rows = []
    for dim in args.dims:
        for d_y in args.d_y:
            for problem_seed in args.problem_seeds:
                problem = grid25_pairs_problem(dim, d_y, problem_seed)
                posterior = problem.posterior()
                order = torch.argsort(posterior.weights, descending=True)
                second = int(order[1])
                generator = torch.Generator().manual_seed(10_000 + problem_seed)
                reference = posterior.sample(10_000, generator)
                v = data_variance(problem.prior)
                floors = np.array([max_sliced(posterior.sample(args.samples, generator), reference, 0)
                                   for _ in range(args.floor_sets)])
                floor = floors.mean()
                print(f"d={dim} d_y={d_y} problem={problem_seed} floor mean {floor:.3f} median {np.median(floors):.3f} "
                      f"95% range [{np.quantile(floors, 0.025):.3f}, {np.quantile(floors, 0.975):.3f}] "
                      f"({args.floor_sets} exact sets of {args.samples})", flush=True)
                for sampling_seed in args.sampling_seeds:
                    for name in args.variants:
                        restorer, knobs = VARIANTS[name]
                        knobs = {key: {"v": v, "pool": args.pool}.get(value, value) for key, value in knobs.items()}
                        g = torch.Generator().manual_seed(sampling_seed)
                        x = sigmas[0] * torch.randn(args.samples, dim, generator=g, dtype=torch.float64)
                        start = time.perf_counter()
                        out, nfe = restorer(problem.prior.denoise, x, sigmas, GeneratorNoise(g),
                                            ProblemOperator(problem), problem.y.expand(args.samples, -1),
                                            problem.noise_std, particles=args.particles, **knobs)
                        seconds = time.perf_counter() - start
                        score = max_sliced(out, reference, sampling_seed)
                        share = float((labels(problem.prior, out) == second).double().mean())
                        rows.append((dim, d_y, problem_seed, sampling_seed, name, score, floor))
                        print(f"d={dim} d_y={d_y} problem={problem_seed} seed={sampling_seed} {name:16s} "
                              f"msw {score:7.3f} ratio to the floor mean {score / floor:6.2f} "
                              f"2nd comp {share:.3f} (exact {float(posterior.weights[second]):.3f}) "
                              f"{seconds:6.1f} s nfe {nfe}", flush=True)
    print("\nsummary: msw / floor per (problem, sampling seed); median, 95% t interval of the geometric mean")
    keys = sorted({(r[0], r[1], r[4]) for r in rows})
    for dim, d_y, name in keys:
        ratios = np.array([r[5] / r[6] for r in rows if (r[0], r[1], r[4]) == (dim, d_y, name)])
        logs = np.log(ratios)
        if len(logs) > 1:
            half = stats.t.ppf(0.975, len(logs) - 1) * logs.std(ddof=1) / math.sqrt(len(logs))
            interval = f"[{math.exp(logs.mean() - half):.2f}, {math.exp(logs.mean() + half):.2f}]"
        else:
            interval = "(one pair)"
        print(f"d={dim} d_y={d_y} {name:16s} n={len(ratios)} median {np.median(ratios):.2f} "
              f"geometric mean {math.exp(logs.mean()):.2f} {interval}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", type=int, nargs="+", default=[8])
    parser.add_argument("--d-y", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--problem-seeds", type=int, nargs="+", default=[27])
    parser.add_argument("--sampling-seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--particles", type=int, default=128)
    parser.add_argument("--pool", type=int, default=50, help="rows per system of the pooled variants (divides --samples)")
    parser.add_argument("--floor-sets", type=int, default=40)
    parser.add_argument("--levels", type=int, default=100)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run(args)
