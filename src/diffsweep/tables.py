"""Tables: run records -> Parquet tables, and ablation tables (pivots) of those.

Aggregation. Parameter columns come from the resolved run (the manifest row stored in
run.json), never from paths. A run in the manifest without a record shows up with status
`missing`. Column types are fixed by the values' Python types, not by which runs happen to
be in the grid: an integer parameter is `Int64` (nullable) even where the oracle leaves it
empty, a boolean one `boolean`, so the schema documented in docs/tables.md holds for every
grid.

Ablation tables. A declared pivot (filter, rows, columns, metric) of a results table, its
seeds aggregated (mean +- std and n), the best value per column marked, written as Markdown,
LaTeX (booktabs), CSV (one line per cell) and HTML (for the report). The pivot works on
plain records (a list of dicts), so the Snakefile checks declared tables against the grid's
manifest at parse time without importing pandas; `records(frame)` turns a Parquet table
into records. pandas is imported only by the functions that need it.
"""

from __future__ import annotations

import csv
import difflib
import html
import io
import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

RECORD_COLUMNS = ["status", "nfe", "wall_s", "device", "finished"]
LEADING_COLUMNS = ["run_id", "dataset", "model", "sampler", "sampler_family", "schedule", "steps", "init", "seed"]

# --- aggregation -------------------------------------------------------------------------


def manifest_frame(rows: list[dict]):
    """Runs sorted by id; identifying columns first, the other parameters alphabetically."""
    frame = typed_frame(rows).sort_values("run_id", ignore_index=True)
    rest = sorted(c for c in frame.columns if c not in LEADING_COLUMNS)
    return frame[[c for c in LEADING_COLUMNS if c in frame.columns] + rest]


def generation_table(manifest, results):
    """The manifest joined with each run's record and metrics."""
    records = []
    for run_id in manifest["run_id"]:
        path = Path(results) / "runs" / run_id / "run.json"
        if not path.exists():
            records.append({"run_id": run_id, "status": "missing"})
            continue
        record = json.loads(path.read_text())
        records.append({"run_id": run_id, **{k: record.get(k) for k in RECORD_COLUMNS}, **record["metrics"],
                        **{f"{name}_status": why for name, why in record.get("skipped", {}).items()},
                        "git_revision": record["provenance"].get("git_revision")})
    metric_names = sorted({k for r in records for k in r} - {"run_id", *RECORD_COLUMNS, "git_revision"})
    frame = typed_frame(records, first=["run_id", *RECORD_COLUMNS, *metric_names, "git_revision"])
    for column, dtype in (("nfe", "Int64"), ("wall_s", "float64")):   # stable even when every run is missing
        if column in frame:
            frame[column] = frame[column].astype(dtype)
    return manifest.merge(frame, on="run_id", how="left")


def with_model_metrics(generation, record_paths):
    """Per-model evaluations (likelihood.json) joined onto every run of that model, as model_<key> columns."""
    import pandas as pd

    rows = []
    for path in record_paths:
        record = json.loads(Path(path).read_text())
        rows.append({"model_id": record.pop("model_id"), **{f"model_{k}": v for k, v in record.items()}})
    if not rows:
        return generation
    return generation.merge(typed_frame(rows) if rows else pd.DataFrame(), on="model_id", how="left")


def training_table(log_paths):
    import pandas as pd

    frames = [pd.read_parquet(path) for path in log_paths]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["model_id", "step", "loss"])


def typed_frame(rows: list[dict], first=()):
    """A DataFrame of `rows` whose column types follow the values' Python types: ints -> Int64,
    bools -> boolean, numbers -> float64, text -> str; a column mixing kinds is written as text.
    (pandas alone would make an int column with a gap float64 and a bool one object.)"""
    import pandas as pd

    columns = list(dict.fromkeys([*first, *(key for row in rows for key in row)]))
    data = {}
    for column in columns:
        values = [row.get(column) for row in rows]
        kinds = {_kind(v) for v in values} - {"none"}
        if kinds == {"bool"}:
            data[column] = pd.array(values, dtype="boolean")
        elif kinds == {"int"}:
            data[column] = pd.array(values, dtype="Int64")
        elif kinds and kinds <= {"int", "float"}:
            data[column] = pd.array([math.nan if v is None else float(v) for v in values], dtype="float64")
        elif kinds == {"str"} or not kinds:
            data[column] = pd.array(values, dtype="str")
        else:
            data[column] = pd.array([None if v is None else _text(v) for v in values], dtype="str")
    return pd.DataFrame(data, index=range(len(rows)), columns=columns)


def _kind(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "none"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if hasattr(value, "item"):   # numpy scalars
        return _kind(value.item())
    return "other"


def _text(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


# --- ablation tables: declarations -------------------------------------------------------

# Which way is better, per metric; the config's `tables.better` adds to and overrides this.
METRIC_DIRECTIONS = {
    "sliced_w2": "lower", "mmd": "lower", "energy_distance": "lower", "mode_weight_error": "lower",
    "off_mode_fraction": "lower", "mode_coverage": "higher", "mean_loglik": "higher",
    "model_nll_bpd": "lower", "model_true_nll_bpd": "lower",
    "nfe": "lower", "wall_s": "lower",
    # restoration metrics (issue 5) and common image metrics
    "psnr": "higher", "ssim": "higher", "lpips": "lower", "fid": "lower", "mse": "lower",
    "pixel_frechet": "lower",
    **{f"{metric}_{extractor}": direction for extractor in ("digits", "inception") for metric, direction in (
        ("fid", "lower"), ("kid", "lower"), ("precision", "higher"), ("recall", "higher"), ("prc_f_score", "higher"),
        ("isc", "higher"))},
}
# Columns that hold measurements although their names look like parameters (see PARAM_PREFIXES).
MEASUREMENT_COLUMNS = {"model_nll_bpd", "model_true_nll_bpd", "model_likelihood_nfe", "model_likelihood_points",
                       "model_likelihood_wall_s", "model_likelihood_trace"}
# Columns that are neither parameters nor metrics.
ID_COLUMNS = ("run_id", "data_id", "model_id")
EXTRA_COLUMNS = ("git_revision",)
# A column is a parameter of the run when its name starts with one of these (and it is not an
# id or a measurement). Parameters are what the pooling check compares inside a cell;
# restoration adds its own prefixes here.
PARAM_PREFIXES = ("dataset", "model", "sampler", "schedule", "steps", "init", "knob_", "n_samples",
                  "task", "operator", "restorer")
AGGREGATES = {"mean_std": "mean ± std", "mean": "mean", "median": "median", "min": "minimum", "max": "maximum"}
POOLING = ("error", "best", "mean")
DIRECTIONS = ("lower", "higher", "none")
SOURCES = {"generation": "tables/generation.parquet", "restoration": "tables/restoration.parquet"}
FORMATS = ("markdown", "latex", "csv", "html")
EMPTY = "–"        # a cell without runs


class TableError(ValueError):
    """A table that cannot be built; the message names the key and what is available."""


@dataclass(frozen=True)
class TableSpec:
    """One ablation table. `better` is resolved: lower, higher or none."""
    name: str
    metric: str
    rows: tuple
    columns: tuple = ()
    filter: dict = field(default_factory=dict)
    aggregate: str = "mean_std"
    better: str = "none"
    pool: str = "error"
    format: str = ".3g"
    caption: str = ""
    order: dict = field(default_factory=dict)
    source: str = "generation"

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
                   filter=dict(entry.get("filter") or {}), aggregate=entry.get("aggregate", "mean_std"),
                   better=better, pool=entry.get("pool", "error"), format=entry.get("format", ".3g"),
                   caption=entry.get("caption", ""), order=dict(entry.get("order") or {}),
                   source=entry.get("source", "generation"))
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
                "format": self.format, "caption": self.caption, "order": self.order, "source": self.source}

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


# --- records and selection -----------------------------------------------------------------

def records(frame) -> list[dict]:
    """Rows of a DataFrame as dicts of plain Python values (missing values as None)."""
    out = []
    for row in frame.to_dict("records"):
        out.append({key: _plain(value) for key, value in row.items()})
    return out


def _plain(value):
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    try:
        if value != value:   # NaN, and pd.NA raises TypeError
            return None
    except TypeError:
        return None
    return value


def columns_of(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(key for row in rows for key in row))


def is_param(column: str) -> bool:
    """Whether a column is a parameter of the run (compared by the pooling check)."""
    return column.startswith(PARAM_PREFIXES) and column not in ID_COLUMNS and column not in MEASUREMENT_COLUMNS


def unknown_column(column: str, available, where: str) -> TableError:
    available = list(available)
    close = difflib.get_close_matches(column, available, n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return TableError(f"{where}unknown column '{column}'{hint}; available columns: {', '.join(available)}")


def parse_filters(items) -> dict:
    """`["dataset=ring8", "steps=10,40"]` -> {"dataset": ["ring8"], "steps": ["10", "40"]}."""
    filters = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise TableError(f"filter '{item}': expected COLUMN=VALUE or COLUMN=V1,V2")
        filters.setdefault(key.strip(), []).extend(v.strip() for v in value.split(","))
    return filters


def column_kind(rows: list[dict], column: str) -> str:
    """bool, number, str or none: the kind of a column's non-missing values."""
    kinds = {_kind(row.get(column)) for row in rows} - {"none"}
    if not kinds:
        return "none"
    if kinds == {"bool"}:
        return "bool"
    if kinds <= {"int", "float"}:
        return "number"
    return "str"


_NULLS = {"none", "null", "na", "nan", ""}


def coerce(value, kind: str, where: str = ""):
    """A filter value (from YAML or the command line) in the kind of the column it is compared with."""
    if value is None or (isinstance(value, str) and value.strip().lower() in _NULLS and kind != "str"):
        return None
    if kind == "number":
        if isinstance(value, bool):
            raise TableError(f"{where}{value!r} is not a number")
        if isinstance(value, (int, float)):
            return value
        try:
            return int(value)
        except ValueError:
            try:
                return float(value)
            except ValueError:
                raise TableError(f"{where}'{value}' is not a number (the column holds numbers)") from None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
        raise TableError(f"{where}'{value}' is not true or false (the column holds booleans)")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return value if isinstance(value, str) else str(value).lower() if isinstance(value, bool) else str(value)


def _equal(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) \
            and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=0.0)
    return a == b


def select(rows: list[dict], filters: dict, where: str = "", available=None) -> list[dict]:
    """The rows matching every filter (column -> value or list of values, any of which matches).
    Unknown columns and filters that match nothing raise TableError naming what there is."""
    present = columns_of(rows)
    available = list(available) if available is not None else present
    for column, wanted in (filters or {}).items():
        if column not in available:
            raise unknown_column(column, available, f"{where}filter: ")
        if column not in present:   # parse time: a column that only finished runs will have
            continue
        kind = column_kind(rows, column)
        values = [coerce(v, kind, f"{where}filter {column}: ") for v in (wanted if isinstance(wanted, list)
                                                                           else [wanted])]
        kept = [row for row in rows if any(_equal(row.get(column), v) for v in values)]
        if not kept:
            present = ", ".join(format_key(v) for v in sorted_values({row.get(column) for row in rows}))
            raise TableError(f"{where}filter {column}={','.join(format_key(v) for v in values)} matches no run"
                             f"{' left by the other filters' if len(filters) > 1 else ''}; "
                             f"values of {column}: {present or '(none)'}")
        rows = kept
    return rows


# --- ablation tables: the pivot ------------------------------------------------------------

def check_table(spec: TableSpec, rows: list[dict], extra_columns=(), where: str | None = None) -> list[dict]:
    """Check a table against data (or, at parse time, against the grid's manifest rows with
    `extra_columns` naming the columns runs will add): every named column exists, the filter
    selects runs, and no cell mixes runs that differ in more than the seed (unless `pool`
    says how to combine them). Returns the selected rows."""
    cli = where == "--"
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
            varying = _varying(cell, keys)
            if varying:
                label = ", ".join(f"{k}={format_key(v)}" for k, v in zip(keys, key))
                first = varying[0]
                values = ", ".join(format_key(v) for v in sorted_values({r.get(first) for r in cell}))
                more = f" (and {', '.join(varying[1:6])}{', ...' if len(varying) > 6 else ''})" if varying[1:] else ""
                fix = ("add a --filter, put them in --rows/--cols, or pass --pool best (best of them) or --pool mean "
                       "(pool them)") if cli else ("fix them with a filter, add them to rows or columns, or set "
                                                  "pool: best (best of them) or pool: mean (pool them)")
                raise TableError(f"{where[:-1] + ': ' if where and not cli else ''}the cell {label} holds runs that differ in "
                                 f"{first} ({values}){more}, not only in the seed; {fix}")
    return selected


def group(rows: list[dict], keys) -> dict[tuple, list[dict]]:
    cells: dict[tuple, list[dict]] = {}
    for row in rows:
        cells.setdefault(tuple(_hashable(row.get(k)) for k in keys), []).append(row)
    return cells


def _hashable(value):
    return json.dumps(value, sort_keys=True) if isinstance(value, (list, dict)) else value


def _varying(cell: list[dict], keys) -> list[str]:
    """The parameter columns (other than the seed and the keys) that tell the runs of a cell
    apart, leaving out those that others already determine (`model` determines `model_lr`
    unless two recipes of one model differ in it)."""
    columns = [c for c in columns_of(cell) if is_param(c) and c not in keys and c != "seed"]
    columns.sort(key=lambda c: LEADING_COLUMNS.index(c) if c in LEADING_COLUMNS else len(LEADING_COLUMNS))
    kept = []
    for column in columns:
        if len({_hashable(r.get(column)) for r in cell}) < 2:
            continue
        determined = all(len({_hashable(r.get(column)) for r in runs}) == 1 for runs in group(cell, kept).values())
        if not kept or not determined:
            kept.append(column)
    return kept


@dataclass
class Cell:
    n_runs: int = 0            # runs in the cell (after the filter), any status
    n: int = 0                 # runs aggregated: status ok and a finite metric
    n_diverged: int = 0
    value: float | None = None
    std: float | None = None
    min: float | None = None
    max: float | None = None
    chosen: str = ""           # pool: best -- the configuration shown
    run_ids: tuple = ()
    best: bool = False


def _aggregate(values: list[float], how: str) -> tuple:
    if not values:
        return None, None, None, None
    centre = {"mean_std": statistics.fmean, "mean": statistics.fmean, "median": statistics.median,
              "min": min, "max": max}[how](values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return float(centre), std, float(min(values)), float(max(values))


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fill_cell(cell_rows: list[dict], spec: TableSpec, keys) -> Cell:
    ok = [r for r in cell_rows if r.get("status", "ok") == "ok" and _finite(r.get(spec.metric))]
    cell = Cell(n_runs=len(cell_rows), n_diverged=sum(r.get("status") == "diverged" for r in cell_rows))
    candidates = [("", ok)]
    if spec.pool == "best":
        varying = _varying(ok, keys)
        if varying:
            configs = group(ok, varying)
            candidates = [(", ".join(f"{c}={format_key(v)}" for c, v in zip(varying, config)), runs)
                          for config, runs in configs.items()]
    best = None
    for chosen, runs in candidates:
        values = [float(r[spec.metric]) for r in runs]
        value, std, low, high = _aggregate(values, spec.aggregate)
        if value is None:
            continue
        better = best is None or (value < best[0].value if spec.better == "lower" else value > best[0].value)
        if better:
            best = (Cell(cell.n_runs, len(values), cell.n_diverged, value, std, low, high, chosen,
                         tuple(sorted(str(r.get("run_id")) for r in runs))),)
    return best[0] if best else cell


@dataclass
class Ablation:
    """A computed table: sorted row and column keys and a Cell for each (row, column) pair."""
    spec: TableSpec
    row_keys: list
    col_keys: list
    cells: dict
    unit: str = "seed"         # what n counts: seeds, or runs where cells pool or the table has no seeds

    # -- text of cells and labels
    def number(self, value) -> str:
        text = format(value, self.spec.format)
        return "0" if text in ("-0", "-0.0") else text

    def uniform_n(self):
        ns = {c.n for c in self.cells.values() if c.n > 0}
        return ns.pop() if len(ns) == 1 else None

    def cell_text(self, cell: Cell, pm: str = " ± ") -> str:
        if cell.n == 0:
            return "diverged" if cell.n_diverged else EMPTY
        text = self.number(cell.value)
        if self.spec.aggregate == "mean_std" and cell.std is not None:
            text += f"{pm}{self.number(cell.std)}"
        if self.uniform_n() is None:
            text += f" (n={cell.n})"
        return text

    def column_labels(self) -> list[str]:
        keys = self.spec.columns
        if not keys:
            return [self.spec.metric]
        if len(keys) == 1:
            return [format_key(k[0]) for k in self.col_keys]
        return [", ".join(f"{n}={format_key(v)}" for n, v in zip(keys, k)) for k in self.col_keys]

    def note(self) -> str:
        """What the numbers are: metric, aggregation, n, direction, pooling and symbols."""
        spec, n = self.spec, self.uniform_n()
        unit = self.unit
        seeds = f"n = {n} {unit}{'s' if n != 1 else ''} per cell" if n is not None else f"n {unit}s per cell as shown"
        if spec.aggregate == "mean_std":
            what = f"mean ± std over {seeds}" if n != 1 else f"a single {unit} per cell (no std)"
        else:
            what = f"{AGGREGATES[spec.aggregate]} over {seeds}"
        parts = [f"{spec.metric}: {what}"]
        if spec.better != "none":
            marked = any(c.best for c in self.cells.values())
            parts.append(f"{spec.better} is better" + ("; the best value per column is in bold" if marked else ""))
        if spec.pool == "best" and any(c.chosen for c in self.cells.values()):
            parts.append("each cell shows the best configuration of the runs it holds (column chosen of the CSV)")
        elif spec.pool == "mean":
            parts.append("each cell pools every run it holds")
        if any(c.n == 0 for c in self.cells.values()):
            parts.append(f"{EMPTY}: no finished run")
        return "; ".join(parts) + "."

    # -- renderings
    def to_markdown(self) -> str:
        spec = self.spec
        head = list(spec.rows)
        if len(spec.columns) == 1:
            head[-1] = f"{head[-1]} \\ {spec.columns[0]}"
        head += self.column_labels()
        lines = ["| " + " | ".join(_md(h) for h in head) + " |",
                 "|" + "|".join([" --- "] * len(spec.rows) + [" ---: "] * len(self.col_keys)) + "|"]
        for rk in self.row_keys:
            cells = []
            for ck in self.col_keys:
                cell = self.cells[(rk, ck)]
                text = _md(self.cell_text(cell))
                cells.append(f"**{text}**" if cell.best else text)
            lines.append("| " + " | ".join([_md(format_key(v)) for v in rk] + cells) + " |")
        return "\n".join(lines) + "\n\n" + self.note() + "\n"

    def to_latex(self, caption: str | None = None, label: str | None = None) -> str:
        """A booktabs table: a `table` float with caption and label when `caption` is given,
        the bare `tabular` otherwise."""
        spec = self.spec
        nr, nc = len(spec.rows), len(self.col_keys)
        body = [f"\\begin{{tabular}}{{{'l' * nr}{'r' * nc}}}", "\\toprule"]
        if len(spec.columns) == 1:
            body.append(f"\\multicolumn{{{nr}}}{{l}}{{}} & \\multicolumn{{{nc}}}{{c}}{{{_tex(spec.columns[0])}}} \\\\")
            body.append(f"\\cmidrule(lr){{{nr + 1}-{nr + nc}}}")
            labels = [format_key(k[0]) for k in self.col_keys]
        elif len(spec.columns) > 1:
            for level in range(len(spec.columns) - 1):
                spans, rules, start = [], [], 0
                for size, value in _runs([k[:level + 1] for k in self.col_keys]):
                    spans.append(f"\\multicolumn{{{size}}}{{c}}{{{_tex(spec.columns[level])} = "
                                 f"{_tex(format_key(value[-1]))}}}")
                    rules.append(f"\\cmidrule(lr){{{nr + start + 1}-{nr + start + size}}}")
                    start += size
                body.append(" & ".join([""] * nr + spans) + " \\\\")
                body.append(" ".join(rules))
            last = spec.columns[-1]
            labels = [f"{last} = {format_key(k[-1])}" for k in self.col_keys]
        else:
            labels = [spec.metric]
        body.append(" & ".join([_tex(r) for r in spec.rows] + [_tex(x) for x in labels]) + " \\\\")
        body.append("\\midrule")
        previous = None
        for rk in self.row_keys:
            keys = [format_key(v) for v in rk]
            shown = [("" if previous is not None and i < nr - 1 and keys[:i + 1] == previous[:i + 1] else _tex(k))
                     for i, k in enumerate(keys)]
            previous = keys
            cells = []
            for ck in self.col_keys:
                cell = self.cells[(rk, ck)]
                text = _tex(self.cell_text(cell, pm=" ± ")).replace("±", "$\\pm$").replace(EMPTY, "--")
                cells.append(f"\\textbf{{{text}}}" if cell.best else text)
            body.append(" & ".join(shown + cells) + " \\\\")
        body += ["\\bottomrule", "\\end{tabular}"]
        note = self.note().replace(EMPTY, "--")
        header = f"% diffsweep ablation table '{spec.name}'; needs \\usepackage{{booktabs}}\n% {note}\n"
        if caption is None:
            return header + "\n".join(body) + "\n"
        text = _tex((caption.strip().rstrip(".") + ". " if caption.strip() else "") + note)
        text = text.replace("±", "$\\pm$").replace(EMPTY, "--")
        return header + "\n".join(["\\begin{table}[htbp]", "\\centering", f"\\caption{{{text}}}",
                                   f"\\label{{{label or 'tab:' + spec.name}}}", *body, "\\end{table}"]) + "\n"

    def csv_rows(self) -> list[dict]:
        """One dict per cell: the row and column keys, then the fixed columns of docs/tables.md."""
        out = []
        for rk in self.row_keys:
            for ck in self.col_keys:
                cell = self.cells[(rk, ck)]
                row = dict(zip(self.spec.rows, rk))
                row.update(zip(self.spec.columns, ck))
                row.update({"metric": self.spec.metric, "aggregate": self.spec.aggregate, "value": cell.value,
                            "std": cell.std, "min": cell.min, "max": cell.max, "n": cell.n, "n_runs": cell.n_runs,
                            "n_diverged": cell.n_diverged, "best": cell.best, "cell": self.cell_text(cell),
                            "chosen": cell.chosen, "run_ids": " ".join(cell.run_ids)})
                out.append(row)
        return out

    def to_csv(self) -> str:
        buffer = io.StringIO()
        rows = self.csv_rows()
        fields = [*self.spec.rows, *self.spec.columns, *CSV_COLUMNS]
        writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv(v) for k, v in row.items()})
        return buffer.getvalue()

    def to_html(self, caption: str = "") -> str:
        spec = self.spec
        e = html.escape
        head = "".join(f"<th>{e(r)}</th>" for r in spec.rows)
        if spec.columns and len(spec.columns) == 1:
            head = "".join(f"<th>{e(r)}</th>" for r in spec.rows[:-1]) + \
                f"<th>{e(spec.rows[-1])} \\ {e(spec.columns[0])}</th>"
        head += "".join(f"<th class='num'>{e(label)}</th>" for label in self.column_labels())
        body = []
        for rk in self.row_keys:
            cells = "".join(f"<td>{e(format_key(v))}</td>" for v in rk)
            for ck in self.col_keys:
                cell = self.cells[(rk, ck)]
                text = e(self.cell_text(cell))
                cells += f"<td class='num'>{'<strong>' + text + '</strong>' if cell.best else text}</td>"
            body.append(f"<tr>{cells}</tr>")
        title = e(caption or spec.caption or spec.name)
        return HTML_TEMPLATE.format(title=e(spec.name), caption=title, head=head, body="\n".join(body),
                                    note=e(self.note()))

    def render(self, fmt: str, caption: str | None = None) -> str:
        if fmt == "markdown":
            return self.to_markdown()
        if fmt == "latex":
            return self.to_latex(caption=caption)
        if fmt == "csv":
            return self.to_csv()
        if fmt == "html":
            return self.to_html(caption or "")
        raise TableError(f"format '{fmt}' is not allowed; allowed: {', '.join(FORMATS)}")


CSV_COLUMNS = ["metric", "aggregate", "value", "std", "min", "max", "n", "n_runs", "n_diverged", "best", "cell",
               "chosen", "run_ids"]

HTML_TEMPLATE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; font-size: 14px; margin: 1em; }}
table {{ border-collapse: collapse; }}
caption {{ caption-side: top; text-align: left; font-weight: 600; margin-bottom: .4em; }}
th, td {{ padding: .25em .7em; border-bottom: 1px solid #ddd; text-align: left; }}
thead th {{ border-bottom: 2px solid #333; }}
.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
p.note {{ color: #444; max-width: 60em; }}
</style></head>
<body>
<table>
<caption>{caption}</caption>
<thead><tr>{head}</tr></thead>
<tbody>
{body}
</tbody>
</table>
<p class="note">{note}</p>
</body></html>
"""


def ablation(rows: list[dict], spec: TableSpec, where: str | None = None) -> Ablation:
    """The pivot of `rows` that `spec` declares (checked first: see `check_table`; `where`
    prefixes error messages, the config path `tables.ablations.<name>.` by default, '--' on
    the command line)."""
    selected = check_table(spec, rows, where=where)
    keys = spec.rows + spec.columns
    cells_by_key = group(selected, keys)
    nr = len(spec.rows)
    row_keys = _ordered({k[:nr] for k in cells_by_key}, spec.rows, spec.order)
    col_keys = _ordered({k[nr:] for k in cells_by_key}, spec.columns, spec.order)
    cells = {}
    for rk in row_keys:
        for ck in col_keys:
            runs = cells_by_key.get(rk + ck)
            cells[(rk, ck)] = _fill_cell(runs, spec, keys) if runs else Cell()
    has_seed = any("seed" in row for row in selected[:1])
    table = Ablation(spec, row_keys, col_keys, cells, unit="seed" if spec.pool != "mean" and has_seed else "run")
    _mark_best(table)
    return table


def _mark_best(table: Ablation) -> None:
    """Bold the best value of each column (every value that prints the same as the best)."""
    if table.spec.better == "none":
        return
    pick = min if table.spec.better == "lower" else max
    for ck in table.col_keys:
        column = [table.cells[(rk, ck)] for rk in table.row_keys if table.cells[(rk, ck)].n > 0]
        if len(column) < 2:
            continue
        best = table.number(pick(c.value for c in column))
        for cell in column:
            cell.best = table.number(cell.value) == best


def _ordered(keys, names, order: dict) -> list:
    """Keys sorted value by value: numbers numerically, text alphabetically, missing last,
    with the values an `order` entry lists first, in its order."""
    def sort_key(key):
        parts = []
        for name, value in zip(names, key):
            wanted = [str(v) for v in (order.get(name) or [])]
            shown = format_key(value)
            rank = wanted.index(shown) if shown in wanted else len(wanted)
            parts.append((rank, *_value_key(value)))
        return tuple(parts)
    return sorted(keys, key=sort_key)


def _value_key(value):
    if value is None:
        return (3, 0, "")
    if isinstance(value, bool):
        return (0, int(value), "")
    if isinstance(value, (int, float)):
        return (1, value, "")
    return (2, 0, str(value))


def sorted_values(values) -> list:
    return sorted(values, key=_value_key)


def _runs(items):
    """Run-length encoding: [(count, item), ...] of consecutive equal items."""
    out = []
    for item in items:
        if out and out[-1][1] == item:
            out[-1] = (out[-1][0] + 1, item)
        else:
            out.append((1, item))
    return out


def format_key(value) -> str:
    """A row/column key as text: integral floats without '.0', missing values as the empty mark."""
    if value is None:
        return EMPTY
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.6g}"
    return str(value)


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
        "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def _tex(text: str) -> str:
    return "".join(_TEX.get(ch, ch) for ch in str(text))


def _csv(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return value


# --- ablation tables: files ------------------------------------------------------------------

def write_ablation(table_path, spec: TableSpec | dict, outputs: dict) -> Ablation:
    """Read a Parquet table, build `spec`'s ablation and write each format in `outputs`
    (format name -> path: markdown, latex, csv, html), atomically."""
    import pandas as pd

    from diffsweep.io import atomic_path

    if isinstance(spec, dict):
        spec = TableSpec.from_dict(spec)
    table = ablation(records(pd.read_parquet(table_path)), spec)
    for fmt, path in outputs.items():
        text = table.render(fmt, caption=spec.caption if fmt in ("latex", "html") else None)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text, encoding="utf-8")
    return table


def check_declared(specs: dict[str, TableSpec], manifest_rows, directions: dict | None = None) -> None:
    """Parse-time check of every declared table against the grid: the columns runs will have
    are the manifest's, the record's and the known metrics'. `manifest_rows`: the grid's
    manifest rows per source ({"generation": [...], "restoration": [...]}), or the generation
    rows alone."""
    by_source = manifest_rows if isinstance(manifest_rows, dict) else {"generation": manifest_rows}
    extra = [*RECORD_COLUMNS, *EXTRA_COLUMNS, "measurement", *known_metrics(directions), *sorted(MEASUREMENT_COLUMNS)]
    for spec in specs.values():
        if spec.source not in SOURCES:
            raise TableError(f"tables.ablations.{spec.name}.source: '{spec.source}' is not allowed; "
                             f"allowed: {', '.join(SOURCES)}")
        if not by_source.get(spec.source):
            raise TableError(f"tables.ablations.{spec.name}.source: the grid has no {spec.source} runs")
        check_table(spec, by_source[spec.source], extra)


def check_heatmap(options: dict, manifest_rows: list[dict], directions: dict | None = None,
                  where: str = "plots.heatmap.") -> list[dict]:
    """Parse-time check of the heatmap options against the trained runs of the grid (the
    heatmaps show trained models only): rows, columns and filter name existing columns."""
    trained = [row for row in manifest_rows if row.get("model_source") == "trained"]
    available = columns_of(trained)
    for part in ("rows", "columns"):
        if options[part] not in available:
            raise unknown_column(options[part], available, f"{where}{part}: ")
    extra = [*RECORD_COLUMNS, *EXTRA_COLUMNS, *known_metrics(directions), *sorted(MEASUREMENT_COLUMNS)]
    return select(trained, options.get("filter") or {}, where, [*available, *extra])


def select_frame(frame, filters: dict, where: str = ""):
    """The rows of a DataFrame that match `filters` (the semantics of `select`)."""
    if not filters:
        return frame
    rows = records(frame)
    for position, row in enumerate(rows):
        row["\0position"] = position
    kept = select(rows, filters, where, available=list(frame.columns))
    return frame.iloc[[row["\0position"] for row in kept]]


def direction(metric: str, directions: dict | None = None, default: str = "none") -> str:
    """lower, higher or none: which end of `metric` is better."""
    return {**METRIC_DIRECTIONS, **(directions or {})}.get(metric, default)
