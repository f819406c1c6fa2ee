"""Memory and time of the operators' SVDs: structured (operator.svd()) against the dense reference.

    python bench/structured_operators.py [--sizes 16 256] [--samples 4] [--steps 5] [--threads 1] [--device cpu]

For each task (SR x4 bicubic, SR x4 average pooling, 92% random inpainting, Gaussian blur
61 x 61, std 3: the DPS settings; the kernel shrinks to S - 1 on smaller images) and image
size (3, S, S), in a fresh subprocess each:
building the decomposition, one application of A, A^T, V^T, V, U^T and A^+ to one image,
and a DDRM run (`--steps` steps, `--samples` samples of one measurement, a cheap denoiser in
place of a network) with its time per step. Memory is the peak resident set of the subprocess
above what it held after importing torch (CPU), or torch's peak allocation (CUDA). The dense
form is run where its matrices fit MAX_DENSE_ENTRIES; otherwise the line says what it would need.
Times are wall-clock on whatever else the machine is running: the load average is printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

TASKS = {"sr4_bicubic": ("sr_bicubic", {"factor": 4}), "sr4_avgpool": ("sr_avgpool", {"factor": 4}),
         "inpaint92": ("inpaint_random", {"missing": 0.92}),
         "blur_gauss": ("deblur_gaussian", {"kernel_size": 61, "std": 3.0})}


def task_knobs(task: str, size: int) -> dict:
    name, knobs = TASKS[task]
    if name == "deblur_gaussian":
        return {**knobs, "kernel_size": min(knobs["kernel_size"], size - 1 if size % 2 == 0 else size)}
    return knobs
APPLICATIONS = ["A", "A^T", "V^T", "V", "U^T", "A^+"]


def peak_bytes(device) -> int:
    import torch
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024        # kilobytes on Linux


def resident_bytes() -> int:
    """The resident set now (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed(fn, device, repeats: int = 5) -> float:
    """Median seconds of fn() over `repeats` runs (after one warm-up)."""
    import torch
    fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def measure(task: str, size: int, form: str, samples: int, steps: int, device_name: str, threads: int) -> dict:
    """One case, in this process: the figures as a dict."""
    import torch

    from diffsweep import noise, restoration
    from diffsweep.restoration.registry import OPERATORS
    from diffsweep.restoration.restorers import Spectral
    torch.set_num_threads(threads)
    device = torch.device(device_name)
    name, knobs = TASKS[task][0], task_knobs(task, size)
    shape = (3, size, size)
    family = OPERATORS.get(name)
    operator = family.build(shape, 0, family.resolve_knobs(knobs))
    if form == "dense":
        operator.decompose = operator.dense_svd
    baseline = resident_bytes()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        baseline = 0

    start = time.perf_counter()
    svd = Spectral(operator, torch.zeros((), dtype=torch.float32, device=device)).svd
    build_s = time.perf_counter() - start
    generator = torch.Generator(device).manual_seed(0)
    x = torch.randn(1, *shape, generator=generator, device=device)
    y = operator.forward(x)
    coefficients = svd.vt(x)
    per_application = {
        "A": timed(lambda: operator.forward(x), device), "A^T": timed(lambda: operator.adjoint(y), device),
        "V^T": timed(lambda: svd.vt(x), device), "V": timed(lambda: svd.v(coefficients), device),
        "U^T": timed(lambda: svd.ut(y), device), "A^+": timed(lambda: svd.pseudo_inverse(y), device)}

    spec = restoration.get("ddrm")
    sigmas = noise.make_schedule(spec.default_schedule, steps).tolist()
    x = sigmas[0] * torch.randn(samples, *shape, generator=generator, device=device)
    y = operator.forward(torch.zeros(samples, *shape, device=device)) + 0.1 * torch.randn(
        samples, *operator.measurement_shape, generator=generator, device=device)

    def shrink(x, sigma):     # the denoiser of N(0, I): costs almost nothing next to the operator
        return x / (1 + sigma ** 2)
    start = time.perf_counter()
    restored, _ = spec.fn(shrink, x, sigmas, generator, operator, y, 0.1, **spec.resolve_knobs({}))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    ddrm_step_s = (time.perf_counter() - start) / steps
    return {"task": task, "size": size, "form": form, "build_s": build_s, "ddrm_step_s": ddrm_step_s,
            "peak_gib": (peak_bytes(device) - baseline) / 2 ** 30,
            "finite": bool(torch.isfinite(restored).all()), **per_application}


def dense_need_gib(task: str, size: int) -> float:
    """Memory of the dense SVD's factors (A, U, V^T) in float64, GiB."""
    d = 3 * size * size
    m = 3 * (size // 4) ** 2 if task.startswith("sr4") else d
    return (m * d + m * m + d * d) * 8 / 2 ** 30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[16, 256])
    parser.add_argument("--samples", type=int, default=4, help="samples of one measurement restored together")
    parser.add_argument("--steps", type=int, default=5, help="DDRM steps timed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: steadier on a shared machine)")
    parser.add_argument("--case", nargs=3, metavar=("TASK", "SIZE", "FORM"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        task, size, form = args.case
        print(json.dumps(measure(task, int(size), form, args.samples, args.steps, args.device,
                                 args.threads)))
        return

    from diffsweep.restoration.operators import MAX_DENSE_ENTRIES
    print(f"load average at start: {os.getloadavg()}, cpus: {os.cpu_count()}, device: {args.device}, "
          f"torch threads: {args.threads}, DDRM on {args.samples} samples of one measurement")
    header = ["task", "size", "form", "build_s", "peak_gib", "ddrm_step_s", *APPLICATIONS]
    print(" | ".join(header) + "   (times in ms unless _s)")
    for size in args.sizes:
        for task in TASKS:
            for form in ("structured", "dense"):
                d = 3 * size * size
                if form == "dense" and d * d > MAX_DENSE_ENTRIES:
                    print(f"{task} | {size} | dense | infeasible: A, U and V^T need "
                          f"{dense_need_gib(task, size):,.0f} GiB in float64")
                    continue
                out = subprocess.run([sys.executable, __file__, "--samples", str(args.samples), "--steps",
                                      str(args.steps), "--device", args.device, "--threads", str(args.threads),
                                      "--case", task, str(size), form],
                                     capture_output=True, text=True)
                if out.returncode:
                    print(f"{task} | {size} | {form} | failed: {out.stderr.strip().splitlines()[-1]}")
                    continue
                r = json.loads(out.stdout)
                print(" | ".join([task, str(size), form, f"{r['build_s']:.3f}", f"{r['peak_gib']:.3f}",
                                  f"{r['ddrm_step_s']:.3f}", *(f"{1e3 * r[k]:.2f}" for k in APPLICATIONS)])
                      + ("" if r["finite"] else "   (DDRM output not finite)"))
    print(f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
