# Runs of both kinds (docs/restoration.md for restoration), packed into shards by score source
# and kind (common.smk: SHARDS). A shard job finds its runs from the shard id and the config
# (diffsweep.grid.shard_job), skips those already done, appends each other run's record and files
# to results/records/<shard>.jsonl and .archive, and writes its marker results/shards/<shard>.json
# (diffsweep.runs).


rule run_shard:
    input:
        unpack(shard_inputs),
    output:
        marker=f"{RESULTS}/shards/{{shard}}.json",
    params:
        # A key of the shard's pending runs, their records and drawing notes, its marker and its log
        # (runs.attempt): when a run failed, its record turned corrupt, its job died while it drew
        # (runs.DrawingNote) or was killed, or its records were deleted after the shard ran (`diffsweep
        # forget`, a deleted record file), the key changes and the `params` rerun trigger runs the shard
        # again; a missing marker is also a target (common.smk: PENDING).
        attempt=lambda wc: PENDING.get(wc.shard, "done"),
        results=lambda wc, output: results_of(output.marker, depth=1),
        options=shard_options,
        fidelity=config["fidelity"],
        device=config["jobs"]["device"],
    # The script reads its runs, `jobs` settings and `plugins` from snakemake.config, not params: the
    # shard id names its runs (no per-run dicts in the DAG), chunking the network's calls or adding
    # a plugin changes no run, and a params change would re-run finished shards (trigger `params`).
    log:
        str(ds_runs.shard_log(RESULTS, "{shard}")),
    benchmark:
        f"{RESULTS}/benchmarks/run_shard/{{shard}}.tsv"
    threads: 1
    resources:
        **resources("run_shard"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/run_shard.py"
