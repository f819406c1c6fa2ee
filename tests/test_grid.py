"""Config validation, grid expansion, stable ids, shards and the CLI."""

import copy
import json
import re

import pytest
import yaml

from diffsweep import cli, config, grid
from diffsweep.runs import LAYOUT_VERSION

BASE = {
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}, "swiss": {"family": "swissroll"}},
    "models": {"oracle": {"source": "oracle"}, "mlp": {"source": "trained", "steps": [100, 200]}},
    "samplers": {"rw": {"family": "random_walk", "steps": [10, 20], "knobs": {"T0": [0.1, 1.0]}},
                 "ode": {"family": "pf_ode", "steps": 5}},
    "seeds": [0, 1],
}


def build(raw):
    return grid.build(config.prepare(raw))


def test_a_unet_is_planned_only_on_images_its_levels_can_halve():
    """(#26) A unet on 2-D points, or with more levels than the images' side can be halved, failed
    in its training job; it is skipped at parse time, like a pretrained network of another size."""
    raw = copy.deepcopy(BASE)
    raw["datasets"]["digits"] = {"family": "digits", "knobs": {"resolution": 8}}
    raw["models"] = {"unet": {"arch": "unet", "arch_params": {"channels": [[16, 32], [8, 8, 8, 8, 8]]}}}
    g = build(raw)
    assert [(m.name, m.data.name, m.recipe["arch_params"]) for m in g.models.values()] == \
        [("unet", "digits", {"channels": [16, 32]})]
    assert g.excluded == [
        "model 'unet' (trained unet) x dataset 'ring8': a unet takes (C, H, W) images, not 'gmm' samples",
        "model 'unet' (trained unet) x dataset 'swiss': a unet takes (C, H, W) images, not 'swissroll' samples",
        "model 'unet' (trained unet) x dataset 'digits': a unet of 5 levels halves the image side 4 times, the "
        "dataset's images are 8x8"]


def test_defaults_are_filled_everywhere():
    prepared = config.prepare(copy.deepcopy(BASE))
    assert prepared["results"] == "results" and prepared["jobs"]["generation"]["runs_per_job"] == 16
    assert prepared["models"]["mlp"]["train_sigma"] == {"name": "ddpm", "knobs": {}}
    assert prepared["samplers"]["ode"]["schedule"] is None and prepared["samplers"]["ode"]["knobs"] == {}


def test_grid_is_the_product_of_every_axis():
    g = build(copy.deepcopy(BASE))
    # models: oracle on ring8 only, mlp (2 step counts) on both datasets -> 5 score sources
    assert len(g.models) == 5
    assert g.excluded == ["model 'oracle' (oracle) x dataset 'swiss': no closed-form denoiser"]
    # per model: rw 2 steps x 2 T0 + ode 1 = 5 points, x 2 seeds
    assert len(g.runs) == 5 * 5 * 2
    rows = g.manifest_rows("generation")
    assert {r["knob_T0"] for r in rows if r["sampler"] == "rw"} == {0.1, 1.0}
    assert all(r["schedule"] == "karras" for r in rows if r["sampler"] == "ode")   # the family default
    assert all(r["run_id"].startswith(r["sampler"] + "-") for r in rows)


def test_ids_are_stable_and_adding_a_preset_adds_only_new_runs():
    first = build(copy.deepcopy(BASE))
    again = build(copy.deepcopy(BASE))
    assert set(first.runs) == set(again.runs)
    extended = copy.deepcopy(BASE)
    extended["samplers"]["ddpm"] = {"family": "ddpm", "steps": 10}
    bigger = build(extended)
    assert set(first.runs) < set(bigger.runs)
    assert all(r.preset == "ddpm" for key, r in bigger.runs.items() if key not in first.runs)
    assert set(first.models) == set(bigger.models)


def test_a_dataset_s_own_seeds_add_runs_and_keep_the_others_ids():
    """datasets.<d>.seeds replaces the top-level seeds for that dataset's generation runs (more seeds
    where runs are cheap); the runs of seeds both lists hold keep their ids, the data id is unchanged."""
    first = build(copy.deepcopy(BASE))
    more = copy.deepcopy(BASE)
    more["datasets"]["ring8"]["seeds"] = [0, 1, 2, 3]
    bigger = build(more)
    assert set(first.runs) < set(bigger.runs)
    assert {r.seed for r in bigger.runs.values() if r.model.data.name == "ring8"} == {0, 1, 2, 3}
    assert {r.seed for r in bigger.runs.values() if r.model.data.name == "swiss"} == {0, 1}
    assert {r.seed for key, r in bigger.runs.items() if key not in first.runs} == {2, 3}
    assert {m.data.id for m in first.models.values()} == {m.data.id for m in bigger.models.values()}


# The knob names each family had when its runs got their ids (before the renames of issue 24).
KNOBS_AS_HASHED = {
    "pf_ode": {"solver"},
    "pc": {"process", "predictor", "corrector", "snr", "corrector_steps", "order", "final_noise"},
    "rw_ddpm": {"ddpm_variance", "steps_per_level", "final_noise"},
    "random_walk": {"step_rule", "eps", "T0", "ramp", "sigma_ref", "ddpm_variance", "ve_continuous_sigma",
                    "steps_per_level", "final_noise"},
    "daps": {"langevin_steps", "step_size"},
}


def test_renamed_knobs_keep_the_run_ids():
    """A renamed knob's value is hashed under its former name: finished runs keep their ids."""
    raw = copy.deepcopy(BASE)
    raw["samplers"] = {"ode": {"family": "pf_ode", "steps": 5}, "pc": {"family": "pc", "steps": 5},
                       "rw": {"family": "random_walk", "steps": 5}, "ddpm": {"family": "rw_ddpm", "steps": 5}}
    raw["restoration"] = {"tasks": {"half": {"operator": "inpaint_random", "noise_std": 0.1}},
                          "restorers": {"daps": {"family": "daps", "steps": 5}}, "models": ["oracle"]}
    runs = build(raw).runs.values()
    assert {run.family for run in runs} == set(KNOBS_AS_HASHED)
    for run in runs:
        params = run.identity()
        method = params["sampler" if run.task is None else "restorer"]
        assert set(method["knobs"]) == KNOBS_AS_HASHED[run.family], run.family
        assert run.id == f"{run.preset}-{grid.short_hash(params)}"


def test_explicit_defaults_do_not_change_ids():
    explicit = copy.deepcopy(BASE)
    explicit["samplers"]["ode"]["knobs"] = {"solver_type": "heun"}
    explicit["samplers"]["ode"]["schedule"] = "karras"
    assert set(build(explicit).runs) == set(build(copy.deepcopy(BASE)).runs)


RESTORING = {"tasks": {"half": {"operator": "inpaint_random", "noise_std": 0.1, "data_range": "minus_one_one"}},
             "restorers": {"ddrm": {"family": "ddrm", "steps": [5, 10]}}, "models": ["oracle"], "seeds": [0, 1]}


def test_ids_are_names_and_64_bit_hashes():
    g = build({**copy.deepcopy(BASE), "restoration": copy.deepcopy(RESTORING)})
    ids = [*(d.id for d in g.datasets.values()), *g.models, *g.runs]
    assert all(re.fullmatch(r"[A-Za-z0-9_]+-[0-9a-f]{16}", i) for i in ids), ids
    shards = g.shards({"generation": 4, "restoration": 4})
    assert all(re.fullmatch(r"[A-Za-z0-9_]+-[0-9a-f]{16}\.[0-9a-f]{16}", s) for s in shards)


def test_shards_pack_every_run_per_model_and_kind():
    g = build({**copy.deepcopy(BASE), "restoration": copy.deepcopy(RESTORING)})
    assert {r.kind for r in g.runs.values()} == {"generation", "restoration"} and len(g.of_kind('restoration')) == 2 * 2   # 2 steps x 2 seeds
    shards = g.shards({"generation": 4, "restoration": 3})
    packed = [run_id for ids in shards.values() for run_id in ids]
    assert sorted(packed) == sorted(g.runs)
    for shard_id, ids in shards.items():
        runs = [g.runs[i] for i in ids]
        assert 1 <= len(ids) <= (4 if runs[0].kind == "generation" else 3)
        assert len({(run.model.id, run.kind) for run in runs}) == 1
        assert shard_id.startswith(runs[0].model.id + ".")
    assert sum(g.runs[ids[0]].kind == "restoration" for ids in shards.values()) == 2   # 4 runs, 3 a shard


def sweep_config(**changes):
    """One score source with 14 runs: 5 shards of at most 3."""
    raw = {"datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
           "models": {"oracle": {"source": "oracle"}},
           "samplers": {"rw": {"family": "random_walk", "steps": 5, "knobs": {"eps": [0.1, 0.2, 0.3, 0.4, 0.5]}},
                        "ode": {"family": "pf_ode", "steps": [4, 8]}},
           "seeds": [0, 1], "jobs": {"generation": {"runs_per_job": 3}}}
    raw.update(changes)
    return config.prepare(raw)


def test_shards_stay_put_while_their_runs_finish():
    """Each parse (the main Snakemake, every cluster job) builds the grid again while jobs finish
    runs: shard ids and members never move, a shard is a target while it has pending runs, and a
    job finds its runs from its shard id alone."""
    cfg = sweep_config()
    shards = grid.build(cfg).shards(grid.runs_per_job(cfg))
    assert sorted(len(ids) for ids in shards.values()) == [2, 3, 3, 3, 3]
    assert grid.pending_shards(shards, set()).keys() == shards.keys()
    a, b, *_ = sorted(shards)
    for finished in range(len(shards[a]) + 1):       # shard a's job finishes its runs one by one
        done = set(shards[a][:finished])
        again = grid.build(copy.deepcopy(cfg))        # another job re-parses meanwhile
        assert again.shards(grid.runs_per_job(cfg)) == shards
        model, runs = grid.shard_job(cfg, b)          # ... and finds its own shard
        assert [run["id"] for run in runs] == shards[b] and model["id"] == b.split(".")[0]
        pending = grid.pending_shards(shards, done)
        assert (a in pending) == (finished < len(shards[a]))
        assert set(pending) - {a} == set(shards) - {a}
    # the marker name follows what is left: a half-done shard, or one with a run deleted to be redone, runs again
    keys = {grid.pending_shards(shards, set(shards[a][:n]))[a] for n in range(len(shards[a]))}
    assert len(keys) == len(shards[a])


def test_a_shard_job_reads_the_runs_the_grid_has():
    cfg = sweep_config(restoration=copy.deepcopy(RESTORING))
    g = grid.build(cfg)
    assert g.of_kind('restoration')
    for shard, run_ids in g.shards(grid.runs_per_job(cfg)).items():
        model, runs = grid.shard_job(cfg, shard)
        assert runs == [grid.run_dict(g.runs[run_id]) for run_id in run_ids]
        assert model == grid.model_dict(g.models[shard.split(".")[0]])
    with pytest.raises(ValueError, match=r"shard 'oracle-0123456789abcdef.0123456789abcdef' is not in this "
                                         r"config's grid"):
        grid.shard_job(cfg, "oracle-0123456789abcdef.0123456789abcdef")


def test_a_new_preset_makes_targets_only_of_shards_with_its_runs():
    cfg = sweep_config()
    before = grid.build(cfg)
    done = set(before.runs)                       # the first sweep finished
    cfg["samplers"]["ddpm"] = {**cfg["samplers"]["ode"], "family": "ddpm", "steps": 6}   # 2 seeds: 2 runs
    after = grid.build(cfg)
    shards = after.shards(grid.runs_per_job(cfg))
    pending = grid.pending_shards(shards, done)
    new = set(after.runs) - done
    assert len(new) == 2 and 1 <= len(pending) <= 2
    assert {run_id for shard in pending for run_id in shards[shard] if run_id not in done} == new


def test_restoration_runs_have_their_task_and_noise_std_stated_on_a_range():
    g = build({**copy.deepcopy(BASE), "restoration": copy.deepcopy(RESTORING)})
    run = next(iter(g.of_kind('restoration').values()))
    assert run.kind == "restoration" and run.task.name == "half" and run.task.noise_std == 0.1
    assert run.task.noise_std_effective == 0.1          # stated on [-1, 1]: used as is
    row = run.row()
    assert (row["restorer"], row["noise_std"], row["noise_std_effective"], row["operator_missing"]) == \
        ("ddrm", 0.1, 0.1, 0.5)
    zero_one = copy.deepcopy(RESTORING)
    zero_one["tasks"]["half"]["data_range"] = "zero_one"
    other = build({**copy.deepcopy(BASE), "restoration": zero_one})
    assert {r.task.noise_std_effective for r in other.of_kind('restoration').values()} == {0.2}
    assert not set(other.of_kind('restoration')) & set(g.of_kind('restoration'))    # the range is part of the id


def test_an_old_results_layout_is_refused_with_what_to_do(tmp_path):
    from diffsweep import runs
    runs.check_layout(tmp_path / "results")                  # nothing yet
    (tmp_path / "results" / "data").mkdir(parents=True)
    runs.check_layout(tmp_path / "results")                  # no runs: nothing to mix
    (tmp_path / "results" / "restorations" / "ddrm-0123abcd").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"results: '.*results' holds runs of an older layout \(no layout.json\), "
                                         r"this diffsweep writes layout version 4; move the folder aside or set "
                                         r"`results:` to another folder"):
        runs.check_layout(tmp_path / "results")
    for version in (1, 2, 3):    # 2: a folder and run.json per run; 3: samples drawn before per-sample streams
        (tmp_path / "results" / "layout.json").write_text(json.dumps({"version": version}))
        with pytest.raises(ValueError, match=f"holds runs of layout version {version}, this diffsweep writes layout "
                                             f"version 4"):
            runs.check_layout(tmp_path / "results")
    runs.mark_layout(tmp_path / "fresh")
    assert json.loads((tmp_path / "fresh" / "layout.json").read_text()) == {"version": runs.LAYOUT_VERSION}
    (tmp_path / "fresh" / "records").mkdir()
    runs.check_layout(tmp_path / "fresh")


@pytest.mark.parametrize("change,message", [
    (lambda c: c.update(bogus=1), r"\(top level\): unknown key\(s\) \['bogus'\]; allowed: results, code_changes, jobs, plugins"),
    (lambda c: c["samplers"]["rw"].update(steps="many"), r"samplers.rw.steps: 'many' has the wrong type"),
    (lambda c: c["samplers"]["rw"].update(family="euler_ancestrall"), r"samplers.rw.family: unknown sampler 'euler_ancestrall'; allowed: ddim, ddpm"),
    (lambda c: c["samplers"]["rw"].update(schedule="cosine"), r"samplers.rw.schedule: unknown schedule 'cosine'; allowed: geometric"),
    (lambda c: c["samplers"]["rw"]["knobs"].update(eta=1.0), r"samplers.rw.knobs: unknown knob\(s\) \['eta'\] for sampler 'random_walk'; allowed: step_rule, eps, T0"),
    (lambda c: c["samplers"]["rw"]["knobs"].update(eps=-1.0), r"samplers.rw.knobs.eps: -1.0 is not above the exclusive minimum 0.0; allowed: > 0.0"),
    (lambda c: c["samplers"]["rw"].update(steps=0), r"samplers.rw.steps: 0 has the wrong type or value"),
    (lambda c: c["datasets"].update(moons={"family": "moons"}), r"datasets.moons.family: unknown dataset family 'moons'; allowed: blobs, checkerboard, digits, digits_gmm, gmm, images, swissroll"),
    (lambda c: c["datasets"]["ring8"]["knobs"].update(preset="ring9"), r"datasets.ring8.knobs.preset: 'ring9' is not allowed; allowed: ring8, grid25"),
    (lambda c: c["models"]["mlp"].update(parametrisation="rf"), r"models.mlp.parametrisation: 'rf' is not allowed; allowed: x0, eps, score, v, edm, flow"),
    (lambda c: c["models"]["mlp"].update(train_sigma={"name": "cosine"}), r"models.mlp.train_sigma.name: unknown training sigma-distribution 'cosine'"),
    (lambda c: c["models"]["oracle"].update(datasets=["cifar"]), r"models.oracle.datasets: unknown dataset 'cifar'; allowed: ring8, swiss"),
    (lambda c: c.update(seeds=[]), r"seeds: \[\] should be non-empty"),
    (lambda c: c.update(sampling={"n_samples": 1}), r"sampling.n_samples: 1 is less than the minimum of 2"),
    (lambda c: c["samplers"].update({"bad-name": {"family": "ddpm"}}), r"samplers: 'bad-name' is not a name; allowed: 1 to 64 ASCII letters, digits or _"),
])
def test_bad_configs_fail_naming_the_key(change, message):
    raw = copy.deepcopy(BASE)
    change(raw)
    with pytest.raises(ValueError, match=message):
        build(raw)


@pytest.mark.parametrize("old, new", [
    ("device", "jobs.device"), ("max_batch", "jobs.max_batch"), ("sampling.fuse", "jobs.fuse"),
    ("sampling.fail_fast", "jobs.fail_fast"), ("sampling.runs_per_job", "jobs.generation.runs_per_job"),
    ("sampling.job_minutes", "jobs.generation.job_minutes"), ("sampling.run_seconds", "jobs.generation.run_seconds"),
    ("restoration.runs_per_job", "jobs.restoration.runs_per_job"),
    ("restoration.job_minutes", "jobs.restoration.job_minutes"),
    ("restoration.run_seconds", "jobs.restoration.run_seconds"),
])
def test_a_jobs_setting_at_its_former_place_is_refused_naming_the_new_one(old, new):
    """A job's settings live under `jobs` (issue 24): each former key, with its value valid there and
    here, is refused in one line naming where it went; at the new place the same value is taken."""
    value = {"device": "cpu", "max_batch": 8, "fuse": False, "fail_fast": True, "runs_per_job": 4, "job_minutes": None,
             "run_seconds": {}}[old.split(".")[-1]]

    def placed(path):
        raw = copy.deepcopy(BASE)
        *sections, key = path.split(".")
        node = raw
        for section in sections:
            node = node.setdefault(section, {})
        node[key] = value
        return raw
    with pytest.raises(config.ConfigError) as refused:
        config.prepare(placed(old))
    assert refused.value.problems == [f"{old}: moved to {new}"]
    *sections, key = new.split(".")
    node = config.prepare(placed(new))
    for section in sections:
        node = node[section]
    assert node[key] == value


def test_load_reads_a_file_and_reports_its_name(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BASE, "samplers": {"x": {"family": "nope"}}}))
    with pytest.raises(config.ConfigError, match=r"invalid config .*c.yaml: samplers.x.family: unknown sampler 'nope'"):
        config.load(path)
    with pytest.raises(config.ConfigError, match="config file .*missing.yaml' not found"):
        config.load(tmp_path / "missing.yaml")


@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_shipped_configs_are_valid(root, name):
    _, g = config.load(root / "config" / name)
    assert g.runs


def test_cli_list_and_grid(root, capsys):
    assert cli.main(["list", "samplers", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["random_walk"]["knobs"]["eps"]["type"] == "float"
    for what in ("datasets", "schedules", "training"):
        assert cli.main(["list", what]) == 0
        assert capsys.readouterr().out.strip()
    assert cli.main(["grid", "--config", str(root / "config" / "smoke.yaml"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    _, g = config.load(root / "config" / "smoke.yaml")
    assert g.runs and g.of_kind('restoration')    # every kind of run is listed, with its kind and the count of each
    assert sorted(r["run_id"] for r in out["runs"]) == sorted(g.runs)
    assert {r["run_id"]: r["kind"] for r in out["runs"]} == {run_id: run.kind for run_id, run in g.runs.items()}
    assert out["counts"] == {"generation": len(g.of_kind("generation")), "restoration": len(g.of_kind('restoration'))}
    assert cli.main(["grid", "--config", str(root / "config" / "smoke.yaml")]) == 0
    text = capsys.readouterr().out
    assert text.startswith(f"{len(g.runs)} runs ({len(g.of_kind('generation'))} generation, {len(g.of_kind('restoration'))} restoration)")
    assert f"restoration runs ({len(g.of_kind('restoration'))}):" in text
    for run_id, run in g.of_kind('restoration').items():
        assert re.search(rf"^  {run_id} +{run.model.data.name} +{run.model.name} +{run.task.name} +{run.family} ",
                         text, re.M)


def test_cli_grid_reports_a_bad_config(tmp_path, capsys):
    path = tmp_path / "bad.yaml"
    path.write_text("samplers: {x: {family: nope}}\n")
    assert cli.main(["grid", "--config", str(path)]) == 2
    assert "unknown sampler 'nope'" in capsys.readouterr().err


def test_every_schema_key_has_a_description_and_a_default():
    def walk(node, path):
        for key, sub in node.get("properties", {}).items():
            assert "description" in sub, f"{path}{key} has no description"
            assert "default" in sub, f"{path}{key} has no default"
            walk(sub, f"{path}{key}.")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}<name>.")
    walk(config.load_schema(), "")


def test_list_valued_keys_sweep_only_as_lists_of_lists():
    from diffsweep.grid import expand_axes
    entry = {"arch_params": {"channels": [16, 32]}, "lr": [1e-3, 2e-3]}
    assert expand_axes(entry) == [{"arch_params": {"channels": [16, 32]}, "lr": 1e-3},
                                  {"arch_params": {"channels": [16, 32]}, "lr": 2e-3}]
    swept = expand_axes({"arch_params": {"channels": [[16, 32], [32, 64]]}})
    assert [point["arch_params"]["channels"] for point in swept] == [[16, 32], [32, 64]]
    assert expand_axes({"datasets": []}) == [{"datasets": []}]


def test_sampler_presets_can_be_limited_to_datasets():
    raw = ({"datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}},
                                    "grid25": {"family": "gmm", "knobs": {"preset": "grid25"}}},
                       "models": {"oracle": {"source": "oracle"}},
                       "samplers": {"everywhere": {"family": "ddim", "steps": 5},
                                    "ring_only": {"family": "ddim", "steps": 7, "datasets": ["ring8"]}}})
    runs = build(copy.deepcopy(raw)).runs.values()
    assert sorted((r.preset, r.model.data.name) for r in runs) == [
        ("everywhere", "grid25"), ("everywhere", "ring8"), ("ring_only", "ring8")]
    raw["samplers"]["ring_only"]["datasets"] = ["moons"]
    with pytest.raises(ValueError, match=r"samplers.ring_only.datasets: unknown dataset 'moons'; allowed: ring8, grid25"):
        build(raw)


def test_a_preset_can_set_its_own_sample_count():
    raw = copy.deepcopy(BASE)
    raw["samplers"]["ode"]["n_samples"] = [300, 600]
    g = build(raw)
    counts = {r.n_samples for r in g.runs.values() if r.preset == "ode"}
    assert counts == {300, 600}
    assert {r.n_samples for r in g.runs.values() if r.preset == "rw"} == {2000}   # sampling.n_samples
    unchanged = build(copy.deepcopy(BASE))
    assert {k for k in unchanged.runs if k.startswith("rw-")} == {k for k in g.runs if k.startswith("rw-")}


def test_likelihood_models_must_exist():
    raw = copy.deepcopy(BASE)
    raw["metrics"] = {"likelihood": {"models": ["oracle", "unet"]}}
    with pytest.raises(ValueError, match=r"metrics.likelihood.models: unknown model 'unet'; allowed: mlp, oracle"):
        build(raw)


def test_cli_status_counts_states_per_preset_and_source_and_points_at_failures(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump({**copy.deepcopy(BASE), "restoration": copy.deepcopy(RESTORING)}))
    _, g = config.load(path)
    ids = sorted(g.runs)
    model_a, model_b = sorted(g.models)[:2]
    rw = [i for i in ids if i.startswith("rw-") and g.runs[i].model.id == model_a]
    rw_b = next(i for i in ids if i.startswith("rw-") and g.runs[i].model.id == model_b)
    ode = [i for i in ids if i.startswith("ode-")]
    def record(run_id, status, wall_s=None, **more):
        return {"run_id": run_id, "kind": "generation", "status": status, "nfe": 1, "wall_s": wall_s, "device": "cpu",
                "finished": "", "row": {}, "params": {}, "provenance": {}, "archive": "x.archive", "files": {},
                "metrics": {}, **more}

    records = {rw[0]: record(rw[0], "ok", 2.0), rw[1]: record(rw[1], "ok", 4.0),
               rw_b: record(rw_b, "diverged", 10.0),
               ode[0]: record(ode[0], "failed", error="RuntimeError: boom", log="logs/run_shard/x.log"),
               ode[1]: record(ode[1], "failed", error="OSError: disk", log=None),   # no log: the shard's logs
               ode[2]: {"run_id": ode[2], "status": "ok"}}    # cannot be trusted: corrupt, redone
    (tmp_path / "results" / "records").mkdir(parents=True)
    (tmp_path / "results" / "layout.json").write_text(json.dumps({"version": LAYOUT_VERSION}))
    for name, run_ids in (("a", list(records)[:3]), ("b", list(records)[3:])):   # any record file, any shard
        (tmp_path / "results" / "records" / f"{name}.jsonl").write_text(
            "".join(json.dumps(records[run_id]) + "\n" for run_id in run_ids))
    assert cli.main(["status", "--config", str(path), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["runs"] == len(g.runs)
    assert status["total"] == {"ok": 2, "diverged": 1, "failed": 2, "corrupt": 1, "pending": len(g.runs) - 6,
                               "stale (draw)": 0, "stale (evaluate)": 0}     # these records name no code
    n_rw = sum(i.startswith("rw-") for i in ids)
    assert status["by_preset"]["generation rw"] == {"ok": 2, "diverged": 1, "failed": 0, "corrupt": 0,
                                                    "pending": n_rw - 3, "stale (draw)": 0, "stale (evaluate)": 0}
    assert status["by_preset"]["restoration ddrm"]["pending"] == len(g.of_kind('restoration'))
    assert sum(c["ok"] for c in status["by_source"].values()) == 2
    # a run to do costs the mean wall time of the done runs of its preset and source (rw on a: 3 s, on b:
    # 10 s), else of its preset (rw: 16 / 3 s), else of all done runs (16 / 3 s)
    pending_rw = {m: sum(g.runs[i].model.id == m for i in ids if i.startswith("rw-")) - done
                  for m, done in ((model_a, 2), (model_b, 1))}
    others = len(g.runs) - 3 - sum(pending_rw.values())   # failed and corrupt runs are redone too
    assert status["remaining_run_s"] == pytest.approx(3.0 * pending_rw[model_a] + 10.0 * pending_rw[model_b]
                                                      + 16 / 3 * others)
    assert status["remaining_unknown_runs"] == 0
    failures = {f["run_id"]: f for f in status["failures"]}
    assert failures[ode[0]]["log"] == "results/logs/run_shard/x.log" and failures[ode[0]]["error"] == "RuntimeError: boom"
    shard = next(s for s, members in g.shards(grid.runs_per_job(config.prepare(yaml.safe_load(path.read_text())))).items()
                 if ode[1] in members)
    assert failures[ode[1]]["log"] == f"results/logs/run_shard/{shard}.log"
    assert failures[ode[2]]["error"].startswith("corrupt record: ")
    assert cli.main(["status", "--config", str(path)]) == 0
    text = capsys.readouterr().out
    assert f"{len(g.runs)} runs in results: 2 ok, 1 diverged, 2 failed, 1 corrupt" in text
    assert "estimated run time left: " in text and f"{ode[0]}: RuntimeError: boom\n    log: results/logs/run_shard/x.log" in text
