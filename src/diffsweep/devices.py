"""Which GPU a job uses.

Under a scheduler (SLURM sets SLURM_JOB_ID) the job uses the GPU it was given: SLURM exposes
only that device through CUDA_VISIBLE_DEVICES, so it is `cuda:0` inside the job.

On a workstation Snakemake caps how many GPU jobs run at once (`--resources gpu=N`, each
GPU rule asks for `gpu=1`) but does not say which GPU each one should take. Here every job
claims one visible GPU by taking an exclusive `flock` on a per-GPU lock file and holds it
until the process ends (the kernel drops the lock even after `kill -9`), so two jobs never
land on one GPU; a job that finds every GPU claimed waits for one. The lock folder is
`$DIFFSWEEP_GPU_LOCKS` (default: `<tmp>/diffsweep-gpu-locks`); `DIFFSWEEP_GPU_LOCKS=off`
turns claiming off (every job then takes `cuda:0`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import tempfile
import time
from pathlib import Path

log = logging.getLogger("diffsweep")

_held: dict[int, int] = {}   # GPU index -> open lock file descriptor, kept for the process lifetime


def lock_dir() -> Path | None:
    setting = os.environ.get("DIFFSWEEP_GPU_LOCKS", "")
    if setting.lower() in ("off", "0", "no", "false"):
        return None
    return Path(setting) if setting else Path(tempfile.gettempdir()) / "diffsweep-gpu-locks"


def under_scheduler() -> bool:
    return bool(os.environ.get("SLURM_JOB_ID"))


def _lock_name(index: int) -> str:
    """A name for the physical GPU behind visible index `index` (CUDA_VISIBLE_DEVICES may renumber)."""
    visible = [v.strip() for v in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if v.strip()]
    physical = visible[index] if index < len(visible) else str(index)
    return "gpu-" + re.sub(r"[^A-Za-z0-9_.-]", "_", physical) + ".lock"


def _try_lock(path: Path) -> int | None:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's lock file: locking it read-only works as well
        fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def claim_gpu(count: int, folder: Path | None = None, poll_s: float = 1.0, timeout_s: float | None = None) -> int:
    """Index (among the `count` visible GPUs) of a GPU no other job on this machine holds.

    Held until the process exits; calling it again in the same process returns the same GPU.
    Waits while all are taken (up to `timeout_s`, then TimeoutError)."""
    if count < 1:
        raise ValueError("no GPU to claim")
    if _held:
        return next(iter(_held))
    if folder is None:
        folder = lock_dir()
    if folder is None or under_scheduler():
        return 0
    folder.mkdir(parents=True, exist_ok=True)
    try:
        folder.chmod(0o1777)  # shared by every user of the machine, like /tmp
    except PermissionError:
        pass
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    waited = False
    while True:
        for index in range(count):
            fd = _try_lock(folder / _lock_name(index))
            if fd is not None:
                _held[index] = fd
                if waited:
                    log.info("GPU %d became free", index)
                return index
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"all {count} GPUs stayed claimed by other jobs (locks in {folder})")
        if not waited:
            log.info("all %d GPUs are in use by other jobs (locks in %s); waiting for one", count, folder)
            waited = True
        time.sleep(poll_s)


def release_gpus() -> None:
    """Drop this process's claim (tests; a job simply exits)."""
    for fd in _held.values():
        os.close(fd)
    _held.clear()
