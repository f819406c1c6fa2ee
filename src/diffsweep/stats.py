"""The statistics behind every table, figure and comparison (docs/statistics.md).

- `seed_interval`      the mean over seeds with a t or bootstrap (percentile, BCa) interval
- `t_half_widths`, `normal_half_widths`  the same t interval, and a run's estimate +- z se, for many cells at once
- `sampling_interval`  one run's estimator error: the metric recomputed on resamples of its samples
- `sliced_w2_replicates`, `mmd_replicates`, `energy_distance_replicates`  the same bootstrap for the
  distances of metrics.py, from what they compute once (sorted projections, pairwise kernel values)
- `metric_floor`       what exact samples of the run's size score: the metric's floor on analytic data
- `paired_test`        one configuration against another over the seeds they share
- `normal_test`        a difference against its standard error (one run a side, their `<metric>_se`)
- `paired_tests`       `paired_test` for many pairs of configurations at once
- `holm`               Holm's step-down adjustment of a family of p-values
- `compare_column`     best / tied / worse per cell of a table column, and the caption that says how
- `seeds_needed`       seeds a paired comparison needs for 80% power (noncentral t)
- `variance_components`  training-seed against sampling-seed variance (method of moments)

Torch-free at import: a metric is a callable passed in (e.g. `metrics.sliced_wasserstein2` with
fixed projections), samples are anything indexable by an integer numpy array (numpy or torch). numpy
at import; scipy, and torch for the fast paths, are imported inside the functions that need them.
Every random draw comes from a numpy Generator seeded by the caller, so each result is reproducible.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

DEFAULT_LEVEL = 0.95
# Bootstrap over seeds: a resample of n numbers costs nothing, so many resamples keep the
# interval's Monte Carlo error small (about 0.005 in coverage at 10 000).
SEED_RESAMPLES = 10_000
# Bootstrap over samples: each resample recomputes the metric (sliced W2 at 2000 samples: about
# 3 ms, bench/stats_cost.py). 200 resamples give the standard error to about 5% (1 / sqrt(2 B)).
SAMPLE_RESAMPLES = 200
# Exact sample sets drawn for a floor: the mean to a tenth of its spread.
FLOOR_REPEATS = 100
DEFAULT_TEST = "t"
TESTS = ("t", "wilcoxon", "bootstrap")
SEED_METHODS = ("t", "percentile", "bca")
SAMPLING_METHODS = ("normal", "percentile")
DEFAULT_POWER = 0.8
MAX_SEEDS = 100_000     # seeds_needed answers "more than this" as inf

BEST, TIED, WORSE, UNTESTED = "best", "tied", "worse", "untested"
PAIRED_SEEDS = "paired-seeds"
SAMPLING_ONLY = "single-seed-sampling-only"


@dataclass(frozen=True)
class Interval:
    """An estimate and its interval at `level`. low and high are None where no interval exists
    (one seed: `note` says why). `se` is the standard error where the method gives one."""
    estimate: float
    low: float | None
    high: float | None
    n: int
    level: float
    method: str
    se: float | None = None
    note: str = ""

    @property
    def half_width(self) -> float | None:
        return None if self.low is None else (self.high - self.low) / 2

    def text(self, fmt: str = ".4g") -> str:
        """`mean [lo, hi]`, or the mean and the note's reason when there is no interval."""
        if self.low is None:
            return f"{self.estimate:{fmt}} ({self.note})"
        return f"{self.estimate:{fmt}} [{self.low:{fmt}}, {self.high:{fmt}}]"


# --- intervals across seeds ---------------------------------------------------------------

def seed_interval(values, level: float = DEFAULT_LEVEL, method: str = "t",
                  resamples: int = SEED_RESAMPLES, seed: int = 0) -> Interval:
    """Mean of one cell's per-seed values with an interval at `level`: Student's t (`t`), or a
    bootstrap of the mean over seeds (`percentile`, `bca`), `resamples` resamples drawn from
    `seed`. One value gives the mean and no interval (the note says so)."""
    values = _finite_vector(values, "values")
    _check_level(level)
    _check_choice(method, SEED_METHODS, "method")
    n, mean = len(values), float(values.mean())
    if n == 1:
        return Interval(mean, None, None, 1, level, method, note="one seed: no interval across seeds")
    if method == "t":
        return _t_intervals(values[None, :], level)[0]
    means = bootstrap_means(values, resamples, seed)
    if method == "percentile":
        low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    else:
        low, high = _bca_bounds(values, means, level)
    return Interval(mean, float(low), float(high), n, level, method, se=float(means.std(ddof=1)))


def t_interval(values, level: float = DEFAULT_LEVEL):
    """Mean and t interval along the last axis (vectorised: rows of an (R, n) array at once):
    mean +- t_{(1 + level) / 2, n - 1} s / sqrt(n). Returns (mean, low, high) arrays."""
    values = np.asarray(values, dtype=float)
    n = values.shape[-1]
    if n < 2:
        raise ValueError(f"a t interval needs at least 2 values, got {n}")
    mean = values.mean(axis=-1)
    half = t_half_widths(values.std(axis=-1, ddof=1), n, level)
    return mean, mean - half, mean + half


def t_half_widths(sd, n, level: float = DEFAULT_LEVEL) -> np.ndarray:
    """Half-widths of t intervals of means, elementwise (n may differ between cells, e.g. a figure's
    points): t_{(1 + level) / 2, n - 1} sd / sqrt(n); NaN where n < 2 (no interval across seeds)."""
    from scipy.stats import t as t_dist

    sd, n = np.broadcast_arrays(np.asarray(sd, dtype=float), np.asarray(n, dtype=float))
    half = np.full(sd.shape, np.nan)
    some = n >= 2
    half[some] = t_dist.ppf((1 + level) / 2, n[some] - 1) * sd[some] / np.sqrt(n[some])
    return half


def normal_half_widths(se, level: float = DEFAULT_LEVEL) -> np.ndarray:
    """Half-widths z_{(1 + level) / 2} se of normal intervals (one run's estimate and its sampling
    standard error, e.g. a table's `<metric>_se` column: 1.96 se at 95%)."""
    from scipy.stats import norm

    return norm.ppf((1 + level) / 2) * np.asarray(se, dtype=float)


def _t_intervals(values: np.ndarray, level: float) -> list[Interval]:
    """The `t` intervals of the rows of a (cells, n) array, n >= 2: one t quantile for them all."""
    n = values.shape[1]
    mean, low, high = t_interval(values, level)
    se = values.std(axis=1, ddof=1) / math.sqrt(n)
    return [Interval(float(m), float(lo), float(hi), n, level, "t", se=float(e))
            for m, lo, hi, e in zip(mean, low, high, se)]


def bootstrap_means(values, resamples: int = SEED_RESAMPLES, seed: int = 0) -> np.ndarray:
    """Means of `resamples` resamples (with replacement) along the last axis: shape (..., resamples)."""
    values = np.asarray(values, dtype=float)
    n = values.shape[-1]
    index = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    return values[..., index].mean(axis=-1)


def _bca_bounds(values: np.ndarray, means: np.ndarray, level: float) -> tuple[float, float]:
    """Efron's bias-corrected and accelerated bounds for the mean: the bias correction z0 from the
    share of resampled means below the mean, the acceleration from the jackknife's skewness."""
    from scipy.stats import norm

    mean = values.mean()
    below = np.mean(means < mean) + 0.5 * np.mean(means == mean)
    if below <= 0 or below >= 1:          # every resample on one side: no correction is defined
        return float(means.min()), float(means.max())
    z0 = norm.ppf(below)
    jackknife = (values.sum() - values) / (len(values) - 1)
    deviations = jackknife.mean() - jackknife
    spread = (deviations ** 2).sum()
    acceleration = (deviations ** 3).sum() / (6 * spread ** 1.5) if spread > 0 else 0.0
    bounds = []
    for alpha in ((1 - level) / 2, (1 + level) / 2):
        z = z0 + norm.ppf(alpha)
        bounds.append(float(np.quantile(means, norm.cdf(z0 + z / (1 - acceleration * z)))))
    return bounds[0], bounds[1]


# --- the estimator's own sampling error ---------------------------------------------------

def sampling_replicates(samples, metric: Callable, reference=None, resamples: int = SAMPLE_RESAMPLES,
                        seed: int = 0) -> tuple[float, np.ndarray]:
    """The metric on `samples` and on `resamples` resamples of them (rows drawn with replacement;
    the reference, if any, stays fixed): (estimate, replicates). `metric(x, reference)`, or
    `metric(x)` when reference is None, returns a float. Two runs that share a seed resample with
    the same `seed`, hence the same rows: their replicates are paired (`compare_column`)."""
    n = len(samples)
    if n < 2:
        raise ValueError(f"a bootstrap over samples needs at least 2 samples, got {n}")
    call = metric if reference is None else (lambda x: metric(x, reference))
    estimate = float(call(samples))
    replicates = np.array([float(call(samples[rows])) for rows in resample_rows(n, resamples, seed)])
    return estimate, replicates


def resample_rows(n: int, resamples: int, seed: int) -> np.ndarray:
    """The rows of each resample of n samples, (resamples, n), drawn from `seed`: the same rows in
    `sampling_replicates` and in the fast paths below, so their replicates stay paired."""
    rng = np.random.default_rng(seed)
    return np.array([rng.integers(0, n, size=n) for _ in range(resamples)], dtype=np.int64).reshape(resamples, n)


def _resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """How often each of the n samples occurs in each resample of `resample_rows`: (resamples, n)."""
    rows = resample_rows(n, resamples, seed) + n * np.arange(resamples)[:, None]
    return np.bincount(rows.ravel(), minlength=resamples * n).reshape(resamples, n)


def sampling_interval(samples, metric: Callable, reference=None, level: float = DEFAULT_LEVEL,
                      method: str = "normal", resamples: int = SAMPLE_RESAMPLES, seed: int = 0) -> Interval:
    """The estimator's own sampling error for one run: the metric and its interval from a
    bootstrap over the samples (`sampling_replicates`). `normal` (the default): estimate +- z * the
    replicates' standard deviation; `percentile`: the replicates' quantiles. A resample repeats
    rows, which moves a distance between sample sets up (sliced W2, MMD, energy distance:
    docs/statistics.md), so the percentile interval can miss the estimate; its spread, the
    standard error, is what the normal interval uses."""
    _check_level(level)
    _check_choice(method, SAMPLING_METHODS, "method")
    estimate, replicates = sampling_replicates(samples, metric, reference, resamples, seed)
    return interval_from_replicates(estimate, replicates, level, method, n=len(samples))


def interval_from_replicates(estimate: float, replicates, level: float = DEFAULT_LEVEL,
                             method: str = "normal", n: int | None = None) -> Interval:
    """The interval of one run from its estimate and bootstrap replicates (`sampling_interval`)."""
    return _replicate_intervals(np.array([estimate], dtype=float), np.asarray(replicates, dtype=float)[None, :],
                                level, method, [n if n is not None else 1])[0]


def _replicate_intervals(estimates: np.ndarray, replicates: np.ndarray, level: float, method: str,
                         ns) -> list[Interval]:
    """`interval_from_replicates` for each row of (runs, resamples) replicates: one quantile call."""
    from scipy.stats import norm

    se = replicates.std(axis=1, ddof=1)
    if method == "normal":
        half = norm.ppf((1 + level) / 2) * se
        low, high = estimates - half, estimates + half
    else:
        low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2], axis=1)
    note = f"sampling error only: bootstrap over samples, {replicates.shape[1]} resamples"
    return [Interval(float(e), float(lo), float(hi), n, level, f"bootstrap-{method}", se=float(s), note=note)
            for e, lo, hi, s, n in zip(estimates, low, high, se, ns)]


# --- fast bootstraps of the distances of metrics.py ----------------------------------------
# A resample only repeats rows, so what a distance computes from the samples alone can be computed
# once: the sorted projections (sliced W2), the pairwise kernel values (MMD, energy distance). Each
# fast path returns what `sampling_replicates` returns for the metric of metrics.py (the same rows
# from `seed`; tests/test_stats.py checks the replicates against it). torch is imported here only.

def sliced_w2_replicates(samples, reference, directions, resamples: int = SAMPLE_RESAMPLES,
                         seed: int = 0) -> tuple[float, np.ndarray]:
    """`sampling_replicates(samples, sliced W2 with these directions, reference, resamples, seed)`
    without projecting or sorting again. A resample's sorted projection is the samples' sorted
    projection x with value i repeated c_i times (c: the resample's counts of each position's row),
    so its quantile function is x_i on (C_{i-1}/n, C_i/n] (C the cumulative counts), and per
    projection W2^2 = sum_i c_i x_i^2 / n + int Q_y^2 - 2 sum_i x_i (G(C_i / n) - G(C_{i-1} / n)),
    G the reference's integrated quantile function, tabulated once at k / n (`_integrated_quantiles`):
    a replicate is a gather and a sum, no sorted array is built. `directions`:
    `metrics.random_directions(n_projections, dim, generator)` as the run's metric draws them
    (runs/generation.py: the run's seed)."""
    import torch

    from diffsweep import metrics

    x = metrics.as_samples(samples, "samples", min_rows=2)
    if directions.dim() != 2 or directions.shape[1] != x.shape[1]:
        raise ValueError(f"directions must have shape (n_projections, {x.shape[1]}) for samples of dimension "
                         f"{x.shape[1]}, got {tuple(directions.shape)}")
    metrics.check_same_dim(x, metrics.as_samples(reference, "reference"))
    reference_sorted = metrics.projected_sorted(reference, directions)
    # metrics.projected_sorted, keeping each position's row.
    x_sorted, order = torch.sort(directions.to(x.device) @ x.T, dim=1)
    estimate = metrics.sliced_wasserstein2_sorted(x_sorted, reference_sorted)
    # One shift per projection leaves W2 unchanged and keeps the three terms small (less cancellation).
    shift = reference_sorted.mean(dim=1, keepdim=True)
    xs, ys = x_sorted - shift, reference_sorted.to(x.device) - shift
    n = xs.shape[1]
    integrated = _integrated_quantiles(ys, n)                  # (P, n + 1): G(k / n)
    reference_term = (ys ** 2).mean(dim=1)                     # int Q_y^2
    # Summation by parts: sum_i x_i (G(C_i) - G(C_{i-1})) = sum_{i<n} G(C_i) (x_i - x_{i+1}) + x_n G(1).
    steps = torch.cat([xs[:, :-1] - xs[:, 1:], xs[:, -1:]], dim=1)
    all_counts = torch.as_tensor(_resample_counts(n, resamples, seed), device=x.device)
    # sum_i c_i x_i^2 of every resample at once: counts by row times the squared projections by row.
    square_terms = (all_counts.to(xs.dtype) @ torch.empty_like(xs).scatter_(1, order, xs ** 2).T) / n
    # Flat views: index_select, take and dot are about twice as fast as indexing, gather and sum here.
    projections = xs.shape[0]
    flat_order, flat_integrated = order.reshape(-1), integrated.reshape(-1)
    offsets = (torch.arange(projections, device=x.device) * (n + 1))[:, None]     # row p of G in the flat view
    flat_steps, square_totals = steps.reshape(-1), square_terms.sum(dim=1)
    reference_total = reference_term.sum()
    replicates = []
    for counts, square_total in zip(all_counts, square_totals):
        upper = torch.cumsum(counts.index_select(0, flat_order).view(projections, n), dim=1)   # C_i per position
        cross = torch.dot(flat_integrated.take((upper + offsets).view(-1)), flat_steps)        # summed over projections
        mean_w2_squared = (square_total + reference_total - 2.0 * cross) / projections
        replicates.append(math.sqrt(max(float(mean_w2_squared), 0.0)))
    return estimate, np.array(replicates)


def _integrated_quantiles(y_sorted, n: int):
    """G(k / n) = int_0^{k/n} Q_y(u) du for k = 0..n, per row of sorted values (P, m): Q_y is y_j on
    (j / m, (j + 1) / m], so G(k / n) is the sum of the first j = floor(k m / n) values over m plus
    the part (k m - j n) / (n m) of the next one. Integer arithmetic for j: exact at every k."""
    import torch

    m = y_sorted.shape[1]
    k = torch.arange(n + 1, device=y_sorted.device)
    j = torch.div(k * m, n, rounding_mode="floor")
    cumulative = torch.cat([torch.zeros_like(y_sorted[:, :1]), torch.cumsum(y_sorted, dim=1)], dim=1) / m
    part = (k * m - j * n).to(y_sorted.dtype) / (n * m)
    return cumulative[:, j] + y_sorted[:, j.clamp(max=m - 1)] * part


def mmd_replicates(samples, reference, bandwidths, resamples: int = SAMPLE_RESAMPLES, seed: int = 0,
                   cache: dict | None = None, estimate: float | None = None) -> tuple[float, np.ndarray]:
    """`sampling_replicates(samples, metrics.mmd_rbf with these bandwidths, reference, ...)` from
    one pass over the pairwise kernel values (`_pairwise_replicates`). `bandwidths`: the run's
    (config `metrics.mmd_bandwidths`, as `metrics.sample_metrics` gets them). `estimate`: the
    metric's value if the caller has it (a run's record), else it is computed."""
    import torch

    from diffsweep import metrics

    if estimate is None:
        estimate = metrics.mmd_rbf(samples, reference, bandwidths=tuple(bandwidths), cache=cache)
    scales = [1.0 / (2.0 * h * h) for h in bandwidths]

    def kernel(squared: torch.Tensor) -> torch.Tensor:
        return sum(torch.exp(-c * squared) for c in scales)
    # mmd = within_x + within_y - 2 between
    return estimate, _pairwise_replicates(samples, reference, estimate, kernel, 1.0, -2.0, resamples, seed)


def energy_distance_replicates(samples, reference, resamples: int = SAMPLE_RESAMPLES, seed: int = 0,
                               cache: dict | None = None, estimate: float | None = None) -> tuple[float, np.ndarray]:
    """`sampling_replicates(samples, metrics.energy_distance, reference, ...)` from one pass over
    the pairwise distances (`_pairwise_replicates`); `estimate` as in `mmd_replicates`."""
    from diffsweep import metrics

    if estimate is None:
        estimate = metrics.energy_distance(samples, reference, cache=cache)
    # energy = 2 between - within_x - within_y
    return estimate, _pairwise_replicates(samples, reference, estimate, lambda squared: squared.sqrt(),
                                          -1.0, 2.0, resamples, seed)


def _pairwise_replicates(samples, reference, estimate: float, kernel: Callable, within_sign: float,
                         between_sign: float, resamples: int, seed: int) -> np.ndarray:
    """A distance of the form within_sign * within_x + between_sign * between + (reference terms),
    on each resample. With c the resample's counts of each row, K the kernel between samples (its
    diagonal kernel(0)) and k_i the sum of row i's kernel values with the reference:
    within_x = (c'Kc - n kernel(0)) / (n (n - 1)), between = c'k / (n m); the reference terms do not
    change, so a replicate is the estimate plus the change of the other two from c = 1. K is
    visited block by block (rows of metrics.BLOCK_ROWS), every resample at once: no n x n matrix."""
    import torch

    from diffsweep import metrics

    x = metrics.as_samples(samples, "samples", min_rows=2)
    y = metrics.as_samples(reference, "reference", min_rows=2).to(x.device)
    x, y = metrics.centre_together(x, y)
    n, m, block = len(x), len(y), metrics.BLOCK_ROWS
    # Row 0: every sample once, the estimate's own counts.
    counts = np.concatenate([np.ones((1, n), dtype=np.int64), _resample_counts(n, resamples, seed)])
    counts = torch.as_tensor(counts, dtype=torch.float64, device=x.device)
    x_norms, y_norms = (x ** 2).sum(dim=1), (y ** 2).sum(dim=1)

    def block_kernel(a, a_norms, b, b_norms, diagonal: bool) -> torch.Tensor:
        squared = (a_norms[:, None] + b_norms[None, :] - 2.0 * a @ b.T).clamp_(min=0.0)
        if diagonal:
            squared.fill_diagonal_(0.0)
        return kernel(squared)
    quadratic = torch.zeros(len(counts), dtype=torch.float64, device=x.device)     # c'Kc
    row_sums = torch.zeros(n, dtype=torch.float64, device=x.device)                # k
    for i in range(0, n, block):
        rows = slice(i, i + block)
        for j in range(i, n, block):
            columns = slice(j, j + block)
            values = block_kernel(x[rows], x_norms[rows], x[columns], x_norms[columns], i == j)
            # K is symmetric: a block above the diagonal stands for its mirror too.
            quadratic += (2.0 if j > i else 1.0) * ((counts[:, rows] @ values) * counts[:, columns]).sum(dim=1)
        for j in range(0, m, block):
            columns = slice(j, j + block)
            row_sums[rows] += block_kernel(x[rows], x_norms[rows], y[columns], y_norms[columns], False).sum(dim=1)
    within = quadratic / (n * (n - 1))
    between = counts @ row_sums / (n * m)
    change = within_sign * (within[1:] - within[0]) + between_sign * (between[1:] - between[0])
    return (estimate + change).cpu().numpy()


# --- the metric's floor on analytic data --------------------------------------------------

@dataclass(frozen=True)
class Floor:
    """The metric between exact sample sets of the run's size and the reference: its mean, the
    central `level` range of single values (where a perfect sampler's run lands), the spread."""
    mean: float
    low: float
    high: float
    sd: float
    repeats: int
    level: float
    key: str


def floor_of(values, key: str, level: float = DEFAULT_LEVEL) -> Floor:
    """The Floor of the metric's values on `repeats` exact sample sets (at least 2)."""
    values = np.asarray(values, dtype=float)
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return Floor(float(values.mean()), float(low), float(high), float(values.std(ddof=1)), len(values), level, key)


def floor_key(dataset: str, n_samples: int, metric: str, reference: str, **settings) -> str:
    """The cache key of a floor: one per (dataset, n, metric), and the reference set it is
    measured against (name or hash of its file) and any setting that changes the value
    (projections, bandwidths, repeats). A short sha256 of the sorted JSON."""
    payload = {"dataset": dataset, "n_samples": n_samples, "metric": metric, "reference": reference, **settings}
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def metric_floor(draw_exact: Callable, metric: Callable, n_samples: int, reference, key: str,
                 repeats: int = FLOOR_REPEATS, level: float = DEFAULT_LEVEL, first_seed: int = 1_000_003,
                 cache: dict | None = None) -> Floor:
    """`metric(draw_exact(n_samples, seed), reference)` for `repeats` seeds from `first_seed` (seeds
    the data preparation does not use): the distribution of what exact samples score. With a
    `cache` (a dict, or any mapping the caller persists) it is computed once per `key`."""
    if cache is not None and key in cache:
        return cache[key]
    _check_level(level)
    if repeats < 2:
        raise ValueError(f"a floor needs at least 2 repeats, got {repeats}")
    floor = floor_of([float(metric(draw_exact(n_samples, first_seed + i), reference)) for i in range(repeats)], key,
                     level)
    if cache is not None:
        cache[key] = floor
    return floor


# --- paired comparisons -------------------------------------------------------------------

def paired_test(a, b, test: str = DEFAULT_TEST, resamples: int = SEED_RESAMPLES, seed: int = 0) -> float:
    """Two-sided p-value for "a and b have the same mean", a[i] and b[i] from the same seed:
    paired t (`t`), Wilcoxon signed-rank (`wilcoxon`), or a paired bootstrap (`bootstrap`: the
    differences centred on zero, resampled). Identical pairs (all differences 0) give 1."""
    _check_choice(test, TESTS, "test")
    a, b = _finite_vector(a, "a"), _finite_vector(b, "b")
    if len(a) != len(b):
        raise ValueError(f"paired values need the same length, got {len(a)} and {len(b)}")
    if len(a) < 2:
        raise ValueError(f"a paired test needs at least 2 pairs, got {len(a)}")
    return float(_paired_pvalues((a - b)[None, :], test, resamples, seed)[0])


def _paired_pvalues(differences: np.ndarray, test: str, resamples: int, seed: int) -> np.ndarray:
    """`paired_test` for each row of (pairs, n) differences, one scipy call for all rows (Wilcoxon:
    one per row, its exact null distribution is per row)."""
    constant = np.all(differences == differences[:, :1], axis=1)    # no spread: equal, or a constant shift
    pvalues = np.where(differences[:, 0] == 0, 1.0, 0.0)
    spread = differences[~constant]
    if len(spread) == 0:
        return pvalues
    if test == "t":
        import warnings

        from scipy.stats import ttest_1samp
        with warnings.catch_warnings():
            # Differences equal but for rounding (a constant shift): scipy warns of precision loss, and its
            # p-value (near 0 for a shift, as for an exact constant above) is the right answer.
            warnings.filterwarnings("ignore", "Precision loss", RuntimeWarning)
            pvalues[~constant] = ttest_1samp(spread, 0.0, axis=1).pvalue
    elif test == "wilcoxon":
        from scipy.stats import wilcoxon
        pvalues[~constant] = [wilcoxon(row).pvalue for row in spread]
    else:
        pvalues[~constant] = _paired_bootstrap_pvalues(spread, resamples, seed)
    return pvalues


# Bounds the (pairs, resamples, n) array of a paired bootstrap: 8 MB per block of rows.
_BOOTSTRAP_BLOCK_VALUES = 1 << 20


def _paired_bootstrap_pvalues(differences: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """Each row's differences centred on zero and resampled (the same resampled seeds for every row,
    drawn from `seed`); p = (1 + resampled |means| >= observed |mean|) / (1 + resamples)."""
    observed = np.abs(differences.mean(axis=1))
    centred = differences - differences.mean(axis=1, keepdims=True)
    rows = max(1, _BOOTSTRAP_BLOCK_VALUES // (resamples * differences.shape[1]))
    exceed = np.concatenate([
        np.sum(np.abs(bootstrap_means(centred[i:i + rows], resamples, seed)) >= observed[i:i + rows, None], axis=1)
        for i in range(0, len(centred), rows)])
    return (1 + exceed) / (1 + resamples)


def normal_test(difference, se):
    """Two-sided p-value of an observed `difference` with standard error `se` under the normal
    approximation (one run a side, each with its sampling se: se = sqrt(se_a^2 + se_b^2)); se 0
    gives 1 for no difference and 0 otherwise. Elementwise on arrays (a float for floats)."""
    from scipy.stats import norm

    difference, se = np.asarray(difference, dtype=float), np.asarray(se, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        pvalues = np.where(se == 0, np.where(difference == 0, 1.0, 0.0), 2 * norm.sf(np.abs(difference) / se))
    return float(pvalues) if pvalues.ndim == 0 else pvalues


def paired_tests(differences, test: str = DEFAULT_TEST, resamples: int = SEED_RESAMPLES, seed: int = 0) -> np.ndarray:
    """`paired_test` for each row of a (pairs, n) array of paired differences (n >= 2), at once."""
    _check_choice(test, TESTS, "test")
    differences = np.asarray(differences, dtype=float)
    if differences.ndim != 2 or differences.shape[1] < 2:
        raise ValueError(f"paired tests need a (pairs, n >= 2) array of differences, got shape {differences.shape}")
    return _paired_pvalues(differences, test, resamples, seed)


def sampling_test(replicates_a, replicates_b, estimate_a: float, estimate_b: float) -> float:
    """Two-sided p-value for one seed per configuration: the difference of the estimates over the
    standard deviation of the replicates' differences (normal approximation). Replicates drawn with
    the same rows (same seed) are paired; independent ones give sqrt(se_a^2 + se_b^2)."""
    difference = np.asarray(replicates_a, dtype=float) - np.asarray(replicates_b, dtype=float)
    return float(_sampling_pvalues(difference[None, :], np.array([estimate_a - estimate_b], dtype=float))[0])


def _sampling_pvalues(replicate_differences: np.ndarray, estimate_differences: np.ndarray) -> np.ndarray:
    """`sampling_test` for each row of (pairs, resamples) replicate differences."""
    return np.atleast_1d(normal_test(estimate_differences, replicate_differences.std(axis=1, ddof=1)))


def holm(pvalues) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given): the i-th smallest is multiplied
    by (m - i + 1), made non-decreasing, capped at 1. Reject where adjusted < alpha."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    adjusted = np.empty(m)
    adjusted[order] = scaled
    return adjusted


@dataclass(frozen=True)
class CellResult:
    name: str
    interval: Interval
    status: str                # best, tied, worse, untested
    p_adjusted: float | None   # Holm-adjusted p against the leading cell (None for the leading cell)
    basis: str                 # paired-seeds, or single-seed-sampling-only


@dataclass(frozen=True)
class ColumnComparison:
    cells: dict                # name -> CellResult
    basis: str                 # single-seed-sampling-only if any comparison rested on sampling error alone
    caption: str
    leader: str | None = None  # the cell with the best mean
    comparisons: int = 0


@dataclass
class Sampling:
    """One run's own sampling error: what a one-seed cell compares with. Either its bootstrap
    replicates over samples (`sampling_replicates`), or only their standard deviation `se` (what a
    table stores per run, `<metric>_se`; KID's own standard error). Two runs with replicates of the
    same resamples are compared paired; otherwise the difference's standard error is taken as
    sqrt(se_a^2 + se_b^2), independent errors: conservative against the paired replicates, whose
    shared rows cancel part of the error (docs/statistics.md)."""
    estimate: float
    replicates: np.ndarray | None = field(default=None, repr=False)
    se: float | None = None

    def __post_init__(self):
        if self.replicates is None and self.se is None:
            raise ValueError("Sampling needs bootstrap replicates or a standard error")
        if self.replicates is None and not (math.isfinite(self.se) and self.se >= 0):
            raise ValueError(f"a standard error must be finite and >= 0, got {self.se}")

    @property
    def standard_error(self) -> float:
        if self.replicates is None:
            return float(self.se)
        return float(np.asarray(self.replicates, dtype=float).std(ddof=1))


def compare_column(cells: Mapping[str, Mapping], better: str = "lower", level: float = DEFAULT_LEVEL,
                   test: str = DEFAULT_TEST, interval: str = "t", sampling: Mapping[str, Sampling] | None = None,
                   seed: int = 0) -> ColumnComparison:
    """Which cell of a column is best, at `level`, after Holm's correction.

    `cells`: cell name -> {seed: value}. Cells are paired on the seeds they share. The leading cell
    (best mean) is tested against every other cell (paired `test` on the shared seeds; where fewer
    than 2 are shared, `sampling_test` on the two cells' `sampling` replicates, one run each, or
    the normal test on sqrt(se_a^2 + se_b^2) where either has only its standard error); the
    k - 1 p-values are Holm-adjusted. The leader is `best` only if it beats every other cell;
    cells not separable from it are `tied` (and so is the leader then), the rest `worse`. A pair
    with neither shared seeds nor sampling error cannot be tested: `untested`, never best."""
    _check_choice(better, ("lower", "higher"), "better")
    _check_level(level)
    _check_choice(test, TESTS, "test")
    _check_choice(interval, SEED_METHODS, "interval")
    sampling = {name: run for name, run in (sampling or {}).items() if run is not None}
    names = [name for name, values in cells.items() if len(values)]
    if not names:
        raise ValueError("compare_column needs at least one cell with a value")
    values = {name: _finite_vector(list(cells[name].values()), f"cell {name!r}") for name in names}
    intervals = _cell_intervals(names, values, sampling, level, interval, seed)
    sign = 1 if better == "lower" else -1
    leader = min(names, key=lambda name: sign * intervals[name].estimate)
    others = [name for name in names if name != leader]
    pvalues, tested, bases = _leader_pvalues(cells, leader, others, sampling, test, seed)
    adjusted = holm(np.where(tested, pvalues, 1.0)) if others else np.array([])
    alpha = 1 - level
    results = {}
    for name, is_tested, p_adj, basis in zip(others, tested, adjusted, bases):
        status = UNTESTED if not is_tested else (WORSE if p_adj < alpha else TIED)
        results[name] = CellResult(name, intervals[name], status, float(p_adj), basis)
    leader_wins = bool(others) and all(r.status == WORSE for r in results.values())
    leader_basis = SAMPLING_ONLY if SAMPLING_ONLY in bases else PAIRED_SEEDS
    # a leader no other cell could be tested against is untested too, not "tied"
    leader_status = BEST if leader_wins else (UNTESTED if others and not any(tested) else TIED)
    results[leader] = CellResult(leader, intervals[leader], leader_status, None, leader_basis)
    basis = SAMPLING_ONLY if SAMPLING_ONLY in bases else PAIRED_SEEDS
    ordered = {name: results[name] for name in names}
    return ColumnComparison(ordered, basis, caption(ordered, level, test, interval, basis, len(others)),
                            leader, len(others))


# compare_column computes per group of rows of one length, not per cell or pair: a column of 400
# one-seed cells costs a few scipy calls, not 800 (docs/statistics.md, Costs).

def _cell_intervals(names, values: Mapping, sampling: Mapping, level: float, method: str, seed: int) -> dict:
    """Each cell's interval: the bootstrap over samples for a one-seed cell with replicates, else
    `seed_interval` (t intervals computed for all cells of one n at once)."""
    one_seed = [name for name in names if len(values[name]) == 1 and name in sampling]
    from_replicates = [name for name in one_seed if sampling[name].replicates is not None]
    by_t = [name for name in names if len(values[name]) >= 2 and method == "t"]
    intervals = {}
    for group, replicates in _stacked_by_length(from_replicates, lambda name: np.asarray(sampling[name].replicates,
                                                                                          dtype=float)):
        estimates = np.array([sampling[name].estimate for name in group], dtype=float)
        intervals.update(zip(group, _replicate_intervals(estimates, replicates, level, "normal", [1] * len(group))))
    from_se = [name for name in one_seed if sampling[name].replicates is None]
    if from_se:
        intervals.update(zip(from_se, _se_intervals([sampling[name] for name in from_se], level)))
    for group, stacked in _stacked_by_length(by_t, values.get):
        intervals.update(zip(group, _t_intervals(stacked, level)))
    for name in names:
        if name not in intervals:
            intervals[name] = seed_interval(values[name], level, method, seed=seed)
    return {name: intervals[name] for name in names}


def _se_intervals(runs: list, level: float) -> list[Interval]:
    """estimate +- z * se for one-seed cells known by their standard error alone."""
    halves = normal_half_widths([run.se for run in runs], level)
    note = "sampling error only: the estimator's standard error"
    return [Interval(run.estimate, run.estimate - half, run.estimate + half, 1, level, "normal-se",
                     se=float(run.se), note=note) for run, half in zip(runs, halves)]


def _leader_pvalues(cells: Mapping, leader: str, others: list, sampling: Mapping, test: str, seed: int):
    """The leader against each other cell: (p-values, tested, bases). A pair sharing at least 2
    seeds gets the paired `test` on them; else, with replicates of the same resamples for both,
    `sampling_test`; else, with a standard error for both, the normal test on
    sqrt(se_a^2 + se_b^2); else it is not tested."""
    pvalues, tested = np.ones(len(others)), np.zeros(len(others), dtype=bool)
    bases = [SAMPLING_ONLY] * len(others)
    paired, by_sampling, by_se = {}, {}, {}
    for i, name in enumerate(others):
        shared = sorted(set(cells[leader]) & set(cells[name]))
        if len(shared) >= 2:
            paired[i] = (np.array([cells[leader][s] for s in shared], dtype=float)
                         - np.array([cells[name][s] for s in shared], dtype=float))
            bases[i] = PAIRED_SEEDS
        elif leader in sampling and name in sampling:
            if sampling[leader].replicates is not None and sampling[name].replicates is not None:
                by_sampling[i] = _replicate_differences(sampling, leader, name)
            else:
                by_se[i] = math.hypot(sampling[leader].standard_error, sampling[name].standard_error)
    for group, differences in _stacked_by_length(list(paired), paired.get):
        pvalues[group] = _paired_pvalues(differences, test, SEED_RESAMPLES, seed)
    for group, differences in _stacked_by_length(list(by_sampling), by_sampling.get):
        gaps = np.array([sampling[leader].estimate - sampling[others[i]].estimate for i in group], dtype=float)
        pvalues[group] = _sampling_pvalues(differences, gaps)
    if by_se:
        group = list(by_se)
        gaps = np.array([sampling[leader].estimate - sampling[others[i]].estimate for i in group], dtype=float)
        pvalues[group] = np.atleast_1d(normal_test(gaps, np.array([by_se[i] for i in group], dtype=float)))
    tested[list(paired) + list(by_sampling) + list(by_se)] = True
    return pvalues, tested, bases


def _replicate_differences(sampling: Mapping, a: str, b: str) -> np.ndarray:
    replicates_a = np.asarray(sampling[a].replicates, dtype=float)
    replicates_b = np.asarray(sampling[b].replicates, dtype=float)
    if replicates_a.shape != replicates_b.shape:
        raise ValueError(f"cells {a!r} and {b!r} have {len(replicates_a)} and {len(replicates_b)} bootstrap "
                         "replicates: a paired comparison needs the same resamples")
    return replicates_a - replicates_b


def _stacked_by_length(keys, row_of: Callable):
    """The keys grouped by the length of their rows: (keys of one length, their rows stacked) per group."""
    groups: dict[int, list] = {}
    for key in keys:
        groups.setdefault(len(row_of(key)), []).append(key)
    for group in groups.values():
        yield group, np.stack([row_of(key) for key in group])


TEST_NAMES = {"t": "paired t test", "wilcoxon": "Wilcoxon signed-rank test", "bootstrap": "paired bootstrap test"}
INTERVAL_NAMES = {"t": "t interval", "percentile": "percentile bootstrap interval",
                  "bca": "BCa bootstrap interval"}
SAMPLING_INTERVAL_NAME = "normal interval from the estimator's standard error"


def caption(cells: Mapping[str, CellResult], level: float, test: str, interval: str, basis: str,
            comparisons: int | None, unit: str = "seed", shown: str = "interval", tests: bool = True) -> str:
    """What a table's caption says about a column: n, the interval, the test, the level, the
    correction, what best and tied mean, and (one seed) that sampling error alone carries it.
    `unit`: what n counts (seed, measurement); `shown`: how a cell shows its interval, `interval`
    (mean [lo, hi]), `half_width` (mean ± half-width) or `mean` (the mean alone); `tests`: whether
    cells were tested (a column without a direction or with one cell is not). `comparisons` None:
    one caption for the columns of a table, which differ in their number of cells."""
    ns = sorted({r.interval.n for r in cells.values() if r.interval.n > 1})
    one_seed = any(r.interval.n == 1 for r in cells.values())
    sampling = any(r.interval.n == 1 and r.interval.low is not None for r in cells.values())
    percent = f"{100 * level:g}%"

    def how(what: str, of: str) -> str:
        return {"interval": f"{of} [{percent} {what}]", "half_width": f"{of} ± half-width of the {percent} {what}",
                "mean": of}[shown]
    parts = []
    if ns:
        n_text = f"n = {ns[0]}" if len(ns) == 1 else f"n = {ns[0]}-{ns[-1]}"
        parts.append(f"{how(INTERVAL_NAMES[interval], 'mean')} over {unit}s ({n_text})")
    if one_seed:
        parts.append(f"{'one-' + unit + ' cells: ' if ns else f'n = 1 {unit}: '}"
                     f"{how(SAMPLING_INTERVAL_NAME, 'value') if sampling else 'value, no interval'}")
    if tests:
        parts.append(f"best: beats every other cell of its column by a {TEST_NAMES[test]} on shared {unit}s"
                     f"{f' (one {unit}: a normal test on the sampling error)' if basis == SAMPLING_ONLY else ''} "
                     f"at level {1 - level:.3g}, Holm-corrected over "
                     f"{'each column' + chr(39) + 's k - 1 comparisons (k cells)' if comparisons is None else comparisons}"
                     f"{'' if comparisons is None else ' comparison' + ('s' if comparisons != 1 else '')}"
                     f"; tied: not separable from the best")
    if sampling:
        parts.append(f"one {unit}: intervals and tests rest on the estimator's own sampling error (bootstrap over "
                     f"samples, or the metric's own standard error), which does not cover {unit}-to-{unit} spread")
    if tests and any(r.status == UNTESTED for r in cells.values()):
        parts.append(f"untested: no shared {unit}s and no sampling error of the estimator")
    return "; ".join(parts)


# --- power and variance components --------------------------------------------------------

def seeds_needed(differences, level: float = DEFAULT_LEVEL, power: float = DEFAULT_POWER) -> float:
    """Seeds a paired t test needs to detect the observed mean difference with probability
    `power` at `level` (two-sided), the observed standard deviation taken as the truth: the
    smallest n with P(|T| > t_crit) >= power, T noncentral t with n - 1 degrees of freedom and
    noncentrality mean / sd * sqrt(n). inf when the mean difference is 0 (or needs > MAX_SEEDS)."""
    from scipy.stats import nct, t as t_dist

    differences = _finite_vector(differences, "differences")
    if len(differences) < 2:
        raise ValueError(f"a power estimate needs at least 2 paired differences, got {len(differences)}")
    effect, sd = abs(float(differences.mean())), float(differences.std(ddof=1))
    if effect == 0:
        return math.inf
    if sd == 0:
        return 2

    def achieved(n: int) -> float:
        critical = t_dist.ppf((1 + level) / 2, n - 1)
        noncentrality = effect / sd * math.sqrt(n)
        return float(nct.sf(critical, n - 1, noncentrality) + nct.cdf(-critical, n - 1, noncentrality))

    from scipy.stats import norm
    # Start just below the normal approximation ((z_a + z_b) sd / effect)^2 and walk up.
    guess = ((norm.ppf((1 + level) / 2) + norm.ppf(power)) * sd / effect) ** 2
    n = max(2, int(guess) - 2)
    while achieved(n) < power:
        n += 1
        if n > MAX_SEEDS:
            return math.inf
    while n > 2 and achieved(n - 1) >= power:
        n -= 1
    return n


@dataclass(frozen=True)
class VarianceComponents:
    """values = mean + training-seed effect + sampling-seed error (one-way random effects)."""
    training: float            # variance between training seeds
    sampling: float            # variance between sampling seeds of one training seed
    n_training: int
    n_values: int

    @property
    def training_share(self) -> float:
        total = self.training + self.sampling
        return self.training / total if total > 0 else 0.0


def variance_components(groups: Mapping) -> VarianceComponents:
    """Method-of-moments (ANOVA) estimates from {training seed: [values over sampling seeds]}:
    sampling = MS_within, training = max(0, (MS_between - MS_within) / n0), with n0 the
    effective group size (N - sum n_i^2 / N) / (k - 1), the group size itself when balanced."""
    arrays = [_finite_vector(values, f"groups[{key!r}]") for key, values in groups.items()]
    if len(arrays) < 2 or any(len(a) < 2 for a in arrays):
        raise ValueError("variance components need at least 2 training seeds with at least 2 sampling seeds each")
    sizes = np.array([len(a) for a in arrays])
    total, k = int(sizes.sum()), len(arrays)
    grand = np.concatenate(arrays).mean()
    ms_between = sum(len(a) * (a.mean() - grand) ** 2 for a in arrays) / (k - 1)
    ms_within = sum(((a - a.mean()) ** 2).sum() for a in arrays) / (total - k)
    n0 = (total - (sizes ** 2).sum() / total) / (k - 1)
    return VarianceComponents(max(0.0, float((ms_between - ms_within) / n0)), float(ms_within), k, total)


# --- checks ---------------------------------------------------------------------------------

def _finite_vector(values, name: str) -> np.ndarray:
    array = np.asarray(values if isinstance(values, np.ndarray) else list(values), dtype=float).ravel()
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains non-finite values (diverged runs are left out before statistics)")
    return array


def _check_level(level: float) -> None:
    if not 0 < level < 1:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")


def _check_choice(value: str, allowed, name: str) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")
