"""config/paper_tiny.yaml: config/paper.yaml in miniature. Its presets, tasks and tables mirror
paper.yaml's (settings equal but for steps and sweep sizes); run through the Snakemake API (tables
only, the small fixture networks), every experiment has its rows with the paper's columns
(measurement PSNR, sample PSNR, min-max PSNR), and the paper's PSNR table (method x task x VP/VE)
is a declared ablation table in the outputs."""

import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import ROOT

PAPER, TINY = (yaml.safe_load((ROOT / "config" / name).read_text()) for name in ("paper.yaml", "paper_tiny.yaml"))
SHRUNK = ("steps",)                                   # a preset's keys the miniature may change
PSNR_TABLE = {"source": "restoration", "rows": "restorer_family", "columns": ["operator", "model"],
              "metric": "psnr_minmax_ref"}
PSNR_COLUMNS = ("psnr_measurement", "psnr", "psnr_minmax_ref")


def same_settings(paper: dict, tiny: dict) -> dict:
    """The keys of a preset where the miniature differs from paper.yaml beyond what it may."""
    differ = {}
    for key in set(paper) | set(tiny):
        if key in SHRUNK:
            continue
        a, b = paper.get(key), tiny.get(key)
        if key in ("knobs", "schedule_knobs") and a and b:
            for name in set(a) | set(b):
                x, y = a.get(name), b.get(name)
                if isinstance(x, list) and isinstance(y, list) and set(y) <= set(x) and len(y) >= 2:
                    continue
                if x != y:
                    differ[f"{key}.{name}"] = (x, y)
        elif a != b:
            differ[key] = (a, b)
    return differ


def test_the_miniature_mirrors_paper_yaml():
    assert TINY["samplers"].keys() == PAPER["samplers"].keys()
    assert TINY["restoration"]["restorers"].keys() == PAPER["restoration"]["restorers"].keys()
    assert TINY["restoration"]["tasks"] == PAPER["restoration"]["tasks"]
    assert TINY["tables"]["ablations"].keys() == PAPER["tables"]["ablations"].keys()
    presets = [*((p, PAPER["samplers"][p], TINY["samplers"][p]) for p in PAPER["samplers"]),
               *((p, PAPER["restoration"]["restorers"][p], TINY["restoration"]["restorers"][p])
                 for p in PAPER["restoration"]["restorers"])]
    for preset, paper, tiny in presets:
        assert same_settings(paper, tiny) == {}, preset
    for name, tiny in TINY["tables"]["ablations"].items():     # the same layouts (a metric FID needs weights for)
        paper = PAPER["tables"]["ablations"][name]
        assert {k: tiny.get(k) for k in ("filter", "rows", "columns", "source", "pool")} == \
               {k: paper.get(k) for k in ("filter", "rows", "columns", "source", "pool")}, name
    for config in (PAPER, TINY):
        table = config["tables"]["ablations"]["restoration_psnr"]
        assert {key: table[key] for key in PSNR_TABLE} == PSNR_TABLE
    assert TINY["models"]["ve_ncsnpp"]["weights"] == PAPER["models"]["ve_ncsnpp"]["weights"] == "model"


def without_paths(config: dict) -> dict:
    """A config's models and datasets with their paths (and the miniature's image limit) taken out."""
    models = {name: {k: v for k, v in entry.items() if k != "checkpoint"} for name, entry in config["models"].items()}
    datasets = {name: {**entry, "knobs": {k: v for k, v in entry["knobs"].items() if k not in ("path", "limit")}}
                for name, entry in config["datasets"].items()}
    return {"models": models, "datasets": datasets}


def test_with_the_real_files_only_the_paths_change():
    # The fixture networks declare their size beside them (`.arch.yaml`); the images keep their own
    # size (resolution 0), which is FFHQ's 256 on the real folder.
    tiny, paper = without_paths(TINY), without_paths(PAPER)
    assert tiny["models"] == paper["models"]
    assert tiny["datasets"]["ffhq"]["knobs"].pop("resolution") == 0
    assert paper["datasets"]["ffhq"]["knobs"].pop("resolution") == 256
    assert tiny["datasets"] == paper["datasets"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """paper_tiny.yaml with its paths made absolute (the only change), run to its tables."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    workdir = tmp_path_factory.mktemp("paper_tiny")
    config = yaml.safe_load((ROOT / "config" / "paper_tiny.yaml").read_text())
    for model in config["models"].values():
        model["checkpoint"] = str(ROOT / model["checkpoint"])
    config["datasets"]["ffhq"]["knobs"]["path"] = str(ROOT / config["datasets"]["ffhq"]["knobs"]["path"])
    (workdir / "paper_tiny.yaml").write_text(yaml.safe_dump(config))
    # the two tables and the paper's PSNR table: the other ablation tables are the same rule again
    targets = {"results/tables/generation.parquet", "results/tables/restoration.parquet",
               "results/tables/ablations/restoration_psnr.csv"}
    with SnakemakeApi(OutputSettings(quiet=None)) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=2),
                                config_settings=ConfigSettings(configfiles=[workdir / "paper_tiny.yaml"]),
                                snakefile=ROOT / "Snakefile", workdir=workdir)
        workflow.dag(DAGSettings(targets=targets)).execute_workflow(executor="local")
    return workdir / "results" / "tables"


@pytest.mark.workflow
def test_the_pretrained_runs_hold_their_source_and_a_missing_checkpoint_fails_naming_the_key(tiny_run,
                                                                                              tmp_path):
    generation = pd.read_parquet(tiny_run / "generation.parquet")
    assert (generation["model_source"] == "pretrained").all()
    formats = generation.groupby("model")[["model_format", "model_weights"]].first().to_dict("index")
    assert formats == {"vp_adm": {"model_format": "adm_ffhq256", "model_weights": "ema"},
                       "ve_ncsnpp": {"model_format": "ncsnpp_ffhq256", "model_weights": "model"}}
    run = generation[generation["sampler"] == "paper_ve"].iloc[0]
    from diffsweep import pretrained, runs
    samples = runs.read_run_arrays(tiny_run.parent, run["run_id"])["x"]
    assert samples.shape == (2, 3, 32, 32) and np.isfinite(samples).all()

    # A copy of the run with the VE file gone, planned with the path checks off: the DAG builds,
    # the VE runs (new ids: the path is part of them) fail their job naming the key. The small
    # network's size, which its file declared beside it, is given in the config.
    workdir = tmp_path / "copy"
    shutil.copytree(tiny_run.parents[1], workdir, ignore=shutil.ignore_patterns("locks"))
    config = yaml.safe_load((workdir / "paper_tiny.yaml").read_text())
    ve = config["models"]["ve_ncsnpp"]
    ve["arch_params"] = pretrained.checkpoint_arch(ve["format"], ve["checkpoint"])
    ve["checkpoint"] = str(tmp_path / "gone.pth")
    (workdir / "paper_tiny.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--profile", str(ROOT / "profiles" / "default"),
                             "-s", str(ROOT / "Snakefile"), "-d", str(workdir), "--configfile", "paper_tiny.yaml",
                             "--cores", "2", "results/tables/generation.parquet"], capture_output=True, text=True,
                            cwd=workdir, env={**os.environ, "DIFFSWEEP_SKIP_PATH_CHECKS": "1"})
    assert result.returncode != 0
    logs = "".join(p.read_text() for p in (workdir / "results" / "logs" / "run_shard").glob("ve_ncsnpp-*.log"))
    message = "models.ve_ncsnpp.checkpoint: pretrained checkpoint '" + str(tmp_path / "gone.pth") + "' not found"
    assert message in result.stderr + logs


@pytest.mark.workflow
def test_every_experiment_has_its_rows_and_the_paper_columns(tiny_run):
    generation = pd.read_parquet(tiny_run / "generation.parquet")
    assert set(generation["sampler"]) == set(TINY["samplers"]) and set(generation["status"]) == {"ok"}
    assert generation["sliced_w2"].map(math.isfinite).all()
    restoration = pd.read_parquet(tiny_run / "restoration.parquet")
    assert set(restoration["status"]) == {"ok"}
    expected = {(preset, task) for preset, entry in TINY["restoration"]["restorers"].items() for task in entry["tasks"]}
    assert set(zip(restoration["restorer"], restoration["task"])) == expected
    n = TINY["restoration"]["n_measurements"]
    assert (restoration.groupby("run_id").size() == n).all()
    for column in PSNR_COLUMNS + ("psnr_measurement_minmax_ref",):
        assert restoration[column].map(math.isfinite).all(), column
    # the measurement PSNR belongs to the measurement: one value per task and measurement, whatever restores it
    per_measurement = restoration.groupby(["task", "measurement"])["psnr_measurement"].nunique()
    assert (per_measurement == 1).all()
    assert restoration.groupby("task")["psnr_measurement"].mean().nunique() == 4


@pytest.mark.workflow
def test_the_paper_psnr_table_is_method_by_task_by_network(tiny_run):
    cells = pd.read_csv(tiny_run / "ablations" / "restoration_psnr.csv")
    restoration = pd.read_parquet(tiny_run / "restoration.parquet")
    assert list(cells.columns[:3]) == ["restorer_family", "operator", "model"]
    walk = cells[cells["restorer_family"] == "rw_conditional"]
    assert set(zip(walk["operator"], walk["model"])) == {(op, m) for op in ("sr_bicubic", "inpaint_random")
                                                         for m in ("vp_adm", "ve_ncsnpp")}
    assert walk["value"].map(math.isfinite).all()
    # a cell is the mean over the paper preset's measurements alone (the filter keeps the ablations out)
    cell = walk[(walk["operator"] == "sr_bicubic") & (walk["model"] == "ve_ncsnpp")].iloc[0]
    rows = restoration[restoration["restorer"] == "paper_ve_sr4"]
    assert cell["value"] == pytest.approx(rows["psnr_minmax_ref"].mean()) and cell["n"] == len(rows)
    assert set(cells["restorer_family"]) == {"rw_conditional", "dps", "ddrm", "pigdm", "diffpir"}
