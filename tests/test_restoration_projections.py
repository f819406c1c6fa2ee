"""RePaint, ILVR, DDNM(+) and twisted SMC: their schedules, identities and consistency on ring8.

Their distance to the exact posterior is checked with every restorer in test_restoration.py.
"""

import pytest
import torch

from diffsweep import metrics, noise, restoration
from diffsweep.gmm import ring_mixture
from diffsweep.runs.source import CountingDenoiser, initial_sample
from diffsweep.models import OracleDenoiser
from diffsweep.restoration.operators import MatrixOperator
from diffsweep.restoration.posterior import exact_posterior
from diffsweep.restoration.projections import repaint_path
from diffsweep.samplers.randomness import noise_source

RING = ring_mixture()
OBSERVE_X = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
Y, S = torch.tensor([1.5], dtype=torch.float64), 0.3


def restore(name, steps, knobs, n, seed=0):
    spec = restoration.get(name)
    sigmas = noise.make_schedule(spec.default_schedule, steps).tolist()
    generator = torch.Generator().manual_seed(seed)
    x = initial_sample(spec.init, sigmas[0], (n, 2), generator, torch.float64, torch.device("cpu"))
    counter = CountingDenoiser(OracleDenoiser(RING))
    samples, nfe = spec.fn(counter, x, sigmas, generator, MatrixOperator(OBSERVE_X), Y.expand(n, 1), S,
                           **spec.resolve_knobs(knobs))
    assert nfe == counter.calls
    return samples, nfe


def test_repaint_path_is_repaints_jump_schedule():
    # 6 levels, jumps of 2 at levels 2 and 4 (2 and 4 steps before 0), each taken twice (jump_count 3)
    path = repaint_path(6, 2, 3)
    assert path == [0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 3, 4, 3, 2, 3, 4, 3, 2, 3, 4, 5, 6]
    assert repaint_path(5, 3, 1) == [0, 1, 2, 3, 4, 5]


def test_repaint_counts_one_call_per_down_step():
    path = repaint_path(30, 5, 3)
    down_steps = sum(b > a for a, b in zip(path[:-1], path[1:]))
    _, nfe = restore("repaint", 30, {"jump_length": 5, "jump_count": 3}, n=4)
    assert nfe == down_steps == 30 + 2 * 5 * 5        # levels 5, 10, ..., 25 jumped back twice


def test_without_resampling_repaint_and_ilvr_are_the_replacement_baseline():
    reference, _ = restore("replacement", 10, {}, n=50)
    repaint, _ = restore("repaint", 10, {"jump_length": 3, "jump_count": 1}, n=50)
    ilvr, _ = restore("ilvr", 10, {"refine_until": 0.0}, n=50)
    assert torch.equal(repaint, reference) and torch.equal(ilvr, reference)
    unrefined, _ = restore("ilvr", 10, {"refine_until": 100.0}, n=50)     # never refined: the prior chain
    assert not torch.equal(unrefined, reference)


def test_repaint_resampling_approaches_the_noiseless_posterior():
    """RePaint replaces with y itself (y treated as exact): more resampling passes bring it closer to the
    posterior of a noiseless y (n = 1000 against 2000 exact samples: 0.51, 0.46, 0.31 for jump_count 1, 3, 6)."""
    posterior = exact_posterior(RING, OBSERVE_X, Y, 1e-4)
    exact = posterior.sample(1000, torch.Generator().manual_seed(0))
    prior, _ = RING.sample(1000, torch.Generator().manual_seed(0))
    gaps = {}
    for jump_count in (1, 6):
        samples, _ = restore("repaint", 30, {"jump_length": 5, "jump_count": jump_count}, n=1000)
        gaps[jump_count] = metrics.sliced_wasserstein2(samples, exact, generator=torch.Generator().manual_seed(1))
    prior_gap = metrics.sliced_wasserstein2(prior, exact, generator=torch.Generator().manual_seed(1))
    assert gaps[6] < 0.85 * gaps[1] and gaps[6] < 0.25 * prior_gap, (gaps, prior_gap)


def test_ddnm_keeps_the_measured_part_and_ddnm_plus_does_not_with_noise():
    """DDNM treats y as exact: x_1 lands on y. DDNM+ leaves the noise of y to the prior: x_1 spreads."""
    ddnm, _ = restore("ddnm", 50, {}, n=200)
    assert torch.allclose(ddnm[:, 0], Y.expand(200), atol=1e-6)
    ddnm_plus, _ = restore("ddnm_plus", 50, {}, n=200)
    assert ddnm_plus[:, 0].std() > 0.05


def test_twisted_smc_approaches_the_exact_posterior_as_particles_grow():
    """y = 1.5 sits in the prior's gap between modes, a hard case for SMC: the distance falls with the
    particles (20 steps, n = 1000: 1.87, 0.61, 0.26 for K = 1, 4, 64; exact-sample floor about 0.06-0.1)."""
    posterior = exact_posterior(RING, OBSERVE_X, Y, S)
    exact = posterior.sample(1000, torch.Generator().manual_seed(0))
    gaps = {}
    for particles in (1, 4, 64):
        samples, nfe = restore("twisted_smc", 20, {"particles": particles, "prior_variance": 8.0}, n=400)
        assert nfe == 20
        gaps[particles] = metrics.sliced_wasserstein2(samples, exact, generator=torch.Generator().manual_seed(1))
    assert gaps[1] > 1.5                           # one particle: the unconditional chain, the prior
    assert gaps[1] > 2 * gaps[4] > 2 * gaps[64]
    assert gaps[64] < 0.4, gaps


def test_twisted_smc_resamples_within_systems_whose_effective_size_dropped():
    """Two systems of 2 rows x 3 particles: the first with even weights (ESS 6) keeps its particles and
    weights, the second (ESS about 1) draws every ancestor among its own particles and restarts at 0."""
    from diffsweep.restoration.smc import resample
    log_weights = torch.tensor([[0.0] * 6, [0.0, -30.0, -30.0, -30.0, -30.0, -30.0]], dtype=torch.float64)
    rows, carried = resample(log_weights, noise_source(torch.Generator().manual_seed(0)), pool=2, threshold=0.5)
    assert rows[:6].tolist() == list(range(6)) and torch.equal(carried[0], log_weights[0])
    assert rows[6:].tolist() == [6] * 6 and torch.equal(carried[1], torch.zeros(6, dtype=torch.float64))
    rows, carried = resample(log_weights, noise_source(torch.Generator().manual_seed(0)), pool=2, threshold=1.0)
    assert rows[:6].min() >= 0 and rows[:6].max() < 6 and rows[:6].tolist() != list(range(6))   # every step
    assert not carried.any()


def test_twisted_smc_pool_must_hold_rows_of_one_measurement():
    spec = restoration.get("twisted_smc")
    y = torch.tensor([[1.5], [1.5], [0.5], [0.5]], dtype=torch.float64)
    for pool, message in ((3, "must divide"), (4, "different measurements")):
        with pytest.raises(ValueError, match=f"knob pool \\({pool}\\) .*{message}"):
            spec.fn(OracleDenoiser(RING), torch.zeros(4, 2, dtype=torch.float64), [1.0, 0.5], torch.Generator(),
                    MatrixOperator(OBSERVE_X), y, S, **spec.resolve_knobs({"particles": 2, "pool": pool}))


def test_guided_smc_uses_y_and_approaches_the_exact_posterior_as_particles_grow():
    """Its proposal uses y, so one particle is already a conditional sampler (the unguided chain is the prior:
    1.95); the distance falls with the particles (20 steps, n = 400: 0.73, 0.44, 0.21 for K = 1, 4, 64)."""
    posterior = exact_posterior(RING, OBSERVE_X, Y, S)
    exact = posterior.sample(1000, torch.Generator().manual_seed(0))
    gaps = {}
    for particles in (1, 64):
        samples, nfe = restore("guided_smc", 20, {"particles": particles, "prior_variance": 8.0}, n=400)
        assert nfe == 20
        gaps[particles] = metrics.sliced_wasserstein2(samples, exact, generator=torch.Generator().manual_seed(1))
    unguided, _ = restore("twisted_smc", 20, {"particles": 1}, n=400)
    assert gaps[1] < 0.6 * metrics.sliced_wasserstein2(unguided, exact, generator=torch.Generator().manual_seed(1))
    assert gaps[1] > 2 * gaps[64] and gaps[64] < 0.3, gaps


def test_guided_smc_conjugate_step_is_the_product_of_the_step_and_the_gaussian_twist():
    """conjugate_step in A's SVD basis against the same Gaussian algebra in the original coordinates: a step
    N(m, t I) times the measurement y ~ N(B x + b, C), B = c A, b = (1 - c) A mu, C = s^2 I + c sigma'^2 A A^T,
    has mean m + t B^T G^{-1} (y - b - B m), covariance t I - t^2 B^T G^{-1} B and normaliser N(y; b + B m, G),
    G = C + t B B^T; gaussian_twist is log N(y; b + B x, C) (both up to a constant per level)."""
    from diffsweep.restoration.restorers import Spectral
    from diffsweep.restoration.smc import conjugate_step, gaussian_twist
    generator = torch.Generator().manual_seed(3)
    d, m_rows, v, t, following, s = 5, 3, 2.0, 0.3, 0.7, 0.4
    A = torch.randn(m_rows, d, generator=generator, dtype=torch.float64)
    y = torch.randn(1, m_rows, generator=generator, dtype=torch.float64).expand(4, m_rows)
    mu = torch.randn(1, d, generator=generator, dtype=torch.float64).expand(4, d)
    step_mean = torch.randn(4, d, generator=generator, dtype=torch.float64)
    basis = Spectral(MatrixOperator(A), step_mean)
    log_z, mean_bar, std = conjugate_step(basis, basis.y_coefficients(y), basis.to_spectral(step_mean), t,
                                          basis.to_spectral(mu), following, s, v)
    c = v / (following ** 2 + v)
    B, b = c * A, (1 - c) * mu @ A.T
    C = s ** 2 * torch.eye(m_rows, dtype=torch.float64) + c * following ** 2 * A @ A.T
    G = C + t * B @ B.T
    innovation = y - b - step_mean @ B.T
    assert torch.allclose(basis.from_spectral(mean_bar), step_mean + t * torch.linalg.solve(G, innovation.T).T @ B)
    V = basis.svd.Vh.T
    covariance = V @ torch.diag(std ** 2) @ V.T
    assert torch.allclose(covariance, t * torch.eye(d, dtype=torch.float64) - t ** 2 * B.T @ torch.linalg.solve(G, B))
    exact_log_z = -0.5 * (innovation * torch.linalg.solve(G, innovation.T).T).sum(1)
    assert torch.allclose(log_z - log_z[0], exact_log_z - exact_log_z[0])
    twist = gaussian_twist(basis, basis.y_coefficients(y), basis.to_spectral(step_mean), basis.to_spectral(mu),
                           following, s, v)
    exact_twist = -0.5 * (innovation * torch.linalg.solve(C, innovation.T).T).sum(1)
    assert torch.allclose(twist - twist[0], exact_twist - exact_twist[0])
