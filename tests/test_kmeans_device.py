"""k-means' torch path (curata._kmeans_device) on CPU torch tensors vs the host path.

The device path draws the host's random numbers and follows the host's rules; its distances are
rounded differently, so the two agree exactly unless a step is within rounding of a boundary (a
k-means++ draw at a cumulative-weight boundary, a point between two nearly equidistant centroids).
The data below are chosen away from such boundaries (checked by the independent float64 judge).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curata import curate

torch = pytest.importorskip("torch")
from curata import _kmeans_device as kd  # noqa: E402


def _blobs(rng, n_blobs, n, d, spread=10.0, offset=0.0):
    centres = rng.standard_normal((n_blobs, d)) * spread + offset
    return centres[rng.integers(0, n_blobs, n)] + rng.standard_normal((n, d))


def _ref_labels(x, c):
    """float64 nearest centroid by explicit differences, first index on exact ties."""
    x = np.asarray(x, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    d = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(d, axis=1), d


def _ref_inertia(x, c, labels):
    x = np.asarray(x, dtype=np.float64)
    return float(((x - np.asarray(c, dtype=np.float64)[labels]) ** 2).sum())


def _check_same(x, k, seed=0, n_iter=25):
    want = curate.kmeans(x, k, n_iter=n_iter, seed=seed)
    got = kd.kmeans_torch(torch.from_numpy(x), k, n_iter=n_iter, seed=seed)
    assert isinstance(got.labels, torch.Tensor) and got.labels.dtype == torch.int64
    assert got.centroids.dtype == torch.from_numpy(want.centroids).dtype
    np.testing.assert_array_equal(got.labels.numpy(), want.labels)
    assert got.n_iter == want.n_iter
    tol = 1e-5 if x.dtype == np.float32 else 1e-12
    scale = max(1.0, float(np.abs(want.centroids).max()))
    np.testing.assert_allclose(got.centroids.numpy(), want.centroids, rtol=0, atol=tol * scale)
    assert got.inertia == pytest.approx(want.inertia, rel=1e-6)
    # Independent float64 judge: labels are the nearest centroids, inertia their distances.
    ref_lab, _ = _ref_labels(x, got.centroids.numpy())
    np.testing.assert_array_equal(got.labels.numpy(), ref_lab)
    assert got.inertia == pytest.approx(_ref_inertia(x, got.centroids.numpy(), ref_lab), rel=1e-6)
    return got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [1, 5, 12])
def test_separated_blobs_match_host(rng, dtype, k):
    x = _blobs(rng, 12, 3000, 16).astype(dtype)
    init_want = curate.kmeans_plus_plus_init(x, k, seed=7)
    init_got = kd.kmeans_plus_plus_init_torch(torch.from_numpy(x), k, seed=7)
    assert isinstance(init_got, torch.Tensor) and init_got.dtype == torch.int64
    np.testing.assert_array_equal(init_got.numpy(), init_want)
    _check_same(x, k, seed=7)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("k", "seed"), [(7, 3), (20, 3), (50, 1)])
def test_random_data_match_host(dtype, k, seed):
    x = np.random.default_rng(0).standard_normal((4000, 16)).astype(dtype)
    np.testing.assert_array_equal(
        kd.kmeans_plus_plus_init_torch(torch.from_numpy(x), k, seed=seed).numpy(),
        curate.kmeans_plus_plus_init(x, k, seed=seed),
    )
    _check_same(x, k, seed=seed)


def test_small_chunks_give_the_same_result(rng, monkeypatch):
    x = _blobs(rng, 6, 1500, 9).astype(np.float32)
    whole = kd.kmeans_torch(torch.from_numpy(x), 6, seed=2)
    monkeypatch.setattr(kd, "_BLOCK_ENTRIES", 37)  # 6 rows per assignment chunk
    monkeypatch.setattr(kd, "_UPDATE_ENTRIES", 50)  # 5 rows per index_add_ chunk
    monkeypatch.setattr(kd, "_EXACT_CHUNK", 20)
    small = _check_same(x, 6, seed=2)
    np.testing.assert_array_equal(small.labels.numpy(), whole.labels.numpy())
    np.testing.assert_array_equal(small.centroids.numpy(), whole.centroids.numpy())


def test_assign_exact_ties_go_to_lowest_index(monkeypatch):
    # Integer points and integer centroids: masses of exact ties, resolved by the float64 re-check.
    rng = np.random.default_rng(5)
    x = rng.integers(-3, 4, (600, 3)).astype(np.float32)
    c = np.array([[0, 0, 0], [1, 0, 0], [0, 0, 0], [-1, 1, 0], [1, 0, 0], [0, 2, -1]], dtype=np.float32)
    t = torch.from_numpy(x)
    sq = kd._row_sq(torch, t)
    monkeypatch.setattr(kd, "_BLOCK_ENTRIES", 500)
    lab, dist = kd._assign(torch, t, sq, torch.from_numpy(c), kd._gemm_eps(torch, t))
    want, d = _ref_labels(x, c)
    np.testing.assert_array_equal(lab.numpy(), want)
    np.testing.assert_array_equal(dist.numpy(), d[np.arange(600), want])
    assert np.count_nonzero(np.sort(d, axis=1)[:, 0] == np.sort(d, axis=1)[:, 1]) > 100  # ties were tested


def test_assign_resolves_cancellation_in_float64():
    # Points and centroids far from the origin (|x| ~ 1e4): the float32 GEMM's rounding (~1e-3 of
    # |x| |c| per dot product) swamps the 1e-4 differences between the two distances; only the
    # float64 re-check gets every label right (the host's float32 path gets some of these wrong).
    r = np.random.default_rng(4)
    x = (10000.0 + r.integers(0, 64, (500, 2)) * 0.25).astype(np.float32)
    t = torch.from_numpy(x)
    for c in ([[10008.0, 10008.5001], [10008.5, 10008.0]], [[10008.5, 10008.0], [10008.0, 10008.5001]]):
        c = np.array(c, dtype=np.float32)
        lab, dist = kd._assign(torch, t, kd._row_sq(torch, t), torch.from_numpy(c), kd._gemm_eps(torch, t))
        want, dd = _ref_labels(x, c)
        np.testing.assert_array_equal(lab.numpy(), want)
        np.testing.assert_allclose(dist.numpy(), dd[np.arange(500), want], rtol=1e-9)


def test_assign_all_centroids_equal_in_small_batches(monkeypatch):
    x = np.random.default_rng(1).standard_normal((300, 4))
    c = np.tile(x[7], (40, 1))
    monkeypatch.setattr(kd, "_EXACT_CHUNK", 100)  # 2 rows of 40 candidates per re-check batch
    t = torch.from_numpy(x)
    lab, dist = kd._assign(torch, t, kd._row_sq(torch, t), torch.from_numpy(c), kd._gemm_eps(torch, t))
    assert not lab.any()
    np.testing.assert_allclose(dist.numpy(), ((x - x[7]) ** 2).sum(1), rtol=1e-12, atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 60),
    k=st.integers(1, 9),
    d=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_assign_is_the_float64_nearest_lowest_index(n, k, d, seed, dtype):
    # Small integer coordinates: exact ties are common; every label must be the lowest index
    # among the exact float64 minima, and the distance that minimum.
    r = np.random.default_rng(seed)
    x = r.integers(-2, 3, (n, d)).astype(dtype)
    c = r.integers(-2, 3, (k, d)).astype(dtype)
    t = torch.from_numpy(x)
    lab, dist = kd._assign(torch, t, kd._row_sq(torch, t), torch.from_numpy(c), kd._gemm_eps(torch, t))
    want, dd = _ref_labels(x, c)
    np.testing.assert_array_equal(lab.numpy(), want)
    np.testing.assert_array_equal(dist.numpy(), dd[np.arange(n), want])


def test_reduced_precision_matmul_is_bounded_and_rechecked(rng):
    # Pretend the float32 matmul inputs are rounded to bfloat16 (what "medium" allows): the bound
    # widens, more rows are re-checked, labels stay the float64 nearest centroids and the seeding
    # switches to float64 products (same picks as the host on this data).
    x = _blobs(rng, 8, 2000, 12).astype(np.float32)
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("medium")
    try:
        assert kd._fp32_input_roundoff(torch, torch.device("cpu")) == 2.0**-8
        got = kd.kmeans_torch(torch.from_numpy(x), 8, seed=4)
        init = kd.kmeans_plus_plus_init_torch(torch.from_numpy(x), 8, seed=4)
    finally:
        torch.set_float32_matmul_precision(before)
    np.testing.assert_array_equal(init.numpy(), curate.kmeans_plus_plus_init(x, 8, seed=4))
    want = curate.kmeans(x, 8, seed=4)
    np.testing.assert_array_equal(got.labels.numpy(), want.labels)
    ref_lab, _ = _ref_labels(x, got.centroids.numpy())
    np.testing.assert_array_equal(got.labels.numpy(), ref_lab)


def test_duplicates_degenerate_init_and_empty_clusters():
    # 5 distinct rows, k = 9: k-means++ runs out of weight (lowest unused index), duplicate
    # centroids tie (lowest index wins), the others start empty and are re-seeded.
    base = np.array([[0, 0], [10, 0], [0, 10], [10, 10], [5, 5]], dtype=np.float64)
    x = np.repeat(base, [7, 3, 5, 2, 4], axis=0)
    x = x[np.random.default_rng(2).permutation(x.shape[0])]
    for dtype in (np.float32, np.float64):
        xx = x.astype(dtype)
        np.testing.assert_array_equal(
            kd.kmeans_plus_plus_init_torch(torch.from_numpy(xx), 9, seed=1).numpy(),
            curate.kmeans_plus_plus_init(xx, 9, seed=1),
        )
        _check_same(xx, 9, seed=1)
        _check_same(xx, 21, seed=0)  # k = N


def _reseed_reference(labels, dist, k):
    """The documented rule, written plainly: each empty cluster (ascending) takes the farthest
    point (lowest index on ties) whose cluster would keep a member; a point moves at most once."""
    labels = labels.copy()
    counts = np.bincount(labels, minlength=k)
    order = sorted(range(labels.size), key=lambda i: (-dist[i], i))
    pos = 0
    for j in range(k):
        if counts[j]:
            continue
        while counts[labels[order[pos]]] <= 1:
            pos += 1
        i = order[pos]
        pos += 1
        counts[labels[i]] -= 1
        counts[j] += 1
        labels[i] = j
    return labels, counts


def test_reseed_empty_rule():
    rng = np.random.default_rng(3)
    for _ in range(20):
        k = 12
        labels = rng.integers(0, 6, 80)  # clusters 6..11 empty, some of 0..5 maybe singletons
        labels[rng.integers(0, 80, 3)] = rng.integers(6, 12, 3)
        dist = rng.integers(0, 4, 80).astype(np.float64)  # many equal distances
        dist[rng.integers(0, 80, 5)] = -0.0
        want_l, want_c = _reseed_reference(labels, dist, k)
        got_l, got_c = kd._reseed_empty(
            torch, torch.from_numpy(labels), torch.from_numpy(dist), torch.bincount(torch.from_numpy(labels), minlength=k)
        )
        np.testing.assert_array_equal(got_l.numpy(), want_l)
        np.testing.assert_array_equal(got_c.numpy(), want_c)


def test_dtypes_and_layout(rng):
    x = _blobs(rng, 4, 600, 8)
    half = kd.kmeans_torch(torch.from_numpy(x.astype(np.float16)), 4, seed=0)
    assert half.centroids.dtype == torch.float16
    want = curate.kmeans(x.astype(np.float16), 4, seed=0)
    assert want.centroids.dtype == np.float16
    np.testing.assert_array_equal(half.labels.numpy(), want.labels)
    ints = np.rint(x * 10).astype(np.int32)
    got = kd.kmeans_torch(torch.from_numpy(ints), 4, seed=0)
    assert got.centroids.dtype == torch.float64
    np.testing.assert_array_equal(got.labels.numpy(), curate.kmeans(ints, 4, seed=0).labels)
    wide = np.ascontiguousarray(np.repeat(x.astype(np.float32), 2, axis=1))
    strided = torch.from_numpy(wide)[:, ::2]  # non-contiguous view of x
    got = kd.kmeans_torch(strided, 4, seed=0)
    np.testing.assert_array_equal(got.labels.numpy(), curate.kmeans(x.astype(np.float32), 4, seed=0).labels)
    bf = kd.kmeans_torch(torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16), 4, seed=0)
    assert bf.centroids.dtype == torch.bfloat16


def test_n_iter_zero_and_stopping(rng):
    x = _blobs(rng, 3, 400, 5).astype(np.float32)
    got = kd.kmeans_torch(torch.from_numpy(x), 3, n_iter=0, seed=0)
    init = curate.kmeans_plus_plus_init(x, 3, seed=0)
    np.testing.assert_array_equal(got.centroids.numpy(), x[init])
    assert got.n_iter == 0
    _check_same(x, 3, seed=0, n_iter=0)
    res = _check_same(x, 3, seed=0, n_iter=50)
    assert res.n_iter < 50  # stopped because the labels stopped changing


def test_errors_match_host():
    x = np.ones((10, 3), dtype=np.float32)
    bad = x.copy()
    bad[4, 0] = np.inf
    cases = [
        ((bad, 2), {}, ValueError, "x must be finite, got NaN or infinity in row 4"),
        ((x, 11), {}, ValueError, r"n_clusters must be in \[1, 10\]"),
        ((x, 0), {}, ValueError, r"n_clusters must be in \[1, 10\]"),
        ((x, 2.0), {}, TypeError, "n_clusters must be an int"),
        ((x, 2), {"n_iter": -1}, ValueError, "n_iter must be >= 0"),
        ((x, 2), {"seed": 1.5}, TypeError, "seed must be an int"),
        ((x[:, :0], 2), {}, ValueError, "at least one column"),
        ((x[0], 1), {}, ValueError, r"x must have shape \(N, D\)"),
    ]
    for args, kwargs, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            curate.kmeans(*args, **kwargs)
        with pytest.raises(exc, match=msg):
            kd.kmeans_torch(torch.from_numpy(args[0]), *args[1:], **kwargs)
    with pytest.raises(ValueError, match=r"k must be in \[1, 10\]"):
        kd.kmeans_plus_plus_init_torch(torch.from_numpy(x), 11)
    with pytest.raises(TypeError, match="x must have a real floating or integer dtype"):
        kd.kmeans_torch(torch.ones((4, 2), dtype=torch.bool), 2)


def test_public_functions_dispatch_device_input(monkeypatch):
    # No GPU here: pretend a CPU tensor is on CUDA and check curate.* hand it to the device path.
    from curata import _array

    calls = []
    real_km, real_pp = kd.kmeans_torch, kd.kmeans_plus_plus_init_torch
    monkeypatch.setattr(_array, "on_cuda", lambda x: isinstance(x, torch.Tensor))
    monkeypatch.setattr(kd, "kmeans_torch", lambda *a: calls.append("kmeans") or real_km(*a))
    monkeypatch.setattr(kd, "kmeans_plus_plus_init_torch", lambda *a: calls.append("init") or real_pp(*a))
    x = _blobs(np.random.default_rng(0), 3, 300, 4).astype(np.float32)
    r = curate.kmeans(torch.from_numpy(x), 3, n_iter=7, seed=2)
    i = curate.kmeans_plus_plus_init(torch.from_numpy(x), 3, seed=2)
    assert calls == ["kmeans", "init"]
    np.testing.assert_array_equal(r.labels.numpy(), curate.kmeans(x, 3, n_iter=7, seed=2).labels)
    np.testing.assert_array_equal(i.numpy(), curate.kmeans_plus_plus_init(x, 3, seed=2))


@pytest.mark.parametrize("exponent", [100, -100, 700, -700])
def test_huge_and_tiny_values(rng, exponent):
    # The host path's power-of-two rescaling: seeding picked 0, 1, 2 at 2^100 before.
    base = _blobs(rng, 4, 300, 5)
    if abs(exponent) < 120:
        base = base.astype(np.float32)
    x = torch.from_numpy(np.ldexp(base, exponent))
    before = x.clone()
    want = curate.kmeans(base, 4)
    got = kd.kmeans_torch(x, 4)
    np.testing.assert_array_equal(got.labels.numpy(), want.labels)
    np.testing.assert_array_equal(got.labels.numpy(), _ref_labels(base, want.centroids)[0])
    np.testing.assert_array_equal(got.centroids.numpy(), np.ldexp(kd.kmeans_torch(torch.from_numpy(base), 4).centroids.numpy(), exponent))
    np.testing.assert_array_equal(kd.kmeans_plus_plus_init_torch(x, 4).numpy(), curate.kmeans_plus_plus_init(base, 4))
    assert torch.equal(x, before)


def test_assign_labels_equal_host_core_far_from_origin():
    # The host assigns in the C++ core (kNN dot kernels, its own rounding bound), the device path
    # by GEMM with a generic bound: different dots and different sets of re-checked rows, but both
    # decide close calls by float64 differences, so the labels must be the same.
    from curata import _cluster

    r = np.random.default_rng(12)
    centres = 1e4 + r.standard_normal((30, 12)) * 0.05
    x = (centres[r.integers(0, 30, 4000)] + r.standard_normal((4000, 12)) * 0.02).astype(np.float32)
    c = centres.astype(np.float32)
    t = torch.from_numpy(x)
    lab, dist = kd._assign(torch, t, kd._row_sq(torch, t), torch.from_numpy(c), kd._gemm_eps(torch, t))
    sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    host_lab, host_dist = _cluster._assign(x, sq, c)
    np.testing.assert_array_equal(lab.numpy(), host_lab)
    np.testing.assert_array_equal(host_lab, _ref_labels(x, c)[0])
    # (No whole-kmeans comparison here: at |x| ~ 1e4 the k-means++ weights are float32 distances
    # dominated by cancellation, so the host's and the device's seeding may pick differently.)
