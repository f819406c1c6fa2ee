"""A job's score source and where it runs: its threads and device (`pick_device`), the dataset
(`build_dataset`), the network fit check, the denoiser (`load_denoiser`: the exact oracle, a
trained checkpoint or a pretrained network, called in chunks of `max_batch`), the call counter
that checks a sampler's reported NFE (`call_counted`), the initial draw of a sampler or restorer
(`initial_sample`) and the provenance stored in every record.

Used by the shard job loop (diffsweep.runs.loop), its two halves, and the data, training and
likelihood jobs (diffsweep.jobs). Imports torch; reads checkpoints and a fitted prior's cache,
writes nothing.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

import diffsweep
from diffsweep import data
from diffsweep.samplers.randomness import noise_source


def use_threads(threads: int) -> None:
    """Keep torch within the cores Snakemake gave the job (its default takes them all)."""
    torch.set_num_threads(max(1, int(threads)))


def pick_device(wanted: str = "auto") -> torch.device:
    """The GPU the scheduler exposed (CUDA_VISIBLE_DEVICES), else the CPU; 'cuda' insists on one.
    Outside a scheduler, with several GPUs, each job claims a free one (diffsweep.devices)."""
    if wanted == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        from diffsweep import devices
        return torch.device("cuda", devices.claim_gpu(torch.cuda.device_count()))
    if wanted == "cuda":
        raise RuntimeError("device: cuda was requested but no GPU is visible (CUDA_VISIBLE_DEVICES="
                           f"{os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')})")
    return torch.device("cpu")


def provenance() -> dict:
    """Versions and place of a job, stored in every run record."""
    try:
        revision = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                                  cwd=Path(__file__).parent).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        revision = None
    # Plain str (torch.__version__ is a TorchVersion): checkpoints then load with weights_only=True.
    return {"diffsweep": diffsweep.__version__, "torch": str(torch.__version__), "numpy": np.__version__,
            "python": platform.python_version(), "git_revision": revision, "host": socket.gethostname(),
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"), "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def build_dataset(spec: dict, data_dir=None) -> data.Dataset:
    """The dataset of a spec; `data_dir` (results/data/<id>) holds the cached fit of a fitted prior."""
    fit_path = Path(data_dir) / "prior.npz" if data_dir is not None else None
    return data.make_dataset(spec["family"], fit_path=fit_path, where=f"datasets.{spec.get('name', spec['id'])}.",
                             **spec["knobs"])



def check_network_fits(model: dict, shape) -> None:
    """Refuse, in one line naming the model, a pretrained network whose image size differs from
    the dataset's. The grid excludes such pairs when it knows both sizes; it cannot when an image
    folder of `resolution: 0` was not there at parse time (DIFFSWEEP_SKIP_PATH_CHECKS)."""
    if model["source"] != "pretrained":
        return
    from diffsweep import pretrained

    recipe = model["recipe"]
    channels, side = pretrained.image_shape(recipe["format"], recipe["arch_params"])
    if tuple(shape) != (channels, side, side):
        given = "x".join(map(str, shape))
        raise ValueError(f"models.{model['name']}: the network takes {channels}x{side}x{side} images, dataset "
                         f"'{model['data']['name']}' has {given}; give arch_params (or the checkpoint's "
                         f".arch.yaml) for a smaller network, or the dataset's resolution")


def load_denoiser(model: dict, checkpoint_path, device, data_dir=None, max_batch: int = 0):
    """(denoiser, dtype) of a score source; with `max_batch` (config `jobs.max_batch`) it is called in chunks."""
    denoiser, dtype = _load_denoiser(model, checkpoint_path, device, data_dir)
    return (InChunks(denoiser, max_batch) if max_batch else denoiser), dtype


def _load_denoiser(model: dict, checkpoint_path, device, data_dir=None):
    """(denoiser, dtype) of a score source: the exact oracle in float64, a network in float32."""
    from diffsweep.models import OracleDenoiser, load_checkpoint

    if model["source"] == "oracle":
        return OracleDenoiser(build_dataset(model["data"], data_dir).mixture), torch.float64
    if model["source"] == "pretrained":  # the file is checked here, not by Snakemake: a dry run needs none
        from diffsweep.pretrained import load_pretrained
        recipe = model["recipe"]
        denoiser = load_pretrained(recipe["format"], recipe["checkpoint"], arch=recipe["arch_params"],
                                   ema=recipe["weights"] == "ema", device=device, where=f"models.{model['name']}.")
        return denoiser, torch.float32
    denoiser, _ = load_checkpoint(checkpoint_path, map_location=device, where=f"models.{model['name']}.")
    return denoiser.to(device), torch.float32


class InChunks:
    """A denoiser called on at most `max_batch` samples at a time, so a run may draw more samples
    than fit in accelerator memory (gradients flow through, for DPS-style restorers)."""

    def __init__(self, denoiser, max_batch: int):
        self.denoiser, self.max_batch = denoiser, max_batch

    def __call__(self, x, sigma):
        if x.shape[0] <= self.max_batch:
            return self.denoiser(x, sigma)
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        sigma = sigma.expand(x.shape[0]) if sigma.ndim == 0 else sigma
        return torch.cat([self.denoiser(part, level) for part, level in
                          zip(x.split(self.max_batch), sigma.split(self.max_batch))])


class CountingDenoiser:
    """Counts calls independently of what a sampler reports (the two must agree)."""

    def __init__(self, denoiser):
        self.denoiser, self.calls = denoiser, 0

    def __call__(self, x, sigma):
        self.calls += 1
        return self.denoiser(x, sigma)


def initial_sample(init: str, sigma_max: float, shape, noise, dtype, device, init_knobs: dict | None = None):
    """The start x ~ N(mean, scale^2 I) of `init` (samplers.INITS), the first draw of the noise source
    `noise` (diffsweep.samplers.randomness; a torch.Generator is wrapped); `init_knobs` only for `gaussian`."""
    mean, scale = 0.0, {"unit": 1.0, "sigma_max": sigma_max, "vp_prior": (1.0 + sigma_max ** 2) ** 0.5,
                        "gaussian": None}[init]
    if init == "gaussian":
        mean, scale = init_knobs["mean"], init_knobs["std"]
    return mean + scale * noise_source(noise)(torch.empty(shape, dtype=dtype, device=device))


def call_counted(fn, denoiser, device, *args, **kwargs):
    """`fn(counted denoiser, *args, **kwargs)` without gradients, for a sampler or restorer that
    returns (output, nfe): (output, reported nfe, counted nfe, seconds of the call)."""
    counter = CountingDenoiser(denoiser)
    started = time.perf_counter()
    with torch.no_grad():
        output, nfe = fn(counter, *args, **kwargs)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return output, nfe, counter.calls, time.perf_counter() - started
