"""EDM's stochastic Heun sampler (Karras et al. 2022, Algorithm 2), every knob named.

At each level sigma_k, "churn" raises the noise to sigma_hat = sigma_k (1 + gamma_k) with
gamma_k = min(s_churn / K, sqrt(2) - 1) inside [s_tmin, s_tmax] (else 0), adding fresh noise
of std sqrt(sigma_hat^2 - sigma_k^2) * s_noise; then one Heun step of the probability-flow
ODE dx/dsigma = (x - D) / sigma from sigma_hat to sigma_{k+1} (Euler for the step to 0).
With s_churn = 0 it is the deterministic Heun solver `pf_ode`.
"""

import math

from diffsweep.samplers.levels import steps_to_zero
from diffsweep.samplers.randomness import report
from diffsweep.samplers.registry import Knob, register


@register(
    "edm",
    knobs={
        "s_churn": Knob("float", 0.0, "total churn; 0 is deterministic", minimum=0.0),
        "s_tmin": Knob("float", 0.0, "churn only at sigma >= s_tmin", minimum=0.0),
        "s_tmax": Knob("float", float("inf"), "churn only at sigma <= s_tmax", minimum=0.0),
        "s_noise": Knob("float", 1.0, "scale of the churn noise", minimum=0.0),
    },
    description="EDM stochastic Heun sampler (s_churn, s_tmin, s_tmax, s_noise) on the Karras schedule",
    init="sigma_max",
    default_schedule="karras",
)
def edm(denoise, x, sigmas, noise, *, s_churn, s_tmin, s_tmax, s_noise, callback=None):
    steps = len(sigmas)
    nfe = 0
    for step, (sigma, sigma_next) in enumerate(steps_to_zero(sigmas)):
        gamma = min(s_churn / steps, math.sqrt(2.0) - 1.0) if s_tmin <= sigma <= s_tmax else 0.0
        sigma_hat = sigma * (1.0 + gamma)
        if gamma > 0:
            x = x + math.sqrt(sigma_hat ** 2 - sigma ** 2) * s_noise * noise(x)
        denoised = denoise(x, sigma_hat)
        slope = (x - denoised) / sigma_hat
        nfe += 1
        x_next = x + (sigma_next - sigma_hat) * slope
        if sigma_next > 0:
            slope_next = (x_next - denoise(x_next, sigma_next)) / sigma_next
            nfe += 1
            x_next = x + (sigma_next - sigma_hat) * 0.5 * (slope + slope_next)
        x = x_next
        report(callback, step, sigma, x, denoised)
    return x, nfe
