"""The grid: a validated config expanded into data sets, score sources, runs of every kind and
the shards that run them; the stable ids of all of them. Torch-free: the Snakefile builds it at
parse time.

Modules by concern:

- specs.py            the types (DataSpec, ModelSpec, TaskSpec, RunSpec, Grid) and their ids; what a job
                      receives of them (data_dict, model_dict, run_dict)
- expand.py           config -> grid (`build`): datasets, score sources, each kind's runs; manifests
- resolve.py          a recipe, a pretrained source, a preset point checked and completed; schedule memo
- fidelity_policy.py  which fidelity extractors score a dataset
- shards.py           runs packed into shards, pending shards, a shard job's runs

This namespace re-exports what the workflow, the CLI, the scripts and the tests call.
"""

from diffsweep.grid.expand import (LIST_VALUED_KEYS, add_run, build, build_generation, build_restorations,
                                   check_names, copy_plain, expand_axes, manifest, manifest_rows)
from diffsweep.grid.fidelity_policy import DIGITS_FAMILIES, fidelity_extractors
from diffsweep.grid.resolve import (PRETRAINED_KEYS, SCHEDULES, ScheduleMemo, network_mismatch, pretrained_mismatch,
                                    resolve_preset, resolve_pretrained, resolve_recipe)
from diffsweep.grid.shards import pack, pending_shards, runs_per_job, shard_job
from diffsweep.grid.specs import (HASH_DIGITS, DataSpec, Grid, ModelSpec, RunSpec, TaskSpec, canonical, data_dict,
                                  model_dict, run_dict, short_hash)

__all__ = [
    "LIST_VALUED_KEYS", "add_run", "build", "build_generation", "build_restorations", "check_names", "copy_plain",
    "expand_axes", "manifest", "manifest_rows", "DIGITS_FAMILIES", "fidelity_extractors", "PRETRAINED_KEYS",
    "SCHEDULES", "ScheduleMemo", "network_mismatch", "pretrained_mismatch", "resolve_preset", "resolve_pretrained",
    "resolve_recipe", "pack", "pending_shards", "runs_per_job", "shard_job", "HASH_DIGITS", "DataSpec", "Grid",
    "ModelSpec", "RunSpec", "TaskSpec", "canonical", "data_dict", "model_dict", "run_dict", "short_hash",
]
