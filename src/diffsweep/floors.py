"""The metric's floor on analytic data (docs/statistics.md): what exact sample sets of a run's size
score against the run's reference set, for the distances of metrics.py. A value inside the floor's
range is indistinguishable from exact sampling at that sample count.

- `needed`       the floors a grid's generation runs need, one per (dataset, n_samples, metric settings),
                 each under its key (`stats.floor_key`): parse time, torch-free
- `exact_floor`  one metric's floor (`stats.metric_floor` with the run's metric settings)
- `job`          the rule `floor`: every distance's floor of one key, written to results/floors/<key>.json
- `with_floors`  the floor columns `<metric>_floor`, `_floor_low`, `_floor_high` joined onto the
                 generation table on (data_id, n_samples); NaN where no floor applies

torch is imported inside `exact_floor` and `job` only.
"""

from __future__ import annotations

import math
from pathlib import Path

from diffsweep import stats

METRICS = ("sliced_w2", "mmd", "energy_distance")     # the distances of metrics.sample_metrics
FLOOR_SUFFIXES = {"floor": "mean", "floor_low": "low", "floor_high": "high"}    # column suffix -> Floor field


def settings_of(metric_options: dict) -> dict:
    """The metric settings a floor depends on (config `metrics`): part of its key."""
    return {"n_projections": metric_options["n_projections"],
            "mmd_bandwidths": [float(h) for h in metric_options["mmd_bandwidths"]], "repeats": stats.FLOOR_REPEATS}


def needed(grid, metric_options: dict) -> dict[str, dict]:
    """{key: what the floor job takes} for every (analytic dataset, n_samples) of the grid's generation
    runs. The key (`stats.floor_key`) covers the dataset (its id also names the reference set),
    the sample count and the metric settings."""
    from diffsweep import data
    from diffsweep import grid as ds_grid
    from diffsweep.runs import kinds

    settings, floors = settings_of(metric_options), {}
    # distinct (dataset, sample count) first: a 100k-run grid has a handful, hashed once each
    sizes = {(run.model.data.id, run.n_samples): run.model.data for run in grid.of_kind(kinds.GENERATION.name).values()}
    for (data_id, n_samples), spec in sizes.items():
        if data.is_analytic(spec.family):
            key = stats.floor_key(data_id, n_samples, "+".join(METRICS), data_id, **settings)
            floors[key] = {"data": ds_grid.data_dict(spec), "n_samples": n_samples, **settings}
    return dict(sorted(floors.items()))


def exact_floor(dataset, reference, n_samples: int, metric: str, key: str, n_projections: int = 256,
                mmd_bandwidths=(0.25, 0.5, 1.0, 2.0, 4.0), repeats: int = stats.FLOOR_REPEATS,
                cache: dict | None = None) -> stats.Floor:
    """`stats.metric_floor` of one distance of metrics.py: `repeats` exact sets of `n_samples` drawn
    from `dataset` (seeds from 1 000 003, which the data preparation does not use) against
    `reference`. Sliced W2 uses the projections of a seed-0 run (a run draws its own from its seed:
    with hundreds of projections their share of the spread is small). `cache` holds the reference's
    own terms of MMD and energy distance across calls."""
    import torch

    from diffsweep import metrics

    reference = torch.as_tensor(reference).flatten(1).double()
    cache = {} if cache is None else cache
    if metric == "sliced_w2":
        directions = metrics.random_directions(n_projections, reference.shape[1], torch.Generator().manual_seed(0))
        reference_sorted = metrics.projected_sorted(reference, directions)

        def distance(x, _):
            return metrics.sliced_wasserstein2_sorted(metrics.projected_sorted(x, directions), reference_sorted)
    elif metric == "mmd":
        def distance(x, y):
            return metrics.mmd_rbf(x, y, bandwidths=tuple(mmd_bandwidths), cache=cache)
    elif metric == "energy_distance":
        def distance(x, y):
            return metrics.energy_distance(x, y, cache=cache)
    else:
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")

    def draw(n, seed):
        return dataset.sample(n, torch.Generator().manual_seed(seed)).flatten(1).double()
    return stats.metric_floor(draw, distance, n_samples, reference, key, repeats=repeats)


def job(reference_path, output, key: str, spec: dict) -> None:
    """The rule `floor`: every distance's floor for one key, one JSON file."""
    from diffsweep import io
    from diffsweep.runs import source

    data_dir = Path(reference_path).parent        # holds a fitted prior's cached fit
    dataset = source.build_dataset(spec["data"], data_dir)
    reference = io.read_sample_set(reference_path)
    cache: dict = {}
    result = {"key": key, "data_id": spec["data"]["id"], "dataset": spec["data"]["name"],
              "n_samples": spec["n_samples"], "settings": {k: spec[k] for k in ("n_projections", "mmd_bandwidths",
                                                                               "repeats")}}
    for metric in METRICS:
        floor = exact_floor(dataset, reference, spec["n_samples"], metric, key, spec["n_projections"],
                            spec["mmd_bandwidths"], spec["repeats"], cache)
        result[metric] = {"mean": floor.mean, "low": floor.low, "high": floor.high, "sd": floor.sd,
                          "repeats": floor.repeats, "level": floor.level}
    io.write_json(output, result)


def with_floors(generation, floor_paths):
    """The generation table with `<metric>_floor`, `<metric>_floor_low`, `<metric>_floor_high` for each
    distance, from the floor files on (data_id, n_samples): NaN for a run without a floor (a dataset
    that is not analytic), so the columns exist in every table."""
    import pandas as pd

    from diffsweep import io

    columns = [f"{metric}_{suffix}" for metric in METRICS for suffix in FLOOR_SUFFIXES]
    rows = []
    for path in floor_paths:
        record = io.read_json(path)
        try:
            rows.append({"data_id": str(record["data_id"]), "n_samples": int(record["n_samples"]),
                         **{f"{metric}_{suffix}": float(record[metric][field]) for metric in METRICS
                            for suffix, field in FLOOR_SUFFIXES.items()}})
        except (KeyError, TypeError, ValueError) as error:    # a results folder may come from elsewhere
            raise io.unreadable(path, "a floor file (rule floor; delete it to recompute it)", error) from None
    if not rows or generation.empty:
        merged = generation.assign(**{column: math.nan for column in columns})
    else:
        floors = pd.DataFrame(rows).astype({"n_samples": generation["n_samples"].dtype})
        merged = generation.merge(floors, on=["data_id", "n_samples"], how="left")
    merged[columns] = merged[columns].astype("float64")
    merged.attrs = dict(generation.attrs)     # a merge drops them
    return merged
