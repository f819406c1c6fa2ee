# Conditional restoration (docs/restoration.md): shards of restoration runs per score source,
# the table results/tables/restoration.parquet, and PSNR-vs-NFE figures.

# Shards, inputs and targets of restoration: common.smk.


rule restore_shard:
    input:
        unpack(restoration_shard_inputs),
    output:
        marker=f"{RESULTS}/restorations/shards/{{shard}}.json",
    params:
        model=lambda wc: model_dict(restoration_shard_model(wc)),
        runs=lambda wc: [restoration_dict(GRID.restorations[run_id]) for run_id in RESTORATION_SHARDS[wc.shard]],
        results=lambda wc, output: results_of(output.marker, depth=2),
        metrics=RESTORATION["metrics"],
        fidelity=config["fidelity"],
        strips=RESTORATION["strips"],
        device=config["device"],
    log:
        "logs/restore/{shard}.log",
    benchmark:
        "benchmarks/restore/{shard}.tsv"
    threads: 1
    resources:
        gpu=GPU,
        mem_mb=lambda wc, attempt: 4000 * attempt,
        runtime=lambda wc, attempt: 60 * attempt,
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/restore_shard.py"


rule restoration_table:
    input:
        restoration_records(),
    output:
        report(f"{RESULTS}/tables/restoration.parquet", category="5. Restoration", subcategory="Table",
               caption="../report/restoration_table.rst"),
    params:
        rows=lambda wc: ds_grid.canonical(sorted((r.row() for r in GRID.restorations.values()),
                                                 key=lambda row: row["run_id"])),
        results=lambda wc, output: results_of(output[0], depth=1),
    log:
        "logs/restoration_table.log",
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/restoration_table.py"


rule plot_restoration:
    input:
        f"{RESULTS}/tables/restoration.parquet",
    output:
        png=[report(f"{RESULTS}/plots/restoration_{metric}_vs_nfe.png", category="5. Restoration",
                    subcategory="Metric vs NFE", caption="../report/restoration_vs_nfe.rst", labels={"metric": metric})
             for metric in RESTORATION_METRICS],
        pdf=[f"{RESULTS}/plots/restoration_{metric}_vs_nfe.pdf" for metric in RESTORATION_METRICS],
    params:
        metrics=RESTORATION_METRICS,
    log:
        "logs/plots/restoration.log",
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/plot_restoration.py"
