"""Samplers: `names()`, `get(name)`, `register(...)`; one module per family.

Importing this package registers the built-in families; it does not import torch.
"""

from diffsweep.samplers.registry import INITS, SAMPLERS, Knob, SamplerSpec, gaussian_like, get, names, register
from diffsweep.samplers.levels import checked_levels, steps_to_zero, with_final_zero
from diffsweep.samplers import random_walk, langevin, ddpm, sde, ode, edm, dpm  # noqa: F401  (registration)
from diffsweep.samplers import ancestral, lms, dpm_sde, dpm_adaptive, unipc, deis  # noqa: F401  (registration)

__all__ = ["INITS", "SAMPLERS", "Knob", "SamplerSpec", "checked_levels", "gaussian_like", "get", "names", "register",
           "steps_to_zero", "with_final_zero"]
