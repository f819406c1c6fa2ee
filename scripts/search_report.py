# Rule search_report: a search's survivors table (every candidate, the rung it reached, its last
# mean and interval) and its rung figure (the metric against the budget, eliminated candidates faded).
from diffsweep import io
from diffsweep.grid import search
from diffsweep.logs import setup_logging
from diffsweep.plots import search as search_plot

setup_logging(snakemake.log[0])

decisions = [io.read_json(path) for path in snakemake.input]
spec = search.declared(snakemake.config)[snakemake.wildcards.search]
search.write_table(snakemake.output.table, search.survivors_table(decisions, spec, snakemake.config))
search_plot.rung_figure(decisions, list(snakemake.output.figures), search.labels(spec, snakemake.config))
