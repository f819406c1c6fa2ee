"""The sweep on a real SLURM cluster: config/smoke.yaml through profiles/slurm against
slurmctld + slurmd + munged started on loopback (tests/cluster/local_slurm.py, with two fake
GPUs), compared with the local smoke run of the same config (the `smoke_run` fixture). Shard jobs go
out as SLURM job arrays, as the profile ships (slurm-array-jobs: run_shard).

Needs root and Debian's slurm-wlm and munge (.ci/run installs them when it runs as root);
skipped otherwise, with the reason. Took about 3 minutes on a quiet machine before the executor's
status-check sleep was capped (SNAKEMAKE_POLLING_FAST): every SLURM job starts its own Snakemake.
"""

import json
import os
import re
import signal
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

from diffsweep import config

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "cluster"))
import local_slurm  # noqa: E402

SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# Snakemake as SNAKEMAKE runs it, but the SLURM executor plugin's sleep between two status checks
# capped at POLL_S seconds. The plugin (2.8) sleeps `slurm-init-seconds-before-status-checks` after
# a check that saw a job finish and 10 s more after each check that saw none (up to 180 s), so on
# this cluster, whose jobs take seconds, a finished job went unnoticed for up to 25 s while the jobs
# after it waited (docs/measurements.md, "the cluster test's wall time"). Only the sleep changes
# (the plugin's own interval setter, wrapped); submission, arrays and job states are the plugin's.
# A plugin without that setter fails here, by name, instead of slowing down unnoticed.
POLL_S = 2
SNAKEMAKE_POLLING_FAST = [sys.executable, "-c", f"""
import runpy, sys
from snakemake_executor_plugin_slurm import Executor
interval = Executor.next_seconds_between_status_checks
Executor.next_seconds_between_status_checks = property(interval.fget, lambda self, s: interval.fset(self, min(s, {POLL_S})))
sys.argv[0] = "snakemake"
runpy.run_module("snakemake", run_name="__main__", alter_sys=True)
"""]
TIMEOUT_S = 600
# Columns that differ between any two runs (when and how long, the git revision, which another
# commit may move in between, and how many runs a run drew with, which follows the sharding);
# everything else must be equal.
VOLATILE = ("wall_s", "finished", "git_revision", "fused_with")


@pytest.mark.workflow
def test_parsing_the_snakefile_is_light(tmp_path):
    """Every cluster job parses the Snakefile again: no torch at parse time. How long the parse
    takes is printed, not asserted (a loaded machine is slow; bench/dag_scale.py measures it)."""
    shutil.copy(ROOT / "config" / "smoke.yaml", tmp_path)
    probe = f"""
import sys, time
from pathlib import Path
started = time.perf_counter()
from snakemake.api import SnakemakeApi
from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings
with SnakemakeApi(OutputSettings(quiet=None)) as api:
    workflow = api.workflow(resource_settings=ResourceSettings(cores=1),
                            config_settings=ConfigSettings(configfiles=[Path("smoke.yaml")]),
                            snakefile=Path({str(ROOT / "Snakefile")!r}), workdir=Path.cwd())
    workflow.dag().execute_workflow(executor="dryrun")
print("torch" in sys.modules, time.perf_counter() - started)
"""
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    torch_imported, seconds = result.stdout.split()[-2:]
    assert torch_imported == "False"
    print(f"\nparse and dry run of config/smoke.yaml: {float(seconds):.1f} s")


@pytest.mark.workflow
def test_the_profile_groups_name_existing_rules(tmp_path):
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    result = subprocess.run([*SNAKEMAKE, "--list-rules", "-s", str(ROOT / "Snakefile"), "-d", str(tmp_path)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    rules = set(result.stdout.split())
    grouped = {entry.split("=")[0] for entry in profile["groups"]}
    assert grouped <= rules, f"profiles/slurm groups unknown rules {grouped - rules}"
    assert set(profile["set-resources"]) <= rules


@pytest.fixture(scope="module")
def cluster():
    reason = local_slurm.why_unavailable()
    if reason:
        pytest.skip(reason)
    try:
        import snakemake_executor_plugin_slurm  # noqa: F401
    except ImportError:
        pytest.skip("snakemake-executor-plugin-slurm is not installed (pip install -e '.[test]')")
    slurm = local_slurm.LocalSlurm(gpus=2)
    try:
        slurm.start()
    except local_slurm.Unavailable as error:
        slurm.stop()
        pytest.skip(str(error))
    except BaseException:
        slurm.stop()
        raise
    yield slurm
    slurm.stop()


def cluster_profile(path: Path) -> Path:
    """profiles/slurm as shipped, with what a one-node test cluster needs: small resources, squeue
    for job states (no accounting), no account, fast first status check, no retries."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    profile.update({"cores": 2, "latency-wait": 5, "retries": 0, "slurm-status-command": "squeue",
                    "slurm-init-seconds-before-status-checks": 2, "slurm-no-account": True,
                    "default-resources": ["mem_mb=800", "runtime=10", "disk_mb=1000"]})
    for rule in ("prepare_data", "train", "run_shard", "likelihood"):   # the rules declaring more than the default
        profile["set-resources"].setdefault(rule, {}).update({"mem_mb": "800 * attempt", "runtime": "10 * attempt"})
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump(profile))
    return path


# config/smoke.yaml with two seeds, three runs to a shard: each score source has 3 shards of
# generation runs (8 runs), each its own SLURM job (GPU rules, 2 fake GPUs: two run side by side),
# so jobs start, and parse the Snakefile, while other shards of their score source are half done.
SEEDS, RUNS_PER_JOB = [0, 1], 3


def snakemake(workdir: Path, profile: Path, *extra: str) -> subprocess.Popen:
    smoke = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    smoke["seeds"] = SEEDS
    smoke["jobs"]["generation"]["runs_per_job"] = RUNS_PER_JOB
    (workdir / "sweep.yaml").write_text(yaml.safe_dump(smoke))
    return subprocess.Popen([*SNAKEMAKE_POLLING_FAST, "--profile", str(profile), "-s", str(ROOT / "Snakefile"), "-d", str(workdir),
                             "--configfile", "sweep.yaml", *extra], cwd=workdir, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


def finish(process: subprocess.Popen, deadline: float, log: Path) -> str:
    try:
        output = process.communicate(timeout=max(1.0, deadline - time.monotonic()))[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)   # the executor can hang on status queries; never wait forever
        output = process.communicate()[0] + f"\n(killed after {TIMEOUT_S} s)"
    log.write_text(output)
    assert process.returncode == 0, f"{log}:\n" + output[-6000:]
    return output


def planned_rules(output: str) -> set[str]:
    """Rules of the 'Job stats' table that Snakemake prints when it starts."""
    rules, in_table = set(), False
    for line in output.splitlines():
        parts = line.split()
        if parts[:2] == ["job", "count"]:
            in_table = True
        elif in_table and len(parts) == 2 and parts[1].isdigit():
            if parts[0] == "total":
                break
            rules.add(parts[0])
    return rules - {"all"}


def comparable(path: Path, key: list[str], seed: int | None = None) -> pd.DataFrame:
    frame = pd.read_parquet(path)
    if seed is not None:
        frame = frame[frame["seed"] == seed]
    frame = frame.drop(columns=[c for c in frame.columns if c.endswith(VOLATILE) or c in VOLATILE])
    return frame.sort_values(key).reset_index(drop=True)


def overlapping(jobs: list[dict]) -> bool:
    """Whether two of the jobs ran at the same time (SLURM's start and end times, to the second)."""
    spans = sorted((job["start"], job["end"]) for job in jobs)
    return any(later_start < end for (_, end), (later_start, _) in zip(spans, spans[1:]))


@pytest.mark.slow
@pytest.mark.cluster
def test_smoke_sweep_on_slurm_equals_a_local_run(cluster, smoke_run, tmp_path):
    """`smoke_run` (tests/conftest.py) is the local run of the same config."""
    started = time.monotonic()
    (tmp_path / "slurm").mkdir()
    on_slurm = snakemake(tmp_path / "slurm", cluster_profile(tmp_path / "profile"))
    output = finish(on_slurm, started + TIMEOUT_S, tmp_path / "slurm.log")
    print(f"\nsmoke sweep on SLURM: {time.monotonic() - started:.0f} s (cluster started in {cluster.start_seconds:.1f} s)")

    # every job ran as a SLURM job or a task of a SLURM job array (only the target rule `all` runs
    # locally), and all succeeded
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", output))
    arrays = {array: members.split(",") for members, array in
              re.findall(r"Submitted array job with Snakemake IDs ([\d,]+) and SLURM job ID (\d+)", output)}
    jobs = {job["id"]: job for job in cluster.jobs()}
    assert submitted and submitted | set(arrays) == {job["array"] or job["id"] for job in jobs.values()}, (submitted, arrays, jobs)
    assert all(job["state"] == "COMPLETED" for job in jobs.values()), jobs
    # array jobs (profiles/slurm: slurm-array-jobs: run_shard): the shards that became ready together went
    # out as arrays, one task per Snakemake job
    tasks = {array: [job for job in jobs.values() if job["array"] == array] for array in arrays}
    assert all(len(tasks[array]) == len(members) for array, members in arrays.items()), (arrays, tasks)
    assert any(len(members) >= 2 and tasks[array][0]["comment"].startswith("rule_run_shard_")
               for array, members in arrays.items()), (arrays, tasks)
    assert set(re.findall(r"^localrule (\w+):", output, flags=re.M)) == {"all"}
    finished = set(re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", output))
    assert planned_rules(output) == finished - {"all"}
    assert {"prepare_data", "train", "run_shard", "likelihood", "aggregate"} <= finished
    # group jobs: the report steps in one SLURM job
    assert any(job["comment"].startswith("rule_report_") for job in jobs.values())
    # shards that stay put: 3 shard jobs per score source (each its own SLURM job, an array task or
    # not: the runs' records name it), two at a time, each started while others of its score source
    # were running or done, and every one found its shard
    _, grid = config.load(tmp_path / "slurm" / "sweep.yaml")
    results = tmp_path / "slurm" / "results"
    from diffsweep import runs
    records = [state.record for state in runs.index(results).values()]
    assert records and all(r["provenance"]["slurm_job_id"] in jobs for r in records)
    shard_jobs = {}   # model id -> the SLURM jobs that ran its generation runs
    for record in records:
        if record["kind"] == "generation":
            shard_jobs.setdefault(record["row"]["model_id"], set()).add(record["provenance"]["slurm_job_id"])
    assert set(shard_jobs) == {run.model.id for run in grid.of_kind("generation").values()}
    for model_id, ids in shard_jobs.items():
        assert len(ids) >= 3, (model_id, ids)
        assert all(jobs[i]["comment"].startswith("rule_run_shard_") and jobs[i]["tres"].endswith("gpu:1") for i in ids)
    assert overlapping([jobs[i] for ids in shard_jobs.values() for i in ids]), shard_jobs
    for checkpoint in results.glob("models/*/checkpoint.pt"):
        origin = torch.load(checkpoint, weights_only=False)["provenance"]
        assert jobs[origin["slurm_job_id"]]["tres"].endswith("gpu:1")   # the rule asked for a GPU...
        assert origin["cuda_visible_devices"] is not None                # ...and SLURM gave it one (a fake one)
        assert not (checkpoint.parent / "resume.pt").exists()

    # the same tables as the local run of seed 0, whatever the sharding: parameters, metrics, NFE, status.
    # Kernel metrics (mmd, energy distance: float64 sums over 10^5 pairs) may differ in the last bit
    # with a run's place in its job (this run shards differently), hence rtol 1e-12, not bit equality.
    local_results = smoke_run / "results"
    assert sorted(pd.read_parquet(results / "tables" / "generation.parquet")["run_id"]) == sorted(grid.of_kind("generation"))
    pd.testing.assert_frame_equal(comparable(results / "tables" / "generation.parquet", ["run_id"], seed=0),
                                  comparable(local_results / "tables" / "generation.parquet", ["run_id"]),
                                  check_exact=False, rtol=1e-12, atol=1e-14)
    pd.testing.assert_frame_equal(comparable(results / "tables" / "training.parquet", ["model_id", "step"]),
                                  comparable(local_results / "tables" / "training.parquet", ["model_id", "step"]),
                                  check_exact=True)


@pytest.mark.cluster
def test_arrays_with_fewer_job_slots_than_jobs_are_refused_before_submitting(cluster, tmp_path):
    """With fewer `jobs` than the sweep has jobs the SLURM executor plugin (2.8) holds array jobs back
    forever; the Snakefile's onstart check stops such a run at once instead (about 7 s)."""
    before = {job["id"] for job in cluster.jobs()}
    (tmp_path / "slurm").mkdir()
    process = snakemake(tmp_path / "slurm", cluster_profile(tmp_path / "profile"), "--jobs", "5")
    try:
        output = process.communicate(timeout=120)[0]
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output = process.communicate()[0] + "\n(killed after 120 s)"
    assert process.returncode != 0, output[-3000:]
    assert re.search(r"jobs: 5 is below this sweep's \d+ jobs while slurm-array-jobs is set", output), output[-3000:]
    assert {job["id"] for job in cluster.jobs()} <= before   # nothing was submitted


# A small adaptive search (docs/search.md): 4 candidates on the ring8 oracle, two seeds, two
# rungs; each rung's cut is a checkpoint job on SLURM and the shards of the next rung, planned
# after it, go out together (an array when more than one is ready). The target is the search's
# survivors table: the sweep's other tables and figures are the smoke test's (above).
SEARCH = {
    "seeds": [0, 1],
    "data": {"n_train": 200, "n_reference": 200},
    "jobs": {"generation": {"runs_per_job": 2}},
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
    "models": {"oracle": {"source": "oracle"}},
    "samplers": {"rw": {"family": "random_walk", "steps": 8, "knobs": {"eps": [0.2, 0.7], "T0": 0.1}},
                 "ddim": {"family": "ddim", "steps": [4, 8]}},
    "metrics": {"likelihood": {"points": 0}},
    "plots": {"schedules": False},
    "search": {"s": {"samplers": ["rw", "ddim"], "rungs": [20, 40], "keep": 0.5, "cap": 2}},
}


@pytest.mark.cluster
def test_an_adaptive_search_runs_its_rungs_as_slurm_jobs(cluster, tmp_path):
    started = time.monotonic()
    workdir = tmp_path / "search"
    workdir.mkdir()
    (workdir / "search.yaml").write_text(yaml.safe_dump(SEARCH))
    process = subprocess.Popen([*SNAKEMAKE_POLLING_FAST, "results/tables/search_s.csv",
                                "--profile", str(cluster_profile(tmp_path / "profile")), "-s",
                                str(ROOT / "Snakefile"), "-d", str(workdir), "--configfile", "search.yaml"],
                               cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)
    output = finish(process, started + TIMEOUT_S, tmp_path / "search.log")
    print(f"\nadaptive search on SLURM: {time.monotonic() - started:.0f} s")
    jobs = {job["id"]: job for job in cluster.jobs()}
    finished = re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", output)
    assert finished.count("search_cut") == 2 and "search_report" in finished
    assert not re.findall(r"^localrule (\w+):", output, flags=re.M)    # every job ran on SLURM
    from diffsweep import runs
    from diffsweep.grid import search
    results = workdir / "results"
    decisions = [json.loads(search.rung_path(results, "s", rung).read_text()) for rung in range(2)]
    (final,) = decisions[-1]["groups"].values()
    assert 1 <= len(final["survivors"]) <= 2
    # every rung's runs ran in SLURM jobs: rung r's budget in the records of jobs SLURM ran
    budgets = {}
    for state in runs.index(results).values():
        assert state.record["provenance"]["slurm_job_id"] in jobs
        budgets.setdefault(state.record["row"]["n_samples"], set()).add(state.record["provenance"]["slurm_job_id"])
    assert set(budgets) == {20, 40}
    assert any(job["comment"].startswith("rule_search_cut") for job in jobs.values())
