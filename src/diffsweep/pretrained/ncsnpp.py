"""score_sde's NCSN++ (Song et al. 2021), the network of the FFHQ-256 VE checkpoint.

Only the configuration of `configs/ve/ffhq_256_ncsnpp_continuous.py` is built: Gaussian
Fourier embedding of log(sigma), BigGAN residual blocks with FIR up/down-sampling,
`output_skip` / `input_skip` pyramids combined by `sum`, skip_rescale, DDPM attention,
scale_by_sigma, data in [0, 1] (centered False). The modules sit in one flat `all_modules`
list in upstream's order, so parameter names and the order of `parameters()` (which the
EMA's shadow_params follow) are upstream's.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diffsweep.models import Denoiser, as_sigma_column

SQRT2 = math.sqrt(2.0)


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(channels // 4, 32), channels, eps=1e-6)


def fir_kernel(taps, gain: float) -> torch.Tensor:
    """The separable FIR filter outer(taps, taps), normalised to sum to `gain`."""
    k = np.outer(taps, taps).astype(np.float32)
    return torch.from_numpy(k / k.sum() * gain)


def upfirdn2d(x: torch.Tensor, kernel: torch.Tensor, up: int = 1, down: int = 1, pad=(0, 0)) -> torch.Tensor:
    """Zero-insertion upsampling by `up`, zero padding, FIR filtering, then keeping every
    `down`-th pixel: score_sde's upfirdn2d_native for non-negative pads, channels filtered
    independently."""
    n, c, h, w = x.shape
    x = x.reshape(n * c, 1, h, 1, w, 1)
    x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1]).reshape(n * c, 1, h * up, w * up)
    x = F.pad(x, [pad[0], pad[1], pad[0], pad[1]])
    x = F.conv2d(x, torch.flip(kernel, [0, 1])[None, None])
    x = x[:, :, ::down, ::down]
    return x.reshape(n, c, x.shape[2], x.shape[3])


class FIRResample(nn.Module):
    """x2 FIR up- or down-sampling without a convolution (upsample_2d / downsample_2d)."""

    def __init__(self, taps, up: bool):
        super().__init__()
        self.up = up
        # Not in the state_dict: upstream rebuilds the filter at every call.
        self.register_buffer("kernel", fir_kernel(taps, 4.0 if up else 1.0), persistent=False)

    def forward(self, x):
        p = self.kernel.shape[0] - 2
        if self.up:
            return upfirdn2d(x, self.kernel, up=2, pad=((p + 1) // 2 + 1, p // 2))
        return upfirdn2d(x, self.kernel, down=2, pad=((p + 1) // 2, p // 2))


class GaussianFourierProjection(nn.Module):
    """[sin | cos](2 pi W log sigma) with fixed random W (not trained, absent from the EMA)."""

    def __init__(self, size: int, scale: float):
        super().__init__()
        self.W = nn.Parameter(torch.randn(size) * scale, requires_grad=False)

    def forward(self, log_sigma):
        angles = log_sigma[:, None] * self.W[None, :] * 2 * np.pi
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class NIN(nn.Module):
    """A 1x1 convolution stored as a (in, out) matrix W and a bias b."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.W = nn.Parameter(torch.zeros(in_dim, out_dim))
        self.b = nn.Parameter(torch.zeros(out_dim))

    def forward(self, x):
        return (torch.einsum("nihw,io->nohw", x, self.W) + self.b[None, :, None, None])


class AttnBlockpp(nn.Module):
    """DDPM self-attention over positions (one head), output rescaled by 1/sqrt(2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.GroupNorm_0 = group_norm(channels)
        self.NIN_0, self.NIN_1, self.NIN_2, self.NIN_3 = (NIN(channels, channels) for _ in range(4))

    def forward(self, x):
        n, c, h, w = x.shape
        normed = self.GroupNorm_0(x)
        q, k, v = self.NIN_0(normed), self.NIN_1(normed), self.NIN_2(normed)
        weights = torch.einsum("bchw,bcij->bhwij", q, k) * c ** (-0.5)
        weights = F.softmax(weights.reshape(n, h, w, h * w), dim=-1).reshape(n, h, w, h, w)
        out = self.NIN_3(torch.einsum("bhwij,bcij->bchw", weights, v))
        return (x + out) / SQRT2


class ResnetBlockBigGANpp(nn.Module):
    """BigGAN residual block: FIR resampling inside (both branches), time bias, 1/sqrt(2) rescale."""

    def __init__(self, in_ch: int, out_ch: int | None, temb_dim: int, fir_taps, up: bool = False, down: bool = False):
        super().__init__()
        out_ch = out_ch or in_ch
        self.resample = FIRResample(fir_taps, up) if (up or down) else None
        self.GroupNorm_0 = group_norm(in_ch)
        self.Conv_0 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.Dense_0 = nn.Linear(temb_dim, out_ch)
        self.GroupNorm_1 = group_norm(out_ch)
        self.Conv_1 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        self.Conv_2 = nn.Conv2d(in_ch, out_ch, 1) if (in_ch != out_ch or up or down) else None

    def forward(self, x, temb):
        h = F.silu(self.GroupNorm_0(x))
        if self.resample is not None:
            h, x = self.resample(h), self.resample(x)
        h = self.Conv_0(h) + self.Dense_0(F.silu(temb))[:, :, None, None]
        h = self.Conv_1(F.silu(self.GroupNorm_1(h)))  # Dropout_0 (identity at inference) sits before Conv_1
        if self.Conv_2 is not None:
            x = self.Conv_2(x)
        return (x + h) / SQRT2


class Combine(nn.Module):
    """input_skip pyramid joined to the features: 1x1 conv of the pyramid, summed."""

    def __init__(self, dim1: int, dim2: int):
        super().__init__()
        self.Conv_0 = nn.Conv2d(dim1, dim2, 1)

    def forward(self, pyramid, h):
        return self.Conv_0(pyramid) + h


class NCSNpp(nn.Module):
    """score(x, sigma) for x in [0, 1] of shape (n, C, H, W) and sigma of shape (n,), both in
    [0, 1] data units. `num_scales` only sizes the unused `sigmas` buffer of the checkpoint."""

    def __init__(self, *, image_size: int, channels: int, nf: int, ch_mult, num_res_blocks: int, attn_resolutions,
                 fourier_scale: float, fir_kernel, sigma_min: float, sigma_max: float, num_scales: int):
        super().__init__()
        self.num_res_blocks = num_res_blocks
        self.attn_resolutions = tuple(attn_resolutions)
        self.num_resolutions = len(ch_mult)
        # score_sde's discrete sigma table; the continuous forward never reads it, the checkpoint stores it.
        self.register_buffer("sigmas", torch.tensor(np.exp(np.linspace(np.log(sigma_max), np.log(sigma_min), num_scales))))
        temb_dim = 4 * nf
        self.pyramid_upsample = FIRResample(fir_kernel, up=True)
        self.pyramid_downsample = FIRResample(fir_kernel, up=False)

        def resblock(in_ch, out_ch=None, **updown):
            return ResnetBlockBigGANpp(in_ch, out_ch, temb_dim, fir_kernel, **updown)

        modules = [GaussianFourierProjection(nf, fourier_scale), nn.Linear(2 * nf, temb_dim), nn.Linear(temb_dim, temb_dim),
                   nn.Conv2d(channels, nf, 3, padding=1)]
        skip_channels, in_ch = [nf], nf
        for level in range(self.num_resolutions):
            resolution = image_size // 2 ** level
            for _ in range(num_res_blocks):
                modules.append(resblock(in_ch, nf * ch_mult[level]))
                in_ch = nf * ch_mult[level]
                if resolution in self.attn_resolutions:
                    modules.append(AttnBlockpp(in_ch))
                skip_channels.append(in_ch)
            if level != self.num_resolutions - 1:
                modules += [resblock(in_ch, down=True), Combine(channels, in_ch)]
                skip_channels.append(in_ch)
        modules += [resblock(in_ch), AttnBlockpp(in_ch), resblock(in_ch)]
        for level in reversed(range(self.num_resolutions)):
            resolution = image_size // 2 ** level
            for _ in range(num_res_blocks + 1):
                modules.append(resblock(in_ch + skip_channels.pop(), nf * ch_mult[level]))
                in_ch = nf * ch_mult[level]
            if resolution in self.attn_resolutions:
                modules.append(AttnBlockpp(in_ch))
            modules += [group_norm(in_ch), nn.Conv2d(in_ch, channels, 3, padding=1)]  # output_skip head
            if level != 0:
                modules.append(resblock(in_ch, up=True))
        self.all_modules = nn.ModuleList(modules)

    def forward(self, x, sigma):
        modules = iter(self.all_modules)
        temb = next(modules)(torch.log(sigma))
        temb = next(modules)(temb)
        temb = next(modules)(F.silu(temb))
        x = 2 * x - 1  # centered False: the net takes [0, 1] data and works in [-1, 1]
        pyramid_in = x
        skips = [next(modules)(x)]
        for level in range(self.num_resolutions):
            for _ in range(self.num_res_blocks):
                h = next(modules)(skips[-1], temb)
                if h.shape[-1] in self.attn_resolutions:
                    h = next(modules)(h)
                skips.append(h)
            if level != self.num_resolutions - 1:
                h = next(modules)(skips[-1], temb)
                pyramid_in = self.pyramid_downsample(pyramid_in)
                skips.append(next(modules)(pyramid_in, h))
        h = skips[-1]
        h = next(modules)(h, temb)
        h = next(modules)(h)
        h = next(modules)(h, temb)
        pyramid = None
        for level in reversed(range(self.num_resolutions)):
            for _ in range(self.num_res_blocks + 1):
                h = next(modules)(torch.cat([h, skips.pop()], dim=1), temb)
            if h.shape[-1] in self.attn_resolutions:
                h = next(modules)(h)
            norm, conv = next(modules), next(modules)
            head = conv(F.silu(norm(h)))
            pyramid = head if pyramid is None else self.pyramid_upsample(pyramid) + head
            if level != 0:
                h = next(modules)(h, temb)
        return pyramid / sigma.reshape(-1, 1, 1, 1)  # scale_by_sigma


class NCSNppDenoiser(Denoiser):
    """D(x, sigma) in [-1, 1] VE coordinates from a score network on [0, 1] data.

    x01 = (x + 1) / 2 is the same noisy image in [0, 1] units, with noise level sigma / 2;
    Tweedie there gives D01 = x01 + (sigma / 2)^2 score, and D = 2 D01 - 1.
    """

    def __init__(self, net: NCSNpp):
        super().__init__()
        self.net = net

    def forward(self, x, sigma):
        s01 = as_sigma_column(sigma, x) / 2
        x01 = (x + 1) / 2
        denoised01 = x01 + s01 ** 2 * self.net(x01, s01.reshape(-1))
        return 2 * denoised01 - 1
