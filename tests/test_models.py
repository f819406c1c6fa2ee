"""Parametrisations convert exactly to the denoiser; the oracle; checkpoints."""

import pytest
import torch

from diffsweep import architectures, models
from diffsweep.data import make_dataset


class Constant(torch.nn.Module):
    """A 'network' that returns a fixed target whatever its input (to test the conversions)."""

    def __init__(self, target):
        super().__init__()
        self.target = target

    def forward(self, x_in, c_noise):
        return self.target


def ideal_targets(x0, eps, sigma, sd):
    """What each parametrisation's network should output for D to equal x0 exactly."""
    s = sigma[:, None]
    alpha, vp_s = 1 / (1 + s ** 2).sqrt(), s / (1 + s ** 2).sqrt()   # VP coefficients for sd = 1
    x = x0 + s * eps
    c_skip, c_out = sd ** 2 / (s ** 2 + sd ** 2), s * sd / (s ** 2 + sd ** 2).sqrt()
    return {"x0": x0, "eps": eps, "score": -eps, "v": alpha * eps - vp_s * x0,
            "edm": (x0 - c_skip * x) / c_out, "flow": eps - x0}


@pytest.mark.parametrize("parametrisation", sorted(models.PARAMETRISATIONS))
def test_ideal_network_output_gives_the_clean_sample(parametrisation):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(32, 3, generator=g, dtype=torch.float64), torch.randn(32, 3, generator=g, dtype=torch.float64)
    sigma = torch.logspace(-2, 2, 32, dtype=torch.float64)
    sd = 1.0  # v is defined for unit data scale
    target = ideal_targets(x0, eps, sigma, sd)[parametrisation]
    denoiser = models.PreconditionedDenoiser(Constant(target), parametrisation, sigma_data=sd)
    torch.testing.assert_close(denoiser(x0 + sigma[:, None] * eps, sigma), x0, rtol=1e-9, atol=1e-9)


class Spy(torch.nn.Module):
    """A 'network' that records the input it is given."""

    def forward(self, x_in, c_noise):
        self.seen = x_in
        return torch.zeros_like(x_in)


def test_flow_input_is_the_rectified_flow_interpolant():
    # x_t = (1 - t) x0 + t n with t = sigma / (1 + sigma) is what the velocity network sees.
    sigma = torch.tensor([0.5, 3.0], dtype=torch.float64)
    x0, n = torch.ones(2, 2, dtype=torch.float64), torch.full((2, 2), -2.0, dtype=torch.float64)
    spy = Spy()
    models.PreconditionedDenoiser(spy, "flow")(x0 + sigma[:, None] * n, sigma)
    t = (sigma / (1 + sigma))[:, None]
    torch.testing.assert_close(spy.seen, (1 - t) * x0 + t * n)


def test_eps_input_is_the_vp_input():
    # A VP eps-network sees x_t = sqrt(abar) x; c_in = 1 / sqrt(1 + sigma^2) is exactly sqrt(abar).
    sigma = torch.tensor([0.5, 3.0], dtype=torch.float64)
    x = torch.ones(2, 2, dtype=torch.float64)
    spy = Spy()
    models.PreconditionedDenoiser(spy, "eps")(x, sigma)
    abar = 1 / (1 + sigma ** 2)
    torch.testing.assert_close(spy.seen, abar.sqrt()[:, None] * x)


def test_oracle_score_is_tweedie_of_its_denoiser():
    mixture = make_dataset("gmm", preset="grid25").mixture
    oracle = models.OracleDenoiser(mixture)
    x = torch.randn(50, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    for sigma in (0.05, 1.0, 20.0):
        torch.testing.assert_close(oracle.score(x, sigma), mixture.score(x, sigma), rtol=1e-7, atol=1e-9)


def test_oracle_keeps_the_caller_dtype():
    oracle = models.OracleDenoiser(make_dataset("gmm").mixture)
    assert oracle(torch.zeros(4, 2), 1.0).dtype == torch.float32


def test_unknown_parametrisation_and_architecture():
    with pytest.raises(ValueError, match="unknown parametrisation 'rf'; allowed: edm, eps, flow, score, v, x0"):
        models.PreconditionedDenoiser(torch.nn.Identity(), "rf")
    with pytest.raises(ValueError, match="unknown architecture 'vit'; allowed: mlp, unet"):
        models.build_network("vit", 2)
    with pytest.raises(ValueError, match=r"arch 'unet' needs image data \(C, H, W\)"):
        models.build_network("unet", 2)


def test_unet_denoiser_on_digit_shaped_images():
    recipe = {"arch": "unet", "arch_params": {"channels": [16, 32]}, "parametrisation": "edm", "sigma_data": 0.5}
    denoiser = models.build_denoiser(recipe, (1, 8, 8))
    x = torch.randn(4, 1, 8, 8)
    out = denoiser(x, torch.tensor([0.1, 1.0, 10.0, 80.0]))
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_schema_lists_exactly_the_library_choices(root):
    from diffsweep.config import load_schema

    recipe = load_schema()["properties"]["models"]["additionalProperties"]["properties"]
    assert set(recipe["parametrisation"]["enum"]) == set(models.PARAMETRISATIONS)
    assert set(recipe["arch"]["enum"]) == set(architectures.ARCHITECTURES) == set(models.NETWORKS)


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    recipe = {"arch": "mlp", "arch_params": {"hidden": 16, "depth": 2}, "parametrisation": "eps", "sigma_data": 1.0}
    denoiser = models.build_denoiser(recipe, 2)
    path = tmp_path / "checkpoint.pt"
    torch.save({"recipe": recipe, "shape": (2,), "ema": denoiser.state_dict()}, path)
    loaded, _ = models.load_checkpoint(path)
    x = torch.randn(5, 2)
    torch.testing.assert_close(loaded(x, 1.0), denoiser(x, 1.0))

    torch.save({"weights": {}}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match=r"models\.m\.checkpoint: trained checkpoint '.*foreign\.pt' is not a trained "
                                         r"diffsweep model: it holds a dict with keys weights; expected"):
        models.load_checkpoint(tmp_path / "foreign.pt", where="models.m.")
    wrong = {**recipe, "arch_params": {"hidden": 32, "depth": 2}}
    torch.save({"recipe": wrong, "shape": (2,), "ema": denoiser.state_dict()}, tmp_path / "mismatch.pt")
    with pytest.raises(ValueError, match="does not match the network: 5 tensors of another shape"):
        models.load_checkpoint(tmp_path / "mismatch.pt")
    # Unreadable files, and checkpoints as the train rule writes them: test_inputs.py.


def test_the_declared_arch_params_are_the_networks_own_defaults():
    """diffsweep.architectures declares each network's keywords (read without torch, so a config
    is checked at parse time) with the network class's defaults: a recipe that leaves one out
    builds the network it built before."""
    import inspect

    for name, network in models.NETWORKS.items():
        keywords = inspect.signature(network).parameters
        declared = architectures.ARCHITECTURES.get(name).knobs
        assert set(declared) == set(keywords) - {"shape"}, name
        for key, knob in declared.items():
            default = keywords[key].default
            assert knob.default == (list(default) if isinstance(default, tuple) else default), (name, key)


def test_a_network_is_built_only_from_allowed_arch_params(tmp_path):
    with pytest.raises(ValueError, match=r"^models\.u\.arch_params: channels \[12, 32\]: 12 is not a multiple of "
                                         r"norm_groups 8"):
        models.build_network("unet", (1, 8, 8), {"channels": [12, 32]}, where="models.u.arch_params.")
    # A checkpoint whose stored recipe holds a value no config could give: one line naming the key.
    recipe = {"arch": "mlp", "arch_params": {"hidden": 16, "depth": 2}, "parametrisation": "eps", "sigma_data": 1.0}
    denoiser = models.build_denoiser(recipe, 2)
    bad = {**recipe, "arch_params": {"hidden": 16.0, "depth": 2}}
    torch.save({"recipe": bad, "shape": (2,), "ema": denoiser.state_dict()}, tmp_path / "float_width.pt")
    with pytest.raises(ValueError, match=r"models\.m\.checkpoint: .*float_width\.pt' has a recipe that builds no "
                                         r"network \(arch_params\.hidden: 16\.0 is not allowed; allowed: an integer"):
        models.load_checkpoint(tmp_path / "float_width.pt", where="models.m.")


def test_oracle_denoises_images_through_the_flattened_mixture():
    dataset = make_dataset("digits_gmm", components=3)
    oracle = models.OracleDenoiser(dataset.mixture)
    x = dataset.sample(5, torch.Generator().manual_seed(0))
    out = oracle(x, 0.7)
    assert out.shape == x.shape
    torch.testing.assert_close(out.flatten(1), dataset.mixture.denoise(x.flatten(1), 0.7))
