# Rule study_error_sources: each trained network's error split into discretisation (the oracle's,
# same sampler configuration and seed) and score error (the rest); CSV and figure.
import pandas as pd

from diffsweep import io, plots
from diffsweep.logs import setup_logging
from diffsweep.tables import studies

setup_logging(snakemake.log[0])
sources = studies.error_sources(pd.read_parquet(snakemake.input[0]), snakemake.params.options["metric"])
with io.atomic_path(snakemake.output.csv) as tmp:
    sources.to_csv(tmp, index=False, float_format="%.5g")
plots.error_sources(sources, [snakemake.output.png, snakemake.output.pdf])
