"""Reverse-time SDE, Euler-Maruyama (Song et al. 2021), for the VE and the VP process.

VE (dx = sqrt(d sigma^2/dt) dw), stepping sigma_k -> sigma_{k+1} (the last one is 0):
    x <- x + (sigma_k^2 - sigma_{k+1}^2) score + sqrt(sigma_k^2 - sigma_{k+1}^2) n.
VP (dz = -beta z / 2 dt + sqrt(beta) dw) in z = sqrt(abar) x, with beta dt = log(abar_{k+1} / abar_k):
    z <- z + (z / 2 + score_z) beta dt + sqrt(beta dt) n,   score_z(z) = score(x) / sqrt(abar).
"""

import math

from diffsweep.samplers.registry import Knob, gaussian_like, register


@register(
    "sde_euler",
    knobs={
        "process": Knob("str", "ve", "which forward SDE is reversed", choices=("ve", "vp")),
        "final_noise": Knob("bool", False, "add the noise of the last step (to sigma = 0)"),
    },
    description="reverse-time SDE with Euler-Maruyama steps, VE or VP",
    init="sigma_max",
    default_schedule="geometric",
)
def sde_euler(denoise, x, sigmas, generator, *, process, final_noise):
    levels = list(sigmas) + [0.0]
    nfe = 0
    for k, sigma in enumerate(sigmas):
        score = (denoise(x, sigma) - x) / sigma ** 2
        nfe += 1
        add_noise = final_noise or k < len(sigmas) - 1
        if process == "ve":
            dvar = sigma ** 2 - levels[k + 1] ** 2
            x = x + dvar * score
            if add_noise:
                x = x + math.sqrt(dvar) * gaussian_like(x, generator)
        else:
            abar, abar_next = 1.0 / (1.0 + sigma ** 2), 1.0 / (1.0 + levels[k + 1] ** 2)
            beta_dt = math.log(abar_next / abar)
            z = math.sqrt(abar) * x
            z = z + (0.5 * z + score / math.sqrt(abar)) * beta_dt
            if add_noise:
                z = z + math.sqrt(beta_dt) * gaussian_like(z, generator)
            x = z / math.sqrt(abar_next)
    return x, nfe
