# Rule fidelity_reference: one dataset's reference features for one extractor, cached by torch-fidelity.
import torch

from diffsweep import fidelity, io, registry
from diffsweep.runs import source
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])
source.use_threads(snakemake.threads)
registry.load_plugins(snakemake.config["plugins"])
reference = torch.from_numpy(io.read_sample_set(snakemake.input.reference))
fidelity.prepare_reference(snakemake.wildcards.extractor, reference, snakemake.params.options, snakemake.params.cache,
                           snakemake.output[0], digits_weights=snakemake.input.get("classifier"),
                           device=source.pick_device(snakemake.params.device))
