"""Restoration metrics for one measurement: reconstructions against the ground truth, against
the measurement, and (analytic priors) against the exact posterior.

Images live in [-1, 1]; PSNR and SSIM take them to [0, 1] (x / 2 + 1 / 2), clip, and use
data_range 1. `psnr_minmax_ref` is the paper's code's number (tweedie_utility.compute_metrics):
each image min-max normalised to [0, 1] on its own before PSNR, kept only under that name.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from diffsweep import metrics as sample_metrics

LPIPS_SKIPPED = "skipped: restoration.metrics.lpips_weights not set (LPIPS backbones are never downloaded)"


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
    """`samples` (n, C, H, W) restorations of one ground truth `truth` (C, H, W) from y (*m)."""
    truth = truth.unsqueeze(0).expand_as(samples)
    mean = samples.mean(0, keepdim=True)
    residual_norm = (y.unsqueeze(0) - operator.forward(samples)).flatten(1).norm(dim=1)
    values = {
        "psnr": psnr(samples, truth).mean().item(),
        "psnr_of_mean": psnr(mean, truth[:1]).item(),
        "psnr_minmax_ref": psnr_minmax_ref(samples, truth).mean().item(),
        "data_consistency": residual_norm.mean().item(),
        "expected_noise_norm": noise_std * math.sqrt(y.numel()),
        "sample_std": samples.flatten(1).std(0).mean().item() if len(samples) > 1 else 0.0,
    }
    if samples.dim() == 4:
        values["ssim"] = ssim(samples, truth).mean().item()
        values["ssim_of_mean"] = ssim(mean, truth[:1]).item()
    return values


def posterior_metrics(samples, posterior, truth, exact_samples, generator) -> dict:
    """Against the exact posterior of one measurement: mean and covariance errors (relative,
    Frobenius), sliced W2 to exact posterior samples, and the MMSE bound (PSNR of the exact
    posterior mean; an exact posterior sample sits 3.01 dB below it)."""
    flat = samples.double().flatten(1).cpu()
    exact_mean, exact_cov = posterior.mean(), posterior.covariance()
    values = {
        "posterior_mean_error": ((flat.mean(0) - exact_mean).norm() / math.sqrt(flat.shape[1])).item(),
        "sliced_w2_posterior": sample_metrics.sliced_wasserstein2(flat, exact_samples, generator=generator),
        "mmse_psnr": psnr(exact_mean.reshape(1, *truth.shape), truth.unsqueeze(0).double()).item(),
        "exact_sample_psnr": psnr(exact_samples[: len(flat)].reshape(-1, *truth.shape),
                                  truth.unsqueeze(0).double().cpu()).mean().item(),
    }
    if len(flat) > 1:
        values["posterior_cov_error"] = ((flat.T.cov() - exact_cov).norm() / exact_cov.norm().clamp(min=1e-20)).item()
    return values
