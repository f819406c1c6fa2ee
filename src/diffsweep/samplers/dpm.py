"""DPM-Solver++ (Lu et al. 2022) in the data-prediction form, with lambda = -log sigma.

(2M), multistep, one evaluation per step:
    x_{k+1} = (sigma_{k+1} / sigma_k) x_k - expm1(-h_k) * D_k',   h_k = log(sigma_k / sigma_{k+1}),
    D_k' = (1 + 1/(2 r)) D_k - 1/(2 r) D_{k-1},  r = h_{k-1} / h_k   (D_k' = D_k at the first step).
(2S) ancestral, two evaluations per step: the step to sigma_down goes through the midpoint
s = t + h/2 in lambda, then noise of std sigma_up is added, with
    sigma_up = min(sigma_{k+1}, eta * sqrt(sigma_{k+1}^2 (sigma_k^2 - sigma_{k+1}^2) / sigma_k^2)),
    sigma_down = sqrt(sigma_{k+1}^2 - sigma_up^2).
The step to sigma = 0 returns the denoised sample (2M) or takes an Euler step (2S).
"""

import math

from diffsweep.samplers.levels import steps_to_zero
from diffsweep.samplers.randomness import report
from diffsweep.samplers.registry import Knob, register


@register(
    "dpmpp_2m",
    knobs={},
    description="DPM-Solver++(2M): second-order multistep, one evaluation per step",
    init="sigma_max",
    default_schedule="karras",
)
def dpmpp_2m(denoise, x, sigmas, noise, *, callback=None):
    previous, h_previous, nfe = None, None, 0
    for step, (sigma, sigma_next) in enumerate(steps_to_zero(sigmas)):
        denoised = denoise(x, sigma)
        nfe += 1
        if sigma_next == 0:
            x = denoised
            report(callback, step, sigma, x, denoised)
            break
        h = math.log(sigma / sigma_next)
        if previous is None:
            corrected = denoised
        else:
            r = h_previous / h
            corrected = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * previous
        x = (sigma_next / sigma) * x - math.expm1(-h) * corrected
        report(callback, step, sigma, x, denoised)
        previous, h_previous = denoised, h
    return x, nfe


def ancestral_sigmas(sigma: float, sigma_next: float, eta: float) -> tuple[float, float]:
    """(sigma_down, sigma_up) splitting a step into a deterministic part and fresh noise."""
    if sigma_next == 0 or eta == 0:
        return sigma_next, 0.0
    sigma_up = min(sigma_next, eta * math.sqrt(sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2))
    return math.sqrt(sigma_next ** 2 - sigma_up ** 2), sigma_up


@register(
    "dpmpp_2s_ancestral",
    knobs={
        "eta": Knob("float", 1.0, "ancestral noise fraction (0: deterministic DPM-Solver++(2S))", minimum=0.0),
        "s_noise": Knob("float", 1.0, "scale of the ancestral noise", minimum=0.0),
    },
    description="DPM-Solver++(2S) ancestral: midpoint step to sigma_down, then noise sigma_up",
    init="sigma_max",
    default_schedule="karras",
)
def dpmpp_2s_ancestral(denoise, x, sigmas, noise, *, eta, s_noise, callback=None):
    nfe = 0
    for step, (sigma, sigma_next) in enumerate(steps_to_zero(sigmas)):
        denoised = denoise(x, sigma)
        nfe += 1
        sigma_down, sigma_up = ancestral_sigmas(sigma, sigma_next, eta)
        if sigma_down == 0:
            x = x + (sigma_down - sigma) * (x - denoised) / sigma
        else:
            h = math.log(sigma / sigma_down)
            sigma_mid = sigma * math.exp(-0.5 * h)
            x_mid = (sigma_mid / sigma) * x - math.expm1(-0.5 * h) * denoised
            denoised_mid = denoise(x_mid, sigma_mid)
            nfe += 1
            x = (sigma_down / sigma) * x - math.expm1(-h) * denoised_mid
        if sigma_up > 0:
            x = x + s_noise * sigma_up * noise(x)
        report(callback, step, sigma, x, denoised)
    return x, nfe
