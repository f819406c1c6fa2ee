# Rule ablation_table: one declared pivot of a results table as Markdown, LaTeX, CSV and HTML.
from diffsweep import tables
from diffsweep.logs import setup_logging

log = setup_logging(snakemake.log[0])

table = tables.write_ablation(snakemake.input[0], snakemake.params.spec, dict(snakemake.output.items()))
log.info("table %s: %d x %d cells of %s", snakemake.wildcards.table, len(table.row_keys), len(table.col_keys),
         table.spec.metric)
