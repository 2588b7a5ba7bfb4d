"""The torch device path of curata.drift (curata._drift_device), run on CPU torch tensors.

The code is device-agnostic torch, so everything the GPU runs is exercised here on the CPU:

* ``column_summaries`` + the core's ``*_from_summaries`` against the core's own ``drift_*``
  (statistics, p-values, locations, signs, methods bit for bit; the float64 sums of Wasserstein and
  energy to 1e-13 relative) and against scipy.stats;
* the public functions with the device path forced (``wants_device`` patched), against the
  host path on the same numpy data: results, counts, errors, warnings, output kinds;
* MMD: ``mmd_statistics`` against the core's ``drift_mmd`` with the same labellings, several
  block sizes; ``drift.mmd`` end to end (median bandwidth subsample, permutations, p-value).

tests/gpu/test_drift_gpu.py repeats the comparisons with CUDA tensors.
"""

from __future__ import annotations

import logging
import math
import warnings

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from curata import _core, _drift_device, drift

torch = pytest.importorskip("torch")
stats = pytest.importorskip("scipy.stats")

RTOL_SUM = 1e-13  # float64 sums in a different order than the core's extended-precision sum
# MMD: the squared distances come from one folded GEMM (-(|x|^2 + |y|^2 - 2 x.y) / (2 sigma^2)) and
# torch's exp, the core's from its own dot products and exp: rounding-level differences per kernel
# value, ~1e-13 on a statistic of tiny samples (where 1 / (m (m - 1)) is large).
MMD_ATOL = 1e-12


def t(a):
    return torch.from_numpy(np.array(a, copy=True))


def summaries(x, y, nan=0, min_size=1, **kw):
    return _drift_device.column_summaries(t(x), t(y), nan_policy=nan, min_size=min_size, **kw)


def assert_same(a, b, what=""):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=what)


def check_against_core(x, y, nan=0, **kw):
    """Every statistic and p-value of the device summaries equals the core's on numpy input."""
    a, b = np.ascontiguousarray(x), np.ascontiguousarray(y)
    rows = min(a.shape[0] if a.ndim > 1 else a.size, b.shape[0] if b.ndim > 1 else b.size)
    s = summaries(x, y, nan, min_size=1, **kw)
    a2, b2 = (a.reshape(-1, 1), b.reshape(-1, 1)) if a.ndim == 1 else (a, b)
    for alt in (0, 1, 2):
        for meth in (0, 1, 2):
            r1 = _core.drift_ks(a2, b2, alt, meth, nan)
            r2 = _core.drift_ks_from_summaries(s, alt, meth)
            for k in ("statistic", "pvalue", "location", "sign", "exact", "fell_back", "n_ref", "n_cur", "nan_ref", "nan_cur"):
                assert_same(r2[k], r1[k], f"ks {k} alt={alt} method={meth}")
            r1 = _core.drift_mwu(a2, b2, alt, meth, True, nan)
            r2 = _core.drift_mwu_from_summaries(s, alt, meth, True)
            for k in ("statistic", "pvalue", "exact"):
                assert_same(r2[k], r1[k], f"mwu {k} alt={alt} method={meth}")
    r1 = _core.drift_mwu(a2, b2, 0, 2, False, nan)
    r2 = _core.drift_mwu_from_summaries(s, 0, 2, False)
    assert_same(r2["pvalue"], r1["pvalue"], "mwu no continuity")
    if rows >= 2 and np.all(s["n_ref"] >= 2) and np.all(s["n_cur"] >= 2):
        r1 = _core.drift_cvm(a2, b2, 2, nan)
        r2 = _core.drift_cvm_from_summaries(s, 2)
        assert_same(r2["statistic"], r1["statistic"], "cvm statistic")
        # The exact 4U (uint64 limbs) and U rounded once are the core's, bit for bit.
        host = _core.drift_summaries(a2, b2, 2, nan, 2, "cramervonmises")
        for k in ("cvm_u4_hi", "cvm_u4_lo", "cvm_u"):
            assert_same(s[k], host[k], f"cvm summary {k}")
        if max(a2.shape[0], b2.shape[0]) <= 12:
            r1 = _core.drift_cvm(a2, b2, 1, nan)
            r2 = _core.drift_cvm_from_summaries(s, 1)
            assert_same(r2["pvalue"], r1["pvalue"], "cvm exact p-value")
    r1 = _core.drift_distances(a2, b2, 24, nan)
    np.testing.assert_allclose(s["wasserstein"], r1["wasserstein"], rtol=RTOL_SUM, atol=0, equal_nan=True)
    np.testing.assert_allclose(s["energy"], r1["energy"], rtol=RTOL_SUM, atol=0, equal_nan=True)
    return s


# ------------------------------------------------------------------------------ per column
@pytest.mark.parametrize("n,m", [(1, 1), (1, 5), (2, 2), (3, 8), (17, 5), (40, 40), (200, 131)])
def test_continuous_columns_match_core(rng, n, m):
    x = rng.normal(size=(n, 4))
    y = rng.normal(size=(m, 4)) + np.array([0.0, 0.3, -1.0, 2.0])
    check_against_core(x, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_heavy_ties_and_constant_columns_match_core(rng, dtype):
    x = rng.integers(0, 4, size=(60, 5)).astype(dtype)
    y = rng.integers(1, 6, size=(45, 5)).astype(dtype)
    x[:, 0] = 3.0
    y[:, 0] = 3.0  # the same constant in both: one run
    x[:, 1] = 1.0
    y[:, 1] = 2.0  # two constants: D = 1
    x[:, 2] = -0.0
    y[:5, 2] = 0.0  # -0.0 and +0.0 tie; the location is reported as +0.0
    s = check_against_core(x, y)
    assert s["gap_max"][1] == 1.0
    assert math.copysign(1.0, s["gap_max_at"][2]) == 1.0 and math.copysign(1.0, s["gap_min_at"][2]) == 1.0


def test_infinities_match_core(rng):
    x = rng.normal(size=(30, 3))
    y = rng.normal(size=(25, 3))
    x[:3, 0] = np.inf
    y[:2, 0] = np.inf  # repeated +inf: NaN Wasserstein, as the core and scipy
    x[:4, 1] = -np.inf
    y[:1, 2] = np.inf  # a single infinity: infinite distance
    check_against_core(x, y)


def test_nan_omit_matches_core(rng):
    x = rng.integers(0, 5, size=(40, 6)).astype(np.float64)
    y = rng.integers(0, 5, size=(33, 6)).astype(np.float64)
    x[rng.random(x.shape) < 0.2] = np.nan
    y[rng.random(y.shape) < 0.2] = np.nan
    y[:, 3] = np.nan
    y[:2, 3] = [1.0, -np.inf]
    neg_nan = np.frombuffer(np.array([0xFFF8000000000000], dtype=np.uint64).tobytes(), dtype=np.float64)[0]
    x[0, 4] = neg_nan  # a NaN with the sign bit (sorts first in a radix sort)
    check_against_core(x, y, nan=1)


def test_chunks_and_split_sums_do_not_change_results(rng, monkeypatch):
    x = rng.integers(0, 7, size=(90, 11)).astype(np.float64)
    y = rng.integers(0, 9, size=(70, 11)).astype(np.float64)
    whole = summaries(x, y)
    one_column = summaries(x, y, workspace_bytes=1)  # a chunk per column
    monkeypatch.setattr(_drift_device, "_SPLIT", 3)
    monkeypatch.setattr(_drift_device, "_MASK", 7)
    monkeypatch.setattr(_drift_device, "_BIG_RUN", 4)  # long runs: t^3 - t on the host
    split = summaries(x, y, workspace_bytes=3 * _drift_device.BYTES_PER_VALUE * 160)  # 3 columns a chunk
    monkeypatch.setattr(_drift_device, "_INT32_LIMIT", 1)  # int64 positions and counts
    wide = summaries(x, y)
    for key, value in whole.items():
        assert_same(one_column[key], value, key)
        assert_same(split[key], value, key)
        assert_same(wide[key], value, key)


def test_large_rank_sums_are_exact():
    # U and the CvM sums exceed 2^53 in the core's 128-bit integers; one constant run of 3M
    # values has t^3 - t ~ 2.7e19 > int64 (summed on the host). Compared with exact Python ints.
    n = 1_500_000
    x = torch.zeros((n, 1), dtype=torch.float32)
    y = torch.zeros((n, 1), dtype=torch.float32)
    s = _drift_device.column_summaries(x, y, ("mwu",), workspace_bytes=1)
    N = 2 * n
    assert s["mwu_tie_sum"][0] == float(N**3 - N)
    assert s["mwu_u1"][0] == float(n * (N + 1)) / 2.0 - float(n * (n + 1)) / 2.0
    assert s["mwu_ties"][0] == 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int32, torch.int64])
def test_narrow_and_integer_dtypes_match_core(rng, dtype):
    x = torch.from_numpy(rng.integers(-20, 20, size=(50, 3))).to(dtype)
    y = torch.from_numpy(rng.integers(-15, 25, size=(41, 3))).to(dtype)
    s = _drift_device.column_summaries(x, y)
    a = x.double().numpy() if dtype != torch.int64 else x.numpy().astype(np.float64)
    b = y.double().numpy() if dtype != torch.int64 else y.numpy().astype(np.float64)
    expect = summaries(a, b)
    for key, value in expect.items():
        assert_same(s[key], value, key)


def test_non_contiguous_and_one_dimensional(rng):
    base = rng.normal(size=(8, 70))
    x = torch.from_numpy(base).t()[:, ::2]  # (70, 4) non-contiguous view
    y = torch.from_numpy(rng.normal(size=(8, 55))).t()[:, 1::2]
    s = _drift_device.column_summaries(x, y)
    expect = summaries(x.numpy().copy(), y.numpy().copy())
    for key, value in expect.items():
        assert_same(s[key], value, key)
    one = _drift_device.column_summaries(x[:, 0].contiguous(), y[:, 0].contiguous())
    assert one["gap_max"].shape == (1,) and one["gap_max"][0] == s["gap_max"][0]


def test_matches_scipy(rng):
    x = np.round(rng.normal(size=(80, 3)) * 2) / 2
    y = np.round(rng.normal(loc=0.2, size=(95, 3)) * 2) / 2
    s = summaries(x, y)
    ks = _core.drift_ks_from_summaries(s, 0, 0)
    mwu = _core.drift_mwu_from_summaries(s, 0, 2, True)
    for j in range(3):
        ref = stats.ks_2samp(x[:, j], y[:, j])
        np.testing.assert_allclose(ks["statistic"][j], ref.statistic, rtol=1e-12)
        np.testing.assert_allclose(ks["pvalue"][j], ref.pvalue, rtol=1e-10)
        ref = stats.mannwhitneyu(x[:, j], y[:, j], method="asymptotic")
        np.testing.assert_allclose(mwu["statistic"][j], ref.statistic, rtol=1e-12)
        np.testing.assert_allclose(mwu["pvalue"][j], ref.pvalue, rtol=1e-12)
        ref = stats.cramervonmises_2samp(x[:, j], y[:, j], method="asymptotic")
        np.testing.assert_allclose(_core.drift_cvm_from_summaries(s, 2)["statistic"][j], ref.statistic, rtol=1e-12)
        np.testing.assert_allclose(s["wasserstein"][j], stats.wasserstein_distance(x[:, j], y[:, j]), rtol=1e-12)
        np.testing.assert_allclose(s["energy"][j], stats.energy_distance(x[:, j], y[:, j]), rtol=1e-12)


@given(
    st.integers(1, 12),
    st.integers(1, 12),
    st.integers(1, 3),
    st.integers(0, 2**32 - 1),
    st.booleans(),
)
def test_fuzz_matches_core(n, m, d, seed, with_nan):
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=(n, d)).astype(np.float64)
    y = rng.integers(-3, 4, size=(m, d)).astype(np.float64)
    if with_nan:
        x[rng.random(x.shape) < 0.15] = np.nan
        y[rng.random(y.shape) < 0.15] = np.nan
        x[0], y[0] = 0.0, 1.0  # at least one value per column
    check_against_core(x, y, nan=1 if with_nan else 0)


# ------------------------------------------------------------------------------ public functions
@pytest.fixture
def device_path(monkeypatch):
    """Send CPU torch tensors through the device path, as CUDA tensors would be."""
    monkeypatch.setattr(_drift_device, "wants_device", lambda *arrays: True)


def _host_and_device(fn, x, y, **kw):
    host = fn(x, y, **kw)
    return host, fn(t(x), t(y), **kw)


@pytest.mark.parametrize("name", ["ks", "cramervonmises", "mannwhitneyu", "wasserstein", "energy"])
def test_public_functions_through_device_path(rng, device_path, name):
    x = np.round(rng.normal(size=(40, 5)), 1).astype(np.float32)
    y = np.round(rng.normal(loc=0.1, size=(33, 5)), 1).astype(np.float32)
    x[2, 1] = np.nan
    fn = getattr(drift, name)
    host, dev = _host_and_device(fn, x, y, nan_policy="omit")
    assert isinstance(dev.statistic, torch.Tensor) and dev.statistic.dtype == torch.float64
    rtol = RTOL_SUM if name in ("wasserstein", "energy") else 0.0
    np.testing.assert_allclose(dev.statistic.numpy(), host.statistic, rtol=rtol, atol=0)
    for key in ("n_ref", "n_cur", "nan_ref", "nan_cur"):
        assert_same(getattr(dev, key), getattr(host, key), key)
    if hasattr(host, "pvalue"):
        assert_same(dev.pvalue.numpy(), host.pvalue)
        assert_same(dev.method, host.method)
    if name == "ks":
        assert_same(dev.statistic_location.numpy(), host.statistic_location)
        assert_same(dev.statistic_sign.numpy(), host.statistic_sign)


def test_public_options_through_device_path(rng, device_path):
    x = rng.normal(size=(15, 3))
    y = rng.normal(size=(900, 3)) + 0.2
    for alternative in ("two-sided", "less", "greater"):
        for method in ("auto", "exact", "asymp"):
            h, d = _host_and_device(drift.ks, x, y, alternative=alternative, method=method)
            assert_same(d.pvalue.numpy(), h.pvalue)
        for method in ("auto", "exact", "asymptotic"):
            h, d = _host_and_device(drift.mannwhitneyu, x[:8], y[:7], alternative=alternative, method=method)
            assert_same(d.pvalue.numpy(), h.pvalue)
    h, d = _host_and_device(drift.cramervonmises, x[:6], y[:9], method="exact")
    assert_same(d.pvalue.numpy(), h.pvalue)


def test_ks_fallback_warning_through_device_path(rng, device_path, caplog):
    x = rng.normal(size=(46349, 1))  # lcm(n, m) > 2^31: no exact p-value
    y = rng.normal(size=(46351, 1))
    with caplog.at_level(logging.WARNING, logger="curata.drift"):
        h, d = _host_and_device(drift.ks, x, y, method="exact")
    assert sum("exact p-value not possible" in r.message for r in caplog.records) == 2
    assert_same(d.pvalue.numpy(), h.pvalue)


def test_errors_through_device_path(rng, device_path):
    x = rng.normal(size=(10, 4))
    y = rng.normal(size=(9, 4))
    x[3, 2] = np.nan
    y[1, 1] = np.nan
    for fn in (drift.ks, drift.wasserstein):
        with pytest.raises(ValueError) as host:
            fn(x, y)
        with pytest.raises(ValueError) as dev:
            fn(t(x), t(y))
        assert str(dev.value) == str(host.value) and "column 1" in str(dev.value)
    x2 = x.copy()
    x2[1:, 0] = np.nan  # one value left in column 0 of ref
    with pytest.raises(ValueError) as host:
        drift.cramervonmises(x2, y, nan_policy="omit")
    with pytest.raises(ValueError) as dev:
        drift.cramervonmises(t(x2), t(y), nan_policy="omit")
    assert str(dev.value) == str(host.value)
    for bad, expect in ((t(x[:, :3]), ValueError), (torch.zeros((3, 4), dtype=torch.bool), TypeError)):
        with pytest.raises(expect):
            drift.ks(bad, t(y))
    with pytest.raises(ValueError, match="at least 2 rows"):
        drift.cramervonmises(t(x[:1]), t(y))


def test_device_choice():
    x = torch.zeros((3, 2))
    assert not _drift_device.wants_device(x, np.zeros((3, 2)))  # CPU tensors use the core
    assert not _drift_device.wants_device(np.zeros(3), [1.0, 2.0])


# ------------------------------------------------------------------------------ MMD
@pytest.mark.parametrize("tile", [None, 64, 100, 557])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mmd_statistics_match_core(rng, tile, dtype):
    x = rng.normal(size=(300, 5)).astype(dtype)
    y = (rng.normal(size=(257, 5)) + 0.1).astype(dtype)
    labels = drift.permutation_labels(300, 257, 20, seed=3)
    expect = np.asarray(_core.drift_mmd(x, y, labels, 1.7))
    got = _drift_device.mmd_statistics(t(x), t(y), labels, 1.7, tile=tile)
    np.testing.assert_allclose(got, expect, rtol=0, atol=MMD_ATOL)


def test_mmd_statistics_float32_precision(rng):
    x = rng.normal(size=(200, 16)) + 50.0  # far from the origin: centring matters in float32
    y = rng.normal(size=(150, 16)) + 50.1
    labels = drift.permutation_labels(200, 150, 30, seed=0)
    expect = np.asarray(_core.drift_mmd(x, y, labels, 4.0))
    got = _drift_device.mmd_statistics(t(x), t(y), labels, 4.0, precision="float32", tile=128)
    np.testing.assert_allclose(got, expect, rtol=0, atol=2e-6)
    with pytest.raises(ValueError, match="precision"):
        _drift_device.mmd_statistics(t(x), t(y), labels, 4.0, precision="half")


@pytest.mark.parametrize("offset,scale", [(1e6, 1.0), (0.0, 1e-20), (0.0, 1e-30)])
def test_mmd_statistics_float32_offset_and_tiny_scale(rng, offset, scale):
    # precision="float32" cast float64 input to float32 before centring (an offset of 1e6 rounds
    # unit noise to multiples of 0.06) and scaled the kernel by 1 / (2 sigma^2) in float32, which
    # overflows for sigma below ~1e-19 (every statistic NaN). Now the blocks are centred from the
    # inputs and measured in units of sigma.
    x = rng.normal(size=(80, 3)) * scale + offset
    y = (rng.normal(size=(60, 3)) + 0.3) * scale + offset
    sigma = drift.median_bandwidth(x)
    labels = drift.permutation_labels(80, 60, 10, seed=2)
    expect = np.asarray(_core.drift_mmd(x, y, labels, sigma))
    got = _drift_device.mmd_statistics(t(x), t(y), labels, sigma, precision="float32", tile=64)
    np.testing.assert_allclose(got, expect, rtol=0, atol=2e-6)


def test_mmd_statistics_float32_makes_no_float64_copy_of_the_data(rng):
    # precision="float32" promises "one column block at a time so no float64 copy of the data
    # exists at once", but the column means came from a.to(float64).sum() and the norms from
    # z.to(float64) ** 2: whole float64 copies (8 GB each at 1M + 1M x 512). The largest single
    # allocation is now the float32 pooled data itself (torch profiler, CPU tensors).
    from torch.profiler import ProfilerActivity, profile

    # precision="float64" holds the pooled float64 data by design, but it was built by torch.cat of
    # two float64 copies and its norms from z * z: no allocation may exceed that one copy.
    n, m, d = 600, 400, 256
    x = t(rng.normal(size=(n, d)).astype(np.float32))
    y = t(rng.normal(size=(m, d)).astype(np.float32))
    labels = drift.permutation_labels(n, m, 3, seed=0)
    expect = np.asarray(_core.drift_mmd(x.numpy(), y.numpy(), labels, 20.0))
    for precision, itemsize, atol in (("float32", 4, 2e-6), ("float64", 8, 1e-12)):
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            got = _drift_device.mmd_statistics(x, y, labels, 20.0, precision=precision, tile=128)
        events = sorted((e.cpu_memory_usage for e in prof.events()), reverse=True)
        assert events[0] <= (n + m) * d * itemsize, (precision, events[:3])
        assert events[1] < (n + m) * d * itemsize, (precision, events[:3])  # only one such block
        np.testing.assert_allclose(got, expect, rtol=0, atol=atol)


def test_mmd_statistics_float64_far_from_the_origin(rng):
    # float64 blocks centre the data like the core: at an offset of 1e8 the uncentred expansion
    # |x|^2 + |y|^2 - 2 x.y leaves no correct digit of a unit-scale distance.
    x = rng.normal(size=(90, 3)) + 1e8
    y = rng.normal(size=(70, 3)) + 0.5 + 1e8
    labels = drift.permutation_labels(90, 70, 10, seed=1)
    z = np.vstack([x, y])
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    K = np.exp(-d2 / (2 * 1.5**2))
    expect = []
    for p in range(labels.shape[1]):
        a = labels[:, p].astype(bool)
        kxx, kyy, kxy = K[np.ix_(a, a)], K[np.ix_(~a, ~a)], K[np.ix_(a, ~a)]
        expect.append((kxx.sum() - 90) / (90 * 89) + (kyy.sum() - 70) / (70 * 69) - 2 * kxy.mean())
    got = _drift_device.mmd_statistics(t(x), t(y), labels, 1.5, tile=64)
    np.testing.assert_allclose(got, expect, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.asarray(_core.drift_mmd(x, y, labels, 1.5)), expect, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n,m", [(40, 37), (1100, 60)])  # 1100 > 1000: seeded median subsample
def test_mmd_end_to_end_through_device_path(rng, device_path, n, m):
    x = rng.normal(size=(n, 3))
    y = rng.normal(size=(m, 3)) + 0.3
    host = drift.mmd(x, y, n_permutations=40, seed=5)
    dev = drift.mmd(t(x), t(y), n_permutations=40, seed=5)
    assert dev.bandwidth == host.bandwidth
    assert abs(dev.statistic - host.statistic) < MMD_ATOL
    np.testing.assert_allclose(dev.null_statistics, host.null_statistics, rtol=0, atol=MMD_ATOL)
    assert dev.pvalue == host.pvalue
    fixed = drift.mmd(t(x), t(y), bandwidth=2.0, n_permutations=10, precision="float32")
    assert abs(fixed.statistic - drift.mmd(x, y, bandwidth=2.0, n_permutations=10).statistic) < 1e-6


def test_mmd_errors_through_device_path(rng, device_path):
    x = rng.normal(size=(20, 3))
    y = rng.normal(size=(20, 3))
    y[4, 1] = np.inf
    with pytest.raises(ValueError, match="cur must be finite, got inf"):
        drift.mmd(t(x), t(y))
    with pytest.raises(ValueError, match="precision"):
        drift.mmd(t(x), t(x), precision="float16")
    with pytest.raises(ValueError, match="at least 2 rows"):
        drift.mmd(t(x[:1]), t(x))


# ------------------------------------------------------------------------------ column_tests
@pytest.mark.parametrize("on_device", [False, True])
def test_column_tests_equal_single_tests(rng, monkeypatch, on_device):
    if on_device:
        monkeypatch.setattr(_drift_device, "wants_device", lambda *arrays: True)
    x = np.round(rng.normal(size=(50, 4)), 1)
    y = np.round(rng.normal(loc=0.2, size=(61, 4)), 1)
    x[5, 2] = np.nan
    inputs = (t(x), t(y)) if on_device else (x, y)
    got = drift.column_tests(*inputs, nan_policy="omit")
    assert list(got) == ["ks", "cramervonmises", "mannwhitneyu", "wasserstein", "energy"]
    for name, result in got.items():
        single = getattr(drift, name)(x, y, nan_policy="omit")  # host path, one test
        stat = result.statistic.numpy() if on_device else result.statistic
        rtol = RTOL_SUM if (on_device and name in ("wasserstein", "energy")) else 0.0
        np.testing.assert_allclose(stat, single.statistic, rtol=rtol, atol=0, err_msg=name)
        if hasattr(single, "pvalue"):
            p = result.pvalue.numpy() if on_device else result.pvalue
            assert_same(p, single.pvalue, name)
            assert_same(result.method, single.method, name)
        assert_same(result.nan_ref, single.nan_ref, name)
    only = drift.column_tests(*inputs, tests="wasserstein", nan_policy="omit")
    assert list(only) == ["wasserstein"]


def test_column_tests_errors(rng):
    x = rng.normal(size=(5, 2))
    with pytest.raises(ValueError, match="tests must hold names"):
        drift.column_tests(x, x, tests=("ks", "t-test"))
    with pytest.raises(ValueError, match="at least one"):
        drift.column_tests(x, x, tests=())
    with pytest.raises(ValueError, match="at least 2 rows"):
        drift.column_tests(x[:1], x)
    drift.column_tests(x[:1], x, tests=("ks",))  # one row is enough without cramervonmises


def test_tf32_switch_is_restored():
    matmul = torch.backends.cuda.matmul
    before = matmul.fp32_precision if hasattr(torch._C, "_get_fp32_precision_getter") else matmul.allow_tf32
    with _drift_device._tf32_matmul(torch, True) as switch:
        assert switch.restore is not None
    after = matmul.fp32_precision if hasattr(torch._C, "_get_fp32_precision_getter") else matmul.allow_tf32
    assert after == before
    with _drift_device._tf32_matmul(torch, False) as switch:
        assert switch.restore is None


@given(st.integers(2, 30), st.integers(2, 30), st.integers(1, 4), st.integers(8, 40), st.integers(0, 2**32 - 1))
def test_fuzz_mmd_blocks_match_core(n, m, d, tile, seed):
    rng = np.random.default_rng(seed)
    x = np.round(rng.normal(size=(n, d)), 1)  # rounded: duplicate rows (d2 = 0 off the diagonal)
    y = np.round(rng.normal(size=(m, d)) + 0.2, 1)
    labels = drift.permutation_labels(n, m, 5, seed=seed % 7)
    expect = np.asarray(_core.drift_mmd(x, y, labels, 0.9))
    got = _drift_device.mmd_statistics(t(x), t(y), labels, 0.9, tile=tile)
    np.testing.assert_allclose(got, expect, rtol=0, atol=MMD_ATOL)
