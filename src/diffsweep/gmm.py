"""Gaussian mixtures with exact noisy densities, denoisers and scores.

Everything lives in "VE coordinates": a noisy sample is x_sigma = x + sigma * n, n ~ N(0, I).
For a Gaussian mixture the noisy marginal p_sigma is again a mixture with covariances
Sigma_k + sigma^2 I, so log p_sigma, the posterior mean D(x, sigma) = E[x0 | x_sigma = x] and
the score (D - x) / sigma^2 are all available in closed form. They serve as an oracle
denoiser and as ground truth for the sample-quality metrics.

All results are float64 tensors, whatever float dtype comes in.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

DTYPE = torch.float64

# Rows per chunk are chosen so that one (rows, K, d) intermediate stays around this many
# elements (~32 MB in float64): n = 1e5, K = 20, d = 64 would otherwise need ~1 GB a tensor.
_CHUNK_ELEMENTS = 1 << 22


# --- Gaussian mixture -------------------------------------------------------------------

class _Mixture:
    """What both mixture classes read off their means (K, d)."""

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @property
    def n_components(self) -> int:
        return self.means.shape[0]


class GaussianMixture(_Mixture):
    """Weights (K,), means (K, d), covariances (K, d, d), float64 tensors.

    Each covariance is stored through its eigendecomposition Sigma_k = U_k diag(lam_k) U_k^T.
    Then Sigma_k + s^2 I = U_k diag(lam_k + s^2) U_k^T for every s, so solves and log
    determinants at any noise level (also one level per row) cost no new factorisation.
    """

    def __init__(self, weights, means, covariances):
        weights = as_float64(weights)
        means = as_float64(means)
        covariances = as_float64(covariances)
        _check_mixture_shapes(weights, means, covariances)
        if not bool(torch.all(torch.isfinite(weights))) or bool(torch.any(weights <= 0)):
            raise ValueError(f"mixture weights must be finite and > 0, got {weights.tolist()}")
        if not bool(torch.all(torch.isfinite(means))):
            raise ValueError("mixture means must be finite")
        self.weights = weights / weights.sum()
        self.means = means
        self.covariances = covariances
        self._eigvals, self._eigvecs = _spd_eigendecomposition(covariances)

    def __repr__(self) -> str:
        return f"GaussianMixture(n_components={self.n_components}, dim={self.dim})"

    # -- sampling ------------------------------------------------------------------------

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Exact samples (n, d) and their component labels (n,), deterministic given generator."""
        cumulative = torch.cumsum(self.weights, 0)
        u = torch.rand(n, generator=generator, dtype=DTYPE)
        # clamp: rounding can leave cumulative[-1] a hair below 1.
        labels = torch.searchsorted(cumulative, u, right=True).clamp(max=self.n_components - 1)
        eps = torch.randn(n, self.dim, generator=generator, dtype=DTYPE)
        x = torch.empty(n, self.dim, dtype=DTYPE)
        # One component at a time: gathering a (d, d) factor per row would be (n, d, d).
        for k in range(self.n_components):
            rows = labels == k
            scaled = eps[rows] * self._eigvals[k].sqrt()
            x[rows] = self.means[k] + scaled @ self._eigvecs[k].T
        return x, labels

    # -- noisy marginal ------------------------------------------------------------------

    def noisy(self, sigma) -> "GaussianMixture":
        """The marginal p_sigma of x + sigma * n, as a mixture (scalar sigma only)."""
        sigma = as_float64(sigma)
        if sigma.numel() != 1:
            raise ValueError("noisy() takes a single noise level")
        _check_sigma_values(sigma)
        eye = torch.eye(self.dim, dtype=DTYPE)
        return GaussianMixture(self.weights, self.means, self.covariances + sigma.reshape(()) ** 2 * eye)

    def log_prob(self, x, sigma=0.0) -> Tensor:
        """log p_sigma(x), shape (n,)."""
        x, sigma = self._prepare(x, sigma)
        parts = [torch.logsumexp(self._log_joint(*terms), dim=1)
                 for terms in self._chunked_terms(x, sigma)]
        return _cat_rows(parts, x)

    def responsibilities(self, x, sigma=0.0) -> Tensor:
        """Posterior component probabilities P(k | x_sigma = x), shape (n, K)."""
        x, sigma = self._prepare(x, sigma)
        parts = [torch.softmax(self._log_joint(*terms), dim=1)
                 for terms in self._chunked_terms(x, sigma)]
        return _cat_rows(parts, x, self.n_components)

    def mahalanobis(self, x, sigma=0.0) -> Tensor:
        """Mahalanobis distance of x to every component of p_sigma, shape (n, K)."""
        x, sigma = self._prepare(x, sigma)
        parts = [((z ** 2) / v).sum(-1).sqrt() for z, v in self._chunked_terms(x, sigma)]
        return _cat_rows(parts, x, self.n_components)

    def denoise(self, x, sigma) -> Tensor:
        """Exact posterior mean E[x0 | x_sigma = x], shape (n, d).

        Per component: mu_k + Sigma_k (Sigma_k + s^2 I)^{-1} (x - mu_k). Written directly
        (not as x + s^2 * score) to avoid cancellation at large sigma.
        """
        x, sigma = self._prepare(x, sigma)
        means, eigvals, eigvecs = self._parameters_on(x.device)
        parts = []
        for z, v in self._chunked_terms(x, sigma):
            r = torch.softmax(self._log_joint(z, v), dim=1)
            shrunk = r.unsqueeze(-1) * (eigvals / v) * z              # (rows, K, d), eigenbasis
            parts.append(r @ means + torch.einsum("kde,nke->nd", eigvecs, shrunk))
        return _cat_rows(parts, x, self.dim)

    def score(self, x, sigma) -> Tensor:
        """grad_x log p_sigma(x) = sum_k r_k (Sigma_k + s^2 I)^{-1} (mu_k - x), shape (n, d)."""
        x, sigma = self._prepare(x, sigma)
        _, _, eigvecs = self._parameters_on(x.device)
        parts = []
        for z, v in self._chunked_terms(x, sigma):
            r = torch.softmax(self._log_joint(z, v), dim=1)
            solved = r.unsqueeze(-1) * z / v                          # (rows, K, d), eigenbasis
            parts.append(-torch.einsum("kde,nke->nd", eigvecs, solved))
        return _cat_rows(parts, x, self.dim)

    # -- internals -----------------------------------------------------------------------

    def _prepare(self, x, sigma) -> tuple[Tensor, Tensor]:
        return _prepare_rows(x, sigma, self.dim)

    def _parameters_on(self, device) -> tuple[Tensor, Tensor, Tensor]:
        """Means, eigenvalues, eigenvectors on x's device (a no-op on CPU)."""
        return self.means.to(device), self._eigvals.to(device), self._eigvecs.to(device)

    def _chunked_terms(self, x: Tensor, sigma: Tensor):
        """Yield (z, v) per row chunk: z (rows, K, d) = U_k^T (x - mu_k) and
        v (rows or 1, K, d) = eigenvalues of Sigma_k + sigma^2 I."""
        means, eigvals, eigvecs = self._parameters_on(x.device)
        rows_per_chunk = max(1, _CHUNK_ELEMENTS // (self.n_components * self.dim))
        for start in range(0, x.shape[0], rows_per_chunk):
            rows = slice(start, start + rows_per_chunk)
            centred = x[rows].unsqueeze(1) - means                       # (rows, K, d)
            z = torch.einsum("kde,nkd->nke", eigvecs, centred)
            s = sigma if sigma.dim() == 0 else sigma[rows]
            v = eigvals + s.reshape(-1, 1, 1) ** 2
            yield z, v

    def _log_joint(self, z: Tensor, v: Tensor) -> Tensor:
        """log w_k + log N(x; mu_k, Sigma_k + s^2 I), shape (rows, K)."""
        mahalanobis_sq = (z ** 2 / v).sum(-1)
        log_det = torch.log(v).sum(-1)
        log_normal = -0.5 * (self.dim * math.log(2 * math.pi) + log_det + mahalanobis_sq)
        return torch.log(self.weights.to(z.device)) + log_normal


def _check_mixture_shapes(weights: Tensor, means: Tensor, covariances: Tensor) -> None:
    if weights.dim() != 1 or weights.numel() == 0:
        raise ValueError(f"weights must have shape (K,) with K >= 1, got {tuple(weights.shape)}")
    k = weights.shape[0]
    if means.dim() != 2 or means.shape[0] != k:
        raise ValueError(f"means must have shape ({k}, d), got {tuple(means.shape)}")
    d = means.shape[1]
    if covariances.shape != (k, d, d):
        raise ValueError(f"covariances must have shape ({k}, {d}, {d}), got {tuple(covariances.shape)}")


def _spd_eigendecomposition(covariances: Tensor) -> tuple[Tensor, Tensor]:
    """Eigenvalues (K, d) and eigenvectors (K, d, d); ValueError unless every matrix is SPD."""
    if not bool(torch.all(torch.isfinite(covariances))):
        raise ValueError("covariances must be finite")
    scale = covariances.abs().amax(dim=(-2, -1)).clamp(min=1e-300)
    asymmetry = (covariances - covariances.transpose(-2, -1)).abs().amax(dim=(-2, -1))
    if bool(torch.any(asymmetry > 1e-10 * scale)):
        raise ValueError("covariances must be symmetric")
    # Cholesky is the definitive SPD test; eigh alone could accept a zero eigenvalue.
    _, info = torch.linalg.cholesky_ex(covariances)
    eigvals, eigvecs = torch.linalg.eigh(covariances)
    if bool(torch.any(info != 0)) or bool(torch.any(eigvals <= 0)):
        bad = sorted(set(torch.nonzero(info).flatten().tolist())
                     | set(torch.nonzero((eigvals <= 0).any(-1)).flatten().tolist()))
        raise ValueError(f"covariances must be symmetric positive definite; components {bad} are not")
    return eigvals, eigvecs


def as_float64(value) -> Tensor:
    """Tensor in float64; python floats and lists go straight to float64, never via float32."""
    if isinstance(value, Tensor):
        return value.to(DTYPE)
    return torch.as_tensor(value, dtype=DTYPE)


def _check_sigma_values(sigma: Tensor) -> None:
    if not bool(torch.all(torch.isfinite(sigma))) or bool(torch.any(sigma < 0)):
        raise ValueError("sigma must be finite and >= 0")


def _cat_rows(parts: list[Tensor], x: Tensor, *trailing: int) -> Tensor:
    """Concatenate per-chunk results; an empty x gives an empty (0, *trailing) result."""
    if not parts:
        return torch.zeros(0, *trailing, dtype=DTYPE, device=x.device)
    return torch.cat(parts, dim=0)


# --- presets ---------------------------------------------------------------------------

def ring_mixture(n_modes: int = 8, radius: float = 4.0, std: float = 0.3) -> GaussianMixture:
    """Equal-weight isotropic modes evenly spaced on a circle (the "ring8" preset)."""
    angles = 2 * math.pi * torch.arange(n_modes, dtype=DTYPE) / n_modes
    means = radius * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    covariances = std ** 2 * torch.eye(2, dtype=DTYPE).expand(n_modes, 2, 2)
    return GaussianMixture(torch.ones(n_modes, dtype=DTYPE) / n_modes, means, covariances)


def grid25_mixture() -> GaussianMixture:
    """5x5 grid with unequal weights and rotated anisotropic covariances (the "grid25" preset).

    Deterministic by construction, so that weight- and shape-errors of a sampler are visible.
    """
    weights, means, covariances = [], [], []
    base = torch.diag(torch.tensor([0.3 ** 2, 0.12 ** 2], dtype=DTYPE))
    for i in range(5):
        for j in range(5):
            weights.append(1.0 + (i + 2 * j) % 5)
            means.append([2.0 * i - 4.0, 2.0 * j - 4.0])
            angle = math.pi * (i + j) / 5
            rotation = torch.tensor([[math.cos(angle), -math.sin(angle)],
                                     [math.sin(angle), math.cos(angle)]], dtype=DTYPE)
            covariances.append(rotation @ base @ rotation.T)
    weights = torch.tensor(weights, dtype=DTYPE)
    return GaussianMixture(weights / weights.sum(), torch.tensor(means, dtype=DTYPE),
                           torch.stack(covariances))


# --- structured covariances: diagonal plus low rank ---------------------------------------

class StructuredMixture(_Mixture):
    """Weights (K,), means (K, d), covariances Sigma_k = diag(D_k) + F_k F_k^T with diagonals
    D_k (K, d) > 0 and factors F_k (K, d, r) (r = 0: diagonal; constant D_k: isotropic).

    The same questions as GaussianMixture (sample, log_prob, responsibilities, mahalanobis,
    denoise, score) at O(K d r) per row instead of O(K d^2): Sigma_k + s^2 I = diag(D_k + s^2)
    + F_k F_k^T is inverted by Woodbury through the r x r capacitance I + F^T diag(D + s^2)^{-1} F,
    factorised once per distinct noise level of a call. No d x d matrix exists, so d = 1000 with
    K = 25 costs seconds; `to_dense()` gives the equal GaussianMixture for small d.
    """

    def __init__(self, weights, means, diagonals, factors=None):
        weights, means, diagonals = as_float64(weights), as_float64(means), as_float64(diagonals)
        if weights.dim() != 1 or weights.numel() == 0:
            raise ValueError(f"weights must have shape (K,) with K >= 1, got {tuple(weights.shape)}")
        k = weights.shape[0]
        if means.dim() != 2 or means.shape[0] != k:
            raise ValueError(f"means must have shape ({k}, d), got {tuple(means.shape)}")
        d = means.shape[1]
        factors = torch.zeros(k, d, 0, dtype=DTYPE) if factors is None else as_float64(factors)
        if diagonals.shape != (k, d):
            raise ValueError(f"diagonal variances must have shape ({k}, {d}), got {tuple(diagonals.shape)}")
        if factors.dim() != 3 or factors.shape[:2] != (k, d):
            raise ValueError(f"low-rank factors must have shape ({k}, {d}, r), got {tuple(factors.shape)}")
        if not bool(torch.all(torch.isfinite(weights))) or bool(torch.any(weights <= 0)):
            raise ValueError(f"mixture weights must be finite and > 0, got {weights.tolist()}")
        for name, value in (("means", means), ("low-rank factors", factors)):
            if not bool(torch.all(torch.isfinite(value))):
                raise ValueError(f"mixture {name} must be finite")
        if not bool(torch.all(torch.isfinite(diagonals))) or bool(torch.any(diagonals <= 0)):
            raise ValueError("diagonal variances must be finite and > 0")
        self.weights = weights / weights.sum()
        self.means, self.diagonals, self.factors = means, diagonals, factors

    @property
    def rank(self) -> int:
        return self.factors.shape[2]

    def __repr__(self) -> str:
        return f"StructuredMixture(n_components={self.n_components}, dim={self.dim}, rank={self.rank})"

    @property
    def covariances(self) -> Tensor:
        """Dense (K, d, d) covariances: for small d and tests only (K d^2 numbers)."""
        return torch.diag_embed(self.diagonals) + self.factors @ self.factors.transpose(1, 2)

    def to_dense(self) -> GaussianMixture:
        return GaussianMixture(self.weights, self.means, self.covariances)

    def scaled(self, c: float) -> "StructuredMixture":
        """The law of c x: means times c, covariances times c^2."""
        return StructuredMixture(self.weights, c * self.means, c ** 2 * self.diagonals, c * self.factors)

    def covariance_times(self, v: Tensor) -> Tensor:
        """Sigma_k v_k for v (..., K, d) (one vector per component): O(d r) each."""
        if not self.rank:
            return self.diagonals * v
        return self.diagonals * v + torch.einsum("kdr,...kr->...kd", self.factors,
                                                 torch.einsum("kdr,...kd->...kr", self.factors, v))

    # -- sampling ------------------------------------------------------------------------

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Exact samples (n, d) and labels (n,). Draw order: n uniforms (labels, as
        GaussianMixture.sample), n x d normals (diagonal part), n x r normals (low-rank part)."""
        cumulative = torch.cumsum(self.weights, 0)
        u = torch.rand(n, generator=generator, dtype=DTYPE)
        labels = torch.searchsorted(cumulative, u, right=True).clamp(max=self.n_components - 1)
        eps = torch.randn(n, self.dim, generator=generator, dtype=DTYPE)
        eta = torch.randn(n, self.rank, generator=generator, dtype=DTYPE)
        return self.sample_components(labels, eps, eta), labels

    def sample_components(self, labels: Tensor, eps: Tensor, eta: Tensor) -> Tensor:
        """mu_k + D_k^{1/2} eps + F_k eta for each row's component k = labels: (n, d)."""
        x = self.means[labels] + self.diagonals[labels].sqrt() * eps
        if self.rank:
            x = x + torch.einsum("ndr,nr->nd", self.factors[labels], eta)
        return x

    # -- noisy marginal ------------------------------------------------------------------

    def noisy(self, sigma) -> "StructuredMixture":
        """The marginal p_sigma of x + sigma * n (scalar sigma only)."""
        sigma = as_float64(sigma)
        if sigma.numel() != 1:
            raise ValueError("noisy() takes a single noise level")
        _check_sigma_values(sigma)
        return StructuredMixture(self.weights, self.means, self.diagonals + sigma.reshape(()) ** 2, self.factors)

    def log_prob(self, x, sigma=0.0) -> Tensor:
        """log p_sigma(x), shape (n,)."""
        return self._rows(x, sigma, (), lambda x, level: torch.logsumexp(level.log_joint(x)[0], dim=1))

    def responsibilities(self, x, sigma=0.0) -> Tensor:
        """P(k | x_sigma = x), shape (n, K)."""
        return self._rows(x, sigma, (self.n_components,),
                          lambda x, level: torch.softmax(level.log_joint(x)[0], dim=1))

    def mahalanobis(self, x, sigma=0.0) -> Tensor:
        """Mahalanobis distance of x to every component of p_sigma, shape (n, K)."""
        return self._rows(x, sigma, (self.n_components,),
                          lambda x, level: level.mahalanobis_sq(x)[0].clamp(min=0).sqrt())

    def denoise(self, x, sigma) -> Tensor:
        """E[x0 | x_sigma = x] = sum_k r_k (mu_k + Sigma_k (Sigma_k + s^2 I)^{-1} (x - mu_k)), (n, d)."""
        return self._rows(x, sigma, (self.dim,), lambda x, level: level.denoise(x))

    def score(self, x, sigma) -> Tensor:
        """grad_x log p_sigma(x) = -sum_k r_k (Sigma_k + s^2 I)^{-1} (x - mu_k), (n, d)."""
        return self._rows(x, sigma, (self.dim,), lambda x, level: level.score(x))

    # -- internals -----------------------------------------------------------------------

    def _rows(self, x, sigma, trailing: tuple, fn) -> Tensor:
        """fn(rows of x, _Level of their noise level) over x in row chunks, one noise level at a time."""
        x, sigma = _prepare_rows(x, sigma, self.dim)
        out = torch.empty(x.shape[0], *trailing, dtype=DTYPE, device=x.device)
        per_row = sigma.expand(x.shape[0]) if sigma.dim() == 0 else sigma
        levels, level_of_row = torch.unique(per_row, return_inverse=True)
        rows_per_chunk = max(1, _CHUNK_ELEMENTS // (self.n_components * (self.rank + 1) + self.dim))
        for index, level in enumerate(levels.tolist()):
            cached = _Level(self, level, x.device)
            rows = torch.arange(x.shape[0], device=x.device) if len(levels) == 1 else \
                torch.nonzero(level_of_row == index).flatten()
            for start in range(0, len(rows), rows_per_chunk):
                chunk = rows[start:start + rows_per_chunk]
                out[chunk] = fn(x[chunk], cached)
        return out


class _Level:
    """What every row at one noise level s shares (O(K d r^2), once per level and call), so that
    the per-row work is a few (rows, d) x (d, K (r + 1)) products: with D' = D + s^2,
    (x - mu)^T (Sigma + s^2 I)^{-1} (x - mu) = x^2 . 1/D' - 2 x . mu/D' + mu^2 . 1/D' - b^T c,
    b = F^T (x - mu)/D', c = M^{-1} b, M = I + F^T diag(1/D') F (Woodbury), and F^T u = c for
    u = (Sigma + s^2 I)^{-1} (x - mu), which gives the denoiser and the score without (rows, K, d)
    intermediates."""

    def __init__(self, mixture: StructuredMixture, sigma: float, device):
        weights, means, diagonals, factors = (t.to(device) for t in (mixture.weights, mixture.means,
                                                                     mixture.diagonals, mixture.factors))
        self.k, self.rank, self.dim = mixture.n_components, mixture.rank, mixture.dim
        self.variance = sigma ** 2
        inverse = 1.0 / (diagonals + self.variance)                       # 1/D' (K, d)
        self.inverse, self.means_inverse = inverse, means * inverse      # 1/D', mu/D'
        self.offset = (means * self.means_inverse).sum(1)                 # mu^T mu/D' (K,)
        self.shrink = diagonals * inverse                                 # D/D'
        log_det = -torch.log(inverse).sum(1)
        if self.rank:
            weighted = factors * inverse.unsqueeze(-1)                    # W = F/D' (K, d, r)
            capacitance = factors.transpose(1, 2) @ weighted + torch.eye(self.rank, dtype=DTYPE, device=device)
            self.cholesky = torch.linalg.cholesky(capacitance)            # (K, r, r)
            log_det = log_det + 2 * torch.log(torch.diagonal(self.cholesky, dim1=-2, dim2=-1)).sum(-1)
            self.weighted = weighted.permute(1, 0, 2).reshape(self.dim, -1)          # (d, K r)
            self.weighted_offset = torch.einsum("kdr,kd->kr", weighted, means)       # W^T mu (K, r)
            self.noise_factors = (self.variance * weighted).permute(1, 0, 2).reshape(self.dim, -1)  # s^2 F/D'
        self.log_weights_normal = torch.log(weights) - 0.5 * (self.dim * math.log(2 * math.pi) + log_det)

    def mahalanobis_sq(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """((rows, K) squared Mahalanobis distances, c = M^{-1} b (rows, K, r) or None)."""
        squared = (x * x) @ self.inverse.T - 2 * x @ self.means_inverse.T + self.offset
        if not self.rank:
            return squared, None
        b = (x @ self.weighted).reshape(-1, self.k, self.rank) - self.weighted_offset
        c = torch.cholesky_solve(b.permute(1, 2, 0), self.cholesky).permute(2, 0, 1)
        return squared - (b * c).sum(-1), c

    def log_joint(self, x: Tensor) -> tuple[Tensor, Tensor | None]:
        """((rows, K) log w_k + log N(x; mu_k, Sigma_k + s^2 I), c)."""
        squared, c = self.mahalanobis_sq(x)
        return self.log_weights_normal - 0.5 * squared, c

    def denoise(self, x: Tensor) -> Tensor:
        """sum_k r_k (s^2 mu_k/D' + (D/D') x + s^2 F_k c_k / D'): no cancellation at large s."""
        log_joint, c = self.log_joint(x)
        r = torch.softmax(log_joint, dim=1)
        out = self.variance * (r @ self.means_inverse) + x * (r @ self.shrink)
        if self.rank:
            out = out + (r.unsqueeze(-1) * c).reshape(len(x), -1) @ self.noise_factors.T
        return out

    def score(self, x: Tensor) -> Tensor:
        """-sum_k r_k ((x - mu_k)/D' - F_k c_k / D')."""
        log_joint, c = self.log_joint(x)
        r = torch.softmax(log_joint, dim=1)
        out = r @ self.means_inverse - x * (r @ self.inverse)
        if self.rank:
            out = out + (r.unsqueeze(-1) * c).reshape(len(x), -1) @ self.weighted.T
        return out


def _prepare_rows(x, sigma, dim: int) -> tuple[Tensor, Tensor]:
    """x as (n, d) float64; sigma as a 0-d tensor or a (n,) tensor (one level per row)."""
    x = as_float64(x)
    if x.dim() != 2 or x.shape[1] != dim:
        raise ValueError(f"x must have shape (n, {dim}), got {tuple(x.shape)}")
    sigma = as_float64(sigma).to(x.device)
    if sigma.numel() == 1 and sigma.dim() <= 1:
        sigma = sigma.reshape(())
    elif sigma.shape == (x.shape[0],) or sigma.shape == (x.shape[0], 1):
        sigma = sigma.reshape(-1)
    else:
        raise ValueError(f"sigma must be a scalar or have shape ({x.shape[0]},), got {tuple(sigma.shape)}")
    _check_sigma_values(sigma)
    return x, sigma


GRID_PAIRS_STEP = 8.0   # the published construction's grid spacing: means on {-16, -8, 0, 8, 16}^2


def grid25_pairs_weights(generator: torch.Generator) -> Tensor:
    """The published construction's first draw: the squares of 25 float32 standard normals (float32,
    unnormalised), as torch.randn(25) ** 2 after torch.manual_seed(seed)."""
    return torch.randn(25, generator=generator, dtype=torch.float32) ** 2


def grid25_pairs_mixture(dim: int, weights: Tensor) -> StructuredMixture:
    """The 25-mode mixture of the benchopt benchmark of diffusion posterior samplers
    (github.com/gabrielvc/benchopts_inverse_problem_diffusion_prior, after MCGdiff, Cardoso et
    al., ICLR 2024): mean (i, j) is (-8 i, -8 j) repeated over the dim / 2 coordinate pairs, for
    i (outer), j (inner) in -2..2; identity covariances; `weights` (grid25_pairs_weights)
    normalised in float64."""
    if dim < 2 or dim % 2:
        raise ValueError(f"grid25_pairs needs an even dimension >= 2, got {dim}")
    steps = torch.arange(-2, 3, dtype=DTYPE)
    pairs = torch.stack(torch.meshgrid(steps, steps, indexing="ij"), dim=-1).reshape(25, 2)
    means = (-GRID_PAIRS_STEP * pairs).repeat(1, dim // 2)
    return StructuredMixture(weights.double(), means, torch.ones(25, dim, dtype=DTYPE))


COVARIANCE_KINDS = ("isotropic", "diagonal", "lowrank")


def random_mixture(dim: int, n_modes: int, seed: int, covariance: str = "isotropic", std: float = 1.0,
                   spread: float = 1.0, rank: int = 0, separation: float = 8.0) -> StructuredMixture:
    """A seeded random mixture in d = dim with K = n_modes components. Draw order from one
    generator seeded by `seed`: K uniforms (weights -log u, normalised: a flat Dirichlet), K x d
    normals (means, times separation * std / sqrt(2 d), so that two means lie about
    `separation` stds apart), then the covariances:
      isotropic  std^2 I;
      diagonal   variances (std * spread^-u)^2, u ~ U(0, 1) per coordinate (K x d uniforms):
                 standard deviations log-uniform in [std / spread, std];
      lowrank    (std / spread)^2 I + F F^T, F = std * G / sqrt(d), G (K x d x rank normals):
                 rank directions with about std^2 more variance.
    """
    if covariance not in COVARIANCE_KINDS:
        raise ValueError(f"covariance must be one of {', '.join(COVARIANCE_KINDS)}, got {covariance!r}")
    generator = torch.Generator().manual_seed(seed)
    weights = -torch.log(torch.rand(n_modes, generator=generator, dtype=DTYPE).clamp(min=1e-300))
    means = torch.randn(n_modes, dim, generator=generator, dtype=DTYPE) * (separation * std / math.sqrt(2 * dim))
    factors = None
    if covariance == "isotropic":
        diagonals = torch.full((n_modes, dim), std ** 2, dtype=DTYPE)
    elif covariance == "diagonal":
        u = torch.rand(n_modes, dim, generator=generator, dtype=DTYPE)
        diagonals = (std * spread ** -u) ** 2
    else:
        diagonals = torch.full((n_modes, dim), (std / spread) ** 2, dtype=DTYPE)
        factors = std * torch.randn(n_modes, dim, rank, generator=generator, dtype=DTYPE) / math.sqrt(dim)
    return StructuredMixture(weights, means, diagonals, factors)
