"""The restoration half of a shard job (diffsweep.runs.loop.run_shard).

A restoration run measures the first n_measurements reference samples (y = A x + noise), restores
each n_samples times and scores the restorations. It stores (in its shard's archive) samples.npz
(ground truths, measurements, the first `restoration.keep_samples` restorations of each
measurement and, for analytic priors, exact posterior means), operator.npz (its seeded mask or
kernel) and strip.png; with keep_samples `none` only the strip. Its record has one entry per
measurement under `measurements` (metrics, NFE, time, status), computed on every restoration.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from diffsweep import io, restoration
from diffsweep.noise import make_schedule
from diffsweep.restoration import metrics as rmetrics
from diffsweep.restoration.operators import measurement_noise_std
from diffsweep.restoration.posterior import exact_posterior
from diffsweep.restoration.restorers import Spectral
from diffsweep.runs.records import NoSamples
from diffsweep.runs.source import call_counted, initial_sample
from diffsweep.runs.store import kept
from diffsweep.samplers.randomness import RESTORATION_BLOCK, SampleStreams

log = logging.getLogger("diffsweep")


class Restoration:
    """Measure and restore (`draw`), then score and save (`finish`). Loads LPIPS once per job;
    `fidelity` is the dataset's FID/KID evaluator (None without fidelity records)."""
    def __init__(self, dataset, reference, dtype, device, options: dict, fidelity=None):
        self.dataset, self.reference, self.dtype, self.device = dataset, reference, dtype, device
        self.metric_options, self.strips = options["metrics"], options["strips"]
        self.keep = options.get("keep_samples", "all")
        self.fidelity = fidelity
        self.lpips, self.lpips_status = rmetrics.Lpips.from_options(self.metric_options, dataset.is_image, device)
        if self.lpips is None:
            log.warning("LPIPS: %s", self.lpips_status)

    def draw(self, run: dict, denoiser):
        """((operator, truth, y, samples), reported nfe, counted nfe, seconds)."""
        operator, truth, y = measure(run, self.dataset, self.reference, torch.Generator().manual_seed(run["seed"]))
        samples, nfe, counted, wall = restore(run, denoiser, operator, y, self.dataset.shape, self.dtype, self.device)
        return (operator, truth, y, samples), nfe, counted, wall

    def reload(self, run: dict, arrays: dict):
        """What `draw` drew, from the run's stored samples.npz (records.read_run_arrays): the operator,
        ground truths and measurements measured again (seeded, no network call) and checked against
        the stored ones; NoSamples unless every restoration was kept (metrics need them all)."""
        operator, truth, y = measure(run, self.dataset, self.reference, torch.Generator().manual_seed(run["seed"]))
        samples = arrays["samples"]
        if samples.shape[1] < run["n_samples"]:
            raise NoSamples(f"it stored {samples.shape[1]} of its {run['n_samples']} restorations per measurement "
                            f"(keep_samples)")
        for name, value in (("truth", truth), ("y", y)):
            if not torch.allclose(torch.from_numpy(arrays[name]).double(), value, rtol=1e-5, atol=1e-5):
                raise NoSamples(f"its stored {name} differs from the one measured now")
        return operator, truth, y, torch.from_numpy(samples).reshape(-1, *samples.shape[2:])

    @staticmethod
    def samples_of(output):
        """The restorations, for the job loop's divergence rule (runs.loop.divergence)."""
        return output[3]

    def finish(self, run: dict, output, folder: Path, scored: bool = True) -> dict:
        """The record's `measurements`: one entry per measurement, with metrics unless not `scored`
        (a diverged run)."""
        operator, truth, y, samples = output
        task, shape = run["task"], self.dataset.shape
        n, k = len(truth), run["n_samples"]
        samples = samples.detach().double().cpu().reshape(n, k, *shape)
        run_values, run_skipped = {}, {}      # FID/KID of the run: all its restorations pooled, one set
        if scored and self.fidelity is not None:
            run_values, run_skipped = self.fidelity.evaluate(samples.reshape(n * k, *shape))

        rows, exact_means = [], []
        metric_generator = torch.Generator().manual_seed(run["seed"])
        noise_std = measurement_noise_std(operator, task["noise_std_effective"])
        drawn = {} if operator.drawn_noise_std is None else {"noise_std_drawn": noise_std}
        for j in range(n):
            values = {}
            if scored:
                values = rmetrics.measurement_metrics(samples[j], truth[j], y[j], operator.restrict(j), noise_std)
                if self.lpips is not None:
                    values.update(rmetrics.mean_and_se("lpips", self.lpips(samples[j],
                                                                           truth[j:j + 1].expand_as(samples[j]))))
                    values["lpips_of_mean"] = self.lpips(samples[j].mean(0, keepdim=True), truth[j:j + 1]).item()
                if self.dataset.mixture is not None:
                    posterior = exact_posterior(self.dataset.mixture, operator.restrict(j).matrix(), y[j].flatten(),
                                                noise_std)
                    exact = posterior.sample(self.metric_options["posterior_samples"], metric_generator)
                    values.update(rmetrics.posterior_metrics(
                        samples[j], posterior, truth[j], exact, metric_generator, seed=run["seed"],
                        floor_repeats=self.metric_options["floor_repeats"],
                        resamples=self.metric_options["bootstrap_resamples"]))
                    exact_means.append(posterior.mean().reshape(shape))
            rows.append({"measurement": j, **drawn, **values, **run_values, "lpips_status": self.lpips_status,
                         **{f"{name}_status": why for name, why in run_skipped.items()}})

        stored = kept(self.keep, k)
        if stored:
            arrays = {"truth": truth.float().numpy(), "y": y.float().numpy(), "samples": samples[:, :stored].float().numpy()}
            if exact_means:
                arrays["posterior_mean"] = torch.stack(exact_means).float().numpy()
            io.write_arrays(folder / "samples.npz", **arrays)
            io.write_arrays(folder / "operator.npz", **operator.arrays())
        if self.strips and self.dataset.is_image:
            save_strip(operator.restrict(slice(0, self.strips)), y[:self.strips], samples[:self.strips],
                       exact_means[:self.strips] or None, truth[:self.strips], folder / "strip.png")
        log.info("%s: psnr %s", run["id"], [round(r.get("psnr", float("nan")), 2) for r in rows])
        return {"measurements": rows}


def measure(run: dict, dataset, reference, generator):
    """(operator, ground truths, measurements): the first n_measurements reference rows (or the task's
    `images`), y = A x + s n."""
    task = run["task"]
    family = restoration.get_operator(task["operator"])
    if family.prior:      # a published problem: its own ground truth, observation and noise
        operator = family.build(dataset.shape, run["seed"], task["operator_knobs"])
        return operator, operator.problem.truth.reshape(1, *dataset.shape), operator.problem.y.reshape(1, -1)
    chosen = task.get("images") or slice(task["n_measurements"])    # given indices, or the first n
    truth = reference[chosen].double().reshape(-1, *dataset.shape)
    operator = family.build(dataset.shape, run["seed"], task["operator_knobs"]).for_measurements(len(truth))
    clean = operator.forward(truth)
    y = clean + measurement_noise_std(operator, task["noise_std_effective"]) * torch.randn(clean.shape, generator=generator, dtype=torch.float64)
    return operator, truth, y


def restore(run: dict, denoiser, operator, y, shape, dtype, device):
    """Restore every measurement n_samples times: (samples, reported nfe, counted nfe, seconds);
    sample j * n_samples + i restores measurement j."""
    spec = restoration.get(run["family"])
    k = run["n_samples"]
    sigmas = make_schedule(run["schedule"], run["steps"], **run["schedule_knobs"]).tolist()
    # per-sample streams, a group per measurement: restoration i of measurement j depends only on (seed, j, i);
    # the measurement noise (measure) and the operator's random parts (its seed) have generators of their own
    noise = SampleStreams(run["seed"], k, RESTORATION_BLOCK, device, stream="restorations", groups=len(y))
    x = initial_sample(run["init"], sigmas[0], (len(y) * k, *shape), noise, dtype, device, run.get("init_knobs"))
    y_rows = y.repeat_interleave(k, dim=0).to(device, dtype)
    rows = operator.restrict(torch.arange(len(y)).repeat_interleave(k))    # sample j * k + i measures image j
    return call_counted(spec.fn, denoiser, device, x, sigmas, noise, rows, y_rows,
                        measurement_noise_std(operator, run["task"]["noise_std_effective"]), **run["knobs"])


def save_strip(operator, y, samples, exact_means, truth, path) -> None:
    """One row per measurement: A^+ y | samples | posterior mean (exact if known, else empirical) | ground truth."""
    from PIL import Image

    from diffsweep.images import tile
    shown = Spectral(operator, y).pseudo_inverse(y)
    means = torch.stack(exact_means) if exact_means else samples.mean(1)
    rows = [torch.cat([shown[j:j + 1], samples[j].nan_to_num().clamp(-1, 1), means[j:j + 1], truth[j:j + 1]])
            for j in range(len(truth))]
    picture = Image.fromarray(tile(torch.cat(rows), columns=samples.shape[1] + 3))
    picture = picture.resize((picture.width * 4, picture.height * 4), Image.NEAREST)
    with io.atomic_path(path) as tmp:
        picture.save(tmp, format="PNG")
