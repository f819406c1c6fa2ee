"""Expand a validated config into the sweep: data sets, models and the runs of every kind.

datasets x score sources x sampler presets x seeds (generation runs), and score sources x
restoration tasks x restorer presets x seeds (restoration runs), where every list-valued knob
of a model, a task or a preset is a sweep axis; each kind's expansion is its entry's `expand`
(diffsweep.runs.kinds), called by `build`. Torch is not imported here: the Snakefile calls this
at parse time.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from diffsweep import data, registry, restoration
from diffsweep.grid.resolve import (PRETRAINED_KEYS, network_mismatch, pretrained_mismatch, resolve_preset,
                                    resolve_pretrained, resolve_recipe)
from diffsweep.grid.specs import DataSpec, Grid, ModelSpec, RunSpec, TaskSpec, canonical, short_hash
from diffsweep.runs import kinds


# Keys whose value is a list by nature, not a sweep axis.
# Keys whose value is itself a list: a plain list is one value, a list of lists sweeps over them
# (unet `channels: [[16, 32], [32, 64]]` is two models).
LIST_VALUED_KEYS = {"datasets", "models", "tasks", "channels", "images"}


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
    for kind in kinds.KINDS.entries():
        runs.update(kind.expand(config, models_by_id, excluded, expanded))
    # the adaptive searches' rungs planned so far (grid.search): runs of their own shard groups
    from diffsweep.grid import search   # (search builds on this module)

    searched, search_groups = search.expand(config, expanded, kinds.GENERATION)
    groups = {run_id: group for run_id, group in search_groups.items() if run_id not in runs}
    runs.update({run_id: searched[run_id] for run_id in groups})
    return Grid(datasets, models_by_id, runs, excluded, groups)


def build_generation(config: dict, expanded: dict[str, ModelSpec], kind) -> dict[str, RunSpec]:
    """models of `expanded` x sampler presets (their `datasets` and `models`) x preset points x seeds
    (the dataset's own `seeds` where it names them, else the top-level `seeds`). A preset a search
    names (`search.<name>.samplers`) runs only its search's rungs (grid.search)."""
    searched = {preset for search in config.get("search", {}).values() for preset in search["samplers"]}
    runs = {}
    for model in expanded.values():
        for preset_name, preset in config["samplers"].items():
            if preset_name in searched:
                continue
            if preset.get("datasets") and model.data.name not in preset["datasets"]:
                continue
            if preset.get("models") and model.name not in preset["models"]:
                continue
            for point in expand_axes(preset):
                run_template = resolve_preset(point, where=f"samplers.{preset_name}.")
                for seed in config["datasets"][model.data.name]["seeds"] or config["seeds"]:
                    fields = dict(kind=kind.name, model=model, preset=preset_name, seed=seed,
                                  n_samples=point.get("n_samples") or config["sampling"]["n_samples"], **run_template)
                    add_run(runs, fields, where=f"{kind.presets}.{preset_name}")
    return runs


def add_run(runs: dict[str, RunSpec], fields: dict, where: str) -> None:
    """Make the run of `fields` (RunSpec's fields but the id), give it its id, `<preset>-<hash
    of its identity>`, and add it to `runs`."""
    run_id = f"{fields['preset']}-{short_hash(RunSpec(id='', **fields).identity())}"
    if run_id in runs:
        raise ValueError(f"{where}: two grid points resolve to the same run {run_id}")
    runs[run_id] = RunSpec(id=run_id, **fields)


def check_names(names: list[str], known, where: str, what: str) -> None:
    """Every name of a preset's restriction list (models, tasks) must exist."""
    for name in names:
        if name not in known:
            raise ValueError(f"{where}: unknown {what} '{name}'; allowed: {', '.join(sorted(known))}")


def build_restorations(section: dict, models: dict[str, ModelSpec], excluded: list[str],
                       expanded: dict[str, ModelSpec] | None, kind) -> dict[str, RunSpec]:
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
                            n_measurements=(1 if family.prior else len(point["images"]) if point.get("images")
                                            else section["n_measurements"]),   # a problem: one observation
                            images=tuple(point["images"]) if point.get("images") else None)
            tasks.append((family, task))
    presets = []
    for preset_name, preset in section["restorers"].items():
        check_names(preset.get("models", []), known_models, f"restoration.restorers.{preset_name}.models", "model")
        check_names(preset.get("tasks", []), section["tasks"], f"restoration.restorers.{preset_name}.tasks", "task")
        for point in expand_axes(preset):
            presets.append((preset_name, preset, resolve_preset(point, where=f"{kind.presets}.{preset_name}.",
                                                                families=kind.families())))
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
            if family.prior and (model.data.family, model.data.knobs.get("preset")) != family.prior:
                excluded.append(f"restoration task '{task.name}' ({family.name}) x dataset '{model.data.name}': "
                                f"the problem conditions the prior of {' preset '.join(family.prior)}")
                continue
            if family.prior:
                check_problem_prior(task, model.data)
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
                    fields = dict(kind=kind.name, model=model, preset=preset_name, seed=seed,
                                  n_samples=section["n_samples"], task=task, **template)
                    add_run(runs, fields, where=f"{kind.presets}.{preset_name}")
    return runs


def check_problem_prior(task: TaskSpec, dataset: DataSpec) -> None:
    """A published problem draws its prior with its operator from one seed: the dataset must be that
    prior, unscaled, drawn from the same seed."""
    where = f"restoration.tasks.{task.name}.knobs.problem_seed"
    if dataset.knobs.get("scale", 1.0) != 1.0:
        raise ValueError(f"datasets.{dataset.name}.knobs.scale: task '{task.name}' ({task.operator}) is the published "
                         f"problem on the unscaled prior; got scale {dataset.knobs['scale']}")
    if task.operator_knobs["problem_seed"] != dataset.knobs.get("seed"):
        raise ValueError(f"{where}: {task.operator_knobs['problem_seed']} is not the seed of dataset '{dataset.name}' "
                         f"({dataset.knobs.get('seed')}), whose prior the problem conditions; give the same seed to both")


def manifest(config: dict, base_dir: str | Path = ".") -> list[dict]:
    """The manifest of every run of the config (Grid.manifest), keys sorted as rule params had them."""
    return canonical(build(config, base_dir).manifest())


def manifest_rows(config: dict, kind: str, base_dir: str | Path = ".") -> list[dict]:
    """The manifest rows of a kind, expanded from the config (what the table jobs read), keys sorted
    as rule params had them."""
    return canonical(build(config, base_dir).manifest_rows(kind))
