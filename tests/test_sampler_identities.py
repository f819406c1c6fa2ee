"""Special-case identities: the random-walk template with each Table-1 setting equals the
classic update written in its own form, step for step, with the same noise draws (float64,
max abs difference <= 1e-6), and the other known equivalences between families."""

import pytest
import torch

from diffsweep import samplers
from diffsweep.data import make_dataset
from diffsweep.models import OracleDenoiser
from diffsweep.noise import make_schedule

GRID = make_dataset("gmm", preset="grid25")
ORACLE = OracleDenoiser(GRID.mixture)


def sample(name, x, sigmas, seed=11, **knobs):
    spec = samplers.get(name)
    return spec.fn(ORACLE, x.clone(), sigmas, torch.Generator().manual_seed(seed), **spec.resolve_knobs(knobs))


def start(scale, n=256, seed=3):
    return scale * torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def assert_same(a, b):
    (xa, nfe_a), (xb, nfe_b) = a, b
    assert nfe_a == nfe_b
    assert (xa - xb).abs().max().item() <= 1e-6


@pytest.mark.parametrize("sigma_ref", ["smallest", "largest"])
def test_ncsn_setting_is_annealed_langevin(sigma_ref):
    sigmas = make_schedule("geometric", 8, sigma_max=20.0, sigma_min=0.05).tolist()
    x = start(20.0)
    walk = sample("random_walk", x, sigmas, step_rule="ncsn", eps=2e-4, sigma_ref=sigma_ref, steps_per_level=5,
                  final_noise=True)
    langevin = sample("ncsn", x, sigmas, eps=2e-4, sigma_ref=sigma_ref, steps_per_level=5, final_denoise=False)
    assert_same(walk, langevin)
    assert_same(sample("rw_ncsn", x, sigmas, eps=2e-4, sigma_ref=sigma_ref, steps_per_level=5, final_noise=True), langevin)


@pytest.mark.parametrize("schedule", ["geometric", "karras"])
def test_ve_sde_setting_is_reverse_diffusion(schedule):
    sigmas = make_schedule(schedule, 30).tolist()
    x = start(sigmas[0])
    walk = sample("random_walk", x, sigmas, step_rule="ve_sde")
    assert_same(walk, sample("sde_euler", x, sigmas, process="ve"))
    assert_same(walk, sample("pc", x, sigmas, process="ve", predictor="reverse_diffusion", corrector="none"))
    assert_same(walk, sample("rw_ve_sde", x, sigmas))


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
@pytest.mark.parametrize("schedule", ["vp_respaced", "vp_pretrained"])
def test_ddpm_setting_is_ddpm_ancestral(variance, schedule):
    sigmas = make_schedule(schedule, 40).tolist()
    x = start((1 + sigmas[0] ** 2) ** 0.5)
    walk = sample("random_walk", x, sigmas, step_rule="ddpm", ddpm_variance=variance)
    assert_same(walk, sample("ddpm", x, sigmas, variance=variance))
    assert_same(walk, sample("rw_ddpm", x, sigmas, ddpm_variance=variance))


def test_ddim_with_eta_one_is_ddpm_with_beta_tilde():
    sigmas = make_schedule("vp_respaced", 40).tolist()
    x = start((1 + sigmas[0] ** 2) ** 0.5)
    assert_same(sample("ddim", x, sigmas, eta=1.0), sample("ddpm", x, sigmas, variance="beta_tilde"))


def test_deterministic_ddim_is_the_euler_ode_step():
    sigmas = make_schedule("vp_respaced", 25).tolist()
    x = start(sigmas[0])
    assert_same(sample("ddim", x, sigmas, eta=0.0), sample("pf_ode", x, sigmas, solver="euler"))


def test_edm_without_churn_is_heun():
    sigmas = make_schedule("karras", 20).tolist()
    x = start(sigmas[0])
    assert_same(sample("edm", x, sigmas, s_churn=0.0), sample("pf_ode", x, sigmas, solver="heun"))


def test_dpmpp_2s_without_noise_is_deterministic():
    sigmas = make_schedule("karras", 12).tolist()
    x = start(sigmas[0])
    a, _ = sample("dpmpp_2s_ancestral", x, sigmas, seed=1, eta=0.0)
    b, _ = sample("dpmpp_2s_ancestral", x, sigmas, seed=2, eta=0.0)
    assert torch.equal(a, b)
    c, _ = sample("dpmpp_2s_ancestral", x, sigmas, seed=2, eta=1.0)
    assert not torch.equal(a, c)


def test_pc_orders_differ_but_count_the_same():
    sigmas = make_schedule("geometric", 10, sigma_max=20.0).tolist()
    x = start(20.0)
    first = sample("pc", x, sigmas, order="corrector_first", corrector_steps=2)
    second = sample("pc", x, sigmas, order="predictor_first", corrector_steps=2)
    assert first[1] == 10 * 3 and second[1] == 10 + 9 * 2
    assert not torch.equal(first[0], second[0])
