"""Training template of DESIGN §1: L = E[w(sigma) ||x - D_theta(x + sigma n, sigma)||^2].

The sigma-distribution, the weight and the parametrisation are independent knobs of a
recipe, so the same code trains a DDPM-style eps model, an NCSN-style VE model or an EDM
model. The EMA weights are what sampling uses.
"""

from __future__ import annotations

import copy
import time

import torch

from diffsweep import noise
from diffsweep.models import build_denoiser

LOG_COLUMNS = ["step", "loss", "loss_ema", "lr", "sigma_median", "wall_s"]


def _ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    with torch.no_grad():
        for ema_param, param in zip(ema.parameters(), model.parameters()):
            ema_param.lerp_(param, 1.0 - decay)


def denoising_loss(denoiser, x0, sigma, noise_draw, weight: str, sigma_data: float):
    """Per-example weighted loss w(sigma) * ||x0 - D(x0 + sigma n, sigma)||^2 (mean over dimensions)."""
    s = sigma.reshape(-1, *([1] * (x0.ndim - 1)))
    denoised = denoiser(x0 + s * noise_draw, sigma)
    squared = (denoised - x0).pow(2).flatten(1).mean(dim=1)
    return noise.loss_weight(weight, sigma, sigma_data) * squared


def train(recipe: dict, data: torch.Tensor, device="cpu", progress: bool = True):
    """Train a denoiser on `data` (n, d). Returns (ema denoiser, training log rows).

    `recipe` is a resolved `trained` model entry of the config: arch, arch_params,
    parametrisation, sigma_data, train_sigma {name, params}, weight, steps, batch_size, lr,
    ema, grad_clip, seed, log_every.
    """
    from tqdm.auto import tqdm

    torch.manual_seed(recipe["seed"])  # parameter initialisation
    generator = torch.Generator().manual_seed(recipe["seed"])
    data = data.to(torch.float32)
    denoiser = build_denoiser(recipe, data.shape[1]).to(device)
    ema = copy.deepcopy(denoiser).requires_grad_(False)
    optimiser = torch.optim.Adam(denoiser.parameters(), lr=recipe["lr"])
    train_sigma = recipe["train_sigma"]

    log, running, started = [], [], time.perf_counter()
    loss_ema = None
    bar = tqdm(range(1, recipe["steps"] + 1), desc="train", disable=not progress, mininterval=2.0)
    for step in bar:
        index = torch.randint(0, data.shape[0], (recipe["batch_size"],), generator=generator)
        x0 = data[index].to(device)
        sigma = noise.sample_training_sigmas(train_sigma["name"], x0.shape[0], generator,
                                             **train_sigma.get("params", {})).to(device, torch.float32)
        noise_draw = torch.randn(x0.shape, generator=generator).to(device)
        loss = denoising_loss(denoiser, x0, sigma, noise_draw, recipe["weight"], recipe["sigma_data"]).mean()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"training loss became {loss.item()} at step {step}; "
                                     f"lower lr or set grad_clip (recipe: {recipe})")
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        if recipe["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(denoiser.parameters(), recipe["grad_clip"])
        optimiser.step()
        _ema_update(ema, denoiser, recipe["ema"])

        running.append(loss.item())
        if step % recipe["log_every"] == 0 or step == recipe["steps"]:
            mean_loss = sum(running) / len(running)
            loss_ema = mean_loss if loss_ema is None else 0.9 * loss_ema + 0.1 * mean_loss
            log.append({"step": step, "loss": mean_loss, "loss_ema": loss_ema, "lr": recipe["lr"],
                        "sigma_median": sigma.median().item(), "wall_s": time.perf_counter() - started})
            bar.set_postfix(loss=f"{mean_loss:.4g}", refresh=False)
            running = []
    return ema.eval(), log


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
