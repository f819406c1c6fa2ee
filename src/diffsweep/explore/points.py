"""A table of runs -> the explorer's data: one point per preset point (every parameter but the
seed), its seeds pooled, with intervals; the runs' values kept per replicate for paired comparisons.

A point's interval at `level` (symmetric: stored as its half-width): with n >= 2 replicates, Student's t over them (`stats.t_interval`,
what `stats.seed_interval` gives with method "t", for every point of one n at once); with one, the
run's own sampling interval `value +- z se` where the table has the metric's `<metric>_se` column;
otherwise none. A replicate is a seed (generation), or a seed and a measurement (restoration: the
kind's row keys), as the ablation tables count them. The metric's floor (`<metric>_floor`, its
interval `_floor_low`, `_floor_high`: what exact samples score, analytic datasets only) is carried
where the table has it.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pandas as pd

from diffsweep import runs, stats
from diffsweep.runs import kinds
from diffsweep.tables import MEASUREMENT_COLUMNS, direction, distinguishing, param_columns, records

# Cost axes, in the order offered; a table offers those it has. GPU memory is not recorded by the
# job loop yet: a column added here (and written by the job) becomes an axis.
COSTS = {"nfe": "network evaluations (NFE)", "wall_s": "wall time per run (s)"}
# Columns that come with a metric: its standard error and its floor with the floor's interval.
SE, FLOOR, FLOOR_LOW, FLOOR_HIGH = "_se", "_floor", "_floor_low", "_floor_high"
COMPANIONS = (SE, FLOOR, FLOOR_LOW, FLOOR_HIGH)
# The identifying columns a filter offers first (the rest: every other parameter that varies).
LEADING_FILTERS = ("dataset", "model", "task")
DIGITS = 6       # significant digits of the numbers the page stores
HALF_DIGITS = 3  # and of an interval's half-width (the size of a page of 100k runs: docs/tables.md)
# How a point's interval was made, by index: none, Student's t over replicates, the run's sampling interval.
INTERVALS = ("none", "t", "sampling")


def metrics_of(frame, directions: dict | None = None, first=()) -> list[str]:
    """The numeric columns of `frame` with a direction (lower or higher is better: what a Pareto
    front needs), less the costs, the per-model measurements and the companions of a metric; those
    named in `first` (the plotted metrics) first."""
    parameters = set(param_columns(frame))
    companions = {f"{c}{suffix}" for c in frame.columns for suffix in COMPANIONS}
    found = [c for c in frame.columns
            if c not in parameters and c not in COSTS and c not in MEASUREMENT_COLUMNS and c not in companions
            and pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c])
            and direction(c, directions) in ("lower", "higher")]
    return [*[c for c in first if c in found], *[c for c in found if c not in first]]


def view(frame, kind: kinds.Kind, directions: dict | None = None, level: float = stats.DEFAULT_LEVEL,
         first_metrics=()) -> dict:
    """The explorer's data of one table of runs (a kind's): plain lists, ready for JSON.

    points: per point its filter codes, cost means, and per metric mean, interval (half-width) and floor;
    runs:   the replicate rows of every point, contiguous (`first`, `count` of the point), each with
            its run id, replicate key and metric values (the page pairs two points' replicates)."""
    parameters = [c for c in param_columns(frame) if c != "seed"]
    replicate_columns = ["seed", *[c for c in kind.row_keys if c != "run_id" and c in frame.columns]]
    metrics = metrics_of(frame, directions, first_metrics)
    costs = [c for c in COSTS if c in frame.columns]
    frame = frame.reset_index(drop=True)
    key = pd.util.hash_pandas_object(frame[parameters].astype("string"), index=False) if parameters else \
        pd.Series(0, index=frame.index)
    point_of_row, _ = pd.factorize(key, sort=False)
    frame = frame.assign(_point=point_of_row)
    status = frame["status"] if "status" in frame.columns else pd.Series(runs.OK, index=frame.index)
    ok = status.eq(runs.OK)
    first_rows = frame.drop_duplicates("_point").set_index("_point").sort_index()
    n_points = len(first_rows)

    filters, main_filters = _filters(first_rows, parameters, kind)
    statuses = frame.groupby(["_point", status]).size().unstack(fill_value=0) if len(frame) else pd.DataFrame()
    runs_ok = frame[ok].sort_values(["_point", *replicate_columns], kind="stable")
    counts = runs_ok.groupby("_point").size().reindex(range(n_points), fill_value=0).to_numpy()
    first = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int) if n_points else np.zeros(0, int)

    points = {
        "n": counts.tolist(),
        "first": first.tolist(),
        "runs": frame.groupby("_point")["run_id"].nunique().reindex(range(n_points)).tolist(),
        "statuses": {status: statuses[status].reindex(range(n_points), fill_value=0).tolist()
                     for status in statuses.columns},
        "source": _codes(_joined(first_rows, ["model_id"] if "model_id" in first_rows else ["dataset", "model"])),
        "cost": {c: _numbers(runs_ok.groupby("_point")[c].mean().reindex(range(n_points))) for c in costs},
        "metric": {m: _metric(runs_ok, m, n_points, level) for m in metrics},
    }
    replicates = {
        "run_id": runs_ok["run_id"].tolist(),
        "key": _joined(runs_ok, replicate_columns).tolist(),
        "values": {m: _numbers(runs_ok[m]) for m in metrics},
        "se": {m: _numbers(runs_ok[m + SE]) for m in metrics if m + SE in runs_ok},
    }
    preset, family = kind.preset_columns
    return {"kind": kind.name, "preset": preset, "family": family, "replicates": replicate_columns,
            "metrics": metrics, "costs": costs, "interval_methods": list(INTERVALS),
            "directions": {m: direction(m, directions) for m in metrics},
            "filters": filters, "main_filters": main_filters, "constant": _constant(first_rows, parameters, filters),
            "points": points, "runs": replicates, "n_points": n_points, "n_rows": int(len(frame))}


def _metric(runs_ok, metric: str, n_points: int, level: float) -> dict:
    """Per point: the mean over its replicates with finite values, the half-width of its interval
    (both kinds are symmetric; HALF_DIGITS digits) and how it was made (an index of INTERVALS), and
    the mean floor with the floor's interval where the table has it."""
    values = runs_ok[["_point", metric]].dropna()
    mean, half = np.full(n_points, np.nan), np.full(n_points, np.nan)
    method = np.zeros(n_points, dtype=int)
    grouped = values.groupby("_point")[metric]
    sizes = grouped.size()
    mean[sizes.index] = grouped.mean().to_numpy()
    for n, points_of_n in sizes.groupby(sizes):
        if n < 2:
            continue
        rows = values[values["_point"].isin(points_of_n.index)].sort_values("_point", kind="stable")
        centre, low, _ = stats.t_interval(rows[metric].to_numpy().reshape(-1, n), level)
        index = np.sort(points_of_n.index.to_numpy())
        half[index], method[index] = centre - low, INTERVALS.index("t")
    if metric + SE in runs_ok:
        from scipy.stats import norm

        single = sizes.index[sizes.to_numpy() == 1]
        se = runs_ok[runs_ok[metric].notna()].groupby("_point")[metric + SE].first().reindex(single).to_numpy()
        has = np.isfinite(se)
        half[single[has]] = norm.ppf((1 + level) / 2) * se[has]
        method[single[has]] = INTERVALS.index("sampling")
    result = {"mean": _numbers(mean), "half": _numbers(half, HALF_DIGITS), "method": method.tolist()}
    for suffix in (FLOOR, FLOOR_LOW, FLOOR_HIGH):
        if metric + suffix in runs_ok:
            result[suffix.lstrip("_")] = _numbers(runs_ok.groupby("_point")[metric + suffix].mean()
                                                  .reindex(range(n_points)))
    return result


def _filters(first_rows, parameters, kind) -> tuple[dict, list[str]]:
    """Every parameter with more than one value over the points: its values and each point's code.
    Also the main ones, offered first: the identifying columns, the kind's family and preset, and the
    parameters that tell a preset's points apart (swept knobs, steps); the others (a recipe key that
    only tells score sources apart) are offered too, folded."""
    leading = [c for c in (*LEADING_FILTERS, *reversed(kind.preset_columns)) if c in parameters]
    varying = [c for c in parameters if first_rows[c].nunique(dropna=False) > 1]
    swept = distinguishing(records(first_rows[varying]), [c for c in leading if c in varying],
                           [c for c in varying if c not in leading])
    ordered = [*[c for c in leading if c in varying], *swept]
    ordered += [c for c in varying if c not in ordered]
    return {c: _codes(first_rows[c]) for c in ordered}, [c for c in ordered if c in leading or c in swept]


def _constant(first_rows, parameters, filters) -> dict:
    """The parameters every point shares, as text (shown once above the figure)."""
    return {c: _text(first_rows[c].iloc[0]) for c in parameters if c not in filters and len(first_rows)}


def _joined(frame, columns):
    """The values of `columns` as one text per row, joined by "/" (missing values empty)."""
    parts = [frame[c].astype(object).where(frame[c].notna(), "").astype(str) for c in columns]
    return functools.reduce(lambda a, b: a + "/" + b, parts) if parts else pd.Series("", index=frame.index)


def _codes(column) -> dict:
    """A column as its distinct values (text, sorted as numbers where they are) and each row's index."""
    codes, values = pd.factorize(column, sort=True, use_na_sentinel=False)
    return {"values": [_text(v) for v in values], "codes": codes.tolist()}


def _text(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value)).lower()
    if isinstance(value, (float, np.floating)):
        return f"{value:.{DIGITS}g}"
    return str(value)


def _numbers(values, digits: int = DIGITS) -> list:
    """Floats to `digits` significant digits, missing values as None (JSON null)."""
    array = np.asarray(pd.to_numeric(pd.Series(values), errors="coerce"), dtype=float)
    return [float(f"{v:.{digits}g}") if math.isfinite(v) else None for v in array]
