"""Issue #23 item 4's tables: every restorer of config/benchmarks/gmm_posterior.yaml against the exact posterior.

    python bench/posterior_table.py results/gmm_posterior/tables/restoration.parquet

Reads the restoration table the workflow wrote and prints markdown, one table per dimension d, a column per
operator (the published problem's d_y = 1, 2, 4 and the random d / 2 operator; for the random d = 1000
mixtures the random operator's d_y), a row per restorer and budget (levels):

- `max_sliced_w2_posterior` over its floor (the run's own floor: exact sample sets of the run's size against the
  same exact samples, `_floor`), so 1 is exact sampling whatever the problem's scale; ratios are averaged on
  the log scale (geometric mean, t interval of the mean log ratio), as ratios of different problems spread
  over orders of magnitude;
- `posterior_mode_weight_error` (total variation between the posterior's component weights and the share of
  samples each component explains; exact samples score their floor, a few hundredths at 100 samples);
- `coverage_90` (the share of exact posterior samples inside the restorations' per-coordinate 90% intervals;
  near 0 for a point estimate; exact samples score the floor, a little under 0.9 at 100 restorations, and
  cells are compared by their distance to it).

The unit of a cell is the problem (the prior's seed): each problem's value is the mean over its sampling seeds,
and the cell is the mean over problems with its 95% t interval (n problems, printed in the header). Within a
column the cells are compared by `stats.compare_column`, paired over problems (t test, Holm over the
leader's comparisons): **bold** the best, † not separable from it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from diffsweep import stats  # noqa: E402

# metric -> (label, what it is read against, number format); the ratio is computed below
METRICS = {
    "w2_ratio": ("max-sliced W2 / floor, geometric mean over problems", "1 = exact sampling", ".3g"),
    "posterior_mode_weight_error": ("mode-weight error", "exact samples: the floor row", ".2f"),
    "coverage_90": ("90% coverage", "exact samples: the floor row (0.9 in the limit); compared by the distance to it",
                    ".2f"),
}
# the floor row of each metric: the mean of the runs' own floors (exact sets of the run's size)
FLOOR_OF = {"posterior_mode_weight_error": "posterior_mode_weight_error_floor", "coverage_90": "coverage_90_floor"}


def problem_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Every run with its problem (prior seed), dimension, operator label and budget label."""
    ok = rows.copy()
    ok["d"] = ok["dataset_dim"].astype(int)
    ok["problem"] = ok["dataset_seed"].astype(int)
    published = ok["operator"] == "grid25_pairs"
    measurements = ok["operator_measurements"] if "operator_measurements" in ok else np.nan    # absent: no random A
    d_y = np.where(published, ok["operator_d_y"], measurements)
    ok["column"] = [f"{'published' if p else 'random A'}, d_y = {int(v)}" for p, v in zip(published, d_y)]
    ok["row"] = ok["restorer"] + " @ " + ok["steps"].astype(int).astype(str)
    with np.errstate(divide="ignore", invalid="ignore"):      # runs that are not ok have no scores
        ok["w2_ratio"] = np.log(ok["max_sliced_w2_posterior"] / ok["max_sliced_w2_posterior_floor"])    # log scale
    # exact samples do not score 0.9 with 100 restorations' intervals (their floor, about 0.88): compare to it
    ok["coverage_90_miss"] = (ok["coverage_90"] - ok["coverage_90_floor"]).abs()
    return ok


def column_order(columns) -> list:
    return sorted(columns, key=lambda c: (not c.startswith("published"), int(c.rsplit("= ", 1)[1])))


def cell_text(values: np.ndarray, status: str | None, fmt: str, logs: bool = False, failed: str = "") -> str:
    """mean [95% t interval] over problems (of the logs, shown exponentiated, when `logs`); `failed` says how
    many of the cell's runs were not ok (their problems' means are over the ok seeds only)."""
    if len(values) == 0:
        return failed.strip(" ()")
    back = np.exp if logs else (lambda value: value)
    if len(values) == 1:
        text = f"{back(values[0]):{fmt}} (n = 1)"
    else:
        mean, low, high = stats.t_interval(values)
        text = f"{back(mean):{fmt}} [{back(low):{fmt}}, {back(high):{fmt}}]"
    return (f"**{text}**" if status == stats.BEST else text + (" †" if status == stats.TIED else "")) + failed


def table(runs: pd.DataFrame, metric: str, fmt: str, rows_filter=None) -> list[str]:
    columns = column_order(runs["column"].unique())
    not_ok = runs[runs["status"] != "ok"].groupby(["row", "column"]).size()
    counts = runs.groupby(["row", "column"]).size()
    frame = runs[runs["status"] == "ok"]
    # per problem: the mean over its sampling seeds; the comparison pairs cells on problems
    per_problem = frame.groupby(["row", "column", "problem"])[metric].mean()
    compared_on = "coverage_90_miss" if metric == "coverage_90" else metric
    per_problem_cmp = frame.groupby(["row", "column", "problem"])[compared_on].mean()
    rows = sorted(runs["row"].unique(), key=lambda r: (r.split(" @ ")[0], int(r.split(" @ ")[1])))
    if rows_filter:
        rows = [r for r in rows if rows_filter(r)]
    statuses = {}
    for column in columns:
        cells = {}
        for row in rows:
            key = (row, column)
            if key in per_problem_cmp.index.droplevel(2):
                cells[row] = per_problem_cmp.loc[row, column].to_dict()
        if cells:
            result = stats.compare_column(cells, better="lower")
            statuses.update({(name, column): cell.status for name, cell in result.cells.items()})
    lines = ["| restorer @ levels | " + " | ".join(columns) + " |", "|" + " --- |" * (len(columns) + 1)]
    for row in rows:
        cells = []
        for column in columns:
            values = per_problem.loc[row, column].to_numpy() if (row, column) in per_problem.index.droplevel(2) else []
            bad = int(not_ok.get((row, column), 0))
            failed = f" ({bad} of {int(counts[(row, column)])} runs not ok)" if bad else ""
            cells.append(cell_text(np.asarray(values), statuses.get((row, column)), fmt, metric == "w2_ratio", failed))
        lines.append(f"| `{row}` | " + " | ".join(cells) + " |")
    return lines


def floor_line(frame: pd.DataFrame, metric: str, fmt: str) -> str:
    """The floor per column: for the ratio, the middle-95% range of the exact sets over their mean (averaged
    over problems and seeds); for the others, the mean of the runs' floors and of their middle-95% ranges."""
    columns = column_order(frame["column"].unique())
    one = frame[frame["status"] == "ok"].drop_duplicates(["column", "problem", "seed"])
    cells = []
    for column in columns:
        part = one[one["column"] == column]
        if metric == "w2_ratio":
            base = "max_sliced_w2_posterior_floor"
            low, high = ((part[f"{base}_{end}"] / part[base]).mean() for end in ("low", "high"))
            cells.append(f"1 [{low:{fmt}}, {high:{fmt}}]")
        else:
            base = FLOOR_OF[metric]
            mean, low, high = (part[name].mean() for name in (base, f"{base}_low", f"{base}_high"))
            cells.append(f"{mean:{fmt}} [{low:{fmt}}, {high:{fmt}}]")
    return "| floor (exact vs exact) | " + " | ".join(cells) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", help="results/gmm_posterior/tables/restoration.parquet")
    parser.add_argument("--number-format", default=".3g")
    parser.add_argument("--budget", type=int, default=None,
                        help="levels of the secondary tables (mode weights, coverage); default the largest")
    args = parser.parse_args()
    fmt = args.number_format
    if not Path(args.table).is_file():
        parser.error(f"{args.table}: no such table (run the workflow on config/benchmarks/gmm_posterior.yaml)")
    rows = pd.read_parquet(args.table)
    frame = problem_frame(rows)
    failed = rows[rows["status"] != "ok"]
    print(f"runs: {len(rows)} ({len(rows) - len(failed)} ok, {len(failed)} not ok"
          + (f": {failed.groupby('status').size().to_dict()}" if len(failed) else "") + ")\n")
    budget = args.budget or int(frame["steps"].max())
    for d in sorted(frame["d"].unique()):
        part = frame[frame["d"] == d]
        problems = sorted(int(p) for p in part["problem"].unique())
        seeds = sorted(int(s) for s in part["seed"].unique())
        print(f"### d = {d}: {len(problems)} problems (prior seeds {problems}) x {len(seeds)} sampling seeds, "
              f"{int(part['n_samples'].iloc[0])} restorations a run\n")
        for metric, (label, against, metric_fmt) in METRICS.items():
            keep = None if metric == "w2_ratio" else (lambda r: r.endswith(f"@ {budget}"))
            metric_fmt = fmt if metric == "w2_ratio" else metric_fmt
            print(f"{label} ({against}){'' if keep is None else f', {budget} levels'}:\n")
            lines = table(part, metric, metric_fmt, keep)
            lines.insert(2, floor_line(part, metric, metric_fmt))
            print("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
