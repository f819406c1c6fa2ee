"""Restorers that project onto the measurement (RePaint, ILVR, DDNM, DDNM+) and two that trade the
projection for optimisation (RED-diff) or Langevin sampling (DAPS) of x0 given the measurement.

    repaint     replacement steps on RePaint's jump schedule: every jump_length steps, go back up
                jump_length levels by forward noising, jump_count - 1 times
    ilvr        replacement with ILVR's low-pass phi = A^+ A, applied while sigma >= refine_until
    ddnm        x0 <- A^+ y + (I - A^+ A) D(x), then an ancestral step (noiseless measurements)
    ddnm_plus   DDNM+'s spectral scaling: the correction is shrunk where y is noisier than the step's noise
    red_diff    one Adam step per level on ||y - A mu||^2 / 2 + lam sigma sg(eps_hat - n)^T mu
    daps        per level: Langevin on x0 ~ N(D(x), sigma^2) N(y; A x0, s^2), then renoise to sigma'

All act on the operator only through A, A^T and its SVD (`Spectral`), never a dense matrix.
"""

import math

from diffsweep.restoration.registry import Knob, register
from diffsweep.restoration.restorers import Spectral, ancestral_step, replacement_step, residual
from diffsweep.samplers.levels import checked_levels, steps_to_zero, with_final_zero
from diffsweep.samplers.randomness import report


# --- RePaint ----------------------------------------------------------------------------------

def repaint_path(n_levels: int, jump_length: int, jump_count: int) -> list[int]:
    """RePaint's get_schedule_jump on level indices 0 (sigma_max) .. n_levels (sigma = 0): walk down
    one level at a time; on reaching a level j, 2j, ... levels above 0 (and at least j below the
    start) go back up jump_length levels, jump_count - 1 times per such level."""
    jumps = {k: jump_count - 1 for k in range(jump_length, n_levels) if (n_levels - k) % jump_length == 0}
    path, k = [0], 0
    while k < n_levels:
        k += 1
        path.append(k)
        if jumps.get(k, 0) > 0:
            jumps[k] -= 1
            for _ in range(jump_length):
                k -= 1
                path.append(k)
    return path


@register(
    "repaint",
    knobs={"jump_length": Knob("int", 10, "RePaint's jump length j: levels gone back up per jump", minimum=1, maximum=10_000),
           "jump_count": Knob("int", 10, "RePaint's jump_n_sample r: passes through each jump "
                                         "(1: no resampling, the replacement baseline)", minimum=1, maximum=10_000)},
    description="RePaint (Lugmayr et al. 2022): replacement steps with resampling, going back up jump_length "
                "levels (x' = x + sqrt(sigma_up^2 - sigma^2) n) jump_count - 1 times; NFE = down steps",
    init="sigma_max",
    default_schedule="vp_respaced",
)
def repaint(denoise, x, sigmas, noise, operator, y, noise_std, *, jump_length, jump_count, callback=None):
    basis = Spectral(operator, x)
    levels = with_final_zero(sigmas)
    path = repaint_path(len(sigmas), jump_length, jump_count)
    nfe = 0
    for step, (here, there) in enumerate(zip(path[:-1], path[1:])):   # a step: one move down or up the path
        sigma, following = levels[here], levels[there]
        if there > here:      # down: denoise, step, replace the measured part
            x = replacement_step(denoise, x, sigma, following, noise, operator, y, basis)
            nfe += 1
        else:                 # up: forward diffusion q(x_following | x_sigma)
            x = x + math.sqrt(following ** 2 - sigma ** 2) * noise(x)
        report(callback, step, sigma, x)
    return x, nfe


# --- ILVR -------------------------------------------------------------------------------------

@register(
    "ilvr",
    knobs={"refine_until": Knob("float", 0.0, "ILVR's conditioning range: refine while sigma >= this level "
                                              "(0: every step)", minimum=0.0)},
    description="ILVR (Choi et al. 2021): ancestral step, then x + phi(y_renoised) - phi(x) with the low-pass "
                "phi = A^+ A (the projection onto A's row space, for any linear A)",
    init="sigma_max",
    default_schedule="vp_respaced",
)
def ilvr(denoise, x, sigmas, noise, operator, y, noise_std, *, refine_until, callback=None):
    basis = Spectral(operator, x)
    nfe = 0
    for step, (sigma, following) in enumerate(steps_to_zero(sigmas)):
        if sigma >= refine_until:
            x = replacement_step(denoise, x, sigma, following, noise, operator, y, basis)
        else:
            x = ancestral_step(x, denoise(x, sigma), sigma, following, noise)
        nfe += 1
        report(callback, step, sigma, x)
    return x, nfe


# --- DDNM / DDNM+ -----------------------------------------------------------------------------

def null_space_step(denoise, x, sigma, following, noise, operator, y, basis, noise_std):
    """One DDNM+ step in VE coordinates (one denoiser call). The ancestral step x' = a x0 + r x +
    sqrt(budget) n (r = sigma'^2 / sigma^2, a = 1 - r, budget = sigma'^2 (1 - r)) gets
    x0_hat = x0 + V diag(lam) V^T A^+ (y - A x0): a correction carrying noise of std a lam_i s / s_i,
    with lam_i = min(1, sqrt(budget) s_i / (a s)), and fresh noise topped up to the budget:
    phi_i = budget - (a lam_i s / s_i)^2. With s = 0 (DDNM) lam = 1 and phi = budget."""
    import torch
    x0 = denoise(x, sigma)
    ratio = following ** 2 / sigma ** 2
    a, budget = 1 - ratio, following ** 2 * (1 - ratio)
    safe_s = basis.s.clamp(min=torch.finfo(basis.s.dtype).tiny)
    carried = a * noise_std / safe_s                    # std the full correction carries, per coordinate
    full = carried <= math.sqrt(budget)                 # lam = 1; else lam < 1 and the budget is used up
    lam = torch.where(full, torch.ones_like(carried), math.sqrt(budget) / carried) * basis.observed
    correction = lam * basis.y_coefficients(residual(operator, x0, y)) / safe_s     # lam V^T A^+ (y - A x0)
    x0_hat = x0 + basis.from_spectral(correction)
    fresh = torch.where(full, (budget - carried ** 2).clamp(min=0), torch.zeros_like(carried))  # 0 where lam < 1
    fresh = torch.where(basis.observed, fresh, torch.full_like(fresh, budget))
    return x0_hat + ratio * (x - x0_hat) + basis.from_spectral(fresh.sqrt() * basis.noise(x, noise))


def null_space(denoise, x, sigmas, noise, operator, y, noise_std, callback):
    basis = Spectral(operator, x)
    nfe = 0
    for step, (sigma, following) in enumerate(steps_to_zero(sigmas)):
        x = null_space_step(denoise, x, sigma, following, noise, operator, y, basis, noise_std)
        nfe += 1
        report(callback, step, sigma, x)
    return x, nfe


@register(
    "ddnm",
    knobs={},
    description="DDNM (Wang et al. 2023): x0 <- A^+ y + (I - A^+ A) D(x), then the ancestral step; treats y "
                "as noiseless",
    init="sigma_max",
    default_schedule="vp_respaced",
)
def ddnm(denoise, x, sigmas, noise, operator, y, noise_std, *, callback=None):
    return null_space(denoise, x, sigmas, noise, operator, y, 0.0, callback)


@register(
    "ddnm_plus",
    knobs={},
    description="DDNM+ (Wang et al. 2023, noisy y): the null-space correction scaled per singular value, "
                "lam_i = min(1, sigma_step s_i / (a s)), fresh noise phi_i = sigma_step^2 - (a lam_i s / s_i)^2",
    init="sigma_max",
    default_schedule="vp_respaced",
)
def ddnm_plus(denoise, x, sigmas, noise, operator, y, noise_std, *, callback=None):
    return null_space(denoise, x, sigmas, noise, operator, y, noise_std, callback)


# --- RED-diff ---------------------------------------------------------------------------------

@register(
    "red_diff",
    knobs={"lam": Knob("float", 0.25, "RED-diff's lambda: weight of the denoiser regulariser", minimum=0.0),
           "lr": Knob("float", 0.25, "Adam's step size on mu", minimum=0.0)},
    description="RED-diff (Mardani et al. 2023): mu from A^+ y; per level one Adam step on "
                "||y - A mu||^2 / 2 + lam sigma sg(eps_hat(mu + sigma n) - n)^T mu (a MAP-like estimate, not a sampler)",
    init="sigma_max",
    default_schedule="vp_respaced",
)
def red_diff(denoise, x, sigmas, noise, operator, y, noise_std, *, lam, lr, callback=None):
    import torch
    mu = Spectral(operator, x).pseudo_inverse(y).clone().requires_grad_(True)
    optimizer = torch.optim.Adam([mu], lr=lr)
    nfe = 0
    for step, sigma in enumerate(checked_levels(sigmas)):
        n = noise(x)
        x_sigma = mu.detach() + sigma * n
        denoised = denoise(x_sigma, sigma)
        eps_hat = (x_sigma - denoised) / sigma
        nfe += 1
        with torch.enable_grad():
            loss = 0.5 * residual(operator, mu, y).pow(2).sum() + lam * sigma * ((eps_hat - n) * mu).sum()
            optimizer.zero_grad()
            loss.backward()
        optimizer.step()
        report(callback, step, sigma, mu.detach(), denoised)
    return mu.detach(), nfe


# --- DAPS -------------------------------------------------------------------------------------

@register(
    "daps",
    knobs={"steps_per_level": Knob("int", 50, "Langevin steps on x0 at each noise level", minimum=1, maximum=100_000,
                                   formerly="langevin_steps"),
           "step_size": Knob("float", 0.1, "Langevin step as a share of the target's smallest std^2: "
                                           "eta = step_size / (1 / r^2 + max(s_i)^2 / s^2)", minimum=0.0,
                             maximum=1.0)},
    description="DAPS (Zhang et al. 2024): per level x0_hat = D(x, sigma) (one call), Langevin on "
                "N(x0; x0_hat, r^2 I) N(y; A x0, s^2 I) with r = sigma, then x = x0 + sigma' n",
    init="sigma_max",
    default_schedule="vp_respaced",
)
def daps(denoise, x, sigmas, noise, operator, y, noise_std, *, steps_per_level, step_size, callback=None):
    largest = operator.norm()
    nfe = 0
    for step, (sigma, following) in enumerate(steps_to_zero(sigmas)):
        x0_hat = denoise(x, sigma)
        nfe += 1
        eta = step_size / (1 / sigma ** 2 + largest ** 2 / noise_std ** 2)
        x0 = x0_hat
        for _ in range(steps_per_level):
            drift = (x0_hat - x0) / sigma ** 2 + operator.adjoint(residual(operator, x0, y)) / noise_std ** 2
            x0 = x0 + eta * drift + math.sqrt(2 * eta) * noise(x0)
        x = x0 + following * noise(x0)
        report(callback, step, sigma, x, x0_hat)
    return x, nfe
