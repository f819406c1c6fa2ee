"""The code a done run's record names against today's: stale runs (config `code_changes`).

A record names the code that made it by two fingerprints (diffsweep.fingerprint): `code_draw`
(what drew its samples) and `code_evaluate` (what scored them). A done run whose `code_draw`
differs from today's is stale (draw): its samples would differ; one whose `code_evaluate` alone
differs is stale (evaluate): its samples stand, its metrics would differ. Under `code_changes:
rerun` neither is done (records.done_runs): the first is drawn again, the second re-scored from
its stored samples (runs.loop). A record without fingerprints (made before records had them)
counts as matching (`unknown_code` lists those).

A trained score source's checkpoint names its training code too (`code_train`, in the checkpoint
and in its note code_train.json beside it, which the parse reads without torch), and so do the
records of runs drawn with it. A checkpoint whose training code changed follows the same policy:
under `rerun` it is trained again (the train rule's `model` param carries the code, so the params
rerun trigger runs it), the cost stated first, and its runs are stale (draw) through their
`code_train`; under `warn` the same line is printed and the checkpoint kept.

The shard jobs keep a catalog of the fingerprints their records name, results/code/<digest>.json
(the digest of each definition a fingerprint covers; a checkpoint's note holds its own), so that
`diffsweep status` and the parse's warning name the definitions that changed since, not only that
something did.

Torch-free: the Snakefile reads it at parse time (the fingerprints read source files, import nothing).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from diffsweep import fingerprint, io
from diffsweep.runs.records import DONE_STATUSES, RERUN, WARN

CODE_KEYS = ("code_draw", "code_evaluate", "code_train")
# A trained checkpoint's note (beside it): its code_train and train_wall_s, read at parse time without torch.
TRAINING_NOTE = "code_train.json"


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
    `code_draw` and `code_evaluate` of today's code, fingerprint.of_key, and for a trained score
    source `code_train`, its checkpoint's when the run draws: Today). `states`: records.index,
    keeping at least CODE_KEYS. A record without them counts as matching."""
    draw, evaluate = set(), set()
    for run_id in run_ids:
        state = states.get(run_id)
        if state is None or state.status not in DONE_STATUSES or "code_draw" not in state.record:
            continue
        now = current(run_id)
        if _differs(state.record, now, "code_draw") or _differs(state.record, now, "code_train"):
            draw.add(run_id)
        elif state.record.get("code_evaluate") != now["code_evaluate"]:
            evaluate.add(run_id)
    return Stale(frozenset(draw), frozenset(evaluate))


def _differs(record: dict, now: dict, key: str) -> bool:
    """Whether a record's and today's fingerprint differ where both are known."""
    return record.get(key) is not None and now.get(key) is not None and record[key] != now[key]


def unknown_code(run_ids, states: dict) -> set[str]:
    """Done runs whose record does not say what code made them (made before records did)."""
    return {run_id for run_id in run_ids if run_id in states and states[run_id].status in DONE_STATUSES
            and "code_draw" not in states[run_id].record}


class Today:
    """Today's code of a grid's runs (`run_id -> {code_draw, code_evaluate[, code_train]}`),
    fingerprinted once per (kind, family, schedule, score source, operator): a few dozen even at
    100k runs. `trained`: score source id -> the code_train its checkpoint has when the runs draw
    (TrainingCheck.expected; a source not listed is not compared)."""

    def __init__(self, runs: dict, trained: dict | None = None):
        self.runs, self.trained = runs, trained or {}

    def __call__(self, run_id: str) -> dict:
        run = self.runs[run_id]
        fields = fingerprint.of_key(fingerprint.key_of_run(run))
        trained = self.trained.get(run.model.id)
        return fields if trained is None else {**fields, "code_train": trained}


# --- trained checkpoints: their training code ------------------------------------------------------

def training_note(checkpoint) -> Path:
    return Path(checkpoint).with_name(TRAINING_NOTE)


def write_training_note(checkpoint, fp, wall_s: float) -> None:
    """Note beside a checkpoint (written first) the training code that makes it (its digest and the
    definitions it covers, for naming what changed later) and how long the training took."""
    path = training_note(checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    with io.atomic_path(path) as tmp:
        tmp.write_text(json.dumps({"code_train": fp.digest, "train_wall_s": wall_s, "parts": dict(fp.parts)}))


def read_training_note(checkpoint) -> dict | None:
    """A checkpoint's note ({code_train, train_wall_s, parts}); None without one (a checkpoint made before
    checkpoints named their code) or an unreadable one."""
    try:
        note = json.loads(training_note(checkpoint).read_text())
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) and isinstance(note.get("code_train"), str) else None


@dataclass(frozen=True)
class TrainingCheck:
    """What the parse makes of the trained score sources' checkpoints: `expected` (model id -> the
    code_train its checkpoint has when its runs draw: today's where it is (re)trained, else its
    note's; absent for a checkpoint without a note), `retrain` (model ids trained again for their
    code) and `lines` (one per config model with a changed training code: the cost, or that it is kept)."""
    expected: dict
    retrain: frozenset
    lines: tuple

    def model_param(self, model: dict) -> dict:
        """The train rule's `model` param: the model, with the training code its checkpoint has (a
        change of it reruns the rule; a checkpoint without a note keeps its param as it was)."""
        code = self.expected.get(model["id"])
        return model if code is None else {**model, "code_train": code}


def training_check(results, models, policy: str, runs: dict, states: dict) -> TrainingCheck:
    """Compare each trained model's checkpoint note (results/models/<id>/) with today's training
    code under `policy`. `runs`, `states`: the grid's runs and records (the runs a retraining redoes)."""
    expected, retrain, changed_models = {}, set(), {}
    for model in models:
        checkpoint = Path(results) / "models" / model.id / "checkpoint.pt"
        note = read_training_note(checkpoint)
        if not checkpoint.is_file():
            expected[model.id] = fingerprint.training_fingerprint().digest    # trained now, with today's code
        elif note is None:
            continue                       # made before checkpoints named their code: not compared
        elif note["code_train"] == fingerprint.training_fingerprint().digest:
            expected[model.id] = note["code_train"]
        else:
            changed_models.setdefault(model.name, []).append((model, note))
            if policy == RERUN:
                retrain.add(model.id)
                expected[model.id] = fingerprint.training_fingerprint().digest
            else:
                expected[model.id] = note["code_train"]
    lines = []
    for name, pairs in sorted(changed_models.items()):
        now = fingerprint.training_fingerprint()
        names = ", ".join(sorted({symbol for _, note in pairs for symbol in now.changed(note.get("parts") or {})}))
        redone = _done_runs_of(runs, states, {model.id for model, _ in pairs})
        seconds = sum(float(note.get("train_wall_s") or 0) for _, note in pairs)
        cost = f"~{seconds / 60:.1f} min" if seconds >= 90 else f"~{seconds:.0f} s"
        if policy == RERUN:
            lines.append(f"models.{name}: training code changed ({names}); retraining {len(pairs)} model(s) "
                         f"({cost} from their logged train time) and re-running their {redone} done run(s)")
        elif policy == WARN:
            lines.append(f"models.{name}: training code changed ({names}); {len(pairs)} checkpoint(s) and their "
                         f"{redone} done run(s) kept (code_changes: warn; retraining would take {cost})")
    return TrainingCheck(expected, frozenset(retrain), tuple(lines))


def _done_runs_of(runs: dict, states: dict, model_ids: set) -> int:
    return sum(1 for run_id, run in runs.items() if run.model.id in model_ids and run_id in states
               and states[run_id].status in DONE_STATUSES)


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


def _changed_names(results, now, digests) -> list[str]:
    """The definitions that differ between the fingerprint `now` and the recorded `digests` (from
    the catalog)."""
    names, missing = set(), set()
    for digest in digests:
        earlier = recall(results, digest)
        if earlier is None:
            missing.add(digest)
        else:
            names.update(now.changed(earlier))
    shown = sorted(names) + ([f"unknown: no catalog of {', '.join(sorted(missing))}"] if missing else [])
    return shown or ["no definition differs"]


def _now(run, key: str):
    """Today's fingerprint of one part (code_draw, code_evaluate) of a run's code."""
    run_key = fingerprint.key_of_run(run)
    return fingerprint.draw_fingerprint(*run_key) if key == "code_draw" else fingerprint.evaluate_fingerprint(run_key[0])


def report(runs: dict, states: dict, stale: Stale, results, policy: str, today) -> list[str]:
    """One line per preset, score source and part of the code (draw, evaluate) with stale runs: how
    many, the definitions that changed (or the checkpoint's training code), and what
    `policy` does with them. `today`: run id -> today's code fields (Today)."""
    does = {RERUN: {"draw": "drawn again", "evaluate": "re-scored from their stored samples"},
            WARN: {"draw": "kept (code_changes: warn)", "evaluate": "kept (code_changes: warn)"}}
    lines = []
    for part, run_ids, key in (("draw", stale.draw, "code_draw"), ("evaluate", stale.evaluate, "code_evaluate")):
        groups: dict[tuple, list[str]] = {}
        for run_id in sorted(run_ids):
            run = runs[run_id]
            groups.setdefault((run.kind, run.preset, run.model.name, run.model.data.name), []).append(run_id)
        for (kind, preset, model, dataset), members in sorted(groups.items()):
            by_now: dict = {}       # today's fingerprint -> the recorded digests it differs from
            for run_id in members:
                if _differs(states[run_id].record, today(run_id), key):
                    by_now.setdefault(_now(runs[run_id], key), set()).add(states[run_id].record[key])
            # a preset's runs on several operators have several fingerprints today: each definition named once
            names = list(dict.fromkeys(name for now, digests in by_now.items()
                                       for name in _changed_names(results, now, digests)))
            if any(_differs(states[run_id].record, today(run_id), "code_train") for run_id in members):
                names.append(f"the training code of its checkpoint (models.{model})")
            lines.append(f"{kind} {preset} with {model} on {dataset}: {len(members)} done run(s) stale ({part}), "
                         f"{does.get(policy, {}).get(part, 'kept (code_changes: keep)')}; changed since: "
                         f"{', '.join(names)}")
    return lines
