# Rule aggregate: one Parquet row per generation run (parameters, metrics, NFE, time, status),
# per-model likelihoods and the metric's floors joined on; training logs.
from diffsweep import floors, grid, io, tables
from diffsweep.runs import join, kinds
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])

kind = kinds.GENERATION.name
generation = join.frame(kind, grid.manifest_rows(snakemake.config, kind), snakemake.params.results)
with_likelihood = tables.with_model_metrics(generation, snakemake.input.likelihoods)
io.write_parquet(snakemake.output.generation, floors.with_floors(with_likelihood, snakemake.input.floors))
io.write_parquet(snakemake.output.training, tables.training_table(snakemake.input.train_logs))
io.write_parquet(snakemake.output.training_by_sigma, tables.training_table(snakemake.input.loss_by_sigma,
                                                                          tables.BY_SIGMA_PARAMS))
