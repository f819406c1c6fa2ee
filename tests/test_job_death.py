"""A shard job whose process dies while its runs draw (a plugin sampler that calls os._exit, like a
segfault in an extension): the job notes which runs draw before they start (the drawing note,
runs.DrawingNote) and its log names them; the next attempt draws those runs alone, one at a time;
the attempt after a death during a lone run records that run as `failed`, naming the death, and
every other run ends `ok` with the metrics of an uninterrupted run. Also the note itself (written,
dropped run by run, a torn one ignored), the attempt key, a segfault's fatal error, and what blames
no run: a SIGTERM, a Python error that ends the job, a sampler's sys.exit (a failed run)."""

import copy
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from diffsweep import cli, config, io, jobs, runs
from diffsweep.runs import loop, generation
from diffsweep import grid as ds_grid
from diffsweep.samplers.registry import SAMPLERS

ROOT = Path(__file__).resolve().parents[1]

# `zcrash` (sorted last) dies mid-draw once both ddim runs are stored; `patient` keeps calling the
# denoiser while another run draws, so it is still drawing when `zcrash` kills the job, and draws
# exactly like a plain Euler run when alone. Both read the drawing note of the results folder
# named by DIFFSWEEP_TEST_RESULTS: handshakes, no timing.
PLUGIN = '''
import json, os, pathlib
from diffsweep.samplers import Knob, register


def drawing():
    """The runs drawing now (None without a note: a diffsweep that keeps none)."""
    notes = list(pathlib.Path(os.environ["DIFFSWEEP_TEST_RESULTS"], "records").glob("*.drawing"))
    return json.loads(notes[0].read_text())["drawing"] if notes else None


@register("deadly", knobs={"role": Knob("str", "patient", "patient or crash", choices=["patient", "crash"])},
          description="Euler steps that outlast the other drawing runs (patient) or kill the process (crash)")
def deadly(denoise, x, sigmas, noise, *, role, callback=None):
    levels, calls = list(sigmas) + [0.0], 0
    for sigma, sigma_next in zip(levels[:-1], levels[1:]):
        x = x + (sigma_next - sigma) * (x - denoise(x, sigma)) / sigma
        calls += 1
    for _ in range(100000):
        running = drawing()
        if role == "crash" and (running is None or len(running) <= 2):    # the ddim runs are stored: die mid-draw
            os._exit(3)
        if role == "patient" and (running is None or len(running) == 1):
            return x, calls
        denoise(x, levels[-2])    # stays in the fused group while the others draw
        calls += 1
    raise RuntimeError("the other runs never ended")
'''

CONFIG = {
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
    "models": {"oracle": {"source": "oracle"}},
    "samplers": {"ddim": {"family": "ddim", "steps": [3, 4]},
                 "patient": {"family": "deadly", "steps": 3, "knobs": {"role": "patient"}},
                 "zcrash": {"family": "deadly", "steps": 3, "knobs": {"role": "crash"}}},
    "seeds": [0],
    "data": {"n_train": 50, "n_reference": 50},
    "sampling": {"n_samples": 20},
    "metrics": {"likelihood": {"points": 0}},
}

# One attempt of the shard job, as scripts/run_shard.py makes it (its runs from the shard id, the
# done ones skipped), in a process of its own.
JOB = """
import json, sys
from diffsweep import grid as ds_grid, runs
from diffsweep.runs import loop
from diffsweep.logs import setup_logging
cfg, results, shard, log_path = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
setup_logging(log_path)
model, shard_runs = ds_grid.shard_job(cfg, shard)
done = runs.done_runs(results, [run["id"] for run in shard_runs])
pending = [run for run in shard_runs if run["id"] not in done]
loop.run_shard(model, pending, f"{results}/data/{model['data']['id']}/reference.npz", None, results,
               f"{results}/shards/{shard}.json", {"metrics": {k: v for k, v in cfg["metrics"].items() if k != "likelihood"}},
               device="cpu",
               plugins=cfg["plugins"], log_path=log_path)
"""


@pytest.fixture(autouse=True)
def plugin_unregistered_after(monkeypatch):
    """The plugin's sampler is registered in this process only while a test runs (other tests list
    every registered sampler)."""
    monkeypatch.setattr(SAMPLERS, "_entries", dict(SAMPLERS._entries))
    yield
    sys.modules.pop("diffsweep_plugin_deadly_plugin", None)


@pytest.fixture
def sweep(tmp_path, monkeypatch):
    """(config, grid, shard id, results folder holding the dataset, the job's log)."""
    plugin = tmp_path / "deadly_plugin.py"
    plugin.write_text(PLUGIN)
    cfg = config.prepare({**copy.deepcopy(CONFIG), "plugins": [str(plugin)]})
    grid = ds_grid.build(cfg)
    (shard,) = grid.shards(ds_grid.runs_per_job(cfg))
    results = tmp_path / "results"
    (data,) = grid.datasets.values()
    jobs.prepare_data(ds_grid.data_dict(data), results / "data" / data.id / "train.npz",
                      results / "data" / data.id / "reference.npz")
    monkeypatch.setenv("DIFFSWEEP_TEST_RESULTS", str(results))
    return cfg, grid, shard, results, tmp_path / "logs" / f"{shard}.log"


def attempt(sweep) -> subprocess.CompletedProcess:
    cfg, _, shard, results, log_path = sweep
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run([sys.executable, "-c", JOB, json.dumps(cfg, default=io.jsonable), str(results), shard,
                           str(log_path)], env=env, capture_output=True, text=True, timeout=300)


def ids(grid, preset: str) -> list[str]:
    return sorted(run_id for run_id, run in grid.runs.items() if run.preset == preset)


def test_a_run_that_kills_its_job_is_isolated_and_recorded_failed_and_the_others_end_ok(sweep, tmp_path, monkeypatch):
    cfg, grid, shard, results, log_path = sweep
    ddim, (patient,), (crash,) = ids(grid, "ddim"), ids(grid, "patient"), ids(grid, "zcrash")
    note = runs.records_folder(results) / f"{shard}.drawing"
    key = runs.attempt(results, grid.runs)

    first = attempt(sweep)        # all four draw fused; the ddim runs are stored, then the job dies
    assert first.returncode == 3, first.stderr[-2000:]
    assert f"drawing 4 runs fused: {', '.join(sorted(grid.runs))}" in log_path.read_text()
    assert json.loads(note.read_text())["drawing"] == [patient, crash]
    assert {run_id: runs.run_state(results, run_id)[0] for run_id in grid.runs} == \
        {ddim[0]: "ok", ddim[1]: "ok", patient: "missing", crash: "missing"}
    assert runs.attempt(results, grid.runs) != key      # Snakemake reruns the shard (params trigger)
    key = runs.attempt(results, grid.runs)

    second = attempt(sweep)       # the suspects draw alone: `patient` is stored, `zcrash` kills the job again
    assert second.returncode == 3, second.stderr[-2000:]
    log = log_path.read_text()
    assert f"run {patient} draws alone: it was drawing when a job of this shard died (1 suspect(s) after it)" in log
    assert f"run {crash} draws alone" in log
    assert runs.run_state(results, patient)[0] == "ok" and runs.run_state(results, crash)[0] == "missing"
    assert json.loads(note.read_text())["isolating"] and runs.attempt(results, grid.runs) != key

    runs.forget(results, ddim)    # (so that the third attempt has runs to draw fused after the culprit)
    third = attempt(sweep)        # the culprit is recorded failed; the other runs draw fused, as usual
    assert third.returncode == 0, third.stderr[-2000:]
    assert f"drawing 2 runs fused: {', '.join(ddim)}" in log_path.read_text()
    assert not note.exists()
    status, record, _ = runs.run_state(results, crash)
    assert status == "failed" and record["log"] == str(log_path)
    assert record["error"].startswith(f"JobDied: the job's process (pid ") and \
        "died while this run was drawing alone" in record["error"] and "os._exit()" in record["error"]
    assert runs.done_runs(results, grid.runs) == {*ddim, patient}
    # shown like any failed run: the workflow's failure report and `diffsweep status`
    assert f"  {crash}: JobDied: the job's process" in runs.failure_report(runs.failed_runs(results, grid.runs), results)
    status = cli.sweep_status(grid, results, cfg)
    assert status["total"]["failed"] == 1 and status["failures"][0]["run_id"] == crash
    assert status["failures"][0]["error"] == record["error"]

    # the good runs' metrics are those of an uninterrupted job of them alone
    clean = tmp_path / "clean"
    io.write_arrays(clean / "data" / grid.runs[crash].model.data.id / "reference.npz",
                    **io.read_arrays(results / "data" / grid.runs[crash].model.data.id / "reference.npz"))
    monkeypatch.setenv("DIFFSWEEP_TEST_RESULTS", str(clean))
    good = [ds_grid.run_dict(grid.runs[run_id]) for run_id in [*ddim, patient]]
    loop.run_shard(ds_grid.model_dict(grid.runs[crash].model), good,
                   clean / "data" / grid.runs[crash].model.data.id / "reference.npz", None, clean,
                   clean / "shards" / f"{shard}.json", {"metrics": {k: v for k, v in cfg["metrics"].items() if k != "likelihood"}},
                   device="cpu",
                   plugins=cfg["plugins"], fuse=False)
    for run_id in [*ddim, patient]:
        expected = runs.read_record(clean, run_id)
        assert runs.read_record(results, run_id)["metrics"] == expected["metrics"]
        assert runs.read_record(results, run_id)["nfe"] == expected["nfe"]


@pytest.mark.parametrize("isolating", [True, False])
def test_a_job_stopped_by_sigterm_blames_no_run(tmp_path, monkeypatch, isolating):
    killed = []
    monkeypatch.setattr(os, "kill", lambda pid, signum: killed.append((pid, signum)))   # the job's end
    before = signal.getsignal(signal.SIGTERM)
    note = runs.DrawingNote(tmp_path, "shard")
    with loop.blameless_unless_killed(note):
        # a suspect drawing alone (a job died before), or a group that draws as usual
        note.write(["a-1"], isolating=True, suspects=["b-2"]) if isolating else note.write(["a-1", "b-2"])
        signal.raise_signal(signal.SIGTERM)          # preemption, a time limit, scancel
    assert killed == [(os.getpid(), signal.SIGTERM)] and signal.getsignal(signal.SIGTERM) == before
    left = note.read()
    if isolating:       # still suspects, none the culprit
        assert (left["drawing"], left["suspects"]) == ([], ["a-1", "b-2"])
        assert loop.culprit_and_suspects(left, [{"id": "a-1"}, {"id": "b-2"}]) == (None, [{"id": "a-1"}, {"id": "b-2"}])
    else:
        assert left is None


@pytest.mark.parametrize("fuse", [True, False])
def test_a_sampler_that_calls_sys_exit_is_a_failed_run_and_the_job_goes_on(sweep, monkeypatch, fuse):
    _, grid, shard, results, _ = sweep
    ddim = ids(grid, "ddim")
    real = generation.draw_samples

    def draw_samples(run, *args, **kwargs):
        if run["id"] == ddim[0]:
            raise SystemExit(0)
        return real(run, *args, **kwargs)

    monkeypatch.setattr(generation, "draw_samples", draw_samples)
    (model,) = grid.models.values()
    loop.run_shard(ds_grid.model_dict(model), [ds_grid.run_dict(grid.runs[run_id]) for run_id in ddim],
                   results / "data" / model.data.id / "reference.npz", None, results,
                   results / "shards" / f"{shard}.json", {"metrics": {"n_projections": 16}}, device="cpu", fuse=fuse)
    assert [runs.run_state(results, run_id)[0] for run_id in ddim] == ["failed", "ok"]
    assert runs.read_record(results, ddim[0])["error"] == "SystemExit: 0"


def note_at(tmp_path):
    return runs.DrawingNote(tmp_path, "oracle-0123456789abcdef.0123456789abcdef")


def test_the_drawing_note_is_written_durably_dropped_run_by_run_and_gone_when_nothing_draws(tmp_path):
    note = note_at(tmp_path)
    assert note.read() is None
    note.write(["a-1", "b-2"])
    written = runs.DrawingNote(tmp_path, note.path.name.removesuffix(".drawing")).read()   # another process's view
    assert (written["drawing"], written["isolating"], written["suspects"]) == (["a-1", "b-2"], False, [])
    assert written["pid"] == os.getpid()
    assert runs.drawing_notes(tmp_path) == dict.fromkeys(["a-1", "b-2"], runs.drawing_notes(tmp_path)["a-1"])
    note.stored("a-1")
    assert note.read()["drawing"] == ["b-2"]
    note.stored("b-2")
    assert not note.path.exists() and runs.drawing_notes(tmp_path) == {}
    # suspects still to draw alone keep the note while nothing draws
    note.write([], suspects=["c-3"])
    assert note.read()["suspects"] == ["c-3"]
    assert not list(note.path.parent.glob(".*.tmp"))      # written atomically


@pytest.mark.parametrize("damage", [b'{"drawing": ["a-1", "b-', b"[3]", b'{"drawing": "a-1", "suspects": []}', b"\xff"])
def test_a_torn_or_damaged_drawing_note_is_named_and_ignored(tmp_path, caplog, damage):
    note = note_at(tmp_path)
    note.path.parent.mkdir(parents=True)
    note.path.write_bytes(damage)
    assert note.read() is None
    assert f"ignored an unreadable drawing note {note.path}" in caplog.text
    assert runs.drawing_notes(tmp_path) == {}
    assert loop.culprit_and_suspects(note.read(), [{"id": "a-1"}]) == (None, [])
    note.write(["a-1"])          # the next job's note replaces it
    assert note.read()["drawing"] == ["a-1"]


def test_which_runs_a_dead_job_leaves_suspected_and_which_one_it_blames():
    a, b, c = ({"id": name} for name in ("a-1", "b-2", "c-3"))
    group = {"drawing": ["c-3", "a-1"], "isolating": False, "suspects": []}
    assert loop.culprit_and_suspects(group, [a, b, c]) == (None, [a, c])       # in the runs' order
    lone = {"drawing": ["b-2"], "isolating": False, "suspects": []}            # not yet drawn as a suspect
    assert loop.culprit_and_suspects(lone, [a, b, c]) == (None, [b])
    isolating = {"drawing": ["b-2"], "isolating": True, "suspects": ["c-3", "a-1"]}
    assert loop.culprit_and_suspects(isolating, [a, b, c]) == (b, [a, c])
    between = {"drawing": [], "isolating": True, "suspects": ["c-3"]}        # died between two suspects
    assert loop.culprit_and_suspects(between, [a, b, c]) == (None, [c])
    assert loop.culprit_and_suspects(isolating, [a, c]) == (None, [a, c])      # done since: not blamed


def test_the_attempt_key_changes_with_a_note_of_its_runs_only(tmp_path):
    key = runs.attempt(tmp_path, ["a-1", "b-2"])
    runs.DrawingNote(tmp_path, "other").write(["c-3"])
    assert runs.attempt(tmp_path, ["a-1", "b-2"]) == key
    note = runs.DrawingNote(tmp_path, "shard")
    note.write(["b-2"])
    noted = runs.attempt(tmp_path, ["a-1", "b-2"])
    assert noted != key
    note.write(["b-2"], isolating=True)
    assert runs.attempt(tmp_path, ["a-1", "b-2"]) not in (key, noted)


def test_a_fatal_signal_is_named_by_the_record_of_the_run_it_killed(tmp_path):
    fatal = tmp_path / "staging" / loop.FATAL_FILE
    note = runs.DrawingNote(tmp_path, "shard")
    note.write(["a-1"], isolating=True)
    crash = ("import ctypes, pathlib, sys; from diffsweep.runs import loop\n"
             "with loop.fatal_errors_into(pathlib.Path(sys.argv[1])): ctypes.string_at(0)")
    died = subprocess.run([sys.executable, "-c", crash, str(fatal)], capture_output=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    assert died.returncode == -signal.SIGSEGV
    message = loop.death_message(note.read(), fatal.read_text())
    assert message.startswith(f"the job's process (pid {os.getpid()} on ") and "died while this run was drawing alone" in message
    assert message.endswith("leaving no record: Fatal Python error: Segmentation fault "
                            "(the next attempt's log has the threads' tracebacks)")
    assert "os._exit()" in loop.death_message(note.read(), "")


def test_a_job_that_stops_on_a_python_error_blames_no_run(sweep, monkeypatch):
    _, grid, shard, results, _ = sweep
    ddim = ids(grid, "ddim")
    real = generation.draw_samples

    def draw_samples(run, *args, **kwargs):
        if run["id"] == ddim[0]:
            raise ValueError("a bug")
        return real(run, *args, **kwargs)

    monkeypatch.setattr(generation, "draw_samples", draw_samples)
    (model,) = grid.models.values()
    with pytest.raises(RuntimeError, match="fail_fast is set"):
        loop.run_shard(ds_grid.model_dict(model), [ds_grid.run_dict(grid.runs[run_id]) for run_id in ddim],
                       results / "data" / model.data.id / "reference.npz", None, results,
                       results / "shards" / f"{shard}.json", {"metrics": {"n_projections": 16}}, device="cpu",
                       fail_fast=True)
    assert runs.DrawingNote(results, shard).read() is None      # the next attempt draws as usual
    assert not (runs.staging_folder(results, shard) / loop.FATAL_FILE).exists()
