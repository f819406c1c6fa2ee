"""Issue #23 item 4's table: every restorer of config/benchmarks/gmm_published.yaml on the three published
d = 8 problems, beside the published medians of the benchopt benchmark.

    python bench/published_table.py results/gmm_published/tables/restoration.parquet

Reads the restoration table the workflow wrote and prints a markdown table: per restorer and d_y, the mean
of `max_sliced_w2_posterior` (1,000 restorations against the exact posterior's samples, POT's estimator,
100 projections) over the sampling seeds with its 95% t interval, and the floor (exact sample sets of the
same size against the same exact samples, `_floor`, `_floor_low`, `_floor_high`): its mean over the seeds
and the middle-95% range of its sets, averaged over the seeds. A cell missing or with fewer than 2 `ok`
seeds says so. The published figures are quoted from the benchmark (docs/benchmarks.md, "Published numbers").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import pandas as pd  # noqa: E402

from diffsweep import stats  # noqa: E402

METRIC = "max_sliced_w2_posterior"
D_Y = (1, 2, 4)
# Medians of the benchmark's published run (outputs/benchopt_run_2024-03-15_18h27m33.parquet of
# github.com/gabrielvc/benchopts_inverse_problem_diffusion_prior), d_y = 1, 2, 4, beside the restorer of
# this project that is the same method; MCG-Diff has no counterpart here (twisted SMC is the nearest).
PUBLISHED = {"ddrm": ("DDRM", (29.7, 13.4, 0.454)), "dps": ("DPS", (27.8, 19.3, 12.4)),
             "twisted_smc": ("MCG-Diff, 32 particles", (18.9, 10.8, 1.01)),
             "smc_pooled": ("MCG-Diff, 128 particles", (5.21, 4.34, 0.186))}


def cell_text(values, fmt) -> str:
    if len(values) == 0:
        return "missing"
    if len(values) == 1:
        return f"{values[0]:{fmt}} (1 seed)"
    mean, low, high = stats.t_interval(values)
    return f"{mean:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("table", help="results/gmm_published/tables/restoration.parquet")
    parser.add_argument("--number-format", default=".3g")
    args = parser.parse_args()
    fmt = args.number_format
    if not Path(args.table).is_file():
        parser.error(f"{args.table}: no such table (run the workflow on config/benchmarks/gmm_published.yaml)")
    rows = pd.read_parquet(args.table)
    ok = rows[rows["status"] == "ok"]
    print(f"runs: {len(rows)} ({len(ok)} ok), sampling seeds {sorted(int(s) for s in ok['seed'].unique())}\n")

    header = ["restorer (published as)"] + [f"{who}, d_y = {d}" for d in D_Y for who in ("ours", "published")]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    floor_cells = []
    for d_y in D_Y:
        one = ok[ok["operator_d_y"] == d_y].drop_duplicates("seed")     # one floor per seed, whatever the restorer
        floor_cells += [f"{one[f'{METRIC}_floor'].mean():{fmt}} [{one[f'{METRIC}_floor_low'].mean():{fmt}}, "
                        f"{one[f'{METRIC}_floor_high'].mean():{fmt}}]" if len(one) else "missing", ""]
    lines.append("| floor (exact vs exact) | " + " | ".join(floor_cells) + " |")
    by_mean = {name: ok[ok["restorer"] == name][METRIC].mean() for name in rows["restorer"].unique()}
    for name in sorted(by_mean, key=lambda n: (pd.isna(by_mean[n]), by_mean[n])):
        label, published = PUBLISHED.get(name, ("", ("",) * len(D_Y)))
        cells = []
        for d_y, figure in zip(D_Y, published):
            cells += [cell_text(ok[(ok["restorer"] == name) & (ok["operator_d_y"] == d_y)][METRIC].to_numpy(), fmt),
                      str(figure)]
        lines.append(f"| `{name}`{f' ({label})' if label else ''} | " + " | ".join(cells) + " |")
    print("\n".join(lines))

    # what the reading rests on: whether the samples spread like the posterior (90% coverage of exact samples by
    # the restorations' per-coordinate 90% intervals; 0.9 when calibrated) and put its mass on its components
    print(f"\nmode-weight error / 90% coverage (means over the ok seeds; exact samples: 0 / 0.9)\n")
    lines = ["| restorer | " + " | ".join(f"d_y = {d}" for d in D_Y) + " |", "|" + " --- |" * (len(D_Y) + 1)]
    for name in sorted(by_mean, key=lambda n: (pd.isna(by_mean[n]), by_mean[n])):
        cells = []
        for d_y in D_Y:
            cell = ok[(ok["restorer"] == name) & (ok["operator_d_y"] == d_y)]
            cells.append(f"{cell['posterior_mode_weight_error'].mean():.2f} / {cell['coverage_90'].mean():.2f}"
                         if len(cell) else "missing")
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
