"""curata.drift.mmd / mmd_linear against brute-force float64 numpy references written here."""

from __future__ import annotations

import math

import numpy as np
import pytest

import curata
from curata import _core, drift


# ------------------------------------------------------------------ independent references
def sq_dists(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1)


def mmd2_unbiased(x, y, sigma):
    kxx = np.exp(-sq_dists(x, x) / (2 * sigma**2))
    kyy = np.exp(-sq_dists(y, y) / (2 * sigma**2))
    kxy = np.exp(-sq_dists(x, y) / (2 * sigma**2))
    n, m = len(x), len(y)
    return (
        (kxx.sum() - np.trace(kxx)) / (n * (n - 1))
        + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
        - 2.0 * kxy.sum() / (n * m)
    )


def reference_mmd(x, y, sigma, B, seed):
    """Explicitly permuted labels: the documented recipe, one rng.permutation per draw."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    z = np.vstack([x, y])
    n = len(x)
    observed = mmd2_unbiased(x, y, sigma)
    rng = np.random.default_rng(seed)
    null = []
    for _ in range(B):
        perm = rng.permutation(len(z))
        null.append(mmd2_unbiased(z[perm[:n]], z[perm[n:]], sigma))
    null = np.array(null)
    return observed, null, (1 + np.sum(null >= observed - 1e-12)) / (1 + B)


def reference_median_sigma(x, seed):
    x = np.asarray(x, dtype=np.float64)
    if len(x) > 1000:
        x = x[np.random.default_rng([seed, 1]).choice(len(x), 1000, replace=False)]
    d2 = sq_dists(x, x)
    i, j = np.triu_indices(len(x), 1)
    return math.sqrt(np.median(d2[i, j]) / 2)


def close(ours, ref, what=""):
    np.testing.assert_allclose(ours, ref, rtol=1e-9, atol=1e-13, err_msg=what)


# ------------------------------------------------------------------ mmd
@pytest.mark.parametrize(
    "n,m,d",
    [(2, 2, 1), (2, 3, 1), (5, 3, 2), (40, 60, 3), (127, 2, 4), (128, 128, 5), (129, 130, 2), (100, 157, 20), (300, 50, 1)],
)
def test_mmd_matches_brute_force_permutations(n, m, d):
    rng = np.random.default_rng(n * 7 + m)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) + 0.4
    for bandwidth in ("median", 0.7):
        r = drift.mmd(x, y, bandwidth=bandwidth, n_permutations=23, seed=n)
        sigma = reference_median_sigma(x, n) if bandwidth == "median" else 0.7
        close(r.bandwidth, sigma, "bandwidth")
        obs, null, p = reference_mmd(x, y, sigma, 23, n)
        close(r.statistic, obs, "statistic")
        close(r.null_statistics, null, "null statistics")
        assert r.pvalue == p
        assert (r.n_ref, r.n_cur, r.kernel, r.method) == (n, m, "rbf", "permutation")


def _sq_dists_chunked(a, b):
    out = np.empty((len(a), len(b)))
    for i in range(0, len(a), 16):
        out[i : i + 16] = ((a[i : i + 16, None, :] - b[None, :, :]) ** 2).sum(-1)
    return out


@pytest.mark.parametrize("n,m,d", [(70, 61, 257), (129, 3, 300), (100, 157, 513), (130, 131, 255)])
def test_mmd_deep_features_match_brute_force(monkeypatch, n, m, d):
    # d > 256: the Gram tiles are summed over several feature passes, each reading the pooled rows
    # (stored once in panels) at an offset of the feature depth, as both operands; N not a multiple
    # of the 128-row tile, d not a multiple of the 256-feature pass. float32 and float64 input.
    # (the reference's pairwise differences, 16 rows at a time: (N, N, d) at once would be 100+ MB)
    monkeypatch.setitem(globals(), "sq_dists",
                        lambda a, b: _sq_dists_chunked(np.asarray(a, np.float64), np.asarray(b, np.float64)))
    rng = np.random.default_rng(n + m + d)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) + 0.05
    for dtype in (np.float64, np.float32):
        xs, ys = x.astype(dtype), y.astype(dtype)
        r = drift.mmd(xs, ys, bandwidth=20.0, n_permutations=7, seed=3)
        obs, null, p = reference_mmd(xs, ys, 20.0, 7, 3)
        close(r.statistic, obs, "statistic")
        close(r.null_statistics, null, "null statistics")
        assert r.pvalue == p


def test_mmd_float32_torch_noncontiguous_and_1d():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(70, 6)).astype(np.float32)
    y = (rng.normal(size=(90, 6)) + 0.2).astype(np.float32)
    obs, null, p = reference_mmd(x, y, 1.3, 10, 4)
    r = drift.mmd(x, y, bandwidth=1.3, n_permutations=10, seed=4)
    close(r.statistic, obs)
    close(r.null_statistics, null)
    xw = np.asfortranarray(np.repeat(x, 2, axis=1)[:, ::2])  # non-contiguous view, same values
    assert not xw.flags.c_contiguous
    r2 = drift.mmd(xw, y.astype(np.float64), bandwidth=1.3, n_permutations=10, seed=4)
    close(r2.statistic, obs)
    torch = pytest.importorskip("torch")
    r3 = drift.mmd(torch.from_numpy(x), torch.from_numpy(y), bandwidth=1.3, n_permutations=10, seed=4)
    close(r3.statistic, obs)
    # 1-D input is one column; float16 is computed in float64 after conversion.
    r4 = drift.mmd(x[:, 0], y[:, 0], bandwidth=0.5, n_permutations=5, seed=0)
    close(r4.statistic, reference_mmd(x[:, :1], y[:, :1], 0.5, 5, 0)[0])
    h = x[:, :2].astype(np.float16)
    r5 = drift.mmd(h, y[:, :2], bandwidth=0.5, n_permutations=5, seed=0)
    close(r5.statistic, reference_mmd(h.astype(np.float64), y[:, :2], 0.5, 5, 0)[0])


def test_mmd_median_bandwidth_subsample():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1100, 3)) * np.array([1.0, 2.0, 0.5])
    for seed in (0, 9):
        close(drift.median_bandwidth(x, seed), reference_median_sigma(x, seed))
    small = x[:40]
    close(drift.median_bandwidth(small), reference_median_sigma(small, 0))


@pytest.mark.parametrize("offset", [1e6, 1e8])
def test_mmd_and_median_bandwidth_far_from_the_origin(offset):
    # Distances are translation invariant; the |x|^2 + |y|^2 - 2 x.y expansion is not: unless the
    # data are centred first it cancels away the distances of data far from the origin (before the
    # fix: bandwidth 2.83 instead of 1.93 and MMD^2 off by 8 % at offset 1e8).
    rng = np.random.default_rng(12)
    x = rng.normal(size=(60, 4)) + offset
    y = rng.normal(size=(45, 4)) + 0.5 + offset
    sigma = reference_median_sigma(x, 0)
    close(drift.median_bandwidth(x), sigma, "median bandwidth")
    r = drift.mmd(x, y, n_permutations=15, seed=2)
    close(r.bandwidth, sigma, "bandwidth")
    obs, null, p = reference_mmd(x, y, sigma, 15, 2)
    close(r.statistic, obs, "statistic")
    close(r.null_statistics, null, "null statistics")
    assert r.pvalue == p
    fixed = drift.mmd(x, y, bandwidth=1.5, n_permutations=5, seed=2)
    close(fixed.statistic, reference_mmd(x, y, 1.5, 5, 2)[0], "statistic at a fixed bandwidth")


def test_mmd_deterministic_and_thread_independent():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 8))
    y = rng.normal(size=(280, 8))
    before = curata.get_num_threads() if hasattr(curata, "get_num_threads") else None
    try:
        curata.set_num_threads(1)
        a = drift.mmd(x, y, n_permutations=20, seed=5)
        curata.set_num_threads(2)
        b = drift.mmd(x, y, n_permutations=20, seed=5)
    finally:
        curata.set_num_threads(before or 0)
    assert a.statistic == b.statistic
    assert np.array_equal(a.null_statistics, b.null_statistics)
    c = drift.mmd(x, y, n_permutations=20, seed=6)
    assert not np.array_equal(a.null_statistics, c.null_statistics)


def test_mmd_symmetric_statistic_and_identical_samples():
    rng = np.random.default_rng(4)
    x = rng.normal(size=(50, 3))
    y = rng.normal(size=(70, 3)) + 1.0
    close(drift.mmd(x, y, bandwidth=1.0).statistic, drift.mmd(y, x, bandwidth=1.0).statistic)
    # Identical samples: the observed labelling is no more extreme than chance.
    r = drift.mmd(x, x.copy(), bandwidth=1.0, n_permutations=50)
    assert r.statistic < 0 and r.pvalue > 0.5


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_mmd_pvalue_calibration(seed):
    rng = np.random.default_rng(100 + seed)
    x = rng.normal(size=(120, 5))
    same = rng.normal(size=(110, 5))
    shifted = rng.normal(size=(110, 5)) + 0.6
    assert drift.mmd(x, same, n_permutations=200, seed=seed).pvalue > 0.01
    assert drift.mmd(x, shifted, n_permutations=200, seed=seed).pvalue == 1 / 201


def test_mmd_null_pvalues_roughly_uniform():
    ps = []
    for seed in range(20):
        rng = np.random.default_rng(500 + seed)
        ps.append(drift.mmd(rng.normal(size=(40, 2)), rng.normal(size=(40, 2)), n_permutations=99, seed=seed).pvalue)
    ps = np.array(ps)
    assert 0.2 < ps.mean() < 0.8
    assert np.mean(ps < 0.05) <= 0.2


def test_mmd_bad_input():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(10, 3))
    y = rng.normal(size=(12, 3))
    bad = x.copy()
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match="ref must be finite"):
        drift.mmd(bad, y)
    with pytest.raises(ValueError, match="cur must be finite"):
        drift.mmd(x, np.where(y > 1, np.inf, y))
    with pytest.raises(ValueError, match="same number of columns"):
        drift.mmd(x, y[:, :2])
    with pytest.raises(ValueError, match="n_permutations must be >= 1, got 0"):
        drift.mmd(x, y, n_permutations=0)
    with pytest.raises(TypeError, match="n_permutations"):
        drift.mmd(x, y, n_permutations=2.5)
    for bw in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="bandwidth"):
            drift.mmd(x, y, bandwidth=bw)
    with pytest.raises(ValueError, match="bandwidth"):
        drift.mmd(x, y, bandwidth="mean")
    with pytest.raises(TypeError, match="bandwidth"):
        drift.mmd(x, y, bandwidth=None)
    with pytest.raises(ValueError, match="ref must have at least 2 rows"):
        drift.mmd(x[:1], y)
    with pytest.raises(ValueError, match="cur must have at least 2 rows"):
        drift.mmd(x, y[:1])
    with pytest.raises(ValueError, match="kernel must be 'rbf'"):
        drift.mmd(x, y, kernel="laplacian")
    with pytest.raises(ValueError, match="shape"):
        drift.mmd(x[None], y)
    with pytest.raises(ValueError, match="median squared distance is 0"):
        drift.mmd(np.ones((5, 2)), y[:, :2])
    # The core checks its own preconditions too.
    labels = drift.permutation_labels(10, 12, 3, 0)
    labels[0, 1] ^= 1
    with pytest.raises(ValueError, match="labels column 1 must hold 10 ones"):
        _core.drift_mmd(x, y, labels, 1.0)
    with pytest.raises(ValueError, match="bandwidth must be a finite number > 0"):
        _core.drift_mmd(x, y, drift.permutation_labels(10, 12, 3, 0), 0.0)


def test_mmd_bandwidth_whose_kernel_scale_overflows():
    # sigma below ~1.05e-154: 1 / (2 sigma^2) overflows to inf and exp(-0 * inf) is NaN, so mmd
    # returned statistic NaN with p = 1 / (1 + B) (a "significant" result from nothing) and
    # mmd_linear raised ZeroDivisionError. Now a ValueError naming the bandwidth.
    rng = np.random.default_rng(6)
    x = rng.normal(size=(20, 2))
    y = rng.normal(size=(15, 2))
    for bw in (1e-160, 1e-200, 5e-324):
        for fn in (drift.mmd, drift.mmd_linear):
            with pytest.raises(ValueError, match=r"bandwidth must be >= 1\.05e-154"):
                fn(x, y, bandwidth=bw)
        with pytest.raises(ValueError, match="bandwidth must be a finite number > 0"):
            _core.drift_mmd(x, y, drift.permutation_labels(20, 15, 3, 0), bw)
    for fn in (drift.mmd, drift.mmd_linear):  # the median rule on data at the scale 1e-160
        with pytest.raises(ValueError, match="bandwidth='median' gives sigma"):
            fn(x * 1e-160, y * 1e-160)
    # just above the limit every off-diagonal kernel value underflows to 0 (distinct rows), the
    # exact diagonal is excluded: MMD^2 = 0, p = 1, as the brute-force reference says
    r = drift.mmd(x, y, bandwidth=1.1e-154, n_permutations=5)
    assert r.statistic == 0.0 and r.pvalue == 1.0
    with np.errstate(over="ignore"):
        assert mmd2_unbiased(x, y, 1.1e-154) == 0.0
    assert drift.mmd_linear(x, y, bandwidth=1.1e-154).statistic == 0.0


def test_exp_nonpositive_accuracy():
    xs = np.concatenate([-np.geomspace(1e-300, 708, 4000), [0.0, -0.0, -708.0, -708.5, -1e6, -np.inf]])
    ours = np.array([_core.drift_exp_nonpositive(v) for v in xs])
    # The RBF kernel uses the shared fast_math exp: ~1 ulp in the normal range, rounded once in the
    # subnormal range (below about -708), 0 below about -745 and at -inf.
    normal = xs >= -708.0
    np.testing.assert_allclose(ours[normal], np.exp(xs[normal]), rtol=4e-16 * 4, atol=0)
    np.testing.assert_allclose(ours[~normal], np.exp(xs[~normal]), rtol=0, atol=1e-322)
    assert _core.drift_exp_nonpositive(0.0) == 1.0


# ------------------------------------------------------------------ mmd_linear
def reference_linear(x, y, sigma):
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    k = min(len(x), len(y)) // 2

    def kern(a, b):
        return math.exp(-float(np.sum((a - b) ** 2)) / (2 * sigma**2))

    h = np.array(
        [
            kern(x[2 * i], x[2 * i + 1]) + kern(y[2 * i], y[2 * i + 1]) - kern(x[2 * i], y[2 * i + 1]) - kern(x[2 * i + 1], y[2 * i])
            for i in range(k)
        ]
    )
    stat = h.mean()
    se = h.std(ddof=1) / math.sqrt(k)
    return stat, se, 0.5 * math.erfc(stat / se / math.sqrt(2))


@pytest.mark.parametrize("n,m,d", [(4, 4, 1), (5, 9, 2), (200, 151, 6)])
def test_mmd_linear_matches_reference(n, m, d):
    rng = np.random.default_rng(n + m)
    x = rng.normal(size=(n, d))
    y = rng.normal(size=(m, d)) + 0.3
    r = drift.mmd_linear(x, y, bandwidth=1.1)
    stat, se, p = reference_linear(x, y, 1.1)
    close(r.statistic, stat)
    close(r.std, se)
    close(r.pvalue, p)
    assert r.n_ref == r.n_cur == 2 * (min(n, m) // 2) and r.method == "linear"
    rm = drift.mmd_linear(x, y)
    close(rm.bandwidth, reference_median_sigma(x, 0))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mmd_linear_calibration(seed):
    rng = np.random.default_rng(200 + seed)
    x = rng.normal(size=(4000, 4))
    assert drift.mmd_linear(x, rng.normal(size=(4000, 4))).pvalue > 0.01
    assert drift.mmd_linear(x, rng.normal(size=(4000, 4)) + 0.5).pvalue < 1e-6


def test_mmd_linear_bad_input():
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match="ref must have at least 4 rows"):
        drift.mmd_linear(x, np.ones((6, 2)))
    with pytest.raises(ValueError, match="bandwidth"):
        drift.mmd_linear(np.eye(6), np.eye(6), bandwidth=-2.0)
    with pytest.raises(ValueError, match="ref must be finite"):
        drift.mmd_linear(np.full((6, 2), np.nan), np.eye(6)[:, :2])


def test_permutation_labels_checks_its_sizes():
    # n = -1 returned a (2, 3) matrix whose observed column had one 1 (labels[:-1] = 1);
    # n_permutations = -1 raised IndexError; floats raised int()'s unnamed TypeError.
    for args, exc, match in (((-1, 3, 2), ValueError, "n must be >= 0, got -1"),
                             ((3, -5, 2), ValueError, "m must be >= 0, got -5"),
                             ((3, 3, -1), ValueError, "n_permutations must be >= 0, got -1"),
                             ((2.5, 3, 2), TypeError, "n must be an int"),
                             ((3, 3, 2.0), TypeError, "n_permutations must be an int"),
                             ((True, 3, 2), TypeError, "n must be an int")):
        with pytest.raises(exc, match=match):
            drift.permutation_labels(*args)
    lab = drift.permutation_labels(np.int64(3), 2, np.int32(4), seed=np.uint8(1))
    assert lab.shape == (5, 5) and (lab.sum(axis=0) == 3).all()


def test_seed_rules_are_the_same_everywhere():
    # Seeds go through one check (_array.check_seed). Before: seed=-1 leaked numpy's "expected
    # non-negative integer" (no argument named), None was a TypeError from int() in mmd and
    # silently random in c2st (breaking "same inputs and seed -> same result"), a float was
    # accepted by mmd but not by kmeans, and mmd_linear accepted anything.
    from curata import curate
    from curata.monitor import DriftMonitor

    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((40, 2)), rng.standard_normal((30, 2))
    calls = {
        "mmd": lambda s: drift.mmd(a, b, seed=s, n_permutations=5),
        "mmd_linear": lambda s: drift.mmd_linear(a, b, seed=s),
        "QuantileSketch": lambda s: drift.QuantileSketch(seed=s),
        # public helpers of mmd: seed=-1 leaked numpy's message, 1.5 was truncated to 1
        "median_bandwidth": lambda s: drift.median_bandwidth(rng.standard_normal((1100, 2)), seed=s),
        "permutation_labels": lambda s: drift.permutation_labels(3, 4, 2, seed=s),
        "kmeans": lambda s: curate.kmeans(a, 2, seed=s),
        "DriftMonitor": lambda s: DriftMonitor(a, seed=s, n_clusters=2),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"^seed must be >= 0, got -1$"):
            call(-1)
        for bad in (None, 1.0, True):
            with pytest.raises(TypeError, match=r"^seed must be an int"):
                call(bad)
        call(np.uint32(7))
        call(2**70)
    pytest.importorskip("sklearn")
    with pytest.raises(ValueError, match=r"^seed must be in \[0, 4294967295\], got -1$"):
        drift.c2st(a, b, seed=-1, n_permutations=5)
    with pytest.raises(TypeError, match=r"^seed must be an int, got NoneType$"):
        drift.c2st(a, b, seed=None, n_permutations=5)


def test_median_bandwidth_memory_is_that_of_the_subsample():
    # Documented memory O(s^2) with s = min(n, 1000): the rows are subsampled before the float64
    # conversion. Before the fix the whole float32 reference was converted first (a float64 copy
    # of 2x the input: 98 MiB here, for 1000 rows used).
    import tracemalloc

    x = np.random.default_rng(0).standard_normal((200_000, 64)).astype(np.float32)
    expected = drift.median_bandwidth(x.astype(np.float64))
    tracemalloc.start()
    try:
        got = drift.median_bandwidth(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got == expected
    assert peak < 32 * 2**20, peak / 2**20
