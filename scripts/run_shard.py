# Rule run_shard: run a pack of runs of one kind that share one score source (loaded once). The
# shard's runs come from its id and the config; runs done meanwhile (an earlier attempt) are
# skipped. Under `code_changes: rerun` a done run whose code changed is not done: the job computes
# today's fingerprints itself (never trusting the parse's view of the code) and draws it again, or,
# when only its evaluating code changed, re-scores it from its stored samples (runs.code). A run
# that raises is recorded as failed and the job succeeds (the Snakefile's onsuccess reports it),
# unless `jobs.fail_fast` is set.
import os

from diffsweep import fingerprint, grid, runs
from diffsweep.runs import code as run_code, loop, source
from diffsweep.logs import setup_logging

setup_logging(snakemake.log[0])
source.use_threads(snakemake.threads)
model, shard_runs = grid.shard_job(snakemake.config, snakemake.wildcards.shard)
run_ids = [run["id"] for run in shard_runs]
states = runs.index(snakemake.params.results, only=set(run_ids))
# a trained score source's checkpoint as it is now (retrained first if its training code changed)
trained = run_code.read_training_note(snakemake.input.checkpoint) if "checkpoint" in snakemake.input.keys() else None
code_train = {} if trained is None else {"code_train": trained["code_train"]}
today = {run["id"]: {**fingerprint.of_params(run["identity"]), **code_train} for run in shard_runs}
stale = run_code.stale_runs(run_ids, states, today.get)
policy = snakemake.config["code_changes"]
done = runs.done_runs(snakemake.params.results, run_ids, states, stale, policy)
pending = [run for run in shard_runs if run["id"] not in done]
rescored = {run_id: states[run_id] for run_id in stale.evaluate} if policy == runs.RERUN else {}
if pending:
    loop.run_shard(model, pending, snakemake.input.reference, snakemake.input.get("checkpoint"),
                   snakemake.params.results, snakemake.output.marker, options=snakemake.params.options,
                   device=snakemake.params.device, plugins=snakemake.config["plugins"],
                   fidelity_records=snakemake.input.fidelity, fidelity_options=snakemake.params.fidelity,
                   max_batch=snakemake.config["jobs"]["max_batch"],
                   log_path=os.path.relpath(snakemake.log[0], snakemake.params.results),
                   fail_fast=snakemake.config["jobs"]["fail_fast"], fuse=snakemake.config["jobs"]["fuse"],
                   fuse_timeout_s=snakemake.config["jobs"]["fuse_timeout_s"],
                   runaway_factor=snakemake.config["sampling"]["runaway_factor"], reevaluate=rescored)
else:   # done by another job of the same shard in the meantime
    runs.write_marker(snakemake.output.marker, model["id"], shard_runs[0]["kind"], {})
