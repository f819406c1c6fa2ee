"""Tests for diffsweep.metrics: sample distances and mixture mode statistics."""

import math

import pytest
import torch

from diffsweep.data import make_dataset
from diffsweep.gmm import GaussianMixture
from diffsweep.metrics import (energy_distance, mean_log_likelihood, mmd_rbf, mode_metrics, projected_sorted,
                               random_directions, sample_metrics, sliced_wasserstein2, sliced_wasserstein2_sorted)

F64 = torch.float64
DISTANCES = [sliced_wasserstein2, mmd_rbf, energy_distance]


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def gaussian(n, seed, shift=0.0, dim=2):
    return torch.randn(n, dim, generator=generator(seed), dtype=F64) + shift


def shift_vector(length, dim=2):
    return torch.full((dim,), length / math.sqrt(dim), dtype=F64)


# --- distances ---------------------------------------------------------------------------

@pytest.mark.parametrize("distance", DISTANCES)
def test_distance_is_small_for_same_distribution_and_grows_with_shift(distance):
    x = gaussian(1000, seed=1)
    values = [distance(x, gaussian(1000, seed=2, shift=shift_vector(s))) for s in [0.0, 0.25, 0.5, 1.0, 2.0]]
    # Sliced W2 is a distance (noise floor ~ n^-1/2); MMD^2 and energy are squared-distance-like.
    assert abs(values[0]) < 0.25 * values[2]
    assert all(a < b for a, b in zip(values, values[1:])), values


@pytest.mark.parametrize("distance", DISTANCES)
def test_distance_returns_float_and_accepts_float32(distance):
    x, y = gaussian(300, seed=1), gaussian(300, seed=2, shift=shift_vector(1.0))
    value = distance(x.float(), y.float())
    assert isinstance(value, float)
    assert value == pytest.approx(distance(x.float().double(), y.float().double()), rel=1e-12)


@pytest.mark.parametrize("distance", DISTANCES)
def test_distance_rejects_non_finite_and_mismatched_dims(distance):
    x = gaussian(100, seed=1)
    bad = x.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        distance(bad, x)
    with pytest.raises(ValueError, match="dimension"):
        distance(x, gaussian(100, seed=2, dim=3))


@pytest.mark.parametrize("dim", [2, 5])
def test_sliced_w2_matches_closed_form_for_shifted_gaussians(dim):
    # Projections are N(0, 1) vs N(m.theta, 1): W2^2 = (m.theta)^2, averaging to |m|^2 / d.
    length = 2.0
    # Many directions: their Monte-Carlo error (~1/sqrt(P)) dominates the sampling error.
    x = gaussian(3000, seed=1, dim=dim)
    y = gaussian(3000, seed=2, dim=dim, shift=shift_vector(length, dim))
    value = sliced_wasserstein2(x, y, n_projections=2000)   # measured within 1% of the closed form
    assert value == pytest.approx(length / math.sqrt(dim), rel=0.04)


def test_sliced_w2_with_unequal_sizes():
    x, y = gaussian(3000, seed=1), gaussian(5000, seed=2)
    assert sliced_wasserstein2(x, y) < 0.06
    shifted = sliced_wasserstein2(x, gaussian(5000, seed=2, shift=shift_vector(1.0)))
    assert shifted == pytest.approx(1.0 / math.sqrt(2), rel=0.1)
    # Repeating every sample leaves the empirical distribution, hence the distance, unchanged.
    assert sliced_wasserstein2(x, torch.cat([x, x])) == pytest.approx(0.0, abs=1e-12)
    assert sliced_wasserstein2(x[:1000], y) == pytest.approx(sliced_wasserstein2(torch.cat([x[:1000]] * 5), y))


def test_sliced_w2_is_deterministic_given_generator():
    x, y = gaussian(500, seed=1), gaussian(500, seed=2)
    assert sliced_wasserstein2(x, y) == sliced_wasserstein2(x, y)
    assert sliced_wasserstein2(x, y, generator=generator(5)) == sliced_wasserstein2(x, y, generator=generator(5))
    assert sliced_wasserstein2(x, y, generator=generator(5)) != sliced_wasserstein2(x, y, generator=generator(6))


def test_sliced_w2_from_kept_projections_equals_the_whole():
    # The error-sources study keeps one side's sorted projections: the same number, bit for bit.
    x, y = gaussian(500, seed=1), gaussian(400, seed=2, shift=0.3)
    directions = random_directions(64, 2, generator(5))
    parts = sliced_wasserstein2_sorted(projected_sorted(x, directions), projected_sorted(y, directions))
    assert parts == sliced_wasserstein2(x, y, n_projections=64, generator=generator(5))


def test_mmd_and_energy_match_direct_formulas():
    x, y = gaussian(150, seed=1), gaussian(120, seed=2, shift=0.3)

    def u_mean(k):  # mean over off-diagonal entries
        n = k.shape[0]
        return (k.sum() - k.diagonal().sum()) / (n * (n - 1))

    def rbf(a, b):
        d2 = torch.cdist(a, b) ** 2
        return sum(torch.exp(-d2 / (2 * h * h)) for h in (0.25, 0.5, 1.0, 2.0, 4.0))

    expected_mmd = u_mean(rbf(x, x)) + u_mean(rbf(y, y)) - 2 * rbf(x, y).mean()
    assert mmd_rbf(x, y) == pytest.approx(float(expected_mmd), rel=1e-9)
    expected_energy = 2 * torch.cdist(x, y).mean() - u_mean(torch.cdist(x, x)) - u_mean(torch.cdist(y, y))
    assert energy_distance(x, y) == pytest.approx(float(expected_energy), rel=1e-9)


def test_blocked_sums_do_not_depend_on_block_size(monkeypatch):
    import diffsweep.metrics as metrics
    x, y = gaussian(700, seed=1), gaussian(500, seed=2, shift=0.5)
    mmd, energy = mmd_rbf(x, y), energy_distance(x, y)
    monkeypatch.setattr(metrics, "BLOCK_ROWS", 96)
    assert mmd_rbf(x, y) == pytest.approx(mmd, rel=1e-10)
    assert energy_distance(x, y) == pytest.approx(energy, rel=1e-10)


# --- mixture metrics ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def grid():
    return make_dataset("gmm", preset="grid25")


def test_mode_metrics_of_exact_samples(grid):
    x = grid.sample(20_000, generator(1))
    result = mode_metrics(x, grid.mixture)
    assert set(result) == {"mode_coverage", "mode_weight_error", "off_mode_fraction", "mode_spread"}
    assert result["mode_coverage"] == 1.0
    assert result["mode_weight_error"] < 0.03
    # In 2-D, P(Mahalanobis > 3) = exp(-4.5) ~ 1.1%.
    assert result["off_mode_fraction"] == pytest.approx(math.exp(-4.5), abs=0.004)
    assert result["mode_spread"] == pytest.approx(1.0, abs=0.02)


def test_mode_spread_measures_modes_too_narrow_or_too_broad():
    # ring8's modes are far apart: samples pulled towards their mode's mean by a factor c have
    # Mahalanobis distances c times the exact ones, so mode_spread is c.
    ring = make_dataset("gmm", preset="ring8")
    x, labels = ring.mixture.sample(20_000, generator(9))
    means = ring.mixture.means[labels]
    exact = mode_metrics(x, ring.mixture)["mode_spread"]
    assert exact == pytest.approx(1.0, abs=0.02)
    for factor in (0.93, 1.2):
        scaled = mode_metrics(means + factor * (x - means), ring.mixture)["mode_spread"]
        assert scaled == pytest.approx(factor * exact, rel=1e-3)


def test_mode_metrics_of_half_the_modes(grid):
    x, labels = grid.mixture.sample(20_000, generator(2))
    kept = x[labels % 2 == 0]                              # components 0, 2, ..., 24: 13 of 25
    result = mode_metrics(kept, grid.mixture)
    assert result["mode_coverage"] == pytest.approx(13 / 25)
    assert result["mode_weight_error"] > 0.3

    ring = make_dataset("gmm", preset="ring8")
    x, labels = ring.mixture.sample(8000, generator(3))
    result = mode_metrics(x[labels < 4], ring.mixture)
    assert result["mode_coverage"] == 0.5
    assert result["mode_weight_error"] == pytest.approx(0.5, abs=0.02)


def test_mode_metrics_of_uniform_noise(grid):
    x = 10 * torch.rand(20_000, 2, generator=generator(4), dtype=F64) - 5
    result = mode_metrics(x, grid.mixture)
    assert result["off_mode_fraction"] > 0.6


def test_mode_metrics_when_nothing_is_on_mode(grid):
    result = mode_metrics(torch.full((10, 2), 100.0, dtype=F64), grid.mixture)
    assert {k: result[k] for k in ("mode_coverage", "mode_weight_error", "off_mode_fraction")} == \
           {"mode_coverage": 0.0, "mode_weight_error": 1.0, "off_mode_fraction": 1.0}
    assert result["mode_spread"] > 10


def test_mean_log_likelihood_estimates_negative_entropy(grid):
    a = mean_log_likelihood(grid.sample(20_000, generator(5)), grid.mixture)
    b = mean_log_likelihood(grid.sample(20_000, generator(6)), grid.mixture)
    assert isinstance(a, float)
    assert a == pytest.approx(b, abs=0.03)
    # Too broad samples score worse than exact ones.
    broad = grid.sample(20_000, generator(7)) + 0.5 * gaussian(20_000, seed=8)
    assert mean_log_likelihood(broad, grid.mixture) < a - 0.5


def test_mean_log_likelihood_of_a_single_gaussian():
    # For one N(0, I) component in 2-D, E log p = -log(2 pi) - 1 exactly.
    mixture = GaussianMixture([1.0], [[0.0, 0.0]], torch.eye(2, dtype=F64)[None])
    assert mean_log_likelihood(gaussian(50_000, seed=1), mixture) == pytest.approx(-math.log(2 * math.pi) - 1, abs=0.02)


# --- sample_metrics ----------------------------------------------------------------------

def test_sample_metrics_with_mixture(grid):
    samples, reference = grid.sample(1000, generator(1)), grid.sample(1000, generator(2))
    result = sample_metrics(samples, grid, reference)
    assert set(result) == {"sliced_w2", "mmd", "energy_distance", "mode_coverage",
                           "mode_weight_error", "off_mode_fraction", "mode_spread", "mean_loglik"}
    assert all(isinstance(value, float) for value in result.values())
    assert result["mode_coverage"] == 1.0
    assert result == sample_metrics(samples, grid, reference)       # deterministic


def test_sample_metrics_without_mixture():
    roll = make_dataset("swissroll")
    result = sample_metrics(roll.sample(1000, generator(1)), roll, roll.sample(1000, generator(2)),
                            generator=generator(3))
    assert set(result) == {"sliced_w2", "mmd", "energy_distance"}


def test_sample_metrics_rejects_divergent_samples(grid):
    samples = grid.sample(100, generator(1))
    samples[5, 1] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        sample_metrics(samples, grid, grid.sample(100, generator(2)))
    with pytest.raises(ValueError, match="dimension"):
        sample_metrics(torch.zeros(10, 3, dtype=F64), grid, grid.sample(100, generator(2)))


def test_cached_reference_terms_give_bit_identical_distances_whichever_set_filled_the_cache():
    """A job's metric cache is filled by its first run: a run's metrics must not depend on which
    run that was (how runs are packed into jobs), not even in the last digit."""
    from diffsweep.metrics import sample_metrics
    dataset = make_dataset("gmm", preset="ring8")
    reference = dataset.sample(300, torch.Generator().manual_seed(0))
    # sets far apart: centred on different points, a shared term would differ in its last digits
    sets = [dataset.sample(100, torch.Generator().manual_seed(seed)) * (1 + 0.5 * seed) + seed for seed in (1, 2, 3)]
    for order in (sets, sets[::-1]):
        cache = {}
        for x in order:
            fresh = sample_metrics(x, dataset, reference, generator=torch.Generator().manual_seed(0))
            cached = sample_metrics(x, dataset, reference, generator=torch.Generator().manual_seed(0), cache=cache)
            assert cached == fresh        # exactly
    assert set(cache) == {("mmd_within_y", (0.25, 0.5, 1.0, 2.0, 4.0)), "energy_within_y"}


def test_frechet_distance_matches_the_gaussian_closed_form():
    from diffsweep.metrics import frechet_distance
    # N(0, I) against N(1, 4 I) in 3-D: |mu|^2 = 3, tr(I + 4I - 2 * 2I) = 3
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40000, 3, generator=g, dtype=torch.float64)
    y = 2 * torch.randn(40000, 3, generator=g, dtype=torch.float64) + 1
    assert frechet_distance(x, y) == pytest.approx(6.0, abs=0.15)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-6)
    # non-commuting covariances: the symmetric form agrees with the direct trace of sqrt(S1 S2)
    a = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, -0.3], [-0.3, 0.5]], dtype=torch.float64)
    xa = torch.randn(200000, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(a).T
    xb = torch.randn(200000, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(b).T
    eigenvalues = torch.linalg.eigvals(a @ b).real.clamp(min=0).sqrt().sum()
    assert frechet_distance(xa, xb) == pytest.approx(float(torch.trace(a + b) - 2 * eigenvalues), abs=0.02)


def test_frechet_distance_with_fewer_samples_than_dimensions_is_the_covariance_form():
    """Images have more pixels than samples: the distance is then taken from the samples' Gram
    factors (no d x d matrix), and equals the covariance form."""
    from diffsweep.metrics import _psd_sqrt, frechet_distance
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 50, generator=g, dtype=torch.float64)
    y = 1.5 * torch.randn(9, 50, generator=g, dtype=torch.float64) + 0.3
    cov_x, cov_y = torch.cov(x.T), torch.cov(y.T)
    root = _psd_sqrt(cov_x)
    expected = (x.mean(0) - y.mean(0)).pow(2).sum() + torch.trace(cov_x + cov_y - 2 * _psd_sqrt(root @ cov_y @ root))
    assert frechet_distance(x, y) == pytest.approx(float(expected), rel=1e-6)
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    cache = {}
    assert frechet_distance(x, y, cache=cache) == frechet_distance(x, y, cache=cache) == frechet_distance(x, y)
