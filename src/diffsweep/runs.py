"""One run pipeline for both kinds of run: the results layout, the job loop of a shard and the
aggregation of run records into a table.

A generation run draws samples with a sampler preset; a restoration run measures reference
samples with a task's operator and restores them with a restorer preset (diffsweep.grid.RunSpec).
Everything around the kind-specific work is shared:

- Layout. Every run owns results/runs/<run_id>/ (its arrays and figures, and run.json written
  last: its presence marks the run done); a shard job's marker is results/shards/<shard>.json.
  results/layout.json names the layout version; a results folder of an older layout is refused
  at parse time (`check_layout`), so old and new records never mix.
- Job loop (`run_shard`). Plugins imported, device picked, score source loaded once, each run
  drawn (counting network evaluations and timing the draw), evaluated, saved; one failing run
  does not lose the others.
- Record. run.json holds run_id, kind, status, nfe, wall_s, device, finished, row (the manifest
  row), params (what the id hashes), provenance, and the kind's results: `metrics` and `skipped`
  (generation), `measurements` (restoration, one entry per measurement).
- Aggregation (`frame`). Manifest rows joined with their records: one table row per run
  (generation) or per run and measurement (restoration), typed by tables.typed_frame, with
  `frame.attrs["param_columns"]` listing the manifest's parameter columns.

Torch is imported only by the job loop.
"""

from __future__ import annotations

import logging
import os
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


def done_runs(results, run_ids) -> set[str]:
    """Runs whose record exists: they are never recomputed (delete the folder to redo one)."""
    folder = Path(results) / "runs"
    present = set(os.listdir(folder)) if folder.is_dir() else set()   # one listing, then a stat per run folder
    return {run_id for run_id in run_ids if run_id in present and os.path.exists(record_path(results, run_id))}


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
              max_batch: int = 0) -> None:
    """Run every run of one shard (one score source, one kind); one folder and run.json per run.
    `options` are the kind's options (generation: metrics; restoration: metrics, strips)."""
    import torch

    from diffsweep import jobs

    registry.load_plugins(plugins)   # what they register exists in this job as at parse time
    (kind,) = {run["kind"] for run in runs}
    mark_layout(results)
    chosen = jobs.pick_device(device)
    data_dir = Path(reference_path).parent     # holds a fitted prior's cached fit
    denoiser, dtype = jobs.load_denoiser(model, checkpoint_path, chosen, data_dir, max_batch)
    dataset = jobs.build_dataset(model["data"], data_dir)
    reference = torch.from_numpy(io.read_arrays(reference_path)["x"])
    fidelity = None
    if fidelity_records:
        from diffsweep.fidelity import FidelityEvaluator
        fidelity = FidelityEvaluator.from_records(fidelity_records, reference, fidelity_options,
                                                  Path(results) / "fidelity" / "cache", chosen)
    job = kind_job(kind)(dataset, reference, dtype, chosen, options, fidelity)
    origin = jobs.provenance()
    statuses, failures = {}, []
    for run in runs:
        try:
            output, nfe, counted, wall = job.draw(run, denoiser)
            if nfe != counted:
                raise RuntimeError(f"{job.method} '{run['family']}' reported {nfe} network evaluations but made {counted}")
            folder = run_folder(results, run["id"])
            status, results_part = job.finish(run, output, folder)
            write_record(folder, run, status, nfe, wall, chosen, origin, results_part)
            statuses[run["id"]] = status
            log.info("%s run %s: %s, nfe %d, %.2f s", kind, run["id"], status, nfe, wall)
        except Exception as error:  # one broken run must not lose the others
            log.exception("run %s failed", run["id"])
            failures.append(f"{run['id']}: {type(error).__name__}: {error}")
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(runs)} runs failed (the others are saved):\n" + "\n".join(failures))
    io.write_json(shard_path, {"model_id": model["id"], "kind": kind, "runs": statuses})


def write_record(folder: Path, run: dict, status: str, nfe: int, wall: float, device, origin: dict,
                 results_part: dict) -> None:
    record = {"run_id": run["id"], "kind": run["kind"], "status": status, "nfe": nfe, "wall_s": wall,
              "device": str(device), "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "row": run["row"], "params": run["params"], "provenance": origin, **results_part}
    io.write_json(folder / "run.json", record)  # written last: its presence marks the run done


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
    (ROWS_OF_RECORD); a run without a record is one row with status `missing`."""
    from diffsweep.tables import RECORD_COLUMNS, typed_frame, with_params

    expand = ROWS_OF_RECORD[kind]
    rows = sorted(rows, key=lambda row: row["run_id"])
    table = []
    for row in rows:
        path = record_path(results, row["run_id"])
        if not path.exists():
            table.append({**row, "status": "missing"})
            continue
        record = io.read_json(path)
        shared = {key: record.get(key) for key in RECORD_COLUMNS}
        git_revision = record["provenance"].get("git_revision")
        table.extend({**row, **shared, **part, "git_revision": git_revision} for part in expand(record))
    parameters = manifest(rows)
    leading = list(parameters.columns)
    measured = sorted({key for entry in table for key in entry} - {*leading, *RECORD_COLUMNS, "git_revision"})
    result = typed_frame(table, first=[*leading, *RECORD_COLUMNS, *measured, "git_revision"])
    for column, dtype in (("nfe", "Int64"), ("wall_s", "float64")):   # stable even when every run is missing
        result[column] = result[column].astype(dtype)
    return with_params(result, parameters.columns)
