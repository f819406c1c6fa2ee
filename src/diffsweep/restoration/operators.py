"""Linear measurement operators A on batches x of shape (n, *shape), with exact adjoints.

Every operator has `forward(x)` (A x), `adjoint(y)` (A^T y), `measurement_shape`, a dense
float64 `matrix()` (m, d) for small images, its cached `svd()`, and `arrays()`: the seeded
random parts (mask, kernel) to save with a run. Images are (C, H, W); inpainting keeps the
measurement at full size (missing pixels are zero rows of A), blur is a circular convolution.
Build them by name through diffsweep.restoration.registry.OPERATORS.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class LinearOperator:
    """Base class: subclasses set `measurement_shape` and implement forward/adjoint."""

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.measurement_shape = self.shape
        self._svd = None

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    def forward(self, x):
        raise NotImplementedError

    def adjoint(self, y):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def arrays(self) -> dict[str, np.ndarray]:
        """The seeded parts of the operator, saved with each run."""
        return {}

    def matrix(self) -> torch.Tensor:
        """Dense A, shape (m, d), float64: A applied to every basis vector."""
        basis = torch.eye(self.dim, dtype=torch.float64).reshape(self.dim, *self.shape)
        return self.forward(basis).reshape(self.dim, -1).T.contiguous()

    def svd(self):
        """(U (m, m), s (min(m, d),), Vh (d, d)) of the dense matrix, computed once."""
        if self._svd is None:
            self._svd = torch.linalg.svd(self.matrix(), full_matrices=True)
        return self._svd


class MatrixOperator(LinearOperator):
    """A given dense matrix acting on flattened samples (the 2-D analytic tests)."""

    def __init__(self, matrix, shape=None):
        matrix = torch.as_tensor(matrix, dtype=torch.float64)
        super().__init__(shape or (matrix.shape[1],))
        self.A = matrix
        self.measurement_shape = (matrix.shape[0],)

    def forward(self, x):
        return x.flatten(1) @ self.A.to(x).T

    def adjoint(self, y):
        return (y @ self.A.to(y)).reshape(y.shape[0], *self.shape)

    def matrix(self):
        return self.A.clone()


# --- super-resolution ---------------------------------------------------------------------

class SeparableDownsampling(LinearOperator):
    """y = M_h x M_w^T per channel, for 1-D resampling matrices M_h (H/k, H) and M_w (W/k, W)."""

    def __init__(self, shape, rows, columns):
        super().__init__(shape)
        self.rows, self.columns = rows, columns
        self.measurement_shape = (shape[0], rows.shape[0], columns.shape[0])

    def forward(self, x):
        return torch.einsum("ih,nchw,jw->ncij", self.rows.to(x), x, self.columns.to(x))

    def adjoint(self, y):
        return torch.einsum("ih,ncij,jw->nchw", self.rows.to(y), y, self.columns.to(y))


def _check_factor(shape, factor: int) -> None:
    if len(shape) != 3 or shape[1] % factor or shape[2] % factor:
        raise ValueError(f"super-resolution by {factor} needs (C, H, W) data with H and W divisible by {factor}, "
                         f"got {shape}")


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's and DPS's)."""
    absx = np.abs(x)
    return ((1.5 * absx ** 3 - 2.5 * absx ** 2 + 1) * (absx <= 1)
            + (-0.5 * absx ** 3 + 2.5 * absx ** 2 - 4 * absx + 2) * ((absx > 1) & (absx <= 2)))


def imresize_matrix(n_in: int, factor: int) -> torch.Tensor:
    """MATLAB imresize(x, 1/factor, 'bicubic') along one axis, antialiased, symmetric boundary, as a matrix."""
    scale = 1.0 / factor
    width = 4.0 / scale                                   # the antialiasing kernel is stretched by 1/scale
    out = np.arange(1, n_in // factor + 1)
    centres = out / scale + 0.5 * (1 - 1 / scale)         # in 1-based input coordinates
    left = np.floor(centres - width / 2)
    taps = left[:, None] + np.arange(int(np.ceil(width)) + 2)[None, :]
    weights = scale * cubic(scale * (centres[:, None] - taps))
    weights /= weights.sum(axis=1, keepdims=True)
    mirrored = np.concatenate([np.arange(n_in), np.arange(n_in)[::-1]])   # symmetric padding
    columns = mirrored[(taps.astype(int) - 1) % (2 * n_in)]
    matrix = np.zeros((len(out), n_in))
    for row in range(len(out)):
        np.add.at(matrix[row], columns[row], weights[row])
    return torch.from_numpy(matrix)


class BicubicDownsampling(SeparableDownsampling):
    def __init__(self, shape, seed: int, factor: int):
        _check_factor(shape, factor)
        super().__init__(shape, imresize_matrix(shape[1], factor), imresize_matrix(shape[2], factor))


def box_average_matrix(n_in: int, factor: int) -> torch.Tensor:
    matrix = torch.zeros(n_in // factor, n_in, dtype=torch.float64)
    for row in range(n_in // factor):
        matrix[row, row * factor:(row + 1) * factor] = 1.0 / factor
    return matrix


class AveragePooling(SeparableDownsampling):
    def __init__(self, shape, seed: int, factor: int):
        _check_factor(shape, factor)
        super().__init__(shape, box_average_matrix(shape[1], factor), box_average_matrix(shape[2], factor))


# --- inpainting ------------------------------------------------------------------------------

class MaskOperator(LinearOperator):
    """y = mask * x: a diagonal 0/1 operator, its own adjoint. The mask covers the pixel grid
    (H, W) and is shared by all channels; flat data (d,) masks coordinates."""

    def __init__(self, shape, mask):
        super().__init__(shape)
        self.mask = mask.to(torch.float64)

    def forward(self, x):
        return x * self.mask.to(x)

    adjoint = forward

    def arrays(self):
        return {"mask": self.mask.numpy().astype(np.uint8)}


def _pixel_grid(shape) -> tuple[int, ...]:
    return (1, *shape[1:]) if len(shape) == 3 else tuple(shape)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


class RandomInpainting(MaskOperator):
    def __init__(self, shape, seed: int, missing: float):
        grid = _pixel_grid(shape)
        n_pixels = math.prod(grid)
        removed = torch.randperm(n_pixels, generator=_generator(seed))[:round(missing * n_pixels)]
        mask = torch.ones(n_pixels, dtype=torch.float64)
        mask[removed] = 0.0
        super().__init__(shape, mask.reshape(grid))


def _check_image(shape, what: str) -> None:
    if len(shape) != 3:
        raise ValueError(f"{what} needs (C, H, W) image data, got shape {shape}")


class BoxInpainting(MaskOperator):
    def __init__(self, shape, seed: int, size: int):
        _check_image(shape, "box inpainting")
        height, width = shape[1:]
        if size > min(height, width):
            raise ValueError(f"box inpainting: size {size} exceeds the image ({height} x {width})")
        generator = _generator(seed)
        top = int(torch.randint(0, height - size + 1, (1,), generator=generator))
        left = int(torch.randint(0, width - size + 1, (1,), generator=generator))
        mask = torch.ones(1, height, width, dtype=torch.float64)
        mask[:, top:top + size, left:left + size] = 0.0
        super().__init__(shape, mask)


class HalfInpainting(MaskOperator):
    def __init__(self, shape, seed: int, side: str):
        _check_image(shape, "half inpainting")
        height, width = shape[1:]
        mask = torch.ones(1, height, width, dtype=torch.float64)
        region = {"left": (slice(None), slice(None, width // 2)), "right": (slice(None), slice(width // 2, None)),
                  "top": (slice(None, height // 2), slice(None)), "bottom": (slice(height // 2, None), slice(None))}
        mask[(slice(None), *region[side])] = 0.0
        super().__init__(shape, mask)


# --- deblurring ------------------------------------------------------------------------------

class CircularBlur(LinearOperator):
    """y = k (*) x, circular convolution per channel (through the FFT); the adjoint correlates."""

    def __init__(self, shape, kernel):
        _check_image(shape, "blur")
        height, width = shape[1:]
        size = kernel.shape[0]
        if size > min(height, width):
            raise ValueError(f"blur: kernel size {size} exceeds the image ({height} x {width})")
        super().__init__(shape)
        self.kernel = kernel.to(torch.float64)
        padded = torch.zeros(height, width, dtype=torch.float64)
        padded[:size, :size] = self.kernel
        padded = torch.roll(padded, shifts=(-(size // 2), -(size // 2)), dims=(0, 1))   # centre at (0, 0)
        self.transfer = torch.fft.rfft2(padded)

    def _filter(self, x, transfer):
        return torch.fft.irfft2(torch.fft.rfft2(x) * transfer.to(x.device), s=x.shape[-2:]).to(x.dtype)

    def forward(self, x):
        return self._filter(x, self.transfer)

    def adjoint(self, y):
        return self._filter(y, self.transfer.conj())

    def arrays(self):
        return {"kernel": self.kernel.numpy()}


def _check_kernel_size(size: int) -> None:
    if size % 2 == 0:
        raise ValueError(f"blur: kernel_size must be odd, got {size}")


class GaussianBlur(CircularBlur):
    def __init__(self, shape, seed: int, kernel_size: int, std: float):
        _check_kernel_size(kernel_size)
        offsets = torch.arange(kernel_size, dtype=torch.float64) - kernel_size // 2
        profile = torch.exp(-offsets ** 2 / (2 * std ** 2))
        kernel = torch.outer(profile, profile)
        super().__init__(shape, kernel / kernel.sum())


def motion_kernel(size: int, intensity: float, generator: torch.Generator, points: int = 200) -> torch.Tensor:
    """A seeded camera path rasterised into a size x size kernel (sums to 1): a walk whose heading
    starts at a random angle and turns by N(0, (pi * intensity)^2 / points) each step."""
    angle = 2 * math.pi * float(torch.rand((), generator=generator, dtype=torch.float64))
    turns = torch.randn(points, generator=generator, dtype=torch.float64) * math.pi * intensity / math.sqrt(points)
    headings = angle + torch.cumsum(turns, 0)
    path = torch.cumsum(torch.stack([torch.cos(headings), torch.sin(headings)], 1), 0)
    path = path - (path.amax(0) + path.amin(0)) / 2                 # centred
    extent = (path.amax(0) - path.amin(0)).max().clamp(min=1e-12)
    path = path * (size - 1) / extent + (size - 1) / 2             # spans the kernel
    kernel = torch.zeros(size, size, dtype=torch.float64)
    low = path.floor().long().clamp(0, size - 1)
    frac = path - low
    for (i, j), (fi, fj) in zip(low.tolist(), frac.tolist()):     # bilinear splatting
        for di, wi in ((0, 1 - fi), (1, fi)):
            for dj, wj in ((0, 1 - fj), (1, fj)):
                kernel[min(i + di, size - 1), min(j + dj, size - 1)] += wi * wj
    return kernel / kernel.sum()


class MotionBlur(CircularBlur):
    def __init__(self, shape, seed: int, kernel_size: int, intensity: float):
        _check_kernel_size(kernel_size)
        super().__init__(shape, motion_kernel(kernel_size, intensity, _generator(seed)))
