"""Runs that know their code (diffsweep.runs.code, config `code_changes`): a record names the code
that drew and scored it; a done run whose drawing code changed is drawn again, one whose evaluating
code alone changed is re-scored from its stored samples (eval_nfe 0) or drawn again when they were
not kept; `keep` and `warn` leave them done, `warn` saying so. In-process on a tiny oracle sweep,
then through Snakemake on a copy of the repository tree and of the finished smoke sweep."""

import copy
import json
import shutil

import pytest

from conftest import ROOT, snakemake
from diffsweep import config, fingerprint, io, jobs, runs
from diffsweep import grid as ds_grid
from diffsweep.runs import code, loop
from diffsweep.runs.records import State

CONFIG = {
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
    "models": {"oracle": {"source": "oracle"}},
    "samplers": {"ddim": {"family": "ddim", "steps": 3}},
    "data": {"n_train": 100, "n_reference": 200},
    "sampling": {"n_samples": 100},
    "restoration": {"tasks": {"half": {"operator": "inpaint_random", "noise_std": 0.05, "data_range": "zero_one"}},
                    "restorers": {"ddrm": {"family": "ddrm", "steps": 4}}, "n_measurements": 2, "n_samples": 5},
}


# --- which runs are stale: the comparison of a record's code with today's ----------------------------

def done(code_draw="d1", code_evaluate="e1", status="ok", **more):
    return State(status, {"run_id": "x", "status": status, "code_draw": code_draw, "code_evaluate": code_evaluate,
                          **more}, None, "f.jsonl:1")


def test_a_changed_draw_or_evaluate_fingerprint_makes_a_done_run_stale_and_the_policy_decides():
    today = {"code_draw": "d1", "code_evaluate": "e1", "code_train": "t1"}
    states = {"same": done(), "drawn": done(code_draw="d0"), "scored": done(code_evaluate="e0"),
              "both": done(code_draw="d0", code_evaluate="e0"), "trained": done(code_train="t0"),
              "failed": done(code_draw="d0", status="failed"), "diverged": done(code_draw="d0", status="diverged"),
              "older": State("ok", {"run_id": "older", "status": "ok"}, None, "f.jsonl:2")}
    stale = code.stale_runs(list(states), states, lambda run_id: today)
    assert stale == code.Stale(frozenset({"drawn", "both", "trained", "diverged"}), frozenset({"scored"}))
    assert code.unknown_code(states, states) == {"older"}     # made before records named their code: kept
    done_now = {"same", "drawn", "scored", "both", "trained", "diverged", "older"}
    assert runs.done_runs("unused", states, states, stale, runs.RERUN) == {"same", "older"}
    assert runs.done_runs("unused", states, states, stale, runs.KEEP) == done_now
    assert runs.done_runs("unused", states, states, stale, runs.WARN) == done_now
    # a shard's attempt key follows its runs' code, so a shard whose code changed again runs again
    keys = {runs.attempt("unused", ["drawn"], states, {}, code=lambda run_id: {**today, "code_draw": digest})
            for digest in ("d1", "d2")}
    assert len(keys) == 2


# --- a shard job re-scores from stored samples, or draws again ----------------------------------------

@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    results = tmp_path_factory.mktemp("code") / "results"
    cfg = config.prepare(copy.deepcopy(CONFIG))
    grid = ds_grid.build(cfg)
    (model,) = grid.models.values()
    folder = results / "data" / model.data.id
    jobs.prepare_data(ds_grid.data_dict(model.data), folder / "train.npz", folder / "reference.npz")
    return cfg, grid, model, folder / "reference.npz"


def shard(sweep, kind, run, results, keep, reevaluate=None):
    cfg, _, model, reference = sweep
    options = ({"metrics": {k: v for k, v in cfg["metrics"].items() if k != "likelihood"}} if kind == "generation"
               else {"metrics": cfg["restoration"]["metrics"], "strips": 0})
    loop.run_shard(ds_grid.model_dict(model), [run], reference, None, results, results / "shards" / f"{kind}.json",
                   {**options, "keep_samples": keep}, device="cpu", reevaluate=reevaluate)


@pytest.mark.parametrize("kind", ["generation", "restoration"])
def test_a_run_whose_evaluating_code_changed_is_rescored_from_its_samples_or_drawn_again(sweep, tmp_path, kind):
    _, grid, _, _ = sweep
    run = ds_grid.run_dict(min(grid.of_kind(kind).values(), key=lambda r: r.id))
    for keep in ("all", "none"):
        results = tmp_path / keep
        shard(sweep, kind, run, results, keep)
        first = runs.read_record(results, run["id"])
        assert {key: first[key] for key in ("code_draw", "code_evaluate")} == fingerprint.of_params(run["identity"])
        assert "torch" in first["code_packages"] and "eval_nfe" not in first
        shard(sweep, kind, run, results, keep, reevaluate=runs.index(results))
        again = runs.read_record(results, run["id"])
        assert again["finished"] >= first["finished"]
        if keep == "none":      # nothing stored to score: drawn again, a draw like any other
            assert "eval_nfe" not in again and again["wall_s"] != first["wall_s"]
            continue
        assert again["eval_nfe"] == 0 and again["evaluated_at"] >= first["finished"]
        assert {key: again[key] for key in ("nfe", "wall_s", "finished", "fused_with", "code_draw")} == \
               {key: first[key] for key in ("nfe", "wall_s", "finished", "fused_with", "code_draw")}
        assert again["files"]["samples.npz"]["sha256"] == first["files"]["samples.npz"]["sha256"]  # no new draw
        if kind == "generation":    # the same metrics of the same samples (stored as float32)
            for name in ("sliced_w2", "mmd", "energy_distance"):
                assert again["metrics"][name] == pytest.approx(first["metrics"][name], rel=1e-3, abs=1e-6)
        else:
            for before, after in zip(first["measurements"], again["measurements"]):
                assert after["psnr"] == pytest.approx(before["psnr"], rel=1e-4)


# --- through Snakemake: a copy of the repository tree on a copy of the finished smoke sweep -----------

TREE = ("Snakefile", "src", "workflow", "scripts", "envs", "profiles")


def edit(tree, relative: str, old: str, new: str) -> None:
    path = tree / "src" / "diffsweep" / relative
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def generation_records(results) -> dict:
    return {run_id: state.record for run_id, state in runs.index(results).items()
            if state.record and state.record["kind"] == "generation"}


@pytest.fixture
def source_restored():
    yield
    fingerprint.use_source(None)     # the parses below fingerprint the copy; later tests the package


def test_edited_sampler_reruns_exactly_its_runs_an_edited_metric_rescores_and_keep_warn_keep(
        smoke_run, tmp_path, capfd, source_restored):
    tree, work = tmp_path / "tree", tmp_path / "work"
    tree.mkdir()
    for name in TREE:
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy2)(
            ROOT / name, tree / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if (ROOT / name).is_dir() else {}))
    shutil.copytree(smoke_run, work, symlinks=True)       # copy2 keeps the mtimes
    snakefile, results = tree / "Snakefile", work / "results"
    cfg, grid = config.load(work / "smoke.yaml")
    ddpm_runs = {run_id for run_id, run in grid.of_kind("generation").items() if run.preset == "ddpm"}
    ddpm_shards = {shard for shard, ids in grid.shards(ds_grid.runs_per_job(cfg)).items() if set(ids) & ddpm_runs}
    before = generation_records(results)

    # comments, a docstring and formatting change no fingerprint: nothing to do
    edit(tree, "samplers/ddpm.py", "    abar = alpha_bars(sigmas)\n",
         '    """A docstring now."""\n    # a comment\n    abar = alpha_bars(\n        sigmas)\n')
    assert snakemake(work, dry_run=True, snakefile=snakefile) == {}

    # the issue's example: DDPM returns 1.5x its samples -> exactly the shards of its runs are planned
    edit(tree, "samplers/ddpm.py", "    return z, nfe\n", "    return 1.5 * z, nfe\n")
    planned = []
    snakemake(work, dry_run=True, snakefile=snakefile, planned_jobs=planned)
    assert {wildcards["shard"] for rule, wildcards in planned if rule == "run_shard"} == ddpm_shards

    # and a metric edited too: the other runs are re-scored from their stored samples, not drawn
    edit(tree, "metrics.py", "    return 2.0 * between - within_x - within_y\n",
         "    return 3.0 * (2.0 * between - within_x - within_y)\n")
    snakemake(work, targets=["results/tables/generation.parquet"], snakefile=snakefile)
    after = generation_records(results)
    assert set(after) == set(before)
    for run_id, record in after.items():
        old = before[run_id]
        if run_id in ddpm_runs:       # drawn again: other samples, other metrics, another draw fingerprint
            assert record["finished"] != old["finished"] and "eval_nfe" not in record
            assert record["code_draw"] != old["code_draw"]
            assert record["files"]["samples.npz"]["sha256"] != old["files"]["samples.npz"]["sha256"]
            if record["status"] == old["status"] == runs.OK:
                assert record["metrics"]["sliced_w2"] != pytest.approx(old["metrics"]["sliced_w2"], rel=1e-3)
        else:                         # re-scored: the same samples and draw, the edited metric's new values
            assert record["eval_nfe"] == 0 and record["finished"] == old["finished"]
            assert record["files"]["samples.npz"]["sha256"] == old["files"]["samples.npz"]["sha256"]
            assert record["code_draw"] == old["code_draw"] and record["code_evaluate"] != old["code_evaluate"]
            if old["status"] == runs.OK:
                assert record["metrics"]["energy_distance"] == pytest.approx(3 * old["metrics"]["energy_distance"],
                                                                             rel=1e-3, abs=1e-6)
                assert record["metrics"]["sliced_w2"] == pytest.approx(old["metrics"]["sliced_w2"], rel=1e-3)
    # the table shows the new records: DDPM's new values, the others' re-scored ones
    table = io.read_parquet(results / "tables" / "generation.parquet").set_index("run_id")
    assert set(table.index[table["eval_nfe"] == 0]) == set(before) - ddpm_runs
    for run_id, record in after.items():
        assert table.loc[run_id, "code_draw"] == record["code_draw"]
        if record["status"] == runs.OK:
            assert table.loc[run_id, "sliced_w2"] == record["metrics"]["sliced_w2"]

    # an edited sampler under keep: nothing to do, silently; under warn: nothing to do, one line per
    # preset and score source naming the changed definition; `diffsweep status` counts them stale
    edit(tree, "samplers/ddpm.py", "    return 1.5 * z, nfe\n", "    return z, nfe\n")
    capfd.readouterr()
    for policy in ("keep", "warn"):
        (work / f"{policy}.yaml").write_text((work / "smoke.yaml").read_text() + f"\ncode_changes: {policy}\n")
        planned = snakemake(work, configfile=f"{policy}.yaml", dry_run=True, snakefile=snakefile)
        assert "run_shard" not in planned and "train" not in planned      # (figures not remade above are)
        lines = [line for line in capfd.readouterr().err.splitlines() if line.startswith("diffsweep: ")]
        sources = {(run.model.name, run.model.data.name) for run_id, run in grid.runs.items() if run_id in ddpm_runs}
        assert len(lines) == (len(sources) if policy == "warn" else 0), lines
        assert all("stale (draw)" in line and line.count("diffsweep.samplers.ddpm:ddpm") == 1 for line in lines)
    from diffsweep import cli
    status = cli.sweep_status(grid, results, {**cfg, "code_changes": "warn"})
    assert status["total"][cli.STALE_DRAW] == len(ddpm_runs) and status["total"][cli.STALE_EVALUATE] == 0
    assert status["by_preset"]["generation ddpm"][cli.STALE_DRAW] == len(ddpm_runs)
    assert json.dumps(status)    # machine-readable (--json)


def test_a_checkpoint_whose_training_code_changed_is_retrained_under_rerun_with_its_cost_stated(tmp_path):
    cfg = config.prepare({**copy.deepcopy(CONFIG), "models": {"mlp": {"source": "trained", "steps": 10}}})
    grid = ds_grid.build(cfg)
    (model,) = grid.trained_models()
    checkpoint = tmp_path / "models" / model.id / "checkpoint.pt"
    checkpoint.parent.mkdir(parents=True)
    today = fingerprint.training_fingerprint()
    expected_param = {**ds_grid.model_dict(model), "code_train": today.digest}
    # not trained yet: trained now, with today's code (the rule's param names it)
    fresh = code.training_check(tmp_path, [model], runs.RERUN, grid.runs, {})
    assert fresh.expected == {model.id: today.digest} and not fresh.lines
    assert fresh.model_param(ds_grid.model_dict(model)) == expected_param
    # a checkpoint made before checkpoints named their code: not compared, its param as it was
    checkpoint.write_bytes(b"")
    legacy = code.training_check(tmp_path, [model], runs.RERUN, grid.runs, {})
    assert legacy.expected == {} and legacy.model_param(ds_grid.model_dict(model)) == ds_grid.model_dict(model)
    # trained by other code: its note's parts differ in one definition
    parts = dict(today.parts)
    parts["diffsweep.train:train"] = "0" * 16
    code.training_note(checkpoint).write_text(json.dumps({"code_train": "f" * 16, "train_wall_s": 150.0,
                                                          "parts": parts}))
    done = {run_id: State("ok", {"run_id": run_id, "status": "ok"}, None, "f:1") for run_id in grid.runs
            if grid.runs[run_id].model.id == model.id}
    rerun = code.training_check(tmp_path, [model], runs.RERUN, grid.runs, done)
    assert rerun.retrain == {model.id} and rerun.model_param(ds_grid.model_dict(model)) == expected_param
    assert rerun.lines == (f"models.mlp: training code changed (diffsweep.train:train); retraining 1 model(s) "
                           f"(~2.5 min from their logged train time) and re-running their {len(done)} done run(s)",)
    warn = code.training_check(tmp_path, [model], runs.WARN, grid.runs, done)
    assert not warn.retrain and warn.expected == {model.id: "f" * 16} and "kept (code_changes: warn" in warn.lines[0]
    assert code.training_check(tmp_path, [model], runs.KEEP, grid.runs, done).lines == ()
    # its runs are stale (draw) through their records' code_train once it is retrained
    run_id = next(iter(done))
    states = {run_id: State("ok", {"run_id": run_id, "status": "ok", "code_train": "f" * 16,
                                   **code.Today(grid.runs)(run_id)}, None, "f:1")}
    assert code.stale_runs([run_id], states, code.Today(grid.runs, rerun.expected)).draw == {run_id}
    assert not code.stale_runs([run_id], states, code.Today(grid.runs, warn.expected))
