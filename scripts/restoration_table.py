# Rule restoration_table: one Parquet row per restoration run and measurement.
from diffsweep import io
from diffsweep.logs import setup_logging
from diffsweep.restoration.jobs import restoration_table

setup_logging(snakemake.log[0])
io.write_parquet(snakemake.output[0], restoration_table(snakemake.params.rows, snakemake.params.results))
