"""Adaptive searches (diffsweep.grid.search, docs/search.md): the cut, the quasi-random design, the
config's checks, the rungs' runs in the grid (ordinary runs, their own shards) and a rung's decision.
The workflow through Snakemake checkpoints, a kill -9 and the resume: test_search_workflow.py."""

import json

import pytest

from diffsweep import config, grid
from diffsweep.grid import search
from diffsweep.runs import kinds
from diffsweep.runs.records import State

BASE = {
    "seeds": [0, 1, 2],
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
    "models": {"oracle": {"source": "oracle"}},
    "samplers": {"rw": {"family": "random_walk", "steps": 10, "knobs": {"eps": [0.3, 0.7], "T0": 0.1}},
                 "ddim": {"family": "ddim", "steps": [5, 10]},
                 "plain": {"family": "ddpm", "steps": 10}},
    "metrics": {"likelihood": {"points": 0}},
}
SEARCH = {"samplers": ["rw", "ddim"], "rungs": [50, 200], "keep": 0.5, "cap": 3}


def prepared(tmp_path, **search_entry):
    raw = {**BASE, "results": str(tmp_path / "results"), "search": {"s": {**SEARCH, **search_entry}}}
    return config.prepare(raw)


def test_the_cut_keeps_the_best_fraction_and_the_ties_with_the_leader_within_the_cap():
    values = {"a": {"0": 1.0, "1": 1.1, "2": 0.9},        # the leader
              "b": {"0": 1.02, "1": 1.05, "2": 0.98},     # tied with a (noisy difference)
              "c": {"0": 1.2, "1": 0.95, "2": 1.0},       # tied: a difference of either sign
              "d": {"0": 5.0, "1": 5.1, "2": 5.05},       # clearly worse
              "e": {}}                                    # its runs failed: out
    survivors, table = search.cut(values, "lower", keep=0.25, cap=3, level=0.95)
    assert survivors == ["a", "b", "c"]
    assert table["d"]["status"] == "worse" and "e" not in table
    assert search.cut(values, "lower", keep=0.25, cap=2, level=0.95)[0] == ["a", "b"]     # the cap binds
    assert search.cut(values, "lower", keep=0.25, cap=1, level=0.95)[0] == ["a"]
    assert search.cut(values, "higher", keep=0.25, cap=1, level=0.95)[0] == ["d"]
    assert search.cut(values, "lower", keep=0.25, cap=3, level=0.95) == (survivors, table)   # deterministic


def test_the_design_is_seeded_within_its_ranges_and_rounded():
    spec = search.Search("s", ("rw",), (), "sliced_w2", "lower", "n_samples", (10,), 0.5, 2, (0, 1), 0.95, "t",
                         {"eps": [0.05, 1.0], "T0": [0.01, 1.0]}, 16, 3)
    points = search.design(spec)
    assert points == search.design(spec) and len(points) == 16
    assert all(0.05 <= p["eps"] <= 1.0 and 0.01 <= p["T0"] <= 1.0 for p in points)
    assert all(p["eps"] == float(f"{p['eps']:.6g}") for p in points)
    assert points != search.design(spec.__class__(**{**spec.__dict__, "design_seed": 4}))
    # the Sobol points spread: every quarter of each range holds some
    for knob, (low, high) in spec.ranges.items():
        quarters = {int(4 * (p[knob] - low) / (high - low)) for p in points}
        assert quarters >= {0, 1, 2, 3}


@pytest.mark.parametrize("entry, message", [
    ({"rungs": [200, 50]}, "search.s.rungs: budgets must increase"),
    ({"samplers": ["nope"]}, "search.s.samplers: unknown sampler preset 'nope'"),
    ({"samplers": []}, "search.s.samplers: name at least one sampler preset"),
    ({"seeds": [0]}, "search.s.seeds: a cut pairs candidates over seeds and needs at least 2"),
    ({"budget": "seeds", "rungs": [2, 5]}, "search.s.rungs: with budget seeds"),
    ({"budget": "steps", "rungs": [5, 10]}, "samplers.ddim.steps: the search 's' sets it per rung"),
    ({"ranges": {"eps": [1.0, 0.5]}}, "search.s.ranges.eps: expected [low, high]"),
])
def test_a_bad_search_is_one_line_naming_the_key(tmp_path, entry, message):
    raw = {**BASE, "results": str(tmp_path / "results"), "search": {"s": {**SEARCH, **entry}}}
    with pytest.raises(config.ConfigError) as error:
        config.check(raw, check_paths=False)
    assert message in str(error.value) and "Traceback" not in str(error.value)


def test_rung_runs_are_ordinary_runs_in_their_own_shards(tmp_path):
    cfg = prepared(tmp_path)
    built = grid.build(cfg)
    plain = grid.build({**cfg, "search": {}})
    # the searched presets run only through the search; the others as before, in the same shards
    assert {run.preset for run in built.runs.values()} == {"rw", "ddim", "plain"}
    assert {run.preset for run in plain.runs.values()} == {"rw", "ddim", "plain"}
    searched = {run_id for run_id in built.runs if built.groups.get(run_id)}
    assert {built.runs[run_id].n_samples for run_id in searched} == {50}          # rung 0 only: rung 1 waits for its cut
    assert len(searched) == 4 * 3                                                  # 4 candidates x 3 seeds
    shards = built.shards(grid.runs_per_job(cfg))
    plain_shards = {shard: ids for shard, ids in shards.items() if not any(i in searched for i in ids)}
    exhaustive = grid.build({**cfg, "search": {}, "samplers": {"plain": cfg["samplers"]["plain"]}})
    assert plain_shards == exhaustive.shards(grid.runs_per_job(cfg))
    # an exhaustive sweep with the rung's settings has the same run ids
    shared = grid.build({**cfg, "search": {}, "sampling": {**cfg["sampling"], "n_samples": 50}})
    assert searched <= set(shared.runs)


def test_a_cut_rung_plans_the_next_one_and_the_decision_is_deterministic(tmp_path):
    cfg = prepared(tmp_path)
    spec = search.declared(cfg)["s"]
    models = grid.build(cfg, models=set()).models
    planned = search.rung_runs(spec, cfg, models, 0, None, kinds.GENERATION)
    score = {"rw": 1.0, "ddim": 2.0}
    states = {run.id: State("ok", {"run_id": run.id, "status": "ok", "nfe": run.steps,
                                   "metrics": {"sliced_w2": score[run.preset] + 0.01 * ((3 * run.seed + run.steps) % 5)
                                               + (0.3 if run.knobs.get("eps") == 0.3 else 0) + 0.05 * run.steps}},
                            None, "x:1")
              for _, run in planned}
    first = planned[0][1].id
    states[first] = State("failed", {"run_id": first, "status": "failed"}, None, "x:2")
    current = search.settings(spec, cfg)
    decision = search.decide(spec, 0, planned, states, current)
    assert decision == search.decide(spec, 0, planned, states, current)
    (group,) = decision["groups"].values()
    assert group["out"] == {planned[0][0]: "failed"}
    assert group["survivors"] and planned[0][0] not in group["survivors"]
    assert group["cost"] == sum(run.steps * run.n_samples for _, run in planned if run.id != first) + 0
    path = search.rung_path(cfg["results"], "s", 0)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(decision))
    rung1 = {run_id: run for run_id, run in grid.build(cfg).runs.items() if run.n_samples == 200}
    assert {f"{run.preset}-" for run in rung1.values()} <= {f"{name.split('-')[0]}-" for name in group["survivors"]}
    assert len(rung1) == len(group["survivors"]) * 3
    # the survivors table and the rung figure of a search cut so far
    rows = search.survivors_table([decision], spec, cfg)
    assert [row["candidate"] for row in rows if row["status"] != "failed"][:len(group["survivors"])] == \
        sorted(group["survivors"], key=lambda name: group["comparison"][name]["mean"])
    assert {row["point"] for row in rows} >= {"steps=10 eps=0.3", "steps=10 eps=0.7", "steps=5", "steps=10"}
    assert not any(row["survivor"] for row in rows)           # not final: no answer yet
    search.write_table(tmp_path / "table.csv", rows)
    assert (tmp_path / "table.csv").read_text().splitlines()[0] == ",".join(search.TABLE_COLUMNS)
    from diffsweep.plots import search as search_plot
    search_plot.rung_figure([decision], [tmp_path / "rungs.png"], search.labels(spec, cfg))
    assert (tmp_path / "rungs.png").stat().st_size > 0
    # a rung file made under other settings is not current: nothing is planned from it
    for changed in ({"cap": 2}, {"keep": 0.25}, {"rungs": [50, 100]}, {"samplers": ["rw"]}):
        other = prepared(tmp_path, **changed)
        assert search.decided(other["results"], search.declared(other)["s"], other) == 0
        assert not any(run.n_samples == 200 for run in grid.build(other).runs.values())
    assert search.decided(cfg["results"], spec, cfg) == 1
    path.write_text("{not json")
    with pytest.raises(ValueError, match="rung0.json: not a search rung file"):
        grid.build(cfg)
