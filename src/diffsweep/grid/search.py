"""Adaptive sweeps: successive halving over sampler presets (the config's `search:` section,
docs/search.md).

A search names candidates (the preset points of its sampler presets, or, where it declares
`ranges`, each preset point at `points` quasi-random settings of those knobs), a metric and its
direction, a budget axis (`n_samples`, `seeds` or `steps`) and the budget of each rung. Rung 0
runs every candidate at the first budget; after each rung the cut (`cut`) keeps the best
fraction `keep` and every candidate statistically tied with the leader (stats.compare_column,
paired over the seeds), at most `cap`; rung r runs the survivors of rung r-1 at its budget. The
last rung is the final full evaluation. Each rung's decision is a file,
results/search/<name>/rung<r>.json, written by the workflow's checkpoint `search_cut`: the grid
holds the runs of rung 0 and of every rung whose predecessor's file exists (`expand`), so a
rung's runs are ordinary generation runs (ids, records, tables) that an exhaustive sweep with
the same settings shares, and a killed search resumes from its files and records.

Torch-free and light: the Snakefile builds the grid at parse time. numpy and scipy (stats, the
quasi-random design) are imported by the functions that need them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from diffsweep.grid.resolve import resolve_preset
from diffsweep.grid.specs import ModelSpec, RunSpec, short_hash
from diffsweep.grid.expand import add_run, expand_axes

BUDGET_AXES = ("n_samples", "seeds", "steps")
FOLDER = "search"


@dataclass(frozen=True)
class Search:
    name: str
    samplers: tuple       # the sampler presets searched
    models: tuple         # score source names searched ((): every score source of those presets)
    metric: str
    better: str           # lower, higher
    budget: str           # n_samples, seeds, steps
    rungs: tuple          # the budget of each rung, increasing; the last is the final full evaluation
    keep: float           # fraction of a rung's candidates kept (at least one)
    cap: int              # most survivors of a rung, ties included
    seeds: tuple          # the seeds of every rung (budget seeds: the first rungs[r] of them)
    level: float
    test: str
    ranges: dict          # knob -> [low, high]: continuous knobs set by a quasi-random design
    points: int           # design points per preset point (with ranges)
    design_seed: int

    @property
    def last(self) -> int:
        return len(self.rungs) - 1


def declared(config: dict) -> dict[str, Search]:
    """The searches of a validated config, checked against its sampler presets; one line naming the
    key for each problem (ValueError)."""
    searches = {}
    for name, entry in config.get("search", {}).items():
        where = f"search.{name}."
        if not entry["samplers"]:
            raise ValueError(f"{where}samplers: name at least one sampler preset to search; allowed: "
                             f"{', '.join(sorted(config['samplers']))}")
        for preset in entry["samplers"]:
            if preset not in config["samplers"]:
                raise ValueError(f"{where}samplers: unknown sampler preset '{preset}'; allowed: "
                                 f"{', '.join(sorted(config['samplers']))}")
        for model in entry["models"]:
            if model not in config["models"]:
                raise ValueError(f"{where}models: unknown model '{model}'; allowed: {', '.join(sorted(config['models']))}")
        rungs = tuple(entry["rungs"])
        if any(later <= earlier for earlier, later in zip(rungs, rungs[1:])):
            raise ValueError(f"{where}rungs: budgets must increase from rung to rung, got {list(rungs)}")
        seeds = tuple(entry["seeds"] if entry["seeds"] is not None else config["seeds"])
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"{where}seeds: a seed is listed twice: {list(seeds)}")
        if entry["budget"] == "seeds":
            if rungs[0] < 2 or rungs[-1] > len(seeds):
                raise ValueError(f"{where}rungs: with budget seeds each rung takes the first k of search seeds "
                                 f"({len(seeds)}); rungs must lie in 2..{len(seeds)}, got {list(rungs)}")
        elif len(seeds) < 2:
            raise ValueError(f"{where}seeds: a cut pairs candidates over seeds and needs at least 2, got {list(seeds)}")
        for preset in entry["samplers"]:
            swept = config["samplers"][preset].get(entry["budget"]) if entry["budget"] != "seeds" else None
            if isinstance(swept, list):
                raise ValueError(f"samplers.{preset}.{entry['budget']}: the search '{name}' sets it per rung "
                                 f"(its budget); give one value, or none")
        for knob, bounds in entry["ranges"].items():
            if not bounds[0] < bounds[1]:
                raise ValueError(f"{where}ranges.{knob}: expected [low, high] with low < high, got {bounds}")
        if entry["ranges"] and entry["points"] < 1:
            raise ValueError(f"{where}points: ranges need at least one design point")
        searches[name] = Search(name, tuple(entry["samplers"]), tuple(entry["models"]), entry["metric"], entry["better"],
                                entry["budget"], rungs, float(entry["keep"]), int(entry["cap"]), seeds,
                                float(entry["level"]), entry["test"], dict(entry["ranges"]), int(entry["points"]),
                                int(entry["design_seed"]))
    return searches


def design(search: Search) -> list[dict]:
    """The search's settings of its `ranges` knobs: `points` points of a scrambled Sobol sequence
    (scipy.stats.qmc, seeded by `design_seed`) scaled to the ranges; [{}] without ranges. Values
    are rounded to 6 significant digits, so a run's id does not hang on the last bit of a float."""
    if not search.ranges:
        return [{}]
    from scipy.stats import qmc

    knobs = sorted(search.ranges)
    unit = qmc.Sobol(d=len(knobs), scramble=True, seed=search.design_seed).random(search.points)
    low = [search.ranges[k][0] for k in knobs]
    high = [search.ranges[k][1] for k in knobs]
    scaled = qmc.scale(unit, low, high)
    return [{knob: float(f"{value:.6g}") for knob, value in zip(knobs, row)} for row in scaled.tolist()]


def candidates(search: Search, config: dict) -> dict[str, tuple[str, dict]]:
    """Candidate id -> (preset name, resolved preset point): every point of the searched presets,
    at each design point. A candidate id is `<preset>-<hash of its point>` (stable across reruns)."""
    settings = design(search)
    found = {}
    for preset in search.samplers:
        entry = config["samplers"][preset]
        for point in expand_axes(entry):
            for knobs in settings:
                point_here = {**point, "knobs": {**point["knobs"], **knobs}} if knobs else point
                if search.budget == "steps":
                    point_here = {**point_here, "steps": 1}   # set per rung; 1 resolves for every schedule
                template = resolve_preset(point_here, where=f"samplers.{preset}.")
                found[f"{preset}-{short_hash([preset, template])}"] = (preset, template)
    return found


def rung_runs(search: Search, config: dict, models: dict[str, ModelSpec], rung: int, survivors: dict | None,
              kind) -> list[tuple[str, RunSpec]]:
    """The runs of a rung as (candidate id, run): each candidate (rung 0) or each survivor of the
    previous rung (`survivors`: model id -> candidate ids) at the rung's budget, for every searched
    score source among `models` and every seed of the rung."""
    budget = search.rungs[rung]
    points = candidates(search, config)
    found = []
    for model in models.values():
        if search.models and model.name not in search.models:
            continue
        for candidate, (preset, template) in points.items():
            entry = config["samplers"][preset]
            if entry.get("datasets") and model.data.name not in entry["datasets"]:
                continue
            if entry.get("models") and model.name not in entry["models"]:
                continue
            if survivors is not None and candidate not in survivors.get(model.id, ()):
                continue
            for seed, fields in _budgeted(search, budget, template, entry, config):
                found.append((candidate, _run(dict(kind=kind.name, model=model, preset=preset, seed=seed, **fields))))
    return found


def _budgeted(search: Search, budget: int, template: dict, entry: dict, config: dict):
    """(seed, RunSpec fields but kind, model, preset, seed) of a candidate at a budget."""
    n_samples = entry.get("n_samples") or config["sampling"]["n_samples"]
    seeds = search.seeds
    if search.budget == "seeds":
        seeds = search.seeds[:budget]
    elif search.budget == "n_samples":
        n_samples = budget
    else:
        template = {**template, "steps": budget}
    return [(seed, {"n_samples": n_samples, **template}) for seed in seeds]


def _run(fields: dict) -> RunSpec:
    runs = {}
    add_run(runs, fields, where="search")
    return next(iter(runs.values()))


def group_of(search: Search, rung: int) -> str:
    """The shard group of a rung's runs (grid.pack): packed apart from the rest of the grid."""
    return f"search-{search.name}-r{rung}"


def rung_path(results, name: str, rung: int) -> Path:
    return Path(results) / FOLDER / name / f"rung{rung}.json"


def read_rung(results, name: str, rung: int) -> dict | None:
    """A rung's decision file (model id -> {survivors: [...], ...}), None if the rung is not cut yet.
    A file that does not parse raises ValueError naming it (a user edited or truncated it)."""
    path = rung_path(results, name, rung)
    if not path.exists():
        return None
    try:
        decision = json.loads(path.read_text())
        groups = decision["groups"]
        if not all(isinstance(group.get("survivors"), list) for group in groups.values()):
            raise KeyError("survivors")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: not a search rung file ({type(error).__name__}: {error}); delete it to cut the "
                         "rung again") from None
    return decision


def survivors_of(decision: dict) -> dict[str, list[str]]:
    return {model_id: group["survivors"] for model_id, group in decision["groups"].items()}


def settings(search: Search, config: dict) -> dict:
    """What a cut depends on besides its runs' records: the search's keys and its candidates. A rung
    file made under other settings is not current: the grid plans nothing from it, and the
    checkpoint's params (rerun trigger `params`) cut the rung again."""
    fields = {key: value for key, value in search.__dict__.items() if key != "name"}
    return json.loads(json.dumps({**fields, "candidates": short_hash(sorted(candidates(search, config)))}))


def decided(results, search: Search, config: dict) -> int:
    """How many rungs of a search are cut: their files exist, in order, made under the current settings."""
    current = settings(search, config)
    rung = 0
    while rung <= search.last:
        decision = read_rung(results, search.name, rung)
        if decision is None or decision.get("settings") != current:
            break
        rung += 1
    return rung


def expand(config: dict, models: dict[str, ModelSpec], kind) -> tuple[dict[str, RunSpec], dict[str, str]]:
    """The runs every search has planned: rung 0, and each rung whose predecessor is cut (its file
    in the results folder, made under the current settings); and the group of each
    (`search-<name>-r<rung>`), which packs them into shards of their own so that a cut never moves
    the shards of the rest of the grid."""
    runs, groups = {}, {}
    for search in declared(config).values():
        for rung in range(min(decided(config["results"], search, config), search.last) + 1):
            previous = read_rung(config["results"], search.name, rung - 1) if rung else None
            for _, run in rung_runs(search, config, models, rung, previous and survivors_of(previous), kind):
                if run.id not in runs:
                    runs[run.id] = run
                    groups[run.id] = group_of(search, rung)
    return runs, groups


# --- the cut -------------------------------------------------------------------------------------

def cut(values: dict[str, dict], better: str, keep: float, cap: int, level: float, test: str = "t"):
    """Which candidates go on: the best ceil(keep * n) by mean, then every other candidate that
    stats.compare_column finds tied with the leader (paired `test` over shared seeds, Holm-corrected,
    at `level`), best mean first, at most max(cap, ceil(keep * n)) in all. `values`: candidate ->
    {seed: metric}; a candidate without values (its runs failed or diverged) is out.
    Returns (survivors, comparison: candidate -> {mean, low, high, n, status, p})."""
    from diffsweep import stats

    present = {name: seeds for name, seeds in values.items() if seeds}
    if not present:
        return [], {}
    comparison = stats.compare_column(present, better=better, level=level, test=test)
    sign = 1 if better == "lower" else -1
    order = sorted(present, key=lambda name: (sign * comparison.cells[name].interval.estimate, name))
    kept = max(1, math.ceil(keep * len(order)))
    tied = [name for name in order[kept:] if comparison.cells[name].status in (stats.BEST, stats.TIED)]
    survivors = (order[:kept] + tied)[:max(cap, kept)]
    table = {name: {"mean": cell.interval.estimate, "low": cell.interval.low, "high": cell.interval.high,
                    "n": cell.interval.n, "status": cell.status, "p": cell.p_adjusted}
             for name, cell in comparison.cells.items()}
    return survivors, table


def decide(search: Search, rung: int, planned: list[tuple[str, RunSpec]], states: dict, current: dict) -> dict:
    """A rung's decision file: per score source, each candidate's values over the seeds (runs `ok`
    with a finite metric; the others are listed under `out` with their status), the cut's
    comparison and its survivors; the last rung keeps the leader and the candidates tied with it
    (at most `cap`). `states`: run id -> runs.State of the planned runs; `current`: the search's
    `settings`, stored with the decision. `cost` counts the rung's network evaluations of samples
    (nfe x n_samples of each run with a record)."""
    groups: dict[str, dict] = {}
    for candidate, run in planned:
        group = groups.setdefault(run.model.id, {"source": f"{run.model.name} on {run.model.data.name} ({run.model.id})",
                                                 "values": {}, "out": {}, "cost": 0, "runs": 0})
        group["runs"] += 1
        state = states.get(run.id)
        record = state.record if state is not None else None
        if record is not None:
            group["cost"] += int(record.get("nfe") or 0) * run.n_samples
        value = (record or {}).get("metrics", {}).get(search.metric)
        values = group["values"].setdefault(candidate, {})
        if state is None or state.status != "ok" or not isinstance(value, (int, float)) or not math.isfinite(value):
            group["out"][candidate] = state.status if state is not None else "missing"
            continue
        values[str(run.seed)] = float(value)
    decision = {"search": search.name, "rung": rung, "budget": search.rungs[rung], "axis": search.budget,
                "final": rung == search.last, "metric": search.metric, "better": search.better, "settings": current,
                "groups": {}}
    for model_id, group in sorted(groups.items()):
        values = {name: seeds for name, seeds in group["values"].items() if name not in group["out"]}
        keep = search.keep if rung < search.last else 1e-12     # the final rung keeps the leader and its ties
        survivors, table = cut(values, search.better, keep, search.cap, search.level, search.test)
        if rung == search.last:
            survivors = [name for name in survivors if table[name]["status"] in ("best", "tied")]
        decision["groups"][model_id] = {"source": group["source"], "candidates": len(group["values"]),
                                        "runs": group["runs"], "cost": group["cost"],
                                        "values": values, "out": group["out"], "comparison": table,
                                        "survivors": survivors}
    return decision


def progress(config: dict, grid, done) -> list[dict]:
    """Where each search stands (`diffsweep status`): the rungs cut, the rung running, its runs done
    and left (`done`: the done run ids), the candidates each cut kept, and the final answer."""
    found = []
    for search in declared(config).values():
        cut_rungs = decided(config["results"], search, config)
        rung = min(cut_rungs, search.last)
        group = group_of(search, rung)
        runs = [run_id for run_id, name in grid.groups.items() if name == group]
        kept = []
        for r in range(cut_rungs):
            groups = read_rung(config["results"], search.name, r)["groups"]
            kept.append(sum(len(g["survivors"]) for g in groups.values()))
        found.append({"search": search.name, "rungs": len(search.rungs), "cut": cut_rungs, "rung": rung,
                      "budget": f"{search.budget} {search.rungs[rung]}", "runs": len(runs),
                      "done": sum(run_id in done for run_id in runs), "kept": kept,
                      "finished": cut_rungs > search.last})
    return found


# --- what a search found ---------------------------------------------------------------------------

TABLE_COLUMNS = ("model_id", "candidate", "preset", "point", "rung", "budget", "mean", "low", "high", "n",
                 "status", "survivor")


def survivors_table(decisions: list[dict], search: Search, config: dict) -> list[dict]:
    """One row per candidate and score source: the last rung it ran in, its mean [interval] there, the
    cut's status, and whether it survived the final rung; survivors first, then by rung reached."""
    points = candidates(search, config)
    shown = _point_texts(search, points)
    last_seen: dict[tuple, tuple] = {}
    for decision in decisions:
        for model_id, group in decision["groups"].items():
            for name, cell in group["comparison"].items():
                last_seen[(model_id, name)] = (decision, cell)
            for name, status in group["out"].items():
                last_seen[(model_id, name)] = (decision, {"mean": None, "low": None, "high": None, "n": 0,
                                                         "status": status})
    final = decisions[-1]
    rows = []
    for (model_id, name), (decision, cell) in last_seen.items():
        preset = points[name][0] if name in points else "?"
        survivor = bool(final["final"]) and name in final["groups"].get(model_id, {}).get("survivors", [])
        rows.append({"model_id": model_id, "candidate": name, "preset": preset, "point": shown.get(name, "?"),
                     "rung": decision["rung"],
                     "budget": decision["budget"], "mean": cell["mean"], "low": cell["low"], "high": cell["high"],
                     "n": cell["n"], "status": cell["status"], "survivor": survivor})
    sign = 1 if search.better == "lower" else -1
    rows.sort(key=lambda r: (r["model_id"], not r["survivor"], -r["rung"],
                             sign * r["mean"] if r["mean"] is not None else float("inf"), r["candidate"]))
    return rows


def labels(search: Search, config: dict) -> dict[str, str]:
    """Candidate -> `<preset> <point>` (the rung figure's legend)."""
    points = candidates(search, config)
    return {name: f"{points[name][0]} {text}" for name, text in _point_texts(search, points).items()}


def _point_texts(search: Search, points: dict) -> dict[str, str]:
    """Candidate -> what sets it apart within its preset: its steps (unless steps is the budget) and
    the knobs whose values differ between the preset's candidates, e.g. `steps=30 eps=0.7`."""
    by_preset: dict[str, list] = {}
    for name, (preset, template) in points.items():
        by_preset.setdefault(preset, []).append((name, template))
    texts = {}
    for members in by_preset.values():
        varying = sorted({key for _, t in members for key in t["knobs"]
                          if len({json.dumps(m["knobs"].get(key)) for _, m in members}) > 1})
        for name, template in members:
            parts = [] if search.budget == "steps" else [f"steps={template['steps']}"]
            texts[name] = " ".join(parts + [f"{key}={template['knobs'][key]}" for key in varying])
    return texts


def write_table(path, rows: list[dict]) -> None:
    """The survivors table as CSV, atomically."""
    import csv

    from diffsweep.io import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=TABLE_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
