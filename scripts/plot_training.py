# Rule plot_training: training loss against step, per trained model.
import pandas as pd

from diffsweep import plots
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])

plots.training_curves(pd.read_parquet(snakemake.input.training), pd.read_parquet(snakemake.input.manifest),
                      list(snakemake.output))
