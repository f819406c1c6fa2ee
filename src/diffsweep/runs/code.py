"""The code a done run's record names against today's: stale runs (config `code_changes`).

A record names the code that made it by two fingerprints (diffsweep.fingerprint): `code_draw`
(what drew its samples) and `code_evaluate` (what scored them). A done run whose `code_draw`
differs from today's is stale (draw): its samples would differ; one whose `code_evaluate` alone
differs is stale (evaluate): its samples stand, its metrics would differ. Under `code_changes:
rerun` neither is done (records.done_runs): the first is drawn again, the second re-scored from
its stored samples (runs.loop). A record without fingerprints (made before records had them)
counts as matching (`unknown_code` lists those).

The shard jobs keep a catalog of the fingerprints their records name, results/code/<digest>.json
(the digest of each definition a fingerprint covers), so that `diffsweep status` and the parse's
warning name the definitions that changed since, not only that something did.

Torch-free: the Snakefile reads it at parse time (the fingerprints read source files, import nothing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from diffsweep import fingerprint, io
from diffsweep.runs.records import DONE_STATUSES, RERUN, WARN

CODE_KEYS = ("code_draw", "code_evaluate")
# What the part of a run's code a key names is (the words of `diffsweep status`).
PARTS = {"code_draw": "draw", "code_evaluate": "evaluate"}


@dataclass(frozen=True)
class Stale:
    """Done runs whose code changed since they were made: `draw` those whose drawing code differs
    (drawn again under `rerun`), `evaluate` those whose evaluating code alone differs (re-scored)."""
    draw: frozenset = frozenset()
    evaluate: frozenset = frozenset()

    def __bool__(self) -> bool:
        return bool(self.draw or self.evaluate)


def stale_runs(run_ids, states: dict, current) -> Stale:
    """Which done runs of `run_ids` were made by other code than `current(run_id)` (the fields
    `code_draw` and `code_evaluate` of today's code: fingerprint.of_key). `states`: records.index,
    keeping at least CODE_KEYS. A record without them counts as matching."""
    draw, evaluate = set(), set()
    for run_id in run_ids:
        state = states.get(run_id)
        if state is None or state.status not in DONE_STATUSES or "code_draw" not in state.record:
            continue
        now = current(run_id)
        if state.record["code_draw"] != now["code_draw"]:
            draw.add(run_id)
        elif state.record.get("code_evaluate") != now["code_evaluate"]:
            evaluate.add(run_id)
    return Stale(frozenset(draw), frozenset(evaluate))


def unknown_code(run_ids, states: dict) -> set[str]:
    """Done runs whose record does not say what code made them (made before records did)."""
    return {run_id for run_id in run_ids if run_id in states and states[run_id].status in DONE_STATUSES
            and "code_draw" not in states[run_id].record}


class Today:
    """Today's code of a grid's runs (`run_id -> {code_draw, code_evaluate}`), fingerprinted once per
    (kind, family, schedule, score source, operator): a few dozen even at 100k runs."""

    def __init__(self, runs: dict):
        self.runs = runs

    def __call__(self, run_id: str) -> dict:
        return fingerprint.of_key(fingerprint.key_of_run(self.runs[run_id]))


# --- the catalog: which definitions a recorded fingerprint covered ----------------------------------

def catalog_file(results, digest: str) -> Path:
    return Path(results) / "code" / f"{digest}.json"


def remember(results, *fingerprints) -> None:
    """Note each fingerprint's definitions in the results folder's catalog, once per digest."""
    for fp in fingerprints:
        path = catalog_file(results, fp.digest)
        if not path.is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            with io.atomic_path(path) as tmp:
                tmp.write_text(json.dumps(dict(fp.parts), indent=0, sort_keys=True))


def recall(results, digest: str) -> dict | None:
    """The definitions (symbol -> digest) of a recorded fingerprint, None if the catalog lacks it."""
    try:
        parts = json.loads(catalog_file(results, digest).read_text())
    except (OSError, ValueError):
        return None
    return parts if isinstance(parts, dict) else None


def changed(results, runs: dict, states: dict, run_ids, key: str) -> list[str]:
    """The definitions that differ between today's code and the code the records of `run_ids` name
    (`key`: code_draw or code_evaluate), from the catalog; 'unknown (...)' where it lacks a digest."""
    names, missing = set(), set()
    for run_id in run_ids:
        digest = states[run_id].record[key]
        run_key = fingerprint.key_of_run(runs[run_id])
        now = fingerprint.draw_fingerprint(*run_key) if key == "code_draw" else fingerprint.evaluate_fingerprint(run_key[0])
        earlier = recall(results, digest)
        if earlier is None:
            missing.add(digest)
        else:
            names.update(now.changed(earlier))
    return sorted(names) + ([f"unknown (no catalog of {', '.join(sorted(missing))})"] if missing else [])


def report(runs: dict, states: dict, stale: Stale, results, policy: str) -> list[str]:
    """One line per preset, score source and part of the code (draw, evaluate) with stale runs: how
    many, the definitions that changed, and what `policy` does with them."""
    does = {RERUN: {"code_draw": "drawn again", "code_evaluate": "re-scored from their stored samples"},
            WARN: {"code_draw": "kept (code_changes: warn)", "code_evaluate": "kept (code_changes: warn)"}}
    lines = []
    for key, run_ids in (("code_draw", stale.draw), ("code_evaluate", stale.evaluate)):
        groups: dict[tuple, list[str]] = {}
        for run_id in sorted(run_ids):
            run = runs[run_id]
            groups.setdefault((run.kind, run.preset, run.model.name, run.model.data.name), []).append(run_id)
        for (kind, preset, model, dataset), members in sorted(groups.items()):
            lines.append(f"{kind} {preset} with {model} on {dataset}: {len(members)} done run(s) stale ({PARTS[key]}), "
                         f"{does.get(policy, {}).get(key, 'kept (code_changes: keep)')}; changed since: "
                         f"{', '.join(changed(results, runs, states, members, key))}")
    return lines
