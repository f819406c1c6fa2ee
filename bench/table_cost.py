"""The cost of an ablation table's statistics (tables/pivot.py): a synthetic generation table of
R row values x C column values x S seeds, pivoted with nothing compared (aggregate median), with
intervals and paired tests (the default), and with the power estimate too, in one process. Prints
CPU seconds per table and per cell (docs/statistics.md, Costs). Usage: python bench/table_cost.py [R C S]"""

import sys
import time

import numpy as np

from diffsweep import tables

R, C, S = (int(v) for v in sys.argv[1:4]) if len(sys.argv) > 3 else (400, 10, 5)
rng = np.random.default_rng(0)
rows = [{"run_id": f"r{r}-c{c}-s{s}", "sampler": f"s{r:04d}", "steps": c, "seed": s, "status": "ok",
         "sliced_w2": float(0.2 + 0.001 * r + 0.01 * rng.normal())}
        for r in range(R) for c in range(C) for s in range(S)]
params = ["sampler", "steps", "seed"]

for label, entry in (("median (nothing compared)", {"aggregate": "median"}),
                     ("mean_ci, paired t, Holm", {}),
                     ("mean_ci + power", {"power": True})):
    power = entry.pop("power", False)
    spec = tables.TableSpec.from_config("bench", {"metric": "sliced_w2", "rows": "sampler", "columns": "steps", **entry})
    start = time.process_time()
    tables.ablation(rows, spec, parameter_columns=params, power=power)
    seconds = time.process_time() - start
    print(f"{label:28s} {R} x {C} cells x {S} seeds: {seconds:7.2f} s CPU, {1e3 * seconds / (R * C):6.2f} ms a cell")
