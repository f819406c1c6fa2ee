"""Tables without Snakemake: stable Parquet types and their parameter columns, ablation pivots
(aggregation over seeds, best marking, pooling, filters, error messages), their four
renderings, the `diffsweep table` command and the configs' declared tables."""

import csv
import io
import json
import math
import statistics

import numpy as np
import pandas as pd
import pytest
import yaml

from diffsweep import cli, config, io as ds_io, stats, tables
from diffsweep.runs import join


def run(sampler, steps, seed, value, model="oracle", dataset="ring8", status="ok", **extra):
    return {"run_id": f"{sampler}-{steps}-{seed}-{model}-{dataset}", "dataset": dataset, "model": model,
            "sampler": sampler, "steps": steps, "seed": seed, "status": status,
            "sliced_w2": value if status == "ok" else None, "mode_coverage": 1.0 - value / 10, **extra}


@pytest.fixture
def rows():
    """Two samplers x two step counts x three seeds, one cell missing and one diverged seed."""
    values = {("rw", 10): [0.5, 0.7, 0.6], ("rw", 40): [0.2, 0.25, 0.3], ("ddpm", 10): [0.9, 1.1, 1.0]}
    out = [run(s, k, seed, v) for (s, k), vs in values.items() for seed, v in enumerate(vs)]
    out.append(run("ddpm", 40, 0, math.nan, status="diverged"))
    return out


# The parameter columns of the rows above (as a manifest would list them); the rest are results.
PARAMS = ["dataset", "model", "sampler", "steps", "seed", "knob_T0", "knob_eps", "flag"]


def spec(**entry):
    return tables.TableSpec.from_config("t", {"metric": "sliced_w2", "rows": "sampler", "columns": "steps", **entry})


def ablation(rows, spec, **options):
    return tables.ablation(rows, spec, parameter_columns=PARAMS, **options)


def frame_of(rows):
    """A results table as the workflow writes it: typed, its parameter columns listed."""
    return tables.with_params(tables.typed_frame(rows), PARAMS)


# --- Parquet types ------------------------------------------------------------------------

def test_typed_frame_keeps_types_stable_across_gaps(tmp_path):
    frame = tables.typed_frame([{"a": 1, "b": True, "c": 1, "d": "x", "e": 1},
                                {"a": None, "b": None, "c": 2.5, "d": None, "e": "y"}])
    assert [str(t) for t in frame.dtypes] == ["Int64", "boolean", "float64", "str", "str"]
    frame.to_parquet(tmp_path / "t.parquet")
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert str(back["a"].dtype) == "Int64" and back["a"].isna().iloc[1]
    assert list(back["e"]) == ["1", "y"]        # mixed kinds are written as text, not dropped


def test_manifest_types_do_not_depend_on_the_oracle(root):
    _, grid = config.load(root / "config" / "smoke.yaml")
    frame = tables.manifest_frame(grid.manifest_rows("generation"))
    assert frame["model_source"].isin(["oracle"]).any()          # the oracle leaves recipe keys empty...
    assert str(frame["model_steps"].dtype) == "Int64"             # ...and they stay integers
    assert str(frame["steps"].dtype) == "Int64" and str(frame["knob_eps"].dtype) == "float64"
    assert list(frame.columns[:9]) == [c for c in tables.LEADING_COLUMNS if c != "kind"]   # kind: the manifest of every run


# --- parameter columns: from the manifest, stored with the table -----------------------------

def test_tables_carry_their_parameter_columns_through_parquet(root, tmp_path):
    _, grid = config.load(root / "config" / "smoke.yaml")
    manifest = tables.manifest_frame(grid.manifest_rows("generation"))
    params = tables.param_columns(manifest)
    assert params == [c for c in manifest.columns if c not in ("run_id", "data_id", "model_id")]
    assert {"sampler", "seed", "knob_eps", "model_lr", "model_log_every"} <= set(params)
    ds_io.write_parquet(tmp_path / "runs.parquet", manifest)
    manifest = pd.read_parquet(tmp_path / "runs.parquet")
    assert tables.param_columns(manifest) == params
    generation = join.frame("generation", grid.manifest_rows("generation"), tmp_path)   # no run has finished: every status missing
    assert set(generation["status"]) == {"missing"} and tables.param_columns(generation) == params
    likelihood = tmp_path / "likelihood.json"
    likelihood.write_text(json.dumps({"model_id": manifest["model_id"].iloc[0], "nll_bpd": 1.5}))
    generation = tables.with_model_metrics(generation, [likelihood])
    assert "model_nll_bpd" in generation and tables.param_columns(generation) == params


def test_the_training_tables_carry_their_parameter_columns(tmp_path, capsys):
    """training.parquet and training_by_sigma.parquet list theirs too (the model, the step, the
    sigma bin): `diffsweep table` pivots them instead of refusing them as written by another version."""
    logs, by_sigma = [], []
    for model_id in ("mlp-a", "mlp-b"):
        logs.append(tmp_path / f"{model_id}.log.parquet")
        pd.DataFrame({"model_id": model_id, "step": [100, 200], "loss": [0.5, 0.25]}).to_parquet(logs[-1])
        by_sigma.append(tmp_path / f"{model_id}.by_sigma.parquet")
        pd.DataFrame({"model_id": model_id, "step": [100, 100], "sigma_lo": [0.0, 1.0], "sigma_hi": [1.0, 2.0],
                      "loss": [0.5, 0.25], "x0_mse": [0.1, 0.2], "count": [9, 7]}).to_parquet(by_sigma[-1])
    ds_io.write_parquet(tmp_path / "training.parquet", tables.training_table(logs))
    ds_io.write_parquet(tmp_path / "training_by_sigma.parquet", tables.training_table(by_sigma, tables.BY_SIGMA_PARAMS))
    ds_io.write_parquet(tmp_path / "empty.parquet", tables.training_table([]))    # no trained model
    assert tables.param_columns(pd.read_parquet(tmp_path / "training.parquet")) == ["model_id", "step"]
    assert tables.param_columns(pd.read_parquet(tmp_path / "training_by_sigma.parquet")) == [
        "model_id", "step", "sigma_lo", "sigma_hi"]
    assert tables.param_columns(pd.read_parquet(tmp_path / "empty.parquet")) == ["model_id", "step"]

    assert cli.main(["table", str(tmp_path / "training.parquet"), "--rows", "model_id", "--metric", "loss",
                     "--agg", "min", "--better", "lower", "--pool", "mean"]) == 0
    assert "| mlp-a | 0.25 |" in capsys.readouterr().out     # a minimum is shown, not tested: nothing bold
    assert cli.main(["table", str(tmp_path / "training.parquet"), "--rows", "model_id", "--metric", "loss"]) == 2
    assert "the cell model_id=mlp-a holds runs that differ in step (100, 200)" in capsys.readouterr().err
    assert cli.main(["table", str(tmp_path / "training_by_sigma.parquet"), "--rows", "sigma_lo", "--cols",
                     "model_id", "--metric", "x0_mse", "--better", "lower"]) == 0
    assert "| 1 | 0.2? | 0.2? |" in capsys.readouterr().out


def test_a_result_named_like_a_parameter_is_not_one(rows):
    """Only the listed columns are parameters: a per-run measurement called model_* that differs
    between the seeds of a cell is aggregated over, and a parameter named like nothing known is
    compared."""
    rows = [dict(r, model_score_norm=0.1 * r["seed"], temperature=1.0) for r in rows]
    assert ablation(rows, spec()).cells[(("rw",), (10,))].n == 3
    rows += [dict(run("rw", 10, seed, 0.3), model_score_norm=0.0, temperature=2.0) for seed in range(3)]
    with pytest.raises(tables.MixedCellError, match=r"differ in temperature \(1, 2\)"):
        tables.ablation(rows, spec(), parameter_columns=[*PARAMS, "temperature"])


def test_a_table_without_its_parameter_columns_is_refused(tmp_path, rows, capsys):
    with pytest.raises(tables.TableError, match="does not list its parameter columns"):
        tables.param_columns(tables.typed_frame(rows))
    tables.typed_frame(rows).to_parquet(tmp_path / "old.parquet")
    assert cli.main(["table", str(tmp_path / "old.parquet"), "--rows", "sampler", "--metric", "sliced_w2"]) == 2
    assert "old.parquet: the table does not list its parameter columns" in capsys.readouterr().err


def test_distinguishing_names_the_columns_that_tell_rows_apart():
    rows = [{"k": 1, "model": m, "model_lr": lr, "eps": e} for m, lr in (("a", 0.1), ("b", 0.2)) for e in (1, 2)]
    assert tables.distinguishing(rows, ["k"], ["model", "model_lr", "eps"]) == ["model", "eps"]   # model sets lr
    rows.append({"k": 1, "model": "a", "model_lr": 0.3, "eps": 1})          # two recipes of one model
    assert tables.distinguishing(rows, ["k"], ["model", "model_lr", "eps"]) == ["model", "model_lr", "eps"]
    steps = [{"k": k, "steps": 10 * k, "seed": s} for k in (1, 2) for s in (0, 1)]
    assert tables.distinguishing(steps, ["k"], ["steps"]) == []             # constant within each key
    assert tables.distinguishing(steps, [], ["steps", "k"]) == ["steps"]    # k follows from steps


# --- restoration: a row per run and measurement ------------------------------------------------

RESTORATION_PARAMS = ["dataset", "model", "task", "operator", "noise_std", "restorer", "restorer_family", "schedule",
                      "steps", "seed", "n_measurements"]


def restoration_rows():
    out = []
    for restorer, offset in (("dps", 1.0), ("rw_cond", 0.0)):
        for task in ("box", "random_half"):
            for steps in (10, 30):
                for seed in (0, 1):
                    for measurement in (0, 1):
                        out.append({"run_id": f"{restorer}-{task}-{steps}-{seed}", "dataset": "ring8",
                                    "model": "oracle", "task": task, "operator": f"inpaint_{task}", "noise_std": 0.1,
                                    "restorer": restorer, "restorer_family": restorer, "schedule": "sigmoid",
                                    "steps": steps, "seed": seed, "n_measurements": 2, "measurement": measurement,
                                    "status": "ok", "nfe": steps,
                                    "psnr": 20 + offset + steps / 10 + measurement + 0.1 * seed})
    return out


def test_an_ablation_over_a_restoration_table(tmp_path):
    rows = restoration_rows()
    declared = tables.TableSpec.from_config("r", {"source": "restoration", "metric": "psnr",
                                                  "rows": ["task", "restorer"], "columns": "steps"})
    assert declared.better == "higher"
    table = tables.ablation(rows, declared, parameter_columns=RESTORATION_PARAMS)
    cell = table.cells[(("box", "rw_cond"), (30,))]
    assert cell.n == 4 and cell.value == pytest.approx(statistics.fmean([23, 24, 23.1, 24.1]))
    # box and random_half score the same: dps leads each column, tied with itself on the other task
    assert [table.cells[((task, "dps"), (30,))].status for task in ("box", "random_half")] == ["tied", "tied"]
    assert cell.status == "worse" and cell.low < cell.value < cell.high
    assert cell.values == {(0, 0): 23, (0, 1): 24, (1, 0): 23.1, (1, 1): 24.1}    # paired on (seed, measurement)
    assert ("psnr: mean [95% t interval] over measurements (n = 4); best: beats every other cell of its column by a "
            "paired t test on shared measurements at level 0.05, Holm-corrected over 3 comparisons") in table.note()
    mixed = rows + [dict(r, noise_std=0.2, run_id=r["run_id"] + "-loud") for r in rows]
    with pytest.raises(tables.MixedCellError, match=r"tables.ablations.r: the cell task=box, restorer=dps, steps=10 "
                                                    r"holds runs that differ in noise_std \(0.1, 0.2\)"):
        tables.ablation(mixed, declared, parameter_columns=RESTORATION_PARAMS)
    frame = tables.with_params(tables.typed_frame(rows), RESTORATION_PARAMS)
    frame.to_parquet(tmp_path / "restoration.parquet")
    outputs = {"csv": tmp_path / "r.csv", "markdown": tmp_path / "r.md"}
    tables.write_ablation(tmp_path / "restoration.parquet", declared.as_dict(), outputs)
    assert outputs["markdown"].read_text().startswith("| task | restorer \\ steps | 10 | 30 |")


def test_declared_restoration_tables_are_checked_against_the_restoration_manifest():
    manifest = list({r["run_id"]: {k: v for k, v in r.items() if k not in ("measurement", "status", "nfe", "psnr")}
                     for r in restoration_rows()}.values())
    generation = [run("rw", 10, 0, 0.5)]
    good = tables.ablation_specs({"ablations": {"r": {"source": "restoration", "metric": "psnr_of_mean",
                                                      "rows": ["restorer"], "columns": ["measurement"],
                                                      "filter": {"task": "box", "steps": 30}}}})
    tables.check_declared(good, {"generation": generation, "restoration": manifest})
    bad = tables.ablation_specs({"ablations": {"r": {"source": "restoration", "metric": "psnr", "rows": ["restorr"]}}})
    with pytest.raises(tables.TableError, match=r"tables.ablations.r.rows: unknown column 'restorr' \(did you mean "
                                                r"restorer"):
        tables.check_declared(bad, {"generation": generation, "restoration": manifest})
    with pytest.raises(tables.TableError, match=r"tables.ablations.r.source: the grid has no restoration runs"):
        tables.check_declared(good, {"generation": generation, "restoration": []})
    with pytest.raises(tables.TableError, match=r"source: 'restore' is not allowed; allowed: generation, restoration"):
        tables.ablation_specs({"ablations": {"r": {"source": "restore", "metric": "psnr", "rows": ["task"]}}})


def test_the_schema_offers_the_options_the_code_knows(root):
    schema = yaml.safe_load((root / "workflow" / "schemas" / "config.schema.yaml").read_text())
    section = schema["properties"]["tables"]["properties"]
    ablation = section["ablations"]["additionalProperties"]["properties"]
    assert ablation["source"]["enum"] == list(tables.SOURCES)
    assert ablation["aggregate"]["enum"] == list(tables.AGGREGATES)
    assert ablation["pool"]["enum"] == list(tables.POOLING)
    assert ablation["better"]["enum"] == ["auto", *tables.DIRECTIONS]
    assert ablation["ci"]["enum"] == list(tables.INTERVALS) and ablation["test"]["enum"] == list(tables.TESTS)
    assert ablation["level"]["default"] == tables.DEFAULT_LEVEL and ablation["aggregate"]["default"] == "mean_ci"
    assert section["better"]["additionalProperties"]["enum"] == list(tables.DIRECTIONS)
    heatmap = schema["properties"]["plots"]["properties"]["heatmap"]["properties"]
    assert heatmap["reduce"]["enum"] == list(tables.HEATMAP_REDUCE)


# --- the pivot ------------------------------------------------------------------------------

def test_cells_aggregate_seeds_and_mark_the_best_per_column(rows):
    table = ablation(rows, spec())
    assert table.row_keys == [("ddpm",), ("rw",)] and table.col_keys == [(10,), (40,)]
    cell = table.cells[(("rw",), (10,))]
    assert cell.n == 3 and cell.value == pytest.approx(0.6) and cell.std == pytest.approx(statistics.stdev([.5, .7, .6]))
    low, high = stats.t_interval([.5, .7, .6])[1:]
    assert (cell.low, cell.high) == pytest.approx((low, high))
    assert table.cell_text(cell) == f"0.6 [{low:.3g}, {high:.3g}]"
    # ddpm is worse by 0.4 on each of the 3 shared seeds: a paired t test separates it
    assert cell.best and table.cells[(("ddpm",), (10,))].status == "worse"
    diverged = table.cells[(("ddpm",), (40,))]
    assert diverged.n == 0 and diverged.n_diverged == 1 and table.cell_text(diverged) == "diverged"
    alone = table.cells[(("rw",), (40,))]
    assert not diverged.best and alone.status == "" and alone.low is not None   # alone in its column: nothing to mark


def test_higher_is_better_and_other_aggregates(rows):
    table = ablation(rows, spec(metric="mode_coverage", aggregate="median"))
    assert table.spec.better == "higher"
    assert table.cells[(("rw",), (10,))].value == pytest.approx(0.94)
    assert not any(c.status for c in table.cells.values())      # a median is shown, not tested
    assert "[" not in tables.to_markdown(table) and "nothing is marked: the tests compare means" in table.note()
    higher = ablation(rows, spec(metric="mode_coverage", aggregate="mean_pm"))
    assert higher.cells[(("rw",), (10,))].best
    assert higher.cell_text(higher.cells[(("rw",), (10,))]).startswith("0.94 ± ")


def test_one_seed_cells_compare_on_their_sampling_error():
    """One seed per cell: each run's <metric>_se carries the comparison (sqrt(se_a^2 + se_b^2)); a
    cell without one is untested, never bold; the caption says sampling error only."""
    rows = [run("a", 10, 0, 0.10, sliced_w2_se=0.01), run("b", 10, 0, 0.125, sliced_w2_se=0.01),
            run("c", 10, 0, 0.30, sliced_w2_se=0.01)]
    table = ablation(rows, spec(rows="sampler", columns=[]))
    statuses = [table.cells[((s,), ())].status for s in "abc"]
    assert statuses == ["tied", "tied", "worse"]      # 0.025 / (0.01 sqrt 2) = 1.77 sd: p = 0.077 (Holm: x 1)
    assert table.cells[(("a",), ())].basis == "single-seed-sampling-only"
    assert table.cells[(("a",), ())].low == pytest.approx(0.10 - 1.959964 * 0.01)
    note = table.note()
    assert "value [95% normal interval from the estimator's standard error]" in note and "seed-to-seed" in note
    assert tables.to_markdown(table).splitlines()[2] == "| a | 0.1 [0.0804, 0.12]† |"
    apart = ablation([dict(r, sliced_w2_se=0.001) for r in rows], spec(rows="sampler", columns=[]))
    assert [apart.cells[((s,), ())].status for s in "abc"] == ["best", "worse", "worse"]
    without = ablation([dict(r, sliced_w2_se=None) for r in rows], spec(rows="sampler", columns=[]))
    assert {c.status for c in without.cells.values()} == {"untested"} and not any(
        c.best for c in without.cells.values())
    assert without.cells[(("a",), ())].low is None and "untested: no shared seeds" in without.note()
    with pytest.raises(tables.TableError, match=r"sliced_w2_se of run a-10-0-oracle-ring8 is -0.01: a standard error"):
        ablation([dict(rows[0], sliced_w2_se=-0.01), *rows[1:]], spec(rows="sampler", columns=[]))


def test_uneven_n_is_printed_per_cell(rows):
    rows = [r for r in rows if not (r["sampler"] == "rw" and r["steps"] == 40 and r["seed"] == 2)]
    table = ablation(rows, spec())
    assert table.uniform_n() is None
    assert "(n=2)" in table.cell_text(table.cells[(("rw",), (40,))])


def test_a_cell_mixing_configurations_fails_naming_the_column(rows):
    rows = rows + [run("rw", 10, 0, 5.0, model="mlp")]
    with pytest.raises(tables.TableError, match=r"cell sampler=rw, steps=10 holds runs that differ in model "
                                                r"\(mlp, oracle\).*pool: best"):
        ablation(rows, spec())


def test_pool_best_shows_the_best_configuration_and_pool_mean_pools(rows):
    rows = rows + [run("rw", 10, seed, 0.1, model="mlp") for seed in range(3)]
    best = ablation(rows, spec(pool="best"))
    cell = best.cells[(("rw",), (10,))]
    assert cell.value == pytest.approx(0.1) and cell.chosen == "model=mlp" and cell.n == 3
    pooled = ablation(rows, spec(pool="mean")).cells[(("rw",), (10,))]
    assert pooled.n == 6 and pooled.value == pytest.approx((0.6 * 3 + 0.3) / 6)


def test_filters_coerce_command_line_strings(rows):
    rows = [dict(r, knob_eps=0.7 if r["sampler"] == "rw" else None, flag=r["seed"] == 0) for r in rows]
    assert {r["steps"] for r in tables.select(rows, cli.parse_filters(["steps=40"]))} == {40}
    assert {r["sampler"] for r in tables.select(rows, cli.parse_filters(["knob_eps=0.7"]))} == {"rw"}
    assert {r["sampler"] for r in tables.select(rows, cli.parse_filters(["knob_eps=null"]))} == {"ddpm"}
    assert {r["seed"] for r in tables.select(rows, cli.parse_filters(["flag=true"]))} == {0}
    assert len(tables.select(rows, {"steps": [10, 40], "sampler": "rw"})) == 6
    with pytest.raises(tables.TableError, match="'ten' is not a number"):
        tables.select(rows, {"steps": "ten"})


def test_unknown_columns_and_empty_filters_name_what_exists(rows):
    with pytest.raises(tables.TableError, match=r"rows: unknown column 'samplr' \(did you mean sampler\?\); "
                                                r"available columns: run_id, dataset, model, sampler, steps"):
        ablation(rows, spec(rows="samplr"))
    with pytest.raises(tables.TableError, match=r"filter: unknown column 'datset'"):
        ablation(rows, spec(filter={"datset": "ring8"}))
    with pytest.raises(tables.TableError, match=r"filter dataset=ring9 matches no run; values of dataset: ring8"):
        ablation(rows, spec(filter={"dataset": "ring9"}))
    with pytest.raises(tables.TableError, match=r"metric: unknown column 'mmd'"):
        ablation(rows, spec(metric="mmd"))


@pytest.mark.parametrize("entry, message", [
    ({"metric": "fancy"}, r"metric: 'fancy' is not a known metric.*tables.better"),
    ({"format": ".3q"}, r"format: '.3q' is not a number format"),
    ({"rows": ["sampler", "steps"]}, r"rows/columns: steps named twice"),
    ({"rows": "sliced_w2"}, r"metric: .sliced_w2. is also a row or column"),
    ({"pool": "best", "better": "none"}, r"pool: best needs a direction"),
])
def test_bad_declarations_fail_with_the_key(entry, message):
    with pytest.raises(tables.TableError, match=r"tables\.ablations\.t\." + message):
        spec(**entry)


def test_declared_directions_extend_the_known_ones():
    specs = tables.ablation_specs({"better": {"fancy": "higher"},
                                   "ablations": {"a": {"metric": "fancy", "rows": ["sampler"], "better": "auto"}}})
    assert specs["a"].better == "higher"


# --- renderings -----------------------------------------------------------------------------

def test_markdown(rows):
    text = tables.to_markdown(ablation(rows, spec()))
    lines = text.splitlines()
    assert lines[0] == "| sampler \\ steps | 10 | 40 |"
    assert lines[1] == "| --- | ---: | ---: |"
    assert lines[2] == "| ddpm | 1 [0.752, 1.25] | diverged |"
    assert lines[3] == "| rw | **0.6 [0.352, 0.848]** | 0.25 [0.126, 0.374] |"
    assert ("sliced_w2: mean [95% t interval] over seeds (n = 3); best: beats every other cell of its column by a "
            "paired t test on shared seeds at level 0.05, Holm-corrected over 1 comparison; tied: not separable from "
            "the best; lower is better (best in bold)") in text


def test_latex_is_booktabs_with_escapes_and_spanning_headers(rows):
    rows = [dict(r, knob_T0=0.1) for r in rows]
    table = ablation(rows, spec(rows=["dataset", "sampler"], columns=["knob_T0", "steps"]))
    tex = tables.to_latex(table, caption="Sampler_x steps", label="tab:x")
    for piece in ("\\begin{table}", "\\caption{Sampler\\_x steps. sliced\\_w2: mean", "\\label{tab:x}",
                  "\\toprule", "\\midrule", "\\bottomrule", "\\begin{tabular}{llrr}",
                  "\\multicolumn{2}{c}{knob\\_T0 = 0.1}", "\\cmidrule(lr){3-4}",
                  "dataset & sampler & steps = 10 & steps = 40 \\\\", "\\textbf{0.6 [0.352, 0.848]}",
                  " & rw & "):                      # repeated outer keys are left blank
        assert piece in tex, piece
    bare = tables.to_latex(table)
    assert bare.splitlines()[2].startswith("\\begin{tabular}") and "\\caption" not in bare


def test_csv_has_one_line_per_cell_and_the_documented_columns(rows):
    text = tables.to_csv(ablation(rows, spec()))
    read = list(csv.DictReader(io.StringIO(text)))
    assert list(read[0]) == ["sampler", "steps", *tables.CSV_COLUMNS]
    assert len(read) == 4
    rw10 = next(r for r in read if r["sampler"] == "rw" and r["steps"] == "10")
    assert rw10["best"] == "true" and rw10["n"] == "3" and float(rw10["value"]) == pytest.approx(0.6)
    assert rw10["run_ids"].split() == sorted(f"rw-10-{s}-oracle-ring8" for s in range(3))
    frame = pd.read_csv(io.StringIO(text))
    assert frame["best"].dtype == bool and frame["n"].dtype == np.int64


def test_html_marks_the_best_and_escapes(rows):
    html = tables.to_html(ablation(rows, spec(caption="a < b")))
    assert "<strong>0.6 [0.352, 0.848]</strong>" in html and "a &lt; b" in html and html.startswith("<!DOCTYPE html>")


def test_write_ablation_writes_every_format(tmp_path, rows):
    frame_of(rows).to_parquet(tmp_path / "g.parquet")
    outputs = {fmt: tmp_path / f"t.{ext}" for fmt, ext in {"markdown": "md", "latex": "tex", "csv": "csv",
                                                          "html": "html"}.items()}
    tables.write_ablation(tmp_path / "g.parquet", spec(caption="Cap").as_dict(), outputs)
    assert "\\caption{Cap." in outputs["latex"].read_text()
    assert all(path.stat().st_size > 100 for path in outputs.values())


# --- the command line -----------------------------------------------------------------------

@pytest.fixture
def parquet(tmp_path, rows):
    path = tmp_path / "generation.parquet"
    frame_of(rows).to_parquet(path)
    return path


def test_cli_table_prints_a_pivot(parquet, capsys):
    assert cli.main(["table", str(parquet), "--rows", "sampler", "--cols", "steps", "--metric", "sliced_w2",
                     "--filter", "dataset=ring8", "--format", "markdown"]) == 0
    assert "| rw | **0.6 [0.352, 0.848]** | 0.25 [0.126, 0.374] |" in capsys.readouterr().out
    assert cli.main(["table", str(parquet), "--rows", "sampler", "--metric", "sliced_w2", "--filter",
                     "steps=10", "--format", "latex"]) == 0
    assert "\\begin{tabular}{lr}" in capsys.readouterr().out
    assert cli.main(["table", str(parquet), "--rows", "sampler,steps", "--metric", "sliced_w2", "--format",
                     "csv"]) == 0
    assert capsys.readouterr().out.startswith("sampler,steps,metric,")


@pytest.mark.parametrize("args, message", [
    (["--rows", "samplr", "--metric", "sliced_w2"], "error: --rows: unknown column 'samplr' (did you mean sampler?); "
                                                    "available columns: run_id, dataset"),
    (["--rows", "sampler", "--metric", "sliced_w2", "--filter", "model=mlp"],
     "error: --filter model=mlp matches no run; values of model: oracle"),
    (["--rows", "sampler", "--metric", "sliced_w2"], "error: the cell sampler=rw holds runs that differ in steps "
                                                     "(10, 40), not only in the seed; add a --filter, put them in "
                                                     "--rows/--cols, or pass --pool best"),
    (["--rows", "sampler", "--metric", "sliced_w2", "--filter", "nothing"], "expected COLUMN=VALUE"),
    (["--rows", "sampler", "--metric", "sliced_w2", "--filter", "steps=10", "--level", "1.5"],
     "error: --level: 1.5 is not a level; allowed: a number strictly between 0 and 1"),
])
def test_cli_table_errors(parquet, capsys, args, message):
    assert cli.main(["table", str(parquet), *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_table_on_a_missing_file(tmp_path, capsys):
    assert cli.main(["table", str(tmp_path / "nope.parquet"), "--rows", "a", "--metric", "b"]) == 2
    assert "nope.parquet' does not exist; allowed: a Parquet table" in capsys.readouterr().err


# --- declared tables in the shipped configs -------------------------------------------------------

@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_shipped_configs_declare_valid_tables(root, name):
    cfg, grid = config.load(root / "config" / name)
    specs = tables.ablation_specs(cfg["tables"])
    assert len(specs) >= 2
    tables.check_declared(specs, grid.manifest_rows("generation"), cfg["tables"]["better"])
    tables.check_heatmap(cfg["plots"]["heatmap"], grid.manifest_rows("generation"))


def test_parse_time_check_rejects_a_bad_table(root):
    cfg, grid = config.load(root / "config" / "smoke.yaml")
    bad = {"ablations": {"x": {**cfg["tables"]["ablations"]["oracle_ring8_sampler_steps"], "columns": ["stepz"]}}}
    with pytest.raises(tables.TableError, match=r"tables.ablations.x.columns: unknown column 'stepz' "
                                                r"\(did you mean steps"):
        tables.check_declared(tables.ablation_specs(bad), grid.manifest_rows("generation"))
    pooled = {"ablations": {"x": {"rows": ["sampler"], "metric": "mmd", "filter": {"dataset": "ring8"}}}}
    with pytest.raises(tables.TableError, match="differ in model"):
        tables.check_declared(tables.ablation_specs(pooled), grid.manifest_rows("generation"))


def test_schema_rejects_unknown_table_keys(root, tmp_path):
    raw = yaml.safe_load((root / "config" / "smoke.yaml").read_text())
    raw["tables"]["ablations"]["oracle_ring8_sampler_steps"]["agg"] = "mean"
    with pytest.raises(config.ConfigError, match=r"tables.ablations.oracle_ring8_sampler_steps: unknown key"):
        config.prepare(raw)




# --- statistics in the tables: planted difference, null, options, power, floor ---------------

def oracle_rows(names_shifts: dict, n_seeds: int, n: int = 512, n_projections: int = 32) -> list[dict]:
    """Generation rows of configurations on ring8 with the exact oracle's samples, each moved by its
    shift; configurations share each seed's draw and projections (as the generation runs do), and
    sliced W2 is measured against one fixed exact reference set."""
    from diffsweep import gmm, metrics
    import torch

    ring8 = gmm.ring_mixture()
    reference = ring8.sample(n, torch.Generator().manual_seed(10_000))[0]
    rows = []
    for seed in range(n_seeds):
        drawn = ring8.sample(n, torch.Generator().manual_seed(seed))[0]
        directions = metrics.random_directions(n_projections, 2, torch.Generator().manual_seed(seed))
        for name, shift in names_shifts.items():
            value = metrics.sliced_wasserstein2_sorted(
                metrics.projected_sorted(drawn + torch.tensor([0.0, shift], dtype=torch.float64), directions),
                metrics.projected_sorted(reference, directions))
            rows.append(run(name, 100, seed, float(value)))
    return rows


def test_a_planted_difference_on_the_oracle_marks_the_right_best():
    """ring8 moved by 1.0 at 512 samples, 5 shared seeds (statistics.md: detected in 20 of 20 repeats)."""
    table = ablation(oracle_rows({"exact": 0.0, "moved": 1.0}, 5), spec(rows="sampler", columns=[]))
    assert table.cells[(("exact",), ())].status == "best" and table.cells[(("moved",), ())].status == "worse"
    assert table.cells[(("moved",), ())].p_adjusted < 0.05


def test_identical_configurations_under_two_names_get_no_best():
    table = ablation(oracle_rows({"a": 0.0, "b": 0.0}, 3), spec(rows="sampler", columns=[]))
    assert [table.cells[((s,), ())].status for s in "ab"] == ["tied", "tied"]     # identical: p = 1
    assert "**" not in tables.to_markdown(table) and tables.TIED_MARK in tables.to_markdown(table)


def test_interval_test_and_level_options_reach_the_comparison(rows):
    table = ablation(rows, spec(ci="percentile", test="wilcoxon", level=0.9))
    note = table.note()
    assert "90% percentile bootstrap interval" in note and "Wilcoxon signed-rank test" in note and "level 0.1" in note
    # Wilcoxon cannot reach p < 0.1 on 3 pairs (smallest two-sided p = 0.25): nothing is separated
    assert table.cells[(("rw",), (10,))].status == "tied"
    expected = stats.seed_interval([.5, .7, .6], level=0.9, method="percentile")
    assert (table.cells[(("rw",), (10,))].low, table.cells[(("rw",), (10,))].high) == pytest.approx(
        (expected.low, expected.high))
    assert tables.INTERVALS == stats.SEED_METHODS and tables.TESTS == stats.TESTS
    assert tables.DEFAULT_LEVEL == stats.DEFAULT_LEVEL


@pytest.mark.parametrize("entry, message", [
    ({"ci": "z"}, r"ci: 'z' is not allowed; allowed: t, percentile, bca"),
    ({"test": "sign"}, r"test: 'sign' is not allowed; allowed: t, wilcoxon, bootstrap"),
    ({"level": 95}, r"level: 95 is not a level"),
])
def test_bad_statistics_options_fail_with_the_key(entry, message):
    with pytest.raises(tables.TableError, match=r"tables\.ablations\.t\." + message):
        spec(**entry)


def test_power_gives_the_seeds_each_comparison_needs(parquet, capsys):
    rows = [run("a", 10, seed, v) for seed, v in enumerate([0.50, 0.52, 0.49])] + \
        [run("b", 10, seed, v) for seed, v in enumerate([0.53, 0.51, 0.55])]
    table = ablation(rows, spec(rows="sampler", columns=[]), power=True)
    needed = stats.seeds_needed([0.50 - 0.53, 0.52 - 0.51, 0.49 - 0.55])
    assert table.cells[(("b",), ())].seeds_needed == needed and table.cells[(("a",), ())].seeds_needed is None
    text = tables.to_markdown(table, power=True)
    assert f"| a | leader |\n| b | {needed} |" in text and "80% power" in text
    assert "Seeds needed" not in tables.to_markdown(table)
    assert cli.main(["table", str(parquet), "--rows", "sampler", "--cols", "steps", "--metric", "sliced_w2",
                     "--power", "--level", "0.9", "--ci", "bca", "--test", "bootstrap"]) == 0
    out = capsys.readouterr().out
    assert "| ddpm | 2 | – |" in out and "90% BCa bootstrap interval" in out and "paired bootstrap test" in out


def test_floor_stands_beside_the_value_and_in_the_csv(rows):
    rows = [dict(r, sliced_w2_floor=0.14, sliced_w2_floor_low=0.12, sliced_w2_floor_high=0.16) for r in rows]
    table = ablation(rows, spec())
    assert "floor (exact samples of the runs' size against the same reference): 0.14 [0.12, 0.16]" in table.note()
    table = ablation([r if r["steps"] == 10 else dict(r, sliced_w2_floor=0.3) for r in rows], spec())   # per cell
    assert table.cell_text(table.cells[(("rw",), (40,))]).endswith("(floor 0.3)")
    read = list(csv.DictReader(io.StringIO(tables.to_csv(table))))
    assert {r["floor_low"] for r in read if r["n"] != "0"} == {"0.12"}


def test_training_seeds_are_averaged_per_seed_and_split_from_sampling_seeds():
    """A trained model under 3 training seeds (model_seed) x 4 sampling seeds: its cell is not a
    mixed cell, averages the training seeds per sampling seed (so it still pairs with the oracle on
    the seed), and --power splits its variance into training and sampling seeds."""
    rng = np.random.default_rng(0)
    effects = {0: 0.0, 1: 0.3, 2: -0.2}
    rows = [run("rw", 10, seed, 1.0 + 0.05 * seed, model="oracle") for seed in range(4)]
    rows += [dict(run("rw", 10, seed, 2.0 + effects[t] + 0.05 * seed + rng.normal(0, 0.02), model="mlp"),
                  model_seed=t, run_id=f"mlp-{t}-{seed}") for t in effects for seed in range(4)]
    table = tables.ablation(rows, spec(rows="model", columns=[]), parameter_columns=[*PARAMS, "model_seed"], power=True)
    mlp, oracle = table.cells[(("mlp",), ())], table.cells[(("oracle",), ())]
    by_training = {t: [r["sliced_w2"] for r in rows if r.get("model_seed") == t] for t in effects}
    assert mlp.n == 12 and mlp.n_training == 3 and set(mlp.values) == {(s,) for s in range(4)}
    assert mlp.value == pytest.approx(statistics.fmean(r["sliced_w2"] for r in rows if r["model"] == "mlp"))
    assert mlp.components == stats.variance_components(by_training)
    assert mlp.components.training_share > 0.9          # the training seeds' effects dominate
    assert oracle.status == "best" and mlp.status == "worse" and oracle.components is None
    text = tables.to_markdown(table, power=True)
    assert "Training against sampling seeds" in text and f"| mlp | {table.components_text(mlp)} |" in text
    assert "averages its 3 training seeds per seed" in table.note()
    read = {r["model"]: r for r in csv.DictReader(io.StringIO(tables.to_csv(table)))}
    assert read["mlp"]["n_training"] == "3" and float(read["mlp"]["var_training"]) == pytest.approx(
        mlp.components.training)
