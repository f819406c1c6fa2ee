"""Shards: every run of one score source and kind, in run id order, chunked `runs_per_job` (or
`job_minutes`) to a job (`pack`); which shards are targets (`pending_shards`) and what a shard
job runs, found from its id and the config alone (`shard_job`). Torch-free.
"""

from __future__ import annotations

from pathlib import Path

from diffsweep import packing
from diffsweep.grid.expand import build
from diffsweep.grid.specs import model_dict, run_dict, short_hash


def pack(runs: dict, runs_per_job, groups: dict | None = None) -> dict[str, list[str]]:
    """Grid.shards: `runs` packed by score source, kind and group (`groups`: run id -> a search
    rung's group; the rest of the grid is group ""), in run id order, `runs_per_job` to a shard."""
    size_of = runs_per_job if callable(runs_per_job) else (lambda model, kind: runs_per_job[kind])
    groups = groups or {}
    chunks: dict[tuple, list[str]] = {}
    models = {}
    for run_id, run in sorted(runs.items()):
        chunks.setdefault((run.model.id, run.kind, groups.get(run_id, "")), []).append(run_id)
        models[run.model.id] = run.model
    shards = {}
    for (model_id, kind, _), run_ids in sorted(chunks.items()):
        size = size_of(models[model_id], kind)
        for start in range(0, len(run_ids), size):
            chunk = run_ids[start:start + size]
            shards[f"{model_id}.{short_hash(chunk)}"] = chunk
    return shards


def runs_per_job(config: dict) -> packing.ShardSize:
    """Runs packed into one shard job, as a function of (score source, kind): the config's
    `jobs.<kind>.runs_per_job` (jobs.generation, jobs.restoration), or as many as fill `job_minutes` at the declared
    `run_seconds` (diffsweep.packing)."""
    return packing.ShardSize.from_config(config)


def pending_shards(shards: dict[str, list[str]], done, key=lambda shard, run_ids: short_hash(run_ids)) -> dict[str, str]:
    """The shards with runs not done -> `key(shard, those runs)`: the key is the shard job's
    `attempt` param, so a shard whose runs were deleted (to be redone), left unfinished or (with a
    key of their records and the shard's marker, runs.attempt) failed runs again through the params
    rerun trigger, and a finished shard is no target."""
    pending = {}
    for shard, run_ids in shards.items():
        left = [run_id for run_id in run_ids if run_id not in done]
        if left:
            pending[shard] = key(shard, left)
    return pending


def shard_job(config: dict, shard_id: str, base_dir: str | Path = ".") -> tuple[dict, list[dict]]:
    """What a shard job runs, found from the shard id and the config alone (no rule params): the
    score source as `model_dict` and the shard's runs as `run_dict`s. Expands only the runs of
    the shard's score source."""
    model_id = shard_id.split(".")[0]
    grid = build(config, base_dir, models={model_id})
    shards = grid.shards(runs_per_job(config))
    if shard_id not in shards:
        raise ValueError(f"shard '{shard_id}' is not in this config's grid (was the config changed under a running sweep?)")
    return model_dict(grid.models[model_id]), [run_dict(grid.runs[run_id]) for run_id in shards[shard_id]]
