# Rule aggregate: one Parquet row per run (parameters, metrics, NFE, time, status); training logs.
import pandas as pd

from diffsweep import io, tables
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])

manifest = pd.read_parquet(snakemake.input.manifest)
generation = tables.generation_table(manifest, snakemake.params.results)
io.write_parquet(snakemake.output.generation, tables.with_model_metrics(generation, snakemake.input.likelihoods))
io.write_parquet(snakemake.output.training, tables.training_table(snakemake.input.train_logs))
io.write_parquet(snakemake.output.training_by_sigma, tables.training_table(snakemake.input.loss_by_sigma))
