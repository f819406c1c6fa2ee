"""Benchmark: runs per second of a shard, fused versus one run at a time, against the ideal.

A shard of `--runs` runs (one sampler preset, one seed per run) on one score source, drawn the
two ways the job loop can (diffsweep.fusion.draws, config `jobs.fuse`), side by side in one
process with random network weights (the cost does not depend on them):

- unfused: one run after the other, each network call evaluates one run's samples;
- fused: all runs together, one network call per step evaluates every run's samples;
- ideal: nfe x one forward over the shard's concatenated batch (one sigma per row), plus the
  samplers' own overhead (every run drawn with a zero-cost denoiser: arithmetic, noise draws);
- hand-offs: what fusing adds besides the network (the fused draw with a zero-cost denoiser,
  less that overhead): each run's thread waking once per call.

Every figure is the minimum over `--repeats` interleaved repeats (robust to a noisy machine),
at a fixed torch thread count (`--threads`, 1 like a run_shard job). Shards: the 2-D MLP at
200 and 2000 samples per run (100 steps) and the digits UNet (`--unet-samples`, `--unet-steps`).
Target: fused within 1.2x of the ideal. On a CPU the network is compute-bound at these batch
sizes, so fused gains little over unfused there (and fused calls are packed to at most
`--cpu-rows` rows, the library's fusion.CPU_ROWS); the gain is on a GPU (`--device cuda`).

    python bench/sweep_throughput.py [--runs 32] [--repeats 3] [--threads 1] [--device cpu]
        [--unet-samples 64] [--unet-steps 20] [--shards mlp200 mlp2000 unet] [--cpu-rows 2048]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from diffsweep import samplers
from diffsweep.runs import fusion, generation
from diffsweep.models import build_denoiser

SAMPLER = "ddim"     # a fixed call count per run (steps), the common case of a sweep's shard
NETWORKS = {
    "mlp": ({"arch": "mlp", "arch_params": {}, "parametrisation": "eps"}, (2,)),
    "unet": ({"arch": "unet", "arch_params": {"channels": [16, 32]}, "parametrisation": "edm", "sigma_data": 0.5},
             (1, 8, 8)),     # the default grid's digits UNet on the 8x8 digits
}


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def shard_runs(count: int, n_samples: int, steps: int) -> list[dict]:
    """`count` runs of one preset, one seed each (what generation.draw_samples reads of a run)."""
    spec = samplers.get(SAMPLER)
    return [{"id": f"run{seed}", "family": SAMPLER, "schedule": spec.default_schedule, "schedule_knobs": {},
             "steps": steps, "seed": seed, "init": spec.init, "n_samples": n_samples, "knobs": spec.resolve_knobs({})}
            for seed in range(count)]


def timed(work, device) -> float:
    synchronize(device)
    start = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - start


def measure(denoiser, shape, runs: list[dict], device) -> dict:
    """Seconds of the shard unfused, fused, its ideal (and the parts of it), one repeat."""
    def draw(run, chosen):
        return generation.draw_samples(run, chosen, shape, torch.float32, device)

    def zero_cost(x, sigma):
        return x

    def unfused():
        for _, drawn, _ in fusion.draws(job, denoiser, runs, fuse=False):
            drawn()

    job = Job(draw, device)
    nfe = draw(runs[0], zero_cost)[1]
    rows = sum(run["n_samples"] for run in runs)
    x = torch.randn(rows, *shape, device=device)
    sigma = torch.linspace(0.5, 5.0, rows, dtype=torch.float64, device=device)   # one level per row
    one_run = x[:runs[0]["n_samples"]]
    with torch.no_grad():
        denoiser(x, sigma)      # warm-up: allocation, kernel choice
        forward = min(timed(lambda: denoiser(x, sigma), device) for _ in range(3))
        forward_one_run = min(timed(lambda: denoiser(one_run, 1.0), device) for _ in range(3))
    overhead = timed(lambda: [draw(run, zero_cost) for run in runs], device)
    # what fusing adds besides the network: the threads' hand-offs (zero-cost denoiser, fused)
    handoffs = timed(lambda: [outcome() for _, outcome in fusion.draw_fused(draw, zero_cost, runs)], device) - overhead
    times = {"unfused": timed(unfused, device),
             "fused": timed(lambda: [outcome() for _, outcome in fusion.draw_fused(draw, denoiser, runs)], device)}
    return {**times, "forward": forward, "forward_one_run": forward_one_run, "overhead": overhead, "handoffs": handoffs,
            "ideal": nfe * forward + overhead, "nfe": nfe}


class Job:
    """The draw half of a job (what fusion.draws calls)."""

    def __init__(self, draw, device):
        self.draw, self.device = draw, device


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100, help="steps of the MLP shards")
    parser.add_argument("--unet-samples", type=int, default=64)
    parser.add_argument("--unet-steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--shards", nargs="+", default=["mlp200", "mlp2000", "unet"],
                        choices=["mlp200", "mlp2000", "unet"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cpu-rows", type=int, default=fusion.CPU_ROWS,
                        help="most rows of a fused call on the CPU (fusion.CPU_ROWS)")
    args = parser.parse_args()
    fusion.CPU_ROWS = args.cpu_rows

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    shards = {"mlp200": ("mlp", 200, args.steps), "mlp2000": ("mlp", 2000, args.steps),
              "unet": ("unet", args.unet_samples, args.unet_steps)}
    print(f"# shard of {args.runs} {SAMPLER} runs, device {device}, torch threads {args.threads}, "
          f"fused calls on the CPU of at most {fusion.CPU_ROWS} rows, "
          f"min of {args.repeats} repeats, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"{'shard':<9} {'rows/step':>9} {'nfe':>4} {'unfused s':>9} {'fused s':>8} {'ideal s':>8} "
          f"{'of which overhead':>17} {'hand-offs s':>11} {'runs/s unfused':>14} {'runs/s fused':>12} {'fused gain':>10} "
          f"{'fused/ideal':>11} {'forward gain':>12} {'fuse: true draws':>16}")
    for name in args.shards:
        network, n_samples, steps = shards[name]
        recipe, shape = NETWORKS[network]
        torch.manual_seed(0)
        denoiser = build_denoiser(recipe, shape).to(device).eval()
        runs = shard_runs(args.runs, n_samples, steps)
        repeats = [measure(denoiser, shape, runs, device) for _ in range(args.repeats)]
        best = {key: min(repeat[key] for repeat in repeats) for key in repeats[0]}
        print(f"{name:<9} {n_samples * args.runs:>9} {best['nfe']:>4} {best['unfused']:>9.3f} {best['fused']:>8.3f} "
              f"{best['ideal']:>8.3f} {best['overhead']:>17.3f} {best['handoffs']:>11.3f} {args.runs / best['unfused']:>14.2f} "
              f"{args.runs / best['fused']:>12.2f} {best['unfused'] / best['fused']:>9.2f}x "
              f"{best['fused'] / best['ideal']:>10.2f}x {len(runs) * best['forward_one_run'] / best['forward']:>11.2f}x "
              f"{'fused' if fusion.can_pack(runs, device) else 'unfused':>16}", flush=True)
    print("# fused gain: unfused / fused seconds; hand-offs: the fused draw with a zero-cost denoiser less the "
          "overhead (the threads' hand-offs, not in the ideal); forward gain: runs x one forward over one run's batch / "
          "one forward over the shard's batch (about 1 where the network is compute-bound); fuse: true draws: what the "
          "library does with jobs.fuse true (unfused on the CPU when no two runs' calls fit in one network call)")
    print(f"# load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
