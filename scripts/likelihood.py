# Rule likelihood: bits/dim of reference points under one score source's probability-flow ODE.
from diffsweep import jobs, registry
from diffsweep.runs import source
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])
source.use_threads(snakemake.threads)
registry.load_plugins(snakemake.config["plugins"])
jobs.evaluate_likelihood(snakemake.params.model, snakemake.input.reference, snakemake.input.get("checkpoint"),
                         snakemake.output[0], snakemake.params.options, device=snakemake.params.device)
