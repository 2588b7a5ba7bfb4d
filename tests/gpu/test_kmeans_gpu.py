"""curata.curate.kmeans / kmeans_plus_plus_init on CUDA tensors and CuPy arrays (the torch path)."""

from __future__ import annotations

import numpy as np
import pytest

from curata import curate

pytestmark = pytest.mark.gpu


def _blobs(seed, n_blobs, n, d):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_blobs, d)) * 10.0
    return centres[rng.integers(0, n_blobs, n)] + rng.standard_normal((n, d))


def _nearest64(x, c):
    x = np.asarray(x, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    d = (x * x).sum(1)[:, None] - 2.0 * x @ c.T + (c * c).sum(1)[None, :]
    return np.argmin(d, axis=1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kmeans_on_cuda_matches_host(torch_cuda, dtype):
    torch = torch_cuda
    x = _blobs(0, 16, 20000, 32).astype(dtype)
    want = curate.kmeans(x, 16, seed=5)
    got = curate.kmeans(torch.from_numpy(x).cuda(), 16, seed=5)
    assert got.labels.is_cuda and got.centroids.is_cuda and got.labels.dtype == torch.int64
    np.testing.assert_array_equal(
        curate.kmeans_plus_plus_init(torch.from_numpy(x).cuda(), 16, seed=5).cpu().numpy(),
        curate.kmeans_plus_plus_init(x, 16, seed=5),
    )
    np.testing.assert_array_equal(got.labels.cpu().numpy(), want.labels)
    assert got.n_iter == want.n_iter
    np.testing.assert_allclose(got.centroids.cpu().numpy(), want.centroids, rtol=0,
                               atol=(1e-4 if dtype == np.float32 else 1e-11))
    assert got.inertia == pytest.approx(want.inertia, rel=1e-6)
    np.testing.assert_array_equal(got.labels.cpu().numpy(), _nearest64(x, got.centroids.cpu().numpy()))


def test_kmeans_cuda_random_data_and_tf32(torch_cuda):
    """Random data (many near-ties) under the default flags and with TF32 enabled: labels are the
    float64 nearest centroids either way (the bound and re-check), the seeding is the host's."""
    torch = torch_cuda
    x = np.random.default_rng(1).standard_normal((50000, 64)).astype(np.float32)
    xt = torch.from_numpy(x).cuda()
    init = curate.kmeans_plus_plus_init(x, 64, seed=0)
    before = torch.backends.cuda.matmul.allow_tf32
    for tf32 in (False, True):
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            got = curate.kmeans(xt, 64, n_iter=5, seed=0)
            got_init = curate.kmeans_plus_plus_init(xt, 64, seed=0)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = before
        np.testing.assert_array_equal(got_init.cpu().numpy(), init)
        np.testing.assert_array_equal(got.labels.cpu().numpy(), _nearest64(x, got.centroids.cpu().numpy()))


def test_kmeans_cuda_matches_cpu_torch_path(torch_cuda):
    torch = torch_cuda
    from curata import _kmeans_device as kd

    x = _blobs(2, 10, 8000, 24).astype(np.float32)
    cpu = kd.kmeans_torch(torch.from_numpy(x), 10, seed=3)
    gpu = kd.kmeans_torch(torch.from_numpy(x).cuda(), 10, seed=3)
    np.testing.assert_array_equal(gpu.labels.cpu().numpy(), cpu.labels.numpy())
    np.testing.assert_allclose(gpu.centroids.cpu().numpy(), cpu.centroids.numpy(), rtol=0, atol=1e-4)


def test_kmeans_cupy(torch_cuda):
    cupy = pytest.importorskip("cupy")
    x = _blobs(3, 8, 5000, 16).astype(np.float32)
    got = curate.kmeans(cupy.asarray(x), 8, seed=1)
    assert isinstance(got.labels, cupy.ndarray) and isinstance(got.centroids, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(got.labels), curate.kmeans(x, 8, seed=1).labels)
    init = curate.kmeans_plus_plus_init(cupy.asarray(x), 8, seed=1)
    assert isinstance(init, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(init), curate.kmeans_plus_plus_init(x, 8, seed=1))
