"""Linear multistep: the classic variable-step Adams-Bashforth method on the probability-flow ODE
in sigma, as in k-diffusion's `sample_lms` and diffusers' `LMSDiscreteScheduler`.

With the slopes d_j = (x_j - D(x_j, sigma_j)) / sigma_j of the last p = min(solver_order, k + 1) levels,
    x_{k+1} = x_k + sum_j w_j d_j,   w_j = integral from sigma_k to sigma_{k+1} of l_j(s) ds,
where l_j is the Lagrange basis polynomial of the nodes sigma_{k-p+1..k}: the slope is
extrapolated by the polynomial through the last p slopes and integrated exactly (k-diffusion
integrates numerically with scipy's quad; Gauss-Legendre with p points is exact here). The last
step integrates to sigma = 0. One evaluation per step; order p.
"""

import functools
import math

from diffsweep.samplers.levels import with_final_zero
from diffsweep.samplers.randomness import report
from diffsweep.samplers.registry import Knob, register


@functools.lru_cache(maxsize=None)
def gauss_legendre(n: int) -> tuple[tuple, tuple]:
    """The n Gauss-Legendre points and weights on [-1, 1], as python floats (numpy's, computed once)."""
    import numpy as np
    points, weights = np.polynomial.legendre.leggauss(n)
    return tuple(points.tolist()), tuple(weights.tolist())


def lagrange_weights(nodes: list, a: float, b: float) -> list:
    """The integrals from a to b of the Lagrange basis polynomials of `nodes`, in plain floats: numpy
    calls on a few scalars cost more per step than the sampler's tensor arithmetic."""
    points, gauss_weights = gauss_legendre(len(nodes))
    taus = [(a + b) / 2 + (b - a) / 2 * point for point in points]  # p Gauss points integrate degree p - 1 exactly

    def basis(j, tau):
        return math.prod((tau - node) / (nodes[j] - node) for m, node in enumerate(nodes) if m != j)

    return [(b - a) / 2 * sum(g * basis(j, tau) for g, tau in zip(gauss_weights, taus)) for j in range(len(nodes))]


@register(
    "lms",
    knobs={"solver_order": Knob("int", 4, "number of past slopes in the extrapolation (1: Euler)", minimum=1, maximum=100)},
    description="linear multistep (Adams-Bashforth in sigma), one evaluation per step",
    init="sigma_max",
    default_schedule="karras",
)
def lms(denoise, x, sigmas, noise, *, solver_order, callback=None):
    levels = with_final_zero(sigmas)
    slopes, nfe = [], 0
    for k in range(len(levels) - 1):
        denoised = denoise(x, levels[k])
        slopes = (slopes + [(x - denoised) / levels[k]])[-solver_order:]
        nfe += 1
        nodes = levels[k + 1 - len(slopes):k + 1]
        weights = lagrange_weights(nodes, levels[k], levels[k + 1])
        x = x + sum(w * d for w, d in zip(weights, slopes))
        report(callback, k, levels[k], x, denoised)
    return x, nfe
