# Rule plot_metrics: each metric against NFE, per sampler preset (bands over seeds); PNG and PDF.

from diffsweep import io, plots
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])

table = io.read_parquet(snakemake.input[0])
for metric in snakemake.params.metrics:
    plots.metric_vs_nfe(table, metric, [snakemake.output[f"{metric}_png"], snakemake.output[f"{metric}_pdf"]])
