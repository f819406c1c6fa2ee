"""Benchmark: throughput of the full-size pretrained denoisers (random weights, same cost).

Builds the FFHQ-256 ADM (VP) and NCSN++ (VE) networks at their published sizes with random
weights, wraps them as D(x, sigma), and times batches of denoiser calls: median seconds per
call, images per second, the implied wall time of a K-step sampling run and, on CUDA, the peak
memory allocated during the calls. No checkpoint file is needed: the architecture fixes the cost.

    python bench/pretrained_throughput.py [--device cuda] [--batch 1 4] [--repeats 5] [--steps 1000]
        [--formats adm_ffhq256 ncsnpp_ffhq256] [--dtype float32|bfloat16] [--compile]

`--dtype bfloat16` runs the calls under torch.autocast; `--compile` wraps the denoiser in
torch.compile (its first call, which compiles, is the untimed warm-up).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from diffsweep import pretrained


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_calls(denoiser, x, sigma, device, repeats: int) -> float:
    """Median seconds of one D(x, sigma) call, after one warm-up call."""
    times = []
    with torch.no_grad():
        for attempt in range(repeats + 1):
            synchronize(device)
            start = time.perf_counter()
            denoiser(x, sigma)
            synchronize(device)
            if attempt:  # the first call pays for allocation and kernel selection
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--formats", nargs="+", default=pretrained.format_names())
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=1000, help="K of the sampling run whose wall time is estimated")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="autocast dtype (bfloat16) or plain float32")
    parser.add_argument("--compile", action="store_true", help="time torch.compile(denoiser)")
    args = parser.parse_args()
    device = torch.device(args.device)
    generator = torch.Generator().manual_seed(0)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}, dtype {args.dtype}, "
          f"compiled {args.compile}")
    print(f"{'format':16} {'params':>8} {'batch':>5} {'s/call':>9} {'img/s':>8} {f'K={args.steps} run':>12} "
          f"{'peak GiB':>8}")
    for name in args.formats:
        denoiser = pretrained.wrap_denoiser(name, pretrained.build_network(name)).to(device).eval()
        params = sum(p.numel() for p in denoiser.parameters())
        called = torch.compile(denoiser) if args.compile else denoiser
        channels, size = pretrained.image_shape(name)
        for batch in args.batch:
            x = torch.randn(batch, channels, size, size, generator=generator).to(device)
            sigma = torch.full((batch,), 1.0, device=device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bfloat16"):
                seconds = time_calls(called, x, sigma, device, args.repeats)
            peak = f"{torch.cuda.max_memory_allocated(device) / 2 ** 30:8.2f}" if device.type == "cuda" else f"{'-':>8}"
            print(f"{name:16} {params / 1e6:7.1f}M {batch:5d} {seconds:9.4f} {batch / seconds:8.2f} "
                  f"{seconds * args.steps:11.1f}s {peak}", flush=True)
        del denoiser
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
