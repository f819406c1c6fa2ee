"""The kinds of run: one registered entry per kind holds everything that differs between them.

A kind names its config section (its job options: `sampling`, `restoration`), where its presets
are declared and what registry holds their families (samplers, restorers), the manifest columns
naming a run's preset and family, the keys its records hold results under and how a record
expands into table rows, the columns identifying a table row, its table's path, how its runs
are expanded from the config (diffsweep.grid), its job options and its job's half (the
kind-specific draw and finish of the job loop). Code that treats kinds differently asks the
kind's entry, never compares its name: a third kind is one more entry here.

Torch-free: read when the Snakefile is parsed. The expansion and the job half are imported when
called (grid imports this module; the halves import torch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from diffsweep.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class Kind(Entry):
    section: str                      # config section of the kind's job options (keep_samples, runs_per_job, ...)
    presets: str                      # where its presets are declared (a dotted config key)
    method: str                       # what a preset is: sampler, restorer
    preset_columns: tuple             # manifest columns naming a run's preset and its family
    result_keys: tuple                # the record keys holding its results
    row_keys: tuple                   # the columns identifying a table row
    table: str                        # its table, under the results folder
    unit: str                         # what one table row counts, if not one run of a seed (pivot's n)
    model_metrics: bool               # its table gains the score source's likelihood columns
    rows_of_record: Callable          # record -> table rows (a failed run's record has none)
    families: Callable                # () -> the registry module of its presets' families
    expand: Callable                  # (config, models, excluded, expanded) -> {run id: RunSpec}
    options: Callable                 # config -> the options of its shard jobs
    job: Callable                     # () -> the class of its half of a shard job
    draw_code: tuple                  # (module, name) roots of the code that draws a run (diffsweep.fingerprint)
    evaluate_code: tuple              # (module, name) roots of the code that scores a run's samples


KINDS = Registry("kind of run", Kind)


def get(name: str, where: str = "") -> Kind:
    return KINDS.get(name, where)


def names() -> list[str]:
    return KINDS.names()


def _samplers():
    from diffsweep import samplers
    return samplers


def _restorers():
    from diffsweep import restoration
    return restoration


def _expand_generation(config, models, excluded, expanded):
    from diffsweep import grid
    return grid.build_generation(config, expanded, GENERATION)


def _expand_restoration(config, models, excluded, expanded):
    from diffsweep import grid
    section = RESTORATION.section
    return grid.build_restorations(config[section], models, excluded, expanded, RESTORATION) if section in config else {}


def _generation_job():
    from diffsweep.runs.generation import Generation
    return Generation


def _restoration_job():
    from diffsweep.runs.restoration import Restoration
    return Restoration


def generation_rows(record: dict) -> list[dict]:
    """A generation record is one table row: its metrics and why any was skipped."""
    return [{**record["metrics"], **{f"{name}_status": why for name, why in record.get("skipped", {}).items()}}]


def restoration_rows(record: dict) -> list[dict]:
    """A restoration record is one table row per measurement."""
    return list(record["measurements"])


GENERATION = KINDS.add(Kind(
    name="generation", description="dataset x score source x sampler preset point x seed: draw samples",
    section="sampling", presets="samplers", method="sampler", preset_columns=("sampler", "sampler_family"),
    result_keys=("metrics",), row_keys=("run_id",), table="tables/generation.parquet", unit="", model_metrics=True,
    rows_of_record=generation_rows, families=_samplers, expand=_expand_generation,
    options=lambda config: {"metrics": {key: value for key, value in config["metrics"].items() if key != "likelihood"},
                            "keep_samples": config[GENERATION.section]["keep_samples"]},
    job=_generation_job, draw_code=(("diffsweep.runs.generation", "draw_samples"),),
    evaluate_code=(("diffsweep.runs.generation", "Generation.finish"), ("diffsweep.runs.generation", "Generation.bootstrap"),
                   ("diffsweep.metrics", "sample_metrics"))))

RESTORATION = KINDS.add(Kind(
    name="restoration", description="dataset x score source x task x restorer preset point x seed: restore "
                                    "n_measurements measurements n_samples times each",
    section="restoration", presets="restoration.restorers", method="restorer",
    preset_columns=("restorer", "restorer_family"), result_keys=("measurements",), row_keys=("run_id", "measurement"),
    table="tables/restoration.parquet", unit="measurement", model_metrics=False, rows_of_record=restoration_rows, families=_restorers,
    expand=_expand_restoration,
    options=lambda config: {key: config[RESTORATION.section][key] for key in ("metrics", "strips", "keep_samples")},
    job=_restoration_job,
    draw_code=(("diffsweep.runs.restoration", "measure"), ("diffsweep.runs.restoration", "restore")),
    evaluate_code=(("diffsweep.runs.restoration", "Restoration.finish"), ("diffsweep.restoration.metrics", "*"),
                   ("diffsweep.restoration.posterior", "exact_posterior"))))
