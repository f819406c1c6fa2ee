# Rule run_shard: run a pack of runs of one kind that share one score source (loaded once). A run
# that raises is recorded as failed and the job succeeds (the Snakefile's onsuccess reports it),
# unless `sampling.fail_fast` is set.
from diffsweep import jobs, runs
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])
jobs.use_threads(snakemake.threads)
runs.run_shard(snakemake.params.model, snakemake.params.runs, snakemake.input.reference,
               snakemake.input.get("checkpoint"), snakemake.params.results, snakemake.output.marker,
               options=snakemake.params.options, device=snakemake.params.device, plugins=snakemake.config["plugins"],
               fidelity_records=snakemake.input.fidelity, fidelity_options=snakemake.params.fidelity,
               max_batch=snakemake.config["max_batch"], log_path=snakemake.log[0],
               fail_fast=snakemake.config["sampling"]["fail_fast"])
