"""Starts that the reference code uses: `init: gaussian` with `init_knobs` {mean, std}, checked at
parse time; the VE start N(0, I) on [0, 1] data (sample.py:161) is N(-1, 4 I) in our coordinates."""

from pathlib import Path

import pytest
import torch
import yaml

from diffsweep import config as ds_config
from diffsweep import grid as ds_grid
from diffsweep.runs.source import initial_sample

PAPER = Path(__file__).resolve().parents[1] / "config" / "paper.yaml"


def test_gaussian_start_is_the_reference_ve_start_in_our_coordinates():
    shape = (3, 2, 4, 4)
    reference = torch.randn(shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)   # on [0, 1] data
    ours = initial_sample("gaussian", 696.0, shape, torch.Generator().manual_seed(5), torch.float64, "cpu",
                          {"mean": -1.0, "std": 2.0})
    torch.testing.assert_close(ours, 2 * reference - 1, rtol=0, atol=1e-15)
    unit = initial_sample("unit", 696.0, shape, torch.Generator().manual_seed(5), torch.float64, "cpu")
    torch.testing.assert_close(unit, reference, rtol=0, atol=0)


def build_with(change):
    config = yaml.safe_load(PAPER.read_text())
    change(config["samplers"]["paper_ve"])
    return ds_grid.build(ds_config.prepare(config))


def test_gaussian_start_knobs_reach_the_run_its_id_and_its_row():
    grid = build_with(lambda preset: preset.update(init_knobs={"mean": -1.0, "std": [2.0, 3.0]}))
    runs = [run for run in grid.runs.values() if run.preset == "paper_ve"]
    assert sorted(run.init_knobs["std"] for run in runs) == [2.0, 3.0]
    assert len({run.id for run in runs}) == 2
    assert {"init_mean", "init_std"} <= set(runs[0].row()) and runs[0].identity()["sampler"]["init_knobs"]
    unit = [run for run in grid.runs.values() if run.preset == "paper_vp_sigmoid"][0]
    assert unit.init_knobs == {} and "init_knobs" not in unit.identity()["sampler"]   # other ids unchanged


@pytest.mark.parametrize("change, message", [
    (lambda p: p.update(init="unit"), r"samplers.paper_ve.init_knobs: unknown knob\(s\) \['mean', 'std'\] for init 'unit'"),
    (lambda p: p.update(init_knobs={"std": 0.0}), "samplers.paper_ve.init_knobs.std: 0.0 is not above the exclusive minimum 0.0"),
    (lambda p: p.update(init_knobs={"mu": 1.0}), r"unknown knob\(s\) \['mu'\] for init 'gaussian'; allowed: mean, std"),
])
def test_bad_start_knobs_are_refused_naming_the_key(change, message):
    with pytest.raises(ValueError, match=message):
        build_with(change)
