"""Noise levels: sampling schedules, training sigma-distributions, loss weights, VP <-> VE.

Everything here lives in "VE coordinates" (docs/design.md): a noisy sample is x + sigma * n.
Sampling schedules return K noise levels as a float64 numpy array, largest first; they are
independent of how the network was trained (the paper's decoupling). Training
distributions draw a sigma per example. Only numpy is imported at module level, so the
Snakefile may read the schedule names without loading torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from diffsweep.knobs import Knob
from diffsweep.registry import Entry, Registry

# The DDPM / guided-diffusion forward process that the pretrained VP models were trained on.
VP_BETA_MIN = 1e-4
VP_BETA_MAX = 0.02
VP_TIMESTEPS = 1000
# Geometric VE range of score_sde's NCSN++ (FFHQ-256).
VE_SIGMA_MIN = 0.01
VE_SIGMA_MAX = 348.0
# score_sde's sampling_eps: its VE walk runs t = linspace(1, eps, K) (reference sde/__init__.py:11).
SCORE_SDE_SAMPLING_EPS = 1e-5
# Longest discrete chain a schedule or training distribution may declare (a table of this many levels).
MAX_TIMESTEPS = 1_000_000


# --- VP <-> VE ------------------------------------------------------------------------

def vp_alphas_cumprod(beta_min: float = VP_BETA_MIN, beta_max: float = VP_BETA_MAX,
                      timesteps: int = VP_TIMESTEPS) -> np.ndarray:
    """abar_t for the discrete linear-beta schedule, t = 0 .. timesteps - 1."""
    betas = np.linspace(beta_min, beta_max, timesteps, dtype=np.float64)
    return np.cumprod(1.0 - betas)


def sigma_from_alpha_bar(alpha_bar):
    """VE noise level of a VP marginal: x_t = sqrt(abar) (x + sigma n)."""
    return np.sqrt((1.0 - alpha_bar) / alpha_bar)


def alpha_bar_from_sigma(sigma):
    """Inverse of `sigma_from_alpha_bar`."""
    return 1.0 / (1.0 + np.square(sigma))


def vp_sigma_table(beta_min: float = VP_BETA_MIN, beta_max: float = VP_BETA_MAX,
                   timesteps: int = VP_TIMESTEPS) -> np.ndarray:
    """The VE sigmas of the discrete VP chain (0.0100005 .. 157.407 for the defaults)."""
    return sigma_from_alpha_bar(vp_alphas_cumprod(beta_min, beta_max, timesteps))


VP_SIGMA_MIN = float(vp_sigma_table()[0])
VP_SIGMA_MAX = float(vp_sigma_table()[-1])


# --- sampling schedules ---------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Schedule(Entry):
    fn: Callable[..., np.ndarray]   # fn(steps, **knobs) -> K levels, largest first


SCHEDULES = Registry("schedule", Schedule)

VP_CHAIN_KNOBS = {
    "beta_min": Knob("float", VP_BETA_MIN, "beta_1 of the linear-beta chain", exclusive_minimum=0.0,
                     exclusive_maximum=1.0),
    "beta_max": Knob("float", VP_BETA_MAX, "beta_T of the linear-beta chain", exclusive_minimum=0.0,
                     exclusive_maximum=1.0),
    "timesteps": Knob("int", VP_TIMESTEPS, "length T of the discrete chain", minimum=2, maximum=MAX_TIMESTEPS),
}


@SCHEDULES.register(
    "vp_pretrained", "the discrete linear-beta VP table interpolated at K evenly spaced timesteps",
    knobs=VP_CHAIN_KNOBS)
def vp_pretrained(steps, beta_min, beta_max, timesteps):
    table = vp_sigma_table(beta_min, beta_max, timesteps)
    t = np.linspace(0.0, timesteps - 1, steps)
    return np.interp(t, np.arange(timesteps), table)[::-1].copy()


@SCHEDULES.register(
    "vp_respaced", "K integer timesteps of the discrete VP chain, evenly strided "
    "(guided-diffusion's space_timesteps)",
    knobs=VP_CHAIN_KNOBS)
def vp_respaced(steps, beta_min, beta_max, timesteps):
    if steps > timesteps:
        raise ValueError(f"vp_respaced: {steps} steps exceed the chain's {timesteps} timesteps")
    table = vp_sigma_table(beta_min, beta_max, timesteps)
    stride = (timesteps - 1) / max(steps - 1, 1)
    taken = np.unique(np.round(np.arange(steps) * stride).astype(int))
    return table[taken][::-1].copy()


@SCHEDULES.register(
    "sigmoid", "the reference code's sigmoid ramp; sharpness 0.3 now, 0.5 in earlier code",
    knobs={"sigma_min": Knob("float", VP_SIGMA_MIN, "smallest noise level", exclusive_minimum=0.0),
           "sigma_max": Knob("float", VP_SIGMA_MAX, "largest noise level", exclusive_minimum=0.0),
           "sharpness": Knob("float", 0.3, "sigmoid temperature ts (0.3 now, 0.5 before)", minimum=1e-6),
           "snap": Knob("int", 0, "0: the ramp itself; n >= 2: each level moved to the nearest of n points of the "
                                  "VP table interpolated evenly in timestep (the reference code: 1000000)",
                        minimum=0, maximum=10 ** 7)})
def sigmoid(steps, sigma_min, sigma_max, sharpness, snap=0):
    def sig(z):
        return 1.0 / (1.0 + np.exp(-z))
    u = np.linspace(0.0, 1.0, steps)
    top, bottom = sig(3.0 / sharpness), sig(0.0)
    ramp = np.clip((top - sig(3.0 * u / sharpness)) / (top - bottom), 1e-9, 1.0)
    levels = sigma_min + (sigma_max - sigma_min) * ramp
    return snap_to_vp_grid(levels, snap) if snap else levels


def snap_to_vp_grid(levels: np.ndarray, points: int) -> np.ndarray:
    """Each level replaced by the nearest point (the earlier one on a tie) of the default VP sigma
    table interpolated at `points` evenly spaced timesteps: the reference code's fine grid, whose
    entries are the sigmas its sigmoid walk actually uses."""
    if points < 2:
        raise ValueError(f"snap: the grid needs at least 2 points, got {points}")
    table = vp_sigma_table()
    grid = np.interp(np.linspace(0.0, len(table) - 1, points), np.arange(len(table)), table)   # increasing
    right = np.clip(np.searchsorted(grid, levels), 1, points - 1)
    left = right - 1
    take_left = np.abs(levels - grid[left]) <= np.abs(grid[right] - levels)
    return grid[np.where(take_left, left, right)]


@SCHEDULES.register(
    "linear", "evenly spaced in sigma",
    knobs={"sigma_min": Knob("float", VP_SIGMA_MIN, "smallest noise level", exclusive_minimum=0.0),
           "sigma_max": Knob("float", VP_SIGMA_MAX, "largest noise level", exclusive_minimum=0.0)})
def linear(steps, sigma_min, sigma_max):
    return np.linspace(sigma_max, sigma_min, steps)


@SCHEDULES.register(
    "geometric", "evenly spaced in log sigma (VE / NCSN)",
    knobs={"sigma_min": Knob("float", VE_SIGMA_MIN, "smallest noise level", exclusive_minimum=0.0),
           "sigma_max": Knob("float", VE_SIGMA_MAX, "largest noise level", exclusive_minimum=0.0)})
def geometric(steps, sigma_min, sigma_max):
    return np.geomspace(sigma_max, sigma_min, steps)


@SCHEDULES.register(
    "ve_discrete", "the reference VE code's levels: score_sde's discrete table "
    "exp(linspace(log sigma_min, log sigma_max, K)) indexed by int(t_k (K - 1)), t_k = linspace(1, 1e-5, K)",
    knobs={"sigma_min": Knob("float", 2 * VE_SIGMA_MIN, "smallest level (score_sde's 0.01 on [0, 1] data)",
                             exclusive_minimum=0.0),
           "sigma_max": Knob("float", 2 * VE_SIGMA_MAX, "largest level (score_sde's 348 on [0, 1] data)",
                             exclusive_minimum=0.0)})
def ve_discrete(steps, sigma_min, sigma_max):
    table = np.exp(np.linspace(np.log(sigma_min), np.log(sigma_max), steps))
    t = np.linspace(1.0, SCORE_SDE_SAMPLING_EPS, steps)
    return table[np.floor(t * (steps - 1)).astype(int)]


def ve_continuous_levels(sigmas) -> list[float]:
    """score_sde's continuous sigma at the same steps, sigma_min (sigma_max / sigma_min)^t_k with
    t_k = linspace(1, 1e-5, K) and sigma_min, sigma_max the last and first level of `sigmas`:
    what the reference VE code feeds its network while its step size uses the `ve_discrete` level."""
    first, last = float(sigmas[0]), float(sigmas[-1])
    t = np.linspace(1.0, SCORE_SDE_SAMPLING_EPS, len(sigmas))
    return [last * (first / last) ** float(u) for u in t]


@SCHEDULES.register(
    "karras", "EDM's rho-warped schedule",
    knobs={"sigma_min": Knob("float", 0.002, "smallest noise level", exclusive_minimum=0.0),
           "sigma_max": Knob("float", 80.0, "largest noise level", exclusive_minimum=0.0),
           "rho": Knob("float", 7.0, "warp exponent", minimum=1e-6)})
def karras(steps, sigma_min, sigma_max, rho):
    u = np.linspace(0.0, 1.0, steps)
    inv = 1.0 / rho
    return (sigma_max ** inv + u * (sigma_min ** inv - sigma_max ** inv)) ** rho


def schedule_names() -> list[str]:
    return SCHEDULES.names()


def resolve_schedule_knobs(name: str, knobs: dict | None = None, where: str = "") -> dict:
    """Defaults filled in; unknown names or knobs raise ValueError naming the allowed ones.
    `where` is the config path of the preset (e.g. "samplers.rw.")."""
    schedule = SCHEDULES.get(name, where and where + "schedule: ")
    resolved = schedule.resolve_knobs(knobs, where and where + "schedule_knobs.")
    check_sigma_range(resolved, where and where + "schedule_knobs.")
    return resolved


def check_sigma_range(options: dict, where: str) -> None:
    """sigma_min < sigma_max, where both are knobs: an empty or inverted range is no schedule."""
    if "sigma_min" in options and "sigma_max" in options and not options["sigma_min"] < options["sigma_max"]:
        raise ValueError(f"{where}sigma_min: {options['sigma_min']!r} is not below sigma_max {options['sigma_max']!r}; "
                         f"allowed: sigma_min < sigma_max")


def check_schedule(name: str, steps: int, knobs: dict, where: str = "") -> None:
    """Compute the schedule once at parse time (numpy, cheap): levels that are not finite,
    positive and strictly decreasing raise ValueError naming `where` (the preset's path)."""
    try:
        make_schedule(name, steps, **knobs)
    except (ValueError, FloatingPointError, OverflowError, ZeroDivisionError) as error:
        raise ValueError(f"{where}schedule_knobs: {error}") from None


def make_schedule(name: str, steps: int, **knobs) -> np.ndarray:
    """K noise levels, largest first, float64."""
    knobs = resolve_schedule_knobs(name, knobs)
    if steps < 1:
        raise ValueError(f"schedule '{name}' needs at least 1 step, got {steps}")
    with np.errstate(all="ignore"):   # overflow and 0/0 become inf and nan, refused below
        sigmas = np.asarray(SCHEDULES.get(name).fn(steps, **knobs), dtype=np.float64)
    if not np.all(np.isfinite(sigmas)):
        raise ValueError(f"schedule '{name}' with {knobs} has non-finite noise levels")
    if steps > 1 and not np.all(np.diff(sigmas) < 0):
        raise ValueError(f"schedule '{name}' with {knobs} is not strictly decreasing")
    if np.any(sigmas <= 0):
        raise ValueError(f"schedule '{name}' with {knobs} has non-positive noise levels")
    return sigmas


# --- training sigma-distributions -----------------------------------------------------
# Each takes (n, generator) and returns a float64 tensor of n noise levels. torch is
# imported inside because these run only in training jobs.

@dataclass(frozen=True, kw_only=True)
class TrainingDistribution(Entry):
    fn: Callable                     # fn(n, generator, **knobs) -> n levels, float64 tensor


TRAINING_DISTRIBUTIONS = Registry("training sigma-distribution", TrainingDistribution)


@TRAINING_DISTRIBUTIONS.register(
    "ddpm", "discrete t ~ U{1..T} of the linear-beta VP chain, mapped to sigma_t",
    knobs=VP_CHAIN_KNOBS)
def ddpm_discrete(n, generator, beta_min, beta_max, timesteps):
    import torch
    table = torch.from_numpy(vp_sigma_table(beta_min, beta_max, timesteps))
    t = torch.randint(0, timesteps, (n,), generator=generator)
    return table[t]


def cosine_alphas_cumprod(timesteps: int = VP_TIMESTEPS, offset: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
    """abar_t of the improved-DDPM cosine chain (Nichol & Dhariwal 2021), t = 0 .. timesteps - 1:
    abar(t) = f(t) / f(0), f(t) = cos^2((t / T + s) / (1 + s) pi / 2), betas clipped at max_beta."""
    grid = np.arange(timesteps + 1, dtype=np.float64) / timesteps
    f = np.cos((grid + offset) / (1 + offset) * np.pi / 2) ** 2
    betas = np.minimum(1.0 - f[1:] / f[:-1], max_beta)
    return np.cumprod(1.0 - betas)


@TRAINING_DISTRIBUTIONS.register(
    "ddpm_cosine", "discrete t ~ U{1..T} of the cosine VP chain (improved DDPM), mapped to sigma_t",
    knobs={"offset": Knob("float", 0.008, "the cosine schedule's offset s", minimum=0.0),
           "timesteps": Knob("int", VP_TIMESTEPS, "length T of the discrete chain", minimum=2,
                             maximum=MAX_TIMESTEPS)})
def ddpm_cosine(n, generator, offset, timesteps):
    import torch
    table = torch.from_numpy(sigma_from_alpha_bar(cosine_alphas_cumprod(timesteps, offset)))
    t = torch.randint(0, timesteps, (n,), generator=generator)
    return table[t]


@TRAINING_DISTRIBUTIONS.register(
    "ve_uniform", "sigma ~ U[sigma_min, sigma_max]",
    knobs={"sigma_min": Knob("float", VE_SIGMA_MIN, "smallest noise level", exclusive_minimum=0.0),
           "sigma_max": Knob("float", 50.0, "largest noise level", exclusive_minimum=0.0)})
def ve_uniform(n, generator, sigma_min, sigma_max):
    import torch
    return sigma_min + (sigma_max - sigma_min) * torch.rand(n, generator=generator, dtype=torch.float64)


@TRAINING_DISTRIBUTIONS.register(
    "ve_loguniform", "log sigma ~ U[log sigma_min, log sigma_max] (NCSN / VE)",
    knobs={"sigma_min": Knob("float", VE_SIGMA_MIN, "smallest noise level", exclusive_minimum=0.0),
           "sigma_max": Knob("float", VE_SIGMA_MAX, "largest noise level", exclusive_minimum=0.0)})
def ve_loguniform(n, generator, sigma_min, sigma_max):
    import torch
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    return torch.exp(math.log(sigma_min) + u * (math.log(sigma_max) - math.log(sigma_min)))


@TRAINING_DISTRIBUTIONS.register(
    "edm_lognormal", "log sigma ~ N(p_mean, p_std^2) (EDM)",
    knobs={"p_mean": Knob("float", -1.2, "mean of log sigma"),
           "p_std": Knob("float", 1.2, "standard deviation of log sigma", minimum=0.0)})
def edm_lognormal(n, generator, p_mean, p_std):
    import torch
    return torch.exp(p_mean + p_std * torch.randn(n, generator=generator, dtype=torch.float64))


def training_distribution_names() -> list[str]:
    return TRAINING_DISTRIBUTIONS.names()


def resolve_training_knobs(name: str, knobs: dict | None = None, where: str = "") -> dict:
    distribution = TRAINING_DISTRIBUTIONS.get(name, where and where + "name: ")
    resolved = distribution.resolve_knobs(knobs, where and where + "knobs.")
    check_sigma_range(resolved, where and where + "knobs.")
    return resolved


def sample_training_sigmas(name: str, n: int, generator, **knobs):
    return TRAINING_DISTRIBUTIONS.get(name).fn(n, generator, **resolve_training_knobs(name, knobs))


# --- loss weights w(sigma) ------------------------------------------------------------
# The loss is w(sigma) * ||x - D(x + sigma n, sigma)||^2 (docs/design.md). Since
# x - D = sigma * (eps_hat - eps), w = sigma^-2 is exactly the DDPM eps-loss.

@dataclass(frozen=True, kw_only=True)
class LossWeight(Entry):
    fn: Callable                     # fn(sigma, sigma_data) -> w(sigma)


LOSS_WEIGHTS = Registry("loss weight", LossWeight)


@LOSS_WEIGHTS.register("x0", "w = 1: plain denoising loss")
def _plain_weight(sigma, sigma_data):
    return sigma ** 0


@LOSS_WEIGHTS.register("eps", "w = sigma^-2: the DDPM eps-prediction loss")
def _eps_weight(sigma, sigma_data):
    return sigma ** -2


@LOSS_WEIGHTS.register("score", "w = sigma^-4: the unscaled score-matching loss")
def _score_weight(sigma, sigma_data):
    return sigma ** -4


@LOSS_WEIGHTS.register("edm", "w = (sigma^2 + sd^2) / (sigma sd)^2: EDM's weighting")
def _edm_weight(sigma, sigma_data):
    return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def loss_weight(name: str, sigma, sigma_data: float = 1.0):
    return LOSS_WEIGHTS.get(name).fn(sigma, sigma_data)
