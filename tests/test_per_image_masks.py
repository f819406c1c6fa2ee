"""inpaint_random with `per_image: true`: one random mask per measured image (the reference code
draws one per image), next to the per-run mask. The batched operator, its adjoint and its pixel
selection SVD act row by row, and every restorer restores row j as it would with mask j alone."""

import pytest
import torch

from diffsweep import restoration
from diffsweep.restoration import operators as ops
from diffsweep.restoration.registry import OPERATORS
from test_structured_operators import close, run_restorer

IMAGE = (3, 8, 8)
RESTORERS = ["rw_conditional", "ddrm", "diffpir", "pigdm", "replacement", "repaint", "ilvr", "ddnm", "ddnm_plus",
             "twisted_smc", "red_diff", "daps"]


def inpainting(per_image, n=4, missing=0.75, seed=3):
    family = OPERATORS.get("inpaint_random")
    operator = family.build(IMAGE, seed, family.resolve_knobs({"missing": missing, "per_image": per_image}))
    return operator.for_measurements(n)


def test_per_image_masks_differ_share_channels_and_start_with_the_per_run_mask():
    batched, shared = inpainting(True), inpainting(False)
    masks = batched.mask
    assert masks.shape == (4, 1, 8, 8) and shared.mask.shape == (1, 8, 8)
    assert all(int((mask == 0).sum()) == round(0.75 * 64) for mask in masks)
    assert len({tuple(mask.flatten().tolist()) for mask in masks}) == 4
    assert torch.equal(masks[0], shared.mask)                     # the same seed draws the per-run mask first
    assert shared.for_measurements(7) is shared and shared.restrict(5) is shared


def test_batched_operator_adjoint_and_svd_act_row_by_row():
    operator = inpainting(True)
    generator = torch.Generator().manual_seed(0)
    x, y = (torch.randn(4, *IMAGE, generator=generator, dtype=torch.float64) for _ in range(2))
    Ax = operator.forward(x)
    assert close((Ax * y).sum(), (x * operator.adjoint(y)).sum())            # <A x, y> = <x, A^T y>
    svd = operator.svd()
    assert isinstance(svd, ops.PixelSelection) and svd.s.shape == (4, *IMAGE)
    assert close(svd.u(svd.s * svd.vt(x)), Ax) and close(svd.v(svd.s * svd.ut(y)), operator.adjoint(y))
    for j in range(4):
        single = operator.restrict(j)
        assert not single.per_row and close(single.forward(x[j:j + 1]), Ax[j:j + 1])
        pinv = torch.linalg.pinv(single.matrix(), rtol=1e-10)
        assert close(svd.pseudo_inverse(y)[j].flatten(), pinv @ y[j].flatten())
    repeated = operator.restrict(torch.arange(4).repeat_interleave(2))          # k = 2 samples per measurement
    assert torch.equal(repeated.mask[2 * 3 + 1], operator.mask[3])
    with pytest.raises(ValueError, match="a batch of 3 rows for 4 masks; take operator.restrict"):
        operator.forward(x[:3])


@pytest.mark.parametrize("restorer", RESTORERS)
def test_restorers_restore_each_row_with_its_own_mask(restorer):
    operator = inpainting(True)
    batched = run_restorer(restorer, operator, n=4)
    for j in range(4):
        alone = run_restorer(restorer, operator.restrict(j), n=4)         # the same draws, mask j for every row
        assert close(batched[j], alone[j]), (restorer, j, (batched[j] - alone[j]).abs().max().item())


def test_a_restoration_job_measures_and_restores_each_image_with_its_own_mask():
    from types import SimpleNamespace

    from diffsweep.runs.restoration import measure, restore
    from test_structured_operators import shrinking_denoiser
    task = {"operator": "inpaint_random", "operator_knobs": {"missing": 0.75, "per_image": True},
            "noise_std_effective": 0.1, "n_measurements": 3}
    run = {"task": task, "seed": 3, "family": "rw_conditional", "n_samples": 2, "schedule": "geometric", "steps": 4,
           "schedule_knobs": {}, "init": "unit", "init_knobs": {}, "knobs": {}}
    reference = torch.randn(5, *IMAGE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    operator, truth, y = measure(run, SimpleNamespace(shape=IMAGE), reference, torch.Generator().manual_seed(1))
    assert operator.mask.shape == (3, 1, 8, 8) and truth.shape == (3, *IMAGE)
    assert torch.equal(operator.mask[0], inpainting(False).mask)
    assert not torch.equal(operator.mask[1], operator.mask[0]) and y.shape == truth.shape
    run["knobs"] = restoration.get("rw_conditional").resolve_knobs({})
    samples, *_ = restore(run, shrinking_denoiser, operator, y, IMAGE, torch.float64, torch.device("cpu"))
    assert samples.shape == (6, *IMAGE) and torch.isfinite(samples).all()
