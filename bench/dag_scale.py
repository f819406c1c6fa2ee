"""Benchmark: how parsing, the dry run and aggregation grow with the number of runs.

For each size N, a config with one sampler preset on the ring8 oracle and two list-valued
knobs (eps x T0, about sqrt(N) values each, N runs; 10 steps, 200 samples per run) is written to a temporary folder,
and each step runs in its own process, timed with its peak memory (max RSS):

- `diffsweep grid --config sweep.yaml` (the expansion),
- `snakemake -n` (parse, grid, shards, DAG; nothing runs),
- `diffsweep status` (done / pending per preset),
- the aggregation of the generation table (`diffsweep.runs.join.frame`) with every run done: before
  it (untimed), each shard gets a record file of synthetic records and a sparse archive in the
  results layout (records/), as a finished sweep leaves them,
- `snakemake -n` again with every run done ("dry run done": the records read, and each one's code
  fingerprints compared with today's, runs.code).

    python bench/dag_scale.py [--sizes 1000,10000,100000] [--runs-per-job 32]
    python bench/dag_scale.py --search [--sizes ...]      # the preset searched instead (docs/search.md)

With --search the preset is searched (`search:`, seeds [0, 1], rungs of 50, 200 and 800 samples)
instead of swept: N is the number of grid points (candidates), rung 0 holds 2 N runs (a run per
seed) and the dry run plans rung 0 only (its stderr says so, checked here); the aggregation is not
measured.

Run it from the repository root; it writes only under a temporary folder.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
def search_config(n_points: int, runs_per_job: int) -> dict:
    """sweep_config's preset searched (successive halving) instead of swept."""
    cfg = sweep_config(n_points, runs_per_job)
    cfg["search"] = {"rw": {"samplers": ["rw"], "rungs": [50, 200, 800], "seeds": [0, 1]}}
    return cfg


def sweep_config(n_runs: int, runs_per_job: int) -> dict:
    """One preset, eps x T0 = n_runs points (two axes of about sqrt(n_runs) values each)."""
    n_t0 = max(d for d in range(1, int(n_runs ** 0.5) + 1) if n_runs % d == 0)
    n_eps = n_runs // n_t0
    eps = [round(0.1 + 0.9 * i / n_eps, 9) for i in range(n_eps)]
    t0 = [round(0.05 + 0.95 * i / n_t0, 9) for i in range(n_t0)]
    return {"results": "results", "seeds": [0], "data": {"n_train": 2000, "n_reference": 1000},
            "sampling": {"n_samples": 200}, "jobs": {"generation": {"runs_per_job": runs_per_job}},
            "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
            "models": {"oracle": {"source": "oracle"}},
            "samplers": {"rw": {"family": "random_walk", "schedule": "sigmoid", "steps": 10,
                                "knobs": {"eps": eps, "T0": t0}}},
            "plots": {"schedules": False}}


def measure(command: list[str], cwd: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one command in a fresh process (GNU time)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "%M", *command], cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
    peak_kb = int(result.stderr.strip().splitlines()[-1])
    return seconds, peak_kb / 1024


AGGREGATE = """
import sys
from diffsweep import config, runs
from diffsweep.runs import join
cfg, grid = config.load(sys.argv[1])
table = join.frame("generation", grid.manifest_rows("generation"), cfg["results"])
assert len(table) == len(grid.of_kind("generation")) and (table["status"] == "ok").all()
"""

# A finished sweep's records/: one record file per shard, a record per run (the fields and size of
# a real ring8 record: 12 metrics, provenance), one sparse archive per shard.
FINISHED = """
import json
import sys
from diffsweep import config, fingerprint, grid as ds_grid, runs
cfg, grid = config.load(sys.argv[1])
runs.mark_layout(cfg["results"])
origin = {"diffsweep": "0", "torch": "2", "numpy": "2", "python": "3.11", "git_revision": "0" * 40, "host": "node",
          "slurm_job_id": None, "cuda_visible_devices": None}
metrics = dict.fromkeys(["sliced_w2", "mmd", "energy_distance", "mode_coverage", "mean_error", "cov_error",
                         "sliced_w2_std", "mmd_std", "nll_exact", "kl_histogram", "precision", "recall"], 0.123456789)
for shard, run_ids in grid.shards(ds_grid.runs_per_job(cfg)).items():
    lines, offset = [], 0
    for run_id in run_ids:
        spec = grid.runs[run_id]
        run = {"id": run_id, "kind": spec.kind, "row": spec.row(), "identity": spec.identity()}
        record = runs.make_record(run, "ok", 10, 0.5, "cpu", origin, {"metrics": metrics, "skipped": {}})
        record.update(fingerprint.of_params(run["identity"]))     # the code that made it (runs.code)
        record.update(archive=f"{shard}.archive", files={"samples.npz": {"offset": offset, "bytes": 3456, "sha256": "0" * 64}})
        offset += 3456
        lines.append(json.dumps(record, separators=(",", ":")) + "\\n")
    runs.record_file(cfg["results"], shard).parent.mkdir(parents=True, exist_ok=True)
    runs.record_file(cfg["results"], shard).write_text("".join(lines))
    with open(runs.archive_file(cfg["results"], shard), "wb") as archive:
        archive.truncate(offset)
"""


def bench(n_runs: int, runs_per_job: int, workdir: Path, search: bool = False) -> dict:
    workdir.mkdir(parents=True)
    config = workdir / "sweep.yaml"
    config.write_text(yaml.safe_dump((search_config if search else sweep_config)(n_runs, runs_per_job)))
    python = sys.executable
    row = {"runs": n_runs}
    row["grid"] = measure([python, "-m", "diffsweep.cli", "grid", "--config", str(config)], workdir)
    dry = [python, "-m", "snakemake", "-n", "--quiet", "all", "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
           "--configfile", str(config), "--cores", "1"]
    row["dry run"] = measure(dry, workdir)
    row["status"] = measure([python, "-m", "diffsweep.cli", "status", "--config", str(config)], workdir)
    if search:
        planned = subprocess.run(dry, cwd=workdir, capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": str(ROOT / "src")}).stderr
        said = [line for line in planned.splitlines() if line.startswith("search rw:")]
        assert said and "rungs 0-0 of 0-2 planned" in said[0], planned[-2000:]
        print(f"  {n_runs:,} points: {said[0]}")
        return row
    measure([python, "-c", FINISHED, str(config)], workdir)
    row["aggregate"] = measure([python, "-c", AGGREGATE, str(config)], workdir)
    row["dry run done"] = measure(dry, workdir)
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="comma-separated run counts")
    parser.add_argument("--runs-per-job", type=int, default=32)
    parser.add_argument("--search", action="store_true", help="search the preset (successive halving) instead")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    steps = ("grid", "dry run", "status") if args.search else ("grid", "dry run", "status", "aggregate", "dry run done")
    print(f"load average before: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(("| points | " if args.search else "| runs | ") + " | ".join(f"{step} s | {step} MB" for step in steps) + " |")
    print("|---:|" + "---:|---:|" * len(steps))
    with tempfile.TemporaryDirectory(prefix="dag-scale-") as tmp:
        for n_runs in sizes:
            row = bench(n_runs, args.runs_per_job, Path(tmp) / str(n_runs), args.search)
            cells = [f"{row[step][0]:.1f} | {row[step][1]:.0f}" for step in steps]
            print(f"| {n_runs:,} | " + " | ".join(cells) + " |", flush=True)
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
