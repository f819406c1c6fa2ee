"""Conditional restoration: operators (tasks), exact posteriors, restorers, metrics and jobs.

Importing this package registers the built-in restorers; it does not import torch.
"""

from diffsweep.restoration.registry import (DATA_RANGE_SCALE, DEFAULT_DATA_RANGE, DEFAULT_NOISE_STD, OPERATORS,
                                            PROBLEM_DRAWS, RESTORERS, RestorerSpec, get, get_operator, names, noise_std,
                                            register)

__all__ = ["DATA_RANGE_SCALE", "DEFAULT_DATA_RANGE", "DEFAULT_NOISE_STD", "OPERATORS", "PROBLEM_DRAWS", "RESTORERS",
           "RestorerSpec", "get", "get_operator", "names", "noise_std", "register"]
from diffsweep.restoration import restorers  # noqa: E402,F401  (registration)
from diffsweep.restoration import projections, smc  # noqa: E402,F401  (registration)
