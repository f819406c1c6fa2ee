"""Restoration metrics for one measurement: reconstructions against the ground truth, against
the measurement, and (analytic priors) against the exact posterior. `psnr_measurement` (and its
min-max form) scores the measurement itself on the image grid (`operator.as_image`), the
"input PSNR" a restoration should beat.

Images live in [-1, 1]; PSNR and SSIM take them to [0, 1] (x / 2 + 1 / 2), clip, and use
data_range 1. `psnr_minmax_ref` is the paper's code's number (tweedie_utility.compute_metrics):
each image min-max normalised to [0, 1] on its own before PSNR, kept only under that name.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F

from diffsweep import metrics as sample_metrics

LPIPS_KEY = "restoration.metrics.lpips_weights"
LPIPS_SKIPPED = f"skipped: {LPIPS_KEY} not set (LPIPS backbones are never downloaded)"
LPIPS_MIN_SIDE = 64       # smaller images are upsampled (bilinear, integer factor) to at least this side
TORCHVISION_WEIGHTS = {"alex": "alexnet-owt-7be5be79.pth", "vgg": "vgg16-397923af.pth"}


def to_unit_range(x):
    return (x.double() / 2 + 0.5).clamp(0, 1)


def psnr(x_hat, x) -> torch.Tensor:
    """Per image, on [0, 1] with data_range 1."""
    mse = ((to_unit_range(x_hat) - to_unit_range(x)) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp(min=1e-20))


def psnr_minmax_ref(x_hat, x) -> torch.Tensor:
    """The reference code's PSNR: both images min-max normalised per image, then data_range 1."""
    def normalise(v):
        flat = v.double().flatten(1)
        low, high = flat.min(1, keepdim=True).values, flat.max(1, keepdim=True).values
        return (flat - low) / (high - low).clamp(min=1e-20)
    mse = ((normalise(x_hat) - normalise(x)) ** 2).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp(min=1e-20))


def ssim(x_hat, x, window: int = 7) -> torch.Tensor:
    """Per image SSIM on [0, 1], data_range 1, as skimage's default: a uniform window (7, or the
    largest odd size the image allows), K1 = 0.01, K2 = 0.03, sample covariances, valid region."""
    a, b = to_unit_range(x_hat), to_unit_range(x)
    window = min(window, a.shape[-1], a.shape[-2])
    window -= 1 - window % 2
    channels = a.shape[1]
    kernel = torch.ones(channels, 1, window, window, dtype=a.dtype) / window ** 2

    def mean(v):
        return F.conv2d(v, kernel, groups=channels)
    correction = window ** 2 / (window ** 2 - 1) if window > 1 else 1.0
    mu_a, mu_b = mean(a), mean(b)
    var_a = correction * (mean(a * a) - mu_a ** 2)
    var_b = correction * (mean(b * b) - mu_b ** 2)
    cov = correction * (mean(a * b) - mu_a * mu_b)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    index = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
    return index.flatten(1).mean(1)


def measurement_metrics(samples, truth, y, operator, noise_std: float) -> dict:
    """`samples` (n, C, H, W) restorations of one ground truth `truth` (C, H, W) from y (*m). A
    metric that is a mean over the restorations also gets its standard error `<metric>_se`
    (`mean_and_se`; with one restoration none)."""
    truth = truth.unsqueeze(0).expand_as(samples)
    mean = samples.mean(0, keepdim=True)
    measured = operator.as_image(y.unsqueeze(0))     # the measurement on the image grid (the baseline row)
    residual_norm = (y.unsqueeze(0) - operator.forward(samples)).flatten(1).norm(dim=1)
    values = {
        **mean_and_se("psnr", psnr(samples, truth)),
        "psnr_of_mean": psnr(mean, truth[:1]).item(),
        **mean_and_se("psnr_minmax_ref", psnr_minmax_ref(samples, truth)),
        "psnr_measurement": psnr(measured, truth[:1]).item(),
        "psnr_measurement_minmax_ref": psnr_minmax_ref(measured, truth[:1]).item(),
        **mean_and_se("data_consistency", residual_norm),
        "expected_noise_norm": noise_std * math.sqrt(y.numel()),
        "sample_std": samples.flatten(1).std(0).mean().item() if len(samples) > 1 else 0.0,
    }
    if samples.dim() == 4:
        values.update(mean_and_se("ssim", ssim(samples, truth)))
        values["ssim_of_mean"] = ssim(mean, truth[:1]).item()
    return values


def mean_and_se(name: str, per_sample) -> dict:
    """{name: the mean of per-restoration values, name_se: its standard error s / sqrt(n)}: the
    estimator's own sampling error over the measurement's restorations (docs/statistics.md); the
    se is left out for one restoration (the table shows NaN)."""
    per_sample = per_sample.double().flatten()
    values = {name: per_sample.mean().item()}
    if len(per_sample) > 1:
        values[f"{name}_se"] = (per_sample.std() / math.sqrt(len(per_sample))).item()
    return values


def posterior_metrics(samples, posterior, truth, exact_samples, generator, resamples: int = 0,
                      seed: int = 0) -> dict:
    """Against the exact posterior of one measurement: mean and covariance errors (relative,
    Frobenius), sliced W2 to exact posterior samples, and the MMSE bound (PSNR of the exact
    posterior mean; an exact posterior sample sits 3.01 dB below it). With `resamples` (and at
    least 2 restorations), sliced W2's bootstrap over the restorations (`stats.sliced_w2_replicates`,
    rows drawn from `seed`) gives `sliced_w2_posterior_se`."""
    from diffsweep import stats

    flat = samples.double().flatten(1).cpu()
    exact_mean, exact_cov = posterior.mean(), posterior.covariance()
    # the projections sliced_wasserstein2 would draw from `generator` (its default n_projections)
    directions = sample_metrics.random_directions(256, flat.shape[1], generator)
    if resamples and len(flat) > 1:
        distance, replicates = stats.sliced_w2_replicates(flat, exact_samples, directions, resamples, seed)
        se = {"sliced_w2_posterior_se": float(replicates.std(ddof=1))}
    else:
        distance, se = sample_metrics.sliced_wasserstein2_sorted(sample_metrics.projected_sorted(flat, directions),
                                                                 sample_metrics.projected_sorted(exact_samples,
                                                                                                 directions)), {}
    values = {
        "posterior_mean_error": ((flat.mean(0) - exact_mean).norm() / math.sqrt(flat.shape[1])).item(),
        "sliced_w2_posterior": distance, **se,
        "mmse_psnr": psnr(exact_mean.reshape(1, *truth.shape), truth.unsqueeze(0).double()).item(),
        "exact_sample_psnr": psnr(exact_samples[: len(flat)].reshape(-1, *truth.shape),
                                  truth.unsqueeze(0).double().cpu()).mean().item(),
    }
    if len(flat) > 1:
        values["posterior_cov_error"] = ((flat.T.cov() - exact_cov).norm() / exact_cov.norm().clamp(min=1e-20)).item()
    return values


class Lpips:
    """LPIPS (Zhang et al. 2018) through the `lpips` package: the package's calibrated linear layers
    (v0.1, shipped inside the package) on a backbone whose ImageNet weights are read from a local
    torchvision state dict (`restoration.metrics.lpips_weights`), so nothing is downloaded. With
    torchvision's own file (TORCHVISION_WEIGHTS) it equals `lpips.LPIPS(net=net)`."""

    def __init__(self, weights_path, net: str = "alex", device="cpu"):
        import lpips

        with warnings.catch_warnings():   # lpips asks torchvision for `pretrained=False`, a deprecated spelling
            warnings.filterwarnings("ignore", message="The parameter 'pretrained' is deprecated", category=UserWarning)
            warnings.filterwarnings("ignore", message="Arguments other than a weight enum", category=UserWarning)
            self.model = lpips.LPIPS(net=net, pretrained=True, pnet_rand=True, verbose=False)  # backbone left random
        self.model.net.load_state_dict(backbone_state(torch.load(weights_path, map_location="cpu", weights_only=True),
                                                      self.model.net.state_dict(), weights_path))
        self.model.to(device).eval()
        self.device = device

    @classmethod
    def from_options(cls, options: dict, is_image: bool, device) -> tuple["Lpips | None", str]:
        """(scorer, "ok"), or (None, why LPIPS is skipped)."""
        path = options.get("lpips_weights")
        if not path:
            return None, LPIPS_SKIPPED
        if not Path(path).is_file():
            return None, f"skipped: {LPIPS_KEY}: file not found: {path}"
        if not is_image:
            return None, "skipped: LPIPS needs image data"
        return cls(path, options.get("lpips_net", "alex"), device), "ok"

    def __call__(self, x_hat, x) -> torch.Tensor:
        """Per image distance between (n, C, H, W) batches in [-1, 1] (clipped; grey repeated to RGB)."""
        with torch.no_grad():
            return self.model(lpips_input(x_hat).to(self.device), lpips_input(x).to(self.device)).flatten().double().cpu()


def lpips_input(x) -> torch.Tensor:
    x = x.float().clamp(-1, 1)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    factor = math.ceil(LPIPS_MIN_SIDE / min(x.shape[-2:]))
    if factor > 1:
        x = F.interpolate(x, scale_factor=factor, mode="bilinear", align_corners=False)
    return x


def backbone_state(torchvision_state: dict, lpips_state: dict, path) -> dict:
    """torchvision's `features.<i>.<param>` keys renamed to the lpips backbone's `slice<k>.<i>.<param>`."""
    renamed = {}
    for key in lpips_state:
        _, index, param = key.split(".")
        source = f"features.{index}.{param}"
        if source not in torchvision_state:
            raise ValueError(f"{LPIPS_KEY}: {path} is not a torchvision state dict of this backbone (no '{source}'; "
                             f"expected e.g. torchvision's {' or '.join(TORCHVISION_WEIGHTS.values())})")
        renamed[key] = torchvision_state[source]
    return renamed
