rule train:
    input:
        train=lambda wc: f"{RESULTS}/data/{GRID.models[wc.model_id].data.id}/train.npz",
    output:
        checkpoint=f"{RESULTS}/models/{{model_id}}/checkpoint.pt",
        train_log=f"{RESULTS}/models/{{model_id}}/train_log.parquet",
    params:
        model=lambda wc: model_dict(GRID.models[wc.model_id]),
        device=config["device"],
    log:
        "logs/train/{model_id}.log",
    benchmark:
        "benchmarks/train/{model_id}.tsv"
    threads: 1
    resources:
        gpu=0,
        mem_mb=4000,
        runtime=60,
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/train.py"
