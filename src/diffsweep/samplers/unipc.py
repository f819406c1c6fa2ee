"""UniPC (Zhao et al. 2023, "UniPC: a unified predictor-corrector framework for fast sampling of
diffusion models", the B(h) variants), in the data-prediction form with lambda = -log sigma, as in diffusers'
`UniPCMultistepScheduler` (predict_x0, no thresholding).

With D_j = D(x_j, sigma_j), a step from level k to k+1 of size h = lambda_{k+1} - lambda_k uses
r_i = (lambda_{k-i} - lambda_k) / h and the scaled differences E_i = (D_{k-i} - D_k) / r_i:
    x_{k+1} = (sigma_{k+1} / sigma_k) x_k - (e^{-h} - 1) D_k - B(h) sum_i rho_i E_i,
with B(h) = -h (`solver_type` bh1) or e^{-h} - 1 (bh2). The weights solve R rho = b, R_{ni} = r_i^{n-1} (with r = 1
for the newest point), b_n = n! phi_{n+1}(-h) / B(h) where phi_1(hh) = e^{hh} - 1, phi_{n+1} =
phi_n / hh - 1 / n!. UniP-p (the predictor) uses the p - 1 past points (rho = 1/2 for p = 2);
UniC-p (the corrector) adds the new evaluation D_{k+1} at r = 1 (rho = 1/2 for p = 1) and replaces
x_{k+1} before the next step, at no extra evaluation; its order is p + 1. Orders warm up from 1;
the step to sigma = 0 returns the denoised sample. `lower_order_final` (diffusers' default) caps the
order of the step onto the last level at 2 (and that of the corrector after it), as diffusers does
for every number of levels. `use_corrector: false` is UniP alone; UniP-1 is
DDIM (the Euler step of the probability-flow ODE). One evaluation per step.
"""

import math

from diffsweep.samplers.levels import checked_levels, final_steps_order
from diffsweep.samplers.randomness import report
from diffsweep.samplers.registry import Knob, register


def unipc_update(x, sigma, sigma_next, history, solver_type, new=None):
    """x at sigma_next from x at sigma. `history`: (lambda, D) of the current level, then older ones,
    newest first; UniP uses them alone, UniC adds `new` = D at sigma_next."""
    import numpy as np

    (lam, denoised), past = history[0], history[1:]
    h = math.log(sigma / sigma_next)
    rs = [(lam_i - lam) / h for lam_i, _ in past] + [1.0]
    differences = [(d_i - denoised) / r for (_, d_i), r in zip(past, rs)]
    if new is not None:
        differences.append(new - denoised)
    b_h = -h if solver_type == "bh1" else math.expm1(-h)
    phi, factorial, b = math.expm1(-h) / -h - 1, 1, []
    for n in range(1, len(rs) + 1):
        b.append(phi * factorial / b_h)
        factorial *= n + 1
        phi = phi / -h - 1 / factorial
    # R rho = b over the fitted points (UniP: the past ones; UniC: the new one too); a single
    # unknown takes the closed form 1/2, as diffusers does for UniP-2 and UniC-1
    fitted = rs if new is not None else rs[:-1]
    if len(fitted) < 2:
        rhos = [0.5] * len(fitted)
    else:
        rhos = np.linalg.solve(np.vander(fitted, increasing=True).T, b[:len(fitted)]).tolist()
    x = (sigma_next / sigma) * x - math.expm1(-h) * denoised
    return x - b_h * sum(rho * e for rho, e in zip(rhos, differences)) if rhos else x

@register(
    "unipc",
    knobs={
        "solver_order": Knob("int", 2, "order p of the predictor (the corrector adds one)", minimum=1, maximum=3),
        "solver_type": Knob("str", "bh2", "B(h): bh1 = -h, bh2 = e^{-h} - 1", choices=("bh1", "bh2")),
        "use_corrector": Knob("bool", True, "apply UniC after every step (false: UniP alone)"),
        "lower_order_final": Knob("bool", True, "order at most 2 for the step onto the last level, as diffusers' "
                                  "default lower_order_final (false: solver_order to the end)"),
    },
    description="UniPC multistep predictor-corrector (data prediction), one evaluation per step",
    init="sigma_max",
    default_schedule="karras",
)
def unipc(denoise, x, sigmas, noise, *, solver_order, solver_type, use_corrector, lower_order_final,
          callback=None):
    levels = checked_levels(sigmas)
    history, nfe = [], 0     # (lambda, D) at the visited levels, newest first
    x_before = None          # the state the last predictor step started from
    for k, sigma in enumerate(levels):
        denoised = denoise(x, sigma)
        nfe += 1
        if use_corrector and k > 0:
            x = unipc_update(x_before, levels[k - 1], sigma, history[:p], solver_type, new=denoised)
        history = [(-math.log(sigma), denoised)] + history[:solver_order - 1]
        if k == len(levels) - 1:
            report(callback, k, sigma, denoised, denoised)
            return denoised, nfe
        p = final_steps_order(min(solver_order, k + 1), k, len(levels), lower_order_final, any_length=True)
        x_before = x
        x = unipc_update(x, sigma, levels[k + 1], history[:p], solver_type)
        report(callback, k, sigma, x, denoised)
