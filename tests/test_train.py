"""The training template: the loss falls, the EMA model denoises, runs are reproducible."""

import pytest
import torch

from diffsweep import train
from diffsweep.data import make_dataset

RECIPE = {"arch": "mlp", "arch_params": {"hidden": 64, "depth": 2}, "parametrisation": "eps", "sigma_data": 1.0,
          "train_sigma": {"name": "ve_loguniform", "knobs": {"sigma_min": 0.05, "sigma_max": 20.0}},
          "weight": "eps", "steps": 500, "batch_size": 256, "lr": 3e-3, "ema": 0.9, "grad_clip": 1.0,
          "seed": 0, "log_every": 25}


@pytest.fixture(scope="module")
def ring():
    return make_dataset("gmm", preset="ring8")


@pytest.fixture(scope="module")
def trained(ring):
    data = ring.sample(4000, torch.Generator().manual_seed(0))
    return train.train(RECIPE, data, progress=False)


def test_log_rows_and_falling_loss(trained):
    _, rows, _ = trained
    assert [row["step"] for row in rows] == list(range(25, 501, 25))
    assert set(rows[0]) == set(train.LOG_COLUMNS)
    assert rows[-1]["loss"] < 0.7 * rows[0]["loss"]


def test_loss_by_sigma_bins_account_for_every_example(trained):
    _, rows, binned = trained
    steps = sorted({row["step"] for row in binned})
    assert steps == [row["step"] for row in rows]
    assert set(binned[0]) == set(train.BINNED_COLUMNS)
    per_window = {}
    for row in binned:
        assert row["sigma_lo"] < row["sigma_hi"] and row["count"] > 0 and row["x0_mse"] >= 0
        per_window[row["step"]] = per_window.get(row["step"], 0) + row["count"]
    assert set(per_window.values()) == {25 * RECIPE["batch_size"]}   # each window: log_every steps of full batches
    # the window's batch-mean loss is the count-weighted mean of its bins
    last = [row for row in binned if row["step"] == steps[-1]]
    pooled = sum(row["loss"] * row["count"] for row in last) / sum(row["count"] for row in last)
    assert pooled == pytest.approx(rows[-1]["loss"], rel=1e-6)


def test_trained_denoiser_beats_the_identity_and_approaches_the_oracle(trained, ring):
    ema, _, _ = trained
    x0 = ring.sample(2000, torch.Generator().manual_seed(5))
    noisy = x0 + 1.0 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with torch.no_grad():
        ours = ema(noisy.float(), 1.0).double()
    exact = ring.mixture.denoise(noisy, 1.0)
    error = lambda d: (d - x0).pow(2).sum(1).mean().item()  # noqa: E731
    assert error(ours) < 0.65 * error(noisy)          # it denoises (measured: 1.15 vs 2.00)
    assert error(ours) < 1.3 * error(exact)           # near the MMSE bound (measured: 0.97)


def test_same_seed_same_weights(ring):
    data = ring.sample(1000, torch.Generator().manual_seed(0))
    short = {**RECIPE, "steps": 20, "log_every": 10}
    a, _, _ = train.train(short, data, progress=False)
    b, _, _ = train.train(short, data, progress=False)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_a_diverging_loss_stops_with_a_clear_error(ring):
    data = ring.sample(500, torch.Generator().manual_seed(0))
    bad = {**RECIPE, "steps": 5, "lr": 1e30, "grad_clip": 0.0}
    with pytest.raises(FloatingPointError, match="training loss became nan at step"):
        train.train(bad, data, progress=False)
