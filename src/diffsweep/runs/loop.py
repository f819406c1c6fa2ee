"""The job loop of a shard (`run_shard`): one loop for both kinds of run.

Plugins imported, device picked, score source loaded once (diffsweep.runs.source), each run
drawn (counting network evaluations and timing the draw; with `fuse` the runs draw together,
one network call serving all of them: diffsweep.runs.fusion), judged (`divergence`: samples that
are not finite or ran away make the run `diverged`, for both kinds), evaluated (the kind's half,
diffsweep.runs.generation or diffsweep.runs.restoration: `job.finish` writes the run's files into
a staging folder), stored (diffsweep.runs.store.ShardStore). A run that raises is recorded as
`failed` and the job goes on (`fail_fast` stops it instead). The runs drawing are noted first
(DrawingNote), so the next attempt after a job whose process died isolates them and records the
one that kills its job as `failed` (JobDied).

Imports torch inside its functions only (the module is imported by tests and scripts that
need no torch); writes the shard's records, archive, drawing note and marker.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from diffsweep import io, registry
from diffsweep.runs.layout import mark_layout, write_marker
from diffsweep.runs import kinds
from diffsweep.runs.records import DIVERGED, FAILED, OK, CorruptRecord, NoSamples, make_record, read_run_arrays
from diffsweep.runs.store import DrawingNote, ShardStore

log = logging.getLogger("diffsweep")


class JobDied(RuntimeError):
    """A shard job's process died (a crash in native code, os._exit, kill -9) while a run drew alone:
    the run's `error` in the record the next attempt writes for it."""


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

def run_shard(model: dict, runs: list[dict], reference_path, checkpoint_path, results, shard_path,
              options: dict, device: str = "auto", plugins=(), fidelity_records=(), fidelity_options=None,
              max_batch: int = 0, log_path=None, fail_fast: bool = False, fuse: bool = True,
              runaway_factor: float = RUNAWAY_FACTOR, fuse_timeout_s: float | None = None,
              reevaluate: dict | None = None) -> None:
    """Run every run of one shard (one score source, one kind); each finished run appends its
    files to the shard's archive and its record line to the shard's record file (ShardStore; the
    shard is the name of `shard_path`, its marker). `options` are the kind's options (generation:
    metrics, keep_samples; restoration: metrics, strips, keep_samples).
    A run that raises is recorded as `failed` (its error and `log_path`, the job's log relative to
    `results`: log_file) and the job goes on; if
    the score source or the data cannot be loaded, every run is. With `fail_fast` the job stops
    (raises) at the first failure instead. With `fuse` the runs draw together, one network call
    serving all of them at each step (diffsweep.runs.fusion; a wait past `fuse_timeout_s` fails the
    group's runs still drawing; None: fusion.TIMEOUT_S). A run whose samples are not finite, or ran
    away (`divergence`, `runaway_factor`; 0: not checked), is recorded as `diverged`.
    Runs that were drawing when an earlier job of the shard died (its DrawingNote) are suspects:
    they draw alone, one at a time, before the others; a run that was drawing alone when its job
    died is recorded as `failed` (JobDied).
    Each record names the code that made it (fingerprint.record_fields, computed here, in the job's
    process; a trained score source's `code_train` from its checkpoint's note: runs.code).
    `reevaluate` (run id -> its done State, records.index) holds runs whose evaluating code alone
    changed: they are scored again from their stored samples (the job's `reload`) without drawing
    (`eval_nfe` 0 and `evaluated_at` in the new record, which keeps the draw's nfe, wall_s, device,
    finished and code_draw); one whose samples were not all kept is drawn again."""
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
    from diffsweep import fingerprint
    from diffsweep.runs import code, fusion, source

    origin = source.provenance()
    reevaluate = reevaluate or {}
    trained = code.read_training_note(checkpoint_path) if checkpoint_path is not None else None
    code_train = {} if trained is None else {"code_train": trained["code_train"]}   # the weights' training code
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

    def store_drawn(run, drawn, fused_with, redone=None):
        """Store a drawn run; `redone`: the done record of a run re-scored from its stored samples."""
        try:
            output, nfe, counted, wall = drawn()
            if nfe != counted:
                raise RuntimeError(f"{kinds.get(kind).method} '{run['family']}' reported {nfe} network evaluations but made {counted}")
            folder = store.run_staging(run["id"])
            why = divergence(job.samples_of(output), data_scale, runaway_factor)
            status = DIVERGED if why else OK
            results_part = job.finish(run, output, folder, scored=not why)
            if why:
                log.warning("%s run %s diverged: %s", kind, run["id"], why)
                results_part["error"] = why
            record = make_record(run, status, nfe, wall, chosen, origin, results_part, fused_with,
                                 {**fingerprint.record_fields(run["identity"]), **code_train})
            code.remember(results, *fingerprint.of_run(run["identity"]))   # what status names as changed
            if redone is not None:    # what the draw was is the old record's; only the scoring is new
                record.update({key: redone[key] for key in ("device", "finished", "code_draw")},
                              eval_nfe=0, evaluated_at=record["finished"])
            store.append(record, folder)
            statuses[run["id"]] = status
            note.stored(run["id"])
            log.info("%s run %s: %s, nfe %d, %.2f s%s", kind, run["id"], status, nfe, wall,
                     " (re-scored from its stored samples)" if redone is not None else "")
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
        chosen = source.pick_device(device)
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
        for run in runs:
            if run["id"] in reevaluate:
                rescore(job, run, reevaluate[run["id"]], results, store_drawn)
        runs = [run for run in runs if run["id"] not in statuses]     # those not re-scored are drawn
        suspects = [run for run in suspects if run["id"] not in statuses]
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


def rescore(job, run: dict, state, results, store_drawn) -> None:
    """Score a done run again from its stored samples (its evaluating code changed), without drawing;
    a run whose samples are not all stored (keep_samples), or cannot be trusted, is left to be drawn."""
    record = state.record
    try:
        output = job.reload(run, read_run_arrays(results, run["id"], states={run["id"]: state}))
    except (NoSamples, CorruptRecord) as why:
        log.info("run %s: its evaluating code changed but it cannot be re-scored (%s); it is drawn again",
                 run["id"], why)
        return
    store_drawn(run, lambda: (output, record["nfe"], record["nfe"], record["wall_s"]), record.get("fused_with"),
                redone=record)


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

    from diffsweep.runs import source

    data_dir = Path(reference_path).parent     # holds a fitted prior's cached fit
    dataset = source.build_dataset(model["data"], data_dir)
    source.check_network_fits(model, dataset.shape)     # before a large checkpoint is read
    denoiser, dtype = source.load_denoiser(model, checkpoint_path, device, data_dir, max_batch)
    reference = torch.from_numpy(io.read_sample_set(reference_path))
    fidelity = None
    if fidelity_records:
        from diffsweep.fidelity import FidelityEvaluator
        fidelity = FidelityEvaluator.from_records(fidelity_records, reference, fidelity_options,
                                                  Path(results) / "fidelity" / "cache", device)
    return kinds.get(kind).job()(dataset, reference, dtype, device, options, fidelity), denoiser


def one_line(error: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, at most `limit` characters: a failed run's `error`."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
