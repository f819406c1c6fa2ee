# Rule train: fit one model recipe on one dataset; writes the EMA checkpoint and the training log.
from diffsweep import jobs
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])
jobs.use_threads(snakemake.threads)
jobs.train_model(snakemake.params.model, snakemake.input.train, snakemake.output.checkpoint,
                 snakemake.output.train_log, device=snakemake.params.device)
