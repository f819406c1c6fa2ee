"""Parametrisations: what a network F predicts, as the preconditioning of the denoiser

    D(x, sigma) = c_skip(sigma) * x + c_out(sigma) * F(c_in(sigma) * x, c_noise(sigma))

with c_noise = log(sigma) / 4 and, except for rectified flow, c_in = 1 / sqrt(sigma^2 + sd^2)
(for sd = 1 this is the VP input sqrt(abar) * x). Rectified flow's x_t = (1 - t) x0 + t n is
x / (1 + sigma) in VE coordinates with t = sigma / (1 + sigma), and its velocity v = n - x0
gives x0 = x_t - t v.

Each entry's `fn(sigma, sd) -> (c_skip, c_out, c_in)` takes sigma as a tensor and uses only
tensor methods, so this registry is read without importing torch (diffsweep.models applies it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from diffsweep.registry import Entry, Registry


@dataclass(frozen=True, kw_only=True)
class Parametrisation(Entry):
    fn: Callable    # fn(sigma, sd) -> (c_skip, c_out, c_in)


PARAMETRISATIONS = Registry("parametrisation", Parametrisation)


def _unit_input(sigma, sd):
    return 1.0 / (sigma ** 2 + sd ** 2).sqrt()


@PARAMETRISATIONS.register("x0", "the network predicts the clean sample")
def _x0(sigma, sd):
    return sigma.new_zeros(sigma.shape), sigma.new_ones(sigma.shape), _unit_input(sigma, sd)


@PARAMETRISATIONS.register("eps", "the network predicts the noise (DDPM)")
def _eps(sigma, sd):
    return sigma.new_ones(sigma.shape), -sigma, _unit_input(sigma, sd)


@PARAMETRISATIONS.register("score", "the network predicts sigma * score (NCSN++ scale_by_sigma)")
def _score(sigma, sd):
    # F approximates sigma * score (score_sde's scale_by_sigma); D = x + sigma * F.
    return sigma.new_ones(sigma.shape), sigma, _unit_input(sigma, sd)


@PARAMETRISATIONS.register("v", "the network predicts v = alpha eps - s x0 (progressive distillation)")
def _v(sigma, sd):
    # v = alpha eps - s x0 in VP coordinates; in VE coordinates x0 = x / (1 + sigma^2) - sigma / sqrt(1 + sigma^2) v.
    total = sigma ** 2 + sd ** 2
    return sd ** 2 / total, -sigma * sd / total.sqrt(), _unit_input(sigma, sd)


@PARAMETRISATIONS.register("edm", "EDM preconditioning (c_skip, c_out of Karras et al.)")
def _edm(sigma, sd):
    total = sigma ** 2 + sd ** 2
    return sd ** 2 / total, sigma * sd / total.sqrt(), _unit_input(sigma, sd)


@PARAMETRISATIONS.register("flow", "the network predicts the rectified-flow velocity n - x0 at x_t = (1 - t) x0 + t n")
def _flow(sigma, sd):
    # x_t = x / (1 + sigma), t = sigma / (1 + sigma), x0 = x_t - t v.
    return 1.0 / (1.0 + sigma), -sigma / (1.0 + sigma), 1.0 / (1.0 + sigma)
