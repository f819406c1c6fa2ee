"""diffsweep.floors: which floors a grid needs (one per analytic dataset, sample count and metric
settings), a floor as stats.metric_floor computes it with the run's metric, and the join of the
floor columns onto the generation table (NaN where no floor applies)."""

import copy
import math

import pandas as pd
import pytest
import torch

from diffsweep import config, data, floors, io, metrics, stats
from diffsweep import grid as ds_grid

CONFIG = {
    "datasets": {"ring8": {"family": "gmm", "knobs": {"preset": "ring8"}}, "swiss": {"family": "swissroll"}},
    "models": {"oracle": {"source": "oracle"}, "mlp": {"source": "trained", "train_sigma": {"name": "ddpm"}}},
    "samplers": {"ddim": {"family": "ddim", "steps": [3, 5]}, "few": {"family": "ddim", "steps": 3, "n_samples": 50}},
    "seeds": [0, 1],
}


def test_one_floor_per_analytic_dataset_and_sample_count():
    cfg = config.prepare(copy.deepcopy(CONFIG))
    needed = floors.needed(ds_grid.build(cfg), cfg["metrics"])
    # ring8 at the default sample count and at the preset's 50; swissroll is not analytic
    assert sorted((spec["data"]["name"], spec["n_samples"]) for spec in needed.values()) == \
        [("ring8", 50), ("ring8", cfg["sampling"]["n_samples"])]
    changed = config.prepare({**copy.deepcopy(CONFIG), "metrics": {"n_projections": 64}})
    assert set(floors.needed(ds_grid.build(changed), changed["metrics"])).isdisjoint(needed)   # settings: new keys


@pytest.fixture
def one_thread():
    """One torch thread, as the floor job has (rule floor: threads 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_floor_is_the_metric_of_exact_sets_against_the_reference(one_thread):
    dataset = data.make_dataset("gmm", preset="ring8")
    reference = dataset.sample(300, torch.Generator().manual_seed(7))
    floor = floors.exact_floor(dataset, reference, 64, "sliced_w2", "k", n_projections=16, repeats=8)
    directions = metrics.random_directions(16, 2, torch.Generator().manual_seed(0))
    by_hand = [metrics.sliced_wasserstein2_sorted(
        metrics.projected_sorted(dataset.sample(64, torch.Generator().manual_seed(1_000_003 + i)), directions),
        metrics.projected_sorted(reference, directions)) for i in range(8)]
    assert floor.mean == pytest.approx(sum(by_hand) / 8, rel=1e-12) and floor.repeats == 8
    assert floor.low == pytest.approx(float(pd.Series(by_hand).quantile(0.025)), rel=1e-12)
    mmd = floors.exact_floor(dataset, reference, 64, "mmd", "k", repeats=3)
    assert mmd.mean == pytest.approx(sum(metrics.mmd_rbf(dataset.sample(64, torch.Generator().manual_seed(1_000_003 + i)),
                                                          reference) for i in range(3)) / 3, rel=1e-9)
    with pytest.raises(ValueError, match="metric must be one of sliced_w2, mmd, energy_distance"):
        floors.exact_floor(dataset, reference, 64, "fid", "k")


def test_the_floor_columns_join_on_dataset_and_sample_count(tmp_path):
    record = {"data_id": "ring8-a", "n_samples": 100,
              **{metric: {"mean": 1.0 + i, "low": 0.5 + i, "high": 1.5 + i} for i, metric in enumerate(floors.METRICS)}}
    io.write_json(tmp_path / "f.json", record)
    table = pd.DataFrame({"run_id": ["a", "b", "c"], "data_id": ["ring8-a", "ring8-a", "swiss-b"],
                          "n_samples": pd.array([100, 50, 100], dtype="Int64")})
    table.attrs["param_columns"] = ["n_samples"]
    joined = floors.with_floors(table, [tmp_path / "f.json"])
    assert list(joined["sliced_w2_floor"].fillna(-1)) == [1.0, -1, -1]
    assert list(joined["energy_distance_floor_high"].fillna(-1)) == [3.5, -1, -1]
    assert joined.attrs == table.attrs and list(joined["run_id"]) == ["a", "b", "c"]
    without = floors.with_floors(table, [])
    assert all(math.isnan(v) for v in without["mmd_floor_low"]) and without["mmd_floor"].dtype == "float64"
    io.write_json(tmp_path / "bad.json", {"data_id": "ring8-a", "n_samples": 100})
    with pytest.raises(io.UnreadableFile, match="bad.json: cannot be read as a floor file .*KeyError: 'sliced_w2'"):
        floors.with_floors(table, [tmp_path / "bad.json"])
