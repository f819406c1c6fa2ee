"""Job bodies of the restoration rules, callable without Snakemake.

A restoration shard restores every run of one score source. Each run writes
results/restorations/<id>/: samples.npz (ground truths, measurements, restorations and, for
analytic priors, exact posterior means), operator.npz (its seeded mask or kernel), strip.png,
and run.json last (one row per measurement: metrics, NFE, time, status).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import torch

from diffsweep import io, jobs, restoration
from diffsweep.noise import make_schedule
from diffsweep.restoration import metrics as rmetrics
from diffsweep.restoration.posterior import exact_posterior
from diffsweep.restoration.restorers import Spectral

log = logging.getLogger("diffsweep")



@dataclass
class Scorers:
    """What a shard loads once to score every run: LPIPS (or why it is skipped) and the image-track
    FID/KID evaluator of the dataset (None when the dataset has no fidelity records)."""
    lpips: rmetrics.Lpips | None
    lpips_status: str
    fidelity: object = None     # diffsweep.fidelity.FidelityEvaluator


def restore_shard(model: dict, runs: list[dict], reference_path, checkpoint_path, results, shard_path,
                  metric_options: dict, strips: int = 4, device: str = "auto", fidelity_records=(),
                  fidelity_options=None, max_batch: int = 0) -> None:
    chosen = jobs.pick_device(device)
    data_dir = Path(reference_path).parent     # holds a fitted prior's cached fit
    denoiser, dtype = jobs.load_denoiser(model, checkpoint_path, chosen, data_dir, max_batch)
    dataset = jobs.build_dataset(model["data"], data_dir)
    reference = torch.from_numpy(io.read_arrays(reference_path)["x"])
    origin = jobs.provenance()
    lpips, lpips_status = rmetrics.Lpips.from_options(metric_options, dataset.is_image, chosen)
    if lpips is None:
        log.warning("LPIPS: %s", lpips_status)
    scorers = Scorers(lpips, lpips_status)
    if fidelity_records:
        from diffsweep.fidelity import FidelityEvaluator
        scorers.fidelity = FidelityEvaluator.from_records(fidelity_records, reference, fidelity_options,
                                                          Path(results) / "fidelity" / "cache", chosen)
    statuses, failures = {}, []
    for run in runs:
        try:
            statuses[run["id"]] = restore_run(run, denoiser, dataset, reference, dtype, chosen, results,
                                              metric_options, strips, origin, scorers)
        except Exception as error:  # one broken run must not lose the others
            log.exception("restoration %s failed", run["id"])
            failures.append(f"{run['id']}: {type(error).__name__}: {error}")
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(runs)} restorations failed (the others are saved):\n"
                           + "\n".join(failures))
    io.write_json(shard_path, {"model_id": model["id"], "runs": statuses})


def measure(run: dict, dataset, reference, generator):
    """(operator, ground truths, measurements): the first n_measurements reference rows, y = A x + s n."""
    family = restoration.get_operator(run["operator"])
    operator = family.build(dataset.shape, run["seed"], run["operator_params"])
    truth = reference[: run["n_measurements"]].double().reshape(-1, *dataset.shape)
    clean = operator.forward(truth)
    y = clean + run["noise_std"] * torch.randn(clean.shape, generator=generator, dtype=torch.float64)
    return operator, truth, y


def restore_run(run, denoiser, dataset, reference, dtype, device, results, metric_options, strips, origin,
                scorers: Scorers) -> str:
    spec = restoration.get(run["family"])
    generator = torch.Generator().manual_seed(run["seed"])
    operator, truth, y = measure(run, dataset, reference, generator)
    n, k = len(truth), run["n_samples"]
    sigmas = make_schedule(run["schedule"], run["steps"], **run["schedule_params"]).tolist()
    sampler_generator = torch.Generator(device=device).manual_seed(run["seed"])
    x = jobs.initial_sample(run["init"], sigmas[0], (n * k, *dataset.shape), sampler_generator, dtype, device)
    y_rows = y.repeat_interleave(k, dim=0).to(device, dtype)      # sample j * k + i restores measurement j
    counter = jobs.CountingDenoiser(denoiser)
    started = time.perf_counter()
    with torch.no_grad():
        samples, nfe = spec.fn(counter, x, sigmas, sampler_generator, operator, y_rows, run["noise_std"], **run["knobs"])
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - started
    if nfe != counter.calls:
        raise RuntimeError(f"restorer '{run['family']}' reported {nfe} network evaluations but made {counter.calls}")
    samples = samples.detach().double().cpu().reshape(n, k, *dataset.shape)
    status = "ok" if bool(torch.isfinite(samples).all()) else "diverged"

    run_values, run_skipped = {}, {}      # FID/KID of the run: all its restorations pooled, one set
    if status == "ok" and scorers.fidelity is not None:
        run_values, run_skipped = scorers.fidelity.evaluate(samples.reshape(n * k, *dataset.shape))

    rows, exact_means = [], []
    metric_generator = torch.Generator().manual_seed(run["seed"])
    for j in range(n):
        values = {}
        if status == "ok":
            values = rmetrics.measurement_metrics(samples[j], truth[j], y[j], operator, run["noise_std"])
            if scorers.lpips is not None:
                values["lpips"] = scorers.lpips(samples[j], truth[j:j + 1].expand_as(samples[j])).mean().item()
                values["lpips_of_mean"] = scorers.lpips(samples[j].mean(0, keepdim=True), truth[j:j + 1]).item()
            if dataset.mixture is not None:
                posterior = exact_posterior(dataset.mixture, operator.matrix(), y[j].flatten(), run["noise_std"])
                exact = posterior.sample(metric_options["posterior_samples"], metric_generator)
                values.update(rmetrics.posterior_metrics(samples[j], posterior, truth[j], exact, metric_generator))
                exact_means.append(posterior.mean().reshape(dataset.shape))
        rows.append({"measurement": j, "status": status, "nfe": nfe, "wall_s": wall, **values, **run_values,
                     "lpips_status": scorers.lpips_status,
                     **{f"{name}_status": why for name, why in run_skipped.items()}})

    folder = Path(results) / "restorations" / run["id"]
    arrays = {"truth": truth.float().numpy(), "y": y.float().numpy(), "samples": samples.float().numpy()}
    if exact_means:
        arrays["posterior_mean"] = torch.stack(exact_means).float().numpy()
    io.write_arrays(folder / "samples.npz", **arrays)
    io.write_arrays(folder / "operator.npz", **operator.arrays())
    if strips and dataset.is_image:
        save_strip(operator, y[:strips], samples[:strips], exact_means[:strips] or None, truth[:strips],
                   folder / "strip.png")
    record = {"run_id": run["id"], "status": status, "nfe": nfe, "wall_s": wall, "device": str(device),
              "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"), "measurements": rows,
              "row": run["row"], "params": run["params"], "provenance": origin}
    io.write_json(folder / "run.json", record)  # written last: its presence marks the run done
    log.info("restoration %s: %s, nfe %d, %.2f s, psnr %s", run["id"], status, nfe, wall,
             [round(r.get("psnr", float("nan")), 2) for r in rows])
    return status


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


def restoration_table(manifest_rows: list[dict], results):
    """One row per run and measurement: every resolved parameter, metrics, NFE, time, status."""
    from diffsweep.tables import columns_of, typed_frame, with_params
    rows = []
    for row in manifest_rows:
        path = Path(results) / "restorations" / row["run_id"] / "run.json"
        if not path.exists():
            rows.append({**row, "status": "missing"})
            continue
        record = io.read_json(path)
        git_revision = record["provenance"].get("git_revision")
        rows.extend({**row, **measurement, "git_revision": git_revision} for measurement in record["measurements"])
    return with_params(typed_frame(rows, first=list(manifest_rows[0]) if manifest_rows else []),
                       columns_of(manifest_rows))
