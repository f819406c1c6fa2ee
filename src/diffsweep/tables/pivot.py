"""The pivot: a declared table's rows (filtered and checked, see spec.py) grouped into cells,
each cell's seeds aggregated (mean ± std and n), the best value per column marked. An
`Ablation` holds the cells and the text of each cell, label and note; render.py writes it."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

from diffsweep.runs import kinds
from diffsweep.tables.options import AGGREGATES, EMPTY
from diffsweep.tables.rows import value_key, format_key, group
from diffsweep.tables.spec import TableSpec, check_table, differing


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


@dataclass
class Ablation:
    """A computed table: sorted row and column keys and a Cell for each (row, column) pair."""
    spec: TableSpec
    row_keys: list
    col_keys: list
    cells: dict
    unit: str = "seed"         # what n counts: seed, run or measurement (see _unit)

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


def ablation(rows: list[dict], spec: TableSpec, *, parameter_columns, where: str | None = None) -> Ablation:
    """The pivot of `rows` that `spec` declares; `parameter_columns` are the table's parameter columns
    (`param_columns(frame)`). Checked first (see `check_table`; `where` prefixes error
    messages, the config path `tables.ablations.<name>.` by default, '--' on the command line)."""
    selected = check_table(spec, rows, parameter_columns, where=where)
    keys = spec.rows + spec.columns
    cells_by_key = group(selected, keys)
    nr = len(spec.rows)
    row_keys = _ordered({k[:nr] for k in cells_by_key}, spec.rows, spec.order)
    col_keys = _ordered({k[nr:] for k in cells_by_key}, spec.columns, spec.order)
    cells = {}
    for rk in row_keys:
        for ck in col_keys:
            runs = cells_by_key.get(rk + ck)
            cells[(rk, ck)] = _fill_cell(runs, spec, keys, parameter_columns) if runs else Cell()
    table = Ablation(spec, row_keys, col_keys, cells, unit=_unit(spec, selected))
    _mark_best(table)
    return table


def _unit(spec: TableSpec, selected: list[dict]) -> str:
    """What n counts: measurements (a restoration row is one measurement of a run), seeds, or
    runs where cells pool configurations or the table has no seed column."""
    unit = kinds.get(spec.source).unit
    if unit:
        return unit
    has_seed = any("seed" in row for row in selected[:1])
    return "seed" if spec.pool != "mean" and has_seed else "run"


def _aggregate(values: list[float], how: str) -> tuple:
    if not values:
        return None, None, None, None
    centre = {"mean_std": statistics.fmean, "mean": statistics.fmean, "median": statistics.median,
              "min": min, "max": max}[how](values)
    std = statistics.stdev(values) if len(values) > 1 else None
    return float(centre), std, float(min(values)), float(max(values))


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fill_cell(cell_rows: list[dict], spec: TableSpec, keys, parameter_columns) -> Cell:
    ok = [r for r in cell_rows if r.get("status", "ok") == "ok" and _finite(r.get(spec.metric))]
    cell = Cell(n_runs=len(cell_rows), n_diverged=sum(r.get("status") == "diverged" for r in cell_rows))
    candidates = [("", ok)]
    if spec.pool == "best":
        varying = differing(ok, keys, parameter_columns)
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
            parts.append((rank, *value_key(value)))
        return tuple(parts)
    return sorted(keys, key=sort_key)
