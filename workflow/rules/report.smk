rule manifest:
    output:
        f"{RESULTS}/runs.parquet",
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
        likelihoods=likelihood_records(),
    output:
        generation=report(f"{RESULTS}/tables/generation.parquet", category="Tables",
                          caption="../report/generation.rst"),
        training=f"{RESULTS}/tables/training.parquet",
    params:
        results=lambda wc, input: results_of(input.manifest, depth=0),
    log:
        "logs/aggregate.log",
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/aggregate.py"


rule plot_metric:
    input:
        f"{RESULTS}/tables/generation.parquet",
    output:
        report(f"{RESULTS}/plots/{{metric}}_vs_nfe.png", category="Generation", subcategory="Metric vs NFE",
               caption="../report/metric_vs_nfe.rst"),
    log:
        "logs/plots/{metric}_vs_nfe.log",
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/plot_metric.py"


rule plot_samples:
    input:
        table=f"{RESULTS}/tables/generation.parquet",
        reference=lambda wc: f"{RESULTS}/data/{GRID.datasets[wc.dataset].id}/reference.npz",
    output:
        report(f"{RESULTS}/plots/samples_{{dataset}}.png", category="Generation", subcategory="Samples",
               caption="../report/samples.rst"),
    params:
        results=lambda wc, input: results_of(input.table, depth=1),
        max_points=config["plots"]["max_scatter_points"],
    log:
        "logs/plots/samples_{dataset}.log",
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/plot_samples.py"
