"""The paper's random walk (Park et al. 2025, the reference code's rule).

    x_{k+1} = x_k + tau_k * score(x_k, sigma_k) + sqrt(2 * tau_k * T_k) * n_k,
    tau_k = eps * sigma_k^2,   T_k linear from T0 to 1 over the K levels,

with `inner_steps` walks per level and no noise on the very last step unless `last_noise`.
The score is Tweedie's (D - x) / sigma^2, so tau_k * score = eps * (D - x).
"""

import math

from diffsweep.samplers.registry import Knob, gaussian_like, register


def temperature_ramp(T0: float, levels: int) -> list[float]:
    """T_k linear from T0 (first level) to 1 (last level), as np.linspace(T0, 1, K)."""
    if levels == 1:
        return [1.0]
    return [T0 + (1.0 - T0) * k / (levels - 1) for k in range(levels)]


@register(
    "random_walk",
    knobs={
        "eps": Knob("float", 0.5, "step-size constant: tau_k = eps * sigma_k^2", minimum=0.0),
        "T0": Knob("float", 1.0, "initial temperature; ramps linearly to 1", minimum=0.0),
        "inner_steps": Knob("int", 1, "walk steps at each noise level", minimum=1),
        "last_noise": Knob("bool", False, "add noise on the very last step (the reference code does not)"),
    },
    description="the paper's random walk with Tweedie: tau = eps sigma^2, temperature ramp T0 -> 1",
    init="unit",
    default_schedule="sigmoid",
)
def random_walk(denoise, x, sigmas, generator, *, eps, T0, inner_steps, last_noise):
    temperatures = temperature_ramp(T0, len(sigmas))
    nfe, total = 0, len(sigmas) * inner_steps
    for k, (sigma, T) in enumerate(zip(sigmas, temperatures)):
        tau = eps * sigma ** 2
        for m in range(inner_steps):
            score = (denoise(x, sigma) - x) / sigma ** 2
            nfe += 1
            x = x + tau * score
            is_last = k * inner_steps + m == total - 1
            if last_noise or not is_last:
                x = x + math.sqrt(2.0 * tau * T) * gaussian_like(x, generator)
    return x, nfe
