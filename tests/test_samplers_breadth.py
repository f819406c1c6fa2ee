"""The samplers ported from k-diffusion, diffusers and the literature, on the exact oracle in float64:
the order each shows against a tight reference solve, its identities with the older families,
equality with diffusers' scheduler of the same name driven by the same denoiser (diffusers is
used here only, never at run time), and equality with k-diffusion's stored results on the same
noise. Small n and few levels: the file takes about 20 s of CPU."""

import math
import sys

import numpy as np
import pytest
import torch

from diffsweep import jobs, samplers
from diffsweep.data import make_dataset
from diffsweep.models import OracleDenoiser
from diffsweep.noise import make_schedule

ORACLE = OracleDenoiser(make_dataset("gmm", preset="ring8").mixture)
# diffusers' schedulers call numpy on torch tensors; numpy 2 warns about it on every step
pytestmark = pytest.mark.filterwarnings("ignore:__array:DeprecationWarning")


def sample(name, x, sigmas, seed=0, denoise=ORACLE, **knobs):
    spec = samplers.get(name)
    return spec.fn(denoise, x.clone(), sigmas, torch.Generator().manual_seed(seed), **spec.resolve_knobs(knobs))


def start(scale, n=32, seed=3):
    return scale * torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def karras(steps):
    return make_schedule("karras", steps).tolist()


# --- orders --------------------------------------------------------------------------------------

LEVELS = (32, 64, 128)
ASYMPTOTIC = (80, 160, 320)   # where (3M)'s order shows: at LEVELS the two variants look alike (2.8 and 3.4)
ORDERS = {  # name -> (family, knobs, expected slope of log error against log levels, Karras levels)
    # two evaluations per step: already in their asymptotic range at 16/32/64 levels
    "dpm_2": ("dpm_2", {}, 2, (16, 32, 64)),
    "dpmpp_sde_eta0": ("dpmpp_sde", {"eta": 0.0}, 2, (16, 32, 64)),
    "dpmpp_2m_sde_heun_eta0": ("dpmpp_2m_sde", {"eta": 0.0, "solver_type": "heun"}, 2, LEVELS),
    # k-diffusion's (3M) weighs the second difference by half its exact integral (dpm_sde.py): order 2;
    # the exact weight gives order 3 (3.3 here; 3.0-3.2 against a finer reference: docs/samplers.md)
    "dpmpp_3m_sde_eta0": ("dpmpp_3m_sde", {"eta": 0.0}, 2, ASYMPTOTIC),
    "dpmpp_3m_sde_exact_eta0": ("dpmpp_3m_sde", {"eta": 0.0, "second_difference": "exact"}, 3, ASYMPTOTIC),
    # Multistep methods start with lower orders (as k-diffusion and diffusers do); the local error of
    # those first steps caps the asymptotic order, so fourth-order LMS shows about 3.4 at these K.
    "lms": ("lms", {}, 3.5, LEVELS),
    "unipc_2": ("unipc", {"solver_order": 2}, 3, LEVELS),   # the corrector adds one
    "unipc_3": ("unipc", {"solver_order": 3}, 4, LEVELS),
    "deis_2": ("deis", {"solver_order": 2}, 2, LEVELS),
    "deis_3": ("deis", {"solver_order": 3}, 3, LEVELS),
    "ipndm": ("ipndm", {}, 2, LEVELS),        # equal-step coefficients on unequal levels
}


@pytest.fixture(scope="module")
def reference():
    """Heun on 256 and 512 levels, Richardson-extrapolated (error about 1e-6 here)."""
    x = start(80.0, n=16, seed=0)
    coarse, fine = (sample("pf_ode", x, karras(k), solver="heun")[0] for k in (256, 512))
    return x, (4 * fine - coarse) / 3


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_deterministic_samplers_show_their_order(name, reference):
    family, knobs, expected, steps = ORDERS[name]
    x, solution = reference
    errors = [(sample(family, x, karras(k), **knobs)[0] - solution).norm(dim=1).mean().item() for k in steps]
    slope = -np.polyfit(np.log(steps), np.log(errors), 1)[0]
    print(name, round(slope, 2), errors)
    assert errors[-1] < errors[0], errors
    assert abs(slope - expected) < 0.5, (slope, errors)


def test_adaptive_dpm_solver_meets_its_tolerance_and_counts_its_evaluations(reference):
    x, solution = reference
    errors, nfes = [], []
    for tol in (1e-2, 1e-4):
        counter = jobs.CountingDenoiser(ORACLE)
        out, nfe = sample("dpm_adaptive", x, karras(2), denoise=counter, rtol=tol, atol=tol)
        assert nfe == counter.calls
        errors.append((out - solution).norm(dim=1).mean().item())
        nfes.append(nfe)
    assert errors[1] < 0.05 * errors[0] and errors[1] < 1e-3, errors
    assert nfes[1] > nfes[0], nfes
    order_2, _ = sample("dpm_adaptive", x, karras(2), rtol=1e-3, atol=1e-3, solver_order=2)
    assert (order_2 - solution).norm(dim=1).mean().item() < 5e-3


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
    ("euler_ancestral", {"eta": 0.0}, "pf_ode", {"solver": "euler"}),
    ("dpm_2_ancestral", {"eta": 0.0}, "dpm_2", {}),
    ("dpmpp_2m_sde", {"eta": 0.0}, "dpmpp_2m", {}),
    ("dpmpp_sde", {"eta": 0.0}, "dpmpp_2s_ancestral", {"eta": 0.0}),
    ("lms", {"solver_order": 1}, "pf_ode", {"solver": "euler"}),
    ("unipc", {"solver_order": 1, "use_corrector": False}, "ddim", {"eta": 0.0}),
    ("unipc", {"solver_order": 1, "use_corrector": False, "solver_type": "bh1"}, "ddim", {"eta": 0.0}),
    ("deis", {"solver_order": 1}, "ddim", {"eta": 0.0}),
    ("ipndm", {"solver_order": 1}, "pf_ode", {"solver": "euler"}),
]


@pytest.mark.parametrize("family, knobs, other, other_knobs", IDENTITIES)
def test_special_cases_equal_older_families(family, knobs, other, other_knobs):
    sigmas, x = karras(12), start(80.0)
    assert_same(sample(family, x, sigmas, **knobs), sample(other, x, sigmas, **other_knobs))


@pytest.mark.parametrize("family", ["euler_ancestral", "dpm_2_ancestral", "dpmpp_sde", "dpmpp_2m_sde",
                                    "dpmpp_3m_sde"])
def test_stochastic_samplers_draw_only_from_the_generator(family):
    sigmas, x = karras(8), start(80.0)
    a, b, c = (sample(family, x, sigmas, seed=seed)[0] for seed in (1, 1, 2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_unipc_variants_and_corrector_change_the_path():
    sigmas, x = karras(10), start(80.0)
    paths = [sample("unipc", x, sigmas, solver_order=3, solver_type=solver_type, use_corrector=use_corrector)[0]
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


def drive_ve(scheduler, x, input_sigma, **step_knobs):
    """A k-diffusion-style scheduler (state in VE coordinates, epsilon prediction) on the oracle."""
    scheduler.set_begin_index(0)
    for t in scheduler.timesteps:
        scheduler.scale_model_input(x, t)       # sets the step index
        sigma = float(input_sigma(scheduler))
        eps = (x - ORACLE(x, sigma)) / sigma
        x = scheduler.step(eps, t, x, **step_knobs).prev_sample
    return x


def with_sigmas(scheduler, sigmas, steps):
    scheduler.set_timesteps(steps)
    scheduler.sigmas = torch.tensor(sigmas, dtype=torch.float64)
    return scheduler


def test_euler_ancestral_equals_diffusers(monkeypatch):
    sigmas, x = karras(10), start(80.0)
    scheduler = with_sigmas(diffusers_scheduler(monkeypatch, "EulerAncestralDiscreteScheduler"), sigmas + [0.0], 10)
    theirs = drive_ve(scheduler, x, lambda s: s.sigmas[s.step_index],
                      generator=torch.Generator().manual_seed(5))
    ours, _ = sample("euler_ancestral", x, sigmas, seed=5)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_lms_equals_diffusers(monkeypatch, order):
    sigmas, x = karras(10), start(80.0)
    scheduler = with_sigmas(diffusers_scheduler(monkeypatch, "LMSDiscreteScheduler"), sigmas + [0.0], 10)
    theirs = drive_ve(scheduler, x, lambda s: s.sigmas[s.step_index], order=order)
    ours, _ = sample("lms", x, sigmas, solver_order=order)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def karras_override(monkeypatch, scheduler, sigmas):
    """diffusers builds the interleaved DPM-2 arrays from its Karras sigmas: make them ours."""
    monkeypatch.setattr(scheduler, "_convert_to_karras", lambda in_sigmas, num_inference_steps: np.array(sigmas))
    scheduler.set_timesteps(len(sigmas))
    return scheduler


def test_dpm_2_equals_diffusers(monkeypatch):
    sigmas, x = karras(10), start(80.0)
    scheduler = diffusers_scheduler(monkeypatch, "KDPM2DiscreteScheduler", use_karras_sigmas=True)
    karras_override(monkeypatch, scheduler, sigmas)
    theirs = drive_ve(scheduler, x, lambda s: s.sigmas[s.step_index] if s.state_in_first_order
                      else s.sigmas_interpol[s.step_index])
    ours, nfe = sample("dpm_2", x, sigmas)
    assert nfe == len(scheduler.timesteps) == 2 * len(sigmas) - 1
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_dpm_2_ancestral_equals_diffusers(monkeypatch):
    sigmas, x = karras(10), start(80.0)
    scheduler = diffusers_scheduler(monkeypatch, "KDPM2AncestralDiscreteScheduler", use_karras_sigmas=True)
    karras_override(monkeypatch, scheduler, sigmas)
    theirs = drive_ve(scheduler, x, lambda s: s.sigmas[s.step_index] if s.state_in_first_order
                      else s.sigmas_interpol[s.step_index - 1],
                      generator=torch.Generator().manual_seed(5))
    ours, _ = sample("dpm_2_ancestral", x, sigmas, seed=5)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def drive_vp(scheduler, x, sigmas, noises=None):
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
        z = scheduler.step(ORACLE(state, sigmas[i]), t, z, **extra).prev_sample
    return states + [z * math.sqrt(1 + sigmas[-1] ** 2)]


@pytest.mark.parametrize("solver_type", ["midpoint", "heun"])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_dpmpp_2m_sde_equals_diffusers(monkeypatch, solver_type, eta):
    sigmas, x = karras(10), start(80.0)
    generator = torch.Generator().manual_seed(5)
    noises = [torch.randn(x.shape, generator=generator, dtype=torch.float64) * eta for _ in sigmas]
    algorithm = "sde-dpmsolver++" if eta else "dpmsolver++"
    scheduler = diffusers_scheduler(monkeypatch, "DPMSolverMultistepScheduler", algorithm_type=algorithm,
                                    solver_order=2, solver_type=solver_type, prediction_type="sample",
                                    lower_order_final=False, final_sigmas_type="zero")
    theirs = drive_vp(scheduler, x, sigmas + [0.0], noises)[-1]
    ours, _ = sample("dpmpp_2m_sde", x, sigmas, seed=5, eta=eta, solver_type=solver_type)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("levels", [10, 16])
@pytest.mark.parametrize("lower_order_final", [False, True])
def test_dpmpp_3m_sde_without_noise_equals_diffusers_third_order(monkeypatch, levels, lower_order_final):
    # (3M) warms up with the heun-type second-order step, and so does diffusers' lower_order_final
    # (fewer than 15 levels only). diffusers' third-order sde-dpmsolver++ step weighs the second
    # difference by -(phi_3 + 1) where k-diffusion has -phi_3 (and the exact integral -2 phi_3:
    # dpm_sde.py): the stochastic path is compared with k-diffusion below.
    sigmas, x = karras(levels), start(80.0)
    scheduler = diffusers_scheduler(monkeypatch, "DPMSolverMultistepScheduler", algorithm_type="dpmsolver++",
                                    solver_order=3, solver_type="heun", prediction_type="sample",
                                    lower_order_final=lower_order_final, final_sigmas_type="zero")
    theirs = drive_vp(scheduler, x, sigmas + [0.0])[-1]
    ours, _ = sample("dpmpp_3m_sde", x, sigmas, eta=0.0, lower_order_final=lower_order_final)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)


def test_ipndm_equals_diffusers(monkeypatch):
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
        denoised = ORACLE(state, sigma)
        v = alpha * (state - denoised) / sigma - beta * denoised       # v-prediction
        z = scheduler.step(v, t, z).prev_sample
    ours, _ = sample("ipndm", x, sigmas)
    torch.testing.assert_close(ours, z, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("variant", ["bh1", "bh2"])
@pytest.mark.parametrize("corrector", [True, False])
def test_unipc_equals_diffusers(monkeypatch, order, variant, corrector):
    # diffusers cannot step to sigma = 0 at order > 1 (log 0 in its differences); every level
    # before it is compared, and the step to 0 returns D at the last one in both.
    sigmas, x = karras(10), start(80.0)
    scheduler = diffusers_scheduler(monkeypatch, "UniPCMultistepScheduler", solver_order=order, solver_type=variant,
                                    prediction_type="sample", lower_order_final=False,
                                    disable_corrector=[] if corrector else list(range(len(sigmas))))
    theirs = drive_vp(scheduler, x, sigmas)
    calls = []
    sample("unipc", x, sigmas, denoise=recorder(ORACLE, calls), solver_order=order,
           solver_type=variant, use_corrector=corrector, lower_order_final=False)
    torch.testing.assert_close(torch.stack(calls), torch.stack(theirs), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("order", [1, 2, 3])
def test_deis_equals_diffusers(monkeypatch, order):
    sigmas, x = karras(10), start(80.0)
    scheduler = diffusers_scheduler(monkeypatch, "DEISMultistepScheduler", solver_order=order,
                                    prediction_type="sample", lower_order_final=False)
    theirs = drive_vp(scheduler, x, sigmas)
    calls = []
    sample("deis", x, sigmas, denoise=recorder(ORACLE, calls), solver_order=order, lower_order_final=False)
    torch.testing.assert_close(torch.stack(calls), torch.stack(theirs), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("levels", [10, 16])
@pytest.mark.parametrize("family, scheduler_name, knobs", [
    ("unipc", "UniPCMultistepScheduler", {"solver_type": "bh1"}),
    ("unipc", "UniPCMultistepScheduler", {"solver_type": "bh2", "use_corrector": False}),
    ("deis", "DEISMultistepScheduler", {}),
])
@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")   # DEIS at sigma = 0
def test_lower_order_final_equals_diffusers_default(monkeypatch, levels, family, scheduler_name, knobs):
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
    theirs = drive_vp(scheduler, x, sigmas + [0.0])[:-1]
    calls = []
    sample(family, x, sigmas, denoise=recorder(ORACLE, calls), solver_order=3, **knobs)
    torch.testing.assert_close(torch.stack(calls), torch.stack(theirs), rtol=1e-12, atol=1e-12)


# --- k-diffusion reference values ----------------------------------------------------------------
# tests/fixtures/reference/make_breadth_reference.py ran k-diffusion's samplers with this oracle in
# float64, feeding them the stored noise through their `noise_sampler`.

@pytest.fixture(scope="module")
def k_diffusion():
    from pathlib import Path
    stored = np.load(Path(__file__).parent / "fixtures" / "reference" / "breadth.npz")
    return {key: stored[key] for key in stored.files}


K_DIFFUSION = {  # stored name -> (family, knobs); knobs as given to k-diffusion
    "euler_ancestral": ("euler_ancestral", {"eta": 1.0}),
    "dpm_2_ancestral": ("dpm_2_ancestral", {"eta": 1.0}),
    "dpmpp_sde": ("dpmpp_sde", {"eta": 1.0, "r": 0.5}),
    "dpmpp_2m_sde": ("dpmpp_2m_sde", {"eta": 1.0, "solver_type": "midpoint"}),
    "dpmpp_2m_sde_heun": ("dpmpp_2m_sde", {"eta": 1.0, "solver_type": "heun"}),
    "dpmpp_3m_sde": ("dpmpp_3m_sde", {"eta": 0.8}),
    "dpm_2": ("dpm_2", {}),
    "lms": ("lms", {"solver_order": 4}),
}


@pytest.mark.parametrize("name", sorted(K_DIFFUSION))
def test_matches_k_diffusion(name, k_diffusion, monkeypatch):
    family, knobs = K_DIFFUSION[name]
    spec = samplers.get(family)
    if f"{name}_noise" in k_diffusion:
        draws = iter(torch.from_numpy(k_diffusion[f"{name}_noise"]))
        monkeypatch.setattr(sys.modules[spec.fn.__module__], "gaussian_like", lambda x, generator: next(draws))
    ours, _ = sample(family, torch.from_numpy(k_diffusion["x"]), k_diffusion["sigmas"].tolist(), **knobs)
    if f"{name}_noise" in k_diffusion:
        assert next(draws, None) is None, "the sampler drew less noise than k-diffusion was given"
    np.testing.assert_allclose(ours.numpy(), k_diffusion[name], rtol=1e-12, atol=1e-12)


def test_adaptive_dpm_solver_matches_k_diffusion(k_diffusion):
    counter = jobs.CountingDenoiser(ORACLE)
    ours, nfe = sample("dpm_adaptive", torch.from_numpy(k_diffusion["x"]), k_diffusion["sigmas"].tolist(),
                       denoise=counter, solver_order=3, rtol=2.0 ** -10, atol=2.0 ** -10, final_denoise=False)
    np.testing.assert_allclose(ours.numpy(), k_diffusion["dpm_adaptive"], rtol=1e-12, atol=1e-12)
    # fewer calls than k-diffusion: the evaluation at the current point is reused after a rejection
    assert nfe == counter.calls <= int(k_diffusion["dpm_adaptive_nfe"])
