# Rule plot_samples: scatter grid of one dataset's samples (exact | each sampler), per model; at most
# plots.style.MAX_PANELS presets and models, the best by the first plotted metric.

from diffsweep import io
from diffsweep.logs import setup_logging
from diffsweep.plots import samples

setup_logging(snakemake.log[0])

samples.sample_grid(io.read_parquet(snakemake.input.table), snakemake.wildcards.dataset, snakemake.params.results,
                    io.read_arrays(snakemake.input.reference)["x"], list(snakemake.output),
                    max_points=snakemake.params.max_points, rank_by=snakemake.params.rank_by,
                    better=snakemake.params.better)
