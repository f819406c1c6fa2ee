"""The studies' tables and figures on hand-made frames: the error decomposition pairs each
network run with the oracle run equal in every parameter but the model (seed included)."""

import pandas as pd
import pytest

from diffsweep.plots import style
from diffsweep.studies import error_sources, temperature_ramp
from diffsweep.tables import PARAM_COLUMNS, TableError

PARAMS = ["dataset", "model", "model_source", "model_train_sigma_name", "sampler", "steps", "knob_eps", "seed"]


def run(model, steps, seed, value, eps=0.7, sampler="rw", status="ok"):
    source = "oracle" if model == "oracle" else "trained"
    return {"dataset": "ring8", "model": model, "model_source": source,
            "model_train_sigma_name": None if model == "oracle" else model.removeprefix("mlp_"),
            "sampler": sampler, "steps": steps, "knob_eps": eps, "seed": seed, "status": status, "sliced_w2": value}


def frame(rows):
    table = pd.DataFrame(rows)
    table.attrs[PARAM_COLUMNS] = PARAMS
    return table


def test_model_columns_are_the_model_and_its_own():
    assert error_sources.model_columns(PARAMS) == ["model", "model_source", "model_train_sigma_name"]


def test_error_sources_pairs_every_parameter_but_the_model():
    table = frame([
        run("oracle", 10, 0, 0.30), run("oracle", 10, 1, 0.50), run("oracle", 100, 0, 0.10),
        run("oracle", 10, 0, 9.00, eps=0.3),                 # another knob value: never paired with eps 0.7
        run("mlp_ddpm", 10, 0, 0.40), run("mlp_ddpm", 10, 1, 0.80), run("mlp_ddpm", 100, 0, 0.25),
        run("mlp_ve", 10, 0, 0.35),
        run("mlp_ve", 100, 0, 7.0, status="diverged"),        # not ok: left out
        run("mlp_ve", 30, 0, 0.2),                            # no oracle run at 30 steps: left out
    ])
    out = error_sources.table(table).set_index(["model", "steps"])
    assert sorted(out.index) == [("mlp_ddpm", 10), ("mlp_ddpm", 100), ("mlp_ve", 10)]
    row = out.loc[("mlp_ddpm", 10)]
    assert (row["total"], row["discretisation"], row["score"], row["seeds"]) == pytest.approx((0.6, 0.4, 0.2, 2))
    assert out.loc[("mlp_ddpm", 100), "score"] == pytest.approx(0.15)
    assert out.loc[("mlp_ve", 10), "score_share"] == pytest.approx(0.05 / 0.35)
    assert "knob_eps" not in out.columns                     # one value among the paired runs: not a setting


def test_error_sources_measures_the_direct_distance_of_each_pair():
    rows = [run("oracle", 10, 0, 0.3), run("oracle", 10, 1, 0.5), run("mlp_ddpm", 10, 0, 0.4), run("mlp_ddpm", 10, 1, 0.8)]
    table = frame([{**row, "run_id": f"{row['model']}-{row['seed']}"} for row in rows])
    asked = []

    def distance(network_run, oracle_run, seed):
        asked.append((network_run, oracle_run, seed))
        return float("nan") if seed == 1 else 0.25       # seed 1's samples not kept: left out of the mean
    out = error_sources.table(table, distance=distance)
    assert sorted(asked) == [("mlp_ddpm-0", "oracle-0", 0), ("mlp_ddpm-1", "oracle-1", 1)]
    assert out["score_distance"].tolist() == [0.25] and out["seeds"].tolist() == [2]
    assert "score_distance" not in error_sources.table(table).columns


def test_error_sources_names_a_missing_column():
    with pytest.raises(TableError, match="fid"):
        error_sources.table(frame([run("oracle", 10, 0, 0.3)]), metric="fid")


def test_ramp_summary_and_figures_are_drawn(tmp_path):
    rows = [{**run("oracle", k, seed, 1.0 / k + 0.01 * seed), "knob_ramp": ramp, "knob_T0": T0}
            for k in (10, 100) for seed in (0, 1) for ramp in ("index", "log_sigma") for T0 in (0.1, 1.0)]
    summary = temperature_ramp.table(frame(rows), samplers=["rw"])
    assert len(summary) == 8 and set(summary["seeds"]) == {2}
    assert summary.loc[summary["steps"] == 10, "mean"].iloc[0] == pytest.approx(0.105)
    temperature_ramp.figure(summary, {"ring8": 0.01}, tmp_path / "ramp.png")
    sources = error_sources.table(frame([run("oracle", 10, 0, 0.3), run("mlp_ddpm", 10, 0, 0.4),
                                         run("oracle", 100, 0, 0.1), run("mlp_ddpm", 100, 0, 0.2)]))
    error_sources.figure(sources, tmp_path / "sources.png")
    assert all((tmp_path / name).stat().st_size > 1000 for name in ("ramp.png", "sources.png"))


def test_error_sources_keeps_a_knob_swept_at_equal_steps():
    table = frame([run("oracle", 10, 0, 0.3), run("oracle", 10, 0, 0.5, eps=0.3),
                   run("mlp_ddpm", 10, 0, 0.4), run("mlp_ddpm", 10, 0, 0.9, eps=0.3)])
    out = error_sources.table(table).set_index("knob_eps")
    assert out.attrs["settings"] == ["dataset", "sampler", "steps", "knob_eps"]
    assert out.loc[0.3, "score"] == pytest.approx(0.4) and out.loc[0.7, "score"] == pytest.approx(0.1)


def test_the_ramp_study_config_covers_the_2d_mixtures_and_digits_gmm():
    """config/studies/temperature_ramp.yaml: ramp kind x T0 x steps on ring8, grid25 and digits_gmm
    (fewer samples there: its floor is drawn at that size, the runs' own `n_samples`)."""
    from conftest import ROOT
    from diffsweep import config

    cfg, grid = config.load(ROOT / "config" / "studies" / "temperature_ramp.yaml")
    presets = cfg["studies"]["temperature_ramp"]["samplers"]
    runs = [run for run in grid.runs.values() if run.preset in presets]
    cells = {(run.model.data.name, run.knobs["ramp"], run.knobs["T0"]) for run in runs}
    assert cells == {(d, ramp, T0) for d in ("ring8", "grid25", "digits_gmm") for ramp in ("index", "log_sigma")
                     for T0 in (0.1, 1.0)}
    sizes = {run.model.data.name: run.n_samples for run in runs}
    assert sizes == {"ring8": 10000, "grid25": 10000, "digits_gmm": 1000}
    assert all(run.model.source == "oracle" for run in runs)


def test_the_error_sources_figure_of_a_large_sweep_shows_the_best_configurations_and_networks(monkeypatch):
    """More configurations than style.MAX_PANELS (3 here: a small figure) and networks than
    MAX_SERIES - 1 (4 - 1): the best by the metric at the largest steps are drawn (the legend,
    with the oracle's line, has MAX_SERIES entries) and the title says what was left out."""
    figures = []
    monkeypatch.setattr(style, "save", lambda fig, out: figures.append(fig))
    monkeypatch.setattr(style, "MAX_PANELS", 3)
    monkeypatch.setattr(style, "MAX_SERIES", 4)
    rows = [run(model, k, 0, 1 / k + 0.01 * (9 - eps) + (model != "oracle") * (1 + n / 10), eps=eps)
            for n, model in enumerate(["oracle", "mlp_a", "mlp_b", "mlp_c", "mlp_d", "mlp_e"])
            for eps in range(5) for k in (10, 100)]
    error_sources.figure(error_sources.table(frame(rows)), "unused.png")
    (fig,) = figures
    drawn = [ax for ax in fig.axes if ax.axison]
    assert [ax.get_title() for ax in drawn] == [f"ring8 / rw (eps={eps})" for eps in (2, 3, 4)]
    assert [line.get_label() for line in drawn[0].lines] == ["mlp_a (total)", "mlp_b (total)", "mlp_c (total)",
                                                             "oracle (discretisation)"]
    assert len(fig.legends[0].get_texts()) == 4
    assert fig.get_suptitle() == ("3 of 5 networks, 3 of 5 configurations: "
                                  "the best by mean sliced_w2 at their largest steps")
    import matplotlib.pyplot as plt
    plt.close(fig)


# --- the studies registry: one module per study, the rule file and common.smk loop over it -------

def test_every_registered_study_has_its_schema_options_caption_and_section():
    """A study is its module plus what the registry cannot hold: its options in the schema (with
    the registry's defaults), its report caption and its section of docs/studies.md; the schema
    names no study the registry lacks."""
    from conftest import ROOT
    from diffsweep.config import read_yaml
    from diffsweep.studies import STUDIES

    schema = read_yaml(ROOT / "workflow" / "schemas" / "config.schema.yaml")["properties"]["studies"]["properties"]
    assert sorted(schema) == STUDIES.names() == ["error_sources", "temperature_ramp"]
    guide = (ROOT / "docs" / "studies.md").read_text()
    for study in STUDIES.entries():
        options = next(form for form in schema[study.name]["anyOf"] if form["type"] == "object")["properties"]
        assert {key: options[key]["default"] for key in study.defaults} == study.defaults, study.name
        assert (ROOT / "workflow" / "report" / f"study_{study.name}.rst").is_file(), study.name
        assert f"`diffsweep/studies/{study.name}.py`" in guide, study.name
        assert study.module == f"diffsweep.studies.{study.name}"


def test_declared_studies_get_their_defaults_and_a_null_study_is_not_declared():
    from diffsweep import studies

    config = {"studies": {"error_sources": {"score_distance": False}, "temperature_ramp": None}}
    assert studies.declared(config) == {"error_sources": {"metric": "sliced_w2", "score_distance": False}}
    assert studies.declared({"studies": {}}) == {}


def test_the_studies_registry_is_read_without_torch_pandas_or_matplotlib(root):
    """The Snakefile imports it at parse time: the study modules import their jobs' libraries inside the jobs."""
    import subprocess
    import sys

    code = ("import sys; from diffsweep import studies; assert studies.STUDIES.names(); "
            "print(sorted(m for m in ('torch', 'pandas', 'matplotlib', 'seaborn') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={"PYTHONPATH": str(root / "src")})
    assert (result.returncode, result.stdout.strip()) == (0, "[]"), result.stderr


@pytest.mark.workflow
def test_each_study_job_writes_its_table_and_figure_from_the_smoke_run(smoke_run, tmp_path, monkeypatch):
    """The jobs of both studies, in process, on the smoke run's tables and records (read only):
    the temperature-ramp job with the exact-sample floor of each dataset, the error-sources job with
    the direct distance of each network run to its oracle run, read from their stored samples."""
    from diffsweep import config
    from diffsweep.studies import STUDIES

    monkeypatch.chdir(smoke_run)           # where its `results: results` is
    cfg, grid = config.load("smoke.yaml")
    results = smoke_run / "results"
    inputs = {"table": str(results / "tables" / "generation.parquet")}
    written = {}
    for name, options in (("temperature_ramp", {"samplers": ["rw_sigmoid"]}), ("error_sources", {})):
        study = STUDIES[name]
        options = {**study.defaults, **options}
        outputs = {"csv": tmp_path / f"{name}.csv", "png": tmp_path / f"{name}.png", "pdf": tmp_path / f"{name}.pdf"}
        study.job({**inputs, **study.inputs(grid, str(results))}, outputs, options, **study.job_arguments(cfg, grid, options))
        assert outputs["png"].read_bytes()[:4] == b"\x89PNG" and outputs["pdf"].read_bytes()[:4] == b"%PDF"
        written[name] = pd.read_csv(outputs["csv"])
    ramp = written["temperature_ramp"]
    assert set(ramp["dataset"]) == {"ring8"} and set(ramp["steps"]) == {10, 40}     # the oracle: analytic data only
    assert ramp["floor"].notna().all() and (ramp["floor"] > 0).all()
    sources = written["error_sources"]
    assert set(sources["model"]) == {"mlp"} and set(sources["sampler"]) == {"rw_sigmoid", "ddpm", "ode_heun"}
    assert sources["score_distance"].notna().all() and (sources["score_distance"] > 0).all()
