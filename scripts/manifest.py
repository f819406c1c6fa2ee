# Rule manifest: the run id -> parameters table of the whole grid.
from diffsweep import io, tables
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])

io.write_parquet(snakemake.output[0], tables.manifest_frame(snakemake.params.rows))
