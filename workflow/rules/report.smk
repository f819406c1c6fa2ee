# Aggregation, ablation tables, figures and the report (`snakemake --report report.html`).
# Every table and figure is flagged update(): Snakemake keeps the existing file while its job runs
# and restores it if the job fails, so one is only ever replaced by a complete new one (the
# scripts write atomically).
# Report categories follow the stages: training, generation, ablation tables, result tables,
# restoration. Tables and figures to build, and the checks of their declarations: common.smk.
import mimetypes

mimetypes.add_type("application/vnd.apache.parquet", ".parquet")  # report: offered for download


report: "../report/workflow.rst"


rule manifest:
    input:
        searches=search_results(),   # the runs of a search's later rungs join the grid when their rung is planned
    output:
        update(report(f"{RESULTS}/runs.parquet", category="4. Result tables", caption="../report/runs.rst")),
    params:
        # the job expands the rows from the config; a changed grid re-runs it (a function: a search's cut adds runs)
        grid=lambda wc: GRID.digest(),
    log:
        f"{RESULTS}/logs/manifest.log",
    resources:
        **resources("manifest"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/manifest.py"


rule aggregate:
    input:
        records=run_records(ds_kinds.GENERATION.name),
        train_logs=[f"{RESULTS}/models/{m.id}/train_log.parquet" for m in GRID.trained_models()],
        loss_by_sigma=[f"{RESULTS}/models/{m.id}/loss_by_sigma.parquet" for m in GRID.trained_models()],
        likelihoods=likelihood_records(),
        floors=[f"{RESULTS}/floors/{key}.json" for key in FLOORS],
        searches=search_results(),   # the runs of a search's later rungs join the grid when their rung is planned
    output:
        generation=update(report(f"{RESULTS}/tables/generation.parquet", category="4. Result tables",
                                 caption="../report/generation.rst")),
        training=update(report(f"{RESULTS}/tables/training.parquet", category="4. Result tables",
                               caption="../report/training_table.rst")),
        training_by_sigma=update(f"{RESULTS}/tables/training_by_sigma.parquet"),
    params:
        # the job expands the rows from the config; a changed grid re-runs it (a function: a search's cut adds runs)
        grid=lambda wc: GRID.digest(ds_kinds.GENERATION.name),
        results=lambda wc, output: results_of(output.generation, depth=1),
    log:
        f"{RESULTS}/logs/aggregate.log",
    resources:
        **resources("aggregate"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/aggregate.py"


rule plot_metrics:
    input:
        f"{RESULTS}/tables/generation.parquet",
    output:
        **{f"{metric}_png": update(report(f"{RESULTS}/plots/{metric}_vs_nfe.png", category="2. Generation",
                                          subcategory="Metric vs NFE", labels={"metric": metric},
                                          caption="../report/metric_vs_nfe.rst")) for metric in PLOT_METRICS},
        **{f"{metric}_pdf": update(f"{RESULTS}/plots/{metric}_vs_nfe.pdf") for metric in PLOT_METRICS},
    params:
        metrics=PLOT_METRICS,
    log:
        f"{RESULTS}/logs/plots/metrics_vs_nfe.log",
    resources:
        **resources("plot_metrics"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/plot_metric.py"


rule plot_samples:
    input:
        table=f"{RESULTS}/tables/generation.parquet",
        reference=dataset_reference,
    output:
        png=update(report(f"{RESULTS}/plots/samples_{{dataset}}.png", category="2. Generation", subcategory="Samples",
                          caption="../report/samples.rst")),
        pdf=update(f"{RESULTS}/plots/samples_{{dataset}}.pdf"),
    params:
        results=lambda wc, input: results_of(input.table, depth=1),
        max_points=config["plots"]["max_scatter_points"],
        # beyond plots.style.MAX_PANELS presets or models, those best by the first plotted metric are drawn
        rank_by=PLOT_METRICS[0] if PLOT_METRICS else None,
        better=ds_tables.direction(PLOT_METRICS[0], DIRECTIONS, default="lower") if PLOT_METRICS else "lower",
    log:
        f"{RESULTS}/logs/plots/samples_{{dataset}}.log",
    resources:
        **resources("plot_samples"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/plot_samples.py"


rule plot_heatmaps:
    input:
        f"{RESULTS}/tables/generation.parquet",
    output:
        **{f"{metric}_png": update(report(f"{RESULTS}/plots/heatmap_{metric}.png", category="2. Generation",
                                          subcategory="Training x sampling schedule", labels={"metric": metric},
                                          caption="../report/heatmap.rst")) for metric in HEATMAP["metrics"]},
        **{f"{metric}_pdf": update(f"{RESULTS}/plots/heatmap_{metric}.pdf") for metric in HEATMAP["metrics"]},
    params:
        metrics=HEATMAP["metrics"],
        options=HEATMAP,
        better={metric: ds_tables.direction(metric, DIRECTIONS, default="lower") for metric in HEATMAP["metrics"]},
    log:
        f"{RESULTS}/logs/plots/heatmaps.log",
    resources:
        **resources("plot_heatmaps"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/plot_heatmap.py"


rule plot_schedules:
    input:
        f"{RESULTS}/runs.parquet",
    output:
        png=update(report(f"{RESULTS}/plots/schedules.png", category="2. Generation", subcategory="Noise schedules",
                          caption="../report/schedules.rst")),
        pdf=update(f"{RESULTS}/plots/schedules.pdf"),
    log:
        f"{RESULTS}/logs/plots/schedules.log",
    resources:
        **resources("plot_schedules"),
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
        png=update(report(f"{RESULTS}/plots/training_loss.png", category="1. Training", subcategory="Loss",
                          caption="../report/training_loss.rst")),
        pdf=update(f"{RESULTS}/plots/training_loss.pdf"),
        by_sigma_png=update(report(f"{RESULTS}/plots/training_loss_by_sigma.png", category="1. Training",
                                   subcategory="Loss", caption="../report/training_loss_by_sigma.rst")),
        by_sigma_pdf=update(f"{RESULTS}/plots/training_loss_by_sigma.pdf"),
    log:
        f"{RESULTS}/logs/plots/training_loss.log",
    resources:
        **resources("plot_training"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/plot_training.py"


rule ablation_table:
    input:
        ablation_source,
    output:
        **{fmt: update(report(f"{RESULTS}/tables/ablations/{{table}}.{ext}", category="3. Ablation tables",
                              subcategory="{table}", caption="../report/ablation.rst", labels={"format": fmt}))
           for fmt, ext in TABLE_FORMATS.items()},
    params:
        spec=lambda wc: ABLATIONS[wc.table].as_dict(),
    log:
        f"{RESULTS}/logs/tables/{{table}}.log",
    resources:
        **resources("ablation_table"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/ablation_table.py"


rule restoration_table:
    input:
        run_records(ds_kinds.RESTORATION.name),
    output:
        update(report(f"{RESULTS}/tables/restoration.parquet", category="5. Restoration", subcategory="Table",
                      caption="../report/restoration_table.rst")),
    params:
        grid=GRID.digest(ds_kinds.RESTORATION.name),   # the job expands the rows from the config; a changed grid re-runs it
        results=lambda wc, output: results_of(output[0], depth=1),
    log:
        f"{RESULTS}/logs/restoration_table.log",
    resources:
        **resources("restoration_table"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/restoration_table.py"


rule plot_restoration:
    input:
        f"{RESULTS}/tables/restoration.parquet",
    output:
        png=[update(report(f"{RESULTS}/plots/restoration_{metric}_vs_nfe.png", category="5. Restoration",
                           subcategory="Metric vs NFE", caption="../report/restoration_vs_nfe.rst",
                           labels={"metric": metric}))
             for metric in RESTORATION_METRICS],
        pdf=[update(f"{RESULTS}/plots/restoration_{metric}_vs_nfe.pdf") for metric in RESTORATION_METRICS],
    params:
        metrics=RESTORATION_METRICS,
    log:
        f"{RESULTS}/logs/plots/restoration.log",
    resources:
        **resources("plot_restoration"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/plot_restoration.py"


rule explore:
    input:
        tables=[f"{RESULTS}/{kind.table}" for kind in EXPLORED_KINDS],
        ablations=expand(f"{RESULTS}/tables/ablations/{{table}}.html", table=sorted(ABLATIONS)),
        references=[f"{RESULTS}/data/{dataset.id}/reference.npz" for dataset in GRID.datasets.values()],  # thumbnails
    output:
        update(report(f"{RESULTS}/explore.html", category="0. Explorer", caption="../report/explore.rst")),
    params:
        results=lambda wc, output: results_of(output[0], depth=0),
        kinds=[kind.name for kind in EXPLORED_KINDS],   # of input.tables, in order
        directions=DIRECTIONS,
        first_metrics=[*PLOT_METRICS, *RESTORATION_METRICS],   # offered first, in this order
    log:
        f"{RESULTS}/logs/explore.log",
    resources:
        **resources("explore"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/explore.py"
