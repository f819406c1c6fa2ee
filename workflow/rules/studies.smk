# The studies (docs/studies.md), each drawn when the config declares it under `studies:`.
# Targets and checks: common.smk (study_targets).


rule study_temperature_ramp:
    input:
        table=f"{RESULTS}/tables/generation.parquet",
        references=[f"{RESULTS}/data/{spec.id}/reference.npz" for _, spec in sorted(GRID.datasets.items())],
    output:
        png=update(report(f"{RESULTS}/plots/study_temperature_ramp.png", category="6. Studies",
                          subcategory="Temperature ramp", caption="../report/study_temperature_ramp.rst")),
        pdf=update(f"{RESULTS}/plots/study_temperature_ramp.pdf"),
        csv=update(report(f"{RESULTS}/tables/study_temperature_ramp.csv", category="6. Studies",
                          subcategory="Temperature ramp", caption="../report/study_temperature_ramp.rst")),
    params:
        options=lambda wc: STUDIES["temperature_ramp"],
        datasets=lambda wc: [ds_grid.data_dict(spec) for _, spec in sorted(GRID.datasets.items())],
        n_samples=config["sampling"]["n_samples"],
        seeds=config["seeds"],
        n_projections=config["metrics"]["n_projections"],
    log:
        f"{RESULTS}/logs/studies/temperature_ramp.log",
    resources:
        **resources("study_temperature_ramp"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/study_temperature_ramp.py"


rule study_error_sources:
    input:
        f"{RESULTS}/tables/generation.parquet",
    output:
        png=update(report(f"{RESULTS}/plots/study_error_sources.png", category="6. Studies",
                          subcategory="Where the error comes from", caption="../report/study_error_sources.rst")),
        pdf=update(f"{RESULTS}/plots/study_error_sources.pdf"),
        csv=update(report(f"{RESULTS}/tables/study_error_sources.csv", category="6. Studies",
                          subcategory="Where the error comes from", caption="../report/study_error_sources.rst")),
    params:
        options=lambda wc: STUDIES["error_sources"],
        results=lambda wc, input: results_of(input[0], 1),   # the runs' stored samples: the score distance
        n_projections=config["metrics"]["n_projections"],
        better=lambda wc: ds_tables.direction(STUDIES["error_sources"]["metric"], DIRECTIONS, default="lower"),
    log:
        f"{RESULTS}/logs/studies/error_sources.log",
    resources:
        **resources("study_error_sources"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/study_error_sources.py"
