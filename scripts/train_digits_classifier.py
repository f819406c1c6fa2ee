# Rule train_digits_classifier: the digits feature extractor of the fidelity metrics.
from diffsweep import fidelity, jobs
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])
jobs.use_threads(snakemake.threads)
fidelity.train_digits_classifier(snakemake.output[0], **snakemake.params.options)
