# Rule plot_metrics: each metric against NFE, per sampler preset (bands over seeds); PNG and PDF.

from diffsweep import io
from diffsweep.logs import setup_logging
from diffsweep.plots import lines

setup_logging(snakemake.log[0])

table = io.read_parquet(snakemake.input[0])
for metric in snakemake.params.metrics:
    lines.metric_vs_nfe(table, metric, [snakemake.output[f"{metric}_png"], snakemake.output[f"{metric}_pdf"]])
