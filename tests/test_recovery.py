"""Every recovery docs/running.md gives ("When something goes wrong", "Storage"), through Snakemake
on a copy of the session's smoke run: each recomputes what the docs say it will, and only that,
and the tables end equal to the uninterrupted run's. Records that vanish under a finished sweep
(deleted files, `diffsweep forget`, with or without the shard markers) recompute their runs; the
results folder is locked against a second invocation from another working directory.
(Failed runs and a torn record line: test_failures_workflow; the same faults without Snakemake:
test_records.)"""

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT, snakemake, wait_for
from diffsweep import cli, config, io, runs
from diffsweep.runs import join, loop
from diffsweep import grid as ds_grid

pytestmark = pytest.mark.workflow

# columns that differ between two computations of one run (the code's revision: a commit meanwhile;
# fused_with: a recomputed shard draws only its pending runs together, so its groups are smaller)
WHEN = ["wall_s", "finished", "git_revision", "fused_with"]
GENERATION = "results/tables/generation.parquet"


def copy_of(smoke_run: Path, tmp_path: Path) -> Path:
    """A copy of the smoke run to break (copy2 keeps modification times: nothing looks newer)."""
    workdir = tmp_path / "sweep"
    shutil.copytree(smoke_run, workdir, symlinks=True)
    return workdir


def shards(workdir: Path, configfile: str = "smoke.yaml") -> dict[tuple[str, str, str], str]:
    """(kind, score source name, dataset name) -> shard id of the smoke grid (one shard each)."""
    cfg = config.prepare(yaml.safe_load((workdir / configfile).read_text()))
    grid = ds_grid.build(cfg)
    found = {}
    for shard, run_ids in grid.shards(ds_grid.runs_per_job(cfg)).items():
        run = grid.runs[run_ids[0]]
        key = (run.kind, run.model.name, run.model.data.name)
        assert key not in found, "the smoke grid has one shard per score source and kind"
        found[key] = shard
    return found


def shard_runs(workdir: Path, shard: str) -> list[str]:
    return sorted(io.read_json(workdir / "results" / "shards" / f"{shard}.json")["runs"])


def table(workdir: Path, name: str = "generation"):
    return pd.read_parquet(workdir / "results" / "tables" / f"{name}.parquet").drop(columns=WHEN)


def records_by_run(workdir: Path) -> dict[str, list[bytes]]:
    """Every record line of the results folder, by run."""
    lines = {}
    for path in sorted((workdir / "results" / "records").glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            lines.setdefault(json.loads(line)["run_id"], []).append(line)
    return lines


# --- records that vanish ------------------------------------------------------------------------

def test_records_that_vanish_under_a_finished_sweep_recompute_their_shards_and_only_them(smoke_run, tmp_path):
    workdir = copy_of(smoke_run, tmp_path)
    shard = shards(workdir)
    records = workdir / "results" / "records"
    # a shard's record file deleted with its marker (results/shards/ is only markers) and its log: no
    # trace of the job that ran it; recomputed also when the table is the target named
    unmarked = shard["generation", "mlp", "swissroll"]
    (records / f"{unmarked}.jsonl").unlink()
    (workdir / "results" / "shards" / f"{unmarked}.json").unlink()
    (workdir / "results" / "logs" / "run_shard" / f"{unmarked}.log").unlink()
    assert snakemake(workdir, targets=[GENERATION], dry_run=True) == {"run_shard": 1, "aggregate": 1}
    # the recovery "Storage" gives: a shard's record file and archive deleted together
    deleted = shard["generation", "oracle", "ring8"]
    for suffix in (".jsonl", ".archive"):
        (records / f"{deleted}{suffix}").unlink()
    # `diffsweep forget` of every run of a shard (some of them recomputed before; all, nothing)
    forgotten = shard["generation", "mlp", "ring8"]
    assert cli.main(["forget", *shard_runs(workdir, forgotten), "--results", str(workdir / "results")]) == 0
    plan = snakemake(workdir, dry_run=True)
    # those three shards, then the generation table and what is made from it; nothing upstream
    # (data, training, likelihoods) and not the restoration shard nor its table
    assert plan.get("run_shard") == 3 and plan.get("aggregate") == 1, plan
    assert not {"prepare_data", "train", "likelihood", "restoration_table", "manifest"} & set(plan), plan
    # a truncated archive: the runs whose bytes it lost are recomputed, and the restoration table
    restoration = records / f"{shard['restoration', 'oracle', 'ring8']}.archive"
    restoration.write_bytes(restoration.read_bytes()[:restoration.stat().st_size // 2])
    plan = snakemake(workdir, dry_run=True)
    assert plan.get("run_shard") == 4 and plan.get("restoration_table") == 1, plan
    with held_by_another_process(workdir / "results") as holder:
        assert snakemake(workdir, dry_run=True) == plan       # a dry run is not blocked by the lock
        # a second invocation on the results folder, from another working directory: refused before any job
        with pytest.raises(Exception, match=re.escape(f"results: '{workdir / 'results'}' is in use by another "
                                                      f"snakemake invocation (pid {holder.pid} on ")):
            snakemake(workdir)
    assert not (records / f"{deleted}.jsonl").exists() and not (workdir / "results" / "shards" / f"{unmarked}.json").exists()


def test_deleting_results_shards_or_moving_the_results_folder_recomputes_nothing(smoke_run, tmp_path):
    workdir = copy_of(smoke_run, tmp_path)
    shutil.rmtree(workdir / "results" / "shards")          # "deleting it is always safe"
    assert snakemake(workdir, dry_run=True) == {}
    # moved (modification times kept) and `results:` pointed at it
    (workdir / "elsewhere").mkdir()
    (workdir / "results").rename(workdir / "elsewhere" / "results")
    cfg = yaml.safe_load((workdir / "smoke.yaml").read_text())
    (workdir / "moved.yaml").write_text(yaml.safe_dump({**cfg, "results": "elsewhere/results"}))
    assert snakemake(workdir, "moved.yaml", dry_run=True) == {}
    # into another working directory (Snakemake's metadata stays behind): a pending run is
    # recomputed with --forcerun run_shard, which reruns only the shards with pending runs
    (workdir / "elsewhere" / "moved.yaml").write_text(yaml.safe_dump({**cfg, "results": "results"}))
    grid = ds_grid.build(config.prepare(cfg))
    forgotten = min(run_id for run_id, run in grid.of_kind("generation").items() if (run.model.name, run.model.data.name) == ("mlp", "ring8"))
    assert cli.main(["forget", forgotten, "--results", str(workdir / "elsewhere" / "results")]) == 0
    plan = snakemake(workdir / "elsewhere", "moved.yaml", dry_run=True, forcerun=["run_shard"])
    assert plan.get("run_shard") == 1 and not {"train", "likelihood", "prepare_data"} & set(plan), plan
    # a record names its log relative to its results folder: the tables find it in the moved one
    moved = workdir / "elsewhere" / "results"
    run_id = sorted(grid.of_kind("generation"))[0]
    runs.forget(moved, [run_id])
    runs.ShardStore(moved, "x").append(runs.make_record(ds_grid.run_dict(grid.runs[run_id]), runs.FAILED, None, None,
                                                        "cpu", {}, {"error": "E", "log": "logs/run_shard/x.log"}))
    generation = join.frame("generation", grid.manifest_rows("generation"), moved).set_index("run_id")
    assert generation.loc[run_id, "log"] == f"{moved}/logs/run_shard/x.log"
    assert f"(log: {moved}/logs/run_shard/x.log)" in runs.failure_report(runs.failed_runs(moved, grid.runs), moved)


def test_a_deleted_damaged_checkpoint_or_dataset_is_remade_and_only_what_depends_on_it(smoke_run, tmp_path):
    """A damaged checkpoint or dataset makes the runs that need it fail; the recovery: delete the
    checkpoint, or the dataset's folder, and re-run. Planned: the dataset, the models trained on
    it, their likelihoods and the failed runs' shards; no other shard."""
    workdir = copy_of(smoke_run, tmp_path)
    cfg = config.prepare(yaml.safe_load((workdir / "smoke.yaml").read_text()))
    grid = ds_grid.build(cfg)
    results = workdir / "results"
    shard = shards(workdir)
    model = {m.data.name: m for m in grid.trained_models()}
    checkpoint = results / "models" / model["ring8"].id / "checkpoint.pt"
    dataset = results / "data" / model["swissroll"].data.id
    for damaged in (checkpoint, dataset / "reference.npz"):
        damaged.write_bytes(damaged.read_bytes()[:100])
    for name, damaged in (("ring8", checkpoint), ("swissroll", dataset / "reference.npz")):
        # a pending run of the damaged model's shard (as a new preset's), run as its job would: recorded
        # failed, naming the file
        run = ds_grid.run_dict(grid.runs[shard_runs(workdir, shard["generation", "mlp", name])[0]])
        runs.forget(results, [run["id"]])
        loop.run_shard(ds_grid.model_dict(model[name]), [run], dataset / "reference.npz" if name == "swissroll"
                       else results / "data" / model[name].data.id / "reference.npz", checkpoint if name == "ring8"
                       else results / "models" / model[name].id / "checkpoint.pt", results,
                       results / "shards" / f"{shard['generation', 'mlp', name]}.json", {"metrics": {}}, device="cpu")
        failed = runs.read_record(results, run["id"])
        assert failed["status"] == runs.FAILED and (name == "swissroll" or str(damaged) in failed["error"]), failed
    checkpoint.unlink()
    shutil.rmtree(dataset)
    plan = snakemake(workdir, dry_run=True)
    assert {rule: plan.get(rule) for rule in ("prepare_data", "train", "likelihood", "run_shard", "aggregate")} == \
        {"prepare_data": 1, "train": 2, "likelihood": 2, "run_shard": 2, "aggregate": 1}, plan


def test_the_results_lock_refuses_another_process_until_it_ends(tmp_path):
    results = tmp_path / "results"
    (results / "records").mkdir(parents=True)
    (results / "records" / "x.jsonl").write_text('{"run_id": "a-0123456789abcdef"}\n')
    with held_by_another_process(results) as holder:
        with pytest.raises(runs.ResultsInUse) as refused:
            runs.lock_results(results)
        assert str(refused.value).startswith(f"results: '{results}' is in use by another snakemake invocation (pid "
                                             f"{holder.pid} on ") and f"working directory {tmp_path}" in str(refused.value)
        # `diffsweep forget` while a workflow runs on the folder: refused, nothing deleted
        assert cli.main(["forget", "a-0123456789abcdef", "--results", str(results)]) == 2
        assert (results / "records" / "x.jsonl").read_text() == '{"run_id": "a-0123456789abcdef"}\n'
    runs.lock_results(results)          # freed when its process ended
    runs.lock_results(results)          # its holder may take it again (in-process workflow runs)
    runs.unlock_results(results)
    with held_by_another_process(results):
        pass


@contextlib.contextmanager
def held_by_another_process(results: Path):
    """A process that holds the results folder's lock until the block ends (handshake: it says so)."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(results)], cwd=results.parent,
                              env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        yield holder
    finally:
        holder.communicate("")
    assert holder.returncode == 0


HOLDER = """
import sys
from diffsweep import runs
runs.lock_results(sys.argv[1])
print("locked", flush=True)
sys.stdin.read()      # until the test closes its stdin
"""


def test_a_deleted_shard_is_recomputed_after_a_kill_9_and_a_stale_lock_and_the_table_is_restored(smoke_run, tmp_path):
    """The issue's case through the recoveries docs/running.md gives for what may follow: a shard's
    records deleted; the invocation that recomputes them killed (kill -9, snakemake and its job)
    while a run draws; the next one stopped by the stale lock; `snakemake --unlock`; the command
    again. Runs stored before the kill are kept, the others recomputed, and the table ends equal to
    the uninterrupted run's; the killed invocation's results lock died with it."""
    workdir = copy_of(smoke_run, tmp_path)
    shard = shards(workdir)["generation", "oracle", "ring8"]
    expected = table(workdir)
    untouched = {path.name: path.read_bytes() for path in (workdir / "results" / "records").glob("*.jsonl")
                 if not path.name.startswith(shard)}
    for suffix in (".jsonl", ".archive"):
        (workdir / "results" / "records" / f"{shard}{suffix}").unlink()
    run_ids = shard_runs(workdir, shard)
    # a plugin that holds the draw of one run, after its network calls, while the file `block` exists
    (workdir / "blocker.py").write_text(BLOCKER)
    (workdir / "block").write_text(run_ids[-1])
    cfg = yaml.safe_load((workdir / "smoke.yaml").read_text())
    (workdir / "blocked.yaml").write_text(yaml.safe_dump({**cfg, "plugins": ["blocker.py"]}))
    command = [sys.executable, "-m", "snakemake", "--profile", str(ROOT / "profiles" / "default"), "-s",
               str(ROOT / "Snakefile"), "--configfile", "blocked.yaml", "--cores", "2"]
    process = subprocess.Popen([*command, GENERATION], cwd=workdir, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(workdir / "blocked", process)
    os.killpg(process.pid, signal.SIGKILL)      # snakemake and its job
    process.communicate()
    kept = {run_id: lines for run_id, lines in records_by_run(workdir).items() if run_id in run_ids}

    (workdir / "block").unlink()
    with pytest.raises(Exception, match="cannot be locked"):
        snakemake(workdir, "blocked.yaml", targets=[GENERATION])
    unlocked = subprocess.run([*command, "--unlock"], cwd=workdir, capture_output=True, text=True)
    assert unlocked.returncode == 0, unlocked.stdout + unlocked.stderr
    assert snakemake(workdir, "blocked.yaml", targets=[GENERATION]) == {"run_shard": 1, "aggregate": 1}

    pd.testing.assert_frame_equal(table(workdir), expected)
    after = records_by_run(workdir)
    assert all(after[run_id] == lines for run_id, lines in kept.items())      # not recomputed
    assert all(len(after[run_id]) == 1 for run_id in run_ids)
    assert {path.name: path.read_bytes() for path in (workdir / "results" / "records").glob("*.jsonl")
            if not path.name.startswith(shard)} == untouched
    assert not (workdir / "results" / "records" / ".staging").exists()
    # logs and benchmarks are the results folder's
    assert f"generation run {run_ids[-1]}: ok" in (workdir / "results" / "logs" / "run_shard" / f"{shard}.log").read_text()
    assert (workdir / "results" / "benchmarks" / "run_shard" / f"{shard}.tsv").is_file()

    # forgotten again after its rerun: recomputed again (its marker's job id changed the key)
    assert cli.main(["forget", *run_ids, "--results", str(workdir / "results")]) == 0
    assert snakemake(workdir, "blocked.yaml", targets=[GENERATION], dry_run=True) == {"run_shard": 1,
                                                                                      "aggregate": 1}


BLOCKER = '''
import threading
from pathlib import Path

from diffsweep.runs import generation

draw_samples = generation.draw_samples


def held(run, *args, **kwargs):
    drawn = draw_samples(run, *args, **kwargs)
    block = Path("block")
    if block.exists() and block.read_text() == run["id"]:
        Path("blocked").touch()
        threading.Event().wait()      # until the test kills the job
    return drawn


generation.draw_samples = held
'''
