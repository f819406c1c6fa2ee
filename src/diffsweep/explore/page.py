"""The explorer page: one self-contained HTML file. Plotly's JavaScript (plotly.js, as the plotly
Python package bundles it) and the page's own script (explore.js, next to this module) are inlined,
the data is one JSON block, the thumbnails are data: URIs and the ablation tables are embedded as
they were rendered (iframes with srcdoc): nothing is fetched when the page is viewed."""

from __future__ import annotations

import html
import json
import logging
from pathlib import Path

from diffsweep import io, runs, stats
from diffsweep.explore import points, thumbnails
from diffsweep.runs import kinds

log = logging.getLogger("diffsweep")

# Thumbnails embedded per page, every table together (each about 1-4 kB): per score source and preset,
# the point of largest NFE, then the point best by the first metric, until this many.
MAX_THUMBNAILS = 400
THUMBNAIL_BYTES = 2_000_000     # and at most this many bytes of them (data: URIs), every table together
SCRIPT = Path(__file__).with_name("explore.js")

TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>diffsweep explorer: {title}</title>
<style>
body {{ font-family: sans-serif; margin: 12px; font-size: 14px; }}
#controls label {{ margin-right: 10px; white-space: nowrap; display: inline-block; margin-bottom: 4px; }}
#main {{ display: flex; gap: 12px; }} #plot {{ flex: 1 1 auto; min-width: 600px; height: 560px; }}
#detail {{ flex: 0 0 340px; max-height: 560px; overflow: auto; font-size: 12px; }}
#detail img {{ image-rendering: pixelated; border: 1px solid #ccc; }}
table.kv td, table.compare td, table.compare th {{ padding: 1px 6px; border-bottom: 1px solid #eee; }}
.note {{ color: #555; font-size: 12px; }} iframe {{ width: 100%; height: 320px; border: 1px solid #ddd; }}
</style>
<script>{plotly}</script>
</head><body>
<h2>diffsweep explorer</h2>
<p class="note">{summary}</p>
<div id="controls"></div>
<p class="note" id="shown"></p>
<div id="main"><div id="plot"></div><div id="detail"><p class="note">Hover a point for its parameters; click
it for its samples and its row.</p></div></div>
<h3>Compare two points</h3>
<p class="note">Click a point, then "set as A" or "set as B": the paired differences A - B over the
replicates they share, with a {level:.0%} t interval (one shared replicate: the runs' sampling
intervals combined as independent, where the table has them). An interval that excludes 0 is a
difference at the {alpha:.0%} level (two-sided paired t test).</p>
<div id="compare"></div>
<h3>Ablation tables</h3>
{ablations}
<script type="application/json" id="explore-data">{data}</script>
<script>{script}</script>
</body></html>
"""


def build(tables: dict, results, ablation_files=(), directions: dict | None = None,
          level: float = stats.DEFAULT_LEVEL, first_metrics=(), max_thumbnails: int = MAX_THUMBNAILS) -> str:
    """The page's HTML from `tables` (kind name -> its table of runs), the runs' stored samples under
    `results` and the declared ablation tables' HTML files; `first_metrics` (the plotted ones) are
    offered first."""
    from plotly.offline import get_plotlyjs
    from scipy.stats import t as t_dist

    tables = {name: frame for name, frame in tables.items() if len(frame)}
    views = [points.view(frame, kinds.get(name), directions, level, first_metrics) for name, frame in tables.items()]
    states = runs.index(results, only={run for v in views for run in v["runs"]["run_id"]}) if views else {}
    budget, byte_budget = max_thumbnails, THUMBNAIL_BYTES
    for v, frame in zip(views, tables.values()):
        v["thumbnails"] = _thumbnails(v, frame, results, states, budget, byte_budget)
        budget -= len(v["thumbnails"])
        byte_budget -= sum(len(t["uri"]) for t in v["thumbnails"].values())
    most = max([max(v["points"]["n"], default=1) for v in views], default=1)
    data = {"views": views, "level": level,
            # t quantiles of the paired intervals, by degrees of freedom (index 0 unused)
            "t_quantile": [None, *[float(t_dist.ppf((1 + level) / 2, df)) for df in range(1, max(2, most))]],
            "z": float(t_dist.ppf((1 + level) / 2, 10**9))}
    summary = "; ".join(f"{v['kind']}: {v['n_rows']} rows, {v['n_points']} points (a preset with every "
                        f"parameter set; {' and '.join(c + 's' for c in v['replicates'])} pooled)" for v in views) or "no runs"
    return TEMPLATE.format(
        title=html.escape(str(results)), summary=html.escape(summary), level=level, alpha=1 - level,
        plotly=get_plotlyjs(), script=SCRIPT.read_text(),
        data=json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/"),
        ablations=_ablations(ablation_files))


def write(out, tables: dict, results, ablation_files=(), directions: dict | None = None,
          level: float = stats.DEFAULT_LEVEL, first_metrics=()) -> int:
    """Build the page and write it atomically to `out`; returns its size in bytes."""
    text = build(tables, results, ablation_files, directions, level, first_metrics)
    with io.atomic_path(out) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return len(text.encode("utf-8"))


def _thumbnails(v: dict, frame, results, states: dict, budget: int, byte_budget: int) -> dict:
    """Point index (as text) -> {run, uri}: the points chosen, at most `budget` of them and
    `byte_budget` bytes, each shown by its first replicate's run (lowest seed)."""
    chosen = _chosen_points(v)[:max(0, budget)]
    data_of_run = dict(zip(frame["run_id"], frame["data_id"])) if "data_id" in frame else {}
    found, unrecorded, spent = {}, 0, 0
    for point in chosen:
        run_id = v["runs"]["run_id"][v["points"]["first"][point]]
        if run_id not in states:     # a table whose results folder is elsewhere, or whose records went
            unrecorded += 1
            continue
        uri = thumbnails.thumbnail(results, run_id, data_of_run.get(run_id), states)
        if uri and spent + len(uri) <= byte_budget:
            found[str(point)] = {"run": run_id, "uri": uri}
            spent += len(uri)
    if unrecorded:
        log.warning("explorer: %d of the %s runs chosen for thumbnails have no record under %s: no thumbnails of them",
                    unrecorded, v["kind"], results)
    return found


def _chosen_points(v: dict) -> list[int]:
    """Points with a finished replicate: per score source and preset, the one of largest NFE, then the
    one best by the first metric."""
    p = v["points"]
    preset = v["filters"].get(v["preset"], {"codes": [0] * v["n_points"]})["codes"]
    groups: dict = {}
    for i in range(v["n_points"]):
        if p["n"][i]:
            groups.setdefault((p["source"]["codes"][i], preset[i]), []).append(i)
    nfe = p["cost"].get("nfe", [None] * v["n_points"])
    largest = [max(members, key=lambda i: (nfe[i] or 0, -i)) for members in groups.values()]
    best = []
    if v["metrics"]:
        metric = v["metrics"][0]
        sign = 1 if v["directions"][metric] == "lower" else -1
        mean = p["metric"][metric]["mean"]
        for members in groups.values():
            scored = [i for i in members if mean[i] is not None]
            if scored:
                best.append(min(scored, key=lambda i: sign * mean[i]))
    return list(dict.fromkeys([*largest, *best]))


def _ablations(files) -> str:
    """Each declared ablation table as rendered (its HTML file), in an iframe of its own."""
    parts = []
    for path in sorted(files, key=str):
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as error:
            log.warning("explorer: ablation table %s left out: %s", path, error)
            continue
        name = html.escape(Path(path).stem)
        parts.append(f"<details open><summary>{name}</summary><iframe title='{name}' "
                     f"srcdoc=\"{html.escape(text, quote=True)}\"></iframe></details>")
    return "\n".join(parts) or "<p class='note'>No ablation tables are declared (tables.ablations).</p>"
