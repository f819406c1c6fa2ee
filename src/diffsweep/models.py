"""Score sources behind one interface: a denoiser D(x, sigma) ~ E[x0 | x + sigma n = x].

Every source (the analytic oracle, a trained network, later pretrained checkpoints) is a
`Denoiser`: call it with x of shape (n, ...) and sigma as a float or a tensor of shape (n,).
The score is Tweedie's (D - x) / sigma^2 and is derived, never stored.

Parametrisations are conversions of the same object: a network F is wrapped as
    D(x, sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma))
with the coefficients of the parametrisation's entry in diffsweep.parametrisations.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from diffsweep import architectures
from diffsweep.parametrisations import PARAMETRISATIONS


def as_sigma_column(sigma, x: torch.Tensor) -> torch.Tensor:
    """sigma (float, 0-d or (n,)) as a tensor shaped (n, 1, ..., 1) to broadcast against x."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(x.shape[0])
    return sigma.reshape(-1, *([1] * (x.ndim - 1)))


def score_from_denoiser(denoised: torch.Tensor, x: torch.Tensor, sigma) -> torch.Tensor:
    """Tweedie: grad log p_sigma(x) = (D(x, sigma) - x) / sigma^2."""
    s = as_sigma_column(sigma, x)
    return (denoised - x) / s ** 2


class Denoiser(nn.Module):
    """Base class: subclasses implement `forward(x, sigma) -> D(x, sigma)`."""

    def score(self, x, sigma):
        return score_from_denoiser(self(x, sigma), x, sigma)


class OracleDenoiser(Denoiser):
    """The exact denoiser of an analytic dataset (a Gaussian mixture over flattened samples)."""

    def __init__(self, mixture):
        super().__init__()
        self.mixture = mixture

    def forward(self, x, sigma):
        sigma = torch.as_tensor(sigma, dtype=torch.float64)
        flat = x.reshape(x.shape[0], -1).double()
        return self.mixture.denoise(flat, sigma.double()).reshape(x.shape).to(x.dtype)


class PreconditionedDenoiser(Denoiser):
    """D = c_skip x + c_out F(c_in x, c_noise) around a raw network F(x_in, c_noise)."""

    def __init__(self, net: nn.Module, parametrisation: str, sigma_data: float = 1.0):
        super().__init__()
        PARAMETRISATIONS.get(parametrisation)  # an unknown name fails here, naming the known ones
        self.net = net
        self.parametrisation = parametrisation
        self.sigma_data = sigma_data

    def forward(self, x, sigma):
        s = as_sigma_column(sigma, x)
        c_skip, c_out, c_in = PARAMETRISATIONS.get(self.parametrisation).fn(s, self.sigma_data)
        c_noise = s.reshape(-1).log() / 4
        return c_skip * x + c_out * self.net(c_in * x, c_noise)


# --- networks ---------------------------------------------------------------------------

class FourierEmbedding(nn.Module):
    """Fixed random Fourier features of the scalar noise condition."""

    def __init__(self, channels: int, scale: float = 4.0, seed: int = 0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(channels // 2, generator=generator) * scale)

    def forward(self, c_noise):
        angles = 2 * math.pi * c_noise[:, None] * self.freqs[None, :]
        return torch.cat([angles.cos(), angles.sin()], dim=1)


class MLP(nn.Module):
    """Raw network F(x_in, c_noise) for low-dimensional data: SiLU MLP with a noise embedding."""

    def __init__(self, shape: tuple, hidden: int = 128, depth: int = 3, embedding: int = 32):
        super().__init__()
        dim = math.prod(shape)
        self.embed = FourierEmbedding(embedding)
        layers, width = [], dim + embedding
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.body = nn.Sequential(*layers)

    def forward(self, x_in, c_noise):
        flat = x_in.flatten(1)
        return self.body(torch.cat([flat, self.embed(c_noise.to(x_in.dtype))], dim=1)).reshape(x_in.shape)


class UNet(nn.Module):
    """Raw network F(x_in, c_noise) for images: diffusers' UNet2DModel. Its Fourier time
    embedding takes log(t) itself, so it is given sigma = exp(4 c_noise) (NCSN++'s embedding)."""

    def __init__(self, shape: tuple, channels: tuple = (32, 64), layers_per_block: int = 1,
                 attention: bool = True, norm_groups: int = 8):
        super().__init__()
        from diffusers import UNet2DModel

        if len(shape) != 3:
            raise ValueError(f"arch 'unet' needs image data (C, H, W); this dataset's samples have shape {shape}")
        levels = len(channels)
        down = ["DownBlock2D"] * levels
        up = ["UpBlock2D"] * levels
        if attention:  # attention at the coarsest level only
            down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
        self.unet = UNet2DModel(sample_size=shape[1], in_channels=shape[0], out_channels=shape[0],
                                block_out_channels=tuple(channels), down_block_types=tuple(down),
                                up_block_types=tuple(up), layers_per_block=layers_per_block,
                                time_embedding_type="fourier", norm_num_groups=norm_groups)

    def forward(self, x_in, c_noise):
        return self.unet(x_in, torch.exp(4 * c_noise)).sample


# The network class of each architecture; its parameters are declared (and checked without
# torch) in diffsweep.architectures.
NETWORKS = {"mlp": MLP, "unet": UNet}


def build_network(arch: str, shape, arch_params: dict | None = None, where: str = "") -> nn.Module:
    """The network of architecture `arch` for samples of `shape`; parameters that are not
    allowed raise ValueError naming `where` (e.g. 'models.mlp.arch_params.') and the key."""
    knobs = architectures.check_params(arch, arch_params or {}, where=where)
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    return NETWORKS[arch](shape, **knobs)


def build_denoiser(recipe: dict, shape) -> PreconditionedDenoiser:
    """The untrained denoiser of a `trained` model recipe (see the config schema) for samples of `shape`."""
    net = build_network(recipe["arch"], shape, recipe.get("arch_params"), where="arch_params.")
    return PreconditionedDenoiser(net, recipe["parametrisation"], recipe.get("sigma_data", 1.0))


TRAINED_FORMAT = "a checkpoint written by the train rule (a dict with recipe, shape and ema weights)"


def load_checkpoint(path, map_location="cpu", where: str = "") -> tuple[PreconditionedDenoiser, dict]:
    """The EMA denoiser stored by the train rule (diffsweep.jobs.train_model), and the
    checkpoint's metadata. Read with weights_only=True; any failure is one CheckpointError line
    naming `where` (the model's config path, e.g. "models.unet.") and the path."""
    from diffsweep.checkpoints import CheckpointFile, describe

    file = CheckpointFile(path, "trained checkpoint", TRAINED_FORMAT, where)
    state = file.read(map_location)
    if not isinstance(state, dict) or not {"recipe", "shape", "ema"} <= set(state):
        raise file.error(f"is not a trained diffsweep model: it holds {describe(state)}")
    try:
        denoiser = build_denoiser(state["recipe"], state["shape"])
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise file.error(f"has a recipe that builds no network ({error})") from None
    file.load_state(denoiser, state["ema"])  # the network of its own recipe
    return denoiser.eval(), state
