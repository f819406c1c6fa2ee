"""Special-case identities: the random-walk template with each Table-1 setting equals the
classic update written out here from its paper, step for step, with the same noise draws
(float64, max abs difference <= 1e-6); the classic updates use the mixture's exact score, not
the denoiser. Then the other known equivalences between families."""

import math

import pytest
import torch

from diffsweep import samplers
from diffsweep.data import make_dataset
from diffsweep.noise import make_schedule

GRID = make_dataset("gmm", preset="grid25")
score = GRID.mixture.score


@pytest.fixture(scope="module")
def grid25_oracle(oracle_of):
    return oracle_of("grid25")


def sample(denoise, name, x, sigmas, seed=11, **knobs):
    spec = samplers.get(name)
    return spec.fn(denoise, x.clone(), sigmas, torch.Generator().manual_seed(seed), **spec.resolve_knobs(knobs))


def start(scale, n=64, seed=3):
    return scale * torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def assert_same(a, b):
    (xa, nfe_a), (xb, nfe_b) = a, b
    assert nfe_a == nfe_b
    assert (xa - xb).abs().max().item() <= 1e-6


def normal(x, generator):
    return torch.randn(x.shape, generator=generator, dtype=torch.float64)


def annealed_langevin(x, sigmas, eps, sigma_ref, steps_per_level, seed=11):
    """Song & Ermon 2019, Algorithm 1: alpha_i = eps sigma_i^2 / sigma_ref^2, then T steps of
    x <- x + alpha_i / 2 * score(x, sigma_i) + sqrt(alpha_i) z at every level."""
    generator = torch.Generator().manual_seed(seed)
    for sigma in sigmas:
        alpha = eps * sigma ** 2 / sigma_ref ** 2
        for _ in range(steps_per_level):
            x = x + alpha / 2 * score(x, sigma) + math.sqrt(alpha) * normal(x, generator)
    return x, len(sigmas) * steps_per_level


def ve_reverse_sde(x, sigmas, seed=11):
    """Song et al. 2021, VE reverse-time SDE, Euler-Maruyama (reverse diffusion) from sigma_i to
    sigma_{i+1}: x <- x + (sigma_i^2 - sigma_{i+1}^2) score + sqrt(sigma_i^2 - sigma_{i+1}^2) z,
    the last step to sigma = 0 without its noise (score_sde returns the mean)."""
    generator = torch.Generator().manual_seed(seed)
    following = sigmas[1:] + [0.0]
    for i, (sigma, sigma_next) in enumerate(zip(sigmas, following)):
        x = x + (sigma ** 2 - sigma_next ** 2) * score(x, sigma)
        if i < len(sigmas) - 1:
            x = x + math.sqrt(sigma ** 2 - sigma_next ** 2) * normal(x, generator)
    return x, len(sigmas)


def ddpm_ancestral(x, sigmas, variance, seed=11):
    """Ho et al. 2020, Algorithm 2 on the chain abar_t = 1 / (1 + sigma_t^2), in VP coordinates
    z = sqrt(abar) x: z <- (z - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + s_t n, with
    eps = -sqrt(1 - abar_t) grad_z log p(z) and s_t^2 = beta_t or beta-tilde_t; no noise at t = 1."""
    generator = torch.Generator().manual_seed(seed)
    abar = [1 / (1 + s ** 2) for s in sigmas] + [1.0]
    z = math.sqrt(abar[0]) * x
    for t, sigma in enumerate(sigmas):
        score_z = score(z / math.sqrt(abar[t]), sigma) / math.sqrt(abar[t])
        eps = -math.sqrt(1 - abar[t]) * score_z
        alpha = abar[t] / abar[t + 1]
        beta = 1 - alpha
        z = (z - beta / math.sqrt(1 - abar[t]) * eps) / math.sqrt(alpha)
        if t < len(sigmas) - 1:
            s2 = beta if variance == "beta" else beta * (1 - abar[t + 1]) / (1 - abar[t])
            z = z + math.sqrt(s2) * normal(z, generator)
    return z, len(sigmas)   # abar = 1 at the end: z = x


@pytest.mark.parametrize("sigma_ref", ["smallest", "largest"])
def test_ncsn_setting_is_annealed_langevin(sigma_ref, grid25_oracle):
    sigmas = make_schedule("geometric", 8, sigma_max=20.0, sigma_min=0.05).tolist()
    x = start(20.0)
    classic = annealed_langevin(x, sigmas, eps=2e-4, sigma_ref=min(sigmas) if sigma_ref == "smallest" else max(sigmas),
                                steps_per_level=5)
    knobs = dict(eps=2e-4, sigma_ref=sigma_ref, steps_per_level=5, final_noise=True)
    assert_same(sample(grid25_oracle, "random_walk", x, sigmas, step_rule="ncsn", **knobs), classic)
    assert_same(sample(grid25_oracle, "rw_ncsn", x, sigmas, **knobs), classic)
    assert_same(sample(grid25_oracle, "ncsn", x, sigmas, eps=2e-4, sigma_ref=sigma_ref, steps_per_level=5, final_denoise=False),
                classic)


@pytest.mark.parametrize("schedule", ["geometric", "karras"])
def test_ve_sde_setting_is_reverse_diffusion(schedule, grid25_oracle):
    sigmas = make_schedule(schedule, 30).tolist()
    x = start(sigmas[0])
    classic = ve_reverse_sde(x, sigmas)
    assert_same(sample(grid25_oracle, "random_walk", x, sigmas, step_rule="ve_sde"), classic)
    assert_same(sample(grid25_oracle, "rw_ve_sde", x, sigmas), classic)
    assert_same(sample(grid25_oracle, "sde_euler", x, sigmas, process="ve"), classic)
    assert_same(sample(grid25_oracle, "pc", x, sigmas, process="ve", predictor="reverse_diffusion", corrector="none"), classic)


@pytest.mark.parametrize("variance", ["beta", "beta_tilde"])
@pytest.mark.parametrize("schedule", ["vp_respaced", "vp_pretrained"])
def test_ddpm_setting_is_ddpm_ancestral(variance, schedule, grid25_oracle):
    sigmas = make_schedule(schedule, 40).tolist()
    x = start((1 + sigmas[0] ** 2) ** 0.5)
    classic = ddpm_ancestral(x, sigmas, variance)
    assert_same(sample(grid25_oracle, "random_walk", x, sigmas, step_rule="ddpm", variance=variance), classic)
    assert_same(sample(grid25_oracle, "rw_ddpm", x, sigmas, variance=variance), classic)
    assert_same(sample(grid25_oracle, "ddpm", x, sigmas, variance=variance), classic)


def test_ddim_with_eta_one_is_ddpm_with_beta_tilde(grid25_oracle):
    sigmas = make_schedule("vp_respaced", 40).tolist()
    x = start((1 + sigmas[0] ** 2) ** 0.5)
    assert_same(sample(grid25_oracle, "ddim", x, sigmas, eta=1.0), sample(grid25_oracle, "ddpm", x, sigmas, variance="beta_tilde"))


def test_deterministic_ddim_is_the_euler_ode_step(grid25_oracle):
    sigmas = make_schedule("vp_respaced", 25).tolist()
    x = start(sigmas[0])
    assert_same(sample(grid25_oracle, "ddim", x, sigmas, eta=0.0), sample(grid25_oracle, "pf_ode", x, sigmas, solver_type="euler"))


def test_edm_without_churn_is_heun(grid25_oracle):
    sigmas = make_schedule("karras", 20).tolist()
    x = start(sigmas[0])
    assert_same(sample(grid25_oracle, "edm", x, sigmas, s_churn=0.0), sample(grid25_oracle, "pf_ode", x, sigmas, solver_type="heun"))


def test_dpmpp_2s_without_noise_is_deterministic(grid25_oracle):
    sigmas = make_schedule("karras", 12).tolist()
    x = start(sigmas[0])
    a, _ = sample(grid25_oracle, "dpmpp_2s_ancestral", x, sigmas, seed=1, eta=0.0)
    b, _ = sample(grid25_oracle, "dpmpp_2s_ancestral", x, sigmas, seed=2, eta=0.0)
    assert torch.equal(a, b)
    c, _ = sample(grid25_oracle, "dpmpp_2s_ancestral", x, sigmas, seed=2, eta=1.0)
    assert not torch.equal(a, c)


def test_pc_orders_differ_but_count_the_same(grid25_oracle):
    sigmas = make_schedule("geometric", 10, sigma_max=20.0).tolist()
    x = start(20.0)
    first = sample(grid25_oracle, "pc", x, sigmas, sequence="corrector_first", steps_per_level=2)
    second = sample(grid25_oracle, "pc", x, sigmas, sequence="predictor_first", steps_per_level=2)
    assert first[1] == 10 * 3 and second[1] == 10 + 9 * 2
    assert not torch.equal(first[0], second[0])
