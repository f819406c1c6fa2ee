"""Benchmark: what a shard job pays to find its runs (`grid.shard_job`), by sweep size.

    python bench/shard_job.py [--sizes 10000,100000] [--runs-per-job 32]

For each size, in a fresh process: `bench/dag_scale.py`'s config (every run on one score source,
the worst case: the job expands them all), the wall-clock and CPU seconds of one `grid.shard_job`
call for a shard in the middle, after one warm-up call, and the process's peak memory (which
includes building the whole grid once to pick the shard). Prints the load average.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

ONE_SIZE = """
import resource, sys, time
sys.path[:0] = [sys.argv[2], sys.argv[3]]
from dag_scale import sweep_config
from diffsweep import config, grid
cfg = config.prepare(sweep_config(int(sys.argv[1]), int(sys.argv[4])))
shards = grid.build(cfg).shards(grid.runs_per_job(cfg))
shard = sorted(shards)[len(shards) // 2]
grid.shard_job(cfg, shard)
started, cpu = time.perf_counter(), time.process_time()
model, runs = grid.shard_job(cfg, shard)
seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
assert [run["id"] for run in runs] == shards[shard]
print(f"{seconds:.2f} {cpu:.2f} {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} {len(shards)}")
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs-per-job", type=int, default=32)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| runs | shards | `grid.shard_job` s | CPU s | peak MB |")
    print("|---:|---:|---:|---:|---:|")
    for size in (int(s) for s in args.sizes.split(",")):
        out = subprocess.run([sys.executable, "-c", ONE_SIZE, str(size), str(ROOT / "src"), str(ROOT / "bench"),
                              str(args.runs_per_job)], capture_output=True, text=True, check=True).stdout.split()
        print(f"| {size:,} | {int(out[3]):,} | {float(out[0]):.1f} | {float(out[1]):.1f} | {out[2]} |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
