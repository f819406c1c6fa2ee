# Rule train_digits_classifier: the digits feature extractor of the fidelity metrics.
from diffsweep import fidelity
from diffsweep.runs import source
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])
source.use_threads(snakemake.threads)
fidelity.train_digits_classifier(snakemake.output[0], **snakemake.params.options)
