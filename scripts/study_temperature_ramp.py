# Rule study_temperature_ramp: the metric against steps per ramp and T0 (seeds averaged, CSV) and
# the figure, with each dataset's floor of two independent exact sample sets (sliced_w2 only).
from pathlib import Path


from diffsweep import io, jobs, plots
from diffsweep.logs import setup_logging
from diffsweep.tables import studies

setup_logging(snakemake.log[0])
options = snakemake.params.options
table = io.read_parquet(snakemake.input.table)
summary = studies.ramp_summary(table, options["metric"], options["samplers"])
floors = {}
if options["metric"] == "sliced_w2":
    # a floor of the runs' own sample size: a preset may draw fewer samples on a costly dataset
    sizes = table.groupby("dataset")["n_samples"].max() if "n_samples" in table else {}
    for spec in snakemake.params.datasets:
        if spec["name"] not in set(summary["dataset"]):
            continue
        data_dir = Path(snakemake.output.csv).parents[1] / "data" / spec["id"]
        reference = io.read_sample_set(data_dir / "reference.npz")
        n_samples = int(sizes.get(spec["name"], snakemake.params.n_samples))
        floors[spec["name"]], _ = studies.exact_floor(jobs.build_dataset(spec, data_dir), reference, n_samples,
                                                      snakemake.params.seeds, snakemake.params.n_projections)
summary["floor"] = summary["dataset"].map(floors)
with io.atomic_path(snakemake.output.csv) as tmp:
    summary.to_csv(tmp, index=False, float_format="%.5g")
plots.ramp_study(summary, floors, [snakemake.output.png, snakemake.output.pdf], options["metric"])
