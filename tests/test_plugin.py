"""The extension contract: docs/adding-a-sampler.md, done exactly as it shows."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
# The sampler walk-through: the doc's first section (the restorer example after it is run by
# tests/test_restoration_workflow.py).
DOC = (ROOT / "docs" / "adding-a-sampler.md").read_text().split("\n## A restorer")[0]


def code_block(language: str) -> str:
    blocks = re.findall(rf"```{language}\n(.*?)```", DOC, flags=re.S)
    assert len(blocks) == 1, f"expected one {language} block in the doc"
    return blocks[0]


@pytest.mark.workflow
def test_a_plugin_sampler_runs_through_the_workflow_with_no_rule_edited(tmp_path):
    (tmp_path / "my_samplers.py").write_text(code_block("python"))
    (tmp_path / "my_config.yaml").write_text(code_block("yaml"))
    commands = [line.split("#")[0].strip() for line in code_block("bash").splitlines() if line.strip()]
    assert commands == ["diffsweep grid --config my_config.yaml",
                        "snakemake --profile profiles/default --configfile my_config.yaml"]
    bin_dir = Path(sys.executable).parent
    checkout = {**os.environ, "PYTHONPATH": str(ROOT / "src")}   # this checkout's library, as the Snakefile's jobs
    grid = subprocess.run([str(bin_dir / "diffsweep"), "grid", "--config", "my_config.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, env=checkout)
    assert grid.returncode == 0, grid.stderr
    assert grid.stdout.startswith("4 runs")
    run = subprocess.run([sys.executable, "-m", "snakemake", "--profile", str(ROOT / "profiles" / "default"),
                          "--configfile", "my_config.yaml", "-s", str(ROOT / "Snakefile"), "--cores", "2"],
                         cwd=tmp_path, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = pd.read_parquet(tmp_path / "results" / "tables" / "generation.parquet")
    assert (table["sampler_family"] == "my_euler_ancestral").all() and len(table) == 4
    assert sorted(table["knob_eta"].unique()) == [0.5, 1.0]
    assert (table["status"] == "ok").all()
    assert sorted(table["nfe"].unique()) == [10, 40]
    assert (table["mode_coverage"] > 0.7).all()   # it samples the ring, not noise
