"""Resolution of the config's entries at parse time: a trained recipe, a pretrained source, a
sampler or restorer preset point (family, schedule, steps, start, knobs) checked and completed;
whether a network fits a dataset. Schedules are resolved and checked once per distinct
(schedule, steps, knobs) through an explicit memo (`SCHEDULES`): a preset's points share them.
Torch-free.
"""

from __future__ import annotations

import copy

from diffsweep import architectures, data, noise, pretrained, samplers
from diffsweep.grid.specs import DataSpec


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


class ScheduleMemo:
    """noise.resolve_schedule_knobs and noise.check_schedule, once per distinct (schedule, knobs)
    and (schedule, steps, knobs): the points of a preset usually share them, and a check computes
    the levels (100k runs: 85 s of a profiled build). Knobs that are not hashable (a list-valued
    knob) are resolved and checked every time. Only successes are remembered. `clear()` forgets."""

    def __init__(self):
        self.resolved: dict[tuple, dict] = {}
        self.checked: set[tuple] = set()

    def clear(self) -> None:
        self.resolved.clear()
        self.checked.clear()

    def resolve_knobs(self, schedule: str, knobs: dict, where: str) -> dict:
        """The schedule's knobs completed; a copy each time, so no two runs share a mutable dict."""
        key = _hashable((schedule, tuple(sorted(knobs.items()))))
        if key is None:
            return noise.resolve_schedule_knobs(schedule, knobs, where=where)
        if key not in self.resolved:
            self.resolved[key] = noise.resolve_schedule_knobs(schedule, knobs, where=where)
        return dict(self.resolved[key])

    def check(self, schedule: str, steps: int, knobs: dict, where: str) -> None:
        key = _hashable((schedule, steps, tuple(sorted(knobs.items()))))
        if key is None or key not in self.checked:
            noise.check_schedule(schedule, steps, knobs, where=where)
            if key is not None:
                self.checked.add(key)


def _hashable(key: tuple) -> tuple | None:
    try:
        hash(key)
    except TypeError:
        return None
    return key


# The memo of every grid this process builds (schedules are plain functions of their knobs).
SCHEDULES = ScheduleMemo()


def resolve_preset(point: dict, where: str, families=samplers, memo: ScheduleMemo = SCHEDULES) -> dict:
    """One point of a sampler (or, with families=restoration, restorer) preset: family, schedule
    and knobs checked and completed (schedules through `memo`)."""
    spec = families.get(point["family"], where=f"{where}family: ")
    schedule = point["schedule"] or spec.default_schedule
    schedule_knobs = memo.resolve_knobs(schedule, point["schedule_knobs"], where=where)
    steps = point["steps"]
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"{where}steps: expected a positive integer (or a list of them), got {steps!r}")
    memo.check(schedule, steps, schedule_knobs, where=where)
    init = spec.init if point["init"] == "default" else point["init"]
    init_knobs = samplers.resolve_init_knobs(init, point.get("init_knobs"), where=f"{where}init_knobs.")
    return {"family": spec.name, "schedule": schedule, "schedule_knobs": schedule_knobs, "steps": steps,
            "init": init, "init_knobs": init_knobs, "knobs": spec.resolve_knobs(point["knobs"], where=f"{where}knobs.")}
