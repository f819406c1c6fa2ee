"""The contract every registered sampler and restorer inherits (in the spirit of diffusers'
SchedulerCommonTest), checked over `samplers.names()` and `restoration.names()`, plugins included
(a plugin a test registers goes through the same checks, `check_contract`):

- `sigmas`: positive, finite, strictly decreasing levels without the final 0, which one helper
  appends; a list that breaks it is refused with one error naming the problem, before any
  network evaluation;
- dtype in = dtype out; the same seed gives the same samples, another seed other samples, and a
  run drawn between two runs of one seed does not change the second (no state kept between calls);
- randomness only from the given noise source: torch's and NumPy's global generators are neither
  read nor advanced;
- the reported NFE is the number of denoiser calls;
- the callback is called once per step (steps 0, 1, ... in order, the last one's x is the returned
  sample) and changes nothing;
- per-sample streams: the first k samples of a run of n are the run of k (unless the method
  declares `batch_coupled`, an adaptive step control that reads the whole batch);
- fused equals alone on the float64 oracle (diffsweep.fusion).

Tiny sizes throughout: 6 rows of 2-D data, 5 levels, the float64 ring8 oracle."""

import math

import numpy as np
import pytest
import torch

from diffsweep import restoration, samplers
from diffsweep.runs import fusion
from diffsweep.runs.source import CountingDenoiser, initial_sample
from diffsweep.restoration import registry as restorers
from diffsweep.restoration.operators import MatrixOperator
from diffsweep.samplers.levels import checked_levels, steps_to_zero, with_final_zero
from diffsweep.samplers.randomness import SampleStreams

BAD = {  # name -> (sigmas, the error it must raise)
    "ends_in_zero": ([3.0, 1.0, 0.0], "ends in 0 .*leave the final sigma = 0 out"),
    "negative": ([3.0, -0.5], "level 1 is -0.5; noise levels must be positive"),
    "zero_inside": ([3.0, 0.0, -1.0], "level 1 is 0.0; noise levels must be positive"),
    "nan": ([3.0, math.nan, 1.0], "level 1 is nan; noise levels must be finite"),
    "infinite": ([math.inf, 1.0], "level 0 is inf; noise levels must be finite"),
    "increasing": ([1.0, 2.0], r"level 1 \(2.0\) is not below level 0 \(1.0\).*strictly decreasing"),
    "repeated": ([2.0, 1.0, 1.0], r"level 2 \(1.0\) is not below level 1 \(1.0\)"),
    "empty": ([], "the schedule is empty"),
}


class NeverCalled:
    def __call__(self, x, sigma):
        raise AssertionError("the denoiser ran on a schedule that breaks the contract")


def test_the_final_zero_is_appended_once_and_valid_levels_pass_unchanged():
    assert with_final_zero([2.0, 1.0]) == [2.0, 1.0, 0.0]
    assert steps_to_zero([2.0, 1.0]) == [(2.0, 1.0), (1.0, 0.0)]
    assert steps_to_zero([0.5]) == [(0.5, 0.0)]
    assert checked_levels((3.0, 2.0)) == [3.0, 2.0]


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_helper_names_the_problem(case):
    sigmas, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        checked_levels(sigmas)


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("family", samplers.names())
def test_every_sampler_refuses_a_bad_schedule(family, case):
    spec = samplers.get(family)
    sigmas, message = BAD[case]
    x = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        spec.fn(NeverCalled(), x, sigmas, torch.Generator().manual_seed(0), **spec.resolve_knobs({}))


@pytest.mark.parametrize("case", ["ends_in_zero", "negative", "nan", "increasing"])
@pytest.mark.parametrize("name", restorers.names())
def test_every_restorer_refuses_a_bad_schedule(name, case):
    spec = restorers.get(name)
    sigmas, message = BAD[case]
    generator = torch.Generator().manual_seed(0)
    operator = MatrixOperator(torch.randn(1, 2, generator=generator, dtype=torch.float64))
    y = torch.zeros(4, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        spec.fn(NeverCalled(), torch.zeros(4, 2, dtype=torch.float64), sigmas, generator, operator, y, 0.1,
                **spec.resolve_knobs({}))


# --- the contract over the registries --------------------------------------------------------------

LEVELS = [20.0 * 0.5 ** k for k in range(5)]
ROWS, BLOCK = 6, 4          # two stream blocks, the second partial: the prefix check crosses a block
OBSERVE = [[1.0, 0.5]]      # a restorer's operator: one linear measurement of the 2-D point
# Cheap settings of costly knobs, by knob name, wherever a method declares one (the checks do not depend on them)
CHEAP = {"steps_per_level": 2, "rtol": 1e-3, "atol": 1e-3, "particles": 4}
METHODS = [("sampler", name) for name in samplers.names()] + [("restorer", name) for name in restoration.names()]


def registry(kind: str):
    return samplers if kind == "sampler" else restoration


def draw(kind: str, name: str, denoiser, seed: int = 0, rows: int = ROWS, dtype=torch.float64, callback=None):
    """A run of method `name` as the job draws it (start and steps from per-sample streams), on 2-D data:
    (samples, reported nfe, counted nfe)."""
    spec = registry(kind).get(name)
    noise = SampleStreams(seed, rows, BLOCK)
    x = initial_sample(spec.init, LEVELS[0], (rows, 2), noise, dtype, torch.device("cpu"))
    counter = CountingDenoiser(denoiser)
    measurement = ()
    if kind == "restorer":
        y = (0.5 * torch.arange(rows, dtype=dtype) - 1.0)[:, None]     # row i's measurement, whatever the rows
        operator = MatrixOperator(torch.tensor(OBSERVE, dtype=torch.float64)).restrict(torch.arange(rows))
        measurement = (operator, y, 0.3)
    with torch.no_grad():
        knobs = spec.resolve_knobs({knob: value for knob, value in CHEAP.items() if knob in spec.knobs})
        samples, nfe = spec.fn(counter, x, LEVELS, noise, *measurement, callback=callback, **knobs)
    return samples.detach(), nfe, counter.calls


def check_dtype(kind, name, denoiser):
    for dtype in (torch.float32, torch.float64):
        samples, _, _ = draw(kind, name, denoiser, dtype=dtype)
        assert samples.dtype == dtype, f"{name}: {dtype} in, {samples.dtype} out"
        assert samples.shape == (ROWS, 2)


def check_seeds(kind, name, denoiser):
    first, _, _ = draw(kind, name, denoiser, seed=0)
    other, _, _ = draw(kind, name, denoiser, seed=1)
    again, _, _ = draw(kind, name, denoiser, seed=0)     # after another seed's run: nothing kept between calls
    assert torch.equal(first, again), f"{name}: the same seed gave other samples"
    assert not torch.equal(first, other), f"{name}: two seeds gave the same samples"


def check_noise_only_from_the_source(kind, name, denoiser):
    torch_state, numpy_state = torch.get_rng_state(), np.random.get_state()
    try:
        torch.manual_seed(1)
        first, _, _ = draw(kind, name, denoiser)
        torch.manual_seed(2)
        untouched = torch.get_rng_state()
        second, _, _ = draw(kind, name, denoiser)
        assert torch.equal(torch.get_rng_state(), untouched), f"{name}: drew from torch's global generator"
        assert torch.equal(first, second), f"{name}: its samples depend on torch's global generator"
        numpy_after = np.random.get_state()
        assert numpy_after[1].tolist() == numpy_state[1].tolist() and numpy_after[2] == numpy_state[2], \
            f"{name}: drew from NumPy's global generator"
    finally:
        torch.set_rng_state(torch_state)
        np.random.set_state(numpy_state)


def check_nfe(kind, name, denoiser):
    _, nfe, counted = draw(kind, name, denoiser)
    assert nfe == counted > 0, f"{name}: reported {nfe} network evaluations, made {counted}"


def check_callback(kind, name, denoiser):
    steps = []
    samples, _, _ = draw(kind, name, denoiser, callback=steps.append)
    assert steps, f"{name}: the callback was never called"
    assert [step["step"] for step in steps] == list(range(len(steps))), f"{name}: steps not 0, 1, ... in order"
    assert all(set(step) == {"step", "sigma", "x", "denoised"} and isinstance(step["sigma"], float)
               for step in steps), f"{name}: a step's dict is not {{step, sigma, x, denoised}}"
    assert torch.equal(steps[-1]["x"], samples), f"{name}: the last step's x is not the returned sample"
    without, _, _ = draw(kind, name, denoiser)
    assert torch.equal(samples, without), f"{name}: the callback changed the samples"


def check_prefix(kind, name, denoiser):
    if registry(kind).get(name).batch_coupled:
        return
    more, _, _ = draw(kind, name, denoiser, rows=ROWS)
    fewer, _, _ = draw(kind, name, denoiser, rows=3)
    assert torch.equal(more[:3], fewer), f"{name}: the first 3 of {ROWS} samples are not the run of 3"


def check_fused(kind, name, denoiser):
    runs = [{"id": f"{name}-{seed}", "seed": seed} for seed in (0, 1)]

    def draw_run(run, member):
        samples, nfe, counted = draw(kind, name, member, seed=run["seed"])
        return samples, nfe, counted, 0.0
    outcomes = {run["id"]: outcome() for run, outcome in fusion.draw_fused(draw_run, denoiser, runs)}
    for run in runs:
        alone = draw_run(run, denoiser)
        assert torch.equal(outcomes[run["id"]][0], alone[0]), f"{name}: fused differs from alone ({run['id']})"
        assert outcomes[run["id"]][1:3] == alone[1:3]


CHECKS = [check_dtype, check_seeds, check_noise_only_from_the_source, check_nfe, check_callback, check_prefix,
          check_fused]


def check_contract(kind, name, denoiser):
    for check in CHECKS:
        check(kind, name, denoiser)


@pytest.mark.parametrize("check", CHECKS, ids=lambda check: check.__name__[len("check_"):])
@pytest.mark.parametrize("kind,name", METHODS)
def test_every_method_keeps_the_contract(kind, name, check, oracle):
    check(kind, name, oracle)


@pytest.fixture
def plugin_registries():
    """Samplers and restorers a test registers are gone afterwards."""
    saved = [dict(methods._entries) for methods in (samplers.SAMPLERS, restoration.RESTORERS)]
    yield
    samplers.SAMPLERS._entries, restoration.RESTORERS._entries = saved


def test_a_plugin_inherits_the_contract(plugin_registries, oracle):
    @samplers.register("plugin_euler_ancestral", knobs={}, description="a plugin's Euler ancestral sampler")
    def plugin_euler_ancestral(denoise, x, sigmas, noise, *, callback=None):
        for step, (sigma, following) in enumerate(steps_to_zero(sigmas)):
            denoised = denoise(x, sigma)
            up = following * math.sqrt(1 - following ** 2 / sigma ** 2)
            x = denoised + math.sqrt(following ** 2 - up ** 2) * (x - denoised) / sigma + up * noise(x)
            samplers.report(callback, step, sigma, x, denoised)
        return x, len(sigmas)

    @restoration.register("plugin_denoise_only", knobs={}, description="a plugin's restorer that ignores y")
    def plugin_denoise_only(denoise, x, sigmas, noise, operator, y, noise_std, *, callback=None):
        for step, (sigma, following) in enumerate(steps_to_zero(sigmas)):
            x = denoise(x, sigma) + following * noise(x)
            samplers.report(callback, step, sigma, x)
        return x, len(sigmas)

    assert ("sampler", "plugin_euler_ancestral") not in METHODS     # collected before: checked here
    check_contract("sampler", "plugin_euler_ancestral", oracle)
    check_contract("restorer", "plugin_denoise_only", oracle)


def test_a_plugin_that_breaks_the_contract_is_caught(plugin_registries, oracle):
    @samplers.register("global_noise", knobs={}, description="draws from torch's global generator")
    def global_noise(denoise, x, sigmas, noise, *, callback=None):
        for step, (sigma, following) in enumerate(steps_to_zero(sigmas)):
            x = denoise(x, sigma) + following * torch.randn_like(x)
            samplers.report(callback, step, sigma, x)
        return x, len(sigmas)

    @samplers.register("one_callback", knobs={}, description="reports the whole run as one step")
    def one_callback(denoise, x, sigmas, noise, *, callback=None):
        for sigma, following in steps_to_zero(sigmas):
            x = denoise(x, sigma) + following * noise(x)
        samplers.report(callback, 1, sigmas[0], x)
        return x, len(sigmas)

    with pytest.raises(AssertionError, match="global_noise: drew from torch's global generator"):
        check_noise_only_from_the_source("sampler", "global_noise", oracle)
    with pytest.raises(AssertionError, match=r"one_callback: steps not 0, 1, \.\.\. in order"):
        check_callback("sampler", "one_callback", oracle)
    with pytest.raises(TypeError, match=r"sampler 'no_callback' \(.*\): its function must take a keyword argument "
                                        r"callback=None"):
        samplers.register("no_callback", knobs={}, description="the old contract")(
            lambda denoise, x, sigmas, noise: (x, 0))
    assert "no_callback" not in samplers.names()
