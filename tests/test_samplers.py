"""Samplers on the exact oracle: registry, knobs, exact NFE, determinism, the reference rule.
(Identities between families: test_sampler_identities.py; convergence: test_convergence.py; orders:
test_orders.py; k-diffusion's values: test_k_diffusion.py.)"""

import math

import pytest
import torch

from diffsweep import samplers
from diffsweep.runs import source, generation
from diffsweep.data import make_dataset
from diffsweep.noise import make_schedule

RING = make_dataset("gmm", preset="ring8")

# Presets that should sample ring8 well with the exact score (family, schedule, knobs).
PRESETS = {
    "random_walk": ("sigmoid", {"eps": 0.7, "T0": 0.1}),
    "ncsn": ("geometric", {"eps": 2e-5, "steps_per_level": 10}),
    "ddpm": ("vp_respaced", {}),
    "sde_ve": ("geometric", {"process": "ve"}),
    "sde_vp": ("vp_pretrained", {"process": "vp"}),
    "pf_ode_heun": ("karras", {"solver_type": "heun"}),
    "pf_ode_euler": ("karras", {"solver_type": "euler"}),
}


def family_of(preset: str) -> str:
    return {"sde_ve": "sde_euler", "sde_vp": "sde_euler", "pf_ode_heun": "pf_ode", "pf_ode_euler": "pf_ode"}.get(preset, preset)


def run(denoise, preset, steps, n=2000, seed=0, **schedule_knobs):
    schedule, knobs = PRESETS[preset]
    family = family_of(preset)
    spec = samplers.get(family)
    run_spec = {"family": family, "schedule": schedule, "schedule_knobs": schedule_knobs, "steps": steps,
                "init": spec.init, "knobs": spec.resolve_knobs(knobs), "seed": seed, "n_samples": n}
    return generation.draw_samples(run_spec, denoise, 2, torch.float64, torch.device("cpu"))


def test_registry_lists_the_builtin_families():
    assert {"random_walk", "ncsn", "ddpm", "ddim", "sde_euler", "pc", "pf_ode", "pf_ode_rk45", "edm", "dpmpp_2m",
            "dpmpp_2s_ancestral", "euler_ancestral", "dpm_2", "dpm_2_ancestral", "lms", "dpmpp_sde", "dpmpp_2m_sde",
            "dpmpp_3m_sde", "dpm_adaptive", "unipc", "deis", "ipndm"} <= set(samplers.names())
    with pytest.raises(ValueError, match="unknown sampler 'dpm'; allowed: ddim, ddpm, deis, dpm_2, dpm_2_ancestral, dpm_adaptive, dpmpp_2m"):
        samplers.get("dpm")


# Names that meant a concept another name already had (docs/samplers.md, "Knob names"): refused as
# declarations, so that a new sampler or restorer does not bring them back.
RETIRED_KNOB_NAMES = {"langevin_steps", "corrector_steps", "order", "solver", "ddpm_variance"}


def test_one_knob_name_per_concept():
    from diffsweep import restoration
    declared = {(kind, name, knob) for kind, registry in (("sampler", samplers), ("restorer", restoration))
                for name in registry.names() for knob in registry.get(name).knobs}
    assert {entry for entry in declared if entry[2] in RETIRED_KNOB_NAMES} == set()


def test_knob_checks_name_the_key():
    spec = samplers.get("pf_ode")
    with pytest.raises(ValueError, match=r"solver_type: 'rk4' is not allowed; allowed: euler, heun"):
        spec.resolve_knobs({"solver_type": "rk4"})
    with pytest.raises(ValueError, match=r"unknown knob\(s\) \['snr'\] for sampler 'pf_ode'"):
        spec.resolve_knobs({"snr": 0.1})
    with pytest.raises(ValueError, match="eps: 'big' is not allowed; allowed: a finite number"):
        samplers.get("random_walk").resolve_knobs({"eps": "big"})
    with pytest.raises(ValueError, match="steps_per_level: 0 is below the minimum 1"):
        samplers.get("random_walk").resolve_knobs({"steps_per_level": 0})


EXPECTED_NFE = {  # family -> NFE of K levels with default knobs (None: adaptive, checked against the count)
    "random_walk": lambda k: k, "rw_ncsn": lambda k: k, "rw_ve_sde": lambda k: k, "rw_ddpm": lambda k: k,
    "ncsn": lambda k: 10 * k + 1, "ddpm": lambda k: k, "ddim": lambda k: k, "sde_euler": lambda k: k,
    "pc": lambda k: 2 * k, "pf_ode": lambda k: 2 * k - 1, "edm": lambda k: 2 * k - 1,
    "dpmpp_2m": lambda k: k, "dpmpp_2s_ancestral": lambda k: 2 * k - 1, "pf_ode_rk45": None,
    "euler_ancestral": lambda k: k, "dpm_2": lambda k: 2 * k - 1, "dpm_2_ancestral": lambda k: 2 * k - 1,
    "lms": lambda k: k, "dpmpp_sde": lambda k: 2 * k - 1, "dpmpp_2m_sde": lambda k: k, "dpmpp_3m_sde": lambda k: k,
    "dpm_adaptive": None, "unipc": lambda k: k, "deis": lambda k: k, "ipndm": lambda k: k,
}


def test_every_builtin_sampler_has_an_nfe_rule():
    assert set(EXPECTED_NFE) == set(samplers.names())


@pytest.mark.parametrize("family", sorted(EXPECTED_NFE))
@pytest.mark.parametrize("steps", [1, 2, 17])
def test_nfe_is_exact(family, steps, oracle):
    spec = samplers.get(family)
    sigmas = make_schedule(spec.default_schedule, steps).tolist()
    counter = source.CountingDenoiser(oracle)
    x = torch.randn(16, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * sigmas[0]
    samples, nfe = spec.fn(counter, x, sigmas, torch.Generator().manual_seed(1), **spec.resolve_knobs({}))
    assert nfe == counter.calls
    if EXPECTED_NFE[family] is not None:
        assert nfe == EXPECTED_NFE[family](steps)
    assert samples.shape == x.shape and torch.isfinite(samples).all()


def test_random_walk_steps_per_level_count(oracle):
    spec = samplers.get("random_walk")
    counter = source.CountingDenoiser(oracle)
    sigmas = make_schedule("sigmoid", 6).tolist()
    _, nfe = spec.fn(counter, torch.zeros(4, 2, dtype=torch.float64), sigmas, torch.Generator().manual_seed(0),
                     **spec.resolve_knobs({"steps_per_level": 3}))
    assert nfe == counter.calls == 18


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_same_seed_same_samples(preset, oracle):
    a, *_ = run(oracle, preset, 10, n=64, seed=3)
    b, *_ = run(oracle, preset, 10, n=64, seed=3)
    c, *_ = run(oracle, preset, 10, n=64, seed=4)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_random_walk_is_the_reference_rule_step_by_step(oracle):
    # The template x + tau * score + sqrt(2 tau T) n with tau = eps sigma^2, written out by hand.
    sigmas = make_schedule("sigmoid", 5).tolist()
    eps, T0 = 0.7, 0.1
    x0 = torch.randn(8, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    spec = samplers.get("random_walk")
    ours, _ = spec.fn(oracle, x0, sigmas, torch.Generator().manual_seed(1), **spec.resolve_knobs({"eps": eps, "T0": T0}))
    g = torch.Generator().manual_seed(1)
    x = x0
    temperatures = torch.linspace(T0, 1.0, len(sigmas), dtype=torch.float64)
    for k, sigma in enumerate(sigmas):
        tau = eps * sigma ** 2
        score = RING.mixture.score(x, sigma)
        x = x + tau * score
        if k < len(sigmas) - 1:
            x = x + math.sqrt(2 * tau * temperatures[k].item()) * torch.randn(x.shape, generator=g, dtype=torch.float64)
    torch.testing.assert_close(ours, x, rtol=1e-6, atol=1e-6)


def test_a_denoiser_in_chunks_gives_the_same_samples_and_gradients(oracle_of):
    from diffsweep.runs.source import InChunks
    denoiser = oracle_of("grid25")
    chunked = InChunks(denoiser, max_batch=7)
    x = torch.randn(30, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert torch.equal(chunked(x, 0.7), denoiser(x, 0.7))
    sigmas = torch.linspace(0.1, 3.0, 30, dtype=torch.float64)
    assert torch.equal(chunked(x, sigmas), denoiser(x, sigmas))
    leaf = x.clone().requires_grad_(True)
    (grad_chunked,) = torch.autograd.grad(chunked(leaf, 0.7).pow(2).sum(), leaf)
    (grad_whole,) = torch.autograd.grad(denoiser(leaf, 0.7).pow(2).sum(), leaf)
    assert torch.allclose(grad_chunked, grad_whole, rtol=0, atol=1e-12)


def test_diffsweep_list_names_a_renamed_knobs_former_name(capsys):
    from diffsweep import cli
    assert cli.main(["list", "samplers"]) == 0
    assert "steps_per_level (int, default 1; in [0, 10000]; formerly corrector_steps)" in capsys.readouterr().out


def test_sample_i_of_a_run_depends_only_on_the_seed_and_i(oracle):
    """Per-sample streams: a run of n samples starts with the run of k < n (start and every step's noise),
    across a stream block's end, so `keep_samples: k` is exactly the run with `n_samples: k`."""
    from diffsweep.samplers.randomness import GENERATION_BLOCK
    n, k = GENERATION_BLOCK + 20, 30
    for preset in ("random_walk", "ddpm"):
        more, *_ = run(oracle, preset, 8, n=n)
        fewer, *_ = run(oracle, preset, 8, n=k)
        assert torch.equal(more[:k], fewer), preset
        block, *_ = run(oracle, preset, 8, n=GENERATION_BLOCK)
        assert torch.equal(more[:GENERATION_BLOCK], block), preset
        other_seed, *_ = run(oracle, preset, 8, n=k, seed=1)
        assert not torch.equal(other_seed, fewer)


def test_a_restoration_restores_measurement_j_the_same_whatever_the_other_measurements_and_samples(oracle):
    """Restoration i of measurement j depends only on (seed, j, i): more samples per measurement or more
    measurements add restorations and change none (the measurements themselves are given here)."""
    from diffsweep import restoration
    from diffsweep.runs.restoration import restore
    from diffsweep.restoration.operators import MatrixOperator
    operator = MatrixOperator(torch.tensor([[1.0, 0.5]], dtype=torch.float64))
    y = torch.tensor([[0.5], [-1.0], [2.0]], dtype=torch.float64)

    def restored(measurements: int, k: int):
        run = {"task": {"noise_std_effective": 0.3}, "seed": 4, "family": "ddrm", "n_samples": k,
               "schedule": "geometric", "steps": 5, "schedule_knobs": {}, "init": "sigma_max", "init_knobs": {},
               "knobs": restoration.get("ddrm").resolve_knobs({})}
        samples, *_ = restore(run, oracle, operator.for_measurements(measurements), y[:measurements], (2,),
                              torch.float64, torch.device("cpu"))
        return samples.reshape(measurements, k, 2)

    most = restored(3, 20)           # 20 samples per measurement cross a restoration block
    assert torch.equal(restored(3, 5), most[:, :5])
    assert torch.equal(restored(2, 20), most[:2])
