"""Log-likelihood through the probability-flow ODE (Song et al. 2021, FFJORD's estimator).

Along dx/dsigma = f(x, sigma) = (x - D(x, sigma)) / sigma the log-density changes as
d log p_sigma(x(sigma)) / dsigma = -div f, so integrating a point from sigma_min up to sigma_max

    log p_{sigma_min}(x) = log N(x(sigma_max); 0, sigma_max^2 I) + int_{sigma_min}^{sigma_max} div f dsigma,

with div f = (d - tr dD/dx) / sigma. The trace is exact (one backward pass per dimension; fine
in low dimension) or Hutchinson's estimate E[v^T (df/dx) v] with Rademacher probes drawn once
per solve. The ODE is solved with adaptive RK45 (scipy); NFE counts denoiser forward passes.
"""

from __future__ import annotations

import math

import numpy as np
import torch


def drift_and_divergence(denoise, x: torch.Tensor, sigma: float, probes: torch.Tensor | None):
    """f(x, sigma) and div f per sample; exact when `probes` is None, else Hutchinson's estimate."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        drift = (x - denoise(x, sigma)) / sigma
        flat = drift.reshape(x.shape[0], -1)
        if probes is None:
            divergence = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for i in range(flat.shape[1]):
                grad, = torch.autograd.grad(flat[:, i].sum(), x, retain_graph=i < flat.shape[1] - 1)
                divergence = divergence + grad.reshape(x.shape[0], -1)[:, i]
        else:
            divergence = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            for j, v in enumerate(probes):
                grad, = torch.autograd.grad((drift * v).sum(), x, retain_graph=j < len(probes) - 1)
                divergence = divergence + (grad * v).reshape(x.shape[0], -1).sum(dim=1)
            divergence = divergence / len(probes)
    return drift.detach(), divergence.detach()


def ode_log_likelihood(denoise, x: torch.Tensor, sigma_min: float, sigma_max: float, trace: str = "exact",
                       n_probes: int = 1, generator: torch.Generator | None = None, rtol: float = 1e-5,
                       atol: float = 1e-5) -> tuple[torch.Tensor, int]:
    """log p_{sigma_min}(x) per sample (nats) under the model's probability-flow ODE, and the NFE."""
    from scipy.integrate import solve_ivp

    if trace not in ("exact", "hutchinson"):
        raise ValueError(f"trace: unknown estimator '{trace}'; allowed: exact, hutchinson")
    n, dim = x.shape[0], x[0].numel()
    probes = None
    if trace == "hutchinson":
        generator = generator or torch.Generator(device=x.device).manual_seed(0)
        probes = [torch.randint(0, 2, x.shape, generator=generator, device=x.device).to(x.dtype) * 2 - 1
                  for _ in range(n_probes)]
    nfe = 0

    def rhs(sigma, state):
        nonlocal nfe
        current = torch.from_numpy(state[:-n]).to(x).reshape(x.shape)
        drift, divergence = drift_and_divergence(denoise, current, float(sigma), probes)
        nfe += 1
        return np.concatenate([drift.reshape(-1).cpu().double().numpy(), divergence.cpu().double().numpy()])

    start = np.concatenate([x.detach().reshape(-1).cpu().double().numpy(), np.zeros(n)])
    solution = solve_ivp(rhs, (sigma_min, sigma_max), start, method="RK45", rtol=rtol, atol=atol)
    if not solution.success:
        raise RuntimeError(f"likelihood ODE failed: {solution.message}")
    end = torch.from_numpy(solution.y[:, -1])
    x_end, integral = end[:-n].reshape(n, -1), end[-n:]
    prior = -0.5 * (x_end ** 2).sum(dim=1) / sigma_max ** 2 - dim * math.log(sigma_max) - 0.5 * dim * math.log(2 * math.pi)
    return prior + integral, nfe


def bits_per_dim(log_p: torch.Tensor, dim: int) -> torch.Tensor:
    """Negative log-likelihood in bits per dimension."""
    return -log_p / (dim * math.log(2.0))
