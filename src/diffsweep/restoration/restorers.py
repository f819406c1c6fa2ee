"""Restorers: conditional samplers for y = A x + s n, behind the registry like the samplers.

    restorer(denoise, x, sigmas, noise, operator, y, noise_std, **knobs) -> (samples, nfe)

Where a method is an unconditional sampler run with a conditional denoiser, it reuses the
sampler itself: a likelihood score g added to the prior score is a denoiser
D'(x, sigma) = D(x, sigma) + sigma^2 g(x, sigma), since score = (D - x) / sigma^2.

    rw_conditional  the paper's walk, g = A^T (y - A x) / s^2 exact at the current iterate, its step
                    clamped at s^2 / max(1, ||A||^2) (stable for any operator)
    dps             VE ancestral step, then x -= scale (1 + sigma^2) grad_x ||y - A D(x)||
    ddrm            DDRM's spectral update (operators with an SVD)
    diffpir         prox step on D(x) (rho = lam s^2 / sigma^2), then partial renoising (zeta)
    pigdm           DDIM with PiGDM's guidance (r^2 = sigma^2 / (1 + sigma^2))
    replacement     RePaint/ILVR: ancestral step, then the measured part is replaced by y renoised
"""

import math

from diffsweep.restoration.registry import Knob, register
from diffsweep.samplers.ddpm import ddim
from diffsweep.samplers.random_walk import COMMON_KNOBS, EPS, T0, VE_CONTINUOUS_SIGMA, reference_levels, walk
from diffsweep.samplers.randomness import report
from diffsweep.samplers.levels import steps_to_zero


def residual(operator, x, y):
    return y - operator.forward(x)


def ancestral_step(x, x0, sigma, following, noise):
    """Exact DDPM posterior q(x_{sigma'} | x_sigma = x, x0) in VE coordinates."""
    ratio = following ** 2 / sigma ** 2
    x = x0 + ratio * (x - x0)
    if following > 0:
        x = x + math.sqrt(following ** 2 * (1 - ratio)) * noise(x)
    return x


class Spectral:
    """The operator's SVD (`operator.svd()`: structured where the operator has a structure, so no
    dense matrix is formed) in the dtype and device of `like`, singular values below rtol * max
    set to zero. `s` and `observed` broadcast against spectral coordinates (possibly complex)."""

    def __init__(self, operator, like, rtol: float = 1e-10):
        self.svd, self.rtol = operator.svd().to(like), rtol
        self.s = self.svd.significant(rtol)
        self.observed = self.s > 0

    def to_spectral(self, x):
        return self.svd.vt(x)

    def from_spectral(self, x_bar):
        return self.svd.v(x_bar)

    def y_coefficients(self, y):
        """U^T y at the positions of the singular values: the measurement in the right singular basis, times s_i."""
        return self.svd.ut(y)

    def noise(self, x, noise):
        """V^T z, z ~ N(0, I) shaped like x: white noise in spectral coordinates, drawn in image space so that
        a draw does not depend on the basis (dense and structured SVDs give the same samples)."""
        return self.to_spectral(noise(x))

    def pseudo_inverse(self, y):
        return self.svd.pseudo_inverse(y, self.rtol)


# --- the paper's conditional walk -------------------------------------------------------------

@register(
    "rw_conditional",
    knobs={"eps": EPS, "T0": T0,
           "clamp_tau": Knob("bool", True, "tau_k = min(eps sigma_k^2, noise_std_effective^2 / max(1, ||A||^2)): "
                                           "the reference code's clamp, scaled by the operator's norm so that the "
                                           "likelihood step is stable for any operator (off: tau_k = eps sigma_k^2)"),
           "ve_continuous_sigma": VE_CONTINUOUS_SIGMA, **COMMON_KNOBS},
    description="the paper's conditional random walk: exact likelihood gradient at the current iterate, "
                "tau = eps sigma^2 (clamped at noise_std_effective^2 / max(1, ||A||^2)), temperature T0 -> 1",
    init="unit",
    default_schedule="sigmoid",
)
def rw_conditional(denoise, x, sigmas, noise, operator, y, noise_std, *, eps, T0, clamp_tau,
                   ve_continuous_sigma, steps_per_level, final_noise, callback=None):
    sigmas, taus, temperatures = reference_levels(sigmas, eps, T0, ve_continuous_sigma)
    if clamp_tau:
        taus = [min(tau, likelihood_step_bound(operator, noise_std)) for tau in taus]

    def posterior_denoiser(x, sigma):
        return denoise(x, sigma) + sigma ** 2 * operator.adjoint(residual(operator, x, y)) / noise_std ** 2

    return walk(posterior_denoiser, x, sigmas, noise, taus=taus, temperatures=temperatures,
                steps_per_level=steps_per_level, final_noise=final_noise, callback=callback)


def likelihood_step_bound(operator, noise_std: float) -> float:
    """The largest tau for which the walk's likelihood step x += (tau / s^2) A^T (y - A x) does not
    overshoot: (tau / s^2) ||A||^2 <= 1, a gradient step on ||y - A x||^2 / (2 s^2) of at most 1 / L.
    The reference code's clamp, tau <= s^2, is this bound for ||A|| = 1 and diverges once
    ||A||^2 > 2 (the step then amplifies the top singular direction); for ||A|| <= 1 (every image
    operator here: masks, blur, super-resolution) the bound is kept at s^2, so results do not change."""
    return noise_std ** 2 / max(1.0, operator.norm() ** 2)


# --- DPS --------------------------------------------------------------------------------------

@register(
    "dps",
    knobs={"scale": Knob("float", 1.0, "DPS's step zeta' (the VP code's step in VE coordinates: "
                                       "zeta' (1 + sigma^2) grad ||y - A D(x)||)", minimum=0.0)},
    description="diffusion posterior sampling (Chung et al. 2023): ancestral step, then a gradient step on "
                "||y - A D(x)|| through the denoiser",
    init="vp_prior",
    default_schedule="vp_respaced",
)
def dps(denoise, x, sigmas, noise, operator, y, noise_std, *, scale, callback=None):
    import torch
    nfe = 0
    for step, (sigma, following) in enumerate(steps_to_zero(sigmas)):
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            x0 = denoise(x_in, sigma)
            nfe += 1
            distance = residual(operator, x0, y).flatten(1).norm(dim=1)
            (gradient,) = torch.autograd.grad(distance.sum(), x_in)
        x = ancestral_step(x, x0.detach(), sigma, following, noise)
        x = x - scale * (1 + sigma ** 2) * gradient
        report(callback, step, sigma, x, x0.detach())
    return x, nfe


# --- DDRM -------------------------------------------------------------------------------------

@register(
    "ddrm",
    knobs={"eta": Knob("float", 0.85, "DDRM's eta: fresh-noise share of the update", minimum=0.0, maximum=1.0),
           "eta_b": Knob("float", 1.0, "DDRM's eta_b: weight of the measurement where it is noisier than x",
                         minimum=0.0, maximum=1.0)},
    description="denoising diffusion restoration models (Kawar et al. 2022), in the operator's SVD basis",
    init="sigma_max",
    default_schedule="vp_respaced",
)
def ddrm(denoise, x, sigmas, noise, operator, y, noise_std, *, eta, eta_b, callback=None):
    import torch
    basis = Spectral(operator, x)
    observed = basis.observed
    safe_s = basis.s.clamp(min=torch.finfo(basis.s.dtype).tiny)   # float32 or float64, as the score source
    y_bar = basis.y_coefficients(y) * observed / safe_s
    y_level = torch.where(observed, noise_std / safe_s, torch.full_like(safe_s, math.inf))  # noise of y_bar_i
    finite_level = y_level.clamp(max=torch.finfo(y_level.dtype).max)
    nfe = 0
    for step, (sigma, following) in enumerate(steps_to_zero(sigmas)):
        x0 = denoise(x, sigma)
        nfe += 1
        x0_bar, x_bar = basis.to_spectral(x0), basis.to_spectral(x)
        z = basis.noise(x, noise)
        keep = math.sqrt(1 - eta ** 2) * following
        unobserved = x0_bar + keep * (x_bar - x0_bar) / sigma + eta * following * z
        below_noise = x0_bar + keep * (y_bar - x0_bar) / finite_level + eta * following * z
        above_noise = ((1 - eta_b) * x0_bar + eta_b * y_bar
                       + (following ** 2 - eta_b ** 2 * finite_level ** 2).clamp(min=0).sqrt() * z)
        new = torch.where(observed, torch.where(following < y_level, below_noise, above_noise), unobserved)
        x = basis.from_spectral(new)
        report(callback, step, sigma, x, x0)
    return x, nfe


# --- DiffPIR ----------------------------------------------------------------------------------

@register(
    "diffpir",
    knobs={"lam": Knob("float", 1.0, "DiffPIR's lambda: rho_t = lam s^2 / sigma_t^2", minimum=0.0),
           "zeta": Knob("float", 0.3, "DiffPIR's zeta: share of fresh noise when renoising", minimum=0.0,
                        maximum=1.0)},
    description="DiffPIR (Zhu et al. 2023): data-consistency prox on D(x), then partial renoising",
    init="sigma_max",
    default_schedule="vp_respaced",
)
def diffpir(denoise, x, sigmas, noise, operator, y, noise_std, *, lam, zeta, callback=None):
    basis = Spectral(operator, x)
    y_coefficients = basis.y_coefficients(y)
    nfe = 0
    for step, (sigma, following) in enumerate(steps_to_zero(sigmas)):
        x0 = denoise(x, sigma)
        nfe += 1
        rho = lam * noise_std ** 2 / sigma ** 2
        # argmin ||y - A v||^2 + rho ||v - x0||^2, in the SVD basis
        x0 = basis.from_spectral((basis.s * y_coefficients + rho * basis.to_spectral(x0)) / (basis.s ** 2 + rho))
        eps_hat = (x - x0) / sigma
        x = x0 + following * (math.sqrt(1 - zeta) * eps_hat + math.sqrt(zeta) * noise(x))
        report(callback, step, sigma, x, x0)
    return x, nfe


# --- PiGDM ------------------------------------------------------------------------------------

@register(
    "pigdm",
    knobs={"eta": Knob("float", 1.0, "DDIM's eta of the underlying sampler", minimum=0.0),
           "scale": Knob("float", 1.0, "multiplies the guidance", minimum=0.0)},
    description="pseudo-inverse guided diffusion (Song et al. 2023): DDIM with the guidance "
                "J^T A^T (r^2 A A^T + s^2 I)^{-1} (y - A D(x)), r^2 = sigma^2 / (1 + sigma^2)",
    init="vp_prior",
    default_schedule="vp_respaced",
)
def pigdm(denoise, x, sigmas, noise, operator, y, noise_std, *, eta, scale, callback=None):
    import torch
    basis = Spectral(operator, x)

    def guided_denoiser(x, sigma):
        r2 = sigma ** 2 / (1 + sigma ** 2)
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            x0 = denoise(x_in, sigma)
            # A^T (r^2 A A^T + s^2 I)^{-1} (y - A x0) = V diag(s_i / (r^2 s_i^2 + s^2)) U^T (y - A x0)
            residual_bar = basis.y_coefficients(residual(operator, x0.detach(), y))
            weighted = basis.from_spectral(basis.s * residual_bar / (r2 * basis.s ** 2 + noise_std ** 2))
            (guidance,) = torch.autograd.grad((weighted * x0).sum(), x_in)
        return x0.detach() + scale * sigma ** 2 * guidance

    return ddim(guided_denoiser, x, sigmas, noise, eta=eta, callback=callback)


# --- replacement / projection ----------------------------------------------------------------

@register(
    "replacement",
    knobs={},
    description="RePaint/ILVR-style baseline: ancestral step, then the measured subspace of x is replaced by "
                "y renoised to the next level (A^+ via the SVD; masks: the known pixels)",
    init="sigma_max",
    default_schedule="vp_respaced",
)
def replacement(denoise, x, sigmas, noise, operator, y, noise_std, *, callback=None):
    basis = Spectral(operator, x)
    nfe = 0
    for step, (sigma, following) in enumerate(steps_to_zero(sigmas)):
        x = replacement_step(denoise, x, sigma, following, noise, operator, y, basis)
        nfe += 1
        report(callback, step, sigma, x)
    return x, nfe


def replacement_step(denoise, x, sigma, following, noise, operator, y, basis):
    """One step of the replacement family (one denoiser call): ancestral step to `following`, then
    x + A^+ (y_following - A x), y_following = y + following A n (y renoised to the next level).
    For masks A^+ A keeps the known pixels; for SR it is ILVR's low-pass phi = A^+ A."""
    x = ancestral_step(x, denoise(x, sigma), sigma, following, noise)
    noisy_y = y + following * operator.forward(noise(x))
    return x + basis.pseudo_inverse(noisy_y - operator.forward(x))
