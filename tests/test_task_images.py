"""restoration.tasks.<t>.images: a task's ground truths are given reference indices (the reference
code runs given test images per task), checked against the reference set at parse time."""

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from diffsweep import config as ds_config
from diffsweep import grid as ds_grid
from diffsweep.runs.restoration import measure

PAPER = Path(__file__).resolve().parents[1] / "config" / "paper.yaml"


def restorations(images):
    config = yaml.safe_load(PAPER.read_text())
    config["restoration"]["tasks"]["vp_sr4"]["images"] = images
    runs = ds_grid.build(ds_config.prepare(config)).of_kind('restoration').values()
    return [run for run in runs if run.preset == "paper_vp_sr4"], [run for run in runs if run.preset == "paper_ve_sr4"]


def test_given_images_set_the_measurements_and_the_id_and_leave_other_tasks_alone():
    (default,), (other,) = restorations(None)
    (given,), (other_again,) = restorations([7, 3, 999])
    assert (default.task.images, default.task.n_measurements) == (None, 1000)
    assert (given.task.images, given.task.n_measurements) == ((7, 3, 999), 3)
    assert given.id != default.id and other_again.id == other.id
    assert ds_grid.run_dict(given)["task"]["images"] == [7, 3, 999]


def test_an_image_beyond_the_reference_set_is_refused_naming_the_key():
    with pytest.raises(ValueError, match=r"restoration.tasks.vp_sr4.images: index 1000 is beyond the reference set "
                                         r"of dataset 'ffhq' \(1000 samples: 0 .. 999\)"):
        restorations([0, 1000])


def test_a_job_measures_the_given_images_in_their_order():
    reference = torch.arange(6 * 4, dtype=torch.float64).reshape(6, 1, 2, 2)
    task = {"operator": "inpaint_random", "operator_knobs": {"missing": 0.0, "per_image": False},
            "noise_std_effective": 1e-3, "n_measurements": 2, "images": [4, 1]}
    _, truth, _ = measure({"task": task, "seed": 0}, SimpleNamespace(shape=(1, 2, 2)), reference,
                          torch.Generator().manual_seed(0))
    torch.testing.assert_close(truth, reference[[4, 1]])
    task["images"] = None
    _, truth, _ = measure({"task": task, "seed": 0}, SimpleNamespace(shape=(1, 2, 2)), reference,
                          torch.Generator().manual_seed(0))
    torch.testing.assert_close(truth, reference[:2])
