# Rule plot_training: training loss against step, and the denoising error by training sigma, per trained model.

from diffsweep import io
from diffsweep.logs import setup_logging
from diffsweep.plots import training

setup_logging(snakemake.log[0])

manifest = io.read_parquet(snakemake.input.manifest)
training.training_curves(io.read_parquet(snakemake.input.training), manifest,
                         [snakemake.output.png, snakemake.output.pdf])
training.loss_by_sigma(io.read_parquet(snakemake.input.training_by_sigma), manifest,
                       [snakemake.output.by_sigma_png, snakemake.output.by_sigma_pdf])
