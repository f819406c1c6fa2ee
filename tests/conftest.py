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


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory):
    """config/smoke.yaml run once per test session, end to end, through the Snakemake API with
    the default profile's rerun triggers. Tests that read it must not change its results."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.enums import RerunTrigger
    from snakemake.settings.types import ConfigSettings, DAGSettings, OutputSettings, ResourceSettings

    workdir = tmp_path_factory.mktemp("smoke")
    shutil.copy(ROOT / "config" / "smoke.yaml", workdir / "smoke.yaml")
    with SnakemakeApi(OutputSettings(quiet=None)) as api:
        workflow = api.workflow(resource_settings=ResourceSettings(cores=2),
                                config_settings=ConfigSettings(configfiles=[workdir / "smoke.yaml"]),
                                snakefile=ROOT / "Snakefile", workdir=workdir)
        profile = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
        triggers = {RerunTrigger[name.upper().replace("-", "_")] for name in profile["rerun-triggers"]}
        dag = workflow.dag(DAGSettings(rerun_triggers=triggers))
        dag.execute_workflow(executor="local")
    return workdir
