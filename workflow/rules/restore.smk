# Conditional restoration (docs/restoration.md): shards of restoration runs per score source,
# the table results/tables/restoration.parquet, and PSNR-vs-NFE figures.

RESTORATION = config["restoration"]
DONE_RESTORATIONS = ds_grid.done_restorations(RESULTS, GRID.restorations)
RESTORATION_SHARDS = GRID.restoration_shards(RESTORATION["runs_per_job"], done=DONE_RESTORATIONS)
RESTORATION_METRICS = ["psnr", "ssim", "lpips"]   # lpips: a placeholder figure when LPIPS is skipped


def restoration_dict(run):
    return ds_grid.canonical({"id": run.id, "operator": run.operator, "operator_params": run.operator_params,
            "noise_std": run.noise_std, "family": run.family, "schedule": run.schedule,
            "schedule_params": run.schedule_params, "steps": run.steps, "init": run.init, "knobs": run.knobs,
            "seed": run.seed, "n_measurements": run.n_measurements, "n_samples": run.n_samples,
            "params": run.params(), "row": run.row()})


def restoration_shard_model(wildcards):
    return GRID.restorations[RESTORATION_SHARDS[wildcards.shard][0]].model


def restoration_shard_inputs(wildcards):
    """The score source's inputs and the dataset's reference features for FID/KID of restorations."""
    model = restoration_shard_model(wildcards)
    return {**inputs_of_model(model), "fidelity": fidelity_records(model.data)}


def restoration_records():
    return [f"{RESULTS}/restorations/shards/{shard}.json" for shard in RESTORATION_SHARDS] + [
        f"{RESULTS}/restorations/{run_id}/run.json" for run_id in sorted(DONE_RESTORATIONS)
    ]


RESTORATION_TARGETS = (
    [f"{RESULTS}/tables/restoration.parquet",
     *expand(f"{RESULTS}/plots/restoration_{{metric}}_vs_nfe.png", metric=RESTORATION_METRICS)]
    if GRID.restorations else []
)


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
        f"{RESULTS}/tables/restoration.parquet",
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
        expand(f"{RESULTS}/plots/restoration_{{metric}}_vs_nfe.png", metric=RESTORATION_METRICS),
    params:
        metrics=RESTORATION_METRICS,
    log:
        "logs/plots/restoration.log",
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/plot_restoration.py"
