"""The pivot: a declared table's rows (filtered and checked, see spec.py) grouped into cells,
each cell's seeds aggregated, and each column compared (`stats.compare_column`): per cell an
interval, and best / tied / worse / untested from paired tests against the column's leader,
Holm-corrected; with `power`, the seeds each comparison needs. An `Ablation` holds the cells, the
text of each cell, label and note; render.py writes it. numpy and scipy are imported inside the
functions that compare (the Snakefile imports this package at parse time)."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

from diffsweep.runs import kinds
from diffsweep.tables.options import AGGREGATES, EMPTY, TESTED_AGGREGATES, TableError
from diffsweep.tables.rows import value_key, format_key, group
from diffsweep.tables.spec import SEED, TRAINING_SEED, TableSpec, check_table, differing

TIED_MARK = "†"       # after a cell that no test separates from its column's best
UNTESTED_MARK = "?"   # after a cell nothing could be tested against (one seed, no sampling error)


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
    low: float | None = None   # the interval at the table's level (None: one seed without a standard error)
    high: float | None = None
    status: str = ""           # best, tied, worse, untested (stats); "" where nothing is compared
    p_adjusted: float | None = None   # Holm-adjusted p against the column's leader
    basis: str = ""            # paired-seeds, or single-seed-sampling-only (stats)
    se: float | None = None    # a one-run cell's sampling error: the run's <metric>_se
    floor: float | None = None         # the metric's floor at the runs' size (<metric>_floor, analytic data)
    floor_low: float | None = None
    floor_high: float | None = None
    seeds_needed: float | None = None  # power: seeds to resolve the difference from the leader (inf: none)
    n_training: int = 1        # training seeds of a trained model the cell averages over
    components: object = None  # power, several training seeds: stats.VarianceComponents (training vs sampling)
    values: dict = field(default_factory=dict, repr=False)   # pairing key (seed, ...) -> value
    by_training: dict = field(default_factory=dict, repr=False)   # training seed -> [values over seeds]

    @property
    def best(self) -> bool:
        return self.status == "best"       # stats.BEST


@dataclass
class Ablation:
    """A computed table: sorted row and column keys and a Cell for each (row, column) pair;
    `comparisons`: column key -> stats.ColumnComparison of the compared columns."""
    spec: TableSpec
    row_keys: list
    col_keys: list
    cells: dict
    unit: str = "seed"         # what n counts: seed, run or measurement (see _unit)
    comparisons: dict = field(default_factory=dict)
    captions: dict = field(default_factory=dict)    # column key -> what its comparison states (stats.caption)
    power: bool = False        # seeds_needed was computed

    def number(self, value) -> str:
        text = format(value, self.spec.format)
        return "0" if text in ("-0", "-0.0") else text

    def uniform_n(self):
        ns = {c.n for c in self.cells.values() if c.n > 0}
        return ns.pop() if len(ns) == 1 else None

    def shared_floor(self):
        """(floor, low, high) when every filled cell has the same floor (stated once in the note)."""
        floors = {(c.floor, c.floor_low, c.floor_high) for c in self.cells.values() if c.n > 0}
        return floors.pop() if len(floors) == 1 else None

    def cell_text(self, cell: Cell, pm: str = " ± ") -> str:
        if cell.n == 0:
            return "diverged" if cell.n_diverged else EMPTY
        text = self.number(cell.value)
        if cell.low is not None and self.spec.aggregate == "mean_ci":
            text += f" [{self.number(cell.low)}, {self.number(cell.high)}]"
        elif cell.low is not None and self.spec.aggregate == "mean_pm":
            text += f"{pm}{self.number((cell.high - cell.low) / 2)}"
        if self.uniform_n() is None:
            text += f" (n={cell.n})"
        if cell.floor is not None and self.shared_floor() is None:
            text += f" (floor {self.number(cell.floor)})"
        return text + {"tied": TIED_MARK, "untested": UNTESTED_MARK}.get(cell.status, "")    # stats.TIED, UNTESTED

    def power_text(self, cell: Cell, leader: bool) -> str:
        """A cell of the power table: the seeds its comparison with the leader needs."""
        if leader:
            return "leader"
        if cell.seeds_needed is None:
            return EMPTY
        return "no difference" if math.isinf(cell.seeds_needed) else str(int(cell.seeds_needed))

    def components_text(self, cell: Cell) -> str:
        """A cell of the variance table: the training seeds' share of the variance, and both components."""
        parts = cell.components
        if parts is None:
            return EMPTY
        return (f"{100 * parts.training_share:.0f}% (training {self.number(parts.training)}, "
                f"sampling {self.number(parts.sampling)})")

    def has_components(self) -> bool:
        return any(c.components is not None for c in self.cells.values())

    def is_leader(self, row_key, col_key) -> bool:
        comparison = self.comparisons.get(col_key)
        return comparison is not None and comparison.leader == row_key

    def column_labels(self) -> list[str]:
        keys = self.spec.columns
        if not keys:
            return [self.spec.metric]
        if len(keys) == 1:
            return [format_key(k[0]) for k in self.col_keys]
        return [", ".join(f"{n}={format_key(v)}" for n, v in zip(keys, k)) for k in self.col_keys]

    def note(self) -> str:
        """What the numbers are: metric, aggregation, n, direction, the comparison (interval, test,
        level, correction, what best and tied mean), pooling, floor and symbols."""
        spec, n, unit = self.spec, self.uniform_n(), self.unit
        per_cell = f"n = {n} {unit}{'s' if n != 1 else ''} per cell" if n is not None else f"n {unit}s per cell as shown"
        parts = []
        # The compared columns' captions (else the intervals' alone), once when they agree.
        captions = {ck: text for ck, text in self.captions.items() if ck in self.comparisons} or self.captions
        distinct = list(dict.fromkeys(captions.values()))
        if len(distinct) == 1:
            parts.append(f"{spec.metric}: {distinct[0]}")
        elif distinct:
            labels = dict(zip(self.col_keys, self.column_labels()))
            parts.append(f"{spec.metric}: " + "; ".join(f"column {labels[ck]}: {text}" for ck, text in captions.items()))
        else:
            parts.append(f"{spec.metric}: {AGGREGATES[spec.aggregate]} over {per_cell}")
        if spec.better != "none":
            marks = []
            if any(c.best for c in self.cells.values()):
                marks.append("best in bold")
            if any(c.status == "tied" for c in self.cells.values()):
                marks.append(f"{TIED_MARK}: tied with the best")
            if any(c.status == "untested" for c in self.cells.values()):
                marks.append(f"{UNTESTED_MARK}: untested, no seeds to pair and no sampling error")
            parts.append(f"{spec.better} is better" + (f" ({', '.join(marks)})" if marks else ""))
            if spec.aggregate not in TESTED_AGGREGATES:
                parts.append(f"nothing is marked: the tests compare means (aggregate {', '.join(TESTED_AGGREGATES)})")
        floor = self.shared_floor()
        if floor is not None and floor[0] is not None:
            parts.append(f"floor (exact samples of the runs' size against the same reference): "
                         f"{self.number(floor[0])} [{self.number(floor[1])}, {self.number(floor[2])}]")
        elif any(c.floor is not None for c in self.cells.values()):
            parts.append("floor: what exact samples of the runs' size score against the same reference")
        trained = sorted({c.n_training for c in self.cells.values() if c.n_training > 1})
        if trained:
            parts.append(f"a trained model's cell averages its {'-'.join(map(str, trained))} training seeds per "
                         f"seed: intervals and tests hold for these trained networks, not for retraining")
        if spec.pool == "best" and any(c.chosen for c in self.cells.values()):
            parts.append("each cell shows the best configuration of the runs it holds (column chosen of the CSV); "
                         "picking the best of several before testing favours it")
        elif spec.pool == "mean":
            parts.append("each cell pools every run it holds (not paired)")
        if any(c.n == 0 for c in self.cells.values()):
            parts.append(f"{EMPTY}: no finished run")
        return "; ".join(parts) + "."

    def components_note(self) -> str:
        return ("share of the variance between training seeds in the variance of one run (stats.variance_components: "
                "one-way random effects, method of moments, over the cell's training seeds x sampling seeds); "
                "training: the variance between training seeds, sampling: between sampling seeds of one network. "
                "A large share says more training seeds (each a training run), not more sampling seeds, narrow the "
                f"comparison of recipes; {EMPTY}: fewer than 2 training seeds with 2 sampling seeds each.")

    def power_note(self) -> str:
        return (f"{self.unit}s a paired t test at level {1 - self.spec.level:.3g} needs to resolve each cell's observed "
                f"difference from its column's leader with 80% power (stats.seeds_needed; one test, before Holm's "
                f"correction; the observed mean and spread of the paired differences taken as true, so a planning "
                f"estimate); {EMPTY}: fewer than 2 "
                f"shared {self.unit}s; no difference: the observed difference is 0.")


def ablation(rows: list[dict], spec: TableSpec, *, parameter_columns, where: str | None = None,
             power: bool = False) -> Ablation:
    """The pivot of `rows` that `spec` declares; `parameter_columns` are the table's parameter columns
    (`param_columns(frame)`). Checked first (see `check_table`; `where` prefixes error
    messages, the config path `tables.ablations.<name>.` by default, '--' on the command line).
    `power`: also the seeds each comparison with its column's leader needs (`Cell.seeds_needed`)."""
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
    if spec.aggregate in TESTED_AGGREGATES:
        _compare(table)
        if power:
            _power(table)
            table.power = True
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
    centre = statistics.median if how == "median" else min if how == "min" else max if how == "max" else statistics.fmean
    std = statistics.stdev(values) if len(values) > 1 else None
    return float(centre(values)), std, float(min(values)), float(max(values))


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
        paired = _paired_values(runs, values, spec)
        # Several training seeds: the mean of the per-seed means (equal to the plain mean when balanced).
        value, std, low, high = _aggregate(list(paired.values()) if _is_mean(spec) else values, spec.aggregate)
        if value is None:
            continue
        better = best is None or (value < best.value if spec.better == "lower" else value > best.value)
        if better:
            best = Cell(cell.n_runs, len(values), cell.n_diverged, value, std, low, high, chosen,
                        tuple(sorted(str(r.get("run_id")) for r in runs)), values=paired)
            best.by_training = _by_training(runs, values)
            best.n_training = max(1, len(best.by_training))
            best.se = _one_run(runs, f"{spec.metric}_se")
            best.floor, best.floor_low, best.floor_high = (
                _first(runs, f"{spec.metric}_floor{suffix}") for suffix in ("", "_low", "_high"))
    return best if best else cell


def _paired_values(runs: list[dict], values: list[float], spec: TableSpec) -> dict:
    """The cell's values by the key that pairs them with another cell's: the seed, and the rest of
    the table row's key (a restoration row's measurement): configurations that share a seed share
    their random numbers (docs/statistics.md). The runs of several training seeds at one key are
    averaged (pairing stays on the sampling seed, which trained and exact score sources share).
    Pooled cells and rows without a seed are not paired: each run gets a key of its own."""
    extra = kinds.get(spec.source).row_keys[1:]
    if spec.pool != "mean" and all(SEED in r for r in runs):
        keys = [(r[SEED], *(r.get(column) for column in extra)) for r in runs]
        training = {}
        for key, run, value in zip(keys, runs, values):
            training.setdefault(key, {})
            if run.get(TRAINING_SEED) in training[key]:      # the same key twice: not a seed axis
                break
            training[key][run.get(TRAINING_SEED)] = value
        else:
            return {key: statistics.fmean(by_seed.values()) for key, by_seed in training.items()}
    return {("unpaired", str(r.get("run_id")), i): value for i, (r, value) in enumerate(zip(runs, values))}


def _is_mean(spec: TableSpec) -> bool:
    return spec.aggregate in TESTED_AGGREGATES


def _by_training(runs: list[dict], values: list[float]) -> dict:
    """training seed -> the values over sampling seeds, where the runs have several training seeds."""
    groups = {}
    for run, value in zip(runs, values):
        groups.setdefault(run.get(TRAINING_SEED), []).append(value)
    return groups if len(groups) > 1 else {}


def _one_run(runs: list[dict], column: str) -> float | None:
    """A one-run cell's value of `column` (its sampling error), None otherwise or when not finite."""
    if len(runs) != 1 or not _finite(runs[0].get(column)):
        return None
    if runs[0][column] < 0:
        raise TableError(f"{column} of run {runs[0].get('run_id')} is {runs[0][column]}: a standard error is >= 0; "
                         f"the run's record is damaged (diffsweep forget {runs[0].get('run_id')} redoes it)")
    return float(runs[0][column])


def _first(runs: list[dict], column: str) -> float | None:
    """The first finite value of `column` among the runs (a floor is one per dataset and size)."""
    return next((float(r[column]) for r in runs if _finite(r.get(column))), None)


def _compare(table: Ablation) -> None:
    """Each column through `stats.compare_column`: every filled cell's interval; where the table
    has a direction and the column two cells or more, each cell's status, adjusted p and basis,
    and the column's caption. One-seed cells compare on their runs' `<metric>_se`."""
    from diffsweep import stats

    spec = table.spec
    outcomes = {}
    for ck in table.col_keys:
        column = {rk: table.cells[(rk, ck)] for rk in table.row_keys if table.cells[(rk, ck)].n > 0}
        if not column:
            continue
        sampling = {rk: stats.Sampling(cell.value, se=cell.se) for rk, cell in column.items()
                    if cell.n == 1 and cell.se is not None}
        compared = spec.better != "none" and len(column) >= 2
        # Without a direction the comparison is run for its intervals only (its statuses are not kept).
        result = stats.compare_column({rk: cell.values for rk, cell in column.items()},
                                      better=spec.better if compared else "lower", level=spec.level,
                                      test=spec.test, interval=spec.ci, sampling=sampling)
        for rk, cell in column.items():
            found = result.cells[rk]
            cell.low, cell.high = found.interval.low, found.interval.high
            if compared:
                cell.status, cell.p_adjusted, cell.basis = found.status, found.p_adjusted, found.basis
        if compared:
            table.comparisons[ck] = result
        outcomes[ck] = (result, compared)
    # One caption per column; columns that differ only in their number of cells share one.
    counts = {result.comparisons for result in table.comparisons.values()}
    comparisons = next(iter(counts)) if len(counts) == 1 else None
    for ck, (result, compared) in outcomes.items():
        table.captions[ck] = stats.caption(result.cells, spec.level, spec.test, spec.ci, result.basis, comparisons,
                                           unit=table.unit, shown=_SHOWN[spec.aggregate], tests=compared)


# How a cell shows its comparison's interval (stats.caption's `shown`).
_SHOWN = {"mean_ci": "interval", "mean_pm": "half_width", "mean": "mean"}


def _power(table: Ablation) -> None:
    """Per compared column, each non-leading cell sharing at least 2 seeds with the leader: the
    seeds a paired t test needs to resolve their observed difference (`stats.seeds_needed`); and
    each cell of several training seeds with at least 2 sampling seeds each: the variance between
    training seeds against that between sampling seeds (`stats.variance_components`)."""
    from diffsweep import stats

    for cell in table.cells.values():
        if len(cell.by_training) > 1 and all(len(values) > 1 for values in cell.by_training.values()):
            cell.components = stats.variance_components(cell.by_training)

    for ck, comparison in table.comparisons.items():
        leader = table.cells[(comparison.leader, ck)].values
        for rk in comparison.cells:
            if rk == comparison.leader:
                continue
            values = table.cells[(rk, ck)].values
            shared = [key for key in leader if key in values]
            if len(shared) >= 2:
                table.cells[(rk, ck)].seeds_needed = stats.seeds_needed(
                    [leader[key] - values[key] for key in shared], level=table.spec.level)


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
