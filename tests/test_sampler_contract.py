"""The contract every sampler and restorer shares on `sigmas`: positive, finite, strictly
decreasing levels without the final 0, which one helper appends. A list that breaks it is
refused with one error naming the problem, before any network evaluation."""

import math

import pytest
import torch

from diffsweep import samplers
from diffsweep.restoration import registry as restorers
from diffsweep.restoration.operators import MatrixOperator
from diffsweep.samplers.levels import checked_levels, steps_to_zero, with_final_zero

BAD = {  # name -> (sigmas, the error it must raise)
    "ends_in_zero": ([3.0, 1.0, 0.0], "ends in 0 .*leave the final sigma = 0 out"),
    "negative": ([3.0, -0.5], "level 1 is -0.5; noise levels must be positive"),
    "zero_inside": ([3.0, 0.0, -1.0], "level 1 is 0.0; noise levels must be positive"),
    "nan": ([3.0, math.nan, 1.0], "level 1 is nan; noise levels must be finite"),
    "infinite": ([math.inf, 1.0], "level 0 is inf; noise levels must be finite"),
    "increasing": ([1.0, 2.0], r"level 1 \(2.0\) is not below level 0 \(1.0\).*strictly decreasing"),
    "repeated": ([2.0, 1.0, 1.0], r"level 2 \(1.0\) is not below level 1 \(1.0\)"),
    "empty": ([], "the schedule is empty"),
}


class NeverCalled:
    def __call__(self, x, sigma):
        raise AssertionError("the denoiser ran on a schedule that breaks the contract")


def test_the_final_zero_is_appended_once_and_valid_levels_pass_unchanged():
    assert with_final_zero([2.0, 1.0]) == [2.0, 1.0, 0.0]
    assert steps_to_zero([2.0, 1.0]) == [(2.0, 1.0), (1.0, 0.0)]
    assert steps_to_zero([0.5]) == [(0.5, 0.0)]
    assert checked_levels((3.0, 2.0)) == [3.0, 2.0]


@pytest.mark.parametrize("case", sorted(BAD))
def test_the_helper_names_the_problem(case):
    sigmas, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        checked_levels(sigmas)


@pytest.mark.parametrize("case", sorted(BAD))
@pytest.mark.parametrize("family", samplers.names())
def test_every_sampler_refuses_a_bad_schedule(family, case):
    spec = samplers.get(family)
    sigmas, message = BAD[case]
    x = torch.zeros(4, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        spec.fn(NeverCalled(), x, sigmas, torch.Generator().manual_seed(0), **spec.resolve_knobs({}))


@pytest.mark.parametrize("case", ["ends_in_zero", "negative", "nan", "increasing"])
@pytest.mark.parametrize("name", restorers.names())
def test_every_restorer_refuses_a_bad_schedule(name, case):
    spec = restorers.get(name)
    sigmas, message = BAD[case]
    generator = torch.Generator().manual_seed(0)
    operator = MatrixOperator(torch.randn(1, 2, generator=generator, dtype=torch.float64))
    y = torch.zeros(4, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match=message):
        spec.fn(NeverCalled(), torch.zeros(4, 2, dtype=torch.float64), sigmas, generator, operator, y, 0.1,
                **spec.resolve_knobs({}))
