"""The architectures of trained networks (`models.<m>.arch`) and their parameters
(`models.<m>.arch_params`) as declared knobs, so a config is checked at parse time without
importing torch; diffsweep.models builds the networks (MLP, UNet) from the checked parameters.

Each entry's knobs are the keyword arguments of its network class, with the class's defaults
(tests/test_models.py compares them); `consistent(knobs)` names what the knobs cannot say
alone (a width the group normalisation cannot split), '' when the parameters fit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from diffsweep.knobs import Knob
from diffsweep.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class Architecture(Entry):
    consistent: Callable[[dict], str]   # consistent(resolved knobs) -> '' or why they do not fit together


ARCHITECTURES = Registry("architecture", Architecture)

# Widths, depths and counts far beyond any network these tracks train on one GPU, so a typo (an
# extra digit or three) is refused before hours of training or an allocation failure.
MAX_WIDTH = 65_536
MAX_LEVELS = 8


def check_params(arch: str, knobs: dict, where: str = "") -> dict:
    """The parameters of architecture `arch` with defaults filled in; an unknown key, a value of
    the wrong type or outside its range, or parameters that do not fit together raise ValueError
    naming `where` (e.g. 'models.mlp.arch_params.') and the key."""
    entry = ARCHITECTURES.get(arch, f"{where.removesuffix('arch_params.')}arch: ")
    resolved = entry.resolve_knobs(knobs, where=where)
    problem = entry.consistent(resolved)
    if problem:
        raise ValueError(f"{where.removesuffix('.')}: {problem}")
    return resolved


def _mlp_consistent(knobs: dict) -> str:
    if knobs["embedding"] % 2:   # cos and sin of embedding / 2 frequencies
        return f"embedding {knobs['embedding']} is odd; allowed: an even number (cos and sin of each frequency)"
    return ""


def _unet_consistent(knobs: dict) -> str:
    groups = knobs["norm_groups"]
    uneven = [width for width in knobs["channels"] if width % groups]
    if uneven:
        return (f"channels {knobs['channels']}: {uneven[0]} is not a multiple of norm_groups {groups} (group "
                f"normalisation splits every width into norm_groups groups)")
    return ""


ARCHITECTURES.add(Architecture(
    name="mlp", consistent=_mlp_consistent,
    description="SiLU MLP with a Fourier embedding of the noise level, for low-dimensional data",
    knobs={"hidden": Knob("int", 128, "width of each hidden layer", minimum=1, maximum=MAX_WIDTH),
           "depth": Knob("int", 3, "number of hidden layers", minimum=0, maximum=64),
           "embedding": Knob("int", 32, "size of the noise-level embedding (even)", minimum=0, maximum=MAX_WIDTH)}))
ARCHITECTURES.add(Architecture(
    name="unet", consistent=_unet_consistent,
    description="diffusers' UNet2DModel, for images (C, H, W)",
    knobs={"channels": Knob("list[int]", [32, 64], "output channels of each resolution level (a multiple of "
                            "norm_groups; a list of such lists sweeps)", minimum=1, maximum=MAX_WIDTH, min_items=1,
                            max_items=MAX_LEVELS),
           "layers_per_block": Knob("int", 1, "residual layers per level", minimum=1, maximum=16),
           "attention": Knob("bool", True, "self-attention at the coarsest level"),
           "norm_groups": Knob("int", 8, "groups of the group normalisation", minimum=1, maximum=MAX_WIDTH)}))
