"""The `diffsweep` command: look at the registries and at the runs a config expands to.

    diffsweep list samplers|datasets|schedules|training [--json]
    diffsweep grid --config FILE [--json]
"""

from __future__ import annotations

import argparse
import json
import sys


def _knob_table(knobs) -> dict:
    return {name: knob.as_dict() for name, knob in knobs.items()}


def registry_listing(what: str) -> dict:
    from diffsweep import data, noise, samplers

    if what == "samplers":
        return {name: {"description": spec.description, "init": spec.init, "default_schedule": spec.default_schedule,
                       "module": spec.module, "knobs": _knob_table(spec.knobs)}
                for name in samplers.names() for spec in [samplers.get(name)]}
    if what == "schedules":
        return {name: {"description": s.description, "params": _knob_table(s.params)}
                for name, s in sorted(noise.SCHEDULES.items())}
    if what == "training":
        return {name: {"description": t.description, "params": _knob_table(t.params)}
                for name, t in sorted(noise.TRAINING_DISTRIBUTIONS.items())}
    if what == "datasets":
        return {name: {"description": f.description, "analytic": f.analytic, "params": _knob_table(f.params)}
                for name, f in sorted(data.FAMILIES.items())}
    raise ValueError(what)


def print_listing(listing: dict) -> None:
    for name, entry in listing.items():
        print(f"{name}: {entry['description']}")
        for knob, spec in (entry.get("knobs") or entry.get("params") or {}).items():
            extra = f" {list(spec['choices'])}" if "choices" in spec else ""
            print(f"    {knob} ({spec['type']}, default {spec['default']!r}){extra}: {spec['description']}")


def command_list(args) -> int:
    listing = registry_listing(args.what)
    if args.json:
        print(json.dumps(listing, indent=2, default=str))
    else:
        print_listing(listing)
    return 0


def command_grid(args) -> int:
    from diffsweep import config

    try:
        _, grid = config.load(args.config)
    except config.ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    rows = grid.manifest_rows()
    if args.json:
        print(json.dumps({"runs": rows, "excluded": grid.excluded}, indent=2, default=str))
        return 0
    print(f"{len(rows)} runs, {len(grid.models)} score sources ({len(grid.trained_models())} trained), "
          f"{len(grid.datasets)} datasets")
    for row in rows:
        print(f"  {row['run_id']:<28} {row['dataset']:<14} {row['model']:<12} {row['sampler_family']:<12} "
              f"{row['schedule']:<14} K={row['steps']}")
    for reason in grid.excluded:
        print(f"  skipped: {reason}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="diffsweep", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    listing = sub.add_parser("list", help="registered samplers, datasets, schedules or training distributions")
    listing.add_argument("what", choices=["samplers", "datasets", "schedules", "training"])
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    listing.set_defaults(func=command_list)
    grid = sub.add_parser("grid", help="the runs a config expands to")
    grid.add_argument("--config", required=True, help="a config YAML file")
    grid.add_argument("--json", action="store_true", help="machine-readable output")
    grid.set_defaults(func=command_grid)
    return parser


def main(argv=None) -> int:
    import signal

    signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `diffsweep grid ... | head` ends quietly
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
