"""wbf, soft_nms and match with CUDA tensors: computed on the host, results back on the device.

These ops have no CUDA kernel; the contract checked is that device input is accepted, results
are the input's kind on the input's device, and they equal the CPU results bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from curata import boxes as B

pytestmark = pytest.mark.gpu


def _boxes(rng, n):
    xy = rng.random((n, 2)) * 0.8
    return np.concatenate([xy, xy + rng.random((n, 2)) * 0.2 + 0.01], axis=1)


def test_wbf_soft_nms_match_on_cuda_tensors(torch_cuda):
    torch = torch_cuda
    rng = np.random.default_rng(0)
    dev = torch.device("cuda")
    bl = [_boxes(rng, 30) for _ in range(3)]
    sl = [rng.random(30) for _ in range(3)]
    ll = [rng.integers(0, 3, 30) for _ in range(3)]
    want = B.wbf(bl, sl, ll)
    got = B.wbf([torch.from_numpy(b).to(dev) for b in bl], [torch.from_numpy(s).to(dev) for s in sl],
                [torch.from_numpy(v).to(dev) for v in ll])
    for g, w in zip(got, want):
        assert g.is_cuda
        np.testing.assert_array_equal(g.cpu().numpy(), w)

    b, s = _boxes(rng, 200), rng.random(200).astype(np.float32)
    want = B.soft_nms(b, s, method="gaussian")
    got = B.soft_nms(torch.from_numpy(b).to(dev), torch.from_numpy(s).to(dev), method="gaussian")
    assert got[0].is_cuda and got[1].dtype == torch.float32
    np.testing.assert_array_equal(got[0].cpu().numpy(), want[0])
    np.testing.assert_array_equal(got[1].cpu().numpy(), want[1])

    gt, gc = _boxes(rng, 20), rng.integers(0, 2, 20)
    pred, pc = _boxes(rng, 40), rng.integers(0, 2, 40)
    ps = rng.random(40)
    want = B.match(pred, ps, pc, gt, gc)
    got = B.match(*(torch.from_numpy(a).to(dev) for a in (pred, ps, pc, gt, gc)))
    assert got.pred_index.is_cuda
    np.testing.assert_array_equal(got.pred_index.cpu().numpy(), want.pred_index)
    np.testing.assert_array_equal(got.gt_index.cpu().numpy(), want.gt_index)
