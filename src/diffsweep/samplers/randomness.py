"""Where a sampler's or restorer's randomness comes from, and what it reports per step.

Every registered sampler and restorer takes its noise as an argument (as k-diffusion takes
`noise_sampler=` and EDM `randn_like=`) and an optional per-step `callback`; none draws from a
module global, so tests inject noise by passing it and a trajectory study reads the steps.

A noise source is called like EDM's randn_like: `noise(x)` is a standard normal draw shaped like x
(its dtype and device, rows first); `noise.multinomial(probabilities, n, replacement)` picks n
indices per row. Two sources:

- `GeneratorNoise(generator)`: every draw from one torch.Generator, the whole batch at once. A
  torch.Generator passed where a noise source is expected is wrapped in it (`noise_source`).
- `SampleStreams(seed, per_group, block, ..., groups)`: per-sample streams, the job loop's source.
  The rows are `groups` groups of `per_group` samples (a generation run: one group of n_samples;
  a restoration run: a group per measurement); each group is cut into blocks of `block` samples,
  block b of group g draws from a generator of its own seeded by (seed, stream, g, b)
  (`stream_seed`), and every draw takes the whole block (a last, partial block draws `block` rows
  and keeps its first ones, so a generator's state never depends on how many rows are kept).
  Sample i of group g therefore depends only on (seed, stream, g, i): a run of n samples is the
  first n samples of the same run with more, whatever the sampler (its draws are shaped like x).

The callback is called once per step with a dict (`report`): `step` (0, 1, ... in order), `sigma`
(the noise level the step started from), `x` (the iterate after the step; the last call's `x` is
what the method returns) and `denoised` (the last D(x, sigma) of the step, None where the step
made none). A callback must not change the tensors it is handed.

Importing this module does not import torch.
"""

from __future__ import annotations

import functools
import hashlib
import inspect


class GeneratorNoise:
    """Every draw from one torch.Generator: `noise(x)` is torch.randn shaped like x."""

    def __init__(self, generator):
        self.generator = generator

    def __call__(self, x):
        import torch
        return torch.randn(x.shape, generator=self.generator, dtype=x.dtype, device=x.device)

    def multinomial(self, probabilities, n: int, replacement: bool = False):
        import torch
        return torch.multinomial(probabilities, n, replacement, generator=self.generator)


def stream_seed(seed: int, stream: str, group: int, block: int) -> int:
    """The seed of block `block` of group `group` of stream `stream` in a run seeded `seed` (blake2b, 63 bits)."""
    digest = hashlib.blake2b(f"{stream}/{seed}/{group}/{block}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1      # torch takes seeds below 2^63 on every device


# Samples per block of a run's streams (module docstring). Each draw costs a call per block and up to a
# block's rows beyond what it keeps: 256 keeps a generation draw within noise of one batch-wide draw
# (bench/sampler_overhead.py --noise, docs/measurements.md); a restoration restores few samples per
# measurement (4 on the default grid) and pays a call per measurement anyway, so its blocks waste nothing there.
GENERATION_BLOCK = 256
RESTORATION_BLOCK = 4


class SampleStreams:
    """Per-sample noise for `groups` x `per_group` rows (row r is sample r % per_group of group
    r // per_group): a generator per block of `block` samples of a group, each draw a whole block, so
    sample i of group g depends only on (seed, stream, g, i)."""

    def __init__(self, seed: int, per_group: int, block: int, device="cpu", stream: str = "samples", groups: int = 1):
        import torch
        if per_group < 1 or block < 1 or groups < 1:
            raise ValueError(f"SampleStreams: per_group ({per_group}), block ({block}) and groups ({groups}) "
                             "must be positive")
        self.per_group, self.block, self.rows = per_group, block, groups * per_group
        blocks = -(-per_group // block)
        self.generators = [torch.Generator(device=device).manual_seed(stream_seed(seed, stream, g, b))
                           for g in range(groups) for b in range(blocks)]
        # rows each block's draw keeps: whole blocks but the last of each group
        self.kept = [min(block, per_group - b * block) for _ in range(groups) for b in range(blocks)]

    def _check(self, x):
        if x.shape[0] != self.rows:
            raise ValueError(f"a noise source of {self.rows} rows asked for a draw of {x.shape[0]} rows")

    def __call__(self, x):
        import torch
        self._check(x)
        pieces = [torch.randn((self.block, *x.shape[1:]), generator=generator, dtype=x.dtype, device=x.device)[:kept]
                  for generator, kept in zip(self.generators, self.kept)]
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)

    def multinomial(self, probabilities, n: int, replacement: bool = False):
        """Row by row as torch.multinomial; a partial block is padded with uniform rows (which consume the
        block's generator exactly as real rows would, whatever the probabilities)."""
        import torch
        self._check(probabilities)
        picks, start = [], 0
        for generator, kept in zip(self.generators, self.kept):
            rows = probabilities[start:start + kept]
            if kept < self.block:
                rows = torch.cat([rows, torch.ones((self.block - kept, *rows.shape[1:]), dtype=rows.dtype,
                                                   device=rows.device)])
            picks.append(torch.multinomial(rows, n, replacement, generator=generator)[:kept])
            start += kept
        return torch.cat(picks)


def no_noise(x):
    raise ValueError("a draw from noise=None: pass a noise source or a torch.Generator")


def noise_source(noise):
    """`noise` as a noise source: a torch.Generator becomes GeneratorNoise(generator), a source stays,
    None (for a call that must not draw) becomes one that refuses every draw."""
    import torch
    if noise is None:
        return no_noise
    if isinstance(noise, torch.Generator):
        return GeneratorNoise(noise)
    if callable(noise):
        return noise
    raise TypeError(f"noise must be a noise source (diffsweep.samplers.randomness) or a torch.Generator, "
                    f"got {type(noise).__name__}")


def report(callback, step: int, sigma, x, denoised=None) -> None:
    """Call `callback` (if any) with the step's dict (module docstring)."""
    if callback is not None:
        callback({"step": step, "sigma": float(sigma), "x": x, "denoised": denoised})


def takes_callback(fn) -> bool:
    parameters = inspect.signature(fn).parameters.values()
    return any(p.name == "callback" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) or p.kind == p.VAR_KEYWORD
               for p in parameters)


def method(kind: str, name: str, fn):
    """`fn` as a registered method: its noise argument (the 4th) made a noise source, `callback`
    passed on. A function that takes no `callback` is refused, naming it."""
    if not takes_callback(fn):
        raise TypeError(f"{kind} '{name}' ({fn.__module__}.{fn.__qualname__}): its function must take a keyword "
                        "argument callback=None (docs/adding-a-sampler.md)")

    @functools.wraps(fn)
    def run(denoise, x, sigmas, noise, *args, callback=None, **knobs):
        return fn(denoise, x, sigmas, noise_source(noise), *args, callback=callback, **knobs)
    return run
