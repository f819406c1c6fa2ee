"""The bodies of the workflow's jobs, callable without Snakemake.

Rule scripts in scripts/ only unpack `snakemake.*` and call one function here. Every output
is written atomically. The job loop of a shard of runs is diffsweep.runs.run_shard; the
generation half of it (draw samples, score and save them) is `Generation` here.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import torch

import diffsweep
from diffsweep import data, io, metrics, samplers
from diffsweep.noise import make_schedule
from diffsweep.samplers.randomness import GENERATION_BLOCK, SampleStreams, noise_source

log = logging.getLogger("diffsweep")


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


# --- prepare_data ----------------------------------------------------------------------

def prepare_data(spec: dict, train_path, reference_path) -> None:
    """Draw the training set and an independent reference set (fresh exact samples)."""
    dataset = build_dataset(spec, Path(train_path).parent)
    generator = torch.Generator().manual_seed(spec["seed"])
    train = dataset.sample(spec["n_train"], generator)
    reference = dataset.sample(spec["n_reference"], generator)
    io.write_arrays(train_path, x=train.numpy())
    io.write_arrays(reference_path, x=reference.numpy())
    log.info("dataset %s: %d training and %d reference samples of dimension %d",
             spec["id"], len(train), len(reference), dataset.dim)


# --- train -----------------------------------------------------------------------------

def train_model(spec: dict, train_path, checkpoint_path, log_path, device: str = "auto", resume_path=None,
                checkpoint_every: int = 0, by_sigma_path=None, amp: str = "off", compile_model: bool = False) -> None:
    """Train one model. With `resume_path` (results/models/<id>/resume.pt), the training state is
    saved there every `checkpoint_every` steps and on SIGTERM, a re-run continues from it, and it
    is deleted once the outputs are written."""
    from diffsweep import train

    recipe = spec["recipe"]
    x = torch.from_numpy(io.read_sample_set(train_path))
    chosen = pick_device(device)
    log.info("training %s on %s (%d examples, %d steps) on %s", spec["id"], spec["data"]["id"], len(x),
             recipe["steps"], chosen)
    started = time.perf_counter()
    resumed = train.resume_step(resume_path, recipe, x)
    ema, rows, binned = train.train(recipe, x, device=chosen, resume_path=resume_path,
                                    checkpoint_every=checkpoint_every, amp=amp, compile_model=compile_model)
    import pandas as pd
    for path, table, columns in ((log_path, rows, train.LOG_COLUMNS), (by_sigma_path, binned, train.BINNED_COLUMNS)):
        if path is not None:
            frame = pd.DataFrame(table, columns=columns)
            frame.insert(0, "model_id", spec["id"])
            io.write_parquet(path, frame)
    with io.atomic_path(checkpoint_path) as tmp:
        torch.save({"recipe": recipe, "shape": tuple(x.shape[1:]), "ema": ema.cpu().state_dict(), "model_id": spec["id"],
                    "train_wall_s": rows[-1]["wall_s"] if rows else time.perf_counter() - started,
                    "resumed_from_step": resumed, "provenance": provenance()}, tmp)
    if resume_path is not None:
        Path(resume_path).unlink(missing_ok=True)
    log.info("trained %s in %.1f s, final loss %.4g", spec["id"], time.perf_counter() - started, rows[-1]["loss"])


# --- evaluate -----------------------------------------------------------------------------

def evaluate_likelihood(model: dict, reference_path, checkpoint_path, out_path, options: dict, device="auto") -> None:
    """Bits/dim of the first `points` reference samples under the model's probability-flow ODE,
    next to the true value where the dataset has a closed-form density."""
    from diffsweep import likelihood

    chosen = pick_device(device)
    denoiser, dtype = load_denoiser(model, checkpoint_path, chosen, Path(reference_path).parent)
    x = torch.from_numpy(io.read_sample_set(reference_path)[: options["points"]]).to(chosen, dtype)
    dim = x[0].numel()
    # auto: the exact trace costs one backward pass per dimension, so images use Hutchinson's estimate
    trace = options["trace"] if options["trace"] != "auto" else "exact" if dim <= 16 else "hutchinson"
    started = time.perf_counter()
    log_p, nfe = likelihood.ode_log_likelihood(
        denoiser, x, options["sigma_min"], options["sigma_max"], trace=trace, n_probes=options["probes"],
        generator=torch.Generator(device=chosen).manual_seed(0), rtol=options["rtol"], atol=options["atol"])
    record = {"model_id": model["id"], "nll_bpd": likelihood.bits_per_dim(log_p, dim).mean().item(),
              "likelihood_nfe": nfe, "likelihood_points": len(x), "likelihood_wall_s": time.perf_counter() - started,
              "likelihood_trace": trace}
    mixture = build_dataset(model["data"], Path(reference_path).parent).mixture
    if mixture is not None:
        truth = mixture.log_prob(x.double().cpu().flatten(1), options["sigma_min"])
        record["true_nll_bpd"] = likelihood.bits_per_dim(truth, dim).mean().item()
    io.write_json(out_path, record)
    log.info("likelihood of %s: %.4f bits/dim (true %s), %d evaluations", model["id"], record["nll_bpd"],
             record.get("true_nll_bpd"), nfe)


# --- sample ----------------------------------------------------------------------------

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


def draw_samples(run: dict, denoiser, shape, dtype, device):
    """Run one sampler preset point: (samples, reported nfe, counted nfe, seconds)."""
    spec = samplers.get(run["family"])
    sigmas = make_schedule(run["schedule"], run["steps"], **run["schedule_knobs"]).tolist()
    # per-sample streams: sample i depends only on (seed, i), so n_samples: k is the first k of a larger run
    noise = SampleStreams(run["seed"], run["n_samples"], GENERATION_BLOCK, device, stream="samples")
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    x = initial_sample(run["init"], sigmas[0], (run["n_samples"], *shape), noise, dtype, device,
                       run.get("init_knobs"))
    return call_counted(spec.fn, denoiser, device, x, sigmas, noise, **run["knobs"])


def kept(keep, total: int) -> int:
    """How many of `total` samples a run stores under keep_samples (`all`, `none` or the first k)."""
    return total if keep == "all" else 0 if keep == "none" else min(int(keep), total)


class Generation:
    """The generation half of a shard job (diffsweep.runs.run_shard): draw a run's samples, then
    score them against the reference set and save samples.npz (and grid.png for images) into the
    run's staging folder: the first `keep_samples` samples (metrics always see them all)."""
    method = "sampler"

    def __init__(self, dataset, reference, dtype, device, options: dict, fidelity=None):
        self.dataset, self.reference, self.dtype, self.device = dataset, reference, dtype, device
        self.metric_options = {**options["metrics"], "cache": {}}  # the reference's own terms, computed once per job
        self.keep = options.get("keep_samples", "all")
        self.fidelity = fidelity

    def draw(self, run: dict, denoiser):
        return draw_samples(run, denoiser, self.dataset.shape, self.dtype, self.device)

    @staticmethod
    def samples_of(samples):
        """What the run drew, for the job loop's divergence rule (runs.divergence)."""
        return samples

    def finish(self, run: dict, samples, folder: Path, scored: bool = True) -> dict:
        """The record's metrics and skipped fidelity metrics; none unless `scored` (a diverged run)."""
        samples = samples.detach().double().cpu()
        values, skipped = {}, {}
        if scored:
            generator = torch.Generator().manual_seed(run["seed"])
            values = metrics.sample_metrics(samples.flatten(1), self.dataset, self.reference.flatten(1),
                                            generator=generator, **self.metric_options)
            if self.fidelity is not None:
                fidelity_values, skipped = self.fidelity.evaluate(samples)
                values.update(fidelity_values)
        stored = samples[:kept(self.keep, len(samples))]
        if len(stored):
            io.write_arrays(folder / "samples.npz", x=stored.float().numpy())
        if len(stored) and self.dataset.is_image:
            from diffsweep.images import save_image_grid
            save_image_grid(stored[:64], folder / "grid.png")
        log.info("%s: %s", run["id"], " ".join(f"{k}={v:.4g}" for k, v in values.items()))
        return {"metrics": values, "skipped": skipped}
