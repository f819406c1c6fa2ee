"""Where the error comes from (docs/studies.md): each trained network's error at a sampler
configuration split into the oracle's at the same configuration and seed (discretisation) and the
rest (score error), and the direct distance between the network's samples and the oracle's.

- `job_arguments`  what the job takes from the config (parse time)
- `drawn`          only a grid with a trained network has anything to split
- `table`          the split, seeds paired and averaged
- `figure`         each network's error against steps beside the oracle's
- `job`            the rule's body: the table with the score distance (read from the runs' stored
                   samples), CSV and figure

Imported at parse time: pandas, torch and matplotlib are imported inside the functions that need them.
"""

from __future__ import annotations

import logging

from diffsweep.studies import ORACLE_SOURCE, STUDIES, Study
from diffsweep.tables import TableError, direction, distinguishing, param_columns, records

log = logging.getLogger("diffsweep")


def job_arguments(config: dict, grid, options: dict) -> dict:
    """The job's settings: the results folder (the runs' stored samples), the projections of the
    metric, and which end of the metric is better (the figure picks the best in a large sweep)."""
    return {"results": config["results"], "n_projections": config["metrics"]["n_projections"],
            "better": direction(options["metric"], config["tables"]["better"], default="lower")}


def drawn(grid) -> bool:
    """A trained network to compare with the oracle."""
    return bool(grid.trained_models())


def model_columns(parameter_columns) -> list[str]:
    """The parameter columns that describe the score source: `model` and the model's own
    (`model_*`, the manifest's owner prefix); every other parameter describes the run."""
    return [c for c in parameter_columns if c == "model" or c.startswith("model_")]


def table(generation, metric: str = "sliced_w2", distance=None):
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

    parameter_columns = param_columns(generation)
    if metric not in generation.columns:
        raise TableError(f"studies.error_sources: the table has no column '{metric}'")
    for needed in ("model", "model_source"):
        if needed not in generation.columns:
            raise TableError(f"studies.error_sources: the table has no column '{needed}'")
    done = generation[generation["status"] == "ok"] if "status" in generation.columns else generation
    done = done[pd.to_numeric(done[metric], errors="coerce").notna()]
    owned = set(model_columns(parameter_columns))
    keys = [c for c in parameter_columns if c not in owned and c in done.columns]
    oracle = done[done["model_source"] == ORACLE_SOURCE]
    trained = done[done["model_source"] != ORACLE_SOURCE]
    if oracle.duplicated(keys).any():
        raise TableError("studies.error_sources: several oracle runs share every parameter but the model (two oracle "
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


def figure(sources, out, better: str = "lower") -> None:
    """The study's figure (of `table`): each network's total error
    against steps (a colour per network) and the oracle's at the same sampler and steps
    (discretisation, black dashed); the gap is the score error. A row per dataset, a column
    per sampler configuration (six to a row). Bounded for large sweeps: at most style.MAX_SERIES - 1
    networks (the legend, with the oracle, at most style.MAX_SERIES entries), those with the best mean
    error at their configurations' largest steps, and at most style.MAX_PANELS configurations per
    dataset, those where these networks' mean error at the configuration's largest steps is
    best (`better`: the metric's direction, lower or higher); the title and the log say how many
    were left out."""
    import itertools
    import math

    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from diffsweep.plots import style

    style.theme()
    if sources.empty:
        style.placeholder(out, "no trained network with a matching oracle run")
        return
    metric = sources.attrs.get("metric", "metric")
    settings = [c for c in sources.attrs.get("settings", ["dataset", "sampler", "steps"]) if c in sources.columns]
    within = [c for c in settings if c not in ("dataset", "sampler", "steps")]
    configuration = sources["sampler"].astype(str)
    if within:
        def knob_text(row) -> str:      # " (steps_per_level=10)"; nothing where the knobs do not apply
            parts = [f"{c.removeprefix('knob_')}={style.short(row[c])}" for c in within if not pd.isna(row[c])]
            return f" ({', '.join(parts)})" if parts else ""
        configuration = configuration + sources[within].apply(knob_text, axis=1)
    data = sources.assign(configuration=configuration)
    n_models, n_configurations = data["model"].nunique(), len(data[["dataset", "configuration"]].drop_duplicates())

    def at_largest_steps(frame):
        return frame[frame["steps"] == frame.groupby(["dataset", "configuration"])["steps"].transform("max")]
    models = style.pick(at_largest_steps(data).groupby("model", observed=True)["total"].mean(), style.MAX_SERIES - 1,
                        better)
    data = data[data["model"].isin(models)]
    last = at_largest_steps(data)
    datasets = sorted(data["dataset"].unique())
    columns = {dataset: style.pick(last[last["dataset"] == dataset].groupby("configuration", observed=True)["total"]
                                   .mean(), style.MAX_PANELS, better) for dataset in datasets}
    note = style.left_out({"networks": (len(models), n_models),
                      "configurations": (sum(map(len, columns.values())), n_configurations)},
                     f"the best by mean {metric} at their largest steps")
    wrap = min(6, max(map(len, columns.values())))    # a dataset's panels, six to a row
    rows = {dataset: math.ceil(len(columns[dataset]) / wrap) for dataset in datasets}
    first_row = dict(zip(datasets, itertools.accumulate([0, *rows.values()])))
    fig, axes = plt.subplots(sum(rows.values()), wrap, squeeze=False,
                             figsize=(3.2 * wrap, 2.8 * sum(rows.values())))
    colours = dict(zip(models, sns.color_palette("colorblind" if len(models) <= 10 else "husl", len(models))))
    for dataset in datasets:
        top = first_row[dataset]
        for ax in axes[top:top + rows[dataset]].flat[len(columns[dataset]):]:
            ax.set_axis_off()
        for j, config in enumerate(columns[dataset]):
            ax = axes[top + j // wrap, j % wrap]
            panel = data[(data["dataset"] == dataset) & (data["configuration"] == config)].sort_values("steps")
            for model, lines in panel.groupby("model"):
                ax.plot(lines["steps"], lines["total"], marker="o", color=colours[model], label=f"{model} (total)")
            oracle = panel.drop_duplicates("steps")
            ax.plot(oracle["steps"], oracle["discretisation"], "k--", marker="x", label="oracle (discretisation)")
            style.log_axes(ax, x=bool((panel["steps"] > 0).all()) and panel["steps"].nunique() > 1,
                      y=bool((panel[["total", "discretisation"]] > 0).all().all()))
            if panel["steps"].nunique() == 1:      # one K: its tick alone, not a fractional axis around it
                ax.set_xticks(panel["steps"].unique())
            ax.set_title(f"{dataset} / {config}", fontsize=8)
            ax.set(xlabel=style.axis_label("steps"), ylabel=metric if j % wrap == 0 else "")
    handles = {label: handle for ax in axes.flat for handle, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), loc="upper left", bbox_to_anchor=(1.0, 0.95))
    if note:
        fig.suptitle(note, fontsize=9)
    fig.tight_layout()
    style.save(fig, out)


def job(inputs: dict, outputs: dict, options: dict, results: str, n_projections: int, better: str) -> None:
    """The rule's body: the table, with `score_distance` (sliced W2 between each network run's
    stored samples and its oracle run's, on the projections a run's own metric draws for its seed)
    where the metric is sliced_w2 and `score_distance` is not switched off; CSV and figure."""
    import functools
    import math

    import torch

    from diffsweep import io, metrics, runs

    generation = io.read_parquet(inputs["table"])
    states = runs.index(results, only=set(generation["run_id"]))     # the records of this table's runs, read once

    @functools.lru_cache(maxsize=64)
    def directions(seed: int, dim: int):
        """The projections a run's own sliced W2 draws for its seed."""
        return metrics.random_directions(n_projections, dim, torch.Generator().manual_seed(seed))

    def projections(run_id: str, seed: int):
        """A run's stored samples projected on its seed's directions, sorted."""
        x = torch.from_numpy(runs.read_run_arrays(results, run_id, states=states)["x"]).flatten(1).double()
        return metrics.projected_sorted(x, directions(seed, x.shape[1]))

    # An oracle run is paired with every network's run of its configuration: its projections are kept.
    oracle_projections = functools.lru_cache(maxsize=64)(projections)

    def samples_distance(network_run: str, oracle_run: str, seed: int) -> float:
        """Sliced W2 between the two runs' stored samples; NaN (with a warning) where either run
        kept no samples or they are corrupt."""
        try:
            oracle, network = oracle_projections(oracle_run, int(seed)), projections(network_run, int(seed))
        except (runs.CorruptRecord, runs.NoSamples) as error:
            log.warning("score distance of %s against %s left out: %s", network_run, oracle_run, error)
            return math.nan
        return metrics.sliced_wasserstein2_sorted(network, oracle)

    measure = options["metric"] == "sliced_w2" and options.get("score_distance", True)
    sources = table(generation, options["metric"], distance=samples_distance if measure else None)
    with io.atomic_path(outputs["csv"]) as tmp:
        sources.to_csv(tmp, index=False, float_format="%.5g")
    figure(sources, [outputs["png"], outputs["pdf"]], better=better)


STUDIES.add(Study(name="error_sources", description="each trained network's error split into discretisation "
                  "(the oracle's) and score error", title="Where the error comes from", job=job, job_arguments=job_arguments,
                  drawn=drawn))
