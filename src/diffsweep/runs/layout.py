"""The results folder's layout (version 4, docs/design.md "The results folder"): where a shard
job's record file, archive, marker, log and staging folder are, the layout version a folder
holds (an older one is refused at parse time: `check_layout`) and the lock one invocation holds
on the folder (`lock_results`).

Files grow with shard jobs, not runs: each shard job appends to results/records/<shard>.jsonl
(one JSON line per finished run) and results/records/<shard>.archive (its runs' files, byte
after byte; diffsweep.runs.store); its marker is results/shards/<shard>.json.

Torch-free: imported when the Snakefile is parsed. Touches only paths and the folder's
layout.json and .lock.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import uuid
from pathlib import Path

from diffsweep import io

# Version of the results layout; an older results folder is refused (check_layout). 1: records in
# runs/ and restorations/, 8-digit hashes (no layout.json); 2: one folder and run.json per run,
# 16-digit hashes; 3: one record file and one archive per shard job (records/); 4: the same files, runs
# drawn from per-sample noise streams (diffsweep.samplers.randomness: same ids, other samples than 3's).
LAYOUT_VERSION = 4


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
        problem = f"{marker}: holds {excerpt(content)}"
    version = content.get("version") if isinstance(content, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version >= 1:
        return version
    raise ValueError(f"results: {problem}, not a layout marker such as {{\"version\": {LAYOUT_VERSION}}}; write "
                     f"that into it if this diffsweep wrote the folder, else move the folder aside")


def excerpt(value, limit: int = 60) -> str:
    """A value as JSON, cut to `limit` characters: what a message quotes of an untrusted record."""
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


def _lock_key(results) -> str:
    return os.path.realpath(Path(results).expanduser())


def holds_results_lock(results) -> bool:
    """Whether this process holds the results folder's lock (its workflow runs on it)."""
    return _lock_key(results) in _held


def lock_results(results) -> None:
    """Hold results/.lock (flock, exclusive) until unlock_results or the end of this process, so
    that two invocations writing one results folder, from any working directories, refuse each
    other (Snakemake's own lock is per working directory). The kernel frees the lock when its
    process dies: a held lock means its holder is alive (the file names its pid, host and working
    directory). Taken again by its holder, it is a no-op (workflows run in one process)."""
    if holds_results_lock(results):
        return
    folder = Path(_lock_key(results))
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
    handle = _held.pop(_lock_key(results), None)
    if handle is not None:
        os.close(handle)     # closing the file releases the flock
