# Rule plot_metric: one metric against NFE, per sampler preset.
import pandas as pd

from diffsweep import plots
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])

plots.metric_vs_nfe(pd.read_parquet(snakemake.input[0]), snakemake.wildcards.metric, snakemake.output[0])
