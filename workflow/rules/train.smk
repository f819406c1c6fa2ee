rule train:
    input:
        train=training_set,
    output:
        checkpoint=f"{RESULTS}/models/{{model_id}}/checkpoint.pt",
        train_log=f"{RESULTS}/models/{{model_id}}/train_log.parquet",
        loss_by_sigma=f"{RESULTS}/models/{{model_id}}/loss_by_sigma.parquet",
    params:
        # the model with the training code its checkpoint has (common.smk: TRAINING): a retraining
        # for changed training code (code_changes: rerun) is a params change
        model=lambda wc: TRAINING.model_param(ds_grid.model_dict(GRID.models[wc.model_id])),
        device=config["jobs"]["device"],
    # The script reads training.checkpoint_every, amp, compile and `plugins` from snakemake.config,
    # not params: they are how a model is trained, not which model (its id), and a params change
    # would retrain finished models (rerun trigger `params`).
    log:
        f"{RESULTS}/logs/train/{{model_id}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{model_id}}.tsv"
    threads: 1
    priority: 1  # trainings head the critical path: start them before runs that need no model
    resources:
        **resources("train"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/train.py"
