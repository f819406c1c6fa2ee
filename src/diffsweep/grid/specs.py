"""The grid's types and ids: DataSpec, ModelSpec, TaskSpec, RunSpec (one run of a kind), the
Grid (every run in one map, a view per kind, the manifest), the stable ids (`short_hash`) and
what a job receives of them (`data_dict`, `model_dict`, `run_dict`: plain dicts, keys sorted).

Each object gets a stable id, `<name>-<hash>`, where the hash (HASH_DIGITS hex digits of
SHA-256) covers its identity (`RunSpec.identity`: its resolved parameters, defaults filled in),
so changing nothing keeps every id and adding a preset adds only new ids. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

from diffsweep import data, restoration
from diffsweep.runs import kinds


def canonical(obj):
    """`obj` with every mapping's keys sorted: equal content gives equal rule params, whatever
    order the config wrote (Snakemake's params trigger compares them in order)."""
    return json.loads(json.dumps(obj, sort_keys=True))


# 64 bits: a grid of a million runs collides with probability ~3e-8 (32 bits collided near 100k runs).
HASH_DIGITS = 16


def short_hash(obj, length: int = HASH_DIGITS) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


@dataclass(frozen=True)
class DataSpec:
    id: str
    name: str
    family: str
    knobs: dict
    n_train: int
    n_reference: int
    seed: int

    @property
    def analytic(self) -> bool:
        return data.is_analytic(self.family)

    @property
    def is_image(self) -> bool:
        return data.is_image(self.family)


@dataclass(frozen=True)
class ModelSpec:
    id: str
    name: str
    source: str
    data: DataSpec
    recipe: dict = field(default_factory=dict)  # resolved training recipe, or the pretrained checkpoint's entry


@dataclass(frozen=True)
class TaskSpec:
    """What a restoration run measures: y = A x + noise_std_effective n, for the first
    `n_measurements` reference samples x, or for the reference samples `images` (indices) when
    given. `noise_std` is stated on `data_range`."""
    name: str
    operator: str
    operator_knobs: dict
    noise_std: float
    data_range: str
    n_measurements: int
    images: tuple | None = None

    @property
    def noise_std_effective(self) -> float:
        """The measurement noise's std in the model's [-1, 1] coordinates."""
        return restoration.noise_std(self.noise_std, self.data_range)

    def identity(self) -> dict:
        identity = {"operator": self.operator, "knobs": self.operator_knobs, "noise_std": self.noise_std,
                    "data_range": self.data_range}
        if self.images is not None:     # only given images hash: the ids of the other tasks stay
            identity["images"] = list(self.images)
        return identity

    def row(self) -> dict:
        return {"task": self.name, "operator": self.operator, "noise_std": self.noise_std, "data_range": self.data_range,
                "noise_std_effective": self.noise_std_effective, "n_measurements": self.n_measurements,
                **{f"operator_{k}": v for k, v in self.operator_knobs.items()}}


@dataclass(frozen=True)
class RunSpec:
    """One run of a kind (diffsweep.runs.kinds): a score source, a sampler (generation) or restorer
    (restoration) preset point, a seed and a sample count; a restoration run also has its task."""
    id: str
    kind: str
    model: ModelSpec
    preset: str
    family: str
    schedule: str
    schedule_knobs: dict
    steps: int
    init: str
    knobs: dict
    seed: int
    n_samples: int
    task: TaskSpec | None = None
    init_knobs: dict = field(default_factory=dict)     # the start's knobs (init: gaussian), {} for the others

    def identity(self) -> dict:
        """Everything that determines the run's output (what its id hashes)."""
        knobs = kinds.get(self.kind).families().get(self.family).id_knobs(self.knobs)    # renamed knobs: ids stay
        method = {"family": self.family, "schedule": self.schedule, "schedule_knobs": self.schedule_knobs,
                  "steps": self.steps, "init": self.init, "knobs": knobs}
        if self.init_knobs:     # only starts with knobs hash them: the ids of the other runs stay
            method["init_knobs"] = self.init_knobs
        if self.task is None:
            return {**_source_identity(self.model), "sampler": method, "seed": self.seed, "n_samples": self.n_samples}
        return {**_source_identity(self.model, with_reference_size=True), "task": self.task.identity(), "restorer": method,
                "seed": self.seed, "n_measurements": self.task.n_measurements, "n_samples": self.n_samples}

    def row(self) -> dict:
        """One flat manifest row: ids, names and every resolved parameter as a column."""
        preset, family = kinds.get(self.kind).preset_columns
        return {"run_id": self.id, **_source_row(self.model), **(self.task.row() if self.task else {}),
                preset: self.preset, family: self.family, "schedule": self.schedule, "steps": self.steps,
                "init": self.init, "seed": self.seed, "n_samples": self.n_samples,
                **{f"schedule_{k}": v for k, v in self.schedule_knobs.items()},
                **{f"init_{k}": v for k, v in self.init_knobs.items()},
                **{f"knob_{k}": v for k, v in self.knobs.items()}}


def _source_identity(model: ModelSpec, with_reference_size: bool = False) -> dict:
    """The dataset and score source part of a run's identity."""
    data_part = {"family": model.data.family, "knobs": model.data.knobs, "n_train": model.data.n_train,
                 "seed": model.data.seed}
    if with_reference_size:   # restoration draws its ground truths from the reference set
        data_part["n_reference"] = model.data.n_reference
    return {"data": data_part, "model": {"source": model.source, "recipe": model.recipe}}


def _source_row(model: ModelSpec) -> dict:
    """Manifest columns naming the dataset and score source, with their parameters."""
    return {"dataset": model.data.name, "dataset_family": model.data.family, "data_id": model.data.id,
            "model": model.name, "model_source": model.source, "model_id": model.id,
            **{f"dataset_{k}": v for k, v in model.data.knobs.items()}, **_flatten(model.recipe, "model_")}


def _flatten(node: dict, prefix: str) -> dict:
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}_"))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@dataclass
class Grid:
    datasets: dict[str, DataSpec]
    models: dict[str, ModelSpec]      # by model id
    runs: dict[str, RunSpec]          # every run, of every kind, by run id (a kind's hash covers what sets it apart)
    excluded: list[str]               # human-readable reasons for skipped combinations
    groups: dict[str, str] = field(default_factory=dict)   # run id -> shard group of a search rung (grid.search)
    _views: dict = field(default_factory=dict, repr=False)            # runs and manifest rows by kind, made once

    def of_kind(self, kind: str) -> dict[str, RunSpec]:
        """The runs of one kind by run id (a view made once; do not change it)."""
        key = ("runs", kinds.get(kind).name)
        if key not in self._views:
            self._views[key] = {run_id: run for run_id, run in self.runs.items() if run.kind == kind}
        return self._views[key]

    def add(self, runs: list[RunSpec], group: str) -> None:
        """Runs planned after the grid was built (a search's next rung, grid.search), in `group`."""
        for run in runs:
            self.runs[run.id] = run
            self.groups[run.id] = group
        self._views.clear()

    def trained_models(self) -> list[ModelSpec]:
        return [m for m in self.models.values() if m.source == "trained"]

    def manifest_rows(self, kind: str) -> list[dict]:
        """The manifest rows of one kind of run, sorted by run id (made once; do not change them)."""
        key = ("rows", kinds.get(kind).name)
        if key not in self._views:
            runs = self.of_kind(kind)
            self._views[key] = [runs[run_id].row() for run_id in sorted(runs)]
        return self._views[key]

    def manifest(self) -> list[dict]:
        """The manifest of the whole grid: the manifest rows of every kind, each with its `kind`."""
        return [{"kind": kind, **row} for kind in kinds.names() for row in self.manifest_rows(kind)]

    def digest(self, kind: str | None = None) -> str:
        """A hash that changes when the manifest rows of a kind (None: of every kind) do (its runs,
        or the names around them): the tables' rule params carry it instead of the rows, so a
        changed grid re-aggregates without every run's parameters in the DAG."""
        runs = self.runs if kind is None else self.of_kind(kind)
        text = "\n".join(f"{run_id} {run.model.id} {run.model.data.id} {run.task.name if run.task else ''}"
                         for run_id, run in sorted(runs.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:HASH_DIGITS]

    def shards(self, runs_per_job) -> dict[str, list[str]]:
        """Every run packed by score source and kind, in run id order, `runs_per_job` to a shard:
        shard id `<model_id>.<hash of its run ids>` -> run ids. `runs_per_job` is a size by kind
        (the kind name -> a size) or a function of (score source, kind) (the config's,
        `runs_per_job(config)`). Done runs stay in their shard (its job skips them), so a shard's
        id and membership do not depend on when the grid is built: a cluster job that re-parses
        while other shards finish finds its own. A search rung's runs (`groups`) are packed apart,
        so a cut that adds a rung moves no other shard."""
        from diffsweep.grid.shards import pack

        return pack(self.runs, runs_per_job, self.groups)


def data_dict(spec: DataSpec) -> dict:
    return canonical({"id": spec.id, "name": spec.name, "family": spec.family, "knobs": spec.knobs,
                      "n_train": spec.n_train, "n_reference": spec.n_reference, "seed": spec.seed})


def model_dict(model: ModelSpec) -> dict:
    return canonical({"id": model.id, "name": model.name, "source": model.source, "recipe": model.recipe,
                      "data": data_dict(model.data)})


def run_dict(run: RunSpec) -> dict:
    """A run as its shard job reads it; `task` only for a restoration run. `identity` (what the id
    hashes; the record's `params`) and `row` (the manifest row) go into its record."""
    task = run.task and {"name": run.task.name, "operator": run.task.operator,
                         "operator_knobs": run.task.operator_knobs, "noise_std": run.task.noise_std,
                         "data_range": run.task.data_range, "noise_std_effective": run.task.noise_std_effective,
                         "n_measurements": run.task.n_measurements,
                         "images": None if run.task.images is None else list(run.task.images)}
    return canonical({"id": run.id, "kind": run.kind, "family": run.family, "schedule": run.schedule,
                      "schedule_knobs": run.schedule_knobs, "steps": run.steps, "init": run.init,
                      "init_knobs": run.init_knobs, "knobs": run.knobs, "seed": run.seed, "n_samples": run.n_samples, **({"task": task} if task else {}),
                      "identity": run.identity(), "row": run.row()})
