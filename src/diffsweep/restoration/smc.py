"""An asymptotically exact posterior sampler: twisted sequential Monte Carlo.

Each row of x runs its own system of K particles along the unconditional ancestral chain,
reweighted by a twist p~(y | x_sigma) that approximates the likelihood at level sigma and equals
it, N(y; A x, s^2 I), at sigma = 0. The importance weights telescope, so the particles target
p_chain(x_0) N(y; A x_0, s^2 I) whatever the twist: as K grows the output approaches the posterior
of the chain's prior (the exact posterior, up to the discretisation of the unconditional chain);
the twist only decides how many particles that takes.
"""

from diffsweep.restoration.registry import Knob, register
from diffsweep.restoration.restorers import Spectral, ancestral_step, residual
from diffsweep.samplers.levels import checked_levels, steps_to_zero
from diffsweep.samplers.randomness import report


def log_twist(basis, operator, y, x0, sigma, noise_std, prior_variance):
    """log N(y; A x0, s^2 I + r^2 A A^T) up to a constant per level, r^2 = sigma^2 v / (sigma^2 + v):
    the spread of x_0 given x_sigma for a Gaussian prior of variance v (PiGDM's with v = 1), in A's SVD basis."""
    import torch
    r2 = sigma ** 2 * prior_variance / (sigma ** 2 + prior_variance)
    variance = (noise_std ** 2 + r2 * basis.s ** 2).clamp(min=torch.finfo(basis.s.dtype).tiny)
    residual_bar = basis.y_coefficients(residual(operator, x0, y))
    return -0.5 * (basis.observed * residual_bar.abs() ** 2 / variance).flatten(1).sum(1)


def resample(log_weights, noise, pool, threshold):
    """Multinomial resampling within each system of `pool` rows x K particles, of the systems whose
    effective sample size is below threshold x (their particles) (threshold 1: all): log_weights (systems, pool K).
    Returns the ancestors' indices (n K) into the particles and the log weights carried on (0 where
    a system was resampled). Every row draws its K ancestors from its own noise stream each step,
    resampled or not, so a row's draws do not depend on the other systems."""
    import torch
    systems, size = log_weights.shape
    probabilities = torch.softmax(log_weights, 1)
    k = size // pool
    picks = noise.multinomial(probabilities.repeat_interleave(pool, 0), k, replacement=True).reshape(systems, size)
    ess = 1 / (probabilities ** 2).sum(1)
    resampled = (ess < threshold * size) | (threshold >= 1)
    kept = torch.arange(size, device=picks.device).expand(systems, size)
    picks = torch.where(resampled[:, None], picks, kept)
    rows = (picks + size * torch.arange(systems, device=picks.device)[:, None]).flatten()
    return rows, torch.where(resampled[:, None], torch.zeros_like(log_weights), log_weights)


def checked_pool(pool, y):
    """The rows as systems of `pool` rows: each system's rows must restore the same measurement."""
    n = y.shape[0]
    if n % pool:
        raise ValueError(f"twisted_smc: knob pool ({pool}) must divide the number of restored rows ({n}); "
                         "set it to a divisor of the restorations per measurement")
    grouped = y.reshape(n // pool, pool, -1)
    if not bool((grouped == grouped[:, :1]).all()):
        raise ValueError(f"twisted_smc: knob pool ({pool}) puts rows of different measurements in one system; "
                         "set it to a divisor of the restorations per measurement")
    return n // pool


# the knobs of both SMC families
SMC_KNOBS = {
    "particles": Knob("int", 16, "particles per restored sample (twisted_smc: 1 is the unconditional chain)",
                      minimum=1, maximum=100_000),
    "prior_variance": Knob("float", 1.0, "v of the twist's Gaussian prior (twisted_smc: r^2 = sigma^2 v / (sigma^2 + v)): "
                                         "the data's variance per coordinate (1: PiGDM's, images in [-1, 1])",
                           minimum=1e-12),
    "pool": Knob("int", 1, "restored rows whose particles form one system (pool x particles particles, "
                           "each row picks one at the end); must divide the restorations per measurement",
                 minimum=1, maximum=100_000),
    "resample_ess": Knob("float", 1.0, "resample a system when its effective sample size falls below "
                                       "this fraction of its particles (1: every step)",
                         minimum=0.0, maximum=1.0)}


def particle_system(x, sigmas, noise, operator, y, particles, pool):
    """The n rows of x as n k particles (particle i of row j: row j's operator, and row j's noise stream for its
    draws), grouped in systems of `pool` rows. Returns the particles, their operator, the particles' noise
    source and the number of systems."""
    import torch
    n, k = x.shape[0], particles
    systems = checked_pool(pool, y)
    operator = operator.restrict(torch.arange(n).repeat_interleave(k))
    # particle 0 of each row is the given start; the others are drawn from the same N(0, sigma_max^2 I)
    others = sigmas[0] * noise(x.unsqueeze(1).expand(n, k - 1, *x.shape[1:]))
    x = torch.cat([x.unsqueeze(1), others], 1).flatten(0, 1)

    def particle_noise(z):      # a draw for the n k particles, row j's k particles from row j of the source
        return noise(z.reshape(n, k, *z.shape[1:])).reshape(z.shape)
    return x, operator, particle_noise, systems


def final_pick(x, log_weights, noise, n, pool):
    """Each row picks one particle of its system by weight."""
    import torch
    size = log_weights.shape[1]
    probabilities = torch.softmax(log_weights, 1).repeat_interleave(pool, 0)
    picks = noise.multinomial(probabilities, 1).flatten()
    return x[picks + size * torch.arange(n, device=x.device).div(pool, rounding_mode="floor")]


@register(
    "twisted_smc",
    knobs=SMC_KNOBS,
    description="twisted SMC (the framework of TDS, Wu et al. 2023) with the prior's ancestral step as proposal: "
                "weights p~(y|x_sigma') / p~(y|x_sigma), twist N(y; A D(x), s^2 + r^2 A A^T), multinomial "
                "resampling when the effective sample size drops; consistent as particles grow",
    init="sigma_max",
    default_schedule="vp_respaced",
)
def twisted_smc(denoise, x, sigmas, noise, operator, y, noise_std, *, particles, prior_variance, pool=1,
                resample_ess=1.0, callback=None):
    sigmas = checked_levels(sigmas)
    n, k = x.shape[0], particles
    x, operator, particle_noise, systems = particle_system(x, sigmas, noise, operator, y, particles, pool)
    y = y.repeat_interleave(k, 0)
    basis = Spectral(operator, x)

    x0 = denoise(x, sigmas[0])
    nfe = 1
    twist = log_twist(basis, operator, y, x0, sigmas[0], noise_std, prior_variance)
    log_weights = twist.reshape(systems, pool * k)
    for step, (sigma, following) in enumerate(steps_to_zero(sigmas)):
        rows, log_weights = resample(log_weights, noise, pool, resample_ess)
        x, x0, twist = x[rows], x0[rows], twist[rows]
        x = ancestral_step(x, x0, sigma, following, particle_noise)
        if following > 0:
            x0 = denoise(x, following)
            nfe += 1
        else:
            x0 = x       # at sigma = 0 the twist is the exact likelihood
        following_twist = log_twist(basis, operator, y, x0, following, noise_std, prior_variance)
        log_weights = log_weights + (following_twist - twist).reshape(systems, pool * k)
        twist = following_twist
        if callback is not None and following > 0:      # the particles (n, k, ...) and their denoised
            report(callback, step, sigma, x.reshape(n, k, *x.shape[1:]), x0.reshape(n, k, *x.shape[1:]))
    x = final_pick(x, log_weights, noise, n, pool)
    report(callback, len(sigmas) - 1, sigmas[-1], x)       # the last step ends with the final pick
    return x, nfe


def gaussian_twist(basis, y_bar, x_bar, mean_bar, sigma, noise_std, prior_variance):
    """log N(y; A (mu + c (x - mu)), s^2 I + r^2 A A^T) up to a constant per level, c = v / (sigma^2 + v),
    r^2 = sigma^2 v / (sigma^2 + v): the likelihood of y given x_sigma = x exactly when the prior is N(mu, v I),
    in A's SVD basis (x_bar = V^T x, mean_bar = V^T mu, y_bar = U^T y). Unlike log_twist it needs no denoiser:
    it is linear-Gaussian in x itself, so the chain's Gaussian step times it is Gaussian (conjugate_step)."""
    import torch
    c = prior_variance / (sigma ** 2 + prior_variance)
    variance = (noise_std ** 2 + c * sigma ** 2 * basis.s ** 2).clamp(min=torch.finfo(basis.s.dtype).tiny)
    innovation = y_bar - basis.s * (mean_bar + c * (x_bar - mean_bar))
    return -0.5 * (basis.observed * innovation.abs() ** 2 / variance).flatten(1).sum(1)


def conjugate_step(basis, y_bar, step_mean, step_variance, mean_bar, following, noise_std, prior_variance):
    """The chain's step N(step_mean, step_variance I) times the Gaussian twist at the next level `following`, in
    A's SVD basis: per observed coordinate a prior N(m, t) and a measurement y ~ N(s (1 - c) mu + a x, V),
    a = c s. Returns the step's normaliser log Z = log N(y; s (1 - c) mu + a m, V + a^2 t) (up to a constant
    per level), the product's mean and its standard deviation per coordinate (sqrt(t) on A's null space)."""
    import torch
    c = prior_variance / (following ** 2 + prior_variance)
    a = c * basis.s
    variance = noise_std ** 2 + c * following ** 2 * basis.s ** 2
    total = (variance + a ** 2 * step_variance).clamp(min=torch.finfo(basis.s.dtype).tiny)
    innovation = y_bar - basis.s * (1 - c) * mean_bar - a * step_mean
    log_z = -0.5 * (basis.observed * innovation.abs() ** 2 / total).flatten(1).sum(1)
    mean = step_mean + basis.observed * (step_variance * a / total) * innovation
    std = torch.where(basis.observed, (step_variance * variance / total).sqrt(),
                      torch.full_like(total, step_variance ** 0.5))
    return log_z, mean, std


def system_prior_mean(x, x0, sigma, prior_variance, systems):
    """mu of the twist's N(mu, v I) prior, per system: D(x) = mu + c (x - mu) for that prior, so each particle
    gives (D(x) - c x) / (1 - c); at sigma_max c is small and a mixture's D(x) is near its mean there. The
    system's particles average theirs (one mu per system, so that a particle resampled to another row of its
    system keeps its twist)."""
    c = prior_variance / (sigma ** 2 + prior_variance)
    each = (x0 - c * x) / (1 - c)
    return each.reshape(systems, -1, *x.shape[1:]).mean(1, keepdim=True).expand(
        systems, x.shape[0] // systems, *x.shape[1:]).reshape(x.shape)


@register(
    "guided_smc",
    knobs=SMC_KNOBS,
    description="SMC with a proposal that uses y (the fully adapted particle filter; MCGdiff's and FPS's idea for "
                "linear problems): twist N(y; A (mu + c (x_sigma - mu)), s^2 + r^2 A A^T), exact for a N(mu, v I) "
                "prior (mu from the first denoiser call), so the ancestral step times the next twist is drawn in "
                "closed form in A's SVD basis and the weights Z / twist are known before the draw (resample, then "
                "move); consistent as particles grow",
    init="sigma_max",
    default_schedule="vp_respaced",
)
def guided_smc(denoise, x, sigmas, noise, operator, y, noise_std, *, particles, prior_variance, pool=1,
               resample_ess=1.0, callback=None):
    sigmas = checked_levels(sigmas)
    n, k = x.shape[0], particles
    x, operator, particle_noise, systems = particle_system(x, sigmas, noise, operator, y, particles, pool)
    basis = Spectral(operator, x)
    y_bar = basis.y_coefficients(y.repeat_interleave(k, 0))

    x0 = denoise(x, sigmas[0])
    nfe = 1
    mean_bar = basis.to_spectral(system_prior_mean(x, x0, sigmas[0], prior_variance, systems))
    twist = gaussian_twist(basis, y_bar, basis.to_spectral(x), mean_bar, sigmas[0], noise_std, prior_variance)
    log_weights = twist.reshape(systems, pool * k)
    for step, (sigma, following) in enumerate(steps_to_zero(sigmas)):
        ratio = following ** 2 / sigma ** 2          # the ancestral step's mean and variance (ancestral_step)
        step_mean = basis.to_spectral(x0 + ratio * (x - x0))
        log_z, proposal_mean, std = conjugate_step(basis, y_bar, step_mean, following ** 2 * (1 - ratio), mean_bar,
                                                   following, noise_std, prior_variance)
        # the weight of a move does not depend on where it lands: weigh, resample, then move
        log_weights = log_weights + (log_z - twist).reshape(systems, pool * k)
        rows, log_weights = resample(log_weights, noise, pool, resample_ess)
        x_bar = proposal_mean[rows]
        if following > 0:
            x_bar = x_bar + std * basis.noise(x, particle_noise)
        x = basis.from_spectral(x_bar)
        if following > 0:
            twist = gaussian_twist(basis, y_bar, x_bar, mean_bar, following, noise_std, prior_variance)
            x0 = denoise(x, following)
            nfe += 1
            if callback is not None:
                report(callback, step, sigma, x.reshape(n, k, *x.shape[1:]), x0.reshape(n, k, *x.shape[1:]))
    x = final_pick(x, log_weights, noise, n, pool)
    report(callback, len(sigmas) - 1, sigmas[-1], x)
    return x, nfe
