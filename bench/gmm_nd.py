"""Time of the exact mixture quantities at d = 1000, K = 25: structured (gmm.StructuredMixture,
restoration.posterior.StructuredPosterior) against the dense GaussianMixture, side by side.

    python bench/gmm_nd.py [--dim 1000] [--rows 1000] [--dense-dim 200] [--threads 1] [--repeats 3]

Per prior (the published grid25_pairs, isotropic; a random diagonal one; a random rank-4 plus
diagonal one), in float64: building it, exact sampling of 10,000, and per `--rows` rows the
denoiser, score and log density at one level and at 32 levels among the rows; then the exact posterior
under the published d_y x d matrix (d_y = 4) and under a random d/2 x d matrix: building it and
10,000 exact posterior samples. The dense GaussianMixture (eigendecompositions of K d x d
covariances, O(K d^2) per row) runs the same at `--dense-dim` (by default 200: at d = 1000 one
denoiser call on 1,000 rows is K d^2 n = 2.5e10 multiply-adds) so the ratio is measured in one
process. Each figure is the median of `--repeats`; the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def priors(dim: int):
    import torch

    from diffsweep import gmm

    return {"grid25_pairs": lambda: gmm.grid25_pairs_mixture(dim, gmm.grid25_pairs_weights(torch.Generator().manual_seed(27))),
            "random diagonal": lambda: gmm.random_mixture(dim, 25, seed=0, covariance="diagonal"),
            "random rank-4 + diagonal": lambda: gmm.random_mixture(dim, 25, seed=0, covariance="lowrank", rank=4)}


def measure(mixture_of, dim: int, rows: int, repeats: int, dense: bool) -> dict:
    import torch

    from diffsweep.restoration.posterior import exact_posterior, grid25_pairs_problem

    g = torch.Generator().manual_seed(1)
    build = (lambda: mixture_of().to_dense()) if dense else mixture_of
    figures = {"build": timed(build, repeats)}
    mixture = build()
    figures["sample 10k"] = timed(lambda: mixture.sample(10_000, g), repeats)
    x = mixture.sample(rows, g)[0] + torch.randn(rows, dim, generator=g, dtype=torch.float64)
    # 32 noise levels among the rows, as in a fused group of 32 runs (runs.fusion); every distinct
    # level of a call costs the structured form a setup of O(K d r^2)
    levels = (torch.randint(32, (rows,), generator=g) + 1).double() / 8
    for name in ("denoise", "score", "log_prob"):
        figures[f"{name} (1 level)"] = timed(lambda: getattr(mixture, name)(x, 1.0), repeats)
    figures["denoise (32 levels)"] = timed(lambda: mixture.denoise(x, levels), repeats)
    problem = grid25_pairs_problem(dim, 4)
    wide = torch.randn(dim // 2, dim, generator=g, dtype=torch.float64) / dim ** 0.5
    for label, (A, y, s) in {"d_y = 4": (problem.matrix, problem.y, problem.noise_std),
                             "d_y = d/2": (wide, wide @ x[0], 0.1)}.items():
        figures[f"posterior {label}: build"] = timed(lambda: exact_posterior(mixture, A, y, s), repeats)
        posterior = exact_posterior(mixture, A, y, s)
        figures[f"posterior {label}: sample 10k"] = timed(lambda: posterior.sample(10_000, g), repeats)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=1000)
    parser.add_argument("--dense-dim", type=int, default=200)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()}; torch {torch.__version__}, {args.threads} threads, "
          f"rows {args.rows}, median of {args.repeats}")
    for name in priors(2):
        structured_small = measure(priors(args.dense_dim)[name], args.dense_dim, args.rows, args.repeats, dense=False)
        dense_small = measure(priors(args.dense_dim)[name], args.dense_dim, args.rows, args.repeats, dense=True)
        structured = measure(priors(args.dim)[name], args.dim, args.rows, args.repeats, dense=False)
        print(f"\n{name}, K = 25    | structured d = {args.dim} | structured d = {args.dense_dim} | "
              f"dense d = {args.dense_dim} | dense / structured at d = {args.dense_dim}")
        for key, seconds in structured.items():
            print(f"  {key:32s} {seconds:9.4f} s {structured_small[key]:12.4f} s {dense_small[key]:12.4f} s "
                  f"{dense_small[key] / structured_small[key]:10.1f}x")
    print(f"\nload average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
