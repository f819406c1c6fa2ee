"""Pretrained score sources: public checkpoints in their original file layouts, as denoisers.

Two formats, each an architecture (our implementation, with upstream's parameter names) and
its published configuration:
- `adm_ffhq256`: the DPS FFHQ-256 VP model `ffhq_10m.pt` (guided-diffusion ADM UNet, learned
  variance, linear beta 1e-4..0.02 over 1000 steps), a plain state_dict.
- `ncsnpp_ffhq256`: score_sde's FFHQ-256 VE model `checkpoint_48.pth` (NCSN++ continuous,
  sigma 0.01..348, data in [0, 1]), a dict {'optimizer', 'model', 'ema', 'step'} whose 'model'
  keys carry DataParallel's 'module.' prefix and whose 'ema' holds shadow_params in the order
  of the trainable parameters.
`arch` overrides architecture keys of a format (smaller test networks). A file whose keys or
shapes do not match fails naming them; nothing falls back to random weights. Torch is imported
only when a network is built, so the grid may read the format names at parse time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from diffsweep import noise
from diffsweep.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class Format(Entry):
    """A checkpoint layout: the network, its published configuration and how to read the file."""
    arch: dict            # keyword arguments of the architecture (`arch_params` override some)
    channels_key: str     # the `arch` key holding the number of image channels
    network: Callable     # network(**arch) -> the raw network (torch imported inside)
    denoiser: Callable    # denoiser(net) -> the Denoiser D(x, sigma) in [-1, 1] VE coordinates
    read: Callable        # read(net, checkpoint, path, ema): load the file's weights into net, strictly


FORMATS = Registry("pretrained format", Format)   # filled at the end of this module


def format_names() -> list[str]:
    return FORMATS.names()


def resolve_arch(format: str, arch: dict | None = None, where: str = "") -> dict:
    """The architecture keywords of `format` with `arch` overriding some of them."""
    resolved = copy.deepcopy(FORMATS.get(format, f"{where}format: ").arch)
    unknown = sorted(set(arch or {}) - set(resolved))
    if unknown:
        raise ValueError(f"{where}arch_params: unknown key(s) {unknown} for format '{format}'; "
                         f"allowed: {', '.join(resolved)}")
    resolved.update(copy.deepcopy(arch or {}))
    return resolved


def image_shape(format: str, arch: dict | None = None) -> tuple[int, int]:
    """(channels, side) of the square images the network of `format` takes."""
    resolved = resolve_arch(format, arch)
    return resolved[FORMATS.get(format).channels_key], resolved["image_size"]


def build_network(format: str, arch: dict | None = None):
    """The raw network of a format (random weights); build under `torch.device('meta')` to
    inspect a full-size one without allocating it."""
    return FORMATS.get(format).network(**resolve_arch(format, arch))


def wrap_denoiser(format: str, net):
    """The Denoiser D(x, sigma) in [-1, 1] VE coordinates around a format's raw network."""
    return FORMATS.get(format).denoiser(net)


class CheckpointMismatch(ValueError):
    """A checkpoint file that does not hold the weights of the configured network."""


def _load_strict(net, state: dict, path) -> None:
    expected, found = set(net.state_dict()), set(state)
    missing, unexpected = sorted(expected - found), sorted(found - expected)
    if missing or unexpected:
        raise CheckpointMismatch(
            f"{path} does not match the network: {len(missing)} missing key(s) {_preview(missing)}, "
            f"{len(unexpected)} unexpected key(s) {_preview(unexpected)}")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as error:  # shape mismatches
        raise CheckpointMismatch(f"{path} does not match the network: {error}") from None


def _preview(keys: list[str], count: int = 8) -> str:
    return str(keys[:count])[:-1] + (", ...]" if len(keys) > count else "]")


def _read_adm(net, checkpoint: dict, path, ema: bool) -> None:
    # ffhq_10m.pt is a plain state_dict of the (already EMA) weights: `ema` has nothing to choose.
    if "model" in checkpoint and isinstance(checkpoint["model"], dict):
        raise CheckpointMismatch(f"{path} is a wrapped checkpoint (keys {sorted(checkpoint)[:6]}); the adm formats "
                                 "expect a plain state_dict such as ffhq_10m.pt")
    _load_strict(net, checkpoint, path)


def _read_ncsnpp(net, checkpoint: dict, path, ema: bool) -> None:
    import torch

    for key in ("model", "ema"):
        if key not in checkpoint:
            raise CheckpointMismatch(f"{path} has no '{key}' entry (top-level keys {sorted(checkpoint)}); the ncsnpp "
                                     "formats expect score_sde's checkpoint dict {'optimizer', 'model', 'ema', 'step'}")
    state = {key.removeprefix("module."): value for key, value in checkpoint["model"].items()}
    # The discrete sigma table is unused by the continuous forward and its length follows the
    # training run's num_scales: take the file's.
    if "sigmas" in state and state["sigmas"].shape != net.sigmas.shape:
        net.sigmas = torch.empty_like(state["sigmas"])
    _load_strict(net, state, path)
    if not ema:
        return
    # score_sde's ExponentialMovingAverage.copy_to: shadow_params[i] -> i-th trainable parameter.
    trainable = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
    shadow = checkpoint["ema"]["shadow_params"]
    if len(shadow) != len(trainable):
        raise CheckpointMismatch(f"{path}: ema holds {len(shadow)} shadow params, the network has "
                                 f"{len(trainable)} trainable parameters")
    with torch.no_grad():
        for (name, param), value in zip(trainable, shadow):
            if param.shape != value.shape:
                raise CheckpointMismatch(f"{path}: ema shadow param for '{name}' has shape {tuple(value.shape)}, "
                                         f"expected {tuple(param.shape)}")
            param.copy_(value)


def load_pretrained(format: str, path, *, arch: dict | None = None, ema: bool = True, device="cpu",
                    where: str = ""):
    """The Denoiser of a checkpoint file in `format`'s layout, in eval mode on `device`, with
    frozen weights. `ema` picks score_sde's EMA weights (default) or the raw 'model' weights;
    `where` is the config key path of the entry, named in the error for a missing file."""
    import torch

    resolved = resolve_arch(format, arch, where)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{where}checkpoint: pretrained checkpoint '{path}' not found "
                                f"({FORMATS.get(format).description})")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict):
        raise CheckpointMismatch(f"{path} holds a {type(checkpoint).__name__}, not a state dict")
    net = build_network(format, resolved)
    FORMATS.get(format).read(net, checkpoint, path, ema)
    denoiser = wrap_denoiser(format, net).to(device).eval()
    denoiser.requires_grad_(False)
    return denoiser


# --- the formats ---------------------------------------------------------------------------

def _adm_network(**arch):
    from diffsweep.pretrained.adm import ADMUNet
    return ADMUNet(**arch)


def _adm_denoiser(net):
    from diffsweep.pretrained.adm import ADMDenoiser
    return ADMDenoiser(net)


def _ncsnpp_network(**arch):
    from diffsweep.pretrained.ncsnpp import NCSNpp
    return NCSNpp(**arch)


def _ncsnpp_denoiser(net):
    from diffsweep.pretrained.ncsnpp import NCSNppDenoiser
    return NCSNppDenoiser(net)


FORMATS.add(Format(
    name="adm_ffhq256", channels_key="in_channels", network=_adm_network, denoiser=_adm_denoiser, read=_read_adm,
    description="DPS FFHQ-256 VP model ffhq_10m.pt (guided-diffusion ADM UNet, eps + learned variance)",
    arch={
        "image_size": 256, "in_channels": 3, "model_channels": 128, "num_res_blocks": 1,
        "channel_mult": [1, 1, 2, 2, 4, 4], "attention_resolutions": [16], "num_heads": 4,
        "num_head_channels": 64, "num_heads_upsample": -1, "use_scale_shift_norm": True,
        "resblock_updown": True, "learn_sigma": True,
    }))
FORMATS.add(Format(
    name="ncsnpp_ffhq256", channels_key="channels", network=_ncsnpp_network, denoiser=_ncsnpp_denoiser,
    read=_read_ncsnpp,
    description="score_sde FFHQ-256 VE model checkpoint_48.pth (NCSN++ continuous, sigma 0.01..348, data in [0, 1])",
    arch={
        "image_size": 256, "channels": 3, "nf": 128, "ch_mult": [1, 1, 2, 2, 2, 2, 2], "num_res_blocks": 2,
        "attn_resolutions": [16], "fourier_scale": 16.0, "fir_kernel": [1, 3, 3, 1],
        "sigma_min": noise.VE_SIGMA_MIN, "sigma_max": noise.VE_SIGMA_MAX, "num_scales": 2000,
    }))
