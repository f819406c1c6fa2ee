"""The temperature-ramp study (docs/studies.md): the paper's random walk on the exact oracle, its
temperature ramped from T0 to 1 along the level index or along log sigma, against the number of
steps, beside the floor of two independent exact sample sets.

- `check`          the config's study names random-walk presets (parse time)
- `job_arguments`  what the job takes from the config (parse time)
- `table`          the metric per dataset, ramp, T0 and steps, seeds averaged
- `figure`         the metric against steps, a panel per dataset, hue ramp, style T0, the floor drawn
- `job`            the rule's body: table (CSV), floors and figure

Imported at parse time: pandas, torch and matplotlib are imported inside the functions that need them.
"""

from __future__ import annotations

from pathlib import Path

from diffsweep import grid as ds_grid
from diffsweep.studies import ORACLE_SOURCE, STUDIES, Study
from diffsweep.tables import TableError


def check(config: dict, options: dict) -> None:
    """The study draws random-walk presets of the config (their ramp and T0 knobs)."""
    for name in options.get("samplers", []):
        family = config["samplers"].get(name, {}).get("family")
        if family != "random_walk":
            allowed = sorted(n for n, p in config["samplers"].items() if p["family"] == "random_walk")
            raise ValueError(f"studies.temperature_ramp.samplers: '{name}' is not a random_walk preset under "
                             f"samplers; allowed: {', '.join(allowed) or '(none)'}")


def job_arguments(config: dict, grid, options: dict) -> dict:
    """The job's settings: every dataset (each one's floor), the sample count of a run that does
    not state its own, the projections of the metric, the results folder."""
    return {"datasets": [ds_grid.data_dict(spec) for _, spec in sorted(grid.datasets.items())],
            "n_samples": config["sampling"]["n_samples"],
            "n_projections": config["metrics"]["n_projections"], "results": config["results"]}


def inputs(grid, results: str) -> dict:
    """The reference set of every dataset (the floor is measured against it)."""
    return {"references": [f"{results}/data/{spec.id}/reference.npz" for _, spec in sorted(grid.datasets.items())]}


def table(generation, metric: str = "sliced_w2", samplers=()):
    """The metric of the study's runs, mean and standard deviation over seeds, per dataset, ramp,
    T0 and steps (the oracle's runs of the presets `samplers`; all if empty)."""
    done = generation[generation["status"] == "ok"] if "status" in generation.columns else generation
    done = done[done["model_source"] == ORACLE_SOURCE]
    if samplers:
        done = done[done["sampler"].isin(list(samplers))]
    keys = ["dataset", "sampler", "knob_ramp", "knob_T0", "steps"]
    missing = [c for c in (*keys, metric) if c not in done.columns]
    if missing:
        raise TableError(f"studies.temperature_ramp: the table has no column {', '.join(missing)}")
    grouped = done.groupby(keys, sort=True)[metric]
    return grouped.agg(["mean", "std", "count"]).reset_index().rename(columns={"count": "seeds"})


def figure(summary, floors: dict, out, metric: str = "sliced_w2") -> None:
    """The study's figure (of `table`): `metric` against steps, a panel
    per dataset, a colour per ramp, a line style per T0, bars of one standard deviation over
    seeds, and each dataset's exact-sample floor (`floors`: dataset -> value) as a grey line."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns

    from diffsweep.plots import style

    style.theme()
    if summary.empty:
        style.placeholder(out, "no finished runs of the temperature-ramp study")
        return
    data = summary.assign(ramp=summary["knob_ramp"].astype(str), T0=summary["knob_T0"].map(style.short))
    datasets = sorted(data["dataset"].unique())
    fig, axes = plt.subplots(1, len(datasets), figsize=(3.8 * len(datasets), 3.2), squeeze=False)
    for ax, dataset in zip(axes.flat, datasets):
        panel = data[data["dataset"] == dataset]
        sns.lineplot(data=panel, x="steps", y="mean", hue="ramp", style="T0", markers=True, ax=ax,
                     hue_order=sorted(data["ramp"].unique()), style_order=sorted(data["T0"].unique(), key=float))
        for _, line in panel.iterrows():
            ax.errorbar(line["steps"], line["mean"], yerr=0.0 if pd.isna(line["std"]) else line["std"],
                        fmt="none", ecolor="0.4", elinewidth=0.8)
        if dataset in floors:
            ax.axhline(floors[dataset], color="0.5", linestyle=":", label="exact-sample floor")
        style.log_axes(ax, x=True, y=bool((panel["mean"] > 0).all()))
        ax.set(title=dataset, xlabel=style.axis_label("steps"), ylabel=metric if ax is axes.flat[0] else "")
        if ax is not axes.flat[-1]:
            ax.get_legend().remove()
    fig.tight_layout()     # each panel has its own y scale: keep its tick labels off the neighbour
    axes.flat[-1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    style.save(fig, out)


def job(inputs: dict, outputs: dict, options: dict, datasets, n_samples: int, n_projections: int,
        results: str) -> None:
    """The rule's body: the table (CSV) with each dataset's floor (sliced_w2 only) and the figure."""
    from diffsweep import io, stats
    from diffsweep.floors import exact_floor
    from diffsweep.runs import source

    generation = io.read_parquet(inputs["table"])
    summary = table(generation, options["metric"], options["samplers"])
    floors = {}
    if options["metric"] == "sliced_w2":
        # a floor of the runs' own sample size: a preset may draw fewer samples on a costly dataset
        sizes = generation.groupby("dataset")["n_samples"].max() if "n_samples" in generation else {}
        for spec in datasets:
            if spec["name"] not in set(summary["dataset"]):
                continue
            data_dir = Path(results) / "data" / spec["id"]
            reference = io.read_sample_set(data_dir / "reference.npz")
            size = int(sizes.get(spec["name"], n_samples))
            key = stats.floor_key(spec["id"], size, "sliced_w2", spec["id"], n_projections=n_projections,
                                  repeats=stats.FLOOR_REPEATS)
            floors[spec["name"]] = exact_floor(source.build_dataset(spec, data_dir), reference, size, "sliced_w2",
                                               key, n_projections).mean
    summary["floor"] = summary["dataset"].map(floors)
    with io.atomic_path(outputs["csv"]) as tmp:
        summary.to_csv(tmp, index=False, float_format="%.5g")
    figure(summary, floors, [outputs["png"], outputs["pdf"]], options["metric"])


STUDIES.add(Study(name="temperature_ramp", description="the metric against steps per temperature ramp and T0, "
                  "beside the exact-sample floor", title="Temperature ramp", job=job, check=check, job_arguments=job_arguments,
                  inputs=inputs))
