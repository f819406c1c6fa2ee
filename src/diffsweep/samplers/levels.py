"""The sampler contract on `sigmas`, and the final level 0 every sampler ends at.

A schedule holds positive, finite levels, strictly decreasing; sigma = 0 is not part of it:
samplers that step to 0 add it here, in one place. A bad list raises one ValueError naming
the problem instead of returning NaN or dividing by zero deep inside a sampler.
"""

import math


def checked_levels(sigmas) -> list:
    """The levels as a list, after checking the contract (elements are returned unchanged)."""
    levels = list(sigmas)
    if not levels:
        raise ValueError("sigmas: the schedule is empty; a sampler needs at least one noise level")
    for k, sigma in enumerate(levels):
        if not math.isfinite(sigma):
            raise ValueError(f"sigmas: level {k} is {float(sigma)}; noise levels must be finite")
        if sigma == 0 and k == len(levels) - 1:
            raise ValueError(f"sigmas: the schedule ends in 0 (level {k}); leave the final sigma = 0 out, "
                             "samplers add it themselves")
        if sigma <= 0:
            raise ValueError(f"sigmas: level {k} is {float(sigma)}; noise levels must be positive")
        if k > 0 and not sigma < levels[k - 1]:
            raise ValueError(f"sigmas: level {k} ({float(sigma)}) is not below level {k - 1} "
                             f"({float(levels[k - 1])}); the schedule must be strictly decreasing")
    return levels


def with_final_zero(sigmas) -> list:
    """The checked levels followed by the final level 0."""
    return checked_levels(sigmas) + [0.0]


def steps_to_zero(sigmas) -> list[tuple]:
    """(sigma_k, sigma_{k+1}) for every step; the last one goes to 0."""
    levels = with_final_zero(sigmas)
    return list(zip(levels[:-1], levels[1:]))


# diffusers' multistep schedulers lower the order of their last steps by default (`lower_order_final`);
# DPM-Solver multistep and DEIS do it only for schedules of fewer than this many levels.
LOWER_ORDER_FINAL_BELOW = 15


def final_steps_order(order: int, step: int, n_levels: int, lower_order_final: bool, any_length: bool = False) -> int:
    """`order` for the step from level `step` of `n_levels` (the last one steps to 0), lowered as diffusers'
    `lower_order_final` lowers it: at most 1 for the step to 0, at most 2 for the step onto the last level, and
    so on. DPM-Solver multistep and DEIS lower only schedules of fewer than LOWER_ORDER_FINAL_BELOW levels;
    UniPC lowers every length (`any_length`), whatever its docstring says."""
    if lower_order_final and (any_length or n_levels < LOWER_ORDER_FINAL_BELOW):
        return min(order, n_levels - step)
    return order
