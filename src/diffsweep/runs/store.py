"""How a shard job writes: its append-only record file and archive (`ShardStore`) and its drawing
note (`DrawingNote`: which runs are drawing, so that the next attempt after a job whose process
died finds the run that killed it).

A run is stored in two appends: its files' bytes to the archive, then its record line (which
lists where they are) to the record file, each flushed and fsynced, so a job killed at any
moment leaves every earlier run intact. Readers are in diffsweep.runs.records.

Torch-free. Touches only a shard's files under results/records/.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import socket
from datetime import datetime, timezone
from pathlib import Path

from diffsweep import io
from diffsweep.runs.layout import archive_file, record_file, records_folder, staging_folder

log = logging.getLogger("diffsweep")


def kept(keep, total: int) -> int:
    """How many of `total` samples a run stores under keep_samples (`all`, `none` or the first k)."""
    return total if keep == "all" else 0 if keep == "none" else min(int(keep), total)


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
