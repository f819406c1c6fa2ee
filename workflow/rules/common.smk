# Config -> grid -> targets. Input functions for every rule live here.
from pathlib import Path

from diffsweep import config as ds_config
from diffsweep import grid as ds_grid
from snakemake.exceptions import WorkflowError

try:
    config.update(ds_config.prepare(config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")))
    GRID = ds_grid.build(config)
except ValueError as error:
    raise WorkflowError(f"invalid config: {error}") from None
validate(config, os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"))

RESULTS = config["results"]
DONE = ds_grid.done_runs(RESULTS, GRID.runs)
SHARDS = GRID.shards(config["sampling"]["runs_per_job"], done=DONE)
DATASETS_BY_ID = {spec.id: spec for spec in GRID.datasets.values()}
PLOT_METRICS = config["plots"]["metrics"]
# Rules that can use a GPU ask for one (`resources: gpu`) unless the config pins the CPU: the SLURM
# profile turns it into --gpus=1, locally `--resources gpu=N` caps them (docs/cluster.md).
GPU = 0 if config["device"] == "cpu" else 1

PLOT_FORMATS = ["png", "pdf"]   # every figure is written in both

ID = "[A-Za-z0-9_]+-[0-9a-f]{8}"


wildcard_constraints:
    data_id=ID,
    model_id=ID,
    shard=ID + r"\.[0-9a-f]{6}",
    metric="[a-z0-9_]+",
    dataset="[A-Za-z0-9_]+",
    extractor="digits|inception",


def data_dict(spec):
    return ds_grid.canonical({"id": spec.id, "name": spec.name, "family": spec.family, "params": spec.params,
            "n_train": spec.n_train, "n_reference": spec.n_reference, "seed": spec.seed})


def model_dict(model):
    return ds_grid.canonical({"id": model.id, "name": model.name, "source": model.source, "recipe": model.recipe,
                              "data": data_dict(model.data)})


def run_dict(run):
    return ds_grid.canonical({"id": run.id, "family": run.family, "schedule": run.schedule, "schedule_params": run.schedule_params,
            "steps": run.steps, "init": run.init, "knobs": run.knobs, "seed": run.seed, "n_samples": run.n_samples,
            "params": run.params(), "row": run.row()})


def shard_model(wildcards):
    return GRID.runs[SHARDS[wildcards.shard][0]].model


def inputs_of_model(model):
    """What a job needs to evaluate a score source: the reference set and, if trained, its checkpoint.
    A pretrained checkpoint is no input: the job checks the file, so a dry run builds without it."""
    inputs = {"reference": f"{RESULTS}/data/{model.data.id}/reference.npz"}
    if model.source == "trained":
        inputs["checkpoint"] = f"{RESULTS}/models/{model.id}/checkpoint.pt"
    return inputs


def fidelity_records(data_spec):
    """Reference features of each torch-fidelity extractor that scores this dataset's samples."""
    return [f"{RESULTS}/fidelity/reference/{data_spec.id}.{extractor}.json"
            for extractor in ds_grid.fidelity_extractors(data_spec, config["fidelity"])]


def fidelity_reference_inputs(wildcards):
    inputs = {"reference": f"{RESULTS}/data/{wildcards.data_id}/reference.npz"}
    if wildcards.extractor == "digits":
        inputs["classifier"] = f"{RESULTS}/fidelity/digits_classifier.pt"
    return inputs


def shard_inputs(wildcards):
    model = shard_model(wildcards)
    return {**inputs_of_model(model), "fidelity": fidelity_records(model.data)}


def model_inputs(wildcards):
    return inputs_of_model(GRID.models[wildcards.model_id])


def likelihood_records():
    options = config["metrics"]["likelihood"]
    if options["points"] == 0:
        return []
    return [f"{RESULTS}/models/{model_id}/likelihood.json" for model_id, model in sorted(GRID.models.items())
            if not options["models"] or model.name in options["models"]]


def results_of(path, depth):
    """The results folder above `path` (`depth` folders between them), e.g. results/shards/x.json -> results."""
    return str(Path(path).parents[depth])


def run_records():
    """Evidence that every run is done: shard markers of pending runs, records of finished ones."""
    return [f"{RESULTS}/shards/{shard}.json" for shard in SHARDS] + [
        f"{RESULTS}/runs/{run_id}/run.json" for run_id in sorted(DONE)
    ]


def all_targets():
    return [
        f"{RESULTS}/runs.parquet",
        f"{RESULTS}/tables/generation.parquet",
        f"{RESULTS}/tables/training.parquet",
        *REPORT_TARGETS,  # figures and ablation tables (report.smk)
        *RESTORATION_TARGETS,  # restoration table and figures (restore.smk)
    ]


# --- restoration (restore.smk) ---

RESTORATION = config["restoration"]
DONE_RESTORATIONS = ds_grid.done_restorations(RESULTS, GRID.restorations)
RESTORATION_SHARDS = GRID.restoration_shards(RESTORATION["runs_per_job"], done=DONE_RESTORATIONS)
RESTORATION_METRICS = ["psnr", "ssim", "lpips"]   # lpips: a placeholder figure when LPIPS is skipped


def restoration_dict(run):
    return ds_grid.canonical({"id": run.id, "operator": run.operator, "operator_params": run.operator_params,
            "noise_std": run.noise_std, "family": run.family, "schedule": run.schedule,
            "schedule_params": run.schedule_params, "steps": run.steps, "init": run.init, "knobs": run.knobs,
            "seed": run.seed, "n_measurements": run.n_measurements, "n_samples": run.n_samples,
            "params": run.params(), "row": run.row()})


def restoration_shard_model(wildcards):
    return GRID.restorations[RESTORATION_SHARDS[wildcards.shard][0]].model


def restoration_shard_inputs(wildcards):
    """The score source's inputs and the dataset's reference features for FID/KID of restorations."""
    model = restoration_shard_model(wildcards)
    return {**inputs_of_model(model), "fidelity": fidelity_records(model.data)}


def restoration_records():
    return [f"{RESULTS}/restorations/shards/{shard}.json" for shard in RESTORATION_SHARDS] + [
        f"{RESULTS}/restorations/{run_id}/run.json" for run_id in sorted(DONE_RESTORATIONS)
    ]


RESTORATION_TARGETS = (
    [f"{RESULTS}/tables/restoration.parquet",
     *expand(f"{RESULTS}/plots/restoration_{{metric}}_vs_nfe.{{ext}}", metric=RESTORATION_METRICS, ext=PLOT_FORMATS)]
    if GRID.restorations else []
)
