"""Samplers: `names()`, `get(name)`, `register(...)`; one module per family.

Importing this package registers the built-in families; it does not import torch.
"""

from diffsweep.samplers.registry import (INIT_KNOBS, INITS, SAMPLERS, Knob, SamplerSpec, get,
                                       names, register, resolve_init_knobs)
from diffsweep.samplers.levels import checked_levels, steps_to_zero, with_final_zero
from diffsweep.samplers.randomness import GeneratorNoise, SampleStreams, report
from diffsweep.samplers import random_walk, langevin, ddpm, sde, ode, edm, dpm  # noqa: F401  (registration)
from diffsweep.samplers import ancestral, lms, dpm_sde, dpm_adaptive, unipc, deis  # noqa: F401  (registration)

__all__ = ["INIT_KNOBS", "INITS", "SAMPLERS", "GeneratorNoise", "Knob", "SampleStreams", "SamplerSpec", "checked_levels",
           "get", "names", "register", "report", "resolve_init_knobs", "steps_to_zero", "with_final_zero"]
