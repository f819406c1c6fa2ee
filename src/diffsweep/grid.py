"""Expand a validated config into the sweep: data sets, models, runs and shards.

datasets x score sources x sampler presets x seeds (generation runs), and score sources x
restoration tasks x restorer presets x seeds (restoration runs), where every list-valued knob
of a model, a task or a preset is a sweep axis. Both are runs of one `RunSpec`: a generation
run draws samples, a restoration run (one with a `task`) measures and restores. Each object
gets a stable id, `<name>-<hash>`, where the hash (HASH_DIGITS hex digits of SHA-256) covers
its resolved parameters (defaults filled in), so renaming nothing and changing nothing keeps
every id, and adding a preset adds only new ids. Torch is not imported here: the Snakefile
calls this at parse time.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from diffsweep import architectures, data, noise, packing, pretrained, registry, restoration, samplers

# Keys whose value is a list by nature, not a sweep axis.
# Keys whose value is itself a list: a plain list is one value, a list of lists sweeps over them
# (unet `channels: [[16, 32], [32, 64]]` is two models).
LIST_VALUED_KEYS = {"datasets", "models", "tasks", "channels", "images"}


def canonical(obj):
    """`obj` with every mapping's keys sorted: equal content gives equal rule params, whatever
    order the config wrote (Snakemake's params trigger compares them in order)."""
    return json.loads(json.dumps(obj, sort_keys=True))


# 64 bits: a grid of a million runs collides with probability ~3e-8 (32 bits collided near 100k runs).
HASH_DIGITS = 16


def short_hash(obj, length: int = HASH_DIGITS) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def expand_axes(entry: dict) -> list[dict]:
    """All combinations of the list-valued leaves of `entry` (nested dicts included)."""
    paths, choices = [], []

    def walk(node, prefix):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, prefix + (key,))
            elif isinstance(value, list) and (key not in LIST_VALUED_KEYS or (value and all(isinstance(v, list) for v in value))):
                if not value:
                    raise ValueError(f"{'.'.join(prefix + (key,))}: an empty list sweeps over nothing")
                paths.append(prefix + (key,))
                choices.append(value)
    walk(entry, ())
    template = copy_plain(entry)
    points = []
    for combo in itertools.product(*choices):
        # copy only the mappings on the way to a swept value; the rest is shared, read-only
        point, copied = dict(template), set()
        for path, value in zip(paths, combo):
            node = point
            for depth, key in enumerate(path[:-1]):
                if path[:depth + 1] not in copied:
                    node[key] = dict(node[key])
                    copied.add(path[:depth + 1])
                node = node[key]
            node[path[-1]] = copy_plain(value)
        points.append(point)
    return points


def copy_plain(node):
    """A copy of plain config data (dicts, lists, scalars); much faster than copy.deepcopy."""
    if isinstance(node, dict):
        return {key: copy_plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [copy_plain(value) for value in node]
    return node


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

    def params(self) -> dict:
        params = {"operator": self.operator, "knobs": self.operator_knobs, "noise_std": self.noise_std,
                  "data_range": self.data_range}
        if self.images is not None:     # only given images hash: the ids of the other tasks stay
            params["images"] = list(self.images)
        return params

    def row(self) -> dict:
        return {"task": self.name, "operator": self.operator, "noise_std": self.noise_std, "data_range": self.data_range,
                "noise_std_effective": self.noise_std_effective, "n_measurements": self.n_measurements,
                **{f"operator_{k}": v for k, v in self.operator_knobs.items()}}


# Manifest columns naming the preset and its family, by run kind (tables and plots group by them).
PRESET_COLUMNS = {"generation": ("sampler", "sampler_family"), "restoration": ("restorer", "restorer_family")}
# The registry of each kind's presets' families (their declared knobs).
METHODS = {"generation": samplers, "restoration": restoration}


@dataclass(frozen=True)
class RunSpec:
    """One run: a score source, a sampler (generation) or restorer (restoration) preset point, a
    seed and a sample count; a restoration run also has its task."""
    id: str
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

    @property
    def kind(self) -> str:
        return "generation" if self.task is None else "restoration"

    def params(self) -> dict:
        """Everything that determines the run's output (what its id hashes)."""
        knobs = METHODS[self.kind].get(self.family).id_knobs(self.knobs)    # renamed knobs: ids stay
        method = {"family": self.family, "schedule": self.schedule, "schedule_knobs": self.schedule_knobs,
                  "steps": self.steps, "init": self.init, "knobs": knobs}
        if self.init_knobs:     # only starts with knobs hash them: the ids of the other runs stay
            method["init_knobs"] = self.init_knobs
        if self.task is None:
            return {**_source_params(self.model), "sampler": method, "seed": self.seed, "n_samples": self.n_samples}
        return {**_source_params(self.model, with_reference_size=True), "task": self.task.params(), "restorer": method,
                "seed": self.seed, "n_measurements": self.task.n_measurements, "n_samples": self.n_samples}

    def row(self) -> dict:
        """One flat manifest row: ids, names and every resolved parameter as a column."""
        preset, family = PRESET_COLUMNS[self.kind]
        return {"run_id": self.id, **_source_row(self.model), **(self.task.row() if self.task else {}),
                preset: self.preset, family: self.family, "schedule": self.schedule, "steps": self.steps,
                "init": self.init, "seed": self.seed, "n_samples": self.n_samples,
                **{f"schedule_{k}": v for k, v in self.schedule_knobs.items()},
                **{f"init_{k}": v for k, v in self.init_knobs.items()},
                **{f"knob_{k}": v for k, v in self.knobs.items()}}


def _source_params(model: ModelSpec, with_reference_size: bool = False) -> dict:
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
    runs: dict[str, RunSpec]          # generation runs by run id
    excluded: list[str]               # human-readable reasons for skipped combinations
    restorations: dict[str, RunSpec] = field(default_factory=dict)   # restoration runs by run id
    _rows: dict = field(default_factory=dict, repr=False)             # manifest rows by kind, made once

    @property
    def all_runs(self) -> dict[str, RunSpec]:
        """Runs of both kinds by id (ids never coincide: a restoration's hash covers its task)."""
        return {**self.runs, **self.restorations}

    def trained_models(self) -> list[ModelSpec]:
        return [m for m in self.models.values() if m.source == "trained"]

    def manifest_rows(self, kind: str = "generation") -> list[dict]:
        """The manifest rows of one kind of run, sorted by run id (made once; do not change them)."""
        if kind not in self._rows:
            runs = self.runs if kind == "generation" else self.restorations
            self._rows[kind] = [runs[run_id].row() for run_id in sorted(runs)]
        return self._rows[kind]

    def digest(self, kind: str = "generation") -> str:
        """A hash that changes when the manifest rows of a kind do (its runs, or the names around
        them): the tables' rule params carry it instead of the rows, so a changed grid
        re-aggregates without every run's parameters in the DAG."""
        runs = self.runs if kind == "generation" else self.restorations
        text = "\n".join(f"{run_id} {run.model.id} {run.model.data.id} {run.task.name if run.task else ''}"
                         for run_id, run in sorted(runs.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:HASH_DIGITS]

    def shards(self, runs_per_job) -> dict[str, list[str]]:
        """Every run packed by score source and kind, in run id order, `runs_per_job` to a shard:
        shard id `<model_id>.<hash of its run ids>` -> run ids. `runs_per_job` is a size by kind
        ({"generation": 32, "restoration": 16}) or a function of (score source, kind) (the config's,
        `runs_per_job(config)`). Done runs stay in their shard (its job skips them), so a shard's
        id and membership do not depend on when the grid is built: a cluster job that re-parses
        while other shards finish finds its own."""
        size_of = runs_per_job if callable(runs_per_job) else (lambda model, kind: runs_per_job[kind])
        groups: dict[tuple, list[str]] = {}
        models = {}
        for run_id, run in sorted(self.all_runs.items()):
            groups.setdefault((run.model.id, run.kind), []).append(run_id)
            models[run.model.id] = run.model
        shards = {}
        for (model_id, kind), run_ids in sorted(groups.items()):
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
    return model_dict(grid.models[model_id]), [run_dict(grid.all_runs[run_id]) for run_id in shards[shard_id]]


def manifest_rows(config: dict, kind: str, base_dir: str | Path = ".") -> list[dict]:
    """The manifest rows of a kind, expanded from the config (what the table jobs read), keys sorted
    as rule params had them."""
    return canonical(build(config, base_dir).manifest_rows(kind))


# --- what a job receives (its rule's params): plain dicts, keys sorted -----------------------

def data_dict(spec: DataSpec) -> dict:
    return canonical({"id": spec.id, "name": spec.name, "family": spec.family, "knobs": spec.knobs,
                      "n_train": spec.n_train, "n_reference": spec.n_reference, "seed": spec.seed})


def model_dict(model: ModelSpec) -> dict:
    return canonical({"id": model.id, "name": model.name, "source": model.source, "recipe": model.recipe,
                      "data": data_dict(model.data)})


def run_dict(run: RunSpec) -> dict:
    """A run as its shard job reads it; `task` only for a restoration run. `params` (what the id
    hashes) and `row` (the manifest row) go into its record."""
    task = run.task and {"name": run.task.name, "operator": run.task.operator,
                         "operator_knobs": run.task.operator_knobs, "noise_std": run.task.noise_std,
                         "data_range": run.task.data_range, "noise_std_effective": run.task.noise_std_effective,
                         "n_measurements": run.task.n_measurements,
                         "images": None if run.task.images is None else list(run.task.images)}
    return canonical({"id": run.id, "kind": run.kind, "family": run.family, "schedule": run.schedule,
                      "schedule_knobs": run.schedule_knobs, "steps": run.steps, "init": run.init,
                      "init_knobs": run.init_knobs, "knobs": run.knobs, "seed": run.seed, "n_samples": run.n_samples, **({"task": task} if task else {}),
                      "params": run.params(), "row": run.row()})


def build(config: dict, base_dir: str | Path = ".", models: set[str] | None = None) -> Grid:
    """The grid of a config that `diffsweep.config.prepare` has validated and completed.
    `base_dir` is where plugin file paths are relative to (the working directory). With
    `models` (model ids), only the runs of those score sources are expanded (a shard job's)."""
    registry.load_plugins(config["plugins"], base_dir)

    datasets = {}
    for name, entry in config["datasets"].items():
        knobs = data.resolve_dataset_knobs(entry["family"], entry["knobs"], where=f"datasets.{name}.")
        spec = {"family": entry["family"], "knobs": knobs, "n_train": config["data"]["n_train"],
                "n_reference": config["data"]["n_reference"], "seed": config["data"]["seed"]}
        datasets[name] = DataSpec(id=f"{name}-{short_hash(spec)}", name=name, **spec)

    models_by_id, excluded = {}, []
    for name, entry in config["models"].items():
        wanted = entry["datasets"] or list(datasets)
        for dataset_name in wanted:
            if dataset_name not in datasets:
                raise ValueError(f"models.{name}.datasets: unknown dataset '{dataset_name}'; "
                                 f"allowed: {', '.join(datasets)}")
            data_spec = datasets[dataset_name]
            if entry["source"] == "oracle":
                if not data_spec.analytic:
                    excluded.append(f"model '{name}' (oracle) x dataset '{dataset_name}': no closed-form denoiser")
                    continue
                model_id = f"{name}-{short_hash([data_spec.id, 'oracle'])}"
                models_by_id[model_id] = ModelSpec(model_id, name, "oracle", data_spec)
                continue
            if entry["source"] == "pretrained":
                recipe = resolve_pretrained(entry, where=f"models.{name}.")
                reason = pretrained_mismatch(recipe, data_spec)
                if reason:
                    excluded.append(f"model '{name}' (pretrained {recipe['format']}) x dataset '{dataset_name}': {reason}")
                    continue
                model_id = f"{name}-{short_hash([data_spec.id, recipe])}"
                models_by_id[model_id] = ModelSpec(model_id, name, "pretrained", data_spec, recipe)
                continue
            trained_keys = {k: v for k, v in entry.items() if k not in ("source", "datasets", *PRETRAINED_KEYS)}
            for recipe in expand_axes(trained_keys):
                recipe = resolve_recipe(recipe, where=f"models.{name}.")
                reason = network_mismatch(recipe, data_spec)
                if reason:
                    skipped = f"model '{name}' (trained {recipe['arch']}) x dataset '{dataset_name}': {reason}"
                    if skipped not in excluded:   # once for the points of a sweep that share the reason
                        excluded.append(skipped)
                    continue
                model_id = f"{name}-{short_hash([data_spec.id, recipe])}"
                models_by_id[model_id] = ModelSpec(model_id, name, "trained", data_spec, recipe)

    check_names(config["metrics"]["likelihood"]["models"], config["models"], "metrics.likelihood.models", "model")
    for preset_name, preset in config["samplers"].items():
        for dataset_name in preset.get("datasets", []):
            if dataset_name not in datasets:
                raise ValueError(f"samplers.{preset_name}.datasets: unknown dataset '{dataset_name}'; "
                                 f"allowed: {', '.join(datasets)}")
        check_names(preset.get("models", []), config["models"], f"samplers.{preset_name}.models", "model")
    expanded = {model_id: model for model_id, model in models_by_id.items() if models is None or model_id in models}
    runs = {}
    for model in expanded.values():
        for preset_name, preset in config["samplers"].items():
            if preset.get("datasets") and model.data.name not in preset["datasets"]:
                continue
            if preset.get("models") and model.name not in preset["models"]:
                continue
            for point in expand_axes(preset):
                run_template = resolve_preset(point, where=f"samplers.{preset_name}.")
                for seed in config["seeds"]:
                    fields = dict(model=model, preset=preset_name, seed=seed,
                                  n_samples=point.get("n_samples") or config["sampling"]["n_samples"], **run_template)
                    add_run(runs, fields, where=f"samplers.{preset_name}")
    restorations = build_restorations(config["restoration"], models_by_id, excluded, expanded) \
        if "restoration" in config else {}
    return Grid(datasets, models_by_id, runs, excluded, restorations)


def add_run(runs: dict[str, RunSpec], fields: dict, where: str) -> None:
    """Make the run of `fields` (RunSpec's fields but the id), give it its id, `<preset>-<hash
    of its params>`, and add it to `runs`."""
    run_id = f"{fields['preset']}-{short_hash(RunSpec(id='', **fields).params())}"
    if run_id in runs:
        raise ValueError(f"{where}: two grid points resolve to the same run {run_id}")
    runs[run_id] = RunSpec(id=run_id, **fields)


def check_names(names: list[str], known, where: str, what: str) -> None:
    """Every name of a preset's restriction list (models, tasks) must exist."""
    for name in names:
        if name not in known:
            raise ValueError(f"{where}: unknown {what} '{name}'; allowed: {', '.join(sorted(known))}")


def resolve_recipe(recipe: dict, where: str) -> dict:
    """A trained model's recipe with its architecture's parameters, training distribution and
    weight checked. `arch_params` stay as written (the model id hashes them; the network fills
    in the defaults)."""
    recipe = copy.deepcopy(recipe)
    architectures.check_params(recipe["arch"], recipe["arch_params"], where=f"{where}arch_params.")
    sigma_entry = recipe["train_sigma"]
    sigma_entry["knobs"] = noise.resolve_training_knobs(sigma_entry["name"], sigma_entry.get("knobs", {}),
                                                          where=f"{where}train_sigma.")
    if recipe["weight"] not in noise.LOSS_WEIGHTS:
        raise ValueError(f"{where}weight: unknown loss weight '{recipe['weight']}'; "
                         f"allowed: {', '.join(sorted(noise.LOSS_WEIGHTS))}")
    return recipe


def network_mismatch(recipe: dict, data_spec: DataSpec) -> str:
    """Why a trained network cannot take a dataset's samples ('' if it can): a UNet takes images
    whose side its levels can halve (checked where the dataset states its `resolution`)."""
    if recipe["arch"] != "unet":
        return ""
    if not data_spec.is_image:
        return f"a unet takes (C, H, W) images, not '{data_spec.family}' samples"
    levels = len(architectures.check_params("unet", recipe["arch_params"])["channels"])
    side = data_spec.knobs.get("resolution")
    if side and side % 2 ** (levels - 1):
        return (f"a unet of {levels} levels halves the image side {levels - 1} times, the dataset's images are "
                f"{side}x{side}")
    return ""


# Keys of a models entry that only a pretrained source reads (it reads arch_params too).
PRETRAINED_KEYS = ("format", "checkpoint", "weights")


def resolve_pretrained(entry: dict, where: str) -> dict:
    """A pretrained source's entry: format, checkpoint path (as written: the id hashes the
    string, the file is only read by the job), weights, and the architecture overrides: those
    the checkpoint declares beside it (`<checkpoint>.arch.yaml`), then the entry's `arch_params`."""
    pretrained.FORMATS.get(entry["format"], f"{where}format: ").resolve_knobs(entry["arch_params"],
                                                                            where=f"{where}arch_params.")
    if not entry["checkpoint"]:
        raise ValueError(f"{where}checkpoint: a pretrained model needs the path of its checkpoint file")
    arch = {**pretrained.checkpoint_arch(entry["format"], entry["checkpoint"], where=where), **entry["arch_params"]}
    pretrained.resolve_arch(entry["format"], arch, where=where)   # the keywords together fit
    return {"format": entry["format"], "checkpoint": entry["checkpoint"], "weights": entry["weights"],
            "arch_params": copy.deepcopy(arch)}


def pretrained_mismatch(recipe: dict, data_spec: DataSpec) -> str:
    """Why a pretrained network cannot denoise a dataset's samples ('' if it can): it takes
    images of one size and channel count."""
    channels, size = pretrained.image_shape(recipe["format"], recipe["arch_params"])
    knobs = data_spec.knobs
    if "resolution" not in knobs or "channels" not in knobs:
        return f"the network takes {channels}x{size}x{size} images, not '{data_spec.family}' samples"
    # resolution 0 (an image folder's own size): the first image's header tells it; None when the
    # folder is not there yet (DIFFSWEEP_SKIP_PATH_CHECKS), and the network is assumed to fit.
    try:
        side = knobs["resolution"] or data.native_resolution(knobs["path"], knobs["crop"])
    except data.DataFileError as error:
        raise ValueError(f"datasets.{data_spec.name}.knobs.{error}") from None
    if side is not None and (knobs["channels"], side) != (channels, size):
        return f"the network takes {channels}x{size}x{size} images, the dataset has {knobs['channels']}x{side}x{side}"
    return ""


def resolve_schedule_knobs(schedule: str, knobs: dict, where: str, cache: dict = {}) -> dict:  # noqa: B006
    """noise.resolve_schedule_knobs, once per distinct (schedule, knobs): the points of a preset
    usually share them. A copy each time, so no two runs share a mutable dict."""
    try:
        key = (schedule, tuple(sorted(knobs.items())))
        hash(key)
    except TypeError:     # a list-valued knob: resolved every time
        return noise.resolve_schedule_knobs(schedule, knobs, where=where)
    if key not in cache:
        cache[key] = noise.resolve_schedule_knobs(schedule, knobs, where=where)
    return dict(cache[key])


def check_schedule(schedule: str, steps: int, knobs: dict, where: str, checked: set = set()) -> None:  # noqa: B006
    """noise.check_schedule, once per distinct (schedule, steps, knobs) that passed: it computes
    the levels, and the points of a preset usually share them (100k runs: 85 s of a profiled build)."""
    try:
        key = (schedule, steps, tuple(sorted(knobs.items())))
        hash(key)
    except TypeError:
        key = None
    if key is None or key not in checked:
        noise.check_schedule(schedule, steps, knobs, where=where)
        if key is not None:
            checked.add(key)


def resolve_preset(point: dict, where: str, methods=samplers) -> dict:
    """One point of a sampler (or, with methods=restoration, restorer) preset: family, schedule
    and knobs checked and completed."""
    spec = methods.get(point["family"], where=f"{where}family: ")
    schedule = point["schedule"] or spec.default_schedule
    schedule_knobs = resolve_schedule_knobs(schedule, point["schedule_knobs"], where=where)
    steps = point["steps"]
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"{where}steps: expected a positive integer (or a list of them), got {steps!r}")
    check_schedule(schedule, steps, schedule_knobs, where=where)
    init = spec.init if point["init"] == "default" else point["init"]
    init_knobs = samplers.resolve_init_knobs(init, point.get("init_knobs"), where=f"{where}init_knobs.")
    return {"family": spec.name, "schedule": schedule, "schedule_knobs": schedule_knobs, "steps": steps,
            "init": init, "init_knobs": init_knobs, "knobs": spec.resolve_knobs(point["knobs"], where=f"{where}knobs.")}


# Sets the digits classifier (diffsweep.fidelity) understands.
DIGITS_FAMILIES = ("digits", "digits_gmm")


def fidelity_extractors(data_spec: DataSpec, options: dict) -> list[str]:
    """The torch-fidelity feature extractors that score a dataset's samples (config `fidelity`).
    Inception is listed even without weights, so every image run records why it was skipped."""
    if not options["enabled"] or not data_spec.is_image:
        return []
    return (["digits"] if data_spec.family in DIGITS_FAMILIES else []) + ["inception"]


def build_restorations(section: dict, models: dict[str, ModelSpec], excluded: list[str],
                       expanded: dict[str, ModelSpec] | None = None) -> dict[str, RunSpec]:
    """models (named in section['models'], default all) x tasks x restorer presets x seeds; list values sweep.
    Operators that need images skip flat datasets (recorded in `excluded`). Only the runs of
    `expanded` (default: all models) are made."""
    known_models = {m.name for m in models.values()}
    for index, name in enumerate(section["models"]):
        if name not in known_models:
            raise ValueError(f"restoration.models[{index}]: unknown model '{name}'; allowed: {', '.join(sorted(known_models))}")
    known_datasets = {m.data.name for m in models.values()}
    for index, name in enumerate(section["datasets"]):
        if name not in known_datasets:
            raise ValueError(f"restoration.datasets[{index}]: unknown dataset '{name}'; "
                             f"allowed: {', '.join(sorted(known_datasets))}")
    tasks = []
    for task_name, entry in section["tasks"].items():
        where = f"restoration.tasks.{task_name}."
        family = restoration.get_operator(entry["operator"], where=f"{where}operator: ")
        for point in expand_axes(entry):
            if point["noise_std"] <= 0:
                raise ValueError(f"{where}noise_std: must be > 0 (the likelihood needs measurement noise), "
                                 f"got {point['noise_std']}")
            task = TaskSpec(name=task_name, operator=family.name,
                            operator_knobs=family.resolve_knobs(point["knobs"], where=f"{where}knobs."),
                            noise_std=float(point["noise_std"]), data_range=point["data_range"],
                            n_measurements=len(point["images"]) if point.get("images") else section["n_measurements"],
                            images=tuple(point["images"]) if point.get("images") else None)
            tasks.append((family, task))
    presets = []
    for preset_name, preset in section["restorers"].items():
        check_names(preset.get("models", []), known_models, f"restoration.restorers.{preset_name}.models", "model")
        check_names(preset.get("tasks", []), section["tasks"], f"restoration.restorers.{preset_name}.tasks", "task")
        for point in expand_axes(preset):
            presets.append((preset_name, preset, resolve_preset(point, where=f"restoration.restorers.{preset_name}.",
                                                                methods=restoration)))
    runs = {}
    for model in (models if expanded is None else expanded).values():
        if section["models"] and model.name not in section["models"]:
            continue
        if section["datasets"] and model.data.name not in section["datasets"]:
            continue
        image = data.is_image(model.data.family)
        for family, task in tasks:
            if family.image_only and not image:
                excluded.append(f"restoration task '{task.name}' ({family.name}) x dataset '{model.data.name}': "
                                "needs (C, H, W) images")
                continue
            if task.images and max(task.images) >= model.data.n_reference:
                raise ValueError(f"restoration.tasks.{task.name}.images: index {max(task.images)} is beyond the "
                                 f"reference set of dataset '{model.data.name}' ({model.data.n_reference} samples: "
                                 f"0 .. {model.data.n_reference - 1})")
            for preset_name, preset, template in presets:
                if preset.get("models") and model.name not in preset["models"]:
                    continue
                if preset.get("tasks") and task.name not in preset["tasks"]:
                    continue
                for seed in section["seeds"]:
                    fields = dict(model=model, preset=preset_name, seed=seed, n_samples=section["n_samples"],
                                  task=task, **template)
                    add_run(runs, fields, where=f"restoration.restorers.{preset_name}")
    return runs
