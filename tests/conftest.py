"""Shared fixtures. Tests run on the CPU, deterministically, with the library from src/."""

import shutil
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


@pytest.fixture
def root() -> Path:
    return ROOT


def wait_for(path: Path, process) -> None:
    """Until `path` exists (a handshake written by a workflow job), failing if the process ends first."""
    import time
    while not path.exists():
        if process.poll() is not None:
            pytest.fail(f"snakemake ended before {path.name} was written:\n{process.communicate()[0][-3000:]}")
        time.sleep(0.01)


def snakemake(workdir: Path, configfile: str = "smoke.yaml", targets=(), dry_run: bool = False,
              forcerun=(), snakefile: Path = ROOT / "Snakefile", planned_jobs: list | None = None) -> dict[str, int]:
    """Run the workflow in `workdir` (or plan it, with `dry_run`) through the Snakemake API with the
    default profile's rerun triggers, as `snakemake --profile profiles/default` would; returns the
    jobs it planned, counted per rule (rule all left out). `snakefile`: another copy of the workflow;
    `planned_jobs`: a list that gets (rule, wildcards) of each job planned."""
    from collections import Counter

    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import RerunTrigger
    from snakemake.settings.types import (ConfigSettings, DAGSettings, ExecutionSettings, OutputSettings,
                                          ResourceSettings)

    profile = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    triggers = {RerunTrigger[name.upper().replace("-", "_")] for name in profile["rerun-triggers"]}
    with SnakemakeApi(OutputSettings(quiet=None)) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=2),
                                config_settings=ConfigSettings(configfiles=[Path(workdir) / configfile]),
                                snakefile=snakefile, workdir=workdir)
        dag = workflow.dag(DAGSettings(targets=set(targets), rerun_triggers=triggers, forcerun=set(forcerun),
                                       force_incomplete=profile["rerun-incomplete"]))
        dag.execute_workflow(executor="dryrun" if dry_run else "local",
                             execution_settings=ExecutionSettings(keep_going=profile["keep-going"]))
        planned = workflow._workflow.dag
        jobs = planned.needrun_jobs(exclude_finished=False) if dry_run else planned.finished_jobs
        if planned_jobs is not None:
            planned_jobs.extend((job.rule.name, dict(job.wildcards_dict)) for job in jobs if job.rule.name != "all")
        return dict(Counter(job.rule.name for job in jobs if job.rule.name != "all"))


@pytest.fixture(scope="session")
def oracle_of():
    """The exact denoiser of a 2-D mixture preset (`oracle_of("grid25")`), one per preset: the score
    source of the sampler tests (float64 in, float64 out, on the CPU)."""
    from diffsweep.data import make_dataset
    from diffsweep.models import OracleDenoiser
    made = {}

    def oracle_of(preset: str):
        if preset not in made:
            made[preset] = OracleDenoiser(make_dataset("gmm", preset=preset).mixture)
        return made[preset]
    return oracle_of


@pytest.fixture(scope="session")
def oracle(oracle_of):
    """The exact denoiser of the ring8 mixture."""
    return oracle_of("ring8")


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """config/smoke.yaml run once per test session, end to end, through the Snakemake API with
    the default profile's rerun triggers. Tests that read it must not change its results."""
    workdir = tmp_path_factory.mktemp("smoke")
    shutil.copy(ROOT / "config" / "smoke.yaml", workdir / "smoke.yaml")
    snakemake(workdir)
    return workdir


# The digits run: one workflow run serves test_workflow's image test (generation: the oracle and a
# briefly trained UNet, ddim) and test_restoration_workflow (restoration with the oracle), which
# share the dataset, the digits classifier and its FID reference.
DIGITS = {
    "seeds": [0],
    "data": {"n_train": 200, "n_reference": 200},
    "sampling": {"n_samples": 64},
    "jobs": {"generation": {"runs_per_job": 8}, "restoration": {"runs_per_job": 4}},
    "datasets": {"digits_gmm": {"family": "digits_gmm", "knobs": {"components": 3}}},
    "models": {"oracle": {"source": "oracle"},
               "unet": {"source": "trained", "arch": "unet", "arch_params": {"channels": [16, 32]},
                        "train_sigma": {"name": "edm_lognormal"}, "parametrisation": "edm",
                        "weight": "edm", "sigma_data": 0.5, "steps": 20, "batch_size": 32, "log_every": 10}},
    "samplers": {"ddim": {"family": "ddim", "steps": 10}},
    "plugins": ["my_restorers.py"],
    "tables": {"ablations": {"restorer_by_task": {"source": "restoration", "rows": "restorer", "columns": "task",
                                                  "metric": "psnr"}}},
    "plots": {"schedules": False},
    "metrics": {"likelihood": {"points": 0}},   # the likelihood is not under test here
    "fidelity": {"digits_classifier": {"epochs": 3}, "kid_subset_size": 50},  # features only need to exist
    "restoration": {
        "tasks": {"sr2": {"operator": "sr_bicubic", "knobs": {"factor": 2}, "noise_std": 0.05},
                  "box": {"operator": "inpaint_box", "knobs": {"size": 3}, "noise_std": 0.05}},
        "restorers": {"rw": {"family": "rw_conditional", "steps": 30, "knobs": {"eps": 0.7, "T0": 0.1}},
                      "ddrm": {"family": "ddrm", "steps": 10},
                      "diffpir": {"family": "diffpir", "steps": 10},
                      "plugin": {"family": "denoise_only", "steps": 10}},
        "models": ["oracle"],
        "n_measurements": 2, "n_samples": 3,
        "metrics": {"posterior_samples": 200, "lpips_weights": "alexnet.pth"},   # written by the fixture
    },
}

# A user's restorer, registered by a plugin file (config `plugins`): the parse and the job import it.
PLUGIN = """
from diffsweep.restoration import register
from diffsweep.samplers import report, steps_to_zero


@register("denoise_only", knobs={}, description="unconditional baseline: denoise and renoise, ignoring y")
def denoise_only(denoise, x, sigmas, noise, operator, y, noise_std, *, callback=None):
    for step, (sigma, following) in enumerate(steps_to_zero(sigmas)):
        denoised = denoise(x, sigma)
        x = denoised + following * noise(x)
        report(callback, step, sigma, x, denoised)
    return x, len(sigmas)
"""


# What the digits tests read: the tables, and the figures of training, samples and restoration
# (the metric-vs-NFE and heatmap figures are the smoke run's to check).
DIGITS_TARGETS = ("results/tables/generation.parquet", "results/tables/restoration.parquet",
                  "results/tables/ablations/restorer_by_task.csv", "results/plots/training_loss_by_sigma.png",
                  "results/plots/samples_digits_gmm.png", "results/plots/restoration_psnr_vs_nfe.png")


def run_workflow(workdir, root, config, targets=()):
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    (workdir / "config.yaml").write_text(yaml.safe_dump(config))
    (workdir / "my_restorers.py").write_text(PLUGIN)
    with SnakemakeApi(OutputSettings(quiet=None)) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=2),
                                config_settings=ConfigSettings(configfiles=[workdir / "config.yaml"]),
                                snakefile=root / "Snakefile", workdir=workdir)
        workflow.dag(DAGSettings(targets=set(targets))).execute_workflow(executor="local")


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """DIGITS run once per test session through the Snakemake API, to DIGITS_TARGETS. Tests that
    read it must not change its results."""
    import torch
    import torchvision
    workdir = tmp_path_factory.mktemp("digits")
    torch.manual_seed(0)
    torch.save({key: value for key, value in torchvision.models.alexnet(weights=None).state_dict().items()
                if key.startswith("features.")}, workdir / "alexnet.pth")
    run_workflow(workdir, ROOT, DIGITS, DIGITS_TARGETS)
    return workdir
