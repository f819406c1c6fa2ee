"""Reading checkpoint files safely, with failures as one line that names the config key.

Every checkpoint (a trained model's, a pretrained one) is read through a `CheckpointFile`
with `torch.load(weights_only=True)`: tensors and plain Python values only, never arbitrary
objects. Whatever goes wrong (missing file, truncated file, random bytes, foreign objects, a
checkpoint of another layout or network) raises `CheckpointError` with a one-line message:

    models.vp.checkpoint: pretrained checkpoint 'ckpt/x.pt' does not match the network: missing
    198 keys (input_blocks.0.0.bias, input_blocks.0.0.weight, input_blocks.1.0.emb_layers.1.bias,
    +195 more); expected adm_ffhq256: a plain state_dict (like DPS's ffhq_10m.pt)

`where` is the config path of the model entry ("models.vp."), as elsewhere in the package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path


class CheckpointError(ValueError):
    """A checkpoint file that cannot give the configured network its weights."""


@dataclass(frozen=True)
class CheckpointFile:
    """One checkpoint file to read, and what its errors name."""
    path: Path
    kind: str          # "trained checkpoint", "pretrained checkpoint"
    expected: str      # the format the caller wants, named in every error
    where: str = ""    # config path of the model entry, e.g. "models.vp."

    def error(self, problem: str) -> CheckpointError:
        return CheckpointError(f"{self.where}checkpoint: {self.kind} '{self.path}' {problem}; "
                               f"expected {self.expected}")

    def check(self) -> None:
        """Refuse a path that is no file; cheap (no torch), for a parse-time look."""
        path = Path(self.path)
        if not path.is_file():
            raise self.error("not found" if not path.exists() else "is not a file")

    def read(self, map_location="cpu"):
        """The file's content, loaded with weights_only=True."""
        import torch

        self.check()
        try:
            # Checkpoints written before provenance stored plain strings hold torch.__version__.
            with torch.serialization.safe_globals([torch.torch_version.TorchVersion]):
                return torch.load(self.path, map_location=map_location, weights_only=True)
        except Exception as error:  # torch's own messages span lines and advise unsafe loading
            raise self.error(_why_unreadable(error)) from None

    def load_state(self, net, state) -> None:
        """Load the state dict `state` into `net` strictly; a mismatch names a few keys."""
        if not isinstance(state, dict):
            raise self.error(f"holds {describe(state)} where a state dict belongs")
        problem = key_mismatch(net.state_dict(), state)
        if problem:
            raise self.error(f"does not match the network: {problem}")
        try:
            net.load_state_dict(state, strict=True)
        except (RuntimeError, TypeError, ValueError) as error:  # e.g. a value that is not a tensor
            summary = " ".join(str(error).split())[:200]  # one line, however long torch's message
            raise self.error(f"does not load into the network ({summary})") from None


def _why_unreadable(error: Exception) -> str:
    if isinstance(error, OSError):  # permissions, a failing disk: not the file's content
        return f"cannot be read ({type(error).__name__}: {error.strerror or error})"
    refused = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
    if refused:
        return (f"holds a Python object ({refused.group(1)}) that safe loading refuses: only tensors and plain "
                "values are read")
    return "cannot be read: the file is truncated or not a torch checkpoint"


def preview(keys, count: int = 3) -> str:
    """'a, b, c, +195 more': the first `count` of `keys` (sorted) and how many are left out."""
    keys = sorted(map(str, keys))
    return ", ".join(keys[:count]) + (f", +{len(keys) - count} more" if len(keys) > count else "")


def key_mismatch(expected: dict, found: dict) -> str | None:
    """What keeps `found` (a state dict) from loading strictly into a network whose state dict
    is `expected`: missing and unexpected keys, else tensors of other shapes; None if it fits."""
    missing, unexpected = set(expected) - set(found), set(found) - set(expected)
    if missing or unexpected:
        parts = [f"missing {_count(missing, 'key')} ({preview(missing)})" if missing else "",
                 f"{_count(unexpected, 'unexpected key')} ({preview(unexpected)})" if unexpected else ""]
        return ", ".join(part for part in parts if part)
    reshaped = sorted(key for key in expected if _shape(found[key]) != tuple(expected[key].shape))
    if not reshaped:
        return None
    shown = "; ".join(f"{key}: file {list(_shape(found[key]))}, network {list(expected[key].shape)}"
                      for key in reshaped[:3])
    more = f"; +{len(reshaped) - 3} more" if len(reshaped) > 3 else ""
    return f"{_count(reshaped, 'tensor')} of another shape ({shown}{more})"


def _count(items, noun: str) -> str:
    return f"{len(items)} {noun}{'s' if len(items) != 1 else ''}"


def _shape(value) -> tuple:
    return tuple(getattr(value, "shape", ()))


def describe(content) -> str:
    """'a dict with keys a, b, c, +3 more' or 'a Tensor': what a checkpoint holds, briefly."""
    if isinstance(content, dict):
        return f"a dict with keys {preview(content)}" if content else "an empty dict"
    return f"a {type(content).__name__}"
