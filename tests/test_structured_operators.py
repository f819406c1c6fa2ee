"""Structured SVDs (pixel selection, Kronecker, Fourier) against the dense reference, in float64."""

import pytest
import torch

from diffsweep import noise, restoration
from diffsweep.runs.source import initial_sample
from diffsweep.restoration import operators as ops
from diffsweep.restoration.registry import OPERATORS

IMAGE = (3, 8, 8)
CASES = [
    ("sr_bicubic", {"factor": 2}), ("sr_bicubic", {"factor": 4}), ("sr_avgpool", {"factor": 2}),
    ("sr_avgpool", {"factor": 4}), ("inpaint_random", {"missing": 0.5}), ("inpaint_box", {"size": 3}),
    ("inpaint_half", {"side": "top"}), ("deblur_gaussian", {"kernel_size": 5, "std": 1.0}),
    ("deblur_motion", {"kernel_size": 5, "intensity": 0.5}), ("random_matrix", {"measurements": 5}),
    ("random_projection", {"measurements": 7}), ("grid25_pairs", {"d_y": 2}),
]
STRUCTURE = {"sr_bicubic": ops.KroneckerSVD, "sr_avgpool": ops.KroneckerSVD, "inpaint_random": ops.PixelSelection,
             "inpaint_box": ops.PixelSelection, "inpaint_half": ops.PixelSelection,
             "deblur_gaussian": ops.FourierSVD, "deblur_motion": ops.FourierSVD,
             "random_matrix": ops.DenseSVD, "random_projection": ops.DenseSVD,   # the factors they are built from
             "grid25_pairs": ops.DenseSVD}     # the published problem's dense matrix
SPECTRAL_RESTORERS = ["ddrm", "diffpir", "pigdm", "replacement", "repaint", "ilvr", "ddnm", "ddnm_plus", "twisted_smc",
                      "red_diff", "daps"]


def build(name, params, shape=IMAGE, seed=0):
    family = OPERATORS.get(name)
    return family.build(shape, seed, family.resolve_knobs(params))


def dense_twin(name, params):
    """The same operator, decomposed through its dense matrix."""
    operator = build(name, params)
    operator.decompose = operator.dense_svd
    return operator


def draws(operator, n=3, seed=1):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *operator.shape, generator=generator, dtype=torch.float64)
    y = torch.randn(n, *operator.measurement_shape, generator=generator, dtype=torch.float64)
    return x, y


def close(a, b, tol=1e-10):
    return (a - b).abs().max().item() <= tol


def test_every_operator_family_has_a_structure():
    assert {name for name, _ in CASES} == set(OPERATORS) == set(STRUCTURE)


@pytest.mark.parametrize("name,params", CASES)
def test_structured_svd_equals_the_operator_and_the_dense_svd(name, params):
    operator = build(name, params)
    svd, dense = operator.svd(), operator.dense_svd()
    assert isinstance(svd, STRUCTURE[name])
    x, y = draws(operator)
    for factors in (svd, dense):
        assert close(factors.u(factors.s * factors.vt(x)), operator.forward(x))        # A = U S V^T
        assert close(factors.v(factors.s * factors.ut(y)), operator.adjoint(y))        # A^T = V S U^T
        assert close(factors.v(factors.vt(x)), x)                                      # V orthogonal
        assert close(factors.vt(x).abs().pow(2).flatten(1).sum(1), x.pow(2).flatten(1).sum(1))
    assert close(svd.s.flatten().sort().values, dense.s.sort().values)
    pinv = torch.linalg.pinv(operator.matrix(), rtol=1e-10)
    expected = (y.flatten(1) @ pinv.T).reshape(x.shape)
    assert close(svd.pseudo_inverse(y), expected) and close(dense.pseudo_inverse(y), expected)


@pytest.mark.parametrize("name,params", CASES)
def test_norm_is_the_largest_singular_value_of_the_dense_matrix(name, params):
    operator = build(name, params)
    largest = torch.linalg.matrix_norm(operator.matrix(), ord=2).item()
    assert abs(operator.norm() - largest) <= 1e-10
    # every image operator is a contraction, so the conditional walk's clamp stays the reference's s^2
    assert operator.norm() <= 1 + 1e-12


def test_norm_of_a_dense_matrix_and_of_per_image_masks():
    matrix = torch.randn(8, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert abs(ops.MatrixOperator(matrix).norm() - torch.linalg.matrix_norm(matrix, ord=2).item()) <= 1e-10
    per_image = build("inpaint_random", {"missing": 0.5, "per_image": True}).for_measurements(3)
    assert per_image.norm() == 1.0 and per_image.restrict(slice(0, 2)).norm() == 1.0


def shrinking_denoiser(x, sigma):
    """A smooth nonlinear stand-in for a network (PiGDM differentiates through it)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype).reshape(-1, *[1] * (x.ndim - 1))
    return torch.tanh(x) / (1 + sigma ** 2)


def run_restorer(restorer, operator, dtype=torch.float64, steps=5, n=2):
    spec = restoration.get(restorer)
    sigmas = noise.make_schedule(spec.default_schedule, steps).tolist()
    generator = torch.Generator().manual_seed(0)
    x = initial_sample(spec.init, sigmas[0], (n, *operator.shape), generator, dtype, torch.device("cpu"))
    truth = 0.5 * torch.randn(n, *operator.shape, generator=generator, dtype=dtype)
    y = operator.forward(truth) + 0.05 * torch.randn(n, *operator.measurement_shape, generator=generator, dtype=dtype)
    samples, _ = spec.fn(shrinking_denoiser, x, sigmas, generator, operator, y, 0.05, **spec.resolve_knobs({}))
    return samples


@pytest.mark.parametrize("name,params", [case for case in CASES if case[0] != "grid25_pairs"])
def test_restorers_give_the_same_samples_with_structured_and_dense_svds(name, params):
    # (grid25_pairs decomposes through dense_svd itself: it is its own dense twin, nothing to compare)
    for restorer in SPECTRAL_RESTORERS:
        structured = run_restorer(restorer, build(name, params))
        dense = run_restorer(restorer, dense_twin(name, params))
        assert torch.isfinite(structured).all() and structured.dtype == torch.float64
        assert close(structured, dense), (restorer, (structured - dense).abs().max().item())


@pytest.mark.parametrize("name,params", [("sr_bicubic", {"factor": 2}), ("deblur_motion", {"kernel_size": 5,
                                                                                          "intensity": 0.5})])
def test_structured_restorers_run_in_float32(name, params):
    for restorer in SPECTRAL_RESTORERS:
        samples = run_restorer(restorer, build(name, params), dtype=torch.float32)
        assert samples.dtype == torch.float32 and torch.isfinite(samples).all(), restorer


@pytest.mark.parametrize("name,params", [("sr_bicubic", {"factor": 4}), ("sr_avgpool", {"factor": 4}),
                                         ("inpaint_random", {"missing": 0.92}),
                                         ("deblur_gaussian", {"kernel_size": 9, "std": 2.0})])
def test_structured_svd_works_at_256_where_the_dense_matrix_is_refused(name, params):
    operator = build(name, params, shape=(3, 256, 256))
    m = operator.dim if name != "sr_bicubic" and name != "sr_avgpool" else 3 * 64 * 64
    with pytest.raises(ValueError, match=rf"shape \(3, 256, 256\) would be {m} x 196608 \(.* GiB in float64\)"):
        operator.matrix()
    x = torch.randn(1, *operator.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    svd = operator.svd()
    assert close(svd.u(svd.s * svd.vt(x)), operator.forward(x))
    # A A^+ A x = A x
    assert close(operator.forward(svd.pseudo_inverse(operator.forward(x))), operator.forward(x), tol=1e-8)
