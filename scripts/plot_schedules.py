# Rule plot_schedules: sigma_k against k for every schedule and step count of the sweep.

from diffsweep import io, plots
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])

plots.schedule_curves(io.read_parquet(snakemake.input[0]), list(snakemake.output))
