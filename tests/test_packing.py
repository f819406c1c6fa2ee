"""Packing runs into cluster jobs: runs per job from a target job length (job_minutes) at a
declared cost per run, measuring that cost, and the guard against the SLURM array hang."""

import copy

import pytest

from diffsweep import cli, config, grid, packing

BASE = {
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}, "swiss": {"family": "swissroll"}},
    "models": {"oracle": {"source": "oracle"}, "mlp": {"source": "trained"}},
    "samplers": {"rw": {"family": "random_walk", "steps": [10, 20, 40], "knobs": {"T0": [0.1, 1.0]}},
                 "ode": {"family": "pf_ode", "steps": [5, 10]}},
    "seeds": [0, 1, 2, 3],
}   # score sources: oracle on ring8, mlp on ring8 and on swiss; 8 points x 4 seeds = 32 runs each


def checked(**packing):
    """BASE checked with `packing` as its generation runs' packing (jobs.generation)."""
    raw = copy.deepcopy(BASE)
    raw["jobs"] = {"generation": packing}
    return config.check(raw, check_paths=False)


def shard_sizes(result) -> dict:
    """(model name, dataset name) -> sizes of its generation shards."""
    sizes = {}
    for run_ids in result.grid.shards(grid.runs_per_job(result.config)).values():
        model = result.grid.runs[run_ids[0]].model
        sizes.setdefault((model.name, model.data.name), []).append(len(run_ids))
    return sizes


def test_job_minutes_packs_each_score_source_by_its_declared_cost():
    result = checked(job_minutes=2, run_seconds={"default": 10, "mlp": 30, "mlp/swiss": 100})
    # 120 s per job: 12 oracle runs (default), 4 mlp runs on ring8 (mlp), 1 on swiss (mlp/swiss)
    assert shard_sizes(result) == {("oracle", "ring8"): [12, 12, 8], ("mlp", "ring8"): [4] * 8,
                                   ("mlp", "swiss"): [1] * 32}
    # without job_minutes the declared costs change nothing: runs_per_job
    plain = checked(runs_per_job=16, run_seconds={"default": 10})
    assert all(sizes == [16, 16] for sizes in shard_sizes(plain).values())


def test_runs_per_job_from_job_minutes_is_clamped():
    assert packing.runs_to_fill(10, 0.001) == packing.MAX_RUNS_PER_JOB
    assert packing.runs_to_fill(1, 3600) == 1
    assert packing.runs_to_fill(1, 20) == 3


def test_shards_from_job_minutes_stay_put_while_runs_finish(tmp_path):
    """The size comes from the config alone: a job that re-parses while runs finish finds its shard."""
    raw = copy.deepcopy(BASE)
    raw["jobs"] = {"generation": {"job_minutes": 1, "run_seconds": {"default": 7}}}
    first = config.check(copy.deepcopy(raw), check_paths=False)
    shards = first.grid.shards(grid.runs_per_job(first.config))
    again = config.check(copy.deepcopy(raw), check_paths=False)
    assert again.grid.shards(grid.runs_per_job(again.config)) == shards
    assert sorted(map(len, shards.values())) == [8] * 12   # 60 s / 7 s: 8 runs a job, 3 x 32 runs


@pytest.mark.parametrize("packing, message", [
    ({"job_minutes": 5, "run_seconds": {"oracle": 1}},
     "jobs.generation.run_seconds: no cost for score source 'mlp' on 'ring8', needed by jobs.generation.job_minutes"),
    ({"job_minutes": 5, "run_seconds": {"default": 1, "unet": 3}},
     "jobs.generation.run_seconds.unet: names no score source of this config's generation runs; allowed: default, "
     "mlp, mlp/ring8, mlp/swiss, oracle, oracle/ring8"),
    ({"job_minutes": 5, "runs_per_job": 8, "run_seconds": {"default": 1}},
     "jobs.generation.job_minutes and jobs.generation.runs_per_job are both set; set one"),
    ({"job_minutes": 0, "run_seconds": {"default": 1}}, "jobs.generation.job_minutes"),
    ({"job_minutes": 5, "run_seconds": {"default": -1}}, "jobs.generation.run_seconds.default"),
])
def test_bad_packing_is_one_line_naming_the_key(packing, message):
    with pytest.raises(config.ConfigError) as error:
        checked(**packing)
    lines = str(error.value).splitlines()
    assert len(lines) == 1 and message in lines[0], lines


def test_restoration_runs_are_packed_the_same_way():
    raw = copy.deepcopy(BASE)
    raw["restoration"] = {"tasks": {"half": {"operator": "inpaint_random", "knobs": {"missing": 0.5}, "noise_std": 0.1,
                                             "data_range": "minus_one_one"}},
                          "restorers": {"ddrm": {"family": "ddrm", "steps": [10, 20, 30]}}, "models": ["oracle"],
                          "seeds": [0, 1, 2]}
    raw["jobs"] = {"restoration": {"job_minutes": 1, "run_seconds": {"oracle/ring8": 20}}}
    result = config.check(raw, check_paths=False)
    shards = result.grid.shards(grid.runs_per_job(result.config))
    restoring = [ids for ids in shards.values() if result.grid.runs[ids[0]].kind == "restoration"]
    assert sorted(map(len, restoring)) == [3, 3, 3]   # 9 runs, 60 s / 20 s each


def test_costs_are_measured_from_shard_benchmarks(tmp_path, capsys):
    raw = copy.deepcopy(BASE)
    raw["jobs"] = {"generation": {"runs_per_job": 16}}
    path = tmp_path / "sweep.yaml"
    path.write_text(__import__("yaml").safe_dump(raw))
    result = config.check(copy.deepcopy(raw), check_paths=False)
    shards = result.grid.shards(grid.runs_per_job(result.config))
    benchmarks = tmp_path / "benchmarks"
    benchmarks.mkdir()
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    skipped = []
    for shard, run_ids in sorted(shards.items()):
        model = result.grid.runs[run_ids[0]].model
        if (model.name, model.data.name) == ("mlp", "swiss") and not skipped:
            skipped.append(shard)   # a shard without a benchmark (not run yet) is left out
            continue
        seconds = {"oracle": 32.0, "mlp": 160.0}[model.name]
        (benchmarks / f"{shard}.tsv").write_text(header + f"{seconds}\t0:00:32\t1\t1\t1\t1\t0\t0\t0\t1\n")
    measured = packing.measured_run_seconds(result.grid, shards, benchmarks)
    assert measured == {"generation": {"mlp/ring8": (10.0, 32), "mlp/swiss": (10.0, 16), "oracle/ring8": (2.0, 32)}}
    assert cli.main(["costs", "--config", str(path), "--benchmarks", str(benchmarks), "--job-minutes", "1"]) == 0
    out = capsys.readouterr().out
    assert "jobs:\n  generation:\n    run_seconds:\n      mlp/ring8: 10" in out and "oracle/ring8: 2 " in out
    assert "30 to a job at job_minutes 1" in out   # 60 s / 2 s
    # the printed block is a valid config section: declared, it gives those sizes
    declared = __import__("yaml").safe_load(out)
    raw["jobs"] = {"generation": {"job_minutes": 1, **declared["jobs"]["generation"]}}
    assert shard_sizes(config.check(raw, check_paths=False))[("oracle", "ring8")] == [30, 2]
    assert cli.main(["costs", "--config", str(path), "--benchmarks", str(tmp_path / "none")]) == 2
    # issue 26: a damaged benchmark file is named in one line, no traceback
    damaged = benchmarks / f"{sorted(set(shards) - set(skipped))[0]}.tsv"
    damaged.write_text(header + "not a number\t0\n")
    capsys.readouterr()
    assert cli.main(["costs", "--config", str(path), "--benchmarks", str(benchmarks)]) == 2
    assert capsys.readouterr().err == (f"error: {damaged}: cannot be read as a Snakemake benchmark (a tab-separated "
                                       f"header with `s`, then a row) (ValueError: could not convert string to "
                                       f"float: 'not a number')\n")


def test_array_jobs_guard():
    problem = packing.array_jobs_problem("run_shard", {"run_shard": 150, "train": 3}, 100)
    assert "jobs: 100 is below this sweep's 153 jobs" in problem and "--slurm-array-jobs=" in problem
    assert packing.array_jobs_problem("run_shard", {"run_shard": 150, "train": 3}, 153) is None
    assert packing.array_jobs_problem("all", {"train": 3}, 2) is not None
    assert packing.array_jobs_problem("run_shard", {"train": 3}, 2) is None        # no job of an array rule
    assert packing.array_jobs_problem(None, {"run_shard": 150}, 100) is None        # arrays off
    assert packing.array_jobs_problem("", {"run_shard": 150}, 100) is None
    assert packing.array_jobs_problem("run_shard", {"run_shard": 150}, None) is None  # a local run


def test_shard_jobs_ask_for_twice_the_target_length():
    assert packing.shard_runtime({"jobs": {"generation": {"job_minutes": None}}}, 60) == 60
    jobs = {"generation": {"job_minutes": 45}, "restoration": {"job_minutes": 10}}
    assert packing.shard_runtime({"jobs": jobs}, 60) == 90
    assert packing.shard_runtime({"jobs": {**jobs, "restoration": {"job_minutes": 50}}}, 60) == 100
