"""curata.curate.k_center_greedy on CUDA tensors and CuPy arrays (the torch path)."""

from __future__ import annotations

import numpy as np
import pytest

from curata import curate

pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_k_center_on_cuda_matches_host(torch_cuda, metric):
    torch = torch_cuda
    x = np.random.default_rng(0).standard_normal((20000, 64)).astype(np.float32)
    want = curate.k_center_greedy(x, 100, already_selected=np.array([3, 7]), metric=metric)
    got = curate.k_center_greedy(torch.from_numpy(x).cuda(), 100, already_selected=torch.tensor([3, 7]).cuda(),
                                 metric=metric)
    assert got.is_cuda and got.dtype == torch.int64
    np.testing.assert_array_equal(got.cpu().numpy(), want)
    from curata import _kcenter_device as kd

    cpu = kd.k_center_greedy_torch(torch.from_numpy(x), 100, already_selected=[3, 7], metric=metric)
    np.testing.assert_array_equal(got.cpu().numpy(), cpu.numpy())


def test_k_center_cupy(torch_cuda):
    cupy = pytest.importorskip("cupy")
    x = np.random.default_rng(1).standard_normal((5000, 32)).astype(np.float32)
    got = curate.k_center_greedy(cupy.asarray(x), 40)
    assert isinstance(got, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(got), curate.k_center_greedy(x, 40))
