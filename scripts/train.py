# Rule train: fit one model recipe on one dataset; writes the EMA checkpoint and the training log.
# The training state goes to resume.pt next to the checkpoint (every training.checkpoint_every
# steps and on SIGTERM), so a re-run after preemption or a time limit resumes from it.
import sys
from pathlib import Path

from diffsweep import jobs, registry
from diffsweep.runs import source
from diffsweep.logs import setup_logging
from diffsweep.train import TrainingInterrupted

setup_logging(snakemake.log[0])
source.use_threads(snakemake.threads)
registry.load_plugins(snakemake.config["plugins"])
try:
    jobs.train_model(snakemake.params.model, snakemake.input.train, snakemake.output.checkpoint,
                     snakemake.output.train_log, device=snakemake.params.device,
                     resume_path=Path(snakemake.output.checkpoint).with_name("resume.pt"),
                     checkpoint_every=snakemake.config["training"]["checkpoint_every"],
                     by_sigma_path=snakemake.output.loss_by_sigma, amp=snakemake.config["training"]["amp"],
                     compile_model=snakemake.config["training"]["compile"])
except TrainingInterrupted as stopped:
    jobs.log.warning("%s", stopped)
    sys.exit(128 + stopped.signum)
