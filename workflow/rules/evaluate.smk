# Per-model evaluations that do not depend on a sampler.


rule likelihood:
    input:
        unpack(model_inputs),
    output:
        f"{RESULTS}/models/{{model_id}}/likelihood.json",
    params:
        model=lambda wc: model_dict(GRID.models[wc.model_id]),
        options=config["metrics"]["likelihood"],
        device=config["device"],
    log:
        "logs/likelihood/{model_id}.log",
    benchmark:
        "benchmarks/likelihood/{model_id}.tsv"
    threads: 1
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=30,
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/likelihood.py"
