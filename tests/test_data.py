"""Tests for diffsweep.data: exact mixture densities/denoisers/scores and the data-set families."""

import math

import pytest
import torch

from diffsweep.data import FAMILIES, GMM_PRESETS, Dataset, is_analytic, make_dataset, resolve_dataset_knobs
from diffsweep.gmm import GaussianMixture

F64 = torch.float64
SIGMAS = [0.01, 0.3, 1.0, 10.0, 300.0]


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def mixture_of(preset, **params):
    return make_dataset("gmm", preset=preset, **params).mixture


def noisy_points(mixture, sigma, n=300, seed=0):
    """Points from the noisy marginal (where the denoiser gets used) plus a few far away."""
    g = generator(seed)
    x0, _ = mixture.sample(n, g)
    sigma = torch.as_tensor(sigma, dtype=F64)
    noise = torch.randn(x0.shape, generator=g, dtype=F64)
    x = x0 + (sigma.reshape(-1, 1) if sigma.dim() else sigma) * noise
    far = torch.tensor([[30.0, -20.0], [-50.0, 0.0]], dtype=F64)
    return torch.cat([x, far])


def autograd_score(mixture, x, sigma):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(mixture.log_prob(x, sigma).sum(), x)
    return grad


def mixture_moments(mixture):
    """Exact mean and covariance of the mixture (law of total covariance)."""
    w, mu, cov = mixture.weights, mixture.means, mixture.covariances
    mean = w @ mu
    second = (w[:, None, None] * (cov + mu[:, :, None] * mu[:, None, :])).sum(0)
    return mean, second - torch.outer(mean, mean)


# --- closed forms vs autograd -----------------------------------------------------------

@pytest.mark.parametrize("preset", ["ring8", "grid25"])
@pytest.mark.parametrize("sigma", SIGMAS)
def test_score_and_denoise_match_autograd_of_log_prob(preset, sigma):
    mixture = mixture_of(preset)
    x = noisy_points(mixture, sigma)
    grad = autograd_score(mixture, x, sigma)
    score = mixture.score(x, sigma)
    torch.testing.assert_close(score, grad, rtol=1e-8, atol=1e-8 * grad.abs().max().item())
    # Tweedie; the scale of x + s^2 * score bounds the rounding of the reference itself.
    expected = x + sigma ** 2 * grad
    denoised = mixture.denoise(x, sigma)
    torch.testing.assert_close(denoised, expected, rtol=1e-8, atol=1e-8 * (1 + x.abs().max().item()))


@pytest.mark.parametrize("preset", ["ring8", "grid25"])
def test_per_row_sigma_matches_autograd_and_scalar_calls(preset):
    mixture = mixture_of(preset)
    sigma = torch.tensor(SIGMAS, dtype=F64).repeat_interleave(40)      # 200 rows, 5 levels
    x = noisy_points(mixture, sigma, n=200)[:200]
    grad = autograd_score(mixture, x, sigma)
    torch.testing.assert_close(mixture.score(x, sigma), grad, rtol=1e-8,
                               atol=1e-8 * grad.abs().max().item())
    torch.testing.assert_close(mixture.denoise(x, sigma), x + sigma[:, None] ** 2 * grad,
                               rtol=1e-8, atol=1e-8 * (1 + x.abs().max().item()))
    # Row by row, the per-row call equals the scalar call at that row's level.
    for level in SIGMAS:
        rows = sigma == level
        torch.testing.assert_close(mixture.denoise(x, sigma)[rows], mixture.denoise(x[rows], level))
        torch.testing.assert_close(mixture.log_prob(x, sigma)[rows], mixture.log_prob(x[rows], level))


def test_sigma_zero_denoiser_is_identity_and_score_is_finite():
    mixture = mixture_of("grid25")
    x = noisy_points(mixture, 0.5)
    torch.testing.assert_close(mixture.denoise(x, 0.0), x, rtol=0, atol=1e-12)
    torch.testing.assert_close(mixture.score(x, 0.0), autograd_score(mixture, x, 0.0))
    assert torch.isfinite(mixture.log_prob(x)).all()


def test_sigma_accepts_float_zero_dim_and_column_tensors():
    mixture = mixture_of("ring8")
    x = noisy_points(mixture, 1.0, n=10)[:10]
    reference = mixture.score(x, 1.0)
    torch.testing.assert_close(mixture.score(x, torch.tensor(1.0)), reference)
    torch.testing.assert_close(mixture.score(x, torch.ones(10, 1)), reference)
    torch.testing.assert_close(mixture.score(x.float(), 1.0), mixture.score(x.float().double(), 1.0))
    assert mixture.score(x.float(), 1.0).dtype == F64


def test_responsibilities_are_a_distribution():
    mixture = mixture_of("grid25")
    x = noisy_points(mixture, 1.0)
    r = mixture.responsibilities(x, 1.0)
    assert r.shape == (x.shape[0], 25)
    assert (r >= 0).all()
    torch.testing.assert_close(r.sum(1), torch.ones(x.shape[0], dtype=F64))


def test_far_points_stay_finite():
    mixture = mixture_of("grid25")
    x = torch.tensor([[1e3, 1e3], [-1e3, 0.0], [0.0, 1e4]], dtype=F64)
    for sigma in [0.0, 0.01, 1.0, 400.0, torch.tensor([0.0, 3.0, 400.0], dtype=F64)]:
        assert torch.isfinite(mixture.log_prob(x, sigma)).all()
        assert torch.isfinite(mixture.responsibilities(x, sigma)).all()
        assert torch.isfinite(mixture.denoise(x, sigma)).all()
        assert torch.isfinite(mixture.score(x, sigma)).all()
    # At huge sigma the posterior mean shrinks to (about) the mixture mean.
    torch.testing.assert_close(mixture.denoise(x[:2], 1e6), mixture_moments(mixture)[0].expand(2, 2),
                               rtol=0, atol=1e-3)


def test_chunking_does_not_change_results(monkeypatch):
    import diffsweep.gmm as gmm
    mixture = mixture_of("grid25")
    x = noisy_points(mixture, 1.0, n=500)
    sigma = torch.linspace(0.0, 5.0, x.shape[0], dtype=F64)
    whole = mixture.denoise(x, sigma)
    monkeypatch.setattr(gmm, "_CHUNK_ELEMENTS", 7 * 25 * 2)       # 7 rows per chunk
    torch.testing.assert_close(mixture.denoise(x, sigma), whole, rtol=0, atol=1e-14)


# --- sampling and the noisy marginal -----------------------------------------------------

def test_exact_sampling_moments_and_label_frequencies():
    mixture = mixture_of("grid25")
    n = 200_000
    x, labels = mixture.sample(n, generator(1))
    assert x.shape == (n, 2) and x.dtype == F64 and labels.dtype == torch.long
    mean, cov = mixture_moments(mixture)
    torch.testing.assert_close(x.mean(0), mean, rtol=0, atol=0.03)
    torch.testing.assert_close(torch.cov(x.T), cov, rtol=0.02, atol=0.05)
    frequencies = torch.bincount(labels, minlength=25).to(F64) / n
    torch.testing.assert_close(frequencies, mixture.weights, rtol=0, atol=0.004)
    # Within one component the anisotropic covariance is reproduced too.
    k = 7
    torch.testing.assert_close(torch.cov(x[labels == k].T), mixture.covariances[k], rtol=0, atol=0.004)


def test_sampling_is_deterministic_given_generator():
    mixture = mixture_of("ring8")
    a, la = mixture.sample(1000, generator(5))
    b, lb = mixture.sample(1000, generator(5))
    c, _ = mixture.sample(1000, generator(6))
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("sigma", [0.0, 0.3, 2.0, 50.0])
def test_noisy_mixture_is_the_noisy_marginal(sigma):
    mixture = mixture_of("grid25")
    x = noisy_points(mixture, sigma)
    noisy = mixture.noisy(sigma)
    torch.testing.assert_close(noisy.log_prob(x), mixture.log_prob(x, sigma))
    torch.testing.assert_close(noisy.denoise(x, 0.0), x, rtol=0, atol=1e-9 * (1 + sigma))


def test_noised_samples_follow_the_noisy_mixture():
    mixture = mixture_of("ring8")
    sigma = 0.7
    g = generator(2)
    x0, _ = mixture.sample(100_000, g)
    noised = x0 + sigma * torch.randn(x0.shape, generator=g, dtype=F64)
    direct, _ = mixture.noisy(sigma).sample(100_000, g)
    mean, cov = mixture_moments(mixture.noisy(sigma))
    torch.testing.assert_close(torch.cov(noised.T), cov, rtol=0.02, atol=0.05)
    torch.testing.assert_close(noised.mean(0), mean, rtol=0, atol=0.04)
    # Same distribution -> same average log density under p_sigma (cross-entropy estimate).
    assert abs(mixture.log_prob(noised, sigma).mean() - mixture.log_prob(direct, sigma).mean()) < 0.02


# --- presets and families ----------------------------------------------------------------

def test_ring8_preset():
    mixture = mixture_of("ring8")
    assert mixture.n_components == 8 and mixture.dim == 2
    torch.testing.assert_close(mixture.means.norm(dim=1), torch.full((8,), 4.0, dtype=F64))
    torch.testing.assert_close(mixture.weights, torch.full((8,), 1 / 8, dtype=F64))
    torch.testing.assert_close(mixture.covariances, 0.09 * torch.eye(2, dtype=F64).expand(8, 2, 2))


def test_ring_parameters_and_scale():
    mixture = mixture_of("ring8", n_modes=6, radius=3.0, std=0.2, scale=0.5)
    assert mixture.n_components == 6
    torch.testing.assert_close(mixture.means.norm(dim=1), torch.full((6,), 1.5, dtype=F64))
    torch.testing.assert_close(mixture.covariances[0], 0.01 * torch.eye(2, dtype=F64))


def test_grid25_is_unequal_and_anisotropic():
    mixture = mixture_of("grid25")
    assert mixture.n_components == 25
    assert mixture.weights.max() > 2 * mixture.weights.min()
    eigvals = torch.linalg.eigvalsh(mixture.covariances)
    assert (eigvals[:, 1] / eigvals[:, 0] > 2).all()                       # not isotropic
    assert (mixture.covariances[:, 0, 1].abs() > 1e-3).any()               # and rotated
    grid = torch.tensor([-4.0, -2.0, 0.0, 2.0, 4.0], dtype=F64)
    expected = torch.cartesian_prod(grid, grid)
    assert torch.equal(mixture.means, expected)


def test_gmm_dataset_fields():
    dataset = make_dataset("gmm", preset="grid25")
    assert isinstance(dataset, Dataset)
    assert dataset.name == "gmm" and dataset.dim == 2
    assert torch.equal(dataset.mode_centers, dataset.mixture.means)
    x = dataset.sample(100, generator(0))
    assert x.shape == (100, 2) and x.dtype == F64
    assert torch.equal(x, dataset.mixture.sample(100, generator(0))[0])


@pytest.mark.parametrize("family", ["gmm", "swissroll", "checkerboard"])
def test_all_families_sample_deterministically_in_range(family):
    params = {"preset": "grid25"} if family == "gmm" else {}
    dataset = make_dataset(family, **params)
    a = dataset.sample(5000, generator(3))
    b = dataset.sample(5000, generator(3))
    assert a.shape == (5000, 2) and a.dtype == F64
    assert torch.equal(a, b)
    assert not torch.equal(a, dataset.sample(5000, generator(4)))
    assert a.abs().max() < 6.0
    assert (a.abs() < 5.0).all(dim=1).to(F64).mean() > 0.995


def test_swissroll_has_no_mixture_and_spans_the_spiral():
    dataset = make_dataset("swissroll", noise=0.0)
    assert dataset.mixture is None and dataset.mode_centers is None
    radius = dataset.sample(2000, generator(0)).norm(dim=1)
    assert radius.max() <= 4.0 + 1e-12
    assert radius.min() >= 4.0 / 3.0 - 1e-12                      # t >= 1.5 pi -> r >= 4/3


def test_checkerboard_points_lie_on_black_squares():
    dataset = make_dataset("checkerboard", squares=4, size=8.0)
    assert dataset.mixture is None
    x = dataset.sample(10_000, generator(0))
    assert (x.abs() <= 4.0).all()
    cells = torch.floor((x + 4.0) / 2.0).long()
    assert ((cells[:, 0] + cells[:, 1]) % 2 == 0).all()
    # Every black square gets samples (8 squares, ~1250 each).
    counts = torch.bincount(cells[:, 0] * 4 + cells[:, 1], minlength=16)
    assert (counts.reshape(4, 4)[(torch.arange(4)[:, None] + torch.arange(4)) % 2 == 0] > 1000).all()


def test_presets_and_families_are_described():
    assert set(FAMILIES) == {"gmm", "swissroll", "checkerboard", "digits", "digits_gmm", "images", "blobs"}
    assert {"ring8", "grid25"} <= set(GMM_PRESETS)
    descriptions = [f.description for f in FAMILIES.entries()] + list(GMM_PRESETS.values())
    assert all(isinstance(text, str) and text for text in descriptions)
    assert is_analytic("gmm") and not is_analytic("swissroll") and not is_analytic("checkerboard")
    assert is_analytic("digits_gmm") and not is_analytic("digits")


def test_parameters_resolve_without_torch_defaults_filled():
    assert resolve_dataset_knobs("swissroll", {}) == {"noise": 0.25}
    assert resolve_dataset_knobs("gmm", {"preset": "grid25"})["scale"] == 1.0


# --- errors ------------------------------------------------------------------------------

def test_unknown_family_lists_allowed():
    with pytest.raises(ValueError, match=r"unknown dataset family 'foo'; allowed: blobs, checkerboard, digits, digits_gmm, gmm, images, swissroll"):
        make_dataset("foo")


def test_unknown_parameter_lists_allowed():
    with pytest.raises(ValueError, match=r"unknown knob\(s\) \['bar'\] for dataset family 'gmm'; allowed: preset, scale"):
        make_dataset("gmm", preset="ring8", bar=1)
    with pytest.raises(ValueError, match=r"unknown knob\(s\) \['preset'\] for dataset family 'swissroll'; allowed: noise"):
        make_dataset("swissroll", preset="ring8")


def test_unknown_preset_lists_allowed():
    with pytest.raises(ValueError, match=r"'nope' is not allowed; allowed: ring8, grid25"):
        make_dataset("gmm", preset="nope")
    assert make_dataset("gmm").mixture.n_components == 8   # ring8 is the default preset


def test_bad_parameter_values():
    with pytest.raises(ValueError, match="scale"):
        make_dataset("gmm", preset="ring8", scale=-1.0)
    with pytest.raises(ValueError, match=r"\['radius'\] do not apply to preset 'grid25'; it takes \['scale'\]"):
        make_dataset("gmm", preset="grid25", radius=2.0)
    with pytest.raises(ValueError, match="squares"):
        make_dataset("checkerboard", squares=2.5)
    with pytest.raises(ValueError, match="noise"):
        make_dataset("swissroll", noise=-0.1)


def test_mixture_validation():
    eye = torch.eye(2, dtype=F64)
    mixture = GaussianMixture([2.0, 6.0], [[0.0, 0.0], [1.0, 1.0]], torch.stack([eye, eye]))
    torch.testing.assert_close(mixture.weights, torch.tensor([0.25, 0.75], dtype=F64))
    with pytest.raises(ValueError, match="weights"):
        GaussianMixture([1.0, 0.0], [[0.0, 0.0], [1.0, 1.0]], torch.stack([eye, eye]))
    with pytest.raises(ValueError, match="means must have shape"):
        GaussianMixture([1.0, 1.0], [[0.0, 0.0]], torch.stack([eye, eye]))
    with pytest.raises(ValueError, match="covariances must have shape"):
        GaussianMixture([1.0], [[0.0, 0.0]], eye)
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture([1.0], [[0.0, 0.0]], torch.tensor([[[1.0, 2.0], [2.0, 1.0]]]))
    with pytest.raises(ValueError, match="symmetric"):
        GaussianMixture([1.0], [[0.0, 0.0]], torch.tensor([[[1.0, 0.5], [0.0, 1.0]]]))


def test_bad_inputs_to_mixture_methods():
    mixture = mixture_of("ring8")
    x = torch.zeros(4, 2, dtype=F64)
    with pytest.raises(ValueError, match="sigma"):
        mixture.score(x, -1.0)
    with pytest.raises(ValueError, match="sigma"):
        mixture.score(x, torch.ones(3))
    with pytest.raises(ValueError, match="shape"):
        mixture.log_prob(torch.zeros(4, 3))


def test_higher_dimensional_mixture_is_consistent():
    # d = 16, K = 5: exercises non-trivial eigenbases beyond the 2-D presets.
    g = generator(11)
    d, k = 16, 5
    factors = torch.randn(k, d, d, generator=g, dtype=F64) / math.sqrt(d)
    covariances = factors @ factors.transpose(1, 2) + 0.05 * torch.eye(d, dtype=F64)
    mixture = GaussianMixture(torch.rand(k, generator=g, dtype=F64) + 0.1,
                              3 * torch.randn(k, d, generator=g, dtype=F64), covariances)
    x, _ = mixture.sample(100, g)
    sigma = torch.rand(100, generator=g, dtype=F64) * 3
    x = x + sigma[:, None] * torch.randn(x.shape, generator=g, dtype=F64)
    grad = autograd_score(mixture, x, sigma)
    torch.testing.assert_close(mixture.score(x, sigma), grad, rtol=1e-8, atol=1e-8 * grad.abs().max().item())
    torch.testing.assert_close(mixture.denoise(x, sigma), x + sigma[:, None] ** 2 * grad, rtol=1e-8, atol=1e-8)
    # log_prob at sigma = 0 agrees with torch's own multivariate normal.
    components = torch.distributions.MultivariateNormal(mixture.means, covariance_matrix=covariances)
    expected = torch.logsumexp(components.log_prob(x[:, None, :]) + mixture.weights.log(), dim=1)
    torch.testing.assert_close(mixture.log_prob(x), expected)


# --- image datasets ----------------------------------------------------------------------

def test_digits_splits_are_fixed_disjoint_and_in_range():
    train = make_dataset("digits", split="train")
    test = make_dataset("digits", split="test")
    assert train.shape == (1, 8, 8) and train.is_image and train.dim == 64
    from diffsweep.data import load_digits
    a, b = load_digits(8, "train", 0.2, 0), load_digits(8, "test", 0.2, 0)
    assert len(a) + len(b) == 1797 and len(b) == 359
    flat_a, flat_b = {tuple(r) for r in a.flatten(1).tolist()}, {tuple(r) for r in b.flatten(1).tolist()}
    assert len(flat_a & flat_b) < 5          # (a few digits are exact duplicates in sklearn's set)
    assert torch.equal(a, load_digits(8, "train", 0.2, 0))
    x = train.sample(100, generator(0))
    assert x.shape == (100, 1, 8, 8) and x.min() >= -1 and x.max() <= 1
    up = make_dataset("digits", resolution=16).sample(3, generator(0))
    assert up.shape == (3, 1, 16, 16)
    assert torch.equal(up[:, :, ::2, ::2], up[:, :, 1::2, 1::2])   # 2x nearest-neighbour upscale


def test_digits_gmm_is_an_exact_image_prior():
    dataset = make_dataset("digits_gmm", components=4)
    assert is_analytic("digits_gmm") and dataset.mixture.dim == 64 and dataset.mixture.n_components == 4
    x = dataset.sample(300, generator(0))
    assert x.shape == (300, 1, 8, 8)
    flat = x.flatten(1)
    noisy = flat + 0.5 * torch.randn(flat.shape, generator=generator(1), dtype=F64)
    noisy.requires_grad_(True)
    log_p = dataset.mixture.log_prob(noisy, 0.5).sum()
    grad, = torch.autograd.grad(log_p, noisy)
    torch.testing.assert_close(dataset.mixture.score(noisy.detach(), 0.5), grad, rtol=1e-7, atol=1e-9)


def test_image_folder_and_npz(tmp_path):
    from PIL import Image
    import numpy as np
    rng = np.random.default_rng(0)
    (tmp_path / "sub").mkdir()
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "sub" / f"{i}.png")
    folder = make_dataset("images", path=str(tmp_path), resolution=8)
    x = folder.sample(3, generator(0))
    assert folder.shape == (3, 8, 8) and x.shape == (3, 3, 8, 8) and x.min() >= -1 and x.max() <= 1
    np.savez(tmp_path / "set.npz", x=rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8))
    assert make_dataset("images", path=str(tmp_path / "set.npz"), resolution=16, limit=4).sample(
        4, generator(0)).shape == (4, 3, 16, 16)
    # Every mode, and every refusal, in test_inputs.py.
    with pytest.raises(ValueError, match=r"datasets\.faces\.knobs\.path: '.*missing' does not exist"):
        make_dataset("images", path=str(tmp_path / "missing"), where="datasets.faces.")


def test_digits_gmm_fit_is_cached_and_reused(tmp_path):
    path = tmp_path / "prior.npz"
    fitted = make_dataset("digits_gmm", components=3, fit_path=path)
    assert path.exists()
    reloaded = make_dataset("digits_gmm", components=3, fit_path=path)
    assert torch.equal(fitted.mixture.covariances, reloaded.mixture.covariances)
    x = torch.randn(4, 64, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert torch.equal(fitted.mixture.denoise(x, 0.5), reloaded.mixture.denoise(x, 0.5))


def test_blobs_are_seeded_smooth_images_in_range():
    dataset = make_dataset("blobs", count=4, resolution=16)
    pool = dataset.sample(4, torch.Generator().manual_seed(0))
    assert dataset.shape == (3, 16, 16) and dataset.is_image and not is_analytic("blobs")
    assert pool.min() >= -1 and pool.max() <= 1 and len({float(x.sum()) for x in pool}) == 4
    again = make_dataset("blobs", count=4, resolution=16).sample(4, torch.Generator().manual_seed(0))
    assert torch.equal(pool, again)
    assert not torch.equal(pool, make_dataset("blobs", count=4, resolution=16, seed=1).sample(
        4, torch.Generator().manual_seed(0)))
    # smooth: neighbouring pixels differ far less than the images span
    assert (pool[..., 1:] - pool[..., :-1]).abs().mean() < 0.1 * (pool.max() - pool.min())
    assert make_dataset("blobs", channels=1).shape == (1, 32, 32)
