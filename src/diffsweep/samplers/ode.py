"""Probability-flow ODE in VE coordinates: dx/dsigma = -sigma * score = (x - D(x, sigma)) / sigma.

The same ODE serves VP and VE models (only the schedule differs). Steps go through the K
levels and then to sigma = 0; the step to 0 is an Euler step (EDM, Karras et al. 2022).
Euler: K evaluations; Heun: 2K - 1.
"""

from diffsweep.samplers.levels import checked_levels, steps_to_zero
from diffsweep.samplers.randomness import report
from diffsweep.samplers.registry import Knob, register


@register(
    "pf_ode",
    knobs={
        "solver_type": Knob("str", "heun", "explicit solver", choices=("euler", "heun"), formerly="solver"),
    },
    description="probability-flow ODE, Euler or Heun (2nd order), ending at sigma = 0",
    init="sigma_max",
    default_schedule="karras",
)
def pf_ode(denoise, x, sigmas, noise, *, solver_type, callback=None):
    nfe = 0
    for step, (sigma, sigma_next) in enumerate(steps_to_zero(sigmas)):
        denoised = denoise(x, sigma)
        slope = (x - denoised) / sigma
        nfe += 1
        x_euler = x + (sigma_next - sigma) * slope
        if solver_type == "heun" and sigma_next > 0:
            slope_next = (x_euler - denoise(x_euler, sigma_next)) / sigma_next
            nfe += 1
            x = x + (sigma_next - sigma) * 0.5 * (slope + slope_next)
        else:
            x = x_euler
        report(callback, step, sigma, x, denoised)
    return x, nfe


@register(
    "pf_ode_rk45",
    knobs={
        "rtol": Knob("float", 1e-5, "relative tolerance of the adaptive solver", exclusive_minimum=0.0),
        "atol": Knob("float", 1e-5, "absolute tolerance of the adaptive solver", exclusive_minimum=0.0),
        "final_denoise": Knob("bool", True, "end with D(x, sigma_min) instead of stopping at sigma_min"),
    },
    description="probability-flow ODE with adaptive RK45 (scipy, Dormand-Prince) from sigma_max to sigma_min; "
                "only the schedule's end points matter",
    init="sigma_max",
    default_schedule="geometric",
    batch_coupled=True,      # scipy solves the batch as one ODE system, one step size for all
)
def pf_ode_rk45(denoise, x, sigmas, noise, *, rtol, atol, final_denoise, callback=None):
    import numpy as np
    import torch
    from scipy.integrate import solve_ivp

    sigmas = checked_levels(sigmas)
    shape, like = x.shape, x
    nfe = 0

    def drift(sigma, flat):
        nonlocal nfe
        state = torch.from_numpy(flat).to(like).reshape(shape)
        nfe += 1
        return ((state - denoise(state, float(sigma))) / sigma).reshape(-1).cpu().numpy().astype(np.float64)

    start = x.reshape(-1).cpu().numpy().astype(np.float64)
    solution = solve_ivp(drift, (sigmas[0], sigmas[-1]), start, method="RK45", rtol=rtol, atol=atol)
    if not solution.success:
        raise RuntimeError(f"pf_ode_rk45: the solver failed: {solution.message}")
    state = lambda i: torch.from_numpy(solution.y[:, i]).to(like).reshape(shape)  # noqa: E731
    steps = len(solution.t) - 1                 # the solver's accepted steps, reported once it is done
    if callback is not None:
        for i in range(steps):
            report(callback, i, solution.t[i], state(i + 1))
    x = state(-1)
    if final_denoise:
        x = denoise(x, sigmas[-1])
        nfe += 1
        report(callback, steps, sigmas[-1], x, x)
    return x, nfe
