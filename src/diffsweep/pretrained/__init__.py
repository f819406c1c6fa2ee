"""Pretrained score sources: public checkpoints in their original file layouts, as denoisers.

Two formats, each an architecture (our implementation, with upstream's parameter names) and
its published configuration:
- `adm_ffhq256`: the DPS FFHQ-256 VP model `ffhq_10m.pt` (guided-diffusion ADM UNet, learned
  variance, linear beta 1e-4..0.02 over 1000 steps), a plain state_dict.
- `ncsnpp_ffhq256`: score_sde's FFHQ-256 VE model `checkpoint_48.pth` (NCSN++ continuous,
  sigma 0.01..348, data in [0, 1]), a dict {'optimizer', 'model', 'ema', 'step'} whose 'model'
  keys carry DataParallel's 'module.' prefix and whose 'ema' holds shadow_params in the order
  of the trainable parameters.
`arch` overrides architecture keys of a format (smaller test networks); a checkpoint may carry
its own overrides in a file beside it, `<checkpoint>.arch.yaml` (`checkpoint_arch`), so a config
names a small network by its path alone. Files are read with
`weights_only=True`; a file that is missing, unreadable, of the other layout, or whose keys or
shapes do not match fails with one line naming the config key, the path, the expected format
and a few of the keys (diffsweep.checkpoints); nothing falls back to random weights. Torch is
imported only when a network is built, so the grid may read the format names at parse time.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from diffsweep import noise
from diffsweep.checkpoints import CheckpointError, CheckpointFile, describe
from diffsweep.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class Format(Entry):
    """A checkpoint layout: the network, its published configuration and how to read the file."""
    arch: dict            # keyword arguments of the architecture (`arch_params` override some)
    channels_key: str     # the `arch` key holding the number of image channels
    network: Callable     # network(**arch) -> the raw network (torch imported inside)
    denoiser: Callable    # denoiser(net) -> the Denoiser D(x, sigma) in [-1, 1] VE coordinates
    read: Callable        # read(net, checkpoint, file, ema): load the file's weights into net, strictly
    layout: str           # what the file holds, named in every loading error


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


ARCH_SUFFIX = ".arch.yaml"


def checkpoint_arch(format: str, checkpoint, where: str = "") -> dict:
    """The architecture keywords a checkpoint declares in the YAML mapping `<checkpoint>.arch.yaml`
    beside it ({} without that file), checked against `format`. Cheap, so the grid reads it at
    parse time; a config's `arch_params` override it."""
    import yaml

    sidecar = Path(str(checkpoint) + ARCH_SUFFIX).expanduser()
    if not sidecar.is_file():
        return {}
    try:
        declared = yaml.safe_load(sidecar.read_text())
    except (OSError, yaml.YAMLError) as error:
        raise ValueError(f"{where}checkpoint: cannot read '{sidecar}' ({' '.join(str(error).split())})") from None
    if not isinstance(declared, dict):
        raise ValueError(f"{where}checkpoint: '{sidecar}' must be a mapping of architecture keywords, "
                         f"got {type(declared).__name__}")
    unknown = sorted(set(declared) - set(FORMATS.get(format, f"{where}format: ").arch))
    if unknown:
        raise ValueError(f"{where}checkpoint: '{sidecar}' declares key(s) {unknown} that format '{format}' does not "
                         f"have (is `format` right?); allowed: {', '.join(FORMATS.get(format).arch)}")
    return declared


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


# Kept under its old name: a checkpoint whose content does not fit is one kind of CheckpointError.
CheckpointMismatch = CheckpointError


def expected_format(format: str) -> str:
    """'adm_ffhq256: a plain state_dict (like DPS's ffhq_10m.pt)': what loading errors expect."""
    return f"{format}: {FORMATS.get(format).layout}"


def _read_adm(net, checkpoint, file, ema: bool) -> None:
    # ffhq_10m.pt is a plain state_dict of the (already EMA) weights: `ema` has nothing to choose.
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict):
        raise file.error(f"is a wrapped checkpoint ({describe(checkpoint)}), not a plain state_dict")
    file.load_state(net, checkpoint)


def _read_ncsnpp(net, checkpoint, file, ema: bool) -> None:
    import torch

    if not (isinstance(checkpoint, dict) and isinstance(checkpoint.get("model"), dict)
            and isinstance(checkpoint.get("ema"), dict)):
        raise file.error(f"has no 'model' and 'ema' entries: it holds {describe(checkpoint)}")
    state = {str(key).removeprefix("module."): value for key, value in checkpoint["model"].items()}
    # The discrete sigma table is unused by the continuous forward and its length follows the
    # training run's num_scales: take the file's.
    sigmas = state.get("sigmas")
    if isinstance(sigmas, torch.Tensor) and sigmas.ndim == 1 and sigmas.shape != net.sigmas.shape:
        net.sigmas = torch.empty_like(sigmas)
    file.load_state(net, state)
    if not ema:
        return
    # score_sde's ExponentialMovingAverage.copy_to: shadow_params[i] -> i-th trainable parameter.
    trainable = [(name, p) for name, p in net.named_parameters() if p.requires_grad]
    shadow = checkpoint["ema"].get("shadow_params")
    if not isinstance(shadow, (list, tuple)) or len(shadow) != len(trainable):
        count = f"{len(shadow)} shadow params" if isinstance(shadow, (list, tuple)) else "no shadow_params list"
        raise file.error(f"has {count} in 'ema', the network has {len(trainable)} trainable parameters")
    with torch.no_grad():
        for (name, param), value in zip(trainable, shadow):
            if not isinstance(value, torch.Tensor) or param.shape != value.shape:
                raise file.error(f"has an ema shadow param for '{name}' of shape {list(getattr(value, 'shape', []))}, "
                                 f"the network's is {list(param.shape)}")
            param.copy_(value)


def checkpoint_file(format: str, path, where: str = "") -> CheckpointFile:
    """The checkpoint file of a pretrained entry; `.check()` is a cheap existence check for
    parse time, `.read()` loads it."""
    return CheckpointFile(Path(path), "pretrained checkpoint", expected_format(format), where)


def load_pretrained(format: str, path, *, arch: dict | None = None, ema: bool = True, device="cpu",
                    where: str = ""):
    """The Denoiser of a checkpoint file in `format`'s layout, in eval mode on `device`, with
    frozen weights. `ema` picks score_sde's EMA weights (default) or the raw 'model' weights;
    `where` is the config key path of the entry ("models.vp."), named in every loading error.
    `arch` overrides the keywords the checkpoint declares beside it (`checkpoint_arch`)."""
    resolved = resolve_arch(format, {**checkpoint_arch(format, path, where), **(arch or {})}, where)
    file = checkpoint_file(format, path, where)
    checkpoint = file.read()
    net = build_network(format, resolved)
    FORMATS.get(format).read(net, checkpoint, file, ema)
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
    layout="a plain state_dict of the ADM UNet's weights (like DPS's ffhq_10m.pt)",
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
    layout="score_sde's checkpoint dict {'optimizer', 'model', 'ema', 'step'} (like checkpoint_48.pth)",
    description="score_sde FFHQ-256 VE model checkpoint_48.pth (NCSN++ continuous, sigma 0.01..348, data in [0, 1])",
    arch={
        "image_size": 256, "channels": 3, "nf": 128, "ch_mult": [1, 1, 2, 2, 2, 2, 2], "num_res_blocks": 2,
        "attn_resolutions": [16], "fourier_scale": 16.0, "fir_kernel": [1, 3, 3, 1],
        "sigma_min": noise.VE_SIGMA_MIN, "sigma_max": noise.VE_SIGMA_MAX, "num_scales": 2000,
    }))
