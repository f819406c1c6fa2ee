"""The `diffsweep` command: look at the registries and at the runs a config expands to.

    diffsweep list [KIND] [--config FILE] [--json]
    diffsweep grid --config FILE [--json]
    diffsweep status [--config FILE] [--json]
    diffsweep extract RUN_ID... [--results DIR] [--out DIR]
    diffsweep forget RUN_ID... [--results DIR]
    diffsweep costs [--config FILE] [--benchmarks DIR] [--job-minutes M]
    diffsweep table PARQUET --rows COLS [--cols COLS] --metric COL [--filter COL=V[,V...]]...
                    [--format markdown|latex|csv|html] [--agg mean_ci|mean_pm|mean|median|min|max]
                    [--ci t|percentile|bca] [--test t|wilcoxon|bootstrap] [--level 0.95] [--power]
                    [--better auto|lower|higher|none] [--pool error|best|mean] [--number-format .3g]
    diffsweep diff A B [--metric M]... [--level 0.95] [--test t|wilcoxon|bootstrap] [--all] [--html FILE]
    diffsweep profile install NAME [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


# `diffsweep list <kind>`: the registry of each kind (module, attribute), imported only when
# listed (parametrisations and extractors import torch), and what a config names with it.
KINDS = {
    "samplers": ("diffsweep.samplers", "SAMPLERS", "sampler families: samplers.<preset>.family"),
    "restorers": ("diffsweep.restoration", "RESTORERS", "restorer families: restoration.restorers.<preset>.family"),
    "schedules": ("diffsweep.noise", "SCHEDULES", "sampling schedules: samplers.<preset>.schedule"),
    "training": ("diffsweep.noise", "TRAINING_DISTRIBUTIONS",
                 "training sigma-distributions: models.<model>.train_sigma.name"),
    "weights": ("diffsweep.noise", "LOSS_WEIGHTS", "loss weights w(sigma): models.<model>.weight"),
    "architectures": ("diffsweep.architectures", "ARCHITECTURES",
                      "trained networks: models.<model>.arch, knobs: models.<model>.arch_params"),
    "parametrisations": ("diffsweep.parametrisations", "PARAMETRISATIONS",
                         "what a trained network predicts: models.<model>.parametrisation"),
    "datasets": ("diffsweep.data", "FAMILIES", "dataset families: datasets.<name>.family"),
    "operators": ("diffsweep.restoration", "OPERATORS", "measurement operators: restoration.tasks.<task>.operator"),
    "pretrained": ("diffsweep.pretrained", "FORMATS",
                   "pretrained checkpoint formats: models.<model>.format, knobs: models.<model>.arch_params"),
    "extractors": ("diffsweep.fidelity", "EXTRACTORS", "fidelity feature extractors (fidelity metrics of images)"),
}


def registry_listing(kind: str) -> dict:
    """Every entry of a kind: its description, knobs and the plain-data fields of its kind."""
    import dataclasses
    import importlib

    module, attribute, _ = KINDS[kind]
    listing = {}
    for entry in getattr(importlib.import_module(module), attribute).entries():
        fields = {field.name: getattr(entry, field.name) for field in dataclasses.fields(entry)}
        listing[entry.name] = {
            "description": entry.description,
            **{key: value for key, value in fields.items()
               if key not in ("name", "kind", "description", "knobs") and not callable(value)},
            "knobs": {name: knob.as_dict() for name, knob in entry.knobs.items()}}
    return listing


def _knob_line(name: str, knob: dict) -> str:
    low, high = knob.get("minimum"), knob.get("maximum")
    if low is not None and high is not None:
        bounds = [f"in [{low}, {high}]"]
    else:
        bounds = [f"{sign} {knob[key]}" for key, sign in (("minimum", ">="), ("exclusive_minimum", ">"),
                                                          ("maximum", "<="), ("exclusive_maximum", "<"))
                  if key in knob]
    if "min_items" in knob or "max_items" in knob:   # a list knob: the bounds are its items'
        items = f"{knob.get('min_items', 0)} to {knob['max_items']}" if "max_items" in knob \
            else f"at least {knob.get('min_items', 0)}"
        bounds = [f"{items} items"] + [f"each {bound}" for bound in bounds]
    allowed = "; " + ", ".join(bounds) if bounds else ""
    if "choices" in knob:
        allowed += f"; one of {', '.join(map(str, knob['choices']))}"
    if "formerly" in knob:
        allowed += f"; formerly {knob['formerly']}"
    return f"    {name} ({knob['type']}, default {knob['default']!r}{allowed}): {knob['description']}"


def print_listing(listing: dict) -> None:
    for name, entry in listing.items():
        print(f"{name}: {entry['description']}")
        details = [f"{key}: {value}" for key, value in entry.items() if key not in ("description", "knobs", "module")]
        if not entry["module"].startswith("diffsweep."):
            details.append(f"registered by {entry['module']}")
        if details:
            print("    " + ", ".join(details))
        for knob, spec in entry["knobs"].items():
            print(_knob_line(knob, spec))


def command_list(args) -> int:
    if args.config:
        from diffsweep import config
        from diffsweep.registry import load_plugins
        try:
            plugins = config.read_yaml(args.config).get("plugins", [])
            if not isinstance(plugins, list) or not all(isinstance(entry, str) for entry in plugins):
                raise config.ConfigError(f"plugins: {plugins!r} is not allowed; allowed: a list of strings",
                                         args.config)
            load_plugins(plugins, ".")
        except config.ConfigError as error:
            print(error, file=sys.stderr)
            return 2
        except ValueError as error:   # a plugin that fails to import: one line naming plugins[i]
            print(f"invalid config {args.config}: {error}", file=sys.stderr)
            return 2
    if args.what is None:
        kinds = {kind: description for kind, (_, _, description) in KINDS.items()}
        if args.json:
            print(json.dumps(kinds, indent=2))
        else:
            print("diffsweep list KIND shows the registered names of a kind, with their knobs:")
            for kind, description in kinds.items():
                print(f"  {kind:<17} {description}")
        return 0
    listing = registry_listing(args.what)
    if args.json:
        print(json.dumps(listing, indent=2, default=str))
    else:
        print_listing(listing)
    return 0


def command_grid(args) -> int:
    from diffsweep import config
    from diffsweep.runs import kinds

    try:
        _, grid = config.load(args.config)
    except config.ConfigError as error:   # one line per problem, each naming the file and key
        print(error, file=sys.stderr)
        return 2
    rows = {kind: grid.manifest_rows(kind) for kind in kinds.names()}   # every kind of run
    counts = {kind: len(kind_rows) for kind, kind_rows in rows.items()}
    if args.json:
        print(json.dumps({"runs": [{"kind": kind, **row} for kind, kind_rows in rows.items() for row in kind_rows],
                          "counts": counts, "excluded": grid.excluded}, indent=2, default=str))
        return 0
    print(f"{sum(counts.values())} runs ({', '.join(f'{count} {kind}' for kind, count in counts.items())}), "
          f"{len(grid.models)} score sources ({len(grid.trained_models())} trained), {len(grid.datasets)} datasets")
    for kind, kind_rows in rows.items():
        if kind_rows:
            print(f"{kind} runs ({len(kind_rows)}):")
        family = kinds.get(kind).preset_columns[1]
        for row in kind_rows:
            task = f"{row['task']:<14} " if "task" in row else ""
            print(f"  {row['run_id']:<28} {row['dataset']:<14} {row['model']:<12} {task}{row[family]:<14} "
                  f"{row['schedule']:<14} K={row['steps']}")
    for reason in grid.excluded:
        print(f"  skipped: {reason}")
    return 0


# `diffsweep status`: a run's state is its record's status (ok, diverged, failed), corrupt (a
# record that cannot be trusted, diffsweep.runs.index), pending (no record yet) or, for a done run
# whose code changed since (diffsweep.runs.code), stale (draw) or stale (evaluate).
STALE_DRAW, STALE_EVALUATE = "stale (draw)", "stale (evaluate)"
STATES = ("ok", "diverged", "failed", "corrupt", "pending", STALE_DRAW, STALE_EVALUATE)


def sweep_status(grid, results, config: dict | None = None) -> dict:
    """Counts of run states per preset and per score source, the estimated run time left, and the
    failed runs with their error and log, the runs whose code changed since they were made (by
    preset and score source, with the definitions that changed: `stale`) and those whose records
    do not say (`unknown_code`). Reads every record file once (runs.index)."""
    from diffsweep import grid as ds_grid, runs
    from diffsweep.runs import code
    from diffsweep.grid import search

    all_runs = grid.runs
    states = runs.index(results, keep=["wall_s", *runs.FAILURE_KEYS, *code.CODE_KEYS])
    policy = (config or {}).get("code_changes", runs.RERUN)
    training = code.training_check(results, grid.trained_models(), policy, all_runs, states)
    today = code.Today(all_runs, training.expected)
    stale = code.stale_runs(all_runs, states, today)
    state, wall, failures = {}, {}, []
    for run_id in sorted(set(states) & set(all_runs)):
        status, record, problem = runs.run_state(results, run_id, states)
        state[run_id] = status
        if record and isinstance(record.get("wall_s"), (int, float)):
            wall[run_id] = record["wall_s"]
        if status == runs.FAILED:
            failures.append({"run_id": run_id, "error": record.get("error") or "",
                             "log": runs.log_file(results, record.get("log"))})
        elif status == runs.CORRUPT:
            failures.append({"run_id": run_id, "error": f"corrupt record: {problem}", "log": None})
    if failures and config is not None:   # a record without its log: the shard job's logs
        shard_of = {run_id: shard for shard, ids in grid.shards(ds_grid.runs_per_job(config)).items() for run_id in ids}
        for failure in failures:
            failure["log"] = failure["log"] or str(runs.shard_log(results, shard_of[failure["run_id"]]))
    done = {run_id for run_id, status in state.items() if status in runs.DONE_STATUSES}
    if policy != runs.RERUN:     # kept as they are: nothing left to do for them
        done |= stale.draw | stale.evaluate
    state.update({run_id: STALE_DRAW for run_id in stale.draw})
    state.update({run_id: STALE_EVALUATE for run_id in stale.evaluate})

    def group(key_of) -> dict:
        table = {}
        for run_id, run in all_runs.items():
            counts = table.setdefault(key_of(run), {name: 0 for name in STATES})
            name = state.get(run_id, "pending")
            counts[name] = counts.get(name, 0) + 1
        return dict(sorted(table.items()))

    # run time left: each pending run costs the mean wall time of the done runs of its preset and
    # score source, else of its preset, else of all done runs
    estimates = []   # (key of a run, mean wall time of the done runs by that key), finest first
    for key_of in (lambda r: (r.kind, r.preset, r.model.id), lambda r: (r.kind, r.preset), lambda r: ()):
        sums = {}
        for run_id, seconds in wall.items():
            sums.setdefault(key_of(all_runs[run_id]), []).append(seconds)
        estimates.append((key_of, {key: sum(values) / len(values) for key, values in sums.items()}))
    left, unknown = 0.0, 0
    for run_id, run in all_runs.items():
        if run_id not in done:
            mean = next((table[key_of(run)] for key_of, table in estimates if key_of(run) in table), None)
            unknown += mean is None
            left += mean or 0.0
    return {"results": str(results), "runs": len(all_runs),
            "total": {**{name: 0 for name in STATES}, **_count(state.get(run_id, "pending") for run_id in all_runs)},
            "by_preset": {f"{kind} {preset}": counts for (kind, preset), counts in group(lambda r: (r.kind, r.preset)).items()},
            "by_source": {f"{name} on {dataset} ({model_id})": counts for (name, dataset, model_id), counts
                          in group(lambda r: (r.model.name, r.model.data.name, r.model.id)).items()},
            "remaining_run_s": left, "remaining_unknown_runs": unknown, "failures": failures,
            "code_changes": policy, "stale": [*training.lines, *code.report(all_runs, states, stale, results, policy, today)],
            "stale_runs": {**{run_id: "draw" for run_id in stale.draw}, **{run_id: "evaluate" for run_id in stale.evaluate}},
            "unknown_code": sorted(code.unknown_code(all_runs, states)),
            "searches": search.progress(config, grid, done) if config is not None else []}


def _count(values) -> dict:
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def _duration(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 5400 else f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def print_status(status: dict, shown_failures: int = 10, list_stale: bool = False) -> None:
    total = status["total"]
    print(f"{status['runs']:,} runs in {status['results']}: " + ", ".join(f"{count:,} {name}" for name, count in total.items()))
    names = [*STATES, *sorted({n for section in ("by_preset", "by_source") for c in status[section].values() for n in c}
                               - set(STATES))]
    for title, section in (("preset", "by_preset"), ("score source", "by_source")):
        rows = status[section]
        width = max([len(title), *map(len, rows)])
        print(f"\nby {title}:\n  {title:<{width}}  " + "  ".join(f"{name:>{max(8, len(name))}}" for name in names))
        for key, counts in rows.items():
            print(f"  {key:<{width}}  " + "  ".join(f"{counts.get(name, 0):>{max(8, len(name))},}" for name in names))
    if status["stale"]:
        print(f"\ncode changed since these runs were made (code_changes: {status['code_changes']}):")
        for line in status["stale"]:
            print(f"  {line}")
    if list_stale:
        print(f"\nstale runs ({len(status['stale_runs']):,}):")
        for run_id, part in sorted(status["stale_runs"].items()):
            print(f"  {run_id}: {part}")
        print(f"\nruns of unknown code ({len(status['unknown_code']):,}; records made before they named their code; "
              f"`diffsweep forget` them to redo them):")
        for run_id in status["unknown_code"]:
            print(f"  {run_id}")
    # pending, failed (retried) and corrupt runs, and stale ones under code_changes: rerun
    to_do = status["runs"] - total["ok"] - total["diverged"]
    if status["code_changes"] != "rerun":
        to_do -= total[STALE_DRAW] + total[STALE_EVALUATE]
    unknown = status["remaining_unknown_runs"]
    if to_do == unknown > 0:
        print("\nestimated run time left: unknown until a run is done")
    elif to_do:
        line = f"\nestimated run time left: {_duration(status['remaining_run_s'])} for {to_do - unknown:,} runs to do"
        line += " (mean wall_s of the done runs of the same preset and score source, one run at a time, without job start-up)"
        if unknown:
            line += f"; {unknown:,} more with no done run to estimate from"
        print(line)
    for found in status.get("searches", []):
        kept = " -> ".join(map(str, found["kept"]))
        if found["finished"]:
            print(f"\nsearch {found['search']}: finished, all {found['rungs']} rungs cut (kept per rung: {kept}); "
                  f"the survivors: results/tables/search_{found['search']}.csv")
        else:
            print(f"\nsearch {found['search']}: rung {found['rung']} of 0-{found['rungs'] - 1} ({found['budget']}): "
                  f"{found['done']:,} of {found['runs']:,} runs done, {found['runs'] - found['done']:,} left"
                  + (f"; kept per rung so far: {kept}" if kept else "")
                  + "; later rungs are planned by each cut")
    failures = status["failures"]
    if failures:
        print(f"\nfailed or corrupt runs, retried by the next invocation ({len(failures):,}{', first ' + str(shown_failures) if len(failures) > shown_failures else ''}):")
        for failure in failures[:shown_failures]:
            error = (failure["error"] or "").strip().splitlines()
            print(f"  {failure['run_id']}: {error[-1] if error else '(no error recorded)'}\n    log: {failure['log']}")


def load_config(path):
    """(config, grid) of a config file, or None after one `error:` line per problem on stderr."""
    from diffsweep import config

    try:
        return config.load(path)
    except config.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return None


def command_status(args) -> int:
    loaded = load_config(args.config)
    if loaded is None:
        return 2
    cfg, grid = loaded
    from diffsweep import io
    try:
        status = sweep_status(grid, cfg["results"], cfg)
    except io.UnreadableFile as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        print_status(status, list_stale=args.stale)
    return 0


def results_problem(results, run_ids) -> str | None:
    """Why `--results` and RUN_IDs cannot be used by extract and forget (None if they can): the
    folder must exist and be a results folder of this layout, each RUN_ID a run id."""
    from diffsweep import runs

    folder = Path(results)
    if not folder.is_dir():
        return f"--results: '{results}' {'is not a folder' if folder.exists() else 'does not exist'}"
    try:
        runs.check_layout(folder)
    except ValueError as error:
        return f"--{error}"
    bad = [run_id for run_id in run_ids if not runs.RUN_ID.fullmatch(run_id)]
    if bad:
        return f"RUN_ID {bad[0]!r} is not a run id (<preset>-<16 hex digits>, as `diffsweep grid` lists them)"
    return None


def command_extract(args) -> int:
    """The files runs stored (in their shard's archive) written to OUT/<run_id>/."""
    from diffsweep import io, runs

    problem = results_problem(args.results, args.run_ids)
    if problem is None and Path(args.out).exists() and not Path(args.out).is_dir():
        problem = f"--out: '{args.out}' is an existing file; allowed: a folder (existing or not)"
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        states = runs.index(args.results, only=set(args.run_ids))
    except io.UnreadableFile as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for run_id in args.run_ids:
        try:
            written = runs.extract(args.results, run_id, Path(args.out) / run_id, states)
        except (FileNotFoundError, runs.CorruptRecord) as error:
            print(f"error: {error}", file=sys.stderr)
            return 1
        except OSError as error:
            print(f"error: --out: cannot write the files of run {run_id} to '{Path(args.out) / run_id}' "
                  f"({error.strerror or error})", file=sys.stderr)
            return 1
        status = states[run_id].status
        print(f"{run_id} ({status}): " + (", ".join(map(str, written)) or "no files stored (keep_samples: none)"))
    return 0


def command_forget(args) -> int:
    """Delete runs' record lines: the next invocation recomputes them. Every RUN_ID must have a
    record, else nothing is deleted."""
    from diffsweep import io, runs

    problem = results_problem(args.results, args.run_ids)
    if problem is None:
        try:
            unknown = sorted(set(args.run_ids) - set(runs.index(args.results, only=set(args.run_ids))))
            deleted = 0 if unknown else runs.forget(args.results, args.run_ids)
        except (io.UnreadableFile, runs.ResultsInUse) as error:   # a workflow runs on the folder
            problem = str(error)
        else:
            if unknown:
                more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
                problem = f"no record of run {unknown[0]}{more} under {runs.records_folder(args.results)}; nothing deleted"
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    print(f"deleted {deleted} record line(s) of {len(args.run_ids)} run(s) under {args.results}/records; "
          f"the next invocation recomputes them")
    return 0


def command_costs(args) -> int:
    """The `run_seconds` to declare for `job_minutes`, measured from a finished sweep's shard jobs."""
    from diffsweep import grid as ds_grid, packing

    loaded = load_config(args.config)
    if loaded is None:
        return 2
    cfg, grid = loaded
    shards = grid.shards(ds_grid.runs_per_job(cfg))
    benchmarks = args.benchmarks or f"{cfg['results']}/benchmarks/run_shard"
    try:
        measured = packing.measured_run_seconds(grid, shards, benchmarks)
    except ValueError as error:    # io.UnreadableFile: a damaged benchmark file, named
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not measured:
        print(f"error: no benchmark of this config's {len(shards)} shard jobs in {benchmarks}/ (run the sweep "
              f"first)", file=sys.stderr)
        return 2
    print(f"# seconds per run: each score source's shard jobs (Snakemake benchmarks in {benchmarks}/: start-up, "
          f"sampling and metrics) over their runs")
    print("jobs:")     # a config section as it is declared: jobs.<kind>.run_seconds
    for kind, by_source in measured.items():
        print(f"  {kind}:\n    run_seconds:")
        for key, (seconds, count) in by_source.items():
            note = f"{count} runs"
            if args.job_minutes:
                note += f"; {packing.runs_to_fill(args.job_minutes, seconds)} to a job at job_minutes {args.job_minutes:g}"
            print(f"      {key}: {seconds:.3g}".ljust(40) + f"# {note}")
    return 0


def _names(values) -> list[str]:
    """Column names from repeated and/or comma-separated options."""
    return [name.strip() for value in values or [] for name in value.split(",") if name.strip()]


def parse_filters(items) -> dict:
    """`["dataset=ring8", "steps=10,40"]` -> {"dataset": ["ring8"], "steps": ["10", "40"]}; a
    malformed item raises ValueError."""
    filters = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--filter '{item}': expected COLUMN=VALUE or COLUMN=V1,V2")
        filters.setdefault(key.strip(), []).extend(v.strip() for v in value.split(","))
    return filters


def command_table(args) -> int:
    from diffsweep import io, tables

    def fail(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    path = args.table
    if not Path(path).is_file():
        return fail(f"'{path}' {'is not a file' if Path(path).exists() else 'does not exist'}; allowed: a Parquet "
                    f"table such as results/tables/generation.parquet")
    try:
        frame = io.read_parquet(path)
    except io.UnreadableFile as error:
        return fail(str(error))
    try:
        format(1.5, args.number_format)
    except ValueError:
        return fail(f"--number-format: '{args.number_format}' is not a number format such as .3g, .2f or .2e")
    try:
        filters = parse_filters(args.filter)
    except ValueError as error:
        return fail(str(error))
    try:
        parameter_columns = tables.param_columns(frame)
    except tables.TableError as error:
        return fail(f"{path}: {error}")
    entry = {"metric": args.metric, "rows": _names(args.rows), "columns": _names(args.cols), "filter": filters,
             "aggregate": args.agg, "better": args.better, "pool": args.pool, "format": args.number_format,
             "caption": args.caption or "", "ci": args.ci, "test": args.test, "level": args.level}
    unmarked = args.better == "auto" and args.metric not in tables.METRIC_DIRECTIONS
    if unmarked:
        entry["better"] = "none"
    try:
        spec = tables.TableSpec.from_config("table", entry, where="--")
        table = tables.ablation(tables.records(frame), spec, parameter_columns=parameter_columns, where="--",
                                power=args.power)
    except tables.MixedCellError as error:
        return fail(f"{error.what}; add a --filter, put them in --rows/--cols, or pass --pool best (best of them) "
                    f"or --pool mean (pool them)")
    except tables.TableError as error:
        return fail(str(error))
    if unmarked:
        print(f"note: no direction is known for '{args.metric}', nothing is marked (pass --better lower|higher)",
              file=sys.stderr)
    if args.power and args.agg not in tables.TESTED_AGGREGATES:
        print(f"note: --power compares means; with --agg {args.agg} nothing is compared", file=sys.stderr)
    text = tables.render_table(table, args.format, caption=args.caption, power=args.power)
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    return 0


def command_diff(args) -> int:
    """Two results folders compared run by run (diffsweep.sweep_diff)."""
    from diffsweep import io, sweep_diff

    try:
        result = sweep_diff.compare(args.a, args.b, _names(args.metric), args.level, args.test)
    except (sweep_diff.DiffError, io.UnreadableFile) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.html:
        try:
            with io.atomic_path(args.html) as tmp:
                tmp.write_text(sweep_diff.render_html(result, args.all, page=True))
        except OSError as error:
            print(f"error: --html: cannot write '{args.html}' ({error.strerror or error})", file=sys.stderr)
            return 2
    sys.stdout.write(sweep_diff.render_text(result, args.all))
    return 0


def command_profile(args) -> int:
    """Link a profile of the repository into the user's Snakemake config folder (`--profile NAME`)."""
    from diffsweep import profiles

    try:
        link, made = profiles.install(args.name, Path(args.dir) if args.dir else None)
    except (profiles.ProfileError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"{'installed' if made else 'already installed'}: {link} -> {link.resolve()}; "
          f"`snakemake --profile {args.name}` uses it from any directory")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffsweep", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="the registered names of a kind (samplers, datasets, ...), with their knobs")
    listing.add_argument("what", nargs="?", choices=list(KINDS), metavar="KIND",
                         help=f"one of {', '.join(KINDS)}; without it, the kinds")
    listing.add_argument("--config", metavar="FILE", help="also list what the config's plugins register")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=command_list)
    grid = sub.add_parser("grid", help="the runs a config expands to, of every kind (generation, restoration), "
                                       "with the count of each")
    grid.add_argument("--config", required=True, help="a config YAML file")
    grid.add_argument("--json", action="store_true", help="machine-readable output")
    grid.set_defaults(func=command_grid)
    status = sub.add_parser("status", help="how many runs are done, pending, diverged or failed, and the time left")
    status.add_argument("--config", default="config/config.yaml",
                        help="the sweep's config YAML file (default: config/config.yaml, the embedded default)")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--stale", action="store_true",
                        help="list the stale runs and the done runs of unknown code (records made before they named it)")
    status.set_defaults(func=command_status)
    extract = sub.add_parser("extract", help="write the files runs stored (samples.npz, grid.png, strip.png, ...) "
                                             "to a folder, checked against their sha256")
    extract.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    extract.add_argument("--results", default="results", help="the results folder (default: results)")
    extract.add_argument("--out", default="extracted", help="write to OUT/<run_id>/ (default: extracted)")
    extract.set_defaults(func=command_extract)
    forget = sub.add_parser("forget", help="delete runs' records so the next invocation recomputes them (e.g. to "
                                           "store samples a run did not keep); not while the workflow runs")
    forget.add_argument("run_ids", nargs="+", metavar="RUN_ID")
    forget.add_argument("--results", default="results", help="the results folder (default: results)")
    forget.set_defaults(func=command_forget)
    costs = sub.add_parser("costs", help="seconds per run of each score source, measured from a finished sweep's "
                                         "job benchmarks: the run_seconds to declare for job_minutes")
    costs.add_argument("--config", default="config/config.yaml",
                       help="the sweep's config YAML file (default: config/config.yaml, the embedded default)")
    costs.add_argument("--benchmarks", metavar="DIR",
                       help="the shard jobs' benchmark files (default: benchmarks/run_shard of the config's results folder)")
    costs.add_argument("--job-minutes", type=float, metavar="M", help="also show the runs per job this target gives")
    costs.set_defaults(func=command_costs)
    from diffsweep.tables.options import AGGREGATES, DEFAULT_LEVEL, DIRECTIONS, FORMATS, INTERVALS, POOLING, TESTS

    table = sub.add_parser(
        "table", help="a pivot of a Parquet results table (seeds aggregated with intervals, paired tests mark "
                      "the best and the ties)",
        description="Print a pivot of a Parquet table: cells aggregate a metric over seeds with an interval; the "
                    "cell a paired test shows to beat every other cell of its column (Holm-corrected) is bold, "
                    "cells tied with it are marked. Example: diffsweep table results/tables/generation.parquet --rows sampler "
                    "--cols steps --metric sliced_w2 --filter dataset=ring8 --filter model=oracle --pool best")
    table.add_argument("table", help="a Parquet table (results/tables/generation.parquet, ...)")
    table.add_argument("--rows", action="append", required=True, metavar="COLS",
                       help="row columns (comma-separated or repeated)")
    table.add_argument("--cols", "--columns", action="append", metavar="COLS",
                       help="column columns (comma-separated or repeated); none gives a single metric column")
    table.add_argument("--metric", required=True, help="the numeric column in the cells")
    table.add_argument("--filter", action="append", metavar="COL=V[,V...]",
                       help="keep rows whose COL is one of the values (repeatable; 'null' matches missing values)")
    table.add_argument("--format", choices=FORMATS, default="markdown")
    table.add_argument("--agg", choices=list(AGGREGATES), default="mean_ci",
                       help="aggregation over seeds (default mean_ci: mean [interval]; mean_pm: mean ± half-width; "
                            "the means are tested, median, min and max are not)")
    table.add_argument("--ci", choices=INTERVALS, default="t",
                       help="interval over seeds: t (default), percentile or bca bootstrap")
    table.add_argument("--test", choices=TESTS, default="t",
                       help="paired test of each cell against its column's leader: t (default), wilcoxon, bootstrap")
    table.add_argument("--level", type=float, default=DEFAULT_LEVEL,
                       help=f"level of the intervals (default {DEFAULT_LEVEL}); the tests run at 1 - level")
    table.add_argument("--power", action="store_true",
                       help="also print the seeds each comparison with its column's leader needs for 80%% power")
    table.add_argument("--better", choices=["auto", *DIRECTIONS], default="auto",
                       help="which values are best (auto: the metric's known direction)")
    table.add_argument("--pool", choices=POOLING, default="error",
                       help="a cell holding runs that differ in more than the seed: fail (default), show the best "
                            "configuration, or pool them")
    table.add_argument("--number-format", default=".3g", metavar="SPEC", help="Python number format (default .3g)")
    table.add_argument("--caption", help="caption (LaTeX: wraps the tabular in a table float)")
    table.set_defaults(func=command_table)
    diff = sub.add_parser("diff", help="two results folders compared run by run: per preset point and metric the "
                                       "paired difference B - A with its interval and test, runs only in one side",
                          description="Match the runs of two results folders by their parameters and seed and print, "
                                      "per preset point and metric, the paired difference B - A over seeds with its "
                                      "interval and a paired test (Holm over the points of a metric), and the runs "
                                      "only in one side. Example: diffsweep diff before/results after/results")
    diff.add_argument("a", metavar="A", help="a results folder (the baseline)")
    diff.add_argument("b", metavar="B", help="a results folder (compared with A: differences are B - A)")
    diff.add_argument("--metric", action="append", metavar="M",
                      help="metrics to compare (comma-separated or repeated; default: every known metric both hold)")
    diff.add_argument("--level", type=float, default=0.95, help="confidence level of intervals and tests (default 0.95)")
    from diffsweep.stats import TESTS
    diff.add_argument("--test", choices=TESTS, default="t", help="the paired test over seeds (default t)")
    diff.add_argument("--all", action="store_true", help="also list the points whose runs are identical")
    diff.add_argument("--html", metavar="FILE", help="also write the comparison as an HTML page")
    diff.set_defaults(func=command_diff)
    profile = sub.add_parser("profile", help="install a Snakemake profile of this repository (profiles/) so that "
                                             "`snakemake --profile NAME` finds it")
    profile_sub = profile.add_subparsers(dest="action", required=True)
    install = profile_sub.add_parser("install", help="link profiles/NAME into the user's Snakemake config folder "
                                                     "(once; a link already there is kept, another profile of that "
                                                     "name is left alone and refused)")
    install.add_argument("name", metavar="NAME", help="the profile: slurm or default (a folder of profiles/)")
    install.add_argument("--dir", metavar="DIR", help="install into DIR instead (default: Snakemake's user config "
                                                      "folder, $XDG_CONFIG_HOME/snakemake or ~/.config/snakemake)")
    install.set_defaults(func=command_profile)
    return parser


def main(argv=None) -> int:
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `diffsweep grid ... | head` ends quietly
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
