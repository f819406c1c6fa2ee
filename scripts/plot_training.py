# Rule plot_training: training loss against step, and the denoising error by training sigma, per trained model.
import pandas as pd

from diffsweep import plots
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])

manifest = pd.read_parquet(snakemake.input.manifest)
plots.training_curves(pd.read_parquet(snakemake.input.training), manifest, [snakemake.output.png, snakemake.output.pdf])
plots.loss_by_sigma(pd.read_parquet(snakemake.input.training_by_sigma), manifest,
                    [snakemake.output.by_sigma_png, snakemake.output.by_sigma_pdf])
