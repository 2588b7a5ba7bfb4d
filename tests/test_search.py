"""curata.search: exact kNN against a float64 numpy brute force, faiss-cpu and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import curata
from curata import search
from search_reference import scores64

METRICS = ("ip", "l2", "cosine")


# ------------------------------------------------------------------------------ reference
def ref_scores(base, queries, metric):
    """float64 (M, N) scores, larger is better (negated squared distance for l2)."""
    s = scores64(base, queries, metric)
    return -s if metric == "l2" else s


def ref_knn_exact(scores, k):
    """Best k by (score desc, index asc): the documented tie rule."""
    m, n = scores.shape
    idx = np.empty((m, k), dtype=np.int64)
    for i in range(m):
        order = np.lexsort((np.arange(n), -scores[i]))
        idx[i] = order[:k]
    return idx


def as_score(d, metric):
    d = np.asarray(d, dtype=np.float64)
    return -d if metric == "l2" else d


def check_against_reference(base, queries, k, metric, d, i, scale=None):
    """Neighbour sets may differ from float64 only among near-ties: every returned neighbour is
    within tolerance of the k-th best reference score, the reported distances match the float64
    distance of the returned index, and rows are sorted best first without repeats."""
    s = ref_scores(base, queries, metric)
    d = np.asarray(d)
    i = np.asarray(i)
    m = s.shape[0]
    assert d.shape == i.shape == (m, k)
    assert d.dtype == np.float32 and i.dtype == np.int64
    if scale is None:
        b = np.asarray(base, np.float64)
        q = np.asarray(queries, np.float64)
        bn = (b**2).sum(1).max() if metric != "cosine" else 1.0
        qn = (q**2).sum(1).max() if metric != "cosine" else 1.0
        scale = np.sqrt(bn * qn) + (bn + qn if metric == "l2" else 0.0) + 1e-30
    tol = 1e-5 * scale
    kth = -np.sort(-s, axis=1)[:, k - 1]
    got = np.take_along_axis(s, i, axis=1)
    assert np.all(got >= kth[:, None] - tol)
    np.testing.assert_allclose(as_score(d, metric), got, atol=tol, rtol=0)
    sc = as_score(d, metric)
    assert np.all(np.diff(sc, axis=1) <= 0)
    for row in i:
        assert len(set(row.tolist())) == k


# ------------------------------------------------------------------------------ correctness
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("m", [1, 5, 19, 20, 37, 250])
def test_random_against_float64(rng, metric, m):
    base = rng.standard_normal((1500, 37)).astype(np.float32)
    queries = rng.standard_normal((m, 37)).astype(np.float32)
    d, i = search.knn(base, queries, 10, metric)
    check_against_reference(base, queries, 10, metric, d, i)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_integer_data_exact_with_index_ties(rng, metric):
    # Small integers: float32 arithmetic is exact, so ties are real and the tie rule is testable.
    base = rng.integers(-2, 3, size=(300, 5)).astype(np.float32)
    base[100:110] = base[3]  # exact duplicates
    queries = rng.integers(-2, 3, size=(60, 5)).astype(np.float32)
    queries[:3] = base[3]
    for k in (1, 7, 300):
        d, i = search.knn(base, queries, k, metric)
        ref = ref_knn_exact(ref_scores(base, queries, metric), k)
        np.testing.assert_array_equal(i, ref)
        np.testing.assert_array_equal(as_score(d, metric), np.take_along_axis(ref_scores(base, queries, metric), ref, 1))


@pytest.mark.parametrize("metric", METRICS)
def test_k_equals_n_and_k_one(rng, metric):
    base = rng.standard_normal((50, 8)).astype(np.float32)
    queries = rng.standard_normal((30, 8)).astype(np.float32)
    for k in (1, 50):
        d, i = search.knn(base, queries, k, metric)
        check_against_reference(base, queries, k, metric, d, i)
    _, i = search.knn(base, queries, 50, metric)
    assert np.all(np.sort(i, axis=1) == np.arange(50))


@pytest.mark.parametrize("metric", METRICS)
def test_dimension_one_and_tiny(rng, metric):
    base = rng.standard_normal((7, 1)).astype(np.float32)
    queries = rng.standard_normal((4, 1)).astype(np.float32)
    d, i = search.knn(base, queries, 3, metric)
    check_against_reference(base, queries, 3, metric, d, i)
    d, i = search.knn(base[:1], queries, 1, metric)
    assert np.all(i == 0)


def test_l2_self_distance_exactly_zero(rng):
    x = rng.standard_normal((100, 33)).astype(np.float32) * 100
    d, i = search.knn(x, x, 1, "l2")
    np.testing.assert_array_equal(i[:, 0], np.arange(100))
    np.testing.assert_array_equal(d[:, 0], 0.0)


def test_cosine_zero_vector_has_similarity_zero(rng):
    base = rng.standard_normal((10, 4)).astype(np.float32)
    base[2] = 0
    queries = np.vstack([np.zeros((1, 4), np.float32), base[:1]])
    d, i = search.knn(base, queries, 10, "cosine")
    np.testing.assert_array_equal(d[0], 0.0)
    np.testing.assert_array_equal(i[0], np.arange(10))  # all tied: index order
    assert d[1][i[1] == 2] == 0.0


def test_results_independent_of_batch_and_threads(rng):
    base = rng.standard_normal((3000, 40)).astype(np.float32)
    queries = rng.standard_normal((64, 40)).astype(np.float32)
    for metric in METRICS:
        d, i = search.knn(base, queries, 5, metric)
        for r in (0, 17, 63):  # the single-query scan path gives the same bits
            d1, i1 = search.knn(base, queries[r : r + 1], 5, metric)
            np.testing.assert_array_equal(d1[0], d[r])
            np.testing.assert_array_equal(i1[0], i[r])
        before = curata.get_num_threads()
        try:
            curata.set_num_threads(1)
            d2, i2 = search.knn(base, queries, 5, metric)
            d3, i3 = search.knn(base, queries[:3], 5, metric)
        finally:
            curata.set_num_threads(before)
        np.testing.assert_array_equal(d2, d)
        np.testing.assert_array_equal(i2, i)
        np.testing.assert_array_equal(d3, d[:3])
        np.testing.assert_array_equal(i3, i[:3])


def test_multithreaded_paths_match_single_thread(rng):
    # Large enough that both the query-block path (64 queries) and the base-split scan path
    # (7 queries, per-thread heaps merged) use several threads when the machine has them.
    base = rng.standard_normal((20000, 64)).astype(np.float32)
    base[15000] = base[10]  # a duplicate across the two halves of the base split
    queries = np.vstack([base[10:11], rng.standard_normal((63, 64)).astype(np.float32)])
    for metric in METRICS:
        for m in (64, 7):
            d, i = search.knn(base, queries[:m], 12, metric)
            before = curata.get_num_threads()
            try:
                curata.set_num_threads(1)
                d1, i1 = search.knn(base, queries[:m], 12, metric)
            finally:
                curata.set_num_threads(before)
            np.testing.assert_array_equal(d, d1)
            np.testing.assert_array_equal(i, i1)
            check_against_reference(base, queries[:m], 12, metric, d, i)
        if metric == "l2":
            assert i[0, 0] == 10 and i[0, 1] == 15000 and d[0, 0] == d[0, 1] == 0.0


def test_empty_queries(rng):
    base = rng.standard_normal((5, 3)).astype(np.float32)
    d, i = search.knn(base, np.zeros((0, 3), np.float32), 2)
    assert d.shape == i.shape == (0, 2)


# ------------------------------------------------------------------------------ far from the origin
def centred_scale(base, queries):
    """The l2 tolerance scale of data shifted to its centre: the core computes l2 on q - mu and
    b - mu (mu near the base mean), so its error scales with those norms, not with |q|^2 + |b|^2."""
    b = np.asarray(base, np.float64)
    q = np.asarray(queries, np.float64)
    mu = b.mean(0)
    bn = ((b - mu) ** 2).sum(1).max()
    qn = ((q - mu) ** 2).sum(1).max()
    return np.sqrt(bn * qn) + bn + qn + 1e-30


def assert_recall_one(base, queries, k, d, i, scale):
    """Every returned neighbour is within the centred tolerance of the k-th best float64 distance,
    distances match float64, and where the k-th and (k+1)-th float64 distances are farther apart
    than the tolerance the neighbour set is exactly the float64 one (recall 1.0)."""
    check_against_reference(base, queries, k, "l2", d, i, scale=scale)
    s = ref_scores(base, queries, "l2")
    order = np.argsort(-s, axis=1, kind="stable")
    if k < s.shape[1]:
        gap = np.take_along_axis(s, order[:, k - 1 : k], 1)[:, 0] - np.take_along_axis(s, order[:, k : k + 1], 1)[:, 0]
        clear = gap > 2e-5 * scale
        assert clear.mean() > 0.9
    else:
        clear = np.ones(s.shape[0], bool)
    for row in np.flatnonzero(clear):
        assert set(i[row].tolist()) == set(order[row, :k].tolist())


@pytest.mark.parametrize("offset", [300.0, 1e4])
@pytest.mark.parametrize("dim", [3, 64, 130])
@pytest.mark.parametrize("m", [5, 50])
def test_l2_offset_data_exact_against_float64(rng, offset, dim, m):
    # |q|^2 + |b|^2 - 2<q, b> in float32 cancels catastrophically here (errors ~1e-7 * 2 |x|^2, far
    # above the gaps between neighbours); the core shifts both sides by the base's centre first.
    base = (rng.standard_normal((1500, dim)) + offset).astype(np.float32)
    queries = (rng.standard_normal((m, dim)) + offset).astype(np.float32)
    scale = centred_scale(base, queries)
    d, i = search.knn(base, queries, 10, "l2")
    assert_recall_one(base, queries, 10, d, i, scale)
    # scan path (m < 20) and query-block path give the same bits
    d1, i1 = search.knn(base, queries[:1], 10, "l2")
    np.testing.assert_array_equal(d1[0], d[0])
    np.testing.assert_array_equal(i1[0], i[0])
    gd, gi = search.knn_graph(base[:400], 5, "l2")
    s = ref_scores(base[:400], base[:400], "l2")
    np.fill_diagonal(s, -np.inf)
    tol = 1e-5 * centred_scale(base[:400], base[:400])
    kth = -np.sort(-s, axis=1)[:, 4]
    assert np.all(np.take_along_axis(s, gi, 1) >= kth[:, None] - tol)
    np.testing.assert_allclose(-gd.astype(np.float64), np.take_along_axis(s, gi, 1), atol=tol, rtol=0)
    # float16 storage: exact with respect to the rounded vectors, same centred tolerance
    if offset < 6e4:
        b16 = base.astype(np.float16)
        d16, i16 = search.knn(b16, queries, 10, "l2")
        check_against_reference(b16, queries, 10, "l2", d16, i16, scale=centred_scale(b16, queries))


def test_l2_offset_exact_copy_distance_zero(rng):
    x = (rng.standard_normal((300, 64)) + 1e4).astype(np.float32)
    x[200] = x[17]  # an exact duplicate
    for q in (x, x[:7], x[190:210]):
        d, i = search.knn(x, q, 2, "l2")
        assert np.all(d[:, 0] == 0.0)
    d, i = search.knn(x, x[17:18], 2, "l2")
    np.testing.assert_array_equal(i[0], [17, 200])
    np.testing.assert_array_equal(d[0], [0.0, 0.0])
    gd, gi = search.knn_graph(x, 1, "l2")
    assert gi[17, 0] == 200 and gi[200, 0] == 17 and gd[17, 0] == gd[200, 0] == 0.0
    assert np.all(gd[np.arange(300) != 17][:, 0][np.arange(299) != 199] > 0)
    h = x.astype(np.float16)
    d, i = search.knn(h, h.astype(np.float32), 1, "l2")
    assert np.all(d[:, 0] == 0.0)


def test_l2_offset_integer_data_keeps_exact_ties(rng):
    # The shift is rounded to a power-of-two grid below the data's spread, so integer data stays
    # integer-exact after shifting: ties are real and the index tie rule still holds.
    base = (rng.integers(-2, 3, size=(300, 5)) + 1000).astype(np.float32)
    base[100:110] = base[3]
    queries = (rng.integers(-2, 3, size=(60, 5)) + 1000).astype(np.float32)
    queries[:3] = base[3]
    for k in (1, 7, 300):
        d, i = search.knn(base, queries, k, "l2")
        ref = ref_knn_exact(ref_scores(base, queries, "l2"), k)
        np.testing.assert_array_equal(i, ref)
        np.testing.assert_array_equal(-d.astype(np.float64), np.take_along_axis(ref_scores(base, queries, "l2"), ref, 1))


# ------------------------------------------------------------------------------ input kinds
def test_float64_noncontiguous_float16_and_torch(rng):
    base64 = rng.standard_normal((200, 24))
    queries64 = rng.standard_normal((30, 48))[:, ::2]  # non-contiguous
    assert not queries64.flags.c_contiguous
    d, i = search.knn(base64, queries64, 4, "l2")
    d32, i32 = search.knn(base64.astype(np.float32), np.ascontiguousarray(queries64, np.float32), 4, "l2")
    np.testing.assert_array_equal(d, d32)
    np.testing.assert_array_equal(i, i32)
    check_against_reference(base64, queries64, 4, "l2", d, i)
    d16, i16 = search.knn(base64.astype(np.float16), queries64.astype(np.float16), 4, "l2")
    check_against_reference(base64.astype(np.float16), queries64.astype(np.float16), 4, "l2", d16, i16)
    torch = pytest.importorskip("torch")
    dt, it = search.knn(torch.from_numpy(base64), torch.from_numpy(queries64), 4, "l2")
    assert isinstance(dt, torch.Tensor) and isinstance(it, torch.Tensor)
    assert dt.dtype == torch.float32 and it.dtype == torch.int64
    np.testing.assert_array_equal(dt.numpy(), d)
    np.testing.assert_array_equal(it.numpy(), i)
    gt, gi = search.knn_graph(torch.from_numpy(base64), 3)
    assert isinstance(gi, torch.Tensor)


# ------------------------------------------------------------------------------ knn_graph
@pytest.mark.parametrize("metric", METRICS)
def test_knn_graph_excludes_self_keeps_duplicates(rng, metric):
    x = rng.standard_normal((120, 16)).astype(np.float32)
    x[50] = x[10]  # exact duplicate pair
    d, i = search.knn_graph(x, 6, metric)
    assert d.shape == i.shape == (120, 6)
    assert not np.any(i == np.arange(120)[:, None])
    s = ref_scores(x, x, metric)
    np.fill_diagonal(s, -np.inf)
    kth = -np.sort(-s, axis=1)[:, 5]
    got = np.take_along_axis(s, i, 1)
    assert np.all(got >= kth[:, None] - 1e-4)
    np.testing.assert_allclose(as_score(d, metric), got, atol=1e-4)
    if metric != "ip":
        assert i[10, 0] == 50 and i[50, 0] == 10
    if metric == "l2":
        assert d[10, 0] == 0.0 and d[50, 0] == 0.0


def test_knn_graph_small_and_k_max(rng):
    x = rng.standard_normal((2, 3)).astype(np.float32)
    d, i = search.knn_graph(x, 1, "l2")
    np.testing.assert_array_equal(i[:, 0], [1, 0])
    x = rng.integers(-3, 4, size=(25, 4)).astype(np.float32)
    for n in (5, 25):  # scan path (n < 20) and block path
        d, i = search.knn_graph(x[:n], n - 1, "l2")
        s = ref_scores(x[:n], x[:n], "l2")
        np.fill_diagonal(s, -np.inf)
        ref = ref_knn_exact(s, n - 1)
        np.testing.assert_array_equal(i, ref)


# ------------------------------------------------------------------------------ bad input
def test_bad_input(rng):
    base = rng.standard_normal((10, 4)).astype(np.float32)
    q = rng.standard_normal((3, 4)).astype(np.float32)
    bad = base.copy()
    bad[7, 2] = np.nan
    with pytest.raises(ValueError, match=r"base must be finite.*row 7"):
        search.knn(bad, q, 2)
    badq = q.copy()
    badq[1, 0] = np.inf
    with pytest.raises(ValueError, match=r"queries must be finite.*row 1"):
        search.knn(base, badq, 2)
    with pytest.raises(ValueError, match=r"x must be finite.*row 7"):
        search.knn_graph(bad, 2)
    # Non-finite rows are found through their (non-finite) dot products: check both paths, every
    # metric, infinities meeting zeros (inf * 0 = NaN) and opposite infinities, and no queries.
    big = rng.standard_normal((300, 4)).astype(np.float32)
    for bad_row, value in ((0, np.nan), (123, np.inf), (299, -np.inf)):
        b2 = big.copy()
        b2[bad_row, 1] = value
        b2[bad_row, 3] = -value
        for m in (0, 1, 25):
            queries = np.zeros((m, 4), np.float32)
            queries[:, 1:] = 1.0
            for metric in METRICS:
                with pytest.raises(ValueError, match=rf"base must be finite.*row {bad_row}$"):
                    search.knn(b2, queries, 3, metric)
        with pytest.raises(ValueError, match=rf"x must be finite.*row {bad_row}$"):
            search.knn_graph(b2, 3)
        q2 = np.vstack([big[:30], big[:30]])
        q2[bad_row % 60, 0] = value
        with pytest.raises(ValueError, match=rf"queries must be finite.*row {bad_row % 60}$"):
            search.knn(big, q2, 2, "l2")
    # Huge finite values overflow float32 dot products: not an error (NaN/inf scores rank last).
    huge = np.full((5, 4), 1e30, np.float32)
    huge[1] = [1, 1, 1, 1]
    huge[3] = [1, 2, 1, 1]
    for metric in METRICS:
        d, i = search.knn(huge, np.ones((2, 4), np.float32), 5, metric)
        if metric == "l2":  # overflowed distances (inf or NaN) rank last, whatever their index
            np.testing.assert_array_equal(i[0], [1, 3, 0, 2, 4])
            np.testing.assert_array_equal(d[0, :2], [0, 1])
            assert np.all(np.isinf(d[0, 2:]))
    with pytest.raises(ValueError, match=r"queries must have 4 columns"):
        search.knn(base, q[:, :3], 2)
    with pytest.raises(ValueError, match=r"k must be in \[1, 10\]"):
        search.knn(base, q, 11)
    with pytest.raises(ValueError, match=r"k must be in \[1, 10\]"):
        search.knn(base, q, 0)
    with pytest.raises(ValueError, match=r"k must be in \[1, 9\]"):
        search.knn_graph(base, 10)
    with pytest.raises(TypeError, match="k must be an int"):
        search.knn(base, q, 2.0)
    with pytest.raises(TypeError, match="k must be an int"):
        search.knn(base, q, True)
    with pytest.raises(ValueError, match="base must have at least one row"):
        search.knn(np.zeros((0, 4), np.float32), q, 1)
    with pytest.raises(ValueError, match=r"base must have shape \(N, D\)"):
        search.knn(base[0], q, 1)
    with pytest.raises(ValueError, match="at least one column"):
        search.knn(np.zeros((3, 0), np.float32), np.zeros((1, 0), np.float32), 1)
    with pytest.raises(ValueError, match="metric must be one of"):
        search.knn(base, q, 1, "euclidean")
    with pytest.raises(ValueError, match="x must have at least 2 rows"):
        search.knn_graph(base[:1], 1)
    with pytest.raises(TypeError, match="base must have a real floating or integer dtype"):
        search.knn(np.array([["a"]]), q, 1)


# ------------------------------------------------------------------------------ fuzz
@given(
    n=st.integers(1, 40),
    m=st.integers(0, 30),
    dim=st.integers(1, 11),
    metric=st.sampled_from(["ip", "l2"]),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_fuzz_exact_small_integers(n, m, dim, metric, seed, data):
    r = np.random.default_rng(seed)
    base = r.integers(-3, 4, size=(n, dim)).astype(np.float32)
    queries = r.integers(-3, 4, size=(m, dim)).astype(np.float32)
    k = data.draw(st.integers(1, n))
    d, i = search.knn(base, queries, k, metric)
    s = ref_scores(base, queries, metric)
    ref = ref_knn_exact(s, k)
    np.testing.assert_array_equal(i, ref)
    np.testing.assert_array_equal(as_score(d, metric), np.take_along_axis(s, ref, 1) if m else np.zeros((0, k)))


@given(n=st.integers(2, 30), dim=st.integers(1, 9), seed=st.integers(0, 2**32 - 1), data=st.data())
def test_fuzz_cosine_and_graph(n, dim, seed, data):
    r = np.random.default_rng(seed)
    x = (r.standard_normal((n, dim)) * r.choice([1e-3, 1.0, 1e3])).astype(np.float32)
    k = data.draw(st.integers(1, n - 1))
    d, i = search.knn(x, x, k, "cosine")
    check_against_reference(x, x, k, "cosine", d, i)
    gd, gi = search.knn_graph(x, k, "l2")
    s = ref_scores(x, x, "l2")
    np.fill_diagonal(s, -np.inf)
    scale = 2 * (x.astype(np.float64) ** 2).sum(1).max() + 1e-30
    kth = -np.sort(-s, axis=1)[:, k - 1]
    assert np.all(np.take_along_axis(s, gi, 1) >= kth[:, None] - 1e-5 * scale)
    assert not np.any(gi == np.arange(n)[:, None])


# ------------------------------------------------------------------------------ peers
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_against_faiss(rng, metric):
    faiss = pytest.importorskip("faiss")
    base = rng.standard_normal((4000, 64)).astype(np.float32)
    queries = rng.standard_normal((100, 64)).astype(np.float32)
    index = faiss.IndexFlatIP(64) if metric == "ip" else faiss.IndexFlatL2(64)
    index.add(base)
    fd, fi = index.search(queries, 10)
    d, i = search.knn(base, queries, 10, metric)
    np.testing.assert_allclose(d, fd, rtol=1e-4, atol=1e-3)
    # Index sets agree except where float32 rounding reorders a near-tie.
    agree = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(i.tolist(), fi.tolist())])
    assert agree > 0.995
    check_against_reference(base, queries, 10, metric, d, i)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_against_sklearn(rng, metric):
    neighbors = pytest.importorskip("sklearn.neighbors")
    x = rng.standard_normal((800, 20)).astype(np.float32)
    nn = neighbors.NearestNeighbors(n_neighbors=5, algorithm="brute", metric="euclidean" if metric == "l2" else "cosine")
    nn.fit(x.astype(np.float64))
    sd, si = nn.kneighbors(x[:50].astype(np.float64))
    d, i = search.knn(x, x[:50], 5, metric)
    if metric == "l2":
        np.testing.assert_allclose(np.sqrt(d), sd, atol=1e-3)
    else:
        np.testing.assert_allclose(1 - d, sd, atol=1e-5)
    assert np.mean(i == si) > 0.99


def test_eight_lane_kernel_in_subprocess(tmp_path):
    # AVX-512 machines use a 16-lane kernel; CURATA_KNN_NO_AVX512=1 forces the 8-lane one that
    # other CPUs run, so both are checked here against the float64 reference.
    import os
    import subprocess
    import sys

    script = tmp_path / "run.py"
    script.write_text(
        "import numpy as np, curata\n"
        "from curata import search\n"
        "r = np.random.default_rng(7)\n"
        "b = r.standard_normal((3000, 45)).astype(np.float32)\n"
        "q = r.standard_normal((50, 45)).astype(np.float32)\n"
        "out = {}\n"
        "for metric in ('ip', 'l2', 'cosine'):\n"
        "    for m in (50, 3):\n"
        "        d, i = search.knn(b, q[:m], 6, metric)\n"
        "        out[f'{metric}{m}d'], out[f'{metric}{m}i'] = d, i\n"
        f"np.savez(r'{tmp_path / 'out.npz'}', **out)\n"
    )
    env = dict(os.environ, CURATA_KNN_NO_AVX512="1")
    subprocess.run([sys.executable, str(script)], env=env, check=True, timeout=120)
    got = np.load(tmp_path / "out.npz")
    r = np.random.default_rng(7)
    b = r.standard_normal((3000, 45)).astype(np.float32)
    q = r.standard_normal((50, 45)).astype(np.float32)
    for metric in METRICS:
        np.testing.assert_array_equal(got[f"{metric}3d"], got[f"{metric}50d"][:3])
        np.testing.assert_array_equal(got[f"{metric}3i"], got[f"{metric}50i"][:3])
        check_against_reference(b, q, 6, metric, got[f"{metric}50d"], got[f"{metric}50i"])


def _bits(a):
    return a.view(np.uint32) if a.dtype == np.float32 else a


def _same_bits_with_and_without_hand_kernels(run):
    """run() -> list of arrays, called with the hand-written kernels off, then on: same bits."""
    from curata import _core

    results = []
    previous = _core._set_hand_kernels(False)
    try:
        for enabled in (False, True):
            _core._set_hand_kernels(enabled)
            results.append(run())
    finally:
        _core._set_hand_kernels(previous)
    for portable, hand in zip(*results):
        np.testing.assert_array_equal(_bits(portable), _bits(hand))


def _in_eight_lane_subprocess(code):
    """Runs `code` (which may `import test_search`) with CURATA_KNN_NO_AVX512=1: the 8-lane
    kernels that CPUs with AVX2 but no AVX-512 run."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, CURATA_KNN_NO_AVX512="1")
    here = os.path.dirname(os.path.abspath(__file__))
    env["PYTHONPATH"] = here + os.pathsep + env.get("PYTHONPATH", "")
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=300, cwd=here)


def _outer_product_against_twin(d):
    """Every search path that serves blocks of >= 11 queries, with the hand-written kernels on and
    off; asserts the same bits, and that a query's results do not depend on its batch."""
    rng = np.random.default_rng(d)
    base = rng.standard_normal((900, d)).astype(np.float32)
    base[5] = 0.0
    base[6] = -0.0
    base[7, ::2] = -0.0
    queries = rng.standard_normal((151, d)).astype(np.float32)
    queries[3] = base[10]
    queries[4] = -0.0
    queries[8] = base[7]
    nonzero = base.copy()  # the cosine Index refuses zero vectors
    nonzero[5:8] = 1.0

    def run():
        out = []
        for m in (151, 14):  # far from the origin: L2 shifts the rows before the dots
            out += search.knn(base + 300.0, queries[:m] + 300.0, 9, "l2")
        for metric in METRICS:
            for m in (151, 33, 21, 14):
                out += search.knn(base, queries[:m], 9, metric)
            out += search.knn_graph(base, 6, metric)
            radius = d * 1.0 if metric == "l2" else 0.3
            for dtype in ("float32", "float16"):
                index = search.Index(d, metric=metric, dtype=dtype)
                index.add(nonzero)
                out += index.search(queries, 5)
                out += index.range_search(queries, radius)
        return out

    _same_bits_with_and_without_hand_kernels(run)
    for metric in METRICS:  # one query at a time (the scan kernel) gives the bits of the batch
        batch_d, batch_i = search.knn(base, queries, 9, metric)
        for r in (0, 3, 4, 8, 150):
            one_d, one_i = search.knn(base, queries[r : r + 1], 9, metric)
            np.testing.assert_array_equal(_bits(one_d[0]), _bits(batch_d[r]))
            np.testing.assert_array_equal(one_i[0], batch_i[r])


@pytest.mark.parametrize("d", [1, 7, 16, 17, 40, 128, 131])
def test_outer_product_kernel_equals_its_portable_twin(d):
    # Blocks of >= 11 queries (knn, the Index's search and range_search, knn_graph's row blocks) go
    # through a hand-written outer-product kernel that evaluates every dot in the order of the dot
    # kernel (W lane sums, reduce()'s tree). Switched off, the dot kernel serves them: the results
    # must be the same bits. Rows of zeros and negative zeros, exact copies and d % 16 != 0 are
    # where a reordering would show (a swapped pair of passes fails this test).
    _outer_product_against_twin(d)


def test_eight_lane_outer_product_kernel_in_subprocess():
    _in_eight_lane_subprocess("import test_search as t\nfor d in (3, 8, 9, 40, 131):\n    t._outer_product_against_twin(d)\n")


def _underflowing_dots_against_twin(d):
    """Inner products whose every product underflows below the smallest subnormal: a fused
    multiply-add onto +0 then rounds to -0, so lane sums can be -0. The dot kernel's zero-padded
    tail adds +0 * +0 to the lanes past d (turning -0 into +0); the outer-product kernel must give
    the same sign of zero."""
    base = np.full((40, d), 1e-30, np.float32)
    base[1::3] = -1e-30  # +0 dots among the -0 ones
    queries = np.full((30, d), -1e-30, np.float32)
    queries[::4, :: 2] = 1e-30

    def run():
        out = list(search.knn(base, queries, 40, "ip"))
        out += list(search.knn(base, queries[:12], 40, "ip"))
        out += list(search.knn_graph(np.concatenate([base, queries]), 69, "ip"))
        index = search.Index(d, metric="ip")
        index.add(base)
        out += list(index.search(queries, 40))
        return out

    _same_bits_with_and_without_hand_kernels(run)
    batch_d, batch_i = search.knn(base, queries, 40, "ip")
    for r in (0, 1, 29):  # one query at a time: the dot kernel
        one_d, one_i = search.knn(base, queries[r : r + 1], 40, "ip")
        np.testing.assert_array_equal(_bits(one_d[0]), _bits(batch_d[r]))
        np.testing.assert_array_equal(one_i[0], batch_i[r])


@pytest.mark.parametrize("d", [9, 17, 31, 33, 40])
def test_outer_product_kernel_keeps_the_sign_of_underflowing_dots(d):
    _underflowing_dots_against_twin(d)


def test_eight_lane_underflowing_dots_in_subprocess():
    _in_eight_lane_subprocess("import test_search as t\nfor d in (9, 17, 20):\n    t._underflowing_dots_against_twin(d)\n")


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("m", [3, 150])  # the scan path (per-thread buffers, merged) and query blocks
def test_large_k_ties_in_index_order(m, threads):
    # From k = 128 on, candidates are kept in a buffer cut back to the best k (nth_element) instead
    # of a heap. Small integers make the inner products exact and full of ties: the result must be
    # the reference order (score descending, index ascending) exactly, for k around the switch and
    # up to every row.
    rng = np.random.default_rng(m + threads)
    base = rng.integers(-2, 3, (3000, 6)).astype(np.float32)
    queries = rng.integers(-2, 3, (m, 6)).astype(np.float32)
    exact = queries.astype(np.float64) @ base.astype(np.float64).T
    previous = curata.get_num_threads()
    curata.set_num_threads(threads)
    try:
        for k in (127, 128, 129, 700, 2999, 3000):
            d, i = search.knn(base, queries, k, "ip")
            order = np.lexsort((np.broadcast_to(np.arange(3000), exact.shape), -exact), axis=1)[:, :k]
            np.testing.assert_array_equal(i, order)
            np.testing.assert_array_equal(d, np.take_along_axis(exact, order, axis=1).astype(np.float32))
    finally:
        curata.set_num_threads(previous)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_large_k_scan_path_split_across_threads_exact(metric):
    # Fewer than 20 queries on a base large enough (M N D >= 2^23) for two threads: each thread keeps
    # its own candidates for its half of the base (from k = 128 on, buffers with room for at most
    # that half), merged at the end. Small integers: exact scores, many ties, so the result must be
    # the reference order (score descending, index ascending) exactly, for k below and above the
    # half and up to N.
    rng = np.random.default_rng(7)
    n, dim = 45_000, 64
    base = rng.integers(-2, 3, (n, dim)).astype(np.float32)
    base[n // 2 + 5] = base[3]  # a duplicate across the two halves
    queries = rng.integers(-2, 3, (3, dim)).astype(np.float32)
    queries[1] = base[n // 2 + 5]
    b64, q64 = base.astype(np.float64), queries.astype(np.float64)
    if metric == "ip":
        score = q64 @ b64.T
    else:
        score = -((q64 * q64).sum(1)[:, None] + (b64 * b64).sum(1)[None, :] - 2 * q64 @ b64.T)
    order = np.lexsort((np.broadcast_to(np.arange(n), score.shape), -score), axis=1)
    previous = curata.get_num_threads()
    try:
        for k in (127, 128, 129, 5000, 22_499, 22_501, 30_000, n):
            results = []
            for threads in (2, 1):
                curata.set_num_threads(threads)
                results.append(search.knn(base, queries, k, metric))
            (d2, i2), (d1, i1) = results
            np.testing.assert_array_equal(i2, order[:, :k])
            want = np.take_along_axis(score, order[:, :k], axis=1)
            np.testing.assert_array_equal(d2, (want if metric == "ip" else -want).astype(np.float32))
            np.testing.assert_array_equal(i1, i2)
            np.testing.assert_array_equal(d1.view(np.uint32), d2.view(np.uint32))
    finally:
        curata.set_num_threads(previous)


def test_large_k_few_queries_memory_stays_near_the_output():
    # The scan path (fewer than 20 queries) splits the base across threads; from k = 128 on each
    # thread keeps candidate buffers. A thread is offered at most its share of the base per query
    # and the merge at most N, so with k = N the buffers must not each reserve 2k entries (that was
    # (threads + 1) x M x 2N x 16 bytes plus threads x M x N x 12 of heap rows: 9x the output at 2
    # threads, growing with the thread count).
    import subprocess
    import sys

    code = """
import numpy as np, curata
from curata import search
def hwm():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM'):
            return int(line.split()[1]) * 1024
curata.set_num_threads(2)
n, m = 200_000, 19
rng = np.random.default_rng(0)
base = rng.standard_normal((n, 4)).astype(np.float32)
queries = rng.standard_normal((m, 4)).astype(np.float32)
search.knn(base[:1000], queries, 500, "l2")  # warm up the allocator and the thread pool
before = hwm()
d, i = search.knn(base, queries, n, "l2")
out = d.nbytes + i.nbytes
assert np.all(np.diff(d, axis=1) >= 0)
print((hwm() - before - out) / out)
"""
    ratio = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                 timeout=300).stdout)
    assert ratio < 3.5, ratio


# ------------------------------------------------- cosine is scale-free, also beyond float32
@pytest.mark.parametrize("scale", [2.0**70, 2.0**-70, 2.0**120])
def test_cosine_rows_whose_float32_norms_overflow_or_underflow(rng, scale):
    # |row|^2 of such rows overflows to inf (or underflows to 0) in float32: before the fix the CPU
    # core reported similarity -inf (or 0, as for a zero vector) and returned neighbours by index.
    # Scaling rows by a power of two changes no cosine, so the results must be bit for bit those
    # of the unscaled rows, and must agree with the float64 reference.
    x = rng.standard_normal((60, 7)).astype(np.float32)
    scaled = x.copy()
    scaled[::2] *= np.float32(scale)  # mixed: every other row out of range, the rest as is
    before = scaled.copy()
    d0, i0 = search.knn(x, x[:9], 5, "cosine")
    d, i = search.knn(scaled, scaled[:9], 5, "cosine")
    np.testing.assert_array_equal(i, i0)
    np.testing.assert_array_equal(d, d0)
    np.testing.assert_array_equal(scaled, before)  # the input is not modified
    ref = scores64(x, x[:9], "cosine")
    np.testing.assert_allclose(d, np.take_along_axis(ref, i, axis=1), atol=1e-6)
    gd0, gi0 = search.knn_graph(x, 4, "cosine")
    gd, gi = search.knn_graph(scaled, 4, "cosine")
    np.testing.assert_array_equal(gi, gi0)
    np.testing.assert_array_equal(gd, gd0)


@pytest.mark.parametrize("queries", [3, 30])  # the scan path (norms per block) and query blocks
def test_cosine_rescaling_found_anywhere_in_the_base(rng, queries):
    # The core looks at every base row's scale while computing its norm (no pass of its own): one
    # huge row in the last block, or one tiny row in the first, must still be found and rescaled.
    x = rng.standard_normal((3000, 24)).astype(np.float32)
    q = rng.standard_normal((queries, 24)).astype(np.float32)
    for row, factor in ((2999, 2.0**80), (0, 2.0**-90)):
        scaled = x.copy()
        scaled[row] *= np.float32(factor)
        d, i = search.knn(scaled, q, 4, "cosine")
        d0, i0 = search.knn(x, q, 4, "cosine")
        np.testing.assert_array_equal(i, i0)
        np.testing.assert_array_equal(d, d0)


@pytest.mark.parametrize("queries", [2, 40])
def test_cosine_rows_near_the_scale_bounds_match_explicit_rescaling(rng, queries):
    # The core decides most rows from their squared norms and tests only the others' bits; the
    # result must be what rescaling the input first (the exact rule) gives, bit for bit, for rows
    # on both sides of 2^50 and 2^-50, including dense rows whose norm passes 2^99 while every
    # value stays below 2^50.
    from curata import _core

    d = 16
    x = rng.standard_normal((700, d)).astype(np.float32)
    exponents = rng.integers(-56, 57, size=700)
    exponents[::7] = rng.choice([-70, -52, -51, -50, -49, 48, 49, 50, 51, 70], size=len(exponents[::7]))
    x = np.ldexp(x, exponents[:, None]).astype(np.float32)
    x[5] = np.float32(2.0**49.9)  # |x|^2 = 16 x 2^99.8 > 2^99, largest value < 2^50: no rescale
    q = rng.standard_normal((queries, d)).astype(np.float32)
    safe = _core.cosine_safe_rows(x)
    assert safe is not None
    d0, i0 = search.knn(safe, q, 6, "cosine")
    d1, i1 = search.knn(x, q, 6, "cosine")
    np.testing.assert_array_equal(i1, i0)
    np.testing.assert_array_equal(d1.view(np.uint32), d0.view(np.uint32))
    g0 = search.knn_graph(safe, 4, "cosine")
    g1 = search.knn_graph(x, 4, "cosine")
    np.testing.assert_array_equal(g1[1], g0[1])
    np.testing.assert_array_equal(g1[0].view(np.uint32), g0[0].view(np.uint32))


def test_core_cosine_safe_rows_copies_only_when_needed(rng):
    from curata import _core

    x = rng.standard_normal((50, 9)).astype(np.float32)
    assert _core.cosine_safe_rows(x) is None  # nothing to rescale: no copy
    x[[3, 7]] *= np.array([[2.0**60], [2.0**-60]], np.float32)
    x[11] = np.float32(2.0**51) * np.sign(x[11])  # largest |value| just past each bound
    x[20] = np.float32(2.0**-51) * np.sign(x[20])
    x[30] = 0.0
    x[31, 2] = np.inf
    x[32] = 2.0**50  # the bounds themselves stay
    x[33] = 2.0**-50
    out = _core.cosine_safe_rows(x)
    changed = np.flatnonzero(np.any(out != x, axis=1))
    np.testing.assert_array_equal(changed, [3, 7, 11, 20])
    top = np.abs(out[changed]).max(axis=1)
    assert np.all((top >= 0.5) & (top < 1.0))
    ratio = out[changed] / x[changed]  # one exact power of two per row
    np.testing.assert_array_equal(ratio, ratio[:, :1] * np.ones_like(ratio))
    np.testing.assert_array_equal(np.frexp(ratio[:, 0])[0], 0.5)


def test_cosine_1e30_embeddings_find_their_neighbours(rng):
    # Not a power of two: compare against the float64 reference of the float32 data itself.
    x = (rng.standard_normal((40, 5)) * 1e30).astype(np.float32)
    d, i = search.knn(x, x, 3, "cosine")
    check_against_reference(x, x, 3, "cosine", d, i)
    assert np.all(d[:, 0] > 0.999)  # each row is its own best match, not a -inf score


def test_row_abs_max_bits_against_numpy(rng):
    # The per-row scan behind the cosine rescaling: bits of max |value| per row, both code paths.
    from curata import _core

    x = rng.standard_normal((300, 13)).astype(np.float32) * np.float32(1e-3)
    x[5] = 0.0
    x[7, 2] = -3e30
    x[9, 4] = np.inf
    x[11, 0] = np.nan
    x[13] = np.float32(1e-42)  # subnormal
    want = np.abs(x).max(axis=1).view(np.uint32).copy()
    want[11] = max(want[11], np.float32(np.nan).view(np.uint32) & 0x7FFFFFFF)
    for hw in (True, False):
        got = _core.row_abs_max_bits(x.view(np.uint32), allow_hardware=hw)
        assert got.dtype == np.uint32 and got.shape == (300,)
        np.testing.assert_array_equal(np.delete(got, 11), np.delete(want, 11))
        assert got[11] >= 0x7F800000 and got[9] == 0x7F800000 and got[5] == 0
    assert _core.row_abs_max_bits(np.zeros((0, 4), np.uint32)).shape == (0,)


def test_float64_values_beyond_float32_are_named_as_such(rng):
    # float64 1e39 became inf in the float32 conversion (with numpy's "overflow encountered in
    # cast" warning) and was then reported as "NaN or infinity in row 2", which the user never had.
    import warnings

    b = rng.standard_normal((6, 3))
    bad = b.copy()
    bad[2, 1] = -1e39
    msg = r"holds finite values beyond the float32 range \(\|v\| > 3.403e\+38\), got float64 input"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning leaks either
        with pytest.raises(ValueError, match="^base " + msg):
            search.knn(bad, b, 1)
        with pytest.raises(ValueError, match="^queries " + msg):
            search.knn(b, bad, 1)
        with pytest.raises(ValueError, match="^x " + msg):
            search.knn_graph(bad, 1)
        index = search.Index(3)
        with pytest.raises(ValueError, match="^x " + msg):
            index.add(bad)
        assert len(index) == 0
        index.add(b)
        with pytest.raises(ValueError, match="^queries " + msg):
            index.search(bad, 1)
        inf = b.copy()
        inf[4, 0] = np.inf  # a genuine infinity keeps its own message
        with pytest.raises(ValueError, match=r"^base must be finite, got NaN or infinity in row 4$"):
            search.knn(inf, b, 1)
        ok = b.copy()
        ok[0, 0] = 3e38  # within range: fine
        search.knn(ok, b, 1, "cosine")
