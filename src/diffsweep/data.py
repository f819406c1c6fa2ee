"""Datasets: a registry of families with declared parameters, and their exact samplers.

The registry (`FAMILIES`, `resolve_dataset_params`, `is_analytic`) is plain data, so the
Snakefile checks dataset entries at parse time without importing torch; `make_dataset`
builds the sampler (and, for mixtures, the exact density from `diffsweep.gmm`) in a job.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from diffsweep.knobs import Knob, resolve_knobs

if TYPE_CHECKING:
    import torch

    from diffsweep.gmm import GaussianMixture


@dataclass(frozen=True, eq=False)
class Dataset:
    """A family instance: exact sampler plus, for mixtures, the exact density."""

    name: str                                  # family name, e.g. "gmm"
    dim: int
    mixture: GaussianMixture | None = None     # exact density / denoiser when known
    mode_centers: Any = field(default=None, repr=False)  # (K, d) tensor for mixtures
    params: dict = field(default_factory=dict)  # the resolved parameters, for the record
    sampler: Callable[[int, "torch.Generator"], "torch.Tensor"] = field(default=None, kw_only=True, repr=False)

    def sample(self, n: int, generator) -> "torch.Tensor":
        """Exact fresh samples, (n, dim) float64."""
        return self.sampler(n, generator)


@dataclass(frozen=True)
class DatasetFamily:
    name: str
    description: str
    analytic: bool            # a closed-form density and denoiser exist (the oracle applies)
    params: dict[str, Knob]
    build: Callable[..., Dataset]


GMM_PRESETS: dict[str, str] = {
    "ring8": "n_modes (default 8) equal-weight isotropic modes of std `std` (default 0.3) "
             "on a circle of radius `radius` (default 4.0)",
    "grid25": "5x5 grid of means at {-4,-2,0,2,4}^2 with unequal weights proportional to "
              "1 + (i + 2j) mod 5 and anisotropic covariances R(pi (i+j)/5) diag(0.3^2, 0.12^2) R^T",
}


RING_ONLY = ("n_modes", "radius", "std")


def _build_gmm(preset: str, scale: float, n_modes: int = 8, radius: float = 4.0, std: float = 0.3) -> Dataset:
    from diffsweep.gmm import GaussianMixture, grid25_mixture, ring_mixture

    mixture = ring_mixture(n_modes, radius, std) if preset == "ring8" else grid25_mixture()
    # Scaling x by c scales means by c and covariances by c^2.
    mixture = GaussianMixture(mixture.weights, scale * mixture.means, scale ** 2 * mixture.covariances)
    return Dataset(name="gmm", dim=mixture.dim, mixture=mixture, mode_centers=mixture.means.clone(),
                   params={"preset": preset, "scale": scale,
                           **({"n_modes": n_modes, "radius": radius, "std": std} if preset == "ring8" else {})},
                   sampler=lambda n, generator: mixture.sample(n, generator)[0])


def _build_swissroll(noise: float) -> Dataset:
    import torch

    def sample(n: int, generator) -> torch.Tensor:
        # sklearn's make_swiss_roll curve (t in [1.5 pi, 4.5 pi]), torch-seeded, outer radius 4.
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
        curve = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) * (4.0 / (4.5 * math.pi))
        return curve + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)

    return Dataset(name="swissroll", dim=2, params={"noise": noise}, sampler=sample)


def _build_checkerboard(squares: int, size: float) -> Dataset:
    import torch

    width = size / squares
    # Black squares have an even index sum; all have equal area, so pick one uniformly.
    black = torch.tensor([(i, j) for i in range(squares) for j in range(squares) if (i + j) % 2 == 0],
                         dtype=torch.float64)

    def sample(n: int, generator) -> torch.Tensor:
        which = torch.randint(len(black), (n,), generator=generator)
        offset = torch.rand(n, 2, generator=generator, dtype=torch.float64)
        return -size / 2 + (black[which] + offset) * width

    return Dataset(name="checkerboard", dim=2, params={"squares": squares, "size": size}, sampler=sample)


FAMILIES: dict[str, DatasetFamily] = {
    "gmm": DatasetFamily(
        "gmm", "2-D Gaussian mixture with exact noisy density, denoiser, score and sampling", True,
        {"preset": Knob("str", "ring8", "mixture preset", choices=tuple(GMM_PRESETS)),
         "scale": Knob("float", 1.0, "multiplies means and standard deviations", minimum=1e-12),
         "n_modes": Knob("int", 8, "ring8: number of modes", minimum=1),
         "radius": Knob("float", 4.0, "ring8: radius of the ring", minimum=1e-12),
         "std": Knob("float", 0.3, "ring8: standard deviation of each mode", minimum=1e-12)},
        _build_gmm),
    "swissroll": DatasetFamily(
        "swissroll", "2-D swiss roll spiral (outer radius 4) plus Gaussian noise; no closed form", False,
        {"noise": Knob("float", 0.25, "standard deviation of the added noise", minimum=0.0)},
        _build_swissroll),
    "checkerboard": DatasetFamily(
        "checkerboard", "2-D uniform density on the black squares of a board spanning [-size/2, size/2]^2; "
        "no closed form", False,
        {"squares": Knob("int", 4, "squares per side", minimum=1),
         "size": Knob("float", 8.0, "side length of the board", minimum=1e-12)},
        _build_checkerboard),
}


def family_names() -> list[str]:
    return sorted(FAMILIES)


def _family(family: str, where: str = "") -> DatasetFamily:
    if family not in FAMILIES:
        raise ValueError(f"{where and where + 'family: '}unknown dataset family {family!r}; allowed: {', '.join(family_names())}")
    return FAMILIES[family]


def resolve_dataset_params(family: str, params: dict, where: str = "") -> dict:
    """Parameters with defaults filled in; unknown families, names or values raise ValueError.
    `where` is the config path of the dataset entry (e.g. "datasets.ring8.")."""
    spec = _family(family, where)
    where = where and where + "params."
    resolved = resolve_knobs(spec.params, params or {}, f"dataset family '{family}'", where)
    if family == "gmm" and resolved["preset"] != "ring8":
        ring_only = sorted(k for k in RING_ONLY if k in (params or {}))
        if ring_only:
            raise ValueError(f"{where}parameters {ring_only} only apply to preset 'ring8'")
        resolved = {k: v for k, v in resolved.items() if k not in RING_ONLY}
    return resolved


def is_analytic(family: str) -> bool:
    return _family(family).analytic


def make_dataset(family: str, **params) -> Dataset:
    """Build a dataset by family name; unknown names or parameters raise ValueError."""
    return _family(family).build(**resolve_dataset_params(family, params))
