rule train:
    input:
        train=lambda wc: f"{RESULTS}/data/{GRID.models[wc.model_id].data.id}/train.npz",
    output:
        checkpoint=f"{RESULTS}/models/{{model_id}}/checkpoint.pt",
        train_log=f"{RESULTS}/models/{{model_id}}/train_log.parquet",
        loss_by_sigma=f"{RESULTS}/models/{{model_id}}/loss_by_sigma.parquet",
    params:
        model=lambda wc: model_dict(GRID.models[wc.model_id]),
        device=config["device"],
    log:
        "logs/train/{model_id}.log",
    benchmark:
        "benchmarks/train/{model_id}.tsv"
    threads: 1
    priority: 1  # trainings head the critical path: start them before runs that need no model
    resources:
        gpu=GPU,
        mem_mb=lambda wc, attempt: 4000 * attempt,  # a retry (profile: retries) asks for more
        runtime=lambda wc, attempt: 60 * attempt,
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/train.py"
