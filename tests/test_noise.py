"""Schedules, VP <-> VE conversions, training distributions and loss weights."""

import math

import numpy as np
import pytest
import torch

from diffsweep import noise


def test_vp_sigma_table_matches_the_paper_range():
    table = noise.vp_sigma_table()
    assert table.shape == (1000,)
    assert table[0] == pytest.approx(0.0100005, rel=1e-5)
    assert table[-1] == pytest.approx(157.407, rel=1e-5)
    assert np.all(np.diff(table) > 0)


def test_vp_ve_round_trip():
    abar = noise.vp_alphas_cumprod()
    sigma = noise.sigma_from_alpha_bar(abar)
    np.testing.assert_allclose(noise.alpha_bar_from_sigma(sigma), abar, rtol=1e-12)
    # x_t = sqrt(abar) x0 + sqrt(1 - abar) n  <=>  x_t / sqrt(abar) = x0 + sigma n
    np.testing.assert_allclose(np.sqrt(1 - abar) / np.sqrt(abar), sigma, rtol=1e-12)


@pytest.mark.parametrize("name", noise.schedule_names())
@pytest.mark.parametrize("steps", [2, 7, 100])
def test_schedules_decrease_between_their_endpoints(name, steps):
    sigmas = noise.make_schedule(name, steps)
    params = noise.resolve_schedule_knobs(name)
    assert sigmas.shape == (steps,) and sigmas.dtype == np.float64
    assert np.all(np.diff(sigmas) < 0)
    if "sigma_max" in params:
        assert sigmas[0] == pytest.approx(params["sigma_max"], rel=1e-9)
        # the sigmoid ramp is clipped at 1e-9, so it ends 1e-9 * (sigma_max - sigma_min) above sigma_min
        assert sigmas[-1] == pytest.approx(params["sigma_min"], rel=1e-4)


def test_vp_pretrained_with_all_steps_is_the_table():
    np.testing.assert_allclose(noise.make_schedule("vp_pretrained", 1000), noise.vp_sigma_table()[::-1])


def test_sigmoid_matches_its_closed_form():
    s_min, s_max, ts = 0.01, 100.0, 0.5
    sigmas = noise.make_schedule("sigmoid", 11, sigma_min=s_min, sigma_max=s_max, sharpness=ts)
    sig = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    for k, u in enumerate(np.linspace(0, 1, 11)):
        ramp = (sig(3 / ts) - sig(3 * u / ts)) / (sig(3 / ts) - sig(0))
        assert sigmas[k] == pytest.approx(s_min + (s_max - s_min) * min(max(ramp, 1e-9), 1.0), rel=1e-12)


def test_geometric_and_karras_closed_forms():
    np.testing.assert_allclose(noise.make_schedule("geometric", 5, sigma_min=0.01, sigma_max=100.0),
                               [100, 10, 1, 0.1, 0.01], rtol=1e-12)
    karras = noise.make_schedule("karras", 3, sigma_min=1.0, sigma_max=81.0, rho=2.0)
    np.testing.assert_allclose(karras, [81.0, 25.0, 1.0], rtol=1e-12)  # sqrt is linear: 9, 5, 1


def test_schedule_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown schedule 'nope'; allowed: geometric, karras"):
        noise.make_schedule("nope", 10)
    with pytest.raises(ValueError, match=r"unknown knob\(s\) \['rho'\] for schedule 'linear'"):
        noise.make_schedule("linear", 10, rho=3.0)
    with pytest.raises(ValueError, match="sigma_min: 5.0 is not below sigma_max 1.0; allowed: sigma_min < sigma_max"):
        noise.make_schedule("linear", 10, sigma_min=5.0, sigma_max=1.0)
    with pytest.raises(ValueError, match=r"samplers.x.schedule_knobs: vp_respaced: 20 steps exceed the chain's 10"):
        noise.check_schedule("vp_respaced", 20, noise.resolve_schedule_knobs("vp_respaced", {"timesteps": 10}),
                             where="samplers.x.")


def test_training_distributions():
    g = torch.Generator().manual_seed(0)
    ddpm = noise.sample_training_sigmas("ddpm", 20000, g)
    table = torch.from_numpy(noise.vp_sigma_table())
    assert torch.isin(ddpm, table).all()
    loguniform = noise.sample_training_sigmas("ve_loguniform", 20000, g, sigma_min=0.01, sigma_max=100.0)
    assert loguniform.min() >= 0.01 and loguniform.max() <= 100.0
    assert loguniform.log().mean().item() == pytest.approx(0.5 * (math.log(0.01) + math.log(100.0)), abs=0.05)
    edm = noise.sample_training_sigmas("edm_lognormal", 20000, g)
    assert edm.log().mean().item() == pytest.approx(-1.2, abs=0.03)
    assert edm.log().std().item() == pytest.approx(1.2, abs=0.03)
    uniform = noise.sample_training_sigmas("ve_uniform", 20000, g, sigma_min=1.0, sigma_max=3.0)
    assert uniform.mean().item() == pytest.approx(2.0, abs=0.02)


def test_eps_weight_is_the_ddpm_eps_loss():
    # x0 - D = sigma (eps_hat - eps) when D = x - sigma eps_hat, so sigma^-2 ||x0 - D||^2 = ||eps - eps_hat||^2.
    g = torch.Generator().manual_seed(1)
    x0, eps, eps_hat = (torch.randn(64, 2, generator=g, dtype=torch.float64) for _ in range(3))
    sigma = torch.rand(64, 1, generator=g, dtype=torch.float64) * 10 + 0.01
    denoised = (x0 + sigma * eps) - sigma * eps_hat
    weighted = noise.loss_weight("eps", sigma) * (x0 - denoised).pow(2)
    torch.testing.assert_close(weighted, (eps - eps_hat).pow(2))


def test_unknown_weight_and_distribution():
    with pytest.raises(ValueError, match="unknown loss weight 'l1'; allowed: edm, eps, score, x0"):
        noise.loss_weight("l1", 1.0)
    with pytest.raises(ValueError, match="unknown training sigma-distribution 'cosine'"):
        noise.resolve_training_knobs("cosine")


def test_cosine_chain_matches_its_closed_form():
    abar = noise.cosine_alphas_cumprod(1000)
    # away from the clipped end, abar_t is f(t + 1) / f(0) exactly (the product telescopes)
    f = lambda t: math.cos((t / 1000 + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for t in (0, 10, 500, 900):
        assert abar[t] == pytest.approx(f(t + 1) / f(0), rel=1e-10)
    assert np.all(np.diff(abar) < 0) and abar[-1] > 0       # betas clipped at 0.999 keep it positive
    sigmas = noise.sample_training_sigmas("ddpm_cosine", 5000, torch.Generator().manual_seed(0))
    assert torch.isin(sigmas, torch.from_numpy(noise.sigma_from_alpha_bar(abar))).all()
    # the cosine chain spends more of its steps at small noise than the linear one
    linear = noise.sample_training_sigmas("ddpm", 5000, torch.Generator().manual_seed(0))
    assert (sigmas < 1).float().mean() > (linear < 1).float().mean()
