"""torch-fidelity metrics with the project's digits extractor, and the Inception path's skip rules."""

import json

import pytest
import torch

from diffsweep import fidelity
from diffsweep.data import load_digits

OPTIONS = {"enabled": True, "inception_weights": None, "metrics": ["fid", "kid", "prc", "isc"],
           "kid_subset_size": 200, "batch_size": 500}


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    path = tmp_path_factory.mktemp("fidelity") / "digits_classifier.pt"
    record = fidelity.train_digits_classifier(path, epochs=10)   # measured 0.95 held-out accuracy
    return path, record


@pytest.fixture(scope="module")
def scorer(classifier, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    reference = load_digits(8, "train", 0.2, 0)
    records = [fidelity.prepare_reference(name, reference, OPTIONS, folder / "cache", folder / f"{name}.json",
                                          digits_weights=classifier[0]) for name in ("digits", "inception")]
    return fidelity.FidelityEvaluator(records, reference, OPTIONS, folder / "cache", "cpu"), folder


def test_classifier_recognises_held_out_digits(classifier):
    assert classifier[1]["test_accuracy"] > 0.93      # measured 0.98 after 40 epochs


def test_extractor_is_registered_with_torch_fidelity(scorer):
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
    assert fidelity.EXTRACTORS.get("digits").feature_extractor in FEATURE_EXTRACTORS_REGISTRY


def test_a_set_against_itself_scores_zero_and_noise_scores_high(scorer):
    evaluate = scorer[0].evaluate
    same, _ = evaluate(load_digits(8, "train", 0.2, 0))
    held_out, _ = evaluate(load_digits(8, "test", 0.2, 0))
    noise, _ = evaluate(torch.rand(500, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    assert abs(same["fid_digits"]) < 1e-6
    assert same["precision_digits"] == 1.0 and same["recall_digits"] == 1.0
    assert noise["fid_digits"] > 10 * held_out["fid_digits"] > 0      # measured 726 and 34
    assert noise["kid_digits"] > 10 * abs(held_out["kid_digits"])
    # KID's own standard error under the se contract's name (docs/statistics.md); FID has none
    assert noise["kid_digits_se"] == noise["kid_std_digits"] > 0 and "fid_digits_se" not in noise
    assert noise["precision_digits"] < 0.2 < 0.8 < held_out["precision_digits"]
    assert held_out["isc_digits"] > 2 * noise["isc_digits"]            # confident, varied classes vs not


def test_reference_features_are_cached_under_a_content_hash(scorer, classifier):
    folder = scorer[1]
    record = json.loads((folder / "digits.json").read_text())
    assert record["status"] == "ok" and record["cache_name"].startswith("digits-")
    assert list((folder / "cache").glob(f"{record['cache_name']}-*features*"))
    other = load_digits(8, "test", 0.2, 0)
    assert fidelity.content_hash(other, classifier[0]) not in record["cache_name"]


def test_inception_without_weights_is_skipped_naming_the_config_key(scorer, tmp_path):
    _, skipped = scorer[0].evaluate(load_digits(8, "test", 0.2, 0))
    assert skipped["fidelity_inception"].startswith("skipped: fidelity.inception_weights is not set")
    missing = {**OPTIONS, "inception_weights": str(tmp_path / "nowhere.pth")}
    record = fidelity.prepare_reference("inception", load_digits(8, "test", 0.2, 0), missing, tmp_path / "cache",
                                        tmp_path / "inception.json")
    assert record["status"] == f"skipped: fidelity.inception_weights: file not found: {tmp_path / 'nowhere.pth'}"
    assert not (tmp_path / "cache").exists()          # nothing was computed with other weights


def test_extractor_input_conversion_handles_16x16_and_rgb():
    eight = load_digits(8, "train", 0.2, 0)[:5].float()
    sixteen = load_digits(16, "train", 0.2, 0)[:5].float()
    assert torch.allclose(fidelity.as_digits_input(sixteen), eight)
    assert torch.allclose(fidelity.as_digits_input(eight.expand(-1, 3, -1, -1)), eight)
    images = fidelity.ImageSet(eight, rgb=True)
    assert images[0].dtype == torch.uint8 and images[0].shape == (3, 8, 8)
    assert images.images.min() == 0 and images.images.max() == 255     # [-1, 1] spans the uint8 range
