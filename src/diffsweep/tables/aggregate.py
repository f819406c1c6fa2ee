"""Run records -> Parquet tables. Parameter columns come from the resolved run (the manifest
row, also stored in its record), never from paths. A run in the manifest without a record shows up
with status `missing`. Column types are fixed by the values' Python types, not by which runs
happen to be in the grid: an integer parameter is `Int64` (nullable) even where the oracle
leaves it empty, a boolean one `boolean`, so the schema documented in docs/tables.md holds
for every grid. Every table of runs lists its parameter columns (the manifest's columns but
the ids) in `frame.attrs["param_columns"]`, which Parquet stores with it."""

from __future__ import annotations

import json
import math

from diffsweep import io
from diffsweep.tables.rows import PARAM_COLUMNS, kind

# eval_nfe: 0 for a run re-scored from its stored samples (its evaluating code changed), else null;
# code_draw, code_evaluate: the fingerprints of the code that made it (runs.code), null in older records.
RECORD_COLUMNS = ["status", "nfe", "wall_s", "fused_with", "device", "finished", "eval_nfe", "code_draw",
                  "code_evaluate"]
LEADING_COLUMNS = ["run_id", "kind", "dataset", "model", "sampler", "sampler_family", "schedule", "steps", "init", "seed"]
# Manifest columns that name a run, its data or its model rather than set them: not parameters.
ID_COLUMNS = ("run_id", "kind", "data_id", "model_id")   # kind: in the manifest of every run (runs.parquet)
# Per-model measurements that `with_model_metrics` adds to every run of the model (model_<key>).
MEASUREMENT_COLUMNS = ("model_nll_bpd", "model_true_nll_bpd", "model_likelihood_nfe", "model_likelihood_points",
                       "model_likelihood_wall_s", "model_likelihood_trace")
EXTRA_COLUMNS = ("git_revision",)   # neither parameters nor metrics
# The parameter columns of the training tables: what tells their rows apart (a logged step of a
# model, and its training-sigma bin); the other columns are measurements.
TRAINING_PARAMS = ("model_id", "step")
BY_SIGMA_PARAMS = (*TRAINING_PARAMS, "sigma_lo", "sigma_hi")


def manifest_params(columns) -> list[str]:
    """The parameter columns of a manifest with these columns: all but the ids, the identifying
    ones first (the order in which a table names the columns that tell runs apart)."""
    columns = [c for c in columns if c not in ID_COLUMNS]
    return [*[c for c in LEADING_COLUMNS if c in columns], *[c for c in columns if c not in LEADING_COLUMNS]]


def with_params(frame, columns):
    """`frame`, its parameter columns listed (in attrs) as the manifest `columns` give them."""
    frame.attrs[PARAM_COLUMNS] = manifest_params(columns)
    return frame


def manifest_frame(rows: list[dict]):
    """Runs sorted by id; identifying columns first, the other parameters alphabetically."""
    frame = typed_frame(rows).sort_values("run_id", ignore_index=True)
    rest = sorted(c for c in frame.columns if c not in LEADING_COLUMNS)
    frame = frame[[c for c in LEADING_COLUMNS if c in frame.columns] + rest]
    return with_params(frame, frame.columns)


def with_model_metrics(generation, record_paths):
    """Per-model evaluations (likelihood.json) joined onto every run of that model, as model_<key> columns."""
    rows = []
    for path in record_paths:
        record = io.read_json(path)
        rows.append({"model_id": record.pop("model_id"), **{f"model_{k}": v for k, v in record.items()}})
    if not rows:
        return generation
    merged = generation.merge(typed_frame(rows), on="model_id", how="left")
    merged.attrs = dict(generation.attrs)    # a merge drops them
    return merged


def training_table(log_paths, parameter_columns=TRAINING_PARAMS):
    """The training logs of every model in one table, its parameter columns `parameter_columns` listed (in
    attrs) as in a table of runs, so that `diffsweep table` and declared tables read it."""
    import pandas as pd

    frames = [io.read_parquet(path) for path in log_paths]
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=[*parameter_columns, "loss"])
    frame.attrs[PARAM_COLUMNS] = list(parameter_columns)
    return frame


def typed_frame(rows: list[dict], first=()):
    """A DataFrame of `rows` whose column types follow the values' Python types: ints -> Int64,
    bools -> boolean, numbers -> float64, text -> str; a column mixing kinds is written as text.
    (pandas alone would make an int column with a gap float64 and a bool one object.)"""
    import pandas as pd

    columns = list(dict.fromkeys([*first, *(key for row in rows for key in row)]))
    data = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        kinds = value_kinds(values)
        if kinds == {"bool"}:
            data[column] = pd.array(values, dtype="boolean")
        elif kinds == {"int"}:
            data[column] = pd.array(values, dtype="Int64")
        elif kinds and kinds <= {"int", "float"}:
            data[column] = pd.array([math.nan if v is None else float(v) for v in values], dtype="float64")
        elif kinds == {"str"} or not kinds:
            data[column] = pd.array(values, dtype="str")
        else:
            data[column] = pd.array([None if v is None else _text(v) for v in values], dtype="str")
    return pd.DataFrame(data, index=range(len(rows)), columns=columns)


def value_kinds(values: list) -> set[str]:
    """The kinds (rows.kind) of a column's non-missing values, one kind() call per Python type
    rather than per value (100k-run tables): a float column counts as float unless all NaN."""
    kinds = set()
    for python_type in set(map(type, values)):
        if python_type in (bool, int, str):
            kinds.add(python_type.__name__)
        elif python_type is float:
            if any(value == value for value in values if type(value) is float):    # NaN != NaN: missing
                kinds.add("float")
        elif python_type is not type(None):
            kinds |= {kind(value) for value in values if type(value) is python_type} - {"none"}
    return kinds


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
