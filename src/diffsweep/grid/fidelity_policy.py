"""Which fidelity feature extractors score a dataset's samples (config `fidelity`). Torch-free."""

from __future__ import annotations

from diffsweep.grid.specs import DataSpec


# Sets the digits classifier (diffsweep.fidelity) understands.
DIGITS_FAMILIES = ("digits", "digits_gmm")


def fidelity_extractors(data_spec: DataSpec, options: dict) -> list[str]:
    """The torch-fidelity feature extractors that score a dataset's samples (config `fidelity`).
    Inception is listed even without weights, so every image run records why it was skipped."""
    if not options["enabled"] or not data_spec.is_image:
        return []
    return (["digits"] if data_spec.family in DIGITS_FAMILIES else []) + ["inception"]
