"""The table join: manifest rows of one kind joined with their run records (`frame`), each record
expanded into table rows (one per run for generation, one per run and measurement for
restoration); the manifest as a typed frame (`manifest`).

Reads records only (diffsweep.runs.records); pandas is imported inside the functions.
"""

from __future__ import annotations

import logging

from diffsweep.runs import kinds
from diffsweep.runs.records import FAILED, FAILURE_KEYS, index, log_file, run_state

log = logging.getLogger("diffsweep")


def manifest(rows: list[dict]):
    """The manifest as a typed frame: sorted by run id, identifying columns first, its parameter
    columns (all but the ids) in attrs["param_columns"] (tables.manifest_frame)."""
    from diffsweep.tables import manifest_frame

    return manifest_frame(rows)


def frame(kind: str, rows: list[dict], results):
    """Manifest rows of one kind joined with their records: each record expands into table rows
    (its kind's rows_of_record); a run without a trustworthy record is one row with status `missing` or
    `corrupt` (and the problem in `error`), a failed run one row with its `error` and `log`."""
    from diffsweep.tables import RECORD_COLUMNS, typed_frame, with_params

    kind = kinds.get(kind)
    expand = kind.rows_of_record
    rows = sorted(rows, key=lambda row: row["run_id"])
    # what a table takes from a record (the parameters come from the manifest rows)
    states = index(results, keep=[*RECORD_COLUMNS, *FAILURE_KEYS, "provenance", "skipped", *kind.result_keys])
    table = []
    for row in rows:
        status, record, problem = run_state(results, row["run_id"], states)
        if record is None:
            if problem:
                log.warning("corrupt run record: %s; the table shows the run as `corrupt`", problem)
            table.append({**row, "status": status, **({"error": problem} if problem else {})})
            continue
        shared = {key: record[key] for key in [*RECORD_COLUMNS, *FAILURE_KEYS] if key in record}
        if "log" in shared:
            shared["log"] = log_file(results, shared["log"])
        git_revision = record["provenance"].get("git_revision")
        parts = [{}] if status == FAILED else expand(record)
        table.extend({**row, **shared, **part, "git_revision": git_revision} for part in parts)
    parameters = manifest(rows)
    leading = list(parameters.columns)
    failure = [key for key in FAILURE_KEYS if any(key in entry for entry in table)]   # only when a run failed
    known = {*leading, *RECORD_COLUMNS, *FAILURE_KEYS, "git_revision"}
    measured = sorted({key for entry in table for key in entry} - known)
    result = typed_frame(table, first=[*leading, *RECORD_COLUMNS, *failure, *measured, "git_revision"])
    for column, dtype in (("nfe", "Int64"), ("wall_s", "float64"), ("fused_with", "Int64"), ("eval_nfe", "Int64")):
        # even when none ran (code_draw and code_evaluate are text: typed_frame)
        result[column] = result[column].astype(dtype)
    return with_params(result, parameters.columns)
