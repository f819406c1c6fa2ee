"""The run pipeline: what a results folder holds of runs, and the job that makes them.

Modules, from the bottom up (docs/design.md, "Layout"):

- layout.py      where a shard job's files are, the layout version, the results folder's lock
- store.py       how a shard job writes: ShardStore (record file and archive), DrawingNote
- kinds.py       the kinds of run (generation, restoration): one registered entry per kind
- records.py     the record format and its checks, the index (done detection), reading a run's
                 files, forget / extract
- code.py        the code a done run's record names against today's (stale runs, config
                 `code_changes`), the results folder's catalog of fingerprints
- join.py        the table join: manifest rows joined with their records
- source.py      a job's score source: device, dataset, denoiser, call counting, initial draw
- generation.py  the generation half of a shard job (draw with a sampler, score, save)
- restoration.py the restoration half (measure, restore, score, save)
- fusion.py      fused evaluation: a shard's runs draw together, one network call per step
- loop.py        the job loop of a shard (`run_shard`), the divergence rule, death of a job

This package's namespace is the torch-free store (layout, store, records): what the Snakefile,
the CLI and the tables read at parse time. The job loop, the table join and the halves are
reached through their modules (`from diffsweep.runs import loop`); they import torch inside
their functions or at module level (source, generation, restoration, fusion), never here.
"""

from diffsweep.runs.layout import (LAYOUT_VERSION, LOCK_NAME, ResultsInUse, archive_file, check_layout,
                                   layout_version, lock_results, mark_layout, marker_file, record_file,
                                   records_folder, shard_log, staging_folder, unlock_results, write_marker)
from diffsweep.runs.records import (CORRUPT, DIVERGED, DONE_STATUSES, FAILED, FAILURE_KEYS, FILE_NAME, KEEP,
                                    MISSING, OK, REQUIRED_KEYS, RERUN, RUN_ID, STATUSES, WARN, CorruptRecord,
                                    NoSamples, State, attempt, check_record, done_runs, drawing_notes, extract,
                                    failed_runs, failure_report, forget, index, log_file, make_record,
                                    read_record, read_record_file, read_run_arrays, read_run_file, record_file_paths,
                                    record_files, run_state)
from diffsweep.runs.store import DrawingNote, ShardStore, kept

__all__ = [
    "LAYOUT_VERSION", "LOCK_NAME", "ResultsInUse", "archive_file", "check_layout", "layout_version", "lock_results",
    "mark_layout", "marker_file", "record_file", "records_folder", "shard_log", "staging_folder", "unlock_results",
    "write_marker", "KEEP", "RERUN", "WARN", "CORRUPT", "DIVERGED", "DONE_STATUSES", "FAILED", "FAILURE_KEYS", "FILE_NAME", "MISSING",
    "OK", "REQUIRED_KEYS", "RUN_ID", "STATUSES", "CorruptRecord", "NoSamples", "State", "attempt",
    "check_record", "done_runs", "drawing_notes", "extract", "failed_runs", "failure_report", "forget", "index",
    "log_file", "make_record", "read_record", "read_record_file", "read_run_arrays", "read_run_file",
    "record_file_paths", "record_files", "run_state", "DrawingNote", "ShardStore", "kept",
]
