# Rule floor: the metric's floor of one (analytic dataset, n_samples, metric settings), every distance.
from diffsweep import floors, registry
from diffsweep.logs import setup_logging
from diffsweep.runs import source

setup_logging(snakemake.log[0])
source.use_threads(snakemake.threads)
registry.load_plugins(snakemake.config["plugins"])
floors.job(snakemake.input.reference, snakemake.output[0], snakemake.wildcards.key, snakemake.params.spec)
