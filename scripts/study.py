# Rules study_<name>: one study's table (CSV) and figure (docs/studies.md); the study's module
# (diffsweep.studies.<name>) does the work.

from diffsweep.logs import setup_logging
from diffsweep.studies import STUDIES

setup_logging(snakemake.log[0])

STUDIES[snakemake.params.study].job(dict(snakemake.input.items()), dict(snakemake.output.items()),
                                    snakemake.params.options, **snakemake.params.job)
