"""The sampler registry: small functions behind a name, with their knobs declared beside them.

A sampler is a function

    sampler(denoise, x, sigmas, noise, *, callback=None, **knobs) -> (samples, nfe)

where `denoise(x, sigma) -> D(x, sigma)` is any score source, `x` the initial sample, `sigmas`
the sampling schedule (python floats, largest first), `noise` the noise source of every draw
(`noise(x)`: N(0, I) shaped like x; a torch.Generator is accepted and wrapped), `callback` called
once per step with the step's dict (diffsweep.samplers.randomness), and `nfe` the number of
`denoise` calls it made. Registration wraps the function (`randomness.method`) and refuses one
without `callback`; the job loop passes per-sample streams (`randomness.SampleStreams`). Knob declarations are plain data,
so the workflow validates presets at parse time without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from diffsweep.knobs import Knob, resolve_knobs  # Knob re-exported: plugins declare knobs with it
from diffsweep.registry import Entry, Registry
from diffsweep.samplers.randomness import method

INITS = {
    "unit": "x ~ N(0, I), the reference code's start",
    "sigma_max": "x ~ N(0, sigma_0^2 I), the VE prior",
    "vp_prior": "x ~ N(0, (1 + sigma_0^2) I), the VP prior z ~ N(0, I) in VE coordinates",
    "gaussian": "x ~ N(mean, std^2 I) with init_knobs mean, std (e.g. a start drawn on [0, 1] data: mean -1, std 2)",
}

# The knobs of each start (`init_knobs` in a preset); a start not listed takes none.
INIT_KNOBS = {
    "gaussian": {
        "mean": Knob("float", 0.0, "mean of every coordinate of the start"),
        "std": Knob("float", 1.0, "standard deviation of every coordinate of the start", exclusive_minimum=0.0),
    },
}


def resolve_init_knobs(init: str, given: dict | None, where: str = "") -> dict:
    """The knobs of start `init`, defaults filled in; knobs given to a start that takes none are refused."""
    return resolve_knobs(INIT_KNOBS.get(init, {}), given or {}, f"init '{init}'", where)


@dataclass(frozen=True, kw_only=True)
class MethodSpec(Entry):
    """A registered sampler or restorer: its function, declared knobs and defaults."""
    fn: Callable
    init: str = "sigma_max"          # default start distribution
    default_schedule: str = "geometric"
    # Its step control reads the whole batch (an adaptive solver's error norm), so a sample depends on the
    # batch it was drawn in: no prefix property (`keep_samples: k` is not the run with `n_samples: k`).
    batch_coupled: bool = False

    def __post_init__(self):
        if self.init not in INITS:
            raise ValueError(f"{self.kind} '{self.name}': unknown init '{self.init}'; "
                             f"allowed: {', '.join(INITS)}")


SamplerSpec = MethodSpec
SAMPLERS = Registry("sampler", MethodSpec)


def register(name: str, knobs: dict[str, Knob], description: str, init: str = "sigma_max",
             default_schedule: str = "geometric", batch_coupled: bool = False):
    """Decorator: make a sampler function available under `name` in presets (wrapped: `randomness.method`)."""
    add = SAMPLERS.register(name, description, knobs, init=init, default_schedule=default_schedule,
                            batch_coupled=batch_coupled)
    return lambda fn: add(method("sampler", name, fn))


names, get = SAMPLERS.names, SAMPLERS.get
