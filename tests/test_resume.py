"""Preemption: a training job killed (kill -9, or SIGTERM as SLURM sends it) resumes from its
last saved state when re-run, and ends with exactly the weights of an uninterrupted run.

The killed jobs are held at a chosen point (a handshake, not a clock): the job writes a marker file
and then waits for a line on its stdin, so the signal arrives exactly there however loaded the
machine is."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch

from diffsweep import devices, io, train
from diffsweep.data import make_dataset

ROOT = Path(__file__).resolve().parents[1]
RECIPE = {"arch": "mlp", "arch_params": {"hidden": 64, "depth": 2}, "parametrisation": "eps", "sigma_data": 1.0,
          "train_sigma": {"name": "ve_loguniform", "knobs": {"sigma_min": 0.05, "sigma_max": 20.0}},
          "weight": "eps", "steps": 120, "batch_size": 128, "lr": 3e-3, "ema": 0.99, "grad_clip": 1.0,
          "seed": 3, "log_every": 40}
# 120 steps: six checkpoints and three log rows, so the resumed jobs (from step 40 and 50) both
# write a checkpoint and log rows after resuming; more steps would only repeat them.
CHECKPOINT_EVERY = 20

# The killed jobs are held halfway between two checkpoints, or while the temporary file of the
# checkpoint after that is written (before it is renamed into place).
HOLD_STEP = 2 * CHECKPOINT_EVERY + CHECKPOINT_EVERY // 2
HOLD_SAVE = 3 * CHECKPOINT_EVERY

# One training job, as the workflow's train rule runs it (one thread, like `threads: 1`). With a
# hold ("step N": inside the N-th optimiser step; "save N": after the state of step N is written
# to its temporary file), the job touches <folder>/held there and waits for a line on stdin.
JOB = """
import sys
import torch
from diffsweep import jobs
from diffsweep.runs import source
from diffsweep.logs import setup_logging
setup_logging()
source.use_threads(1)
spec = {"id": "mlp-00000000", "recipe": %r, "data": {"id": "ring8-00000000"}}
folder = sys.argv[1]
resume = folder + "/resume.pt" if sys.argv[2] == "resume" else None

def hold():
    open(folder + "/held", "w").close()
    sys.stdin.readline()

where, _, at = sys.argv[4].partition(" ")
if where == "step":
    step, steps = torch.optim.Adam.step, [0]
    def counted_step(optimiser, *args, **kwargs):
        steps[0] += 1
        if steps[0] == int(at):
            hold()
        return step(optimiser, *args, **kwargs)
    torch.optim.Adam.step = counted_step
elif where == "save":
    save = torch.save
    def held_save(state, path, *args, **kwargs):
        save(state, path, *args, **kwargs)
        if isinstance(state, dict) and state.get("step") == int(at):
            hold()
    torch.save = held_save
try:
    jobs.train_model(spec, sys.argv[3], folder + "/checkpoint.pt", folder + "/train_log.parquet", device="cpu",
                     resume_path=resume, checkpoint_every=%d)
except Exception as error:
    from diffsweep.train import TrainingInterrupted
    if isinstance(error, TrainingInterrupted):
        print(error, file=sys.stderr)
        sys.exit(128 + error.signum)
    raise
""" % (RECIPE, CHECKPOINT_EVERY)


def job(folder: Path, data: Path, resume: bool = True, hold: str = "") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-c", JOB, str(folder), "resume" if resume else "plain", str(data), hold],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def held(folder: Path, process: subprocess.Popen, timeout: float = 300.0) -> None:
    """Wait until the job is held (its marker exists); the bound only ends a broken job's test."""
    deadline = time.monotonic() + timeout
    while not (folder / "held").exists():
        assert process.poll() is None, f"the job ended before it was held:\n{process.communicate()[0]}"
        assert time.monotonic() < deadline, f"the job was not held after {timeout} s"
        time.sleep(0.005)


def finish(process: subprocess.Popen, expect: int = 0) -> str:
    output = process.communicate(input="\n", timeout=300)[0]
    assert process.returncode == expect, output
    return output


@pytest.fixture(scope="module")
def data_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "train.npz"
    io.write_arrays(path, x=make_dataset("gmm", preset="ring8").sample(3000, torch.Generator().manual_seed(0)).numpy())
    return path


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, data_path) -> Path:
    folder = tmp_path_factory.mktemp("uninterrupted")
    finish(job(folder, data_path, resume=False))
    return folder


def assert_same_training(resumed: Path, reference: Path) -> dict:
    ours = torch.load(resumed / "checkpoint.pt", weights_only=False)
    theirs = torch.load(reference / "checkpoint.pt", weights_only=False)
    assert ours["ema"].keys() == theirs["ema"].keys()
    for key in theirs["ema"]:
        assert torch.equal(ours["ema"][key], theirs["ema"][key]), key      # bit for bit
    columns = [c for c in train.LOG_COLUMNS if c != "wall_s"]
    pd.testing.assert_frame_equal(pd.read_parquet(resumed / "train_log.parquet")[columns],
                                  pd.read_parquet(reference / "train_log.parquet")[columns])
    assert not (resumed / "resume.pt").exists()   # deleted once the outputs are written
    return ours


@pytest.mark.slow
def test_kill_9_while_writing_a_checkpoint_then_rerun_resumes_and_matches_an_uninterrupted_run(
        tmp_path, data_path, uninterrupted):
    process = job(tmp_path, data_path, hold=f"save {HOLD_SAVE}")
    held(tmp_path, process)
    process.send_signal(signal.SIGKILL)
    finish(process, expect=-signal.SIGKILL)
    # the checkpoint being written is only a temporary file: the one before it is what resumes
    assert list(tmp_path.glob(".resume.pt.*.tmp"))
    saved = train.read_resume(tmp_path / "resume.pt")
    assert saved["step"] == HOLD_SAVE - CHECKPOINT_EVERY
    # nothing that Snakemake would take for an output (a killed atomic write leaves only a hidden .tmp)
    assert not (tmp_path / "checkpoint.pt").exists() and not (tmp_path / "train_log.parquet").exists()

    output = finish(job(tmp_path, data_path))
    assert f"resuming training from step {saved['step']}" in output
    record = assert_same_training(tmp_path, uninterrupted)
    assert record["resumed_from_step"] == saved["step"]
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_sigterm_between_checkpoints_saves_that_step_and_exits_nonzero_then_resumes(tmp_path, data_path,
                                                                                  uninterrupted):
    process = job(tmp_path, data_path, hold=f"step {HOLD_STEP}")
    held(tmp_path, process)
    process.send_signal(signal.SIGTERM)
    # the signal is pending before the held step goes on: the job saves the state after that step
    output = finish(process, expect=128 + signal.SIGTERM)
    saved = train.read_resume(tmp_path / "resume.pt")
    assert saved["step"] == HOLD_STEP and f"after step {HOLD_STEP}" in output
    assert not (tmp_path / "checkpoint.pt").exists()

    finish(job(tmp_path, data_path))
    assert assert_same_training(tmp_path, uninterrupted)["resumed_from_step"] == saved["step"]


def test_a_state_saved_for_another_recipe_is_ignored(tmp_path):
    data = make_dataset("gmm", preset="ring8").sample(500, torch.Generator().manual_seed(0))
    short = {**RECIPE, "steps": 12, "log_every": 4}
    path = tmp_path / "resume.pt"
    with pytest.raises(train.TrainingInterrupted):   # a state at step 1, saved by the SIGTERM path
        with _sigterm_at_first_step():
            train.train(short, data, progress=False, resume_path=path)
    assert train.resume_step(path, short, data) == 1
    other = {**short, "lr": 1e-3}
    assert train.resume_step(path, other, data) is None
    plain, _, _ = train.train(other, data, progress=False)
    ignored, _, _ = train.train(other, data, progress=False, resume_path=path)
    for a, b in zip(plain.parameters(), ignored.parameters()):
        assert torch.equal(a, b)


class _sigterm_at_first_step:
    """Deliver SIGTERM to ourselves inside the first optimiser step."""

    def __enter__(self):
        self.original = torch.optim.Adam.step

        def step(optimiser, *args, **kwargs):
            torch.optim.Adam.step = self.original
            os.kill(os.getpid(), signal.SIGTERM)
            return self.original(optimiser, *args, **kwargs)
        torch.optim.Adam.step = step

    def __exit__(self, *exc):
        torch.optim.Adam.step = self.original
        return False


# --- local GPU sharing (diffsweep.devices): the lock logic, without a GPU ---------------------

def test_each_job_claims_a_gpu_nobody_else_holds(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    other_job = devices._try_lock(tmp_path / "gpu-2.lock")      # visible GPU 0 is physical GPU 2
    try:
        assert devices.claim_gpu(2, tmp_path) == 1
        assert devices.claim_gpu(2, tmp_path) == 1               # the same process keeps its GPU
        devices.release_gpus()
        busy = devices._try_lock(tmp_path / "gpu-5.lock")
        with pytest.raises(TimeoutError, match="all 2 GPUs"):
            devices.claim_gpu(2, tmp_path, poll_s=0.05, timeout_s=0.2)
        os.close(busy)
        assert devices.claim_gpu(2, tmp_path) == 1
    finally:
        os.close(other_job)
        devices.release_gpus()


def test_a_killed_job_frees_its_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    holder = subprocess.Popen([sys.executable, "-c",
                               "import sys, time; from diffsweep import devices; "
                               "print(devices.claim_gpu(1, __import__('pathlib').Path(sys.argv[1])), flush=True); "
                               "time.sleep(60)", str(tmp_path)],
                              env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        with pytest.raises(TimeoutError):
            devices.claim_gpu(1, tmp_path, poll_s=0.05, timeout_s=0.2)
        holder.kill()
        holder.wait()
        assert devices.claim_gpu(1, tmp_path, timeout_s=5) == 0
    finally:
        holder.kill()
        devices.release_gpus()


def test_under_slurm_the_given_gpu_is_used_without_locks(tmp_path, monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert devices.claim_gpu(1, tmp_path) == 0
    assert not list(tmp_path.iterdir())
    devices.release_gpus()
