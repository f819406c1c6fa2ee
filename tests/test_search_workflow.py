"""An adaptive search through Snakemake (docs/search.md): rung 0 runs, its checkpoint cuts, rung 1's
runs are planned in the same invocation; the invocation is killed (kill -9, snakemake and its job)
while a rung-1 run draws (a handshake: a plugin holds that draw until the kill); after
`snakemake --unlock` the next invocation resumes: no finished run is drawn again, the rung files
written before the kill stay, and the final survivors are those the cut computes from the records
(the same config and seeds give the same survivors)."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from diffsweep import config, grid, runs
from diffsweep.grid import search
from diffsweep.runs import kinds

from conftest import ROOT, snakemake, wait_for

pytestmark = pytest.mark.workflow

CONFIG = {
    "seeds": [0, 1],
    "data": {"n_train": 200, "n_reference": 200},
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
    "models": {"oracle": {"source": "oracle"}},
    "samplers": {"rw": {"family": "random_walk", "steps": 8, "knobs": {"eps": [0.2, 0.7, 1.0], "T0": 0.1}},
                 "ddim": {"family": "ddim", "steps": [4, 8]}},
    "metrics": {"likelihood": {"points": 0}},
    "plots": {"schedules": False},
    "plugins": ["blocker.py"],
    "search": {"s": {"samplers": ["rw", "ddim"], "rungs": [20, 40, 80], "keep": 0.5, "cap": 2}},
}
TARGET = "results/search/s/rung2.json"     # the final cut (the table and figure: test_search.py)

# holds the draw of the first rung-1 run (40 samples) while the file `block` exists
BLOCKER = '''
import threading
from pathlib import Path

from diffsweep.runs import generation

draw_samples = generation.draw_samples


def held(run, *args, **kwargs):
    if run["n_samples"] == 40 and Path("block").exists():
        Path("blocked").touch()
        threading.Event().wait()      # until the test kills the job
    return draw_samples(run, *args, **kwargs)


generation.draw_samples = held
'''


def record_lines(workdir: Path) -> dict[str, int]:
    counts = {}
    for path in (workdir / "results" / "records").glob("*.jsonl"):
        for line in path.read_bytes().splitlines():
            run_id = json.loads(line)["run_id"]
            counts[run_id] = counts.get(run_id, 0) + 1
    return counts


def test_a_search_killed_in_rung_1_resumes_and_cuts_as_its_records_say(tmp_path):
    workdir = tmp_path
    (workdir / "search.yaml").write_text(yaml.safe_dump(CONFIG))
    (workdir / "blocker.py").write_text(BLOCKER)
    (workdir / "block").touch()
    command = [sys.executable, "-m", "snakemake", "--profile", str(ROOT / "profiles" / "default"), "-s",
               str(ROOT / "Snakefile"), "--configfile", "search.yaml", "--cores", "2"]
    env = {**os.environ, "SLURM_CONF": "/dev/null"}
    process = subprocess.Popen([*command, TARGET], cwd=workdir, start_new_session=True, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for(workdir / "blocked", process)
    os.killpg(process.pid, signal.SIGKILL)      # snakemake and its job
    output = process.communicate()[0]
    assert "search s: rungs 0-0 of 0-2 planned" in output       # the parse planned rung 0 only
    rung0 = workdir / "results" / "search" / "s" / "rung0.json"
    before = rung0.read_bytes()
    stored = record_lines(workdir)
    assert len(stored) == 5 * 2                                  # rung 0: 5 candidates x 2 seeds, all stored
    assert not (workdir / "results" / "search" / "s" / "rung1.json").exists()

    (workdir / "block").unlink()
    unlocked = subprocess.run([*command, "--unlock"], cwd=workdir, capture_output=True, text=True, env=env)
    assert unlocked.returncode == 0, unlocked.stdout + unlocked.stderr
    jobs = snakemake(workdir, "search.yaml", targets=[TARGET])
    assert jobs.get("search_cut") == 2                           # rungs 1 and 2, not rung 0 again

    assert rung0.read_bytes() == before
    after = record_lines(workdir)
    assert all(count == 1 for count in after.values())           # no run drawn twice
    assert set(stored) <= set(after)
    cfg = config.prepare({**CONFIG, "results": str(workdir / "results"), "plugins": []})   # the blocker sets no run
    spec = search.declared(cfg)["s"]
    models = grid.build(cfg, models=set()).models
    decisions = [json.loads((workdir / "results" / "search" / "s" / f"rung{r}.json").read_text()) for r in range(3)]
    assert [len(d["groups"]) for d in decisions] == [1, 1, 1]
    survivors = None
    for rung, decision in enumerate(decisions):                  # each cut is what its records say
        planned = search.rung_runs(spec, cfg, models, rung, survivors, kinds.GENERATION)
        states = runs.index(workdir / "results", only={run.id for _, run in planned}, keep=("metrics", "nfe"))
        again = search.decide(spec, rung, planned, states, search.settings(spec, cfg))
        assert json.loads(json.dumps(again)) == decision
        survivors = search.survivors_of(decision)
    (group,) = decisions[-1]["groups"].values()
    assert 1 <= len(group["survivors"]) <= 2
    assert snakemake(workdir, "search.yaml", targets=[TARGET], dry_run=True) == {}    # nothing left to do
