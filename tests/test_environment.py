"""The conda environment of the rules (envs/diffsweep.yaml) asks for what pyproject.toml asks for:
every dependency with the same version bounds, so a run with `--software-deployment-method conda`
gets the versions the tests ran with."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

ROOT = Path(__file__).resolve().parents[1]
# pyproject name -> conda-forge name, where they differ.
CONDA_NAMES = {"torch": "pytorch"}
# Dependencies the rule environment does not need, and why.
NOT_IN_ENV = {"snakemake": "it runs the jobs; no rule script imports it"}


def pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def env_requirements() -> dict[str, SpecifierSet]:
    """name -> version bounds of every conda and pip entry of the environment (pyproject names)."""
    env = yaml.safe_load((ROOT / "envs" / "diffsweep.yaml").read_text())
    entries = []
    for entry in env["dependencies"]:
        entries.extend(entry["pip"] if isinstance(entry, dict) else [entry])
    pyproject_name = {conda: name for name, conda in CONDA_NAMES.items()}
    out = {}
    for entry in entries:
        name, bounds = re.fullmatch(r"([A-Za-z0-9_.\-]+)\s*(.*)", entry).groups()
        bounds = "==" + bounds[1:] + ".*" if bounds.startswith("=") and not bounds.startswith("==") else bounds
        name = pyproject_name.get(name, name)
        assert name not in out, f"envs/diffsweep.yaml lists {name} twice"
        out[name] = SpecifierSet(bounds)
    return out


def test_every_dependency_is_in_the_env_with_the_same_bounds():
    env = env_requirements()
    for line in pyproject()["dependencies"]:
        requirement = Requirement(line)
        if requirement.name in NOT_IN_ENV:
            continue
        assert requirement.name in env, f"envs/diffsweep.yaml lacks {requirement.name} (pyproject.toml: {line})"
        assert env[requirement.name] == requirement.specifier, (
            f"envs/diffsweep.yaml: {requirement.name}{env[requirement.name]} differs from pyproject.toml's {line}")


def test_the_env_holds_nothing_pyproject_does_not_ask_for():
    asked = {Requirement(line).name for line in pyproject()["dependencies"]}
    extra = set(env_requirements()) - asked - {"python", "pip"} - set(NOT_IN_ENV)
    assert not extra, f"envs/diffsweep.yaml lists {sorted(extra)}, which pyproject.toml does not"


def test_the_env_python_satisfies_requires_python():
    version = str(env_requirements()["python"]).removeprefix("==").removesuffix(".*")
    assert SpecifierSet(pyproject()["requires-python"]).contains(version + ".0")


def test_excluded_dependencies_exist():
    asked = {Requirement(line).name for line in pyproject()["dependencies"]}
    assert set(NOT_IN_ENV) <= asked
