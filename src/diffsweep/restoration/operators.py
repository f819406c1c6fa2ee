"""Linear measurement operators A on batches x of shape (n, *shape), with exact adjoints.

Every operator has `forward(x)` (A x), `adjoint(y)` (A^T y), `measurement_shape`, `svd()`
(its singular value decomposition as factors, see SVD), `norm()` (its largest singular value,
from the same decomposition), and `arrays()`: the seeded random
parts (mask, kernel) to save with a run. The dense float64 `matrix()` (m, d) and its
`dense_svd()` are the reference, for small data only. Images are (C, H, W); inpainting keeps
the measurement at full size (missing pixels are zero rows of A), blur is a circular
convolution. Build them by name through diffsweep.restoration.registry.OPERATORS.

Structured SVDs (no d x d matrix is ever formed):
    masks (inpainting)           U = V = I, s = the mask (0/1): a pixel selection
    separable super-resolution   per channel Y = M_h X M_w^T with M = U_1 diag(s_1) V_1^T (1-D SVDs):
                                 A = (U_h (x) U_w) diag(s_h (x) s_w) (V_h (x) V_w)^T, applied as two matmuls
    circular blur                A = F^H diag(T) F, T = FFT of the kernel, F the unitary 2-D DFT:
                                 V = F^H, s = |T|, U = F^H diag(T / |T|) (complex coordinates)
    random operators (vectors)   the factors they are built from: A = U diag(s) V^T with U, V of a
                                 seeded Gaussian matrix (dense, V is d x d)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from diffsweep.restoration.registry import NOISE_RECIPES, SINGULAR_VALUE_RECIPES


# --- singular value decompositions, applied factor by factor ----------------------------------

# Dense forms (matrix(), dense_svd(), the exact Gaussian-mixture posterior) stop at this many
# matrix entries (512 MiB in float64): e.g. 64 x 64 grey images, not 256 x 256 x 3.
MAX_DENSE_ENTRIES = 2 ** 26


def _cast(tensor, like):
    """`tensor` on like's device in like's precision; complex tensors stay complex."""
    dtype = (like.new_zeros(()) * 1j).dtype if tensor.is_complex() else like.dtype
    return tensor.to(device=like.device, dtype=dtype)


@dataclasses.dataclass
class SVD:
    """A = U diag(s) V^T without forming U or V: the interface of every SVD-based restorer.

    Spectral coordinates have the shape of `s`: one entry per right singular vector (d in
    all), s is zero on the null space of A, and U^T y is placed at the positions of the
    singular values (components of y outside the range of A are dropped: A^T, A^+ and every
    restorer ignore them). Coordinates may be complex (the Fourier basis of circular blur):
    then V^T means V^H and v() returns the real part.
    """

    s: torch.Tensor

    def vt(self, x):
        """V^T x: (n, *shape) -> spectral coordinates."""
        raise NotImplementedError

    def v(self, c):
        """V c: spectral coordinates -> (n, *shape)."""
        raise NotImplementedError

    def ut(self, y):
        """U^T y: (n, *measurement_shape) -> spectral coordinates."""
        raise NotImplementedError

    def u(self, c):
        """U c: spectral coordinates -> (n, *measurement_shape); coordinates without a left
        singular vector (d > m) are ignored."""
        raise NotImplementedError

    def significant(self, rtol: float = 1e-10):
        """s with the values below rtol * max(s) set to zero (numerically in the null space)."""
        return torch.where(self.s > rtol * self.s.max(), self.s, torch.zeros_like(self.s))

    def pseudo_inverse(self, y, rtol: float = 1e-10):
        """A^+ y = V diag(1/s) U^T y over the significant singular values."""
        s = self.significant(rtol)
        return self.v(self.ut(y) * (s > 0) / s.clamp(min=torch.finfo(s.dtype).tiny))

    def to(self, like) -> SVD:
        """The same decomposition in like's dtype and device."""
        return dataclasses.replace(self, **{field.name: _cast(getattr(self, field.name), like)
                                            for field in dataclasses.fields(self)
                                            if isinstance(getattr(self, field.name), torch.Tensor)})


@dataclasses.dataclass
class DenseSVD(SVD):
    """The reference: U (m, m), Vh (d, d) dense, s padded with zeros to d; coordinates (d,)."""

    U: torch.Tensor
    Vh: torch.Tensor
    shape: tuple
    measurement_shape: tuple

    @classmethod
    def of(cls, matrix, shape, measurement_shape) -> DenseSVD:
        U, s, Vh = torch.linalg.svd(matrix, full_matrices=True)
        padded = torch.zeros(Vh.shape[0], dtype=s.dtype)
        padded[:len(s)] = s
        return cls(padded, U, Vh, tuple(shape), tuple(measurement_shape))

    def vt(self, x):
        return x.flatten(1) @ self.Vh.T

    def v(self, c):
        return (c @ self.Vh).reshape(c.shape[0], *self.shape)

    def ut(self, y):
        u_y = y.flatten(1) @ self.U
        out = torch.zeros(u_y.shape[0], self.s.shape[0], dtype=y.dtype, device=y.device)
        r = min(u_y.shape[1], out.shape[1])
        out[:, :r] = u_y[:, :r]
        return out

    def u(self, c):
        r = min(self.U.shape[0], c.shape[1])
        return (c[:, :r] @ self.U[:, :r].T).reshape(c.shape[0], *self.measurement_shape)


@dataclasses.dataclass
class PixelSelection(SVD):
    """A diagonal 0/1 operator (masks): U = V = I, s = the mask; coordinates are the pixels."""

    def vt(self, x):
        return x

    v = ut = u = vt


@dataclasses.dataclass
class KroneckerSVD(SVD):
    """Y = M_h X M_w^T per channel with M_h = U_h diag(s_h) V_h^T, M_w = U_w diag(s_w) V_w^T (full
    1-D SVDs): coordinates V_h^T X V_w, shape (C, H, W); s = s_h s_w^T in the top-left
    (H/k, W/k) block, zero elsewhere."""

    U_h: torch.Tensor
    V_h: torch.Tensor
    U_w: torch.Tensor
    V_w: torch.Tensor

    @classmethod
    def of(cls, rows, columns, channels: int) -> KroneckerSVD:
        U_h, s_h, Vh_h = torch.linalg.svd(rows, full_matrices=True)
        U_w, s_w, Vh_w = torch.linalg.svd(columns, full_matrices=True)
        s = torch.zeros(rows.shape[1], columns.shape[1], dtype=rows.dtype)
        s[:len(s_h), :len(s_w)] = torch.outer(s_h, s_w)
        return cls(s.expand(channels, -1, -1), U_h, Vh_h.T, U_w, Vh_w.T)

    def vt(self, x):
        return self.V_h.T @ x @ self.V_w

    def v(self, c):
        return self.V_h @ c @ self.V_w.T

    def ut(self, y):
        out = torch.zeros(*y.shape[:-2], *self.s.shape[-2:], dtype=y.dtype, device=y.device)
        out[..., :y.shape[-2], :y.shape[-1]] = self.U_h.T @ y @ self.U_w
        return out

    def u(self, c):
        return self.U_h @ c[..., :self.U_h.shape[0], :self.U_w.shape[0]] @ self.U_w.T


@dataclasses.dataclass
class FourierSVD(SVD):
    """Circular convolution A = F^H diag(T) F (F: unitary 2-D DFT per channel): V = F^H, s = |T|,
    U = F^H diag(phase), phase = T / |T| (1 where T = 0). Coordinates are complex, (C, H, W);
    real images have conjugate-symmetric coordinates and s is symmetric, so every update
    that scales coordinates by functions of s keeps images real."""

    phase: torch.Tensor

    @classmethod
    def of(cls, transfer, channels: int) -> FourierSVD:
        s = transfer.abs()
        phase = torch.where(s > 0, transfer / s.clamp(min=torch.finfo(s.dtype).tiny), torch.ones_like(transfer))
        return cls(s.expand(channels, -1, -1), phase)

    def vt(self, x):
        return torch.fft.fft2(x, norm="ortho")

    def v(self, c):
        return torch.fft.ifft2(c, norm="ortho").real

    def ut(self, y):
        return torch.fft.fft2(y, norm="ortho") * self.phase.conj()

    def u(self, c):
        return torch.fft.ifft2(c * self.phase, norm="ortho").real


# --- operators ---------------------------------------------------------------------------------

class LinearOperator:
    """Base class: subclasses set `measurement_shape`, implement forward/adjoint and, where they
    have a structure, `decompose()` (their SVD as factors; the dense SVD otherwise)."""

    # The measurement noise std an operator draws itself (a random operator's noise recipe), which
    # replaces the task's; None: the task's (`measurement_noise_std`).
    drawn_noise_std: float | None = None

    def __init__(self, shape):
        self.shape = tuple(shape)
        self.measurement_shape = self.shape
        self._svd = None
        self._dense_svd = None

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    def forward(self, x):
        raise NotImplementedError

    def adjoint(self, y):
        raise NotImplementedError

    def __call__(self, x):
        return self.forward(x)

    def as_image(self, y):
        """The measurement y (batch) shown on the data's grid, for its PSNR against the ground
        truth (the reference code's "input PSNR"): y itself where it has the data's shape
        (inpainting, blur), the back-projection A^T y otherwise."""
        return y if tuple(y.shape[1:]) == self.shape else self.adjoint(y)

    def arrays(self) -> dict[str, np.ndarray]:
        """The seeded parts of the operator, saved with each run."""
        return {}

    def matrix(self) -> torch.Tensor:
        """Dense A, shape (m, d), float64: A applied to every basis vector (small data only)."""
        m = math.prod(self.measurement_shape)
        if m * self.dim > MAX_DENSE_ENTRIES:
            raise ValueError(f"{type(self).__name__}: the dense matrix for data of shape {self.shape} would be "
                             f"{m} x {self.dim} ({m * self.dim * 8 / 2 ** 30:.1f} GiB in float64); dense forms "
                             f"(matrix(), dense_svd(), the exact Gaussian-mixture posterior) are for data with "
                             f"m * d <= {MAX_DENSE_ENTRIES}; restorers use svd()")
        basis = torch.eye(self.dim, dtype=torch.float64).reshape(self.dim, *self.shape)
        return self.forward(basis).reshape(self.dim, -1).T.contiguous()

    def dense_svd(self) -> DenseSVD:
        """The SVD of the dense matrix (the reference; small data only), computed once."""
        if self._dense_svd is None:
            self._dense_svd = DenseSVD.of(self.matrix(), self.shape, self.measurement_shape)
        return self._dense_svd

    def decompose(self) -> SVD:
        return self.dense_svd()

    def for_measurements(self, n: int) -> LinearOperator:
        """The operator that measures a batch of n ground truths. One operator serves all of them
        here; an operator with one random part per image (inpaint_random, per_image) draws them."""
        return self

    def restrict(self, index) -> LinearOperator:
        """The operator acting on rows `index` (an int, a slice or a 1-D tensor) of the batch that
        `for_measurements` was given: itself when the rows share it."""
        return self

    def svd(self) -> SVD:
        """A's SVD as factors (structured where the operator has a structure), float64, computed once."""
        if self._svd is None:
            self._svd = self.decompose()
        return self._svd

    def norm(self) -> float:
        """||A||_2, the largest singular value: what bounds a stable gradient step on ||y - A x||^2
        (the step must stay below 2 / ||A||^2). Read off svd(), so as cheap as the structured SVD."""
        return float(self.svd().s.max())


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

    def decompose(self):
        return KroneckerSVD.of(self.rows, self.columns, self.shape[0])

    def as_image(self, y):
        """Nearest-neighbour upsampling, as the reference code shows an SR measurement
        (F.interpolate's default mode)."""
        factor_h, factor_w = self.shape[1] // self.rows.shape[0], self.shape[2] // self.columns.shape[0]
        return y.repeat_interleave(factor_h, dim=2).repeat_interleave(factor_w, dim=3)


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
    (H, W) and is shared by all channels; flat data (d,) masks coordinates. A mask with one more
    (leading) dimension holds one mask per row of the batch (per-image masks)."""

    def __init__(self, shape, mask):
        super().__init__(shape)
        self.mask = mask.to(torch.float64)
        self.per_row = self.mask.ndim == len(self.shape) + 1

    def forward(self, x):
        if self.per_row and x.shape[0] != len(self.mask):
            raise ValueError(f"inpainting with one mask per image: a batch of {x.shape[0]} rows for "
                             f"{len(self.mask)} masks; take operator.restrict(index) for a part of the batch")
        return x * self.mask.to(x)

    adjoint = forward

    def decompose(self):
        return PixelSelection(self.mask.expand(*self.mask.shape[:-len(self.shape)], *self.shape))

    def restrict(self, index):
        return MaskOperator(self.shape, self.mask[index]) if self.per_row else self

    def arrays(self):
        return {"mask": self.mask.numpy().astype(np.uint8)}


def _pixel_grid(shape) -> tuple[int, ...]:
    return (1, *shape[1:]) if len(shape) == 3 else tuple(shape)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


def random_mask(grid, missing: float, generator) -> torch.Tensor:
    """A 0/1 mask over `grid` with round(missing * pixels) zeros at random positions."""
    n_pixels = math.prod(grid)
    removed = torch.randperm(n_pixels, generator=generator)[:round(missing * n_pixels)]
    mask = torch.ones(n_pixels, dtype=torch.float64)
    mask[removed] = 0.0
    return mask.reshape(grid)


class RandomInpainting(MaskOperator):
    """One seeded random mask for the run, or with `per_image` one per measured image (the
    reference code draws one per image): `for_measurements(n)` draws them from the same seed."""

    def __init__(self, shape, seed: int, missing: float, per_image: bool = False):
        self.seed, self.missing, self.per_image = seed, missing, per_image
        super().__init__(shape, random_mask(_pixel_grid(shape), missing, _generator(seed)))

    def for_measurements(self, n: int) -> LinearOperator:
        if not self.per_image:
            return self
        generator = _generator(self.seed)
        grid = _pixel_grid(self.shape)
        return MaskOperator(self.shape, torch.stack([random_mask(grid, self.missing, generator) for _ in range(n)]))


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
    """y = k (*) x, circular convolution per channel (through the FFT); the adjoint correlates.

    Boundaries are circular by definition of the operator, which is what makes the FFT its
    exact SVD; zero- or reflect-padded blur (a Toeplitz-plus-Hankel matrix) has no such fast
    SVD and is not offered."""

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
        self.centred = torch.roll(padded, shifts=(-(size // 2), -(size // 2)), dims=(0, 1))   # centre at (0, 0)
        self.transfer = torch.fft.rfft2(self.centred)

    def _filter(self, x, transfer):
        return torch.fft.irfft2(torch.fft.rfft2(x) * _cast(transfer, x), s=x.shape[-2:])

    def forward(self, x):
        return self._filter(x, self.transfer)

    def adjoint(self, y):
        return self._filter(y, self.transfer.conj())

    def decompose(self):
        return FourierSVD.of(torch.fft.fft2(self.centred), self.shape[0])

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


# --- random operators for vector data ----------------------------------------------------------

def random_factors(d_y: int, d: int, singular_values: str, generator: torch.Generator):
    """(U (d_y, d_y), s (d_y,), Vh (d, d)) of a random d_y x d operator A = U diag(s) Vh[:d_y], float64.
    The singular vectors are a Gaussian matrix's (uniformly distributed); the singular values are
    `sorted_uniform` (U(0, 1), sorted descending: the published construction of MCGdiff and the
    benchopt Gaussian-mixture benchmark), `ones` (orthonormal rows: an orthogonal projection onto a
    random subspace) or `gaussian` (the Gaussian matrix's own with entries N(0, 1 / d)).

    Draw order (what a seed fixes): a Gaussian d_y x d matrix, whose full SVD gives U and Vh (the
    published construction's), then, for `sorted_uniform`, d_y uniform values sorted descending."""
    if singular_values not in SINGULAR_VALUE_RECIPES:
        raise ValueError(f"random operator: unknown singular_values '{singular_values}'; allowed: "
                         f"{', '.join(SINGULAR_VALUE_RECIPES)}")
    gaussian = torch.randn(d_y, d, generator=generator, dtype=torch.float64)
    U, s, Vh = torch.linalg.svd(gaussian, full_matrices=True)
    if singular_values == "sorted_uniform":
        s = torch.sort(torch.rand(d_y, generator=generator, dtype=torch.float64), descending=True).values
    elif singular_values == "ones":
        s = torch.ones(d_y, dtype=torch.float64)
    else:
        s = s / math.sqrt(d)
    return U, s, Vh


class RandomMatrix(MatrixOperator):
    """A seeded random d_y x d operator on flattened data, A = U diag(s) Vh[:d_y], with its SVD known
    from its construction (`random_factors`): dense, d x d for V, so for d up to a few thousand
    (d = 1000: 8 MB). With the noise recipe `uniform_max_singular` it draws its own measurement noise
    std (`drawn_noise_std`), which replaces the task's (`measurement_noise_std`)."""

    def __init__(self, shape, seed: int, measurements: int, singular_values: str = "sorted_uniform",
                 noise: str = "task"):
        d = math.prod(shape)
        if not 1 <= measurements <= d:
            raise ValueError(f"random operator: measurements (d_y) must be between 1 and the data's dimension {d}, "
                             f"got {measurements}")
        if noise not in NOISE_RECIPES:
            raise ValueError(f"random operator: unknown noise '{noise}'; allowed: {', '.join(NOISE_RECIPES)}")
        generator = _generator(seed)
        self.U, self.s, self.Vh = random_factors(measurements, d, singular_values, generator)
        super().__init__(self.U @ (self.s[:, None] * self.Vh[:measurements]), shape)
        if noise == "uniform_max_singular":
            self.drawn_noise_std = float(torch.rand((), generator=generator, dtype=torch.float64) * self.s.max())

    def decompose(self):
        padded = torch.zeros(self.dim, dtype=torch.float64)
        padded[:len(self.s)] = self.s
        return DenseSVD(padded, self.U, self.Vh, self.shape, self.measurement_shape)

    def arrays(self):
        drawn = {} if self.drawn_noise_std is None else {"noise_std": np.array(self.drawn_noise_std)}
        return {"matrix": self.A.numpy(), **drawn}


class RandomProjection(RandomMatrix):
    """A random orthogonal projection: d_y orthonormal rows (Haar), every singular value 1."""

    def __init__(self, shape, seed: int, measurements: int, noise: str = "task"):
        super().__init__(shape, seed, measurements, singular_values="ones", noise=noise)


def measurement_noise_std(operator: LinearOperator, task_noise_std: float) -> float:
    """The std s of y = A x + s n: the operator's own draw where its noise recipe makes one, else the
    task's noise_std_effective."""
    return task_noise_std if operator.drawn_noise_std is None else operator.drawn_noise_std
