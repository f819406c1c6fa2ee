# Rule plot_restoration: each restoration metric against NFE, a line per restorer preset.

from diffsweep import io
from diffsweep.logs import setup_logging
from diffsweep.plots import lines

setup_logging(snakemake.log[0])
table = io.read_parquet(snakemake.input[0])
for metric, png, pdf in zip(snakemake.params.metrics, snakemake.output.png, snakemake.output.pdf):
    lines.restoration_vs_nfe(table, metric, [png, pdf])
