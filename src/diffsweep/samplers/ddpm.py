"""DDPM ancestral sampling (Ho et al. 2020) and DDIM (Song et al. 2021) on any decreasing
sigma schedule.

Each level maps to the VP chain through abar = 1 / (1 + sigma^2), so the `vp_respaced`
schedule with K steps is DDPM/DDIM on K respaced integer timesteps (guided-diffusion's
`space_timesteps`), and `vp_pretrained` on K interpolated ones. Both end at abar = 1
(sigma = 0), where VP and VE coordinates coincide.

DDPM, in VP coordinates z = sqrt(abar) x:
    z_{k+1} = (z_k - beta_k / sqrt(1 - abar_k) * eps) / sqrt(alpha_k) + s_k n,
    alpha_k = abar_k / abar_{k+1},  beta_k = 1 - alpha_k,  s_k^2 = beta_k or beta-tilde_k.
DDIM, with x0 = D(x, sigma_k) and eps = (x - x0) / sigma_k:
    z_{k+1} = sqrt(abar_{k+1}) x0 + sqrt(1 - abar_{k+1} - s_k^2) eps + s_k n,
    s_k = eta * sqrt((1 - abar_{k+1}) / (1 - abar_k)) * sqrt(1 - alpha_k)
(eta = 0 is deterministic and is exactly the Euler step of the probability-flow ODE in sigma).
"""

import math

from diffsweep.samplers.levels import with_final_zero
from diffsweep.samplers.randomness import report
from diffsweep.samplers.registry import Knob, register


def alpha_bars(sigmas) -> list[float]:
    """abar for every level and for the final sigma = 0."""
    return [1.0 / (1.0 + s ** 2) for s in with_final_zero(sigmas)]


@register(
    "ddpm",
    knobs={
        "variance": Knob("str", "beta_tilde", "ancestral noise: beta or the posterior beta-tilde",
                         choices=("beta", "beta_tilde")),
    },
    description="DDPM ancestral sampling on the (respaced) VP chain",
    init="vp_prior",
    default_schedule="vp_respaced",
)
def ddpm(denoise, x, sigmas, noise, *, variance, callback=None):
    abar = alpha_bars(sigmas)
    z = math.sqrt(abar[0]) * x
    nfe = 0
    for k, sigma in enumerate(sigmas):
        x_ve = z / math.sqrt(abar[k])
        denoised = denoise(x_ve, sigma)
        eps = (x_ve - denoised) / sigma
        nfe += 1
        alpha = abar[k] / abar[k + 1]
        beta = 1.0 - alpha
        z = (z - beta / math.sqrt(1.0 - abar[k]) * eps) / math.sqrt(alpha)
        if k < len(sigmas) - 1:
            var = beta if variance == "beta" else beta * (1.0 - abar[k + 1]) / (1.0 - abar[k])
            z = z + math.sqrt(var) * noise(z)
        if callback is not None:
            report(callback, k, sigma, z / math.sqrt(abar[k + 1]), denoised)
    return z, nfe


@register(
    "ddim",
    knobs={"eta": Knob("float", 0.0, "stochasticity: 0 deterministic, 1 DDPM-like ancestral noise", minimum=0.0)},
    description="DDIM with eta on the (respaced) VP chain; eta = 0 is the probability-flow ODE's Euler step",
    init="vp_prior",
    default_schedule="vp_respaced",
)
def ddim(denoise, x, sigmas, noise, *, eta, callback=None):
    abar = alpha_bars(sigmas)
    nfe = 0
    for k, sigma in enumerate(sigmas):
        x0 = denoise(x, sigma)
        nfe += 1
        eps = (x - x0) / sigma
        s = eta * math.sqrt((1 - abar[k + 1]) / (1 - abar[k])) * math.sqrt(1 - abar[k] / abar[k + 1])
        z = math.sqrt(abar[k + 1]) * x0 + math.sqrt(max(1 - abar[k + 1] - s ** 2, 0.0)) * eps
        if s > 0:
            z = z + s * noise(x)
        x = z / math.sqrt(abar[k + 1])
        report(callback, k, sigma, x, x0)
    return x, nfe
