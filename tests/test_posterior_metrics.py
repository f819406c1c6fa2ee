"""Metrics against the exact posterior (restoration/metrics.py): max-sliced W2 equal to POT's, the
1-D W2 from quantile blocks, the MMSE gap's closed form, mode weights from responsibilities,
calibration of exact samples, and each metric's floor and sampling error."""

import math

import ot
import pytest
import torch

from diffsweep import metrics as sample_metrics
from diffsweep.gmm import GaussianMixture, StructuredMixture
from diffsweep.restoration import metrics as rmetrics
from diffsweep.restoration.posterior import exact_posterior

F64 = torch.float64
METRICS = ["max_sliced_w2_posterior", "sliced_w2_posterior", "mmse_gap", "posterior_mode_weight_error",
           "coverage_50", "coverage_90"]


def posterior_metrics(samples, posterior, truth, exact, generator, seed=0, floor_repeats=0, resamples=0):
    """As a shard job scores a run: its measurement's reference, then the samples against it."""
    reference = rmetrics.posterior_reference(posterior, exact, len(samples), generator, seed=seed,
                                             floor_repeats=floor_repeats)
    return rmetrics.posterior_metrics(samples, reference, truth, resamples=resamples)


def gaussian(n, d, seed, scale=1.0):
    return scale * torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("n,m", [(300, 1000), (1000, 1000), (57, 13)])
def test_max_sliced_w2_equals_pots_estimator_on_fixed_projections(n, m):
    x, y = gaussian(n, 5, 0), gaussian(m, 5, 1, scale=1.3) + 0.2
    directions = sample_metrics.random_directions(100, 5, torch.Generator().manual_seed(2))
    ours = rmetrics.max_sliced_wasserstein(x, y, directions)
    pot = ot.max_sliced_wasserstein_distance(x.numpy(), y.numpy(), projections=directions.T.numpy(), p=2)
    assert abs(ours - pot) <= 1e-12 * max(1.0, pot)


@pytest.mark.parametrize("n,m", [(4, 1000), (1000, 1000), (7, 13), (1000, 3)])
def test_w2_from_quantile_blocks_equals_the_merged_grid_sum(n, m):
    x = gaussian(50, n, 0).sort(dim=1).values
    y = gaussian(50, m, 1, scale=2.0).sort(dim=1).values
    blocks = sample_metrics.quantile_blocks(y, n)
    assert torch.allclose(sample_metrics.w2_squared_blocks(x, blocks), sample_metrics.w2_squared_sorted(x, y),
                          atol=1e-12, rtol=0)


@pytest.fixture(scope="module")
def two_modes():
    """A 2-mode mixture in 4-D, one coordinate observed: a bimodal posterior with unequal weights."""
    means = torch.tensor([[-3.0, 0, 0, 0], [3.0, 1, 0, 0]], dtype=F64)
    prior = GaussianMixture(torch.tensor([0.5, 0.5], dtype=F64), means, torch.eye(4, dtype=F64).expand(2, 4, 4) * 0.5)
    return exact_posterior(prior, torch.tensor([[0.0, 1.0, 0.0, 0.0]], dtype=F64), torch.tensor([0.3]), 0.5)


def test_exact_samples_score_near_zero_and_nominal_coverage(two_modes):
    generator = torch.Generator().manual_seed(0)
    exact, samples = two_modes.sample(2000, generator), two_modes.sample(2000, generator)
    values = posterior_metrics(samples, two_modes, torch.zeros(4), exact, generator)
    assert abs(values["coverage_50"] - 0.5) < 0.03 and abs(values["coverage_90"] - 0.9) < 0.015
    assert values["posterior_mode_weight_error"] < 0.02 and values["mmse_gap"] < 0.01
    assert not any(key.endswith(("_se", "_floor")) for key in values)


def test_mmse_gap_is_the_squared_mean_error_and_its_floor_the_closed_form(two_modes):
    generator = torch.Generator().manual_seed(1)
    exact = two_modes.sample(500, generator)
    shifted = two_modes.sample(50, generator) + 0.3
    gap = rmetrics.mmse_gap(shifted, two_modes.mean())
    assert gap == pytest.approx(((shifted.mean(0) - two_modes.mean()) ** 2).mean().item(), abs=1e-15)
    values = posterior_metrics(shifted, two_modes, torch.zeros(4), exact, generator, floor_repeats=200)
    # exact sets of n: E ||mean - E[x|y]||^2 / d = tr(Cov[x|y]) / (n d); 200 repeats hold it to ~6% (sd)
    expected = torch.trace(two_modes.covariance()).item() / (50 * 4)
    assert values["mmse_gap_floor"] == pytest.approx(expected, rel=0.2)
    assert values["mmse_gap_floor_low"] < values["mmse_gap_floor"] < values["mmse_gap_floor_high"]


def test_mode_weight_error_of_samples_from_one_component_is_the_others_weight(two_modes):
    generator = torch.Generator().manual_seed(2)
    exact = two_modes.sample(500, generator)
    first_only = two_modes.means[0] + gaussian(200, 4, 3) @ torch.linalg.cholesky(two_modes.covariances[0]).T
    values = posterior_metrics(first_only, two_modes, torch.zeros(4), exact, generator)
    assert values["posterior_mode_weight_error"] == pytest.approx(1 - two_modes.weights[0].item(), abs=1e-3)


def test_narrow_samples_undercover_and_floors_and_errors_come_with_every_metric(two_modes):
    generator = torch.Generator().manual_seed(4)
    exact = two_modes.sample(1000, generator)
    narrow = two_modes.mean() + 0.3 * (two_modes.sample(100, generator) - two_modes.mean())
    state = generator.get_state()
    values = posterior_metrics(narrow, two_modes, torch.zeros(4), exact, generator, seed=3,
                                        floor_repeats=30, resamples=20)
    generator.set_state(state)
    again = posterior_metrics(narrow, two_modes, torch.zeros(4), exact, generator, seed=3,
                                       floor_repeats=30, resamples=20)
    assert values["coverage_90"] < 0.6 < values["coverage_90_floor_low"]
    for name in METRICS:
        assert values[f"{name}_se"] > 0 and values[f"{name}_floor_low"] <= values[f"{name}_floor_high"]
        assert values[f"{name}_floor"] == again[f"{name}_floor"]     # floors are drawn from the run's seed
    # exact sets of 100 against 1000 exact samples: coverage a little under nominal (finite-n quantiles)
    assert 0.8 < values["coverage_90_floor"] < 0.9 and 0.45 < values["coverage_50_floor"] < 0.52
    for name in ("max_sliced_w2_posterior", "sliced_w2_posterior"):
        assert values[name] > values[f"{name}_floor_high"], name
    assert values["mmse_gap"] < values["mmse_gap_floor_high"]     # shrunk about its mean: the mean stays right


def test_sliced_w2_posterior_is_unchanged_by_the_table(two_modes):
    generator = torch.Generator().manual_seed(5)
    exact, samples = two_modes.sample(300, generator), two_modes.sample(40, generator)
    before = sample_metrics.sliced_wasserstein2(samples, exact, generator=torch.Generator().manual_seed(6))
    values = posterior_metrics(samples, two_modes, torch.zeros(4), exact, torch.Generator().manual_seed(6))
    assert math.isclose(values["sliced_w2_posterior"], before, rel_tol=1e-12)


def test_components_whose_posterior_weight_underflows_are_left_out():
    means = torch.tensor([[-3.0, 0.0], [3.0, 0.0]], dtype=F64)
    prior = GaussianMixture(torch.tensor([0.5, 0.5], dtype=F64), means, torch.eye(2, dtype=F64).expand(2, 2, 2) * 0.1)
    posterior = exact_posterior(prior, torch.tensor([[1.0, 0.0]], dtype=F64), torch.tensor([40.0]), 0.1)
    assert posterior.weights[0] == 0
    generator = torch.Generator().manual_seed(0)
    exact, samples = posterior.sample(200, generator), posterior.sample(50, generator)
    values = posterior_metrics(samples, posterior, torch.zeros(2), exact, generator)
    assert values["posterior_mode_weight_error"] == pytest.approx(0, abs=1e-12)


def test_the_posteriors_responsibilities_are_the_priors_and_the_structured_metrics_equal_the_dense():
    """At small d: a rank-2-plus-diagonal prior under a 3 x 6 matrix, its StructuredPosterior against the
    dense MixturePosterior of the same prior; responsibilities also against the posterior's own dense
    mixture (N(x; mu'_k, C'_k), the likelihood factor cancels), every metric on the same samples."""
    g = torch.Generator().manual_seed(0)
    K, d = 4, 6
    prior = StructuredMixture(torch.rand(K, generator=g, dtype=F64) + 0.1, 2 * torch.randn(K, d, generator=g, dtype=F64),
                              torch.rand(K, d, generator=g, dtype=F64) + 0.1, torch.randn(K, d, 2, generator=g, dtype=F64))
    A = torch.randn(3, d, generator=g, dtype=F64)
    y = A @ prior.means[1] + 0.3 * torch.randn(3, generator=g, dtype=F64)
    structured, dense = exact_posterior(prior, A, y, 0.4), exact_posterior(prior.to_dense(), A, y, 0.4)
    samples = 3 * torch.randn(50, d, generator=g, dtype=F64)
    own = GaussianMixture(dense.weights, dense.means, dense.covariances).responsibilities(samples)
    for posterior in (structured, dense):
        torch.testing.assert_close(posterior.responsibilities(samples), own, rtol=1e-9, atol=1e-12)
    exact = dense.sample(200, g)
    state = g.get_state()
    values = {}
    for name, posterior in (("structured", structured), ("dense", dense)):
        g.set_state(state)
        values[name] = posterior_metrics(samples, posterior, torch.zeros(d), exact, g, seed=1, resamples=10)
    assert values["structured"].keys() == values["dense"].keys()
    for key, value in values["dense"].items():
        assert values["structured"][key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def test_sets_scored_in_batches_equal_sets_scored_one_by_one_and_chunked_floors_keep_the_closed_form(
        two_modes, monkeypatch):
    """Bootstrap sets and floors' exact sets go through `score_sets` in batches (BATCH_NUMBERS, here small:
    batches of 1 to 7 sets, a ragged last): each set's value is the metric of that set alone."""
    monkeypatch.setattr(rmetrics, "BATCH_NUMBERS", 7 * 20 * 4 + 1)
    generator = torch.Generator().manual_seed(1)
    exact, samples = two_modes.sample(200, generator), two_modes.sample(20, generator)
    reference = rmetrics.posterior_reference(two_modes, exact, 20, generator, floor_repeats=60)
    sets = torch.randint(20, (9, 20), generator=generator)
    for name, metric in reference.table.items():
        rows = metric.represent(samples)
        one_by_one = torch.tensor([float(metric.score(rows[index])) for index in sets], dtype=F64)
        torch.testing.assert_close(rmetrics.score_sets(metric, rows, sets), one_by_one, rtol=1e-12, atol=1e-14,
                                   msg=name)
    expected = torch.trace(two_modes.covariance()).item() / (20 * 4)
    assert reference.floors["mmse_gap_floor"] == pytest.approx(expected, rel=0.3)     # 60 repeats: ~10% (sd)
    assert reference.floors["coverage_90_floor_low"] < reference.floors["coverage_90_floor"] \
        < reference.floors["coverage_90_floor_high"]


def test_a_shard_job_builds_a_measurements_reference_once_for_all_its_restorers():
    """Two runs of one task and seed (other restorers) in one job share the references; a run of
    another seed does not; the shared values equal those a fresh job computes."""
    from diffsweep.data import make_dataset
    from diffsweep.runs.restoration import Restoration, measure

    dataset = make_dataset("gmm", preset="ring8")
    reference = dataset.sampler(20, torch.Generator().manual_seed(0))
    options = {"metrics": {"posterior_samples": 100, "floor_repeats": 4, "bootstrap_resamples": 3}, "strips": 0,
               "keep_samples": "none"}
    task = {"name": "proj", "operator": "random_projection", "operator_knobs": {"measurements": 1, "noise": "task"},
            "noise_std_effective": 0.2, "n_measurements": 2, "images": None}

    def finish(job, family, seed, tmp=None):
        run = {"id": f"{family}-{seed}", "family": family, "task": task, "seed": seed, "n_samples": 6}
        operator, truth, y = measure(run, dataset, reference, torch.Generator().manual_seed(seed))
        samples = truth.repeat_interleave(6, 0) + torch.randn(12, 2, generator=torch.Generator().manual_seed(9), dtype=F64)
        return job.finish(run, (operator, truth, y, samples), None)["measurements"]

    job = Restoration(dataset, reference, F64, torch.device("cpu"), options)
    first, second = finish(job, "ddrm", 0), finish(job, "dps", 0)
    assert len(job.posterior_references) == 1
    finish(job, "dps", 1)
    assert len(job.posterior_references) == 2
    fresh = finish(Restoration(dataset, reference, F64, torch.device("cpu"), options), "dps", 0)
    assert second == fresh and "mmse_gap_floor" in second[0]
    assert [row["mmse_gap_floor"] for row in first] == [row["mmse_gap_floor"] for row in second]
