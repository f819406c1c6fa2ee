"""Annealed Langevin dynamics (NCSN, Song & Ermon 2019).

At each level sigma_i, M steps of  x <- x + (alpha_i / 2) score + sqrt(alpha_i) z  with
alpha_i = eps * sigma_i^2 / sigma_ref^2, sigma_ref the smallest level (the original NCSN) or
the largest (as the paper's Table 1 prints it). In the random-walk view: tau = alpha / 2, T = 1.
"""

import math

from diffsweep.samplers.levels import checked_levels
from diffsweep.samplers.randomness import report
from diffsweep.samplers.registry import Knob, register


@register(
    "ncsn",
    knobs={
        "eps": Knob("float", 2e-5, "step constant: alpha_i = eps * sigma_i^2 / sigma_ref^2",
                     exclusive_minimum=0.0),
        "steps_per_level": Knob("int", 10, "Langevin steps M at each noise level", minimum=1, maximum=10_000),
        "sigma_ref": Knob("str", "smallest", "which level normalises the step", choices=("smallest", "largest")),
        "final_denoise": Knob("bool", True, "finish with one Tweedie denoising step D(x, sigma_L) (NCSNv2)"),
    },
    description="annealed Langevin dynamics: L levels x M steps, alpha = eps sigma^2 / sigma_ref^2",
    init="sigma_max",
    default_schedule="geometric",
)
def ncsn(denoise, x, sigmas, noise, *, eps, steps_per_level, sigma_ref, final_denoise, callback=None):
    sigmas = checked_levels(sigmas)
    reference = min(sigmas) if sigma_ref == "smallest" else max(sigmas)
    nfe = 0
    for sigma in sigmas:
        alpha = eps * sigma ** 2 / reference ** 2
        for _ in range(steps_per_level):
            denoised = denoise(x, sigma)
            score = (denoised - x) / sigma ** 2
            x = x + 0.5 * alpha * score + math.sqrt(alpha) * noise(x)
            report(callback, nfe, sigma, x, denoised)
            nfe += 1
    if final_denoise:
        x = denoise(x, sigmas[-1])
        report(callback, nfe, sigmas[-1], x, x)
        nfe += 1
    return x, nfe
