"""curata.search.Index(device="cuda"): the table on the GPU, searched by knn_torch / range_torch.

Needs a CUDA device (``@pytest.mark.gpu``). The same contract as tests/test_index_device.py (which
runs this code on CPU torch tensors): bit-for-bit agreement with the CPU Index on small integer
vectors (every float32 product and sum exact), the float64 reference on random vectors, lazy
removal through the device mask, range hits decided by the exact re-check, save/load across
devices, results as the query's array kind and device.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from search_reference import knn_reference, scores64  # noqa: E402

from curata.search import Index  # noqa: E402

pytestmark = pytest.mark.gpu
METRICS = ("ip", "l2", "cosine")


def _pair(dim, metric, dtype="float32", compact=True):
    cpu = Index(dim, metric, dtype, device="cpu")
    gpu = Index(dim, metric, dtype, device="cuda")
    if not compact:
        cpu._compact_divisor = gpu._compact_divisor = 0
    return cpu, gpu


def _np(x):
    return x.cpu().numpy() if hasattr(x, "cpu") else np.asarray(x)


def _assert_same(a, b):
    for x, y in zip(a, b):
        np.testing.assert_array_equal(_np(x), _np(y))


def _ref_range(base, queries, radius, metric):
    s32 = scores64(base, queries, metric).astype(np.float32)
    hit = s32 <= np.float32(radius) if metric == "l2" else s32 >= np.float32(radius)
    lims = np.concatenate([[0], np.cumsum(hit.sum(axis=1))]).astype(np.int64)
    cols = np.concatenate([np.flatnonzero(h) for h in hit]).astype(np.int64)
    return lims, cols


def test_device_and_auto(torch_cuda):
    index = Index(8, device="cuda")
    assert index.device == "cuda" and index._table.data.is_cuda
    assert Index(8, device="auto").device == "cuda"


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_integer_data_bitwise_equal_to_cpu_index(torch_cuda, metric, dtype):
    rng = np.random.default_rng(0)
    cpu, gpu = _pair(32, metric, dtype, compact=False)
    x = rng.integers(-4, 5, size=(20000, 32)).astype(np.float32)
    ids = rng.permutation(40000)[:20000]
    for idx in (cpu, gpu):
        idx.add(x, ids)
        idx.remove(ids[::11])
    q = rng.integers(-4, 5, size=(200, 32)).astype(np.float32)
    for k in (1, 10, 500):
        _assert_same(cpu.search(q, k), gpu.search(q, k))
    for radius in (0.0, 10.0, 60.0):
        _assert_same(cpu.range_search(q, radius), gpu.range_search(q, radius))


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_random_data_against_reference(torch_cuda, metric, dtype):
    torch = torch_cuda
    rng = np.random.default_rng(1)
    _, gpu = _pair(96, metric, dtype, compact=False)
    x = rng.standard_normal((30000, 96)).astype(np.float32)
    gpu.add(x)
    gpu.remove(np.arange(0, 30000, 9))
    ids = gpu.ids
    table = gpu.reconstruct(ids)
    q = torch.from_numpy(rng.standard_normal((300, 96)).astype(np.float32)).cuda()
    d, i = gpu.search(q, 50)
    assert d.is_cuda and i.is_cuda
    rd, ri = knn_reference(table, q.cpu().numpy(), 50, metric)
    np.testing.assert_array_max_ulp(d.cpu().numpy(), rd, maxulp=1)
    assert np.mean(i.cpu().numpy() == ids[ri]) > 0.99
    s = scores64(table, q.cpu().numpy(), metric).astype(np.float32)
    radius = float(np.quantile(s, 0.02 if metric == "l2" else 0.98))
    lims, dist, hit = gpu.range_search(q, radius)
    rl, rc = _ref_range(table, q.cpu().numpy(), radius, metric)
    np.testing.assert_array_equal(lims.cpu().numpy(), rl)
    np.testing.assert_array_equal(hit.cpu().numpy(), ids[rc])


def test_save_load_across_devices(torch_cuda, tmp_path):
    rng = np.random.default_rng(2)
    cpu, gpu = _pair(16, "cosine", "float16")
    x = rng.standard_normal((5000, 16)).astype(np.float32)
    for idx in (cpu, gpu):
        idx.add(x)
        idx.remove(np.arange(0, 5000, 3))
    cpu.save(tmp_path / "c.idx")
    gpu.save(tmp_path / "g.idx")
    assert (tmp_path / "c.idx").read_bytes() == (tmp_path / "g.idx").read_bytes()
    back = Index.load(tmp_path / "c.idx", device="cuda")
    assert back.device == "cuda"
    q = rng.standard_normal((20, 16)).astype(np.float32)
    _assert_same(gpu.search(q, 7), back.search(q, 7))
