rule prepare_data:
    output:
        train=f"{RESULTS}/data/{{data_id}}/train.npz",
        reference=f"{RESULTS}/data/{{data_id}}/reference.npz",
    params:
        spec=lambda wc: ds_grid.data_dict(DATASETS_BY_ID[wc.data_id]),
    # `plugins` reaches the script through snakemake.config: adding a plugin must not re-run this job.
    log:
        f"{RESULTS}/logs/prepare_data/{{data_id}}.log",
    resources:
        **resources("prepare_data"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/prepare_data.py"
