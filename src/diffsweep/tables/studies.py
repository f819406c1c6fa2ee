"""Tables of the studies (docs/studies.md) that the ablation pivots cannot express.

- `error_sources`  each trained network's error split into discretisation and score error
- `ramp_summary`   the temperature-ramp study's metric per configuration, seeds averaged
- `exact_floor`    the metric between two independent exact sample sets (the best a sampler can do)

pandas and torch are imported by the functions that need them (the Snakefile imports this package).
"""

from diffsweep.tables.options import TableError
from diffsweep.tables.rows import distinguishing, param_columns, records

ORACLE_SOURCE = "oracle"


def model_columns(params) -> list[str]:
    """The parameter columns that describe the score source: `model` and the model's own
    (`model_*`, the manifest's owner prefix); every other parameter describes the run."""
    return [c for c in params if c == "model" or c.startswith("model_")]


def error_sources(table, metric: str = "sliced_w2", distance=None):
    """Each trained network's `metric` at a sampler configuration, split in two:

        total           the network's runs (its samples against exact samples)
        discretisation  the oracle's runs with every other parameter equal, seed included
                        (the same sampler, steps and knobs with the exact score)
        score           total - discretisation: what the learned score adds

    The score part is a difference of distances, not the distance between the two sample sets;
    it is what the table already holds and what shrinks to zero with the network's error (by
    the triangle inequality it is at most that distance for a metric such as sliced W2). With
    `distance(network_run_id, oracle_run_id, seed)` (e.g. sliced W2 between the two runs' stored
    samples; NaN where they cannot be read), `score_distance` is that direct distance between
    the network's samples and the oracle's, averaged over the pairs it could measure.
    Seeds are paired, then averaged (`seeds` counts the pairs). Runs not `ok`, and networks
    whose configuration the oracle did not run, are left out. The table lists its parameter
    columns, so `model` and `model_source` must be among them."""
    import pandas as pd

    params = param_columns(table)
    if metric not in table.columns:
        raise TableError(f"error_sources: the table has no column '{metric}'")
    for needed in ("model", "model_source"):
        if needed not in table.columns:
            raise TableError(f"error_sources: the table has no column '{needed}'")
    done = table[table["status"] == "ok"] if "status" in table.columns else table
    done = done[pd.to_numeric(done[metric], errors="coerce").notna()]
    owned = set(model_columns(params))
    keys = [c for c in params if c not in owned and c in done.columns]
    oracle = done[done["model_source"] == ORACLE_SOURCE]
    trained = done[done["model_source"] != ORACLE_SOURCE]
    if oracle.duplicated(keys).any():
        raise TableError("error_sources: several oracle runs share every parameter but the model (two oracle "
                         "presets?); keep one oracle per dataset")
    ids = ["run_id"] if distance is not None else []
    paired = trained[[*keys, "model", metric, *ids]].merge(
        oracle[[*keys, metric, *ids]].rename(columns={metric: "discretisation"}), on=keys, how="inner",
        validate="many_to_one", suffixes=("", "_oracle"))
    paired = paired.rename(columns={metric: "total"})
    paired["score"] = paired["total"] - paired["discretisation"]
    measured = ["score_distance"] if distance is not None else []
    if distance is not None:     # an oracle's pairs one after the other: a caller may keep its samples
        by_oracle = paired.sort_values(["run_id_oracle", "run_id"])
        paired["score_distance"] = pd.Series(
            [float(distance(run, oracle_run, seed)) for run, oracle_run, seed
             in zip(by_oracle["run_id"], by_oracle["run_id_oracle"], by_oracle["seed"])], index=by_oracle.index)
    # a row: dataset, sampler, steps and whatever else tells configurations apart there (a swept
    # knob); seeds are averaged
    named = [c for c in ("dataset", "sampler", "steps") if c in keys]
    settings = named + distinguishing(records(paired[keys]), named, [c for c in keys if c not in named and c != "seed"])
    grouped = paired.groupby([*settings, "model"], dropna=False, sort=True)
    out = grouped[["total", "discretisation", "score", *measured]].mean().reset_index()   # NaN skipped
    out["seeds"] = grouped.size().to_numpy()
    out["score_share"] = out["score"] / out["total"]
    out.attrs["metric"] = metric
    out.attrs["settings"] = settings
    return out


def ramp_summary(table, metric: str = "sliced_w2", samplers=()):
    """The metric of the temperature-ramp study's runs, mean and standard deviation over seeds,
    per dataset, ramp, T0 and steps (the oracle's runs of the presets `samplers`; all if empty)."""
    done = table[table["status"] == "ok"] if "status" in table.columns else table
    done = done[done["model_source"] == ORACLE_SOURCE]
    if samplers:
        done = done[done["sampler"].isin(list(samplers))]
    keys = ["dataset", "sampler", "knob_ramp", "knob_T0", "steps"]
    missing = [c for c in (*keys, metric) if c not in done.columns]
    if missing:
        raise TableError(f"studies.temperature_ramp: the table has no column {', '.join(missing)}")
    grouped = done.groupby(keys, sort=True)[metric]
    return grouped.agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "seeds"})


def exact_floor(dataset, reference, n_samples: int, seeds, n_projections: int = 256) -> tuple[float, float]:
    """Sliced W2 between fresh exact samples (`n_samples`, one set per seed) and the reference
    set, measured as a run's samples are (same projections per seed): mean and standard
    deviation over seeds. The fresh sets are drawn with seeds the data preparation does not use."""
    import statistics

    import torch

    from diffsweep.metrics import sliced_wasserstein2

    values = []
    for seed in seeds:
        samples = dataset.sample(n_samples, torch.Generator().manual_seed(1_000_003 + seed))
        values.append(sliced_wasserstein2(samples.flatten(1).double(), torch.as_tensor(reference).flatten(1).double(),
                                          n_projections=n_projections, generator=torch.Generator().manual_seed(seed)))
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0
