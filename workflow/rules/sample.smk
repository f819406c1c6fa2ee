rule sample_shard:
    input:
        unpack(shard_inputs),
    output:
        marker=f"{RESULTS}/shards/{{shard}}.json",
    params:
        model=lambda wc: model_dict(shard_model(wc)),
        runs=lambda wc: [run_dict(GRID.runs[run_id]) for run_id in SHARDS[wc.shard]],
        results=lambda wc, output: results_of(output.marker, depth=1),
        metrics={key: value for key, value in config["metrics"].items() if key != "likelihood"},
        fidelity=config["fidelity"],
        device=config["device"],
        plugins=config["plugins"],
    log:
        "logs/sample/{shard}.log",
    benchmark:
        "benchmarks/sample/{shard}.tsv"
    threads: 1
    resources:
        gpu=GPU,
        mem_mb=lambda wc, attempt: 4000 * attempt,  # a retry (profile: retries) asks for more
        runtime=lambda wc, attempt: 60 * attempt,
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/sample_shard.py"
