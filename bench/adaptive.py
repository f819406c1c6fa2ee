"""Benchmark: adaptive sweeps (successive halving, diffsweep.grid.search) against the exhaustive grid,
on the exact oracle of ring8 (docs/search.md, docs/scale.md).

    python bench/adaptive.py [--searches 60] [--design grid|sobol] [--rungs 16,64,256,1024] [--keep 0.25]
                             [--cap 16] [--seeds 3] [--truth-seeds 10] [--threads 1]

The candidates: the paper's random walk (`random_walk`, step rule `reference`, sigmoid schedule,
N(0, I) start) over eps x T0 x steps: `grid` is 25 log-spaced eps in [0.05, 1.5] x 8 log-spaced T0
in [0.01, 1] x steps {5, 8, 10, 15, 20} (1,000 presets); `sobol` is the search's own quasi-random
design (grid.search.design: 200 points of eps in [0.05, 1.5], T0 in [0.01, 1]) at each of the 5
steps (1,000 presets). Everything runs in this process, not through Snakemake:

1. the truth, once: every preset at the final budget over `--truth-seeds` seeds (1000, 1001, ...);
   stats.compare_column (paired t over the seeds, Holm) gives the true leader and the set tied with it;
2. `--searches` adaptive searches, search j on its own seeds (10 j, 10 j + 1, ...): rung r draws its
   candidates at rungs[r] samples per run and cuts with grid.search.cut (the workflow's cut);
3. printed side by side: the recall (the search's winner is the true leader or tied with it at the
   final budget) with its 95% Clopper-Pearson interval over the searches, and the network
   evaluations of samples (NFE x samples, summed over runs) of each search against the exhaustive
   grid's at the final budget on the same number of seeds.

The walk of one steps value is drawn for all its presets at once: one oracle call per step over
every preset's samples, each preset with its own step sizes and temperatures from the library's
`random_walk.step_sizes`. Presets share the noise of a seed, as the workflow's runs do (per-sample
streams depend on the seed and the sample only); the batched walk is checked against the library's
`random_walk.walk` for one preset before anything is timed. Prints figures and the load average;
asserts nothing else.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--searches", type=int, default=60)
PARSER.add_argument("--design", choices=["grid", "sobol"], default="grid")
PARSER.add_argument("--rungs", default="16,64,256,1024", help="samples per run of each rung; the last is the final budget")
PARSER.add_argument("--keep", type=float, default=0.25)
PARSER.add_argument("--cap", type=int, default=16)
PARSER.add_argument("--seeds", type=int, default=3, help="seeds of each search (paired in the cut)")
PARSER.add_argument("--truth-seeds", type=int, default=10)
PARSER.add_argument("--threads", type=int, default=1)
ARGS = PARSER.parse_args()
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(ARGS.threads)

import numpy as np  # noqa: E402
import torch  # noqa: E402

from diffsweep import metrics, stats  # noqa: E402
from diffsweep.data import make_dataset  # noqa: E402
from diffsweep.grid import search as ds_search  # noqa: E402
from diffsweep.models import OracleDenoiser  # noqa: E402
from diffsweep.noise import make_schedule  # noqa: E402
from diffsweep.samplers import random_walk  # noqa: E402

print = functools.partial(print, flush=True)
STEPS = (5, 8, 10, 15, 20)
PROJECTIONS = 64
REFERENCE = 4096


def presets(design: str) -> list[dict]:
    if design == "grid":
        knobs = [{"eps": float(eps), "T0": float(t0)} for eps in np.geomspace(0.05, 1.5, 25)
                 for t0 in np.geomspace(0.01, 1.0, 8)]
    else:
        spec = ds_search.Search("bench", ("rw",), (), "sliced_w2", "lower", "n_samples", (1,), 0.25, 1, (0, 1), 0.95,
                                "t", {"eps": [0.05, 1.5], "T0": [0.01, 1.0]}, 200, 0)
        knobs = ds_search.design(spec)
    return [{"steps": steps, **point} for steps in STEPS for point in knobs]


class Oracle:
    """The batched random walk on ring8's exact denoiser, and sliced W2 to a fixed exact sample set."""

    def __init__(self, candidates: list[dict]):
        dataset = make_dataset("gmm", preset="ring8")
        self.denoiser = OracleDenoiser(dataset.mixture)
        self.candidates = candidates
        self.directions = metrics.random_directions(PROJECTIONS, 2, torch.Generator().manual_seed(0))
        reference = dataset.sample(REFERENCE, torch.Generator().manual_seed(123)).double()
        self.reference = metrics.projected_sorted(reference, self.directions)
        self.by_steps = {steps: [i for i, c in enumerate(candidates) if c["steps"] == steps] for steps in STEPS}

    def levels(self, indices: list[int]):
        steps = self.candidates[indices[0]]["steps"]
        sigmas = make_schedule("sigmoid", steps).tolist()
        sizes = [random_walk.step_sizes("reference", sigmas, self.candidates[i]["eps"], self.candidates[i]["T0"],
                                        "smallest", "beta_tilde") for i in indices]
        taus = torch.tensor([s[0] for s in sizes], dtype=torch.float64).T        # (levels, presets)
        temperatures = torch.tensor([s[1] for s in sizes], dtype=torch.float64).T
        return sigmas, taus, temperatures

    def draw(self, indices: list[int], n: int, seed: int) -> torch.Tensor:
        """The samples (presets, n, 2) of the presets `indices` (one steps value), seed `seed`."""
        sigmas, taus, temperatures = self.levels(indices)
        generator = torch.Generator().manual_seed(seed)
        x = torch.randn(n, 2, generator=generator, dtype=torch.float64).expand(len(indices), n, 2).clone()
        for k, sigma in enumerate(sigmas):
            denoised = self.denoiser(x.reshape(-1, 2), sigma).reshape(x.shape)
            tau = taus[k][:, None, None]
            x = x + tau * (denoised - x) / sigma ** 2
            if k != len(sigmas) - 1:
                x = x + torch.sqrt(2.0 * tau * temperatures[k][:, None, None]) * torch.randn(
                    n, 2, generator=generator, dtype=torch.float64)
        return x

    def scores(self, indices: list[int], n: int, seed: int) -> list[float]:
        """Sliced W2 of each preset's run to the exact reference (inf where a run is not finite:
        diverged). The reference's sorted projections are taken at the n mid-quantiles of its
        REFERENCE samples (n divides REFERENCE), so the 1-D W2 of equal sizes is one vector
        operation for every preset: mean((x_sorted - y_sorted)^2) over samples and directions."""
        drawn = self.draw(indices, n, seed)
        finite = torch.isfinite(drawn).flatten(1).all(dim=1) & (drawn.flatten(1).abs().amax(dim=1) < 1e6)
        step = REFERENCE // n
        reference = self.reference[:, step // 2::step]                         # (directions, n)
        projected = torch.sort(torch.where(finite[:, None, None], drawn, 0.0) @ self.directions.T, dim=1).values
        w2 = ((projected.transpose(1, 2) - reference) ** 2).mean(dim=(1, 2)).sqrt()
        return torch.where(finite, w2, math.inf).tolist()

    def check_against_library(self) -> float:
        """The batched walk against random_walk.walk for one preset, same noise: the largest difference."""
        index = self.by_steps[STEPS[0]][3]
        sigmas, taus, temperatures = self.levels([index])
        generator = torch.Generator().manual_seed(7)
        x = torch.randn(64, 2, generator=generator, dtype=torch.float64)
        library, _ = random_walk.walk(self.denoiser, x, sigmas, lambda x: torch.randn(x.shape, generator=generator,
                                                                                      dtype=torch.float64),
                                      taus=taus[:, 0].tolist(), temperatures=temperatures[:, 0].tolist(),
                                      steps_per_level=1, final_noise=False)
        ours = self.draw([index], 64, 7)[0]
        return float((library - ours).abs().max())


def evaluate(oracle: Oracle, indices: list[int], n: int, seeds) -> dict[int, dict]:
    """Candidate index -> {seed: sliced W2} for the finite runs."""
    values = {i: {} for i in indices}
    for steps, group in oracle.by_steps.items():
        wanted = [i for i in group if i in values]
        if not wanted:
            continue
        for seed in seeds:
            for i, value in zip(wanted, oracle.scores(wanted, n, seed)):
                if math.isfinite(value):
                    values[i][str(seed)] = value
    return values


def adaptive(oracle: Oracle, rungs: list[int], seeds: list[int]) -> tuple[int | None, int]:
    """One search: (its winner, its network evaluations of samples)."""
    alive = list(range(len(oracle.candidates)))
    cost = 0
    for rung, budget in enumerate(rungs):
        cost += sum(oracle.candidates[i]["steps"] * budget * len(seeds) for i in alive)
        values = evaluate(oracle, alive, budget, seeds)
        complete = {str(i): v for i, v in values.items() if len(v) == len(seeds)}
        final = rung == len(rungs) - 1
        survivors, table = ds_search.cut(complete, "lower", ARGS.keep if not final else 1e-12, ARGS.cap, 0.95)
        alive = [int(name) for name in survivors]
        if final:
            return (alive[0] if alive else None), cost
    return None, cost


def clopper_pearson(hits: int, n: int, level: float = 0.95) -> tuple[float, float]:
    from scipy.stats import beta

    alpha = 1 - level
    low = 0.0 if hits == 0 else float(beta.ppf(alpha / 2, hits, n - hits + 1))
    high = 1.0 if hits == n else float(beta.ppf(1 - alpha / 2, hits + 1, n - hits))
    return low, high


def main() -> None:
    torch.set_num_threads(ARGS.threads)
    rungs = [int(b) for b in ARGS.rungs.split(",")]
    candidates = presets(ARGS.design)
    oracle = Oracle(candidates)
    print(f"load average before: {os.getloadavg()}")
    print(f"batched walk vs random_walk.walk, same noise: max |difference| = {oracle.check_against_library():.3g}")
    print(f"{len(candidates)} presets ({ARGS.design}), rungs {rungs} samples per run, keep {ARGS.keep}, cap {ARGS.cap}, "
          f"{ARGS.seeds} seeds per search, {ARGS.searches} searches")

    start = time.process_time()
    truth_seeds = list(range(1000, 1000 + ARGS.truth_seeds))
    truth = evaluate(oracle, list(range(len(candidates))), rungs[-1], truth_seeds)
    complete = {str(i): v for i, v in truth.items() if len(v) == len(truth_seeds)}
    comparison = stats.compare_column(complete, better="lower", level=0.95)
    good = {int(name) for name, cell in comparison.cells.items() if cell.status in (stats.BEST, stats.TIED)}
    leader = int(comparison.leader)
    print(f"truth ({ARGS.truth_seeds} seeds at {rungs[-1]} samples, {time.process_time() - start:.0f} s CPU): "
          f"{len(complete)} finite presets, leader {candidates[leader]} "
          f"sliced W2 {comparison.cells[str(leader)].interval.text()}, {len(good)} tied with it")

    exhaustive = sum(c["steps"] for c in candidates) * rungs[-1] * ARGS.seeds
    hits, exact, costs = 0, 0, []
    start = time.process_time()
    for j in range(ARGS.searches):
        winner, cost = adaptive(oracle, rungs, [10 * j + k for k in range(ARGS.seeds)])
        hits += winner in good
        exact += winner == leader
        costs.append(cost / exhaustive)
    low, high = clopper_pearson(hits, ARGS.searches)
    print(f"searches: {time.process_time() - start:.0f} s CPU")
    print(f"{'':24} {'exhaustive':>12} {'adaptive':>12}")
    print(f"{'recall (best or tied)':24} {'1':>12} {hits / ARGS.searches:>12.3f}   "
          f"{hits}/{ARGS.searches}, 95% Clopper-Pearson [{low:.3f}, {high:.3f}]")
    print(f"{'true leader itself':24} {'1':>12} {exact / ARGS.searches:>12.3f}")
    print(f"{'NFE x samples':24} {exhaustive:>12.3g} {np.mean(costs) * exhaustive:>12.3g}   "
          f"ratio {np.mean(costs):.3f} (min {min(costs):.3f}, max {max(costs):.3f}) over {ARGS.searches} searches")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
