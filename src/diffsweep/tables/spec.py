"""Ablation tables as declared: a `TableSpec` per `tables.ablations.<name>` entry (options
checked on their own), and the checks of a spec against data: `check_table` against rows of
a table (or, at parse time, against the grid's manifest rows), `check_declared` for every
declared table, `check_heatmap` for the heatmap options."""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from diffsweep.runs import kinds
from diffsweep.tables.aggregate import EXTRA_COLUMNS, MEASUREMENT_COLUMNS, RECORD_COLUMNS, manifest_params
from diffsweep.tables.options import (AGGREGATES, DEFAULT_LEVEL, DIRECTIONS, INTERVALS, METRIC_DIRECTIONS, POOLING,
                                      SOURCES, TESTS, TableError)
from diffsweep.tables.rows import columns_of, distinguishing, format_key, group, select, sorted_values, unknown_column

SEED = "seed"    # the parameter a cell aggregates over
# A trained model's training seed (models.<m>.seed as a list: one trained model per seed): a cell
# aggregates over it too, averaging its training seeds per sampling seed (pivot.py).
TRAINING_SEED = "model_seed"


@dataclass(frozen=True)
class TableSpec:
    """One ablation table. `better` is resolved: lower, higher or none."""
    name: str
    metric: str
    rows: tuple
    columns: tuple = ()
    filter: dict = field(default_factory=dict)
    aggregate: str = "mean_ci"
    better: str = "none"
    pool: str = "error"
    format: str = ".3g"
    caption: str = ""
    order: dict = field(default_factory=dict)
    source: str = kinds.GENERATION.name     # the kind of run whose table it pivots
    ci: str = "t"                           # the interval over seeds (stats.seed_interval)
    test: str = "t"                         # the paired test of a cell against the column's leader
    level: float = DEFAULT_LEVEL            # of the intervals; the tests run at 1 - level

    @classmethod
    def from_config(cls, name: str, entry: dict, directions: dict | None = None, where: str = "") -> "TableSpec":
        """A spec from a (schema-completed) `tables.ablations.<name>` entry; `better: auto`
        takes the metric's direction from `directions` over METRIC_DIRECTIONS."""
        where = where or f"tables.ablations.{name}."
        as_tuple = lambda v: tuple(v) if isinstance(v, (list, tuple)) else ((v,) if v else ())  # noqa: E731
        better = entry.get("better", "auto")
        metric = entry["metric"]
        if better == "auto":
            known = {**METRIC_DIRECTIONS, **(directions or {})}
            if metric not in known:
                close = difflib.get_close_matches(metric, list(known), n=3)
                hint = f" (did you mean {', '.join(close)}?)" if close else ""
                raise TableError(f"{where}metric: '{metric}' is not a known metric{hint}; known: "
                                 f"{', '.join(sorted(known))}. For another numeric column set better: "
                                 f"lower|higher|none on the table or declare its direction under tables.better")
            better = known[metric]
        spec = cls(name=name, metric=metric, rows=as_tuple(entry["rows"]), columns=as_tuple(entry.get("columns")),
                   filter=dict(entry.get("filter") or {}), aggregate=entry.get("aggregate", "mean_ci"),
                   better=better, pool=entry.get("pool", "error"), format=entry.get("format", ".3g"),
                   caption=entry.get("caption", ""), order=dict(entry.get("order") or {}),
                   source=entry.get("source", kinds.GENERATION.name), ci=entry.get("ci", "t"),
                   test=entry.get("test", "t"), level=entry.get("level", DEFAULT_LEVEL))
        spec.check_options(where)
        return spec

    def check_options(self, where: str = "") -> None:
        if not self.rows:
            raise TableError(f"{where}rows: name at least one column")
        if self.aggregate not in AGGREGATES:
            raise TableError(f"{where}aggregate: '{self.aggregate}' is not allowed; allowed: {', '.join(AGGREGATES)}")
        if self.better not in DIRECTIONS:
            raise TableError(f"{where}better: '{self.better}' is not allowed; allowed: auto, {', '.join(DIRECTIONS)}")
        if self.pool not in POOLING:
            raise TableError(f"{where}pool: '{self.pool}' is not allowed; allowed: {', '.join(POOLING)}")
        if self.pool == "best" and self.better == "none":
            raise TableError(f"{where}pool: best needs a direction (better: lower|higher)")
        if self.ci not in INTERVALS:
            raise TableError(f"{where}ci: '{self.ci}' is not allowed; allowed: {', '.join(INTERVALS)}")
        if self.test not in TESTS:
            raise TableError(f"{where}test: '{self.test}' is not allowed; allowed: {', '.join(TESTS)}")
        if isinstance(self.level, bool) or not isinstance(self.level, (int, float)) or not 0 < self.level < 1:
            raise TableError(f"{where}level: {self.level!r} is not a level; allowed: a number strictly between 0 and 1, "
                             f"e.g. 0.95")
        if self.source not in SOURCES:
            raise TableError(f"{where}source: '{self.source}' is not allowed; allowed: {', '.join(SOURCES)}")
        try:
            format(1.2345, self.format)
        except (ValueError, TypeError):
            raise TableError(f"{where}format: '{self.format}' is not a number format such as .3g, .2f or .2e") from None
        keys = self.rows + self.columns
        repeated = sorted({k for k in keys if keys.count(k) > 1})
        if repeated:
            raise TableError(f"{where}rows/columns: {', '.join(repeated)} named twice")
        if self.metric in keys:
            raise TableError(f"{where}metric: '{self.metric}' is also a row or column")

    def as_dict(self) -> dict:
        return {"name": self.name, "metric": self.metric, "rows": list(self.rows), "columns": list(self.columns),
                "filter": self.filter, "aggregate": self.aggregate, "better": self.better, "pool": self.pool,
                "format": self.format, "caption": self.caption, "order": self.order, "source": self.source,
                "ci": self.ci, "test": self.test, "level": self.level}

    @classmethod
    def from_dict(cls, spec: dict) -> "TableSpec":
        return cls(**{**spec, "rows": tuple(spec["rows"]), "columns": tuple(spec["columns"])})


def ablation_specs(tables_config: dict) -> dict[str, TableSpec]:
    """Every declared table of a config's `tables:` section (options checked; columns are
    checked against data by `check_table`)."""
    directions = tables_config.get("better") or {}
    return {name: TableSpec.from_config(name, entry, directions)
            for name, entry in (tables_config.get("ablations") or {}).items()}


def known_metrics(directions: dict | None = None) -> list[str]:
    return sorted({*METRIC_DIRECTIONS, *(directions or {})})


def result_columns(source: str, directions: dict | None = None) -> list[str]:
    """The columns a source's rows gain once their runs finished: what a declared table may
    name although the manifest does not have it yet."""
    kind = kinds.get(source)
    return [*kind.row_keys[1:], *RECORD_COLUMNS, *EXTRA_COLUMNS, *known_metrics(directions),
            *(sorted(MEASUREMENT_COLUMNS) if kind.model_metrics else [])]


def direction(metric: str, directions: dict | None = None, default: str = "none") -> str:
    """lower, higher or none: which end of `metric` is better."""
    return {**METRIC_DIRECTIONS, **(directions or {})}.get(metric, default)


class MixedCellError(TableError):
    """A cell holds runs that differ in more than the seed and the spec does not say how to
    pool them. `what` says which cell and columns; the message adds the config's fix (the
    command line words its own)."""

    def __init__(self, where: str, cell: str, columns: list[str], values: list):
        more = f" (and {', '.join(columns[1:6])}{', ...' if len(columns) > 6 else ''})" if columns[1:] else ""
        self.what = (f"the cell {cell} holds runs that differ in {columns[0]} "
                     f"({', '.join(format_key(v) for v in values)}){more}, not only in the seed")
        self.columns = columns
        prefix = where.rstrip(".-")
        super().__init__(f"{prefix + ': ' if prefix else ''}{self.what}; fix them with a filter, add them to rows or "
                         f"columns, or set pool: best (best of them) or pool: mean (pool them)")


def differing(cell: list[dict], keys, parameter_columns) -> list[str]:
    """The parameters other than the sampling and training seeds that tell the runs of a cell apart
    (see `distinguishing`)."""
    present = set(columns_of(cell))
    return distinguishing(cell, keys, [c for c in parameter_columns if c in present and c not in (SEED, TRAINING_SEED)])


def check_table(spec: TableSpec, rows: list[dict], parameter_columns, extra_columns=(), where: str | None = None) -> list[dict]:
    """Check a table against data (or, at parse time, against the grid's manifest rows with
    `extra_columns` naming the columns runs will add): every named column exists, the filter
    selects runs, and no cell mixes runs that differ in a parameter (`parameter_columns`: the table's
    parameter columns) other than the seed, unless `pool` says how to combine them. Returns
    the selected rows."""
    where = f"tables.ablations.{spec.name}." if where is None else where
    available = list(dict.fromkeys([*columns_of(rows), *extra_columns]))
    for part, names in (("rows", spec.rows), ("columns", spec.columns), ("order", tuple(spec.order))):
        for column in names:
            if column not in available:
                raise unknown_column(column, available, f"{where}{part}: ")
    if spec.metric not in available:
        error = unknown_column(spec.metric, available, f"{where}metric: ")
        if extra_columns:   # parse time: metrics exist only once runs finished
            error = TableError(f"{error} (a metric the library does not know is declared with its direction under "
                               f"tables.better)")
        raise error
    selected = select(rows, spec.filter, where, available)
    if spec.pool == "error":
        keys = spec.rows + spec.columns
        for key, cell in group(selected, keys).items():
            varying = differing(cell, keys, parameter_columns)
            if varying:
                label = ", ".join(f"{k}={format_key(v)}" for k, v in zip(keys, key))
                raise MixedCellError(where, label, varying, sorted_values({r.get(varying[0]) for r in cell}))
    return selected


def check_declared(specs: dict[str, TableSpec], manifest_rows, directions: dict | None = None) -> None:
    """Parse-time check of every declared table against the grid: the columns runs will have
    are the manifest's, the record's and the known metrics'. `manifest_rows`: the grid's
    manifest rows per source (kind name -> rows), or the generation rows alone."""
    by_source = manifest_rows if isinstance(manifest_rows, dict) else {kinds.GENERATION.name: manifest_rows}
    for spec in specs.values():
        if spec.source not in by_source:
            raise TableError(f"tables.ablations.{spec.name}.source: {spec.source} tables are not checked here "
                             f"(no {spec.source} manifest rows given)")
        rows = by_source[spec.source]
        if not rows:
            raise TableError(f"tables.ablations.{spec.name}.source: the grid has no {spec.source} runs")
        check_table(spec, rows, manifest_params(columns_of(rows)), result_columns(spec.source, directions))


def check_heatmap(options: dict, manifest_rows: list[dict], directions: dict | None = None,
                  where: str = "plots.heatmap.") -> list[dict]:
    """Parse-time check of the heatmap options against the trained runs of the grid (the
    heatmaps show trained models only): rows, columns and filter name existing columns."""
    trained = [row for row in manifest_rows if row.get("model_source") == "trained"]
    available = columns_of(trained)
    for part in ("rows", "columns"):
        if options[part] not in available:
            raise unknown_column(options[part], available, f"{where}{part}: ")
    return select(trained, options.get("filter") or {}, where, [*available, *result_columns(kinds.GENERATION.name, directions)])
