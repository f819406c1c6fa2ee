"""Sample-quality metrics: distances between sample sets, and mode statistics for mixtures.

All computations are float64 and every metric returns a python float (or a dict of them).
The pairwise distances (MMD, energy) are accumulated block by block so that two sets of
20k points never materialise a 20k x 20k matrix.
"""

from __future__ import annotations

import functools
import math

import torch
from torch import Tensor

from diffsweep.data import Dataset
from diffsweep.gmm import GaussianMixture, as_float64

# Rows per side of one pairwise block: 256^2 float64 = 512 kB, which stays in cache.
BLOCK_ROWS = 256


def sliced_wasserstein2(x, y, n_projections: int = 256, generator: torch.Generator | None = None) -> float:
    """Sliced 2-Wasserstein distance: sqrt of the mean over random unit directions of the
    1-D W2^2 between the projected samples. Deterministic given `generator`
    (default: a fresh generator seeded with 0)."""
    x, y = as_samples(x, "x"), as_samples(y, "y")
    check_same_dim(x, y)
    directions = random_directions(n_projections, x.shape[1], generator)
    return sliced_wasserstein2_sorted(projected_sorted(x, directions), projected_sorted(y, directions))


def random_directions(n_projections: int, dim: int, generator: torch.Generator | None = None) -> Tensor:
    """`n_projections` random unit vectors in `dim` dimensions, (P, dim) float64, drawn from
    `generator` (default: a fresh generator seeded with 0)."""
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    directions = torch.randn(n_projections, dim, generator=generator, dtype=torch.float64)
    return directions / directions.norm(dim=1, keepdim=True)


def projected_sorted(x, directions: Tensor) -> Tensor:
    """The samples projected on each direction, each projection sorted: (P, n). What sliced W2
    compares; computed once, it serves every distance of `x` with these directions."""
    x = as_samples(x, "x")
    # (P, n) layout: each projection's samples are contiguous, which makes sorting faster.
    return torch.sort(directions.to(x.device) @ x.T, dim=1).values


def sliced_wasserstein2_sorted(x_sorted: Tensor, y_sorted: Tensor) -> float:
    """Sliced W2 from two `projected_sorted` results with the same directions."""
    return math.sqrt(float(w2_squared_sorted(x_sorted, y_sorted.to(x_sorted.device)).mean()))


def w2_squared_sorted(x_sorted: Tensor, y_sorted: Tensor) -> Tensor:
    """Exact 1-D W2^2 per row between two empirical distributions given sorted samples (P, n).

    The quantile functions are step functions that jump at i/n and j/m; on the merged grid of
    jump points both are constant, so the integral of their squared difference is a finite sum.
    For n == m this reduces to mean((x_sorted - y_sorted)^2).
    """
    n, m = x_sorted.shape[1], y_sorted.shape[1]
    if n == m:
        return ((x_sorted - y_sorted) ** 2).mean(dim=1)
    x_index, y_index, widths = (part.to(x_sorted.device) for part in _merged_quantile_grid(n, m))
    squared_gaps = (x_sorted[:, x_index] - y_sorted[:, y_index]) ** 2
    return squared_gaps @ widths


@functools.lru_cache(maxsize=16)
def _merged_quantile_grid(n: int, m: int) -> tuple[Tensor, Tensor, Tensor]:
    """The merged grid of jump points i/n and j/m: which sorted sample of each side holds on each
    interval, and the interval widths. Cached: a bootstrap or a floor asks for the same (n, m) each time."""
    grid = torch.unique(torch.cat([torch.arange(n + 1, dtype=torch.float64) / n,
                                   torch.arange(m + 1, dtype=torch.float64) / m]))     # sorted, runs from 0 to 1
    midpoints = 0.5 * (grid[1:] + grid[:-1])
    x_index = torch.clamp((midpoints * n).long(), max=n - 1)
    y_index = torch.clamp((midpoints * m).long(), max=m - 1)
    return x_index, y_index, grid[1:] - grid[:-1]


def quantile_blocks(y_sorted: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Per row of y_sorted (P, m), the integrals of its quantile function Q and of Q^2 over
    [i/n, (i+1)/n), i < n: (P, n) each. With them the 1-D W2^2 of any n sorted samples x against y is
    sum_i (x_i^2 / n - 2 x_i first_i + second_i) (`w2_squared_blocks`), P x n operations instead of
    P x (n + m): what repeated distances to one reference (bootstraps, floors) use."""
    m = y_sorted.shape[1]
    cuts = torch.arange(n + 1, dtype=torch.float64, device=y_sorted.device) / n
    below = torch.clamp((cuts * m).long(), max=m - 1)      # Q is y_sorted[j] on [j/m, (j+1)/m)
    zeros = y_sorted.new_zeros(y_sorted.shape[0], 1)

    def integral_up_to_cuts(values):
        at_jumps = torch.cat([zeros, torch.cumsum(values, dim=1)], dim=1) / m
        return at_jumps[:, below] + (cuts - below.to(cuts.dtype) / m) * values[:, below]
    return integral_up_to_cuts(y_sorted).diff(dim=1), integral_up_to_cuts(y_sorted ** 2).diff(dim=1)


def w2_squared_blocks(x_sorted: Tensor, blocks: tuple[Tensor, Tensor]) -> Tensor:
    """`w2_squared_sorted(x_sorted, y_sorted)` from `quantile_blocks(y_sorted, n)`, (P,); x_sorted may
    hold sets (..., P, n), giving (..., P)."""
    first, second = blocks
    return (x_sorted ** 2 / x_sorted.shape[-1] - 2 * x_sorted * first + second).sum(dim=-1).clamp(min=0)


def mmd_rbf(x, y, bandwidths=(0.25, 0.5, 1.0, 2.0, 4.0), cache: dict | None = None) -> float:
    """Squared MMD (unbiased U-statistic) with the kernel sum_h exp(-||a - b||^2 / (2 h^2)).
    `cache` (a dict kept by the caller for one fixed `y`) saves y's within-set term, the
    costliest part when many sample sets are compared to one reference."""
    x, y = as_samples(x, "x", min_rows=2), as_samples(y, "y", min_rows=2)
    check_same_dim(x, y)
    reference = y.to(x.device)
    x, y = centre_together(x, y)
    inverse_two_h2 = [1.0 / (2.0 * h * h) for h in bandwidths]

    def kernel_block_sum(squared_distances: Tensor) -> float:
        values = torch.empty_like(squared_distances)
        total = 0.0
        for c in inverse_two_h2:
            torch.mul(squared_distances, -c, out=values).exp_()
            total += float(values.sum())
        return total

    n, m = x.shape[0], y.shape[0]
    # Each point's kernel value with itself is exp(0) = 1 per bandwidth; U-statistics drop it.
    self_terms = float(len(bandwidths))
    within_x = (_pairwise_sum(x, x, kernel_block_sum) - n * self_terms) / (n * (n - 1))
    within_y = _cached(cache, ("mmd_within_y", tuple(bandwidths)),
                       lambda: (_within_sum(reference, kernel_block_sum) - m * self_terms) / (m * (m - 1)))
    between = _pairwise_sum(x, y, kernel_block_sum) / (n * m)
    return within_x + within_y - 2.0 * between


def energy_distance(x, y, cache: dict | None = None) -> float:
    """2 E||X - Y|| - E||X - X'|| - E||Y - Y'||, with U-statistics for the within-set terms
    (`cache` as in `mmd_rbf`)."""
    x, y = as_samples(x, "x", min_rows=2), as_samples(y, "y", min_rows=2)
    check_same_dim(x, y)
    reference = y.to(x.device)
    x, y = centre_together(x, y)

    def distance_block_sum(squared_distances: Tensor) -> float:
        return float(squared_distances.sqrt_().sum())

    n, m = x.shape[0], y.shape[0]
    # The diagonal (distance of a point to itself) is 0, so the full sums serve for i != j.
    within_x = _pairwise_sum(x, x, distance_block_sum) / (n * (n - 1))
    within_y = _cached(cache, "energy_within_y", lambda: _within_sum(reference, distance_block_sum) / (m * (m - 1)))
    between = _pairwise_sum(x, y, distance_block_sum) / (n * m)
    return 2.0 * between - within_x - within_y


def frechet_distance(x, y, cache: dict | None = None) -> float:
    """Frechet distance between Gaussian fits of two sample sets (FID's formula, on raw pixels):
    |mu_x - mu_y|^2 + tr(S_x + S_y - 2 (S_x^1/2 S_y S_x^1/2)^1/2)."""
    x, y = as_samples(x, "x", 2), as_samples(y, "y", 2)
    check_same_dim(x, y)
    if min(len(x), len(y)) < x.shape[1]:
        return _frechet_from_samples(x, y, cache)
    mean_x, cov_x = x.mean(0), torch.cov(x.T).reshape(x.shape[1], x.shape[1])
    mean_y, cov_y = _cached(cache, "gaussian_fit_y", lambda: (y.mean(0), torch.cov(y.T).reshape(y.shape[1], y.shape[1])))
    root_x = _psd_sqrt(cov_x)
    cross = _psd_sqrt(root_x @ cov_y @ root_x)
    return float((mean_x - mean_y).pow(2).sum() + torch.trace(cov_x + cov_y - 2 * cross))


def _frechet_from_samples(x, y, cache: dict | None = None) -> float:
    """The same distance without a d x d matrix, for fewer samples than dimensions (images: a
    256x256 covariance would not fit in memory). With S_x = A A^T, S_y = B B^T (A, B the centred
    samples over sqrt(n - 1)), tr((S_x^1/2 S_y S_x^1/2)^1/2) is the nuclear norm of A^T B."""
    def factor(v):
        mean = v.mean(0)
        return mean, (v - mean) / math.sqrt(max(len(v) - 1, 1))
    (mean_x, a), (mean_y, b) = factor(x), _cached(cache, "centred_factor_y", lambda: factor(y))
    cross = torch.linalg.svdvals(a @ b.T).sum()
    return float((mean_x - mean_y).pow(2).sum() + a.pow(2).sum() + b.pow(2).sum() - 2 * cross)


def _psd_sqrt(matrix: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def mode_metrics(x, mixture: GaussianMixture, n_std: float = 3.0) -> dict[str, float]:
    """Mode statistics of samples x against a known mixture.

    Each sample goes to its most responsible component (at sigma = 0) and counts as on-mode
    only if its Mahalanobis distance to that component is <= n_std (a 2-D-minded default:
    in d dimensions typical distances are ~sqrt(d), so raise n_std accordingly).
      mode_coverage:     fraction of components holding at least 10% of their expected
                         count w_k * n (and at least one sample) among on-mode samples
      mode_weight_error: total variation distance between the on-mode component frequencies
                         and the true weights (1.0 when no sample is on-mode)
      off_mode_fraction: fraction of samples that are not on-mode
      mode_spread:       RMS Mahalanobis distance of all samples to their component, over its
                         value for exact samples, sqrt(d): 1 for exact samples (a little less
                         where modes overlap), below 1 when the modes come out too narrow
    """
    x = as_samples(x, "x")
    n = x.shape[0]
    assigned = mixture.responsibilities(x).argmax(dim=1)
    distances = mixture.mahalanobis(x).gather(1, assigned.unsqueeze(1)).squeeze(1)
    on_mode = distances <= mahalanobis_radius(n_std, x.shape[1])
    counts = torch.bincount(assigned[on_mode], minlength=mixture.n_components).to(torch.float64)
    weights = mixture.weights.to(counts.device)
    needed = torch.clamp(0.1 * weights * n, min=1.0)
    n_on_mode = float(counts.sum())
    if n_on_mode > 0:
        weight_error = 0.5 * float((counts / n_on_mode - weights).abs().sum())
    else:
        weight_error = 1.0
    return {
        "mode_coverage": float((counts >= needed).to(torch.float64).mean()),
        "mode_weight_error": weight_error,
        "off_mode_fraction": 1.0 - n_on_mode / n,
        "mode_spread": math.sqrt(float((distances ** 2).mean()) / x.shape[1]),
    }


def mahalanobis_radius(n_std: float, dim: int) -> float:
    """The radius holding the same Gaussian mass in `dim` dimensions as `n_std` does in 2-D
    (typical Mahalanobis distances grow like sqrt(dim), so a fixed radius would reject most
    exact samples of a 64-D mixture)."""
    if dim == 2:
        return n_std
    from scipy.stats import chi2

    return math.sqrt(chi2.ppf(chi2.cdf(n_std ** 2, 2), dim))


def mean_log_likelihood(x, mixture: GaussianMixture) -> float:
    """Mean log density of the samples under the true (noise-free) mixture."""
    return float(mixture.log_prob(as_samples(x, "x")).mean())


# sample_metrics' defaults (the config's metrics.n_projections and metrics.mmd_bandwidths set them)
N_PROJECTIONS = 256
MMD_BANDWIDTHS = (0.25, 0.5, 1.0, 2.0, 4.0)


def sample_metrics(samples, dataset: Dataset, reference, generator: torch.Generator | None = None,
                   n_projections: int = N_PROJECTIONS, mmd_bandwidths=MMD_BANDWIDTHS,
                   mode_std: float = 3.0, cache: dict | None = None) -> dict[str, float]:
    """All metrics that apply: distances to `reference` (fresh exact samples) always, mode
    statistics and mean log-likelihood when the data set has a known mixture density.
    Non-finite samples raise ValueError (the caller records divergence before calling).
    Pass the same `cache` dict for every call with one reference to compute its terms once."""
    samples, reference = as_samples(samples, "samples"), as_samples(reference, "reference")
    if samples.shape[1] != dataset.dim:
        raise ValueError(f"samples have dimension {samples.shape[1]}, dataset {dataset.name!r} has {dataset.dim}")
    results = {
        "sliced_w2": sliced_wasserstein2(samples, reference, n_projections=n_projections, generator=generator),
        "mmd": mmd_rbf(samples, reference, bandwidths=tuple(mmd_bandwidths), cache=cache),
        "energy_distance": energy_distance(samples, reference, cache=cache),
    }
    if dataset.is_image:
        results["pixel_frechet"] = frechet_distance(samples, reference, cache=cache)
    if dataset.mixture is not None:
        results.update(mode_metrics(samples, dataset.mixture, n_std=mode_std))
        results["mean_loglik"] = mean_log_likelihood(samples, dataset.mixture)
    return results


# --- helpers ----------------------------------------------------------------------------

def _cached(cache: dict | None, key, compute):
    """A term of the reference alone, computed once per `cache`. It must not depend on the other
    set, not even in the last digit: the reference's within-set terms centre it on its own mean
    (`_within_sum`), so a run's metrics are the same whichever run of a job filled the cache."""
    if cache is None:
        return compute()
    if key not in cache:
        cache[key] = compute()
    return cache[key]


def as_samples(x, name: str, min_rows: int = 1) -> Tensor:
    """(n, d) float64 tensor with finite entries and at least `min_rows` rows."""
    x = as_float64(x).detach()
    if x.dim() != 2:
        raise ValueError(f"{name} must have shape (n, d), got {tuple(x.shape)}")
    if x.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} samples, got {x.shape[0]}")
    if not bool(torch.all(torch.isfinite(x))):
        raise ValueError(f"{name} contains non-finite values")
    return x


def check_same_dim(x: Tensor, y: Tensor) -> None:
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"sample dimensions differ: {x.shape[1]} vs {y.shape[1]}")


def _within_sum(y: Tensor, block_sum) -> float:
    """`_pairwise_sum` of y with itself, y centred on its own mean (see `centre_together`)."""
    centred = y - y.mean(dim=0)
    return _pairwise_sum(centred, centred, block_sum)


def centre_together(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """Shift both sets by one common vector: distances are unchanged, but the expansion
    |a|^2 + |b|^2 - 2 a.b loses less to cancellation near the origin."""
    centre = 0.5 * (x.mean(dim=0) + y.mean(dim=0).to(x.device))
    return x - centre, y.to(x.device) - centre


def _pairwise_sum(a: Tensor, b: Tensor, block_sum) -> float:
    """sum_{i, j} f(||a_i - b_j||^2), accumulated over blocks of rows; block_sum(squared)
    returns the sum of f over one block and may overwrite it. When a is b, only blocks on
    or above the diagonal are computed (the rest by symmetry) and self-distances are exactly 0."""
    symmetric = a is b
    a_norms = (a ** 2).sum(dim=1)
    b_norms = (b ** 2).sum(dim=1)
    total = 0.0
    for i in range(0, a.shape[0], BLOCK_ROWS):
        first_j = i if symmetric else 0
        for j in range(first_j, b.shape[0], BLOCK_ROWS):
            # In-place ops on small blocks: allocation and memory traffic dominate here.
            squared = torch.addmm(b_norms[None, j:j + BLOCK_ROWS], a[i:i + BLOCK_ROWS],
                                  b[j:j + BLOCK_ROWS].T, alpha=-2.0)
            squared.add_(a_norms[i:i + BLOCK_ROWS, None]).clamp_(min=0.0)  # rounding can go below 0
            if symmetric and i == j:
                squared.fill_diagonal_(0.0)
            multiplicity = 2.0 if symmetric and i != j else 1.0
            total += multiplicity * block_sum(squared)
    return total
