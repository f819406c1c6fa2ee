"""`diffsweep diff A B`: two sweeps made by the real job loop, side B with one preset's sampler
changed to scale its samples by 1.5: that preset is the only significant difference."""

import shutil

import pytest
import yaml

from diffsweep import config, io, jobs, runs, sweep_diff
from diffsweep.cli import main
from diffsweep.grid import data_dict, model_dict, run_dict, runs_per_job
from diffsweep.runs import join, kinds, loop

# A plugin sampler whose output the test scales, as a code change to it would: Euler steps of the
# probability-flow ODE, its samples multiplied by $DIFFSWEEP_TEST_SCALE (1 unless set).
PLUGIN = '''
import os

from diffsweep.samplers import register, report, steps_to_zero


@register("test_scaled_euler", knobs={}, description="Euler steps, samples scaled by $DIFFSWEEP_TEST_SCALE")
def test_scaled_euler(denoise, x, sigmas, noise, *, callback=None):
    for step, (sigma, sigma_next) in enumerate(steps_to_zero(sigmas)):
        denoised = denoise(x, sigma)
        x = x + (sigma_next - sigma) * (x - denoised) / sigma
        report(callback, step, sigma, x, denoised)
    return x * float(os.environ.get("DIFFSWEEP_TEST_SCALE", "1")), len(sigmas)
'''

CONFIG = {
    "seeds": [0, 1, 2],
    "data": {"n_train": 10, "n_reference": 200},
    "sampling": {"n_samples": 100},
    "metrics": {"likelihood": {"points": 0}},
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
    "models": {"oracle": {"source": "oracle"}},
    "samplers": {"ddim": {"family": "ddim", "steps": 8},
                 "euler": {"family": "test_scaled_euler", "schedule": "karras", "steps": 8},
                 "rw": {"family": "random_walk", "schedule": "sigmoid", "steps": 8, "knobs": {"eps": 0.7}}},
    "plugins": ["scaled.py"],
}


def sweep(folder, cfg, grid):
    """Every pending generation run of the grid through the job loop, then the generation table."""
    kind = kinds.GENERATION
    (data,) = grid.datasets.values()
    reference = folder / "data" / data.id / "reference.npz"
    if not reference.exists():
        jobs.prepare_data(data_dict(data), folder / "data" / data.id / "train.npz", reference)
    for shard, run_ids in grid.shards(runs_per_job(cfg)).items():
        pending = [run_dict(grid.runs[run_id]) for run_id in run_ids
                   if run_id not in runs.done_runs(folder, run_ids)]
        model = model_dict(grid.runs[run_ids[0]].model)
        loop.run_shard(model, pending, reference, None, folder, folder / "shards" / f"{shard}.json",
                       kind.options(cfg), device="cpu", plugins=cfg["plugins"])
    io.write_parquet(folder / kind.table, join.frame(kind.name, grid.manifest_rows(kind.name), folder))


def test_a_scaled_preset_is_the_only_significant_difference_between_two_sweeps(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scaled.py").write_text(PLUGIN)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({**CONFIG, "results": "a"}))
    cfg, grid = config.load(tmp_path / "config.yaml")
    a, b = tmp_path / "a", tmp_path / "b"
    sweep(a, cfg, grid)
    shutil.copytree(a, b, symlinks=True)
    scaled = [run_id for run_id, run in grid.runs.items() if run.preset == "euler"]
    assert runs.forget(b, scaled) == 3
    monkeypatch.setenv("DIFFSWEEP_TEST_SCALE", "1.5")
    sweep(b, cfg, grid)

    result = sweep_diff.compare(a, b)
    assert result.matched == 9 and not result.only_a and not result.only_b and not result.not_ok
    significant = {d.point for d in result.significant}
    assert significant == {"oracle / ring8 / euler"}
    by_metric = {d.metric: d for d in result.differences if d.point == "oracle / ring8 / euler"}
    assert by_metric["sliced_w2"].significant and by_metric["sliced_w2"].estimate > 0.5   # radius 4 -> 6
    assert by_metric["sliced_w2"].n == 3 and by_metric["sliced_w2"].basis == sweep_diff.PAIRED_SEEDS
    unchanged = [d for d in result.differences if d.point != "oracle / ring8 / euler"]
    assert unchanged and all(d.basis == sweep_diff.IDENTICAL for d in unchanged)   # same code, seed: same samples

    # the command: the same, as text and as an HTML page; a run B lost is listed, not compared
    lost = next(run_id for run_id, run in grid.runs.items() if run.preset == "ddim")
    runs.forget(b, [lost])
    io.write_parquet(b / kinds.GENERATION.table, join.frame("generation", grid.manifest_rows("generation"), b))
    assert main(["diff", str(a), str(b), "--metric", "sliced_w2", "--html", str(tmp_path / "diff.html")]) == 0
    out = capsys.readouterr().out
    assert "generation sliced_w2: 1 of 3 points differ significantly; 2 identical" in out
    assert "matched but not ok on a side (1 runs" in out and "oracle / ring8 / ddim seed " in out
    assert "significant: 1\n  generation sliced_w2: oracle / ring8 / euler" in out
    page = (tmp_path / "diff.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "oracle / ring8 / euler" in page and "<script" not in page
    assert sweep_diff.render_html(result).startswith('<section class="diffsweep-diff">')


def test_one_seed_rests_on_the_se_columns_and_bad_folders_are_one_line(tmp_path, capsys):
    import pandas as pd

    from diffsweep import tables

    def folder(name, value, se, steps=(1, 2), dataset="ring8"):
        rows = [{"run_id": f"p-{k:016x}", "dataset": dataset, "model": "oracle", "sampler": "p", "steps": k,
                 "seed": 0, "status": "ok", "sliced_w2": value + k, "sliced_w2_se": se} for k in steps]
        frame = tables.with_params(tables.typed_frame(rows), ["dataset", "model", "sampler", "steps", "seed"])
        io.write_parquet(tmp_path / name / "tables" / "generation.parquet", frame)
        return tmp_path / name
    result = sweep_diff.compare(folder("a", 1.0, 0.1), folder("b", 1.5, 0.1, steps=(1, 2, 3)), ["sliced_w2"])
    assert result.only_b == [("generation", f"p-{3:016x}", "oracle / ring8 / p (steps=3)")] and not result.only_a
    (d, _) = result.differences
    assert d.basis == sweep_diff.SAMPLING_ONLY and d.n == 1
    assert d.high - d.estimate == pytest.approx(1.959964 * 0.1 * 2 ** 0.5)
    assert d.p == pytest.approx(2 * 0.000203, rel=0.01) and d.significant       # z = 0.5 / 0.1414 = 3.54
    no_se = sweep_diff.compare(folder("c", 1.0, float("nan")), folder("d", 1.5, float("nan")), ["sliced_w2"])
    assert {d.basis for d in no_se.differences} == {sweep_diff.UNTESTED} and not no_se.significant
    moved = sweep_diff.compare(tmp_path / "a", folder("e", 1.0, 0.1, dataset="grid25"), ["sliced_w2"])
    assert moved.changed == [("generation", f"p-{k:016x}", "dataset: ring8 -> grid25") for k in (1, 2)]
    assert not moved.only_a and not moved.only_b and moved.matched == 0
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "nowhere")]) == 2
    assert capsys.readouterr().err == f"error: B: '{tmp_path / 'nowhere'}' does not exist; allowed: a results folder\n"
    (tmp_path / "empty").mkdir()
    assert main(["diff", str(tmp_path / "empty"), str(tmp_path / "empty")]) == 2
    assert "holds tables/generation.parquet or tables/restoration.parquet" in capsys.readouterr().err
    assert main(["diff", str(tmp_path / "a"), str(tmp_path / "b"), "--metric", "psnr"]) == 2
    assert capsys.readouterr().err == "error: --metric: 'psnr' is not a numeric column of both sides' tables\n"
