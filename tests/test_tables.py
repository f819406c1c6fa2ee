"""Tables and figures without Snakemake: stable Parquet types, ablation pivots (aggregation over
seeds, best marking, pooling, filters, error messages), their four renderings, the
`diffsweep table` command, the configs' declared tables, and the figures."""

import csv
import io
import math
import statistics

import numpy as np
import pandas as pd
import pytest
import yaml

from diffsweep import cli, config, plots, tables


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


def spec(**entry):
    return tables.TableSpec.from_config("t", {"metric": "sliced_w2", "rows": "sampler", "columns": "steps", **entry})


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
    frame = tables.manifest_frame(grid.manifest_rows())
    assert frame["model_source"].isin(["oracle"]).any()          # the oracle leaves recipe keys empty...
    assert str(frame["model_steps"].dtype) == "Int64"             # ...and they stay integers
    assert str(frame["steps"].dtype) == "Int64" and str(frame["knob_eps"].dtype) == "float64"
    assert list(frame.columns[:9]) == tables.LEADING_COLUMNS


# --- the pivot ------------------------------------------------------------------------------

def test_cells_aggregate_seeds_and_mark_the_best_per_column(rows):
    table = tables.ablation(rows, spec())
    assert table.row_keys == [("ddpm",), ("rw",)] and table.col_keys == [(10,), (40,)]
    cell = table.cells[(("rw",), (10,))]
    assert cell.n == 3 and cell.value == pytest.approx(0.6) and cell.std == pytest.approx(statistics.stdev([.5, .7, .6]))
    assert table.cell_text(cell) == "0.6 ± 0.1"
    assert cell.best and not table.cells[(("ddpm",), (10,))].best
    diverged = table.cells[(("ddpm",), (40,))]
    assert diverged.n == 0 and diverged.n_diverged == 1 and table.cell_text(diverged) == "diverged"
    assert not diverged.best and table.cells[(("rw",), (40,))].best is False   # alone in its column: nothing to mark


def test_higher_is_better_and_other_aggregates(rows):
    table = tables.ablation(rows, spec(metric="mode_coverage", aggregate="median"))
    assert table.spec.better == "higher"
    assert table.cells[(("rw",), (10,))].best and table.cells[(("rw",), (10,))].value == pytest.approx(0.94)
    assert "±" not in table.to_markdown()


def test_ties_in_print_are_all_marked():
    rows = [run("a", 10, 0, 0.1231), run("b", 10, 0, 0.1229), run("c", 10, 0, 0.2)]
    table = tables.ablation(rows, spec(rows="sampler", columns=[]))
    assert [table.cells[((s,), ())].best for s in "abc"] == [True, True, False]


def test_uneven_n_is_printed_per_cell(rows):
    rows = [r for r in rows if not (r["sampler"] == "rw" and r["steps"] == 40 and r["seed"] == 2)]
    table = tables.ablation(rows, spec())
    assert table.uniform_n() is None
    assert "(n=2)" in table.cell_text(table.cells[(("rw",), (40,))])


def test_a_cell_mixing_configurations_fails_naming_the_column(rows):
    rows = rows + [run("rw", 10, 0, 5.0, model="mlp")]
    with pytest.raises(tables.TableError, match=r"cell sampler=rw, steps=10 holds runs that differ in model "
                                                r"\(mlp, oracle\).*pool: best"):
        tables.ablation(rows, spec())


def test_pool_best_shows_the_best_configuration_and_pool_mean_pools(rows):
    rows = rows + [run("rw", 10, seed, 0.1, model="mlp") for seed in range(3)]
    best = tables.ablation(rows, spec(pool="best"))
    cell = best.cells[(("rw",), (10,))]
    assert cell.value == pytest.approx(0.1) and cell.chosen == "model=mlp" and cell.n == 3
    pooled = tables.ablation(rows, spec(pool="mean")).cells[(("rw",), (10,))]
    assert pooled.n == 6 and pooled.value == pytest.approx((0.6 * 3 + 0.3) / 6)


def test_filters_coerce_command_line_strings(rows):
    rows = [dict(r, knob_eps=0.7 if r["sampler"] == "rw" else None, flag=r["seed"] == 0) for r in rows]
    assert {r["steps"] for r in tables.select(rows, tables.parse_filters(["steps=40"]))} == {40}
    assert {r["sampler"] for r in tables.select(rows, tables.parse_filters(["knob_eps=0.7"]))} == {"rw"}
    assert {r["sampler"] for r in tables.select(rows, tables.parse_filters(["knob_eps=null"]))} == {"ddpm"}
    assert {r["seed"] for r in tables.select(rows, tables.parse_filters(["flag=true"]))} == {0}
    assert len(tables.select(rows, {"steps": [10, 40], "sampler": "rw"})) == 6
    with pytest.raises(tables.TableError, match="'ten' is not a number"):
        tables.select(rows, {"steps": "ten"})


def test_unknown_columns_and_empty_filters_name_what_exists(rows):
    with pytest.raises(tables.TableError, match=r"rows: unknown column 'samplr' \(did you mean sampler\?\); "
                                                r"available columns: run_id, dataset, model, sampler, steps"):
        tables.ablation(rows, spec(rows="samplr"))
    with pytest.raises(tables.TableError, match=r"filter: unknown column 'datset'"):
        tables.ablation(rows, spec(filter={"datset": "ring8"}))
    with pytest.raises(tables.TableError, match=r"filter dataset=ring9 matches no run; values of dataset: ring8"):
        tables.ablation(rows, spec(filter={"dataset": "ring9"}))
    with pytest.raises(tables.TableError, match=r"metric: unknown column 'mmd'"):
        tables.ablation(rows, spec(metric="mmd"))


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
    text = tables.ablation(rows, spec()).to_markdown()
    lines = text.splitlines()
    assert lines[0] == "| sampler \\ steps | 10 | 40 |"
    assert lines[1] == "| --- | ---: | ---: |"
    assert lines[2] == "| ddpm | 1 ± 0.1 | diverged |"
    assert lines[3] == "| rw | **0.6 ± 0.1** | 0.25 ± 0.05 |"
    assert "sliced_w2: mean ± std over n = 3 seeds per cell; lower is better; the best value per column is in bold" \
        in text


def test_latex_is_booktabs_with_escapes_and_spanning_headers(rows):
    rows = [dict(r, knob_T0=0.1) for r in rows]
    table = tables.ablation(rows, spec(rows=["dataset", "sampler"], columns=["knob_T0", "steps"]))
    tex = table.to_latex(caption="Sampler_x steps", label="tab:x")
    for piece in ("\\begin{table}", "\\caption{Sampler\\_x steps. sliced\\_w2: mean", "\\label{tab:x}",
                  "\\toprule", "\\midrule", "\\bottomrule", "\\begin{tabular}{llrr}",
                  "\\multicolumn{2}{c}{knob\\_T0 = 0.1}", "\\cmidrule(lr){3-4}",
                  "dataset & sampler & steps = 10 & steps = 40 \\\\", "\\textbf{0.6 $\\pm$ 0.1}",
                  " & rw & "):                      # repeated outer keys are left blank
        assert piece in tex, piece
    bare = table.to_latex()
    assert bare.splitlines()[2].startswith("\\begin{tabular}") and "\\caption" not in bare


def test_csv_has_one_line_per_cell_and_the_documented_columns(rows):
    text = tables.ablation(rows, spec()).to_csv()
    read = list(csv.DictReader(io.StringIO(text)))
    assert list(read[0]) == ["sampler", "steps", *tables.CSV_COLUMNS]
    assert len(read) == 4
    rw10 = next(r for r in read if r["sampler"] == "rw" and r["steps"] == "10")
    assert rw10["best"] == "true" and rw10["n"] == "3" and float(rw10["value"]) == pytest.approx(0.6)
    assert rw10["run_ids"].split() == sorted(f"rw-10-{s}-oracle-ring8" for s in range(3))
    frame = pd.read_csv(io.StringIO(text))
    assert frame["best"].dtype == bool and frame["n"].dtype == np.int64


def test_html_marks_the_best_and_escapes(rows):
    html = tables.ablation(rows, spec(caption="a < b")).to_html()
    assert "<strong>0.6 ± 0.1</strong>" in html and "a &lt; b" in html and html.startswith("<!DOCTYPE html>")


def test_write_ablation_writes_every_format(tmp_path, rows):
    tables.typed_frame(rows).to_parquet(tmp_path / "g.parquet")
    outputs = {fmt: tmp_path / f"t.{ext}" for fmt, ext in {"markdown": "md", "latex": "tex", "csv": "csv",
                                                          "html": "html"}.items()}
    tables.write_ablation(tmp_path / "g.parquet", spec(caption="Cap").as_dict(), outputs)
    assert "\\caption{Cap." in outputs["latex"].read_text()
    assert all(path.stat().st_size > 100 for path in outputs.values())


# --- the command line -----------------------------------------------------------------------

@pytest.fixture
def parquet(tmp_path, rows):
    path = tmp_path / "generation.parquet"
    tables.typed_frame(rows).to_parquet(path)
    return path


def test_cli_table_prints_a_pivot(parquet, capsys):
    assert cli.main(["table", str(parquet), "--rows", "sampler", "--cols", "steps", "--metric", "sliced_w2",
                     "--filter", "dataset=ring8", "--format", "markdown"]) == 0
    assert "| rw | **0.6 ± 0.1** | 0.25 ± 0.05 |" in capsys.readouterr().out
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
    (["--rows", "sampler", "--metric", "sliced_w2"], "holds runs that differ in steps (10, 40)"),
    (["--rows", "sampler", "--metric", "sliced_w2", "--filter", "nothing"], "expected COLUMN=VALUE"),
])
def test_cli_table_errors(parquet, capsys, args, message):
    assert cli.main(["table", str(parquet), *args]) == 2
    assert message in capsys.readouterr().err


def test_cli_table_on_a_missing_file(tmp_path, capsys):
    assert cli.main(["table", str(tmp_path / "nope.parquet"), "--rows", "a", "--metric", "b"]) == 2
    assert "cannot read the Parquet table" in capsys.readouterr().err


# --- declared tables in the shipped configs -------------------------------------------------------

@pytest.mark.parametrize("name", ["config.yaml", "smoke.yaml"])
def test_shipped_configs_declare_valid_tables(root, name):
    cfg, grid = config.load(root / "config" / name)
    specs = tables.ablation_specs(cfg["tables"])
    assert len(specs) >= 2
    tables.check_declared(specs, grid.manifest_rows(), cfg["tables"]["better"])
    tables.check_heatmap(cfg["plots"]["heatmap"], grid.manifest_rows())


def test_parse_time_check_rejects_a_bad_table(root):
    cfg, grid = config.load(root / "config" / "smoke.yaml")
    bad = {"ablations": {"x": {**cfg["tables"]["ablations"]["oracle_ring8_sampler_steps"], "columns": ["stepz"]}}}
    with pytest.raises(tables.TableError, match=r"tables.ablations.x.columns: unknown column 'stepz' "
                                                r"\(did you mean steps"):
        tables.check_declared(tables.ablation_specs(bad), grid.manifest_rows())
    pooled = {"ablations": {"x": {"rows": ["sampler"], "metric": "mmd", "filter": {"dataset": "ring8"}}}}
    with pytest.raises(tables.TableError, match="differ in model"):
        tables.check_declared(tables.ablation_specs(pooled), grid.manifest_rows())


def test_schema_rejects_unknown_table_keys(root, tmp_path):
    raw = yaml.safe_load((root / "config" / "smoke.yaml").read_text())
    raw["tables"]["ablations"]["oracle_ring8_sampler_steps"]["agg"] = "mean"
    with pytest.raises(config.ConfigError, match=r"tables.ablations.oracle_ring8_sampler_steps: unknown key"):
        config.prepare(raw)


# --- figures ----------------------------------------------------------------------------------------

@pytest.fixture
def captured(monkeypatch):
    """Figures handed to plots.save, kept open instead of written."""
    figures = []
    monkeypatch.setattr(plots, "save", lambda fig, out: figures.append(fig))
    yield figures
    import matplotlib.pyplot as plt
    for fig in figures:
        plt.close(fig)


def generation_frame():
    rows = []
    for model, offset in (("oracle", 0.0), ("mlp", 0.5)):
        for sampler in ("rw", "ddpm"):
            for steps in (10, 40):
                for T0 in ((0.1, 1.0) if sampler == "rw" else (None,)):
                    for seed in range(3):
                        rows.append({"run_id": f"{model}{sampler}{steps}{T0}{seed}", "dataset": "ring8",
                                     "model": model, "model_source": "oracle" if model == "oracle" else "trained",
                                     "model_train_sigma_name": None if model == "oracle" else "ve_loguniform",
                                     "sampler": sampler, "schedule": "sigmoid" if sampler == "rw" else "vp_respaced",
                                     "steps": steps, "knob_T0": T0, "seed": seed, "status": "ok",
                                     "nfe": steps, "sliced_w2": offset + 1 / steps + 0.01 * seed + (T0 or 0)})
    return tables.typed_frame(rows)


def test_metric_vs_nfe_has_seed_bands_and_a_line_per_swept_knob(captured):
    plots.metric_vs_nfe(generation_frame(), "sliced_w2", "unused.png")
    ax = captured[0].axes[0]
    from matplotlib.collections import PolyCollection
    assert len(captured[0].axes) == 2                                         # a row of panels per model
    assert sum(isinstance(c, PolyCollection) for c in ax.collections) == 3    # 3 series, one band each
    labels = [t.get_text() for t in captured[0].legends[0].get_texts()]
    assert {"ddpm", "rw (T0=0.1)", "rw (T0=1)"} <= set(labels)


def test_heatmap_averages_seeds_then_takes_the_best_configuration():
    frame = generation_frame()
    data = plots.heatmap_data(frame[frame["model_source"] == "trained"], "sliced_w2")
    grid = data["ring8"]
    assert list(grid.index) == ["ve_loguniform"] and list(grid.columns) == ["sigmoid", "vp_respaced"]
    assert grid.loc["ve_loguniform", "sigmoid"] == pytest.approx(0.5 + 1 / 40 + 0.01 + 0.1)   # best: 40 steps, T0 0.1
    mean = plots.heatmap_data(frame[frame["model_source"] == "trained"], "sliced_w2", reduce="mean")["ring8"]
    assert mean.loc["ve_loguniform", "vp_respaced"] == pytest.approx(0.5 + (1 / 10 + 1 / 40) / 2 + 0.01)


def test_schedule_points_give_every_schedule_and_step_count():
    manifest = tables.typed_frame([
        {"schedule": "karras", "steps": 8, "schedule_sigma_min": 0.002, "schedule_sigma_max": 80.0,
         "schedule_rho": 7.0, "schedule_timesteps": None},
        {"schedule": "vp_respaced", "steps": 20, "schedule_beta_min": 1e-4, "schedule_beta_max": 0.02,
         "schedule_timesteps": 1000},
        {"schedule": "vp_respaced", "steps": 20, "schedule_beta_min": 1e-4, "schedule_beta_max": 0.02,
         "schedule_timesteps": 1000}])
    points = plots.schedule_points(manifest)
    assert [(p["schedule"], p["steps"]) for p in points] == [("karras", 8), ("vp_respaced", 20)]
    assert plots._schedule_params(points[1]) == {"beta_min": 1e-4, "beta_max": 0.02, "timesteps": 1000}


def test_every_figure_is_written_as_png_and_pdf(tmp_path):
    frame = generation_frame()
    manifest = tables.typed_frame([{"schedule": "sigmoid", "steps": k, "schedule_sigma_min": 0.01,
                                    "schedule_sigma_max": 50.0, "schedule_sharpness": 0.3} for k in (10, 40)])
    training = pd.DataFrame({"model_id": ["m-1"] * 3, "step": [50, 100, 150], "loss": [1.0, 0.8, 0.7],
                             "loss_ema": [1.0, 0.9, 0.8]})
    names = {"m": lambda out: plots.metric_vs_nfe(frame, "sliced_w2", out),
             "h": lambda out: plots.heatmap(frame[frame["model_source"] == "trained"], "sliced_w2", out),
             "s": lambda out: plots.schedule_curves(manifest, out),
             "t": lambda out: plots.training_curves(training, None, out),
             "empty": lambda out: plots.metric_vs_nfe(frame, "no_such_metric", out)}
    for name, draw in names.items():
        draw([tmp_path / f"{name}.png", tmp_path / f"{name}.pdf"])
        assert (tmp_path / f"{name}.png").read_bytes()[:4] == b"\x89PNG"
        assert (tmp_path / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
