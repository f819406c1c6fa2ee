# Rule plot_schedules: sigma_k against k for every schedule and step count of the sweep.

from diffsweep import io
from diffsweep.logs import setup_logging
from diffsweep.plots import schedules

setup_logging(snakemake.log[0])

schedules.schedule_curves(io.read_parquet(snakemake.input[0]), list(snakemake.output))
