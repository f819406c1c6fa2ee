"""config/paper.yaml: it validates, its grid builds, a dry run with DIFFSWEEP_SKIP_PATH_CHECKS=1
builds the DAG with none of its files present, the seven experiments carry the reference code's
settings (docs/paper.md cites them), and without the switch the missing files are refused at parse
time naming each config key."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from diffsweep import config as ds_config
from diffsweep import grid as ds_grid

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "paper.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--profile", str(ROOT / "profiles" / "default"),
             "-s", str(ROOT / "Snakefile"), "--configfile", str(PAPER)]


@pytest.fixture(scope="module")
def paper_grid():
    _, grid = ds_config.load(PAPER, check_paths=False)   # the images, checkpoints and weights are not here
    return grid


def only_run(runs, preset):
    chosen = [run for run in runs if run.preset == preset]
    assert len(chosen) == 1, (preset, len(chosen))
    return chosen[0]


# x ~ N(0, I) on the network's data (sample.py:147,161): [-1, 1] for VP, [0, 1] for VE, i.e. N(-1, 4 I) here
START = {"vp_adm": ("unit", {}), "ve_ncsnpp": ("gaussian", {"mean": -1.0, "std": 2.0})}


# (preset, model, schedule, schedule params that matter, K, eps, T0, extra knobs): reference configs/*.yaml
UNCONDITIONAL = [
    ("paper_vp_sigmoid", "vp_adm", "sigmoid", {"sharpness": 0.3, "snap": 10 ** 6}, 100, 0.7, 0.1, {"ve_continuous_sigma": "none"}),
    ("paper_vp_pretrained_schedule", "vp_adm", "vp_pretrained", {"beta_min": 1e-4, "beta_max": 0.02, "timesteps": 1000},
     1000, 0.4, 0.4, {"ve_continuous_sigma": "none"}),
    ("paper_ve", "ve_ncsnpp", "ve_discrete", {"sigma_min": 0.02, "sigma_max": 696.0}, 1000, 0.16, 0.4,
     {"ve_continuous_sigma": "network"}),
]


@pytest.mark.parametrize("preset, model, schedule, schedule_knobs, steps, eps, T0, extra", UNCONDITIONAL)
def test_unconditional_experiments_have_the_reference_settings(paper_grid, preset, model, schedule, schedule_knobs,
                                                               steps, eps, T0, extra):
    run = only_run(paper_grid.runs.values(), preset)
    assert run.model.name == model and run.family == "random_walk"
    assert run.schedule == schedule and run.steps == steps
    assert {key: run.schedule_knobs[key] for key in schedule_knobs} == schedule_knobs
    assert (run.init, run.init_knobs) == START[model]
    assert run.n_samples == 1000
    assert run.knobs == {**run.knobs, "step_rule": "reference", "eps": eps, "T0": T0, "final_noise": False,
                         "steps_per_level": 1, **extra}


# (preset, model, task, operator params, data range, schedule, K, eps, ve_continuous_sigma)
CONDITIONAL = [
    ("paper_vp_sr4", "vp_adm", "vp_sr4", {"factor": 4}, "minus_one_one", "sigmoid", 750, 0.15651, "none"),
    ("paper_vp_inpaint92", "vp_adm", "vp_inpaint92", {"missing": 0.92, "per_image": True}, "minus_one_one", "sigmoid", 750, 0.77683,
     "none"),
    ("paper_ve_sr4", "ve_ncsnpp", "ve_sr4", {"factor": 4}, "zero_one", "ve_discrete", 1000, 0.15651, "network"),
    ("paper_ve_inpaint92", "ve_ncsnpp", "ve_inpaint92", {"missing": 0.92, "per_image": True}, "zero_one", "ve_discrete", 1000, 0.29487,
     "network"),
]


@pytest.mark.parametrize("preset, model, task, operator_knobs, data_range, schedule, steps, eps, continuous",
                         CONDITIONAL)
def test_conditional_experiments_have_the_reference_settings(paper_grid, preset, model, task, operator_knobs,
                                                             data_range, schedule, steps, eps, continuous):
    run = only_run(paper_grid.of_kind('restoration').values(), preset)
    assert (run.kind, run.model.name, run.task.name, run.family) == ("restoration", model, task, "rw_conditional")
    assert run.task.operator == ("sr_bicubic" if "factor" in operator_knobs else "inpaint_random")
    assert run.task.operator_knobs == operator_knobs        # inpainting: a mask per image (sample.py:124-127)
    assert run.task.noise_std == 0.2 and run.task.data_range == data_range
    # noise_std 0.2 on the network's own data: [-1, 1] for VP (sample.py:103-106), [0, 1] for VE (sample.py:100-102)
    assert run.task.noise_std_effective == pytest.approx(0.2 if model == "vp_adm" else 0.4)
    assert (run.schedule, run.steps, run.init, run.init_knobs) == (schedule, steps, *START[model])
    assert run.knobs == {"eps": eps, "T0": 0.0, "clamp_tau": True, "ve_continuous_sigma": continuous,
                         "steps_per_level": 1, "final_noise": False}
    if schedule == "sigmoid":       # snapped to the reference's 10^6-point grid (tweedie_utility.py:745-815)
        assert (run.schedule_knobs["sharpness"], run.schedule_knobs["snap"]) == (0.3, 10 ** 6)
    assert run.n_samples == 1 and run.task.n_measurements == 1000


def test_dataset_models_and_sizes(paper_grid):
    (dataset,) = paper_grid.datasets.values()
    assert dataset.family == "images" and dataset.n_reference == 1000
    assert {k: dataset.knobs[k] for k in ("resolution", "channels", "limit")} == {"resolution": 256, "channels": 3,
                                                                                  "limit": 1000}
    formats = {model.name: model.recipe["format"] for model in paper_grid.models.values()}
    assert formats == {"vp_adm": "adm_ffhq256", "ve_ncsnpp": "ncsnpp_ffhq256"}
    # the reference loads the VE checkpoint's raw 'model' weights, not the EMA copy (sample.py:60-65)
    assert {model.name: model.recipe["weights"] for model in paper_grid.models.values()}["ve_ncsnpp"] == "model"
    assert not paper_grid.excluded
    # presets tuned for one network run only with it; the same-walk ablations run with both
    assert {run.model.name for run in paper_grid.runs.values() if run.preset == "abl_same_walk_sigmoid"} == \
        {"vp_adm", "ve_ncsnpp"}
    assert {run.model.name for run in paper_grid.runs.values() if run.preset.startswith("abl_sigmoid")} == {"vp_adm"}


def test_sweep_size_stays_what_the_comments_say(paper_grid):
    """The NFE totals quoted in config/paper.yaml (steps x images, before 2-NFE-per-level samplers)."""
    unconditional = sum(run.steps * run.n_samples for run in paper_grid.of_kind('generation').values())
    restoration = sum(run.steps * run.task.n_measurements * run.n_samples for run in paper_grid.of_kind('restoration').values())
    assert (len(paper_grid.of_kind('generation')), len(paper_grid.of_kind('restoration'))) == (51, 22)
    assert unconditional == 9_975_000 and restoration == 8_140_000


def test_ncsn_row_of_table_1_is_a_preset(paper_grid):
    """The walk with NCSN's Table-1 rule on the VE network, NCSNv2's FFHQ step (docs/paper.md)."""
    run = only_run(paper_grid.runs.values(), "other_rw_ncsn")
    assert (run.model.name, run.family, run.schedule, run.steps, run.init) == ("ve_ncsnpp", "rw_ncsn", "geometric",
                                                                               500, "sigma_max")
    assert run.knobs == {"eps": 7.2e-6, "sigma_ref": "smallest", "steps_per_level": 3, "final_noise": False}
    assert (run.schedule_knobs["sigma_min"], run.schedule_knobs["sigma_max"]) == (0.02, 696.0)


def test_preset_restrictions_name_unknown_models_and_tasks():
    config = yaml.safe_load(PAPER.read_text())
    config["samplers"]["paper_ve"]["models"] = ["ve"]
    with pytest.raises(ValueError, match="samplers.paper_ve.models: unknown model 've'; allowed: ve_ncsnpp, vp_adm"):
        ds_grid.build(ds_config.prepare(config))
    config = yaml.safe_load(PAPER.read_text())
    config["restoration"]["restorers"]["paper_ve_sr4"]["tasks"] = ["sr4"]
    with pytest.raises(ValueError, match="restoration.restorers.paper_ve_sr4.tasks: unknown task 'sr4'"):
        ds_grid.build(ds_config.prepare(config))


@pytest.mark.workflow
def test_dry_run_needs_none_of_the_files(tmp_path, paper_grid):
    result = subprocess.run([*SNAKEMAKE, "-n", "-d", str(tmp_path)], capture_output=True, text=True, cwd=tmp_path,
                            env={**os.environ, ds_config.SKIP_PATH_CHECKS: "1"})
    assert result.returncode == 0, result.stdout + result.stderr
    # runs_per_job: 1 for both kinds: one shard job per run
    assert re.search(rf"^run_shard +{len(paper_grid.runs)}$", result.stdout, re.M)
    assert not (tmp_path / "results").exists()


@pytest.mark.workflow
def test_a_run_without_the_files_is_refused_at_parse_time_naming_each_key(tmp_path):
    env = {key: value for key, value in os.environ.items() if key != ds_config.SKIP_PATH_CHECKS}
    result = subprocess.run([*SNAKEMAKE, "--cores", "1", "-d", str(tmp_path), "--until", "prepare_data"],
                            capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    for line in ["datasets.ffhq.knobs.path: 'data/ffhq256' does not exist",
                 "models.vp_adm.checkpoint: pretrained checkpoint 'pretrained/ffhq_10m.pt' not found",
                 "fidelity.inception_weights: 'pretrained/weights-inception-2015-12-05-6726825d.pth' does not exist",
                 "restoration.metrics.lpips_weights: 'pretrained/vgg16-397923af.pth' does not exist"]:
        assert f"invalid config: {line}" in output
    assert "Traceback" not in output and not (tmp_path / "results").exists()
