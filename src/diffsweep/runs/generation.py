"""The generation half of a shard job (diffsweep.runs.loop.run_shard): draw a run's samples with
its sampler preset point (`draw_samples`), then score them against the reference set and save
them (`Generation.finish`).

Imports torch; writes only into the run's staging folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from diffsweep import io, metrics, samplers
from diffsweep.noise import make_schedule
from diffsweep.runs.records import NoSamples
from diffsweep.runs.source import call_counted, initial_sample
from diffsweep.runs.store import kept
from diffsweep.samplers.randomness import GENERATION_BLOCK, SampleStreams

log = logging.getLogger("diffsweep")


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


class Generation:
    """The generation half of a shard job (diffsweep.runs.loop.run_shard): draw a run's samples, then
    score them against the reference set and save samples.npz (and grid.png for images) into the
    run's staging folder: the first `keep_samples` samples (metrics always see them all)."""
    def __init__(self, dataset, reference, dtype, device, options: dict, fidelity=None):
        self.dataset, self.reference, self.dtype, self.device = dataset, reference, dtype, device
        self.metric_options = {**options["metrics"], "cache": {}}  # the reference's own terms, computed once per job
        self.keep = options.get("keep_samples", "all")
        self.fidelity = fidelity

    def draw(self, run: dict, denoiser):
        return draw_samples(run, denoiser, self.dataset.shape, self.dtype, self.device)

    def reload(self, run: dict, arrays: dict):
        """What `draw` drew, from the run's stored samples.npz (records.read_run_arrays): NoSamples
        unless all were kept (metrics need every sample)."""
        stored = arrays["x"]
        if len(stored) < run["n_samples"]:
            raise NoSamples(f"it stored {len(stored)} of its {run['n_samples']} samples (keep_samples)")
        return torch.from_numpy(stored)

    @staticmethod
    def samples_of(samples):
        """What the run drew, for the job loop's divergence rule (runs.loop.divergence)."""
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
