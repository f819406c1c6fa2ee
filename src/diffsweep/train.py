"""Training template (docs/design.md): L = E[w(sigma) ||x - D_theta(x + sigma n, sigma)||^2].

The sigma-distribution, the weight and the parametrisation are independent knobs of a
recipe, so the same code trains a DDPM-style eps model, an NCSN-style VE model or an EDM
model. The EMA weights are what sampling uses.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import signal
import threading
import time
from pathlib import Path

import torch

from diffsweep import io, noise
from diffsweep.models import build_denoiser

LOG_COLUMNS = ["step", "loss", "loss_ema", "lr", "sigma_median", "wall_s"]
RESUME_FORMAT = 2

log = logging.getLogger("diffsweep")


class TrainingInterrupted(RuntimeError):
    """SIGTERM arrived (preemption, time limit, scancel): the state was saved, rerun to resume."""

    def __init__(self, signum: int, step: int, path):
        super().__init__(f"training stopped by signal {signal.Signals(signum).name} after step {step}; "
                         f"state saved to {path}, a re-run resumes from it")
        self.signum, self.step, self.path = signum, step, path


class _StopOnSignal:
    """Turn SIGTERM into a flag the training loop checks between steps (so the saved state is
    always that of a finished step). Only the main thread can install signal handlers; elsewhere
    this does nothing."""

    SIGNALS = (signal.SIGTERM,)

    def __init__(self, enabled: bool):
        self.enabled = enabled and threading.current_thread() is threading.main_thread()
        self.received, self._previous = None, {}

    def _handle(self, signum, frame):
        self.received = signum

    def __enter__(self):
        if self.enabled:
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False


def _fingerprint(data: torch.Tensor) -> str:
    return hashlib.sha256(data.contiguous().numpy().tobytes()).hexdigest()[:16]


def read_resume(path) -> dict | None:
    """The saved training state at `path`, or None if there is none."""
    if path is None or not Path(path).exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:   # torch's own messages span lines and advise unsafe loading
        raise ValueError(f"{path}: cannot be read as a saved training state ({type(error).__name__}); delete it "
                         f"to train from the start") from None


def resume_step(path, recipe: dict, data: torch.Tensor) -> int | None:
    """The step that `train(recipe, data, resume_path=path)` would continue from, or None."""
    state = read_resume(path)
    if state is None or _mismatch(state, recipe, _fingerprint(data.to(torch.float32))):
        return None
    return state["step"]


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for ema_param, param in zip(ema.parameters(), model.parameters()):
            ema_param.lerp_(param, 1.0 - decay)


def denoising_error(denoiser, x0, sigma, noise_draw):
    """Per-example ||x0 - D(x0 + sigma n, sigma)||^2 (mean over dimensions)."""
    s = sigma.reshape(-1, *([1] * (x0.ndim - 1)))
    denoised = denoiser(x0 + s * noise_draw, sigma)
    return (denoised.float() - x0).pow(2).flatten(1).mean(dim=1)


def denoising_loss(denoiser, x0, sigma, noise_draw, weight: str, sigma_data: float):
    """Per-example weighted loss w(sigma) * ||x0 - D(x0 + sigma n, sigma)||^2 (mean over dimensions)."""
    return noise.loss_weight(weight, sigma, sigma_data) * denoising_error(denoiser, x0, sigma, noise_draw)


# Training sigmas are binned on these log-spaced edges (plus one bin below and one above) for
# the loss-by-sigma log: where in noise level a recipe spends its capacity.
SIGMA_BIN_EDGES = [10.0 ** (k / 2) for k in range(-6, 5)]      # 1e-3 ... 1e2
BINNED_COLUMNS = ["step", "sigma_lo", "sigma_hi", "loss", "x0_mse", "count"]


class SigmaBins:
    """Running sums of the weighted loss and the plain denoising error per sigma bin."""

    def __init__(self, state=None):
        self.sums = state or {}

    def add(self, sigma, weighted, error):
        index = torch.bucketize(sigma.detach().float().cpu(), torch.tensor(SIGMA_BIN_EDGES))
        for b in index.unique().tolist():
            chosen = index == b
            loss, mse, count = self.sums.get(b, (0.0, 0.0, 0))
            self.sums[b] = (loss + weighted.detach().cpu()[chosen].sum().item(),
                            mse + error.detach().cpu()[chosen].sum().item(), count + int(chosen.sum()))

    def rows(self, step: int) -> list[dict]:
        """One row per non-empty bin (then the sums restart)."""
        edges = [0.0, *SIGMA_BIN_EDGES, float("inf")]
        rows = [{"step": step, "sigma_lo": edges[b], "sigma_hi": edges[b + 1], "loss": loss / count,
                 "x0_mse": mse / count, "count": count} for b, (loss, mse, count) in sorted(self.sums.items())]
        self.sums = {}
        return rows


def _accelerated(denoiser, device, amp: str, compile_model: bool):
    """(network to train through, autocast context factory, grad scaler): mixed precision and
    torch.compile act only on a GPU; on the CPU they are ignored (and said so)."""
    import contextlib

    on_gpu = torch.device(device).type == "cuda"
    if not on_gpu and (amp != "off" or compile_model):
        log.info("training.amp=%s / training.compile=%s act only on a GPU; training in float32 on %s",
                 amp, compile_model, device)
    if not on_gpu:
        return denoiser, contextlib.nullcontext, torch.amp.GradScaler("cpu", enabled=False)
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    network = torch.compile(denoiser) if compile_model else denoiser
    autocast = (lambda: torch.autocast("cuda", dtype=dtype)) if dtype else contextlib.nullcontext
    return network, autocast, torch.amp.GradScaler("cuda", enabled=amp == "fp16")


def train(recipe: dict, data: torch.Tensor, device="cpu", progress: bool = True, resume_path=None,
          checkpoint_every: int = 0, amp: str = "off", compile_model: bool = False):
    """Train a denoiser on `data` (n, d). Returns (ema denoiser, training log rows, loss-by-sigma rows).

    `recipe` is a resolved `trained` model entry of the config: arch, arch_params,
    parametrisation, sigma_data, train_sigma {name, knobs}, weight, steps, batch_size, lr,
    ema, grad_clip, seed, log_every.

    With `resume_path`, the state is saved there every `checkpoint_every` steps (0: only on
    SIGTERM) and, if the file exists, training continues from it; the caller deletes it once
    the final outputs are written. `amp` (off, bf16, fp16) and `compile_model` act only on a GPU.
    """
    from tqdm.auto import tqdm

    torch.manual_seed(recipe["seed"])  # parameter initialisation
    generator = torch.Generator().manual_seed(recipe["seed"])
    data = data.to(torch.float32)
    denoiser = build_denoiser(recipe, tuple(data.shape[1:])).to(device)
    ema = copy.deepcopy(denoiser).requires_grad_(False)
    optimiser = torch.optim.Adam(denoiser.parameters(), lr=recipe["lr"])
    train_sigma = recipe["train_sigma"]
    network, autocast, scaler = _accelerated(denoiser, device, amp, compile_model)

    rows, running, loss_ema, first, elapsed = [], [], None, 1, 0.0
    binned, bins = [], SigmaBins()
    fingerprint = _fingerprint(data) if resume_path is not None else None
    state = read_resume(resume_path)
    if state is not None:
        problem = _mismatch(state, recipe, fingerprint)
        if problem:
            log.warning("ignoring %s (%s): training from scratch", resume_path, problem)
        else:
            denoiser.load_state_dict(state["model"])
            ema.load_state_dict(state["ema"])
            optimiser.load_state_dict(state["optimiser"])
            generator.set_state(state["generator"])
            torch.set_rng_state(state["torch_rng"])
            rows, running, loss_ema = state["log"], state["running"], state["loss_ema"]
            binned, bins = state["binned"], SigmaBins(state["bins"])
            scaler.load_state_dict(state["scaler"])
            first, elapsed = state["step"] + 1, state["elapsed"]
            log.info("resuming training from step %d of %d (%s)", state["step"], recipe["steps"], resume_path)

    def save(step):
        with io.atomic_path(resume_path) as tmp:
            torch.save({"format": RESUME_FORMAT, "recipe": recipe, "data": fingerprint, "step": step,
                        "model": denoiser.state_dict(), "ema": ema.state_dict(), "optimiser": optimiser.state_dict(),
                        "generator": generator.get_state(), "torch_rng": torch.get_rng_state(),
                        "log": rows, "running": running, "loss_ema": loss_ema, "binned": binned,
                        "bins": bins.sums, "scaler": scaler.state_dict(),
                        "elapsed": elapsed + time.perf_counter() - started}, tmp)

    started = time.perf_counter()
    bar = tqdm(range(first, recipe["steps"] + 1), desc="train", disable=not progress, mininterval=2.0,
               initial=first - 1, total=recipe["steps"])
    with _StopOnSignal(enabled=resume_path is not None) as stop:
        for step in bar:
            index = torch.randint(0, data.shape[0], (recipe["batch_size"],), generator=generator)
            x0 = data[index].to(device)
            sigma = noise.sample_training_sigmas(train_sigma["name"], x0.shape[0], generator,
                                                 **train_sigma.get("knobs", {})).to(device, torch.float32)
            noise_draw = torch.randn(x0.shape, generator=generator).to(device)
            with autocast():
                error = denoising_error(network, x0, sigma, noise_draw)
            weighted = noise.loss_weight(recipe["weight"], sigma, recipe["sigma_data"]) * error
            loss = weighted.mean()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"training loss became {loss.item()} at step {step}; "
                                         f"lower lr or set grad_clip (recipe: {recipe})")
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if recipe["grad_clip"]:
                scaler.unscale_(optimiser)
                torch.nn.utils.clip_grad_norm_(denoiser.parameters(), recipe["grad_clip"])
            scaler.step(optimiser)
            scaler.update()
            _ema_update(ema, denoiser, recipe["ema"])

            running.append(loss.item())
            bins.add(sigma, weighted, error)
            if step % recipe["log_every"] == 0 or step == recipe["steps"]:
                mean_loss = sum(running) / len(running)
                loss_ema = mean_loss if loss_ema is None else 0.9 * loss_ema + 0.1 * mean_loss
                rows.append({"step": step, "loss": mean_loss, "loss_ema": loss_ema, "lr": recipe["lr"],
                             "sigma_median": sigma.median().item(),
                             "wall_s": elapsed + time.perf_counter() - started})
                binned.extend(bins.rows(step))
                bar.set_postfix(loss=f"{mean_loss:.4g}", refresh=False)
                running = []
            if stop.received is not None:
                save(step)
                raise TrainingInterrupted(stop.received, step, resume_path)
            if resume_path is not None and checkpoint_every and step % checkpoint_every == 0 \
                    and step < recipe["steps"]:
                save(step)
    return ema.eval(), rows, binned


def _mismatch(state: dict, recipe: dict, fingerprint: str) -> str | None:
    """Why a saved state cannot continue this training, or None if it can."""
    if state.get("format") != RESUME_FORMAT:
        return f"format {state.get('format')}, expected {RESUME_FORMAT}"
    if state["recipe"] != recipe:
        return "it was saved for another recipe"
    if state["data"] != fingerprint:
        return "it was saved for other training data"
    if state["step"] > recipe["steps"]:
        return f"it is at step {state['step']}, beyond the recipe's {recipe['steps']}"
    return None


def loss_by_sigma(denoiser, data: torch.Tensor, sigmas, seed: int = 0, weight: str = "x0", sigma_data: float = 1.0):
    """Held-out denoising error at fixed noise levels: one row per sigma (diagnostic table)."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    with torch.no_grad():
        for s in sigmas:
            x0 = data.to(torch.float32)
            sigma = torch.full((x0.shape[0],), float(s))
            draw = torch.randn(x0.shape, generator=generator)
            rows.append({"sigma": float(s),
                         "loss": denoising_loss(denoiser, x0, sigma, draw, weight, sigma_data).mean().item()})
    return rows
