"""diffsweep.stats: coverage by simulation on closed-form cases, Holm by hand, the power formula
against simulation, variance components by hand and by simulation, and the planted-difference and
null tests on the exact oracle (ring8, sliced W2). Every draw is seeded; nothing reads a clock."""

import math

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from diffsweep import gmm, metrics, stats


def binomial_tolerance(p: float, repeats: int) -> float:
    """Three standard deviations of a rate estimated from `repeats` trials."""
    return 3 * math.sqrt(p * (1 - p) / repeats)


# --- intervals across seeds -----------------------------------------------------------------

@pytest.mark.parametrize("n", [2, 3, 5, 20])
def test_t_interval_covers_at_its_level(n):
    repeats = 4000
    values = np.random.default_rng(n).normal(2.0, 3.0, size=(repeats, n))
    _, low, high = stats.t_interval(values, 0.95)
    coverage = np.mean((low <= 2.0) & (2.0 <= high))
    assert abs(coverage - 0.95) <= binomial_tolerance(0.95, repeats)


def test_percentile_bootstrap_covers_as_its_closed_form_says():
    """The percentile interval of a mean of n normal values is mean +- z s_plugin / sqrt(n): it
    covers P(|t_{n-1}| <= z sqrt((n-1)/n)) (0.929 at n = 20), less than its nominal 0.95."""
    n, repeats, resamples = 20, 600, 500
    values = np.random.default_rng(7).normal(2.0, 3.0, size=(repeats, n))
    means = stats.bootstrap_means(values, resamples, seed=3)
    low, high = np.quantile(means, [0.025, 0.975], axis=-1)
    coverage = np.mean((low <= 2.0) & (2.0 <= high))
    expected = 2 * scipy_stats.t.cdf(scipy_stats.norm.ppf(0.975) * math.sqrt((n - 1) / n), n - 1) - 1
    # Monte Carlo error of the quantiles (500 resamples) adds about 0.01 to the binomial spread.
    assert abs(coverage - expected) <= binomial_tolerance(expected, repeats) + 0.01


def test_bca_is_close_to_t_on_normal_data_and_follows_skew():
    values = np.random.default_rng(0).normal(0.0, 1.0, size=30)
    bca = stats.seed_interval(values, method="bca", seed=1)
    t = stats.seed_interval(values, method="t")
    assert abs(bca.half_width - t.half_width) < 0.15 * t.half_width
    skewed = np.random.default_rng(1).exponential(1.0, size=30)
    bca = stats.seed_interval(skewed, method="bca", seed=1)
    assert bca.high - bca.estimate > bca.estimate - bca.low     # the long tail is on the right


def test_one_seed_has_no_interval_and_says_so():
    interval = stats.seed_interval([0.3])
    assert (interval.low, interval.high, interval.n) == (None, None, 1)
    assert "one seed" in interval.note and "one seed" in interval.text()


@pytest.mark.parametrize("call, message", [
    (lambda: stats.seed_interval([1.0, float("nan")]), "non-finite"),
    (lambda: stats.seed_interval([]), "empty"),
    (lambda: stats.seed_interval([1.0, 2.0], level=95), "level"),
    (lambda: stats.seed_interval([1.0, 2.0], method="z"), "method must be one of"),
    (lambda: stats.paired_test([1.0, 2.0], [1.0]), "same length"),
    (lambda: stats.paired_test([1.0, 2.0], [1.5, 2.5], test="sign"), "test must be one of"),
    # compare_column names the cell, and checks its options before any work, even where no pair is tested
    (lambda: stats.compare_column({"a": {0: 1.0, 1: 2.0}, "b": {0: 1.0, 1: float("inf")}}), "cell 'b'"),
    (lambda: stats.compare_column({"a": {0: 1.0}}, test="sign"), "test must be one of"),
    (lambda: stats.compare_column({"a": {0: 1.0}}, interval="z"), "interval must be one of"),
    (lambda: stats.compare_column({"a": {0: 1.0}, "b": {0: 2.0}}, sampling={
        "a": stats.Sampling(1.0, np.ones(20)), "b": stats.Sampling(2.0, np.ones(30))}),
     "cells 'a' and 'b' have 20 and 30 bootstrap replicates"),
    (lambda: stats.sliced_w2_replicates(torch.zeros(5, 2), torch.zeros(5, 2), torch.ones(4, 3)), "directions must"),
    (lambda: stats.sliced_w2_replicates(torch.zeros(5, 2), torch.zeros(5, 3), torch.ones(4, 2)), "dimensions differ"),
])
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- the estimator's own sampling error ---------------------------------------------------

def bootstrap_means_of_rows(values: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """`sampling_replicates(row, numpy.mean, resamples, seed)` of every row at once (the same rows of
    `resample_rows` for each: test_sampling_replicates_resample_the_rows_of_resample_rows)."""
    return values[:, stats.resample_rows(values.shape[1], resamples, seed)].mean(axis=-1)


def test_sampling_interval_of_a_mean_covers_at_its_level():
    """Per-image values (a PSNR mean): the bootstrap standard error is s / sqrt(n) up to the plug-in
    factor, so the normal interval covers close to its level (0.944 at n = 60: the plug-in factor
    and z for t; 60 resamples scatter it by about 0.01 more)."""
    repeats, n = 1000, 60
    values = np.random.default_rng(5).normal(25.0, 2.0, size=(repeats, n))
    replicates = bootstrap_means_of_rows(values, 60, seed=1)
    intervals = [stats.interval_from_replicates(v.mean(), r) for v, r in zip(values, replicates)]
    coverage = np.mean([interval.low <= 25.0 <= interval.high for interval in intervals])
    assert abs(coverage - 0.95) <= binomial_tolerance(0.95, repeats) + 0.02


def sliced_w2(seed: int, n_projections: int = 32):
    """A run's sliced W2 (projections fixed by its seed, as jobs.py does)."""
    return lambda x, y: metrics.sliced_wasserstein2(x, y, n_projections=n_projections,
                                                    generator=torch.Generator().manual_seed(seed))


RING8 = gmm.ring_mixture()     # the default grid's ring8: radius 4, mode std 0.3


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Sorting a few hundred projected points is faster on one thread than on two shared ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def exact(n: int, seed: int) -> torch.Tensor:
    return RING8.sample(n, torch.Generator().manual_seed(seed))[0]


def test_sampling_error_of_sliced_w2_matches_fresh_sets():
    """On exact samples the bootstrap's standard error is the spread of fresh sample sets (within a
    factor of 1.6 at these counts), while its replicates sit above the estimate (repeated rows)."""
    n, reference = 256, exact(256, 999)
    directions = metrics.random_directions(32, 2, torch.Generator().manual_seed(0))
    reference_sorted = metrics.projected_sorted(reference, directions)
    fresh = np.array([metrics.sliced_wasserstein2_sorted(metrics.projected_sorted(exact(n, seed), directions),
                                                         reference_sorted) for seed in range(40)])
    estimate, replicates = stats.sliced_w2_replicates(exact(n, 1234), reference, directions, resamples=60, seed=0)
    ratio = replicates.std(ddof=1) / fresh.std(ddof=1)
    assert 1 / 1.6 < ratio < 1.6
    assert replicates.mean() > estimate


# --- the metric's floor -------------------------------------------------------------------

def test_floor_is_computed_once_per_key():
    calls = []

    def draw(n, seed):
        calls.append(seed)
        return exact(n, seed)
    reference, cache = exact(128, 999), {}
    key = stats.floor_key("ring8", 128, "sliced_w2", "ring8-ref-128", n_projections=32)
    floor = stats.metric_floor(draw, sliced_w2(0), 128, reference, key, repeats=10, cache=cache)
    assert len(set(calls)) == 10 and floor.low <= floor.mean <= floor.high and floor.sd > 0
    assert stats.metric_floor(draw, sliced_w2(0), 128, reference, key, repeats=10, cache=cache) is floor
    assert len(calls) == 10
    assert stats.floor_key("ring8", 256, "sliced_w2", "ring8-ref-128", n_projections=32) != key


# --- paired comparisons ---------------------------------------------------------------------

def test_holm_against_a_hand_computed_example():
    # sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1: 0.02, 0.03, 0.06, 0.04 -> running max 0.06
    adjusted = stats.holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


@pytest.mark.parametrize("test", stats.TESTS)
def test_every_paired_test_sees_a_clear_shift_and_not_an_identity(test):
    a = np.random.default_rng(0).normal(size=12)
    assert stats.paired_test(a, a + 1.0 + 0.1 * np.random.default_rng(1).normal(size=12), test) < 0.01
    assert stats.paired_test(a, a, test) == 1.0


def oracle_columns(shift: float, repeats: int, n_seeds: int, n: int, n_projections: int, paired: bool,
                   seed: int) -> list[dict]:
    """`repeats` columns of two configurations on ring8, {name: {seed: sliced W2}}: `exact` (exact
    samples) and `shifted` (moved by `shift` along the first axis; paired: the same draw per seed,
    else other draws, a configuration that shares no random numbers). Each seed of a column has its
    own projections, shared by both configurations (as jobs.py draws them); every set is drawn,
    projected and sorted in one batch, against one fixed reference set."""
    generator = torch.Generator().manual_seed(seed)
    sets = repeats * n_seeds

    def draw():
        return RING8.sample(sets * n, generator)[0].reshape(sets, n, 2)
    drawn = draw()
    moved = (drawn if paired else draw()) + torch.tensor([0.0, shift], dtype=torch.float64)
    directions = metrics.random_directions(sets * n_projections, 2, generator).reshape(sets, n_projections, 2)

    def sorted_projections(x):
        return torch.sort(directions @ x.transpose(-1, -2), dim=-1).values
    reference = sorted_projections(exact(n, 10_000).expand(sets, n, 2))
    values = {name: [metrics.sliced_wasserstein2_sorted(one, ref) for one, ref in zip(sorted_projections(x), reference)]
              for name, x in (("exact", drawn), ("shifted", moved))}
    return [{name: dict(enumerate(v[r * n_seeds:(r + 1) * n_seeds])) for name, v in values.items()}
            for r in range(repeats)]


def test_oracle_columns_score_as_the_metric():
    column = oracle_columns(0.5, 1, 2, 64, 8, paired=True, seed=3)[0]
    generator = torch.Generator().manual_seed(3)
    drawn = RING8.sample(2 * 64, generator)[0].reshape(2, 64, 2)
    directions = metrics.random_directions(16, 2, generator).reshape(2, 8, 2)
    for s in range(2):
        def score(x):
            return metrics.sliced_wasserstein2_sorted(metrics.projected_sorted(x, directions[s]),
                                                      metrics.projected_sorted(exact(64, 10_000), directions[s]))
        assert column["exact"][s] == pytest.approx(score(drawn[s]), abs=1e-12)
        assert column["shifted"][s] == pytest.approx(score(drawn[s] + torch.tensor([0.0, 0.5], dtype=torch.float64)),
                                                     abs=1e-12)


PLANTED = dict(shift=1.0, n_seeds=5, n_samples=512, n_projections=32, repeats=10)


def test_planted_difference_on_the_oracle_is_detected():
    """ring8 moved by 1.0 (a quarter of its radius) at 512 samples and 5 shared seeds: the exact
    configuration is marked best and the moved one worse in at least 9 of 10 repeats (20 of 20
    measured, docs/statistics.md; smaller shifts drown in the spread of the sample mean)."""
    p = PLANTED
    columns = oracle_columns(p["shift"], p["repeats"], p["n_seeds"], p["n_samples"], p["n_projections"], paired=True,
                             seed=0)
    detected = 0
    for cells in columns:
        result = stats.compare_column(cells)
        detected += result.cells["exact"].status == stats.BEST and result.cells["shifted"].status == stats.WORSE
    assert detected >= 0.9 * p["repeats"]


def test_null_identical_configurations_rarely_get_a_winner():
    """Two configurations with the same distribution under different draws: a winner is marked at
    the test's level (5%), so in at least 95% of repeats up to the binomial spread (3 sd: 3.3% at
    400 repeats). The rate does not depend on the sample count: 64 samples, 16 projections."""
    repeats = 400
    winners = 0
    for cells in oracle_columns(0.0, repeats, 3, 64, 16, paired=False, seed=1):
        result = stats.compare_column(cells)
        winners += any(cell.status == stats.BEST for cell in result.cells.values())
        assert result.basis == stats.PAIRED_SEEDS
    assert winners / repeats <= 0.05 + binomial_tolerance(0.05, repeats)


def test_one_seed_rests_on_sampling_error_and_the_caption_says_so():
    reference = exact(256, 10_000)
    directions = metrics.random_directions(32, 2, torch.Generator().manual_seed(0))
    runs = {"exact": exact(256, 0), "shifted": exact(256, 0) + torch.tensor([0.0, 2.0], dtype=torch.float64),
            "same": exact(256, 0)}
    sampling = {name: stats.Sampling(*stats.sliced_w2_replicates(x, reference, directions, resamples=40, seed=0))
                for name, x in runs.items()}
    cells = {name: {0: s.estimate} for name, s in sampling.items()}
    result = stats.compare_column(cells, sampling=sampling)
    statuses = {name: cell.status for name, cell in result.cells.items()}
    assert statuses == {"exact": stats.TIED, "same": stats.TIED, "shifted": stats.WORSE}
    assert result.basis == stats.SAMPLING_ONLY
    assert "sampling error" in result.caption and "seed-to-seed" in result.caption
    without = stats.compare_column(cells)
    assert {cell.status for name, cell in without.cells.items() if name != without.leader} == {stats.UNTESTED}
    assert all(cell.status != stats.BEST for cell in without.cells.values())


def test_one_seed_from_a_standard_error_alone_is_the_independent_normal_test():
    """A table keeps only each run's se (<metric>_se): the difference's se is sqrt(se_a^2 + se_b^2),
    the interval estimate +- z se; a cell with replicates against one with an se alone falls back to it."""
    cells = {"a": {0: 1.0}, "b": {0: 1.05}, "c": {0: 2.0}}
    sampling = {"a": stats.Sampling(1.0, se=0.02), "b": stats.Sampling(1.05, se=0.03),
                "c": stats.Sampling(2.0, replicates=np.random.default_rng(0).normal(2.0, 0.04, 200))}
    result = stats.compare_column(cells, sampling=sampling)
    p_b = 2 * scipy_stats.norm.sf(0.05 / math.hypot(0.02, 0.03))
    p_c = 2 * scipy_stats.norm.sf(1.0 / math.hypot(0.02, sampling["c"].standard_error))
    assert stats.holm([p_b, p_c]) == pytest.approx([result.cells["b"].p_adjusted, result.cells["c"].p_adjusted])
    assert (result.cells["b"].status, result.cells["c"].status) == (stats.TIED, stats.WORSE)
    assert result.cells["a"].interval.low == pytest.approx(1.0 - scipy_stats.norm.ppf(0.975) * 0.02)
    assert result.basis == stats.SAMPLING_ONLY and "sampling error" in result.caption
    with pytest.raises(ValueError, match="replicates or a standard error"):
        stats.Sampling(1.0)
    with pytest.raises(ValueError, match="finite and >= 0"):
        stats.Sampling(1.0, se=float("nan"))


def test_the_standard_error_alone_is_conservative_against_paired_replicates():
    """Two runs from the same draw, resampled with the same rows: their replicates move together, so
    the paired difference's spread is below sqrt(se_a^2 + se_b^2) and its p-value smaller."""
    reference = exact(256, 10_000)
    directions = metrics.random_directions(32, 2, torch.Generator().manual_seed(0))
    runs = {"exact": exact(256, 0), "shifted": exact(256, 0) + torch.tensor([0.0, 0.3], dtype=torch.float64)}
    replicated = {name: stats.Sampling(*stats.sliced_w2_replicates(x, reference, directions, resamples=40, seed=0))
                  for name, x in runs.items()}
    se_only = {name: stats.Sampling(run.estimate, se=run.standard_error) for name, run in replicated.items()}
    paired_spread = np.std(replicated["exact"].replicates - replicated["shifted"].replicates, ddof=1)
    assert paired_spread < math.hypot(se_only["exact"].se, se_only["shifted"].se)
    cells = {name: {0: run.estimate} for name, run in replicated.items()}
    paired = stats.compare_column(cells, sampling=replicated)
    independent = stats.compare_column(cells, sampling=se_only)
    assert paired.leader == independent.leader == "exact"
    # measured: paired spread 0.027 against 0.167; p 4e-7 (worse) against 0.40 (tied)
    assert independent.cells["shifted"].p_adjusted >= paired.cells["shifted"].p_adjusted
    assert (paired.cells["shifted"].status, independent.cells["shifted"].status) == (stats.WORSE, stats.TIED)


def test_sampling_test_null_rate_on_independent_sets():
    """One seed per configuration, per-image values of two identical configurations, resampled
    independently: a difference is declared at about the level (40 resamples scatter the standard
    error, which adds about 0.02)."""
    repeats = 1000
    rng = np.random.default_rng(11)
    a, b = rng.normal(25, 2, size=(repeats, 50)), rng.normal(25, 2, size=(repeats, 50))
    replicates_a, replicates_b = bootstrap_means_of_rows(a, 40, seed=1), bootstrap_means_of_rows(b, 40, seed=2)
    rejected = sum(stats.sampling_test(ra, rb, ea, eb) < 0.05
                   for ra, rb, ea, eb in zip(replicates_a, replicates_b, a.mean(axis=1), b.mean(axis=1)))
    assert rejected / repeats <= 0.05 + binomial_tolerance(0.05, repeats) + 0.02


def test_caption_states_test_level_n_and_correction():
    cells = {"a": {0: 1.0, 1: 1.1, 2: 0.9}, "b": {0: 2.0, 1: 2.2, 2: 2.1}, "c": {0: 3.0, 1: 3.1, 2: 2.9}}
    result = stats.compare_column(cells, level=0.9)
    assert result.cells["a"].status == stats.BEST
    for piece in ("n = 3", "90% t interval", "paired t test", "level 0.1", "Holm", "2 comparisons", "tied"):
        assert piece in result.caption
    higher = stats.compare_column(cells, better="higher")
    assert higher.leader == "c"


# --- power and variance components --------------------------------------------------------

def test_seeds_needed_reaches_its_power_in_simulation():
    effect, sd = 0.5, 1.0
    observed = np.random.default_rng(0).normal(size=10)
    observed = effect + sd * (observed - observed.mean()) / observed.std(ddof=1)   # exactly mean 0.5, sd 1
    n = stats.seeds_needed(observed)
    repeats = 4000

    def simulated_power(seeds: int) -> float:
        d = np.random.default_rng(seeds).normal(effect, sd, size=(repeats, seeds))
        t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / math.sqrt(seeds))
        return float(np.mean(np.abs(t) > scipy_stats.t.ppf(0.975, seeds - 1)))
    assert abs(simulated_power(n) - 0.8) <= binomial_tolerance(0.8, repeats)
    assert simulated_power(n // 2) < 0.6
    assert stats.seeds_needed([1.0, -1.0]) == math.inf


def test_variance_components_by_hand_and_by_simulation():
    # grand mean 4; MS_between = (2 * 4 + 2 * 4) / 1 = 16, MS_within = 4 / 2 = 2, n0 = 2
    by_hand = stats.variance_components({"a": [1.0, 3.0], "b": [5.0, 7.0]})
    assert (by_hand.training, by_hand.sampling) == pytest.approx((7.0, 2.0))
    rng = np.random.default_rng(3)
    groups = {i: 10 + rng.normal(0, 2.0) + rng.normal(0, 1.0, size=5 + i % 3) for i in range(300)}
    estimated = stats.variance_components(groups)
    assert estimated.training == pytest.approx(4.0, rel=0.2)
    assert estimated.sampling == pytest.approx(1.0, rel=0.1)
    assert 0.7 < estimated.training_share < 0.9


# --- compare_column computes per group of rows, with the results of the per-pair code --------

def per_pair_compare_column(cells, better, level, test, interval, sampling, seed):
    """main's compare_column before it was vectorised (commit 1fc64f1), kept as the reference: an
    interval per cell and a scipy test per pair."""
    def cell_interval(values, run_sampling):
        if len(values) == 1 and run_sampling is not None:
            replicates = np.asarray(run_sampling.replicates, dtype=float)
            se = float(replicates.std(ddof=1))
            half = scipy_stats.norm.ppf((1 + level) / 2) * se
            return stats.Interval(run_sampling.estimate, float(run_sampling.estimate - half),
                                  float(run_sampling.estimate + half), 1, level, "bootstrap-normal", se=se,
                                  note=f"sampling error only: bootstrap over samples, {len(replicates)} resamples")
        values = np.asarray(list(values.values()), dtype=float)
        if interval != "t" or len(values) == 1:
            return stats.seed_interval(values, level, interval, seed=seed)
        n, mean = len(values), float(values.mean())
        half = scipy_stats.t.ppf((1 + level) / 2, n - 1) * values.std(axis=-1, ddof=1) / math.sqrt(n)
        return stats.Interval(mean, float(mean - half), float(mean + half), n, level, "t",
                              se=float(values.std(ddof=1) / math.sqrt(n)))

    def paired(a, b):
        differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
        if np.all(differences == differences[0]):
            return 1.0 if differences[0] == 0 else 0.0
        if test == "t":
            return float(scipy_stats.ttest_1samp(differences, 0.0).pvalue)
        if test == "wilcoxon":
            return float(scipy_stats.wilcoxon(differences).pvalue)
        observed = abs(differences.mean())
        centred = stats.bootstrap_means(differences - differences.mean(), stats.SEED_RESAMPLES, seed)
        return float((1 + np.sum(np.abs(centred) >= observed)) / (1 + stats.SEED_RESAMPLES))

    def pair_pvalue(a, b, sampling_a, sampling_b):
        shared = sorted(set(a) & set(b))
        if len(shared) >= 2:
            return paired([a[s] for s in shared], [b[s] for s in shared]), stats.PAIRED_SEEDS
        if sampling_a is not None and sampling_b is not None:
            difference = np.asarray(sampling_a.replicates, dtype=float) - np.asarray(sampling_b.replicates, dtype=float)
            se = float(difference.std(ddof=1))
            gap = sampling_a.estimate - sampling_b.estimate
            p = (1.0 if gap == 0 else 0.0) if se == 0 else float(2 * scipy_stats.norm.sf(abs(gap) / se))
            return p, stats.SAMPLING_ONLY
        return None, stats.SAMPLING_ONLY

    names = [name for name, values in cells.items() if len(values)]
    intervals = {name: cell_interval(cells[name], sampling.get(name)) for name in names}
    sign = 1 if better == "lower" else -1
    leader = min(names, key=lambda name: sign * intervals[name].estimate)
    others = [name for name in names if name != leader]
    tested = [pair_pvalue(cells[leader], cells[name], sampling.get(leader), sampling.get(name)) for name in others]
    adjusted = stats.holm([1.0 if p is None else p for p, _ in tested]) if others else []
    statuses = {name: stats.UNTESTED if p is None else stats.WORSE if p_adj < 1 - level else stats.TIED
                for name, (p, _), p_adj in zip(others, tested, adjusted)}
    statuses[leader] = (stats.BEST if others and set(statuses.values()) == {stats.WORSE}
                        else stats.UNTESTED if others and set(statuses.values()) == {stats.UNTESTED} else stats.TIED)
    bases = [basis for _, basis in tested]
    basis = stats.SAMPLING_ONLY if stats.SAMPLING_ONLY in bases else stats.PAIRED_SEEDS
    p_adjusted = dict(zip(others, (float(p) for p in adjusted)), **{leader: None})
    return leader, basis, {name: (intervals[name], statuses[name], p_adjusted[name]) for name in names}


def random_column(rng):
    """Up to 8 cells: all 5 seeds, a random subset of 6 seeds, or one seed (most with bootstrap
    replicates of one length); sometimes a copy of a cell (differences all 0) or a constant shift."""
    cells, sampling = {}, {}
    for c in range(int(rng.integers(1, 9))):
        kind, base = int(rng.integers(0, 4)), float(rng.normal(1.0, 0.3))
        seeds = (range(5) if kind == 0 else [0] if kind > 1
                 else rng.choice(6, size=int(rng.integers(1, 6)), replace=False))
        cells[f"c{c}"] = {int(s): base + float(rng.normal(0, 0.1)) for s in seeds}
        if len(cells[f"c{c}"]) == 1 and rng.random() < 0.8:
            sampling[f"c{c}"] = stats.Sampling(base, rng.normal(base, 0.05, 40))
    if rng.random() < 0.3:
        cells["copy"] = dict(cells["c0"])
        cells["shift"] = {s: v + 0.25 for s, v in cells["c0"].items()}
    return cells, sampling


@pytest.mark.filterwarnings("ignore:Precision loss occurred")    # the shifted copy: differences nearly equal
def test_compare_column_gives_the_per_pair_results_bit_for_bit():
    rng = np.random.default_rng(21)
    seen = set()
    for trial in range(45):
        cells, sampling = random_column(rng)
        options = dict(better=("lower", "higher")[trial % 2], level=(0.95, 0.9)[trial % 2], test=stats.TESTS[trial % 3],
                       interval=stats.SEED_METHODS[(trial // 3) % 3], seed=trial)
        leader, basis, expected = per_pair_compare_column(cells, sampling=sampling, **options)
        result = stats.compare_column(cells, sampling=sampling, **options)
        assert (result.leader, result.basis) == (leader, basis)
        assert {name: (cell.interval, cell.status, cell.p_adjusted) for name, cell in result.cells.items()} == expected
        seen |= {(options["test"], cell.status, cell.basis) for cell in result.cells.values()}
    # every test saw winners and ties on shared seeds; one-seed cells were compared and left untested
    assert {(test, status, stats.PAIRED_SEEDS) for test in stats.TESTS for status in (stats.WORSE, stats.TIED)} <= seen
    one_seed = {status for _, status, basis in seen if basis == stats.SAMPLING_ONLY}
    assert {stats.WORSE, stats.TIED, stats.UNTESTED} <= one_seed


def test_compare_column_calls_scipy_once_per_group_not_per_pair(monkeypatch):
    """A column of 8 cells x 5 seeds: one t test call and one t quantile for all of it; a column
    of 30 one-seed cells: one normal quantile and one normal tail for all of it."""
    calls = []

    def counted(owner, name):
        function = getattr(owner, name)
        monkeypatch.setattr(owner, name, lambda *args, **kwargs: calls.append(name) or function(*args, **kwargs))
    counted(scipy_stats, "ttest_1samp")
    counted(scipy_stats.t, "ppf")
    counted(scipy_stats.norm, "ppf")
    counted(scipy_stats.norm, "sf")
    rng = np.random.default_rng(0)
    stats.compare_column({f"c{i}": dict(enumerate(rng.normal(1.0, 0.1, 5))) for i in range(8)})
    assert sorted(calls) == ["ppf", "ttest_1samp"]
    calls.clear()
    sampling = {f"c{i}": stats.Sampling(float(v), rng.normal(v, 0.05, 50))
                for i, v in enumerate(rng.normal(1, 0.1, 30))}
    stats.compare_column({name: {0: run.estimate} for name, run in sampling.items()}, sampling=sampling)
    assert sorted(calls) == ["ppf", "sf"]


# --- the fast bootstraps over samples equal sampling_replicates ------------------------------

@pytest.mark.parametrize("n, m", [(60, 90), (80, 80)])
def test_fast_sliced_w2_bootstrap_equals_the_slow_one(n, m):
    x, reference = exact(n, 1), exact(m, 2)
    directions = metrics.random_directions(16, 2, torch.Generator().manual_seed(5))
    slow = stats.sampling_replicates(x, sliced_w2(5, 16), reference, resamples=20, seed=3)
    estimate, replicates = stats.sliced_w2_replicates(x, reference, directions, resamples=20, seed=3)
    assert estimate == slow[0]
    np.testing.assert_allclose(replicates, slow[1], rtol=0, atol=1e-12)


def test_fast_mmd_bootstrap_equals_the_slow_one():
    x, reference, cache, bandwidths = exact(60, 1), exact(90, 2), {}, (0.5, 1.0, 2.0)
    slow = stats.sampling_replicates(x, lambda a, b: metrics.mmd_rbf(a, b, bandwidths, cache=cache), reference,
                                     resamples=20, seed=3)
    estimate, replicates = stats.mmd_replicates(x, reference, bandwidths, resamples=20, seed=3, cache=cache)
    assert estimate == slow[0]
    np.testing.assert_allclose(replicates, slow[1], rtol=0, atol=1e-12)


def test_fast_energy_bootstrap_equals_exact_resamples():
    """Against the energy distance of each resample with distances taken directly (a - b): to 1e-12.
    metrics.energy_distance itself (the slow path) differs by up to ~1e-9 on resamples: the
    distance between two copies of a row comes out of |a|^2 + |b|^2 - 2ab as sqrt(rounding)."""
    x, reference = exact(60, 1), exact(90, 2)

    def direct(a, b):
        n, m = len(a), len(b)
        between, within_a, within_b = (torch.cdist(u, v, compute_mode="donot_use_mm_for_euclid_dist")
                                       for u, v in ((a, b), (a, a), (b, b)))
        return float(2 * between.mean() - within_a.sum() / (n * (n - 1)) - within_b.sum() / (m * (m - 1)))
    exact_replicates = [direct(x[rows], reference) for rows in stats.resample_rows(60, 20, seed=3)]
    estimate, replicates = stats.energy_distance_replicates(x, reference, resamples=20, seed=3)
    assert estimate == metrics.energy_distance(x, reference)
    np.testing.assert_allclose(replicates, exact_replicates, rtol=0, atol=1e-12)
    slow = stats.sampling_replicates(x, metrics.energy_distance, reference, resamples=20, seed=3)[1]
    np.testing.assert_allclose(replicates, slow, rtol=0, atol=1e-8)


def test_sampling_replicates_resample_the_rows_of_resample_rows():
    values = np.random.default_rng(0).normal(size=30)
    estimate, replicates = stats.sampling_replicates(values, np.mean, resamples=25, seed=4)
    assert estimate == values.mean()
    assert np.array_equal(replicates, values[stats.resample_rows(30, 25, seed=4)].mean(axis=1))


def test_the_vectorised_tests_and_half_widths_agree_with_the_one_cell_forms():
    rng = np.random.default_rng(5)
    differences = rng.normal(0.3, 1.0, size=(6, 4))
    for test in stats.TESTS:
        assert stats.paired_tests(differences, test) == pytest.approx(
            [stats.paired_test(row, np.zeros(4), test) for row in differences])
    halves = stats.t_half_widths(np.ones(4), np.array([1, 2, 3, 10]))     # sd 1, n values
    assert np.isnan(halves[0])
    assert halves[1:] == pytest.approx([stats.seed_interval(_unit_sd(n)).half_width for n in (2, 3, 10)])
    assert stats.normal_half_widths(0.1) == pytest.approx(0.1959964)
    assert stats.normal_test(0.0, 0.0) == 1.0 and stats.normal_test(0.1, 0.0) == 0.0
    assert stats.normal_test(1.959964, 1.0) == pytest.approx(0.05)
    assert stats.normal_test(np.array([0.0, 1.959964]), np.array([1.0, 1.0])) == pytest.approx([1.0, 0.05])


def _unit_sd(n: int) -> np.ndarray:
    """n values with sample standard deviation 1."""
    values = np.arange(n, dtype=float)
    return values / values.std(ddof=1)
