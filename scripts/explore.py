# Rule explore: results/explore.html, the results explorer (one self-contained page) from the tables of
# runs, the runs' stored samples (thumbnails) and the declared ablation tables' HTML.
from diffsweep import explore, io
from diffsweep.logs import setup_logging

log = setup_logging(snakemake.log[0])

tables = {kind: io.read_parquet(path) for kind, path in zip(snakemake.params.kinds, snakemake.input.tables)}
size = explore.write(snakemake.output[0], tables, snakemake.params.results, snakemake.input.ablations,
                     snakemake.params.directions, first_metrics=snakemake.params.first_metrics)
log.info("explorer: %s, %.1f MB", snakemake.output[0], size / 1e6)
