"""The workflow through Snakemake: DAG construction, bad configs, the smoke run end to end,
incremental re-runs (a new preset re-runs only its runs) and the profile's rerun triggers."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

pytestmark = pytest.mark.workflow


def api_dag(workdir: Path, configfile: Path | None):
    """Parse the Snakefile and build the DAG through the Snakemake Python API (a dry run)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, ResourceSettings

    with SnakemakeApi(OutputSettings(quiet=None)) as api:
        workflow = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[configfile] if configfile else []),
            snakefile=ROOT / "Snakefile", workdir=workdir)
        dag = workflow.dag()
        dag.execute_workflow(executor="dryrun")


def planned_jobs(workdir: Path, *extra: str, snakefile: Path = ROOT / "Snakefile") -> dict[str, int]:
    """Job counts per rule of a dry run with the default profile (what `snakemake -n` would do)."""
    result = subprocess.run([*SNAKEMAKE, "-n", "--profile", str(ROOT / "profiles" / "default"), "-s",
                             str(snakefile), "-d", str(workdir), *extra],
                            capture_output=True, text=True, cwd=workdir)
    assert result.returncode == 0, result.stdout + result.stderr
    counts, in_table = {}, False
    for line in result.stdout.splitlines():
        if line.startswith("job ") and "count" in line:
            in_table = True
            continue
        if in_table:
            parts = line.split()
            if len(parts) == 2 and parts[1].isdigit() and parts[0] != "total":
                counts[parts[0]] = int(parts[1])
            elif parts and parts[0] == "total":
                break
    return counts


# config/smoke.yaml from scratch: 2 datasets, the oracle and 1 MLP per dataset (3 score sources, 3
# likelihoods), generation runs packed 8 to a job per source (oracle on ring8: 1 shard; each MLP: 1)
# and the oracle's restorations on ring8 (1 shard), 2 declared ablation tables, the floor of ring8, the
# explorer page.
SMOKE_JOBS = {"prepare_data": 2, "train": 2, "likelihood": 3, "run_shard": 4, "floor": 1, "manifest": 1, "aggregate": 1,
              "restoration_table": 1, "ablation_table": 2, "plot_metrics": 1, "plot_samples": 2, "plot_heatmaps": 1,
              "plot_schedules": 1, "plot_training": 1, "plot_restoration": 1, "explore": 1, "all": 1}


def expected_jobs(path: Path) -> dict[str, int]:
    """Jobs a dry run of a config plans from scratch, counted from its grid."""
    from diffsweep import config, grid as ds_grid, studies, tables

    cfg, grid = config.load(path)
    shards = grid.shards({kind: cfg["jobs"][kind]["runs_per_job"] for kind in ("generation", "restoration")})
    extractors = {(run.model.data.id, extractor) for run in grid.runs.values()
                  for extractor in ds_grid.fidelity_extractors(run.model.data, cfg["fidelity"])}
    likelihood = cfg["metrics"]["likelihood"]
    trained = bool(grid.trained_models())
    counts = {"prepare_data": len(grid.datasets), "train": len(grid.trained_models()), "run_shard": len(shards),
              "likelihood": sum(not likelihood["models"] or m.name in likelihood["models"] for m in grid.models.values())
              if likelihood["points"] else 0,
              "train_digits_classifier": int(any(e == "digits" for _, e in extractors)),
              "fidelity_reference": len(extractors), "manifest": 1, "aggregate": 1,
              # the metric's floor: one per analytic dataset and sample count of the generation runs
              "floor": len({(run.model.data.id, run.n_samples) for run in grid.of_kind("generation").values()
                            if run.model.data.analytic}),
              "restoration_table": int(bool(grid.of_kind('restoration'))), "plot_restoration": int(bool(grid.of_kind('restoration'))),
              "ablation_table": len(tables.ablation_specs(cfg["tables"])), "plot_metrics": 1,
              "plot_samples": len(grid.datasets), "plot_heatmaps": int(trained and bool(cfg["plots"]["heatmap"]["metrics"])),
              "plot_schedules": int(cfg["plots"]["schedules"]), "plot_training": int(trained), "explore": 1,
              **{f"study_{name}": 1 for name in studies.declared(cfg) if studies.STUDIES[name].drawn(grid)},
              "all": 1}
    return {rule: count for rule, count in counts.items() if count}


def test_dry_run_plans_every_job_of_the_smoke_grid(tmp_path):
    counts = planned_jobs(tmp_path, "--configfile", str(ROOT / "config" / "smoke.yaml"))
    assert counts == SMOKE_JOBS == expected_jobs(ROOT / "config" / "smoke.yaml")


def test_embedded_default_applies_without_a_configfile(tmp_path):
    """The default grid (config/config.yaml, embedded) plans exactly the jobs its grid implies."""
    assert planned_jobs(tmp_path) == expected_jobs(ROOT / "config" / "config.yaml")


def test_a_results_folder_of_the_old_layout_is_refused(tmp_path):
    old_run = tmp_path / "results" / "runs" / "rw_sigmoid-0123abcd"   # 8-digit hashes, no layout.json
    old_run.mkdir(parents=True)
    (old_run / "run.json").write_text("{}")
    with pytest.raises(Exception, match=r"results: 'results' holds runs of an older layout .*move the folder aside "
                                        r"or set `results:` to another folder"):
        api_dag(tmp_path, ROOT / "config" / "smoke.yaml")


def test_a_bad_config_fails_before_any_job(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"samplers": {"rw": {"family": "random_walk", "knobs": {"eps": "big"}}}}))
    with pytest.raises(Exception, match="samplers.rw.knobs.eps: 'big' is not allowed; allowed: a finite number"):
        api_dag(tmp_path, bad)
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_smoke_run_produces_tables_and_plots(smoke_run):
    from diffsweep import config

    _, grid = config.load(smoke_run / "smoke.yaml")
    results = smoke_run / "results"
    table = pd.read_parquet(results / "tables" / "generation.parquet")
    assert sorted(table["run_id"]) == sorted(grid.of_kind("generation"))
    assert (table["status"] == "ok").all()
    assert (table["nfe"] > 0).all() and (table["wall_s"] > 0).all()
    for column in ("sliced_w2", "mmd", "energy_distance", "knob_eps", "schedule", "model_train_sigma_name"):
        assert column in table.columns
    oracle = table[(table["model"] == "oracle") & (table["sampler"] == "rw_sigmoid") & (table["steps"] == 40)]
    assert oracle["mode_coverage"].iloc[0] == 1.0        # the exact score finds every ring mode
    manifest = pd.read_parquet(results / "runs.parquet")
    assert set(manifest["run_id"]) == set(grid.runs)
    training = pd.read_parquet(results / "tables" / "training.parquet")
    assert set(training["model_id"]) == {m.id for m in grid.trained_models()}
    for png in ("sliced_w2_vs_nfe.png", "samples_ring8.png", "samples_swissroll.png"):
        assert (results / "plots" / png).stat().st_size > 1000
    from diffsweep import runs
    assert json.loads((results / "layout.json").read_text()) == {"version": 4}
    states = runs.index(results)
    assert sorted(state.record["kind"] for state in states.values()) == sorted(run.kind for run in grid.runs.values())
    for run_id in grid.runs:
        assert len(runs.read_run_arrays(results, run_id, states=states)) > 0
    # files grow with shard jobs, not runs: a record file and an archive per shard, no staging left
    shards = {path.stem for path in (results / "shards").glob("*.json")}
    assert sorted(path.name for path in (results / "records").iterdir()) == \
        sorted(f"{shard}{suffix}" for shard in shards for suffix in (".jsonl", ".archive"))
    from diffsweep import io
    params = io.read_parquet(results / "tables" / "generation.parquet").attrs["param_columns"]
    manifest = io.read_parquet(results / "runs.parquet")     # of every kind: the restorations' columns too
    assert set(manifest["kind"]) == {"generation", "restoration"} and list(manifest.columns[:2]) == ["run_id", "kind"]
    assert set(params) < set(manifest.attrs["param_columns"]) and "task" in manifest.attrs["param_columns"]
    assert {"sampler", "steps", "knob_eps", "schedule_sharpness", "model_train_sigma_name", "seed"} <= set(params)
    assert not {"run_id", "model_id", "data_id", "sliced_w2", "nfe", "status", "model_nll_bpd"} & set(params)
    assert list((smoke_run / "results" / "logs").rglob("*.log"))   # logs follow the results folder


@pytest.mark.slow
def test_nothing_to_do_after_a_run_and_touching_code_retrains_nothing(smoke_run, tmp_path):
    assert planned_jobs(smoke_run, "--configfile", "smoke.yaml") == {}
    # a fresh copy of the workflow code is newer than every output (the checkout stays untouched)
    code = tmp_path / "code"
    code.mkdir()
    shutil.copy(ROOT / "Snakefile", code)
    for folder in ("workflow", "scripts", "src"):
        shutil.copytree(ROOT / folder, code / folder, copy_function=shutil.copy,
                        ignore=shutil.ignore_patterns("__pycache__"))
    assert planned_jobs(smoke_run, "--configfile", "smoke.yaml", snakefile=code / "Snakefile") == {}


@pytest.mark.slow
def test_a_new_preset_runs_only_its_runs(smoke_run):
    from diffsweep import config

    smoke = yaml.safe_load((smoke_run / "smoke.yaml").read_text())
    smoke["samplers"]["sde_ve"] = {"family": "sde_euler", "steps": 12}
    (smoke_run / "extended.yaml").write_text(yaml.safe_dump(smoke))
    _, grid = config.load(smoke_run / "extended.yaml")
    new_runs = [r for r in grid.runs.values() if r.preset == "sde_ve"]
    counts = planned_jobs(smoke_run, "--configfile", "extended.yaml")
    assert "train" not in counts and "prepare_data" not in counts
    # one shard per score source, holding only the new runs (runs_per_job is larger than that)
    assert counts["run_shard"] == len({r.model.id for r in new_runs})


@pytest.mark.slow
def test_an_image_dataset_runs_end_to_end(digits_run):
    """The analytic digits prior through the whole workflow (conftest.DIGITS, run once per session
    and shared with the restoration tests): oracle and a (briefly) trained UNet sampling 8x8 images,
    metrics on flattened pixels and through torch-fidelity's registered digits extractor, per-run
    image grids, the loss-by-sigma log and the image panels of the figures."""
    tmp_path = digits_run
    table = pd.read_parquet(tmp_path / "results" / "tables" / "generation.parquet").set_index("model")
    assert len(table) == 2 and (table["status"] == "ok").all()
    assert table.loc["oracle", "mode_coverage"] == 1.0          # the exact prior reaches every component
    for column in ("fid_digits", "kid_digits", "precision_digits", "recall_digits", "isc_digits", "pixel_frechet"):
        assert table[column].notna().all(), column
    # 20 training steps give noise-like images: every distance ranks them below the exact prior
    assert table.loc["unet", "fid_digits"] > table.loc["oracle", "fid_digits"]
    assert table.loc["unet", "pixel_frechet"] > table.loc["oracle", "pixel_frechet"]
    assert (table["fidelity_inception_status"].str.startswith("skipped: fidelity.inception_weights is not set")).all()
    by_sigma = pd.read_parquet(tmp_path / "results" / "tables" / "training_by_sigma.parquet")
    assert by_sigma["count"].sum() == 20 * 32 and set(by_sigma["step"]) == {10, 20}
    assert (tmp_path / "results" / "plots" / "training_loss_by_sigma.png").stat().st_size > 1000
    from diffsweep import runs
    results, run_id = tmp_path / "results", table.loc["oracle", "run_id"]
    assert runs.read_run_arrays(results, run_id)["x"].shape == (64, 1, 8, 8)
    assert len(runs.read_run_file(results, run_id, "grid.png")) > 500
    assert (tmp_path / "results" / "plots" / "samples_digits_gmm.png").stat().st_size > 1000
