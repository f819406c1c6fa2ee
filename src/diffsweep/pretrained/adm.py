"""guided-diffusion's ADM UNet (Dhariwal & Nichol), the network of the DPS FFHQ-256 VP checkpoint.

Module and parameter names follow guided_diffusion/unet.py exactly, so its plain state_dict
(`ffhq_10m.pt`) loads with strict=True. Only what the unconditional FFHQ/ImageNet configs use
is built: 2-D, no class label, float32, QKVAttentionLegacy (use_new_attention_order False).
The forward takes the timestep as a float: the sinusoidal embedding is defined for fractional
t, which `ADMDenoiser` uses to evaluate the network at any noise level, not only the 1000 of
the training chain.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from diffsweep import noise
from diffsweep.models import Denoiser, as_sigma_column


class GroupNorm32(nn.GroupNorm):
    """32-group norm computed in float32 whatever the input dtype (guided-diffusion's)."""

    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x):
        return super().forward(x.float()).type(x.dtype)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding [cos | sin] of (possibly fractional) timesteps t of shape (n,)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    angles = t[:, None].float() * freqs[None]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class Resample(nn.Module):
    """Nearest x2 upsampling or 2x2 average pooling, without a convolution (inside a ResBlock)."""

    def __init__(self, up: bool):
        super().__init__()
        self.up = up

    def forward(self, x):
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.up else F.avg_pool2d(x, 2, 2)


class Upsample(nn.Module):
    """Nearest x2 then a 3x3 convolution (the resblock_updown=False path)."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Downsample(nn.Module):
    """Stride-2 3x3 convolution (the resblock_updown=False path)."""

    def __init__(self, channels: int):
        super().__init__()
        self.op = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x):
        return self.op(x)


class ResBlock(nn.Module):
    """Residual block conditioned on the time embedding, optionally resampling by 2."""

    def __init__(self, channels: int, emb_channels: int, out_channels: int | None = None,
                 scale_shift_norm: bool = True, up: bool = False, down: bool = False):
        super().__init__()
        out_channels = out_channels or channels
        self.scale_shift_norm = scale_shift_norm
        self.in_layers = nn.Sequential(GroupNorm32(channels), nn.SiLU(), nn.Conv2d(channels, out_channels, 3, padding=1))
        self.resample = Resample(up) if (up or down) else None
        self.emb_layers = nn.Sequential(nn.SiLU(), nn.Linear(emb_channels, 2 * out_channels if scale_shift_norm else out_channels))
        # Index 2 is guided-diffusion's Dropout (identity at inference); kept so the conv is out_layers.3.
        self.out_layers = nn.Sequential(GroupNorm32(out_channels), nn.SiLU(), nn.Identity(),
                                        nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip_connection = nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)

    def forward(self, x, emb):
        if self.resample is not None:  # resample between the activation and the first conv, and the skip
            h = self.in_layers[2](self.resample(self.in_layers[:2](x)))
            x = self.resample(x)
        else:
            h = self.in_layers(x)
        emb_out = self.emb_layers(emb).type(h.dtype)[:, :, None, None]
        if self.scale_shift_norm:
            scale, shift = emb_out.chunk(2, dim=1)
            h = self.out_layers[0](h) * (1 + scale) + shift
            h = self.out_layers[1:](h)
        else:
            h = self.out_layers(h + emb_out)
        return self.skip_connection(x) + h


class AttentionBlock(nn.Module):
    """Self-attention over positions, heads split before q/k/v (QKVAttentionLegacy)."""

    def __init__(self, channels: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.norm = GroupNorm32(channels)
        self.qkv = nn.Conv1d(channels, 3 * channels, 1)
        self.proj_out = nn.Conv1d(channels, channels, 1)

    def forward(self, x):
        b, c, *spatial = x.shape
        x = x.reshape(b, c, -1)
        qkv = self.qkv(self.norm(x))
        length = qkv.shape[-1]
        head = c // self.num_heads
        q, k, v = qkv.reshape(b * self.num_heads, 3 * head, length).split(head, dim=1)
        scale = 1 / math.sqrt(math.sqrt(head))  # split between q and k, as upstream (fp16 range)
        weight = torch.einsum("bct,bcs->bts", q * scale, k * scale)
        weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
        h = torch.einsum("bts,bcs->bct", weight, v).reshape(b, c, length)
        return (x + self.proj_out(h)).reshape(b, c, *spatial)


class TimestepSequential(nn.Sequential):
    """A sequence of layers that all receive the time embedding."""

    def forward(self, x, emb):
        for layer in self:
            x = layer(x, emb) if isinstance(layer, ResBlock) else layer(x)
        return x


class ADMUNet(nn.Module):
    """UNetModel(x, t) -> out_channels maps. `attention_resolutions` are feature-map sizes
    (create_vp_model's "16"), `num_head_channels` > 0 overrides `num_heads`, `learn_sigma`
    doubles the output channels (eps, then the variance interpolation v)."""

    def __init__(self, *, image_size: int, in_channels: int, model_channels: int, num_res_blocks: int,
                 channel_mult, attention_resolutions, num_heads: int, num_head_channels: int,
                 num_heads_upsample: int, use_scale_shift_norm: bool, resblock_updown: bool, learn_sigma: bool):
        super().__init__()
        self.model_channels = model_channels
        self.out_channels = in_channels * (2 if learn_sigma else 1)
        attention_ds = {image_size // int(res) for res in attention_resolutions}
        emb = 4 * model_channels

        def heads(channels, count):
            return channels // num_head_channels if num_head_channels > 0 else count

        def resblock(ch, out=None, **updown):
            return ResBlock(ch, emb, out, use_scale_shift_norm, **updown)

        self.time_embed = nn.Sequential(nn.Linear(model_channels, emb), nn.SiLU(), nn.Linear(emb, emb))
        ch = int(channel_mult[0] * model_channels)
        self.input_blocks = nn.ModuleList([TimestepSequential(nn.Conv2d(in_channels, ch, 3, padding=1))])
        skip_channels, ds = [ch], 1
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                layers = [resblock(ch, int(mult * model_channels))]
                ch = int(mult * model_channels)
                if ds in attention_ds:
                    layers.append(AttentionBlock(ch, heads(ch, num_heads)))
                self.input_blocks.append(TimestepSequential(*layers))
                skip_channels.append(ch)
            if level != len(channel_mult) - 1:
                self.input_blocks.append(TimestepSequential(resblock(ch, down=True) if resblock_updown else Downsample(ch)))
                skip_channels.append(ch)
                ds *= 2
        self.middle_block = TimestepSequential(resblock(ch), AttentionBlock(ch, heads(ch, num_heads)), resblock(ch))
        upsample_heads = num_heads if num_heads_upsample == -1 else num_heads_upsample
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [resblock(ch + skip_channels.pop(), int(model_channels * mult))]
                ch = int(model_channels * mult)
                if ds in attention_ds:
                    layers.append(AttentionBlock(ch, heads(ch, upsample_heads)))
                if level and i == num_res_blocks:
                    layers.append(resblock(ch, up=True) if resblock_updown else Upsample(ch))
                    ds //= 2
                self.output_blocks.append(TimestepSequential(*layers))
        self.out = nn.Sequential(GroupNorm32(ch), nn.SiLU(), nn.Conv2d(ch, self.out_channels, 3, padding=1))

    def forward(self, x, timesteps):
        emb = self.time_embed(timestep_embedding(timesteps, self.model_channels))
        skips, h = [], x
        for block in self.input_blocks:
            h = block(h, emb)
            skips.append(h)
        h = self.middle_block(h, emb)
        for block in self.output_blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)


class ADMDenoiser(Denoiser):
    """D(x, sigma) of a VP eps-network trained on the discrete linear-beta chain.

    In VE coordinates x = x_t / sqrt(abar), so abar = 1 / (1 + sigma^2), the network sees
    sqrt(abar) x, and D = x - sigma eps with eps the first `in_channels` outputs (the rest is
    the learned variance, unused by a denoiser). The timestep is the exact fractional t with
    abar(t) = 1 / (1 + sigma^2), where -log abar is interpolated linearly in t between the
    chain's integer steps; at a table sigma this is the integer t the reference code uses.
    Outside the table (sigma < 0.0100005 or > 157.4) t is clamped to [0, T - 1]: the network
    never saw other timesteps, while the input scaling stays exact.
    """

    def __init__(self, net: ADMUNet, beta_min: float = noise.VP_BETA_MIN, beta_max: float = noise.VP_BETA_MAX,
                 timesteps: int = noise.VP_TIMESTEPS):
        super().__init__()
        self.net = net
        alphas_cumprod = noise.vp_alphas_cumprod(beta_min, beta_max, timesteps)
        # -log abar_t = log(1 + sigma_t^2), increasing in t; float64 so the inversion is exact.
        self.register_buffer("neg_log_alpha_bar", torch.from_numpy(-np.log(alphas_cumprod)), persistent=False)

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        """Fractional t in [0, T - 1] with -log abar(t) = log(1 + sigma^2), for sigma of shape (n,)."""
        table = self.neg_log_alpha_bar
        target = torch.log1p(sigma.to(table.dtype) ** 2)
        upper = torch.searchsorted(table, target).clamp(1, len(table) - 1)
        low, high = table[upper - 1], table[upper]
        t = (upper - 1) + (target - low) / (high - low)
        return t.clamp(0, len(table) - 1)

    def forward(self, x, sigma):
        s = as_sigma_column(sigma, x)
        # t from sigma as given (float64 for a float), not from its float32 copy: a table sigma gives an integer t.
        exact = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).expand(x.shape[0])
        t = self.timestep(exact)
        eps = self.net(x / (1 + s ** 2).sqrt(), t.to(torch.float32))[:, : x.shape[1]]
        return x - s * eps
