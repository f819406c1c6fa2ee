# Runs of both kinds (docs/restoration.md for restoration), packed into shards by score source
# and kind (common.smk: SHARDS). A shard job writes results/runs/<run_id>/ for each run and its
# marker results/shards/<shard>.json (diffsweep.runs).


rule run_shard:
    input:
        unpack(shard_inputs),
    output:
        marker=f"{RESULTS}/shards/{{shard}}.json",
    params:
        model=lambda wc: ds_grid.model_dict(shard_run(wc).model),
        runs=lambda wc: [ds_grid.run_dict(RUNS[run_id]) for run_id in SHARDS[wc.shard]],
        # A shard holds runs that are not done; if its marker exists, some of them failed or their
        # records were found corrupt since: the changed value re-runs it (rerun trigger `params`).
        attempt=lambda wc: ds_runs.attempt(RESULTS, SHARDS[wc.shard]),
        results=lambda wc, output: results_of(output.marker, depth=1),
        options=shard_options,
        fidelity=config["fidelity"],
        device=config["device"],
    # The script reads `max_batch` and `plugins` from snakemake.config, not params: chunking the
    # network's calls or adding a plugin changes no run, and a params change would re-run finished
    # shards (rerun trigger `params`).
    log:
        "logs/run_shard/{shard}.log",
    benchmark:
        "benchmarks/run_shard/{shard}.tsv"
    threads: 1
    resources:
        **resources("run_shard"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/run_shard.py"
