"""FID, KID, precision/recall and Inception score of image samples, through torch-fidelity.

Two feature extractors:
- `inception`: torch-fidelity's inception-v3-compat with weights from a local file (config key
  `fidelity.inception_weights`); nothing is downloaded, so without the file its metrics are
  recorded as skipped with the reason, never computed with other weights.
- `digits`: a small classifier trained on the digits' training split by a workflow rule
  (`train_digits_classifier` below), registered with torch-fidelity as `diffsweep-digits`, so
  FID-style numbers exist offline for the digits track.

Reference features are computed once per dataset and extractor by the `fidelity_reference`
rule and cached by torch-fidelity under results/fidelity/cache, named by a hash of the
reference images and the extractor weights (a changed set or extractor gets a new entry).
Metric columns are `<metric>_<extractor>`: fid_digits, kid_digits, precision_inception, ...
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from diffsweep.registry import Entry, Registry

log = logging.getLogger("diffsweep")
INCEPTION_KEY = "fidelity.inception_weights"


@dataclass(frozen=True, kw_only=True)
class Extractor(Entry):
    """A torch-fidelity feature extractor. Which extractors score which dataset is decided at
    parse time: grid.fidelity_extractors."""
    feature_extractor: str        # its name in torch-fidelity's registry
    rgb: bool                     # takes three channels (grey images are repeated)
    install: Callable = lambda: None   # registers it with torch-fidelity, before each use


EXTRACTORS = Registry("fidelity extractor", Extractor)


def use_extractor(name: str) -> Extractor:
    """The extractor's entry, installed in torch-fidelity."""
    extractor = EXTRACTORS.get(name)
    extractor.install()
    return extractor


# --- the digits classifier ------------------------------------------------------------------

class DigitsClassifier(nn.Module):
    """A small CNN on 8x8 digits in [-1, 1]; its penultimate layer is the FID feature space."""

    FEATURES = 128

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.SiLU(),
            nn.Conv2d(32, 64, 3, padding=1, stride=2), nn.SiLU(),      # 8x8 -> 4x4
            nn.Flatten(), nn.Linear(64 * 16, self.FEATURES), nn.SiLU())
        self.head = nn.Linear(self.FEATURES, 10)

    def forward(self, x):
        features = self.body(x)
        return features, self.head(features)


def as_digits_input(images: torch.Tensor) -> torch.Tensor:
    """Any (n, C, H, W) image batch in [-1, 1] as the classifier's (n, 1, 8, 8): channels
    averaged, larger images average-pooled (the 16x16 variant is a 2x upscale)."""
    x = images.float().mean(dim=1, keepdim=True)
    if x.shape[-1] != 8 or x.shape[-2] != 8:
        x = nn.functional.adaptive_avg_pool2d(x, 8)
    return x


def train_digits_classifier(out_path, epochs: int = 40, seed: int = 0, test_fraction: float = 0.2,
                            split_seed: int = 0) -> dict:
    """Train the classifier on the digits' training split (with one-pixel shifts and a little
    pixel noise, so features stay meaningful on imperfect samples); save weights and accuracy."""
    from diffsweep import io
    from diffsweep.data import load_digits

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    train_x, train_y = load_digits(8, "train", test_fraction, split_seed, with_labels=True)
    test_x, test_y = load_digits(8, "test", test_fraction, split_seed, with_labels=True)
    train_x, test_x = train_x.float(), test_x.float()

    model = DigitsClassifier()
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    for _ in range(epochs):
        for index in torch.randperm(len(train_x), generator=generator).split(64):
            x = _shift(train_x[index], generator)
            x = x + 0.1 * torch.randn(x.shape, generator=generator)
            loss = nn.functional.cross_entropy(model(x)[1], train_y[index])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(test_x)[1].argmax(1) == test_y).float().mean().item()
    record = {"test_accuracy": accuracy, "epochs": epochs, "seed": seed, "n_train": len(train_x), "n_test": len(test_x)}
    with io.atomic_path(out_path) as tmp:
        torch.save({"state_dict": model.state_dict(), **record}, tmp)
    log.info("digits classifier: test accuracy %.4f on %d held-out digits", accuracy, len(test_x))
    return record


def _shift(x, generator):
    """Shift each image by up to one pixel (zero-padded with the background value -1)."""
    padded = nn.functional.pad(x, (1, 1, 1, 1), value=-1.0)
    dx, dy = torch.randint(0, 3, (2,), generator=generator).tolist()
    return padded[..., dy:dy + 8, dx:dx + 8]


def _digits_extractor_class():
    from torch_fidelity import FeatureExtractorBase

    class DigitsFeatureExtractor(FeatureExtractorBase):
        """torch-fidelity's view of the digits classifier: uint8 images in, features and logits out."""

        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__(name, features_list)
            if feature_extractor_weights_path is None:
                raise ValueError("the digits feature extractor needs the classifier weights "
                                 "(results/fidelity/digits_classifier.pt, made by the train_digits_classifier rule)")
            state = torch.load(feature_extractor_weights_path, map_location="cpu", weights_only=True)
            self.classifier = DigitsClassifier()
            self.classifier.load_state_dict(state["state_dict"])

        def forward(self, x):
            features, logits = self.classifier(as_digits_input(x.float() / 127.5 - 1.0))
            named = {"features": features, "logits": logits}
            return tuple(named[name] for name in self.features_list)

        @staticmethod
        def get_provided_features_list():
            return "features", "logits"

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            return {"isc": "logits"}.get(metric, "features")

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return torch.zeros(1, 1, 8, 8, dtype=torch.uint8)

    return DigitsFeatureExtractor


def register_digits_extractor() -> None:
    import torch_fidelity
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    if DIGITS_FEATURES not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(DIGITS_FEATURES, _digits_extractor_class())


DIGITS_FEATURES = "diffsweep-digits"
EXTRACTORS.add(Extractor(name="inception", feature_extractor="inception-v3-compat", rgb=True,
                         description="torch-fidelity's Inception-v3 (FID's standard features); weights from "
                                     f"the local file at {INCEPTION_KEY}"))
EXTRACTORS.add(Extractor(name="digits", feature_extractor=DIGITS_FEATURES, rgb=False,
                         install=register_digits_extractor,
                         description="a small CNN trained on the digits' training split by the "
                                     "train_digits_classifier rule: FID-style numbers offline"))


# --- inputs -----------------------------------------------------------------------------------

class ImageSet(torch.utils.data.Dataset):
    """Images in [-1, 1] as the uint8 tensors torch-fidelity reads (grey repeated to RGB when
    the extractor wants three channels)."""

    def __init__(self, images: torch.Tensor, rgb: bool):
        x = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        self.images = x.expand(-1, 3, -1, -1) if rgb and x.shape[1] == 1 else x

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        return self.images[index]


def content_hash(images: torch.Tensor, weights_path) -> str:
    digest = hashlib.sha256(images.float().contiguous().numpy().tobytes())
    digest.update(Path(weights_path).read_bytes())
    return digest.hexdigest()[:16]


def weights_of(extractor: str, options: dict, digits_weights=None) -> tuple[str | None, str | None]:
    """(weights path, None) or (None, why the extractor is skipped)."""
    if extractor == "digits":
        return str(digits_weights), None
    path = options["inception_weights"]
    if not path:
        return None, f"skipped: {INCEPTION_KEY} is not set (a local copy of torch-fidelity's " \
                     f"weights-inception-2015-12-05-6726825d.pth)"
    if not Path(path).is_file():
        return None, f"skipped: {INCEPTION_KEY}: file not found: {path}"
    return path, None


def _fidelity_kwargs(extractor: str, weights: str, options: dict, cache_root, device) -> dict:
    return {"feature_extractor": EXTRACTORS.get(extractor).feature_extractor,
            "feature_extractor_weights_path": weights,
            "cuda": torch.device(device).type == "cuda", "batch_size": options["batch_size"],
            "save_cpu_ram": True, "verbose": False, "cache_root": str(cache_root), "cache": True}


def prepare_reference(extractor: str, reference: torch.Tensor, options: dict, cache_root, out_path,
                      digits_weights=None, device="cpu") -> dict:
    """Compute and cache the reference set's features once (torch-fidelity's cache, keyed by a
    content hash); the record names the cache entry, or says why the extractor is skipped."""
    import torch_fidelity
    from diffsweep import io

    weights, skipped = weights_of(extractor, options, digits_weights)
    record = {"extractor": extractor, "weights": weights, "status": skipped or "ok"}
    if skipped is None:
        rgb = use_extractor(extractor).rgb
        record["cache_name"] = f"{extractor}-{content_hash(reference, weights)}"
        metrics = torch_fidelity.calculate_metrics(
            input1=ImageSet(reference, rgb), input2=ImageSet(reference, rgb), input1_cache_name=record["cache_name"],
            input2_cache_name=record["cache_name"], fid=True,
            **_fidelity_kwargs(extractor, weights, options, cache_root, device))
        record["fid_self"] = metrics["frechet_inception_distance"]
        record["n_reference"] = len(reference)
    else:
        log.warning("%s features: %s", extractor, skipped)
    io.write_json(out_path, record)
    return record


# The fewest samples each torch-fidelity metric is defined for (KID's subset size is capped at the
# number of samples; its unbiased MMD needs two; precision/recall take each sample's 3rd nearest
# neighbour other than itself; the Inception score splits the set into 10 parts).
MIN_SAMPLES = {"fid": (2, "FID needs at least 2 samples (a covariance)"),
               "kid": (2, "KID needs at least 2 samples (an unbiased MMD)"),
               "prc": (4, "precision/recall need more than 3 samples (k=3 nearest-neighbour radii)"),
               "isc": (10, "the Inception score needs at least 10 samples (10 splits)")}


def too_few_samples(metric: str, n_samples: int) -> str | None:
    """Why `metric` cannot be computed on `n_samples` samples, or None when it can."""
    fewest, why = MIN_SAMPLES[metric]
    return f"skipped: {why}; got {n_samples}" if n_samples < fewest else None


class FidelityEvaluator:
    """Everything a sampling job needs to score runs: the reference records of its dataset."""

    def __init__(self, references: list[dict], reference: torch.Tensor, options: dict, cache_root, device):
        self.references, self.reference, self.options = references, reference, options
        self.cache_root, self.device = cache_root, device

    @classmethod
    def from_records(cls, record_paths, reference, options, cache_root, device):
        from diffsweep import io
        return cls([io.read_json(path) for path in record_paths], reference, options, cache_root, device)

    def evaluate(self, samples: torch.Tensor) -> tuple[dict[str, float], dict[str, str]]:
        """(metrics, skipped): `<metric>_<extractor>` values, and reasons: `fidelity_<extractor>` for a
        skipped extractor, `<metric>_<extractor>` for a metric the set is too small for."""
        import torch_fidelity

        values, skipped = {}, {}
        wanted = set()
        for metric in self.options["metrics"]:
            reason = too_few_samples(metric, len(samples))
            if reason is None:
                wanted.add(metric)
            else:
                skipped.update({f"{metric}_{record['extractor']}": reason for record in self.references
                                if record["status"] == "ok"})
        for record in self.references:
            extractor = record["extractor"]
            if record["status"] != "ok":
                skipped[f"fidelity_{extractor}"] = record["status"]
                continue
            if not wanted:
                continue
            rgb = use_extractor(extractor).rgb
            n = min(len(samples), len(self.reference))
            result = torch_fidelity.calculate_metrics(
                input1=ImageSet(samples, rgb), input2=ImageSet(self.reference, rgb),
                input2_cache_name=record["cache_name"], fid="fid" in wanted, kid="kid" in wanted,
                prc="prc" in wanted, isc="isc" in wanted, kid_subset_size=min(self.options["kid_subset_size"], n),
                **_fidelity_kwargs(extractor, record["weights"], self.options, self.cache_root, self.device))
            names = {"frechet_inception_distance": "fid", "kernel_inception_distance_mean": "kid",
                     "kernel_inception_distance_std": "kid_std", "precision": "precision", "recall": "recall",
                     "f_score": "prc_f_score", "inception_score_mean": "isc", "inception_score_std": "isc_std"}
            values.update({f"{names[key]}_{extractor}": float(value) for key, value in result.items() if key in names})
            if f"kid_std_{extractor}" in values:   # KID's own standard error (docs/statistics.md): the se column
                values[f"kid_{extractor}_se"] = values[f"kid_std_{extractor}"]
        return values, skipped
