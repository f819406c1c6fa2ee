"""DEIS and iPNDM (Zhang & Chen 2023, "Fast sampling of diffusion models with exponential
integrator"), on the probability-flow ODE in VE coordinates dx/dsigma = eps(x, sigma) =
(x - D(x, sigma)) / sigma, which is the VP ODE in the paper's rho = sigma / alpha.

DEIS (multistep "log-rho" form, as diffusers' `DEISMultistepScheduler`): the noise prediction is
extrapolated by the polynomial in log sigma through the last p = min(solver_order, k + 1) points and
integrated exactly in sigma,
    x_{k+1} = x_k + sum_j eps_j integral from sigma_k to sigma_{k+1} of l_j(log s) ds,
with l_j the Lagrange basis of the nodes log sigma_{k-p+1..k} (u = log s turns the integral into
one of l_j(u) e^u, done in closed form). Order 1 is DDIM, i.e. the Euler step; the step to
sigma = 0 is that first-order step (log 0 is outside the fit), landing on D. `lower_order_final`
(diffusers' default) caps the order of the step onto the last level at 2 when there are fewer
than 15 levels, as diffusers does.
iPNDM (the paper's improved pseudo numerical method, as diffusers' `IPNDMScheduler`): Adams-
Bashforth with the fixed coefficients of equal steps on the eps history, warming up from Euler,
    x_{k+1} = x_k + (sigma_{k+1} - sigma_k) eps',
    eps' = eps_k, (3 eps_k - eps_{k-1}) / 2, (23 eps_k - 16 eps_{k-1} + 5 eps_{k-2}) / 12,
           (55 eps_k - 59 eps_{k-1} + 37 eps_{k-2} - 9 eps_{k-3}) / 24,
including the step to 0. One evaluation per step for both.
"""

import math

from diffsweep.samplers.levels import checked_levels, final_steps_order, steps_to_zero
from diffsweep.samplers.randomness import report
from diffsweep.samplers.registry import Knob, register

ADAMS_BASHFORTH = [[1], [3 / 2, -1 / 2], [23 / 12, -16 / 12, 5 / 12], [55 / 24, -59 / 24, 37 / 24, -9 / 24]]


def log_lagrange_weights(nodes: list, a: float, b: float) -> list:
    """The integrals from a to b of l_j(log s) ds, l_j the Lagrange basis of log(nodes), in plain floats
    (numpy's polynomial classes on a few scalars cost more per step than the sampler's tensor arithmetic)."""
    logs = [math.log(node) for node in nodes]
    weights = []
    for j, u_j in enumerate(logs):
        others = [u for m, u in enumerate(logs) if m != j]
        basis = [1.0]                                # coefficients, lowest degree first
        for root in others:                          # times (u - root)
            basis = [(basis[i - 1] if i > 0 else 0.0) - (root * basis[i] if i < len(basis) else 0.0)
                     for i in range(len(basis) + 1)]
        scale = math.prod(u_j - u for u in others)
        antiderivative = exp_antiderivative([c / scale for c in basis])
        weights.append(b * horner(antiderivative, math.log(b)) - a * horner(antiderivative, math.log(a)))
    return weights


def exp_antiderivative(coefficients: list) -> list:
    """Q with (Q e^u)' = P e^u, i.e. Q + Q' = P: Q = P - P' + P'' - ... (coefficients lowest degree first)."""
    q = list(coefficients)
    for i in reversed(range(len(q) - 1)):
        q[i] = coefficients[i] - (i + 1) * q[i + 1]
    return q


def horner(coefficients: list, u: float) -> float:
    value = 0.0
    for c in reversed(coefficients):
        value = value * u + c
    return value


@register(
    "deis",
    knobs={"solver_order": Knob("int", 3, "order of the multistep extrapolation (1: DDIM)", minimum=1, maximum=3),
           "lower_order_final": Knob("bool", True, "order at most 2 for the step onto the last level when there are "
                                     "fewer than 15 levels, as diffusers' default lower_order_final")},
    description="DEIS multistep (log-rho polynomial extrapolation of eps), one evaluation per step",
    init="sigma_max",
    default_schedule="karras",
)
def deis(denoise, x, sigmas, noise, *, solver_order, lower_order_final, callback=None):
    levels = checked_levels(sigmas)
    slopes, nfe = [], 0     # eps at the visited levels, newest last
    for k, (sigma, sigma_next) in enumerate(steps_to_zero(levels)):
        denoised = denoise(x, sigma)
        slopes = (slopes + [(x - denoised) / sigma])[-solver_order:]
        nfe += 1
        p = 1 if sigma_next == 0 else final_steps_order(len(slopes), k, len(levels), lower_order_final)
        weights = log_lagrange_weights(levels[k + 1 - p:k + 1], sigma, sigma_next) if p > 1 else [sigma_next - sigma]
        x = x + sum(w * d for w, d in zip(weights, slopes[-p:]))
        report(callback, k, sigma, x, denoised)
    return x, nfe


@register(
    "ipndm",
    knobs={"solver_order": Knob("int", 4, "length of the eps history (1: Euler)", minimum=1, maximum=4)},
    description="iPNDM: Adams-Bashforth with fixed coefficients on eps, warming up from Euler; one evaluation per step",
    init="sigma_max",
    default_schedule="karras",
)
def ipndm(denoise, x, sigmas, noise, *, solver_order, callback=None):
    slopes, nfe = [], 0     # eps at the visited levels, newest first
    for step, (sigma, sigma_next) in enumerate(steps_to_zero(sigmas)):
        denoised = denoise(x, sigma)
        slopes = [(x - denoised) / sigma] + slopes[:solver_order - 1]
        nfe += 1
        combined = sum(c * d for c, d in zip(ADAMS_BASHFORTH[len(slopes) - 1], slopes))
        x = x + (sigma_next - sigma) * combined
        report(callback, step, sigma, x, denoised)
    return x, nfe
