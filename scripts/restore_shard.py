# Rule restore_shard: restore every run of one score source (model loaded once).
from diffsweep import jobs
from diffsweep.logs import setup_logging
from diffsweep.restoration.jobs import restore_shard

setup_logging(snakemake.log[0])
jobs.use_threads(snakemake.threads)
restore_shard(snakemake.params.model, snakemake.params.runs, snakemake.input.reference,
              snakemake.input.get("checkpoint"), snakemake.params.results, snakemake.output.marker,
              metric_options=snakemake.params.metrics, strips=snakemake.params.strips, device=snakemake.params.device,
              fidelity_records=snakemake.input.fidelity, fidelity_options=snakemake.params.fidelity,
              max_batch=snakemake.config["max_batch"])
