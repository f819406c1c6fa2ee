"""The paper's random walk (Park et al. 2025) and the classic samplers it contains (Table 1).

    x_{k+1} = x_k + tau_k * score(x_k, sigma_k) + sqrt(2 * tau_k * T_k) * n_k,

with the score from Tweedie, (D - x) / sigma^2. Only (tau_k, T_k) differ between samplers:

    reference  tau = eps * sigma_k^2                            T_k from T0 to 1 (`ramp`)
    ncsn       tau = eps * sigma_k^2 / (2 * sigma_ref^2)        T = 1      (sigma_ref: smallest or largest level)
    ve_sde     tau = sigma_k^2 - sigma_{k+1}^2                  T = 1/2    (sigma_K = 0)
    ddpm       tau = (1 - alpha_k) / abar_k                     T = s^2 alpha_k / (2 - 2 alpha_k)
               abar_k = 1 / (1 + sigma_k^2), alpha_k = abar_k / abar_{k+1}, s^2 = beta or beta-tilde

The reference ramps T_k linearly in the level index k (`ramp: index`, the paper's code);
`ramp: log_sigma` makes it follow the noise level instead, linear in log sigma_k between the
first and the last level: the two agree on a geometric schedule and differ on any other.

`steps_per_level` walks are taken at each level; the very last step adds no noise unless
`final_noise`. The presets `rw_ncsn`, `rw_ve_sde` and `rw_ddpm` fix the rule.

`ve_continuous_sigma` reproduces the reference VE code, which steps with score_sde's discrete
table level (schedule `ve_discrete`) but feeds its network the continuous sigma of the same step
(`noise.ve_continuous_levels`): `network` evaluates the score there, `network_and_step` takes tau
from it too, `none` (default) uses the schedule's level for both.
"""

import math

from diffsweep.noise import ve_continuous_levels
from diffsweep.samplers.levels import checked_levels, with_final_zero
from diffsweep.samplers.randomness import report
from diffsweep.samplers.registry import Knob, register

STEP_RULES = ("reference", "ncsn", "ve_sde", "ddpm")
RAMPS = ("index", "log_sigma")


def temperature_ramp(T0: float, levels: int) -> list[float]:
    """T_k linear from T0 (first level) to 1 (last level), as np.linspace(T0, 1, K)."""
    if levels == 1:
        return [1.0]
    return [T0 + (1.0 - T0) * k / (levels - 1) for k in range(levels)]


def log_sigma_ramp(T0: float, sigmas) -> list[float]:
    """T_k linear in log sigma_k, from T0 at the first level to 1 at the last."""
    first, last = math.log(sigmas[0]), math.log(sigmas[-1])
    if len(sigmas) == 1 or first == last:
        return [1.0] * len(sigmas)
    return [T0 + (1.0 - T0) * (first - math.log(s)) / (first - last) for s in sigmas]


def ramped_temperatures(ramp: str, T0: float, sigmas) -> list[float]:
    """The reference rule's T_k under `ramp` (index: the paper's code; log_sigma: follows the noise)."""
    if ramp == "index":
        return temperature_ramp(T0, len(sigmas))
    if ramp == "log_sigma":
        return log_sigma_ramp(T0, sigmas)
    raise ValueError(f"unknown ramp '{ramp}'; allowed: {', '.join(RAMPS)}")


def step_sizes(rule: str, sigmas, eps: float, T0: float, sigma_ref: str, ddpm_variance: str, ramp: str = "index"):
    """(tau_k, T_k) for every level of the schedule under one of the Table-1 rules."""
    levels = checked_levels(sigmas)
    following = with_final_zero(levels)[1:]
    if rule == "reference":
        return [eps * s ** 2 for s in levels], ramped_temperatures(ramp, T0, levels)
    if rule == "ncsn":
        reference = min(levels) if sigma_ref == "smallest" else max(levels)
        return [eps * s ** 2 / (2 * reference ** 2) for s in levels], [1.0] * len(levels)
    if rule == "ve_sde":
        return [s ** 2 - t ** 2 for s, t in zip(levels, following)], [0.5] * len(levels)
    if rule == "ddpm":
        taus, temperatures = [], []
        for s, t in zip(levels, following):
            abar, abar_next = 1 / (1 + s ** 2), 1 / (1 + t ** 2)
            alpha = abar / abar_next
            beta = 1 - alpha
            variance = beta if ddpm_variance == "beta" else beta * (1 - abar_next) / (1 - abar)
            taus.append(beta / abar)
            temperatures.append(variance * alpha / (2 * beta))
        return taus, temperatures
    raise ValueError(f"unknown step rule '{rule}'; allowed: {', '.join(STEP_RULES)}")


def walk(denoise, x, sigmas, noise, *, taus, temperatures, steps_per_level, final_noise, callback=None):
    """The template itself, for given step sizes and temperatures."""
    nfe, total = 0, len(sigmas) * steps_per_level
    for k, (sigma, tau, T) in enumerate(zip(sigmas, taus, temperatures)):
        for m in range(steps_per_level):
            denoised = denoise(x, sigma)
            score = (denoised - x) / sigma ** 2
            nfe += 1
            x = x + tau * score
            step = k * steps_per_level + m
            if final_noise or step != total - 1:
                x = x + math.sqrt(2.0 * tau * T) * noise(x)
            report(callback, step, sigma, x, denoised)
    return x, nfe


COMMON_KNOBS = {
    "steps_per_level": Knob("int", 1, "walk steps at each noise level", minimum=1, maximum=10_000),
    "final_noise": Knob("bool", False, "add noise on the very last step (the reference code does not)"),
}
EPS = Knob("float", 0.5, "step-size constant (tau = eps * sigma_k^2 for the reference rule)",
           exclusive_minimum=0.0)
T0 = Knob("float", 1.0, "initial temperature of the reference rule; ramps to 1 (see ramp)", minimum=0.0)
RAMP = Knob("str", "index", "reference rule: how T ramps from T0 to 1 - linear in the level index (the paper's "
            "code) or linear in log sigma (follows the noise level)", choices=RAMPS)
SIGMA_REF = Knob("str", "smallest", "ncsn rule: the level that normalises tau (the original NCSN: smallest; "
                 "the paper's Table 1 prints the largest)", choices=("smallest", "largest"))
VARIANCE = Knob("str", "beta_tilde", "ddpm rule: ancestral variance s^2", choices=("beta", "beta_tilde"),
                formerly="ddpm_variance")
VE_CONTINUOUS_SIGMA = Knob("str", "none", "where score_sde's continuous sigma replaces the schedule's level: none, "
                           "network (the reference VE code, with schedule ve_discrete), network_and_step",
                           choices=("none", "network", "network_and_step"))


def reference_levels(sigmas, eps: float, T0: float, ve_continuous_sigma: str, ramp: str = "index"):
    """(score levels, taus, temperatures) of the reference rule under `ve_continuous_sigma`."""
    levels = checked_levels(sigmas)
    continuous = levels if ve_continuous_sigma == "none" else ve_continuous_levels(levels)
    score_levels = continuous
    step_levels = continuous if ve_continuous_sigma == "network_and_step" else levels
    taus, temps = step_sizes("reference", step_levels, eps, T0, "smallest", "beta", ramp)
    return score_levels, taus, temps


@register(
    "random_walk",
    knobs={"step_rule": Knob("str", "reference", "which Table-1 rule sets (tau_k, T_k)", choices=STEP_RULES),
           "eps": EPS, "T0": T0, "ramp": RAMP, "sigma_ref": SIGMA_REF, "variance": VARIANCE,
           "ve_continuous_sigma": VE_CONTINUOUS_SIGMA, **COMMON_KNOBS},
    description="the paper's random walk with Tweedie; step_rule picks tau_k and T_k (reference: eps sigma^2, T0 -> 1)",
    init="unit",
    default_schedule="sigmoid",
)
def random_walk(denoise, x, sigmas, noise, *, step_rule, eps, T0, sigma_ref, variance, ve_continuous_sigma,
                steps_per_level, final_noise, ramp="index", callback=None):
    if ve_continuous_sigma != "none":
        if step_rule != "reference":
            raise ValueError(f"ve_continuous_sigma '{ve_continuous_sigma}' needs step_rule 'reference', got '{step_rule}'")
        sigmas, taus, temps = reference_levels(sigmas, eps, T0, ve_continuous_sigma, ramp)
    else:
        taus, temps = step_sizes(step_rule, sigmas, eps, T0, sigma_ref, variance, ramp)
    return walk(denoise, x, sigmas, noise, taus=taus, temperatures=temps,
                steps_per_level=steps_per_level, final_noise=final_noise, callback=callback)


@register("rw_ncsn", knobs={"eps": EPS, "sigma_ref": SIGMA_REF, **COMMON_KNOBS},
          description="random walk with NCSN's Table-1 setting: tau = eps sigma^2 / (2 sigma_ref^2), T = 1",
          init="sigma_max", default_schedule="geometric")
def rw_ncsn(denoise, x, sigmas, noise, *, eps, sigma_ref, steps_per_level, final_noise, callback=None):
    return random_walk(denoise, x, sigmas, noise, step_rule="ncsn", eps=eps, T0=1.0, sigma_ref=sigma_ref,
                       variance="beta", ve_continuous_sigma="none",
                       steps_per_level=steps_per_level, final_noise=final_noise, callback=callback)


@register("rw_ve_sde", knobs=COMMON_KNOBS,
          description="random walk with the VE-SDE's Table-1 setting: tau = sigma_k^2 - sigma_{k+1}^2, T = 1/2",
          init="sigma_max", default_schedule="geometric")
def rw_ve_sde(denoise, x, sigmas, noise, *, steps_per_level, final_noise, callback=None):
    return random_walk(denoise, x, sigmas, noise, step_rule="ve_sde", eps=0.0, T0=1.0, sigma_ref="smallest",
                       variance="beta", ve_continuous_sigma="none",
                       steps_per_level=steps_per_level, final_noise=final_noise, callback=callback)


@register("rw_ddpm", knobs={"variance": VARIANCE, **COMMON_KNOBS},
          description="random walk with DDPM's Table-1 setting: tau = (1 - alpha)/abar, T = s^2 alpha / (2 - 2 alpha)",
          init="vp_prior", default_schedule="vp_pretrained")
def rw_ddpm(denoise, x, sigmas, noise, *, variance, steps_per_level, final_noise, callback=None):
    return random_walk(denoise, x, sigmas, noise, step_rule="ddpm", eps=0.0, T0=1.0, sigma_ref="smallest",
                       variance=variance, ve_continuous_sigma="none",
                       steps_per_level=steps_per_level, final_noise=final_noise, callback=callback)
