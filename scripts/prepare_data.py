# Rule prepare_data: draw a dataset's training and reference sets.
from diffsweep import jobs, registry
from diffsweep.runs import source
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])
source.use_threads(snakemake.threads)
registry.load_plugins(snakemake.config["plugins"])
jobs.prepare_data(snakemake.params.spec, snakemake.output.train, snakemake.output.reference)
