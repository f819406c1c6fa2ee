"""Adaptive DPM-Solver-12 and -23 (Lu et al. 2022, "DPM-Solver", adaptive step size), as in
k-diffusion's `sample_dpm_adaptive`, in the noise-prediction form eps = (x - D(x, sigma)) / sigma
with lambda = -log sigma.

A step of size h in lambda from sigma to sigma' = sigma e^{-h} computes a lower- and a
higher-order solution from shared evaluations:
    DPM-Solver-1:  x' = x - sigma' (e^h - 1) eps(x, sigma)
    DPM-Solver-2(r1): u = x - s1 (e^{r1 h} - 1) eps,  s1 = sigma e^{-r1 h},
        x' = x - sigma' (e^h - 1) eps - sigma' / (2 r1) (e^h - 1) (eps(u, s1) - eps)
    DPM-Solver-3 (r1 = 1/3, r2 = 2/3), with eps_1 = eps(u, s1) from DPM-Solver-2(1/3):
        u2 = x - s2 (e^{r2 h} - 1) eps - s2 (r2 / r1) ((e^{r2 h} - 1) / (r2 h) - 1)(eps_1 - eps),
        x' = x - sigma' (e^h - 1) eps - sigma' / r2 ((e^h - 1) / h - 1)(eps(u2, s2) - eps)
`solver_order` 2 pairs DPM-Solver-1 with -2 (r1 = 1/2), 3 pairs -2 (r1 = 1/3) with -3; the scaled
difference E = ||(x_low - x_high) / max(atol, rtol max(|x_low|, |x_prev|))|| / sqrt(numel)
drives k-diffusion's default (integral) controller: h <- h (1 + atan(E^{-1/solver_order} - 1)), the step
is accepted when that factor is at least 0.81. The error norm runs over the whole batch, so the
batch shares one step-size sequence (like `pf_ode_rk45`). With eta > 0 each accepted step ends at
its sigma_down and adds noise (controller order 1.5). Only the schedule's end points are used;
`final_denoise` ends with D(x, sigma_min). The evaluation at the current point is reused after a
rejected step (k-diffusion repeats it), and the NFE returned counts every call.
"""

import math

from diffsweep.samplers.dpm import ancestral_sigmas
from diffsweep.samplers.levels import checked_levels
from diffsweep.samplers.randomness import report
from diffsweep.samplers.registry import Knob, register


def dpm_solver_pair(denoise, x, sigma, eps, sigma_to, order):
    """(lower-order x at sigma_to, higher-order x at sigma_to, evaluations made)."""
    h = math.log(sigma / sigma_to)
    base = x - sigma_to * math.expm1(h) * eps

    def intermediate(r):
        s = sigma * math.exp(-r * h)
        return s, x - s * math.expm1(r * h) * eps

    eps_of = lambda u, s: (u - denoise(u, s)) / s  # noqa: E731
    if order == 2:
        s1, u1 = intermediate(0.5)
        return base, base - sigma_to * math.expm1(h) * (eps_of(u1, s1) - eps), 1
    r1, r2 = 1 / 3, 2 / 3
    s1, u1 = intermediate(r1)
    eps_1 = eps_of(u1, s1)
    second = base - sigma_to / (2 * r1) * math.expm1(h) * (eps_1 - eps)
    s2, u2 = intermediate(r2)
    u2 = u2 - s2 * (r2 / r1) * (math.expm1(r2 * h) / (r2 * h) - 1) * (eps_1 - eps)
    third = base - sigma_to / r2 * (math.expm1(h) / h - 1) * (eps_of(u2, s2) - eps)
    return second, third, 2


@register(
    "dpm_adaptive",
    knobs={
        "solver_order": Knob("int", 3, "2: DPM-Solver-12, 3: DPM-Solver-23", choices=(2, 3)),
        "rtol": Knob("float", 0.05, "relative tolerance", minimum=0.0),
        "atol": Knob("float", 0.0078, "absolute tolerance", minimum=0.0),
        "h_init": Knob("float", 0.05, "first step size in lambda = -log sigma", minimum=1e-6),
        "eta": Knob("float", 0.0, "ancestral noise fraction (0: deterministic)", minimum=0.0),
        "s_noise": Knob("float", 1.0, "scale of the ancestral noise", minimum=0.0),
        "final_denoise": Knob("bool", True, "end with D(x, sigma_min) instead of stopping at sigma_min"),
    },
    description="adaptive DPM-Solver-12/23 (k-diffusion) from sigma_max to sigma_min; only the schedule's "
                "end points matter; NFE counted",
    init="sigma_max",
    default_schedule="karras",
    batch_coupled=True,      # one error norm over the batch sets every step
)
def dpm_adaptive(denoise, x, sigmas, noise, *, solver_order, rtol, atol, h_init, eta, s_noise, final_denoise,
                 callback=None):
    import torch

    levels = checked_levels(sigmas)
    t, t_end = -math.log(levels[0]), -math.log(levels[-1])
    h, controller_order = h_init, 1.5 if eta > 0 else solver_order
    x_prev, eps, nfe, step = x, None, 0, 0
    while t < t_end - 1e-5:
        sigma, sigma_next = math.exp(-t), math.exp(-min(t_end, t + h))
        sigma_down, _ = ancestral_sigmas(sigma, sigma_next, eta)
        sigma_down = max(sigma_down, levels[-1])
        sigma_up = math.sqrt(max(sigma_next ** 2 - sigma_down ** 2, 0.0))   # 0 up to rounding when eta = 0
        if eps is None:
            eps = (x - denoise(x, sigma)) / sigma
            nfe += 1
        x_low, x_high, calls = dpm_solver_pair(denoise, x, sigma, eps, sigma_down, solver_order)
        nfe += calls
        scale = torch.clamp(rtol * torch.maximum(x_low.abs(), x_prev.abs()), min=atol)
        error = ((x_low - x_high) / scale).norm().item() / math.sqrt(x.numel())
        factor = 1 + math.atan((1 / (error + 1e-8)) ** (1 / controller_order) - 1)
        h *= factor
        if factor >= 0.81:
            x_prev, x, eps = x_low, x_high, None
            if sigma_up > 0:
                x = x + s_noise * sigma_up * noise(x)
            t = -math.log(sigma_next)
            report(callback, step, sigma, x)      # an accepted step
            step += 1
    if final_denoise:
        x = denoise(x, levels[-1])
        nfe += 1
        report(callback, step, levels[-1], x, x)
    return x, nfe
