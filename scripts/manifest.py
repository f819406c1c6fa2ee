# Rule manifest: the run id -> parameters table of every run of the grid, each with its kind.
from diffsweep import grid, io
from diffsweep.runs import join
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])

io.write_parquet(snakemake.output[0], join.manifest(grid.manifest(snakemake.config)))
