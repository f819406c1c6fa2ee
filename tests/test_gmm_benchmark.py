"""Issue #23's benchmark configs: the full one covers what the issue asks (parsed, not run), the
quick one runs end to end through Snakemake and scores every registered restorer at two budgets."""

import shutil
import subprocess
import sys

import pandas as pd

from conftest import ROOT, snakemake
from diffsweep import config as ds_config
from diffsweep import restoration

BENCHMARKS = ROOT / "config" / "benchmarks"


def restoration_runs(path):
    _, grid = ds_config.load(path, check_paths=False)
    return [run for run in grid.runs.values() if run.kind == "restoration"]


def test_full_benchmark_covers_dims_operators_restorers_budgets_and_seeds():
    runs = restoration_runs(BENCHMARKS / "gmm_posterior.yaml")
    dims = {run.model.data.knobs["dim"] for run in runs}
    assert dims == {8, 80, 800, 1000}
    published = [run for run in runs if run.task.operator == "grid25_pairs"]
    assert {run.task.operator_knobs["d_y"] for run in published} == {1, 2, 4}
    for dim in (8, 80, 800):
        assert {run.task.operator_knobs["problem_seed"] for run in published if run.model.data.knobs["dim"] == dim} \
            == {27, 28, 29, 30, 31}
        assert {run.task.operator_knobs["measurements"] for run in runs if run.task.operator == "random_matrix"
                and run.model.data.knobs["dim"] == dim} == {dim // 2}          # d_y = d / 2, only there
    random = [run for run in runs if run.model.data.knobs["dim"] == 1000]
    assert {run.task.operator_knobs["measurements"] for run in random} == {1, 2, 4, 500}
    assert len({run.model.data.knobs["seed"] for run in random}) == 5
    for family in restoration.names():
        of_family = [run for run in runs if run.family == family]
        assert len({run.steps for run in of_family}) == 2, family
        assert {run.seed for run in of_family} == {0, 1, 2}, family


def test_quick_benchmark_runs_through_snakemake_and_scores_every_restorer(tmp_path):
    shutil.copy(BENCHMARKS / "gmm_posterior_quick.yaml", tmp_path / "quick.yaml")
    table = "results/gmm_posterior_quick/tables/restoration.parquet"
    snakemake(tmp_path, "quick.yaml", targets=[table])
    rows = pd.read_parquet(tmp_path / table)
    assert set(rows["restorer_family"]) == set(restoration.names())
    assert rows.groupby("restorer")["steps"].nunique().eq(2).all()
    assert rows["max_sliced_w2_posterior"].notna().all() and (rows["max_sliced_w2_posterior_floor"] > 0).all()

    # the docs' table comes from bench/posterior_table.py: a row per restorer and budget, the problem's column
    printed = subprocess.run([sys.executable, str(ROOT / "bench" / "posterior_table.py"), str(tmp_path / table)],
                             capture_output=True, text=True, check=True).stdout
    assert "| published, d_y = 2 |" in printed
    for name, steps in rows[["restorer", "steps"]].drop_duplicates().itertuples(index=False):
        assert f"| `{name} @ {steps}` |" in printed
    assert printed.count("| floor (exact vs exact) | 1 [") == 1
