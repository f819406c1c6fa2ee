"""Random operators for vector data (random_matrix, random_projection, inpaint_random on flat data) at
d = 1000: their SVD is the matrix, their recipes hold, and every SVD-based restorer runs on them."""

import pytest
import torch

from diffsweep.restoration import operators as ops
from diffsweep.restoration.registry import OPERATORS

D = 1000
SPECTRAL_RESTORERS = ["ddrm", "diffpir", "pigdm", "replacement", "repaint", "ilvr", "ddnm", "ddnm_plus", "twisted_smc",
                      "red_diff", "daps"]


def build(name, params, shape=(D,), seed=0):
    family = OPERATORS.get(name)
    return family.build(shape, seed, family.resolve_knobs(params))


@pytest.fixture(scope="module")
def published():
    return build("random_matrix", {"measurements": 4, "noise": "uniform_max_singular"})


def test_random_matrix_svd_is_the_matrix_with_sorted_uniform_singular_values(published):
    svd, A = published.svd(), published.matrix()
    assert A.shape == (4, D) and published.measurement_shape == (4,)
    assert torch.allclose(svd.U @ torch.diag(svd.s[:4]) @ svd.Vh[:4], A, atol=1e-13)
    assert torch.allclose(svd.Vh @ svd.Vh.T, torch.eye(D, dtype=torch.float64), atol=1e-12)     # V orthogonal
    assert torch.allclose(svd.U @ svd.U.T, torch.eye(4, dtype=torch.float64), atol=1e-13)
    s = svd.s[:4]
    assert torch.all(s[:-1] >= s[1:]) and torch.all((s > 0) & (s < 1)) and torch.all(svd.s[4:] == 0)
    assert torch.allclose(torch.linalg.svdvals(A), s, atol=1e-13)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3, D, generator=generator, dtype=torch.float64)
    y = torch.randn(3, 4, generator=generator, dtype=torch.float64)
    assert abs((published.forward(x) * y).sum() - (x * published.adjoint(y)).sum()) <= 1e-12
    assert torch.allclose(svd.u(svd.s * svd.vt(x)), published.forward(x), atol=1e-13)


def test_published_noise_recipe_draws_its_std_below_the_largest_singular_value(published):
    again = build("random_matrix", {"measurements": 4, "noise": "uniform_max_singular"})
    other = build("random_matrix", {"measurements": 4, "noise": "uniform_max_singular"}, seed=1)
    assert 0 < published.drawn_noise_std < published.norm()
    assert published.drawn_noise_std == again.drawn_noise_std != other.drawn_noise_std
    assert ops.measurement_noise_std(published, 0.1) == published.drawn_noise_std
    plain = build("random_matrix", {"measurements": 4})
    assert plain.drawn_noise_std is None and ops.measurement_noise_std(plain, 0.1) == 0.1
    assert torch.equal(plain.matrix(), published.matrix())     # the noise is drawn after the operator
    assert float(published.arrays()["noise_std"]) == published.drawn_noise_std


def test_projection_has_orthonormal_rows_and_gaussian_recipe_keeps_the_matrix_spectrum():
    projection = build("random_projection", {"measurements": 200}).matrix()
    assert torch.allclose(projection @ projection.T, torch.eye(200, dtype=torch.float64), atol=1e-12)
    gaussian = build("random_matrix", {"measurements": 200, "singular_values": "gaussian"}).svd().s[:200]
    # Marchenko-Pastur: the singular values of a 200 x 1000 N(0, 1/d) matrix fill [1 - sqrt(0.2), 1 + sqrt(0.2)]
    assert 1 - 0.2 ** 0.5 - 0.05 < gaussian.min() and gaussian.max() < 1 + 0.2 ** 0.5 + 0.05


def test_measurements_beyond_the_dimension_are_refused_naming_the_knob():
    with pytest.raises(ValueError, match=r"measurements \(d_y\) must be between 1 and the data's dimension 8, got 9"):
        build("random_matrix", {"measurements": 9}, shape=(8,))


@pytest.mark.parametrize("name,params", [("random_matrix", {"measurements": 100, "noise": "uniform_max_singular"}),
                                         ("inpaint_random", {"missing": 0.5})])
def test_every_svd_restorer_runs_at_d_1000(name, params):
    from test_structured_operators import run_restorer

    operator = build(name, params)
    for restorer in SPECTRAL_RESTORERS:
        samples = run_restorer(restorer, operator, steps=2)
        assert samples.shape == (2, D) and torch.isfinite(samples).all(), restorer
