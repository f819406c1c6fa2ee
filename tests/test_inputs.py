"""Inputs a user hands over: image files of every PNG/JPEG mode convert by the rule of
docs/images.md; unreadable images, empty or missing folders and checkpoints that cannot give
the network its weights are refused in one line naming the config key and the path."""

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from diffsweep import jobs, models, pretrained
from diffsweep.checkpoints import CheckpointError
from diffsweep.data import (DataFileError, check_dataset_files, load_image_folder, make_dataset,
                            native_resolution, resolve_dataset_knobs, write_blob_images)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "pretrained"
ADM_SMALL = {"image_size": 32, "model_channels": 32, "channel_mult": [1, 2, 2], "num_head_channels": 8}
NCSNPP_SMALL = {"image_size": 32, "nf": 16, "ch_mult": [1, 2, 2], "num_res_blocks": 1}
WHERE = "datasets.faces."
KEY = "datasets.faces.knobs.path"


def one_line(error) -> str:
    """The message of a refusal, checked to be one line without traceback or torch advice."""
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message and "weights_only=False" not in message
    return message


# --- image modes ------------------------------------------------------------------------------

def write_png16(path, array, color_type: int) -> None:
    """A 16-bit PNG of colour type 0 (grey), 2 (RGB), 4 (grey+alpha) or 6 (RGBA), written by hand:
    Pillow writes only 16-bit grey."""
    array = np.asarray(array, dtype=">u2")
    rows = b"".join(b"\x00" + row.tobytes() for row in array.reshape(array.shape[0], -1))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", array.shape[1], array.shape[0], 16, color_type, 0, 0, 0)
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                           + chunk(b"IEND", b""))


def load(folder, channels: int, resolution: int = 6) -> np.ndarray:
    """The first image of `folder` as (H, W, C) in [0, 1] (the loader's [-1, 1] mapped back)."""
    x = load_image_folder(str(folder), resolution, channels, "center", 0)
    return ((x[0].permute(1, 2, 0).numpy() + 1) / 2)


def luma(rgb):
    return rgb @ np.array([0.299, 0.587, 0.114])[:, None]


RNG = np.random.default_rng(0)
GREY8 = RNG.integers(0, 256, (6, 6), dtype=np.uint8)
RGB8 = RNG.integers(0, 256, (6, 6, 3), dtype=np.uint8)
ALPHA8 = RNG.integers(0, 256, (6, 6), dtype=np.uint8)
GREY16 = RNG.integers(0, 65536, (6, 6)).astype(np.uint16)
RGB16 = RNG.integers(0, 65536, (6, 6, 3)).astype(np.uint16)


def on_white(colour, alpha):
    return colour * alpha[:, :, None] + (1 - alpha[:, :, None])


# name: (write the file into a folder, the image expected in [0, 1] as RGB (H, W, 3))
MODES = {
    "grey8": (lambda f: Image.fromarray(GREY8).save(f / "a.png"),
              np.repeat(GREY8[:, :, None] / 255, 3, axis=2)),
    "grey16": (lambda f: Image.fromarray(GREY16).save(f / "a.png"),       # Pillow's I;16
               np.repeat(GREY16[:, :, None] / 65535, 3, axis=2)),
    "grey16_by_hand": (lambda f: write_png16(f / "a.png", GREY16, 0),
                       np.repeat(GREY16[:, :, None] / 65535, 3, axis=2)),
    "grey_alpha8": (lambda f: Image.fromarray(np.stack([GREY8, ALPHA8], 2), "LA").save(f / "a.png"),
                    np.repeat(on_white(GREY8[:, :, None] / 255, ALPHA8 / 255), 3, axis=2)),
    "rgb8": (lambda f: Image.fromarray(RGB8).save(f / "a.png"), RGB8 / 255),
    "rgba8": (lambda f: Image.fromarray(np.dstack([RGB8, ALPHA8])).save(f / "a.png"),
              on_white(RGB8 / 255, ALPHA8 / 255)),
    # Pillow reads 16-bit colour at 8-bit precision: the high byte of each value.
    "rgb16": (lambda f: write_png16(f / "a.png", RGB16, 2), (RGB16 >> 8) / 255),
    "rgba16": (lambda f: write_png16(f / "a.png", np.dstack([RGB16, RGB16[:, :, :1]]), 6),
               on_white((RGB16 >> 8) / 255, (RGB16[:, :, 0] >> 8) / 255)),
    "palette": (lambda f: Image.fromarray(RGB8).quantize(8).save(f / "a.png"),
                np.asarray(Image.fromarray(RGB8).quantize(8).convert("RGB")) / 255),
    "bilevel": (lambda f: Image.fromarray(GREY8 > 127).save(f / "a.png"),
                np.repeat((GREY8 > 127)[:, :, None] * 1.0, 3, axis=2)),
    "npz_uint8": (lambda f: np.savez(f / "a.npz", x=RGB8[None]), RGB8 / 255),
    "npz_uint16_chw": (lambda f: np.savez(f / "a.npz", x=RGB16.transpose(2, 0, 1)[None]), RGB16 / 65535),
}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_each_image_mode_converts_by_the_documented_rule(tmp_path, mode):
    write, expected = MODES[mode]
    write(tmp_path)
    source = tmp_path / "a.npz" if mode.startswith("npz") else tmp_path
    rgb = load(source, channels=3)
    np.testing.assert_allclose(rgb, expected, rtol=0, atol=1e-12)
    # One channel: BT.601 luma of the RGB rule (equal to the grey value for grey images).
    np.testing.assert_allclose(load(source, channels=1), luma(expected), rtol=0, atol=1e-12)


def test_palette_transparency_is_composited_on_white(tmp_path):
    picture = Image.fromarray(RGB8).quantize(4)
    picture.info["transparency"] = 0
    picture.save(tmp_path / "a.png", transparency=0)
    expected = np.asarray(picture.convert("RGB")) / 255
    expected[np.asarray(picture) == 0] = 1.0
    np.testing.assert_allclose(load(tmp_path, channels=3), expected, rtol=0, atol=1e-12)


def test_jpeg_reads_as_pillow_decodes_it(tmp_path):
    Image.fromarray(RGB8).save(tmp_path / "a.jpg", quality=90)
    Image.fromarray(GREY8).save(tmp_path / "sub.jpeg")
    expected = np.asarray(Image.open(tmp_path / "a.jpg").convert("RGB")) / 255
    np.testing.assert_allclose(load(tmp_path, channels=3), expected, rtol=0, atol=1e-12)
    x = load_image_folder(str(tmp_path), 4, 1, "center", 0)
    assert x.shape == (2, 1, 4, 4)   # resized


def test_sixteen_bit_images_keep_their_range_and_precision_when_resized(tmp_path):
    # The reported bug: 16-bit values were clipped to 255, so 99.5% of pixels came out white.
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp.png")
    x = load_image_folder(str(tmp_path), 32, 1, "center", 0)
    pixels = (x.numpy().ravel() + 1) / 2
    assert pixels.min() >= 0 and pixels.max() <= 1
    assert abs(pixels.mean() - 0.5) < 0.01 and (pixels > 0.99).mean() < 0.05
    # More than 256 distinct levels survive: not squeezed through 8 bits.
    assert len(np.unique(np.round(pixels * 65535))) > 256


def test_mixed_modes_and_sizes_stack_into_one_dataset(tmp_path):
    for name in ("grey8", "rgba8", "grey16"):
        (tmp_path / name).mkdir()
        MODES[name][0](tmp_path / name)
    Image.fromarray(RNG.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "wide.png")
    dataset = make_dataset("images", path=str(tmp_path), resolution=8)
    x = dataset.sample(4, torch.Generator().manual_seed(0))
    assert x.shape == (4, 3, 8, 8) and x.min() >= -1 and x.max() <= 1


def test_resolution_zero_keeps_the_images_own_size(tmp_path):
    # The side comes from the first image's header at parse time (folder and .npz), nothing is resized.
    images = RNG.integers(0, 256, (3, 12, 12, 3), dtype=np.uint8)
    for index, image in enumerate(images):
        Image.fromarray(image).save(tmp_path / f"{index}.png")
    np.savez(tmp_path / "images.npz", x=images.transpose(0, 3, 1, 2))
    assert native_resolution(str(tmp_path), "center") == 12
    assert native_resolution(str(tmp_path / "images.npz"), "none") == 12
    assert native_resolution(str(tmp_path / "gone"), "center") is None
    x = make_dataset("images", path=str(tmp_path), resolution=0).sample(3, torch.Generator().manual_seed(0))
    assert x.shape == (3, 3, 12, 12)
    exact = torch.from_numpy(images.transpose(0, 3, 1, 2) / 127.5 - 1.0)
    assert all(any(torch.allclose(row, image) for image in exact) for row in x)
    assert torch.allclose(load_image_folder(str(tmp_path / "images.npz"), 0, 3, "none", 0), exact)
    # Images of another size, or not square without the crop: refused naming the key and the files.
    Image.fromarray(RNG.integers(0, 256, (20, 16, 3), dtype=np.uint8)).save(tmp_path / "9.png")
    with pytest.raises(DataFileError, match=r"^datasets\.faces\.knobs\.resolution: 0 keeps the images' own size, "
                                            r"but '9\.png' is 16x16 and '0\.png' 12x12; give a resolution"):
        load_image_folder(str(tmp_path), 0, 3, "center", 0, where="datasets.faces.knobs.path")
    (tmp_path / "wide").mkdir()
    Image.fromarray(RNG.integers(0, 256, (20, 16, 3), dtype=np.uint8)).save(tmp_path / "wide" / "a.png")
    with pytest.raises(DataFileError, match=r"^resolution: 0 keeps .* is 16x20, not square; use crop: center"):
        native_resolution(str(tmp_path / "wide"), "none")
    with pytest.raises(DataFileError, match=r"^datasets\.faces\.knobs\.resolution: 0 keeps .* 'a\.png' is 16x20, not square"):
        load_image_folder(str(tmp_path / "wide"), 0, 3, "none", 0, where="datasets.faces.knobs.path")


def test_the_fixture_images_are_the_projects_own_blobs(tmp_path):
    # tests/fixtures/images/blobs32 (config/paper_tiny.yaml's images) is what write_blob_images makes.
    fixture = Path(__file__).parent / "fixtures" / "images" / "blobs32"
    made = write_blob_images(tmp_path, count=8, resolution=32)
    assert sorted(p.name for p in fixture.glob("*.png")) == [p.name for p in made]
    for file in made:
        assert np.array_equal(np.asarray(Image.open(file)), np.asarray(Image.open(fixture / file.name))), file.name


# --- image refusals --------------------------------------------------------------------------

def test_a_dataset_without_path_is_refused_when_resolved():
    for given in ({}, {"path": ""}):
        with pytest.raises(ValueError) as error:
            resolve_dataset_knobs("images", {**given, "resolution": 8}, where=WHERE)
        assert one_line(error).startswith(f"{KEY}: required by dataset family 'images'")


def corrupt_files(folder: Path) -> dict:
    """name -> a file Pillow cannot decode, each alone in its own sub-folder."""
    Image.fromarray(RGB8).resize((64, 64)).save(folder / "valid.png")
    whole = (folder / "valid.png").read_bytes()
    files = {"truncated.png": whole[:len(whole) // 2], "random.png": os.urandom(2000),
             "text.jpg": b"not an image at all\n", "empty.png": b""}
    for name, content in files.items():
        (folder / name.split(".")[0]).mkdir()
        (folder / name.split(".")[0] / name).write_bytes(content)
    return {name: folder / name.split(".")[0] / name for name in files}


def test_a_corrupt_image_is_refused_naming_the_file_and_the_key(tmp_path):
    for name, file in corrupt_files(tmp_path).items():
        with pytest.raises(DataFileError) as error:
            make_dataset("images", where=WHERE, path=str(file.parent), resolution=8)
        assert one_line(error).startswith(f"{KEY}: cannot read image '{file}'"), name


def test_a_corrupt_npz_is_refused_naming_it(tmp_path):
    np.savez(tmp_path / "whole.npz", x=RGB8[None])
    (tmp_path / "cut.npz").write_bytes((tmp_path / "whole.npz").read_bytes()[:100])
    np.savez(tmp_path / "floats.npz", x=RGB8[None] / 255)
    np.savez(tmp_path / "other.npz", images=RGB8[None])
    np.savez(tmp_path / "none.npz", x=np.zeros((0, 4, 4, 3), np.uint8))
    for name, problem in (("cut", "cannot read"), ("floats", "dtype float64; expected uint8 or uint16"),
                          ("none", "holds no images"),
                          ("other", "has no array 'x' (found: images)")):
        path = tmp_path / f"{name}.npz"
        with pytest.raises(DataFileError) as error:
            make_dataset("images", where=WHERE, path=str(path), resolution=4)
        message = one_line(error)
        assert message.startswith(KEY) and str(path) in message and problem in message, message


@pytest.mark.parametrize("case, problem", [("missing", "does not exist"),
                                           ("empty", "holds no .png/.jpg/.jpeg images"),
                                           ("no_images", "holds no .png/.jpg/.jpeg images"),
                                           ("notes.txt", "is a file but not an .npz")])
def test_missing_empty_or_imageless_sources_give_one_line(tmp_path, case, problem):
    (tmp_path / "empty").mkdir()
    (tmp_path / "no_images" / "deeper").mkdir(parents=True)
    (tmp_path / "no_images" / "deeper" / "readme.txt").write_text("no pictures here")
    (tmp_path / "notes.txt").write_text("a file")
    path = str(tmp_path / case)
    for refuse in (lambda: make_dataset("images", where=WHERE, path=path, resolution=8),
                   lambda: check_dataset_files("images", {"path": path}, where=WHERE)):
        with pytest.raises(DataFileError) as error:
            refuse()
        assert one_line(error).startswith(f"{KEY}: ") and f"'{path}' " in str(error.value)
        assert problem in str(error.value)


def test_the_search_of_an_images_folder_is_bounded_and_names_what_stops_it(tmp_path, monkeypatch):
    """(issue 26) `path: /` walked the whole filesystem at parse time: the search stops at a
    documented number of entries, at a kernel filesystem, and follows no link to a folder."""
    from diffsweep import data

    folder = tmp_path / "faces"
    (folder / "deeper").mkdir(parents=True)
    for index in range(4):
        Image.fromarray(GREY8).save(folder / "deeper" / f"{index}.png")
    (folder / "loop").symlink_to(folder)                   # a link back up: not followed, found once
    assert [p.name for p in data.image_files(folder)] == ["0.png", "1.png", "2.png", "3.png"]
    monkeypatch.setattr(data, "MAX_FOLDER_ENTRIES", 5)     # deeper/, loop, and 4 images: 6 entries
    with pytest.raises(DataFileError) as error:
        check_dataset_files("images", {"path": str(folder)}, where=WHERE)
    assert one_line(error) == (f"{KEY}: folder '{folder}' holds more than 5 files and folders (searched "
                               f"recursively); give the folder of the images")
    with pytest.raises(DataFileError, match=f"^{KEY}: '/proc/self' is under /proc, a kernel filesystem"):
        check_dataset_files("images", {"path": "/proc/self"}, where=WHERE)


def test_file_checks_pass_for_readable_sources_and_for_families_without_files(tmp_path):
    Image.fromarray(GREY8).save(tmp_path / "a.png")
    check_dataset_files("images", {"path": str(tmp_path)}, where=WHERE)
    check_dataset_files("gmm", {"preset": "ring8"}, where="datasets.ring8.")


# --- checkpoints -------------------------------------------------------------------------------

RECIPE = {"arch": "mlp", "arch_params": {"hidden": 16, "depth": 2}, "parametrisation": "eps", "sigma_data": 1.0,
          "train_sigma": {"name": "ve_loguniform", "knobs": {"sigma_min": 0.05, "sigma_max": 20.0}},
          "weight": "eps", "steps": 2, "batch_size": 8, "lr": 1e-3, "ema": 0.9, "grad_clip": 1.0,
          "seed": 0, "log_every": 1}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A checkpoint exactly as the train rule writes it."""
    folder = tmp_path_factory.mktemp("trained")
    np.savez(folder / "train.npz", x=np.random.default_rng(0).normal(size=(32, 2)))
    spec = {"id": "mlp-0000", "recipe": RECIPE, "data": {"id": "ring8-0000"}}
    jobs.train_model(spec, folder / "train.npz", folder / "model.pt", folder / "train_log.parquet", device="cpu")
    return folder / "model.pt"


def test_what_the_train_rule_saves_loads_with_weights_only(trained):
    torch.load(trained, weights_only=True)   # raises if anything but tensors and plain values is stored
    denoiser, state = models.load_checkpoint(trained, where="models.mlp.")
    assert state["recipe"] == RECIPE and state["shape"] == (2,)
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    assert torch.isfinite(denoiser(x, 1.0)).all()


def bad_checkpoints(folder: Path, good: Path) -> dict:
    """name -> a file that is no good checkpoint (of any format)."""
    whole = good.read_bytes()
    files = {"truncated.pt": whole[:len(whole) // 2], "random.pt": os.urandom(4096), "empty.pt": b""}
    for name, content in files.items():
        (folder / name).write_bytes(content)
    torch.save({"x": np.float64(1.0)}, folder / "object.pt")
    (folder / "a_folder.pt").mkdir()
    return {name: folder / name for name in (*files, "object.pt", "a_folder.pt", "missing.pt")}


PROBLEMS = {"truncated.pt": "truncated or not a torch checkpoint", "random.pt": "truncated or not a torch checkpoint",
            "empty.pt": "truncated or not a torch checkpoint", "object.pt": "safe loading refuses",
            "a_folder.pt": "is not a file", "missing.pt": "not found"}


def assert_names(message: str, key: str, path: Path, expected: str) -> None:
    assert message.startswith(f"{key}: ") and f"'{path}'" in message and f"expected {expected}" in message, message


def test_unreadable_trained_checkpoints_name_the_key_path_and_format(tmp_path, trained):
    for name, path in bad_checkpoints(tmp_path, trained).items():
        with pytest.raises(CheckpointError) as error:
            models.load_checkpoint(path, where="models.mlp.")
        assert_names(one_line(error), "models.mlp.checkpoint", path, "a checkpoint written by the train rule")
        assert PROBLEMS[name] in str(error.value), name


def test_foreign_and_mismatched_trained_checkpoints(tmp_path, trained):
    state = torch.load(trained, weights_only=True)
    wider = {**state, "recipe": {**RECIPE, "arch_params": {"hidden": 32, "depth": 2}}}
    torch.save(wider, tmp_path / "wider.pt")
    cases = {FIXTURES / "adm_small.pt": r"is not a trained diffsweep model: it holds a dict with keys "
                                       r"\S+, \S+, \S+, \+\d+ more",
             tmp_path / "wider.pt": r"does not match the network: 5 tensors of another shape \(net\.body\.0\.bias: "
                                    r"file \[16\], network \[32\]; .*; \+2 more\)"}
    for path, problem in cases.items():
        with pytest.raises(CheckpointError, match=problem) as error:
            models.load_checkpoint(path, where="models.mlp.")
        assert_names(one_line(error), "models.mlp.checkpoint", path, "a checkpoint written by the train rule")


@pytest.mark.parametrize("format, arch, other", [("adm_ffhq256", ADM_SMALL, "ncsnpp_small.pth"),
                                                 ("ncsnpp_ffhq256", NCSNPP_SMALL, "adm_small.pt")])
def test_bad_pretrained_checkpoints_name_the_key_path_and_format(tmp_path, format, arch, other):
    good = FIXTURES / ("adm_small.pt" if format == "adm_ffhq256" else "ncsnpp_small.pth")
    (tmp_path / other).symlink_to(FIXTURES / other)   # without its .arch.yaml, which names the other format first
    files = {**bad_checkpoints(tmp_path, good), other: tmp_path / other}
    problems = {**PROBLEMS, other: ("is a wrapped checkpoint" if format == "adm_ffhq256"
                                    else "has no 'model' and 'ema' entries")}
    for name, path in files.items():
        with pytest.raises(CheckpointError) as error:
            pretrained.load_pretrained(format, path, arch=arch, where="models.vp.")
        assert_names(one_line(error), "models.vp.checkpoint", path, f"{format}: ")
        assert problems[name] in str(error.value), (name, str(error.value))


@pytest.mark.parametrize("format, arch, file", [("adm_ffhq256", ADM_SMALL, "adm_small.pt"),
                                                ("ncsnpp_ffhq256", NCSNPP_SMALL, "ncsnpp_small.pth")])
def test_a_checkpoint_of_another_architecture_lists_a_few_keys_with_counts(format, arch, file):
    bigger = {**arch, "channel_mult" if format == "adm_ffhq256" else "ch_mult": [1, 2, 2, 2]}
    with pytest.raises(CheckpointError) as error:
        pretrained.load_pretrained(format, FIXTURES / file, arch=bigger, where="models.vp.")
    message = one_line(error)
    assert_names(message, "models.vp.checkpoint", FIXTURES / file, f"{format}: ")
    assert "does not match the network: missing " in message
    shown, more = message.split("missing ")[1].split(" (")[1].split(", +")
    assert len(shown.split(", ")) == 3 and int(more.split(" more")[0]) > 0
    assert len(message) < 600


def test_fixture_weights_load_bit_identically():
    denoiser = pretrained.load_pretrained("adm_ffhq256", FIXTURES / "adm_small.pt", arch=ADM_SMALL)
    state = torch.load(FIXTURES / "adm_small.pt", weights_only=True)
    loaded = denoiser.net.state_dict()
    assert set(loaded) == set(state) and all(torch.equal(loaded[key], state[key]) for key in state)
    checkpoint = torch.load(FIXTURES / "ncsnpp_small.pth", weights_only=True)
    raw = pretrained.load_pretrained("ncsnpp_ffhq256", FIXTURES / "ncsnpp_small.pth", arch=NCSNPP_SMALL, ema=False)
    model = {key.removeprefix("module."): value for key, value in checkpoint["model"].items()}
    assert all(torch.equal(value, model[key]) for key, value in raw.net.state_dict().items())


def test_checkpoints_saved_before_plain_provenance_still_load(tmp_path, trained):
    # Older train jobs stored torch.__version__ itself (a TorchVersion, a str subclass).
    state = torch.load(trained, weights_only=True)
    state["provenance"]["torch"] = torch.__version__
    torch.save(state, tmp_path / "old.pt")
    denoiser, old = models.load_checkpoint(tmp_path / "old.pt")
    assert old["provenance"]["torch"] == str(torch.__version__)


def test_the_cheap_checkpoint_check_refuses_missing_files_without_reading(tmp_path):
    pretrained.checkpoint_file("adm_ffhq256", FIXTURES / "adm_small.pt", "models.vp.").check()
    with pytest.raises(CheckpointError) as error:
        pretrained.checkpoint_file("adm_ffhq256", tmp_path / "gone.pt", "models.vp.").check()
    assert_names(one_line(error), "models.vp.checkpoint", tmp_path / "gone.pt", "adm_ffhq256: ")


def test_a_score_sde_checkpoint_with_broken_ema_is_refused(tmp_path):
    checkpoint = torch.load(FIXTURES / "ncsnpp_small.pth", weights_only=True)
    shadow = checkpoint["ema"]["shadow_params"]
    cases = {"short": (shadow[:-1], r"has \d+ shadow params in 'ema', the network has \d+ trainable parameters"),
             "reshaped": ([shadow[0].flatten(), *shadow[1:]], r"has an ema shadow param for 'all_modules\.1\.weight' "
                                                              r"of shape \[\d+\], the network's is \[\d+, \d+\]")}
    for name, (params, problem) in cases.items():
        torch.save({**checkpoint, "ema": {**checkpoint["ema"], "shadow_params": params}}, tmp_path / f"{name}.pth")
        with pytest.raises(CheckpointError, match=problem) as error:
            pretrained.load_pretrained("ncsnpp_ffhq256", tmp_path / f"{name}.pth", arch=NCSNPP_SMALL,
                                       where="models.ve.")
        assert_names(one_line(error), "models.ve.checkpoint", tmp_path / f"{name}.pth", "ncsnpp_ffhq256: ")
