"""The sampling schedules of a sweep: sigma_k against k for every schedule and step count the
manifest uses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns

from diffsweep.plots import style
from diffsweep.tables import records


def schedule_points(manifest: pd.DataFrame) -> list[dict]:
    """Every (schedule, its parameters, step count) that `manifest` (runs.parquet) uses."""
    knob_columns = [c for c in manifest.columns if c.startswith("schedule_")]
    points, seen = [], set()
    for row in records(manifest[["schedule", "steps", *knob_columns]].drop_duplicates()):
        values = {c.removeprefix("schedule_"): row[c] for c in knob_columns if row[c] is not None}
        key = (row["schedule"], int(row["steps"]), tuple(sorted(values.items())))
        if key not in seen:
            seen.add(key)
            points.append({"schedule": row["schedule"], "steps": int(row["steps"]), "knobs": values})
    return sorted(points, key=lambda p: (p["schedule"], sorted(p["knobs"].items()), p["steps"]))


def schedule_curves(manifest: pd.DataFrame, out) -> None:
    """sigma_k against k (log scale) for every schedule and step count a sweep uses: a panel
    per schedule (and non-default parameters; a panel per schedule with all its knob values in it
    where that would make over style.MAX_SERIES panels), a line per step count (a colour scale beyond
    style.MAX_SERIES step counts)."""
    from diffsweep import noise

    style.theme()
    frames = []
    for point in schedule_points(manifest):
        sigmas = noise.make_schedule(point["schedule"], point["steps"], **schedule_knobs(point))
        defaults = {k: knob.default for k, knob in noise.SCHEDULES[point["schedule"]].knobs.items()}
        changed = {k: v for k, v in point["knobs"].items() if k in defaults and v != defaults[k]}
        title = point["schedule"] + ("".join(f"\n{k}={style.short(v)}" for k, v in sorted(changed.items())))
        frames.append(pd.DataFrame({"k": np.arange(len(sigmas)), "sigma": sigmas, "K": str(point["steps"]),
                                    "schedule": title}))
    if not frames:
        style.placeholder(out, "no sampling schedules in the sweep")
        return
    data = pd.concat(frames, ignore_index=True)
    variants = data["schedule"].nunique() > style.MAX_SERIES    # a sweep over schedule knobs: a panel per schedule
    if variants:
        data = data.assign(variant=data["schedule"],
                           schedule=data["schedule"].str.split("\n").str[0] + "\n(every knob value)")
    n_panels = data["schedule"].nunique()
    steps = sorted(data["K"].unique(), key=int)
    many_steps = len(steps) > style.MAX_SERIES                   # a colour scale with a few values in the legend
    grid = sns.relplot(data=data.assign(K=data["K"].astype(int)) if many_steps else data, x="k", y="sigma", hue="K",
                       hue_order=None if many_steps else steps, col="schedule", kind="line",
                       col_wrap=min(3, n_panels), height=2.8, aspect=1.25,
                       palette="viridis" if many_steps else sns.color_palette("viridis", len(steps)),
                       legend="brief" if many_steps else "auto", units="variant" if variants else None,
                       estimator=None if variants else "mean",
                       facet_kws={"sharex": False, "sharey": False}, marker=".", markersize=4, markeredgewidth=0)
    for ax in grid.axes.flat:
        style.log_axes(ax, y=True)
    grid.set_axis_labels("step k", r"$\sigma_k$")
    grid.set_titles("{col_name}")
    if grid.legend is not None:
        grid.legend.set_title("steps K")
    style.save(grid.figure, out)


def schedule_knobs(point: dict) -> dict:
    """Manifest values in the types the schedule's knobs declare (Parquet makes ints floats)."""
    from diffsweep import noise

    declared = noise.SCHEDULES[point["schedule"]].knobs
    out = {}
    for key, value in point["knobs"].items():
        if key in declared:
            kind = declared[key].type
            out[key] = int(value) if kind == "int" else float(value) if kind == "float" else value
    return out

