# Per-model evaluations that do not depend on a sampler.


rule likelihood:
    input:
        unpack(model_inputs),
    output:
        f"{RESULTS}/models/{{model_id}}/likelihood.json",
    params:
        model=lambda wc: ds_grid.model_dict(GRID.models[wc.model_id]),
        options=config["metrics"]["likelihood"],
        device=config["jobs"]["device"],
    # `plugins` reaches the script through snakemake.config: adding a plugin must not re-run this job.
    log:
        f"{RESULTS}/logs/likelihood/{{model_id}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/likelihood/{{model_id}}.tsv"
    threads: 1
    resources:
        **resources("likelihood"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/likelihood.py"


# torch-fidelity metrics of image samples (diffsweep.fidelity): the digits feature extractor,
# then each dataset's reference features, cached once per dataset and extractor.


rule train_digits_classifier:
    output:
        f"{RESULTS}/fidelity/digits_classifier.pt",
    params:
        options=config["fidelity"]["digits_classifier"],
    log:
        f"{RESULTS}/logs/fidelity/digits_classifier.log",
    threads: 1
    resources:
        **resources("train_digits_classifier"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/train_digits_classifier.py"


rule fidelity_reference:
    input:
        unpack(fidelity_reference_inputs),
    output:
        f"{RESULTS}/fidelity/reference/{{data_id}}.{{extractor}}.json",
    params:
        options=config["fidelity"],
        cache=f"{RESULTS}/fidelity/cache",
        device=config["jobs"]["device"],
    # `plugins` reaches the script through snakemake.config: adding a plugin must not re-run this job.
    log:
        f"{RESULTS}/logs/fidelity/{{data_id}}.{{extractor}}.log",
    threads: 1
    resources:
        **resources("fidelity_reference"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/fidelity_reference.py"


# The metric's floor (diffsweep.floors): exact sample sets of a run's size scored against the
# reference set, once per analytic dataset, sample count and metric settings (its key); the
# generation table joins it on (rule aggregate).
rule floor:
    input:
        reference=lambda wc: f"{RESULTS}/data/{FLOORS[wc.key]['data']['id']}/reference.npz",
    output:
        f"{RESULTS}/floors/{{key}}.json",
    params:
        spec=lambda wc: FLOORS[wc.key],
        code=FLOOR_CODE,    # the fingerprint of the floor's code: a changed computation recomputes the floors
    # `plugins` reaches the script through snakemake.config: adding a plugin must not re-run this job.
    log:
        f"{RESULTS}/logs/floor/{{key}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/floor/{{key}}.tsv"
    threads: 1
    resources:
        **resources("floor"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/floor.py"
