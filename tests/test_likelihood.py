"""The probability-flow ODE likelihood of the exact denoiser matches the true log-density."""

import math

import pytest
import torch

from diffsweep import likelihood
from diffsweep.data import make_dataset
from diffsweep.models import OracleDenoiser

SIGMA_MIN, SIGMA_MAX = 1e-3, 100.0


@pytest.mark.parametrize("preset", ["ring8", "grid25"])
def test_exact_trace_recovers_the_true_log_density(preset):
    mixture = make_dataset("gmm", preset=preset).mixture
    x = mixture.sample(16, torch.Generator().manual_seed(0))[0]
    log_p, nfe = likelihood.ode_log_likelihood(OracleDenoiser(mixture), x, SIGMA_MIN, SIGMA_MAX, rtol=1e-7, atol=1e-7)
    truth = mixture.log_prob(x, SIGMA_MIN)
    # tolerance: the N(0, sigma_max^2 I) prior stands in for p_{sigma_max} (~1e-3 nats) plus solver error
    assert (log_p - truth).abs().max().item() < 0.02, (log_p - truth).abs().max()
    assert nfe > 10


def test_hutchinson_estimate_is_unbiased_around_the_exact_trace():
    mixture = make_dataset("gmm", preset="ring8").mixture
    x = mixture.sample(32, torch.Generator().manual_seed(1))[0]
    oracle = OracleDenoiser(mixture)
    exact, _ = likelihood.ode_log_likelihood(oracle, x, SIGMA_MIN, SIGMA_MAX, rtol=1e-5, atol=1e-5)
    estimate, _ = likelihood.ode_log_likelihood(oracle, x, SIGMA_MIN, SIGMA_MAX, trace="hutchinson", n_probes=8,
                                                generator=torch.Generator().manual_seed(2), rtol=1e-5, atol=1e-5)
    assert abs((estimate - exact).mean().item()) < 0.1
    assert (estimate - exact).abs().max().item() > 1e-6   # an estimate, not the exact trace


def test_bits_per_dim():
    log_p = torch.tensor([-2 * math.log(2.0)])
    assert likelihood.bits_per_dim(log_p, 2).item() == pytest.approx(1.0)


def test_unknown_trace_estimator():
    mixture = make_dataset("gmm").mixture
    with pytest.raises(ValueError, match="trace: unknown estimator 'skilling'; allowed: exact, hutchinson"):
        likelihood.ode_log_likelihood(OracleDenoiser(mixture), torch.zeros(2, 2, dtype=torch.float64), 0.01, 10.0,
                                      trace="skilling")
