"""The sampler registry: small functions behind a name, with their knobs declared beside them.

A sampler is a function

    sampler(denoise, x, sigmas, generator, **knobs) -> (samples, nfe)

where `denoise(x, sigma) -> D(x, sigma)` is any score source, `x` the initial sample, `sigmas`
the sampling schedule (python floats, largest first), `generator` a torch.Generator for every
noise draw, and `nfe` the number of `denoise` calls it made. Knob declarations are plain data,
so the workflow validates presets at parse time without importing torch.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from diffsweep.knobs import Knob, resolve_knobs

INITS = {
    "unit": "x ~ N(0, I), the reference code's start",
    "sigma_max": "x ~ N(0, sigma_0^2 I), the VE prior",
    "vp_prior": "x ~ N(0, (1 + sigma_0^2) I), the VP prior z ~ N(0, I) in VE coordinates",
}


@dataclass(frozen=True)
class MethodSpec:
    """A registered sampler or restorer: its function, declared knobs and defaults."""
    name: str
    fn: Callable
    knobs: dict[str, Knob]
    description: str
    init: str = "sigma_max"          # default start distribution
    default_schedule: str = "geometric"
    module: str = ""
    kind: str = "sampler"            # what error messages call it

    def resolve_knobs(self, given: dict, where: str = "") -> dict:
        return resolve_knobs(self.knobs, given, f"{self.kind} '{self.name}'", where)


SamplerSpec = MethodSpec


class Registry:
    """Functions behind names: the samplers here, the restorers in diffsweep.restoration."""

    def __init__(self, kind: str):
        self.kind, self._specs = kind, {}

    def register(self, name: str, knobs: dict[str, Knob], description: str, init: str = "sigma_max",
                 default_schedule: str = "geometric"):
        """Decorator: make `fn` available under `name` in presets."""
        if init not in INITS:
            raise ValueError(f"{self.kind} '{name}': unknown init '{init}'; allowed: {', '.join(INITS)}")

        def add(fn):
            if name in self._specs and self._specs[name].fn is not fn:
                raise ValueError(f"{self.kind} '{name}' is registered twice "
                                 f"({self._specs[name].module} and {fn.__module__})")
            self._specs[name] = MethodSpec(name, fn, dict(knobs), description, init, default_schedule,
                                           fn.__module__, self.kind)
            return fn
        return add

    def names(self) -> list[str]:
        return sorted(self._specs)

    def get(self, name: str, where: str = "") -> MethodSpec:
        if name not in self._specs:
            raise ValueError(f"{where}unknown {self.kind} '{name}'; allowed: {', '.join(self.names())}")
        return self._specs[name]


SAMPLERS = Registry("sampler")
register, names, get = SAMPLERS.register, SAMPLERS.names, SAMPLERS.get


def load_plugin(entry: str, base_dir: str | Path = ".") -> None:
    """Import a user module (dotted name or .py path, relative to `base_dir`) so its @register runs."""
    if entry.endswith(".py") or "/" in entry:
        path = Path(entry)
        if not path.is_absolute():
            path = Path(base_dir) / path
        if not path.is_file():
            raise ValueError(f"plugins: file '{entry}' not found (looked at {path})")
        module_name = f"diffsweep_plugin_{path.stem}"
        if module_name in sys.modules:
            return
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    else:
        try:
            importlib.import_module(entry)
        except ImportError as error:
            raise ValueError(f"plugins: cannot import module '{entry}': {error}") from None


def gaussian_like(x, generator):
    """A standard normal draw shaped like x, from `generator` (the only source of randomness)."""
    import torch
    return torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
