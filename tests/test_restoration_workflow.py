"""Restoration end to end through the Snakemake API (the session's digits run, conftest.digits_run,
shared with test_workflow's image test): the 64-D digits mixture (8x8 images) with its exact
oracle, two tasks and four restorers (one defined in a user's plugin file), scored with the digits
FID extractor and LPIPS on a randomly initialised AlexNet backbone saved as a local file, and
pivoted into a declared ablation table that reads the restoration table."""

import json

import numpy as np
import pandas as pd
import pytest

pytestmark = pytest.mark.workflow

from conftest import DIGITS, run_workflow  # noqa: E402  (the config and its run: conftest.digits_run)


def test_restoration_table_has_a_row_per_run_and_measurement(digits_run):
    from diffsweep import io
    table = io.read_parquet(digits_run / "results" / "tables" / "restoration.parquet")
    assert len(table) == 2 * 4 * 2                     # tasks x restorers x measurements
    assert set(table["status"]) == {"ok"}
    assert set(table["restorer"]) == {"rw", "ddrm", "diffpir", "plugin"}
    for column in ("psnr", "ssim", "psnr_minmax_ref", "data_consistency", "expected_noise_norm", "mmse_psnr",
                   "sliced_w2_posterior", "posterior_mean_error", "nfe", "wall_s", "operator_factor", "knob_eps",
                   "noise_std", "noise_std_effective", "lpips_status", "measurement", "device", "git_revision"):
        assert column in table, column
    assert (table["noise_std"] == 0.05).all()
    assert (table["noise_std_effective"] == 0.1).all()           # 0.05 on [0, 1] is 0.1 on [-1, 1]
    assert table.groupby("restorer")["nfe"].first().to_dict() == {"rw": 30, "ddrm": 10, "diffpir": 10, "plugin": 10}
    # a restoration never beats the MMSE bound by more than noise allows on average
    assert (table["psnr"] < table["mmse_psnr"] + 3).all()
    # the parameter columns come from the manifest and travel in the Parquet file
    params = table.attrs["param_columns"]
    assert {"restorer", "task", "noise_std", "noise_std_effective", "operator_size", "knob_eps", "steps"} <= set(params)
    assert not {"run_id", "model_id", "psnr", "measurement", "nfe", "status"} & set(params)


def test_a_declared_ablation_table_reads_the_restoration_table(digits_run):
    cells = pd.read_csv(digits_run / "results" / "tables" / "ablations" / "restorer_by_task.csv")
    table = pd.read_parquet(digits_run / "results" / "tables" / "restoration.parquet")
    assert set(cells["restorer"]) == {"rw", "ddrm", "diffpir", "plugin"} and set(cells["task"]) == {"sr2", "box"}
    cell = cells[(cells["restorer"] == "plugin") & (cells["task"] == "box")].iloc[0]
    hit = table[(table["restorer"] == "plugin") & (table["task"] == "box")]
    assert cell["value"] == pytest.approx(hit["psnr"].mean()) and cell["n"] == len(hit) == 2


def test_fid_and_lpips_columns_are_finite_and_fid_is_one_value_per_run(digits_run):
    table = pd.read_parquet(digits_run / "results" / "tables" / "restoration.parquet")
    for column in ("fid_digits", "kid_digits", "precision_digits", "recall_digits", "lpips", "lpips_of_mean"):
        assert column in table and np.isfinite(table[column]).all(), column
    assert (table["fid_digits"] > 0).all() and (table["lpips"] > 0).all()
    assert (table.groupby("run_id")["fid_digits"].nunique() == 1).all()     # all measurements pooled, one set
    assert table["fid_digits"].nunique() > 1
    assert set(table["lpips_status"]) == {"ok"}
    # 2 measurements x 3 samples = 6 images: too few for the Inception score's 10 splits, recorded as such
    assert set(table["isc_digits_status"]) == {"skipped: the Inception score needs at least 10 samples (10 splits); got 6"}
    assert table["fidelity_inception_status"].str.startswith("skipped: fidelity.inception_weights is not set").all()


def test_runs_store_samples_operator_and_strip(digits_run):
    from diffsweep import runs
    results = digits_run / "results"
    records = [state.record for state in runs.index(results).values()]
    restorations = [r for r in records if r["kind"] == "restoration"]
    assert len(restorations) == 8 and len(records) == 8 + 2       # and the two generation runs (oracle, unet)
    assert {r["params"]["task"]["noise_std"] for r in restorations} == {0.05}
    box = [r["run_id"] for r in restorations if r["row"]["task"] == "box"]
    assert set(runs.read_record(results, box[0])["files"]) == {"samples.npz", "operator.npz", "strip.png"}
    assert runs.read_run_arrays(results, box[0], "operator.npz")["mask"].sum() == 64 - 9
    assert runs.read_run_file(results, box[0], "strip.png").startswith(b"\x89PNG")
    assert (digits_run / "results" / "plots" / "restoration_psnr_vs_nfe.png").exists()
    assert (digits_run / "results" / "plots" / "restoration_lpips_vs_nfe.png").exists()


def test_bad_restoration_config_fails_before_any_job(tmp_path, root):
    bad = json.loads(json.dumps(DIGITS))
    bad["restoration"]["restorers"]["rw"]["knobs"] = {"epsilon": 0.7}
    with pytest.raises(Exception, match="restoration.restorers.rw.knobs"):
        run_workflow(tmp_path, root, bad)
    assert not (tmp_path / "results").exists()
