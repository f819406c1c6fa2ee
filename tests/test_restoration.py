"""Restoration: operators (exact adjoints), exact posteriors, restorers against them, metrics."""

import math

import numpy as np
import pytest
import torch

from diffsweep.restoration import operators as ops
from diffsweep.restoration.registry import OPERATORS, noise_std

IMAGE = (2, 8, 8)
CASES = [
    ("sr_bicubic", {"factor": 2}), ("sr_bicubic", {"factor": 4}), ("sr_avgpool", {"factor": 2}),
    ("inpaint_random", {"missing": 0.5}), ("inpaint_box", {"size": 3}), ("inpaint_half", {"side": "top"}),
    ("deblur_gaussian", {"kernel_size": 5, "std": 1.0}), ("deblur_motion", {"kernel_size": 5, "intensity": 0.5}),
    ("random_matrix", {"measurements": 5}), ("random_projection", {"measurements": 7}),
    ("grid25_pairs", {"d_y": 2}),     # the published problem (tests/test_gmm_nd.py), on the flattened image
]


def build(name, params, shape=IMAGE, seed=0):
    family = OPERATORS.get(name)
    return family.build(shape, seed, family.resolve_knobs(params))


def test_every_operator_family_is_tested():
    assert {name for name, _ in CASES} == set(OPERATORS)


@pytest.mark.parametrize("name,params", CASES)
def test_adjoint_is_exact(name, params):
    operator = build(name, params)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, *IMAGE, generator=generator, dtype=torch.float64)
    y = torch.randn(3, *operator.measurement_shape, generator=generator, dtype=torch.float64)
    ax = operator.forward(x)
    assert ax.shape == (3, *operator.measurement_shape)
    lhs = (ax * y).sum().item()
    rhs = (x * operator.adjoint(y)).sum().item()
    assert abs(lhs - rhs) <= 1e-12 * max(1.0, abs(lhs))
    matrix = operator.matrix()
    assert torch.allclose(ax.flatten(1), x.flatten(1) @ matrix.T, atol=1e-12)


@pytest.mark.parametrize("name,params", CASES)
def test_seeding_is_deterministic(name, params):
    first, again, other = build(name, params, seed=3), build(name, params, seed=3), build(name, params, seed=4)
    assert torch.equal(first.matrix(), again.matrix())
    for key, value in first.arrays().items():
        assert np.array_equal(value, again.arrays()[key])
    if name in ("inpaint_random", "inpaint_box", "deblur_motion", "random_matrix", "random_projection"):
        assert not torch.equal(first.matrix(), other.matrix())


def test_shapes():
    assert build("sr_bicubic", {"factor": 2}).measurement_shape == (2, 4, 4)
    assert build("sr_avgpool", {"factor": 4}).measurement_shape == (2, 2, 2)
    mask = build("inpaint_random", {"missing": 0.25}, shape=(1, 4, 4)).arrays()["mask"]
    assert mask.shape == (1, 4, 4) and mask.sum() == 12
    box = build("inpaint_box", {"size": 3}).arrays()["mask"]
    assert box.sum() == 64 - 9
    half = build("inpaint_half", {"side": "left"}).arrays()["mask"]
    assert half[0, :, :4].sum() == 0 and half[0, :, 4:].all()
    kernel = build("deblur_motion", {"kernel_size": 5, "intensity": 0.5}).arrays()["kernel"]
    assert kernel.shape == (5, 5) and abs(kernel.sum() - 1) < 1e-12 and (kernel >= 0).all()


def test_bicubic_matches_matlab_weights():
    """MATLAB imresize(., 0.5, 'bicubic') weights of an interior output pixel (centre at 8.5, taps 5..12),
    computed by hand from Keys' cubic."""
    matrix = ops.imresize_matrix(16, 2)
    expected = [-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875]
    assert torch.allclose(matrix[4, 5:13], torch.tensor(expected, dtype=torch.float64), atol=1e-15)
    assert torch.allclose(matrix.sum(1), torch.ones(8, dtype=torch.float64))
    # at the border the taps that fall outside are mirrored back (symmetric padding)
    assert matrix[0, 0].item() == pytest.approx(0.43359375 + 0.11328125)


def test_average_pooling_averages_blocks():
    x = torch.arange(16, dtype=torch.float64).reshape(1, 1, 4, 4)
    y = build("sr_avgpool", {"factor": 2}, shape=(1, 4, 4)).forward(x)
    assert y.flatten().tolist() == [2.5, 4.5, 10.5, 12.5]


def test_bad_operator_parameters_are_named():
    with pytest.raises(ValueError, match="divisible by 3"):
        build("sr_bicubic", {"factor": 3})
    with pytest.raises(ValueError, match="restoration.tasks.t.knobs.missing"):
        OPERATORS.get("inpaint_random").resolve_knobs({"missing": 2.0}, where="restoration.tasks.t.knobs.")


def test_noise_convention():
    assert noise_std(0.05, "minus_one_one") == 0.05
    assert noise_std(0.05, "zero_one") == pytest.approx(0.1)
    with pytest.raises(ValueError, match="allowed: minus_one_one, zero_one"):
        noise_std(0.05, "0-255")


# --- exact posterior ----------------------------------------------------------------------

from diffsweep.gmm import GaussianMixture, grid25_mixture, ring_mixture  # noqa: E402
from diffsweep.restoration.posterior import exact_posterior  # noqa: E402


def grid_posterior(prior, A, y, s, half_width=7.0, n=801):
    """Brute force: the posterior on a fine 2-D grid, density prior(x) * N(y; A x, s^2 I)."""
    axis = torch.linspace(-half_width, half_width, n, dtype=torch.float64)
    points = torch.cartesian_prod(axis, axis)
    log_density = prior.log_prob(points) - 0.5 * ((y - points @ A.T) ** 2).sum(1) / s ** 2
    w = torch.softmax(log_density, 0)
    mean = w @ points
    centred = points - mean
    return mean, (w[:, None] * centred).T @ centred


@pytest.mark.parametrize("prior,A,y,s", [
    (ring_mixture(), [[1.0, 0.0]], [1.5], 0.5),          # bimodal posterior (upper and lower arc)
    (grid25_mixture(), [[0.6, 0.8]], [0.3], 0.7),
    (grid25_mixture(), [[1.0, 0.0], [0.0, 1.0]], [1.0, -2.2], 0.4),
])
def test_exact_posterior_matches_grid_integration(prior, A, y, s):
    A, y = torch.tensor(A, dtype=torch.float64), torch.tensor(y, dtype=torch.float64)
    posterior = exact_posterior(prior, A, y, s)
    mean, cov = grid_posterior(prior, A, y, s)
    assert torch.allclose(posterior.mean(), mean, atol=1e-6)
    assert torch.allclose(posterior.covariance(), cov, atol=1e-6)
    samples = posterior.sample(200_000, torch.Generator().manual_seed(0))
    assert torch.allclose(samples.mean(0), mean, atol=0.02)
    assert torch.allclose(samples.T.cov(), cov, atol=0.03)


def test_single_gaussian_posterior_is_the_closed_form():
    generator = torch.Generator().manual_seed(0)
    root = torch.randn(5, 5, generator=generator, dtype=torch.float64)
    sigma = root @ root.T + 0.5 * torch.eye(5, dtype=torch.float64)
    mu = torch.randn(5, generator=generator, dtype=torch.float64)
    A = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    y = torch.randn(3, generator=generator, dtype=torch.float64)
    s = 0.3
    posterior = exact_posterior(GaussianMixture(torch.ones(1), mu[None], sigma[None]), A, y, s)
    precision = torch.linalg.inv(sigma) + A.T @ A / s ** 2     # information form, independent of the gain form
    cov = torch.linalg.inv(precision)
    mean = cov @ (torch.linalg.solve(sigma, mu) + A.T @ y / s ** 2)
    assert torch.allclose(posterior.means[0], mean, atol=1e-10)
    assert torch.allclose(posterior.covariances[0], cov, atol=1e-10)


# --- restorers against the exact posterior ------------------------------------------------

from diffsweep import metrics, noise, restoration  # noqa: E402
from diffsweep.runs.source import CountingDenoiser, initial_sample  # noqa: E402
from diffsweep.models import OracleDenoiser  # noqa: E402
from diffsweep.restoration.operators import MatrixOperator  # noqa: E402

RING = ring_mixture()
OBSERVE_X = torch.tensor([[1.0, 0.0]], dtype=torch.float64)   # y = x_1 + 0.3 n: the upper and the lower arc remain
Y_RING, S_RING, N_RING = torch.tensor([1.5], dtype=torch.float64), 0.3, 2000


@pytest.fixture(scope="module")
def ring_case():
    posterior = exact_posterior(RING, OBSERVE_X, Y_RING, S_RING)
    generator = torch.Generator().manual_seed(0)
    exact = posterior.sample(N_RING, generator)
    prior_samples, _ = RING.sample(N_RING, generator)
    prior_gap = metrics.sliced_wasserstein2(prior_samples, exact, generator=torch.Generator().manual_seed(1))
    return posterior, exact, prior_gap


def restore(name, steps, knobs=None, n=N_RING):
    spec = restoration.get(name)
    sigmas = noise.make_schedule(spec.default_schedule, steps).tolist()
    generator = torch.Generator().manual_seed(0)
    x = initial_sample(spec.init, sigmas[0], (n, 2), generator, torch.float64, torch.device("cpu"))
    counter = CountingDenoiser(OracleDenoiser(RING))
    samples, nfe = spec.fn(counter, x, sigmas, generator, MatrixOperator(OBSERVE_X), Y_RING.expand(n, 1), S_RING,
                           **spec.resolve_knobs(knobs or {}))
    assert nfe == counter.calls
    return samples, nfe


# DPS's step size is problem dependent: its default (1.0, the image setting of the DPS code) overshoots in 2-D.
RESTORER_CASES = [("rw_conditional", 300, {"eps": 0.7, "T0": 0.1}), ("dps", 200, {"scale": 0.03}), ("ddrm", 100, {}),
                  ("diffpir", 100, {}), ("pigdm", 100, {}), ("replacement", 100, {}),
                  ("repaint", 30, {"jump_length": 5, "jump_count": 3}), ("ilvr", 100, {}), ("ddnm", 100, {}),
                  ("ddnm_plus", 100, {}), ("twisted_smc", 20, {"particles": 16}), ("guided_smc", 20, {"particles": 16}),
                  ("red_diff", 100, {}),
                  ("daps", 50, {})]
# RED-diff optimises a point estimate per sample (mode-seeking), not a posterior sample: measured 0.63 against a
# prior gap of 1.9; DAPS at 50 levels (its x0 given x_sigma taken as N(D(x), sigma^2)) 0.61 (0.52 at 100 levels).
# Both get a looser bound than the others' 0.3.
GAP_FRACTION = {"red_diff": 0.4, "daps": 0.4}
# RePaint makes more denoiser calls than steps and, resampling, approaches the posterior of a noiseless y:
# tests/test_restoration_projections.py measures it against that one.
RESAMPLING = {"repaint"}


def test_every_restorer_is_tested():
    assert {name for name, _, _ in RESTORER_CASES} == set(restoration.names())


@pytest.mark.parametrize("name,steps,knobs", RESTORER_CASES)
def test_restorer_runs_in_float32_like_a_network(name, steps, knobs):
    """Trained networks compute in float32: no float64-only constants (e.g. 1e300) may overflow."""
    spec = restoration.get(name)
    image = (1, 4, 4)
    operator = ops.BoxInpainting(image, seed=0, size=2)
    sigmas = noise.make_schedule(spec.default_schedule, 10).tolist()
    generator = torch.Generator().manual_seed(0)
    x = initial_sample(spec.init, sigmas[0], (3, *image), generator, torch.float32, torch.device("cpu"))
    y = operator.forward(torch.zeros(3, *image)) + 0.1 * torch.randn(3, *operator.measurement_shape, generator=generator)

    def shrink(x, sigma):     # the denoiser of N(0, I): D = x / (1 + sigma^2)
        return x / (1 + torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *[1] * (x.ndim - 1)) ** 2)
    samples, _ = spec.fn(shrink, x, sigmas, generator, operator, y, 0.1, **spec.resolve_knobs(knobs))
    assert samples.dtype == torch.float32 and torch.isfinite(samples).all()


@pytest.mark.parametrize("name,steps,knobs", RESTORER_CASES)
def test_restorer_approaches_the_exact_posterior(ring_case, name, steps, knobs):
    if name in RESAMPLING:
        pytest.skip("measured against the noiseless posterior in test_restoration_projections.py")
    posterior, exact, prior_gap = ring_case
    samples, nfe = restore(name, steps, knobs)
    assert nfe == steps
    gap = metrics.sliced_wasserstein2(samples, exact, generator=torch.Generator().manual_seed(1))
    mean_error = (samples.mean(0) - posterior.mean()).norm().item()
    # the prior sits 1.9 away in sliced W2 and its mean 1.87 away; every restorer must get much closer
    assert gap < GAP_FRACTION.get(name, 0.3) * prior_gap, gap
    assert mean_error < 0.25 * posterior.mean().norm().item(), mean_error


def test_conditional_walk_with_many_steps_is_close_to_the_exact_posterior(ring_case):
    posterior, exact, prior_gap = ring_case
    # 600 steps (1000 before: 40% of this test's time) meet the same bounds: gap 0.136 of the prior's
    # (0.091 at 1000), mean error 0.131 (0.093), covariance error 0.086 (0.057)
    samples, _ = restore("rw_conditional", 600, {"eps": 0.7, "T0": 0.1})
    gap = metrics.sliced_wasserstein2(samples, exact, generator=torch.Generator().manual_seed(1))
    assert gap < 0.15 * prior_gap, gap          # the prior sits 1.92 away
    assert (samples.mean(0) - posterior.mean()).norm() < 0.15
    covariance_error = (samples.T.cov() - posterior.covariance()).norm() / posterior.covariance().norm()
    assert covariance_error < 0.1, covariance_error


def test_conditional_walk_adds_the_exact_likelihood_gradient():
    """One step, no noise: x + tau (score + A^T (y - A x) / s^2) with tau clamped at s^2."""
    spec = restoration.get("rw_conditional")
    x = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    sigma, s = 2.0, 0.3
    out, _ = spec.fn(OracleDenoiser(RING), x, [sigma], None, MatrixOperator(OBSERVE_X), Y_RING[None], s,
                     **spec.resolve_knobs({"eps": 0.5}))
    tau = min(0.5 * sigma ** 2, s ** 2)
    expected = x + tau * (RING.score(x, sigma) + (Y_RING - x[:, :1]) @ OBSERVE_X / s ** 2)
    assert torch.allclose(out, expected, atol=1e-12)


def test_conditional_walk_scales_its_clamp_by_the_operator_norm():
    """One step, no noise: with ||A|| > 1 the clamp is s^2 / ||A||^2 (the likelihood step never overshoots)."""
    spec = restoration.get("rw_conditional")
    A = 3.0 * OBSERVE_X                     # ||A||^2 = 9
    x = torch.tensor([[0.3, -0.2]], dtype=torch.float64)
    sigma, s = 2.0, 0.3
    out, _ = spec.fn(OracleDenoiser(RING), x, [sigma], None, MatrixOperator(A), Y_RING[None], s,
                     **spec.resolve_knobs({"eps": 0.5}))
    tau = s ** 2 / 9
    expected = x + tau * (RING.score(x, sigma) + (Y_RING - x @ A.T) @ A / s ** 2)
    assert torch.allclose(out, expected, atol=1e-12)


@pytest.fixture(scope="module")
def projection_case():
    """A random 8x16 projection (||A||^2 = 39) of a Gaussian prior N(1/2, I/4) in 16-D, noise 0.3:
    the reference clamp tau <= s^2 makes the likelihood step amplify A's top singular directions."""
    generator = torch.Generator().manual_seed(0)
    d, m, s, variance = 16, 8, 0.3, 0.25
    A = torch.randn(m, d, generator=generator, dtype=torch.float64)
    mean = torch.full((d,), 0.5, dtype=torch.float64)
    prior = GaussianMixture(torch.ones(1), mean[None], variance * torch.eye(d, dtype=torch.float64)[None])

    def denoiser(x, sigma):     # the prior's exact denoiser, closed form (cheaper than the oracle's)
        return mean + (x - mean) * variance / (variance + sigma ** 2)
    truth = prior.sample(1, generator)[0][0]
    y = truth @ A.T + s * torch.randn(1, m, generator=generator, dtype=torch.float64)
    return denoiser, mean, A, y, s, exact_posterior(prior, A, y[0], s)


def test_conditional_walk_converges_for_an_operator_of_norm_above_one(projection_case):
    denoiser, prior_mean, A, y, s, posterior = projection_case
    assert torch.linalg.matrix_norm(A, ord=2) ** 2 > 2      # where the reference clamp diverges
    spec, n = restoration.get("rw_conditional"), 200
    sigmas = noise.make_schedule(spec.default_schedule, 100).tolist()
    generator = torch.Generator().manual_seed(0)
    x = initial_sample(spec.init, sigmas[0], (n, A.shape[1]), generator, torch.float64, torch.device("cpu"))
    # its step is s^2 / ||A||^2, 1/39 of the reference's: it needs the steps to mix the prior's directions
    samples, _ = spec.fn(denoiser, x, sigmas, generator, MatrixOperator(A), y.expand(n, -1), s,
                         **spec.resolve_knobs({"eps": 0.7, "T0": 0.1, "steps_per_level": 10}))
    assert torch.isfinite(samples).all()
    mean = posterior.mean()
    exact = posterior.sample(2000, torch.Generator().manual_seed(1))
    # squared distance to the posterior mean per coordinate: an exact sample's is the posterior variance
    # (measured: 0.94 of the exact samples')
    mse, exact_mse = ((samples - mean) ** 2).mean().item(), ((exact - mean) ** 2).mean().item()
    assert mse < 1.2 * exact_mse, (mse, exact_mse)
    # measured: 0.27 of the prior's distance
    assert (samples.mean(0) - mean).norm() < 0.4 * (prior_mean - mean).norm()


def test_the_reference_clamp_diverges_for_that_operator(projection_case):
    """What the norm-scaled clamp fixes: tau <= s^2 alone, 20 steps, runs away."""
    from diffsweep.samplers import GeneratorNoise
    from diffsweep.samplers.random_walk import reference_levels, walk
    denoiser, _, A, y, s, _ = projection_case
    operator, n = MatrixOperator(A), 10
    sigmas, taus, temperatures = reference_levels(noise.make_schedule("sigmoid", 20).tolist(), 0.7, 0.1, "none")

    def posterior_denoiser(x, sigma):
        return denoiser(x, sigma) + sigma ** 2 * operator.adjoint(y - operator.forward(x)) / s ** 2
    generator = torch.Generator().manual_seed(0)
    samples, _ = walk(posterior_denoiser, torch.randn(n, A.shape[1], generator=generator, dtype=torch.float64),
                      sigmas, GeneratorNoise(generator), taus=[min(tau, s ** 2) for tau in taus], temperatures=temperatures,
                      steps_per_level=1, final_noise=False)
    assert not (samples.abs() < 1e6).all()


# --- metrics ----------------------------------------------------------------------------------

from diffsweep.restoration import metrics as rmetrics  # noqa: E402


def test_psnr_is_on_zero_one_with_data_range_one():
    truth = torch.zeros(1, 1, 4, 4, dtype=torch.float64)          # 0.5 on [0, 1]
    off = truth + 0.2                                             # 0.1 off on [0, 1]: MSE 0.01, PSNR 20 dB
    assert rmetrics.psnr(off, truth).item() == pytest.approx(20.0)
    assert rmetrics.psnr(truth + 5.0, truth).item() == pytest.approx(rmetrics.psnr(truth + 1.0, truth).item())  # clipped


def test_minmax_psnr_ignores_affine_changes_that_psnr_sees():
    truth = torch.linspace(-1, 1, 16, dtype=torch.float64).reshape(1, 1, 4, 4)
    scaled = 0.5 * truth + 0.1
    assert rmetrics.psnr_minmax_ref(scaled, truth).item() > 150
    assert rmetrics.psnr(scaled, truth).item() < 25


def test_ssim_is_one_for_equal_images_and_drops_with_noise():
    truth = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    assert torch.allclose(rmetrics.ssim(truth, truth), torch.ones(2, dtype=torch.float64))
    noisy = truth + 0.3 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert (rmetrics.ssim(noisy, truth) < 0.9).all()


def test_exact_posterior_sample_sits_3db_below_the_mmse_bound():
    """Averaged over measurements, E||x_sample - x||^2 = 2 E||x_mmse - x||^2 for exact posterior samples."""
    prior = GaussianMixture(torch.ones(1), torch.zeros(1, 16), torch.eye(16)[None] * 0.1)
    operator = build("inpaint_random", {"missing": 0.5}, shape=(1, 4, 4))
    generator = torch.Generator().manual_seed(0)
    mse_mean, mse_sample = 0.0, 0.0
    for _ in range(400):
        truth, _ = prior.sample(1, generator)
        y = operator.forward(truth.reshape(1, 1, 4, 4)) + 0.1 * torch.randn(1, 1, 4, 4, generator=generator,
                                                                             dtype=torch.float64)
        posterior = exact_posterior(prior, operator.matrix(), y.flatten(), 0.1)
        mse_mean += ((posterior.mean() - truth[0]) ** 2).mean().item()
        mse_sample += ((posterior.sample(1, generator)[0] - truth[0]) ** 2).mean().item()
    assert 10 * math.log10(mse_sample / mse_mean) == pytest.approx(3.01, abs=0.4)


def test_a_mean_over_restorations_has_the_standard_error_of_a_mean():
    values = rmetrics.mean_and_se("psnr", torch.tensor([20.0, 22.0, 24.0, 26.0]))
    assert values == {"psnr": 23.0, "psnr_se": pytest.approx(math.sqrt(20 / 3) / 2, rel=1e-12)}
    assert rmetrics.mean_and_se("psnr", torch.tensor([21.0])) == {"psnr": 21.0}     # one restoration: no se


# --- LPIPS (backbone from a local file; a randomly initialised torchvision AlexNet stands in for ImageNet weights)

@pytest.fixture(scope="module")
def alexnet_weights(tmp_path_factory):
    """torchvision's AlexNet feature weights, randomly initialised (seeded), saved as torchvision names them."""
    import torchvision
    torch.manual_seed(0)
    state = {key: value for key, value in torchvision.models.alexnet(weights=None).state_dict().items()
             if key.startswith("features.")}
    path = tmp_path_factory.mktemp("lpips") / "alexnet.pth"
    torch.save(state, path)
    return path, state


def test_lpips_without_weights_is_skipped_naming_the_key(tmp_path):
    scorer, status = rmetrics.Lpips.from_options({"lpips_weights": None}, True, "cpu")
    assert scorer is None and status.startswith("skipped: restoration.metrics.lpips_weights not set")
    missing = tmp_path / "nowhere.pth"
    scorer, status = rmetrics.Lpips.from_options({"lpips_weights": str(missing)}, True, "cpu")
    assert scorer is None and status == f"skipped: restoration.metrics.lpips_weights: file not found: {missing}"


def test_lpips_loads_the_backbone_from_the_file_and_is_zero_only_for_equal_images(alexnet_weights):
    path, state = alexnet_weights
    scorer, status = rmetrics.Lpips.from_options({"lpips_weights": str(path), "lpips_net": "alex"}, True, "cpu")
    assert status == "ok"
    backbone = scorer.model.net.state_dict()                          # slice<k>.<i>.<param>
    assert len(backbone) == 10
    for key, value in backbone.items():
        _, index, param = key.split(".")
        assert torch.equal(value, state[f"features.{index}.{param}"]), key
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(3, 1, 8, 8, generator=generator, dtype=torch.float64) * 2 - 1      # digits-sized: upsampled
    y = torch.rand(3, 1, 8, 8, generator=generator, dtype=torch.float64) * 2 - 1
    assert scorer(x, x).abs().max().item() < 1e-6
    distances = scorer(x, y)
    assert distances.shape == (3,) and (distances > 1e-3).all()


def test_lpips_rejects_weights_of_another_backbone(alexnet_weights, tmp_path):
    path, state = alexnet_weights
    wrong = tmp_path / "not_alexnet.pth"
    torch.save({key.replace("features", "body"): value for key, value in state.items()}, wrong)
    with pytest.raises(ValueError, match="restoration.metrics.lpips_weights: .* is not a torchvision state dict"):
        rmetrics.Lpips(wrong, "alex")


def test_bicubic_downsampling_matches_deepinv_downsampling_matlab():
    """Against stored outputs of deepinv 0.5.0's imresize_matlab (tests/fixtures/restoration/README.md)."""
    from pathlib import Path

    import numpy as np

    from diffsweep.restoration.operators import BicubicDownsampling
    stored = np.load(Path(__file__).parent / "fixtures" / "restoration" / "deepinv_imresize_matlab.npz")
    for size, factor in ((16, 2), (32, 4)):
        x = torch.from_numpy(stored[f"x{size}"])
        ours = BicubicDownsampling((3, size, size), 0, factor).forward(x)
        assert torch.allclose(ours, torch.from_numpy(stored[f"y{size}_k{factor}"]), rtol=0, atol=1e-12)


def test_measurement_psnr_scores_the_measurement_on_the_image_grid():
    """The reference code's input PSNR: an SR measurement upsampled nearest-neighbour, an
    inpainting measurement as measured."""
    truth = torch.rand(1, *IMAGE, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
    sr, mask = build("sr_bicubic", {"factor": 2}), build("inpaint_random", {"missing": 0.5})
    y = sr.forward(truth)
    assert torch.equal(sr.as_image(y), y.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3))
    assert torch.equal(mask.as_image(mask.forward(truth)), mask.forward(truth))
    for operator in (sr, mask):
        y = operator.forward(truth)[0]
        values = rmetrics.measurement_metrics(truth, truth[0], y, operator, 0.1)
        assert values["psnr_measurement"] == pytest.approx(rmetrics.psnr(operator.as_image(y[None]), truth).item())
        assert values["psnr_measurement_minmax_ref"] == pytest.approx(
            rmetrics.psnr_minmax_ref(operator.as_image(y[None]), truth).item())
        assert values["psnr_measurement"] < values["psnr"]       # the truth itself beats its measurement
