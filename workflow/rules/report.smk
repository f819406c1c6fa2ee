# Aggregation, ablation tables, figures and the report (`snakemake --report report.html`).
# Report categories follow the stages: training, generation, ablation tables, result tables.
import mimetypes

from diffsweep import tables as ds_tables

mimetypes.add_type("application/vnd.apache.parquet", ".parquet")  # report: offered for download


report: "../report/workflow.rst"


TABLE_FORMATS = {"markdown": "md", "latex": "tex", "csv": "csv", "html": "html"}
TRAINED = bool(GRID.trained_models())
HEATMAP = config["plots"]["heatmap"]
DIRECTIONS = config["tables"]["better"]

# Declared tables, heatmaps and plotted metrics are checked against the grid now, before any job runs.
try:
    ABLATIONS = ds_tables.ablation_specs(config["tables"])
    ds_tables.check_declared(ABLATIONS, GRID.manifest_rows(), DIRECTIONS)
    if TRAINED and HEATMAP["metrics"]:
        ds_tables.check_heatmap(HEATMAP, GRID.manifest_rows(), DIRECTIONS)
    for metric in [*PLOT_METRICS, *HEATMAP["metrics"]]:  # one job draws a figure per metric: outputs <metric>_png
        if not metric.isidentifier():
            raise ValueError(f"plots: metric '{metric}' is not a column name")
except ValueError as error:
    raise WorkflowError(f"invalid config: {error}") from None


# Figures and ablation tables; all_targets (common.smk) asks for them.
REPORT_TARGETS = [
    *expand(f"{RESULTS}/plots/{{metric}}_vs_nfe.{{ext}}", metric=PLOT_METRICS, ext=PLOT_FORMATS),
    *expand(f"{RESULTS}/plots/samples_{{dataset}}.{{ext}}", dataset=sorted(GRID.datasets), ext=PLOT_FORMATS),
    *expand(f"{RESULTS}/tables/ablations/{{table}}.{{ext}}", table=sorted(ABLATIONS), ext=TABLE_FORMATS.values()),
    *(expand(f"{RESULTS}/plots/schedules.{{ext}}", ext=PLOT_FORMATS) if config["plots"]["schedules"] else []),
    *(expand(f"{RESULTS}/plots/training_loss.{{ext}}", ext=PLOT_FORMATS) if TRAINED else []),
    *(expand(f"{RESULTS}/plots/heatmap_{{metric}}.{{ext}}", metric=HEATMAP["metrics"], ext=PLOT_FORMATS)
      if TRAINED else []),
]


rule manifest:
    output:
        report(f"{RESULTS}/runs.parquet", category="4. Result tables", caption="../report/runs.rst"),
    params:
        rows=lambda wc: ds_grid.canonical(sorted(GRID.manifest_rows(), key=lambda row: row["run_id"])),
    log:
        "logs/manifest.log",
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/manifest.py"


rule aggregate:
    input:
        manifest=f"{RESULTS}/runs.parquet",
        records=run_records(),
        train_logs=[f"{RESULTS}/models/{m.id}/train_log.parquet" for m in GRID.trained_models()],
        loss_by_sigma=[f"{RESULTS}/models/{m.id}/loss_by_sigma.parquet" for m in GRID.trained_models()],
        likelihoods=likelihood_records(),
    output:
        generation=report(f"{RESULTS}/tables/generation.parquet", category="4. Result tables",
                          caption="../report/generation.rst"),
        training=report(f"{RESULTS}/tables/training.parquet", category="4. Result tables",
                        caption="../report/training_table.rst"),
        training_by_sigma=f"{RESULTS}/tables/training_by_sigma.parquet",
    params:
        results=lambda wc, input: results_of(input.manifest, depth=0),
    log:
        "logs/aggregate.log",
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/aggregate.py"


rule plot_metrics:
    input:
        f"{RESULTS}/tables/generation.parquet",
    output:
        **{f"{metric}_png": report(f"{RESULTS}/plots/{metric}_vs_nfe.png", category="2. Generation",
                                   subcategory="Metric vs NFE", labels={"metric": metric},
                                   caption="../report/metric_vs_nfe.rst") for metric in PLOT_METRICS},
        **{f"{metric}_pdf": f"{RESULTS}/plots/{metric}_vs_nfe.pdf" for metric in PLOT_METRICS},
    params:
        metrics=PLOT_METRICS,
    log:
        "logs/plots/metrics_vs_nfe.log",
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/plot_metric.py"


rule plot_samples:
    input:
        table=f"{RESULTS}/tables/generation.parquet",
        reference=lambda wc: f"{RESULTS}/data/{GRID.datasets[wc.dataset].id}/reference.npz",
    output:
        png=report(f"{RESULTS}/plots/samples_{{dataset}}.png", category="2. Generation", subcategory="Samples",
                   caption="../report/samples.rst"),
        pdf=f"{RESULTS}/plots/samples_{{dataset}}.pdf",
    params:
        results=lambda wc, input: results_of(input.table, depth=1),
        max_points=config["plots"]["max_scatter_points"],
    log:
        "logs/plots/samples_{dataset}.log",
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/plot_samples.py"


rule plot_heatmaps:
    input:
        f"{RESULTS}/tables/generation.parquet",
    output:
        **{f"{metric}_png": report(f"{RESULTS}/plots/heatmap_{metric}.png", category="2. Generation",
                                   subcategory="Training x sampling schedule", labels={"metric": metric},
                                   caption="../report/heatmap.rst") for metric in HEATMAP["metrics"]},
        **{f"{metric}_pdf": f"{RESULTS}/plots/heatmap_{metric}.pdf" for metric in HEATMAP["metrics"]},
    params:
        metrics=HEATMAP["metrics"],
        options=HEATMAP,
        better={metric: ds_tables.direction(metric, DIRECTIONS, default="lower") for metric in HEATMAP["metrics"]},
    log:
        "logs/plots/heatmaps.log",
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/plot_heatmap.py"


rule plot_schedules:
    input:
        f"{RESULTS}/runs.parquet",
    output:
        png=report(f"{RESULTS}/plots/schedules.png", category="2. Generation", subcategory="Noise schedules",
                   caption="../report/schedules.rst"),
        pdf=f"{RESULTS}/plots/schedules.pdf",
    log:
        "logs/plots/schedules.log",
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/plot_schedules.py"


rule plot_training:
    input:
        training=f"{RESULTS}/tables/training.parquet",
        training_by_sigma=f"{RESULTS}/tables/training_by_sigma.parquet",
        manifest=f"{RESULTS}/runs.parquet",
    output:
        png=report(f"{RESULTS}/plots/training_loss.png", category="1. Training", subcategory="Loss",
                   caption="../report/training_loss.rst"),
        pdf=f"{RESULTS}/plots/training_loss.pdf",
        by_sigma_png=report(f"{RESULTS}/plots/training_loss_by_sigma.png", category="1. Training",
                            subcategory="Loss", caption="../report/training_loss_by_sigma.rst"),
        by_sigma_pdf=f"{RESULTS}/plots/training_loss_by_sigma.pdf",
    log:
        "logs/plots/training_loss.log",
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/plot_training.py"


rule ablation_table:
    input:
        lambda wc: f"{RESULTS}/{ds_tables.SOURCES[ABLATIONS[wc.table].source]}",
    output:
        **{fmt: report(f"{RESULTS}/tables/ablations/{{table}}.{ext}", category="3. Ablation tables",
                       subcategory="{table}", caption="../report/ablation.rst", labels={"format": fmt})
           for fmt, ext in TABLE_FORMATS.items()},
    params:
        spec=lambda wc: ABLATIONS[wc.table].as_dict(),
    wildcard_constraints:
        table="[A-Za-z0-9_]+",
    log:
        "logs/tables/{table}.log",
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/ablation_table.py"
