"""Aggregation: run records -> one Parquet row per run, training logs -> one table.

Parameter columns come from the resolved run (the manifest row stored in run.json), never
from paths. A run in the manifest without a record shows up with status `missing`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

RECORD_COLUMNS = ["status", "nfe", "wall_s", "device", "finished"]
LEADING_COLUMNS = ["run_id", "dataset", "model", "sampler", "sampler_family", "schedule", "steps", "init", "seed"]


def manifest_frame(rows: list[dict]) -> pd.DataFrame:
    """Runs sorted by id; identifying columns first, the other parameters alphabetically."""
    frame = pd.DataFrame(rows).sort_values("run_id", ignore_index=True)
    rest = sorted(c for c in frame.columns if c not in LEADING_COLUMNS)
    return frame[[c for c in LEADING_COLUMNS if c in frame.columns] + rest]


def generation_table(manifest: pd.DataFrame, results) -> pd.DataFrame:
    """The manifest joined with each run's record and metrics."""
    records = []
    for run_id in manifest["run_id"]:
        path = Path(results) / "runs" / run_id / "run.json"
        if not path.exists():
            records.append({"run_id": run_id, "status": "missing"})
            continue
        record = json.loads(path.read_text())
        records.append({"run_id": run_id, **{k: record.get(k) for k in RECORD_COLUMNS}, **record["metrics"],
                        "git_revision": record["provenance"].get("git_revision")})
    return manifest.merge(pd.DataFrame(records), on="run_id", how="left")


def with_model_metrics(generation: pd.DataFrame, record_paths) -> pd.DataFrame:
    """Per-model evaluations (likelihood.json) joined onto every run of that model, as model_<key> columns."""
    rows = []
    for path in record_paths:
        record = json.loads(Path(path).read_text())
        rows.append({"model_id": record.pop("model_id"), **{f"model_{k}": v for k, v in record.items()}})
    if not rows:
        return generation
    return generation.merge(pd.DataFrame(rows), on="model_id", how="left")


def training_table(log_paths) -> pd.DataFrame:
    frames = [pd.read_parquet(path) for path in log_paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model_id", "step", "loss"])
