"""Tables: run records -> Parquet tables, and ablation tables (pivots) of those.

- aggregate.py  run records -> typed Parquet tables (generation, training), each listing its
                parameter columns in `frame.attrs["param_columns"]`, taken from the manifest
- options.py    every choice a table or figure offers: formats, aggregations, pooling,
                directions, sources (the config schema, the CLI and the Snakefile take them from here)
- rows.py       plain records: selection by filters, grouping, which parameters tell runs apart
- spec.py       declared ablation tables (`tables.ablations.<name>`) and their checks against data
- pivot.py      the pivot: cells of seeds aggregated with intervals, each column compared (paired tests,
                Holm: best, tied, worse, untested; stats.compare_column), the seeds each comparison needs
- render.py     Markdown, LaTeX (booktabs), CSV and HTML, and the files of a declared table

The pivot works on plain records (a list of dicts) and its parameter columns, so the
Snakefile checks declared tables against the grid's manifest at parse time without
importing pandas; `records(frame)` and `param_columns(frame)` turn a Parquet table into those.
pandas is imported only by the functions that need it.
"""

from diffsweep.tables.aggregate import (BY_SIGMA_PARAMS, ID_COLUMNS, LEADING_COLUMNS, MEASUREMENT_COLUMNS,
                                        RECORD_COLUMNS, TRAINING_PARAMS, manifest_frame, manifest_params,
                                        training_table, typed_frame, with_model_metrics, with_params)
from diffsweep.tables.options import (AGGREGATES, DEFAULT_LEVEL, DIRECTIONS, EMPTY, FORMATS, HEATMAP_REDUCE, INTERVALS,
                                      METRIC_DIRECTIONS, PLOT_FORMATS, POOLING, SOURCES, TABLE_FORMATS, TESTED_AGGREGATES,
                                      TESTS, TableError)
from diffsweep.tables.pivot import TIED_MARK, Ablation, Cell, ablation
from diffsweep.tables.render import CSV_COLUMNS, render_table, to_csv, to_html, to_latex, to_markdown, write_ablation
from diffsweep.tables.rows import (PARAM_COLUMNS, columns_of, distinguishing, format_key, group, param_columns,
                                   records, select, select_frame, sorted_values)
from diffsweep.tables.spec import (MixedCellError, TableSpec, ablation_specs, check_declared, check_heatmap,
                                   check_table, direction, known_metrics)

__all__ = [
    "AGGREGATES", "Ablation", "BY_SIGMA_PARAMS", "CSV_COLUMNS", "Cell", "DEFAULT_LEVEL", "DIRECTIONS", "EMPTY",
    "FORMATS", "HEATMAP_REDUCE", "ID_COLUMNS", "INTERVALS", "TESTED_AGGREGATES", "TESTS", "TIED_MARK", "LEADING_COLUMNS", "MEASUREMENT_COLUMNS", "METRIC_DIRECTIONS", "MixedCellError",
    "PARAM_COLUMNS", "PLOT_FORMATS", "POOLING", "RECORD_COLUMNS", "SOURCES", "TABLE_FORMATS", "TRAINING_PARAMS",
    "TableError", "TableSpec", "ablation", "ablation_specs", "check_declared", "check_heatmap", "check_table",
    "columns_of", "direction", "distinguishing", "format_key", "group", "known_metrics", "manifest_frame",
    "manifest_params", "param_columns", "records", "render_table", "select", "select_frame", "sorted_values",
    "to_csv", "to_html", "to_latex", "to_markdown", "training_table", "typed_frame", "with_model_metrics",
    "with_params", "write_ablation"
]
