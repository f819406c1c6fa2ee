"""Datasets: a registry of families with declared parameters, and their exact samplers.

The registry (`FAMILIES`, `resolve_dataset_knobs`, `is_analytic`) is plain data, so the
Snakefile checks dataset entries at parse time without importing torch; `make_dataset`
builds the sampler (and, for mixtures, the exact density from `diffsweep.gmm`) in a job.
A plugin adds a family with `FAMILIES.add(DatasetFamily(name=..., build=..., knobs=...))`.

Samples are float64 tensors shaped (n, *shape): (n, 2) for the 2-D sets, (n, C, H, W) for
images, which live in [-1, 1]. A mixture over images is a mixture over the flattened pixels.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from diffsweep.knobs import SEED_MAX, Knob
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
    knobs: dict = field(default_factory=dict)  # the resolved knobs, for the record
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
    required: tuple = ()      # knobs the config must give (non-empty); their declared default is never used
    check: Callable | None = None  # check(**knobs): a cheap look at the files the knobs name (DataFileError)

    def resolve_knobs(self, given: dict | None, where: str = "") -> dict:
        for key in self.required:
            if (given or {}).get(key) in (None, ""):
                raise ValueError(f"{where}{key}: required by dataset family '{self.name}': "
                                 f"{self.knobs[key].description}")
        return super().resolve_knobs(given, where)


FAMILIES = Registry("dataset family", DatasetFamily)


GMM_PRESETS: dict[str, str] = {
    "ring8": "n_modes (default 8) equal-weight isotropic modes of std `std` (default 0.3) "
             "on a circle of radius `radius` (default 4.0)",
    "grid25": "5x5 grid of means at {-4,-2,0,2,4}^2 with unequal weights proportional to "
              "1 + (i + 2j) mod 5 and anisotropic covariances R(pi (i+j)/5) diag(0.3^2, 0.12^2) R^T",
    "grid25_pairs": "the published benchmark's prior in `dim` (even) dimensions: 25 modes at {-16,-8,0,8,16}^2 "
                    "repeated over coordinate pairs, identity covariances, weights squared normals from `seed` "
                    "(27: the published one)",
    "random": "n_modes random modes in `dim` dimensions from `seed`: `separation` stds apart, covariances "
              "`covariance` (isotropic std^2, diagonal with stds in [std/spread, std], or lowrank: "
              "(std/spread)^2 I plus `rank` directions)",
    "npz": "a mixture read from the .npz `path`: weights (K,), means (K, d) and covariances (K, d, d), or "
           "variances (K, d), or variances and factors (K, d, r) (diag(variances) + factors factors^T)",
}

# The knobs each preset takes besides `preset` and `scale`: the others are refused when given and
# left out of the resolved knobs, so that the data ids of ring8 and grid25 stay what they were.
GMM_PRESET_KNOBS: dict[str, tuple] = {
    "ring8": ("n_modes", "radius", "std"),
    "grid25": (),
    "grid25_pairs": ("dim", "seed"),
    "random": ("dim", "n_modes", "seed", "covariance", "std", "spread", "rank", "separation"),
    "npz": ("path",),
}


def _build_gmm(preset: str, scale: float, **knobs) -> Dataset:
    import torch

    from diffsweep import gmm

    if preset == "ring8":
        mixture = gmm.ring_mixture(knobs["n_modes"], knobs["radius"], knobs["std"])
    elif preset == "grid25":
        mixture = gmm.grid25_mixture()
    elif preset == "grid25_pairs":
        mixture = gmm.grid25_pairs_mixture(knobs["dim"], gmm.grid25_pairs_weights(
            torch.Generator().manual_seed(knobs["seed"])))
    elif preset == "random":
        mixture = gmm.random_mixture(**knobs)
    else:
        mixture = read_mixture(knobs["path"])
    mixture = _scaled(mixture, scale)
    return Dataset(name="gmm", dim=mixture.dim, mixture=mixture, mode_centers=mixture.means.clone(),
                   knobs={"preset": preset, "scale": scale, **knobs},
                   sampler=lambda n, generator: mixture.sample(n, generator)[0])


def _scaled(mixture, scale: float):
    """The law of scale * x: means times scale, covariances times scale^2."""
    from diffsweep.gmm import GaussianMixture

    if scale == 1.0:
        return mixture
    if isinstance(mixture, GaussianMixture):
        return GaussianMixture(mixture.weights, scale * mixture.means, scale ** 2 * mixture.covariances)
    return mixture.scaled(scale)


MIXTURE_ARRAYS = ("weights", "means", "covariances", "variances", "factors")


def check_mixture_file(path: str, where: str = "path") -> dict:
    """The arrays' shapes of a mixture .npz, read from the headers only (cheap, for parse time);
    DataFileError naming `where` and the file unless it holds weights (K,), means (K, d) and
    either covariances (K, d, d), or variances (K, d) with optional factors (K, d, r)."""
    import zipfile
    from pathlib import Path

    import numpy as np

    source = Path(path).expanduser()
    if not source.is_file() or source.suffix != ".npz":
        raise DataFileError(f"{where}: '{path}' is not an .npz file" + ("" if source.exists() else " (it does not exist)"))
    shapes = {}
    try:
        with zipfile.ZipFile(source) as archive:
            for name in archive.namelist():
                key = name.removesuffix(".npy")
                with archive.open(name) as array:
                    version = np.lib.format.read_magic(array)
                    header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
                    shapes[key] = header(array)[0]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataFileError(f"{where}: cannot read '{path}' as .npz ({_one_line(error)})") from None
    unknown = sorted(set(shapes) - set(MIXTURE_ARRAYS))
    if unknown:
        raise DataFileError(f"{where}: '{path}' holds arrays {unknown}; a mixture file holds {', '.join(MIXTURE_ARRAYS)}")
    for key in ("weights", "means"):
        if key not in shapes:
            raise DataFileError(f"{where}: '{path}' lacks the array '{key}'")
    if ("covariances" in shapes) == ("variances" in shapes):
        raise DataFileError(f"{where}: '{path}' must hold either 'covariances' (K, d, d) or 'variances' (K, d)")
    if "factors" in shapes and "variances" not in shapes:
        raise DataFileError(f"{where}: '{path}': 'factors' go with 'variances' (diag(variances) + factors factors^T)")
    if len(shapes["weights"]) != 1 or len(shapes["means"]) != 2:
        raise DataFileError(f"{where}: '{path}': weights must be (K,) and means (K, d), got "
                            f"{shapes['weights']} and {shapes['means']}")
    k, d = shapes["means"]
    expected = {"weights": (k,), "covariances": (k, d, d), "variances": (k, d)}
    for key, shape in shapes.items():
        wanted = expected.get(key, (k, d, shape[-1] if shape else 0))
        if key != "means" and tuple(shape) != wanted:
            raise DataFileError(f"{where}: '{path}': '{key}' must have shape {wanted} (K = {k}, d = {d}), got {shape}")
    return shapes


def read_mixture(path: str, where: str = "path"):
    """The mixture an .npz holds (check_mixture_file): a GaussianMixture for full covariances, a
    StructuredMixture for variances (and factors). Bad values: DataFileError naming the file."""
    import numpy as np
    import torch

    from diffsweep.gmm import GaussianMixture, StructuredMixture

    check_mixture_file(path, where)
    with np.load(path, allow_pickle=False) as arrays:
        given = {key: torch.from_numpy(np.asarray(arrays[key], dtype=np.float64)) for key in arrays.files}
    try:
        if "covariances" in given:
            return GaussianMixture(given["weights"], given["means"], given["covariances"])
        return StructuredMixture(given["weights"], given["means"], given["variances"], given.get("factors"))
    except ValueError as error:
        raise DataFileError(f"{where}: '{path}': {error}") from None


def _build_swissroll(noise: float) -> Dataset:
    import torch

    def sample(n: int, generator) -> torch.Tensor:
        # sklearn's make_swiss_roll curve (t in [1.5 pi, 4.5 pi]), torch-seeded, outer radius 4.
        t = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator, dtype=torch.float64))
        curve = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=1) * (4.0 / (4.5 * math.pi))
        return curve + noise * torch.randn(n, 2, generator=generator, dtype=torch.float64)

    return Dataset(name="swissroll", dim=2, knobs={"noise": noise}, sampler=sample)


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

    return Dataset(name="checkerboard", dim=2, knobs={"squares": squares, "size": size}, sampler=sample)


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
                   knobs={"resolution": resolution, "split": split, "test_fraction": test_fraction,
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
                   knobs={"components": components, "reg_covar": reg_covar, "test_fraction": test_fraction,
                           "split_seed": split_seed, "fit_seed": fit_seed},
                   sampler=lambda n, generator: mixture.sample(n, generator)[0].reshape(n, *shape))


class DataFileError(ValueError):
    """A dataset's file or folder that cannot be read. The message starts with the key of the
    knob naming it ("path: ..."); `make_dataset` prefixes the dataset's config path."""


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
LUMA = (0.299, 0.587, 0.114)   # ITU-R BT.601 weights of R, G, B in a grey value (as Pillow's "L")


# Bounds of the search of an images folder (docs/images.md), which runs at parse time too: a path
# such as / or /proc must not walk a whole filesystem.
MAX_FOLDER_ENTRIES = 200_000                 # files and folders looked at, every level together
SPECIAL_FOLDERS = ("/proc", "/sys", "/dev")   # kernel filesystems: no images, endless entries


def check_image_source(path: str, where: str = "path") -> None:
    """Refuse a missing path, a folder without images (image_files' bounds), a file that is no
    .npz or a special file, in one line naming `where` (the key of the path) and the path. Cheap
    (no image is opened), so the workflow may call it at parse time."""
    from pathlib import Path

    source = Path(path).expanduser()
    if not source.exists():
        raise DataFileError(f"{where}: '{path}' does not exist (relative paths start at the working directory "
                            f"{Path.cwd()})")
    if source.is_file() and source.suffix != ".npz":
        raise DataFileError(f"{where}: '{path}' is a file but not an .npz; give a folder of images or an .npz file")
    if not source.is_file() and not source.is_dir():
        raise DataFileError(f"{where}: '{path}' is neither a folder nor a file (a device or a pipe?); give a folder "
                            f"of images or an .npz file")
    if source.is_dir() and not image_files(source, where, path):
        raise DataFileError(f"{where}: folder '{path}' holds no {'/'.join(IMAGE_SUFFIXES)} images "
                            "(searched recursively)")


def image_files(folder, where: str = "path", shown: str | None = None) -> list:
    """The image files in `folder` and its subfolders, sorted. Symbolic links to folders are not
    followed. Refused in one line naming `where` and the folder (`shown`, as the config wrote
    it): a special folder (SPECIAL_FOLDERS), a subfolder on another filesystem (a mount point),
    more than MAX_FOLDER_ENTRIES files and folders, a folder that cannot be read."""
    import os
    from pathlib import Path

    folder = Path(folder)
    shown = shown or str(folder)
    real = os.path.realpath(folder)
    special = next((name for name in SPECIAL_FOLDERS if real == name or real.startswith(name + "/")), None)
    if special:
        raise DataFileError(f"{where}: '{shown}' is under {special}, a kernel filesystem; give the folder of the images")
    device, seen, found, pending = folder.stat().st_dev, 0, [], [folder]
    while pending:
        current = pending.pop()
        try:
            with os.scandir(current) as entries:
                for entry in entries:
                    seen += 1
                    if seen > MAX_FOLDER_ENTRIES:
                        raise DataFileError(f"{where}: folder '{shown}' holds more than {MAX_FOLDER_ENTRIES:,} files "
                                            f"and folders (searched recursively); give the folder of the images")
                    if entry.is_dir(follow_symlinks=False):
                        if entry.stat(follow_symlinks=False).st_dev != device:
                            raise DataFileError(f"{where}: folder '{shown}' holds '{entry.path}', another filesystem "
                                                f"(a mount point); give the folder of the images")
                        pending.append(entry.path)
                    elif entry.name.lower().endswith(IMAGE_SUFFIXES) and entry.is_file():
                        found.append(Path(entry.path))
        except OSError as error:
            raise DataFileError(f"{where}: cannot read folder '{current}' under '{shown}' "
                                f"({error.strerror or error})") from None
    return sorted(found)


def load_image_folder(path: str, resolution: int, channels: int, crop: str, limit: int, where: str = "path"):
    """A user's images (a folder of png/jpg, searched recursively, or an .npz with an `x` array
    (n, H, W, C) or (n, C, H, W)) as (n, C, R, R) float64 in [-1, 1], by the rule of
    docs/images.md: 8-bit values / 255, 16-bit / 65535, alpha composited on white, grey
    repeated to RGB or RGB to grey by BT.601 luma, then centre-cropped and resized (bicubic, in
    floating point, clipped to [0, 1]). A file that cannot be read is refused naming it and
    `where` (the key of the path)."""
    from pathlib import Path

    import numpy as np
    import torch

    check_image_source(path, where)
    source = Path(path).expanduser()
    if source.suffix == ".npz":
        named = ((f"x[{i}]", image) for i, image in enumerate(_npz_images(source, limit, where)))
    else:
        files = image_files(source, where, path)
        named = ((file.name, _read_image(file, where)) for file in (files[:limit] if limit else files))
    squares = [(name, _square(_to_channels(image, channels), resolution, crop)) for name, image in named]
    first_name, first = squares[0]
    if first.shape[0] != first.shape[1]:      # crop none with resolution 0: nothing made it square
        raise DataFileError(f"{where.removesuffix('path')}resolution: 0 keeps the images' own size, but "
                            f"'{first_name}' is {_side_text(first)}, not square; use crop: center or give a resolution")
    for name, image in squares:      # resolution 0 resizes nothing: the images must agree
        if image.shape != first.shape:
            raise DataFileError(f"{where.removesuffix('path')}resolution: 0 keeps the images' own size, but "
                                f"'{name}' is {_side_text(image)} and '{first_name}' {_side_text(first)}; "
                                f"give a resolution to resize them to")
    batch = np.stack([image for _, image in squares])
    return torch.from_numpy(batch).permute(0, 3, 1, 2) * 2.0 - 1.0


def _side_text(image) -> str:
    return f"{image.shape[1]}x{image.shape[0]}"


@functools.lru_cache(maxsize=None)
def native_resolution(path: str, crop: str) -> int | None:
    """The side of an image source's first image (sorted), centre-cropped to a square if `crop`
    is 'center': what `resolution: 0` keeps. Reads one image header or the .npz array's header,
    so the grid may call it at parse time; None if the source is not there (yet)."""
    import zipfile
    from pathlib import Path

    import numpy as np
    from PIL import Image

    source = Path(path).expanduser()
    try:
        if source.suffix == ".npz":
            with zipfile.ZipFile(source) as archive, archive.open("x.npy") as array:
                header = {(1, 0): np.lib.format.read_array_header_1_0}.get(np.lib.format.read_magic(array),
                                                                          np.lib.format.read_array_header_2_0)
                shape = header(array)[0]
            height, width = shape[1:3] if shape[-1] in (1, 2, 3, 4) else shape[2:4]
        else:
            with Image.open(image_files(source)[0]) as picture:
                width, height = picture.size
    except (OSError, ValueError, KeyError, IndexError, zipfile.BadZipFile):
        return None     # missing or unreadable: the job's loading names the problem
    if crop != "center" and width != height:
        raise DataFileError(f"resolution: 0 keeps the images' own size, but the first image of '{path}' is "
                            f"{width}x{height}, not square; use crop: center or give a resolution")
    return min(width, height)


def _read_image(file, where: str):
    """One image file as float64 (H, W, C) in [0, 1]; C is 1 (grey), 2 (grey + alpha), 3 (RGB) or 4 (RGBA)."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(file) as picture:
            picture.load()
            mode = picture.mode
            if mode == "I" or mode.startswith("I;16"):          # 16-bit grey PNG: full precision
                pixels, scale = np.asarray(picture, dtype=np.float64), 65535.0
                if pixels.min() < 0 or pixels.max() > 65535:
                    raise ValueError(f"mode {mode} with values outside 0..65535")
            else:
                # Bilevel becomes grey; palette, CMYK, ... become RGB(A). 16-bit colour arrives here
                # as 8-bit RGB(A): Pillow reads it at 8-bit precision.
                if mode == "1":
                    picture = picture.convert("L")
                elif mode not in ("L", "LA", "RGB", "RGBA") or "transparency" in picture.info:
                    alpha = "A" in mode or "a" in mode or "transparency" in picture.info
                    picture = picture.convert("RGBA" if alpha else "RGB")
                pixels, scale = np.asarray(picture, dtype=np.float64), 255.0
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise DataFileError(f"{where}: cannot read image '{file}' ({_one_line(error)})") from None
    return np.atleast_3d(pixels) / scale


def _npz_images(source, limit: int, where: str):
    """The images of an .npz's `x` array, as float64 (H, W, C) in [0, 1]."""
    import numpy as np

    try:
        with np.load(source) as archive:
            found = archive.files
            array = archive["x"] if "x" in found else None
    except Exception as error:  # a truncated or foreign file
        raise DataFileError(f"{where}: cannot read '{source}' as an .npz ({_one_line(error)})") from None
    if array is None:
        raise DataFileError(f"{where}: '{source}' has no array 'x' (found: {', '.join(found) or 'none'})")
    if array.ndim != 4 or (array.shape[-1] not in (1, 2, 3, 4) and array.shape[1] not in (1, 2, 3, 4)):
        raise DataFileError(f"{where}: '{source}': 'x' must be (n, H, W, C) or (n, C, H, W) with C in 1..4, "
                            f"got shape {array.shape}")
    scale = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(array.dtype)
    if scale is None:
        raise DataFileError(f"{where}: '{source}': 'x' has dtype {array.dtype}; expected uint8 or uint16")
    if len(array) == 0:
        raise DataFileError(f"{where}: '{source}': 'x' holds no images (shape {array.shape})")
    if array.shape[-1] not in (1, 2, 3, 4):
        array = array.transpose(0, 2, 3, 1)
    return (array[i] / scale for i in range(min(limit, len(array)) if limit else len(array)))


def _one_line(error: Exception) -> str:
    """'OSError: image file is truncated': an error as one line, however its message is laid out."""
    return f"{type(error).__name__}: {' '.join(str(error).split())}"


def _to_channels(pixels, channels: int):
    """(H, W, C) in [0, 1] -> (H, W, channels): alpha composited on white, grey repeated to RGB,
    RGB to grey by BT.601 luma."""
    import numpy as np

    if pixels.shape[2] in (2, 4):
        colour, alpha = pixels[:, :, :-1], pixels[:, :, -1:]
        pixels = colour * alpha + (1.0 - alpha)
    if pixels.shape[2] == channels:
        return pixels
    if channels == 3:
        return np.repeat(pixels, 3, axis=2)
    return pixels @ np.array(LUMA)[:, None]


def _square(image, resolution: int, crop: str):
    """Centre-crop to a square (crop = 'center') and resize to resolution x resolution: float
    (H, W, C) in [0, 1] in and out, each channel resized bicubically in floating point."""
    import numpy as np
    from PIL import Image

    height, width = image.shape[:2]
    if crop == "center":
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        image = image[top:top + side, left:left + side]
    if resolution == 0 or image.shape[:2] == (resolution, resolution):
        return image
    planes = [np.asarray(Image.fromarray(image[:, :, c].astype(np.float32))   # mode "F"
                         .resize((resolution, resolution), Image.BICUBIC), dtype=np.float64)
              for c in range(image.shape[2])]
    return np.clip(np.stack(planes, axis=2), 0.0, 1.0)   # bicubic overshoots at edges


def _build_images(path: str, resolution: int, channels: int, crop: str, limit: int) -> Dataset:
    pool = load_image_folder(path, resolution, channels, crop, limit)
    return Dataset(name="images", dim=pool[0].numel(), shape=tuple(pool.shape[1:]), sampler=_draw_from(pool),
                   knobs={"path": path, "resolution": resolution, "channels": channels, "crop": crop,
                           "limit": limit})


def make_blobs(count: int, resolution: int, channels: int, blobs: int, seed: int):
    """`count` smooth images in [-1, 1], (count, channels, R, R) float64: a colour gradient with a few
    soft coloured ellipses on it, drawn from `seed`. Image-like test data the project makes itself
    (tests/fixtures' small pretrained networks take 3x32x32), so nothing is downloaded."""
    import numpy as np
    import torch

    rng = np.random.default_rng(seed)
    grid = (np.arange(resolution) + 0.5) / resolution
    v, u = np.meshgrid(grid, grid, indexing="ij")
    images = np.empty((count, channels, resolution, resolution))
    for image in images:
        corners = rng.uniform(-1, 1, size=(2, channels, 1, 1))       # the background's colours at left and right
        image[:] = corners[0] + (corners[1] - corners[0]) * u
        for _ in range(blobs):
            centre, radii, colour = rng.uniform(0.1, 0.9, 2), rng.uniform(0.08, 0.3, 2), rng.uniform(-1, 1, channels)
            weight = np.exp(-0.5 * (((u - centre[0]) / radii[0]) ** 2 + ((v - centre[1]) / radii[1]) ** 2) ** 2)
            image[:] = (1 - weight) * image + weight * colour[:, None, None]
    return torch.from_numpy(np.clip(images, -1.0, 1.0))


def write_blob_images(folder, count: int, resolution: int, channels: int = 3, blobs: int = 3, seed: int = 0) -> list:
    """`make_blobs`' images as 8-bit PNG files blob_000.png, ... in `folder` (created): an image
    folder the project makes itself, e.g. tests/fixtures/images/blobs32 of config/paper_tiny.yaml."""
    from pathlib import Path

    import numpy as np
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.rint((make_blobs(count, resolution, channels, blobs, seed).numpy() + 1.0) * 127.5).astype(np.uint8)
    files = []
    for index, image in enumerate(pixels):
        files.append(folder / f"blob_{index:03d}.png")
        Image.fromarray(image.transpose(1, 2, 0).squeeze(2) if channels == 1 else image.transpose(1, 2, 0)).save(files[-1])
    return files


def _build_blobs(count: int, resolution: int, channels: int, blobs: int, seed: int) -> Dataset:
    pool = make_blobs(count, resolution, channels, blobs, seed)
    return Dataset(name="blobs", dim=pool[0].numel(), shape=tuple(pool.shape[1:]), sampler=_draw_from(pool),
                   knobs={"count": count, "resolution": resolution, "channels": channels, "blobs": blobs,
                           "seed": seed})


SPLIT_KNOBS = {
    "test_fraction": Knob("float", 0.2, "fraction of the 1797 digits held out as the test split",
                          minimum=0.0, maximum=0.9),
    "split_seed": Knob("int", 0, "seed of the fixed train/test permutation", minimum=0, maximum=SEED_MAX),
}

for _family in [
    DatasetFamily(
        name="gmm", build=_build_gmm, analytic=True,
        description="Gaussian mixture with exact noisy density, denoiser, score and sampling: 2-D presets, the "
                    "published d-dimensional benchmark prior, random mixtures, or one read from an .npz",
        check=lambda preset, **knobs: check_mixture_file(knobs["path"]) if preset == "npz" else None,
        knobs={"preset": Knob("str", "ring8", "mixture preset", choices=tuple(GMM_PRESETS)),
               "scale": Knob("float", 1.0, "multiplies means and standard deviations", minimum=1e-12),
               "n_modes": Knob("int", 8, "ring8, random: number of modes", minimum=1, maximum=10_000),
               "radius": Knob("float", 4.0, "ring8: radius of the ring", minimum=1e-12),
               "std": Knob("float", 0.3, "ring8, random: standard deviation of each mode", minimum=1e-12),
               "dim": Knob("int", 8, "grid25_pairs (even), random: dimension d", minimum=1, maximum=1_000_000),
               "seed": Knob("int", 27, "grid25_pairs, random: seed of the draw (27: the published instance)",
                            minimum=0, maximum=SEED_MAX),
               "covariance": Knob("str", "isotropic", "random: covariance structure",
                                  choices=("isotropic", "diagonal", "lowrank")),
               "spread": Knob("float", 4.0, "random, diagonal or lowrank: ratio of the largest to the smallest "
                              "standard deviation", minimum=1.0),
               "rank": Knob("int", 2, "random, lowrank: directions of extra variance", minimum=1, maximum=1000),
               "separation": Knob("float", 8.0, "random: typical distance of two means, in stds", minimum=0.0),
               "path": Knob("str", "", "npz: the mixture file")}),
    DatasetFamily(
        name="swissroll", build=_build_swissroll,
        description="2-D swiss roll spiral (outer radius 4) plus Gaussian noise; no closed form",
        knobs={"noise": Knob("float", 0.25, "standard deviation of the added noise", minimum=0.0)}),
    DatasetFamily(
        name="checkerboard", build=_build_checkerboard,
        description="2-D uniform density on the black squares of a board spanning [-size/2, size/2]^2; "
                    "no closed form",
        knobs={"squares": Knob("int", 4, "squares per side", minimum=1, maximum=1000),
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
        knobs={"components": Knob("int", 10, "mixture components", minimum=1, maximum=1000),
               "reg_covar": Knob("float", 1e-3, "ridge added to each fitted covariance", minimum=0.0),
               **SPLIT_KNOBS,
               "fit_seed": Knob("int", 0, "seed of sklearn's EM initialisation", minimum=0, maximum=2**32 - 1)}),
    DatasetFamily(
        name="blobs", build=_build_blobs, image=True,
        description="synthetic smooth images (soft coloured ellipses on a colour gradient) made from a "
                    "seed: small image data for the pretrained networks' tests and config/paper_tiny.yaml",
        knobs={"count": Knob("int", 64, "images in the pool the dataset draws from", minimum=1, maximum=1_000_000),
               "resolution": Knob("int", 32, "side of the square images", minimum=4, maximum=4096),
               "channels": Knob("int", 3, "1 (grey) or 3 (RGB)", choices=(1, 3)),
               "blobs": Knob("int", 3, "ellipses per image", minimum=0, maximum=1000),
               "seed": Knob("int", 0, "seed of the drawing", minimum=0, maximum=SEED_MAX)}),
    DatasetFamily(
        name="images", build=_build_images, image=True,
        description="a user's image folder (png/jpg, recursive) or .npz, centre-cropped and resized; e.g. FFHQ "
                    "or CIFAR-10 already on disk (nothing is downloaded)",
        required=("path",), check=lambda path, **_: check_image_source(path),
        knobs={"path": Knob("str", "", "a folder of png/jpg images (searched recursively) or an .npz file"),
               "resolution": Knob("int", 64, "side of the square images after resizing; 0: the images' own "
                                  "side, nothing resized (all of one size, square or centre-cropped)", minimum=0, maximum=4096),
               "channels": Knob("int", 3, "1 (grey) or 3 (RGB)", choices=(1, 3)),
               "crop": Knob("str", "center", "centre-crop to a square before resizing, or resize as is",
                            choices=("center", "none")),
               "limit": Knob("int", 0, "use only the first N images in sorted order (0: all)", minimum=0, maximum=10_000_000)}),
]:
    FAMILIES.add(_family)


def family_names() -> list[str]:
    return FAMILIES.names()


def knobs_where(where: str) -> str:
    """The config path of a dataset entry's knobs, from the entry's ("datasets.faces.")."""
    return where and where + "knobs."


def resolve_dataset_knobs(family: str, knobs: dict, where: str = "") -> dict:
    """Parameters with defaults filled in; unknown families, names or values raise ValueError.
    `where` is the config path of the dataset entry (e.g. "datasets.ring8.")."""
    spec = FAMILIES.get(family, where and where + "family: ")
    where = knobs_where(where)
    resolved = spec.resolve_knobs(knobs, where)
    if family == "gmm":
        resolved = _gmm_preset_knobs(resolved, knobs or {}, where)
    return resolved


def _gmm_preset_knobs(resolved: dict, given: dict, where: str) -> dict:
    """The resolved knobs of a gmm preset: `preset`, `scale` and the knobs it takes (GMM_PRESET_KNOBS;
    `spread` and `rank` only where the covariance uses them); others given are refused."""
    preset = resolved["preset"]
    takes = {"preset", "scale", *GMM_PRESET_KNOBS[preset]}
    if preset == "random":
        takes -= {"isotropic": {"spread", "rank"}, "diagonal": {"rank"}, "lowrank": set()}[resolved["covariance"]]
    foreign = sorted(set(given) - takes)
    if foreign:
        raise ValueError(f"{where}parameters {foreign} do not apply to preset '{preset}'"
                         + (f" with covariance '{resolved['covariance']}'" if preset == "random" else "")
                         + f"; it takes {sorted(takes - {'preset'})}")
    if preset == "grid25_pairs" and resolved["dim"] % 2:
        raise ValueError(f"{where}dim: grid25_pairs repeats 2-D means over coordinate pairs, so dim must be even, "
                         f"got {resolved['dim']}")
    if preset == "npz" and not resolved["path"]:
        raise ValueError(f"{where}path: required by preset 'npz': the mixture file")
    return {key: value for key, value in resolved.items() if key in takes}


def check_dataset_files(family: str, knobs: dict, where: str = "") -> None:
    """Refuse (DataFileError, one line naming the key) resolved parameters that name missing or
    empty files; cheap, for parse time. Families that read no files pass."""
    check = FAMILIES.get(family).check
    if check is not None:
        try:
            check(**knobs)
        except DataFileError as error:
            raise DataFileError(f"{knobs_where(where)}{error}") from None


def is_analytic(family: str) -> bool:
    return FAMILIES.get(family).analytic


def is_image(family: str) -> bool:
    return FAMILIES.get(family).image


def make_dataset(family: str, fit_path=None, where: str = "", **knobs) -> Dataset:
    """Build a dataset by family name; unknown names or parameters raise ValueError, files that
    cannot be read DataFileError, naming `where` (the entry's config path, "datasets.faces.").
    A fitted prior (digits_gmm) caches its fit at `fit_path` when one is given."""
    spec = FAMILIES.get(family, where and where + "family: ")
    knobs = resolve_dataset_knobs(family, knobs, where)
    try:
        return spec.build(**knobs, fit_path=fit_path) if spec.fitted else spec.build(**knobs)
    except DataFileError as error:
        raise DataFileError(f"{knobs_where(where)}{error}") from None
