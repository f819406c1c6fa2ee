# Rule plot_heatmaps: each metric over training sigma-distribution x sampling schedule, trained models only.

from diffsweep import io, tables
from diffsweep.logs import setup_logging
from diffsweep.plots import heatmaps

setup_logging(snakemake.log[0])

options = snakemake.params.options
table = io.read_parquet(snakemake.input[0])
trained = tables.select_frame(table, {"model_source": "trained", **options["filter"]}, where="plots.heatmap.")
for metric in snakemake.params.metrics:
    heatmaps.heatmap(trained, metric, [snakemake.output[f"{metric}_png"], snakemake.output[f"{metric}_pdf"]],
                     rows=options["rows"], columns=options["columns"], reduce=options["reduce"],
                     better=snakemake.params.better[metric])
