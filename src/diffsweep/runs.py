"""One run pipeline for both kinds of run: the results layout, the job loop of a shard and the
aggregation of run records into a table.

A generation run draws samples with a sampler preset; a restoration run measures reference
samples with a task's operator and restores them with a restorer preset (diffsweep.grid.RunSpec).
Everything around the kind-specific work is shared:

- Layout (version 4, docs/design.md). Files grow with shard jobs, not runs: each shard job
  appends to results/records/<shard>.jsonl (one JSON line per finished run) and
  results/records/<shard>.archive (its runs' files, byte after byte), through ShardStore; its
  marker is results/shards/<shard>.json (its `attempt` param: grid.pending_shards).
  results/layout.json names the layout version; a results folder of an older layout is refused
  at parse time (`check_layout`), so old and new records never mix.
- Job loop (`run_shard`). Plugins imported, device picked, score source loaded once, each run
  drawn (counting network evaluations and timing the draw; with `fuse` the runs draw together,
  one network call serving all of them: diffsweep.fusion), judged (`divergence`: samples that
  are not finite or ran away make the run `diverged`, for both kinds), evaluated (`job.finish`
  writes the run's files into a staging folder), stored. A run that raises is recorded as
  `failed` and the job goes on (`fail_fast` stops it instead). The runs drawing are noted first
  (DrawingNote), so the next attempt after a job whose process died isolates them and records
  the one that kills its job as `failed`.
- Record. A line holds run_id (first), kind, status, nfe, wall_s, fused_with (the runs of the
  group it drew in: 1, wall_s is its own draw time; more, wall_s is its share of the group's
  time; None, it never drew; absent from records of older jobs), device, finished, row (the
  manifest row), params (what the id hashes), provenance, archive and files (offset, size and
  sha256 of each file in the archive; none when keep_samples is `none`) and the kind's results:
  `metrics` and `skipped` (generation), `measurements` (restoration, one entry per measurement);
  a failed run's record has `error` (one line) and `log` (the job's log file, relative to the
  results folder: log_file) instead; a diverged run's has `error` (why it diverged) next to its
  (empty) results.
- Statuses. `ok` and `diverged` runs are done: never recomputed. A `failed` run is retried by the
  next invocation. Done detection is run-level (`index`): the records of every record file, the
  latest line of a run winning, since a run's shard changes when the config adds runs. A line
  that cannot be trusted (torn by a killed job, keys missing, its files beyond its archive's end)
  is `corrupt`: the run is recomputed, and the file named. Readers of a run's files check them
  against the record's sha256 (`read_run_file`, `read_run_arrays`).
- Aggregation (`frame`). Manifest rows joined with their records: one table row per run
  (generation) or per run and measurement (restoration), typed by tables.typed_frame, with
  `frame.attrs["param_columns"]` listing the manifest's parameter columns.

Torch is imported only by the job loop.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path

from diffsweep import io, registry

log = logging.getLogger("diffsweep")

KINDS = ("generation", "restoration")
# Version of the results layout; an older results folder is refused (check_layout). 1: records in
# runs/ and restorations/, 8-digit hashes (no layout.json); 2: one folder and run.json per run,
# 16-digit hashes; 3: one record file and one archive per shard job (records/); 4: the same files, runs
# drawn from per-sample noise streams (diffsweep.samplers.randomness: same ids, other samples than 3's).
LAYOUT_VERSION = 4


# --- layout ------------------------------------------------------------------------------

def records_folder(results) -> Path:
    return Path(results) / "records"


def record_file(results, shard: str) -> Path:
    """The append-only record file of a shard job: one JSON line per finished run."""
    return records_folder(results) / f"{shard}.jsonl"


def archive_file(results, shard: str) -> Path:
    """The append-only archive of a shard job: the bytes of its runs' files, one after another."""
    return records_folder(results) / f"{shard}.archive"


def marker_file(results, shard: str) -> Path:
    """A shard job's marker (its Snakemake output): written when the job ends (`write_marker`)."""
    return Path(results) / "shards" / f"{shard}.json"


def write_marker(path, model_id: str, kind: str, statuses: dict) -> None:
    """A shard job's marker: its runs' statuses, and a fresh id of this job, so that the shard's
    next `attempt` key differs from this job's whatever happens to its records later."""
    io.write_json(path, {"model_id": model_id, "kind": kind, "runs": statuses, "job": uuid.uuid4().hex})


def shard_log(results, shard: str) -> Path:
    """A shard job's log (the rule's `log:`): jobs of the shard append to it. Logs live in the
    results folder, so two results folders whose shards share ids keep their own."""
    return Path(results) / "logs" / "run_shard" / f"{shard}.log"


def staging_folder(results, shard: str) -> Path:
    """Where a shard job's `finish` writes a run's files before they are appended to the archive."""
    return records_folder(results) / ".staging" / shard


def check_layout(results) -> None:
    """Refuse a results folder written by an older layout (its run ids and files differ)."""
    results = Path(results)
    marker = results / "layout.json"
    version = layout_version(marker) if marker.exists() else None
    # run files only: Snakemake makes shards/ for a job's marker before the job writes layout.json,
    # and a job that parses meanwhile (on a cluster) must not take that for an old layout
    has_runs = any((results / folder).is_dir() for folder in ("runs", "restorations", "records"))
    if version == LAYOUT_VERSION or (version is None and not has_runs):
        return
    found = f"layout version {version}" if version is not None else "an older layout (no layout.json)"
    raise ValueError(f"results: '{results}' holds runs of {found}, this diffsweep writes layout version "
                     f"{LAYOUT_VERSION}; move the folder aside or set `results:` to another folder")


def layout_version(marker: Path) -> int:
    """The version a results folder's layout.json names; a file that is not `{"version": N}` is
    refused in one line naming it (ValueError)."""
    try:
        content = io.read_json(marker)
    except io.UnreadableFile as error:
        content, problem = None, str(error)
    else:
        problem = f"{marker}: holds {_short(content)}"
    version = content.get("version") if isinstance(content, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version >= 1:
        return version
    raise ValueError(f"results: {problem}, not a layout marker such as {{\"version\": {LAYOUT_VERSION}}}; write "
                     f"that into it if this diffsweep wrote the folder, else move the folder aside")


def _short(value, limit: int = 60) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def mark_layout(results) -> None:
    """Write results/layout.json before the first record."""
    marker = Path(results) / "layout.json"
    if not marker.exists():
        io.write_json(marker, {"version": LAYOUT_VERSION})


class ResultsInUse(RuntimeError):
    """Another process holds the results folder's lock (lock_results); the message names it."""


LOCK_NAME = ".lock"
_held: dict[str, int] = {}     # results folder (resolved) -> the open lock file this process holds


def lock_results(results) -> None:
    """Hold results/.lock (flock, exclusive) until unlock_results or the end of this process, so
    that two invocations writing one results folder, from any working directories, refuse each
    other (Snakemake's own lock is per working directory). The kernel frees the lock when its
    process dies: a held lock means its holder is alive (the file names its pid, host and working
    directory). Taken again by its holder, it is a no-op (workflows run in one process)."""
    folder = Path(os.path.realpath(Path(results).expanduser()))
    if str(folder) in _held:
        return
    folder.mkdir(parents=True, exist_ok=True)
    handle = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(handle, 4096).decode("utf-8", "replace").strip() or "a process that has not said which yet"
        os.close(handle)
        raise ResultsInUse(f"results: '{folder}' is in use by another snakemake invocation ({holder}); wait for "
                           f"it to end or set `results:` to another folder (the lock is freed when that process "
                           f"ends: `ps -p PID` on that host shows it is alive)") from None
    os.ftruncate(handle, 0)
    os.write(handle, f"pid {os.getpid()} on {socket.gethostname()}, working directory {os.getcwd()}\n".encode())
    _held[str(folder)] = handle


def unlock_results(results) -> None:
    """Release the lock lock_results took (nothing if this process holds none)."""
    handle = _held.pop(os.path.realpath(Path(results).expanduser()), None)
    if handle is not None:
        os.close(handle)     # closing the file releases the flock


# --- records -----------------------------------------------------------------------------

OK, DIVERGED = "ok", "diverged"        # DIVERGED: samples not finite or ran away (`divergence`)
DONE_STATUSES = (OK, DIVERGED)         # never recomputed (delete the run's record lines to redo one)
FAILED = "failed"                      # recorded, retried by the next invocation
STATUSES = (*DONE_STATUSES, FAILED)
# Statuses a table gives a run without a trustworthy record.
MISSING, CORRUPT = "missing", "corrupt"
REQUIRED_KEYS = ("run_id", "kind", "status", "nfe", "wall_s", "device", "finished", "row", "params", "provenance",
                 "archive", "files")
RESULT_KEYS = {"generation": ("metrics",), "restoration": ("measurements",)}
FAILURE_KEYS = ("error", "log")
# A record line starts with its run id (write_record), so a torn line still names its run.
RUN_OF_LINE = re.compile(r'\{"run_id": ?"([^"]+)"')
# A results folder may come from someone else: every name a record holds is checked before it
# becomes a path (check_record). A run id is `<preset>-<hash>` (grid.HASH_DIGITS hex digits);
# a stored file is a plain file name (samples.npz, grid.png, ...), never a path.
RUN_ID = re.compile(r"[A-Za-z0-9_]+-[0-9a-f]{16}")
FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,199}")
# The type of each record key's value (a record that parses but holds other types is corrupt).
KEY_TYPES = {"run_id": str, "kind": str, "status": str, "nfe": (int, type(None)),
             "wall_s": (int, float, type(None)), "device": str, "finished": str, "row": dict, "params": dict,
             "provenance": dict, "archive": str, "files": dict, "metrics": dict, "skipped": dict,
             "measurements": list, "error": str, "log": (str, type(None)), "fused_with": (int, type(None))}


class CorruptRecord(ValueError):
    """A run record, or the archive bytes it lists, that cannot be trusted; the message names the file."""


class NoSamples(LookupError):
    """A done run whose record lists no such file (its samples were not kept: keep_samples)."""


@dataclass(frozen=True)
class State:
    """What the records say of one run: its status (or `corrupt`), its record (None when corrupt),
    what is wrong, and where its latest line is (`file:line`, for runs.attempt)."""
    status: str
    record: dict | None
    problem: str | None
    where: str


def check_record(record, path: Path, line: int, archive_sizes: dict) -> str | None:
    """What is wrong with a parsed record line (None if nothing): the required keys and their
    types, a run id of the grid's form, a known kind and status, its archive a plain file name
    (in the record file's folder), each file it lists a plain file name whose bytes lie inside
    that archive (the archive as long as the record says)."""
    status = record.get("status")
    needed = [*REQUIRED_KEYS, *(FAILURE_KEYS if status == FAILED else RESULT_KEYS.get(record.get("kind"), ()))]
    where = f"{path} line {line}"
    missing = [key for key in needed if key not in record]
    if missing:
        return f"{where}: lacks {', '.join(missing)}"
    mistyped = [key for key, kinds in KEY_TYPES.items() if key in record and not isinstance(record[key], kinds)]
    if mistyped:
        return f"{where}: {', '.join(mistyped)} of the wrong type"
    if not RUN_ID.fullmatch(record["run_id"]):
        return f"{where}: run_id {_short(record['run_id'])} is not a run id (<preset>-<16 hex digits>)"
    if record["kind"] not in KINDS:
        return f"{where}: kind {_short(record['kind'])} is not one of {', '.join(KINDS)}"
    if status not in STATUSES:
        return f"{where}: status {status!r} is not one of {', '.join(STATUSES)}"
    if not (FILE_NAME.fullmatch(record["archive"]) and record["archive"].endswith(".archive")):
        return f"{where}: archive {_short(record['archive'])} is not the name of an archive next to it"
    if not record["files"]:
        return None
    archive = path.parent / record["archive"]
    if archive not in archive_sizes:
        archive_sizes[archive] = archive.stat().st_size if archive.is_file() else None
    size = archive_sizes[archive]
    for name, listed in record["files"].items():
        if not FILE_NAME.fullmatch(name):
            return f"{where}: lists a file {_short(name)}, which is not a plain file name"
        if not (isinstance(listed, dict) and all(_count(listed.get(key)) for key in ("offset", "bytes"))
                and isinstance(listed.get("sha256"), str)):
            return f"{where}: {name} lacks an offset, a size or a sha256"
        if size is None or listed["offset"] + listed["bytes"] > size:
            found = "missing" if size is None else f"{size} bytes"
            return (f"{archive}: {found}, but {where} puts {name} of run {record['run_id']} at bytes "
                    f"{listed['offset']}-{listed['offset'] + listed['bytes']}")
    return None


def _count(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def record_file_paths(results) -> list[Path]:
    """The record files of a results folder, sorted; a `records` that is no folder raises
    io.UnreadableFile naming it."""
    folder = records_folder(results)
    if not folder.exists():
        return []
    if not folder.is_dir():
        raise io.UnreadableFile(f"{folder}: is not a folder (it should hold the run records); move it aside")
    return sorted(folder.glob("*.jsonl"))


def read_record_file(path: Path) -> bytes:
    """A record file's bytes; one that is no regular file (a folder, a device, a pipe) or cannot be
    read raises io.UnreadableFile naming it."""
    if not path.is_file():
        raise io.UnreadableFile(f"{path}: is not a regular file; a record file holds one JSON line per run: "
                                f"move it aside")
    try:
        return path.read_bytes()
    except OSError as error:
        raise io.unreadable(path, "a record file", error) from None


def index(results, only=None, keep=None) -> dict[str, State]:
    """Every run that has a record, by run id, from every record file of the results folder (a
    run's shard changes with the config, so its records may be in any file): a run's latest line
    wins (a failed run retried later), and a done record wins over a failed one. A line that is
    not a complete JSON object (a job killed while writing it) is ignored with a warning naming
    the file; if it names its run, the run is `corrupt` (recomputed) unless a later line exists.
    With `only` (a set of run ids), only those runs' lines are parsed (a shard job's own runs);
    with `keep` (record keys), records keep only those keys once checked (memory at 100k runs)."""
    states: dict[str, State] = {}
    archive_sizes: dict = {}
    for path in record_file_paths(results):
        lines = read_record_file(path).split(b"\n")
        complete = lines[-1] == b""        # the file ends with a newline: no torn last line
        for number, raw in enumerate(lines[:-1] if complete else lines, start=1):
            if not raw.strip():
                continue
            where = f"{path.name}:{number}"
            if only is not None:     # the run id leads the line: no JSON parse for other runs
                named = RUN_OF_LINE.match(raw.decode("utf-8", "replace"))
                if named and named.group(1) not in only:
                    continue
            try:
                record = json.loads(raw)
                if not isinstance(record, dict) or not isinstance(record.get("run_id"), str):
                    raise ValueError("not a JSON object with a run_id")
            except ValueError as error:      # JSONDecodeError and UnicodeDecodeError are ValueErrors
                problem = f"{path} line {number}: unreadable ({type(error).__name__}: {error})"
                torn = RUN_OF_LINE.match(raw.decode("utf-8", "replace"))
                if torn:        # its run is corrupt: done_runs and frame name the problem
                    settle(states, torn.group(1), State(CORRUPT, None, problem, where))
                else:
                    log.warning("ignored a broken record line (a job killed while writing it?): %s", problem)
                continue
            problem = check_record(record, path, number, archive_sizes)
            if keep is not None:
                record = {key: record[key] for key in ("run_id", "status", *keep) if key in record}
            state = State(CORRUPT, None, problem, where) if problem else State(record["status"], record, None, where)
            settle(states, record["run_id"], state)
    return states


def settle(states: dict, run_id: str, state: State) -> None:
    """A run's later line replaces its earlier one, except that a done record is never replaced
    by one that is not (a done run is never recomputed, so such a line is stale)."""
    earlier = states.get(run_id)
    if earlier is None or earlier.status not in DONE_STATUSES or state.status in DONE_STATUSES:
        states[run_id] = state


def run_state(results, run_id: str, states: dict | None = None) -> tuple[str, dict | None, str | None]:
    """(status, record, problem) of a run: (`missing`, None, None) without a record, (`corrupt`,
    None, what is wrong) when it cannot be trusted, else (its status, the record, None).
    `states`: an index(results) already read (reading it costs one pass over every record)."""
    state = (index(results, only={run_id}) if states is None else states).get(run_id)
    if state is None:
        return MISSING, None, None
    return state.status, state.record, state.problem


def read_record(results, run_id: str, states: dict | None = None) -> dict:
    """The trusted record of a run; FileNotFoundError without one, CorruptRecord when it cannot be trusted."""
    status, record, problem = run_state(results, run_id, states)
    if status == MISSING:
        raise FileNotFoundError(f"run {run_id} has no record under {records_folder(results)}")
    if record is None:
        raise CorruptRecord(problem)
    return record


def done_runs(results, run_ids, states: dict | None = None) -> set[str]:
    """Runs whose record says `ok` or `diverged` (DONE_STATUSES): the others are (re)computed.
    Each corrupt record is named in one warning line."""
    run_ids = set(run_ids)
    states = index(results, only=run_ids) if states is None else states
    done = set()
    for run_id in run_ids:
        state = states.get(run_id)
        if state is None:
            continue
        if state.problem:
            log.warning("corrupt run record: %s; run %s will be recomputed", state.problem, run_id)
        if state.status in DONE_STATUSES:
            done.add(run_id)
    return done


def failed_runs(results, run_ids, states: dict | None = None) -> list[dict]:
    """Records of the runs that failed (status `failed`), by run id."""
    states = index(results, only=set(run_ids)) if states is None else states
    return [states[run_id].record for run_id in sorted(run_ids)
            if run_id in states and states[run_id].status == FAILED]


def failure_report(failures: list[dict], results) -> str:
    """The lines that end a workflow with failed runs: each run, its error and its log."""
    lines = [f"{len(failures)} run(s) failed; their records (status `failed`) are in the tables, and the next "
             f"invocation retries them:"]
    lines += [f"  {record['run_id']}: {record['error']} (log: {log_file(results, record['log'])})"
              for record in failures]
    return "\n".join(lines)


def log_file(results, log: str | None) -> str | None:
    """Where a record's `log` is: records name a job's log relative to the results folder (the
    workflow writes logs under results/logs/), so that a moved results folder still finds them
    (an absolute `log`, from a caller of run_shard outside the workflow, stays as it is)."""
    return None if log is None else os.path.join(results, log)


def attempt(results, run_ids, states: dict | None = None, notes: dict | None = None,
            shard: str | None = None) -> str:
    """A key of a shard's pending runs, the records they already have (failed or corrupt ones),
    the drawing note of a job that died drawing them, and the traces of the shard's jobs: its
    marker (`write_marker`: a fresh id per job) and its log (size and time: every job appends to
    it). It changes whenever one of those runs gets a new record line or note, or a job of the
    shard ran since, so a shard whose runs failed, whose job died, or whose records were deleted
    after it ran, runs again: the key is the shard job's `attempt` param, which the params rerun
    trigger compares (a job that has not run again keeps the key of its last run, whatever was
    deleted since). `notes`: drawing_notes(results)."""
    states = index(results, only=set(run_ids)) if states is None else states
    notes = drawing_notes(results) if notes is None else notes
    entries = [[run_id, states[run_id].where if run_id in states else None, *([notes[run_id]] if run_id in notes else [])]
               for run_id in sorted(run_ids)]
    if shard is not None:
        marker, log = marker_file(results, shard), shard_log(results, shard)
        entries.append(hashlib.sha256(marker.read_bytes()).hexdigest() if marker.is_file() else None)
        entries.append([log.stat().st_size, log.stat().st_mtime_ns] if log.is_file() else None)
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()[:16]


def drawing_notes(results) -> dict[str, str]:
    """Run id -> a digest of the drawing note (DrawingNote) that names it: the runs a job that died
    was drawing, or still suspected. Only jobs that died leave notes, so this reads few files."""
    folder = records_folder(results)
    noted = {}
    for path in sorted(folder.glob("*.drawing")) if folder.is_dir() else []:
        note = DrawingNote(results, path.name.removesuffix(".drawing")).read()
        if note is not None:
            digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
            noted.update((run_id, digest) for run_id in [*note["drawing"], *note["suspects"]])
    return noted


def record_files(results, run_ids, states: dict) -> list[str]:
    """The record files holding the latest records of `run_ids` (the tables' inputs), as paths
    under `results` spelled as given."""
    names = {states[run_id].where.rsplit(":", 1)[0] for run_id in run_ids if run_id in states}
    return [f"{results}/records/{name}" for name in sorted(names)]


def read_run_file(results, run_id: str, name: str, states: dict | None = None) -> bytes:
    """The bytes of one of a run's files (samples.npz, grid.png, ...), read from its archive and
    checked against the sha256 its record lists. Raises CorruptRecord naming the archive when the
    record or the bytes cannot be trusted, NoSamples when the run kept no such file."""
    record = read_record(results, run_id, states)
    listed = record["files"].get(name)
    if listed is None:
        raise NoSamples(f"run {run_id} stored no {name} (stored: {', '.join(record['files']) or 'nothing'}; "
                        f"keep_samples decides what a run stores)")
    archive = records_folder(results) / record["archive"]     # a plain name (check_record)
    try:
        with open(archive, "rb") as handle:
            handle.seek(listed["offset"])
            data = handle.read(listed["bytes"])
    except OSError as error:
        raise CorruptRecord(str(io.unreadable(archive, "an archive", error))) from None
    if hashlib.sha256(data).hexdigest() != listed["sha256"]:
        raise CorruptRecord(f"{archive}: {name} of run {run_id} at byte {listed['offset']}: its sha256 differs "
                            f"from its record's; `diffsweep forget {run_id}` and re-run to recompute it")
    return data


def read_run_arrays(results, run_id: str, name: str = "samples.npz", states: dict | None = None) -> dict:
    """The arrays of one of a run's .npz files, checked against the sha256 its record lists
    (read_run_file: CorruptRecord, NoSamples)."""
    import numpy as np

    data = read_run_file(results, run_id, name, states)
    try:
        with np.load(BytesIO(data)) as arrays:
            return {key: arrays[key] for key in arrays.files}
    except Exception as error:    # bytes that match their record's sha256 but are no .npz of arrays
        raise CorruptRecord(str(io.unreadable(f"{name} of run {run_id}", "an .npz file of arrays", error))) from None


def forget(results, run_ids) -> int:
    """Delete every record line of `run_ids` (each record file rewritten atomically): the runs are
    pending again, and the next invocation recomputes them (with today's keep_samples). Their
    bytes stay in the archives, listed by no record. Returns the number of lines deleted. Not
    while a workflow runs on the folder (a line a job appends meanwhile could be lost): it holds
    the results lock meanwhile, so ResultsInUse names the invocation that does."""
    run_ids, deleted = set(run_ids), 0
    folder = records_folder(results)
    if not folder.is_dir():
        return 0
    held = os.path.realpath(Path(results).expanduser()) in _held    # this process's workflow holds it
    lock_results(results)
    try:
        for path in record_file_paths(results):
            lines = read_record_file(path).splitlines(keepends=True)
            kept = [line for line in lines if not ((match := RUN_OF_LINE.match(line.decode("utf-8", "replace")))
                                                  and match.group(1) in run_ids)]
            if len(kept) < len(lines):
                deleted += len(lines) - len(kept)
                with io.atomic_path(path) as tmp:
                    tmp.write_bytes(b"".join(kept))
    finally:
        if not held:
            unlock_results(results)
    return deleted


def extract(results, run_id: str, out, states: dict | None = None) -> list[Path]:
    """Write the files a run stored (samples.npz, grid.png, strip.png, ...), checked against their
    sha256, to the folder `out`; return their paths. `states`: an index(results) already read."""
    states = index(results, only={run_id}) if states is None else states
    written = []
    for name in read_record(results, run_id, states)["files"]:
        path = Path(out) / name
        data = read_run_file(results, run_id, name, states)
        with io.atomic_path(path) as tmp:
            tmp.write_bytes(data)
        written.append(path)
    return written


class ShardStore:
    """The append-only record file and archive of one shard job. A run is stored by appending its
    files' bytes to the archive (flushed and fsynced), then its record line, which lists where
    they are, to the record file (flushed and fsynced): a job killed at any moment leaves every
    earlier run intact, and at worst bytes no record lists or one torn last line (index). A run's
    files are first written into its own staging folder (`run_staging`), so runs finishing in
    any order, or at once, never mix their files."""

    def __init__(self, results, shard: str):
        self.records, self.archive = record_file(results, shard), archive_file(results, shard)
        self.staging = staging_folder(results, shard)

    def open(self, started: float) -> None:
        """Remove what a killed earlier job of this shard left in its staging folder."""
        self.staging.mkdir(parents=True, exist_ok=True)
        for path in self.staging.iterdir():
            if path.stat().st_mtime >= started:
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    def run_staging(self, run_id: str) -> Path:
        """The empty folder where `job.finish` writes a run's files."""
        folder = self.staging / run_id
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        return folder

    def discard(self, run_id: str) -> None:
        shutil.rmtree(self.staging / run_id, ignore_errors=True)

    def close(self) -> None:
        """Remove the (empty) staging folders: every run's files are in the archive."""
        for folder in (self.staging, self.staging.parent):
            try:
                folder.rmdir()
            except OSError:     # not empty: another job's staging folder is there
                pass

    def append(self, record: dict, folder: Path | None = None) -> None:
        """Append the files of `folder` (a run_staging folder, then removed) and `record`, which
        gains `archive` and `files`."""
        files = sorted(path for path in folder.iterdir() if path.is_file() and not path.name.startswith(".")) \
            if folder is not None else []
        self.records.parent.mkdir(parents=True, exist_ok=True)
        with open(self.archive, "ab") as archive:
            fcntl.flock(archive, fcntl.LOCK_EX)    # two jobs or threads of one shard never interleave
            listed = {}
            for path in files:
                data = path.read_bytes()
                listed[path.name] = {"offset": archive.tell(), "bytes": len(data),
                                     "sha256": hashlib.sha256(data).hexdigest()}
                archive.write(data)
            archive.flush()
            os.fsync(archive.fileno())
            record.update(archive=self.archive.name, files=listed)
            line = json.dumps(record, default=io.jsonable, separators=(",", ":"), allow_nan=True).encode() + b"\n"
            with open(self.records, "ab+") as records:
                records.seek(0, os.SEEK_END)
                if records.tell() and (records.seek(-1, os.SEEK_END), records.read(1))[1] != b"\n":
                    line = b"\n" + line       # end a torn line of a killed job: it stays one broken line
                records.write(line)
                records.flush()
                os.fsync(records.fileno())
        if folder is not None:
            shutil.rmtree(folder)


class JobDied(RuntimeError):
    """A shard job's process died (a crash in native code, os._exit, kill -9) while a run drew alone:
    the run's `error` in the record the next attempt writes for it."""


class DrawingNote:
    """results/records/<shard>.drawing: which runs of a shard job are drawing now, so that the next
    attempt of a job whose process died (no record, no traceback) can find the run that killed it.

    The job notes each group of runs before it starts drawing them (a fused group: all of them; a
    lone run: that one) and drops each run once it is stored; the file is gone when nothing draws.
    It is JSON: `drawing` (run ids), `isolating` (true while a suspect draws alone), `suspects`
    (runs of a group that died, still to draw alone), and `pid`, `host` and `started` (when they
    began).
    Written atomically and fsynced: a torn note can only be damage, and is ignored with a warning."""

    def __init__(self, results, shard: str):
        self.path = records_folder(results) / f"{shard}.drawing"
        self.note: dict | None = None

    def read(self) -> dict | None:
        """What the job that last wrote the note left (None without a note, or an unreadable one)."""
        try:
            note = json.loads(self.path.read_bytes())
            if not (isinstance(note, dict) and all(isinstance(note.get(key), list) and all(isinstance(run, str)
                                                                                    for run in note[key])
                                                   for key in ("drawing", "suspects"))):
                raise ValueError("not a drawing note (lists `drawing` and `suspects` of run ids)")
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            log.warning("ignored an unreadable drawing note %s (%s: %s); it is replaced", self.path,
                        type(error).__name__, error)
            return None
        return note

    def write(self, drawing: list[str], isolating: bool = False, suspects: list[str] = ()) -> None:
        """Note that `drawing` start drawing now (alone as a suspect when `isolating`)."""
        self._save({"drawing": list(drawing), "isolating": isolating, "suspects": list(suspects), "pid": os.getpid(),
                    "host": socket.gethostname(), "started": datetime.now(timezone.utc).isoformat(timespec="seconds")})

    def stored(self, run_id: str) -> None:
        """A run of the note has its record: it no longer draws (the note goes once nothing does)."""
        if self.note is None or run_id not in self.note["drawing"]:
            return
        self._save({**self.note, "drawing": [run for run in self.note["drawing"] if run != run_id]})

    def stopped(self) -> None:
        """The job is stopped (SIGTERM, a Python error), not killed by a run: the runs drawing are
        not to blame. A suspect drawing alone stays a suspect; the runs of a group are no longer noted."""
        if self.note is None:
            return
        suspects = [*self.note["drawing"], *self.note["suspects"]] if self.note["isolating"] else self.note["suspects"]
        self._save({**self.note, "drawing": [], "isolating": False, "suspects": suspects})

    def clear(self) -> None:
        self.note = None
        self.path.unlink(missing_ok=True)

    def _save(self, note: dict) -> None:
        if not note["drawing"] and not note["suspects"]:
            self.clear()
            return
        self.note = note
        # one job per shard at a time: a fixed temporary name, which a killed job's successor overwrites
        # (io.atomic_path would scan the records folder, thousands of files, at every run)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            handle.write(json.dumps(note, sort_keys=True).encode() + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)


# --- divergence ---------------------------------------------------------------------------
#
# A run is `diverged` when its samples (generation) or restorations (restoration) are not finite,
# or when they ran away: their root-mean-square distance from the data's centre (the mean of the
# reference set) exceeds RUNAWAY_FACTOR times the data's extent (the largest distance of a
# reference point from that centre). For any coupling, ||X - Y||_L2 >= ||X - c||_L2 - ||Y - c||_L2,
# so such samples are farther than (RUNAWAY_FACTOR - 1) extents from the data in W2: they cover
# no part of it, whatever the sampler meant to do, and their metrics would only measure how far
# they flew. A sampler that is merely inaccurate keeps its samples near the data and stays `ok`:
# on the default grid every run's radius is at most 1.5 extents, except NCSN with 3 steps per
# level, whose samples have not contracted yet (3-4.4 extents, sliced W2 11-13 on ring8, data
# radius 4). Samples with a few far outliers count too: the RMS weighs them. The factor is
# `sampling.runaway_factor` (this default; 0 turns the check off).
RUNAWAY_FACTOR = 5.0


@dataclass(frozen=True)
class DataScale:
    """The data's centre (mean of the reference set, float64) and extent (largest distance of a
    reference point from it), computed once per shard job."""
    centre: object
    extent: float

    @classmethod
    def of(cls, reference) -> DataScale:
        import torch

        rows = reference.flatten(1)
        centre = rows.sum(0, dtype=torch.float64) / len(rows)
        extent = max(((part.double() - centre) ** 2).sum(1).max().item() for part in rows.split(1024)) ** 0.5
        return cls(centre, extent)


def divergence(samples, scale: DataScale, factor: float = RUNAWAY_FACTOR) -> str | None:
    """Why the drawn `samples` (n, ...) make their run `diverged`, or None: not finite, or ran away
    (RMS distance from the data's centre above `factor` x the data's extent; 0: not checked)."""
    import torch

    rows = samples.detach().flatten(1)
    if not bool(torch.isfinite(rows).all()):
        bad = int((~torch.isfinite(rows)).any(1).sum())
        return f"not finite: {bad} of {len(rows)} samples hold NaN or inf"
    if not factor:
        return None
    centre = scale.centre.to(rows.device)
    squared = sum(((part.double() - centre) ** 2).sum().item() for part in rows.split(1024))
    radius = (squared / len(rows)) ** 0.5
    if radius > factor * scale.extent:
        return (f"ran away: the samples' RMS distance from the data's centre is {radius:.4g}, over "
                f"{factor:g} x the data's extent {scale.extent:.4g} (the largest distance of a reference "
                f"point from its mean)")
    return None


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
              max_batch: int = 0, log_path=None, fail_fast: bool = False, fuse: bool = True,
              runaway_factor: float = RUNAWAY_FACTOR, fuse_timeout_s: float | None = None) -> None:
    """Run every run of one shard (one score source, one kind); each finished run appends its
    files to the shard's archive and its record line to the shard's record file (ShardStore; the
    shard is the name of `shard_path`, its marker). `options` are the kind's options (generation:
    metrics, keep_samples; restoration: metrics, strips, keep_samples).
    A run that raises is recorded as `failed` (its error and `log_path`, the job's log relative to
    `results`: log_file) and the job goes on; if
    the score source or the data cannot be loaded, every run is. With `fail_fast` the job stops
    (raises) at the first failure instead. With `fuse` the runs draw together, one network call
    serving all of them at each step (diffsweep.fusion; a wait past `fuse_timeout_s` fails the
    group's runs still drawing; None: fusion.TIMEOUT_S). A run whose samples are not finite, or ran
    away (`divergence`, `runaway_factor`; 0: not checked), is recorded as `diverged`.
    Runs that were drawing when an earlier job of the shard died (its DrawingNote) are suspects:
    they draw alone, one at a time, before the others; a run that was drawing alone when its job
    died is recorded as `failed` (JobDied)."""
    registry.load_plugins(plugins)   # what they register exists in this job as at parse time
    (kind,) = {run["kind"] for run in runs}
    mark_layout(results)
    shard = Path(shard_path).name.removesuffix(".json")
    store = ShardStore(results, shard)
    note = DrawingNote(results, shard)
    died = note.read()                # left by an earlier job of this shard whose process died
    fatal_path = store.staging / FATAL_FILE
    fatal = fatal_path.read_text(errors="replace") if died is not None and fatal_path.is_file() else ""
    store.open(started=time.time())   # files left by an earlier job of this shard that was killed
    from diffsweep import fusion, jobs

    origin = jobs.provenance()
    statuses = {}

    def record_failure(run, error, where, fused_with=None):
        log.error("run %s failed", run["id"], exc_info=error)
        summary = one_line(error)
        store.discard(run["id"])
        store.append(make_record(run, FAILED, None, None, where, origin,
                                 {"error": summary, "log": None if log_path is None else str(log_path)}, fused_with))
        statuses[run["id"]] = FAILED
        note.stored(run["id"])
        if fail_fast:
            raise RuntimeError(f"run {run['id']} failed (fail_fast is set, the job stops): {summary}") from error

    def store_drawn(run, drawn, fused_with):
        try:
            output, nfe, counted, wall = drawn()
            if nfe != counted:
                raise RuntimeError(f"{job.method} '{run['family']}' reported {nfe} network evaluations but made {counted}")
            folder = store.run_staging(run["id"])
            why = divergence(job.samples_of(output), data_scale, runaway_factor)
            status = DIVERGED if why else OK
            results_part = job.finish(run, output, folder, scored=not why)
            if why:
                log.warning("%s run %s diverged: %s", kind, run["id"], why)
                results_part["error"] = why
            store.append(make_record(run, status, nfe, wall, chosen, origin, results_part, fused_with), folder)
            statuses[run["id"]] = status
            note.stored(run["id"])
            log.info("%s run %s: %s, nfe %d, %.2f s", kind, run["id"], status, nfe, wall)
        except (Exception, SystemExit) as error:  # one broken run must not lose the others (sys.exit included)
            record_failure(run, error, chosen, fused_with)

    culprit, suspects = culprit_and_suspects(died, runs)
    if died is not None:     # the dead job's suspects stay noted until drawn; the culprit no more (a
        note.write([], suspects=[run["id"] for run in suspects])   # fail_fast stop below must not repeat it)
        log.warning("a job of this shard died while %s drew%s", ", ".join(died["drawing"]) or "no run",
                    f"; its fatal error:\n{fatal}" if fatal.strip() else " (no fatal error was written)")
    if culprit is not None:
        record_failure(culprit, JobDied(death_message(died, fatal)), device)
        runs = [run for run in runs if run is not culprit]
    try:
        chosen = jobs.pick_device(device)
        job, denoiser = start_job(kind, model, reference_path, checkpoint_path, results, chosen, fidelity_records,
                                  fidelity_options, options, max_batch)
        data_scale = DataScale.of(job.reference)
    except Exception as error:  # nothing can run: every run fails with this error
        for run in runs:
            record_failure(run, error, device)
        note.clear()
        store.close()
        write_marker(shard_path, model["id"], kind, statuses)
        return

    def starting(group):
        note.write([run["id"] for run in group])
        how = "alone" if len(group) == 1 else f"{len(group)} runs fused"
        log.info("drawing %s: %s", how, ", ".join(run["id"] for run in group))   # a killed job's log names them

    with blameless_unless_killed(note), fatal_errors_into(fatal_path):
        for index, run in enumerate(suspects):      # alone, one at a time: the one that kills the job is found
            later = [other["id"] for other in suspects[index + 1:]]
            note.write([run["id"]], isolating=True, suspects=later)
            log.info("run %s draws alone: it was drawing when a job of this shard died (%d suspect(s) after it)",
                     run["id"], len(later))
            store_drawn(run, functools.partial(job.draw, run, denoiser), 1)
        others = [run for run in runs if run not in suspects]
        for run, drawn, fused_with in fusion.draws(job, denoiser, others, fuse, starting=starting,
                                                   timeout_s=fuse_timeout_s or fusion.TIMEOUT_S):   # as each draw ends
            store_drawn(run, drawn, fused_with)
    note.clear()
    failed = sum(status == FAILED for status in statuses.values())
    if failed:
        log.warning("%d of %d runs failed and are recorded as such (status `failed`)", failed, len(statuses))
    store.close()
    write_marker(shard_path, model["id"], kind, statuses)


@contextlib.contextmanager
def blameless_unless_killed(note: DrawingNote):
    """While the block runs, only a death blames the runs drawing: a SIGTERM (preemption, a time
    limit, scancel) first tells the drawing note that the job was stopped (DrawingNote.stopped),
    then ends the job as SIGTERM does; so does a Python exception leaving the block (fail_fast,
    Ctrl-C). Signal handlers exist in the main thread only; elsewhere SIGTERM is left alone."""
    def stop(signum, frame):
        note.stopped()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, stop) if main else None
    try:
        yield
    except BaseException:
        note.stopped()
        raise
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def culprit_and_suspects(died: dict | None, runs: list[dict]) -> tuple[dict | None, list[dict]]:
    """From the drawing note a dead job left: the run that was drawing alone as a suspect when the
    job died (None if none), and the pending runs still suspected (the runs of a group or a lone
    run that was drawing, or suspects not yet drawn alone), in the runs' order."""
    if died is None:
        return None, []
    culprit = died["drawing"][0] if died.get("isolating") and died["drawing"] else None
    suspected = {*died["suspects"], *([] if died.get("isolating") else died["drawing"])} - {culprit}
    return (next((run for run in runs if run["id"] == culprit), None),
            [run for run in runs if run["id"] in suspected])


# Where faulthandler writes while a shard job's runs draw (in its staging folder): Snakemake deletes
# a failed job's log when it runs the job again, so the next attempt reads the fatal error here.
FATAL_FILE = "fatal.txt"
# faulthandler's first line when a fatal signal (SIGSEGV, SIGABRT, SIGBUS, SIGFPE, SIGILL) ends a job
FATAL_ERROR = re.compile(r"^Fatal Python error: (.+)$", re.MULTILINE)


@contextlib.contextmanager
def fatal_errors_into(path: Path):
    """While the block runs, a fatal signal's tracebacks (faulthandler, every thread) go to `path`;
    then back where they went (the job's log: logs.setup_logging), and `path` is removed."""
    import faulthandler

    from diffsweep import logs

    enabled = faulthandler.is_enabled()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(path, "w") as handle:
            faulthandler.enable(file=handle, all_threads=True)
            try:
                yield
            finally:
                if logs.fatal_log is not None:
                    faulthandler.enable(file=logs.fatal_log, all_threads=True)
                elif enabled:
                    faulthandler.enable(file=sys.__stderr__, all_threads=True)
                else:
                    faulthandler.disable()
    finally:
        path.unlink(missing_ok=True)


def death_message(died: dict, fatal: str = "") -> str:
    """What is known of how a job's process died while a run drew alone: its pid and host, when
    the run began, and the fatal error faulthandler wrote (`fatal`: fatal_errors_into), if any."""
    cause = "no Python error (a crash in native code, os._exit(), kill -9, the out-of-memory killer?)"
    error = FATAL_ERROR.search(fatal)
    if error:
        cause = f"Fatal Python error: {error.group(1).strip()} (the next attempt's log has the threads' tracebacks)"
    return (f"the job's process (pid {died.get('pid')} on {died.get('host')}) died while this run was drawing alone "
            f"(since {died.get('started')}), leaving no record: {cause}")


def start_job(kind: str, model: dict, reference_path, checkpoint_path, results, device, fidelity_records,
              fidelity_options, options: dict, max_batch: int):
    """(the kind's job, the score source's denoiser): what a shard loads once for all its runs."""
    import torch

    from diffsweep import jobs

    data_dir = Path(reference_path).parent     # holds a fitted prior's cached fit
    dataset = jobs.build_dataset(model["data"], data_dir)
    jobs.check_network_fits(model, dataset.shape)     # before a large checkpoint is read
    denoiser, dtype = jobs.load_denoiser(model, checkpoint_path, device, data_dir, max_batch)
    reference = torch.from_numpy(io.read_sample_set(reference_path))
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


def make_record(run: dict, status: str, nfe, wall, device, origin: dict, results_part: dict,
                fused_with: int | None = None) -> dict:
    """A run's record (ShardStore.append adds where its files are); run_id first: a torn line still
    names its run. `fused_with`: the runs of the group it drew in (fusion.draws; None: it never drew)."""
    return {"run_id": run["id"], "kind": run["kind"], "status": status, "nfe": nfe, "wall_s": wall,
            "fused_with": fused_with, "device": str(device),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "row": run["row"], "params": run["params"], "provenance": origin, **results_part}


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
    # what a table takes from a record (the parameters come from the manifest rows)
    states = index(results, keep=[*RECORD_COLUMNS, *FAILURE_KEYS, "provenance", "skipped", *RESULT_KEYS[kind]])
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
    for column, dtype in (("nfe", "Int64"), ("wall_s", "float64"), ("fused_with", "Int64")):   # even when none ran
        result[column] = result[column].astype(dtype)
    return with_params(result, parameters.columns)
