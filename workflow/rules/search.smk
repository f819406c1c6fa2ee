# Adaptive searches (docs/search.md, diffsweep.grid.search): a checkpoint per rung cuts the
# candidates on the rung's records and writes results/search/<name>/rung<r>.json; the next rung's
# runs are planned from it (common.smk: search_rung_inputs), so the DAG grows a rung at a time.


checkpoint search_cut:
    input:
        search_rung_inputs,
    output:
        f"{RESULTS}/search/{{search}}/rung{{rung}}.json",
    params:
        results=lambda wc, output: results_of(output[0], depth=2),
        # the search's keys and candidates (grid.search.settings): changed, the rung is cut again
        settings=lambda wc: ds_search.settings(SEARCHES[wc.search], config),
    log:
        f"{RESULTS}/logs/search/{{search}}.rung{{rung}}.log",
    resources:
        **resources("search_cut"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/search_cut.py"


rule search_report:
    input:
        search_rungs,
    output:
        table=f"{RESULTS}/tables/search_{{search}}.csv",
        figures=expand(f"{RESULTS}/plots/search_{{{{search}}}}.{{ext}}", ext=PLOT_FORMATS),
    log:
        f"{RESULTS}/logs/search/{{search}}.report.log",
    resources:
        **resources("search_report"),
    conda:
        "../../envs/diffsweep.yaml"
    script:
        "../../scripts/search_report.py"
