"""curata.search on CUDA tensors and CuPy arrays: the torch device path with cuBLAS GEMMs.

Needs a CUDA device (``@pytest.mark.gpu``). The contract checked is the same as on the CPU
(tests/test_search_device.py): results equal the float64 reference ranked by (float32 score,
lower index) up to one float32 step at near-ties, float16 bases are exact for the stored values
(the GEMM really runs in float16 here: mode "native16"), k above faiss's 2048 cap works, the
workspace bounds the peak memory, TF32 does not break exactness, and results come back as the
input's kind on the input's device.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from search_reference import assert_same_knn  # noqa: E402

from curata import search  # noqa: E402

pytestmark = pytest.mark.gpu
METRICS = ("ip", "l2", "cosine")


def _data(seed, n, m, d):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(np.float32), rng.standard_normal((m, d)).astype(np.float32)


@pytest.mark.parametrize("metric", METRICS)
def test_knn_on_cuda_tensors(torch_cuda, metric):
    torch = torch_cuda
    base, queries = _data(0, 20000, 300, 96)
    b, q = torch.from_numpy(base).cuda(), torch.from_numpy(queries).cuda()
    for k in (1, 10, 100):
        d, i = search.knn(b, q, k, metric)
        assert d.is_cuda and i.is_cuda and d.dtype == torch.float32 and i.dtype == torch.int64
        assert_same_knn(d.cpu().numpy(), i.cpu().numpy(), base, queries, k, metric)
        cd, ci = search.knn(base, queries, k, metric)  # C++ core
        assert np.mean(i.cpu().numpy() == ci) > 0.99


@pytest.mark.parametrize("metric", METRICS)
def test_knn_graph_on_cuda_tensors(torch_cuda, metric):
    torch = torch_cuda
    x, _ = _data(1, 6000, 1, 64)
    x[5] = x[9]
    d, i = search.knn_graph(torch.from_numpy(x).cuda(), 8, metric)
    assert d.is_cuda
    assert_same_knn(d.cpu().numpy(), i.cpu().numpy(), x, x, 8, metric, exclude_self=True)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_16bit_base_on_cuda_is_exact(torch_cuda, metric, dtype):
    torch = torch_cuda
    from curata import _search_device as sd

    base, queries = _data(2, 30000, 200, 128)
    b16 = torch.from_numpy(base).cuda().to(getattr(torch, dtype))
    rounded = b16.float().cpu().numpy()
    for margin in (None, 1):
        trace = {}
        d, i = sd.knn_torch(b16, torch.from_numpy(queries).cuda(), 50, metric, margin=margin, _trace=trace)
        assert trace["mode"] in ("native16", "upcast16")
        if hasattr(torch, "__version__") and tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 9):
            assert trace["mode"] == "native16"
        assert_same_knn(d.cpu().numpy(), i.cpu().numpy(), rounded, queries, 50, metric)
    # The public entry keeps a 16-bit CUDA base in 16 bits as well.
    d2, i2 = search.knn(b16, torch.from_numpy(queries).cuda(), 50, metric)
    assert torch.equal(i2, i)


def test_k_above_faiss_cap(torch_cuda):
    torch = torch_cuda
    base, queries = _data(3, 20000, 40, 64)
    b, q = torch.from_numpy(base).cuda(), torch.from_numpy(queries).cuda()
    for k in (3000, 8192):
        d, i = search.knn(b, q, k, "ip")
        assert tuple(i.shape) == (40, k)
        assert_same_knn(d.cpu().numpy(), i.cpu().numpy(), base, queries, k, "ip")


def test_tf32_allowed_stays_exact(torch_cuda):
    torch = torch_cuda
    from curata import _search_device as sd

    base, queries = _data(4, 20000, 100, 256)
    b, q = torch.from_numpy(base).cuda(), torch.from_numpy(queries).cuda()
    old = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        trace = {}
        d, i = sd.knn_torch(b, q, 20, "l2", _trace=trace)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old
    assert trace["eps_rel"] >= 2.0**-11
    assert_same_knn(d.cpu().numpy(), i.cpu().numpy(), base, queries, 20, "l2")


def test_peak_memory_within_workspace(torch_cuda):
    torch = torch_cuda
    from curata import _search_device as sd

    n, d, m, k = 400_000, 128, 4096, 100
    g = torch.Generator(device="cuda").manual_seed(0)
    b = torch.randn((n, d), device="cuda", generator=g).half()
    q = torch.randn((m, d), device="cuda", generator=g)
    ws = 64 << 20
    sd.knn_torch(b, q[:8], k, "l2", workspace_bytes=ws)  # warm up cuBLAS handles / workspaces
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    out = sd.knn_torch(b, q, k, "l2", workspace_bytes=ws)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    output = m * k * 12
    stats = 4 * n
    assert peak <= output + stats + ws + (4 << 20), (peak, output + stats + ws)
    assert tuple(out[1].shape) == (m, k)


def test_reduced_precision_flags_restored(torch_cuda):
    torch = torch_cuda
    m = torch.backends.cuda.matmul
    before = (m.allow_fp16_reduced_precision_reduction, m.allow_bf16_reduced_precision_reduction)
    base, queries = _data(5, 1000, 10, 32)
    search.knn(torch.from_numpy(base).cuda().half(), torch.from_numpy(queries).cuda(), 5, "ip")
    assert (m.allow_fp16_reduced_precision_reduction, m.allow_bf16_reduced_precision_reduction) == before


def test_errors_on_cuda(torch_cuda):
    torch = torch_cuda
    base, queries = _data(6, 50, 5, 8)
    base[7, 2] = np.nan
    with pytest.raises(ValueError, match="base must be finite, got NaN or infinity in row 7"):
        search.knn(torch.from_numpy(base).cuda(), torch.from_numpy(queries).cuda(), 3, "l2")
    with pytest.raises(ValueError, match="x must be finite, got NaN or infinity in row 7"):
        search.knn_graph(torch.from_numpy(base).cuda(), 3, "l2")
    with pytest.raises(ValueError, match=r"k must be in \[1, 50\]"):
        search.knn(torch.from_numpy(queries).cuda().repeat(10, 1), torch.from_numpy(queries).cuda(), 51, "l2")


def test_mixed_host_and_device_arguments(torch_cuda):
    torch = torch_cuda
    base, queries = _data(7, 3000, 20, 16)
    d, i = search.knn(torch.from_numpy(base).cuda(), queries, 5, "cosine")  # numpy queries
    assert isinstance(i, np.ndarray)
    assert_same_knn(d, i, base, queries, 5, "cosine")


def test_cupy_in_cupy_out(torch_cuda):
    cupy = pytest.importorskip("cupy")
    try:
        cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"CuPy without a usable device: {exc}")
    base, queries = _data(8, 10000, 64, 48)
    for metric in METRICS:
        d, i = search.knn(cupy.asarray(base), cupy.asarray(queries), 12, metric)
        assert isinstance(d, cupy.ndarray) and isinstance(i, cupy.ndarray)
        assert d.dtype == np.float32 and i.dtype == np.int64
        assert_same_knn(cupy.asnumpy(d), cupy.asnumpy(i), base, queries, 12, metric)
        gd, gi = search.knn_graph(cupy.asarray(base[:2000]), 4, metric)
        assert isinstance(gi, cupy.ndarray)
        assert_same_knn(cupy.asnumpy(gd), cupy.asnumpy(gi), base[:2000], base[:2000], 4, metric, exclude_self=True)
