"""The faithful knobs of config/paper.yaml against direct transcriptions of the reference code
(wustl-cig/randomwalk_diffusion; file:line cited per test, docs/paper.md has the table).

Reference sigmas are in score_sde's [0, 1] data units for VE; ours are twice them (docs/pretrained.md).
"""

import numpy as np
import pytest
import torch

from diffsweep import noise
from diffsweep.restoration.operators import MatrixOperator
from diffsweep.restoration.restorers import rw_conditional
from diffsweep.samplers.random_walk import random_walk

VE_MIN, VE_MAX = 0.01, 348.0          # reference configs/ve_*.yaml model.sigma_min / sigma_max


def reference_ve_steps(N, dtype=torch.float32):
    """sde/__init__.py:6-11 and vesde.py:19-20 (VESDE, only its .pyc is in the repo),
    ve_langevin.py:64,79-85: the discrete table level and the continuous time of each step.
    The reference computes in float32; float64 checks the walks' logic to rounding."""
    discrete_sigmas = torch.exp(torch.linspace(np.log(VE_MIN), np.log(VE_MAX), N, dtype=dtype))
    timesteps = torch.linspace(1, 1e-5, N, dtype=dtype)
    time = (timesteps * (N - 1) / 1).long()
    continuous = VE_MIN * (VE_MAX / VE_MIN) ** timesteps          # marginal_prob std, vesde.py:38
    return discrete_sigmas[time].double(), continuous.double()


@pytest.mark.parametrize("N", [2, 5, 100, 1000])
def test_ve_discrete_schedule_is_the_reference_table_sequence(N):
    discrete, continuous = reference_ve_steps(N)
    ours = noise.make_schedule("ve_discrete", N)
    np.testing.assert_allclose(ours, 2 * discrete.numpy(), rtol=2e-6)      # float32 table in the reference
    np.testing.assert_allclose(noise.ve_continuous_levels(ours), 2 * continuous.numpy(), rtol=2e-6)
    assert not np.allclose(noise.ve_continuous_levels(ours)[1:], ours[1:], rtol=1e-6, atol=0)


def sigmoid_schedule(t, smallest_noise_level, largest_noise_level, start=-3, end=3, tau=1.0, clip_min=1e-9):
    """util/tweedie_utility.py:612-621, verbatim."""
    def sigmoid(x):
        return 1 / (1 + np.exp(-x))
    v_start = sigmoid(start / tau)
    v_end = sigmoid(end / tau)
    output = sigmoid((t * (end - start) + start) / tau)
    output = (v_end - output) / (v_end - v_start)
    return np.clip(output, clip_min, 1.) * (largest_noise_level - smallest_noise_level) + smallest_noise_level


def reference_vp_table():
    """util/tweedie_utility.py:647-651,678: the denoiser sigma table of the linear-beta chain."""
    beta_array = np.linspace(0.0001, 0.02, 1000, dtype=np.float64)
    alphas_array = np.cumprod(1 - beta_array, axis=0)
    return np.sqrt((1 - alphas_array) / alphas_array)


@pytest.mark.parametrize("sharpness", [0.3, 0.5])
@pytest.mark.parametrize("K", [10, 100, 750])
def test_sigmoid_schedule_is_the_reference_ramp(sharpness, K):
    """tweedie_utility.py:753-763 (start 0, end 3, tau 0.3; 0.5 in earlier code), before its
    snapping to a 10^6-point table (docs/paper.md bounds that), largest first as the loop walks it."""
    table = reference_vp_table()
    ramp = sigmoid_schedule(np.linspace(0, 1, K), table[0], table[-1], start=0, end=3, tau=sharpness)
    np.testing.assert_allclose(noise.make_schedule("sigmoid", K, sharpness=sharpness), ramp, rtol=1e-12)


def test_vp_pretrained_1000_is_the_reference_denoiser_schedule():
    """tweedie_utility.py:658-660,676-679,817-822: 'denoiser' with num_iters 1000 is the table itself."""
    np.testing.assert_allclose(noise.make_schedule("vp_pretrained", 1000), reference_vp_table()[::-1], rtol=1e-12)


def gaussian_denoiser(mean, std):
    """Exact denoiser of N(mean, std^2 I) data."""
    return lambda x, sigma: mean + std ** 2 / (std ** 2 + sigma ** 2) * (x - mean)


def noise_draws(shape, count, seed):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=generator, dtype=torch.float64) for _ in range(count)]


def reference_ve_walk(x, score_fn, eps, temperature, N, draws, measurement=None, operator=None, eta=None):
    """ve_langevin.py:64-134 transcribed (sigmas in our units): tau from the table level, the score
    at the continuous level, clamp at eta^2 when conditional, temperature ramp, no last-step noise,
    the likelihood gradient 0.5 grad ||y - A x||^2 (condition_methods.py:67-77) at the current iterate."""
    discrete, continuous = reference_ve_steps(N, torch.float64)
    discrete, continuous = 2 * discrete, 2 * continuous
    extended_temperature_list = np.linspace(temperature, 1., N, dtype=np.float64).tolist()
    img = x.clone()
    for loop_index in range(N):
        img = img.requires_grad_()
        noise_sigma_square = torch.square(discrete[loop_index])
        with torch.no_grad():
            score = score_fn(img, continuous[loop_index].item())
        langevin_step_size = noise_sigma_square * eps
        if measurement is not None and langevin_step_size > eta ** 2:
            langevin_step_size = torch.tensor(eta ** 2, dtype=torch.float64)
        coefficient = torch.sqrt(2 * langevin_step_size * extended_temperature_list[loop_index])
        if loop_index != N - 1:
            img_score = img + langevin_step_size * score + coefficient * draws[loop_index]
        else:
            img_score = img + langevin_step_size * score
        if measurement is not None:
            norm2 = torch.linalg.norm(measurement - operator.forward(img)) ** 2
            norm_grad = torch.autograd.grad(outputs=norm2, inputs=img)[0] * 0.5
            img = img_score - langevin_step_size / eta ** 2 * norm_grad
        else:
            img = img_score
        img = img.detach()
    return img


def test_random_walk_with_ve_continuous_network_sigma_is_the_reference_ve_walk():
    denoise = gaussian_denoiser(0.3, 0.5)

    def score_fn(x, sigma):
        return (denoise(x, sigma) - x) / sigma ** 2

    N, x = 12, torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    draws = noise_draws(x.shape, N - 1, seed=7)
    expected = reference_ve_walk(x, score_fn, eps=0.16, temperature=0.4, N=N, draws=draws)
    sigmas = noise.make_schedule("ve_discrete", N)
    knobs = dict(step_rule="reference", eps=0.16, T0=0.4, sigma_ref="smallest", variance="beta",
                 steps_per_level=1, final_noise=False)
    ours, nfe = random_walk(denoise, x, sigmas, torch.Generator().manual_seed(7), ve_continuous_sigma="network",
                            **knobs)
    assert nfe == N
    torch.testing.assert_close(ours, expected, rtol=1e-9, atol=1e-9)
    for other in ("none", "network_and_step"):
        differs, _ = random_walk(denoise, x, sigmas, torch.Generator().manual_seed(7), ve_continuous_sigma=other,
                                 **knobs)
        assert (differs - expected).abs().max() > 1e-9


def test_rw_conditional_with_ve_continuous_network_sigma_is_the_reference_ve_restoration():
    denoise = gaussian_denoiser(0.0, 1.0)

    def score_fn(x, sigma):
        return (denoise(x, sigma) - x) / sigma ** 2

    generator = torch.Generator().manual_seed(3)
    matrix = torch.randn(2, 4, generator=generator, dtype=torch.float64)
    # ||A|| = 1, as the reference code's masks: there our clamp is its tau <= eta^2 (for ||A|| > 1 it is scaled)
    operator = MatrixOperator(matrix / torch.linalg.matrix_norm(matrix, ord=2))
    y = torch.randn(3, 2, generator=generator, dtype=torch.float64)
    x = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    N, eta = 12, 0.4            # VE inpainting: eta 0.2 on [0, 1] data is 0.4 here
    draws = noise_draws(x.shape, N - 1, seed=5)
    expected = reference_ve_walk(x, score_fn, eps=0.29487, temperature=0.0, N=N, draws=draws,
                                 measurement=y, operator=operator, eta=eta)
    ours, nfe = rw_conditional(denoise, x, noise.make_schedule("ve_discrete", N), torch.Generator().manual_seed(5),
                               operator, y, eta, eps=0.29487, T0=0.0, clamp_tau=True, ve_continuous_sigma="network",
                               steps_per_level=1, final_noise=False)
    assert nfe == N
    torch.testing.assert_close(ours, expected, rtol=1e-9, atol=1e-9)


def reference_snapped_sigmoid(K, sharpness, points):
    """tweedie_utility.py:745-815: the ramp on a `points`-entry interpolation of the VP table,
    smallest first; each level, scanning the grid onwards from the previous match, takes the first
    entry of least distance (np.isclose with atol 100 admits every entry at these sigmas)."""
    table = reference_vp_table()
    fine = np.interp(np.linspace(0, len(table) - 1, points), np.arange(len(table)), table)
    ramp = sigmoid_schedule(np.linspace(0, 1, K), fine[0], fine[-1], start=0, end=3, tau=sharpness)[::-1]
    chosen, start = [], 0
    for value in ramp:
        best, best_distance = start, np.inf
        for j in range(start, points):
            distance = abs(value - fine[j])
            if not np.isclose(value, fine[j], atol=100):
                continue
            if distance >= best_distance:
                break
            best, best_distance = j, distance
        chosen.append(best)
        start = best
    return fine[chosen][::-1]                      # largest first, as the walk runs


@pytest.mark.parametrize("sharpness, K, points", [(0.3, 100, 5000), (0.5, 100, 3000), (0.3, 20, 2000)])
def test_snapped_sigmoid_is_the_reference_walk_on_its_grid(sharpness, K, points):
    ours = noise.make_schedule("sigmoid", K, sharpness=sharpness, snap=points)
    np.testing.assert_array_equal(ours, reference_snapped_sigmoid(K, sharpness, points))


def test_snapping_to_the_reference_grid_moves_the_sigmoid_by_at_most_2e_4():
    """The reference's grid has 10^6 points: every snapped level is a grid entry, within 2e-4 of the ramp."""
    table = reference_vp_table()
    fine = np.interp(np.linspace(0, 999, 10 ** 6), np.arange(1000), table)
    snapped = noise.make_schedule("sigmoid", 100, sharpness=0.3, snap=10 ** 6)
    ramp = noise.make_schedule("sigmoid", 100, sharpness=0.3)
    assert 1e-5 < np.abs(snapped / ramp - 1).max() < 2.5e-4
    nearest = [fine[np.abs(fine - level).argmin()] for level in ramp[::10]]          # grid entries, the nearest
    np.testing.assert_array_equal(snapped[::10], nearest)
    assert np.all(np.diff(noise.make_schedule("sigmoid", 750, sharpness=0.3, snap=10 ** 6)) < 0)   # K = 750: distinct


def test_a_grid_too_coarse_for_the_steps_is_refused_at_parse_time():
    with pytest.raises(ValueError, match="samplers.x.schedule_knobs: schedule 'sigmoid' .* is not strictly decreasing"):
        noise.check_schedule("sigmoid", 200, noise.resolve_schedule_knobs("sigmoid", {"snap": 5000}), where="samplers.x.")
