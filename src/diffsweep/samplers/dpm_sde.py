"""Stochastic DPM-Solver++ (Lu et al. 2022, "DPM-Solver++", its SDE solvers), in the data-prediction
form with lambda = -log sigma and h = log(sigma_k / sigma_{k+1}), as in k-diffusion's
`sample_dpmpp_sde`, `sample_dpmpp_2m_sde` and `sample_dpmpp_3m_sde`.

SDE (singlestep, two evaluations): a first-order ancestral step to the intermediate level
sigma_s = sigma_k exp(-r h), then the step to sigma_{k+1} with D' = (1 - 1/(2r)) D_k + 1/(2r) D_s;
each part moves to its sigma_down and adds noise sigma_up (`ancestral_sigmas`), where the
first-order step is x <- D + (sigma_down / sigma_k)(x - D).
(2M) SDE, multistep, one evaluation; with the noise fraction eta:
    x_{k+1} = (sigma_{k+1} / sigma_k) e^{-eta h} x_k + (1 - e^{-(1+eta) h}) D_k + c (D_k - D_{k-1}) / r
              + s_noise sigma_{k+1} sqrt(1 - e^{-2 eta h}) n,      r = h_{k-1} / h,
    c = (1 - e^{-(1+eta) h}) / 2 (midpoint) or (1 - e^{-(1+eta) h}) / (-(1+eta) h) + 1 (heun).
(3M) SDE adds the second difference: with r0 = h_{k-1} / h, r1 = h_{k-2} / h, H = (1+eta) h,
    d1_0 = (D_k - D_{k-1}) / r0,  d1_1 = (D_{k-1} - D_{k-2}) / r1,
    d1 = d1_0 + (d1_0 - d1_1) r0 / (r0 + r1),  d2 = (d1_0 - d1_1) / (r0 + r1),
    x_{k+1} = (...first-order part as above...) + phi_2 d1 - w phi_3 d2,
    phi_2 = (e^{-H} - 1) / H + 1,  phi_3 = phi_2 / H - 1/2,
with w = 1 (`second_difference: k_diffusion`, as k-diffusion, diffusers and DPM-Solver's own code) or
w = 2 (`exact`). Why 2: the step integrates D against the weight (1+eta) e^{-(1+eta)(h-s)}, s in
[0, h] from lambda_k; with D(lambda_k + s) = D_k + s D' + s^2/2 D'' + O(s^3) the exact integrals are
(1 - e^{-H}) D_k + h phi_2 D' - h^2 phi_3 D'' (substitute u = (1+eta) s: the integral of u^2/2
e^{-(H-u)} over [0, H] is H^2/2 - H + 1 - e^{-H} = -H^2 phi_3). Taylor-expanding the differences
gives d1 = h D' + O(h^3) and d2 = h^2 D'' / 2 + O(h^3), so h^2 D'' is 2 d2, not d2: with w = 1 every
step misses phi_3 d2 ~ -h^3 D'' / 12 (eta = 0, phi_3 ~ -h/6), a local error of order 3, and the
solver is of order 2 (measured: tests/test_orders.py, docs/samplers.md); w = 2 is of order 3.
eta = 0 is the deterministic DPM-Solver++ ((2M) midpoint: `dpmpp_2m`). The step to sigma = 0
returns the denoised sample; `lower_order_final` (3M) makes the step onto the last level second
order when there are fewer than 15 levels, as diffusers' DPMSolverMultistepScheduler does by default
(for (2M) it changes nothing: the step to 0 is first order anyway).

Noise: k-diffusion draws SDE noise from a Brownian tree (torchsde) so that it is a function of
the seed and the interval. Here every draw is a plain Gaussian from `noise`: the multistep
samplers need one increment per step (disjoint intervals, so independent: the same law); the
singlestep SDE needs the increments over [sigma_s, sigma_k] and [sigma_{k+1}, sigma_k], which
overlap, so it draws the two independent pieces W(sigma_k) - W(sigma_s) and W(sigma_s) -
W(sigma_{k+1}) and adds them: the same joint law as the tree, not the same numbers.
"""

import math

from diffsweep.samplers.dpm import ancestral_sigmas
from diffsweep.samplers.levels import final_steps_order, steps_to_zero
from diffsweep.samplers.randomness import report
from diffsweep.samplers.registry import Knob, register

SDE_KNOBS = {
    "eta": Knob("float", 1.0, "noise fraction (0: the deterministic DPM-Solver++)", minimum=0.0),
    "s_noise": Knob("float", 1.0, "scale of the noise", minimum=0.0),
}


def first_order_step(x, denoised, sigma, sigma_to):
    """DPM-Solver++(1), i.e. DDIM, from sigma to sigma_to."""
    return denoised + (sigma_to / sigma) * (x - denoised)


@register(
    "dpmpp_sde",
    knobs={**SDE_KNOBS, "r": Knob("float", 0.5, "intermediate level, as a fraction of the step in lambda",
                                  minimum=0.01, maximum=1.0)},
    description="DPM-Solver++ SDE (k-diffusion): two-stage stochastic step, Gaussian increments",
    init="sigma_max",
    default_schedule="karras",
)
def dpmpp_sde(denoise, x, sigmas, noise, *, eta, s_noise, r, callback=None):
    nfe = 0
    for step, (sigma, sigma_next) in enumerate(steps_to_zero(sigmas)):
        denoised = denoise(x, sigma)
        nfe += 1
        if sigma_next == 0:
            x = denoised
            report(callback, step, sigma, x, denoised)
            break
        sigma_s = sigma * math.exp(-r * math.log(sigma / sigma_next))
        # Brownian increments over [sigma_s, sigma] and [sigma_next, sigma], normalised to unit variance
        first, second = (noise(x), noise(x)) if eta > 0 else (0.0, 0.0)
        noise_s = first
        noise_next = (math.sqrt(sigma - sigma_s) * first + math.sqrt(sigma_s - sigma_next) * second) / math.sqrt(
            sigma - sigma_next)

        sigma_down, sigma_up = ancestral_sigmas(sigma, sigma_s, eta)
        x_s = first_order_step(x, denoised, sigma, sigma_down) + s_noise * sigma_up * noise_s
        denoised_s = denoise(x_s, sigma_s)
        nfe += 1

        sigma_down, sigma_up = ancestral_sigmas(sigma, sigma_next, eta)
        combined = (1 - 1 / (2 * r)) * denoised + 1 / (2 * r) * denoised_s
        x = first_order_step(x, combined, sigma, sigma_down) + s_noise * sigma_up * noise_next
        report(callback, step, sigma, x, denoised_s)
    return x, nfe


def multistep_sde(denoise, x, sigmas, noise, eta, s_noise, correction, lower_order_final, callback):
    """The shared loop of (2M) and (3M) SDE: first-order part, `correction(h, H, history)`, noise;
    the correction sees as much history as the step's order (its length + 1) allows."""
    history, nfe = [], 0    # (D, h) of the previous steps, newest first
    steps = steps_to_zero(sigmas)
    for k, (sigma, sigma_next) in enumerate(steps):
        denoised = denoise(x, sigma)
        nfe += 1
        if sigma_next == 0:
            x = denoised
            report(callback, k, sigma, x, denoised)
            break
        h = math.log(sigma / sigma_next)
        big_h = (1 + eta) * h
        x = (sigma_next / sigma) * math.exp(-eta * h) * x - math.expm1(-big_h) * denoised
        order = final_steps_order(len(history) + 1, k, len(steps), lower_order_final)
        x = x + correction(denoised, h, big_h, history[:order - 1])
        if eta > 0:
            x = x + s_noise * sigma_next * math.sqrt(-math.expm1(-2 * eta * h)) * noise(x)
        report(callback, k, sigma, x, denoised)
        history = [(denoised, h)] + history[:1]
    return x, nfe


@register(
    "dpmpp_2m_sde",
    knobs={**SDE_KNOBS, "solver_type": Knob("str", "midpoint", "second-order correction",
                                            choices=("midpoint", "heun"))},
    description="DPM-Solver++(2M) SDE (k-diffusion), midpoint or heun correction, one evaluation per step",
    init="sigma_max",
    default_schedule="karras",
)
def dpmpp_2m_sde(denoise, x, sigmas, noise, *, eta, s_noise, solver_type, callback=None):
    def correction(denoised, h, big_h, history):
        if not history:
            return 0.0
        previous, h_previous = history[0]
        c = -math.expm1(-big_h) / 2 if solver_type == "midpoint" else math.expm1(-big_h) / big_h + 1
        return c * (denoised - previous) / (h_previous / h)

    return multistep_sde(denoise, x, sigmas, noise, eta, s_noise, correction, False, callback)


@register(
    "dpmpp_3m_sde",
    knobs={**SDE_KNOBS,
           "second_difference": Knob("str", "k_diffusion", "weight of the second difference: k_diffusion (phi_3, "
                                     "as k-diffusion and diffusers; order 2) or exact (2 phi_3; order 3)",
                                     choices=("k_diffusion", "exact")),
           "lower_order_final": Knob("bool", False, "second-order step onto the last level when there are fewer than "
                                     "15 levels, as diffusers' default lower_order_final (false: as k-diffusion)")},
    description="DPM-Solver++(3M) SDE (k-diffusion), one evaluation per step",
    init="sigma_max",
    default_schedule="karras",
)
def dpmpp_3m_sde(denoise, x, sigmas, noise, *, eta, s_noise, second_difference, lower_order_final, callback=None):
    weight = 2.0 if second_difference == "exact" else 1.0

    def correction(denoised, h, big_h, history):
        phi_2 = math.expm1(-big_h) / big_h + 1
        if len(history) == 1:
            (d_1, h_1), = history
            return phi_2 * (denoised - d_1) / (h_1 / h)
        if len(history) == 2:
            (d_1, h_1), (d_2, h_2) = history
            r0, r1 = h_1 / h, h_2 / h
            d1_0, d1_1 = (denoised - d_1) / r0, (d_1 - d_2) / r1
            d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            return phi_2 * d1 - weight * (phi_2 / big_h - 0.5) * d2
        return 0.0

    return multistep_sde(denoise, x, sigmas, noise, eta, s_noise, correction, lower_order_final, callback)
