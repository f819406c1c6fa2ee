"""The smoke run's ablation tables, figures and Snakemake report, and its Parquet tables read
by pandas, polars and DuckDB, checked against docs/tables.md."""

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]

pytestmark = [pytest.mark.workflow, pytest.mark.slow]


@pytest.fixture(scope="module")
def smoke(smoke_run):
    """The session's smoke run (conftest.py), with its report built by `snakemake --report`."""
    report = subprocess.run([*SNAKEMAKE, "-s", str(ROOT / "Snakefile"), "-d", str(smoke_run), "--configfile",
                             "smoke.yaml", "--report", "report.html"], capture_output=True, text=True, cwd=smoke_run)
    assert report.returncode == 0, report.stdout + report.stderr
    return smoke_run


@pytest.fixture(scope="module")
def declared(smoke):
    from diffsweep import config, tables

    cfg, grid = config.load(smoke / "smoke.yaml")
    return cfg, grid, tables.ablation_specs(cfg["tables"])


def test_every_declared_table_is_written_in_four_formats(smoke, declared):
    from diffsweep import tables

    _, _, specs = declared
    folder = smoke / "results" / "tables" / "ablations"
    assert sorted(p.stem for p in folder.glob("*.csv")) == sorted(specs)
    for name, spec in specs.items():
        markdown = (folder / f"{name}.md").read_text()
        assert markdown.startswith("| " + spec.rows[-1]) and f"{spec.metric}:" in markdown
        latex = (folder / f"{name}.tex").read_text()
        assert "\\toprule" in latex and "\\bottomrule" in latex and f"\\label{{tab:{name}}}" in latex
        with open(folder / f"{name}.csv", newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert list(rows[0]) == [*spec.rows, *spec.columns, *tables.CSV_COLUMNS]
        assert any(row["n"] != "0" for row in rows)
        assert "<table>" in (folder / f"{name}.html").read_text()
    oracle = pd.read_csv(folder / "oracle_ring8_sampler_steps.csv")
    generation = pd.read_parquet(smoke / "results" / "tables" / "generation.parquet")
    hit = generation[(generation["model"] == "oracle") & (generation["dataset"] == "ring8")
                     & (generation["sampler"] == "rw_sigmoid") & (generation["steps"] == 40)]
    cell = oracle[(oracle["sampler"] == "rw_sigmoid") & (oracle["steps"] == 40)].iloc[0]
    assert cell["value"] == pytest.approx(hit["sliced_w2"].mean()) and cell["n"] == len(hit)


def test_figures_are_png_and_pdf(smoke):
    plots = smoke / "results" / "plots"
    stems = [p.stem for p in plots.glob("*.png")]
    for stem in ("sliced_w2_vs_nfe", "samples_ring8", "schedules", "training_loss", "heatmap_sliced_w2",
                 "heatmap_mmd", "restoration_psnr_vs_nfe"):
        assert stem in stems
    for stem in stems:
        assert (plots / f"{stem}.png").read_bytes()[:4] == b"\x89PNG"
        assert (plots / f"{stem}.pdf").read_bytes()[:4] == b"%PDF"


def test_the_report_has_every_table_and_figure_with_captions_by_stage(smoke, declared):
    _, _, specs = declared
    html = (smoke / "report.html").read_text()
    categories = re.search(r'<script id="categories">\s*var categories = (\{.*?\});', html, re.S)
    assert categories, "no categories in the report"
    import json
    groups = json.loads(categories.group(1))
    assert set(groups) == {"0. Explorer", "1. Training", "2. Generation", "3. Ablation tables", "4. Result tables",
                           "5. Restoration"}
    assert set(groups["5. Restoration"]) == {"Metric vs NFE", "Table"}
    assert set(groups["3. Ablation tables"]) == set(specs)
    assert set(groups["2. Generation"]) == {"Metric vs NFE", "Samples", "Noise schedules",
                                            "Training x sampling schedule"}
    listed = {Path(path).name for sub in groups.values() for paths in sub.values() for path in paths}
    plots = smoke / "results" / "plots"
    assert {p.name for p in plots.glob("*.png")} <= listed
    assert {f"{name}.{ext}" for name in specs for ext in ("md", "tex", "csv", "html")} <= listed
    assert {"generation.parquet", "training.parquet", "runs.parquet", "restoration.parquet", "explore.html"} <= listed
    for caption in ("Ablation table <strong>oracle_ring8_sampler_steps</strong>", "The decoupling of training",
                    "sigma_k against the step k", "against the number of network evaluations",
                    "Training loss", "diffsweep sweep over score-based diffusion models"):
        assert caption in html, caption


def test_the_report_loads_nothing_from_the_internet(smoke):
    html = (smoke / "report.html").read_text()
    external = re.findall(r'<(?:script|img|iframe)[^>]+src=["\']?(?:https?:)?//|<link[^>]+href=["\']?(?:https?:)?//'
                          r'|@import\s+url\(["\']?(?:https?:)?//', html)
    assert external == []


@pytest.mark.parametrize("library", ["pandas", "polars", "duckdb"])
def test_parquet_tables_are_read_by(smoke, library):
    """One query per library: mean sliced_w2 per sampler over the finished runs."""
    module = pytest.importorskip(library, reason=f"{library} is not installed (pip install -e '.[test]')")
    results = smoke / "results"
    path = str(results / "tables" / "generation.parquet")
    expected = pd.read_parquet(path).query("status == 'ok'").groupby("sampler")["sliced_w2"].mean().to_dict()
    if library == "pandas":
        got = module.read_parquet(path).query("status == 'ok'").groupby("sampler")["sliced_w2"].mean().to_dict()
        assert str(module.read_parquet(results / "runs.parquet")["steps"].dtype) == "Int64"
    elif library == "polars":
        frame = module.read_parquet(path)
        got = dict(frame.filter(module.col("status") == "ok").group_by("sampler")
                   .agg(module.col("sliced_w2").mean()).iter_rows())
        assert frame.schema["model_steps"] == module.Int64 and frame.schema["knob_final_noise"] == module.Boolean
        assert module.read_parquet(results / "tables" / "training.parquet").height > 0
    else:
        got = dict(module.sql(f"SELECT sampler, avg(sliced_w2) FROM read_parquet('{path}') "
                              f"WHERE status = 'ok' GROUP BY sampler").fetchall())
        runs = module.sql(f"SELECT count(*) FROM read_parquet('{results / 'runs.parquet'}')").fetchall()[0][0]
        assert runs == len(pd.read_parquet(results / "runs.parquet"))
    assert got == pytest.approx(expected)


def documented(doc: str) -> set[str]:
    return set(re.findall(r"`([A-Za-z0-9_<>]+)`", doc))


def test_every_column_is_documented(smoke, declared):
    from diffsweep import tables

    _, _, specs = declared
    doc = (ROOT / "docs" / "tables.md").read_text()
    names = documented(doc)
    results = smoke / "results"
    dynamic = ("dataset_", "model_", "schedule_", "knob_", "operator_")
    # a metric's sampling error and floor columns: documented once as <metric>_se, <metric>_floor(_low/_high)
    per_metric = {suffix: f"<metric>{suffix}" for suffix in ("_se", "_floor", "_floor_low", "_floor_high")}
    assert all(pattern in names for pattern in per_metric.values())

    def of_a_metric(column, columns):
        return any(column.endswith(suffix) and column[:-len(suffix)] in columns for suffix in per_metric)

    for path in (results / "runs.parquet", results / "tables" / "generation.parquet",
                 results / "tables" / "training.parquet", results / "tables" / "training_by_sigma.parquet"):
        columns = set(pd.read_parquet(path).columns)
        for column in columns:
            assert column in names or column.startswith(dynamic) or of_a_metric(column, columns & names), \
                f"{path.name}: {column} is not in docs/tables.md"
    for column in [*tables.CSV_COLUMNS, *tables.MEASUREMENT_COLUMNS]:
        assert column in names, f"{column} is not in docs/tables.md"
    for pattern in ("dataset_<param>", "model_<recipe key>", "schedule_<param>", "knob_<knob>"):
        assert pattern in doc


def test_cli_table_on_the_smoke_results(smoke):
    table = str(smoke / "results" / "tables" / "generation.parquet")
    diffsweep = shutil.which("diffsweep") or ""
    command = [diffsweep] if diffsweep else [sys.executable, "-m", "diffsweep.cli"]
    ok = subprocess.run([*command, "table", table, "--rows", "sampler", "--cols", "steps", "--metric", "sliced_w2",
                         "--filter", "dataset=ring8", "--filter", "model=oracle", "--format", "markdown"],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    generation = pd.read_parquet(table)
    value = generation.query("model == 'oracle' and dataset == 'ring8' and sampler == 'rw_sigmoid' and steps == 40")
    assert ok.stdout.startswith("| sampler \\ steps |")
    assert f"{value['sliced_w2'].mean():.3g}" in ok.stdout.splitlines()[-3]       # the rw_sigmoid row
    bad = subprocess.run([*command, "table", table, "--rows", "sampler", "--cols", "stepz", "--metric", "sliced_w2"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "unknown column 'stepz'" in bad.stderr and "available columns:" in bad.stderr
