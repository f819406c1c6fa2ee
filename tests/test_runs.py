"""The run pipeline without Snakemake (diffsweep.runs): a shard job of either kind writes one
record line per run to its shard's record file and its files to the shard's archive under
results/records/, a broken run is recorded as failed and loses no other run, keep_samples changes
what is stored and no metric, and one aggregator turns manifest rows and records into a typed
table that lists its parameter columns."""

import copy
import math

import pytest

from diffsweep import config, io, jobs, runs, samplers, tables
from diffsweep.runs import loop, join
from diffsweep import grid as ds_grid

CONFIG = {
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
    "models": {"oracle": {"source": "oracle"}},
    "samplers": {"ddim": {"family": "ddim", "steps": [3, 5]}},
    "data": {"n_train": 100, "n_reference": 200},
    "sampling": {"n_samples": 100},
    "metrics": {"bootstrap_resamples": 20},     # few: the bootstrap's cost is not what these tests are about
    "restoration": {"tasks": {"half": {"operator": "inpaint_random", "noise_std": 0.05, "data_range": "zero_one"}},
                    "restorers": {"ddrm": {"family": "ddrm", "steps": 4}}, "n_measurements": 2, "n_samples": 5},
}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """The grid of CONFIG and a results folder holding its dataset."""
    results = tmp_path_factory.mktemp("sweep") / "results"
    cfg = config.prepare(copy.deepcopy(CONFIG))
    grid = ds_grid.build(cfg)
    (model,) = grid.models.values()
    folder = results / "data" / model.data.id
    jobs.prepare_data(ds_grid.data_dict(model.data), folder / "train.npz", folder / "reference.npz")
    return cfg, grid, model, results


def run_shard(sweep, kind: str, run_dicts: list[dict], keep="all", results=None) -> None:
    cfg, _, model, data = sweep
    results = results or data
    options = ({"metrics": {k: v for k, v in cfg["metrics"].items() if k != "likelihood"}} if kind == "generation"
               else {"metrics": cfg["restoration"]["metrics"], "strips": 0})
    loop.run_shard(ds_grid.model_dict(model), run_dicts, data / "data" / model.data.id / "reference.npz", None,
                   results, results / "shards" / f"{kind}.json", {**options, "keep_samples": keep}, device="cpu",
                   log_path="job.log")


def test_a_broken_run_is_recorded_as_failed_and_loses_no_other_run(sweep):
    _, grid, _, results = sweep
    good, broken = (ds_grid.run_dict(grid.runs[run_id]) for run_id in sorted(grid.of_kind("generation")))
    broken["family"] = "no_such_sampler"
    run_shard(sweep, "generation", [good, broken])
    assert io.read_json(results / "shards" / "generation.json")["runs"] == {good["id"]: "ok", broken["id"]: "failed"}
    assert io.read_json(results / "layout.json") == {"version": runs.LAYOUT_VERSION}
    # files grow with shard jobs, not runs: one record file and one archive per shard
    assert sorted(path.name for path in (results / "records").iterdir()) == ["generation.archive", "generation.jsonl"]
    record = runs.read_record(results, good["id"])
    assert (record["kind"], record["status"], record["row"], record["params"]) == \
        ("generation", "ok", good["row"], good["identity"])
    assert record["nfe"] > 0 and record["metrics"]["sliced_w2"] > 0
    assert record["fused_with"] == 2    # drew in a fused group of both runs: its wall_s is its share
    assert record["archive"] == "generation.archive" and set(record["files"]) == {"samples.npz", "bootstrap.npz"}
    assert min(file["offset"] for file in record["files"].values()) == 0
    assert len(record["files"]["samples.npz"]["sha256"]) == 64
    assert runs.read_run_arrays(results, good["id"])["x"].shape == (100, 2)
    failure = runs.read_record(results, broken["id"])
    assert (failure["status"], failure["nfe"], failure["log"]) == ("failed", None, "job.log")
    message = "ValueError: unknown sampler 'no_such_sampler'; allowed: " + ", ".join(samplers.names())
    assert len(failure["error"]) <= 300 and message.startswith(failure["error"].removesuffix("..."))
    # a failed run is not done: the next invocation retries it
    assert runs.done_runs(results, grid.runs) == {good["id"]}
    assert [r["run_id"] for r in runs.failed_runs(results, grid.runs)] == [broken["id"]]
    shards = grid.shards({"generation": 8, "restoration": 8})   # the shard stays a target for its broken run
    assert any(broken["id"] in shards[shard] for shard in ds_grid.pending_shards(shards, {good["id"]}))

    table = join.frame("generation", grid.manifest_rows("generation"), results)
    assert list(table["status"]) == ["ok", "failed"] and list(table["run_id"]) == [good["id"], broken["id"]]
    assert table["error"].isna().tolist() == [True, False] and table["log"].tolist()[1] == f"{results}/job.log"
    assert str(table["nfe"].dtype) == "Int64" and table["nfe"].isna().tolist() == [False, True]
    assert str(table["fused_with"].dtype) == "Int64" and table["fused_with"].tolist() == [2, 2]
    params = table.attrs["param_columns"]
    assert params == [c for c in join.manifest(grid.manifest_rows("generation")).columns if c not in tables.ID_COLUMNS]
    assert {"sampler", "steps", "seed", "dataset_preset"} <= set(params)
    assert not {"run_id", "model_id", "data_id", "status", "nfe", "sliced_w2", "error", "log"} & set(params)
    assert "1 run(s) failed" in runs.failure_report(runs.failed_runs(results, grid.runs), results)


def test_fail_fast_stops_at_the_first_failed_run(sweep, tmp_path):
    cfg, grid, model, results = sweep
    broken, good = (ds_grid.run_dict(grid.runs[run_id]) for run_id in sorted(grid.of_kind("generation")))
    broken["family"] = "no_such_sampler"
    with pytest.raises(RuntimeError, match=f"run {broken['id']} failed \\(fail_fast is set, the job stops\\): ValueError: unknown sampler"):
        loop.run_shard(ds_grid.model_dict(model), [broken, good], results / "data" / model.data.id / "reference.npz",
                       None, tmp_path, tmp_path / "shards" / "x.json",
                       {"metrics": {k: v for k, v in cfg["metrics"].items() if k != "likelihood"}}, device="cpu",
                       fail_fast=True)
    assert runs.run_state(tmp_path, broken["id"])[0] == "failed"
    assert runs.run_state(tmp_path, good["id"])[0] == "missing" and not (tmp_path / "shards" / "x.json").exists()


def test_a_restoration_shard_writes_one_table_row_per_measurement(sweep):
    _, grid, _, results = sweep
    (run,) = grid.of_kind('restoration').values()
    run_shard(sweep, "restoration", [ds_grid.run_dict(run)])
    assert io.read_json(results / "shards" / "restoration.json")["kind"] == "restoration"
    arrays = runs.read_run_arrays(results, run.id)
    assert arrays["samples"].shape == (2, 5, 2) and arrays["y"].shape[0] == 2
    assert set(runs.read_run_arrays(results, run.id, "operator.npz")) == {"mask"}

    table = join.frame("restoration", grid.manifest_rows("restoration"), results)
    assert list(table["measurement"]) == [0, 1] and set(table["status"]) == {"ok"}
    assert (table["noise_std"] == 0.05).all() and (table["noise_std_effective"] == 0.1).all()   # [0, 1] -> [-1, 1]
    assert (table["nfe"] == 4).all() and (table["psnr"] > 0).all()
    assert (table["fused_with"] == 1).all()     # a shard of one run draws alone: its wall_s is its own
    assert {"restorer", "task", "operator_missing", "noise_std", "n_measurements"} <= set(table.attrs["param_columns"])
    assert "measurement" not in table.attrs["param_columns"]


@pytest.mark.parametrize("kind", ["generation", "restoration"])
def test_keep_samples_changes_what_is_stored_and_no_metric(sweep, tmp_path, kind):
    _, grid, _, _ = sweep
    run = ds_grid.run_dict(min(grid.of_kind(kind).values(),
                               key=lambda r: r.id))
    records = {}
    for keep in ("all", 3, "none"):
        results = tmp_path / str(keep)
        run_shard(sweep, kind, [run], keep=keep, results=results)
        records[keep] = runs.read_record(results, run["id"])
        if keep == "none":     # the bootstrap's replicates are no samples: kept for paired comparisons
            assert set(records[keep]["files"]) == ({"bootstrap.npz"} if kind == "generation" else set())
            with pytest.raises(runs.NoSamples, match=f"run {run['id']} stored no samples.npz"):
                runs.read_run_arrays(results, run["id"])
        else:
            arrays = runs.read_run_arrays(results, run["id"])
            shape = {"generation": (100, 2), "restoration": (2, 5, 2)}[kind] if keep == "all" else \
                {"generation": (3, 2), "restoration": (2, 3, 2)}[kind]
            assert arrays["x" if kind == "generation" else "samples"].shape == shape
    results_key = "metrics" if kind == "generation" else "measurements"
    assert records["all"][results_key] == records[3][results_key] == records["none"][results_key]


# --- divergence: one rule for both kinds, in the job loop (loop.divergence) -------------------

def scaled(registry, family: str, factor: float, monkeypatch) -> str:
    """A plugin method: `family` with its output multiplied by `factor`, registered for this test only."""
    import dataclasses

    spec = registry.get(family)

    def fn(*args, **knobs):
        output, nfe = spec.fn(*args, **knobs)
        return output * factor, nfe
    name = f"{family}_times_{factor}".replace(".", "_")
    monkeypatch.setitem(registry._entries, name, dataclasses.replace(spec, name=name, fn=fn))
    return name


@pytest.mark.parametrize("factor,status,reason", [
    (1.0, "ok", None),
    (3.0, "ok", None),                 # merely inaccurate: the samples stay about the data's size
    (30.0, "diverged", "ran away"),    # no mode covered (as a walk that never left sigma_max's scale)
    (1e30, "diverged", "ran away"),
    (math.nan, "diverged", "not finite"),
])
def test_a_generation_run_whose_samples_ran_away_is_diverged_with_the_reason(sweep, tmp_path, monkeypatch, factor,
                                                                              status, reason):
    from diffsweep import cli
    from diffsweep.samplers.registry import SAMPLERS

    _, grid, _, _ = sweep
    run = ds_grid.run_dict(min(grid.of_kind("generation").values(), key=lambda r: r.id))
    run["family"] = scaled(SAMPLERS, "ddim", factor, monkeypatch)
    run_shard(sweep, "generation", [run], results=tmp_path)
    record = runs.read_record(tmp_path, run["id"])
    assert record["status"] == status
    if reason is None:
        assert "error" not in record and record["metrics"]["sliced_w2"] > 0
        return
    assert record["error"].startswith(reason) and record["metrics"] == {}
    # shown as diverged everywhere, as a non-finite run always was: done (never recomputed), not a failure
    assert runs.done_runs(tmp_path, [run["id"]]) == {run["id"]} and runs.failed_runs(tmp_path, [run["id"]]) == []
    table = join.frame("generation", grid.manifest_rows("generation"), tmp_path).set_index("run_id")
    assert table.loc[run["id"], "status"] == "diverged" and table.loc[run["id"], "error"] == record["error"]
    assert cli.sweep_status(grid, tmp_path)["total"]["diverged"] == 1


def test_a_restoration_whose_restorations_ran_away_is_diverged_with_the_reason(sweep, tmp_path, monkeypatch):
    from diffsweep.restoration.registry import RESTORERS

    _, grid, _, _ = sweep
    (run,) = (ds_grid.run_dict(r) for r in grid.of_kind('restoration').values())
    run["family"] = scaled(RESTORERS, "ddrm", 1e6, monkeypatch)
    run_shard(sweep, "restoration", [run], results=tmp_path)
    record = runs.read_record(tmp_path, run["id"])
    assert record["status"] == "diverged" and record["error"].startswith("ran away")
    assert [set(row) for row in record["measurements"]] == [{"measurement", "lpips_status"}] * 2   # no metric
    table = join.frame("restoration", grid.manifest_rows("restoration"), tmp_path)
    assert set(table["status"]) == {"diverged"} and set(table["error"]) == {record["error"]}


def test_the_data_scale_is_the_reference_sets_centre_and_extent():
    import torch

    reference = torch.tensor([[0.0, 0.0], [2.0, 0.0], [1.0, 3.0], [1.0, -3.0]])
    scale = loop.DataScale.of(reference)
    assert scale.centre.tolist() == [1.0, 0.0] and scale.extent == 3.0
    at_the_edge = torch.tensor([[1.0 + loop.RUNAWAY_FACTOR * scale.extent * 0.99, 0.0]])
    assert loop.divergence(at_the_edge, scale) is None
    assert loop.divergence(at_the_edge * 1.02, scale).startswith("ran away")
    # sampling.runaway_factor: its default is the rule's; 0 turns the runaway check off, not the finiteness check
    assert config.prepare(copy.deepcopy(CONFIG))["sampling"]["runaway_factor"] == loop.RUNAWAY_FACTOR
    assert loop.divergence(at_the_edge * 1e6, scale, 0) is None
    assert loop.divergence(at_the_edge * math.inf, scale, 0).startswith("not finite: 1 of 1 samples")
    assert loop.divergence(at_the_edge, scale, 2.0).startswith("ran away")


# --- the estimator's own sampling error per run (docs/statistics.md) and pairing ---------------

@pytest.fixture
def one_thread():
    """One torch thread, as a shard job has (rule run_shard: threads 1): the bootstrap's many small
    tensor operations are slow with threads fighting over a loaded machine's cores."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_generation_run_stores_its_bootstrap_and_the_se_of_the_metric_it_recorded(sweep, tmp_path, one_thread):
    import numpy as np
    import torch

    from diffsweep import metrics, stats

    cfg, grid, _, data = sweep
    run = ds_grid.run_dict(min(grid.of_kind("generation").values(), key=lambda r: r.id))
    run_shard(sweep, "generation", [run], results=tmp_path)
    record = runs.read_record(tmp_path, run["id"])
    replicates = runs.read_run_arrays(tmp_path, run["id"], "bootstrap.npz")
    resamples = cfg["metrics"]["bootstrap_resamples"]
    assert {name: (array.dtype, array.shape) for name, array in replicates.items()} == \
        {name: (np.float32, (resamples,)) for name in ("sliced_w2", "mmd", "energy_distance")}
    for name, array in replicates.items():
        assert record["metrics"][f"{name}_se"] == pytest.approx(array.astype(float).std(ddof=1), rel=1e-6)
        assert record["metrics"][f"{name}_se"] > 0
    # in the job: the fast paths with the run's settings and seed, the estimate computed afresh, give
    # the values finish records, and finish's se are their replicates' sd (float64 samples here)
    _, model, reference_path = grid.runs[run["id"]], ds_grid.model_dict(grid.runs[run["id"]].model), \
        data / "data" / grid.runs[run["id"]].model.data.id / "reference.npz"
    resamples = 20
    options = {k: v for k, v in cfg["metrics"].items() if k != "likelihood"}
    job, _ = loop.start_job("generation", model, reference_path, None, tmp_path, torch.device("cpu"), None, None,
                            {"metrics": {**options, "bootstrap_resamples": resamples}}, 0)
    samples = job.reference[:150].double() + 0.1 * torch.randn(150, 2, generator=torch.Generator().manual_seed(4),
                                                                 dtype=torch.float64)
    recorded = job.finish(run, samples, tmp_path / "staged")["metrics"]
    options, seed, reference = cfg["metrics"], run["seed"], job.reference.double()
    directions = metrics.random_directions(options["n_projections"], 2, torch.Generator().manual_seed(seed))
    fresh = {"sliced_w2": stats.sliced_w2_replicates(samples, reference, directions, resamples, seed),
             "mmd": stats.mmd_replicates(samples, reference, options["mmd_bandwidths"], resamples, seed),
             "energy_distance": stats.energy_distance_replicates(samples, reference, resamples, seed)}
    for name, (estimate, fresh_replicates) in fresh.items():
        assert estimate == recorded[name], name
        assert recorded[f"{name}_se"] == fresh_replicates.std(ddof=1), name


def test_bootstrap_resamples_0_turns_it_off_and_changes_no_metric(sweep, tmp_path, one_thread):
    cfg, grid, _, _ = sweep
    run = ds_grid.run_dict(min(grid.of_kind("generation").values(), key=lambda r: r.id))
    off = copy.deepcopy(sweep)
    off[0]["metrics"]["bootstrap_resamples"] = 0
    run_shard(off, "generation", [run], results=tmp_path / "off")
    run_shard(sweep, "generation", [run], results=tmp_path / "on")
    without, with_se = (runs.read_record(tmp_path / name, run["id"]) for name in ("off", "on"))
    assert "bootstrap.npz" not in without["files"] and "bootstrap.npz" in with_se["files"]
    assert without["metrics"] == {k: v for k, v in with_se["metrics"].items() if not k.endswith("_se")}
    assert run["id"] == ds_grid.run_dict(ds_grid.build(config.prepare(
        {**copy.deepcopy(CONFIG), "metrics": {"bootstrap_resamples": 7}})).runs[run["id"]])["id"]   # not in run ids
    assert config.prepare(copy.deepcopy({**CONFIG, "metrics": {}}))["metrics"]["bootstrap_resamples"] == 200


def test_a_restoration_row_has_the_se_of_its_means_over_restorations(sweep, one_thread):
    _, grid, _, results = sweep
    (run,) = grid.of_kind("restoration").values()
    run_shard(sweep, "restoration", [ds_grid.run_dict(run)], results=results / "se")
    record = runs.read_record(results / "se", run.id)
    arrays = runs.read_run_arrays(results / "se", run.id)
    from diffsweep.restoration import metrics as rmetrics
    import torch
    for j, row in enumerate(record["measurements"]):
        per_sample = rmetrics.psnr(torch.as_tensor(arrays["samples"][j], dtype=torch.float64),
                                   torch.as_tensor(arrays["truth"][j:j + 1], dtype=torch.float64).expand(5, -1))
        # the stored restorations are float32: the recomputed PSNR agrees to that precision
        assert row["psnr_se"] == pytest.approx(float(per_sample.std() / math.sqrt(5)), rel=1e-4)
        assert row["sliced_w2_posterior_se"] > 0 and row["data_consistency_se"] > 0


class FirstDraw(Exception):
    """Raised by the spy on initial_sample: the test needs the start, not the samples."""


def starts(module, monkeypatch) -> list:
    """Spy on `module.initial_sample`: each call's start and noise source are appended, then FirstDraw."""
    seen = []

    def spy(*args, **kwargs):
        x = loop_source.initial_sample(*args, **kwargs)
        seen.append((x, args[3]))
        raise FirstDraw
    monkeypatch.setattr(module, "initial_sample", spy)
    return seen


from diffsweep.runs import source as loop_source  # noqa: E402


def assert_paired(draws, rows: int) -> None:
    """Every start is the same standard normal draw up to its scale (init: unit, sigma_max, vp_prior),
    row by row, and every noise source's next draw is the same."""
    import torch

    first, noise = draws[0]
    unit = first[:rows] / first[:rows].std()
    following = noise(torch.empty_like(first))[:rows]
    for x, other_noise in draws[1:]:
        torch.testing.assert_close(x[:rows] / x[:rows].std(), unit, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(other_noise(torch.empty_like(x))[:rows], following, rtol=0, atol=0)


def test_generation_runs_sharing_a_seed_start_from_the_same_draw_whatever_the_sampler_and_steps(monkeypatch):
    """Every sampler family of the registry, at two step counts: the initial draw (and the next noise
    draw) of a seed is the same, so runs of one seed are paired (docs/statistics.md, Pairing)."""
    import torch

    from diffsweep.runs import generation

    presets = {f"{family}_{steps}": {"family": family, "steps": steps}
               for family in samplers.names() for steps in (4, 6)}
    cfg = config.prepare({**copy.deepcopy(CONFIG), "samplers": presets, "sampling": {"n_samples": 300},
                          "seeds": [0, 1]})
    grid = ds_grid.build(cfg)
    seen = starts(generation, monkeypatch)
    by_seed = {}
    for run in sorted(grid.of_kind("generation").values(), key=lambda r: r.id):
        with pytest.raises(FirstDraw):
            generation.draw_samples(ds_grid.run_dict(run), None, 2, torch.float64, "cpu")
        by_seed.setdefault(run.seed, []).append(seen[-1])
    assert {seed: len(draws) for seed, draws in by_seed.items()} == {0: len(presets), 1: len(presets)}
    for draws in by_seed.values():
        assert_paired(draws, 300)
    assert not torch.allclose(by_seed[0][0][0], by_seed[1][0][0])     # another seed, another draw


def test_restorers_sharing_a_seed_see_the_same_measurements_and_noise_streams(monkeypatch):
    """Truth, random mask and measurement noise y of a (seed, measurement) are the same for every
    restorer, and so are the restorers' start and noise streams per restoration."""
    import torch

    from diffsweep import data, restoration
    from diffsweep.runs import restoration as restoration_job

    restorers = {name: {"family": name, "steps": 5} for name in ("ddrm", "dps", "pigdm", "twisted_smc", "daps")}
    cfg = config.prepare({**copy.deepcopy(CONFIG), "restoration": {
        **CONFIG["restoration"], "restorers": restorers, "n_measurements": 3, "n_samples": 6, "seeds": [0, 1]}})
    grid = ds_grid.build(cfg)
    dataset = data.make_dataset("gmm", preset="ring8")
    reference = dataset.sample(50, torch.Generator().manual_seed(9)).double()
    measured, seen = {}, starts(restoration_job, monkeypatch)
    for run in grid.of_kind("restoration").values():
        run = ds_grid.run_dict(run)
        operator, truth, y = restoration_job.measure(run, dataset, reference, torch.Generator().manual_seed(run["seed"]))
        with pytest.raises(FirstDraw):
            restoration_job.restore(run, None, operator, y, (2,), torch.float64, "cpu")
        measured.setdefault(run["seed"], []).append((operator.arrays(), truth, y, seen[-1]))
    assert {seed: len(runs_of_seed) for seed, runs_of_seed in measured.items()} == {0: 5, 1: 5}
    for runs_of_seed in measured.values():
        arrays, truth, y, _ = runs_of_seed[0]
        for other_arrays, other_truth, other_y, _ in runs_of_seed[1:]:
            assert other_arrays.keys() == arrays.keys()
            for key in arrays:
                torch.testing.assert_close(torch.as_tensor(other_arrays[key]), torch.as_tensor(arrays[key]), rtol=0, atol=0)
            torch.testing.assert_close(other_truth, truth, rtol=0, atol=0)
            torch.testing.assert_close(other_y, y, rtol=0, atol=0)
        assert_paired([start for *_, start in runs_of_seed], 18)
    assert not torch.equal(measured[0][0][2], measured[1][0][2])     # another seed, other measurements
