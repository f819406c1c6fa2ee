"""Datasets: a registry of families with declared parameters, and their exact samplers.

The registry (`FAMILIES`, `resolve_dataset_params`, `is_analytic`) is plain data, so the
Snakefile checks dataset entries at parse time without importing torch; `make_dataset`
builds the sampler (and, for mixtures, the exact density from `diffsweep.gmm`) in a job.
A plugin adds a family with `FAMILIES.add(DatasetFamily(name=..., build=..., knobs=...))`.

Samples are float64 tensors shaped (n, *shape): (n, 2) for the 2-D sets, (n, C, H, W) for
images, which live in [-1, 1]. A mixture over images is a mixture over the flattened pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from diffsweep.knobs import Knob
from diffsweep.registry import Entry, Registry

if TYPE_CHECKING:
    import torch

    from diffsweep.gmm import GaussianMixture


@dataclass(frozen=True, eq=False)
class Dataset:
    """A family instance: exact sampler plus, for mixtures, the exact density."""

    name: str                                  # family name, e.g. "gmm"
    dim: int                                   # number of coordinates of one sample
    mixture: GaussianMixture | None = None     # exact density / denoiser (of flattened samples) when known
    mode_centers: Any = field(default=None, repr=False)  # (K, d) tensor for mixtures
    params: dict = field(default_factory=dict)  # the resolved parameters, for the record
    sampler: Callable[[int, "torch.Generator"], "torch.Tensor"] = field(default=None, kw_only=True, repr=False)
    shape: tuple = ()                          # shape of one sample; () means (dim,)

    def __post_init__(self):
        if not self.shape:
            object.__setattr__(self, "shape", (self.dim,))

    @property
    def is_image(self) -> bool:
        return len(self.shape) == 3

    def sample(self, n: int, generator) -> "torch.Tensor":
        """Exact fresh samples, (n, *shape) float64."""
        return self.sampler(n, generator)


@dataclass(frozen=True, kw_only=True)
class DatasetFamily(Entry):
    build: Callable[..., Dataset]   # build(**knobs) -> Dataset (torch imported inside)
    analytic: bool = False    # a closed-form density and denoiser exist (the oracle applies)
    image: bool = False       # samples are (C, H, W) images in [-1, 1]
    fitted: bool = False      # a prior fitted to data: `build` takes fit_path, where the fit is cached


FAMILIES = Registry("dataset family", DatasetFamily)


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


def load_digits(resolution: int, split: str, test_fraction: float, split_seed: int, with_labels: bool = False):
    """sklearn's 8x8 digits in [-1, 1] as (n, 1, R, R) float64, one fixed train/test split;
    resolution 16 is the 2x nearest-neighbour upscale. With `with_labels`, (images, labels)."""
    import numpy as np
    import torch
    from sklearn.datasets import load_digits as sklearn_digits

    digits = sklearn_digits()
    images = digits.images / 8.0 - 1.0        # pixel values 0..16
    order = np.random.default_rng(split_seed).permutation(len(images))
    n_test = int(round(test_fraction * len(images)))
    chosen = order[n_test:] if split == "train" else order[:n_test]
    x = torch.from_numpy(images[np.sort(chosen)]).unsqueeze(1)
    factor = resolution // 8
    if factor > 1:
        x = x.repeat_interleave(factor, dim=2).repeat_interleave(factor, dim=3)
    return (x, torch.from_numpy(digits.target[np.sort(chosen)])) if with_labels else x


def _draw_from(pool):
    """A sampler that draws rows of a finite pool: without replacement while it lasts."""
    import torch

    def sample(n: int, generator):
        if n <= len(pool):
            return pool[torch.randperm(len(pool), generator=generator)[:n]].clone()
        return pool[torch.randint(len(pool), (n,), generator=generator)].clone()
    return sample


def _build_digits(resolution: int, split: str, test_fraction: float, split_seed: int) -> Dataset:
    pool = load_digits(resolution, split, test_fraction, split_seed)
    return Dataset(name="digits", dim=pool[0].numel(), shape=tuple(pool.shape[1:]), sampler=_draw_from(pool),
                   params={"resolution": resolution, "split": split, "test_fraction": test_fraction,
                           "split_seed": split_seed})


def _build_digits_gmm(components: int, reg_covar: float, test_fraction: float, split_seed: int,
                      fit_seed: int, fit_path=None) -> Dataset:
    """A Gaussian mixture fitted to the digits' training split: an analytic 64-D image prior.
    With `fit_path` (results/data/<id>/prior.npz) the fit is read from there, or made and saved
    there, so the jobs of one dataset share one fit (EM takes seconds)."""
    from pathlib import Path

    import torch

    from diffsweep import io
    from diffsweep.gmm import GaussianMixture

    if fit_path is not None and Path(fit_path).exists():
        fit = io.read_arrays(fit_path)
    else:
        from sklearn.mixture import GaussianMixture as SklearnMixture

        pixels = load_digits(8, "train", test_fraction, split_seed).reshape(-1, 64).numpy()
        fitted = SklearnMixture(components, covariance_type="full", reg_covar=reg_covar, random_state=fit_seed,
                                max_iter=500).fit(pixels)
        fit = {"weights": fitted.weights_, "means": fitted.means_, "covariances": fitted.covariances_}
        if fit_path is not None:
            io.write_arrays(fit_path, **fit)
    mixture = GaussianMixture(*(torch.from_numpy(fit[key]) for key in ("weights", "means", "covariances")))
    shape = (1, 8, 8)
    return Dataset(name="digits_gmm", dim=64, shape=shape, mixture=mixture, mode_centers=mixture.means.clone(),
                   params={"components": components, "reg_covar": reg_covar, "test_fraction": test_fraction,
                           "split_seed": split_seed, "fit_seed": fit_seed},
                   sampler=lambda n, generator: mixture.sample(n, generator)[0].reshape(n, *shape))


def load_image_folder(path: str, resolution: int, channels: int, crop: str, limit: int):
    """A user's images (a folder of png/jpg, searched recursively, or an .npz with an `x` array of
    uint8 (n, H, W, C) or (n, C, H, W)) as (n, C, R, R) float64 in [-1, 1]."""
    from pathlib import Path

    import numpy as np
    import torch

    source = Path(path).expanduser()
    if not source.exists():
        raise FileNotFoundError(f"datasets: images path '{source}' does not exist "
                                f"(relative paths start at the working directory {Path.cwd()})")
    if source.suffix == ".npz":
        with np.load(source) as archive:
            if "x" not in archive.files:
                raise ValueError(f"{source}: no array 'x' in the .npz (found: {', '.join(archive.files)})")
            array = archive["x"]
        if array.ndim != 4:
            raise ValueError(f"{source}: 'x' must be (n, H, W, C) or (n, C, H, W), got shape {array.shape}")
        if array.shape[1] in (1, 3) and array.shape[-1] not in (1, 3):
            array = array.transpose(0, 2, 3, 1)
        images = [array[i] for i in range(len(array) if not limit else min(limit, len(array)))]
    else:
        from PIL import Image

        files = sorted(p for p in source.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if not files:
            raise ValueError(f"datasets: no .png/.jpg images under '{source}'")
        mode = "L" if channels == 1 else "RGB"
        images = [np.asarray(Image.open(f).convert(mode)) for f in (files[:limit] if limit else files)]
    batch = np.stack([_square(np.atleast_3d(image), resolution, crop) for image in images])
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).double() / 127.5 - 1.0
    if x.shape[1] != channels:
        raise ValueError(f"{source}: images have {x.shape[1]} channels, the dataset asks for {channels}")
    return x


def _square(image, resolution: int, crop: str):
    """Centre-crop to a square (crop = 'center') and resize to resolution x resolution (uint8 HWC)."""
    import numpy as np
    from PIL import Image

    height, width = image.shape[:2]
    if crop == "center":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        image = image[top:top + side, left:left + side]
    squeeze = image.shape[2] == 1
    picture = Image.fromarray(image[:, :, 0] if squeeze else image)
    if picture.size != (resolution, resolution):
        picture = picture.resize((resolution, resolution), Image.BICUBIC)
    return np.atleast_3d(np.asarray(picture, dtype=np.uint8))


def _build_images(path: str, resolution: int, channels: int, crop: str, limit: int) -> Dataset:
    pool = load_image_folder(path, resolution, channels, crop, limit)
    return Dataset(name="images", dim=pool[0].numel(), shape=tuple(pool.shape[1:]), sampler=_draw_from(pool),
                   params={"path": path, "resolution": resolution, "channels": channels, "crop": crop,
                           "limit": limit})


SPLIT_KNOBS = {
    "test_fraction": Knob("float", 0.2, "fraction of the 1797 digits held out as the test split",
                          minimum=0.0, maximum=0.9),
    "split_seed": Knob("int", 0, "seed of the fixed train/test permutation", minimum=0),
}

for _family in [
    DatasetFamily(
        name="gmm", build=_build_gmm, analytic=True,
        description="2-D Gaussian mixture with exact noisy density, denoiser, score and sampling",
        knobs={"preset": Knob("str", "ring8", "mixture preset", choices=tuple(GMM_PRESETS)),
               "scale": Knob("float", 1.0, "multiplies means and standard deviations", minimum=1e-12),
               "n_modes": Knob("int", 8, "ring8: number of modes", minimum=1),
               "radius": Knob("float", 4.0, "ring8: radius of the ring", minimum=1e-12),
               "std": Knob("float", 0.3, "ring8: standard deviation of each mode", minimum=1e-12)}),
    DatasetFamily(
        name="swissroll", build=_build_swissroll,
        description="2-D swiss roll spiral (outer radius 4) plus Gaussian noise; no closed form",
        knobs={"noise": Knob("float", 0.25, "standard deviation of the added noise", minimum=0.0)}),
    DatasetFamily(
        name="checkerboard", build=_build_checkerboard,
        description="2-D uniform density on the black squares of a board spanning [-size/2, size/2]^2; "
                    "no closed form",
        knobs={"squares": Knob("int", 4, "squares per side", minimum=1),
               "size": Knob("float", 8.0, "side length of the board", minimum=1e-12)}),
    DatasetFamily(
        name="digits", build=_build_digits, image=True,
        description="sklearn's 8x8 handwritten digits (1797, ships with scikit-learn) in [-1, 1]; fixed "
                    "train/test split; resolution 16 is a 2x upscale",
        knobs={"resolution": Knob("int", 8, "8 (native) or 16 (2x nearest-neighbour upscale)", choices=(8, 16)),
               "split": Knob("str", "train", "which split the dataset draws from", choices=("train", "test")),
               **SPLIT_KNOBS}),
    DatasetFamily(
        name="digits_gmm", build=_build_digits_gmm, analytic=True, image=True, fitted=True,
        description="a Gaussian mixture (full covariances) fitted to the digits' training split: an analytic "
                    "64-D image prior with exact denoiser and sampling",
        knobs={"components": Knob("int", 10, "mixture components", minimum=1),
               "reg_covar": Knob("float", 1e-3, "ridge added to each fitted covariance", minimum=0.0),
               **SPLIT_KNOBS,
               "fit_seed": Knob("int", 0, "seed of sklearn's EM initialisation", minimum=0)}),
    DatasetFamily(
        name="images", build=_build_images, image=True,
        description="a user's image folder (png/jpg, recursive) or .npz, centre-cropped and resized; e.g. FFHQ "
                    "or CIFAR-10 already on disk (nothing is downloaded)",
        knobs={"path": Knob("str", "", "folder or .npz file with the images"),
               "resolution": Knob("int", 64, "side of the square images after resizing", minimum=1),
               "channels": Knob("int", 3, "1 (grey) or 3 (RGB)", choices=(1, 3)),
               "crop": Knob("str", "center", "centre-crop to a square before resizing, or resize as is",
                            choices=("center", "none")),
               "limit": Knob("int", 0, "use only the first N images in sorted order (0: all)", minimum=0)}),
]:
    FAMILIES.add(_family)


def family_names() -> list[str]:
    return FAMILIES.names()


def resolve_dataset_params(family: str, params: dict, where: str = "") -> dict:
    """Parameters with defaults filled in; unknown families, names or values raise ValueError.
    `where` is the config path of the dataset entry (e.g. "datasets.ring8.")."""
    spec = FAMILIES.get(family, where and where + "family: ")
    where = where and where + "params."
    resolved = spec.resolve_knobs(params, where)
    if family == "gmm" and resolved["preset"] != "ring8":
        ring_only = sorted(k for k in RING_ONLY if k in (params or {}))
        if ring_only:
            raise ValueError(f"{where}parameters {ring_only} only apply to preset 'ring8'")
        resolved = {k: v for k, v in resolved.items() if k not in RING_ONLY}
    return resolved


def is_analytic(family: str) -> bool:
    return FAMILIES.get(family).analytic


def is_image(family: str) -> bool:
    return FAMILIES.get(family).image


def make_dataset(family: str, fit_path=None, **params) -> Dataset:
    """Build a dataset by family name; unknown names or parameters raise ValueError. A fitted
    prior (digits_gmm) caches its fit at `fit_path` when one is given."""
    spec = FAMILIES.get(family)
    params = resolve_dataset_params(family, params)
    return spec.build(**params, fit_path=fit_path) if spec.fitted else spec.build(**params)
