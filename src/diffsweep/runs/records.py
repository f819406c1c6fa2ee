"""Run records: their format and checks, the index of every record file (done detection), the
queries on it, a run's stored files (checked against their sha256), and `forget` / `extract`.

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

Torch-free: the Snakefile reads records at parse time. Writes only in `forget` (record files,
under the results lock) and `extract` (the folder it is given).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from io import BytesIO
from pathlib import Path

from diffsweep import io
from diffsweep.runs import kinds
from diffsweep.runs.layout import excerpt, holds_results_lock, lock_results, marker_file, records_folder, shard_log, unlock_results
from diffsweep.runs.store import DrawingNote

log = logging.getLogger("diffsweep")

OK, DIVERGED = "ok", "diverged"        # DIVERGED: samples not finite or ran away (`divergence`)
DONE_STATUSES = (OK, DIVERGED)         # never recomputed (delete the run's record lines to redo one)
FAILED = "failed"                      # recorded, retried by the next invocation
STATUSES = (*DONE_STATUSES, FAILED)
# Statuses a table gives a run without a trustworthy record.
MISSING, CORRUPT = "missing", "corrupt"
REQUIRED_KEYS = ("run_id", "kind", "status", "nfe", "wall_s", "device", "finished", "row", "params", "provenance",
                 "archive", "files")
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
             "measurements": list, "error": str, "log": (str, type(None)), "fused_with": (int, type(None)),
             "code_draw": str, "code_evaluate": str, "code_packages": dict, "code_train": str,
             "eval_nfe": int, "evaluated_at": str}
# What the next invocation does with done runs whose code changed (config `code_changes`, runs.code).
RERUN, KEEP, WARN = "rerun", "keep", "warn"


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
    needed = [*REQUIRED_KEYS, *(FAILURE_KEYS if status == FAILED else (kinds.get(record["kind"]).result_keys if record.get("kind") in kinds.KINDS else ()))]
    where = f"{path} line {line}"
    missing = [key for key in needed if key not in record]
    if missing:
        return f"{where}: lacks {', '.join(missing)}"
    mistyped = [key for key, kinds in KEY_TYPES.items() if key in record and not isinstance(record[key], kinds)]
    if mistyped:
        return f"{where}: {', '.join(mistyped)} of the wrong type"
    if not RUN_ID.fullmatch(record["run_id"]):
        return f"{where}: run_id {excerpt(record['run_id'])} is not a run id (<preset>-<16 hex digits>)"
    if record["kind"] not in kinds.KINDS:
        return f"{where}: kind {excerpt(record['kind'])} is not one of {', '.join(kinds.names())}"
    if status not in STATUSES:
        return f"{where}: status {status!r} is not one of {', '.join(STATUSES)}"
    if not (FILE_NAME.fullmatch(record["archive"]) and record["archive"].endswith(".archive")):
        return f"{where}: archive {excerpt(record['archive'])} is not the name of an archive next to it"
    if not record["files"]:
        return None
    archive = path.parent / record["archive"]
    if archive not in archive_sizes:
        archive_sizes[archive] = archive.stat().st_size if archive.is_file() else None
    size = archive_sizes[archive]
    for name, listed in record["files"].items():
        if not FILE_NAME.fullmatch(name):
            return f"{where}: lists a file {excerpt(name)}, which is not a plain file name"
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


def done_runs(results, run_ids, states: dict | None = None, stale=None,
              policy: str = RERUN) -> set[str]:
    """Runs whose record says `ok` or `diverged` (DONE_STATUSES): the others are (re)computed; under
    the `code_changes` policy `rerun`, runs of `stale` (runs.code.Stale) are not done either: drawn again
    or re-scored. Each corrupt record is named in one warning line."""
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
    if stale is not None and policy == RERUN:
        done -= stale.draw | stale.evaluate
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
            shard: str | None = None, code=None) -> str:
    """A key of a shard's pending runs, the records they already have (failed or corrupt ones),
    the drawing note of a job that died drawing them, and the traces of the shard's jobs: its
    marker (`write_marker`: a fresh id per job) and its log (size and time: every job appends to
    it). It changes whenever one of those runs gets a new record line or note, or a job of the
    shard ran since, so a shard whose runs failed, whose job died, or whose records were deleted
    after it ran, runs again: the key is the shard job's `attempt` param, which the params rerun
    trigger compares (a job that has not run again keeps the key of its last run, whatever was
    deleted since). `notes`: drawing_notes(results). `code`: run id -> today's code of the run
    (runs.code.Today: code_draw, code_evaluate, code_train), so that a shard whose runs' code
    changed gets a new key and runs again (config `code_changes: rerun`)."""
    states = index(results, only=set(run_ids)) if states is None else states
    notes = drawing_notes(results) if notes is None else notes
    entries = [[run_id, states[run_id].where if run_id in states else None, *([notes[run_id]] if run_id in notes else []),
                *([code(run_id)] if code is not None else [])]
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
    held = holds_results_lock(results)    # this process's workflow holds it
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


def make_record(run: dict, status: str, nfe, wall, device, origin: dict, results_part: dict,
                fused_with: int | None = None, code: dict | None = None) -> dict:
    """A run's record (ShardStore.append adds where its files are); run_id first: a torn line still
    names its run. `fused_with`: the runs of the group it drew in (fusion.draws; None: it never drew).
    `code`: what the record says of the code that made it (fingerprint.record_fields)."""
    return {"run_id": run["id"], "kind": run["kind"], "status": status, "nfe": nfe, "wall_s": wall,
            "fused_with": fused_with, "device": str(device),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "row": run["row"], "params": run["identity"], "provenance": origin, **(code or {}), **results_part}
