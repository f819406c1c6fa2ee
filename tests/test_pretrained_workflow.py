"""Pretrained score sources in the grid and the workflow: ids, dataset matching, and a dry run
without the checkpoint files. A real run with the small fixture checkpoints and a missing file
failing with the config key named: tests/test_paper_tiny.py."""

import copy
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from diffsweep import config as ds_config
from diffsweep import grid as ds_grid
from test_pretrained import ADM_SMALL, FIXTURES, NCSNPP_SMALL

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]



def faces_config(folder: Path, adm=FIXTURES / "adm_small.pt", ncsnpp=FIXTURES / "ncsnpp_small.pth") -> dict:
    """Two pretrained sources (VP ADM and VE NCSN++, small fixture networks) on 32x32 RGB images."""
    rng = np.random.default_rng(0)
    np.savez(folder / "faces.npz", x=rng.integers(0, 256, size=(16, 32, 32, 3), dtype=np.uint8))
    return {"datasets": {"faces": {"family": "images", "knobs": {"path": str(folder / "faces.npz"), "resolution": 32}}},
            "models": {"vp": {"source": "pretrained", "format": "adm_ffhq256", "checkpoint": str(adm),
                              "arch_params": ADM_SMALL},
                       "ve": {"source": "pretrained", "format": "ncsnpp_ffhq256", "checkpoint": str(ncsnpp),
                              "arch_params": NCSNPP_SMALL}},
            "samplers": {"walk": {"family": "random_walk", "steps": 3}},
            "data": {"n_train": 8, "n_reference": 8}, "sampling": {"n_samples": 2},
            "metrics": {"likelihood": {"points": 0}}, "tables": {"ablations": {}},
            "fidelity": {"enabled": False}}       # no Inception weights here: its job would only record a skip


def build(config: dict) -> ds_grid.Grid:
    return ds_grid.build(ds_config.prepare(config))


def test_pretrained_ids_hash_format_weights_arch_and_path(tmp_path):
    config = faces_config(tmp_path)
    base = build(config)
    assert sorted(m.source for m in base.models.values()) == ["pretrained", "pretrained"]
    vp = next(m for m in base.models.values() if m.name == "vp")
    assert vp.recipe == {"format": "adm_ffhq256", "checkpoint": str(FIXTURES / "adm_small.pt"), "weights": "ema",
                         "arch_params": ADM_SMALL}
    for key, value in [("checkpoint", "elsewhere/adm_small.pt"), ("weights", "model"),
                       ("arch_params", {**ADM_SMALL, "num_heads_upsample": 2})]:
        changed = copy.deepcopy(config)
        changed["models"]["vp"][key] = value
        ids = {m.name: m.id for m in build(changed).models.values()}
        assert ids["vp"] != vp.id, key
        assert ids["ve"] in base.models, key  # the other source keeps its id


def test_pretrained_keys_leave_trained_recipes_alone(tmp_path):
    config = faces_config(tmp_path)
    config["models"] = {"unet": {"source": "trained", "arch": "unet"}}
    (model,) = build(config).models.values()
    assert not set(ds_grid.PRETRAINED_KEYS) & set(model.recipe)


def test_a_pretrained_network_skips_datasets_of_another_shape(tmp_path):
    config = faces_config(tmp_path)
    config["datasets"]["ring8"] = {"family": "gmm"}
    config["datasets"]["faces64"] = {"family": "images", "knobs": {"path": str(tmp_path / "faces.npz"), "resolution": 64}}
    grid = build(config)
    assert {m.data.name for m in grid.models.values()} == {"faces"}
    assert any("'faces64': the network takes 3x32x32 images, the dataset has 3x64x64" in r for r in grid.excluded)


def test_the_checkpoints_declared_size_and_the_images_own_size_decide_the_match(tmp_path):
    # Without arch_params the fixtures' `.arch.yaml` sizes the networks (ids as if given in the
    # config); the images' own 32x32 (resolution 0) fits them, not the full-size default.
    config = faces_config(tmp_path)
    explicit = {m.name: m.id for m in build(config).models.values()}
    for entry in config["models"].values():
        del entry["arch_params"]
    config["datasets"]["native"] = {"family": "images", "knobs": {"path": str(tmp_path / "faces.npz"), "resolution": 0}}
    grid = build(config)
    assert {m.id for m in grid.models.values() if m.data.name == "faces"} == set(explicit.values())
    assert sorted(m.name for m in grid.models.values() if m.data.name == "native") == ["ve", "vp"]
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "vp.pt").symlink_to(FIXTURES / "adm_small.pt")     # no .arch.yaml beside it
    config["models"]["vp"]["checkpoint"] = str(tmp_path / "plain" / "vp.pt")
    grid = build(config)
    assert not any(m.name == "vp" for m in grid.models.values())
    assert any("'native': the network takes 3x256x256 images, the dataset has 3x32x32" in r for r in grid.excluded)


def test_a_job_refuses_a_network_of_another_image_size_before_reading_it(tmp_path):
    # The grid could not tell (an image folder of resolution 0 not there at parse time): the job does.
    from diffsweep.runs import source

    vp = next(m for m in build(faces_config(tmp_path)).models.values() if m.name == "vp")
    model = ds_grid.model_dict(vp)
    source.check_network_fits(model, (3, 32, 32))
    with pytest.raises(ValueError, match=r"^models\.vp: the network takes 3x32x32 images, dataset 'faces' has 3x64x64; "):
        source.check_network_fits(model, (3, 64, 64))


def test_bad_pretrained_entries_fail_at_parse_time_naming_the_key(tmp_path):
    config = faces_config(tmp_path)
    config["models"]["vp"]["checkpoint"] = ""
    with pytest.raises(ValueError, match=r"models\.vp\.checkpoint: a pretrained model needs"):
        build(config)
    config = faces_config(tmp_path)
    config["models"]["ve"]["format"] = "ncsnpp_cifar10"
    with pytest.raises(ValueError, match=r"models\.ve\.format: unknown pretrained format 'ncsnpp_cifar10'"):
        build(config)


def snakemake(workdir: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, "--profile", str(ROOT / "profiles" / "default"), "-s", str(ROOT / "Snakefile"),
                           "-d", str(workdir), "--configfile", "faces.yaml", "--cores", "2", *extra],
                          capture_output=True, text=True, cwd=workdir, env={**os.environ, **(env or {})})


@pytest.mark.workflow
def test_a_dry_run_needs_no_checkpoint_file_with_the_switch(tmp_path):
    config = faces_config(tmp_path, adm=tmp_path / "missing" / "ffhq_10m.pt",
                          ncsnpp=tmp_path / "missing" / "checkpoint_48.pth")
    (tmp_path / "faces.yaml").write_text(yaml.safe_dump(config))
    result = snakemake(tmp_path, "-n", env={"DIFFSWEEP_SKIP_PATH_CHECKS": "1"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "run_shard" in result.stdout
    result = snakemake(tmp_path, "-n", env={"DIFFSWEEP_SKIP_PATH_CHECKS": "0"})   # without it: refused, naming the key
    assert result.returncode != 0
    missing = tmp_path / "missing" / "ffhq_10m.pt"
    assert f"models.vp.checkpoint: pretrained checkpoint '{missing}' not found" in result.stdout + result.stderr


# A real run with the small fixture networks, and a missing checkpoint failing its job naming the
# key: tests/test_paper_tiny.py (config/paper_tiny.yaml runs both networks through every experiment).
