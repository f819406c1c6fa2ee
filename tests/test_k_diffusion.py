"""Our samplers against k-diffusion's, on the stored reference table: k-diffusion's samplers run with
our ring8 oracle in float64 on fixed inputs and fixed noise (tests/fixtures/reference/make_k_diffusion.py
says how and with which versions). The same inputs and noise through our samplers must give the
same samples, to 1e-12."""

from pathlib import Path

import numpy as np
import pytest
import torch

from diffsweep import samplers
from diffsweep.runs import source

TABLE = Path(__file__).parent / "fixtures" / "reference" / "k_diffusion.npz"

CASES = {  # case in the table -> (our family, the knobs k-diffusion was given, in our names)
    "dpmpp_2m": ("dpmpp_2m", {}),
    "edm_churn": ("edm", {"s_churn": 20.0, "s_tmin": 0.05, "s_tmax": 10.0, "s_noise": 1.007}),
    "euler_ancestral": ("euler_ancestral", {"eta": 1.0}),
    "dpm_2_ancestral": ("dpm_2_ancestral", {"eta": 1.0}),
    "dpmpp_sde": ("dpmpp_sde", {"eta": 1.0, "r": 0.5}),
    "dpmpp_2m_sde": ("dpmpp_2m_sde", {"eta": 1.0, "solver_type": "midpoint"}),
    "dpmpp_2m_sde_heun": ("dpmpp_2m_sde", {"eta": 1.0, "solver_type": "heun"}),
    "dpmpp_3m_sde": ("dpmpp_3m_sde", {"eta": 0.8}),
    "dpm_2": ("dpm_2", {}),
    "lms": ("lms", {"solver_order": 4}),
}
NFE = {"dpmpp_2m": lambda levels: levels, "edm_churn": lambda levels: 2 * levels - 1}  # where k-diffusion's is known


@pytest.fixture(scope="module")
def table():
    stored = np.load(TABLE)
    return {key: stored[key] for key in stored.files}


def sample(oracle, table, case, stored_noise=True, **knobs):
    """Our sampler of `case` on the case's inputs, given the case's stored noise (if any and
    `stored_noise`) as its noise source; returns (samples, nfe)."""
    spec = samplers.get(CASES[case][0])
    noise = table.get(f"{case}_noise") if stored_noise else None
    draws = iter(torch.from_numpy(noise)) if noise is not None else None
    source = (lambda x: next(draws)) if draws is not None else torch.Generator().manual_seed(0)
    sigmas = table.get(f"{case}_sigmas", table["sigmas"]).tolist()
    x, nfe = spec.fn(oracle, torch.from_numpy(table["x"]), sigmas, source, **spec.resolve_knobs(knobs))
    if draws is not None:
        assert next(draws, None) is None, "the sampler drew less noise than k-diffusion was given"
    return x.numpy(), nfe, len(sigmas)


def test_the_table_holds_every_case(table):
    assert {key for key in table if not key.endswith(("_noise", "_sigmas", "_nfe"))} == \
        set(CASES) | {"dpm_adaptive", "sigmas", "x", "made_with"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_matches_k_diffusion(case, table, oracle):
    ours, nfe, levels = sample(oracle, table, case, **CASES[case][1])
    if case in NFE:
        assert nfe == NFE[case](levels)
    np.testing.assert_allclose(ours, table[case], rtol=1e-12, atol=1e-12)


def test_the_churn_matters_at_this_tolerance(table, oracle):
    without_churn, _, _ = sample(oracle, table, "edm_churn", stored_noise=False)
    assert np.abs(without_churn - table["edm_churn"]).max() > 1e-3


def test_adaptive_dpm_solver_matches_k_diffusion(table, oracle):
    counter = source.CountingDenoiser(oracle)
    spec = samplers.get("dpm_adaptive")
    ours, nfe = spec.fn(counter, torch.from_numpy(table["x"]), table["sigmas"].tolist(), torch.Generator(),
                        **spec.resolve_knobs({"solver_order": 3, "rtol": 2.0 ** -10, "atol": 2.0 ** -10,
                                              "final_denoise": False}))
    np.testing.assert_allclose(ours.numpy(), table["dpm_adaptive"], rtol=1e-12, atol=1e-12)
    # fewer calls than k-diffusion: the evaluation at the current point is reused after a rejection
    assert nfe == counter.calls <= int(table["dpm_adaptive_nfe"])
