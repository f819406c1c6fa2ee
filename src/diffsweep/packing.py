"""How runs are packed into cluster jobs: how many runs go into one shard job, and whether shard
jobs may go out as SLURM job arrays (docs/cluster.md, "Packing").

Runs per shard job, by kind (config `jobs.generation`, `jobs.restoration`):

- `runs_per_job`: that many runs of one score source to a job;
- `job_minutes`: as many runs as fill a job of that many minutes, at the *declared* cost of one
  run of the score source (`run_seconds`), at least 1 and at most MAX_RUNS_PER_JOB.

The cost is declared in the config, never read from results that appear while the sweep runs:
a shard's membership must not depend on when the grid is built (grid.Grid.shards), and every
cluster job re-parses the Snakefile while others finish. `measured_run_seconds` measures the
costs to declare from a finished sweep's job benchmarks (`diffsweep costs`).

Torch is not imported here: the Snakefile calls this at parse time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from diffsweep import io
from diffsweep.runs import kinds

# The most runs one job takes with job_minutes: bounds the work lost when a job dies and what a
# shard holds in memory at once (its runs' samples).
MAX_RUNS_PER_JOB = 1000
# The config section of each run kind's packing (under `jobs`: jobs.generation, jobs.restoration).
SECTIONS = {kind.name: f"jobs.{kind.name}" for kind in kinds.KINDS.entries()}
DEFAULT_RUNS_PER_JOB = 16


def cost_keys(model_name: str, dataset_name: str) -> tuple[str, ...]:
    """The `run_seconds` keys that can give a score source's cost, most specific first."""
    return (f"{model_name}/{dataset_name}", model_name, "default")


@dataclass(frozen=True)
class ShardSize:
    """Runs to a shard job of a score source and kind (`size(model, kind)`), from the config."""
    runs_per_job: dict        # kind -> runs per job (used where job_minutes is not set)
    job_minutes: dict         # kind -> target minutes per job, or None
    run_seconds: dict         # kind -> {cost key: declared seconds of one run}

    @classmethod
    def from_config(cls, config: dict) -> "ShardSize":
        sections = {kind: packing_of(config, kind) for kind in SECTIONS}
        return cls({kind: s.get("runs_per_job", DEFAULT_RUNS_PER_JOB) for kind, s in sections.items()},
                   {kind: s.get("job_minutes") for kind, s in sections.items()},
                   {kind: s.get("run_seconds") or {} for kind, s in sections.items()})

    def run_cost(self, model, kind: str) -> float | None:
        """The declared seconds of one run of `model` (a grid.ModelSpec), or None."""
        costs = self.run_seconds[kind]
        return next((costs[key] for key in cost_keys(model.name, model.data.name) if key in costs), None)

    def __call__(self, model, kind: str) -> int:
        if self.job_minutes[kind] is None:
            return self.runs_per_job[kind]
        seconds = self.run_cost(model, kind)
        if seconds is None:   # check() refuses this config before any job; never guess
            raise ValueError(f"{SECTIONS[kind]}.run_seconds: no cost for score source '{model.name}' on "
                             f"'{model.data.name}'")
        return runs_to_fill(self.job_minutes[kind], seconds)


def packing_of(config: dict, kind: str) -> dict:
    """The packing settings of a kind of run as the config writes them (`jobs.<kind>`; {} if none)."""
    return ((config or {}).get("jobs") or {}).get(kind) or {}


def runs_to_fill(job_minutes: float, run_seconds: float) -> int:
    """Runs of `run_seconds` each that fit a job of `job_minutes`: at least 1, at most MAX_RUNS_PER_JOB."""
    return max(1, min(MAX_RUNS_PER_JOB, math.floor(job_minutes * 60 / run_seconds)))


def check(raw: dict, config: dict, grid) -> None:
    """With `job_minutes`, every score source of the kind has a declared cost and runs_per_job is
    not set too (in the config as written, `raw`); every `run_seconds` key names a score source.
    Raises ValueError, one line naming the key."""
    size = ShardSize.from_config(config)
    for kind, section in SECTIONS.items():
        runs = grid.of_kind(kind)
        models = sorted({run.model.id: run.model for run in runs.values()}.values(),
                        key=lambda model: (model.name, model.data.name, model.id))
        known = {key for model in models for key in cost_keys(model.name, model.data.name)} | {"default"}
        for key in size.run_seconds[kind]:
            if key not in known:
                raise ValueError(f"{section}.run_seconds.{key}: names no score source of this config's "
                                 f"{kind} runs; allowed: {', '.join(sorted(known))} (<model> or <model>/<dataset>)")
        if size.job_minutes[kind] is None:
            continue
        if "runs_per_job" in packing_of(raw, kind):
            raise ValueError(f"{section}.job_minutes and {section}.runs_per_job are both set; set one "
                             f"(job_minutes chooses the runs per job of each score source from run_seconds)")
        for model in models:
            if size.run_cost(model, kind) is None:
                name, data = model.name, model.data.name
                raise ValueError(f"{section}.run_seconds: no cost for score source '{name}' on '{data}', needed by "
                                 f"{section}.job_minutes; declare '{name}/{data}', '{name}' or 'default' "
                                 f"(`diffsweep costs --config FILE` measures them from a finished sweep)")


def measured_run_seconds(grid, shards: dict[str, list[str]], benchmarks) -> dict:
    """Seconds per run of each score source and kind, from the shard jobs' benchmark files
    (`<benchmarks>/<shard>.tsv`, Snakemake's `s` column: the whole job, start-up and metrics
    included): {kind: {"<model>/<dataset>": (seconds per run, runs measured)}}. Shards without
    a benchmark are left out. A shard whose last job ran only part of its runs (a rerun) counts
    all of them: measure a sweep whose shards each ran in one job."""
    runs = grid.runs
    totals: dict = {}
    for shard, run_ids in shards.items():
        path = Path(benchmarks) / f"{shard}.tsv"
        if not path.is_file():
            continue
        try:
            lines = path.read_text().splitlines()
            if len(lines) < 2:
                continue
            seconds = float(dict(zip(lines[0].split("\t"), lines[1].split("\t")))["s"])
        except (OSError, ValueError, KeyError) as error:    # ValueError: UnicodeDecodeError, `s` not a number
            raise io.unreadable(path, "a Snakemake benchmark (a tab-separated header with `s`, then a row)",
                                error) from None
        run = runs[run_ids[0]]
        entry = totals.setdefault(run.kind, {}).setdefault(f"{run.model.name}/{run.model.data.name}", [0.0, 0])
        entry[0] += seconds
        entry[1] += len(run_ids)
    return {kind: {key: (total / count, count) for key, (total, count) in sorted(by_source.items())}
            for kind, by_source in sorted(totals.items())}


def array_jobs_problem(array_rules: str | None, jobs_by_rule: dict[str, int], slots: int | None) -> str | None:
    """Why this sweep would hang with SLURM job arrays, or None. snakemake-executor-plugin-slurm 2.8
    holds back the jobs of an array rule that it is handed while more of that rule are ready,
    waiting for the rest, which never come: they wait for job slots that the held-back jobs take
    (tried: `--jobs 2` with 5 ready jobs submitted nothing and hung). With at least as many slots
    (`jobs`) as the sweep has jobs, every ready job is handed over at once."""
    rules = {rule.strip() for rule in (array_rules or "").replace(";", ",").split(",") if rule.strip()}
    if not rules or slots is None or not ("all" in rules or rules & set(jobs_by_rule)):
        return None
    total = sum(jobs_by_rule.values())
    if total <= slots:
        return None
    return (f"jobs: {slots} is below this sweep's {total} jobs while slurm-array-jobs is set ({array_rules}): "
            f"the SLURM executor plugin would hold back shard jobs forever; raise jobs (--jobs {total}) or "
            f"switch arrays off (--slurm-array-jobs=) (docs/cluster.md, 'Array jobs')")


def shard_runtime(config: dict, minutes: int = 60) -> int:
    """The time limit (minutes) of a shard job's first attempt: `minutes`, or twice the longest
    `job_minutes` (the declared costs are estimates) when that is longer."""
    targets = [packing_of(config, kind).get("job_minutes") or 0 for kind in SECTIONS]
    return max(minutes, math.ceil(2 * max(targets)))
