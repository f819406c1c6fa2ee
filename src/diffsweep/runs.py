"""One run pipeline for both kinds of run: the results layout, the job loop of a shard and the
aggregation of run records into a table.

A generation run draws samples with a sampler preset; a restoration run measures reference
samples with a task's operator and restores them with a restorer preset (diffsweep.grid.RunSpec).
Everything around the kind-specific work is shared:

- Layout. Every run owns results/runs/<run_id>/ (its arrays and figures, and run.json written
  last); a shard job's marker is results/shards/<shard>.json (its `attempt` param: grid.pending_shards).
  results/layout.json names the layout version; a results folder of an older layout is refused
  at parse time (`check_layout`), so old and new records never mix.
- Job loop (`run_shard`). Plugins imported, device picked, score source loaded once, each run
  drawn (counting network evaluations and timing the draw; with `fuse` the runs draw together,
  one network call serving all of them: diffsweep.fusion), evaluated, saved. A run that raises
  is recorded as `failed` and the job goes on (`fail_fast` stops it instead).
- Record. run.json holds run_id, kind, status, nfe, wall_s, device, finished, row (the manifest
  row), params (what the id hashes), provenance, files (size and sha256 of every file of the run
  folder) and the kind's results: `metrics` and `skipped` (generation), `measurements`
  (restoration, one entry per measurement); a failed run's record has `error` (one line) and
  `log` (the job's log file) instead.
- Statuses. `ok` and `diverged` runs are done: never recomputed. A `failed` run is retried by the
  next invocation. A record that cannot be trusted (`read_record`: unreadable, keys missing, a
  listed file missing or of another size) is `corrupt`: the run is recomputed, and the file named.
  Readers of a run's files check them against the record's sha256 (`read_run_arrays`).
- Aggregation (`frame`). Manifest rows joined with their records: one table row per run
  (generation) or per run and measurement (restoration), typed by tables.typed_frame, with
  `frame.attrs["param_columns"]` listing the manifest's parameter columns.

Torch is imported only by the job loop.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from datetime import datetime, timezone
from pathlib import Path

from diffsweep import io, registry

log = logging.getLogger("diffsweep")

KINDS = ("generation", "restoration")
# Version of the results layout; an older results folder is refused (check_layout). 1: records in
# runs/ and restorations/, 8-digit hashes (no layout.json); 2: one runs/ folder, 16-digit hashes.
LAYOUT_VERSION = 2


# --- layout ------------------------------------------------------------------------------

def run_folder(results, run_id: str) -> Path:
    return Path(results) / "runs" / run_id


def record_path(results, run_id: str) -> Path:
    return run_folder(results, run_id) / "run.json"


def check_layout(results) -> None:
    """Refuse a results folder written by an older layout (its run ids and folders differ)."""
    results = Path(results)
    marker = results / "layout.json"
    version = io.read_json(marker).get("version") if marker.exists() else None
    # run folders only: Snakemake makes shards/ for a job's marker before the job writes layout.json,
    # and a job that parses meanwhile (on a cluster) must not take that for an old layout
    has_runs = any((results / folder).is_dir() for folder in ("runs", "restorations"))
    if version == LAYOUT_VERSION or (version is None and not has_runs):
        return
    found = f"layout version {version}" if version is not None else "an older layout (no layout.json)"
    raise ValueError(f"results: '{results}' holds runs of {found}, this diffsweep writes layout version "
                     f"{LAYOUT_VERSION}; move the folder aside or set `results:` to another folder")


def mark_layout(results) -> None:
    """Write results/layout.json before the first run folder."""
    marker = Path(results) / "layout.json"
    if not marker.exists():
        io.write_json(marker, {"version": LAYOUT_VERSION})


# --- records -----------------------------------------------------------------------------

DONE_STATUSES = ("ok", "diverged")     # never recomputed (delete the run folder to redo one)
FAILED = "failed"                      # recorded, retried by the next invocation
STATUSES = (*DONE_STATUSES, FAILED)
# Statuses a table gives a run without a trustworthy record.
MISSING, CORRUPT = "missing", "corrupt"
REQUIRED_KEYS = ("run_id", "kind", "status", "nfe", "wall_s", "device", "finished", "row", "params", "provenance",
                 "files")
RESULT_KEYS = {"generation": ("metrics",), "restoration": ("measurements",)}
FAILURE_KEYS = ("error", "log")


class CorruptRecord(ValueError):
    """A run record, or a file it lists, that cannot be trusted; the message names the file."""


def read_record(path) -> dict:
    """The run record at `path` (results/runs/<id>/run.json), checked without reading the run's
    archives: valid JSON, the required keys, a known status, its own run id, and every file it
    lists present with its recorded size. Raises FileNotFoundError when there is no record and
    CorruptRecord, naming the bad file and what is wrong, when it cannot be trusted."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as error:     # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CorruptRecord(f"{path}: unreadable ({type(error).__name__}: {error})") from None
    if not isinstance(record, dict):
        raise CorruptRecord(f"{path}: not a JSON object")
    status = record.get("status")
    needed = [*REQUIRED_KEYS, *(FAILURE_KEYS if status == FAILED else RESULT_KEYS.get(record.get("kind"), ()))]
    missing = [key for key in needed if key not in record]
    if missing:
        raise CorruptRecord(f"{path}: lacks {', '.join(missing)}")
    if status not in STATUSES:
        raise CorruptRecord(f"{path}: status {status!r} is not one of {', '.join(STATUSES)}")
    if record["run_id"] != path.parent.name:
        raise CorruptRecord(f"{path}: holds run {record['run_id']}, not {path.parent.name}")
    for name, listed in record["files"].items():
        file = path.parent / name
        size = file.stat().st_size if file.is_file() else None
        if size != listed["bytes"]:
            found = "missing" if size is None else f"{size} bytes"
            raise CorruptRecord(f"{file}: {found}, its record {path.name} says {listed['bytes']} bytes")
    return record


def run_state(results, run_id: str) -> tuple[str, dict | None, str | None]:
    """(status, record, problem) of a run: (`missing`, None, None) without a record, (`corrupt`,
    None, what is wrong) when it cannot be trusted, else (its status, the record, None)."""
    try:
        record = read_record(record_path(results, run_id))
    except FileNotFoundError:
        return MISSING, None, None
    except CorruptRecord as error:
        return CORRUPT, None, str(error)
    return record["status"], record, None


def done_runs(results, run_ids) -> set[str]:
    """Runs whose record says `ok` or `diverged` (DONE_STATUSES): the others are (re)computed.
    Each corrupt record is named in one warning line."""
    folder = Path(results) / "runs"
    present = set(os.listdir(folder)) if folder.is_dir() else set()   # one listing: no read attempt per new run
    done = set()
    for run_id in run_ids:
        if run_id not in present:
            continue
        status, _, problem = run_state(results, run_id)
        if problem:
            log.warning("corrupt run record: %s; run %s will be recomputed", problem, run_id)
        if status in DONE_STATUSES:
            done.add(run_id)
    return done


def failed_runs(results, run_ids) -> list[dict]:
    """Records of the runs that failed (status `failed`), by run id."""
    return [record for run_id in sorted(run_ids)
            for status, record, _ in [run_state(results, run_id)] if status == FAILED]


def failure_report(failures: list[dict]) -> str:
    """The lines that end a workflow with failed runs: each run, its error and its log."""
    lines = [f"{len(failures)} run(s) failed; their records (status `failed`) are in the tables, and the next "
             f"invocation retries them:"]
    lines += [f"  {record['run_id']}: {record['error']} (log: {record['log']})" for record in failures]
    return "\n".join(lines)


def attempt(results, run_ids) -> str:
    """A key of a shard's pending runs and the records they already have (failed or corrupt ones):
    it changes whenever one of them is rewritten, so a shard whose runs failed runs again (the key
    is the shard job's `attempt` param, which the params rerun trigger compares)."""
    states = []
    for run_id in sorted(run_ids):
        path = record_path(results, run_id)
        stat = path.stat() if path.exists() else None
        states.append([run_id, stat and stat.st_mtime_ns, stat and stat.st_size])
    return hashlib.sha256(json.dumps(states).encode()).hexdigest()[:16]


def read_run_arrays(results, run_id: str, name: str = "samples.npz") -> dict:
    """The arrays of one of a run's files, checked against the sha256 its record lists.
    Raises CorruptRecord naming the file when the record or the file cannot be trusted."""
    path = record_path(results, run_id)
    record = read_record(path)
    file = path.parent / name
    listed = record["files"].get(name)
    if listed is None:
        raise CorruptRecord(f"{file}: not listed in its record {path}")
    if io.file_digest(file)["sha256"] != listed["sha256"]:
        raise CorruptRecord(f"{file}: its sha256 differs from the one in {path}; delete {path.parent} to recompute it")
    return io.read_arrays(file)


# --- job loop ----------------------------------------------------------------------------

def kind_job(kind: str):
    """The kind-specific half of a shard job (draw, then evaluate and save): see jobs.Generation
    and restoration.jobs.Restoration."""
    if kind == "generation":
        from diffsweep.jobs import Generation
        return Generation
    if kind == "restoration":
        from diffsweep.restoration.jobs import Restoration
        return Restoration
    raise ValueError(f"unknown run kind '{kind}'; allowed: {', '.join(KINDS)}")


def run_shard(model: dict, runs: list[dict], reference_path, checkpoint_path, results, shard_path,
              options: dict, device: str = "auto", plugins=(), fidelity_records=(), fidelity_options=None,
              max_batch: int = 0, log_path=None, fail_fast: bool = False, fuse: bool = True) -> None:
    """Run every run of one shard (one score source, one kind); one folder and run.json per run.
    `options` are the kind's options (generation: metrics; restoration: metrics, strips).
    A run that raises is recorded as `failed` (its error and `log_path`) and the job goes on; if
    the score source or the data cannot be loaded, every run is. With `fail_fast` the job stops
    (raises) at the first failure instead. With `fuse` the runs draw together, one network call
    serving all of them at each step (diffsweep.fusion)."""
    registry.load_plugins(plugins)   # what they register exists in this job as at parse time
    (kind,) = {run["kind"] for run in runs}
    mark_layout(results)
    started = time.time()
    for run in runs:   # left by an earlier job of these runs that was killed mid-write
        io.remove_stale_temporaries(run_folder(results, run["id"]), older_than=started)
    from diffsweep import fusion, jobs

    origin = jobs.provenance()
    statuses = {}

    def record_failure(run, error, where):
        log.error("run %s failed", run["id"], exc_info=error)
        summary = one_line(error)
        write_record(run_folder(results, run["id"]), run, FAILED, None, None, where, origin,
                     {"error": summary, "log": None if log_path is None else str(log_path)})
        statuses[run["id"]] = FAILED
        if fail_fast:
            raise RuntimeError(f"run {run['id']} failed (fail_fast is set, the job stops): {summary}") from error

    try:
        chosen = jobs.pick_device(device)
        job, denoiser = start_job(kind, model, reference_path, checkpoint_path, results, chosen, fidelity_records,
                                  fidelity_options, options, max_batch)
    except Exception as error:  # nothing can run: every run fails with this error
        for run in runs:
            record_failure(run, error, device)
        io.write_json(shard_path, {"model_id": model["id"], "kind": kind, "runs": statuses})
        return
    for run, drawn in zip(runs, fusion.draws(job, denoiser, runs, fuse)):   # fused: drawn by groups, together
        try:
            output, nfe, counted, wall = drawn()
            if nfe != counted:
                raise RuntimeError(f"{job.method} '{run['family']}' reported {nfe} network evaluations but made {counted}")
            folder = run_folder(results, run["id"])
            status, results_part = job.finish(run, output, folder)
            write_record(folder, run, status, nfe, wall, chosen, origin, results_part)
            statuses[run["id"]] = status
            log.info("%s run %s: %s, nfe %d, %.2f s", kind, run["id"], status, nfe, wall)
        except Exception as error:  # one broken run must not lose the others
            record_failure(run, error, chosen)
    failed = sum(status == FAILED for status in statuses.values())
    if failed:
        log.warning("%d of %d runs failed and are recorded as such (status `failed`)", failed, len(runs))
    io.write_json(shard_path, {"model_id": model["id"], "kind": kind, "runs": statuses})


def start_job(kind: str, model: dict, reference_path, checkpoint_path, results, device, fidelity_records,
              fidelity_options, options: dict, max_batch: int):
    """(the kind's job, the score source's denoiser): what a shard loads once for all its runs."""
    import torch

    from diffsweep import jobs

    data_dir = Path(reference_path).parent     # holds a fitted prior's cached fit
    denoiser, dtype = jobs.load_denoiser(model, checkpoint_path, device, data_dir, max_batch)
    dataset = jobs.build_dataset(model["data"], data_dir)
    reference = torch.from_numpy(io.read_arrays(reference_path)["x"])
    fidelity = None
    if fidelity_records:
        from diffsweep.fidelity import FidelityEvaluator
        fidelity = FidelityEvaluator.from_records(fidelity_records, reference, fidelity_options,
                                                  Path(results) / "fidelity" / "cache", device)
    return kind_job(kind)(dataset, reference, dtype, device, options, fidelity), denoiser


def one_line(error: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, at most `limit` characters: a failed run's `error`."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def write_record(folder: Path, run: dict, status: str, nfe, wall, device, origin: dict, results_part: dict) -> None:
    """run.json, written last, with the size and sha256 of every file of the run folder."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {path.name: io.file_digest(path) for path in sorted(folder.iterdir())
             if path.is_file() and not path.name.startswith(".") and path.name != "run.json"}
    record = {"run_id": run["id"], "kind": run["kind"], "status": status, "nfe": nfe, "wall_s": wall,
              "device": str(device), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "row": run["row"], "params": run["params"], "provenance": origin, "files": files, **results_part}
    io.write_json(folder / "run.json", record)


# --- aggregation -------------------------------------------------------------------------

def generation_rows(record: dict) -> list[dict]:
    """A generation record is one table row: its metrics and why any was skipped."""
    return [{**record["metrics"], **{f"{name}_status": why for name, why in record.get("skipped", {}).items()}}]


def restoration_rows(record: dict) -> list[dict]:
    """A restoration record is one table row per measurement."""
    return list(record["measurements"])


ROWS_OF_RECORD = {"generation": generation_rows, "restoration": restoration_rows}


def manifest(rows: list[dict]):
    """The manifest as a typed frame: sorted by run id, identifying columns first, its parameter
    columns (all but the ids) in attrs["param_columns"] (tables.manifest_frame)."""
    from diffsweep.tables import manifest_frame

    return manifest_frame(rows)


def frame(kind: str, rows: list[dict], results):
    """Manifest rows of one kind joined with their records: each record expands into table rows
    (ROWS_OF_RECORD); a run without a trustworthy record is one row with status `missing` or
    `corrupt` (and the problem in `error`), a failed run one row with its `error` and `log`."""
    from diffsweep.tables import RECORD_COLUMNS, typed_frame, with_params

    expand = ROWS_OF_RECORD[kind]
    rows = sorted(rows, key=lambda row: row["run_id"])
    table = []
    for row in rows:
        status, record, problem = run_state(results, row["run_id"])
        if record is None:
            if problem:
                log.warning("corrupt run record: %s; the table shows the run as `corrupt`", problem)
            table.append({**row, "status": status, **({"error": problem} if problem else {})})
            continue
        shared = {key: record[key] for key in [*RECORD_COLUMNS, *FAILURE_KEYS] if key in record}
        git_revision = record["provenance"].get("git_revision")
        parts = [{}] if status == FAILED else expand(record)
        table.extend({**row, **shared, **part, "git_revision": git_revision} for part in parts)
    parameters = manifest(rows)
    leading = list(parameters.columns)
    failure = [key for key in FAILURE_KEYS if any(key in entry for entry in table)]   # only when a run failed
    known = {*leading, *RECORD_COLUMNS, *FAILURE_KEYS, "git_revision"}
    measured = sorted({key for entry in table for key in entry} - known)
    result = typed_frame(table, first=[*leading, *RECORD_COLUMNS, *failure, *measured, "git_revision"])
    for column, dtype in (("nfe", "Int64"), ("wall_s", "float64")):   # stable even when every run is missing
        result[column] = result[column].astype(dtype)
    return with_params(result, parameters.columns)
