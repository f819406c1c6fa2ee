# Config -> grid -> checks -> targets. Every input function, target list and rule resource lives
# here; the other rule files only declare rules.
from collections import Counter
from pathlib import Path

from diffsweep import config as ds_config
from diffsweep import fingerprint as ds_fingerprint
from diffsweep import floors as ds_floors
from diffsweep import grid as ds_grid
from diffsweep.grid import search as ds_search
from diffsweep import io as ds_io
from diffsweep import packing as ds_packing
from diffsweep import runs as ds_runs
from diffsweep.runs import code as ds_code
from diffsweep.runs import kinds as ds_kinds
from diffsweep import studies as ds_studies
from diffsweep import tables as ds_tables
from snakemake.exceptions import WorkflowError

# One validation, the same function as `diffsweep grid`'s (diffsweep.config.check_files): the
# config files re-read strictly (Snakemake's reader keeps the last of two equal keys and has no
# size, depth or alias limits), the schema's defaults filled and checked, the grid built
# (families, knobs, schedules, dataset parameters), the results folder, the declared ablation
# tables, heatmaps and plotted metrics, and the files the config names, before any job runs.
# Every problem is one line naming the key. Snakemake reads the --configfile files before this
# file is parsed: a folder, /dev/zero or lists nested ~1000 deep fail in its reader, with its
# traceback (docs/running.md, "Limits of a config").
try:
    CHECKED = ds_config.check_files(workflow.configfiles, config,
                                    os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml"))
except ds_config.ConfigError as error:
    raise WorkflowError(str(error)) from None
config.update(CHECKED.config)
GRID = CHECKED.grid
ABLATIONS = CHECKED.ablations

RESULTS = config["results"]
RUNS = GRID.runs
# Done detection is run-level: the records of every record file in the records folder, read
# once (the shard of a run, hence its record file, changes when the config adds runs); only
# their statuses and the fingerprints of their code are kept (memory at 100k runs).
try:
    STATES = ds_runs.index(RESULTS, keep=ds_code.CODE_KEYS)
except ds_io.UnreadableFile as error:   # a record file (or the records folder) that cannot be read: one line
    raise WorkflowError(str(error)) from None
# Done runs whose code changed since (runs.code): under `code_changes: rerun` they are pending (drawn
# again, or re-scored from their stored samples); under `warn` one line per preset, score source and
# part of the code says so; under `keep` they stay done, silently. Today's code is fingerprinted
# once per (kind, family, schedule, score source, operator), from the source files (no import). A
# trained checkpoint whose training code changed is retrained under `rerun` (the train rule's
# `model` param carries its code), its cost stated first, and its runs are stale with it.
CODE_CHANGES = config["code_changes"]
ds_fingerprint.use_source(SRC)    # the source the jobs import (Snakefile: SRC), read afresh
TRAINING = ds_code.training_check(RESULTS, GRID.trained_models(), CODE_CHANGES, RUNS, STATES)
TODAY = ds_code.Today(RUNS, TRAINING.expected)
STALE = ds_code.stale_runs(RUNS, STATES, TODAY)
for line in TRAINING.lines:
    print(f"diffsweep: {line}", file=sys.stderr)
if STALE and CODE_CHANGES == ds_runs.WARN:
    for line in ds_code.report(RUNS, STATES, STALE, RESULTS, CODE_CHANGES, TODAY):
        print(f"diffsweep: {line}", file=sys.stderr)
DONE = ds_runs.done_runs(RESULTS, RUNS, STATES, STALE, CODE_CHANGES)
# Every run is in one shard whatever is done (a job re-parsing this file while other shards finish
# finds its own shard); a shard is a target only while it has pending runs (its marker is a target
# of the workflow: a deleted marker is remade even while the tables are up to date), and its
# job's params carry a key of those runs, their records and drawing notes, and the shard's marker
# and log (grid.pending_shards, runs.attempt): a shard whose runs failed, whose records were found
# corrupt, whose job died, or whose records were deleted or forgotten after it ran, runs again,
# and the tables after it are rebuilt. The job finds its runs from the shard id.
SHARDS = GRID.shards(ds_grid.runs_per_job(config))
NOTES = ds_runs.drawing_notes(RESULTS)   # the runs jobs that died were drawing (runs.DrawingNote)
# (the key covers the code of pending runs that have a record, so a shard whose code changed again runs again)
PENDING = ds_grid.pending_shards(
    SHARDS, DONE, key=lambda shard, run_ids: ds_runs.attempt(
        RESULTS, run_ids, STATES, NOTES, shard=shard, code=lambda run_id: TODAY(run_id) if run_id in STATES else None))
SHARD_OF = {run_id: shard for shard, run_ids in SHARDS.items() for run_id in run_ids}
# Adaptive searches (grid.search): the grid holds rung 0 and every rung whose predecessor is cut; a
# dry run or a first invocation plans the next rung only after the checkpoint search_cut of the one
# before, and says so here.
SEARCHES = ds_search.declared(config)
for _search in SEARCHES.values():
    _cut = ds_search.decided(RESULTS, _search, config)
    if _cut <= _search.last:
        print(f"search {_search.name}: rungs 0-{_cut} of 0-{_search.last} planned ({_cut} cut); each later rung is "
              "planned when the rung before it is cut (checkpoint search_cut)", file=sys.stderr)
DATASETS_BY_ID = {spec.id: spec for spec in GRID.datasets.values()}
# The metric's floor per (analytic dataset, n_samples, metric settings), under its key (rule floor).
FLOORS = ds_floors.needed(GRID, config["metrics"])
FLOOR_CODE = ds_fingerprint.of_function(ds_floors.job) if FLOORS else None
TRAINED = bool(GRID.trained_models())
PLOT_METRICS = config["plots"]["metrics"]
HEATMAP = config["plots"]["heatmap"]
DIRECTIONS = config["tables"]["better"]
RESTORATION_METRICS = ["psnr", "ssim", "lpips"]   # lpips: a placeholder figure when LPIPS is skipped
if any(run.model.data.analytic for run in GRID.of_kind(ds_kinds.RESTORATION.name).values()):
    RESTORATION_METRICS.append("sliced_w2_posterior")   # distance to exact posterior samples (analytic priors)
# The kinds whose tables the results explorer (explore.html) browses: those the grid has runs of.
EXPLORED_KINDS = [kind for kind in ds_kinds.KINDS.entries() if GRID.of_kind(kind.name)]
# The studies the config declares (documented in docs, studies.md), their options with defaults filled.
STUDIES = ds_studies.declared(config)

PLOT_FORMATS = ds_tables.PLOT_FORMATS     # every figure is written in each
TABLE_FORMATS = ds_tables.TABLE_FORMATS   # ablation table format -> file extension

HASH = f"[0-9a-f]{{{ds_grid.HASH_DIGITS}}}"
ID = f"[A-Za-z0-9_]+-{HASH}"


wildcard_constraints:
    data_id=ID,
    model_id=ID,
    shard=ID + r"\." + HASH,
    metric="[a-z0-9_]+",
    dataset="[A-Za-z0-9_]+",
    extractor="digits|inception",
    table="[A-Za-z0-9_]+",
    search="[A-Za-z0-9_]+",
    rung="[0-9]+",


# --- resources -------------------------------------------------------------------------------

# Rules that can use a GPU ask for one (`gpu: 1`) unless the config pins the CPU: the SLURM profile
# turns it into --gpus=1, locally `--resources gpu=N` caps them (docs/cluster.md).
GPU = 0 if config["jobs"]["device"] == "cpu" else 1
LIGHT = {"mem_mb": 2000, "runtime": 30, "gpu": 0}   # aggregation, tables and figures
# Every rule's resources, in one place: memory (MB) and runtime (minutes) of the first attempt; a
# retry (profile `retries`) asks for `attempt` times as much.
RESOURCES = {
    "prepare_data": {"mem_mb": 2000, "runtime": 10, "gpu": 0},
    "train": {"mem_mb": 4000, "runtime": 60, "gpu": GPU},
    "run_shard": {"mem_mb": 4000, "runtime": ds_packing.shard_runtime(config, 60), "gpu": GPU},   # job_minutes x 2
    "likelihood": {"mem_mb": 4000, "runtime": 30, "gpu": 0},
    "floor": {"mem_mb": 2000, "runtime": 30, "gpu": 0},
    "train_digits_classifier": {"mem_mb": 2000, "runtime": 30, "gpu": 0},
    "fidelity_reference": {"mem_mb": 4000, "runtime": 30, "gpu": GPU},
    "explore": LIGHT,
    **{rule: LIGHT for rule in ("manifest", "aggregate", "restoration_table", "ablation_table", "plot_metrics",
                                "plot_samples", "plot_heatmaps", "plot_schedules", "plot_training",
                                "plot_restoration", "search_cut", "search_report", *(f"study_{name}" for name in ds_studies.STUDIES))},
}


def resources(rule):
    """The `resources:` of a rule (RESOURCES), memory and runtime scaled by the attempt."""
    return {key: (lambda wc, attempt, value=value: value * attempt) if key in ("mem_mb", "runtime") else value
            for key, value in RESOURCES[rule].items()}


# --- input functions and params of the rules ---------------------------------------------------


def shard_run(wildcards):
    """The first run of a shard: every run of a shard has its score source and kind."""
    return RUNS[SHARDS[wildcards.shard][0]]


def shard_options(wildcards):
    """The options of the kind of a shard: sample metrics (generation), or restoration metrics and
    strips; and the samples its runs store (keep_samples)."""
    return ds_kinds.get(shard_run(wildcards).kind).options(config)


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
    """The score source's inputs and the dataset's reference features for FID/KID."""
    model = shard_run(wildcards).model
    return {**inputs_of_model(model), "fidelity": fidelity_records(model.data)}


def training_set(wildcards):
    return f"{RESULTS}/data/{GRID.models[wildcards.model_id].data.id}/train.npz"


def dataset_reference(wildcards):
    return f"{RESULTS}/data/{GRID.datasets[wildcards.dataset].id}/reference.npz"


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


def pending_markers(kind=None):
    """The markers of the shards with pending runs (of one kind, or all)."""
    return [f"{RESULTS}/shards/{shard}.json" for shard in PENDING if kind in (None, RUNS[SHARDS[shard][0]].kind)]


def run_records(kind):
    """Evidence that every run of a kind is done: markers of the shards of pending runs, the
    record files holding the records of finished ones, and, while a pending shard has no marker,
    the records folder itself. Its time changes when a record file is deleted or rewritten, so a
    table whose rows such records backed is rebuilt, and the shard with it, also when the table is
    the target named: Snakemake does not remake a missing marker that only an up-to-date table
    needs, and a shard whose marker, log and records were all deleted has its first attempt key."""
    done = [run_id for run_id in DONE if RUNS[run_id].kind == kind]
    markers = pending_markers(kind)
    folder = str(ds_runs.records_folder(RESULTS))
    unmarked = os.path.isdir(folder) and not all(os.path.exists(marker) for marker in markers)
    return [*markers, *([folder] if unmarked else []), *ds_runs.record_files(RESULTS, done, STATES)]


def search_rung_inputs(wildcards):
    """What a search rung's cut reads: the records of the rung's runs (record files of done runs,
    markers of pending shards). Rung r > 0 waits for the cut of rung r - 1 (checkpoints.search_cut),
    then adds its runs to the grid of this invocation (their own shards, grid.search.group_of)."""
    search, rung = SEARCHES[wildcards.search], int(wildcards.rung)
    survivors = None
    if rung > 0:
        previous = checkpoints.search_cut.get(search=wildcards.search, rung=str(rung - 1)).output[0]
        survivors = ds_search.survivors_of(ds_search.read_rung(results_of(previous, depth=2), search.name, rung - 1))
    planned = [run for _, run in ds_search.rung_runs(search, config, GRID.models, rung, survivors, ds_kinds.GENERATION)]
    add_runs([run for run in planned if run.id not in RUNS], ds_search.group_of(search, rung))
    shards = sorted({SHARD_OF[run.id] for run in planned if run.id not in DONE})
    done = [run.id for run in planned if run.id in DONE]
    return [*(f"{RESULTS}/shards/{shard}.json" for shard in shards), *ds_runs.record_files(RESULTS, done, STATES)]


def add_runs(new_runs, group):
    """Runs a cut planned during this invocation, into the grid's maps (RUNS, SHARDS, SHARD_OF, DONE,
    PENDING): packed in their group, so no other shard moves."""
    if not new_runs:
        return
    GRID.add(new_runs, group)
    new_ids = [run.id for run in new_runs]
    stale = ds_code.stale_runs(new_ids, STATES, TODAY)   # finished before and today's code: not rerun
    DONE.update(ds_runs.done_runs(RESULTS, new_ids, STATES, stale, CODE_CHANGES))
    added = ds_grid.pack({run.id: run for run in new_runs}, ds_grid.runs_per_job(config),
                         {run.id: group for run in new_runs})
    SHARDS.update(added)
    SHARD_OF.update({run_id: shard for shard, run_ids in added.items() for run_id in run_ids})
    PENDING.update(ds_grid.pending_shards(
        added, DONE, key=lambda shard, run_ids: ds_runs.attempt(
            RESULTS, run_ids, STATES, NOTES, shard=shard, code=lambda run_id: TODAY(run_id) if run_id in STATES else None)))


def search_rungs(wildcards):
    """Every rung file of a search, the last one first reached through the chain of cuts."""
    return [str(ds_search.rung_path(RESULTS, wildcards.search, rung)) for rung in range(SEARCHES[wildcards.search].last + 1)]


def search_results():
    """The final rung of every search: the generation table waits for them, so it lists the rung runs."""
    return [str(ds_search.rung_path(RESULTS, name, search.last)) for name, search in SEARCHES.items()]


def ablation_source(wildcards):
    """The results table a declared ablation table pivots (tables.ablations.<name>.source)."""
    return f"{RESULTS}/{ds_kinds.get(ABLATIONS[wildcards.table].source).table}"


# --- targets -------------------------------------------------------------------------------------


def all_targets():
    """Every table and figure of the grid (rule all)."""
    targets = [
        f"{RESULTS}/runs.parquet",
        f"{RESULTS}/tables/generation.parquet",
        f"{RESULTS}/tables/training.parquet",
        *expand(f"{RESULTS}/plots/{{metric}}_vs_nfe.{{ext}}", metric=PLOT_METRICS, ext=PLOT_FORMATS),
        *expand(f"{RESULTS}/plots/samples_{{dataset}}.{{ext}}", dataset=sorted(GRID.datasets), ext=PLOT_FORMATS),
        *expand(f"{RESULTS}/tables/ablations/{{table}}.{{ext}}", table=sorted(ABLATIONS), ext=TABLE_FORMATS.values()),
    ]
    if config["plots"]["schedules"]:
        targets += expand(f"{RESULTS}/plots/schedules.{{ext}}", ext=PLOT_FORMATS)
    if TRAINED:
        targets += expand(f"{RESULTS}/plots/training_loss.{{ext}}", ext=PLOT_FORMATS)
        targets += expand(f"{RESULTS}/plots/heatmap_{{metric}}.{{ext}}", metric=HEATMAP["metrics"], ext=PLOT_FORMATS)
    if GRID.of_kind(ds_kinds.RESTORATION.name):
        targets.append(f"{RESULTS}/tables/restoration.parquet")
        targets += expand(f"{RESULTS}/plots/restoration_{{metric}}_vs_nfe.{{ext}}", metric=RESTORATION_METRICS,
                          ext=PLOT_FORMATS)
    targets.append(f"{RESULTS}/explore.html")
    # the pending shards' markers: Snakemake remakes a missing file that is a target, but not one
    # that only up-to-date tables need (records deleted with results/shards/ would recompute nothing)
    targets += [f"{RESULTS}/tables/search_{name}.csv" for name in SEARCHES]
    targets += expand(f"{RESULTS}/plots/search_{{search}}.{{ext}}", search=sorted(SEARCHES), ext=PLOT_FORMATS)
    return [*targets, *study_targets(), *pending_markers()]


def study_targets():
    """The figures and tables of the studies the config declares (`studies:`) that its grid can
    draw (error_sources needs a trained network)."""
    drawn = [name for name in STUDIES if ds_studies.STUDIES[name].drawn(GRID)]
    return [path for name in drawn for path in (*expand(f"{RESULTS}/plots/study_{name}.{{ext}}", ext=PLOT_FORMATS),
                                                 f"{RESULTS}/tables/study_{name}.csv")]
