"""Failures are data, through Snakemake: a plugin sampler that raises for one knob value is
recorded as a failed run, every table and figure is still made, and the workflow exits non-zero
naming the run and its log; the next invocation retries it (and only it), and a corrupt record
met at parse time is named and recomputed."""

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.workflow

CONFIG = {
    "seeds": [0],
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
    "models": {"oracle": {"source": "oracle"}},
    "samplers": {"flaky": {"family": "flaky_euler", "steps": 5, "knobs": {"scale": [1.0, 2.0]}}},
    "plugins": ["flaky.py"],
    "data": {"n_train": 100, "n_reference": 100},
    "sampling": {"n_samples": 50},
    "metrics": {"likelihood": {"points": 0}},
    "plots": {"schedules": False, "metrics": ["sliced_w2"]},
    "tables": {"ablations": {}},
}

PLUGIN = '''
from diffsweep.samplers import Knob, register


@register("flaky_euler", knobs={"scale": Knob("float", 1.0, "scale of each step; above 1 it raises")},
          description="Euler steps of the probability-flow ODE that fail for scale > 1 (scale 1: plain Euler steps to 0; below 1 the samples stay far out and run away)")
def flaky_euler(denoise, x, sigmas, noise, *, scale, callback=None):
    if scale > 1:
        raise ValueError(f"scale {scale} is too large\\nsecond line of the message")
    levels = list(sigmas) + [0.0]
    for sigma, sigma_next in zip(levels[:-1], levels[1:]):
        x = x + scale * (sigma_next - sigma) * (x - denoise(x, sigma)) / sigma
    return x, len(sigmas)
'''


def snakemake(workdir: Path, *targets: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "snakemake", "--profile", str(ROOT / "profiles" / "default"),
                           "-s", str(ROOT / "Snakefile"), "--configfile", "config.yaml", "--cores", "2", *targets],
                          cwd=workdir, capture_output=True, text=True)


def test_a_failing_run_is_recorded_tables_are_made_and_the_workflow_fails_at_the_end(tmp_path):
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    (tmp_path / "flaky.py").write_text(PLUGIN)
    first = snakemake(tmp_path)
    output = first.stdout + first.stderr
    assert first.returncode != 0, output[-3000:]

    results = tmp_path / "results"
    table = pd.read_parquet(results / "tables" / "generation.parquet").set_index("knob_scale")
    assert table.loc[1.0, "status"] == "ok" and table.loc[2.0, "status"] == "failed"
    failed = table.loc[2.0]
    assert failed["error"] == "ValueError: scale 2.0 is too large" and pd.isna(failed["nfe"])
    log = failed["log"]
    assert log.startswith("results/logs/run_shard/") and "second line of the message" in (tmp_path / log).read_text()
    assert f"1 run(s) failed; their records (status `failed`) are in the tables" in output
    assert f"  {failed['run_id']}: ValueError: scale 2.0 is too large (log: {log})" in output
    for figure in ("sliced_w2_vs_nfe.png", "samples_ring8.png"):     # every figure is still made
        assert (results / "plots" / figure).stat().st_size > 1000
    assert "left out of the figure" not in (results / "logs" / "plots" / "samples_ring8.log").read_text()
    # a table or figure is never removed before its replacement is complete
    outputs = [line.split("output: ", 1)[1] for line in output.splitlines() if line.strip().startswith("output: ")]
    kept = [path for line in outputs for path in line.split(", ") if "/tables/" in path or "/plots/" in path]
    assert kept and all(path.endswith(" (update)") for path in kept), kept

    # Next invocation: the failed run is retried, the good one kept; a torn record line (the good run's,
    # as a job killed while writing it leaves it) is named and its run recomputed.
    (records,) = (results / "records").glob("*.jsonl")             # one shard: one record file
    good_id = table.loc[1.0, "run_id"]
    lines = records.read_text().splitlines(keepends=True)
    good = next(line for line in lines if good_id in line)
    records.write_text("".join(line for line in lines if line != good) + good[:100])
    # Only the table is asked for: what is checked below is the run's retry and the table (the failure
    # report lists the failed runs of the whole config, whatever the targets).
    second = snakemake(tmp_path, "results/tables/generation.parquet")
    output = second.stdout + second.stderr
    assert second.returncode != 0 and "1 run(s) failed" in output
    assert f"corrupt run record: results/records/{records.name} line 2: unreadable (JSONDecodeError" in output
    again = pd.read_parquet(results / "tables" / "generation.parquet").set_index("knob_scale")
    pd.testing.assert_frame_equal(again.drop(columns=["wall_s", "finished"]), table.drop(columns=["wall_s", "finished"]))
