"""curata.curate.k_center_greedy / kmeans / kmeans_plus_plus_init against float64 numpy references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curata import curate


# --------------------------------------------------------------------------- references


def ref_k_center(x, n, already=None, metric="l2"):
    """Plain float64 farthest-first traversal with full distances (Euclidean or 1 - cos)."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        x = x / np.linalg.norm(x, axis=1, keepdims=True)

    def dist(i):
        if metric == "cosine":
            return 1.0 - x @ x[i]
        return np.sqrt(((x - x[i]) ** 2).sum(axis=1))

    N = x.shape[0]
    mind = np.full(N, np.inf)
    picks = []
    sel = [] if already is None else sorted(set(int(i) for i in already))
    for i in sel:
        mind = np.minimum(mind, dist(i))
    taken = np.zeros(N, bool)
    taken[sel] = True
    for p in range(n):
        if p == 0 and not sel:
            i = 0
        else:
            m = np.where(taken, -np.inf, mind)
            i = int(np.argmax(m))
        picks.append(i)
        taken[i] = True
        mind = np.minimum(mind, dist(i))
    return np.array(picks, dtype=np.int64)


def ref_kmeans(x, init_idx, n_iter):
    """Float64 Lloyd with full (N, k) distance matrices; empty clusters re-seeded like curata."""
    x = np.asarray(x, dtype=np.float64)
    c = x[init_idx].copy()
    k = c.shape[0]

    def assign(c):
        d = ((x[:, None, :] - c[None, :, :]) ** 2).sum(axis=2)
        lab = d.argmin(axis=1)
        return lab, d[np.arange(len(x)), lab]

    labels, dist = assign(c)
    run = 0
    for _ in range(n_iter):
        labels = labels.copy()
        counts = np.bincount(labels, minlength=k)
        for j in np.flatnonzero(counts == 0):
            order = sorted(range(len(x)), key=lambda i: (-dist[i], i))
            for i in order:
                if counts[labels[i]] > 1 and dist[i] >= 0:
                    counts[labels[i]] -= 1
                    counts[j] += 1
                    labels[i] = j
                    dist[i] = -1.0  # used
                    break
        c = np.stack([x[labels == j].mean(axis=0) for j in range(k)])
        run += 1
        new, dist = assign(c)
        same = np.array_equal(new, labels)
        labels = new
        if same:
            break
    return c, labels, float(dist.sum()), run


def blobs(rng, n, d, k, spread=0.3):
    centres = rng.normal(0, 5, size=(k, d))
    lab = rng.integers(0, k, size=n)
    return centres[lab] + rng.normal(0, spread, size=(n, d))


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


# --------------------------------------------------------------------------- k-center greedy


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_k_center_matches_reference(rng, metric, dtype):
    x = rng.normal(size=(3000, 24)).astype(dtype)
    got = curate.k_center_greedy(x, 60, metric=metric)
    want = ref_k_center(x.astype(np.float64), 60, metric=metric)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)


def test_k_center_offset_data_still_exact(rng):
    # Far from the origin: the |x|^2 - 2x.c + |c|^2 form would cancel badly without centring.
    x = rng.normal(size=(2000, 16)) + 1e4
    np.testing.assert_array_equal(curate.k_center_greedy(x, 40), ref_k_center(x, 40))


@pytest.mark.parametrize("exponent", [100, -100, 700, -700])
def test_k_center_huge_and_tiny_values(rng, exponent):
    # Float32 squares of such values overflow (NaN distances: picks came back as 0, 1, 2, ...)
    # or underflow (all distances 0). Farthest-first is scale-invariant and a power-of-two scale
    # is exact, so the picks must be the float64 reference's on the unscaled data (whose own
    # float64 squares would overflow at 2^700). float64 input beyond the float32 range included.
    base = rng.normal(size=(400, 8))
    if abs(exponent) < 120:
        base = base.astype(np.float32)
    x = np.ldexp(base, exponent)
    before = x.copy()
    for metric in ("l2", "cosine"):
        np.testing.assert_array_equal(curate.k_center_greedy(x, 12, metric=metric),
                                      ref_k_center(base, 12, metric=metric))
    np.testing.assert_array_equal(x, before)


def test_k_center_already_selected(rng):
    x = rng.normal(size=(1500, 8))
    already = [5, 700, 5, 1499]
    got = curate.k_center_greedy(x, 30, already_selected=np.array(already))
    np.testing.assert_array_equal(got, ref_k_center(x, 30, already))
    assert not set(got.tolist()) & set(already)
    assert len(set(got.tolist())) == 30
    # A torch tensor of indices and a list behave the same.
    torch = pytest.importorskip("torch")
    got_t = curate.k_center_greedy(torch.from_numpy(x), 30, already_selected=torch.tensor(already))
    assert isinstance(got_t, torch.Tensor) and got_t.dtype == torch.int64
    np.testing.assert_array_equal(got_t.numpy(), got)


def test_k_center_zero_and_all(rng):
    x = rng.normal(size=(50, 3))
    assert curate.k_center_greedy(x, 0).shape == (0,)
    assert curate.k_center_greedy(x, 0, already_selected=np.arange(50)).shape == (0,)
    allp = curate.k_center_greedy(x, 50)
    assert sorted(allp.tolist()) == list(range(50))
    rest = curate.k_center_greedy(x, 47, already_selected=[1, 2, 3])
    assert sorted(rest.tolist()) == sorted(set(range(50)) - {1, 2, 3})


def test_k_center_ties_lowest_index():
    # Duplicate rows: after the distinct points are taken every remaining distance is 0, so the
    # picks continue in index order.
    x = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(curate.k_center_greedy(x, 5), [0, 1, 2, 3, 4])
    # Symmetric square: from corner 0 the opposite corner (index 2) is farthest; then 1 and 3 tie.
    sq = np.array([[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    np.testing.assert_array_equal(curate.k_center_greedy(sq, 4), [0, 2, 1, 3])


def test_k_center_exact_ties_on_integer_grid(rng):
    # Many points at exactly the same (integer) distance: centring the data before the float64
    # re-check used to round those distances apart and pick a higher index than the reference.
    x = rng.integers(-5, 6, size=(200, 3)).astype(np.float64)
    for n in (5, 20, 60):
        np.testing.assert_array_equal(curate.k_center_greedy(x, n), ref_k_center(x, n))
    shifted = x + 1000.0  # far from the origin: the same ties must survive
    np.testing.assert_array_equal(curate.k_center_greedy(shifted, 20), ref_k_center(shifted, 20))


def test_k_center_bad_input(rng):
    x = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match="n must be <= 10"):
        curate.k_center_greedy(x, 11)
    with pytest.raises(ValueError, match="n must be <= 8"):
        curate.k_center_greedy(x, 9, already_selected=[0, 1])
    with pytest.raises(ValueError, match="n must be >= 0"):
        curate.k_center_greedy(x, -1)
    with pytest.raises(TypeError, match="n must be an int"):
        curate.k_center_greedy(x, 2.0)
    bad = x.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="finite.*row 4"):
        curate.k_center_greedy(bad, 2)
    with pytest.raises(ValueError, match="already_selected must hold indices in"):
        curate.k_center_greedy(x, 2, already_selected=[10])
    with pytest.raises(ValueError, match="metric must be one of"):
        curate.k_center_greedy(x, 2, metric="ip")
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\)"):
        curate.k_center_greedy(x[0], 1)
    z = x.copy()
    z[3] = 0
    with pytest.raises(ValueError, match="non-zero rows"):
        curate.k_center_greedy(z, 2, metric="cosine")


def _radius(x, centres):
    d = np.sqrt(((x[:, None, :] - x[centres][None, :, :]) ** 2).sum(axis=2))
    return d.min(axis=1).max()


@settings(max_examples=40, deadline=None)
@given(
    pts=st.lists(
        st.tuples(st.integers(-20, 20), st.integers(-20, 20)), min_size=2, max_size=9
    ),
    k=st.integers(1, 4),
)
def test_k_center_two_approximation(pts, k):
    x = np.array(pts, dtype=np.float64)
    k = min(k, len(x))
    picks = curate.k_center_greedy(x, k)
    assert len(set(picks.tolist())) == k
    opt = min(_radius(x, list(c)) for c in itertools.combinations(range(len(x)), k))
    assert _radius(x, picks) <= 2.0 * opt + 1e-9


# --------------------------------------------------------------------------- k-means


def test_kmeans_pp_init_properties(rng):
    x = rng.normal(size=(500, 4))
    a = curate.kmeans_plus_plus_init(x, 10, seed=3)
    b = curate.kmeans_plus_plus_init(x, 10, seed=3)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.int64 and len(set(a.tolist())) == 10
    assert not np.array_equal(a, curate.kmeans_plus_plus_init(x, 10, seed=4))
    # D^2 sampling on well separated blobs hits every blob.
    y = blobs(np.random.default_rng(0), 600, 5, 6, spread=0.05)
    centres = np.round(y[curate.kmeans_plus_plus_init(y, 6, seed=1)] / 1.0)
    assert len({tuple(r) for r in centres}) == 6
    # Fewer distinct points than k: duplicates, lowest unused index.
    d = np.array([[0.0], [0.0], [1.0]])
    idx = curate.kmeans_plus_plus_init(d, 3, seed=0)
    assert sorted(idx.tolist()) == [0, 1, 2]


@pytest.mark.parametrize("k", [1, 5, 12])
def test_kmeans_matches_reference(rng, k):
    x = blobs(rng, 800, 6, 8, spread=1.0)
    res = curate.kmeans(x, k, n_iter=30, seed=7)
    init = curate.kmeans_plus_plus_init(x, k, seed=7)
    c, lab, inertia, run = ref_kmeans(x, init, 30)
    np.testing.assert_array_equal(res.labels, lab)
    np.testing.assert_allclose(res.centroids, c, rtol=1e-10, atol=1e-10)
    assert res.inertia == pytest.approx(inertia, rel=1e-9)
    assert res.n_iter == run
    assert res.centroids.dtype == np.float64 and res.labels.dtype == np.int64


def test_kmeans_float32_close_to_float64(rng):
    x = blobs(rng, 1000, 8, 5, spread=0.5)
    r32 = curate.kmeans(x.astype(np.float32), 5, seed=0)
    r64 = curate.kmeans(x, 5, seed=0)
    assert r32.centroids.dtype == np.float32
    np.testing.assert_array_equal(r32.labels, r64.labels)
    assert r32.inertia == pytest.approx(r64.inertia, rel=1e-4)


def test_kmeans_empty_cluster_reseeded():
    # Init picks two copies of the same point (k > distinct points forces duplicates); the second
    # cluster is empty after assignment (ties -> lowest index) and must be re-seeded.
    x = np.array([[0.0], [0.0], [10.0], [11.0]])
    res = curate.kmeans(x, 4, n_iter=10, seed=0)
    counts = np.bincount(res.labels, minlength=4)
    assert (counts >= 1).all() or res.inertia == 0.0
    c, lab, inertia, run = ref_kmeans(x, curate.kmeans_plus_plus_init(x, 4, seed=0), 10)
    np.testing.assert_array_equal(res.labels, lab)
    assert res.inertia == pytest.approx(inertia, abs=1e-12)
    # n_iter = 0: labels of the initial centroids.
    r0 = curate.kmeans(x, 2, n_iter=0, seed=0)
    assert r0.n_iter == 0
    c0 = x[curate.kmeans_plus_plus_init(x, 2, seed=0)]
    np.testing.assert_array_equal(r0.centroids, c0)


def test_kmeans_vs_sklearn(rng):
    cluster = pytest.importorskip("sklearn.cluster")
    x = blobs(rng, 3000, 16, 10, spread=1.0)
    sk10 = cluster.KMeans(10, n_init=10, random_state=0).fit(x)
    ours = [curate.kmeans(x, 10, n_iter=50, seed=s).inertia for s in range(3)]
    # Different random streams -> different local optima are possible (a single sklearn run with
    # random_state=0 lands in one here), so compare best of 3 seeds with sklearn's best of 10.
    assert min(ours) == pytest.approx(sk10.inertia_, rel=0.01)
    # The blobs have unit noise: the optimum is about N * D (sum of 16 unit variances per point).
    assert min(ours) == pytest.approx(3000 * 16, rel=0.05)


def test_kmeans_torch(rng):
    torch = pytest.importorskip("torch")
    x = blobs(rng, 300, 4, 3).astype(np.float32)
    res = curate.kmeans(torch.from_numpy(x), 3, seed=2)
    ref = curate.kmeans(x, 3, seed=2)
    assert isinstance(res.centroids, torch.Tensor) and res.centroids.dtype == torch.float32
    assert isinstance(res.labels, torch.Tensor) and res.labels.dtype == torch.int64
    np.testing.assert_array_equal(res.labels.numpy(), ref.labels)
    # Non-contiguous input gives the same answer.
    big = np.zeros((300, 8), dtype=np.float32)
    big[:, ::2] = x
    np.testing.assert_array_equal(curate.kmeans(big[:, ::2], 3, seed=2).labels, ref.labels)


def test_kmeans_bad_input(rng):
    x = rng.normal(size=(10, 3))
    with pytest.raises(ValueError, match=r"n_clusters must be in \[1, 10\]"):
        curate.kmeans(x, 11)
    with pytest.raises(ValueError, match=r"n_clusters must be in \[1, 10\]"):
        curate.kmeans(x, 0)
    with pytest.raises(TypeError, match="n_clusters must be an int"):
        curate.kmeans(x, 2.5)
    with pytest.raises(ValueError, match="n_iter must be >= 0"):
        curate.kmeans(x, 2, n_iter=-1)
    with pytest.raises(TypeError, match="seed must be an int"):
        curate.kmeans(x, 2, seed=None)
    bad = x.copy()
    bad[7, 0] = np.inf
    with pytest.raises(ValueError, match="finite.*row 7"):
        curate.kmeans(bad, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\)"):
        curate.kmeans(x.reshape(2, 5, 3), 2)
    with pytest.raises(TypeError, match="x must have a real floating or integer dtype"):
        curate.kmeans(np.array([["a"]]), 1)
    with pytest.raises(ValueError, match=r"k must be in \[1, 10\]"):
        curate.kmeans_plus_plus_init(x, 20)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_inputs_not_modified(rng, metric):
    x = rng.normal(size=(200, 5)) + 3.0
    keep = x.copy()
    curate.k_center_greedy(x, 10, metric=metric)
    curate.kmeans(x, 4)
    np.testing.assert_array_equal(x, keep)
    # k_center_greedy centres its own float64 conversion in place: never the caller's float64 data
    # behind a torch tensor, and a float32 input gives the same picks as its float64 copy
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(x)
    np.testing.assert_array_equal(curate.k_center_greedy(t, 10, metric=metric).numpy(),
                                  curate.k_center_greedy(keep, 10, metric=metric))
    np.testing.assert_array_equal(t.numpy(), keep)
    x32 = keep.astype(np.float32)
    keep32 = x32.copy()
    np.testing.assert_array_equal(curate.k_center_greedy(x32, 10, metric=metric),
                                  curate.k_center_greedy(x32.astype(np.float64), 10, metric=metric))
    np.testing.assert_array_equal(x32, keep32)


def test_kmeans_many_blocks_same_result(rng, monkeypatch):
    from curata import _cluster

    x = blobs(rng, 700, 5, 6, spread=1.0)
    whole = curate.kmeans(x, 6, seed=1)
    monkeypatch.setattr(_cluster, "_BLOCK_ENTRIES", 64)  # 10 rows per block with k = 6, ragged end
    blocked = curate.kmeans(x, 6, seed=1)
    np.testing.assert_array_equal(blocked.labels, whole.labels)
    np.testing.assert_array_equal(blocked.centroids, whole.centroids)
    c, lab, inertia, run = ref_kmeans(x, curate.kmeans_plus_plus_init(x, 6, seed=1), 25)
    np.testing.assert_array_equal(blocked.labels, lab)
    assert blocked.inertia == pytest.approx(inertia, rel=1e-9)


def test_k_center_mass_duplicates(rng):
    # 5 distinct far-apart locations, 600 rows: after the 5 locations are taken more than 256
    # rows tie at distance 0 (the documented fallback path); picks stay distinct and valid.
    locs = rng.normal(0, 10, size=(5, 4))
    x = locs[rng.integers(0, 5, size=600)]
    x[:5] = locs
    picks = curate.k_center_greedy(x, 300)
    assert len(set(picks.tolist())) == 300
    assert sorted(picks[:5].tolist()) == [0, 1, 2, 3, 4]
    np.testing.assert_array_equal(picks[:5], ref_k_center(x, 5))
    # An empty already_selected behaves like None.
    np.testing.assert_array_equal(curate.k_center_greedy(x, 5, already_selected=[]), picks[:5])


def test_dtypes(rng):
    xi = rng.integers(-50, 50, size=(300, 6))
    np.testing.assert_array_equal(curate.k_center_greedy(xi, 20), ref_k_center(xi, 20))
    r = curate.kmeans(xi, 4, seed=0)
    assert r.centroids.dtype == np.float64
    np.testing.assert_array_equal(r.labels, curate.kmeans(xi.astype(np.float64), 4, seed=0).labels)
    x16 = blobs(rng, 400, 4, 3, spread=0.2).astype(np.float16)
    r16 = curate.kmeans(x16, 3, seed=0)
    assert r16.centroids.dtype == np.float16  # computed in float32, returned in the input dtype
    np.testing.assert_array_equal(r16.labels, curate.kmeans(x16.astype(np.float32), 3, seed=0).labels)
    torch = pytest.importorskip("torch")
    t = torch.from_numpy(x16.astype(np.float32)).to(torch.bfloat16)
    rb = curate.kmeans(t, 3, seed=0)
    assert rb.centroids.dtype == torch.bfloat16 and rb.labels.dtype == torch.int64
    idx = curate.kmeans_plus_plus_init(t, 3, seed=0)
    assert isinstance(idx, torch.Tensor) and idx.dtype == torch.int64


def _ref_nearest(x, c):
    d = ((np.asarray(x, np.float64)[:, None, :] - np.asarray(c, np.float64)[None]) ** 2).sum(-1)
    return np.argmin(d, axis=1), d


def test_kmeans_assign_resolves_float32_cancellation():
    # Far from the origin (|x| ~ 1e4) the float32 product's rounding swamps the 1e-4 differences
    # between two centroid distances; the float64 re-check must still give the exact nearest.
    from curata import _cluster

    r = np.random.default_rng(4)
    x = (10000.0 + r.integers(0, 64, (500, 2)) * 0.25).astype(np.float32)
    sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    for c in ([[10008.0, 10008.5001], [10008.5, 10008.0]], [[10008.5, 10008.0], [10008.0, 10008.5001]]):
        c = np.array(c, dtype=np.float32)
        lab, dist = _cluster._assign(x, sq, c)
        want, d = _ref_nearest(x, c)
        np.testing.assert_array_equal(lab, want)
        np.testing.assert_allclose(dist, d[np.arange(500), want], rtol=1e-9)


def test_kmeans_assign_exact_ties_lowest_index():
    from curata import _cluster

    x = np.random.default_rng(2).integers(-3, 4, (400, 3)).astype(np.float32)
    c = np.array([[0, 0, 0], [1, 1, 1], [-1, -1, -1], [1, 1, 1], [0, 0, 1]], dtype=np.float32)
    sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    lab, dist = _cluster._assign(x, sq, c)
    want, d = _ref_nearest(x, c)
    np.testing.assert_array_equal(lab, want)
    np.testing.assert_array_equal(dist, d[np.arange(400), want])
    assert np.count_nonzero(np.sort(d, axis=1)[:, 0] == np.sort(d, axis=1)[:, 1]) > 50  # ties tested


@pytest.mark.parametrize("exponent", [100, -100, 700, -700])
def test_kmeans_huge_and_tiny_values(rng, exponent):
    # k-means is scale-equivariant, but float32 squares overflowed at 2^100 (NaN distances) and
    # underflowed at 2^-100 (every point in one cluster); float64 at 2^+-700. A power-of-two
    # scale is exact: labels, seeding and iteration count must be those of the unscaled data,
    # centroids exactly scaled, and both agree with the float64 reference.
    base = blobs(rng, 300, 5, 4)
    if abs(exponent) < 120:
        base = base.astype(np.float32)
    x = np.ldexp(base, exponent)
    before = x.copy()
    r0 = curate.kmeans(base, 4)
    r = curate.kmeans(x, 4)
    np.testing.assert_array_equal(r.labels, r0.labels)
    assert r.n_iter == r0.n_iter
    np.testing.assert_array_equal(r.centroids, np.ldexp(r0.centroids, exponent))
    with np.errstate(over="ignore"):
        assert r.inertia == pytest.approx(np.ldexp(r0.inertia, 2 * exponent), rel=1e-12)
    init = curate.kmeans_plus_plus_init(x, 4)
    np.testing.assert_array_equal(init, curate.kmeans_plus_plus_init(base, 4))
    _, ref_labels, _, _ = ref_kmeans(base, init, 25)
    np.testing.assert_array_equal(r.labels, ref_labels)
    np.testing.assert_array_equal(x, before)


def _exact_cosine_k_center(x, n):
    """Farthest-first under cosine in exact rational arithmetic (integer rows): a row's distance
    to a centre ranks as -sign(dot) dot^2 / (|a|^2 |c|^2), so true ties stay ties (lowest index)."""
    from fractions import Fraction

    rows = [[int(v) for v in r] for r in np.asarray(x)]

    def cos_key(a, c):  # increasing in cos(a, c)
        dot = sum(p * q for p, q in zip(rows[a], rows[c]))
        na, nc = sum(p * p for p in rows[a]), sum(p * p for p in rows[c])
        return Fraction(dot * dot, na * nc) * ((dot > 0) - (dot < 0))

    nearest = [None] * len(rows)  # largest cos key to a chosen centre
    out, taken = [], [False] * len(rows)

    def add(c):
        taken[c] = True
        for i in range(len(rows)):
            key = cos_key(i, c)
            if nearest[i] is None or key > nearest[i]:
                nearest[i] = key

    out.append(0)
    add(0)
    while len(out) < n:
        best = min((i for i in range(len(rows)) if not taken[i]), key=lambda i: (nearest[i], i))
        out.append(best)
        add(best)
    return np.array(out, dtype=np.int64)


@pytest.mark.parametrize("seed", range(8))
def test_k_center_cosine_true_ties_go_to_lowest_index(seed):
    # Parallel rows ([1, 1] and [3, 3]) and rows equal up to a permutation of coordinates are
    # exactly as far from every centre under cosine, but normalising them rounds differently:
    # before the fix their float64 distances were a few ulps apart and the tie went to whichever
    # rounded up (e.g. index 5 = [3, 3] picked before index 2 = [1, 1]).
    rng = np.random.default_rng(seed)
    x = rng.integers(-3, 4, size=(60, int(rng.integers(2, 5)))).astype(np.float32)
    x[np.all(x == 0, axis=1)] = 1
    want = _exact_cosine_k_center(x, 30)
    np.testing.assert_array_equal(curate.k_center_greedy(x, 30, metric="cosine"), want)
    torch = pytest.importorskip("torch")
    from curata import _kcenter_device

    got = _kcenter_device.k_center_greedy_torch(torch.from_numpy(x), 30, metric="cosine")
    np.testing.assert_array_equal(got.numpy(), want)


@pytest.mark.parametrize("exponent", [600, -600])
def test_k_center_cosine_rows_of_very_different_scales(rng, exponent):
    # Cosine picks depend only on directions. The global power-of-two scale maps the largest
    # |value| of the whole array, so a row 2^600 times smaller than the others kept squares that
    # underflow: "x must have non-zero rows ... all-zero row" was raised for a non-zero row. Each
    # row now gets its own power of two before its norm (host and torch paths).
    x = rng.normal(size=(50, 4))
    want = curate.k_center_greedy(x, 12, metric="cosine")
    mixed = x.copy()
    mixed[::2] = np.ldexp(mixed[::2], exponent)
    before = mixed.copy()
    np.testing.assert_array_equal(curate.k_center_greedy(mixed, 12, metric="cosine"), want)
    np.testing.assert_array_equal(mixed, before)
    torch = pytest.importorskip("torch")
    from curata import _kcenter_device

    got = _kcenter_device.k_center_greedy_torch(torch.from_numpy(mixed), 12, metric="cosine")
    np.testing.assert_array_equal(got.numpy(), want)


# --------------------------------------------------------------------------- k-means Lloyd step (C++ core)


def _old_assign(x, sq, c, block_entries=1 << 22, exact_entries=1 << 22):
    """The numpy assignment curata used before the C++ core (kept as a reference): BLAS product per
    row block, float64 elementwise passes, float64 re-check of rows within the generic bound."""
    N, D = x.shape
    k = c.shape[0]
    c64 = c.astype(np.float64)
    csq = np.einsum("ij,ij->i", c64, c64)
    cmax = float(np.sqrt(csq.max()))
    u = 2.0**-53 if x.dtype == np.float64 else 2.0**-24
    gamma = (D + 2) * u / (1.0 - (D + 2) * u)
    xnorm = np.sqrt(sq)
    tol = 2.0 * (4.0 * gamma * xnorm * cmax + 8.0 * 2.0**-53 * (cmax * cmax + 2.0 * xnorm * cmax))
    labels = np.empty(N, dtype=np.int64)
    dist = np.empty(N, dtype=np.float64)
    rows = max(1, block_entries // max(1, k))
    ct = np.ascontiguousarray(c.T.astype(x.dtype))
    for s in range(0, N, rows):
        xb = x[s : s + rows]
        m = xb.shape[0]
        d = (xb @ ct).astype(np.float64)
        d *= -2.0
        d += csq[None, :]
        lab = np.argmin(d, axis=1)
        best = d[np.arange(m), lab]
        dist[s : s + m] = np.maximum(best + sq[s : s + m], 0.0)
        if k > 1:
            near = d <= (best + tol[s : s + m])[:, None]
            flagged = np.flatnonzero(np.count_nonzero(near, axis=1) > 1)
            step = max(1, exact_entries // (k * D))
            for f in range(0, flagged.size, step):
                sub = flagged[f : f + step]
                diff = xb[sub].astype(np.float64)[:, None, :] - c64[None, :, :]
                exact = np.einsum("ijk,ijk->ij", diff, diff)
                exact[~near[sub]] = np.inf
                lab[sub] = np.argmin(exact, axis=1)
                dist[s + sub] = exact[np.arange(sub.size), lab[sub]]
        labels[s : s + m] = lab
    return labels, dist


def _sq(x):
    return np.einsum("ij,ij->i", x, x, dtype=np.float64)


def _dist_atol(x, c):
    """A loose bound on the rounding of |x|^2 + |c|^2 - 2 x.c for the compared distances."""
    u = 1e-5 if x.dtype == np.float32 else 1e-12
    cmax2 = float((np.asarray(c, np.float64) ** 2).sum(axis=1).max())
    return u * (_sq(x) + cmax2 + 1e-300)


def _check_assign(x, c):
    from curata import _cluster

    sq = _sq(x)
    lab, dist = _cluster._assign(x, sq, c)
    want, d = _ref_nearest(x, c)
    np.testing.assert_array_equal(lab, want)
    ref_d = d[np.arange(len(x)), want]
    assert np.all(np.abs(dist - ref_d) <= _dist_atol(x, c))
    assert np.all(dist >= 0)
    return lab, dist


@pytest.mark.parametrize(
    "n,d,k,dtype,offset",
    [
        (2000, 128, 100, np.float32, 0.0),  # packed outer-product kernel, one chunk
        (1500, 37, 7, np.float32, 0.0),  # k < 11: the dot-product kernel; D not a multiple of 16
        (1500, 129, 40, np.float32, 0.0),
        (800, 16, 1, np.float32, 0.0),  # k = 1
        (300, 5, 300, np.float32, 0.0),  # k = N
        (2000, 24, 30, np.float32, 1e4),  # far from the origin: most rows are close calls
        (1200, 20, 50, np.float64, 0.0),
        (1200, 33, 12, np.float64, 1e4),
    ],
)
def test_assign_matches_float64_reference_and_old_rule(n, d, k, dtype, offset):
    from curata import _cluster

    r = np.random.default_rng(n + d + k)
    x = (offset + r.standard_normal((n, d))).astype(dtype)
    c = x[r.choice(n, k, replace=False)].copy()
    c += r.standard_normal(c.shape).astype(dtype) * dtype(0.05)
    lab, dist = _check_assign(x, c)
    old_lab, old_dist = _old_assign(x, _sq(x), c)
    np.testing.assert_array_equal(lab, old_lab)
    assert np.all(np.abs(dist - old_dist) <= 2 * _dist_atol(x, c))
    assert _cluster._assign(x, _sq(x), c)[1].tobytes() == dist.tobytes()  # repeatable bits


def test_assign_far_from_origin_float32_needs_recheck():
    # |x| ~ 1e4 with clusters 0.05 apart: the float32 dot products cannot tell the centroids apart
    # (their rounding, ~1e-3 in |x|^2 units, exceeds the gaps), so labels rest on the re-check.
    r = np.random.default_rng(7)
    centres = 1e4 + r.standard_normal((20, 8)) * 0.05
    x = (centres[r.integers(0, 20, 3000)] + r.standard_normal((3000, 8)) * 0.01).astype(np.float32)
    c = centres.astype(np.float32)
    lab, _ = _check_assign(x, c)
    assert len(np.unique(lab)) == 20
    # The plain float32 expansion (what the dots alone decide) gets many of them wrong.
    g = (x @ c.T).astype(np.float64)
    naive = np.argmin((c.astype(np.float64) ** 2).sum(1)[None] - 2 * g, axis=1)
    assert np.count_nonzero(naive != lab) > 100


def test_assign_exact_ties_duplicate_centroids_across_chunks():
    # k = 1100 at D = 128 spans three centroid chunks; duplicates of centroid 3 sit in the second
    # and third chunks and every row nearest to it must keep the lowest index, 3.
    r = np.random.default_rng(3)
    c = r.integers(-4, 5, (1100, 128)).astype(np.float32)
    c[700] = c[3]
    c[1050] = c[3]
    c[1099] = c[1098]
    x = np.concatenate([c[[3, 700, 1050, 1098, 1099]], c[r.integers(0, 1100, 195)]])
    x[200 - 10 :] += 0.5  # some rows off the centroids, on a half-integer grid (exact ties too)
    lab, dist = _check_assign(x, c)
    assert lab[0] == lab[1] == lab[2] == 3 and lab[3] == lab[4] == 1098
    assert not np.isin(lab, [700, 1050, 1099]).any()
    np.testing.assert_array_equal(dist[:190], 0.0)  # re-checked exactly: float64 differences


def test_assign_equidistant_points_lowest_index():
    x = np.array([[0, 0], [1, 1], [0.5, 0.5], [-1, 1], [2, 0]], dtype=np.float32)
    c = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=np.float32)
    lab, dist = _check_assign(x, c)
    # (0,0): 0 from centroid 3; (1,1): centroid 2; (0.5,0.5): all four at 0.5; (-1,1): 1; (2,0): 0
    np.testing.assert_array_equal(lab, [3, 2, 0, 1, 0])
    np.testing.assert_array_equal(dist, [0.0, 0.0, 0.5, 1.0, 1.0])
    lab64, _ = _check_assign(x.astype(np.float64), c.astype(np.float64))
    np.testing.assert_array_equal(lab64, lab)


def test_assign_non_contiguous_input():
    from curata import _cluster

    r = np.random.default_rng(5)
    big = r.standard_normal((900, 64)).astype(np.float32)
    x = big[::2, ::3]  # neither row- nor column-contiguous
    c = np.asfortranarray(x[:13] + 0.1)
    lab, dist = _cluster._assign(x, _sq(x), c)
    lab2, dist2 = _cluster._assign(np.ascontiguousarray(x), _sq(x), np.ascontiguousarray(c))
    np.testing.assert_array_equal(lab, lab2)
    assert dist.tobytes() == dist2.tobytes()
    _check_assign(x, c)
    r1 = curate.kmeans(x, 6, seed=2)
    r2 = curate.kmeans(np.ascontiguousarray(x), 6, seed=2)
    np.testing.assert_array_equal(r1.labels, r2.labels)
    np.testing.assert_array_equal(r1.centroids, r2.centroids)


def test_assign_portable_kernel_twin_same_bits():
    # With the hand-written kernels off the dots come from the portable dot-product kernel: the
    # same bits by design, so labels and distances must not move at all.
    import curata
    from curata import _cluster

    r = np.random.default_rng(8)
    x = r.standard_normal((1000, 50)).astype(np.float32)
    c = x[:64] + np.float32(0.01)
    a = _cluster._assign(x, _sq(x), c)
    before = curata._core._set_hand_kernels(False)
    try:
        b = _cluster._assign(x, _sq(x), c)
    finally:
        curata._core._set_hand_kernels(before)
    np.testing.assert_array_equal(a[0], b[0])
    assert a[1].tobytes() == b[1].tobytes()


@pytest.fixture
def restore_threads():
    import curata

    before = curata.get_num_threads()
    yield curata
    curata.set_num_threads(before)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lloyd_step_thread_count_does_not_change_bits(restore_threads, dtype):
    from curata import _cluster

    curata = restore_threads
    r = np.random.default_rng(9)
    x = (r.standard_normal((20000, 40)) * 3 + 1e3 * (dtype == np.float32)).astype(dtype)
    c = x[r.choice(20000, 24, replace=False)].copy()
    labels = r.integers(0, 24, 20000)
    out = []
    for t in (1, 2, 3):
        curata.set_num_threads(t)
        lab, dist = _cluster._assign(x, _sq(x), c)
        sums = _cluster._cluster_sums(x, labels, 24)
        res = curate.kmeans(x[:6000], 8, n_iter=5, seed=1)
        few = _cluster._assign(x[:300, :32], _sq(x[:300, :32]), x[:300, :32] + dtype(0.5))  # 5 row blocks
        out.append((lab.tobytes(), dist.tobytes(), sums.tobytes(), res.labels.tobytes(), res.centroids.tobytes(),
                    few[0].tobytes(), few[1].tobytes()))
    assert out[0] == out[1] == out[2]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cluster_sums_against_add_at(dtype):
    from curata import _cluster

    r = np.random.default_rng(10)
    # 3001 rows, k = 9: 16 row chunks summed apart, then added in chunk order.
    labels = r.integers(0, 9, 3001)
    labels[labels == 4] = 5  # cluster 4 empty: sums to zero
    xi = (r.integers(-1000, 1000, (3001, 19)) * 2.0 ** r.integers(-8, 8, (1, 19))).astype(dtype)
    ref = np.zeros((9, 19))
    np.add.at(ref, labels, xi.astype(np.float64))
    # Values on a power-of-two grid with small integer parts: every partial sum is exact, so any
    # order gives the reference's bits.
    np.testing.assert_array_equal(_cluster._cluster_sums(xi, labels, 9), ref)
    np.testing.assert_array_equal(_cluster._cluster_sums(xi[:, ::2], labels, 9), ref[:, ::2])  # non-contiguous
    x = (r.standard_normal((3001, 19)) * 10.0 ** r.integers(-3, 4, (3001, 1))).astype(dtype)
    ref = np.zeros((9, 19))
    np.add.at(ref, labels, x.astype(np.float64))
    got = _cluster._cluster_sums(x, labels, 9)
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(got[4], 0.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cluster_sums_few_rows_per_cluster_sequential_bits(restore_threads, dtype):
    # N < 32 k: one chunk, column ranges on two threads, each a sequential loop over the rows in
    # order: exactly np.add.at's additions (which apply the rows in order).
    from curata import _cluster

    restore_threads.set_num_threads(2)
    r = np.random.default_rng(11)
    x = (r.standard_normal((4000, 200)) * 10.0 ** r.integers(-3, 4, (4000, 1))).astype(dtype)
    labels = r.integers(0, 400, 4000)
    ref = np.zeros((400, 200))
    np.add.at(ref, labels, x.astype(np.float64))
    np.testing.assert_array_equal(_cluster._cluster_sums(x, labels, 400), ref)


def test_cluster_sums_bad_labels():
    from curata import _core

    x = np.ones((4, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\], got 3 at row 1"):
        _core.cluster_sums(x, np.array([0, 3, 1, 2]), 3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\], got -1 at row 0"):
        _core.cluster_sums(x, np.array([-1, 0, 1, 2]), 3)
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\), got \(3,\)"):
        _core.cluster_sums(x, np.array([0, 1, 2]), 3)


def test_kmeans_k_equals_n_and_k_one(rng):
    x = rng.standard_normal((60, 7)).astype(np.float32)
    r = curate.kmeans(x, 60, seed=0)
    np.testing.assert_array_equal(np.sort(r.labels), np.arange(60))
    np.testing.assert_array_equal(np.sort(r.centroids, axis=0), np.sort(x, axis=0))
    assert r.inertia <= 1e-5 * _sq(x).sum()  # 0 up to the rounding of |x|^2 + |c|^2 - 2 x.c
    r1 = curate.kmeans(x, 1, seed=0)
    np.testing.assert_array_equal(r1.labels, 0)
    np.testing.assert_allclose(r1.centroids[0], x.astype(np.float64).mean(axis=0), rtol=1e-6, atol=1e-7)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 40),
    k=st.integers(1, 30),
    d=st.integers(1, 35),
    grid=st.booleans(),
    offset=st.sampled_from([0.0, 1e4, -3e3]),
    f64=st.booleans(),
    seed=st.integers(0, 2**31 - 1),
)
def test_assign_fuzz_labels_equal_reference(n, k, d, grid, offset, f64, seed):
    r = np.random.default_rng(seed)
    dtype = np.float64 if f64 else np.float32
    if grid:  # quarter-integer grid: exact float64 distances, many exact ties
        x = offset + r.integers(-3, 4, (n, d)) * 0.25
        c = offset + r.integers(-3, 4, (k, d)) * 0.25
    else:
        x = offset + r.standard_normal((n, d))
        c = offset + r.standard_normal((k, d)) * 0.5
    x = x.astype(dtype)
    c = c.astype(dtype)
    _check_assign(x, c)
    np.testing.assert_array_equal(_check_assign(x, c)[0], _old_assign(x, _sq(x), c)[0])


@pytest.mark.parametrize("metric, scale", [("cosine", 1.0), ("l2", 2.0**60)])
def test_k_center_greedy_peak_memory_is_12_bytes_per_value(metric, scale):
    # Documented peak beyond the input: one float64 copy (8 N D) + the centred float32 scan
    # (4 N D). The float64 conversion of float32 input is curata's own and is normalised / scaled
    # in place; before the fix, the conversion came back as a reshape view (owndata False), was
    # taken for the caller's array, and cosine normalisation or power-of-two scaling made a second
    # float64 copy: 16 N D.
    import tracemalloc

    n, d = 20_000, 128  # D large enough that the O(N) float64 vectors stay below 1 byte per value
    x = (np.random.default_rng(0).standard_normal((n, d)) * scale).astype(np.float32)
    tracemalloc.start()
    try:
        curate.k_center_greedy(x, 5, metric=metric)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 13.5 * n * d, peak / (n * d)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_k_center_greedy_never_modifies_the_callers_array(metric):
    # The in-place normalisation / scaling may only touch curata's own conversion: float64
    # arrays, views of a larger array (whose base owns the buffer), huge values (scaled) and
    # torch tensors sharing memory with their numpy view must come back unchanged.
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    big = rng.standard_normal((600, 16))
    inputs = [big[:300, :8].copy(), big[:300], big[:, ::2], big[:300] * 2.0**70, torch.tensor(big[:300])]
    for x in inputs:
        before = x.clone() if isinstance(x, torch.Tensor) else x.copy()
        curate.k_center_greedy(x, 5, metric=metric)
        assert (x == before).all()
    before = big.copy()
    curate.k_center_greedy(big[:300], 5, metric=metric)
    assert np.array_equal(big, before)
