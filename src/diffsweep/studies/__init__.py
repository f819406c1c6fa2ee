"""The studies (docs/studies.md): questions beyond the paper, each answered by a table (CSV) and a
figure made from the generation table. A study is one module of this package: its table, its
figure and its job, and the entry it adds to `STUDIES` (its options' defaults, its config check,
what its job reads and takes from the config, whether a grid can draw it). The rule file
(workflow/rules/studies.smk) makes a rule `study_<name>` of every study a config declares under
`studies:` (options in workflow/schemas/config.schema.yaml), with one thin script (scripts/study.py).

- temperature_ramp.py  the walk's temperature ramp (index or log sigma, T0) against steps, beside
                       the exact-sample floor
- error_sources.py     each trained network's error split into discretisation and score error

Imported at parse time (the Snakefile and the config check): the study modules import pandas,
torch and matplotlib inside the functions that need them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from diffsweep.registry import Entry, Registry

# the score source whose runs are exact-score references (`model_source` of the tables)
ORACLE_SOURCE = "oracle"


def _no_inputs(grid, results: str) -> dict:
    return {}


def _no_job_arguments(config: dict, grid, options: dict) -> dict:
    return {}


def _always(grid) -> bool:
    return True


def _no_check(config: dict, options: dict) -> None:
    return None


@dataclass(frozen=True, kw_only=True)
class Study(Entry):
    """A study. Its rule reads the generation table and the files of `inputs`, writes
    results/tables/study_<name>.csv and results/plots/study_<name>.{png,pdf}, and calls
    `job(inputs, outputs, options, **job_arguments)`: `inputs` and `outputs` by name (`table`; `csv`,
    `png`, `pdf`), `options` the config's `studies.<name>` with `defaults` filled in, `job_arguments`
    what `job_arguments(config, grid, options)` took from the config at parse time."""
    title: str                                               # its part of the report's "6. Studies"
    job: Callable[..., None]
    defaults: dict = field(default_factory=lambda: {"metric": "sliced_w2"})
    inputs: Callable[..., dict] = _no_inputs                 # (grid, results) -> {name: path or paths}
    job_arguments: Callable[..., dict] = _no_job_arguments   # (config, grid, options) -> the job's keyword arguments
    drawn: Callable[..., bool] = _always                     # (grid) -> whether the grid has what the study needs
    check: Callable[..., None] = _no_check                   # (config, options); raises ValueError naming the key


STUDIES = Registry("study", Study)


def declared(config: dict) -> dict[str, dict]:
    """{name: options, defaults filled in} of the studies `config` declares (`studies:`; null is not declared)."""
    return {name: {**STUDIES.get(name, "studies: ").defaults, **options}
            for name, options in config["studies"].items() if options is not None}


def check(config: dict) -> None:
    """Each declared study's own check of the config (the schema has checked the options' types)."""
    for name, options in declared(config).items():
        STUDIES[name].check(config, options)


from diffsweep.studies import error_sources, temperature_ramp  # noqa: E402,F401  each adds its entry
