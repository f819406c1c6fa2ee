"""The bodies of the data, training and likelihood jobs, callable without Snakemake.

Rule scripts in scripts/ only unpack `snakemake.*` and call one function here (or, for a shard
of runs, diffsweep.runs.loop.run_shard). Every output is written atomically. Imports torch.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from diffsweep import io
from diffsweep.runs.source import build_dataset, load_denoiser, pick_device, provenance

log = logging.getLogger("diffsweep")


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
    from diffsweep import fingerprint, train
    from diffsweep.runs import code

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
    wall = rows[-1]["wall_s"] if rows else time.perf_counter() - started
    # the training code that made the weights (computed here, never trusted from the parse): in the
    # checkpoint and, first, in its note, which the parse reads without torch (runs.code)
    trained_by = fingerprint.training_fingerprint()
    code.write_training_note(checkpoint_path, trained_by, wall)
    with io.atomic_path(checkpoint_path) as tmp:
        torch.save({"recipe": recipe, "shape": tuple(x.shape[1:]), "ema": ema.cpu().state_dict(), "model_id": spec["id"],
                    "train_wall_s": wall, "resumed_from_step": resumed, "provenance": provenance(),
                    "code_train": trained_by.digest}, tmp)
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


