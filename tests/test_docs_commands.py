"""Every `diffsweep` command that the docs show in a code block (README.md, docs/*.md) runs as
written: in-process (cli.main), from a folder laid out as the repository root after a sweep.

- Every command runs against a copy of the session's smoke run (`smoke_run`, config/smoke.yaml
  finished), with the repository's config/ beside its results/, so that config/config.yaml and
  results/... resolve as in the repository root; HOME and XDG_CONFIG_HOME are fresh folders.
- The `diffsweep table` commands also run against the default grid's generation table: the
  manifest of config/config.yaml with the smoke run's metric columns (seeded random values). The
  docs' examples are written for the default grid, and whether a pivot's cells mix
  configurations depends on the grid's parameters only (the default grid's ncsn preset sweeps
  steps_per_level at fixed steps, which the smoke grid does not); running the default grid itself
  takes minutes.

Placeholders become real values: RUN_ID and <run_id> a finished run of the smoke run, my_sweep.yaml
its config; an optional part `[--option value]` is run with the option, `a|b|c` once with each.
Commands in prose (inline code) are not collected; the fenced `diffsweep` commands not run here are
in NOT_RUN with the reason. The docs' `snakemake` and `make` commands are not run here: they run
sweeps (minutes to hours); the smoke_run fixture and tests/test_workflow.py run the workflow through
the Snakemake API, tests/test_cluster.py the SLURM profile on a throw-away cluster, and
tests/test_profiles.py checks that `--profile slurm` resolves after `diffsweep profile install`."""

import itertools
import re
import shlex
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from diffsweep import cli, config, io as ds_io, tables

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# Fenced commands that need what a test does not have, with where they are exercised instead.
NOT_RUN = {
    "diffsweep grid --config my_config.yaml":
        "needs the doc's plugin file and config: tests/test_plugin.py runs it with both (docs/adding-a-sampler.md)",
    "diffsweep diff before/results results --html diff.html":
        "needs a second sweep: tests/test_sweep_diff.py runs it on two sweeps (docs/tables.md)",
}


def documented_commands() -> list[tuple[str, dict, str]]:
    """(file:line, environment, command) of every line of a fenced code block that runs `diffsweep`
    (after optional VAR=value assignments), continuation lines joined."""
    found = []
    for path in DOCS:
        text = path.read_text()
        for block in re.finditer(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M):
            first_line = text[:block.start(1)].count("\n") + 1
            lines = block.group(1).split("\n")
            number = 0
            while number < len(lines):
                start, line = number, lines[number]
                while line.rstrip().endswith("\\") and number + 1 < len(lines):
                    number += 1
                    line = line.rstrip()[:-1] + " " + lines[number].strip()
                number += 1
                words = line.split("#")[0].split()
                env = {}
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    key, _, value = words.pop(0).partition("=")
                    env[key] = value
                if words and words[0] == "diffsweep":
                    found.append((f"{path.relative_to(ROOT)}:{first_line + start}", env, " ".join(words)))
    return found


COMMANDS = [entry for entry in documented_commands() if entry[2] not in NOT_RUN]


def argument_lists(command: str, run_id: str) -> list[list[str]]:
    """The argv lists a documented command stands for (placeholders filled, each alternative once)."""
    words = shlex.split(command)[1:]
    words = [{"RUN_ID": run_id, "<run_id>": run_id, "my_sweep.yaml": "smoke.yaml"}.get(w.rstrip("."), w)
             for w in (word.strip("[]") for word in words)]
    return [list(choice) for choice in itertools.product(*[w.split("|") if "|" in w else [w] for w in words])]


def test_the_docs_commands_are_found():
    """The collection is not silently empty: the subcommands the docs show are all there."""
    shown = {command.split()[1] for _, _, command in COMMANDS}
    assert {"list", "grid", "status", "extract", "forget", "table", "costs", "profile"} <= shown
    assert all(command in {c for _, _, c in documented_commands()} for command in NOT_RUN)


@pytest.fixture(scope="module")
def default_grid(tmp_path_factory, smoke_run):
    """A folder whose results/tables/generation.parquet has the default grid's runs and parameters."""
    folder = tmp_path_factory.mktemp("default_grid")
    _, grid = config.load(ROOT / "config" / "config.yaml")
    frame = tables.manifest_frame(grid.manifest_rows("generation"))
    smoke = pd.read_parquet(smoke_run / "results" / "tables" / "generation.parquet")
    rng = np.random.default_rng(0)
    frame["status"] = "ok"
    for metric in (c for c in smoke.columns if c in tables.METRIC_DIRECTIONS):
        frame[metric] = rng.random(len(frame))
    (folder / "results" / "tables").mkdir(parents=True)
    ds_io.write_parquet(folder / "results" / "tables" / "generation.parquet", frame)
    return folder


def run_cli(argv, folder, monkeypatch, capsys) -> None:
    monkeypatch.chdir(folder)
    try:
        code = cli.main(argv)
    except SystemExit as error:    # argparse refused the command line
        code = error.code
    output = capsys.readouterr()
    assert code == 0, f"diffsweep {shlex.join(argv)} in {folder} exited {code}:\n{output.err[-2000:]}"


@pytest.mark.workflow      # the smoke run
@pytest.mark.parametrize("where, env, command", COMMANDS, ids=[where for where, _, _ in COMMANDS])
def test_a_documented_command_runs_as_written(where, env, command, smoke_run, default_grid, tmp_path, monkeypatch,
                                              capsys):
    folder = tmp_path / "repo"
    shutil.copytree(smoke_run, folder, symlinks=True)
    (folder / "config").symlink_to(ROOT / "config")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    generation = pd.read_parquet(folder / "results" / "tables" / "generation.parquet")
    run_id = generation.loc[generation["status"] == "ok", "run_id"].iloc[0]
    for argv in argument_lists(command, run_id):
        run_cli(argv, folder, monkeypatch, capsys)
        if argv[0] == "table" and (default_grid / argv[1]).exists():
            run_cli(argv, default_grid, monkeypatch, capsys)


@pytest.mark.workflow
def test_the_first_pivot_example_needs_its_pool_on_the_default_grid(default_grid, monkeypatch, capsys):
    """What the docs' first pivot example said before: on the default grid a cell of it mixes
    ncsn's steps_per_level values, and the command names that column."""
    monkeypatch.chdir(default_grid)
    assert cli.main(["table", "results/tables/generation.parquet", "--rows", "sampler", "--cols", "steps",
                     "--metric", "sliced_w2", "--filter", "dataset=ring8", "--filter", "model=oracle"]) == 2
    assert "differ in knob_steps_per_level" in capsys.readouterr().err


def test_the_restoration_config_example_is_a_valid_section_with_its_own_seeds():
    """docs/restoration.md's config example parses, and its runs follow restoration.seeds, not the
    top-level seeds (which the doc says are generation's only)."""
    doc = (ROOT / "docs" / "restoration.md").read_text()
    example = yaml.safe_load(re.search(r"## Config\n\n```yaml\n(.*?)```", doc, flags=re.S).group(1))
    assert "restoration.seeds" in doc and "restoration.seeds" in (ROOT / "docs" / "running.md").read_text()
    section = example["restoration"]
    cfg = {"seeds": [0, 1, 2], "datasets": {"digits_gmm": {"family": "digits_gmm"}},
           "models": {"oracle": {"source": "oracle"}}, "samplers": {"ddpm": {"family": "ddpm", "steps": 10}},
           "restoration": section}
    grid = config.check(cfg).grid
    assert grid.of_kind('restoration') and {run.seed for run in grid.of_kind('restoration').values()} == set(section["seeds"])
