# Rule restoration_table: one Parquet row per restoration run and measurement.
from diffsweep import grid, io
from diffsweep.runs import join, kinds
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])
kind = kinds.RESTORATION.name
io.write_parquet(snakemake.output[0], join.frame(kind, grid.manifest_rows(snakemake.config, kind), snakemake.params.results))
