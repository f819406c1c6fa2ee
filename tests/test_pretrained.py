"""Pretrained score sources against the upstream reference fixtures (tests/fixtures/pretrained, copied from ../shared/fixtures/pretrained):
small random-weight checkpoints in the original file layouts reproduce the stored outputs of
guided-diffusion's ADM and score_sde's NCSN++; the full-size networks have exactly the keys,
shapes and dtypes of ffhq_10m.pt and checkpoint_48.pth; the denoiser wrappers are the stated
conversions of the raw networks; bad files fail with clear messages."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from diffsweep import noise, pretrained

# A copy of ../shared/fixtures/pretrained (upstream-generated; see its README.md) ships with the tests.
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pretrained"
ADM_SMALL = {"image_size": 32, "model_channels": 32, "channel_mult": [1, 2, 2], "num_head_channels": 8}
NCSNPP_SMALL = {"image_size": 32, "nf": 16, "ch_mult": [1, 2, 2], "num_res_blocks": 1}
# The fixtures' own suggestion for a re-implementation (observed upstream drift at 2 threads: <= 5.4e-6).
TOLERANCE = {"atol": 1e-5, "rtol": 1e-4}



@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # the threading the fixtures were generated with
    yield
    torch.set_num_threads(previous)


def arrays(name):
    with np.load(FIXTURES / name) as archive:
        return {key: torch.from_numpy(archive[key]) for key in archive.files}


def load_adm():
    return pretrained.load_pretrained("adm_ffhq256", FIXTURES / "adm_small.pt", arch=ADM_SMALL)


def load_ncsnpp(ema=True):
    return pretrained.load_pretrained("ncsnpp_ffhq256", FIXTURES / "ncsnpp_small.pth", arch=NCSNPP_SMALL, ema=ema)


def max_error(got, expected):
    return (got - expected).abs().max().item()


# --- reference outputs ----------------------------------------------------------------------

def test_adm_reproduces_guided_diffusion_outputs():
    io, net = arrays("adm_small_io.npz"), load_adm().net
    with torch.no_grad():
        fractional = net(io["x"], io["t"])          # t = [10.0, 500.5]
        integer = net(io["x"], io["t_int"])         # t = [0, 999]
    torch.testing.assert_close(fractional, io["out"], **TOLERANCE)
    torch.testing.assert_close(integer, io["out_t_int"], **TOLERANCE)
    assert fractional.shape == (2, 6, 32, 32)


@pytest.mark.parametrize("ema, expected", [(True, "out_ema"), (False, "out_model")])
def test_ncsnpp_reproduces_score_sde_outputs(ema, expected):
    io, net = arrays("ncsnpp_small_io.npz"), load_ncsnpp(ema).net
    sigma = io["sigma"].reshape(-1, 1, 1, 1)
    with torch.no_grad():
        out = net(io["x"], io["sigma"])
    # scale_by_sigma makes the output fall as 1/sigma; compared as out * sigma, every sample counts.
    torch.testing.assert_close(out * sigma, io[expected] * sigma, **TOLERANCE)


def test_ncsnpp_score_at_continuous_time_matches_score_sde_score_fn():
    io, net = arrays("ncsnpp_small_io.npz"), load_ncsnpp().net
    sigma = noise.VE_SIGMA_MIN * (noise.VE_SIGMA_MAX / noise.VE_SIGMA_MIN) ** io["t_continuous"].double()
    torch.testing.assert_close(sigma.float(), io["sigma_of_t"], rtol=1e-6, atol=0)
    with torch.no_grad():
        score = net(io["x"], io["sigma_of_t"])
    torch.testing.assert_close(score, io["score_fn_ema"], **TOLERANCE)


def test_ema_and_model_weights_differ_only_in_trainable_parameters():
    ema, raw = load_ncsnpp(True).net.state_dict(), load_ncsnpp(False).net.state_dict()
    differing = {key for key in ema if not torch.equal(ema[key], raw[key])}
    # The Fourier W (not trained) and the sigma table (a buffer) come from 'model' either way.
    assert "all_modules.0.W" not in differing and "sigmas" not in differing
    assert len(differing) == len(ema) - 2
    checkpoint = torch.load(FIXTURES / "ncsnpp_small.pth", weights_only=True)
    torch.testing.assert_close(ema["all_modules.1.weight"], checkpoint["ema"]["shadow_params"][0], rtol=0, atol=0)


# --- full-size architectures ----------------------------------------------------------------

def manifest(name):
    return json.loads((FIXTURES / name).read_text())


def layout(state: dict, prefix: str = "") -> dict:
    return {prefix + key: (list(value.shape), str(value.dtype).removeprefix("torch.")) for key, value in state.items()}


def test_full_size_adm_has_exactly_the_keys_of_ffhq_10m():
    with torch.device("meta"):
        net = pretrained.build_network("adm_ffhq256")
    expected = {e["key"]: (e["shape"], e["dtype"]) for e in manifest("adm_ffhq256_manifest.json")["entries"]}
    assert layout(net.state_dict()) == expected
    assert sum(p.numel() for p in net.parameters()) == 93_563_910


def test_full_size_ncsnpp_has_exactly_the_keys_and_ema_order_of_checkpoint_48():
    with torch.device("meta"):
        net = pretrained.build_network("ncsnpp_ffhq256")
    entries = manifest("ncsnpp_ffhq256_manifest.json")
    expected = {e["key"]: (e["shape"], e["dtype"]) for e in entries["model"]["entries"]}
    assert layout(net.state_dict(), "module.") == expected
    trainable = [(f"module.{name}", list(p.shape)) for name, p in net.named_parameters() if p.requires_grad]
    assert trainable == [(e["param_name"], e["shape"]) for e in entries["ema"]["shadow_params"]]


def test_small_ncsnpp_trainable_order_is_the_ema_order():
    net = load_ncsnpp().net
    names = [f"module.{name}" for name, p in net.named_parameters() if name != "all_modules.0.W"]
    assert names == manifest("ncsnpp_small_manifest.json")["ema_shadow_param_names_in_order"]


# --- denoiser wrappers ----------------------------------------------------------------------

def test_adm_denoiser_is_x_minus_sigma_eps_at_the_fractional_timestep():
    denoiser = load_adm()
    x = arrays("adm_small_io.npz")["x"] * 3
    table = noise.vp_sigma_table()
    # A table sigma gives its integer t; a sigma between two entries the t that interpolates -log abar.
    between = float(np.sqrt(np.expm1(0.5 * (np.log1p(table[500] ** 2) + np.log1p(table[501] ** 2)))))
    sigma = torch.tensor([table[10], between], dtype=torch.float64)
    torch.testing.assert_close(denoiser.timestep(sigma), torch.tensor([10.0, 500.5], dtype=torch.float64))
    s = sigma.float().reshape(-1, 1, 1, 1)
    with torch.no_grad():
        eps = denoiser.net(x / (1 + s ** 2).sqrt(), torch.tensor([10.0, 500.5]))[:, :3]
        torch.testing.assert_close(denoiser(x, sigma), x - s * eps, **TOLERANCE)
        # A float sigma applies to the whole batch.
        torch.testing.assert_close(denoiser(x, float(table[10]))[0], denoiser(x, sigma)[0], **TOLERANCE)


def test_adm_timestep_is_clamped_outside_the_training_chain():
    denoiser = load_adm()
    t = denoiser.timestep(torch.tensor([1e-4, noise.VP_SIGMA_MAX, 348.0], dtype=torch.float64))
    torch.testing.assert_close(t, torch.tensor([0.0, 999.0, 999.0], dtype=torch.float64))


def test_ncsnpp_denoiser_is_tweedie_in_unit_range_coordinates():
    denoiser = load_ncsnpp()
    x01 = arrays("ncsnpp_small_io.npz")["x"]
    sigma = torch.tensor([0.5, 50.0])                    # in [-1, 1] units
    x = 2 * x01 - 1
    with torch.no_grad():
        score01 = denoiser.net(x01, sigma / 2)
        expected = 2 * (x01 + (sigma / 2).reshape(-1, 1, 1, 1) ** 2 * score01) - 1
        torch.testing.assert_close(denoiser(x, sigma), expected, **TOLERANCE)
        # Tweedie's score in [-1, 1] units is the [0, 1] score halved (x = 2 x01 - 1).
        torch.testing.assert_close(denoiser.score(x, sigma), score01 / 2, **TOLERANCE)


# --- bad files ----------------------------------------------------------------------------------

def test_a_missing_file_names_the_config_key(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"models\.vp\.checkpoint: .*nowhere\.pt"):
        pretrained.load_pretrained("adm_ffhq256", tmp_path / "nowhere.pt", where="models.vp.")


def test_mismatched_keys_are_listed_not_ignored(tmp_path):
    state = torch.load(FIXTURES / "adm_small.pt", weights_only=True)
    state["extra.weight"] = state.pop("out.2.bias")
    torch.save(state, tmp_path / "renamed.pt")
    with pytest.raises(pretrained.CheckpointMismatch, match=r"1 missing key\(s\) \['out\.2\.bias'\], "
                                                            r"1 unexpected key\(s\) \['extra\.weight'\]"):
        pretrained.load_pretrained("adm_ffhq256", tmp_path / "renamed.pt", arch=ADM_SMALL)


def test_a_file_for_another_configuration_fails():
    # A deeper network than the file's: its extra blocks are missing from the file.
    with pytest.raises(pretrained.CheckpointMismatch, match="missing key"):
        pretrained.load_pretrained("adm_ffhq256", FIXTURES / "adm_small.pt", arch={**ADM_SMALL, "num_res_blocks": 2})
    with pytest.raises(pretrained.CheckpointMismatch, match="size mismatch"):
        pretrained.load_pretrained("adm_ffhq256", FIXTURES / "adm_small.pt", arch={**ADM_SMALL, "model_channels": 64})
    with pytest.raises(pretrained.CheckpointMismatch, match="plain state_dict"):
        pretrained.load_pretrained("adm_ffhq256", FIXTURES / "ncsnpp_small.pth", arch=ADM_SMALL)
    with pytest.raises(pretrained.CheckpointMismatch, match="no 'model' entry"):
        pretrained.load_pretrained("ncsnpp_ffhq256", FIXTURES / "adm_small.pt", arch=NCSNPP_SMALL)


def test_a_different_sigma_table_length_still_loads(tmp_path):
    checkpoint = torch.load(FIXTURES / "ncsnpp_small.pth", weights_only=True)
    checkpoint["model"]["module.sigmas"] = checkpoint["model"]["module.sigmas"][:1000]
    torch.save(checkpoint, tmp_path / "short.pth")
    denoiser = pretrained.load_pretrained("ncsnpp_ffhq256", tmp_path / "short.pth", arch=NCSNPP_SMALL)
    assert denoiser.net.sigmas.shape == (1000,)


def test_unknown_format_and_arch_keys_are_named():
    with pytest.raises(ValueError, match=r"models\.m\.format: unknown pretrained format 'ddpm'; allowed: adm_ffhq256"):
        pretrained.resolve_arch("ddpm", where="models.m.")
    with pytest.raises(ValueError, match=r"arch_params: unknown key\(s\) \['nf'\] for format 'adm_ffhq256'"):
        pretrained.resolve_arch("adm_ffhq256", {"nf": 8})
