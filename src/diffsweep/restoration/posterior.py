"""The exact posterior of a Gaussian-mixture prior under y = A x + s n, n ~ N(0, I).

Each component stays Gaussian and is reweighted by its evidence N(y; A mu_k, S_k):

    S_k   = A Sigma_k A^T + s^2 I
    w'_k  ~ w_k N(y; A mu_k, S_k)
    mu'_k = mu_k + Sigma_k A^T S_k^{-1} (y - A mu_k)
    C'_k  = Sigma_k - Sigma_k A^T S_k^{-1} A Sigma_k

It gives the MMSE estimate (the posterior mean), exact posterior samples, and the yardstick
every restorer is measured against. Samples are flattened, float64.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from diffsweep.gmm import DTYPE, GaussianMixture, as_float64


@dataclass
class MixturePosterior:
    weights: Tensor       # (K,)
    means: Tensor         # (K, d)
    covariances: Tensor   # (K, d, d), positive semi-definite (singular where s = 0 pins a direction)

    def mean(self) -> Tensor:
        return self.weights @ self.means

    def covariance(self) -> Tensor:
        """Law of total covariance: sum_k w_k (C_k + mu_k mu_k^T) - m m^T."""
        second = torch.einsum("k,kde->de", self.weights, self.covariances)
        second = second + torch.einsum("k,kd,ke->de", self.weights, self.means, self.means)
        m = self.mean()
        return second - torch.outer(m, m)

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Exact samples (n, d): a component by weight, then mu_k + C_k^{1/2} z."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.means.shape[1], generator=generator, dtype=DTYPE)
        eigvals, eigvecs = torch.linalg.eigh(self.covariances)
        roots = eigvecs * eigvals.clamp(min=0).sqrt().unsqueeze(1)        # C_k^{1/2} = U diag(sqrt(lam))
        return self.means[labels] + torch.einsum("nde,ne->nd", roots[labels], z)


def exact_posterior(prior: GaussianMixture, matrix, y, noise_std: float) -> MixturePosterior:
    """Posterior of `prior` given one measurement y (m,) = matrix (m, d) x + noise_std n."""
    A, y = as_float64(matrix), as_float64(y).reshape(-1)
    means, covariances = prior.means, prior.covariances
    gain_left = covariances @ A.T                                         # Sigma_k A^T, (K, d, m)
    S = A @ gain_left + noise_std ** 2 * torch.eye(A.shape[0], dtype=DTYPE)
    L = torch.linalg.cholesky(S)
    residual = y - means @ A.T                                            # (K, m)
    whitened = torch.linalg.solve_triangular(L, residual.unsqueeze(-1), upper=False).squeeze(-1)
    log_det = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    log_evidence = -0.5 * (A.shape[0] * math.log(2 * math.pi) + log_det + (whitened ** 2).sum(-1))
    weights = torch.softmax(torch.log(prior.weights) + log_evidence, 0)
    solved = torch.cholesky_solve(residual.unsqueeze(-1), L).squeeze(-1)  # S_k^{-1} (y - A mu_k)
    post_means = means + torch.einsum("kdm,km->kd", gain_left, solved)
    gain = torch.cholesky_solve(gain_left.transpose(1, 2), L)              # S_k^{-1} A Sigma_k, (K, m, d)
    post_cov = covariances - gain_left @ gain
    post_cov = 0.5 * (post_cov + post_cov.transpose(1, 2))
    return MixturePosterior(weights, post_means, post_cov)
