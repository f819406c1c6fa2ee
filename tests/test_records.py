"""Fault injection on the run pipeline (diffsweep.runs), without Snakemake: a job killed with
kill -9 while sampling or while writing a table, a truncated record file (a torn last line), a
truncated or changed sample archive, a truncated trained checkpoint. Each fault is named when it
is met, loses nothing, and the sweep then ends with the same table as an uninterrupted run. Also:
done detection is run-level (any record file, latest line wins), and a run's metrics do not
depend on which runs share its job."""

import copy
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from diffsweep import config, io, jobs, runs
from diffsweep.runs import join, loop
from diffsweep import grid as ds_grid

ROOT = Path(__file__).resolve().parents[1]
CONFIG = {
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
    "models": {"oracle": {"source": "oracle"},
               "mlp": {"source": "trained", "arch_params": {"hidden": 32, "depth": 2}, "steps": 20, "batch_size": 64,
                       "log_every": 10}},
    "samplers": {"ddim": {"family": "ddim", "steps": [3, 5]}},
    "data": {"n_train": 200, "n_reference": 200},
    "sampling": {"n_samples": 100},
    "metrics": {"likelihood": {"points": 0}},
}
# Columns that differ between two computations of the same run (fused_with: a recomputed run draws
# with the runs left to draw, not with those of the first computation).
WHEN = ["wall_s", "fused_with", "finished"]


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """(config, grid, results folder of an uninterrupted sweep, its table without WHEN)."""
    cfg = config.prepare(copy.deepcopy(CONFIG))
    grid = ds_grid.build(cfg)
    results = tmp_path_factory.mktemp("clean") / "results"
    (data,) = grid.datasets.values()
    folder = results / "data" / data.id
    jobs.prepare_data(ds_grid.data_dict(data), folder / "train.npz", folder / "reference.npz")
    for model in grid.trained_models():
        train(model, results)
    sweep(cfg, grid, results)
    return cfg, grid, results, table(grid, results)


def train(model, results) -> Path:
    checkpoint = results / "models" / model.id / "checkpoint.pt"
    jobs.train_model(ds_grid.model_dict(model), results / "data" / model.data.id / "train.npz", checkpoint,
                     checkpoint.parent / "train_log.parquet", device="cpu")
    return checkpoint


def sweep(cfg, grid, results) -> None:
    """What the workflow does: every pending run (not `ok`/`diverged`) in one shard per model."""
    done = runs.done_runs(results, grid.runs)
    for model in grid.models.values():
        pending = [ds_grid.run_dict(run) for run_id, run in sorted(grid.runs.items())
                   if run.model.id == model.id and run_id not in done]
        if pending:
            shard(cfg, model, pending, results)


def shard(cfg, model, run_dicts, results, shard_name="shard") -> None:
    checkpoint = results / "models" / model.id / "checkpoint.pt" if model.source == "trained" else None
    loop.run_shard(ds_grid.model_dict(model), run_dicts, results / "data" / model.data.id / "reference.npz",
                   checkpoint, results, results / "shards" / f"{model.id}.{shard_name}.json", options(cfg),
                   device="cpu", log_path="logs/run_shard/x.log")


def options(cfg) -> dict:
    return {"metrics": {k: v for k, v in cfg["metrics"].items() if k != "likelihood"}}


def table(grid, results):
    return join.frame("generation", grid.manifest_rows("generation"), results).drop(columns=WHEN)


@pytest.fixture
def copied(clean, tmp_path):
    """A copy of the clean results to break."""
    cfg, grid, results, expected = clean
    target = tmp_path / "results"
    shutil.copytree(results, target)
    return cfg, grid, target, expected


def truncate(path: Path, keep: float = 0.5) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def record_file(results, run_id: str) -> tuple[Path, int]:
    """(the record file holding a run's latest line, that line's number)."""
    name, line = runs.index(results)[run_id].where.rsplit(":", 1)
    return results / "records" / name, int(line)


def forget(results, run_ids) -> None:
    """Delete the record lines of runs (`diffsweep forget`, what docs/running.md says to do to redo a run)."""
    assert runs.forget(results, run_ids) >= len(run_ids)


def run_ids(grid, source: str) -> list[str]:
    return sorted(run_id for run_id, run in grid.runs.items() if run.model.source == source)


def assert_same(actual, expected) -> None:
    import pandas as pd
    pd.testing.assert_frame_equal(actual, expected)
    assert actual.attrs == expected.attrs


def test_a_torn_record_line_is_named_recomputed_and_the_table_shows_it_corrupt_meanwhile(copied, caplog):
    cfg, grid, results, expected = copied
    path, _ = record_file(results, run_ids(grid, "oracle")[0])
    lines = path.read_bytes().splitlines(keepends=True)
    bad = json.loads(lines[-1])["run_id"]
    path.write_bytes(b"".join(lines[:-1]) + lines[-1][:100])      # a job killed while writing its last line
    with caplog.at_level(logging.WARNING, logger="diffsweep"):
        done = runs.done_runs(results, grid.runs)
    assert done == set(grid.runs) - {bad}
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"corrupt run record: {path} line {len(lines)}: unreadable (JSONDecodeError")
    assert warning.endswith(f"run {bad} will be recomputed")
    meanwhile = table(grid, results).set_index("run_id")
    assert meanwhile.loc[bad, "status"] == "corrupt" and "JSONDecodeError" in meanwhile.loc[bad, "error"]
    # the other runs as the uninterrupted sweep has them (the 20-step MLP's samples ran away: `diverged`)
    others = expected.set_index("run_id").drop(index=bad)["status"]
    assert meanwhile.drop(index=bad)["status"].equals(others) and set(others) <= set(runs.DONE_STATUSES)

    sweep(cfg, grid, results)          # the torn line is ended, and stays one ignored line
    assert path.read_bytes().count(b"\n") == len(lines) + 1
    assert_same(table(grid, results), expected)
    caplog.clear()
    path.write_bytes(path.read_bytes() + b'{"kind": "gener')      # a torn line that names no run
    with caplog.at_level(logging.WARNING, logger="diffsweep"):
        assert runs.done_runs(results, grid.runs) == set(grid.runs)
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"ignored a broken record line (a job killed while writing it?): {path} line "
                              f"{len(lines) + 2}: unreadable")


@pytest.mark.parametrize("fault", ["missing key", "unknown status", "beyond its archive"])
def test_a_record_that_parses_but_cannot_be_trusted_is_corrupt(copied, fault):
    _, grid, results, _ = copied
    run_id = run_ids(grid, "oracle")[0]
    path, number = record_file(results, run_id)
    lines = path.read_text().splitlines(keepends=True)
    record = json.loads(lines[number - 1])
    if fault == "missing key":
        del record["metrics"]
    elif fault == "unknown status":
        record["status"] = "done"
    else:
        record["files"]["samples.npz"]["offset"] += 10 ** 9
    lines[number - 1] = json.dumps(record) + "\n"
    path.write_text("".join(lines))
    status, _, problem = runs.run_state(results, run_id)
    assert status == "corrupt"
    assert {"missing key": f"{path} line {number}: lacks metrics",
            "unknown status": f"{path} line {number}: status 'done' is not one of ok, diverged, failed",
            "beyond its archive": f"{path.with_suffix('.archive')}: "}[fault] in problem
    assert run_id not in runs.done_runs(results, grid.runs)
    with pytest.raises(runs.CorruptRecord, match=str(path.with_suffix(".archive" if "archive" in fault else ".jsonl"))):
        runs.read_record(results, run_id)


def test_done_detection_reads_every_record_file_and_the_latest_line_wins(copied):
    _, grid, results, _ = copied
    first, second = run_ids(grid, "oracle")
    path, _ = record_file(results, first)
    path.rename(results / "records" / "a_shard_of_an_earlier_config.jsonl")    # the config moved shard boundaries
    assert runs.done_runs(results, grid.runs) == set(grid.runs)
    ok = runs.read_record(results, first)
    failed = {**ok, "status": "failed", "error": "RuntimeError: boom", "log": None}
    (results / "records" / "later.jsonl").write_text(json.dumps(failed) + "\n")
    assert runs.run_state(results, first)[0] == "ok"      # a stale failed line never undoes a done run
    forget(results, [second])
    retried = results / "records" / "retried.jsonl"
    retried.write_text("".join(json.dumps({**ok, "run_id": second, "status": status}) + "\n"
                               for status in ("failed", "ok")))
    assert runs.run_state(results, second)[0] == "ok"
    before = runs.attempt(results, [second])
    retried.write_text(json.dumps({**ok, "run_id": second, "status": "failed", "error": "e", "log": None}) + "\n")
    assert runs.run_state(results, second)[0] == "failed" and runs.attempt(results, [second]) != before


def test_a_runs_stored_files_are_extracted_and_a_forgotten_run_is_pending(copied, tmp_path, capsys):
    import numpy as np

    from diffsweep import cli

    _, grid, results, _ = copied
    run_id = run_ids(grid, "oracle")[0]
    assert cli.main(["extract", run_id, "--results", str(results), "--out", str(tmp_path / "out")]) == 0
    folder = tmp_path / "out" / run_id
    assert capsys.readouterr().out == f"{run_id} (ok): {folder / 'bootstrap.npz'}, {folder / 'samples.npz'}\n"
    np.testing.assert_array_equal(np.load(tmp_path / "out" / run_id / "samples.npz")["x"],
                                  runs.read_run_arrays(results, run_id)["x"])
    assert cli.main(["forget", run_id, "--results", str(results)]) == 0
    assert "deleted 1 record line(s) of 1 run(s)" in capsys.readouterr().out
    assert runs.done_runs(results, grid.runs) == set(grid.runs) - {run_id}


def test_a_truncated_sample_archive_is_found_at_parse_time_and_recomputed(copied, caplog):
    cfg, grid, results, expected = copied
    # the run stored last in the shard's archive (fused runs are stored in the order their draws end)
    bad = max(run_ids(grid, "oracle"), key=lambda run_id: runs.read_record(results, run_id)["files"]["samples.npz"]["offset"])
    record = runs.read_record(results, bad)
    archive = results / "records" / record["archive"]
    listed = record["files"]["samples.npz"]
    archive.write_bytes(archive.read_bytes()[: listed["offset"] + listed["bytes"] // 2])
    with caplog.at_level(logging.WARNING, logger="diffsweep"):
        assert runs.done_runs(results, grid.runs) == set(grid.runs) - {bad}
    (warning,) = [r.getMessage() for r in caplog.records]
    assert f"{archive}: {archive.stat().st_size} bytes, but " in warning and f"puts samples.npz of run {bad}" in warning
    with pytest.raises(runs.CorruptRecord, match=str(archive)):
        runs.read_run_arrays(results, bad)

    sweep(cfg, grid, results)
    assert_same(table(grid, results), expected)
    assert runs.read_run_arrays(results, bad)["x"].shape == (100, 2)


def test_a_sample_archive_changed_in_place_fails_its_checksum_and_the_figure_is_still_made(copied, caplog):
    import numpy as np
    import pandas as pd

    from diffsweep.plots import samples

    _, grid, results, _ = copied
    # the run the figure draws: the oracle's ddim run with the most steps
    bad = max(run_ids(grid, "oracle"), key=lambda run_id: (grid.runs[run_id].steps, -grid.runs[run_id].seed))
    record = runs.read_record(results, bad)
    archive = results / "records" / record["archive"]
    listed = record["files"]["samples.npz"]
    data = bytearray(archive.read_bytes())
    data[listed["offset"] + listed["bytes"] - 100] ^= 0xFF       # same size: only the checksum can tell
    archive.write_bytes(bytes(data))
    assert bad in runs.done_runs(results, grid.runs)       # parse time reads no archive
    with pytest.raises(runs.CorruptRecord, match=f"{archive}: samples.npz of run {bad} at byte {listed['offset']}: "
                                                 f"its sha256 differs from its record's; `diffsweep forget {bad}` "
                                                 f"and re-run to recompute it"):
        runs.read_run_arrays(results, bad)
    figure = results / "plots" / "samples.png"
    generation = join.frame("generation", grid.manifest_rows("generation"), results)
    reference = io.read_arrays(results / "data" / grid.runs[bad].model.data.id / "reference.npz")["x"]
    with caplog.at_level(logging.WARNING, logger="diffsweep"):
        samples.sample_grid(pd.DataFrame(generation), "ring8", results, reference, figure)
    assert figure.stat().st_size > 1000
    assert any(f"samples of run {bad} left out of the figure: {archive}" in r.getMessage() for r in caplog.records)
    assert np.isfinite(reference).all()


def test_a_truncated_checkpoint_fails_its_runs_as_data_and_retraining_restores_the_table(copied):
    cfg, grid, results, expected = copied
    (model,) = grid.trained_models()
    checkpoint = results / "models" / model.id / "checkpoint.pt"
    truncate(checkpoint)
    forget(results, run_ids(grid, "trained"))           # its runs pending (e.g. a new preset)
    sweep(cfg, grid, results)                           # the job succeeds; its runs are recorded as failed
    failures = runs.failed_runs(results, grid.runs)
    assert [f["run_id"] for f in failures] == run_ids(grid, "trained")
    assert all(f["log"] == "logs/run_shard/x.log" and f["error"] for f in failures)
    assert set(table(grid, results).set_index("run_id").loc[run_ids(grid, "trained"), "status"]) == {"failed"}

    checkpoint.unlink()                                 # the recovery docs/running.md gives
    train(model, results)
    sweep(cfg, grid, results)                           # failed runs are retried
    assert_same(table(grid, results), expected)


# A shard job whose second run blocks while sampling, so the test can kill it there.
KILLED_JOB = """
import pathlib, sys, time
from diffsweep import config, grid as ds_grid, runs
from diffsweep.runs import generation
sys.path.insert(0, sys.argv[3])
import test_records as t
cfg = config.prepare(t.copy.deepcopy(t.CONFIG))
grid = ds_grid.build(cfg)
results, blocked = pathlib.Path(sys.argv[1]), sys.argv[2]
real = generation.draw_samples
def draw_samples(run, *args, **kwargs):   # the blocked run's draw never ends (made after its network calls,
    drawn = real(run, *args, **kwargs)     # so a fused shard-mate is not held back by it)
    if run["id"] == blocked:
        (results / "blocked").touch()
        time.sleep(600)
    return drawn
generation.draw_samples = draw_samples
(model,) = [m for m in grid.models.values() if m.source == "oracle"]
t.shard(cfg, model, [ds_grid.run_dict(grid.runs[i]) for i in t.run_ids(grid, "oracle")], results)
"""


def test_kill_9_during_sampling_then_during_a_table_write_loses_nothing(copied):
    cfg, grid, results, expected = copied
    # the runs draw fused: the 3-step run ends its draw, and is stored, while the 5-step run still draws
    first, blocked = sorted(run_ids(grid, "oracle"), key=lambda run_id: grid.runs[run_id].steps)
    forget(results, [first, blocked])
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    job = subprocess.Popen([sys.executable, "-c", KILLED_JOB, str(results), blocked, str(ROOT / "tests")], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    # kill once the blocked run is still sampling and its shard-mate has been stored
    while not ((results / "blocked").exists() and runs.run_state(results, first)[0] == "ok"):
        assert job.poll() is None, job.communicate()[0]
        assert time.monotonic() < deadline
        time.sleep(0.01)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert runs.run_state(results, first)[0] == "ok" and runs.run_state(results, blocked)[0] == "missing"
    # what a kill in the middle of storing a run leaves: its files in the job's staging folder (one
    # half written), bytes at the end of the archive that no record lists, a torn record line
    (model,) = [m for m in grid.models.values() if m.source == "oracle"]
    shard = f"{model.id}.shard"
    staging = runs.staging_folder(results, shard)
    interrupted = [staging / blocked / ".samples.npz.x1y2z3.tmp", staging / blocked / "samples.npz"]
    interrupted[0].parent.mkdir(parents=True)
    for path in interrupted:
        path.write_bytes(b"partial")
    with open(runs.archive_file(results, shard), "ab") as archive:
        archive.write(b"partial")
    with open(runs.record_file(results, shard), "ab") as records:
        records.write(b'{"run_id":"' + blocked.encode() + b'","kind":"gen')
    tables = results / "tables"
    tables.mkdir()
    io.write_parquet(tables / "generation.parquet", expected)     # the table of an earlier invocation
    half_table = tables / ".generation.parquet.a1b2c3.tmp"
    half_table.write_bytes(b"partial")
    past = io.STARTED - 60          # before this process started: what an earlier, killed job left
    for path in (*interrupted, interrupted[0].parent, half_table):
        os.utime(path, (past, past))
    fresh = tables / ".training.parquet.d4e5f6.tmp"      # a live write of another job: kept
    fresh.write_bytes(b"partial")
    assert runs.run_state(results, blocked)[0] == "corrupt"

    sweep(cfg, grid, results)
    assert not staging.exists()
    io.write_parquet(tables / "generation.parquet", table(grid, results))   # the aggregate
    assert not half_table.exists() and fresh.exists()
    assert_same(io.read_parquet(tables / "generation.parquet"), expected)
    assert runs.read_run_arrays(results, blocked)["x"].shape == (100, 2)


def test_a_runs_metrics_do_not_depend_on_the_runs_sharing_its_job(clean, tmp_path):
    cfg, grid, results, _ = clean
    model = next(m for m in grid.models.values() if m.source == "oracle")
    first, second = (ds_grid.run_dict(grid.runs[i]) for i in run_ids(grid, "oracle"))
    alone, packed = tmp_path / "alone", tmp_path / "packed"
    for folder in (alone, packed):
        shutil.copytree(results / "data", folder / "data")
    shard(cfg, model, [second], alone)
    shard(cfg, model, [first, second], packed)     # the first run fills the job's metric cache
    metrics = [runs.read_record(folder, second["id"])["metrics"] for folder in (alone, packed)]
    assert metrics[0] == metrics[1] and "energy_distance" in metrics[0]
