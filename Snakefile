# diffsweep: sweeps over score-based diffusion models (see README.md and docs/design.md).
# Parsing stays light (no torch): every cluster job re-parses this file.
import os
import sys

from snakemake.utils import min_version

min_version("9.0")

# The embedded default grid applies only when no --configfile is given, so that a
# --configfile replaces it instead of being merged into it.
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# The library lives in src/: importable here and, through PYTHONPATH, in every job.
SRC = os.path.join(workflow.basedir, "src")
sys.path.insert(0, SRC)
# (update(), not os.environ[...] =: `snakemake --lint` takes that for a required variable)
os.environ.update(PYTHONPATH=os.pathsep.join(filter(None, [SRC, os.environ.get("PYTHONPATH")])))


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/runs.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/studies.smk"
include: "workflow/rules/search.smk"


rule all:
    input:
        all_targets(),
    default_target: True


# Shard jobs sent as SLURM job arrays (profiles/slurm) hang the executor plugin when fewer job
# slots (`jobs`) are free than jobs are ready: refuse such a run before anything is submitted.
# Then the results folder's own lock (runs.lock_results), held until the workflow ends: Snakemake
# locks only its working directory, and two invocations writing one results folder from two
# working directories would run every run twice and share the staging folders. onstart runs only
# in the invocation that schedules jobs: not in dry runs, nor in cluster jobs (--no-hooks).
onstart:
    problem = ds_packing.array_jobs_problem(
        getattr(workflow.executor_settings, "array_jobs", None),
        Counter(job.rule.name for job in workflow.dag.needrun_jobs() if not job.is_local),
        workflow.nodes,
    )
    if problem:
        raise WorkflowError(problem)
    try:
        ds_runs.lock_results(RESULTS)
    except ds_runs.ResultsInUse as error:
        raise WorkflowError(str(error)) from None


onerror:
    ds_runs.unlock_results(RESULTS)


# A run that raised is recorded (status `failed`) and every table and figure is still made; the
# workflow then ends non-zero listing the failed runs and their logs, so a failure is never
# silent. The next invocation retries them (docs/running.md, "When something goes wrong").
onsuccess:
    ds_runs.unlock_results(RESULTS)
    failures = ds_runs.failed_runs(RESULTS, RUNS)
    if failures:
        raise WorkflowError(ds_runs.failure_report(failures, RESULTS))
