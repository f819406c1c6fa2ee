# Rule sample_shard: sample and evaluate a pack of runs that share one model (loaded once).
from diffsweep import jobs
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])
jobs.use_threads(snakemake.threads)
jobs.sample_shard(snakemake.params.model, snakemake.params.runs, snakemake.input.reference,
                  snakemake.input.get("checkpoint"), snakemake.params.results, snakemake.output.marker,
                  metric_options=snakemake.params.metrics, device=snakemake.params.device,
                  plugins=snakemake.params.plugins, fidelity_records=snakemake.input.fidelity,
                  fidelity_options=snakemake.params.fidelity, max_batch=snakemake.config["max_batch"])
