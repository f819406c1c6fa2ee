# Rule restoration_table: one Parquet row per restoration run and measurement.
from diffsweep import grid, io
from diffsweep.runs import join
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])
io.write_parquet(snakemake.output[0], join.frame("restoration", grid.manifest_rows(snakemake.config, "restoration"),
                                                 snakemake.params.results))
