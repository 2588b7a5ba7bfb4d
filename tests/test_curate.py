"""curata.curate against float64 numpy brute-force references written here."""

from __future__ import annotations

import time
from collections import deque

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import curata
from curata import curate
from curata.search import knn_graph


# --------------------------------------------------------------------------- references


def ref_distances(x: np.ndarray, metric: str) -> np.ndarray:
    """Full float64 pairwise distance matrix (cosine distance or Euclidean)."""
    x = np.asarray(x, dtype=np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1)
        safe = np.where(norms == 0, 1.0, norms)
        u = x / safe[:, None]
        sim = u @ u.T
        sim[norms == 0, :] = 0.0
        sim[:, norms == 0] = 0.0
        return 1.0 - sim
    diff = x[:, None, :] - x[None, :, :]
    return np.sqrt((diff**2).sum(-1))


def ref_knn(dist: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """k nearest other rows (ties by lower index) and their distances."""
    d = dist.copy()
    np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, idx, axis=1), idx


def ref_components(n: int, edges) -> np.ndarray:
    """BFS connected components; label = smallest member."""
    adj = [[] for _ in range(n)]
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    label = np.full(n, -1, dtype=np.int64)
    for s in range(n):
        if label[s] >= 0:
            continue
        label[s] = s
        q = deque([s])
        while q:
            a = q.popleft()
            for b in adj[a]:
                if label[b] < 0:
                    label[b] = s
                    q.append(b)
    return label


def ref_near_duplicates(x, threshold, metric, k):
    dist = ref_distances(x, metric)
    d, idx = ref_knn(dist, k)
    edges = [(i, int(idx[i, j])) for i in range(len(x)) for j in range(k) if d[i, j] <= threshold]
    return ref_components(len(x), edges)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return len(set(zip(a.tolist(), b.tolist()))) == len(set(a.tolist())) == len(set(b.tolist()))


def clustered(rng, n_clusters=12, per=5, d=8, spread=1e-3):
    centers = rng.normal(size=(n_clusters, d))
    x = np.repeat(centers, per, axis=0) + spread * rng.normal(size=(n_clusters * per, d))
    return x[rng.permutation(len(x))]


# --------------------------------------------------------------------------- near_duplicates


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("k", [1, 3, 10])
def test_near_duplicates_matches_reference(metric, k):
    rng = np.random.default_rng(k)
    x = clustered(rng, spread=0.05)  # intra-cluster gaps far above float32 rounding
    d, _ = ref_knn(ref_distances(x, metric), k)
    v = np.unique(d)
    lo, hi = np.searchsorted(v, np.quantile(d, [0.2, 0.6]))
    j = lo + int(np.argmax(np.diff(v[lo : hi + 1])))  # the widest gap in the middle of the range
    threshold = 0.5 * (v[j] + v[j + 1])  # halfway between two distances: links are unambiguous
    assert v[j + 1] - v[j] > 1e-5
    got = curate.near_duplicates(x, threshold, metric=metric, k=k)
    want = ref_near_duplicates(x, threshold, metric, k)
    assert got.dtype == np.int64 and got.shape == (len(x),)
    np.testing.assert_array_equal(got, want)
    # group id = smallest row index of the group
    for g in np.unique(got):
        assert g == np.flatnonzero(got == g).min()


def test_near_duplicates_whole_clusters_with_enough_k():
    rng = np.random.default_rng(0)
    x = clustered(rng, n_clusters=10, per=4, d=16, spread=1e-4)
    truth = ref_near_duplicates(x, 1.0, "l2", len(x) - 1)  # every intra-cluster pair
    got = curate.near_duplicates(x, 0.01, metric="l2", k=3)
    assert same_partition(got, truth)
    assert len(np.unique(got)) == 10


def test_near_duplicates_chains_beyond_k():
    # a cluster of 30 copies (> k + 1) is still one group through chains
    rng = np.random.default_rng(1)
    base = rng.normal(size=(1, 6))
    x = np.vstack([base + 1e-5 * rng.normal(size=(30, 6)), rng.normal(size=(20, 6)) * 5])
    g = curate.near_duplicates(x, 1e-3, metric="l2", k=2)
    assert np.all(g[:30] == 0)
    assert len(np.unique(g[30:])) == 20


def test_near_duplicates_misses_pairs_outside_the_k_lists():
    # two tight clusters of k + 1 points, 1.0 apart: every cross pair is within the threshold,
    # but each row's k nearest are all in its own cluster, so with this k nothing links them
    k = 4
    rng = np.random.default_rng(2)
    a = 1e-3 * rng.normal(size=(k + 1, 2))
    b = a + np.array([1.0, 0.0]) + 1e-3 * rng.normal(size=(k + 1, 2))
    x = np.vstack([a, b])
    g_small = curate.near_duplicates(x, 1.5, metric="l2", k=k)
    np.testing.assert_array_equal(g_small, [0] * (k + 1) + [k + 1] * (k + 1))
    np.testing.assert_array_equal(g_small, ref_near_duplicates(x, 1.5, "l2", k))
    # one more neighbour reaches across
    np.testing.assert_array_equal(curate.near_duplicates(x, 1.5, metric="l2", k=k + 1), np.zeros(2 * k + 2))


def test_near_duplicates_singletons_and_exact_copies():
    x = np.eye(5)
    np.testing.assert_array_equal(curate.near_duplicates(x, 0.5, k=2), np.arange(5))
    y = np.vstack([x, x[2:3], x[0:1]])
    np.testing.assert_array_equal(curate.near_duplicates(y, 0.0, metric="l2", k=2), [0, 1, 2, 3, 4, 2, 0])
    np.testing.assert_array_equal(curate.near_duplicates(y, 1e-6, metric="cosine", k=2), [0, 1, 2, 3, 4, 2, 0])
    for dtype in (np.int32, np.float16, np.float32):
        np.testing.assert_array_equal(curate.near_duplicates(y.astype(dtype), 0.0, metric="l2", k=2), [0, 1, 2, 3, 4, 2, 0])
    np.testing.assert_array_equal(curate.near_duplicates(y.tolist(), 0.0, metric="l2", k=2), [0, 1, 2, 3, 4, 2, 0])


def test_near_duplicates_graph_reuse_and_torch_and_dtypes():
    rng = np.random.default_rng(3)
    x = clustered(rng)
    want = curate.near_duplicates(x, 1e-3, k=5)
    g = knn_graph(x, 5, "cosine")
    np.testing.assert_array_equal(curate.near_duplicates(x, 1e-3, k=5, graph=g), want)
    np.testing.assert_array_equal(curate.near_duplicates(None, 1e-3, k=5, graph=g), want)
    np.testing.assert_array_equal(curate.near_duplicates(x.astype(np.float32), 1e-3, k=5), want)
    np.testing.assert_array_equal(curate.near_duplicates(np.asfortranarray(x), 1e-3, k=5), want)
    torch = pytest.importorskip("torch")
    t = curate.near_duplicates(torch.from_numpy(x), 1e-3, k=5)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.int64
    np.testing.assert_array_equal(t.numpy(), want)


def test_near_duplicates_digits_f1():
    datasets = pytest.importorskip("sklearn.datasets")
    digits = datasets.load_digits().data.astype(np.float64)  # (1797, 64), values 0..16
    rng = np.random.default_rng(0)
    src = rng.choice(len(digits), size=100, replace=False)
    copies = digits[src] + rng.normal(scale=0.01, size=(100, digits.shape[1]))
    x = np.vstack([digits, copies])
    t0 = time.perf_counter()
    groups = curate.near_duplicates(x, 1e-4, metric="cosine", k=10)
    elapsed = time.perf_counter() - t0
    # a pair (i, j), i < j, is predicted when both share a group
    n = len(x)

    def pairs(labels):
        out = set()
        for g in np.unique(labels):
            members = np.flatnonzero(labels == g).tolist()
            out.update((a, b) for ai, a in enumerate(members) for b in members[ai + 1 :])
        return out

    pred = pairs(groups)
    # truth: a copy duplicates its source, and rows identical inside load_digits duplicate each other
    _, key = np.unique(digits, axis=0, return_inverse=True)
    key = np.concatenate([key.reshape(-1), key.reshape(-1)[src]])
    truth = pairs(key)
    assert len(truth) >= 100
    tp = len(pred & truth)
    f1 = 2 * tp / (len(pred) + len(truth))
    print(f"digits near-duplicates: F1 {f1:.4f}, {elapsed * 1e3:.1f} ms for N={n}")
    assert f1 >= 0.99


def test_near_duplicates_bad_input():
    x = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(ValueError, match="threshold"):
        curate.near_duplicates(x, -0.1)
    with pytest.raises(ValueError, match="threshold"):
        curate.near_duplicates(x, float("nan"))
    with pytest.raises(ValueError, match="k must"):
        curate.near_duplicates(x, 0.1, k=0)
    with pytest.raises(ValueError, match="k must"):
        curate.near_duplicates(x, 0.1, k=6)
    with pytest.raises(ValueError, match="metric"):
        curate.near_duplicates(x, 0.1, metric="ip", k=2)
    bad = x.copy()
    bad[4, 1] = np.nan
    with pytest.raises(ValueError, match="x must be finite.*row 4"):
        curate.near_duplicates(bad, 0.1, k=2)
    g = knn_graph(x, 3, "cosine")
    with pytest.raises(ValueError, match="x must be finite.*row 4"):
        curate.near_duplicates(bad, 0.1, k=3, graph=g)
    with pytest.raises(ValueError, match="k=2"):
        curate.near_duplicates(x, 0.1, k=2, graph=g)
    with pytest.raises(ValueError, match="x must have shape \\(6, D\\)"):
        curate.near_duplicates(x[:5], 0.1, k=3, graph=g)
    with pytest.raises(ValueError, match="graph distances and indices"):
        curate.near_duplicates(x, 0.1, k=3, graph=(g[0], g[1][:, :2]))
    with pytest.raises(ValueError, match="graph"):
        curate.near_duplicates(x, 0.1, k=3, graph=g[0])
    with pytest.raises(ValueError, match="graph indices"):
        curate.near_duplicates(x, 0.1, k=3, graph=(g[0], g[1] + 10))
    with pytest.raises(ValueError, match="wrong metric"):
        curate.near_duplicates(x, 0.1, metric="cosine", k=3, graph=knn_graph(x, 3, "l2"))
    with pytest.raises(TypeError, match="k must be an int"):
        curate.near_duplicates(x, 0.1, k=2.0)


# hypothesis: laws


points = st.integers(min_value=3, max_value=25).flatmap(
    lambda n: st.tuples(
        st.just(n),
        st.integers(min_value=1, max_value=n - 1),
        st.integers(min_value=0, max_value=2**31 - 1),
    )
)


def _data(n, seed):
    rng = np.random.default_rng(seed)
    # a few grid values so duplicates and ties occur
    return rng.integers(0, 3, size=(n, 3)).astype(np.float64) + rng.choice([0, 0.05], size=(n, 3))


@settings(max_examples=60, deadline=None)
@given(points, st.floats(min_value=0, max_value=2.0), st.sampled_from(["cosine", "l2"]))
def test_near_duplicates_laws(case, threshold, metric):
    n, k, seed = case
    x = _data(n, seed)
    if metric == "cosine":
        x = x + 0.1  # no zero rows
    g = knn_graph(x, k, metric)
    groups = curate.near_duplicates(x, threshold, metric=metric, k=k, graph=g)
    # partition, labelled by the smallest member
    assert groups.shape == (n,)
    for lab in np.unique(groups):
        assert lab == np.flatnonzero(groups == lab).min()
    # every link (either direction) is inside one group: linking is symmetric
    dist = 1.0 - g[0].astype(np.float64) if metric == "cosine" else np.sqrt(g[0].astype(np.float64))
    for i in range(n):
        for j in range(k):
            if dist[i, j] <= threshold:
                assert groups[i] == groups[g[1][i, j]]
    # the same as BFS over the same links
    edges = [(i, int(g[1][i, j])) for i in range(n) for j in range(k) if max(dist[i, j], 0) <= threshold]
    assert same_partition(groups, ref_components(n, edges))
    # monotone in threshold: a larger threshold merges groups, never splits them
    bigger = curate.near_duplicates(x, threshold * 1.5 + 0.01, metric=metric, k=k, graph=g)
    for lab in np.unique(groups):
        assert len(np.unique(bigger[groups == lab])) == 1
    assert len(np.unique(bigger)) <= len(np.unique(groups))
    # row order does not matter up to relabelling
    perm = np.random.default_rng(seed).permutation(n)
    if k == n - 1:  # full graph: independent of neighbour ties
        permuted = curate.near_duplicates(x[perm], threshold, metric=metric, k=k)
        assert same_partition(permuted, groups[perm])


def test_components_long_chain():
    # a 2000-node path in shuffled order: worst case for label propagation, fine for hooking
    from curata.curate import _components

    n = 2000
    order = np.random.default_rng(0).permutation(n)
    u, v = order[:-1], order[1:]
    np.testing.assert_array_equal(_components(n, u, v), np.zeros(n, dtype=np.int64))


# --------------------------------------------------------------------------- uniqueness / outliers


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_uniqueness_and_outliers_match_reference(metric):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(80, 6))
    x[7] *= 8  # an l2 outlier
    x[9] = -x[10]  # opposite direction
    dist = ref_distances(x, metric)
    for k in (1, 3, 10):
        d, _ = ref_knn(dist, k)
        m = d.mean(axis=1)
        np.testing.assert_allclose(curate.uniqueness(x, k=k, metric=metric), m, rtol=1e-5, atol=1e-5)
        want = m / (m + np.median(m))
        got = curate.outlier_scores(x, k=k, metric=metric)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
        assert np.all((got >= 0) & (got < 1))
    if metric == "l2":
        assert np.argmax(curate.outlier_scores(x, k=5, metric="l2")) == 7


def test_scores_graph_reuse_and_edge_cases():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(30, 4))
    g = knn_graph(x, 10, "cosine")
    np.testing.assert_array_equal(curate.outlier_scores(x, k=10, graph=g), curate.outlier_scores(x, k=10))
    g3 = (g[0][:, :3], g[1][:, :3])
    np.testing.assert_allclose(curate.uniqueness(None, k=3, graph=g3), curate.uniqueness(x, k=3))
    with pytest.raises(ValueError, match="k=3"):
        curate.uniqueness(x, k=3, graph=g)
    # all rows identical: every mean distance is 0, scores 0
    same = np.ones((5, 3))
    np.testing.assert_array_equal(curate.outlier_scores(same, k=2, metric="l2"), np.zeros(5))
    np.testing.assert_array_equal(curate.uniqueness(same, k=2, metric="l2"), np.zeros(5))
    # most rows duplicated: median 0, the positive median is the scale
    y = np.vstack([np.zeros((6, 2)), [[1.0, 0.0]], [[3.0, 0.0]]])
    s = curate.outlier_scores(y, k=1, metric="l2")
    assert np.all(s[:6] == 0) and 0 < s[6] < s[7] < 1
    with pytest.raises(ValueError, match="k must"):
        curate.outlier_scores(x, k=30)
    with pytest.raises(ValueError, match="finite"):
        curate.uniqueness(np.full((4, 2), np.nan))


@settings(max_examples=40, deadline=None)
@given(points, st.sampled_from(["cosine", "l2"]))
def test_score_laws(case, metric):
    n, k, seed = case
    x = _data(n, seed) + 0.1
    g = knn_graph(x, n - 1, metric)
    u_all = [curate.uniqueness(None, k=j, metric=metric, graph=(g[0][:, :j], g[1][:, :j])) for j in range(1, n)]
    # the mean of the j nearest distances never decreases with j
    for lo, hi in zip(u_all, u_all[1:]):
        assert np.all(hi >= lo - 1e-6)
    o = curate.outlier_scores(None, k=k, metric=metric, graph=(g[0][:, :k], g[1][:, :k]))
    u = u_all[k - 1]
    assert np.all((o >= 0) & (o < 1))
    # a monotone transform of the uniqueness at the same k: same order
    i, j = np.nonzero(u[:, None] < u[None, :] - 1e-9)
    assert np.all(o[i] <= o[j])


# --------------------------------------------------------------------------- labels


def test_class_balance():
    labels = np.array([2, 0, 2, 2, 5, 0, 2])
    cb = curate.class_balance(labels)
    np.testing.assert_array_equal(cb.classes, [0, 2, 5])
    np.testing.assert_array_equal(cb.counts, [2, 4, 1])
    assert cb.counts.dtype == np.int64
    np.testing.assert_allclose(cb.fractions, [2 / 7, 4 / 7, 1 / 7])
    assert cb.imbalance_ratio == 4.0 and cb.majority == 2 and cb.minority == 5
    s = curate.class_balance(["cat", "dog", "cat"])
    assert list(s.classes) == ["cat", "dog"] and s.imbalance_ratio == 2.0 and s.majority == "cat"
    assert curate.class_balance([1, 1]).imbalance_ratio == 1.0
    with pytest.raises(ValueError, match="labels"):
        curate.class_balance([])
    with pytest.raises(ValueError, match="labels must be 1-D"):
        curate.class_balance(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="labels must not contain NaN"):
        curate.class_balance([1.0, np.nan])


def test_slice_indices():
    labels = np.array([2, 0, 2, 2, 5, 0, 2])
    got = curate.slice_indices(labels, [0, 5])
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, [1, 4, 5])
    np.testing.assert_array_equal(curate.slice_indices(labels, 2), [0, 2, 3, 6])
    np.testing.assert_array_equal(curate.slice_indices(labels, [7]), np.zeros(0))
    np.testing.assert_array_equal(curate.slice_indices(["a", "b", "a"], "a"), [0, 2])
    torch = pytest.importorskip("torch")
    t = curate.slice_indices(torch.tensor([1, 3, 1]), [1])
    assert isinstance(t, torch.Tensor) and t.tolist() == [0, 2]


def test_slice_indices_sets_and_iterators():
    # np.asarray({0, 5}) is a 0-d object array holding the set: before the fix it was taken for a
    # single label equal to the set and matched nothing (an empty result, silently).
    labels = np.array([2, 0, 2, 2, 5, 0, 2])
    names = {0: "cat", 5: "dog"}
    for classes in ({0, 5}, frozenset([0, 5]), iter([0, 5]), (c for c in (5, 0)), names, names.keys()):
        np.testing.assert_array_equal(curate.slice_indices(labels, classes), [1, 4, 5])
    np.testing.assert_array_equal(curate.slice_indices(["a", "b", "a"], {"a"}), [0, 2])
    with pytest.raises(ValueError, match="classes must be a label or a 1-D sequence"):
        curate.slice_indices(labels, [[0], [1, 2]])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 5), min_size=1, max_size=40), st.lists(st.integers(0, 6), max_size=4))
def test_slices_partition_labels(labels, classes):
    labels = np.array(labels)
    cb = curate.class_balance(labels)
    assert cb.counts.sum() == len(labels)
    per_class = [curate.slice_indices(labels, c) for c in cb.classes]
    np.testing.assert_array_equal(np.sort(np.concatenate(per_class)), np.arange(len(labels)))
    np.testing.assert_array_equal([len(p) for p in per_class], cb.counts)
    want = [i for i, v in enumerate(labels) if v in set(classes)]
    np.testing.assert_array_equal(curate.slice_indices(labels, classes), want)


def test_exported():
    assert curata.curate is curate
    assert "curate" in curata.__all__


# --------------------------------------------------------------------------- against cleanlab


@pytest.fixture(scope="module")
def digits_with_problems():
    """Digits (raw pixels) plus 20 exact copies of random rows and 10 far outliers (signed noise:
    directions no digit image has), shuffled; returns x and the ground-truth masks."""
    from sklearn.datasets import load_digits

    x, _ = load_digits(return_X_y=True)
    x = x.astype(np.float32)
    rng = np.random.default_rng(0)
    src = rng.choice(len(x), 20, replace=False)
    far = rng.normal(0.0, 8.0, (10, x.shape[1])).astype(np.float32)
    allx = np.vstack([x, x[src], far])
    perm = rng.permutation(len(allx))
    pos = np.argsort(perm)  # pos[original row] = shuffled row
    dup = np.zeros(len(allx), dtype=bool)
    dup[pos[np.r_[src, np.arange(len(x), len(x) + 20)]]] = True
    out = np.zeros(len(allx), dtype=bool)
    out[pos[len(x) + 20 :]] = True
    return allx[perm], dup, out


def test_agrees_with_cleanlab_datalab_on_obvious_cases(digits_with_problems):
    from cleanlab import Datalab
    from scipy.stats import spearmanr

    x, dup, out = digits_with_problems
    n = len(x)
    lab = Datalab(data={"label": np.zeros(n, dtype=np.int64)}, label_name="label", verbosity=0)
    lab.find_issues(features=x, issue_types={"near_duplicate": {}, "outlier": {}})  # k=10, cosine
    nd, od = lab.get_issues("near_duplicate"), lab.get_issues("outlier")

    g = knn_graph(x, 10, "cosine")
    median_nn = float(np.median(1.0 - g[0][:, 0]))
    np.testing.assert_allclose(median_nn, lab.get_info("near_duplicate")["median_distance_to_nearest_neighbor"], rtol=1e-4)
    # cleanlab's rule (distance < 0.13 x median nearest-neighbour distance) as curata's threshold
    groups = np.asarray(curate.near_duplicates(None, 0.13 * median_nn, k=10, graph=g))
    ours = np.bincount(groups, minlength=n)[groups] > 1
    theirs = nd["is_near_duplicate_issue"].to_numpy()
    np.testing.assert_array_equal(ours, dup)  # exactly the injected copies and their sources
    np.testing.assert_array_equal(theirs, dup)
    for i in np.flatnonzero(dup):  # cleanlab's set of each row lies in curata's group of that row
        members = np.r_[i, np.asarray(nd["near_duplicate_sets"].iloc[i], dtype=np.int64)]
        assert len(set(groups[members].tolist())) == 1

    ours_o = np.asarray(curate.outlier_scores(None, k=10, graph=g))
    theirs_o = -od["outlier_score"].to_numpy()  # cleanlab: lower = more of an outlier
    # both are monotone in the mean distance to the 10 nearest neighbours: same ranking up to
    # float32 (curata) vs float64 (cleanlab) rounding of near-ties
    assert spearmanr(ours_o, theirs_o).statistic > 0.9999
    top = set(np.flatnonzero(out).tolist())
    assert set(np.argsort(-ours_o, kind="stable")[:10].tolist()) == top
    assert set(np.argsort(-theirs_o, kind="stable")[:10].tolist()) == top
    assert od["is_outlier_issue"].to_numpy()[out].all()


@pytest.mark.parametrize("scale", [2.0**80, 2.0**-80])
def test_cosine_scores_do_not_depend_on_the_embedding_scale(scale):
    # Embeddings whose float32 squared norms overflow (or underflow): the cosine kNN graph used
    # to give similarity -inf (or 0), so uniqueness came out 2 (or 1) everywhere, outlier scores
    # 0.5 and exact copies were not grouped. Cosine is scale-free: results must match the
    # unscaled rows (power-of-two scale: bit for bit).
    rng = np.random.default_rng(7)
    x = rng.standard_normal((30, 4)).astype(np.float32)
    y = np.vstack([x, x[:2]])
    ys = y * np.float32(scale)
    groups = curate.near_duplicates(ys, 1e-6, k=3)
    np.testing.assert_array_equal(groups, curate.near_duplicates(y, 1e-6, k=3))
    assert groups[30] == 0 and groups[31] == 1  # the copies join their originals
    np.testing.assert_array_equal(curate.uniqueness(ys), curate.uniqueness(y))
    np.testing.assert_array_equal(curate.outlier_scores(ys), curate.outlier_scores(y))


@pytest.mark.parametrize("exponent", [70, -90])
def test_l2_scores_scale_with_the_embeddings(exponent):
    # "l2" is scale-equivariant: distances scale with the data. Embeddings whose float32 squared
    # distances overflow (2^70: uniqueness inf, outlier scores NaN, label_issues scores NaN) or
    # underflow (2^-90: every distance 0, so near_duplicates(threshold=0) put all rows in one
    # group and the kNN vote picked neighbours by index) gave garbage. Such data is rescaled by a
    # power of two before the graph and distances are scaled back (exact: bit for bit).
    rng = np.random.default_rng(8)
    x = rng.standard_normal((40, 4)).astype(np.float32)
    y = np.vstack([x, x[:2]])
    labels = rng.integers(0, 3, size=y.shape[0])
    factor = np.ldexp(1.0, exponent)
    ys = np.ldexp(y, exponent)
    np.testing.assert_array_equal(curate.near_duplicates(ys, 0.0, "l2", k=3), curate.near_duplicates(y, 0.0, "l2", k=3))
    np.testing.assert_array_equal(curate.near_duplicates(ys, 0.5 * factor, "l2", k=3),
                                  curate.near_duplicates(y, 0.5, "l2", k=3))
    np.testing.assert_array_equal(curate.uniqueness(ys, metric="l2"), curate.uniqueness(y, metric="l2") * factor)
    np.testing.assert_array_equal(curate.outlier_scores(ys, metric="l2"), curate.outlier_scores(y, metric="l2"))
    got = curate.label_issues(labels, features=ys, k=5, metric="l2")
    want = curate.label_issues(labels, features=y, k=5, metric="l2")
    np.testing.assert_array_equal(got.score, want.score)
    np.testing.assert_array_equal(got.is_issue, want.is_issue)
    # float64 input beyond the float32 range is fine too (it used to be refused by the graph)
    for e in (200, 600, -600):  # (scale**2 itself over/underflows float64 at 2^-+600)
        big = np.ldexp(y.astype(np.float64), e)
        np.testing.assert_array_equal(curate.outlier_scores(big, metric="l2"), curate.outlier_scores(y, metric="l2"))
        np.testing.assert_array_equal(curate.uniqueness(big, metric="l2"),
                                      np.ldexp(curate.uniqueness(y, metric="l2"), e))
    torch = pytest.importorskip("torch")  # torch tensors, integer ones included
    np.testing.assert_array_equal(curate.outlier_scores(torch.from_numpy(ys), metric="l2").numpy(),
                                  curate.outlier_scores(y, metric="l2"))
    ints = np.round(y * 64).astype(np.int64) << 50  # about 1e17: float32 squares overflow
    np.testing.assert_array_equal(curate.outlier_scores(torch.from_numpy(ints), metric="l2").numpy(),
                                  curate.outlier_scores(np.round(y * 64), metric="l2"))


def test_near_duplicates_threshold_as_a_big_python_int():
    # np.isfinite(10**30) raised numpy's TypeError ("ufunc 'isfinite' not supported ..."), which
    # names neither the argument nor the rule; 10**30 is a finite threshold (everything linked
    # within the k lists), 10**400 is beyond the float range (not finite: ValueError).
    x = np.random.default_rng(1).standard_normal((12, 3))
    np.testing.assert_array_equal(curate.near_duplicates(x, 10**30, "l2", k=3),
                                  curate.near_duplicates(x, 1e30, "l2", k=3))
    with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
        curate.near_duplicates(x, 10**400, "l2", k=3)


def test_object_labels_with_nan_are_refused():
    # A float NaN inside an object array (pandas columns with missing values) slipped past the
    # NaN check of float labels: class_balance gave classes [nan, 1.0, nan, 2.0] (unsorted, one
    # class per NaN) and slice_indices matched nothing.
    labels = np.array([float("nan"), 1.0, float("nan"), 2.0], dtype=object)
    with pytest.raises(ValueError, match="labels must not contain NaN or infinity, got one in row 0"):
        curate.class_balance(labels)
    with pytest.raises(ValueError, match="labels must not contain NaN or infinity, got one in row 2"):
        curate.slice_indices(np.array([1.0, 2.0, float("inf")], dtype=object), [1.0])
    cb = curate.class_balance(np.array([2.0, 1.0, 2.0], dtype=object))
    assert cb.classes.tolist() == [1.0, 2.0] and cb.counts.tolist() == [1, 2]


def test_class_balance_unorderable_object_labels():
    # Was numpy's "'<' not supported between instances of 'str' and 'int'" from np.unique.
    with pytest.raises(TypeError, match=r"^labels must be mutually orderable.*\['int', 'str'\]"):
        curate.class_balance(np.array([1, "a"], dtype=object))
    with pytest.raises(TypeError, match=r"^labels must be mutually orderable.*NoneType"):
        curate.class_balance(np.array(["a", None], dtype=object))
    # object-dtype strings (what pandas hands over) crashed on .item() of a Python str
    cb = curate.class_balance(np.array(["b", "a", "b"], dtype=object))
    assert cb.classes.tolist() == ["a", "b"] and cb.counts.tolist() == [1, 2]
    assert cb.majority == "b" and cb.minority == "a" and type(cb.majority) is str
    cb = curate.class_balance(np.array([3, 1, 3]))
    assert cb.majority == 3 and type(cb.majority) is int


def test_cosine_all_zero_rows_follow_the_documented_rule():
    # Documented: an all-zero row has cosine similarity 0 with everything (distance 1), so two
    # zero rows are not near-duplicates of each other and uniqueness is exactly 1 for them.
    rng = np.random.default_rng(9)
    x = rng.standard_normal((20, 3)).astype(np.float32)
    x[[4, 11]] = 0.0
    groups = curate.near_duplicates(x, 0.5, "cosine", k=5)
    assert groups[4] == 4 and groups[11] == 11 and not np.any(np.delete(groups, [4, 11]) == 4)
    np.testing.assert_array_equal(curate.uniqueness(x, 3, "cosine")[[4, 11]], [1.0, 1.0])
