"""The exact posterior of a Gaussian-mixture prior under y = A x + s n, n ~ N(0, I).

Each component stays Gaussian and is reweighted by its evidence N(y; A mu_k, S_k):

    S_k   = A Sigma_k A^T + s^2 I
    w'_k  ~ w_k N(y; A mu_k, S_k)
    mu'_k = mu_k + Sigma_k A^T S_k^{-1} (y - A mu_k)
    C'_k  = Sigma_k - Sigma_k A^T S_k^{-1} A Sigma_k

It gives the MMSE estimate (the posterior mean), exact posterior samples, and the yardstick
every restorer is measured against. Samples are flattened, float64.

Which component explains a point x is the same question under the posterior as under the prior:
w'_k N(x; mu'_k, C'_k) = w_k N(x; mu_k, Sigma_k) N(y; A x, s^2 I) / p(y), and the likelihood factor does
not depend on k, so the posterior's responsibilities are the prior's (`responsibilities`). They cost
the prior's O(K d r) per row, never form C'_k, and hold where a component's posterior weight underflows.

A prior with structured covariances (gmm.StructuredMixture: diagonal plus rank r) gets a
StructuredPosterior: the same weights and means from m x m solves (m = rows of A), with
Sigma_k A^T formed in O(d m r), and exact samples by Matheron's rule (pathwise conditioning):
draw x0 ~ N(mu_k, Sigma_k) and e ~ N(0, s^2 I), then

    x = x0 + Sigma_k A^T S_k^{-1} (y - A x0 - e)   ~   N(mu'_k, C'_k),

which costs O(d (m + r)) per sample and never forms the d x d covariance C'_k.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from diffsweep.gmm import DTYPE, GaussianMixture, StructuredMixture, as_float64, grid25_pairs_mixture, grid25_pairs_weights
from diffsweep.restoration.operators import MatrixOperator


@dataclass
class MixturePosterior:
    weights: Tensor       # (K,)
    means: Tensor         # (K, d)
    covariances: Tensor   # (K, d, d), positive semi-definite (singular where s = 0 pins a direction)
    prior: GaussianMixture

    def mean(self) -> Tensor:
        return self.weights @ self.means

    def responsibilities(self, x) -> Tensor:
        """P(k | x) under the posterior mixture, (n, K): the prior's (module docstring)."""
        return self.prior.responsibilities(x)

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


def exact_posterior(prior: GaussianMixture | StructuredMixture, matrix, y, noise_std: float):
    """Posterior of `prior` given one measurement y (m,) = matrix (m, d) x + noise_std n: a
    MixturePosterior for a GaussianMixture, a StructuredPosterior for a StructuredMixture."""
    A, y = as_float64(matrix), as_float64(y).reshape(-1)
    if isinstance(prior, StructuredMixture):
        rows = A.unsqueeze(1).expand(-1, prior.n_components, -1)               # (m, K, d)
        gain_left = prior.covariance_times(rows).permute(1, 2, 0)              # Sigma_k A^T, (K, d, m)
    else:
        gain_left = prior.covariances @ A.T                                # Sigma_k A^T, (K, d, m)
    weights, means, L, solved = _condition(prior, A, y, noise_std, gain_left)
    if isinstance(prior, StructuredMixture):
        return StructuredPosterior(weights, means, prior, A, y, noise_std, gain_left, L)
    gain = torch.cholesky_solve(gain_left.transpose(1, 2), L)              # S_k^{-1} A Sigma_k, (K, m, d)
    post_cov = prior.covariances - gain_left @ gain
    post_cov = 0.5 * (post_cov + post_cov.transpose(1, 2))
    return MixturePosterior(weights, means, post_cov, prior)


def _condition(prior, A: Tensor, y: Tensor, noise_std: float, gain_left: Tensor):
    """(posterior weights (K,), posterior means (K, d), Cholesky factors of S_k (K, m, m),
    S_k^{-1} (y - A mu_k) (K, m)) from G_k = Sigma_k A^T: m x m work per component."""
    S = A @ gain_left + noise_std ** 2 * torch.eye(A.shape[0], dtype=DTYPE)
    L = torch.linalg.cholesky(S)
    residual = y - prior.means @ A.T                                      # (K, m)
    whitened = torch.linalg.solve_triangular(L, residual.unsqueeze(-1), upper=False).squeeze(-1)
    log_det = 2 * torch.log(torch.diagonal(L, dim1=-2, dim2=-1)).sum(-1)
    log_evidence = -0.5 * (A.shape[0] * math.log(2 * math.pi) + log_det + (whitened ** 2).sum(-1))
    weights = torch.softmax(torch.log(prior.weights) + log_evidence, 0)
    solved = torch.cholesky_solve(residual.unsqueeze(-1), L).squeeze(-1)  # S_k^{-1} (y - A mu_k)
    means = prior.means + torch.einsum("kdm,km->kd", gain_left, solved)
    return weights, means, L, solved


@dataclass
class StructuredPosterior:
    """The posterior of a StructuredMixture prior: weights (K,), means (K, d), and what Matheron's
    rule needs (the prior, A, y, s, G_k = Sigma_k A^T (K, d, m), the Cholesky factors of S_k)."""
    weights: Tensor
    means: Tensor
    prior: StructuredMixture
    matrix: Tensor
    y: Tensor
    noise_std: float
    gains: Tensor
    cholesky: Tensor

    def mean(self) -> Tensor:
        return self.weights @ self.means

    def responsibilities(self, x) -> Tensor:
        """P(k | x) under the posterior mixture, (n, K): the prior's (module docstring), O(K d r) per row."""
        return self.prior.responsibilities(x)

    def component_covariance(self, k: int) -> Tensor:
        """C'_k = Sigma_k - G_k S_k^{-1} G_k^T, dense (d, d)."""
        prior, G = self.prior, self.gains[k]
        sigma = torch.diag(prior.diagonals[k]) + prior.factors[k] @ prior.factors[k].T
        return sigma - G @ torch.cholesky_solve(G.T, self.cholesky[k])

    @property
    def covariances(self) -> Tensor:
        """Dense (K, d, d): for small d and tests only."""
        return torch.stack([self.component_covariance(k) for k in range(len(self.weights))])

    def covariance(self) -> Tensor:
        """Law of total covariance, dense (d, d), one component at a time (never K d^2 numbers)."""
        m = self.mean()
        total = -torch.outer(m, m)
        for k, w in enumerate(self.weights.tolist()):
            total += w * (self.component_covariance(k) + torch.outer(self.means[k], self.means[k]))
        return total

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """Exact samples (n, d). Draw order: labels by weight (as MixturePosterior), prior normals
        (n x d, then n x r), measurement normals (n x m); then Matheron's rule per component."""
        labels = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        eps = torch.randn(n, self.prior.dim, generator=generator, dtype=DTYPE)
        eta = torch.randn(n, self.prior.rank, generator=generator, dtype=DTYPE)
        e = self.noise_std * torch.randn(n, self.matrix.shape[0], generator=generator, dtype=DTYPE)
        x = self.prior.sample_components(labels, eps, eta)
        for k in labels.unique().tolist():
            rows = labels == k
            residual = self.y - x[rows] @ self.matrix.T - e[rows]                      # (n_k, m)
            x[rows] += (self.gains[k] @ torch.cholesky_solve(residual.T, self.cholesky[k])).T
        return x


# --- published problems -------------------------------------------------------------------

@dataclass
class Problem:
    """A restoration problem with a known answer: a mixture prior, one measurement
    y = matrix x + noise_std n of a ground truth drawn from the prior, and its exact posterior."""
    prior: StructuredMixture
    matrix: Tensor        # (m, d), float64
    noise_std: float
    y: Tensor             # (m,)
    truth: Tensor         # (d,)

    def posterior(self) -> StructuredPosterior:
        return exact_posterior(self.prior, self.matrix, self.y, self.noise_std)


def grid25_pairs_problem(dim: int, d_y: int, seed: int = 27) -> Problem:
    """The benchopt benchmark's problem (github.com/gabrielvc/benchopts_inverse_problem_diffusion_prior,
    datasets/gaussian_mixture.py), drawn in its order and float32 from one generator seeded by
    `seed` (there: torch.manual_seed(27) and the global generator):
      1. the prior's weights: 25 normals, squared (gmm.grid25_pairs_weights);
      2. a d_y x dim matrix of normals; its SVD U diag(s) V^T (full V) keeps U and the first d_y
         rows of V^T; the singular values are replaced by d_y uniforms sorted in decreasing order;
      3. the ground truth, as torch.distributions.MixtureSameFamily.sample draws it: the label by
         torch.multinomial(p, 1) with the weights normalised twice in float32 (by the construction,
         then by Categorical), then 25 x dim normals (one sample of every component; the label's is kept);
      4. the noise std: a uniform times the largest singular value;
      5. y = A x + std * (d_y normals).
    The draws are float32; A, y, the std and the prior are then used in float64. Whether a seed gives
    the published instance depends on torch's random paths (docs/benchmarks.md)."""
    if d_y < 1 or d_y > dim:
        raise ValueError(f"grid25_pairs_problem: d_y must be in 1..{dim}, got {d_y}")
    generator = torch.Generator().manual_seed(seed)
    weights32 = grid25_pairs_weights(generator)
    prior = grid25_pairs_mixture(dim, weights32)
    gaussian = torch.randn(d_y, dim, generator=generator, dtype=torch.float32)
    U, _, Vh = torch.linalg.svd(gaussian, full_matrices=True)
    singular = torch.sort(torch.rand(d_y, generator=generator, dtype=torch.float32), descending=True).values
    matrix = U @ (torch.diag(singular) @ Vh[:d_y])
    probabilities = weights32 / weights32.sum()
    probabilities = probabilities / probabilities.sum(-1, keepdim=True)
    label = torch.multinomial(probabilities.reshape(1, -1), 1, True, generator=generator).item()
    components = torch.empty(25, dim, dtype=torch.float32).normal_(generator=generator)
    truth = prior.means[label].float() + components[label]
    std = torch.rand(1, generator=generator, dtype=torch.float32)[0] * singular.max()
    clean = matrix @ truth
    y = clean + torch.randn(clean.shape, generator=generator, dtype=torch.float32) * std
    return Problem(prior, matrix.double(), float(std), y.double(), truth.double())


class ProblemOperator(MatrixOperator):
    """A problem's matrix as the operator of a restoration run, carrying the rest of the problem:
    the run measures `problem.truth` as `problem.y` with noise std `drawn_noise_std`."""

    def __init__(self, problem: Problem, shape=None):
        super().__init__(problem.matrix, shape)
        self.problem = problem
        self.drawn_noise_std = problem.noise_std

    def arrays(self):
        return {"matrix": self.A.numpy(), "noise_std": torch.tensor(self.drawn_noise_std, dtype=DTYPE).numpy()}
