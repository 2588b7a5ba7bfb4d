"""The device path of curata.drift on CUDA tensors against the host path on the same data.

Every test needs a CUDA device (``@pytest.mark.gpu``: skipped without one, a failure with
``CURATA_REQUIRE_GPU=1``). Inputs are generated on the host, copied to the device, and the
results compared with the host path (the C++ core) on the host copies:

* per-column tests: statistics, p-values, locations and methods bit for bit (Wasserstein and
  energy are float64 sums in another order: 1e-13 relative), with ties, NaN (including NaN with
  the sign bit, which a radix sort puts first), infinities, float32/float64, n != m;
* results come back on the input's device; errors are the host path's;
* MMD: float64 within 1e-12 of the host core with the same permutations; float32 within
  2e-3 / min(n, m) (TF32 rounding of the kernel values in the label GEMM);
* CuPy input (through DLPack) when CuPy is installed.
"""

from __future__ import annotations

import numpy as np
import pytest

from curata import drift

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.gpu
TESTS = ("ks", "cramervonmises", "mannwhitneyu", "wasserstein", "energy")
RTOL_SUM = 1e-13


@pytest.fixture
def cuda():
    if not torch.cuda.is_available():
        pytest.skip("torch is installed without a usable CUDA device")
    return torch.device("cuda", torch.cuda.current_device())


def dev(a, device):
    return torch.from_numpy(np.array(a, copy=True)).to(device)


def host(v):
    return v.cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v)


def assert_results_equal(got, expect, name, device):
    assert isinstance(got.statistic, torch.Tensor) and got.statistic.device == device
    rtol = RTOL_SUM if name in ("wasserstein", "energy") else 0.0
    np.testing.assert_allclose(host(got.statistic), expect.statistic, rtol=rtol, atol=0, equal_nan=True, err_msg=name)
    for key in ("n_ref", "n_cur", "nan_ref", "nan_cur"):
        np.testing.assert_array_equal(getattr(got, key), getattr(expect, key), err_msg=f"{name} {key}")
    if hasattr(expect, "pvalue"):
        np.testing.assert_array_equal(host(got.pvalue), expect.pvalue, err_msg=f"{name} pvalue")
        np.testing.assert_array_equal(got.method, expect.method)
    if name == "ks":
        np.testing.assert_array_equal(host(got.statistic_location), expect.statistic_location)
        np.testing.assert_array_equal(host(got.statistic_sign), expect.statistic_sign)


def data(seed, n, m, d, dtype, ties):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) + 0.1
    if ties:
        x, y = np.round(x * 2) / 2, np.round(y * 2) / 2
    return x.astype(dtype), y.astype(dtype)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ties", [False, True])
def test_column_tests_match_host(cuda, seed, dtype, ties):
    x, y = data(seed, 3000, 2100, 7, dtype, ties)
    x[:, 0] = 1.0  # constant
    y[:, 0] = 1.0
    for name in TESTS:
        expect = getattr(drift, name)(x, y)
        assert_results_equal(getattr(drift, name)(dev(x, cuda), dev(y, cuda)), expect, name, cuda)
    both = drift.column_tests(dev(x, cuda), dev(y, cuda))
    for name in TESTS:
        assert_results_equal(both[name], getattr(drift, name)(x, y), name, cuda)


def test_small_and_exact_paths_match_host(cuda):
    for n, m in ((1, 1), (2, 3), (7, 9), (20, 15)):
        x, y = data(n * 31 + m, n, m, 3, np.float64, True)
        for name in ("ks", "mannwhitneyu", "wasserstein", "energy"):
            assert_results_equal(getattr(drift, name)(dev(x, cuda), dev(y, cuda)), getattr(drift, name)(x, y), name, cuda)
        if n >= 2:
            got = drift.cramervonmises(dev(x, cuda), dev(y, cuda))
            assert_results_equal(got, drift.cramervonmises(x, y), "cramervonmises", cuda)


def test_nan_and_infinities_match_host(cuda):
    x, y = data(5, 400, 300, 5, np.float64, True)
    rng = np.random.default_rng(9)
    x[rng.random(x.shape) < 0.1] = np.nan
    y[rng.random(y.shape) < 0.1] = np.nan
    neg_nan = np.frombuffer(np.array([0xFFF8000000000000], dtype=np.uint64).tobytes(), dtype=np.float64)[0]
    x[:20, 1] = neg_nan  # sign-bit NaN: first in a radix sort unless made positive
    x[:3, 2], y[:2, 2] = np.inf, np.inf
    y[:4, 3] = -np.inf
    for name in TESTS:
        expect = getattr(drift, name)(x, y, nan_policy="omit")
        assert_results_equal(getattr(drift, name)(dev(x, cuda), dev(y, cuda), nan_policy="omit"), expect, name, cuda)
    with pytest.raises(ValueError) as host_err:
        drift.ks(x, y)
    with pytest.raises(ValueError) as dev_err:
        drift.ks(dev(x, cuda), dev(y, cuda))
    assert str(dev_err.value) == str(host_err.value)


def test_chunked_columns_match_host(cuda, monkeypatch):
    from curata import _drift_device

    monkeypatch.setattr(_drift_device, "COLUMN_WORKSPACE_BYTES", 3 * _drift_device.BYTES_PER_VALUE * 5000)
    x, y = data(3, 2600, 2400, 10, np.float32, True)
    for name in TESTS:
        assert_results_equal(getattr(drift, name)(dev(x, cuda), dev(y, cuda)), getattr(drift, name)(x, y), name, cuda)


@pytest.mark.parametrize("n,m", [(300, 257), (1500, 900)])
def test_mmd_matches_host(cuda, n, m):
    x, y = data(n, n, m, 6, np.float32, False)
    expect = drift.mmd(x, y, n_permutations=50, seed=2)
    got = drift.mmd(dev(x, cuda), dev(y, cuda), n_permutations=50, seed=2)
    assert got.bandwidth == expect.bandwidth
    assert abs(got.statistic - expect.statistic) < 1e-12
    np.testing.assert_allclose(got.null_statistics, expect.null_statistics, rtol=0, atol=1e-12)
    assert got.pvalue == expect.pvalue
    # float32: TF32 rounds each kernel value to ~5e-4 relative in the label GEMM; the rounding
    # errors average out over the ~n^2 terms of each statistic, leaving ~1e-4 / n.
    fast = drift.mmd(dev(x, cuda), dev(y, cuda), n_permutations=50, seed=2, precision="float32")
    tol = 2e-3 / min(n, m)
    assert abs(fast.statistic - expect.statistic) < tol
    np.testing.assert_allclose(fast.null_statistics, expect.null_statistics, rtol=0, atol=tol)


def test_mmd_blocks_match_host(cuda):
    from curata import _core, _drift_device

    x, y = data(4, 700, 650, 33, np.float64, False)
    labels = drift.permutation_labels(700, 650, 25, seed=1)
    expect = np.asarray(_core.drift_mmd(x, y, labels, 3.0))
    for tile in (128, 300, None):
        got = _drift_device.mmd_statistics(dev(x, cuda), dev(y, cuda), labels, 3.0, tile=tile)
        np.testing.assert_allclose(got, expect, rtol=0, atol=1e-12)


def test_cupy_input(cuda):
    cupy = pytest.importorskip("cupy")
    x, y = data(8, 500, 450, 4, np.float32, True)
    got = drift.ks(cupy.asarray(x), cupy.asarray(y))
    expect = drift.ks(x, y)
    assert isinstance(got.statistic, cupy.ndarray)
    np.testing.assert_array_equal(cupy.asnumpy(got.pvalue), expect.pvalue)
    r = drift.mmd(cupy.asarray(x), cupy.asarray(y), n_permutations=20)
    assert abs(r.statistic - drift.mmd(x, y, n_permutations=20).statistic) < 1e-12
