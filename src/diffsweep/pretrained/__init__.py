"""Pretrained score sources: public checkpoints in their original file layouts, as denoisers.

Two formats, each an architecture (our implementation, with upstream's parameter names) and
its published configuration:
- `adm_ffhq256`: the DPS FFHQ-256 VP model `ffhq_10m.pt` (guided-diffusion ADM UNet, learned
  variance, linear beta 1e-4..0.02 over 1000 steps), a plain state_dict.
- `ncsnpp_ffhq256`: score_sde's FFHQ-256 VE model `checkpoint_48.pth` (NCSN++ continuous,
  sigma 0.01..348, data in [0, 1]), a dict {'optimizer', 'model', 'ema', 'step'} whose 'model'
  keys carry DataParallel's 'module.' prefix and whose 'ema' holds shadow_params in the order
  of the trainable parameters.
A format's knobs are its architecture's keywords, with the published configuration as defaults
(`diffsweep list pretrained`); `arch` overrides some of them (smaller test networks), checked
like any knob at parse time; a checkpoint may carry its own overrides in a file beside it,
`<checkpoint>.arch.yaml` (`checkpoint_arch`, checked the same way), so a config names a small
network by its path alone. Files are read with
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
from diffsweep.knobs import Knob
from diffsweep.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class Format(Entry):
    """A checkpoint layout: the network, its published configuration (the defaults of its knobs,
    the architecture's keywords) and how to read the file."""
    consistent: Callable  # consistent(resolved arch) -> '' or why the keywords do not fit together
    channels_key: str     # the `arch` key holding the number of image channels
    network: Callable     # network(**arch) -> the raw network (torch imported inside)
    denoiser: Callable    # denoiser(net) -> the Denoiser D(x, sigma) in [-1, 1] VE coordinates
    read: Callable        # read(net, checkpoint, file, ema): load the file's weights into net, strictly
    layout: str           # what the file holds, named in every loading error


FORMATS = Registry("pretrained format", Format)   # filled at the end of this module


def format_names() -> list[str]:
    return FORMATS.names()


def resolve_arch(format: str, arch: dict | None = None, where: str = "") -> dict:
    """The architecture keywords of `format` with `arch` overriding some of them; an unknown
    key, a value of the wrong type or range, or keywords that do not fit together raise
    ValueError naming `where` (the entry, e.g. 'models.vp.') and `arch_params`."""
    entry = FORMATS.get(format, f"{where}format: ")
    resolved = entry.resolve_knobs(copy.deepcopy(arch or {}), where=f"{where}arch_params.")
    problem = entry.consistent(resolved)
    if problem:
        raise ValueError(f"{where}arch_params: {problem}")
    return resolved


ARCH_SUFFIX = ".arch.yaml"


def checkpoint_arch(format: str, checkpoint, where: str = "") -> dict:
    """The architecture keywords a checkpoint declares in the YAML mapping `<checkpoint>.arch.yaml`
    beside it ({} without that file), checked against `format`. Cheap, so the grid reads it at
    parse time; a config's `arch_params` override it."""
    from diffsweep.config import ConfigError, read_yaml

    sidecar = Path(str(checkpoint) + ARCH_SUFFIX).expanduser()
    if not sidecar.is_file():
        return {}
    try:   # the config files' strict reader: duplicate keys, size, depth and alias limits
        declared = read_yaml(sidecar)
    except ConfigError as error:
        raise ValueError(f"{where}checkpoint: cannot read '{sidecar}' ({'; '.join(error.problems)})") from None
    entry = FORMATS.get(format, f"{where}format: ")
    unknown = sorted(set(declared) - set(entry.knobs), key=str)
    if unknown:
        raise ValueError(f"{where}checkpoint: '{sidecar}' declares key(s) {unknown} that format '{format}' does not "
                         f"have (is `format` right?); allowed: {', '.join(entry.knobs)}")
    in_file = f"{where}checkpoint: '{sidecar}': "
    problem = entry.consistent(entry.resolve_knobs(declared, where=in_file))
    if problem:
        raise ValueError(in_file + problem)
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


# Bounds of the architecture keywords: far beyond any published network, so that a typo is
# refused at parse time rather than by an allocation failure in the job.
MAX_SIDE, MAX_WIDTH, MAX_LEVELS = 4096, 65_536, 8


def _image_knobs(channels_key: str) -> dict[str, Knob]:
    return {"image_size": Knob("int", 256, "side of the square images (halved once per level but the last)",
                               minimum=1, maximum=MAX_SIDE),
            channels_key: Knob("int", 3, "image channels", choices=(1, 3))}


def _levels(default: list, what: str) -> Knob:
    return Knob("list[int]", default, f"{what}, one per resolution level", minimum=1, maximum=64, min_items=1,
                max_items=MAX_LEVELS)


def _resolutions(default: list) -> Knob:
    return Knob("list[int]", default, "feature-map sides with self-attention", minimum=1, maximum=MAX_SIDE,
                min_items=0, max_items=MAX_LEVELS)


def _halvings(arch: dict, levels_key: str) -> str:
    """Why image_size cannot be halved between the levels ('' if it can)."""
    levels = len(arch[levels_key])
    if arch["image_size"] % 2 ** (levels - 1):
        return (f"image_size {arch['image_size']} cannot be halved {levels - 1} times (the {levels} levels of "
                f"{levels_key}); allowed: a multiple of {2 ** (levels - 1)}")
    return ""


def _adm_consistent(arch: dict) -> str:
    widths = [arch["model_channels"] * mult for mult in arch["channel_mult"]]
    if any(width % 32 for width in widths):   # GroupNorm32 everywhere
        return (f"model_channels {arch['model_channels']} x channel_mult {arch['channel_mult']} gives the widths "
                f"{widths}; allowed: multiples of 32 (every normalisation has 32 groups)")
    if arch["num_heads_upsample"] == 0:
        return "num_heads_upsample 0; allowed: -1 (num_heads) or a count >= 1"
    attention_ds = {arch["image_size"] // side for side in arch["attention_resolutions"]}
    attended = [width for level, width in enumerate(widths) if 2 ** level in attention_ds] + widths[-1:]
    head_channels = arch["num_head_channels"]
    for count in {arch["num_heads"], arch["num_heads"] if arch["num_heads_upsample"] == -1
                  else arch["num_heads_upsample"]}:
        for width in attended:
            heads = width // head_channels if head_channels > 0 else count
            if heads < 1 or width % heads:
                return (f"an attention layer of {width} channels cannot be split into heads of num_head_channels "
                        f"{head_channels} / num_heads {count}")
    return _halvings(arch, "channel_mult")


def _ncsnpp_consistent(arch: dict) -> str:
    nf, widths = arch["nf"], [arch["nf"] * mult for mult in arch["ch_mult"]]
    # Every group normalisation of NCSN++ (min(C // 4, 32) groups of C channels): the levels' widths
    # and, on the way up, each width plus the skip it is concatenated with.
    skips = [nf] + [width for level, width in enumerate(widths)
                    for _ in range(arch["num_res_blocks"] + (level < len(widths) - 1))]
    normalised, width = {nf, *widths}, widths[-1]
    for level in reversed(range(len(widths))):
        for _ in range(arch["num_res_blocks"] + 1):
            normalised.add(width + skips.pop())
            width = widths[level]
    uneven = sorted(c for c in normalised if c < 4 or c % min(c // 4, 32))
    if uneven:
        return (f"nf {nf} x ch_mult {arch['ch_mult']} gives a normalisation of {uneven[0]} channels, which "
                f"min({uneven[0]} // 4, 32) groups cannot split; allowed: nf a multiple of 32 (or of 4 below 32 "
                f"channels)")
    if not sum(arch["fir_kernel"]):
        return f"fir_kernel {arch['fir_kernel']} sums to 0; allowed: taps with a non-zero sum (it is normalised)"
    if arch["sigma_min"] >= arch["sigma_max"]:
        return f"sigma_min {arch['sigma_min']} is not below sigma_max {arch['sigma_max']}"
    return _halvings(arch, "ch_mult")


FORMATS.add(Format(
    name="adm_ffhq256", channels_key="in_channels", network=_adm_network, denoiser=_adm_denoiser, read=_read_adm,
    consistent=_adm_consistent,
    layout="a plain state_dict of the ADM UNet's weights (like DPS's ffhq_10m.pt)",
    description="DPS FFHQ-256 VP model ffhq_10m.pt (guided-diffusion ADM UNet, eps + learned variance)",
    knobs={
        **_image_knobs("in_channels"),
        "model_channels": Knob("int", 128, "base width (times each channel_mult: multiples of 32)", minimum=1,
                               maximum=MAX_WIDTH),
        "num_res_blocks": Knob("int", 1, "residual blocks per level", minimum=1, maximum=16),
        "channel_mult": _levels([1, 1, 2, 2, 4, 4], "width multipliers"),
        "attention_resolutions": _resolutions([16]),
        "num_heads": Knob("int", 4, "attention heads (where num_head_channels is -1)", minimum=1, maximum=1024),
        "num_head_channels": Knob("int", 64, "channels per attention head; -1: num_heads heads", minimum=-1,
                                  maximum=MAX_WIDTH),
        "num_heads_upsample": Knob("int", -1, "attention heads of the upsampling path; -1: num_heads", minimum=-1,
                                   maximum=1024),
        "use_scale_shift_norm": Knob("bool", True, "the time embedding scales and shifts the normalisation"),
        "resblock_updown": Knob("bool", True, "residual blocks resample (else plain convolutions)"),
        "learn_sigma": Knob("bool", True, "the network also outputs the variance interpolation"),
    }))
FORMATS.add(Format(
    name="ncsnpp_ffhq256", channels_key="channels", network=_ncsnpp_network, denoiser=_ncsnpp_denoiser,
    read=_read_ncsnpp, consistent=_ncsnpp_consistent,
    layout="score_sde's checkpoint dict {'optimizer', 'model', 'ema', 'step'} (like checkpoint_48.pth)",
    description="score_sde FFHQ-256 VE model checkpoint_48.pth (NCSN++ continuous, sigma 0.01..348, data in [0, 1])",
    knobs={
        **_image_knobs("channels"),
        "nf": Knob("int", 128, "base width (times each ch_mult)", minimum=1, maximum=MAX_WIDTH),
        "ch_mult": _levels([1, 1, 2, 2, 2, 2, 2], "width multipliers"),
        "num_res_blocks": Knob("int", 2, "residual blocks per level", minimum=1, maximum=16),
        "attn_resolutions": _resolutions([16]),
        "fourier_scale": Knob("float", 16.0, "scale of the Gaussian Fourier embedding of log sigma",
                              exclusive_minimum=0.0),
        "fir_kernel": Knob("list[float]", [1, 3, 3, 1], "taps of the FIR resampling filter", min_items=1,
                           max_items=16),
        "sigma_min": Knob("float", noise.VE_SIGMA_MIN, "smallest level of the (unused) discrete sigma table",
                          exclusive_minimum=0.0),
        "sigma_max": Knob("float", noise.VE_SIGMA_MAX, "largest level of the (unused) discrete sigma table",
                          exclusive_minimum=0.0),
        "num_scales": Knob("int", 2000, "length of the (unused) discrete sigma table the checkpoint stores",
                           minimum=1, maximum=100_000),
    }))
