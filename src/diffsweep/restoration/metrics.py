"""Restoration metrics for one measurement: reconstructions against the ground truth, against
the measurement, and (analytic priors) against the exact posterior. `psnr_measurement` (and its
min-max form) scores the measurement itself on the image grid (`operator.as_image`), the
"input PSNR" a restoration should beat.

Images live in [-1, 1]; PSNR and SSIM take them to [0, 1] (x / 2 + 1 / 2), clip, and use
data_range 1. `psnr_minmax_ref` is the paper's code's number (tweedie_utility.compute_metrics):
each image min-max normalised to [0, 1] on its own before PSNR, kept only under that name.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from diffsweep import metrics as sample_metrics
from diffsweep import stats
from diffsweep.gmm import GaussianMixture

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


# Max-sliced W2 takes the largest 1-D W2 over this many random directions: the benchopt
# Gaussian-mixture benchmark's setting (POT's max_sliced_wasserstein_distance, 100 projections).
MAX_SLICED_PROJECTIONS = 100
SLICED_PROJECTIONS = 256          # sliced W2 (metrics.sliced_wasserstein2's default)
COVERAGE_LEVELS = (0.5, 0.9)      # the restorer's per-coordinate central intervals that calibration checks


def max_sliced_wasserstein(x, y, directions) -> float:
    """Max-sliced W2: the largest 1-D W2 between the projections of x and y on `directions` (P, d),
    i.e. POT's `ot.max_sliced_wasserstein_distance(x, y, projections=directions.T, p=2)`."""
    return _max_sliced_of_sorted(sample_metrics.projected_sorted(x, directions),
                                 sample_metrics.projected_sorted(y, directions))


def _max_sliced_of_sorted(x_sorted, y_sorted) -> float:
    return math.sqrt(float(sample_metrics.w2_squared_sorted(x_sorted, y_sorted).max()))


@dataclass(frozen=True)
class PosteriorMetric:
    """A metric against one measurement's exact posterior as `score(represent(samples))`: `represent`
    maps samples (n, d) to one row per sample (their projections, responsibilities, themselves) and
    `score` a set of rows to the value, so a bootstrap or a floor resamples rows and scores them."""
    represent: Callable
    score: Callable


def _projected_w2(exact, directions, n: int, reduce) -> PosteriorMetric:
    """A sliced distance of n samples to `exact` on `directions`: rows are the samples' projections,
    the score reduces the per-direction W2^2 (mean: sliced W2, max: max-sliced) and takes the root."""
    blocks = sample_metrics.quantile_blocks(sample_metrics.projected_sorted(exact, directions), n)
    return PosteriorMetric(
        lambda x: x @ directions.T,
        lambda rows: math.sqrt(float(reduce(sample_metrics.w2_squared_blocks(torch.sort(rows.T, dim=1).values,
                                                                             blocks)))))


def mmse_gap(x, exact_mean) -> float:
    """||mean(x) - E[x | y]||^2 / d: what the sample mean loses against the MMSE estimate, per
    coordinate (E||x - m||^2 - E||x - E[x | y]||^2 over the posterior, for any estimate m)."""
    return float(((x.mean(0) - exact_mean) ** 2).mean())


def mode_weight_gap(responsibilities, weights) -> float:
    """Total variation between the posterior's component weights and the share of the samples each
    component explains (the mean of their responsibilities, (n, K)): 0 in expectation for exact samples."""
    return 0.5 * float((responsibilities.mean(0) - weights).abs().sum())


def coverage(x, exact, level: float) -> float:
    """The share of (exact sample, coordinate) pairs inside the per-coordinate central `level`
    interval of x (quantiles (1 -+ level) / 2, linear interpolation): `level` for a calibrated x."""
    return _coverage_of_sorted(x, exact.T.sort(dim=1).values.contiguous(), level)


def _coverage_of_sorted(x, exact_sorted, level: float) -> float:
    """`coverage` from the exact samples sorted per coordinate, (d, m): counts by binary search."""
    low, high = torch.quantile(x, torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=x.dtype), dim=0)
    inside = (torch.searchsorted(exact_sorted, high.unsqueeze(1).contiguous(), right=True)
              - torch.searchsorted(exact_sorted, low.unsqueeze(1).contiguous(), right=False))
    return float(inside.sum()) / exact_sorted.numel()


def posterior_mixture(posterior) -> GaussianMixture:
    """The exact posterior as a GaussianMixture (log densities, responsibilities), without the
    components whose weight underflowed to 0 (a measurement far from a mode: e^-800 and below),
    which hold no mass and which a mixture refuses."""
    keep = posterior.weights > 0
    return GaussianMixture(posterior.weights[keep], posterior.means[keep], posterior.covariances[keep])


def posterior_metric_table(posterior, exact, n: int, sliced_directions,
                           max_sliced_directions) -> dict[str, PosteriorMetric]:
    """The metrics of n samples against the exact posterior, by column name; `exact` (m, d) exact
    posterior samples."""
    mixture = posterior_mixture(posterior)
    exact_mean = posterior.mean()
    exact_sorted = exact.T.sort(dim=1).values.contiguous()      # per coordinate, for coverage
    identity = lambda x: x       # noqa: E731
    return {
        "max_sliced_w2_posterior": _projected_w2(exact, max_sliced_directions, n, torch.max),
        "sliced_w2_posterior": _projected_w2(exact, sliced_directions, n, torch.mean),
        "mmse_gap": PosteriorMetric(identity, lambda x: mmse_gap(x, exact_mean)),
        "posterior_mode_weight_error": PosteriorMetric(mixture.responsibilities,
                                                      lambda r: mode_weight_gap(r, mixture.weights)),
        **{f"coverage_{round(100 * level)}": PosteriorMetric(
            identity, functools.partial(_coverage_of_sorted, exact_sorted=exact_sorted, level=level))
           for level in COVERAGE_LEVELS},
    }


def posterior_metrics(samples, posterior, truth, exact_samples, generator, seed: int = 0, floor_repeats: int = 0,
                      resamples: int = 0) -> dict:
    """Against the exact posterior of one measurement: mean and covariance errors (relative,
    Frobenius), the MMSE bound (PSNR of the exact posterior mean; an exact posterior sample sits
    3.01 dB below it), and the metrics of `posterior_metric_table` against `exact_samples`. Each of
    those also gets, with `floor_repeats`, its floor (`<metric>_floor`, `_floor_low`, `_floor_high`:
    stats.metric_floor, exact sample sets of the same size against the same exact samples) and, with
    `resamples`, its sampling error (`<metric>_se`: bootstrap over the samples, stats.sampling_replicates,
    rows drawn from `seed`: paired between runs of one seed). `generator` draws the sliced-W2
    directions; `seed` the max-sliced directions (the same for every run of the seed) and the floors'
    exact sets."""
    flat = samples.double().flatten(1).cpu()
    exact_mean, exact_cov = posterior.mean(), posterior.covariance()
    dim = flat.shape[1]
    sliced_directions = sample_metrics.random_directions(SLICED_PROJECTIONS, dim, generator)
    max_sliced_directions = sample_metrics.random_directions(MAX_SLICED_PROJECTIONS, dim,
                                                             torch.Generator().manual_seed(seed))
    table = posterior_metric_table(posterior, exact_samples, len(flat), sliced_directions, max_sliced_directions)
    values = {
        "posterior_mean_error": ((flat.mean(0) - exact_mean).norm() / math.sqrt(dim)).item(),
        "mmse_psnr": psnr(exact_mean.reshape(1, *truth.shape), truth.unsqueeze(0).double()).item(),
        "exact_sample_psnr": psnr(exact_samples[: len(flat)].reshape(-1, *truth.shape),
                                  truth.unsqueeze(0).double().cpu()).mean().item(),
    }
    if len(flat) > 1:
        values["posterior_cov_error"] = ((flat.T.cov() - exact_cov).norm() / exact_cov.norm().clamp(min=1e-20)).item()
    pool = posterior.sample(floor_repeats * len(flat), torch.Generator().manual_seed(FLOOR_SEED + seed)) \
        if floor_repeats >= 2 else None
    # the rows of stats.sampling_replicates (stats.resample_rows), as a torch index: indexing a tensor
    # with a numpy array costs more than the metrics here
    resampled = torch.from_numpy(stats.resample_rows(len(flat), resamples, seed)) if resamples and len(flat) > 1 \
        else None
    for name, metric in table.items():
        rows = metric.represent(flat)
        values[name] = metric.score(rows)
        if resampled is not None:
            replicates = [metric.score(rows.index_select(0, index)) for index in resampled]
            values[f"{name}_se"] = float(torch.tensor(replicates, dtype=torch.float64).std())
        if pool is not None:
            floor = stats.metric_floor(lambda n, i, pooled=metric.represent(pool): pooled[i * n:(i + 1) * n],
                                       lambda rows, _reference, score=metric.score: score(rows), len(flat),
                                       reference=None, key=name, repeats=floor_repeats, first_seed=0)
            values.update({f"{name}_floor": floor.mean, f"{name}_floor_low": floor.low,
                           f"{name}_floor_high": floor.high})
    return values


# The floors' exact sample sets are drawn from FLOOR_SEED + the run's seed: seeds apart from those the
# data preparation and the run use (stats.metric_floor's first seed).
FLOOR_SEED = 1_000_003


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
