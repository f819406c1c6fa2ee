"""DPM-Solver++(2M) and EDM's stochastic Heun with churn against stored reference values:
k-diffusion's `sample_dpmpp_2m` and `sample_heun` run with our oracle denoiser in float64 on
a fixed input and fixed noise (tests/fixtures/reference/make_reference.py says how and with
which versions). The same inputs through our samplers must give the same samples."""

from pathlib import Path

import numpy as np
import torch

from diffsweep import samplers
from diffsweep.data import make_dataset
from diffsweep.models import OracleDenoiser
from diffsweep.samplers import edm as edm_module

FIXTURES = Path(__file__).parent / "fixtures" / "reference"
ORACLE = OracleDenoiser(make_dataset("gmm", preset="ring8").mixture)


def load(name):
    stored = np.load(FIXTURES / f"{name}.npz")
    return {key: stored[key] for key in stored.files}


def run(family, stored, **knobs):
    spec = samplers.get(family)
    x, nfe = spec.fn(ORACLE, torch.from_numpy(stored["x"]), stored["sigmas"].tolist(), torch.Generator(),
                     **spec.resolve_knobs(knobs))
    return x.numpy(), nfe


def test_dpmpp_2m_matches_k_diffusion():
    stored = load("dpmpp_2m")
    ours, nfe = run("dpmpp_2m", stored)
    assert nfe == len(stored["sigmas"])
    np.testing.assert_allclose(ours, stored["expected"], rtol=1e-12, atol=1e-12)


def test_edm_with_churn_matches_k_diffusion(monkeypatch):
    stored = load("edm_churn")
    draws = iter(torch.from_numpy(stored["noise"]))
    monkeypatch.setattr(edm_module, "gaussian_like", lambda x, generator: next(draws))
    knobs = {name: float(stored[name]) for name in ("s_churn", "s_tmin", "s_tmax", "s_noise")}
    ours, nfe = run("edm", stored, **knobs)
    assert next(draws, None) is None, "the sampler churned at fewer steps than k-diffusion"
    assert nfe == 2 * len(stored["sigmas"]) - 1
    np.testing.assert_allclose(ours, stored["expected"], rtol=1e-12, atol=1e-12)
    without_churn, _ = run("edm", stored)
    assert np.abs(without_churn - stored["expected"]).max() > 1e-3   # the churn matters at this tolerance
