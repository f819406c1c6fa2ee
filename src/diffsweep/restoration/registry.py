"""Operators (tasks) and restorers behind names, with their knobs declared as plain data.

Nothing here imports torch: the Snakefile resolves restoration presets at parse time.

An operator family builds a linear measurement operator A for an image shape and a seed
(diffsweep.restoration.operators). A task is an operator plus the measurement noise

    y = A x + noise_std_effective * n,  n ~ N(0, I),

where the task's `noise_std` is stated against an explicit data range: on [-1, 1] it is used as
is (our images live in [-1, 1]), on [0, 1] it means noise_std_effective = 2 * noise_std.

A restorer is a function

    restorer(denoise, x, sigmas, generator, operator, y, noise_std, **knobs) -> (samples, nfe)

with the sampler contract (diffsweep.samplers.registry) plus the operator, the measurement y
(one row per row of x) and noise_std = the task's noise_std_effective.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from diffsweep.knobs import Knob, resolve_knobs
from diffsweep.samplers.registry import MethodSpec, Registry

# How much one unit of noise_std on a data range is in our [-1, 1] coordinates.
DATA_RANGE_SCALE = {"minus_one_one": 1.0, "zero_one": 2.0}


def noise_std(stated: float, data_range: str) -> float:
    """noise_std_effective: a noise_std `stated` on `data_range` in [-1, 1] coordinates (one on
    [0, 1] is twice as large on [-1, 1])."""
    if data_range not in DATA_RANGE_SCALE:
        raise ValueError(f"unknown data range '{data_range}'; allowed: {', '.join(DATA_RANGE_SCALE)}")
    return stated * DATA_RANGE_SCALE[data_range]


# --- operators ---------------------------------------------------------------------------

@dataclass(frozen=True)
class OperatorFamily:
    name: str
    class_name: str            # in diffsweep.restoration.operators
    knobs: dict[str, Knob]
    description: str
    image_only: bool = True     # needs (C, H, W) data; False: any flattened shape

    def resolve_params(self, given: dict, where: str = "") -> dict:
        return resolve_knobs(self.knobs, given, f"operator '{self.name}'", where)

    def build(self, shape, seed: int, params: dict):
        """The operator for data of `shape`, its random parts (mask position, kernel) drawn from `seed`."""
        module = importlib.import_module("diffsweep.restoration.operators")
        return getattr(module, self.class_name)(tuple(shape), seed, **params)


FACTOR = Knob("int", 2, "downsampling factor k (height and width divisible by k)", minimum=1)
KERNEL_SIZE = Knob("int", 5, "blur kernel size (odd, at most the image size)", minimum=1)

OPERATORS = {family.name: family for family in [
    OperatorFamily("sr_bicubic", "BicubicDownsampling", {"factor": FACTOR},
                   "super-resolution: antialiased bicubic downsampling by k, MATLAB imresize (DPS, the paper's code)"),
    OperatorFamily("sr_avgpool", "AveragePooling", {"factor": FACTOR},
                   "super-resolution: average pooling over k x k blocks"),
    OperatorFamily("inpaint_random", "RandomInpainting",
                   {"missing": Knob("float", 0.5, "fraction of pixels removed (the paper: 0.92)", minimum=0.0,
                                    maximum=1.0)},
                   "inpainting: a seeded random set of pixels is missing (all channels of a pixel together)",
                   image_only=False),
    OperatorFamily("inpaint_box", "BoxInpainting",
                   {"size": Knob("int", 4, "side of the missing square, in pixels", minimum=1)},
                   "inpainting: a size x size square at a seeded position is missing"),
    OperatorFamily("inpaint_half", "HalfInpainting",
                   {"side": Knob("str", "right", "which half is missing", choices=("left", "right", "top", "bottom"))},
                   "inpainting: one half of the image is missing"),
    OperatorFamily("deblur_gaussian", "GaussianBlur",
                   {"kernel_size": KERNEL_SIZE, "std": Knob("float", 1.0, "kernel standard deviation, pixels",
                                                            minimum=1e-6)},
                   "deblurring: circular convolution with a Gaussian kernel"),
    OperatorFamily("deblur_motion", "MotionBlur",
                   {"kernel_size": KERNEL_SIZE,
                    "intensity": Knob("float", 0.5, "how far the seeded random camera path wanders (0: a line)",
                                      minimum=0.0, maximum=1.0)},
                   "deblurring: circular convolution with a seeded random motion-blur kernel"),
]}


def get_operator(name: str, where: str = "") -> OperatorFamily:
    if name not in OPERATORS:
        raise ValueError(f"{where}unknown operator '{name}'; allowed: {', '.join(sorted(OPERATORS))}")
    return OPERATORS[name]


# --- restorers ---------------------------------------------------------------------------

RESTORERS = Registry("restorer")
register, names, get = RESTORERS.register, RESTORERS.names, RESTORERS.get
RestorerSpec = MethodSpec
