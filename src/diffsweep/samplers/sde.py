"""Reverse-time SDE samplers (Song et al. 2021): Euler-Maruyama, reverse diffusion, and
predictor-corrector with a Langevin or an annealed-Langevin corrector.

The VE process (dx = sqrt(d sigma^2/dt) dw) works on x; the VP process
(dz = -beta z / 2 dt + sqrt(beta) dw) works on z = sqrt(abar) x, abar = 1 / (1 + sigma^2),
whose score is score_z(z) = score(x) / sqrt(abar). Steps go sigma_k -> sigma_{k+1}, the last
one to sigma = 0; its noise is left out unless `final_noise` (score_sde returns that mean).

Predictors, from level k to k+1 (beta_k = 1 - abar_k / abar_{k+1}):
    VE (both):              x <- x + (sigma_k^2 - sigma_{k+1}^2) score + sqrt(sigma_k^2 - sigma_{k+1}^2) n
    VP Euler-Maruyama:      z <- z + (z / 2 + score_z) b + sqrt(b) n,   b = log(abar_{k+1} / abar_k)
    VP reverse diffusion:   z <- (2 - sqrt(1 - beta_k)) z + beta_k score_z + sqrt(beta_k) n
Correctors at level k (alpha = 1 - beta_k for VP, 1 for VE), score_sde's rules:
    langevin:           step = 2 alpha (snr ||n|| / ||score||)^2      (norms averaged over the batch)
    annealed_langevin:  step = 2 alpha (snr * std_k)^2,  std_k = sigma_k (VE) or sqrt(1 - abar_k) (VP)
    x <- x + step * score + sqrt(2 step) n
"""

import math

from diffsweep.samplers.levels import with_final_zero
from diffsweep.samplers.randomness import report
from diffsweep.samplers.registry import Knob, register


class Process:
    """The coordinates one reverse SDE works in: x itself (VE) or z = sqrt(abar) x (VP)."""

    def __init__(self, kind: str, sigmas):
        self.kind = kind
        self.levels = with_final_zero(sigmas)
        self.abar = [1.0 / (1.0 + s ** 2) for s in self.levels]

    def scale(self, k: int) -> float:
        return 1.0 if self.kind == "ve" else math.sqrt(self.abar[k])

    def to_state(self, x, k):
        return self.scale(k) * x

    def to_x(self, state, k):
        return state / self.scale(k)

    def score(self, denoise, state, k):
        """The score of the state's marginal at level k (one network evaluation)."""
        sigma = self.levels[k]
        x = self.to_x(state, k)
        return (denoise(x, sigma) - x) / sigma ** 2 / self.scale(k)

    def beta(self, k: int) -> float:
        return 1.0 - self.abar[k] / self.abar[k + 1]

    def predict(self, predictor: str, state, score, k, noise):
        """One predictor step from level k to k+1; `noise` may be None (no noise)."""
        if self.kind == "ve":
            dvar = self.levels[k] ** 2 - self.levels[k + 1] ** 2
            mean, std = state + dvar * score, math.sqrt(dvar)
        elif predictor == "euler_maruyama":
            b = math.log(self.abar[k + 1] / self.abar[k])
            mean, std = state + (0.5 * state + score) * b, math.sqrt(b)
        else:  # reverse diffusion on the discretised VP chain
            beta = self.beta(k)
            mean, std = (2.0 - math.sqrt(1.0 - beta)) * state + beta * score, math.sqrt(beta)
        return mean if noise is None else mean + std * noise

    def correct(self, corrector: str, state, score, k, snr, noise):
        alpha = 1.0 if self.kind == "ve" else 1.0 - self.beta(k)
        if corrector == "langevin":
            ratio = _mean_norm(noise) / _mean_norm(score)
            step = 2.0 * alpha * (snr * ratio) ** 2
        else:
            std = self.levels[k] if self.kind == "ve" else math.sqrt(1.0 - self.abar[k])
            step = 2.0 * alpha * (snr * std) ** 2
        return state + step * score + math.sqrt(2.0 * step) * noise


def _mean_norm(v) -> float:
    return v.reshape(v.shape[0], -1).norm(dim=1).mean().item()


@register(
    "sde_euler",
    knobs={
        "process": Knob("str", "ve", "which forward SDE is reversed", choices=("ve", "vp")),
        "final_noise": Knob("bool", False, "add the noise of the last step (to sigma = 0)"),
    },
    description="reverse-time SDE with Euler-Maruyama steps, VE or VP",
    init="sigma_max",
    default_schedule="geometric",
)
def sde_euler(denoise, x, sigmas, noise, *, process, final_noise, callback=None):
    return pc(denoise, x, sigmas, noise, process=process, predictor="euler_maruyama", corrector="none",
              snr=0.0, steps_per_level=0, sequence="corrector_first", final_noise=final_noise, callback=callback)


@register(
    "pc",
    knobs={
        "process": Knob("str", "ve", "which forward SDE is reversed", choices=("ve", "vp")),
        "predictor": Knob("str", "reverse_diffusion", "predictor step",
                          choices=("reverse_diffusion", "euler_maruyama", "none")),
        "corrector": Knob("str", "langevin", "corrector step", choices=("langevin", "annealed_langevin", "none")),
        "snr": Knob("float", 0.16, "corrector signal-to-noise ratio", exclusive_minimum=0.0),
        "steps_per_level": Knob("int", 1, "corrector (Langevin) steps at each noise level", minimum=0,
                                maximum=10_000, formerly="corrector_steps"),
        "sequence": Knob("str", "corrector_first", "score_sde corrects at a level before predicting from it",
                         choices=("corrector_first", "predictor_first"), formerly="order"),
        "final_noise": Knob("bool", False, "add the noise of the last predictor step (to sigma = 0)"),
    },
    description="predictor-corrector sampling (score_sde): reverse diffusion / Euler-Maruyama + Langevin corrector",
    init="sigma_max",
    default_schedule="geometric",
    batch_coupled=True,      # the langevin corrector's step reads the batch's mean norms (score_sde)
)
def pc(denoise, x, sigmas, noise, *, process, predictor, corrector, snr, steps_per_level, sequence, final_noise,
       callback=None):
    sde = Process(process, sigmas)
    state, nfe, last = sde.to_state(x, 0), 0, len(sigmas) - 1

    def run_corrector(state, k):
        nonlocal nfe
        for _ in range(steps_per_level if corrector != "none" else 0):
            score = sde.score(denoise, state, k)
            nfe += 1
            state = sde.correct(corrector, state, score, k, snr, noise(state))
        return state

    for k in range(len(sigmas)):
        if sequence == "corrector_first":
            state = run_corrector(state, k)
        if predictor == "none":
            state = sde.to_state(sde.to_x(state, k), k + 1)  # move to the next level unchanged
        else:
            score = sde.score(denoise, state, k)
            nfe += 1
            increment = noise(state) if (final_noise or k < last) else None
            state = sde.predict(predictor, state, score, k, increment)
        if sequence == "predictor_first" and k < last:
            state = run_corrector(state, k + 1)
        if callback is not None:    # one step: a level's corrector and predictor; D stays inside the process
            report(callback, k, sigmas[k], sde.to_x(state, k + 1))
    return sde.to_x(state, len(sigmas)), nfe
