"""Benchmark: sampler overhead over the network.

For every registered sampler, at a fixed model and batch: the wall time per network
evaluation of a whole sampling run, divided by the time of one bare network forward
(measured in the same process, interleaved). A ratio of 1.0 means the sampler's own
arithmetic and noise draws cost nothing next to the network; the target is <= 1.05.

    python bench/sampler_overhead.py [--batch 4096] [--steps 50] [--repeats 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from diffsweep import samplers
from diffsweep.jobs import initial_sample
from diffsweep.models import build_denoiser
from diffsweep.noise import make_schedule


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_forward(denoiser, x, sigma, device, repeats=20) -> float:
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        denoiser(x, sigma)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_sampler(spec, denoiser, x, sigmas, device) -> tuple[float, int]:
    synchronize(device)
    start = time.perf_counter()
    _, nfe = spec.fn(denoiser, x, sigmas, torch.Generator(device=device).manual_seed(0), **spec.resolve_knobs({}))
    synchronize(device)
    return time.perf_counter() - start, nfe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    recipe = {"arch": "mlp", "arch_params": {"hidden": args.hidden, "depth": 3}, "parametrisation": "eps"}
    denoiser = build_denoiser(recipe, 2).to(device).eval()
    print(f"# 2-D MLP (hidden {args.hidden}, depth 3), batch {args.batch}, {args.steps} levels, device {device}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"{'sampler':<20} {'nfe':>5} {'s/eval':>10} {'forward s':>10} {'ratio':>7}")
    with torch.no_grad():
        x0 = torch.randn(args.batch, 2, device=device)
        for name in samplers.names():
            spec = samplers.get(name)
            sigmas = make_schedule(spec.default_schedule, args.steps).tolist()
            ratios, per_eval, forwards, nfe = [], [], [], 0
            for _ in range(args.repeats):  # interleave so that drift in machine speed hits both alike
                forward = time_forward(denoiser, x0, sigmas[0], device)
                x = initial_sample(spec.init, sigmas[0], x0.shape, torch.Generator(device=device).manual_seed(1),
                                   x0.dtype, device)
                seconds, nfe = time_sampler(spec, denoiser, x, sigmas, device)
                per_eval.append(seconds / nfe)
                forwards.append(forward)
                ratios.append(seconds / nfe / forward)
            print(f"{name:<20} {nfe:>5} {statistics.median(per_eval):>10.3e} {statistics.median(forwards):>10.3e} "
                  f"{statistics.median(ratios):>7.3f}")


if __name__ == "__main__":
    main()
