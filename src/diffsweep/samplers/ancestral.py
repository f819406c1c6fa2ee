"""Euler ancestral, DPM-2 and DPM-2 ancestral, as in k-diffusion (Crowson, `k_diffusion/sampling.py`:
`sample_euler_ancestral`, `sample_dpm_2`, `sample_dpm_2_ancestral`), on the probability-flow ODE
dx/dsigma = d(x, sigma) = (x - D(x, sigma)) / sigma.

A step from sigma_k to sigma_{k+1} is a deterministic move to sigma_down followed by fresh noise
of std sigma_up (`ancestral_sigmas`, dpm.py):
    sigma_up = min(sigma_{k+1}, eta sqrt(sigma_{k+1}^2 (sigma_k^2 - sigma_{k+1}^2) / sigma_k^2)),
    sigma_down = sqrt(sigma_{k+1}^2 - sigma_up^2),    x <- move(x) + s_noise sigma_up n.
Euler move: x <- x + (sigma_down - sigma_k) d(x, sigma_k), one evaluation.
DPM-2 move (DPM-Solver-2 of Lu et al. 2022 in Karras et al.'s sigma time): the slope at the
geometric midpoint sigma_mid = sqrt(sigma_k sigma_down), reached by an Euler step, drives the step,
    x_mid = x + (sigma_mid - sigma_k) d(x, sigma_k),   x <- x + (sigma_down - sigma_k) d(x_mid, sigma_mid),
two evaluations (one for the Euler step to 0). With eta = 0 there is no noise: `euler_ancestral`
is then `pf_ode` Euler and `dpm_2_ancestral` is `dpm_2`. k-diffusion's `sample_dpm_2` also takes
EDM's churn knobs; churn lives in `edm` here, so `dpm_2` is the deterministic solver.
"""

import math

from diffsweep.samplers.dpm import ancestral_sigmas
from diffsweep.samplers.levels import steps_to_zero
from diffsweep.samplers.randomness import report
from diffsweep.samplers.registry import Knob, register

ANCESTRAL_KNOBS = {
    "eta": Knob("float", 1.0, "ancestral noise fraction (0: the deterministic solver)", minimum=0.0),
    "s_noise": Knob("float", 1.0, "scale of the ancestral noise", minimum=0.0),
}


def euler_move(denoise, x, sigma, denoised, sigma_to):
    """(x at sigma_to, extra evaluations): one Euler step of the ODE."""
    return x + (sigma_to - sigma) * (x - denoised) / sigma, 0


def midpoint_move(denoise, x, sigma, denoised, sigma_to):
    """(x at sigma_to, extra evaluations): DPM-Solver-2 through the geometric midpoint; Euler to 0."""
    if sigma_to == 0:
        return euler_move(denoise, x, sigma, denoised, sigma_to)
    sigma_mid = math.sqrt(sigma * sigma_to)
    x_mid = x + (sigma_mid - sigma) * (x - denoised) / sigma
    return x + (sigma_to - sigma) * (x_mid - denoise(x_mid, sigma_mid)) / sigma_mid, 1


def ancestral_walk(denoise, x, sigmas, noise, move, eta, s_noise, callback):
    nfe = 0
    for step, (sigma, sigma_next) in enumerate(steps_to_zero(sigmas)):
        denoised = denoise(x, sigma)
        sigma_down, sigma_up = ancestral_sigmas(sigma, sigma_next, eta)
        x, extra = move(denoise, x, sigma, denoised, sigma_down)
        nfe += 1 + extra
        if sigma_up > 0:
            x = x + s_noise * sigma_up * noise(x)
        report(callback, step, sigma, x, denoised)
    return x, nfe


@register(
    "euler_ancestral",
    knobs=ANCESTRAL_KNOBS,
    description="Euler ancestral (k-diffusion): Euler step to sigma_down, then noise sigma_up",
    init="sigma_max",
    default_schedule="karras",
)
def euler_ancestral(denoise, x, sigmas, noise, *, eta, s_noise, callback=None):
    return ancestral_walk(denoise, x, sigmas, noise, euler_move, eta, s_noise, callback)


@register(
    "dpm_2",
    knobs={},
    description="DPM-2 (k-diffusion): second-order step through the geometric midpoint in sigma",
    init="sigma_max",
    default_schedule="karras",
)
def dpm_2(denoise, x, sigmas, noise, *, callback=None):
    return ancestral_walk(denoise, x, sigmas, noise, midpoint_move, eta=0.0, s_noise=0.0, callback=callback)


@register(
    "dpm_2_ancestral",
    knobs=ANCESTRAL_KNOBS,
    description="DPM-2 ancestral (k-diffusion): DPM-2 step to sigma_down, then noise sigma_up",
    init="sigma_max",
    default_schedule="karras",
)
def dpm_2_ancestral(denoise, x, sigmas, noise, *, eta, s_noise, callback=None):
    return ancestral_walk(denoise, x, sigmas, noise, midpoint_move, eta, s_noise, callback)
