# The studies (docs/studies.md): a rule study_<name> for each study the config declares under
# `studies:`, from its entry in the studies registry (diffsweep.studies). Targets: common.smk
# (study_targets).

for _name, _options in STUDIES.items():
    _study = ds_studies.STUDIES[_name]

    rule:
        name:
            f"study_{_name}"
        input:
            table=f"{RESULTS}/tables/generation.parquet",
            **_study.inputs(GRID, RESULTS),
        output:
            png=update(report(f"{RESULTS}/plots/study_{_name}.png", category="6. Studies",
                              subcategory=_study.title, caption=f"../report/study_{_name}.rst")),
            pdf=update(f"{RESULTS}/plots/study_{_name}.pdf"),
            csv=update(report(f"{RESULTS}/tables/study_{_name}.csv", category="6. Studies",
                              subcategory=_study.title, caption=f"../report/study_{_name}.rst")),
        params:
            study=_name,
            options=_options,
            job=_study.job_arguments(config, GRID, _options),
        log:
            f"{RESULTS}/logs/studies/{_name}.log",
        resources:
            **resources(f"study_{_name}"),
        conda:
            "../../envs/diffsweep.yaml"
        script:
            "../../scripts/study.py"
