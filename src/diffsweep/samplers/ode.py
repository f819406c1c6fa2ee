"""Probability-flow ODE in VE coordinates: dx/dsigma = -sigma * score = (x - D(x, sigma)) / sigma.

The same ODE serves VP and VE models (only the schedule differs). Steps go through the K
levels and then to sigma = 0; the step to 0 is an Euler step (EDM, Karras et al. 2022).
Euler: K evaluations; Heun: 2K - 1.
"""

from diffsweep.samplers.registry import Knob, register


@register(
    "pf_ode",
    knobs={
        "solver": Knob("str", "heun", "explicit solver", choices=("euler", "heun")),
    },
    description="probability-flow ODE, Euler or Heun (2nd order), ending at sigma = 0",
    init="sigma_max",
    default_schedule="karras",
)
def pf_ode(denoise, x, sigmas, generator, *, solver):
    levels = list(sigmas) + [0.0]
    nfe = 0
    for sigma, sigma_next in zip(levels[:-1], levels[1:]):
        slope = (x - denoise(x, sigma)) / sigma
        nfe += 1
        x_euler = x + (sigma_next - sigma) * slope
        if solver == "heun" and sigma_next > 0:
            slope_next = (x_euler - denoise(x_euler, sigma_next)) / sigma_next
            nfe += 1
            x = x + (sigma_next - sigma) * 0.5 * (slope + slope_next)
        else:
            x = x_euler
    return x, nfe
