"""The generation half of a shard job (diffsweep.runs.loop.run_shard): draw a run's samples with
its sampler preset point (`draw_samples`), then score them against the reference set and save
them (`Generation.finish`).

Imports torch; writes only into the run's staging folder.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from diffsweep import io, metrics, samplers, stats
from diffsweep.noise import make_schedule
from diffsweep.runs.records import NoSamples
from diffsweep.runs.source import call_counted, initial_sample
from diffsweep.runs.store import kept
from diffsweep.samplers.randomness import GENERATION_BLOCK, SampleStreams

log = logging.getLogger("diffsweep")

BOOTSTRAP_FILE = "bootstrap.npz"    # a run's bootstrap replicates, float32, one array per metric


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
    run's staging folder: the first `keep_samples` samples (metrics always see them all), and the
    bootstrap over samples of each distance (`bootstrap`): `<metric>_se` in the record, the
    replicates in bootstrap.npz."""
    def __init__(self, dataset, reference, dtype, device, options: dict, fidelity=None):
        self.dataset, self.reference, self.dtype, self.device = dataset, reference, dtype, device
        metric_options = dict(options["metrics"])
        self.resamples = metric_options.pop("bootstrap_resamples", stats.SAMPLE_RESAMPLES)
        self.metric_options = {**metric_options, "cache": {}}  # the reference's own terms, computed once per job
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
        values, skipped, replicates = {}, {}, {}
        if scored:
            generator = torch.Generator().manual_seed(run["seed"])
            values = metrics.sample_metrics(samples.flatten(1), self.dataset, self.reference.flatten(1),
                                            generator=generator, **self.metric_options)
            replicates = self.bootstrap(run, samples.flatten(1), values)
            values.update({f"{name}_se": float(r.std(ddof=1)) for name, r in replicates.items()})
            if self.fidelity is not None:
                fidelity_values, skipped = self.fidelity.evaluate(samples)
                values.update(fidelity_values)
        stored = samples[:kept(self.keep, len(samples))]
        if len(stored):
            io.write_arrays(folder / "samples.npz", x=stored.float().numpy())
        if replicates:      # for a later paired comparison of two runs (stats.compare_column's `sampling`)
            io.write_arrays(folder / BOOTSTRAP_FILE, **{name: r.astype("float32") for name, r in replicates.items()})
        if len(stored) and self.dataset.is_image:
            from diffsweep.images import save_image_grid
            save_image_grid(stored[:64], folder / "grid.png")
        log.info("%s: %s", run["id"], " ".join(f"{k}={v:.4g}" for k, v in values.items()))
        return {"metrics": values, "skipped": skipped}

    def bootstrap(self, run: dict, samples, values: dict | None = None) -> dict:
        """{metric: replicates} of the distances with a fast bootstrap (stats.sliced_w2_replicates,
        mmd_replicates, energy_distance_replicates), each with the settings and the seed of the run's
        metric: the same projections (drawn from the run's seed, as metrics.sample_metrics draws them),
        bandwidths and reference. The resamples are drawn from the run's seed too, so two runs that
        share a seed resample the same rows and their replicates are paired. `values`: the record's
        metrics, whose MMD and energy distance are not computed again. Empty when turned off (0)."""
        if not self.resamples:
            return {}
        options, reference, seed = self.metric_options, self.reference.flatten(1), run["seed"]
        values = values or {}
        directions = metrics.random_directions(options.get("n_projections", metrics.N_PROJECTIONS), samples.shape[1],
                                               torch.Generator().manual_seed(seed))
        estimates_and_replicates = {
            "sliced_w2": stats.sliced_w2_replicates(samples, reference, directions, self.resamples, seed),
            "mmd": stats.mmd_replicates(samples, reference, options.get("mmd_bandwidths", metrics.MMD_BANDWIDTHS),
                                        self.resamples, seed,
                                        cache=options["cache"], estimate=values.get("mmd")),
            "energy_distance": stats.energy_distance_replicates(samples, reference, self.resamples, seed,
                                                                cache=options["cache"],
                                                                estimate=values.get("energy_distance")),
        }
        return {name: replicates for name, (_, replicates) in estimates_and_replicates.items()}
