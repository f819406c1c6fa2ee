"""Benchmark: each sampler's and restorer's own cost per network evaluation, as a share of one forward.

    python bench/sampler_overhead.py [--threads 1] [--repeats 7] [--steps 20] [--models mlp,unet] [--only NAME,...]
    python bench/sampler_overhead.py --noise [...]     # per-sample streams against one generator per run

A run of a sampler with a zero-cost denoiser (it hands back a preallocated tensor) times only the
sampler's own work: its arithmetic, noise draws and Python bookkeeping. That time per denoiser
call, divided by one real forward of the network at the same batch, is the overhead a sweep pays
on top of the network; the target is at most 5%. Models (untrained weights: the cost of a forward
does not depend on them):

    mlp   the 2-D MLP of the toy track (hidden 128, depth 3) at batch 4096: every sampler
    unet  the digits UNet (channels 16, 32; 1 x 8 x 8) at batch 256: every sampler, and every
          restorer on the default grid's sr2 task (bicubic x2, 64 measurements x 4 samples)

On a shared machine: times are this process's CPU time (`time.process_time`: with one torch and one
BLAS thread, the time it computed, not the time it waited for a core; at a load average of 11-13
on 2 cores a UNet forward took 215 ms of wall-clock time but 54 ms of CPU time, 46 ms quiet), each
figure is the minimum over `--repeats` runs, and the load average before and after is printed.
Cores shared with other processes (caches, a busy hyperthread sibling) still slow both parts. A forward is timed at the batch the sampler evaluates (twisted SMC
evaluates particles x batch rows).

With --noise it times instead each run's whole draw (start and steps, the real network) with the
job's per-sample streams (samplers.randomness.SampleStreams) and with one generator for the whole
batch (GeneratorNoise, before per-sample streams), alternating the two in one process, and prints
the ratio of their minima and the spread of the paired ratios (min, median, max over --repeats);
the target is at most 1.05.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

# One thread count for torch and for numpy/scipy's BLAS (pf_ode_rk45 runs scipy's solver): set before
# either is imported. Two BLAS threads on two busy cores cost pf_ode_rk45 4-10x its single-thread time.
PARSER = argparse.ArgumentParser(description=__doc__.splitlines()[0])
PARSER.add_argument("--threads", type=int, default=1, help="torch and BLAS threads (fixed, for comparable figures)")
PARSER.add_argument("--repeats", type=int, default=7)
PARSER.add_argument("--steps", type=int, default=20)
PARSER.add_argument("--models", default="mlp,unet")
PARSER.add_argument("--only", default="", help="comma-separated sampler/restorer names (default: all)")
PARSER.add_argument("--noise", action="store_true", help="per-sample streams against one generator: the draw's cost ratio")
ARGS = PARSER.parse_args()
for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[variable] = str(ARGS.threads)

import torch  # noqa: E402

from diffsweep import restoration, samplers  # noqa: E402
from diffsweep.models import build_denoiser  # noqa: E402
from diffsweep.noise import make_schedule  # noqa: E402
from diffsweep.samplers.randomness import (GENERATION_BLOCK, RESTORATION_BLOCK, GeneratorNoise,  # noqa: E402
                                           SampleStreams)

MODELS = {
    "mlp": {"recipe": {"arch": "mlp", "parametrisation": "eps"}, "shape": (2,), "batch": 4096},
    "unet": {"recipe": {"arch": "unet", "arch_params": {"channels": [16, 32]}, "parametrisation": "edm",
                        "sigma_data": 0.5}, "shape": (1, 8, 8), "batch": 256},
}
TASK = {"operator": "sr_bicubic", "knobs": {"factor": 2}, "noise_std_effective": 0.1, "n_samples": 4}
TARGET = 0.05


class ZeroCostDenoiser:
    """D(x, sigma) at no cost: a preallocated tensor per input shape. A restorer that differentiates
    through D (DPS, PiGDM) gets 0.5 x instead, one elementwise op that keeps the graph."""

    def __init__(self):
        self.outputs = {}

    def __call__(self, x, sigma):
        if x.requires_grad:
            return 0.5 * x
        if x.shape not in self.outputs:
            self.outputs[x.shape] = 0.5 * torch.randn_like(x)
        return self.outputs[x.shape]


class Counting:
    """Counts the calls and keeps the largest batch a call had (twisted SMC evaluates particles x batch rows)."""

    def __init__(self, denoiser):
        self.denoiser, self.calls, self.rows = denoiser, 0, 0

    def __call__(self, x, sigma):
        self.calls, self.rows = self.calls + 1, max(self.rows, x.shape[0])
        return self.denoiser(x, sigma)


def seconds(fn) -> float:
    """CPU seconds of fn() in this process (not wall-clock: other processes do not count)."""
    started = time.process_time()
    fn()
    return time.process_time() - started


def one_generator(batch: int, per_measurement: int | None = None):
    """The noise source before per-sample streams: one generator for the whole batch."""
    return GeneratorNoise(torch.Generator().manual_seed(0))


def streams(batch: int, per_measurement: int | None = None):
    """The job's noise source: per-sample streams (a group per measurement for a restorer)."""
    if per_measurement is None:
        return SampleStreams(0, batch, GENERATION_BLOCK)
    return SampleStreams(0, per_measurement, RESTORATION_BLOCK, stream="restorations",
                         groups=batch // per_measurement)


def sampler_case(name: str, shape, batch: int, steps: int):
    """(run(denoise, noise=one_generator) -> the Counting wrapper it ran with) for a sampler with its
    defaults on its default schedule; the start is the noise source's first draw, as in a job."""
    spec = samplers.get(name)
    sigmas = make_schedule(spec.default_schedule, steps).tolist()
    knobs = spec.resolve_knobs({})

    def run(denoise, noise=one_generator):
        counted, source = Counting(denoise), noise(batch)
        spec.fn(counted, source(torch.empty(batch, *shape)), sigmas, source, **knobs)
        return counted
    return run


def restorer_case(name: str, shape, batch: int, steps: int):
    """(run(denoise) -> the Counting wrapper it ran with) for a restorer with its defaults on TASK, batch = measurements x samples."""
    spec = restoration.get(name)
    sigmas = make_schedule(spec.default_schedule, steps).tolist()
    knobs = spec.resolve_knobs({})
    k = TASK["n_samples"]
    operator = restoration.get_operator(TASK["operator"]).build(shape, 0, TASK["knobs"]).for_measurements(batch // k)
    y = operator.forward(torch.rand(batch // k, *shape, dtype=torch.float64) * 2 - 1)
    y_rows = y.repeat_interleave(k, dim=0).float()
    rows = operator.restrict(torch.arange(batch // k).repeat_interleave(k))

    def run(denoise, noise=one_generator):
        counted, source = Counting(denoise), noise(batch, k)
        spec.fn(counted, source(torch.empty(batch, *shape)), sigmas, source, rows, y_rows,
                TASK["noise_std_effective"], **knobs)
        return counted
    return run


def forward_seconds(network, shape, rows: int, repeats: int) -> float:
    """The fastest of `repeats` forwards of `rows` samples (after one warm-up)."""
    x = torch.randn(rows, *shape)
    network(x, 1.0)
    return min(seconds(lambda: network(x, 1.0)) for _ in range(repeats))


def main(args) -> None:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    only = set(filter(None, args.only.split(",")))
    print(f"# torch {torch.__version__}, {args.threads} thread(s) (torch and BLAS), {args.steps} levels, CPU time, "
          f"minimum of {args.repeats} repeats; load average before: {os.getloadavg()[0]:.2f}")
    missed = []
    with torch.no_grad():
        for model in args.models.split(","):
            setting = MODELS[model]
            shape, batch = setting["shape"], setting["batch"]
            network = build_denoiser(setting["recipe"], shape).eval()
            cases = [("sampler", name, sampler_case(name, shape, batch, args.steps)) for name in samplers.names()]
            if len(shape) == 3:
                cases += [("restorer", name, restorer_case(name, shape, batch, args.steps))
                          for name in restoration.names()]
            cases = [case for case in cases if not only or case[1] in only]
            if args.noise:
                compare_noise(model, network, batch, cases, args.repeats, missed)
                continue
            zero = ZeroCostDenoiser()                            # one per model: its outputs are allocated once
            forwards = {batch: forward_seconds(network, shape, batch, max(args.repeats, 10))}
            print(f"\n## {model} at batch {batch}: one forward {forwards[batch] * 1e3:.2f} ms")
            print(f"{'kind':<9} {'name':<20} {'nfe':>5} {'rows':>6} {'own ms/eval':>12} {'% forward':>10}")
            for kind, name, run in cases:
                per_eval = []
                for _ in range(args.repeats):
                    started = time.process_time()
                    counted = run(zero)
                    per_eval.append((time.process_time() - started) / counted.calls)
                if counted.rows not in forwards:                 # a forward at the batch the sampler evaluates
                    forwards[counted.rows] = forward_seconds(network, shape, counted.rows, 3)
                share = min(per_eval) / forwards[counted.rows]
                if share > TARGET:
                    missed.append(f"{model}/{name}")
                print(f"{kind:<9} {name:<20} {counted.calls:>5} {counted.rows:>6} {min(per_eval) * 1e3:>12.3f} "
                      f"{100 * share:>9.1f}%{'  > target' if share > TARGET else ''}")
    print(f"\n# load average after: {os.getloadavg()[0]:.2f}; over {100 * TARGET:.0f}%: {', '.join(missed) or 'none'}")


def compare_noise(model, network, batch, cases, repeats, missed) -> None:
    """Each case's whole draw with per-sample streams over the same draw with one generator, alternated."""
    print(f"\n## {model} at batch {batch}: a whole draw with the network, streams / one generator")
    print(f"{'kind':<9} {'name':<20} {'one gen. s':>10} {'streams s':>10} {'ratio':>7} {'min':>6} {'median':>6} {'max':>6}")
    for kind, name, run in cases:
        run(network)                                     # warm-up
        pairs = [(seconds(lambda: run(network, one_generator)), seconds(lambda: run(network, streams)))
                 for _ in range(repeats)]
        ratios = sorted(after / before for before, after in pairs)
        ratio = min(after for _, after in pairs) / min(before for before, _ in pairs)
        if ratio > 1 + TARGET:
            missed.append(f"{model}/{name}")
        print(f"{kind:<9} {name:<20} {min(p[0] for p in pairs):>10.3f} {min(p[1] for p in pairs):>10.3f} "
              f"{ratio:>7.3f} {ratios[0]:>6.3f} {ratios[len(ratios) // 2]:>6.3f} {ratios[-1]:>6.3f}"
              f"{'  > target' if ratio > 1 + TARGET else ''}")


if __name__ == "__main__":
    main(ARGS)
