"""Operators (tasks) and restorers behind names, with their knobs declared as plain data.

Nothing here imports torch: the Snakefile resolves restoration presets at parse time.

An operator family builds a linear measurement operator A for an image shape and a seed
(diffsweep.restoration.operators). A task is an operator plus the measurement noise

    y = A x + noise_std_effective * n,  n ~ N(0, I),

where the task's `noise_std` is stated against an explicit data range: on [-1, 1] it is used as
is (our images live in [-1, 1]), on [0, 1] it means noise_std_effective = 2 * noise_std.

A restorer is a function

    restorer(denoise, x, sigmas, noise, operator, y, noise_std, *, callback=None, **knobs) -> (samples, nfe)

with the sampler contract (diffsweep.samplers.registry) plus the operator, the measurement y
(one row per row of x) and noise_std = the task's noise_std_effective.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from diffsweep.knobs import Knob
from diffsweep.registry import Entry, Registry
from diffsweep.samplers.randomness import method
from diffsweep.samplers.registry import MethodSpec

# How much one unit of noise_std on a data range is in our [-1, 1] coordinates.
DATA_RANGE_SCALE = {"minus_one_one": 1.0, "zero_one": 2.0}
# A task's noise_std and data_range when it states none (the config's null); a published problem states
# neither: it draws its own noise std (OperatorFamily.prior).
DEFAULT_NOISE_STD, DEFAULT_DATA_RANGE = 0.05, "zero_one"
# The task keys a published problem refuses: it draws its own noise std and measures its own ground truth.
PROBLEM_DRAWS = ("noise_std", "data_range", "images")


def noise_std(stated: float, data_range: str) -> float:
    """noise_std_effective: a noise_std `stated` on `data_range` in [-1, 1] coordinates (one on
    [0, 1] is twice as large on [-1, 1])."""
    if data_range not in DATA_RANGE_SCALE:
        raise ValueError(f"unknown data range '{data_range}'; allowed: {', '.join(DATA_RANGE_SCALE)}")
    return stated * DATA_RANGE_SCALE[data_range]


# --- operators ---------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class OperatorFamily(Entry):
    make: Callable             # (shape, seed, **knobs) -> a LinearOperator (diffsweep.restoration.operators)
    image_only: bool = True    # needs (C, H, W) data; False: any flattened shape
    # A published problem: the (family, preset) of the dataset whose prior it conditions. Its operator
    # then carries its own ground truth, observation and noise std (restoration.posterior.ProblemOperator).
    prior: tuple = ()

    def build(self, shape, seed: int, knobs: dict):
        """The operator for data of `shape`, its random parts (mask position, kernel) drawn from `seed`."""
        return self.make(tuple(shape), seed, **knobs)



def _operator_class(class_name: str) -> Callable:
    """A builder of a built-in operator class; torch is imported when a job builds one."""
    def make(shape, seed, **knobs):
        from diffsweep.restoration import operators
        return getattr(operators, class_name)(shape, seed, **knobs)
    return make


OPERATORS = Registry("operator", OperatorFamily)
get_operator = OPERATORS.get

FACTOR = Knob("int", 2, "downsampling factor k (height and width divisible by k)", minimum=1, maximum=1024)
# Random operators (vector data): how their singular values and their measurement noise std are chosen
# (diffsweep.restoration.operators.random_factors, RandomMatrix).
SINGULAR_VALUE_RECIPES = ("sorted_uniform", "ones", "gaussian")
NOISE_RECIPES = ("task", "uniform_max_singular")
MEASUREMENTS = Knob("int", 1, "d_y, the measurement's dimension (at most the data's dimension d)", minimum=1,
                    maximum=1_000_000)
NOISE_RECIPE = Knob("str", "task", "measurement noise std: task (the task's noise_std) or uniform_max_singular "
                                   "(U(0, 1) times the largest singular value, drawn with the operator: published)",
                    choices=NOISE_RECIPES)
KERNEL_SIZE = Knob("int", 5, "blur kernel size (odd, at most the image size)", minimum=1, maximum=1025)

for _family in [
    OperatorFamily(name="sr_bicubic", make=_operator_class("BicubicDownsampling"), knobs={"factor": FACTOR},
                   description="super-resolution: antialiased bicubic downsampling by k, MATLAB imresize "
                               "(DPS, the paper's code)"),
    OperatorFamily(name="sr_avgpool", make=_operator_class("AveragePooling"), knobs={"factor": FACTOR},
                   description="super-resolution: average pooling over k x k blocks"),
    OperatorFamily(name="inpaint_random", make=_operator_class("RandomInpainting"), image_only=False,
                   knobs={"missing": Knob("float", 0.5, "fraction of pixels removed (the paper: 0.92)", minimum=0.0,
                                          maximum=1.0),
                          "per_image": Knob("bool", False, "one random mask per measured image (the reference "
                                                           "code's) instead of one per run")},
                   description="inpainting: a seeded random set of pixels is missing (all channels of a pixel "
                               "together), one set per run or per image"),
    OperatorFamily(name="inpaint_box", make=_operator_class("BoxInpainting"),
                   knobs={"size": Knob("int", 4, "side of the missing square, in pixels", minimum=1, maximum=4096)},
                   description="inpainting: a size x size square at a seeded position is missing"),
    OperatorFamily(name="inpaint_half", make=_operator_class("HalfInpainting"),
                   knobs={"side": Knob("str", "right", "which half is missing",
                                       choices=("left", "right", "top", "bottom"))},
                   description="inpainting: one half of the image is missing"),
    OperatorFamily(name="deblur_gaussian", make=_operator_class("GaussianBlur"),
                   knobs={"kernel_size": KERNEL_SIZE,
                          "std": Knob("float", 1.0, "kernel standard deviation, pixels", minimum=1e-6)},
                   description="deblurring: circular convolution with a Gaussian kernel"),
    OperatorFamily(name="random_matrix", make=_operator_class("RandomMatrix"), image_only=False,
                   knobs={"measurements": MEASUREMENTS,
                          "singular_values": Knob("str", "sorted_uniform",
                                                  "singular-value recipe: sorted_uniform (published), ones, gaussian",
                                                  choices=SINGULAR_VALUE_RECIPES),
                          "noise": NOISE_RECIPE},
                   description="a seeded random d_y x d operator on flattened data: the singular vectors of a "
                               "Gaussian matrix, singular values by recipe, measurement noise by recipe"),
    OperatorFamily(name="random_projection", make=_operator_class("RandomProjection"), image_only=False,
                   knobs={"measurements": MEASUREMENTS, "noise": NOISE_RECIPE},
                   description="a seeded random orthogonal projection onto d_y dimensions (orthonormal rows)"),
    OperatorFamily(name="deblur_motion", make=_operator_class("MotionBlur"),
                   knobs={"kernel_size": KERNEL_SIZE,
                          "intensity": Knob("float", 0.5, "how far the seeded random camera path wanders (0: a line)",
                                            minimum=0.0, maximum=1.0)},
                   description="deblurring: circular convolution with a seeded random motion-blur kernel"),
]:
    OPERATORS.add(_family)


def _grid25_pairs_problem(shape, seed, d_y: int, problem_seed: int):
    """The published problem on flattened data of `shape`; the run's seed does not enter."""
    import math

    from diffsweep.restoration.posterior import ProblemOperator, grid25_pairs_problem
    return ProblemOperator(grid25_pairs_problem(math.prod(shape), d_y, problem_seed), shape)


OPERATORS.add(OperatorFamily(
    name="grid25_pairs", make=_grid25_pairs_problem, image_only=False, prior=("gmm", "grid25_pairs"),
    knobs={"d_y": Knob("int", 1, "rows of the problem's matrix (published: 1, 2, 4)", minimum=1, maximum=1_000_000),
           "problem_seed": Knob("int", 27, "seed of the construction (27: published); the dataset's `seed`",
                                minimum=0, maximum=2 ** 63 - 1)},
    description="the published benchmark problem on the gmm grid25_pairs prior (docs/benchmarks.md): its d_y x d "
                "matrix, noise std, ground truth and one observation, drawn with the prior from one seed; the "
                "run's seed does not enter, and its task states no noise_std, data_range or images"))


# --- restorers ---------------------------------------------------------------------------

RestorerSpec = MethodSpec
RESTORERS = Registry("restorer", MethodSpec)


def register(name: str, knobs: dict[str, Knob], description: str, init: str = "sigma_max",
             default_schedule: str = "geometric"):
    """Decorator: make a restorer function available under `name` in restoration presets (wrapped:
    diffsweep.samplers.randomness.method)."""
    add = RESTORERS.register(name, description, knobs, init=init, default_schedule=default_schedule)
    return lambda fn: add(method("restorer", name, fn))


names, get = RESTORERS.names, RESTORERS.get
