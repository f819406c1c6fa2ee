"""The samplers ported from k-diffusion, diffusers and the literature, on the exact oracle in float64:
their identities with the older families and equality with diffusers' scheduler of the same name
driven by the same denoiser (diffusers is used here only, never at run time). Their orders:
test_orders.py; equality with k-diffusion's stored results: test_k_diffusion.py."""

import math

import numpy as np
import pytest
import torch

from diffsweep import samplers
from diffsweep.noise import make_schedule

# diffusers' schedulers call numpy on torch tensors; numpy 2 warns about it on every step
pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")


def sample(denoise, name, x, sigmas, seed=0, **knobs):
    spec = samplers.get(name)
    return spec.fn(denoise, x.clone(), sigmas, torch.Generator().manual_seed(seed), **spec.resolve_knobs(knobs))


def start(scale, n=32, seed=3):
    return scale * torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def karras(steps):
    return make_schedule("karras", steps).tolist()


NEW_FAMILIES = ["euler_ancestral", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_sde", "dpmpp_2m_sde", "dpmpp_3m_sde",
                "dpm_adaptive", "unipc", "deis", "ipndm"]


@pytest.mark.parametrize("family", NEW_FAMILIES)
def test_float32_in_float32_out(family):
    # standard normal data: D(x, sigma) = x / (1 + sigma^2); the samplers' scalars must not promote
    spec, x = samplers.get(family), 80.0 * torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    out, _ = spec.fn(lambda x, sigma: x / (1 + sigma ** 2), x, karras(6), torch.Generator().manual_seed(1),
                     **spec.resolve_knobs({}))
    assert out.dtype == torch.float32 and out.shape == x.shape and torch.isfinite(out).all()


# --- identities ----------------------------------------------------------------------------------

def assert_same(a, b, tol=1e-12):
    (xa, nfe_a), (xb, nfe_b) = a, b
    assert nfe_a == nfe_b
    assert (xa - xb).abs().max().item() <= tol * max(1.0, xb.abs().max().item())


IDENTITIES = [  # (family, knobs, equal to family, knobs)
    ("euler_ancestral", {"eta": 0.0}, "pf_ode", {"solver_type": "euler"}),
    ("dpm_2_ancestral", {"eta": 0.0}, "dpm_2", {}),
    ("dpmpp_2m_sde", {"eta": 0.0}, "dpmpp_2m", {}),
    ("dpmpp_sde", {"eta": 0.0}, "dpmpp_2s_ancestral", {"eta": 0.0}),
    ("lms", {"solver_order": 1}, "pf_ode", {"solver_type": "euler"}),
    ("unipc", {"solver_order": 1, "use_corrector": False}, "ddim", {"eta": 0.0}),
    ("unipc", {"solver_order": 1, "use_corrector": False, "solver_type": "bh1"}, "ddim", {"eta": 0.0}),
    ("deis", {"solver_order": 1}, "ddim", {"eta": 0.0}),
    ("ipndm", {"solver_order": 1}, "pf_ode", {"solver_type": "euler"}),
]


@pytest.mark.parametrize("family, knobs, other, other_knobs", IDENTITIES)
def test_special_cases_equal_older_families(family, knobs, other, other_knobs, oracle):
    sigmas, x = karras(12), start(80.0)
    assert_same(sample(oracle, family, x, sigmas, **knobs), sample(oracle, other, x, sigmas, **other_knobs))


@pytest.mark.parametrize("family", ["euler_ancestral", "dpm_2_ancestral", "dpmpp_sde", "dpmpp_2m_sde",
                                    "dpmpp_3m_sde"])
def test_stochastic_samplers_draw_only_from_the_generator(family, oracle):
    sigmas, x = karras(8), start(80.0)
    a, b, c = (sample(oracle, family, x, sigmas, seed=seed)[0] for seed in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_unipc_variants_and_corrector_change_the_path(oracle):
    sigmas, x = karras(10), start(80.0)
    paths = [sample(oracle, "unipc", x, sigmas, solver_order=3, solver_type=solver_type, use_corrector=use_corrector)[0]
             for solver_type in ("bh1", "bh2") for use_corrector in (True, False)]
    for i in range(len(paths)):
        for j in range(i):
            assert (paths[i] - paths[j]).abs().max() > 1e-8


# --- diffusers -----------------------------------------------------------------------------------

class Float64:
    """Stands in for a module's `torch` or `numpy`: float32 means float64, so a scheduler's
    internal upcasts and schedule arrays keep double precision."""

    def __init__(self, module):
        self._module = module

    def __getattr__(self, name):
        return getattr(self._module, name)

    @property
    def float32(self):
        return self._module.float64


def diffusers_scheduler(monkeypatch, name, **config):
    import importlib

    import diffusers
    cls = getattr(diffusers, name)
    module = importlib.import_module(cls.__module__)
    monkeypatch.setattr(module, "torch", Float64(torch))
    monkeypatch.setattr(module, "np", Float64(np))
    return cls(**config)


def recorder(denoise, calls):
    def recorded(x, sigma):
        calls.append(x.clone())
        return denoise(x, sigma)
    return recorded


def drive_ve(denoise, scheduler, x, input_sigma, **step_knobs):
    """A k-diffusion-style scheduler (state in VE coordinates, epsilon prediction) on the oracle."""
    scheduler.set_begin_index(0)
    for t in scheduler.timesteps:
        scheduler.scale_model_input(x, t)       # sets the step index
        sigma = float(input_sigma(scheduler))
        eps = (x - denoise(x, sigma)) / sigma
        x = scheduler.step(eps, t, x, **step_knobs).prev_sample
    return x


def with_sigmas(scheduler, sigmas, steps):
    scheduler.set_timesteps(steps)
    scheduler.sigmas = torch.tensor(sigmas, dtype=torch.float64)
    return scheduler


def test_euler_ancestral_equals_diffusers(monkeypatch, oracle):
    sigmas, x = karras(10), start(80.0)
    scheduler = with_sigmas(diffusers_scheduler(monkeypatch, "EulerAncestralDiscreteScheduler"), sigmas + [0.0], 10)
    theirs = drive_ve(oracle, scheduler, x, lambda s: s.sigmas[s.step_index],
                      generator=torch.Generator().manual_seed(5))
    ours, _ = sample(oracle, "euler_ancestral", x, sigmas, seed=5)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_lms_equals_diffusers(monkeypatch, order, oracle):
    sigmas, x = karras(10), start(80.0)
    scheduler = with_sigmas(diffusers_scheduler(monkeypatch, "LMSDiscreteScheduler"), sigmas + [0.0], 10)
    theirs = drive_ve(oracle, scheduler, x, lambda s: s.sigmas[s.step_index], order=order)
    ours, _ = sample(oracle, "lms", x, sigmas, solver_order=order)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def karras_override(monkeypatch, scheduler, sigmas):
    """diffusers builds the interleaved DPM-2 arrays from its Karras sigmas: make them ours."""
    monkeypatch.setattr(scheduler, "_convert_to_karras", lambda in_sigmas, num_inference_steps: np.array(sigmas))
    scheduler.set_timesteps(len(sigmas))
    return scheduler


def test_dpm_2_equals_diffusers(monkeypatch, oracle):
    sigmas, x = karras(10), start(80.0)
    scheduler = diffusers_scheduler(monkeypatch, "KDPM2DiscreteScheduler", use_karras_sigmas=True)
    karras_override(monkeypatch, scheduler, sigmas)
    theirs = drive_ve(oracle, scheduler, x, lambda s: s.sigmas[s.step_index] if s.state_in_first_order
                      else s.sigmas_interpol[s.step_index])
    ours, nfe = sample(oracle, "dpm_2", x, sigmas)
    assert nfe == len(scheduler.timesteps) == 2 * len(sigmas) - 1
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_dpm_2_ancestral_equals_diffusers(monkeypatch, oracle):
    sigmas, x = karras(10), start(80.0)
    scheduler = diffusers_scheduler(monkeypatch, "KDPM2AncestralDiscreteScheduler", use_karras_sigmas=True)
    karras_override(monkeypatch, scheduler, sigmas)
    theirs = drive_ve(oracle, scheduler, x, lambda s: s.sigmas[s.step_index] if s.state_in_first_order
                      else s.sigmas_interpol[s.step_index - 1],
                      generator=torch.Generator().manual_seed(5))
    ours, _ = sample(oracle, "dpm_2_ancestral", x, sigmas, seed=5)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def drive_vp(denoise, scheduler, x, sigmas, noises=None):
    """A multistep scheduler (state z = x / sqrt(1 + sigma^2), data prediction) over `sigmas`;
    returns the VE states at every level, the last included."""
    scheduler.set_timesteps(len(sigmas) - 1)
    scheduler.sigmas = torch.tensor(sigmas, dtype=torch.float64)
    scheduler.set_begin_index(0)
    z, states = x / math.sqrt(1 + sigmas[0] ** 2), []
    for i, t in enumerate(scheduler.timesteps):
        state = z * math.sqrt(1 + sigmas[i] ** 2)
        states.append(state)
        extra = {"variance_noise": noises[i]} if noises is not None else {}
        z = scheduler.step(denoise(state, sigmas[i]), t, z, **extra).prev_sample
    return states + [z * math.sqrt(1 + sigmas[-1] ** 2)]


@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_dpmpp_2m_sde_equals_diffusers(monkeypatch, solver_type, eta, oracle):
    sigmas, x = karras(10), start(80.0)
    generator = torch.Generator().manual_seed(5)
    noises = [torch.randn(x.shape, generator=generator, dtype=torch.float64) * eta for _ in sigmas]
    algorithm = "sde-dpmsolver++" if eta else "dpmsolver++"
    scheduler = diffusers_scheduler(monkeypatch, "DPMSolverMultistepScheduler", algorithm_type=algorithm,
                                    solver_order=2, solver_type=solver_type, prediction_type="sample",
                                    lower_order_final=False, final_sigmas_type="zero")
    theirs = drive_vp(oracle, scheduler, x, sigmas + [0.0], noises)[-1]
    ours, _ = sample(oracle, "dpmpp_2m_sde", x, sigmas, seed=5, eta=eta, solver_type=solver_type)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("levels", [10, 16])
@pytest.mark.parametrize("lower_order_final", [False, True])
def test_dpmpp_3m_sde_without_noise_equals_diffusers_third_order(monkeypatch, levels, lower_order_final, oracle):
    # (3M) warms up with the heun-type second-order step, and so does diffusers' lower_order_final
    # (fewer than 15 levels only). diffusers' third-order sde-dpmsolver++ step weighs the second
    # difference by -(phi_3 + 1) where k-diffusion has -phi_3 (and the exact integral -2 phi_3:
    # dpm_sde.py): the stochastic path is compared with k-diffusion below.
    sigmas, x = karras(levels), start(80.0)
    scheduler = diffusers_scheduler(monkeypatch, "DPMSolverMultistepScheduler", algorithm_type="dpmsolver++",
                                    solver_order=3, solver_type="heun", prediction_type="sample",
                                    lower_order_final=lower_order_final, final_sigmas_type="zero")
    theirs = drive_vp(oracle, scheduler, x, sigmas + [0.0])[-1]
    ours, _ = sample(oracle, "dpmpp_3m_sde", x, sigmas, eta=0.0, lower_order_final=lower_order_final)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_ipndm_equals_diffusers(monkeypatch, oracle):
    sigmas, x = karras(10), start(80.0)
    scheduler = diffusers_scheduler(monkeypatch, "IPNDMScheduler")
    scheduler.set_timesteps(len(sigmas))
    levels = torch.tensor(sigmas + [0.0], dtype=torch.float64)
    scheduler.alphas, scheduler.betas = 1 / (1 + levels ** 2).sqrt(), levels / (1 + levels ** 2).sqrt()
    scheduler.set_begin_index(0)
    z = x * scheduler.alphas[0]
    for i, t in enumerate(scheduler.timesteps):
        alpha, beta, sigma = scheduler.alphas[i], scheduler.betas[i], sigmas[i]
        state = z / alpha
        denoised = oracle(state, sigma)
        v = alpha * (state - denoised) / sigma - beta * denoised       # v-prediction
        z = scheduler.step(v, t, z).prev_sample
    ours, _ = sample(oracle, "ipndm", x, sigmas)
    torch.testing.assert_close(ours, z, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("corrector", [True, False])
def test_unipc_equals_diffusers(monkeypatch, order, variant, corrector, oracle):
    # diffusers cannot step to sigma = 0 at order > 1 (log 0 in its differences); every level
    # before it is compared, and the step to 0 returns D at the last one in both.
    sigmas, x = karras(10), start(80.0)
    scheduler = diffusers_scheduler(monkeypatch, "UniPCMultistepScheduler", solver_order=order, solver_type=variant,
                                    prediction_type="sample", lower_order_final=False,
                                    disable_corrector=[] if corrector else list(range(len(sigmas))))
    theirs = drive_vp(oracle, scheduler, x, sigmas)
    calls = []
    sample(recorder(oracle, calls), "unipc", x, sigmas, solver_order=order,
           solver_type=variant, use_corrector=corrector, lower_order_final=False)
    torch.testing.assert_close(torch.stack(calls), torch.stack(theirs), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_deis_equals_diffusers(monkeypatch, order, oracle):
    sigmas, x = karras(10), start(80.0)
    scheduler = diffusers_scheduler(monkeypatch, "DEISMultistepScheduler", solver_order=order,
                                    prediction_type="sample", lower_order_final=False)
    theirs = drive_vp(oracle, scheduler, x, sigmas)
    calls = []
    sample(recorder(oracle, calls), "deis", x, sigmas, solver_order=order, lower_order_final=False)
    torch.testing.assert_close(torch.stack(calls), torch.stack(theirs), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("levels", [10, 16])
@pytest.mark.parametrize("family, scheduler_name, knobs", [
    ("unipc", "UniPCMultistepScheduler", {"solver_type": "bh1"}),
    ("unipc", "UniPCMultistepScheduler", {"solver_type": "bh2", "use_corrector": False}),
    ("deis", "DEISMultistepScheduler", {}),
])
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")   # DEIS at sigma = 0
def test_lower_order_final_equals_diffusers_default(monkeypatch, levels, family, scheduler_name, knobs, oracle):
    # diffusers' defaults (lower_order_final on; DEIS lowers fewer than 15 levels only, UniPC every
    # length), with the step to sigma = 0 as its last step, so that the orders line up with ours.
    # Every evaluation is compared (our output is D at the last one); diffusers' step to 0 itself
    # gives NaN for bh1 and DEIS (log 0).
    sigmas, x = karras(levels), start(80.0)
    config = {"solver_type": knobs["solver_type"]} if family == "unipc" else {}
    if not knobs.get("use_corrector", True):
        config["disable_corrector"] = list(range(levels))
    scheduler = diffusers_scheduler(monkeypatch, scheduler_name, solver_order=3, prediction_type="sample", **config)
    assert scheduler.config.lower_order_final and samplers.get(family).knobs["lower_order_final"].default
    theirs = drive_vp(oracle, scheduler, x, sigmas + [0.0])[:-1]
    calls = []
    sample(recorder(oracle, calls), family, x, sigmas, solver_order=3, **knobs)
    torch.testing.assert_close(torch.stack(calls), torch.stack(theirs), rtol=1e-12, atol=1e-12)
