"""Mixtures of any dimension (diffsweep.gmm.StructuredMixture), their exact posterior
(restoration.posterior.StructuredPosterior), the published grid25_pairs construction and the
gmm presets grid25_pairs, random and npz. The structured paths are checked against the dense
GaussianMixture on small d and against closed forms."""

import math

import numpy as np
import pytest
import torch

from diffsweep.data import DataFileError, check_dataset_files, make_dataset, resolve_dataset_knobs
from diffsweep.gmm import StructuredMixture, random_mixture
from diffsweep.restoration.posterior import MixturePosterior, exact_posterior, grid25_pairs_problem

F64 = torch.float64


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def small_mixture(rank: int, seed: int = 0, K: int = 4, d: int = 6) -> StructuredMixture:
    g = generator(seed)
    factors = torch.randn(K, d, rank, generator=g, dtype=F64) if rank else None
    return StructuredMixture(torch.rand(K, generator=g, dtype=F64) + 0.1, 3 * torch.randn(K, d, generator=g, dtype=F64),
                             torch.rand(K, d, generator=g, dtype=F64) + 0.1, factors)


@pytest.mark.parametrize("rank", [0, 2])
def test_structured_mixture_equals_the_dense_mixture(rank):
    mixture = small_mixture(rank)
    dense = mixture.to_dense()
    g = generator(1)
    x = 3 * torch.randn(40, mixture.dim, generator=g, dtype=F64)
    per_row = 2 * torch.rand(40, generator=g, dtype=F64)
    per_row[::3] = 0.5                                    # repeated levels share one capacitance
    calls = [(method, sigma) for method in ("log_prob", "responsibilities", "mahalanobis", "denoise", "score")
             for sigma in (0.0, per_row)] + [("denoise", 30.0)]      # a large level: no cancellation
    for method, sigma in calls:
        torch.testing.assert_close(getattr(mixture, method)(x, sigma), getattr(dense, method)(x, sigma),
                                   rtol=1e-10, atol=1e-10, msg=f"{method} at sigma {sigma}")
    noisy = mixture.noisy(0.7)
    torch.testing.assert_close(noisy.log_prob(x), dense.noisy(0.7).log_prob(x), rtol=1e-10, atol=1e-10)


def test_one_isotropic_component_is_the_closed_form():
    mu, v, s = torch.tensor([[1.0, -2.0, 0.5]], dtype=F64), 0.3, 0.8
    mixture = StructuredMixture([1.0], mu, torch.full((1, 3), v, dtype=F64))
    x = torch.tensor([[0.0, 0.0, 0.0], [2.0, 1.0, -1.0]], dtype=F64)
    total = v + s ** 2
    torch.testing.assert_close(mixture.denoise(x, s), mu + v / total * (x - mu))
    torch.testing.assert_close(mixture.score(x, s), (mu - x) / total)
    closed = -0.5 * (3 * math.log(2 * math.pi * total) + ((x - mu) ** 2).sum(1) / total)
    torch.testing.assert_close(mixture.log_prob(x, s), closed)


def test_score_is_the_gradient_of_the_log_density():
    mixture = small_mixture(rank=2, seed=3)
    x = 3 * torch.randn(10, mixture.dim, generator=generator(4), dtype=F64).requires_grad_(True)
    (grad,) = torch.autograd.grad(mixture.log_prob(x, 0.4).sum(), x)
    torch.testing.assert_close(mixture.score(x.detach(), 0.4), grad, rtol=1e-9, atol=1e-9)


def test_exact_samples_have_the_mixture_moments_and_repeat_with_the_seed():
    mixture = small_mixture(rank=2, seed=5)
    x, labels = mixture.sample(40_000, generator(6))
    again, _ = mixture.sample(40_000, generator(6))
    assert torch.equal(x, again)
    weights = torch.bincount(labels, minlength=4).double() / len(labels)
    assert (weights - mixture.weights).abs().max() < 0.01
    for k in range(4):     # each component's covariance, within sampling error of a few percent
        rows = x[labels == k]
        torch.testing.assert_close(rows.mean(0), mixture.means[k], atol=0.1, rtol=0)
        error = (rows.T.cov() - mixture.covariances[k]).norm() / mixture.covariances[k].norm()
        assert error < 0.06


@pytest.mark.parametrize("rank", [0, 3])
def test_structured_posterior_equals_the_dense_posterior(rank):
    prior = small_mixture(rank, seed=7, d=5)
    g = generator(8)
    A, y = torch.randn(2, 5, generator=g, dtype=F64), 3 * torch.randn(2, generator=g, dtype=F64)
    structured, dense = exact_posterior(prior, A, y, 0.4), exact_posterior(prior.to_dense(), A, y, 0.4)
    assert isinstance(dense, MixturePosterior)
    for name in ("weights", "means", "covariances"):
        torch.testing.assert_close(getattr(structured, name), getattr(dense, name), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(structured.covariance(), dense.covariance(), rtol=1e-10, atol=1e-12)
    samples = structured.sample(40_000, generator(9))       # Matheron's rule: the posterior's moments
    assert (samples.mean(0) - dense.mean()).abs().max() < 0.05
    assert (samples.T.cov() - dense.covariance()).norm() / dense.covariance().norm() < 0.05


def test_grid25_pairs_problem_follows_the_published_draw_order():
    """An independent route to the same instance: the construction as the benchmark writes it, with the
    global generator and torch.distributions (docs/benchmarks.md)."""
    problem = grid25_pairs_problem(8, 2, seed=27)
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(27)
        means = torch.tensor([[-8.0 * i, -8.0 * j] * 4 for i in range(-2, 3) for j in range(-2, 3)])
        weights = torch.randn(25) ** 2
        weights = weights / weights.sum()
        U, _, Vh = torch.linalg.svd(torch.randn(2, 8), full_matrices=True)
        s = torch.sort(torch.rand(2), descending=True).values
        A = U @ (torch.diag(s) @ Vh[:2])
        prior = torch.distributions.MixtureSameFamily(
            torch.distributions.Categorical(weights),
            torch.distributions.MultivariateNormal(means, torch.eye(8).repeat(25, 1, 1)))
        truth = prior.sample()
        std = torch.rand(1)[0] * s.max()
        y = A @ truth + torch.randn(2) * std
    finally:
        torch.random.set_rng_state(state)
    assert torch.equal(problem.matrix, A.double()) and torch.equal(problem.y, y.double())
    assert torch.equal(problem.truth, truth.double()) and problem.noise_std == float(std)
    torch.testing.assert_close(problem.prior.weights, weights.double(), rtol=1e-6, atol=0)
    assert torch.equal(problem.prior.means, means.double())


def test_grid25_pairs_prior_is_the_dataset_preset_and_scales_to_d_1000():
    dataset = make_dataset("gmm", preset="grid25_pairs", dim=8)
    problem = grid25_pairs_problem(8, 4)
    torch.testing.assert_close(dataset.mixture.weights, problem.prior.weights, rtol=0, atol=0)
    torch.testing.assert_close(dataset.mixture.means, problem.prior.means, rtol=0, atol=0)
    big = grid25_pairs_problem(1000, 4)
    assert big.matrix.shape == (4, 1000) and big.prior.dim == 1000
    singular = torch.linalg.svdvals(big.matrix)
    assert bool((singular > 0).all() and (singular < 1).all()) and 0 < big.noise_std <= singular.max()
    assert big.posterior().sample(10, generator()).shape == (10, 1000)


def test_random_mixture_structures():
    iso = random_mixture(dim=50, n_modes=5, seed=1, std=0.5, separation=10.0)
    assert iso.rank == 0 and torch.allclose(iso.diagonals, torch.tensor(0.25, dtype=F64))
    distances = torch.cdist(iso.means, iso.means)[~torch.eye(5, dtype=torch.bool)]
    assert 3.0 < float(distances.mean()) < 7.0          # about separation * std = 5 apart
    diag = random_mixture(dim=50, n_modes=5, seed=1, covariance="diagonal", std=0.5, spread=4.0)
    assert float(diag.diagonals.max()) <= 0.25 and float(diag.diagonals.min()) >= (0.5 / 4) ** 2
    low = random_mixture(dim=50, n_modes=5, seed=1, covariance="lowrank", rank=3)
    assert low.rank == 3
    same_draw = random_mixture(dim=50, n_modes=5, seed=1, std=1.0, separation=10.0)   # means scale with std
    torch.testing.assert_close(same_draw.means, iso.means / 0.5)


def test_gmm_presets_take_only_their_knobs():
    assert resolve_dataset_knobs("gmm", {"preset": "grid25"}) == {"preset": "grid25", "scale": 1.0}
    assert set(resolve_dataset_knobs("gmm", {"preset": "random", "covariance": "diagonal"})) == {
        "preset", "scale", "dim", "n_modes", "seed", "covariance", "std", "spread", "separation"}
    with pytest.raises(ValueError, match=r"datasets.g.knobs.dim: grid25_pairs .* must be even, got 7"):
        resolve_dataset_knobs("gmm", {"preset": "grid25_pairs", "dim": 7}, where="datasets.g.")
    with pytest.raises(ValueError, match=r"\['rank'\] do not apply to preset 'random' with covariance 'isotropic'"):
        resolve_dataset_knobs("gmm", {"preset": "random", "rank": 3})
    with pytest.raises(ValueError, match=r"path: required by preset 'npz'"):
        resolve_dataset_knobs("gmm", {"preset": "npz"})


@pytest.mark.parametrize("layout", ["full", "diagonal", "lowrank"])
def test_npz_mixture_round_trip(tmp_path, layout):
    mixture = small_mixture(rank=2 if layout == "lowrank" else 0, seed=11)
    arrays = {"weights": mixture.weights.numpy(), "means": mixture.means.numpy()}
    if layout == "full":
        arrays["covariances"] = mixture.covariances.numpy()
    else:
        arrays["variances"] = mixture.diagonals.numpy()
        if layout == "lowrank":
            arrays["factors"] = mixture.factors.numpy()
    np.savez(tmp_path / "m.npz", **arrays)
    knobs = resolve_dataset_knobs("gmm", {"preset": "npz", "path": str(tmp_path / "m.npz")})
    check_dataset_files("gmm", knobs)
    read = make_dataset("gmm", **knobs).mixture
    x = torch.randn(20, 6, generator=generator(), dtype=F64)
    torch.testing.assert_close(read.denoise(x, 0.5), mixture.denoise(x, 0.5), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("arrays, message", [
    ({"means": np.zeros((2, 3)), "variances": np.ones((2, 3))}, "lacks the array 'weights'"),
    ({"weights": np.ones(2), "means": np.zeros((2, 3))}, "either 'covariances' .* or 'variances'"),
    ({"weights": np.ones(2), "means": np.zeros((2, 3)), "variances": np.ones((2, 4))},
     r"'variances' must have shape \(2, 3\)"),
    ({"weights": np.ones(2), "means": np.zeros((2, 3)), "variances": np.ones((2, 3)), "extra": np.ones(1)},
     r"holds arrays \['extra'\]"),
])
def test_bad_mixture_file_is_one_line_naming_key_and_file(tmp_path, arrays, message):
    np.savez(tmp_path / "bad.npz", **arrays)
    knobs = resolve_dataset_knobs("gmm", {"preset": "npz", "path": str(tmp_path / "bad.npz")})
    with pytest.raises(DataFileError, match=f"^datasets.g.knobs.path: '.*bad.npz'.*{message}") as error:
        check_dataset_files("gmm", knobs, where="datasets.g.")
    assert "\n" not in str(error.value)


def test_mixture_file_with_bad_values_is_refused_when_built(tmp_path):
    np.savez(tmp_path / "neg.npz", weights=np.ones(2), means=np.zeros((2, 3)), variances=-np.ones((2, 3)))
    with pytest.raises(DataFileError, match=r"^datasets.g.knobs.path: '.*neg.npz': diagonal variances must be .* > 0"):
        make_dataset("gmm", where="datasets.g.", preset="npz", path=str(tmp_path / "neg.npz"))
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(DataFileError, match=r"cannot read '.*text.npz' as .npz"):
        check_dataset_files("gmm", {"preset": "npz", "scale": 1.0, "path": str(tmp_path / "text.npz")})


# --- the published problem as a restoration task ---------------------------------------------

def problem_config(seed=27, scale=1.0):
    return {"datasets": {"pairs8": {"family": "gmm", "knobs": {"preset": "grid25_pairs", "dim": 8, "seed": seed,
                                                              "scale": scale}},
                         "ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}},
            "models": {"oracle": {"source": "oracle"}},
            "samplers": {"ddpm": {"family": "ddpm", "steps": 10}},
            "restoration": {"tasks": {"published": {"operator": "grid25_pairs", "knobs": {"d_y": [1, 4]}}},
                            "restorers": {"ddrm": {"family": "ddrm", "steps": 10}}}}


def test_a_problem_task_runs_on_its_prior_only_with_one_observation():
    from diffsweep import config as ds_config
    from diffsweep import grid as ds_grid

    runs = list(ds_grid.build(ds_config.prepare(problem_config())).of_kind("restoration").values())
    assert {run.model.data.name for run in runs} == {"pairs8"}
    assert sorted(run.task.operator_knobs["d_y"] for run in runs) == [1, 4]
    assert {run.task.n_measurements for run in runs} == {1}
    with pytest.raises(ValueError, match=r"^restoration.tasks.published.knobs.problem_seed: 27 is not the seed of "
                                         r"dataset 'pairs8' \(3\)"):
        ds_grid.build(ds_config.prepare(problem_config(seed=3)))
    with pytest.raises(ValueError, match=r"^datasets.pairs8.knobs.scale: .* unscaled prior; got scale 2.0"):
        ds_grid.build(ds_config.prepare(problem_config(scale=2.0)))


@pytest.mark.parametrize("key,value", [("noise_std", 0.1), ("data_range", "zero_one"), ("images", [0])])
def test_a_problem_task_refuses_the_noise_and_truths_it_draws_itself(key, value):
    from diffsweep import config as ds_config

    config = problem_config()
    config["restoration"]["tasks"]["published"][key] = value
    with pytest.raises(ds_config.ConfigError) as refused:
        ds_config.check(config, check_paths=False)
    assert str(refused.value).splitlines() == [f"invalid config: restoration.tasks.published.{key}: task 'published' is "
                                               "the published problem grid25_pairs, which draws its own noise std and "
                                               "measures its own ground truth; remove the key"]


def test_the_manifest_shows_no_noise_std_for_a_problem_and_the_default_for_an_operator():
    """A problem's rows leave noise_std empty (its rows carry noise_std_drawn); an operator task that states
    no noise_std has 0.05 on zero_one, the same rows and run ids as one that states them."""
    from diffsweep import config as ds_config
    from diffsweep import grid as ds_grid

    def rows(**stated):
        config = problem_config()
        config["restoration"]["tasks"]["proj"] = {"operator": "random_projection", **stated}
        return ds_grid.build(ds_config.prepare(config)).manifest_rows("restoration")
    default, stated = rows(), rows(noise_std=0.05, data_range="zero_one")
    assert default == stated
    problems = [row for row in default if row["task"] == "published"]
    assert len(problems) == 2 and all(row[key] is None for row in problems
                                      for key in ("noise_std", "data_range", "noise_std_effective"))
    operator_rows = [row for row in default if row["task"] == "proj"]     # on pairs8 and ring8
    assert len(operator_rows) == 2 and all((row["noise_std"], row["data_range"], row["noise_std_effective"])
                                           == (0.05, "zero_one", 0.1) for row in operator_rows)


def test_a_job_measures_the_problem_and_restores_it_with_the_drawn_noise():
    from types import SimpleNamespace

    from diffsweep.models import OracleDenoiser
    from diffsweep.restoration.operators import measurement_noise_std
    from diffsweep.runs.restoration import measure, restore

    problem = grid25_pairs_problem(8, 2)
    task = {"operator": "grid25_pairs", "operator_knobs": {"d_y": 2, "problem_seed": 27},
            "noise_std_effective": 0.05, "n_measurements": 1, "images": None}
    run = {"task": task, "seed": 5, "family": "ddrm", "n_samples": 8, "schedule": "vp_respaced", "steps": 10,
           "schedule_knobs": {}, "init": "sigma_max", "init_knobs": {}, "knobs": {"eta": 0.85, "eta_b": 1.0}}
    dataset = make_dataset("gmm", preset="grid25_pairs", dim=8)
    operator, truth, y = measure(run, SimpleNamespace(shape=(8,)), None, generator())
    assert torch.equal(truth, problem.truth.reshape(1, 8)) and torch.equal(y, problem.y.reshape(1, 2))
    assert measurement_noise_std(operator, task["noise_std_effective"]) == problem.noise_std
    samples, nfe, counted, _ = restore(run, OracleDenoiser(dataset.mixture), operator, y, (8,), torch.float64, torch.device("cpu"))
    assert samples.shape == (8, 8) and nfe == counted == 10
