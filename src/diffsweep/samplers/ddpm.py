"""DDPM ancestral sampling (Ho et al. 2020) on any decreasing sigma schedule.

Each level maps to the VP chain through abar = 1 / (1 + sigma^2), so the default
`vp_pretrained` schedule with K steps is DDPM on K respaced timesteps. The update runs in
VP coordinates z = sqrt(abar) x and ends at abar = 1 (sigma = 0):

    z_{k+1} = (z_k - beta_k / sqrt(1 - abar_k) * eps) / sqrt(alpha_k) + s_k n,
    alpha_k = abar_k / abar_{k+1},  beta_k = 1 - alpha_k,  s_k^2 = beta_k or beta-tilde_k.
"""

import math

from diffsweep.samplers.registry import Knob, gaussian_like, register


@register(
    "ddpm",
    knobs={
        "variance": Knob("str", "beta_tilde", "ancestral noise: beta or the posterior beta-tilde",
                         choices=("beta", "beta_tilde")),
    },
    description="DDPM ancestral sampling on the (respaced) VP chain",
    init="vp_prior",
    default_schedule="vp_pretrained",
)
def ddpm(denoise, x, sigmas, generator, *, variance):
    levels = list(sigmas) + [0.0]
    abar = [1.0 / (1.0 + s ** 2) for s in levels]
    z = math.sqrt(abar[0]) * x
    nfe = 0
    for k, sigma in enumerate(sigmas):
        x_ve = z / math.sqrt(abar[k])
        eps = (x_ve - denoise(x_ve, sigma)) / sigma
        nfe += 1
        alpha = abar[k] / abar[k + 1]
        beta = 1.0 - alpha
        z = (z - beta / math.sqrt(1.0 - abar[k]) * eps) / math.sqrt(alpha)
        if k < len(sigmas) - 1:
            var = beta if variance == "beta" else beta * (1.0 - abar[k + 1]) / (1.0 - abar[k])
            z = z + math.sqrt(var) * gaussian_like(z, generator)
    return z, nfe  # abar = 1 at the end: VP and VE coordinates coincide
