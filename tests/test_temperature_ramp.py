"""The random walk's temperature ramp: `log_sigma` (linear in log sigma_k) is `index` (linear in
k) exactly where log sigma is linear in k, on a geometric schedule, and differs elsewhere."""

import pytest
import torch

from diffsweep import samplers
from diffsweep.noise import make_schedule
from diffsweep.samplers.random_walk import ramped_temperatures



def walk(denoise, sigmas, **knobs):
    spec = samplers.get("random_walk")
    x = 3.0 * torch.randn(64, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    return spec.fn(denoise, x, sigmas, torch.Generator().manual_seed(2), **spec.resolve_knobs(knobs))[0]


def test_log_sigma_ramp_is_the_index_ramp_on_a_geometric_schedule(oracle):
    sigmas = make_schedule("geometric", 30, sigma_min=0.01, sigma_max=20.0)
    index, log_sigma = ramped_temperatures("index", 0.1, sigmas), ramped_temperatures("log_sigma", 0.1, sigmas)
    assert log_sigma == pytest.approx(index, abs=1e-12)
    assert (log_sigma[0], log_sigma[-1]) == pytest.approx((0.1, 1.0))
    a, b = walk(oracle, sigmas, eps=0.7, T0=0.1, ramp="index"), walk(oracle, sigmas, eps=0.7, T0=0.1, ramp="log_sigma")
    assert (a - b).abs().max().item() <= 1e-9


def test_log_sigma_ramp_differs_on_the_sigmoid_schedule(oracle):
    sigmas = make_schedule("sigmoid", 30)
    index, log_sigma = ramped_temperatures("index", 0.1, sigmas), ramped_temperatures("log_sigma", 0.1, sigmas)
    assert (index[0], index[-1]) == pytest.approx((log_sigma[0], log_sigma[-1]))
    assert max(abs(i - j) for i, j in zip(index, log_sigma)) > 0.05
    assert (walk(oracle, sigmas, eps=0.7, T0=0.1, ramp="index") - walk(oracle, sigmas, eps=0.7, T0=0.1, ramp="log_sigma")).abs().max() > 1e-3


def test_default_ramp_is_the_index_ramp():
    assert samplers.get("random_walk").resolve_knobs({})["ramp"] == "index"
    with pytest.raises(ValueError, match="ramp"):
        samplers.get("random_walk").resolve_knobs({"ramp": "linear"})
