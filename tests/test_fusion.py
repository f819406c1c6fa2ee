"""Fused evaluation (diffsweep.fusion): a run's samples do not depend on which runs share its
shard (exactly for the float64 oracle, up to float32 rounding for a network), reruns are
bit-exact (a stress test of 64 runs with random step counts against their unfused draws), runs
with other call counts and runs that raise leave the group without holding up or changing the
others (an error between handing in a call and waiting for its answer included), a fused call
that fails falls back to one call per run with a warning, a wait past the group's limit fails
its runs still drawing instead of hanging, and `max_batch` chunks the fused batch. Every draw
and serve here runs under a bound (`bounded`): a deadlock fails its test, never hangs it."""

import logging
import random
import threading
import types
from pathlib import Path

import pytest
import torch

from diffsweep import config, grid
from diffsweep.runs import fusion, source, generation
from diffsweep.data import make_dataset
from diffsweep.models import MLP, OracleDenoiser, PreconditionedDenoiser

CONFIG = {
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
    "models": {"oracle": {"source": "oracle"}},
    "samplers": {"ddim": {"family": "ddim", "steps": [3, 5]},
                 "rw": {"family": "random_walk", "schedule": "sigmoid", "steps": 6, "knobs": {"eps": 0.7, "T0": 0.1}},
                 "adaptive": {"family": "dpm_adaptive", "steps": 10}},
    "seeds": [0, 1],
    "data": {"n_train": 100, "n_reference": 200},
    "sampling": {"n_samples": 40},
}
ORACLE = OracleDenoiser(make_dataset("gmm", preset="ring8").mixture)
PRETRAINED = Path(__file__).resolve().parent / "fixtures" / "pretrained"   # small random-weight networks


@pytest.fixture(scope="module")
def runs() -> dict:
    """Run dicts by (sampler, steps, seed): samplers with 3, 5, 6 and a data-dependent number of calls."""
    built = grid.build(config.prepare(CONFIG))
    run_dicts = [grid.run_dict(run) for run in built.runs.values()]
    return {(run["row"]["sampler"], run["steps"], run["seed"]): run for run in run_dicts}


def drawer(dtype, broken: dict | None = None):
    """draw(run, denoiser) of 2-D samples in `dtype`; a run named in `broken` calls with sigma -1 at that call."""
    def draw(run, denoiser):
        if broken and run["id"] in broken:
            denoiser = BadSigmaAt(denoiser, broken[run["id"]])
        return generation.draw_samples(run, denoiser, 2, dtype, torch.device("cpu"))
    return draw


class BadSigmaAt:
    """Passes sigma -1 (which the oracle refuses) at its `call`-th call."""

    def __init__(self, denoiser, call: int):
        self.denoiser, self.call, self.calls = denoiser, call, 0

    def __call__(self, x, sigma):
        self.calls += 1
        return self.denoiser(x, -1.0 if self.calls == self.call else sigma)


class Recorder:
    """A denoiser that records the batch size of every call."""

    def __init__(self, denoiser):
        self.denoiser, self.sizes = denoiser, []

    def __call__(self, x, sigma):
        self.sizes.append(len(x))
        return self.denoiser(x, sigma)


# Bound of every fused draw and serve in these tests (a deadlock fails the test), far above their cost.
BOUND_S = 60


def bounded(work, bound_s: float = BOUND_S):
    """work()'s result, computed in a thread that must end within `bound_s` (a deadlock fails, not hangs)."""
    result = {}

    def target():
        try:
            result["value"] = work()
        except BaseException as error:   # re-raised in the test's thread
            result["error"] = error
    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(bound_s)
    assert not worker.is_alive(), f"did not end within {bound_s} s (deadlock)"
    if "error" in result:
        raise result["error"]
    return result["value"]


def fused(draw, denoiser, shard: list[dict], **options) -> list:
    """fusion.draw_fused's outcomes in the shard's order, under the bound."""
    result = bounded(lambda: {id(run): outcome for run, outcome in fusion.draw_fused(draw, denoiser, shard, **options)})
    return [result[id(run)] for run in shard]


def alone(draw, denoiser, run):
    return draw(run, denoiser)


def test_oracle_samples_do_not_depend_on_the_shard_mates(runs):
    draw = drawer(torch.float64)
    a, b, c, d, e = (runs[key] for key in [("ddim", 5, 0), ("rw", 6, 0), ("adaptive", 10, 0), ("ddim", 3, 1),
                                            ("adaptive", 10, 1)])
    by_itself = {run["id"]: alone(draw, ORACLE, run) for run in (a, b, c, d, e)}
    first, second = fused(draw, ORACLE, [a, b, c]), fused(draw, ORACLE, [d, e, a])
    for run, outcome in [*zip([a, b, c], first), *zip([d, e, a], second)]:
        samples, nfe, counted, wall = outcome()
        expected, expected_nfe, *_ = by_itself[run["id"]]
        assert torch.equal(samples, expected), run["id"]
        assert nfe == counted == expected_nfe and wall >= 0
    assert len({outcome()[1] for outcome in first}) == 3     # three call counts in one group


def test_network_samples_agree_to_float32_rounding_and_reruns_are_bit_exact(runs):
    torch.manual_seed(0)
    network = PreconditionedDenoiser(MLP((2,), hidden=32, depth=2), "edm").eval()
    draw = drawer(torch.float32)
    shard = [runs["ddim", 5, 0], runs["rw", 6, 1], runs["ddim", 3, 1], runs["adaptive", 10, 0]]
    by_itself = [alone(draw, network, run)[0] for run in shard]
    first, rerun = fused(draw, network, shard), fused(draw, network, shard)
    for expected, outcome, again in zip(by_itself, first, rerun):
        samples = outcome()[0]
        assert torch.equal(samples, again()[0])
        assert ((samples - expected).abs() <= 1e-5 * expected.abs().clamp(min=1)).all()
    # other shard-mates (in another order) change nothing beyond rounding either
    (_, other_mate), ddim = fused(draw, network, [runs["rw", 6, 0], shard[0]]), by_itself[0]
    assert ((other_mate()[0] - ddim).abs() <= 1e-5 * ddim.abs().clamp(min=1)).all()


def test_a_failing_run_leaves_the_others_intact(runs):
    draw = drawer(torch.float64)
    good, bad_in_batch, bad_sampler = runs["ddim", 5, 0], runs["rw", 6, 0], dict(runs["ddim", 3, 1])
    bad_sampler["family"] = "no_such_sampler"          # raises before its first call
    outcomes = fused(drawer(torch.float64, {bad_in_batch["id"]: 3}), ORACLE, [bad_sampler, good, bad_in_batch])
    with pytest.raises(ValueError, match="unknown sampler"):
        outcomes[0]()
    with pytest.raises(ValueError, match="sigma must be finite and >= 0"):   # its bad call failed the fused batch
        outcomes[2]()
    assert torch.equal(outcomes[1]()[0], alone(draw, ORACLE, good)[0])


def test_max_batch_chunks_the_fused_batch(runs):
    outer = Recorder(source.InChunks(inner := Recorder(ORACLE), max_batch=30))
    draw = drawer(torch.float64)
    shard = [runs["ddim", 5, 0], runs["ddim", 3, 1]]
    outcomes = fused(draw, outer, shard)
    assert outer.sizes == [80, 80, 80, 40, 40]       # both runs' 40 rows while both draw, then the longer one's
    assert max(inner.sizes) <= 30 and sum(inner.sizes) == sum(outer.sizes)
    assert torch.equal(outcomes[0]()[0], alone(draw, ORACLE, shard[0])[0])


def test_a_large_shard_draws_in_groups_and_unfused_one_run_at_a_time(runs, monkeypatch):
    monkeypatch.setattr(fusion, "GROUP_RUNS", 2)
    job = types.SimpleNamespace(draw=drawer(torch.float64), device=torch.device("cpu"))
    shard = [runs["ddim", 5, 0], runs["ddim", 3, 1], runs["ddim", 5, 1]]
    expected = [alone(job.draw, ORACLE, run)[0] for run in shard]
    for fuse, sizes in [(True, [80, 80, 80, 40, 40, 40, 40, 40, 40, 40]), (False, [40] * 13)]:
        recorder = Recorder(ORACLE)
        drawn = bounded(lambda: {id(run): (drawn(), fused_with)   # noqa: B023 (called at once)
                                 for run, drawn, fused_with in fusion.draws(job, recorder, shard, fuse)})
        for run, samples in zip(shard, expected, strict=True):
            assert torch.equal(drawn[id(run)][0][0], samples)
        assert recorder.sizes == sizes
        assert [drawn[id(run)][1] for run in shard] == ([2, 2, 1] if fuse else [1, 1, 1])   # the group each drew in


def test_on_the_cpu_calls_are_packed_whole_up_to_cpu_rows(runs, monkeypatch):
    monkeypatch.setattr(fusion, "CPU_ROWS", 90)
    recorder, draw = Recorder(ORACLE), drawer(torch.float64)
    shard = [runs["ddim", 5, 0], runs["ddim", 3, 1], runs["ddim", 5, 1]]
    outcomes = fused(draw, recorder, shard)
    assert recorder.sizes == [80, 40] * 3 + [80] * 2      # 40 + 40 rows fit in 90, a third call does not
    assert all(torch.equal(outcome()[0], alone(draw, ORACLE, run)[0]) for outcome, run in zip(outcomes, shard))


def test_on_the_cpu_a_shard_whose_calls_cannot_share_a_network_call_draws_unfused(runs, monkeypatch):
    # 40-row calls: two fit in 80 rows, not in 79; off the CPU fusing always packs.
    job = types.SimpleNamespace(draw=drawer(torch.float64), device=torch.device("cpu"))
    shard = [runs["ddim", 5, 0], runs["ddim", 3, 1]]
    for cpu_rows, sizes in [(80, [80, 80, 80, 40, 40]), (79, [40] * 8)]:
        monkeypatch.setattr(fusion, "CPU_ROWS", cpu_rows)
        recorder = Recorder(ORACLE)
        bounded(lambda: [drawn() for _, drawn, _ in fusion.draws(job, recorder, shard, fuse=True)])   # noqa: B023
        assert recorder.sizes == sizes, cpu_rows
    assert fusion.can_pack(shard, "cuda") and fusion.can_pack(shard, "cpu") is False   # CPU_ROWS is 79 here
    assert fusion.call_rows({"n_samples": 4, "n_measurements": 3}) == 12


def test_calls_that_need_gradients_are_answered_alone():
    group = fusion.FusedGroup(Recorder(ORACLE), 2)
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    gradients = {}

    def with_gradient():
        leaf = x.clone().requires_grad_(True)
        with torch.enable_grad():
            gradients["fused"] = torch.autograd.grad(group.call(0, leaf, 0.8).pow(2).sum(), leaf)[0]
        group.leave(0)

    def without():
        with torch.no_grad():
            group.call(1, x, 0.5)
        group.leave(1)

    workers = [threading.Thread(target=work, daemon=True) for work in (with_gradient, without)]
    for worker in workers:
        worker.start()
    bounded(group.serve)
    for worker in workers:
        worker.join(BOUND_S)
    leaf = x.clone().requires_grad_(True)
    expected = torch.autograd.grad(ORACLE(leaf, 0.8).pow(2).sum(), leaf)[0]
    assert torch.equal(gradients["fused"], expected) and group.denoiser.sizes == [5, 5]


@pytest.fixture
def one_thread():
    """One torch thread, as a run_shard job computes (runs.source.use_threads): several fight on a loaded machine."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.mark.parametrize("source", ["oracle", "mlp", "unet", "adm", "ncsnpp"])
def test_a_score_source_takes_one_sigma_per_row(source, one_thread):
    """What a fused call sends: the rows of two calls, each at its own sigma (float64 per row);
    the pretrained adapters with the small random-weight networks of tests/fixtures/pretrained."""
    from diffsweep import pretrained
    from diffsweep.models import UNet
    torch.manual_seed(0)
    denoiser, shape, dtype = {
        "oracle": lambda: (ORACLE, (2,), torch.float64),
        "mlp": lambda: (PreconditionedDenoiser(MLP((2,)), "eps"), (2,), torch.float32),
        "unet": lambda: (PreconditionedDenoiser(UNet((1, 8, 8), channels=(8, 16), norm_groups=4), "edm"), (1, 8, 8),
                         torch.float32),
        "adm": lambda: (pretrained.load_pretrained("adm_ffhq256", PRETRAINED / "adm_small.pt"), (3, 32, 32),
                        torch.float32),
        "ncsnpp": lambda: (pretrained.load_pretrained("ncsnpp_ffhq256", PRETRAINED / "ncsnpp_small.pth"), (3, 32, 32),
                           torch.float32),
    }[source]()
    first, second = torch.randn(3, *shape, dtype=dtype), torch.randn(2, *shape, dtype=dtype)
    with torch.no_grad():
        rows = denoiser(torch.cat([first, second]), torch.tensor([0.5] * 3 + [7.0] * 2, dtype=torch.float64))
        expected = torch.cat([denoiser(first, 0.5), denoiser(second, 7.0)])
    assert ((rows - expected).abs() <= 1e-5 * expected.abs().max()).all()


def test_an_error_between_handing_in_a_call_and_waiting_for_it_does_not_hold_the_group(monkeypatch):
    """Member 0 raises right after handing in its call (before it waits for the answer), while
    member 1 already waits: member 0's call must leave with it and member 1 be answered."""
    group = fusion.FusedGroup(Recorder(ORACLE), 2)
    x = torch.randn(5, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    one_waits, outcome, raised = threading.Event(), {}, []
    pass_turn = fusion.FusedGroup.pass_turn

    def failing_pass_turn(self, *args):
        pass_turn(self, *args)
        name = threading.current_thread().name
        if name == "member-1":
            one_waits.set()
        elif name == "member-0" and not raised:    # its call, not its leave
            raised.append(1)
            raise RuntimeError("raised after handing in its call")

    monkeypatch.setattr(fusion.FusedGroup, "pass_turn", failing_pass_turn)

    def member(index):
        if index == 0:
            assert one_waits.wait(BOUND_S)     # handshake: member 1's call waits first
        try:
            outcome[index] = group.call(index, x, 0.5 + index)
        except RuntimeError as error:
            outcome[index] = error
        group.leave(index)

    workers = [threading.Thread(target=member, args=(index,), name=f"member-{index}", daemon=True) for index in (0, 1)]
    for worker in workers:
        worker.start()
    bounded(group.serve)
    for worker in workers:
        worker.join(BOUND_S)
    assert isinstance(outcome[0], RuntimeError)
    assert torch.equal(outcome[1], ORACLE(x, 1.5)) and group.denoiser.sizes == [5]


def test_a_run_raising_between_its_calls_leaves_the_others_intact(runs):
    """A sampler that raises in its own code while it holds the turn (after its second call)."""
    draw = drawer(torch.float64)

    class Broken(Exception):
        pass

    def raising_after_two_calls(run, denoiser):
        if run["seed"] != 1:
            return draw(run, denoiser)
        calls = []

        def counting(x, sigma):
            calls.append(1)
            if len(calls) == 3:
                raise Broken("raised in the sampler's own code")
            return denoiser(x, sigma)
        return draw(run, counting)

    shard = [runs["ddim", 5, 0], runs["ddim", 3, 1], runs["rw", 6, 0]]
    outcomes = fused(raising_after_two_calls, ORACLE, shard)
    with pytest.raises(Broken):
        outcomes[1]()
    for index in (0, 2):
        assert torch.equal(outcomes[index]()[0], alone(draw, ORACLE, shard[index])[0])


class PerRowRefused:
    """A score source that takes one sigma for the whole batch only (a plugin's, say)."""

    def __call__(self, x, sigma):
        if torch.is_tensor(sigma) and sigma.ndim > 0:
            raise ValueError("one sigma per batch, please")
        return ORACLE(x, sigma)


def test_a_denoiser_refusing_one_sigma_per_row_falls_back_with_one_warning(runs, caplog):
    draw = drawer(torch.float64)
    shard = [runs["ddim", 5, 0], runs["ddim", 3, 1], runs["rw", 6, 0]]
    with caplog.at_level(logging.WARNING, logger="diffsweep"):
        outcomes = fused(draw, PerRowRefused(), shard)
    for outcome, run in zip(outcomes, shard):
        assert torch.equal(outcome()[0], alone(draw, ORACLE, run)[0])
    warnings = [record.getMessage() for record in caplog.records if "answered one run at a time" in record.getMessage()]
    assert len(warnings) == 1, warnings     # once per group, though every batch fell back
    assert "ValueError: one sigma per batch, please" in warnings[0] and "3 runs" in warnings[0]


# The wait limit of the groups that must break: far above a batch of these tests even on a loaded machine.
WAIT_S = 1.0


@pytest.mark.parametrize("stuck", ["a run between two calls", "a network call", "a run that never calls again"])
def test_a_wait_past_the_limit_fails_the_groups_runs_still_drawing(runs, stuck):
    """One run (or the network) stops until the test releases it, after the group gave up: the
    other runs fail with FusedGroupBroken naming what the group waited for, and so does the stuck
    one at its next call; one released only after the draw ended is given up one wait limit after
    the group broke (its thread left behind). The draw ends instead of hanging."""
    draw, release, calls = drawer(torch.float64), threading.Event(), []
    shard = [runs["ddim", 5, 0], runs["ddim", 5, 1], runs["rw", 6, 0]]

    def network(x, sigma):
        calls.append(len(x))
        if stuck == "a network call" and len(calls) == 2:
            assert release.wait(BOUND_S)
        return ORACLE(x, sigma)

    def stopping(run, denoiser):
        if stuck == "a network call" or run is not shard[1]:
            return draw(run, denoiser)
        made = []

        def stopping_at_the_third_call(x, sigma):
            made.append(1)
            if len(made) == 3:
                assert release.wait(BOUND_S)
            return denoiser(x, sigma)
        return draw(run, stopping_at_the_third_call)

    def draw_all():
        ended = {}
        for run, outcome in fusion.draw_fused(stopping, network, shard, timeout_s=WAIT_S):
            ended[id(run)] = outcome
            if stuck != "a run that never calls again":
                release.set()    # handshake: the first run handed on failed, so the group gave up
        return ended
    ended = bounded(draw_all)
    release.set()                # the thread left behind ends
    awaited = "network call" if stuck == "a network call" else f"run(s) {shard[1]['id']} to make"
    for run in shard:
        with pytest.raises(fusion.FusedGroupBroken, match=f"waited {WAIT_S:g} s for"):
            ended[id(run)]()
    errors = [str(error) for error in (ended[id(run)].error for run in shard)]
    assert any(awaited in error for error in errors), errors


def test_a_broken_hand_off_invariant_fails_the_group_instead_of_hanging_it(runs, monkeypatch):
    """A hand-off invariant broken mid-draw (a protocol bug): FusedGroup.check breaks the group,
    every run ends failed, none hangs."""
    check, checks = fusion.FusedGroup.check, []

    def failing_check(self):
        checks.append(1)
        if len(checks) == 7:
            self.turn = len(shard)      # the bug: the turn given to a member that does not exist
        check(self)

    monkeypatch.setattr(fusion.FusedGroup, "check", failing_check)
    shard = [runs["ddim", 5, 0], runs["ddim", 5, 1], runs["rw", 6, 0]]
    outcomes = fused(drawer(torch.float64), ORACLE, shard, timeout_s=BOUND_S / 4)
    errors = [outcome.error for outcome in outcomes]
    assert all(isinstance(error, (AssertionError, fusion.FusedGroupBroken)) for error in errors), errors
    assert all("the turn is held by a member that has left" in str(error) for error in errors), errors


# The stress test: at least GROUP_RUNS runs of deterministic and stochastic samplers with random
# step counts and an adaptive one, each fused group compared bit for bit with the runs drawn alone.
STRESS = {
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
    "models": {"oracle": {"source": "oracle"}},
    "samplers": {"ddim": {"family": "ddim", "steps": list(range(1, 21))},
                 "ddpm": {"family": "ddpm", "steps": list(range(1, 21))},
                 "rw": {"family": "random_walk", "schedule": "sigmoid", "steps": list(range(1, 21)),
                        "knobs": {"eps": 0.7, "T0": 0.1}},
                 "adaptive": {"family": "dpm_adaptive", "steps": 10}},
    "seeds": [0, 1],
    "data": {"n_train": 100, "n_reference": 200},
    "sampling": {"n_samples": 4},
}
STRESS_RUNS = max(64, fusion.GROUP_RUNS)


@pytest.fixture(scope="module")
def stress_pool():
    """Every run of STRESS, and their draws alone (filled as the repeats need them)."""
    built = grid.build(config.prepare(STRESS))
    return [grid.run_dict(run) for run in built.runs.values()], {}


@pytest.mark.parametrize("repeat", range(3))
def test_stress_many_runs_with_random_step_counts_equal_their_draws_alone(stress_pool, repeat):
    pool, by_itself = stress_pool
    shard = random.Random(repeat).sample(pool, STRESS_RUNS)
    draw = drawer(torch.float64)
    for run in shard:
        if run["id"] not in by_itself:
            by_itself[run["id"]] = alone(draw, ORACLE, run)
    outcomes = fused(draw, ORACLE, shard)
    assert len({run["steps"] for run in shard}) > 10          # random step counts, many of them
    for run, outcome in zip(shard, outcomes, strict=True):
        samples, nfe, counted, wall = outcome()
        expected, expected_nfe, *_ = by_itself[run["id"]]
        assert torch.equal(samples, expected), run["id"]
        assert nfe == counted == expected_nfe and wall >= 0


def test_the_wait_limit_default_is_the_configs():
    """fusion.TIMEOUT_S (for callers without a config) is jobs.fuse_timeout_s's schema default."""
    assert config.prepare({})["jobs"]["fuse_timeout_s"] == fusion.TIMEOUT_S
